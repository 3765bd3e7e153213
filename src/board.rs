//! Board profiles: per board class defaults for where econet keeps its files, how it
//! logs and how it reaches its controller. Profiles in `board/` are compiled in; a
//! path to a JSON file of the same shape works too. Explicit flags override them.

use crate::config::json;
use heapless::{String, Vec};
use serde::Deserialize;

/// The profiles shipped in `board/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "generic-x86_64",
        include_str!("../board/generic-x86_64.json"),
    ),
    ("rpi4-aarch64", include_str!("../board/rpi4-aarch64.json")),
    ("imx6-armv7", include_str!("../board/imx6-armv7.json")),
    (
        "map-server-x86_64",
        include_str!("../board/map-server-x86_64.json"),
    ),
];

#[derive(Deserialize, Debug, Default)]
struct RawController {
    url: Option<String<255>>,
    ca: Option<String<255>>,
    cert: Option<String<255>>,
    key: Option<String<255>>,
    poll_secs: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
struct RawBoard {
    name: Option<String<64>>,
    target: Option<String<64>>,
    ports: Option<Vec<String<16>, 16>>,
    state_dir: Option<String<255>>,
    config: Option<String<255>>,
    log_level: Option<String<8>>,
    role: Option<String<16>>,
    controller: Option<RawController>,
}

/// What a board runs: the device daemon (`econet run`) or the map server (`econet
/// map-server`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Device,
    MapServer,
}

impl Role {
    /// The command that runs this role.
    pub fn command(self) -> &'static str {
        match self {
            Role::Device => "run",
            Role::MapServer => "map-server",
        }
    }
}

/// Controller settings a board may preset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerDefaults {
    pub url: Option<std::string::String>,
    pub ca: Option<std::string::String>,
    pub cert: Option<std::string::String>,
    pub key: Option<std::string::String>,
    pub poll_secs: Option<u32>,
}

/// A board profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Board {
    pub name: std::string::String,
    /// `"role": "map-server"` in the profile; a device when absent.
    pub role: Role,
    /// The Rust target triple econet is built for on this board.
    pub target: std::string::String,
    /// The port interface names the board has.
    pub ports: std::vec::Vec<std::string::String>,
    /// Where leases, the last good config and allocations live (a writable,
    /// persistent partition on boards with a read-only rootfs).
    pub state_dir: Option<std::string::String>,
    /// The config file `run` reads when neither `--config` nor `--controller` is given.
    pub config: Option<std::string::String>,
    pub log_level: Option<log::LevelFilter>,
    pub controller: ControllerDefaults,
}

fn owned(s: &Option<String<255>>) -> Option<std::string::String> {
    s.as_ref().map(|s| s.as_str().to_string())
}

/// Why a board profile cannot be used.
#[derive(Debug)]
pub enum BoardError {
    /// Neither a built-in profile nor a path to one.
    Unknown { name: std::string::String },
    /// The profile file cannot be read.
    Read {
        name: std::string::String,
        err: crate::config::ReadError,
    },
    /// The profile is not a valid one.
    Invalid {
        name: std::string::String,
        problem: ProfileProblem,
    },
}

/// What is wrong inside a profile document.
#[derive(Debug)]
pub enum ProfileProblem {
    Syntax(json::SyntaxError),
    NotAProfile(serde_json_core::de::Error),
    UnknownLogLevel(std::string::String),
    UnknownRole(std::string::String),
}

impl std::fmt::Display for ProfileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileProblem::Syntax(e) => write!(f, "{e}"),
            ProfileProblem::NotAProfile(e) => write!(f, "not a board profile: {e}"),
            ProfileProblem::UnknownLogLevel(l) => write!(f, "log_level: unknown level {l:?}"),
            ProfileProblem::UnknownRole(r) => {
                write!(f, "role: unknown role {r:?} (\"device\" or \"map-server\")")
            }
        }
    }
}

