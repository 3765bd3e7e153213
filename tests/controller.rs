//! The controller client against a test controller over real TLS (Python's ssl with
//! client-certificate authentication, certificates made by the test), in a test
//! namespace cabled to the device's port.

mod common;

use common::clients::*;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools");

struct Bed {
    dev: Netns,
    ctl: Netns,
    eco: Netns,
    certs: TempDir,
    site: TempDir,
    server: Option<Proc>,
}

impl Bed {
    fn new() -> Bed {
        require_root();
        let b = Bed {
            dev: Netns::new("dev"),
            ctl: Netns::new("ctl"),
            eco: Netns::new("eco"),
            certs: TempDir::new("certs"),
            site: TempDir::new("site"),
            server: None,
        };
        veth(&b.dev, "eth0", &b.ctl, "eth0");
        b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        b.ctl.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
        run(&[
            "/usr/bin/python3",
            &format!("{TOOLS}/certs.py"),
            b.certs.path.to_str().unwrap(),
            "192.0.2.1",
        ]);
        b
    }

    fn cert(&self, name: &str) -> String {
        self.certs.path.join(name).to_string_lossy().into_owned()
    }

    /// (Re)starts the controller with the server certificate `server` (base name).
    fn serve(&mut self, server: &str) {
        self.server = None;
        let _ = std::fs::remove_file(self.site.path.join("ready"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ctl.name,
                "/usr/bin/python3",
                &format!("{TOOLS}/controller.py"),
            ])
            .arg(&self.site.path)
            .args(["192.0.2.1", "8443"])
            .args([
                self.cert(&format!("{server}.pem")),
                self.cert(&format!("{server}.key")),
                self.cert("ca.pem"),
            ])
            .arg("120")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(Proc(child));
        assert!(
            wait_until(Duration::from_secs(5), || self
                .site
                .path
                .join("ready")
                .exists()),
            "controller did not start"
        );
    }

    fn stop_server(&mut self) {
        self.server = None;
    }

    fn put(&self, file: &str, content: &str) {
        std::fs::write(self.site.path.join(file), content).unwrap();
    }

    fn clear(&self, file: &str) {
        let _ = std::fs::remove_file(self.site.path.join(file));
    }

    fn file(&self, f: &str) -> String {
        std::fs::read_to_string(self.site.path.join(f)).unwrap_or_default()
    }

    /// Publishes config version `v` (with ETag "v<v>").
    fn publish(&self, v: u32, extra_app: bool) {
        self.put("config.json", &self.config(v, extra_app, "device-42"));
        self.put("etag", &format!("\"v{v}\""));
    }

    fn config(&self, v: u32, extra_app: bool, device: &str) -> String {
        let extra = if extra_app {
            r#", {"id": "a2", "name": "extra", "interfaces": [{"name": "eth0", "network": "n1", "attach": {"tap": "vif-extra"}}]}"#
        } else {
            ""
        };
        format!(
            r#"{{"device_id": "{device}", "config_version": "{v}", "ports": [{{"name": "eth0", "ifname": "eth0"}}],
  "networks": [{{"id": "n1", "name": "lan", "type": "local", "ip": {{"subnet": "10.1.0.0/24"}}}},
               {{"id": "n2", "name": "vpc", "type": "cloud", "port": "eth0",
                 "ip": {{"subnet": "10.3.0.0/24"}},
                 "vpn": {{"remote": "192.0.2.1", "local_id": "d", "remote_id": "g",
                         "auth": {{"psk": "sekrit-psk-never-shown"}}, "remote_subnets": ["172.31.0.0/16"]}}}}],
  "apps": [{{"id": "a1", "name": "web", "interfaces": [{{"name": "eth0", "network": "n1", "attach": {{"netns": "{}"}}}}]}}{extra}]}}"#,
            self.eco.path()
        )
    }

    fn args(&self, cert: &str) -> Vec<String> {
        vec![
            "--controller".into(),
            "https://192.0.2.1:8443".into(),
            "--ca".into(),
            self.cert("ca.pem"),
            "--cert".into(),
            self.cert(&format!("{cert}.pem")),
            "--key".into(),
            self.cert(&format!("{cert}.key")),
            "--poll-interval".into(),
            "1".into(),
            "--device-id".into(),
            "device-42".into(),
        ]
    }
}

fn version(e: &Econet) -> Option<String> {
    json_str(&e.status_json(), "config_version")
}

