//! Command-line parsing and dispatch. Hand-rolled: the grammar is small and every
//! dependency costs flash on the boards.

use std::path::PathBuf;

pub const USAGE: &str = "\
econet: networks for edge containers

USAGE:
    econet run [--config FILE | --controller URL --ca FILE --cert FILE --key FILE]
               [--poll-interval SECS] [--device-id ID] [--state-dir DIR] [--board NAME]
               [--log-level LEVEL]
    econet check FILE
    econet status [--json | --dot] [--state-dir DIR | --socket PATH] [--board NAME]
                  (--dot: the device's networks, ports and ECOs as a Graphviz graph)
    econet demo
    econet map-server [--config FILE] [--state-dir DIR] [--board NAME] [--log-level LEVEL]
    econet map-server check FILE
    econet map-server status [--json] [--state-dir DIR | --socket PATH] [--board NAME]
    econet --version
    econet --help

COMMANDS:
    run      Make the kernel match the device config and keep it so; serve DHCP,
             DNS, VPN and mesh. Reads --config FILE (SIGHUP rereads it) or polls
             --controller URL. Leaves kernel objects in place on exit.
    check    Validate a config file; print every error with its JSON path.
    status   Show what the running econet reports (--json: the status document).
    demo     Build a sandbox of network namespaces and show econet at work.
    map-server
             Serve as the LISP Map-Server/Map-Resolver of a mesh fleet (SIGHUP
             rereads --config, registrations kept). `map-server check FILE`
             validates its config; `map-server status` shows the registered EIDs
             and, per site, registrations, auth failures and churn (state dir
             default: the board's, else /var/lib/econet-ms).

OPTIONS:
    --state-dir DIR    Where leases, the last good config and the control socket
                       live (default: the board's, else /var/lib/econet).
    --board NAME       A board profile (built in, or a path to a JSON profile)
                       that supplies defaults; explicit flags override it.
    --controller URL   Poll URL/config over HTTPS (CA pinned by --ca, the device
                       authenticated by --cert/--key), post status to URL/info.
    --device-id ID     Reject configs for another device (default: the id of the
                       config the device runs; the first accepted pins it).
    --log-level LEVEL  error, warn, info, debug or trace (default: the board's, else info).
";

pub const DEFAULT_STATE_DIR: &str = "/var/lib/econet";
/// `econet map-server`'s state directory when neither a flag nor a board names one.
pub const DEFAULT_MS_STATE_DIR: &str = "/var/lib/econet-ms";

/// Options shared by the commands; `None` means "not given on the command line".
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub config: Option<PathBuf>,
    pub controller: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub poll_interval: Option<u32>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub board: Option<String>,
    pub device_id: Option<String>,
    pub log_level: Option<log::LevelFilter>,
    pub json: bool,
    pub dot: bool,
    pub positional: Vec<String>,
}

/// What is wrong with a command line.
#[derive(Debug)]
pub enum UsageError {
    UnknownOption(String),
    MissingValue(String),
    BadValue {
        option: &'static str,
        value: String,
        want: &'static str,
    },
    UnknownLogLevel(String),
    UnexpectedArgument(String),
    /// Two options that exclude each other, or a combination that is incomplete.
    Conflict(&'static str),
    /// `--controller` with a URL that is not https.
    NotHttps(String),
    /// `--controller` without this credential (`--ca`, `--cert`, `--key`).
    ControllerNeeds(&'static str),
    Board(crate::board::BoardError),
    /// A board profile made for the other command (`run` vs `map-server`).
    WrongRole {
        board: String,
        role: crate::board::Role,
    },
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::UnknownOption(o) => write!(f, "unknown option {o}"),
            UsageError::MissingValue(o) => write!(f, "{o} needs a value"),
            UsageError::BadValue {
                option,
                value,
                want,
            } => write!(f, "{option}: {value:?} {want}"),
            UsageError::UnknownLogLevel(l) => write!(f, "--log-level: unknown level {l:?}"),
            UsageError::UnexpectedArgument(a) => write!(f, "unexpected argument {a:?}"),
            UsageError::Conflict(what) => f.write_str(what),
            UsageError::NotHttps(url) => {
                write!(f, "--controller {url:?}: only https:// is accepted")
            }
            UsageError::ControllerNeeds(name) => {
                write!(
                    f,
                    "--controller needs --{name} FILE (or a board that sets it)"
                )
            }
            UsageError::Board(e) => write!(f, "{e}"),
            UsageError::WrongRole { board, role } => write!(
                f,
                "board {board} is a profile for `econet {} --board {board}`",
                role.command()
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments after the command name.
pub fn parse_opts(args: &[String]) -> Result<Opts, UsageError> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| UsageError::MissingValue(name.to_string()))
        };
        match a.as_str() {
            "--config" => o.config = Some(val(a)?.into()),
            "--controller" => o.controller = Some(val(a)?),
            "--ca" => o.ca = Some(val(a)?.into()),
            "--cert" => o.cert = Some(val(a)?.into()),
            "--key" => o.key = Some(val(a)?.into()),
            "--poll-interval" => {
                let v = val(a)?;
                o.poll_interval = Some(v.parse().ok().filter(|&s| s > 0).ok_or(
                    UsageError::BadValue {
                        option: "--poll-interval",
                        value: v,
                        want: "is not a positive number",
                    },
                )?);
            }
            "--state-dir" => o.state_dir = Some(val(a)?.into()),
            "--socket" => o.socket = Some(val(a)?.into()),
            "--board" => o.board = Some(val(a)?),
            "--device-id" => o.device_id = Some(val(a)?),
            "--log-level" => {
                let v = val(a)?;
                o.log_level = Some(
                    v.parse()
                        .map_err(|_| UsageError::UnknownLogLevel(v.clone()))?,
                );
            }
            "--json" => o.json = true,
            "--dot" => o.dot = true,
            s if s.starts_with("--") => return Err(UsageError::UnknownOption(s.to_string())),
            s => o.positional.push(s.to_string()),
        }
    }
    Ok(o)
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    let opts = match parse_opts(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("econet {cmd}: {e}\n\n{USAGE}");
            return 2;
        }
    };
    match cmd.as_str() {
        "--version" | "-V" | "version" => {
            println!("econet {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            0
        }
        "check" => check(&opts),
        "run" => run(&opts),
        "status" => status(&opts),
        "demo" => crate::demo::main(),
        "map-server" => map_server(&opts),
        other => {
            eprintln!("econet: unknown command {other:?}\n\n{USAGE}");
            2
        }
    }
}

fn check(opts: &Opts) -> i32 {
    let [file] = opts.positional.as_slice() else {
        eprintln!("econet check: give exactly one FILE");
        return 2;
    };
    match crate::config::load(std::path::Path::new(file)) {
        Ok(c) => {
            println!(
                "{file}: ok ({} ports, {} networks, {} apps)",
                c.ports.len(),
                c.networks.len(),
                c.apps.len()
            );
            0
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{file}: {e}");
            }
            eprintln!(
                "{file}: rejected ({} error{})",
                errs.len(),
                if errs.len() == 1 { "" } else { "s" }
            );
            if crate::map_server::load(std::path::Path::new(file)).is_ok() {
                eprintln!(
                    "{file}: this is a map server config: check it with `econet map-server check {file}`"
                );
            }
            1
        }
    }
}

/// Board defaults, or none when no board was named.
fn board(opts: &Opts) -> Result<crate::board::Board, UsageError> {
    match &opts.board {
        Some(name) => crate::board::load(name).map_err(UsageError::Board),
        None => Ok(crate::board::Board::default()),
    }
}

/// The board's profile, which must be one for `role`.
fn board_for(opts: &Opts, role: crate::board::Role) -> Result<crate::board::Board, UsageError> {
    let b = board(opts)?;
    if opts.board.is_some() && b.role != role {
        return Err(UsageError::WrongRole {
            board: opts.board.clone().unwrap_or_default(),
            role: b.role,
        });
    }
    Ok(b)
}

fn state_dir(opts: &Opts, b: &crate::board::Board) -> PathBuf {
    let default = match b.role {
        crate::board::Role::Device => DEFAULT_STATE_DIR,
        crate::board::Role::MapServer => DEFAULT_MS_STATE_DIR,
    };
    opts.state_dir
        .clone()
        .or_else(|| b.state_dir.clone().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default))
}

fn socket_path(opts: &Opts, b: &crate::board::Board) -> PathBuf {
    opts.socket
        .clone()
        .unwrap_or_else(|| state_dir(opts, b).join(crate::daemon::SOCKET))
}

/// Resolves flags over board defaults into the daemon's settings.
pub fn run_settings(
    opts: &Opts,
) -> Result<(crate::daemon::Settings, log::LevelFilter), UsageError> {
    let b = board_for(opts, crate::board::Role::Device)?;
    if let Some(a) = opts.positional.first() {
        return Err(UsageError::UnexpectedArgument(a.clone()));
    }
    let controller = |url: &str| -> Result<crate::daemon::Source, UsageError> {
        if !url.starts_with("https://") {
            return Err(UsageError::NotHttps(url.to_string()));
        }
        let pick = |flag: &Option<PathBuf>, board: &Option<String>, name: &'static str| {
            flag.clone()
                .or_else(|| board.clone().map(PathBuf::from))
                .ok_or(UsageError::ControllerNeeds(name))
        };
        Ok(crate::daemon::Source::Controller(
            crate::controller::Settings {
                url: url.to_string(),
                ca: pick(&opts.ca, &b.controller.ca, "ca")?,
                cert: pick(&opts.cert, &b.controller.cert, "cert")?,
                key: pick(&opts.key, &b.controller.key, "key")?,
                poll_interval: std::time::Duration::from_secs(u64::from(
                    opts.poll_interval.or(b.controller.poll_secs).unwrap_or(60),
                )),
            },
        ))
    };
    // Exactly one source: a flag wins over the board; a board that names a
    // controller is a managed device, so its controller wins over its config file.
    let source = match (&opts.config, &opts.controller) {
        (Some(_), Some(_)) => {
            return Err(UsageError::Conflict(
                "give --config or --controller, not both",
            ))
        }
        (Some(f), None) => crate::daemon::Source::File(f.clone()),
        (None, Some(url)) => controller(url)?,
        (None, None) => match (&b.controller.url, &b.config) {
            (Some(url), _) => controller(url)?,
            (None, Some(f)) => crate::daemon::Source::File(PathBuf::from(f)),
            (None, None) => {
                return Err(UsageError::Conflict(
                    "give --config FILE or --controller URL (or a --board that names one)",
                ))
            }
        },
    };
    let state_dir = state_dir(opts, &b);
    let socket = socket_path(opts, &b);
    let level = opts
        .log_level
        .or(b.log_level)
        .unwrap_or(log::LevelFilter::Info);
    Ok((
        crate::daemon::Settings {
            source,
            state_dir,
            socket,
            device_id: opts.device_id.clone(),
        },
        level,
    ))
}