impl std::fmt::Display for BoardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoardError::Unknown { name } => {
                let known: std::vec::Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                write!(
                    f,
                    "unknown board {name:?} (built in: {}; or give a path to a JSON profile)",
                    known.join(", ")
                )
            }
            BoardError::Read { name, err } => write!(f, "board {name}: {err}"),
            BoardError::Invalid { name, problem } => write!(f, "board {name}: {problem}"),
        }
    }
}

impl std::error::Error for BoardError {}

/// Parses a profile document.
pub fn parse(doc: &[u8]) -> Result<Board, ProfileProblem> {
    json::check_syntax(doc).map_err(ProfileProblem::Syntax)?;
    let doc: &[u8] = &json::join_surrogate_escapes(doc);
    let mut scratch = vec![0u8; doc.len()];
    let (raw, _): (RawBoard, usize) = serde_json_core::from_slice_escaped(doc, &mut scratch)
        .map_err(ProfileProblem::NotAProfile)?;
    let log_level = match raw.log_level.as_deref() {
        None => None,
        Some(l) => Some(
            l.parse::<log::LevelFilter>()
                .map_err(|_| ProfileProblem::UnknownLogLevel(l.to_string()))?,
        ),
    };
    let role = match raw.role.as_deref() {
        None | Some("device") => Role::Device,
        Some("map-server") => Role::MapServer,
        Some(r) => return Err(ProfileProblem::UnknownRole(r.to_string())),
    };
    let c = raw.controller.unwrap_or_default();
    Ok(Board {
        name: raw.name.as_deref().unwrap_or_default().to_string(),
        role,
        target: raw.target.as_deref().unwrap_or_default().to_string(),
        ports: raw
            .ports
            .iter()
            .flatten()
            .map(|p| p.as_str().to_string())
            .collect(),
        state_dir: owned(&raw.state_dir),
        config: owned(&raw.config),
        log_level,
        controller: ControllerDefaults {
            url: owned(&c.url),
            ca: owned(&c.ca),
            cert: owned(&c.cert),
            key: owned(&c.key),
            poll_secs: c.poll_secs,
        },
    })
}

