//! The test bed: uniquely named network namespaces and temporary directories that
//! are always removed (also when a test fails), the real econet binary started inside
//! a "device" namespace, and small observers built on `ip`, `ping` and the status
//! document. Every wait is bounded in time.
#![allow(dead_code)]

pub mod acl;
pub mod capture;
pub mod clients;
pub mod nat;
pub mod strongswan;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const ECONET: &str = env!("CARGO_BIN_EXE_econet");

static SEQ: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// Prefix of every namespace the tests make: `ect<pid>-`.
fn prefix() -> String {
    format!("ect{}-", std::process::id())
}

/// Removes namespaces left by earlier test runs whose process is gone (a run killed
/// before its destructors ran).
fn sweep_stale() {
    SWEEP.call_once(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let Some(rest) = name.strip_prefix("ect") else {
                continue;
            };
            let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    });
}

pub fn require_root() {
    assert!(
        nix_is_root(),
        "integration tests need root (they create network namespaces): run tests/run as root"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, returning its output; panics with the output if it fails.
pub fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command and returns whether it succeeded (no panic).
pub fn try_run(cmd: &[&str]) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        sweep_stale();
        let name = format!("{}{}-{tag}", prefix(), SEQ.fetch_add(1, Ordering::SeqCst));
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        // No IPv6 addresses on test links: their late duplicate address detection
        // would show up as kernel events in tests that watch for none.
        run(&[
            "ip", "netns", "exec", &name, "sh", "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
        ]);
        Netns { name }
    }

    /// The namespace's path, as an ECO's `attach.netns`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip netns exec NAME cmd…`, panicking on failure.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(cmd);
        run(&v)
    }

    pub fn try_exec(&self, cmd: &[&str]) -> bool {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(cmd);
        try_run(&v)
    }

    /// `ip -n NAME args…`
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// One ping to `addr`, with a one second wait.
    pub fn ping(&self, addr: &str) -> bool {
        self.try_exec(&["ping", "-c", "1", "-W", "1", addr])
    }

    /// Pings until one answers, for at most `secs` seconds.
    pub fn ping_within(&self, addr: &str, secs: u64) -> bool {
        wait_until(Duration::from_secs(secs), || self.ping(addr))
    }

    /// The index of interface `name` in this namespace, if it exists.
    pub fn ifindex(&self, name: &str) -> Option<u32> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", "dev", name])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        stdout(&out).split(':').next()?.trim().parse().ok()
    }

    /// The master of interface `name` (`ip -o link` "master X").
    pub fn master_of(&self, name: &str) -> Option<String> {
        let out = self.ip(&["-o", "link", "show", "dev", name]);
        let s = stdout(&out);
        let mut it = s.split_whitespace();
        while let Some(w) = it.next() {
            if w == "master" {
                return it.next().map(str::to_string);
            }
        }
        None
    }

    /// Names of all links in the namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.ip(&["-o", "link", "show"]);
        stdout(&out)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes left inside (dhcp clients, tcpdump) would keep it alive.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A veth pair: `a_name` in `a`, `b_name` in `b`, both up.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    run(&[
        "ip", "-n", &a.name, "link", "add", a_name, "type", "veth", "peer", "name", b_name,
        "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_name, "up"]);
    b.ip(&["link", "set", b_name, "up"]);
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "{}{}-{tag}",
            prefix(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `econet run` inside a device namespace; killed on drop.
pub struct Econet {
    pub dev: String,
    pub dir: TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    /// `run` arguments instead of `--config FILE` (e.g. a controller).
    source_args: Option<Vec<String>>,
}

impl Econet {
    /// Writes `config` and starts econet in `dev`, waiting until it has applied it.
    pub fn start(dev: &Netns, config: &str) -> Econet {
        let dir = TempDir::new("state");
        let cfg = dir.path.join("device.json");
        std::fs::write(&cfg, config).unwrap();
        let mut e = Econet {
            dev: dev.name.clone(),
            dir,
            config: cfg,
            child: None,
            source_args: None,
        };
        e.spawn();
        e
    }

    /// Starts econet in `dev` with `args` as its config source (no waiting for a
    /// config to be applied: there may be none yet).
    pub fn start_args(dev: &Netns, args: &[String]) -> Econet {
        let dir = TempDir::new("state");
        let mut e = Econet {
            dev: dev.name.clone(),
            config: dir.path.join("unused.json"),
            dir,
            child: None,
            source_args: Some(args.to_vec()),
        };
        e.spawn_only();
        assert!(
            wait_until(Duration::from_secs(10), || e.try_status_json().is_some()),
            "econet did not answer within 10 s; log:\n{}",
            e.log()
        );
        e
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path.join("state")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path.join("econet.log")
    }

    /// Starts the process (again) with the same config and state, and waits until it
    /// has applied its config.
    pub fn spawn(&mut self) {
        self.spawn_only();
        assert!(
            wait_until(Duration::from_secs(10), || self
                .try_status_json()
                .is_some_and(|s| s.contains("\"applied\":true"))),
            "econet did not apply its config within 10 s; log:\n{}",
            self.log()
        );
    }

    /// Starts the process (again) with the same source and state.
    pub fn spawn_only(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let source: Vec<String> = match &self.source_args {
            Some(a) => a.clone(),
            None => vec![
                "--config".into(),
                self.config.to_string_lossy().into_owned(),
            ],
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &self.dev, ECONET, "run"])
            .args(&source)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--log-level", "debug"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start econet");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `econet status --json`, if econet answers.
    pub fn try_status_json(&self) -> Option<String> {
        let out = Command::new(ECONET)
            .args(["status", "--json", "--state-dir"])
            .arg(self.state_dir())
            .output()
            .ok()?;
        out.status.success().then(|| stdout(&out))
    }

    pub fn status_json(&self) -> String {
        self.try_status_json()
            .unwrap_or_else(|| panic!("econet does not answer; log:\n{}", self.log()))
    }

    /// Stops econet with SIGKILL and starts it again with the same config and state.
    pub fn restart_hard(&mut self) {
        self.stop("KILL");
        self.spawn();
    }

    pub fn status_text(&self) -> String {
        let out = run(&[
            ECONET,
            "status",
            "--state-dir",
            self.state_dir().to_str().unwrap(),
        ]);
        stdout(&out)
    }

    /// Writes a new config and sends SIGHUP; waits until econet has reconciled.
    pub fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).unwrap();
        self.hup();
    }

    /// SIGHUP, then waits for the reconcile pass it causes.
    pub fn hup(&self) {
        let before = self.log().matches("SIGHUP").count();
        self.signal("HUP");
        assert!(
            wait_until(Duration::from_secs(5), || self
                .log()
                .matches("SIGHUP")
                .count()
                > before),
            "econet did not see SIGHUP"
        );
        // The reload and its reconcile happen in the same loop turn; a status reply
        // comes after both.
        self.status_json();
        std::thread::sleep(Duration::from_millis(200));
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            // The child is `ip netns exec`, which execs econet: same pid.
            run(&["kill", &format!("-{sig}"), &pid.to_string()]);
        }
    }

    /// Stops econet (SIGTERM or SIGKILL) and waits for it to exit.
    pub fn stop(&mut self, sig: &str) {
        self.signal(sig);
        if let Some(mut c) = self.child.take() {
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Econet {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value at a dotted path (`networks.0.state`) of a JSON document, as JSON text
/// (strings keep their quotes). Uses econet's own scanner.
pub fn json_at(doc: &str, path: &str) -> Option<String> {
    use econet::config::json;
    let b = doc.trim().as_bytes();
    json::check_syntax(b).ok()?;
    let mut span = 0..b.len();
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        span = match seg.parse::<usize>() {
            Ok(i) => json::elements(b, &span).into_iter().nth(i)?,
            Err(_) => {
                json::members(b, &span)
                    .into_iter()
                    .find(|(k, _)| k == seg)?
                    .1
            }
        };
    }
    Some(String::from_utf8_lossy(&b[span]).into_owned())
}

/// The string at `path`, unquoted.
pub fn json_str(doc: &str, path: &str) -> Option<String> {
    let v = json_at(doc, path)?;
    econet::config::json::unescape(v.strip_prefix('"')?.strip_suffix('"')?.as_bytes())
}