fn run(opts: &Opts) -> i32 {
    let (settings, level) = match run_settings(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("econet run: {e}");
            return 2;
        }
    };
    let _ = simple_logger::SimpleLogger::new().with_level(level).init();
    let sigfd = match crate::event_loop::block_signals() {
        Ok(s) => s,
        Err(e) => {
            log::error!("signals: {e}");
            return 1;
        }
    };
    log::info!(
        "econet {} starting (state in {})",
        env!("CARGO_PKG_VERSION"),
        settings.state_dir.display()
    );
    let mut d = match crate::daemon::Daemon::new(settings) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    match crate::event_loop::run(&mut d, sigfd) {
        crate::event_loop::Exit::Signal(s) => {
            log::info!("signal {s}: exiting, kernel objects stay in place");
            0
        }
        crate::event_loop::Exit::Error(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn status(opts: &Opts) -> i32 {
    let b = match board(opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("econet status: {e}");
            return 2;
        }
    };
    let path = socket_path(opts, &b);
    let req = if opts.json {
        crate::control::Request::StatusJson
    } else if opts.dot {
        crate::control::Request::StatusDot
    } else {
        crate::control::Request::Status
    };
    match crate::control::ask(&path, req) {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!(
                "econet status: cannot reach econet at {}: {e}",
                path.display()
            );
            1
        }
    }
}

