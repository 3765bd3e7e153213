//! L2 switch networks against the real kernel: ECOs in their own namespaces, a host
//! on the far side of the device's port, econet running in the device namespace.

mod common;

use common::capture::Capture;
use common::*;
use std::time::Duration;

/// A device with one port (eth1) cabled to a host, and two container ECOs.
struct Bed {
    dev: Netns,
    host: Netns,
    eco1: Netns,
    eco2: Netns,
}

fn bed() -> Bed {
    require_root();
    let b = Bed {
        dev: Netns::new("dev"),
        host: Netns::new("host"),
        eco1: Netns::new("eco1"),
        eco2: Netns::new("eco2"),
    };
    veth(&b.dev, "eth1", &b.host, "eth0");
    b.host
        .ip(&["addr", "add", "192.168.50.1/24", "dev", "eth0"]);
    b
}

/// A switch network on eth1 with the given apps (`(id, name, attach JSON)`).
fn config(version: &str, apps: &[(&str, &str, String)]) -> String {
    let apps: Vec<String> = apps
        .iter()
        .map(|(id, name, attach)| {
            format!(
                r#"{{"id": "{id}", "name": "{name}", "interfaces": [{{"name": "eth0", "network": "n1", "attach": {attach}}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{
  "device_id": "dev-switch", "config_version": "{version}",
  "ports": [{{"name": "eth1", "ifname": "eth1", "labels": ["field"]}}],
  "networks": [{{"id": "n1", "name": "fieldbus", "type": "switch", "port": "field"}}],
  "apps": [{}]
}}"#,
        apps.join(",\n")
    )
}

fn netns_attach(ns: &Netns) -> String {
    format!(r#"{{"netns": "{}"}}"#, ns.path())
}

fn two_ecos(b: &Bed) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("a1", "web", netns_attach(&b.eco1)),
        ("a2", "db", netns_attach(&b.eco2)),
        ("a3", "plc", r#"{"tap": "vif-plc0"}"#.to_string()),
    ]
}

fn address_ecos(b: &Bed) {
    b.eco1
        .ip(&["addr", "add", "192.168.50.11/24", "dev", "eth0"]);
    b.eco2
        .ip(&["addr", "add", "192.168.50.12/24", "dev", "eth0"]);
}

#[test]
fn ecos_reach_each_other_and_the_port_side() {
    let b = bed();
    let e = Econet::start(&b.dev, &config("1", &two_ecos(&b)));
    address_ecos(&b);
    assert!(b.eco1.ping_within("192.168.50.12", 5), "ECO to ECO");
    assert!(
        b.eco1.ping_within("192.168.50.1", 5),
        "ECO to the host behind the port"
    );
    assert!(b.host.ping_within("192.168.50.12", 5), "host to ECO");
    // The port and every endpoint are members of the network's bridge.
    assert_eq!(b.dev.master_of("eth1").as_deref(), Some("ec-fieldbus"));
    assert_eq!(b.dev.master_of("vif-plc0").as_deref(), Some("ec-fieldbus"));
    let s = e.status_json();
    assert_eq!(
        json_str(&s, "networks.0.state").as_deref(),
        Some("online"),
        "{s}"
    );
    assert_eq!(
        json_str(&s, "networks.0.ports.active").as_deref(),
        Some("eth1")
    );
    for i in 0..3 {
        assert_eq!(
            json_str(&s, &format!("networks.0.endpoints.{i}.state")).as_deref(),
            Some("up"),
            "{s}"
        );
    }
    // The ECO side carries its stable MAC; the bridge has no IPv6 link-local chatter.
    let mac = json_str(&s, "networks.0.endpoints.0.mac").unwrap();
    assert!(stdout(&b.eco1.ip(&["link", "show", "eth0"])).contains(&mac));
    assert!(!stdout(&b.dev.ip(&["-6", "addr", "show", "dev", "ec-fieldbus"])).contains("inet6"));
}

