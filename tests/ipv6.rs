//! IPv6 on local networks against real clients: ISC dhclient and dhcpcd get their
//! DHCPv6 address and keep it across an econet restart (kill -9) and an app
//! redeploy; a Linux host configures itself by SLAAC from econet's router
//! advertisements; tshark's `icmpv6` and `dhcpv6` dissectors read our packets clean.

mod common;

use common::capture::Capture;
use common::*;
use std::net::Ipv6Addr;
use std::process::Command;
use std::time::Duration;

/// The device's port eth0 to `up` (IPv4 only: no IPv6 uplink, so IPv6 stays on the
/// networks). Networks: `lan6` (DHCPv6, domain eco6.internal) and `auto6` (SLAAC).
struct Bed {
    dev: Netns,
    up: Netns,
    eco1: Netns,
    eco2: Netns,
    eco3: Netns,
    eco4: Netns,
}

fn setup() -> Bed {
    require_root();
    let b = Bed {
        dev: Netns::new("dev"),
        up: Netns::new("up"),
        eco1: Netns::new("eco1"),
        eco2: Netns::new("eco2"),
        eco3: Netns::new("eco3"),
        eco4: Netns::new("eco4"),
    };
    // The test bed turns IPv6 off in its namespaces; ECOs have it, as real ones do.
    for ns in [&b.eco1, &b.eco2, &b.eco3, &b.eco4] {
        ns.exec(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ]);
    }
    veth(&b.dev, "eth0", &b.up, "eth0");
    b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    b.up.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b
}

fn config(b: &Bed, version: &str, with_api: bool) -> String {
    let api = if with_api {
        format!(
            r#"{{"id": "a2", "name": "api", "interfaces": [{{"name": "eth0", "network": "lan6", "attach": {{"netns": "{}"}}}}]}},"#,
            b.eco2.path()
        )
    } else {
        String::new()
    };
    format!(
        r#"{{
  "device_id": "dev-v6", "config_version": "{version}",
  "ports": [{{"name": "eth0", "ifname": "eth0", "labels": ["uplink"]}}],
  "networks": [
    {{"id": "lan6", "name": "lan6", "type": "local", "port": "uplink", "mtu": 1400,
      "ip": {{"subnet": "10.6.0.0/24", "subnet6": "fd00:6::/64", "domain": "eco6.internal"}}}},
    {{"id": "auto6", "name": "auto6", "type": "local",
      "ip": {{"subnet": "10.7.0.0/24", "subnet6": "fd00:7::/64", "slaac": true}}}}
  ],
  "apps": [
    {api}
    {{"id": "a1", "name": "web", "interfaces": [{{"name": "eth0", "network": "lan6", "attach": {{"netns": "{eco1}"}}}}]}},
    {{"id": "a3", "name": "cam", "interfaces": [{{"name": "eth0", "network": "auto6", "attach": {{"netns": "{eco3}"}}}}]}},
    {{"id": "a4", "name": "db", "interfaces": [{{"name": "eth0", "network": "lan6", "ip6": "fd00:6::50", "attach": {{"netns": "{eco4}"}}}}]}}
  ]
}}"#,
        eco1 = b.eco1.path(),
        eco3 = b.eco3.path(),
        eco4 = b.eco4.path(),
    )
}

/// A shell script in `ns`, at most `secs`; its success and output.
fn sh(ns: &Netns, script: &str, secs: u64) -> (bool, String) {
    let out = Command::new("timeout")
        .args([
            &secs.to_string(),
            "ip",
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let mut s = stdout(&out);
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// The global IPv6 addresses on eth0 in `ns`.
fn addrs6(ns: &Netns) -> Vec<Ipv6Addr> {
    let out = ns.exec(&[
        "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
    ]);
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .collect()
}

/// Waits for eth0 in `ns` to have a usable (not tentative) link-local address.
fn link_local_ready(ns: &Netns) -> bool {
    let ok = wait_until(Duration::from_secs(10), || {
        let out = ns.exec(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ]);
        let s = stdout(&out);
        s.contains("fe80::") && !s.contains("tentative")
    });
    if !ok {
        eprintln!("{}: {}", ns.name, stdout(&ns.exec(&["ip", "-6", "addr"])));
        eprintln!("{}", stdout(&ns.exec(&["ip", "link"])));
    }
    ok
}

/// dhclient's hook for DHCPv6: applies the address it is given, as a host's network
/// manager would, and logs each event.
const HOOK6: &str = r#"#!/bin/sh
echo "$reason $new_ip6_address" >> "$(dirname "$0")/events6.log"
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6) ip -6 addr replace "$new_ip6_address/${new_ip6_prefixlen:-128}" dev eth0 nodad ;;
  RELEASE6|EXPIRE6|STOP6) ip -6 addr flush dev eth0 scope global ;;