fn map_server(opts: &Opts) -> i32 {
    match opts.positional.first().map(String::as_str) {
        None => map_server_run(opts),
        Some("check") => map_server_check(opts),
        Some("status") => map_server_status(opts),
        Some(other) => {
            eprintln!(
                "econet map-server: unexpected argument {other:?} (`check FILE`, `status`, or none to serve)"
            );
            2
        }
    }
}

/// `econet map-server check FILE`: the map server's config, as `econet check` does the
/// device's: every error with its JSON path, exit 1 when there is one.
fn map_server_check(opts: &Opts) -> i32 {
    let [_, file] = opts.positional.as_slice() else {
        eprintln!("econet map-server check: give exactly one FILE");
        return 2;
    };
    let path = std::path::Path::new(file);
    match crate::map_server::load(path) {
        Ok(c) => {
            println!(
                "{file}: ok (listen {}, {} site{}, {} EID prefixes)",
                c.listen,
                c.sites.len(),
                if c.sites.len() == 1 { "" } else { "s" },
                c.sites.iter().map(|s| s.eid_prefixes.len()).sum::<usize>()
            );
            0
        }
        Err(e) => {
            let errs = match &e {
                crate::config::FileError::Read { err, .. } => vec![err.to_string()],
                crate::config::FileError::Invalid { errors, .. } => {
                    errors.iter().map(|e| e.to_string()).collect()
                }
            };
            for m in &errs {
                eprintln!("{file}: {m}");
            }
            eprintln!(
                "{file}: rejected ({} error{})",
                errs.len(),
                if errs.len() == 1 { "" } else { "s" }
            );
            if matches!(e, crate::config::FileError::Invalid { .. })
                && crate::config::load(path).is_ok()
            {
                eprintln!("{file}: this is a device config: check it with `econet check {file}`");
            }
            1
        }
    }
}