/// Finds a profile: a built-in name, or a path to a JSON file.
pub fn load(name: &str) -> Result<Board, BoardError> {
    let invalid = |problem| BoardError::Invalid {
        name: name.to_string(),
        problem,
    };
    if let Some((_, doc)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return parse(doc.as_bytes()).map_err(invalid);
    }
    if name.contains('/') || name.ends_with(".json") {
        let doc = crate::config::read_bounded(std::path::Path::new(name)).map_err(|err| {
            BoardError::Read {
                name: name.to_string(),
                err,
            }
        })?;
        return parse(&doc).map_err(invalid);
    }
    Err(BoardError::Unknown {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_match_their_names() {
        for (name, _) in BUILTIN {
            let b = load(name).unwrap();
            assert_eq!(&b.name, name);
            assert!(b.target.ends_with("-linux-musl") || b.target.ends_with("-linux-musleabihf"));
            assert!(b.state_dir.is_some());
        }
    }

    /// The boards' C ABI: `time_t` is 64-bit on every target (armv7 through `--cfg
    /// libc_unstable_musl_v1_2`, see board/README.md), and a time past 2038 survives a
    /// round trip through the C library that is linked in (libc and nix agree with it).
    /// Run under qemu-user by `board/build.sh TARGET test`.
    #[test]
    #[allow(deprecated)] // the libc crate marks musl's time_t deprecated (musl 1.2 changed it)
    fn time_t_is_64_bit_and_survives_2038() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(std::mem::size_of::<libc::time_t>(), 8);
        assert_eq!(std::mem::size_of::<libc::timespec>(), 16);

        let path = std::env::temp_dir().join(format!("econet-time64-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // 2041-01-01T00:00:00Z
        let t: libc::time_t = 2_240_524_800;
        // SAFETY: all-zero is a valid timespec (it has private padding on armv7).
        let mut times: [libc::timespec; 2] = unsafe { std::mem::zeroed() };
        times[0].tv_sec = t;
        times[1].tv_sec = t;
        // SAFETY: a NUL-terminated path and two live timespecs.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, cpath.as_ptr(), times.as_ptr(), 0) };
        let err = std::io::Error::last_os_error();
        let st = nix::sys::stat::stat(path.as_path());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r, 0, "utimensat to 2041: {err}");
        assert_eq!(st.unwrap().st_mtime, t, "nix stat after utimensat");

        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).unwrap();
        let std_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now.tv_sec() - std_now).abs() <= 2,
            "{} vs {std_now}",
            now.tv_sec()
        );
    }

    /// Every profile in `board/` is built in, as it is on disk; its init file exists and
    /// starts the command of the profile's role with that profile; every init script in
    /// `board/init/` defaults to a built-in profile of its role, starts it with
    /// `--board` and reloads with SIGHUP.
    #[test]
    fn board_files_are_built_in_and_their_init_scripts_match() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = std::vec::Vec::new();
        for f in std::fs::read_dir(root.join("board")).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                on_disk.push(p);
            }
        }
        assert_eq!(on_disk.len(), BUILTIN.len(), "{on_disk:?}");
        let mut roles = std::collections::HashMap::new();
        for p in &on_disk {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let (_, doc) = BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{} is not in BUILTIN", p.display()));
            assert_eq!(*doc, std::fs::read_to_string(p).unwrap(), "{name}");
            let b = load(&name).unwrap();
            // The init file the profile names (not a field econet reads).
            let init = doc
                .lines()
                .find_map(|l| l.trim().strip_prefix("\"init_file\": \""))
                .and_then(|l| l.split('"').next())
                .unwrap_or_else(|| panic!("{name} names no init_file"));
            let script = std::fs::read_to_string(root.join(init))
                .unwrap_or_else(|e| panic!("{name}: {init}: {e}"));
            assert!(script.contains(&name), "{init} does not default to {name}");
            roles.insert(name, b.role);
        }
        assert!(roles.values().any(|r| *r == Role::MapServer));
        let mut n = 0;
        for f in std::fs::read_dir(root.join("board/init")).unwrap() {
            let p = f.unwrap().path();
            let script = std::fs::read_to_string(&p).unwrap();
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let role = if file.contains("map-server") {
                Role::MapServer
            } else {
                Role::Device
            };
            let default = roles
                .iter()
                .find(|(name, r)| **r == role && script.contains(name.as_str()))
                .unwrap_or_else(|| panic!("{file} defaults to no built-in {role:?} profile"));
            assert!(
                script.contains(&format!("econet {} --board", role.command()))
                    || script.contains(&format!("\"$PROG\" {} --board", role.command()))
                    || script.contains(&format!("\"$DAEMON\" {} --board", role.command())),
                "{file} does not start `econet {} --board` ({default:?})",
                role.command()
            );
            // `kill -HUP` (systemd's ExecReload, the rc script) or procd's signal.
            let reload = script.lines().map(str::trim).any(|l| {
                !l.starts_with('#') && (l.contains("kill -HUP ") || l.ends_with("'*' HUP"))
            });
            assert!(reload, "{file} has no SIGHUP reload");
            n += 1;
        }
        assert!(n >= 6, "{n} init scripts");
    }

    #[test]
    fn unknown_board_names_the_choices() {
        let e = load("nope").unwrap_err();
        assert!(matches!(&e, BoardError::Unknown { name } if name == "nope"));
        assert!(e.to_string().contains("generic-x86_64"), "{e}");
        let e = parse(b"{\"log_level\": \"loud\"}").unwrap_err();
        assert!(matches!(&e, ProfileProblem::UnknownLogLevel(l) if l == "loud"));
        assert!(e.to_string().contains("log_level"));
        let e = parse(b"{\"role\": \"router\"}").unwrap_err();
        assert!(
            e.to_string().starts_with("role: unknown role \"router\""),
            "{e}"
        );
        assert_eq!(load("map-server-x86_64").unwrap().role, Role::MapServer);
        assert_eq!(load("generic-x86_64").unwrap().role, Role::Device);
    }
}