#[test]
fn first_fetch_then_not_modified_then_a_change_and_status_posts() {
    let mut b = Bed::new();
    b.publish(1, false);
    b.serve("server");
    let e = Econet::start_args(&b.dev, &b.args("device"));
    assert!(
        wait_until(Duration::from_secs(10), || version(&e).as_deref()
            == Some("1")),
        "{}",
        e.log()
    );
    assert!(
        b.eco.links().contains(&"eth0".to_string()),
        "config applied"
    );
    // Unchanged: the next polls carry the ETag and get 304s.
    assert!(wait_until(Duration::from_secs(5), || b
        .file("requests.log")
        .contains("inm=\"v1\"")));
    assert!(wait_until(Duration::from_secs(5), || json_at(
        &e.status_json(),
        "poll_ms"
    )
    .is_some()));
    // Status reaches the controller, with the applied config.
    assert!(wait_until(Duration::from_secs(5), || b
        .file("info.log")
        .contains("\"config_version\":\"1\"")));
    let info = b.file("info.log");
    assert!(
        info.contains("\"device_id\":\"device-42\"") && info.contains("\"applied\":true"),
        "{info}"
    );
    // A change is applied.
    b.publish(2, true);
    assert!(wait_until(Duration::from_secs(5), || version(&e)
        .as_deref()
        == Some("2")));
    assert!(wait_until(Duration::from_secs(5), || b
        .dev
        .ifindex("vif-extra")
        .is_some()));
    assert!(wait_until(Duration::from_secs(5), || b
        .file("info.log")
        .contains("\"config_version\":\"2\"")));
    // Secrets never appear in status, in what is posted, or in the log.
    for text in [e.status_json(), b.file("info.log"), e.log()] {
        assert!(
            !text.contains("sekrit-psk-never-shown"),
            "a secret leaked: {text}"
        );
    }
    // The last good config is kept with mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(e.state_dir().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn every_bad_reply_is_rejected_and_the_running_config_stays() {
    let mut b = Bed::new();
    b.publish(1, false);
    b.serve("server");
    let e = Econet::start_args(&b.dev, &b.args("device"));
    assert!(
        wait_until(Duration::from_secs(10), || version(&e).as_deref()
            == Some("1")),
        "{}",
        e.log()
    );
    let links = b.dev.links();
    let huge = format!(
        "{{\"device_id\": \"device-42\", \"x\": \"{}\"}}",
        "x".repeat(1 << 20)
    );
    let wrong_device = b.config(3, true, "device-99");
    let invalid = b
        .config(3, true, "device-42")
        .replace("10.1.0.0/24", "10.1.0.0/33");
    type Setup = Box<dyn Fn(&Bed)>;
    let cases: Vec<(&str, Setup)> = vec![
        (
            "invalid JSON",
            Box::new(|b: &Bed| b.put("config.json", "{\"device_id\": \"device-42\",")),
        ),
        (
            "failed validation",
            Box::new(move |b: &Bed| b.put("config.json", &invalid)),
        ),
        (
            "another device",
            Box::new(move |b: &Bed| b.put("config.json", &wrong_device)),
        ),
        (
            "too large",
            Box::new(move |b: &Bed| b.put("config.json", &huge)),
        ),
        (
            "truncated",
            Box::new(|b: &Bed| {
                b.publish(3, true);
                b.put("truncate", "1");
            }),
        ),
        (
            "wrong content type",
            Box::new(|b: &Bed| {
                b.publish(3, true);
                b.put("ctype", "text/html");
            }),
        ),
        (
            "HTTP 500",
            Box::new(|b: &Bed| {
                b.publish(3, true);
                b.put("status", "500");
            }),
        ),
        (
            "HTTP 404",
            Box::new(|b: &Bed| {
                b.publish(3, true);
                b.put("status", "404");
            }),
        ),
    ];
    let mut n = 0;
    for (what, make) in cases {
        n += 1;
        for f in ["truncate", "ctype", "status"] {
            b.clear(f);
        }
        make(&b);
        b.put("etag", &format!("\"bad{n}\""));
        let before = e.log().len();
        // Poll at once (failures back the client off for longer and longer).
        e.signal("HUP");
        // Each bad reply shows up as a rejection or a failed poll, and changes nothing.
        assert!(
            wait_until(Duration::from_secs(8), || {
                let l = e.log();
                let new = &l[before.min(l.len())..];
                new.contains("config rejected") || new.contains("controller:")
            }),
            "{what}: no rejection seen; log:\n{}",
            e.log()
        );
        assert_eq!(
            version(&e).as_deref(),
            Some("1"),
            "{what}: the running config changed"
        );
        assert_eq!(b.dev.links(), links, "{what}: the kernel changed");
    }
    let s = e.status_json();
    assert!(
        json_at(&s, "controller_error").is_some_and(|x| x.contains("HTTP 404")),
        "{s}"
    );
    // And a good config after all that is taken.
    for f in ["truncate", "ctype", "status"] {
        b.clear(f);
    }
    b.publish(4, false);
    e.signal("HUP");
    assert!(wait_until(Duration::from_secs(8), || version(&e)
        .as_deref()
        == Some("4")));
    assert_eq!(json_at(&e.status_json(), "rejected").as_deref(), Some("[]"));
}