esac
exit 0
"#;

/// ISC dhclient -6, one shot, with its lease file (and so its DUID) in `dir`.
fn dhclient6(ns: &Netns, dir: &TempDir) -> Option<Ipv6Addr> {
    let hook = dir.path.join("hook6");
    std::fs::write(&hook, HOOK6).unwrap();
    run(&["chmod", "+x", hook.to_str().unwrap()]);
    let p = |f: &str| dir.path.join(f).to_string_lossy().into_owned();
    let (ok, out) = sh(
        ns,
        &format!(
            "dhclient -6 -v -1 -sf {} -pf {} -lf {} eth0",
            hook.display(),
            p("dhclient6.pid"),
            p("dhclient6.leases")
        ),
        30,
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill $(cat {}) 2>/dev/null", p("dhclient6.pid")))
        .status();
    if !ok {
        eprintln!("dhclient -6 failed: {out}");
    }
    addrs6(ns).into_iter().next()
}

/// dhcpcd -6 (it starts DHCPv6 on the advertisement's M flag), one shot, with its
/// state (and DUID) in `dir`. Its hooks do nothing (`-c /bin/true`), and it sees a
/// private /etc/resolv.conf besides: its default hooks would write the host's.
fn dhcpcd6(ns: &Netns, dir: &TempDir) -> Option<Ipv6Addr> {
    let run_dir = dir.path.join("run");
    let lib = dir.path.join("lib");
    let resolv = dir.path.join("resolv.conf");
    let _ = std::fs::create_dir_all(&run_dir);
    let _ = std::fs::create_dir_all(&lib);
    std::fs::write(&resolv, "").unwrap();
    let (ok, out) = sh(
        ns,
        &format!(
            "unshare --mount sh -c 'mount --bind {} /run && mkdir -p /var/lib/dhcpcd && mount --bind {} /var/lib/dhcpcd && mount --bind {} /etc/resolv.conf && dhcpcd -6 -1 -t 30 --nodelay -B -c /bin/true eth0'",
            run_dir.display(),
            lib.display(),
            resolv.display()
        ),
        45,
    );
    if !ok {
        eprintln!("dhcpcd -6 failed: {out}");
    }
    addrs6(ns).into_iter().next()
}

/// In `fd00:6::/64`'s DHCPv6 range (`::1000`–`::ffff`).
fn in_range(a: Ipv6Addr) -> bool {
    let s = a.segments();
    s[..4] == [0xfd00, 6, 0, 0] && s[4..7] == [0, 0, 0] && s[7] >= 0x1000
}

/// The endpoint status entry of `app` (its `ip6`).
fn status_ip6(e: &Econet, app: &str) -> Option<String> {
    let s = e.status_json();
    (0..2).find_map(|n| {
        (0..4).find_map(|i| {
            (json_str(&s, &format!("networks.{n}.endpoints.{i}.app")).as_deref() == Some(app))
                .then(|| json_str(&s, &format!("networks.{n}.endpoints.{i}.ip6")))
                .flatten()
        })
    })
}

#[test]
fn dhcpv6_clients_keep_their_address_across_restart_and_redeploy() {
    let b = setup();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut e = Econet::start(&b.dev, &config(&b, "1", true));
    assert!(link_local_ready(&b.eco1) && link_local_ready(&b.eco2));
    let d1 = TempDir::new("dhclient6");
    let cap = Capture::start(
        &b.eco1,
        "eth0",
        "icmp6 or udp port 546 or udp port 547",
        1000,
    );
    let Some(a1) = dhclient6(&b.eco1, &d1) else {
        let mut cap = cap;
        cap.stop(Duration::from_millis(300));
        let out = Command::new("tshark")
            .args(["-r", cap.file.to_str().unwrap()])
            .output()
            .unwrap();
        eprintln!("{}\n{}", stdout(&out), e.log());
        panic!("dhclient -6 got no address");
    };
    eprintln!("dhclient -6: {a1}");
    assert!(in_range(a1), "{a1}");
    let d2 = TempDir::new("dhcpcd6");
    let a2 = dhcpcd6(&b.eco2, &d2).expect("dhcpcd -6 got no address");
    eprintln!("dhcpcd -6: {a2}");
    assert!(in_range(a2) && a2 != a1, "{a2}");
    assert_eq!(status_ip6(&e, "a1"), Some(a1.to_string()));
    assert_eq!(status_ip6(&e, "a2"), Some(a2.to_string()));
    assert_eq!(status_ip6(&e, "a4").as_deref(), Some("fd00:6::50"));
    // The leases are on disk.
    let file = std::fs::read_to_string(e.state_dir().join("leases6-lan6.txt")).unwrap();
    assert!(
        file.contains(&a1.to_string()) && file.contains(&a2.to_string()),
        "{file}"
    );

    // tshark reads our DHCPv6 and ICMPv6 packets without a malformed or warning mark.
    let mut cap = cap;
    cap.stop(Duration::from_millis(300));
    let out = Command::new("tshark")
        .args([
            "-r",
            cap.file.to_str().unwrap(),
            "-Y",
            "(dhcpv6 || icmpv6) && (_ws.malformed || _ws.expert.severity >= warning)",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "", "tshark marks");
    let out = Command::new("tshark")
        .args([
            "-r",
            cap.file.to_str().unwrap(),
            "-Y",
            "dhcpv6.msgtype == 7",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("Reply"), "no DHCPv6 Reply captured");

    // The address works at once: the firewall admitted it with the grant. eco4 has
    // its static address; the prefix is on-link by the advertisement.
    b.eco4.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:6::50/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(
        b.eco1.ping_within("fd00:6::50", 5),
        "eco1 ({a1}) cannot reach eco4 by IPv6"
    );
    // DNS: AAAA and ip6.arpa PTR for the DHCPv6 names, on gateway6.
    let aaaa = common::clients::dig(
        &b.eco1,
        "fd00:6::1",
        &["+short", "AAAA", "web.eco6.internal"],
    );
    assert_eq!(
        aaaa.as_deref().map(str::trim),
        Some(a1.to_string().as_str())
    );
    let ptr = common::clients::dig(&b.eco2, "fd00:6::1", &["+short", "-x", &a1.to_string()]);
    assert_eq!(ptr.as_deref().map(str::trim), Some("web.eco6.internal."));
    let db = common::clients::dig(
        &b.eco2,
        "fd00:6::1",
        &["+short", "AAAA", "db.eco6.internal"],
    );
    assert_eq!(db.as_deref().map(str::trim), Some("fd00:6::50"));

    // kill -9 and start again; dhclient starts over with a new DUID (no lease file).
    e.restart_hard();
    b.eco1.exec(&[
        "ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global",
    ]);
    let d1b = TempDir::new("dhclient6b");
    let again = dhclient6(&b.eco1, &d1b).expect("no address after the restart");
    assert_eq!(again, a1, "the same ECO, another address after a restart");

    // Redeploy: the app goes, and comes back (a new interface, a new dhcpcd).
    e.reload(&config(&b, "2", false));
    assert!(wait_until(Duration::from_secs(5), || status_ip6(&e, "a2").is_none()));
    e.reload(&config(&b, "3", true));
    assert!(link_local_ready(&b.eco2));
    let d2b = TempDir::new("dhcpcd6b");
    let back = dhcpcd6(&b.eco2, &d2b).expect("no address after the redeploy");
    assert_eq!(back, a2, "the same ECO, another address after a redeploy");
    assert_eq!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        host_resolv,
        "a client in a test namespace rewrote the host's /etc/resolv.conf"
    );
}

#[test]
fn a_slaac_host_configures_from_the_router_advertisements() {
    let b = setup();
    let _e = Econet::start(&b.dev, &config(&b, "1", true));
    assert!(link_local_ready(&b.eco3));
    // A Linux host: takes advertisements (a host's default) and forms addresses.
    b.eco3
        .exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2"]);
    b.eco3
        .exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=1"]);
    let mut cap = Capture::start(&b.eco3, "eth0", "icmp6 and ip6[40] == 134", 1);
    // A router solicitation on link up.
    b.eco3.exec(&["ip", "link", "set", "eth0", "down"]);
    b.eco3.exec(&["ip", "link", "set", "eth0", "up"]);
    let got = wait_until(Duration::from_secs(10), || {
        addrs6(&b.eco3)
            .iter()
            .any(|a| a.segments()[..4] == [0xfd00, 7, 0, 0])
    });
    assert!(got, "no SLAAC address: {:?}", addrs6(&b.eco3));
    cap.stop(Duration::from_secs(5));
    let out = Command::new("tshark")
        .args(["-r", cap.file.to_str().unwrap(), "-V"])
        .output()
        .unwrap();
    let v = stdout(&out);
    eprintln!("{v}");
    for want in [
        "Type: Router Advertisement (134)",
        "1... .... = Managed address configuration: Set",
        ".1.. .... = Other configuration: Set",
        "Router lifetime (s): 0",
        "Prefix: fd00:7::",
        "1... .... = On-link flag(L): Set",
        ".1.. .... = Autonomous address-configuration flag(A): Set",
        "Recursive DNS Servers: fd00:7::1",
    ] {
        assert!(v.contains(want), "RA without {want:?}");
    }
    assert!(!v.contains("Malformed") && !v.contains("Expert Info (Warning"));
    // No default route: IPv6 has no way off the device here.
    let routes = stdout(&b.eco3.exec(&["ip", "-6", "route"]));
    assert!(!routes.contains("default"), "{routes}");
}
