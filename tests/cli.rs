//! The command line: exit codes and messages of `check`, `--version`, `--help`,
//! `status` with nobody listening, bad flags, and `demo` run to the end.

mod common;

use common::{TempDir, ECONET};
use std::process::Command;

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

#[test]
fn check_accepts_every_example_and_rejects_with_paths() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/board/examples"));
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let (code, out, err) = econet(&["check", p.to_str().unwrap()]);
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
    for cmd in ["run", "check", "status", "demo"] {
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
