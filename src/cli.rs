//! Command-line parsing and dispatch. Hand-rolled: the grammar is small and every
//! dependency costs flash on the boards.

use std::path::PathBuf;

pub const USAGE: &str = "\
econet: networks for edge containers

USAGE:
    econet run [--config FILE | --controller URL --ca FILE --cert FILE --key FILE]
               [--poll-interval SECS] [--state-dir DIR] [--board NAME] [--log-level LEVEL]
    econet check FILE
    econet status [--json | --dot] [--state-dir DIR | --socket PATH] [--board NAME]
    econet demo
    econet --version
    econet --help

COMMANDS:
    run      Make the kernel match the device config and keep it so; serve DHCP,
             DNS, VPN and mesh. Reads --config FILE (SIGHUP rereads it) or polls
             --controller URL. Leaves kernel objects in place on exit.
    check    Validate a config file; print every error with its JSON path.
    status   Show what the running econet reports (--json: the status document).
    demo     Build a sandbox of network namespaces and show econet at work.

OPTIONS:
    --state-dir DIR    Where leases, the last good config and the control socket
                       live (default: the board's, else /var/lib/econet).
    --board NAME       A board profile (built in, or a path to a JSON profile)
                       that supplies defaults; explicit flags override it.
    --log-level LEVEL  error, warn, info, debug or trace (default: the board's, else info).
";

pub const DEFAULT_STATE_DIR: &str = "/var/lib/econet";

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
    pub log_level: Option<log::LevelFilter>,
    pub json: bool,
    pub dot: bool,
    pub positional: Vec<String>,
}

/// Parses the arguments after the command name.
pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--config" => o.config = Some(val(a)?.into()),
            "--controller" => o.controller = Some(val(a)?),
            "--ca" => o.ca = Some(val(a)?.into()),
            "--cert" => o.cert = Some(val(a)?.into()),
            "--key" => o.key = Some(val(a)?.into()),
            "--poll-interval" => {
                let v = val(a)?;
                o.poll_interval =
                    Some(v.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                        format!("--poll-interval: {v:?} is not a positive number")
                    })?);
            }
            "--state-dir" => o.state_dir = Some(val(a)?.into()),
            "--socket" => o.socket = Some(val(a)?.into()),
            "--board" => o.board = Some(val(a)?),
            "--log-level" => {
                let v = val(a)?;
                o.log_level = Some(
                    v.parse()
                        .map_err(|_| format!("--log-level: unknown level {v:?}"))?,
                );
            }
            "--json" => o.json = true,
            "--dot" => o.dot = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
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
            1
        }
    }
}
