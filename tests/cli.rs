//! The command line: exit codes and messages of `check`, `--version`, `--help`,
//! `status` with nobody listening, bad flags, and `demo` run to the end.

mod common;

use common::{json_at, require_root, wait_until, Netns, Proc, TempDir, ECONET};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::Duration;

fn econet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(ECONET).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/board/examples/spec-device.json"
);
const MS_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/board/examples/map-server.json"
);

#[test]
fn check_accepts_every_example_and_rejects_with_paths() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/board/examples"));
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            // Map server configs (`map-server*.json`) have their own check.
            let ms = p
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("map-server"));
            let cmd: &[&str] = if ms {
                &["map-server", "check"]
            } else {
                &["check"]
            };
            let (code, out, err) = econet(&[cmd, &[p.to_str().unwrap()]].concat());
            assert_eq!(code, 0, "{}: {out}{err}", p.display());
            n += 1;
        }
    }
    assert!(n >= 1);
    let t = TempDir::new("check");
    let bad = t.path.join("bad.json");
    let doc = std::fs::read_to_string(SPEC).unwrap().replacen(
        r#""subnet": "10.3.0.0/24", "dhcp_range": {"start": "10.3.0.100", "end": "10.3.0.200"}"#,
        r#""subnet": "10.1.0.0/23", "dhcp_range": {"start": "10.1.1.100", "end": "10.1.1.200"}"#,
        1,
    );
    std::fs::write(&bad, doc).unwrap();
    let (code, _, err) = econet(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("networks[2].ip.subnet: overlaps networks[0] (10.1.0.0/24)"),
        "{err}"
    );
    assert!(err.contains("rejected"), "{err}");
    let (code, _, err) = econet(&["check", "/nonexistent/x.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open"), "{err}");
    let (code, _, _) = econet(&["check"]);
    assert_eq!(code, 2);
}