#[test]
fn tls_is_checked_both_ways() {
    let mut b = Bed::new();
    b.publish(1, false);
    // A controller whose certificate another CA signed, then an expired one: refused.
    for (server, expect) in [
        ("server-other-ca", "UnknownIssuer"),
        ("server-expired", "certificate expired"),
    ] {
        b.serve(server);
        let e = Econet::start_args(&b.dev, &b.args("device"));
        assert!(
            wait_until(Duration::from_secs(8), || json_at(
                &e.status_json(),
                "controller_error"
            )
            .is_some_and(|x| x.contains(expect))),
            "{server}: {}",
            e.status_json()
        );
        assert_eq!(
            json_at(&e.status_json(), "applied").as_deref(),
            Some("false")
        );
    }
    // A device whose certificate the controller's CA did not sign: refused by the
    // controller (a client certificate is required).
    b.serve("server");
    let e = Econet::start_args(&b.dev, &b.args("device-other-ca"));
    assert!(
        wait_until(Duration::from_secs(8), || json_at(
            &e.status_json(),
            "controller_error"
        )
        .is_some()),
        "{}",
        e.status_json()
    );
    assert!(
        version(&e).unwrap_or_default().is_empty(),
        "no config from a controller that refused us"
    );
    assert!(
        !b.file("requests.log").contains("GET /config"),
        "the controller served a device without a valid certificate"
    );
}

#[test]
fn boots_from_the_persisted_config_with_the_controller_down() {
    let mut b = Bed::new();
    b.publish(1, false);
    b.serve("server");
    let mut e = Econet::start_args(&b.dev, &b.args("device"));
    assert!(wait_until(Duration::from_secs(10), || version(&e)
        .as_deref()
        == Some("1")));
    e.stop("TERM");
    b.stop_server();
    // The ECO's namespace comes back empty: econet must plumb it from the saved config.
    run(&["ip", "netns", "del", &b.eco.name]);
    run(&["ip", "netns", "add", &b.eco.name]);
    e.spawn_only();
    assert!(
        wait_until(Duration::from_secs(10), || e
            .try_status_json()
            .is_some_and(|s| s.contains("\"applied\":true"))),
        "{}",
        e.log()
    );
    assert_eq!(version(&e).as_deref(), Some("1"));
    assert!(wait_until(Duration::from_secs(5), || b
        .eco
        .links()
        .contains(&"eth0".to_string())));
    assert!(wait_until(Duration::from_secs(8), || json_at(
        &e.status_json(),
        "controller_error"
    )
    .is_some()));
}

#[test]
fn a_slow_controller_does_not_hold_up_dhcp() {
    let mut b = Bed::new();
    b.publish(1, false);
    b.serve("server");
    let e = Econet::start_args(&b.dev, &b.args("device"));
    assert!(wait_until(Duration::from_secs(10), || version(&e)
        .as_deref()
        == Some("1")));
    // The controller now takes 6 s to answer; poll it at once (SIGHUP).
    b.put("delay", "6");
    b.put("etag", "\"slow\"");
    e.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile an ECO gets its lease (udhcpc gives up after 5 tries a second apart).
    let c = ClientDir::new();
    let t = std::time::Instant::now();
    let a = udhcpc(&b.eco, &c, "web");
    let took = t.elapsed();
    assert!(a.is_some(), "no lease while the controller was slow");
    let s = e.status_json();
    eprintln!(
        "lease while the controller was slow: {took:?}; loop_worst_ms {}",
        json_at(&s, "loop_worst_ms").unwrap_or_default()
    );
}