/// Sends one frame from `ns` on eth0 with scapy; `frame` is a scapy expression.
fn send_frame(ns: &Netns, frame: &str) -> Vec<u8> {
    let script = format!(
        "from scapy.all import *\nimport sys\np = {frame}\nsendp(p, iface='eth0', verbose=0)\nsys.stdout.write(bytes(p).hex())\n"
    );
    let out = ns.exec(&["/usr/bin/python3", "-c", &script]);
    let hex = stdout(&out);
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn frames_pass_unchanged_vlan_tags_and_broadcast_included() {
    let b = bed();
    let _e = Econet::start(&b.dev, &config("1", &two_ecos(&b)));
    address_ecos(&b);
    assert!(b.eco1.ping_within("192.168.50.1", 5));
    let at_host = Capture::start(
        &b.host,
        "eth0",
        "udp port 9999 or (vlan and udp port 9999)",
        2,
    );
    let at_eco2 = Capture::start(
        &b.eco2,
        "eth0",
        "udp port 9999 or (vlan and udp port 9999)",
        2,
    );
    let tagged = send_frame(
        &b.eco1,
        "Ether(dst='ff:ff:ff:ff:ff:ff')/Dot1Q(vlan=42, prio=5)/IP(src='192.168.50.11', dst='192.168.50.255')/UDP(sport=4242, dport=9999)/Raw(b'econet-vlan-probe')",
    );
    let plain = send_frame(
        &b.eco1,
        "Ether(dst='ff:ff:ff:ff:ff:ff')/IP(src='192.168.50.11', dst='192.168.50.255')/UDP(sport=4243, dport=9999)/Raw(b'econet-bcast-probe')",
    );
    for (who, cap) in [("host", at_host), ("eco2", at_eco2)] {
        let frames = cap.finish(Duration::from_secs(5));
        assert!(
            frames.contains(&tagged),
            "{who} did not get the VLAN-tagged frame unchanged: {frames:02x?}"
        );
        assert!(
            frames.contains(&plain),
            "{who} did not get the broadcast frame unchanged"
        );
    }
}

#[test]
fn a_hypervisor_can_open_the_tap_and_see_traffic() {
    let b = bed();
    let _e = Econet::start(&b.dev, &config("1", &two_ecos(&b)));
    address_ecos(&b);
    // Open the tap the way QEMU does (TUNSETIFF on /dev/net/tun) and wait for a frame.
    let script = r#"
import fcntl, os, select, struct, sys, time
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'vif-plc0', 0x0002 | 0x1000))
open(sys.argv[1], 'w').write('open')
end = time.time() + 8
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r and b'econet-tap-probe' in os.read(fd, 4096):
        print('got it'); sys.exit(0)
sys.exit(1)
"#;
    let dir = TempDir::new("tap");
    let flag = dir.path.join("open");
    let mut reader = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.dev.name,
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&flag)
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || flag.exists()),
        "tap reader did not start"
    );
    let ok = wait_until(Duration::from_secs(6), || {
        send_frame(
            &b.eco1,
            "Ether(dst='ff:ff:ff:ff:ff:ff')/IP(src='192.168.50.11', dst='192.168.50.255')/UDP(dport=9998)/Raw(b'econet-tap-probe')",
        );
        matches!(reader.try_wait(), Ok(Some(s)) if s.success())
    });
    let _ = reader.kill();
    assert!(ok, "the frame never reached the tap's reader");
}