#[test]
fn version_help_and_usage_errors() {
    let (code, out, _) = econet(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("econet "), "{out}");
    let (code, out, _) = econet(&["--help"]);
    assert_eq!(code, 0);
    for cmd in [
        "run",
        "check",
        "status",
        "demo",
        "map-server check",
        "map-server status",
    ] {
        assert!(out.contains(&format!("econet {cmd}")), "help lacks {cmd}");
    }
    let (code, _, err) = econet(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown command"));
    let (code, _, err) = econet(&["run", "--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option --bogus"));
    let (code, _, err) = econet(&["run", "--config", "a.json", "--controller", "https://x"]);
    assert_eq!(code, 2);
    assert!(err.contains("not both"), "{err}");
    let (code, _, err) = econet(&["run", "--board", "no-such-board", "--config", "a.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown board"), "{err}");
}

#[test]
fn status_without_a_daemon_says_so() {
    let t = TempDir::new("nostatus");
    let (code, _, err) = econet(&["status", "--state-dir", t.path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach econet"), "{err}");
}

/// `econet demo`, the README's first command, runs to the end: the switch, local,
/// cloud and mesh steps succeed, and the sandbox is gone afterwards.
#[test]
fn the_demo_runs_and_cleans_up() {
    let child = Command::new(ECONET)
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("econet-demo-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo failed:\n{text}");
    for want in [
        "leased 10.1.0.",
        "Name:\tscada.eco.internal",
        "no answer: ECOs reach the device only for DHCP and DNS",
        "2 packets transmitted, 2 packets received, 0% packet loss",
        "vpn established to 192.0.2.1 via eth0",
        "eth2: leased 10.200.1.",
        "eth0: leased 10.200.2.",
        "2 registered EIDs (auth failures 0, refused 0)",
        "mesh registered  rloc 192.0.2.2",
        "mesh registered  rloc 198.51.100.2",
        "sandbox removed",
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&ns.stdout).into_owned();
    assert!(!left.contains(&prefix), "demo left namespaces:\n{left}");
}

/// `econet map-server check FILE`: ok with a summary, or every error with its JSON
/// path and exit 1; each check points at the other when given the other's config.
#[test]
fn map_server_check_names_the_json_path() {
    let (code, out, err) = econet(&["map-server", "check", MS_EXAMPLE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok (listen 198.51.100.1, 2 sites, 2 EID prefixes)"),
        "{out}"
    );
    let t = TempDir::new("mscheck");
    let bad = t.path.join("ms.json");
    let doc = std::fs::read_to_string(MS_EXAMPLE)
        .unwrap()
        .replacen("\"198.51.100.1\"", "\"198.51.100\"", 1)
        .replacen("\"10.200.2.0/24\"", "\"10.200.2.1/24\"", 1)
        .replacen("\"name\": \"plant-b\"", "\"name\": \"plant-a\"", 1)
        .replacen("\"key\": \"change-me-plant-a\", ", "", 1);
    std::fs::write(&bad, doc).unwrap();
    let (code, out, err) = econet(&["map-server", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    for want in [
        "listen: \"198.51.100\" is not an IPv4 address",
        "sites[0].key: is required",
        "sites[1].eid_prefixes[0]: \"10.200.2.1/24\": has host bits set",
        "rejected (3 errors)",
    ] {
        assert!(err.contains(want), "lacks {want:?}:\n{err}");
    }
    // A duplicate name is reported once the site is otherwise valid.
    let dup = std::fs::read_to_string(MS_EXAMPLE).unwrap().replacen(
        "\"name\": \"plant-b\"",
        "\"name\": \"plant-a\"",
        1,
    );
    std::fs::write(&bad, dup).unwrap();
    let (code, _, err) = econet(&["map-server", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("sites[1].name: duplicate site name \"plant-a\""),
        "{err}"
    );
    let (code, _, err) = econet(&["map-server", "check", "/nonexistent/ms.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ms.json: cannot open"), "{err}");
    // The other daemon's config: rejected, with a pointer to the right check.
    let (code, _, err) = econet(&["map-server", "check", SPEC]);
    assert_eq!(code, 1);
    assert!(err.contains("this is a device config"), "{err}");
    let (code, _, err) = econet(&["check", MS_EXAMPLE]);
    assert_eq!(code, 1);
    assert!(err.contains("econet map-server check"), "{err}");
    let (code, _, _) = econet(&["map-server", "check"]);
    assert_eq!(code, 2);
    let (code, _, err) = econet(&["map-server", "frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unexpected argument \"frobnicate\""), "{err}");
    // Each board profile belongs to its command.
    let (code, _, err) = econet(&["run", "--board", "map-server-x86_64"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is a profile for `econet map-server --board map-server-x86_64`"),
        "{err}"
    );
    let (code, _, err) = econet(&["map-server", "--board", "generic-x86_64"]);
    assert_eq!(code, 2);
    assert!(err.contains("`econet run --board generic-x86_64`"), "{err}");
    let (code, _, err) = econet(&[
        "map-server",
        "status",
        "--state-dir",
        t.path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the map server"), "{err}");
}

const MS_KEY_A: &str = "key-a";

fn ms_config(second: &str) -> String {
    format!(
        r#"{{"listen": "127.0.0.1", "registration_timeout_secs": 600,
 "sites": [{{"name": "a", "key": "{MS_KEY_A}", "instance_id": 1000, "eid_prefixes": ["10.200.1.0/24"]}},
           {{"name": "{second}", "key": "key-b", "instance_id": 1000, "eid_prefixes": ["10.200.2.0/24"]}}]}}"#
    )
}

/// A Map-Register of `eid`/32, signed with `key`.
fn map_register(eid: Ipv4Addr, key: &str) -> Vec<u8> {
    use econet::wire::lisp::{
        control::action, Address, AuthAlg, Eid, Locator, MapRegister, Record,
    };
    let reg = MapRegister {
        proxy_reply: false,
        want_notify: false,
        use_ttl: false,
        nonce: 7,
        key_id: 0,
        alg: AuthAlg::HmacSha256,
        records: vec![Record {
            ttl: 10,
            eid: Eid::new(1000, format!("{eid}/32").parse().unwrap()),
            action: action::NO_ACTION,
            authoritative: true,
            map_version: 0,
            locators: vec![Locator {
                priority: 1,
                weight: 100,
                m_priority: 255,
                m_weight: 0,
                local: true,
                probed: false,
                reachable: true,
                address: Address::Ipv4(Ipv4Addr::new(127, 0, 0, 1)),
            }],
        }],
        xtr_id: None,
    };
    let mut buf = vec![0u8; 512];
    let n = reg.emit_register(&mut buf, key.as_bytes()).unwrap();
    buf.truncate(n);
    buf
}

/// Sends datagrams to the map server on 127.0.0.1:4342 inside `ns`.
fn send_in(ns: &Netns, msgs: Vec<Vec<u8>>) {
    let path = ns.path();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for m in msgs {
            s.send_to(&m, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4342))
                .unwrap();
        }
    })
    .join()
    .unwrap();
}

/// `econet map-server status`: per site, the registered EIDs, registrations
/// accepted, auth failures and churn, in JSON and text; a SIGHUP reload keeps the
/// counts of the sites it keeps.
#[test]
fn map_server_status_counts_per_site() {
    require_root();
    let ns = Netns::new("ms-status");
    let t = TempDir::new("ms-status");
    let cfg = t.path.join("ms.json");
    let state = t.path.join("state");
    std::fs::write(&cfg, ms_config("b")).unwrap();
    let log = std::fs::File::create(t.path.join("ms.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, ECONET, "map-server", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let ms = Proc(child);
    let status = |json: bool| {
        let mut args = vec![
            "map-server",
            "status",
            "--state-dir",
            state.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        let (code, out, err) = econet(&args);
        (code == 0).then_some(out).ok_or(err)
    };
    let ms_log = || std::fs::read_to_string(t.path.join("ms.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || status(true).is_ok()),
        "map server did not start:\n{}",
        ms_log()
    );
    send_in(
        &ns,
        vec![
            map_register(Ipv4Addr::new(10, 200, 1, 1), MS_KEY_A),
            map_register(Ipv4Addr::new(10, 200, 1, 2), MS_KEY_A),
            map_register(Ipv4Addr::new(10, 200, 1, 1), MS_KEY_A),
            map_register(Ipv4Addr::new(10, 200, 2, 1), "guessed"),
        ],
    );
    let at = |doc: &str, p: &str| json_at(doc, p).unwrap_or_default();
    let mut doc = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            doc = status(true).unwrap_or_default();
            at(&doc, "sites.1.auth_failures.total") == "1" && at(&doc, "sites.0.registers") == "3"
        }),
        "{doc}\n{}",
        ms_log()
    );
    for (p, want) in [
        ("sites.0.name", "\"a\""),
        ("sites.0.registered", "2"),
        ("sites.0.auth_failures.total", "0"),
        ("sites.0.churn.recent.new", "2"),
        ("sites.0.churn.recent.changed", "0"),
        ("sites.0.churn.per_min", "2.0"),
        ("sites.0.churn.window_secs", "60"),
        ("sites.1.name", "\"b\""),
        ("sites.1.registered", "0"),
        ("sites.1.auth_failures.bad_mac", "1"),
        ("sites.1.auth_failures.unknown_algorithm", "0"),
        ("counters.auth_failures", "1"),
    ] {
        assert_eq!(at(&doc, p), want, "{p} in {doc}");
    }
    let text = status(false).unwrap();
    for want in [
        "2 registered EIDs (auth failures 1, refused 0)",
        "site a: 2 EIDs, 3 registers accepted, 0 refused, 0 auth failures",
        "site b: 0 EIDs, 0 registers accepted, 0 refused, 1 auth failures (1 bad MAC, 0 unknown algorithm)",
        "churn 2.0/min, 0.0 expired/min over the last 60 s (new 2, changed 0, withdrawn 0, expired 0)",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }

    // Reload: b renamed c. a keeps its registrations and counts, c starts at zero.
    std::fs::write(&cfg, ms_config("c")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &ms.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        wait_until(Duration::from_secs(5), || {
            doc = status(true).unwrap_or_default();
            at(&doc, "sites.1.name") == "\"c\""
        }),
        "{doc}\n{}",
        ms_log()
    );
    assert_eq!(at(&doc, "sites.0.registers"), "3", "{doc}");
    assert_eq!(at(&doc, "sites.0.registered"), "2", "{doc}");
    assert_eq!(at(&doc, "sites.1.auth_failures.total"), "0", "{doc}");
    assert_eq!(at(&doc, "counters.auth_failures"), "1", "{doc}");
}