/// `econet map-server status`: `econet status` with the map server's defaults.
fn map_server_status(opts: &Opts) -> i32 {
    if let Some(a) = opts.positional.get(1) {
        eprintln!("econet map-server status: unexpected argument {a:?}");
        return 2;
    }
    let b = match board_for(opts, crate::board::Role::MapServer) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("econet map-server status: {e}");
            return 2;
        }
    };
    let b = crate::board::Board {
        role: crate::board::Role::MapServer,
        ..b
    };
    let path = socket_path(opts, &b);
    let req = if opts.json {
        crate::control::Request::StatusJson
    } else {
        crate::control::Request::Status
    };
    match crate::control::ask(&path, req) {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!(
                "econet map-server status: cannot reach the map server at {}: {e}",
                path.display()
            );
            1
        }
    }
}

fn map_server_run(opts: &Opts) -> i32 {
    let b = match board_for(opts, crate::board::Role::MapServer) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("econet map-server: {e}");
            return 2;
        }
    };
    let b = crate::board::Board {
        role: crate::board::Role::MapServer,
        ..b
    };
    let Some(config) = opts
        .config
        .clone()
        .or_else(|| b.config.clone().map(PathBuf::from))
    else {
        eprintln!("econet map-server: give --config FILE (or a --board that names one)");
        return 2;
    };
    let state_dir = state_dir(opts, &b);
    let level = opts
        .log_level
        .or(b.log_level)
        .unwrap_or(log::LevelFilter::Info);
    let _ = simple_logger::SimpleLogger::new().with_level(level).init();
    let sigfd = match crate::event_loop::block_signals() {
        Ok(s) => s,
        Err(e) => {
            log::error!("signals: {e}");
            return 1;
        }
    };
    let mut d = match crate::map_server::MapServerDaemon::new(config, state_dir) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    match crate::event_loop::run(&mut d, sigfd) {
        crate::event_loop::Exit::Signal(_) => 0,
        crate::event_loop::Exit::Error(e) => {
            log::error!("{e}");
            1
        }
    }
}