/// Link events in the device namespace during `f`.
fn kernel_events_during(dev: &Netns, f: impl FnOnce()) -> String {
    let dir = TempDir::new("mon");
    let out = dir.path.join("monitor.txt");
    let mut mon = std::process::Command::new("ip")
        .args(["-n", &dev.name, "monitor", "link", "address", "route"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    // The kernel reports some link state late (linkwatch runs up to a second after a
    // change): wait until it has been quiet for a second, then measure.
    let len = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let mut last = (len(), std::time::Instant::now());
    wait_until(Duration::from_secs(6), || {
        if len() != last.0 {
            last = (len(), std::time::Instant::now());
        }
        last.1.elapsed() > Duration::from_secs(1)
    });
    let base = len() as usize;
    f();
    std::thread::sleep(Duration::from_millis(500));
    let _ = mon.kill();
    let _ = mon.wait();
    let all = std::fs::read_to_string(&out).unwrap_or_default();
    all.get(base..).unwrap_or_default().to_string()
}

#[test]
fn reapplying_the_same_config_changes_nothing() {
    let b = bed();
    let cfg = config("1", &two_ecos(&b));
    let e = Econet::start(&b.dev, &cfg);
    let events = kernel_events_during(&b.dev, || e.reload(&cfg));
    assert_eq!(events, "", "reapply made kernel changes");
    let s = e.status_json();
    assert_eq!(json_at(&s, "last_changes").as_deref(), Some("0"), "{s}");
    // A new version string with the same content changes nothing either.
    let events = kernel_events_during(&b.dev, || e.reload(&config("2", &two_ecos(&b))));
    assert_eq!(events, "");
    assert_eq!(
        json_str(&e.status_json(), "config_version").as_deref(),
        Some("2")
    );
}

#[test]
fn adding_and_removing_an_app_touches_only_that_app() {
    let b = bed();
    let eco3 = Netns::new("eco3");
    let mut apps = two_ecos(&b);
    let e = Econet::start(&b.dev, &config("1", &apps));
    let s = e.status_json();
    let web = json_str(&s, "networks.0.endpoints.0.host_ifname").unwrap();
    let db = json_str(&s, "networks.0.endpoints.1.host_ifname").unwrap();
    let (web_idx, db_idx) = (b.dev.ifindex(&web).unwrap(), b.dev.ifindex(&db).unwrap());

    apps.push(("a4", "cam", netns_attach(&eco3)));
    e.reload(&config("2", &apps));
    assert!(
        eco3.links().contains(&"eth0".to_string()),
        "new app plumbed"
    );
    assert_eq!(b.dev.ifindex(&web), Some(web_idx), "web untouched");
    assert_eq!(b.dev.ifindex(&db), Some(db_idx), "db untouched");

    apps.remove(0);
    e.reload(&config("3", &apps));
    assert_eq!(b.dev.ifindex(&web), None, "removed app's veth is gone");
    assert!(
        !b.eco1.links().contains(&"eth0".to_string()),
        "and its far end with it"
    );
    assert_eq!(b.dev.ifindex(&db), Some(db_idx), "db untouched");
    assert!(b.dev.ifindex("vif-plc0").is_some(), "tap untouched");

    // Removing the network releases the port and removes everything econet made.
    let empty = r#"{"device_id": "dev-switch", "ports": [{"name": "eth1", "ifname": "eth1"}], "networks": [], "apps": []}"#;
    e.reload(empty);
    assert_eq!(b.dev.master_of("eth1"), None, "port released");
    let left: Vec<String> = b
        .dev
        .links()
        .into_iter()
        .filter(|l| l != "lo" && l != "eth1")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn restart_even_after_kill_9_adopts_without_cutting_traffic() {
    let b = bed();
    let mut e = Econet::start(&b.dev, &config("1", &two_ecos(&b)));
    address_ecos(&b);
    assert!(b.eco1.ping_within("192.168.50.12", 5));
    let before: Vec<Option<u32>> = b.dev.links().iter().map(|l| b.dev.ifindex(l)).collect();
    // Ping through the restart: 40 pings, 50 ms apart.
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.eco1.name,
            "ping",
            "-c",
            "40",
            "-i",
            "0.05",
            "-W",
            "1",
            "192.168.50.12",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    e.stop("KILL");
    std::thread::sleep(Duration::from_millis(300));
    e.spawn();
    let out = ping.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("40 received"), "traffic was cut: {text}");
    let after: Vec<Option<u32>> = b.dev.links().iter().map(|l| b.dev.ifindex(l)).collect();
    assert_eq!(before, after, "objects were recreated instead of adopted");
    let s = e.status_json();
    assert_eq!(json_at(&s, "total_changes").as_deref(), Some("0"), "{s}");
    // SIGTERM leaves everything in place too.
    e.stop("TERM");
    assert!(e.log().contains("exiting, kernel objects stay in place"));
    assert!(
        b.eco1.ping("192.168.50.12"),
        "traffic flows with econet stopped"
    );
}

#[test]
fn a_bad_config_is_rejected_and_the_running_one_kept() {
    let b = bed();
    let good = config("1", &two_ecos(&b));
    let e = Econet::start(&b.dev, &good);
    address_ecos(&b);
    let links = b.dev.links();
    for bad in [
        good.replacen("\"type\": \"switch\"", "\"type\": \"switchy\"", 1),
        good.replacen("\"labels\": [\"field\"]", "\"labels\": [\"field\"]}, {\"name\": \"eth2\", \"ifname\": \"eth2\", \"labels\": [\"field\"]", 1),
        good.replacen("{", "{{", 1),
        good.replacen("\"network\": \"n1\"", "\"network\": \"n9\"", 1),
        String::new(),
    ] {
        let events = kernel_events_during(&b.dev, || e.reload(&bad));
        assert_eq!(events, "", "a rejected config changed the kernel");
        let s = e.status_json();
        assert_eq!(json_str(&s, "config_version").as_deref(), Some("1"));
        let rejected = json_at(&s, "rejected.0").unwrap_or_default();
        assert!(rejected.contains("networks[0]") || rejected.contains("apps[0]") || rejected.contains("ports") || rejected.contains("(document)"), "{s}");
        assert_eq!(b.dev.links(), links);
        assert!(b.eco1.ping("192.168.50.12"));
    }
    // Two ports behind the label is named precisely.
    let two = good.replacen("\"labels\": [\"field\"]", "\"labels\": [\"field\"]}, {\"name\": \"eth2\", \"ifname\": \"eth2\", \"labels\": [\"field\"]", 1);
    e.reload(&two);
    let s = e.status_json();
    assert!(
        json_at(&s, "rejected")
            .unwrap()
            .contains("networks[0].port: a switch network takes one port"),
        "{s}"
    );
    // The good config again clears the rejection.
    e.reload(&good);
    assert_eq!(json_at(&e.status_json(), "rejected").as_deref(), Some("[]"));
}

#[test]
fn a_namespace_or_port_that_comes_back_is_replumbed() {
    let b = bed();
    let e = Econet::start(&b.dev, &config("1", &two_ecos(&b)));
    // The ECO's namespace goes away (its veth with it) and comes back.
    let path = b.eco1.path();
    run(&["ip", "netns", "del", &b.eco1.name]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &e.status_json(),
        "networks.0.endpoints.0.state"
    )
    .as_deref()
        == Some("waiting")));
    run(&["ip", "netns", "add", &b.eco1.name]);
    assert!(
        wait_until(Duration::from_secs(10), || b
            .eco1
            .links()
            .contains(&"eth0".to_string())),
        "ECO namespace not re-plumbed; log:\n{}",
        e.log()
    );
    assert_eq!(path, b.eco1.path());
    // The port disappears and comes back (a USB NIC replugged).
    run(&["ip", "-n", &b.dev.name, "link", "del", "eth1"]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &e.status_json(),
        "networks.0.state"
    )
    .as_deref()
        == Some("error")));
    let s = e.status_json();
    assert!(
        json_at(&s, "networks.0.errors")
            .unwrap()
            .contains("port eth1 (interface eth1) is not present"),
        "{s}"
    );
    veth(&b.dev, "eth1", &b.host, "eth0");
    assert!(
        wait_until(Duration::from_secs(5), || b
            .dev
            .master_of("eth1")
            .as_deref()
            == Some("ec-fieldbus")),
        "port not re-enslaved"
    );
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &e.status_json(),
        "networks.0.state"
    )
    .as_deref()
        == Some("online")));
}
