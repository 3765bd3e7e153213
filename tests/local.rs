//! L3 local networks against real peers: unmodified DHCP clients and resolvers in ECO
//! namespaces, an upstream host (with a real dnsmasq as resolver) behind the device's
//! uplink, another host behind a second port, and econet in the device namespace.

mod common;

use common::capture::Capture;
use common::clients::*;
use common::*;
use std::time::Duration;

/// The device's ports: eth0 (uplink, cost 0) to `up` (192.0.2.0/24), eth1 (uplink,
/// cost 10) to `other` (198.18.0.0/24). Networks: `lan` (local, NAT out of the label
/// "uplink", domain eco.internal, MTU 1400) and `vault` (local, air-gapped).
struct Bed {
    dev: Netns,
    up: Netns,
    other: Netns,
    eco1: Netns,
    eco2: Netns,
    eco3: Netns,
    eco4: Netns,
    _resolv: NetnsResolvConf,
    _dir: TempDir,
}

fn setup() -> Bed {
    require_root();
    let dev = Netns::new("dev");
    // The device's own resolver is the upstream host (its /etc/resolv.conf inside).
    let resolv = NetnsResolvConf::new(&dev, "192.0.2.1");
    let b = Bed {
        dev,
        up: Netns::new("up"),
        other: Netns::new("other"),
        eco1: Netns::new("eco1"),
        eco2: Netns::new("eco2"),
        eco3: Netns::new("eco3"),
        eco4: Netns::new("eco4"),
        _resolv: resolv,
        _dir: TempDir::new("l3"),
    };
    veth(&b.dev, "eth0", &b.up, "eth0");
    veth(&b.dev, "eth1", &b.other, "eth0");
    b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    b.dev.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth1"]);
    b.dev.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    b.up.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.other.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    // Hosts that try to reach into the device's networks or across its ports.
    b.up.ip(&["route", "add", "10.0.0.0/8", "via", "192.0.2.2"]);
    b.up.ip(&["route", "add", "198.18.0.0/24", "via", "192.0.2.2"]);
    b.other
        .ip(&["route", "add", "192.0.2.0/24", "via", "198.18.0.2"]);
    b
}

fn config(b: &Bed, version: &str, with_web: bool) -> String {
    let web = if with_web {
        format!(
            r#"{{"id": "a1", "name": "web", "interfaces": [{{"name": "eth0", "network": "lan", "attach": {{"netns": "{}"}}}}]}},"#,
            b.eco1.path()
        )
    } else {
        String::new()
    };
    format!(
        r#"{{
  "device_id": "dev-l3", "config_version": "{version}",
  "ports": [
    {{"name": "eth0", "ifname": "eth0", "labels": ["uplink"], "cost": 0}},
    {{"name": "eth1", "ifname": "eth1", "labels": ["uplink"], "cost": 10}}
  ],
  "networks": [
    {{"id": "lan", "name": "lan", "type": "local", "port": "uplink", "mtu": 1400,
      "ip": {{"subnet": "10.1.0.0/24", "dhcp_range": {{"start": "10.1.0.100", "end": "10.1.0.200"}},
             "domain": "eco.internal", "lease_secs": 120}},
      "static_dns": [{{"host": "db", "addrs": ["10.1.0.77"]}}]}},
    {{"id": "vault", "name": "vault", "type": "local", "ip": {{"subnet": "10.2.0.0/24"}}}}
  ],
  "apps": [
    {web}
    {{"id": "a2", "name": "api", "interfaces": [{{"name": "eth0", "network": "lan", "attach": {{"netns": "{eco2}"}}}}]}},
    {{"id": "a3", "name": "safe", "interfaces": [{{"name": "eth0", "network": "vault", "attach": {{"netns": "{eco3}"}}}}]}},
    {{"id": "a4", "name": "cam", "interfaces": [{{"name": "eth0", "network": "lan", "ip": "10.1.0.20", "attach": {{"netns": "{eco4}"}}}}]}}
  ]
}}"#,
        eco2 = b.eco2.path(),
        eco3 = b.eco3.path(),
        eco4 = b.eco4.path(),
    )
}

fn start(b: &Bed) -> Econet {
    let e = Econet::start(&b.dev, &config(b, "1", true));
    // The static ECO configures itself; the others use DHCP.
    b.eco4.ip(&["addr", "add", "10.1.0.20/24", "dev", "eth0"]);
    b.eco4.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    e
}

#[test]
fn three_real_clients_obtain_renew_and_release_one_stable_address() {
    let b = setup();
    let e = start(&b);
    // udhcpc: obtain, renew (SIGUSR1), release (SIGUSR2).
    let c1 = ClientDir::new();
    let d = udhcpc_daemon(&b.eco1, &c1, "web");
    let first = wait_addr(&b.eco1, 10).expect("udhcpc got no address");
    assert!(first.to_string().starts_with("10.1.0."), "{first}");
    let pid = std::fs::read_to_string(c1.path("udhcpc.pid"))
        .unwrap()
        .trim()
        .to_string();
    run(&["kill", "-USR1", &pid]);
    assert!(
        wait_until(Duration::from_secs(5), || c1
            .events()
            .matches("renew")
            .count()
            >= 1),
        "no renew: {}",
        c1.events()
    );
    // The anti-spoofing set admits the leased address, and lets it go with the release.
    let allowed = || {
        let out = b
            .dev
            .exec(&["nft", "list", "set", "bridge", "econet", "allowed4"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let admitted = format!(" . {first}");
    assert!(allowed().contains(&admitted), "{}", allowed());
    run(&["kill", "-USR2", &pid]);
    assert!(
        wait_until(Duration::from_secs(5), || addr_of(&b.eco1).is_none()),
        "no release"
    );
    // At once (the RELEASE went out before the address was flushed), not at the
    // next reconcile or the next DHCP output of the network.
    assert!(
        wait_until(Duration::from_millis(500), || !allowed()
            .contains(&admitted)),
        "the release left {first} admitted: {}",
        allowed()
    );
    drop(d);
    assert!(
        wait_until(Duration::from_secs(5), || json_at(
            &e.status_json(),
            "networks.0.endpoints.0.lease_expires"
        )
        .is_none()),
        "the release did not end the lease"
    );

    // dhclient: the same ECO gets the same address; then it releases.
    let c2 = ClientDir::new();
    assert_eq!(dhclient(&b.eco1, &c2, "web"), Some(first), "dhclient");
    assert!(dhclient_release(&b.eco1, &c2));
    b.eco1.ip(&["addr", "flush", "dev", "eth0"]);

    // dhcpcd: obtain, renew (-n), release (-k).
    let c3 = ClientDir::new();
    assert!(dhcpcd_daemon(&b.eco1, &c3, "web"), "dhcpcd");
    assert_eq!(wait_addr(&b.eco1, 10), Some(first), "dhcpcd");
    assert!(dhcpcd_ctl(&b.eco1, &c3, "-n"));
    assert!(
        wait_until(Duration::from_secs(10), || c3.events().contains("RENEW")
            || c3.events().matches("BOUND").count()
                + c3.events().matches("REBOOT").count()
                >= 2),
        "dhcpcd renew: {}",
        c3.events()
    );
    assert!(dhcpcd_ctl(&b.eco1, &c3, "-k"));
    assert!(
        wait_until(Duration::from_secs(5), || addr_of(&b.eco1).is_none()),
        "dhcpcd release"
    );

    // The options a client sees: router and, to a client that asks (dhcpcd), the MTU.
    let ev = c1.events();
    assert!(
        ev.contains(&format!("bound {first}/24 gw=10.1.0.1 ")),
        "{ev}"
    );
    assert!(
        c3.events()
            .contains(&format!("{first}/24 gw=10.1.0.1 mtu=1400")),
        "{}",
        c3.events()
    );
    // The allocation is persisted for the next boot.
    let leases = std::fs::read_to_string(e.state_dir().join("leases-lan.txt")).unwrap_or_default();
    assert!(leases.contains(&format!("{first} ")), "{leases}");
    // The air-gapped network hands out no router.
    let c4 = ClientDir::new();
    let a3 = udhcpc(&b.eco3, &c4, "safe").expect("vault lease");
    assert!(
        c4.events().contains(&format!("bound {a3}/24 gw= ")),
        "{}",
        c4.events()
    );
}

#[test]
fn dns_answers_eco_names_static_entries_ptr_and_forwards_the_rest() {
    let b = setup();
    let dir = TempDir::new("dns");
    let _upstream = upstream_resolver(&b.up, "192.0.2.1", &dir.path);
    let e = start(&b);
    let c = ClientDir::new();
    let a1 = udhcpc(&b.eco1, &c, "webby").expect("lease");
    assert!(wait_until(Duration::from_secs(3), || dig(
        &b.eco1,
        "10.1.0.1",
        &["+short", "webby.eco.internal"]
    )
    .is_some_and(|s| s.trim() == a1.to_string())));
    let q = |args: &[&str]| dig(&b.eco1, "10.1.0.1", args).unwrap_or_default();
    assert_eq!(
        q(&["+short", "webby.eco.internal"]).trim(),
        a1.to_string(),
        "ECO name from option 12"
    );
    assert_eq!(q(&["+short", "webby"]).trim(), a1.to_string(), "bare name");
    assert_eq!(
        q(&["+short", "cam.eco.internal"]).trim(),
        "10.1.0.20",
        "static ECO by app name"
    );
    assert_eq!(
        q(&["+short", "db.eco.internal"]).trim(),
        "10.1.0.77",
        "static_dns"
    );
    assert_eq!(
        q(&["+short", "-x", &a1.to_string()]).trim(),
        "webby.eco.internal.",
        "PTR"
    );
    assert!(q(&["nope.eco.internal"]).contains("NXDOMAIN"));
    assert_eq!(
        q(&["+short", "upstream.test"]).trim(),
        "192.0.2.99",
        "forwarded to the device's resolver"
    );
    assert_eq!(
        q(&["+short", "+tcp", "upstream.test"]).trim(),
        "192.0.2.99",
        "over TCP"
    );
    // kdig too.
    let out = b
        .eco1
        .exec(&["kdig", "+short", "@10.1.0.1", "db.eco.internal"]);
    assert_eq!(stdout(&out).trim(), "10.1.0.77");
    // Only on the bridge: asking the device on its uplink address gets nothing.
    assert!(
        dig(&b.up, "192.0.2.2", &["+short", "webby.eco.internal"]).is_none(),
        "answered on a port"
    );
    // The air-gapped network answers its own names only (no upstream: REFUSED).
    let c3 = ClientDir::new();
    udhcpc(&b.eco3, &c3, "safe").expect("vault lease");
    assert!(dig(&b.eco3, "10.2.0.1", &["upstream.test"])
        .unwrap_or_default()
        .contains("status: REFUSED"));
    assert!(dig(&b.eco3, "10.2.0.1", &["+short", "safe"]).is_some_and(|s| s.starts_with("10.2.0.")));
    drop(e);
}

#[test]
fn nat_reaches_the_upstream_and_every_forbidden_path_is_closed() {
    let b = setup();
    let _e = start(&b);
    let _srv = tcp_whoami(&b.up, "192.0.2.1", 7000, 60);
    let _srv2 = tcp_whoami(&b.other, "198.18.0.1", 7000, 60);
    let _dev_srv = tcp_whoami(&b.dev, "0.0.0.0", 7001, 60);
    let c = ClientDir::new();
    let a1 = udhcpc(&b.eco1, &c, "web").expect("lease");
    let c3 = ClientDir::new();
    let a3 = udhcpc(&b.eco3, &c3, "safe").expect("vault lease");

    // Allowed: out through NAT (the upstream sees the device's port address).
    assert!(b.eco1.ping_within("192.0.2.1", 5), "ECO to upstream");
    assert_eq!(
        tcp_ask(&b.eco1, "192.0.2.1", 7000).as_deref(),
        Some("192.0.2.2"),
        "TCP, masqueraded"
    );
    assert!(
        b.eco4.ping("10.1.0.100") || b.eco4.ping(&a1.to_string()),
        "ECO to ECO on one network"
    );

    // Forbidden: between networks, in from a port, across ports, out of the air gap,
    // and to the device itself (other than DHCP and DNS).
    assert!(!b.eco1.ping(&a3.to_string()), "lan to vault");
    assert!(!b.eco3.ping(&a1.to_string()), "vault to lan");
    assert!(!b.eco3.ping("192.0.2.1"), "air-gapped network out");
    assert!(!b.up.ping(&a1.to_string()), "from a port into a network");
    assert_eq!(tcp_ask(&b.up, &a1.to_string(), 22), None);
    assert!(!b.up.ping("198.18.0.1"), "port to port");
    assert_eq!(
        tcp_ask(&b.up, "198.18.0.1", 7000),
        None,
        "port to port, TCP"
    );
    assert!(!b.other.ping("192.0.2.1"), "port to port, the other way");
    assert!(!b.eco1.ping("10.1.0.1"), "ECO to its gateway (ICMP)");
    assert_eq!(
        tcp_ask(&b.eco1, "10.1.0.1", 7001),
        None,
        "ECO to a device service"
    );
    assert_eq!(
        tcp_ask(&b.eco1, "192.0.2.2", 7001),
        None,
        "ECO to the device's port address"
    );
    assert_eq!(
        tcp_ask(&b.eco3, "10.2.0.1", 7001),
        None,
        "air-gapped ECO to a device service"
    );
    // The device's own traffic is not econet's business.
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 7001).as_deref(),
        Some("192.0.2.1")
    );

    // Another firewall on the box keeps its say: its drop still drops.
    b.dev.exec(&["nft", "add table inet other; add chain inet other blockall { type filter hook forward priority 10; policy drop; }"]);
    assert!(
        !b.eco1.ping("192.0.2.1"),
        "a foreign forward chain's drop was overridden"
    );
    b.dev.exec(&["nft", "delete table inet other"]);
    assert!(b.eco1.ping_within("192.0.2.1", 3));
}

#[test]
fn spoofed_sources_rogue_dhcp_servers_and_router_adverts_are_stopped() {
    let b = setup();
    let _e = start(&b);
    let c = ClientDir::new();
    let a1 = udhcpc(&b.eco1, &c, "web").expect("lease");
    assert!(b.eco1.ping_within("192.0.2.1", 5));
    // Another address on the same ECO: not its lease, so not let out.
    b.eco1.ip(&["addr", "add", "10.1.0.150/24", "dev", "eth0"]);
    assert!(
        !b.eco1.try_exec(&[
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "10.1.0.150",
            "192.0.2.1"
        ]),
        "spoofed address"
    );
    assert!(b.eco1.try_exec(&[
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "-I",
        &a1.to_string(),
        "192.0.2.1"
    ]));
    b.eco1.ip(&["addr", "del", "10.1.0.150/24", "dev", "eth0"]);
    // Another MAC on the same ECO: its address no longer goes out.
    b.eco1
        .ip(&["link", "set", "eth0", "address", "02:00:00:00:66:66"]);
    assert!(!b.eco1.ping("192.0.2.1"), "spoofed MAC");

    // A rogue DHCP server in eco2: its offers never reach eco4.
    let c2 = ClientDir::new();
    udhcpc(&b.eco2, &c2, "api").expect("lease");
    let cap = Capture::start(&b.eco4, "eth0", "udp src port 67", 50);
    let dir = TempDir::new("rogue");
    let rogue = Proc(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &b.eco2.name,
                "dnsmasq",
                "--no-daemon",
                "--port=0",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--interface=eth0",
                "--bind-interfaces",
                "--dhcp-range=10.1.0.210,10.1.0.220,60",
            ])
            .arg(format!("--dhcp-leasefile={}", dir.path.join("l").display()))
            .arg(format!("--pid-file={}", dir.path.join("p").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    // eco4 asks (its replies come from whoever answers).
    let c4 = ClientDir::new();
    b.eco4.ip(&["addr", "flush", "dev", "eth0"]);
    let _ = udhcpc(&b.eco4, &c4, "cam");
    drop(rogue);
    let frames = cap.finish(Duration::from_secs(2));
    let eco2_mac = stdout(&b.eco2.ip(&["-br", "link", "show", "eth0"]))
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let from_rogue = frames
        .iter()
        .filter(|f| {
            f.len() > 12
                && format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    f[6], f[7], f[8], f[9], f[10], f[11]
                ) == eco2_mac
        })
        .count();
    assert!(
        !frames.is_empty(),
        "econet's own replies should have been captured"
    );
    assert_eq!(from_rogue, 0, "a rogue DHCP server reached another ECO");

    // A router advertisement from eco2 does not reach eco4.
    let cap = Capture::start(&b.eco4, "eth0", "icmp6", 5);
    b.eco2.exec(&[
        "/usr/bin/python3",
        "-c",
        "from scapy.all import *\nsendp(Ether(dst='33:33:00:00:00:01')/IPv6(src='fe80::66', dst='ff02::1')/ICMPv6ND_RA(), iface='eth0', verbose=0)",
    ]);
    let frames = cap.finish(Duration::from_secs(2));
    assert!(
        frames
            .iter()
            .all(|f| !(f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[54] == 134)),
        "an RA reached another ECO"
    );
}

#[test]
fn the_same_eco_keeps_its_address_across_restarts_rerequests_and_redeploys() {
    let b = setup();
    let mut e = start(&b);
    let c = ClientDir::new();
    let a1 = udhcpc(&b.eco1, &c, "web").expect("lease");
    // Re-request (a client that lost its state) gets the same address.
    b.eco1.ip(&["addr", "flush", "dev", "eth0"]);
    assert_eq!(udhcpc(&b.eco1, &ClientDir::new(), "web"), Some(a1));
    b.eco1
        .ip(&["route", "replace", "default", "via", "10.1.0.1"]);
    assert!(b.eco1.ping_within("192.0.2.1", 5));
    // econet killed and restarted: traffic keeps flowing; the ECO keeps its address.
    let mut ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.eco1.name,
            "ping",
            "-c",
            "30",
            "-i",
            "0.05",
            "-W",
            "1",
            "192.0.2.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    e.restart_hard();
    let out = ping.wait().unwrap();
    assert!(out.success(), "traffic was cut by the restart");
    b.eco1.ip(&["addr", "flush", "dev", "eth0"]);
    assert_eq!(
        udhcpc(&b.eco1, &ClientDir::new(), "web"),
        Some(a1),
        "after restart"
    );
    // Redeploy: the app leaves the config and comes back (new namespace, even).
    e.reload(&config(&b, "2", false));
    run(&["ip", "netns", "del", &b.eco1.name]);
    run(&["ip", "netns", "add", &b.eco1.name]);
    e.reload(&config(&b, "3", true));
    assert!(wait_until(Duration::from_secs(5), || b
        .eco1
        .links()
        .contains(&"eth0".to_string())));
    assert_eq!(
        udhcpc(&b.eco1, &ClientDir::new(), "web"),
        Some(a1),
        "after redeploy"
    );
}

#[test]
fn nat_follows_the_best_port_that_is_up_and_an_overlapping_port_subnet_is_an_error() {
    let b = setup();
    let e = start(&b);
    let _srv = tcp_whoami(&b.other, "198.18.0.1", 7000, 60);
    let c = ClientDir::new();
    udhcpc(&b.eco1, &c, "web").expect("lease");
    let st = || e.status_json();
    assert_eq!(
        json_str(&st(), "networks.0.ports.active").as_deref(),
        Some("eth0")
    );
    // eth0 loses its carrier: NAT moves to eth1 (the device's routing follows).
    b.dev.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.0.1",
        "metric",
        "100",
    ]);
    b.up.ip(&["link", "set", "eth0", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || json_str(
            &st(),
            "networks.0.ports.active"
        )
        .as_deref()
            == Some("eth1")),
        "{}",
        st()
    );
    assert!(e.log().contains("NAT moves from eth0 to eth1"));
    assert_eq!(
        tcp_ask(&b.eco1, "198.18.0.1", 7000).as_deref(),
        Some("198.18.0.2"),
        "NAT out of eth1"
    );
    b.up.ip(&["link", "set", "eth0", "up"]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &st(),
        "networks.0.ports.active"
    )
    .as_deref()
        == Some("eth0")));

    // A port gets an address in the vault's subnet: vault goes to error and gives
    // up its gateway address; when the port's address goes, all is back.
    b.dev.ip(&["addr", "add", "10.2.0.200/16", "dev", "eth1"]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &st(),
        "networks.1.state"
    )
    .as_deref()
        == Some("error")));
    assert!(json_at(&st(), "networks.1.errors")
        .unwrap()
        .contains("overlaps port eth1"));
    assert!(!stdout(&b.dev.ip(&["-4", "addr", "show", "dev", "ec-vault"])).contains("10.2.0.1/24"));
    assert_eq!(
        json_str(&st(), "networks.0.state").as_deref(),
        Some("online"),
        "others run on"
    );
    b.dev.ip(&["addr", "del", "10.2.0.200/16", "dev", "eth1"]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &st(),
        "networks.1.state"
    )
    .as_deref()
        == Some("online")));
    assert!(stdout(&b.dev.ip(&["-4", "addr", "show", "dev", "ec-vault"])).contains("10.2.0.1/24"));
}

#[test]
fn status_shows_leases_and_the_mtu_reaches_bridge_endpoints_and_clients() {
    let b = setup();
    let e = start(&b);
    let c = ClientDir::new();
    let a1 = udhcpc(&b.eco1, &c, "webby").expect("lease");
    let s = e.status_json();
    assert_eq!(
        json_str(&s, "networks.0.endpoints.0.ip"),
        Some(a1.to_string()),
        "{s}"
    );
    assert_eq!(
        json_str(&s, "networks.0.endpoints.0.hostname").as_deref(),
        Some("webby")
    );
    let expires: u64 = json_at(&s, "networks.0.endpoints.0.lease_expires")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires > now && expires <= now + 121,
        "lease_expires {expires} vs now {now}"
    );
    let mac = json_str(&s, "networks.0.endpoints.0.mac").unwrap();
    assert!(stdout(&b.eco1.ip(&["link", "show", "eth0"])).contains(&mac));
    assert_eq!(
        json_str(&s, "networks.0.endpoints.2.ip").as_deref(),
        Some("10.1.0.20"),
        "static"
    );
    for (ns, dev) in [(&b.dev, "ec-lan"), (&b.eco1, "eth0")] {
        assert!(
            stdout(&ns.ip(&["link", "show", dev])).contains("mtu 1400"),
            "{dev}"
        );
    }
    assert!(e.status_text().contains("webby"));
    // The firewall is readable with nft.
    let rules = stdout(&b.dev.exec(&["nft", "list", "ruleset"]));
    assert!(
        rules.contains("ip saddr 10.1.0.0/24 oifname \"eth0\" masquerade"),
        "{rules}"
    );
    assert!(rules.contains("tcp option maxseg size set rt mtu"));
    assert!(
        rules.contains(&format!(". {a1} }}")) || rules.contains(&format!(". {a1},")),
        "{rules}"
    );
}

/// Peak RSS of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_or_corrupt_state_files_are_set_aside_and_never_trusted() {
    let b = setup();
    let mut e = start(&b);
    assert!(udhcpc(&b.eco1, &ClientDir::new(), "web").is_some());
    e.stop("TERM");
    let st = e.state_dir();
    let leases = st.join("leases-lan.txt");
    let last_good = st.join("config.json");
    assert!(leases.is_file() && last_good.is_file());
    // What a probe did: both state files made symbolic links to /dev/zero (before,
    // econet read them whole: about 700 MB, and no service).
    for f in [&leases, &last_good] {
        std::fs::remove_file(f).unwrap();
        std::os::unix::fs::symlink("/dev/zero", f).unwrap();
    }
    e.spawn();
    let pid = e.pid().unwrap();
    let rss = peak_rss_kib(pid);
    assert!(rss > 0 && rss < 64 * 1024, "peak RSS {rss} KiB");
    let s = e.status_json();
    for (f, scope) in [("leases-lan.txt", "networks"), ("config.json", "device")] {
        let want = format!("{f}: not a regular file but a symbolic link; set aside as");
        assert!(s.contains(&want), "{scope} warning for {f} missing: {s}");
        let bad = st.join(format!("{f}.bad"));
        assert!(
            std::fs::symlink_metadata(&bad).is_ok_and(|m| m.file_type().is_symlink()),
            "{f} not set aside"
        );
    }
    let text = stdout(&run(&[
        ECONET,
        "status",
        "--state-dir",
        &st.to_string_lossy(),
    ]));
    assert!(text.contains("warning: "), "{text}");
    // Service goes on: a client gets a lease, and the files econet writes again are
    // regular files.
    b.eco2.ip(&["addr", "flush", "dev", "eth0"]);
    assert!(udhcpc(&b.eco2, &ClientDir::new(), "api").is_some());
    e.stop("TERM");
    assert!(std::fs::symlink_metadata(&leases).is_ok_and(|m| m.is_file()));
    assert!(std::fs::symlink_metadata(&last_good).is_ok_and(|m| m.is_file()));
    // A corrupt last good config (a torn write on other firmware, a bad edit) is
    // said, not skipped silently.
    std::fs::write(&last_good, b"{\"device_id\": 5}").unwrap();
    e.spawn();
    let s = e.status_json();
    assert!(
        s.contains("config.json: the last good config is not valid (device_id: "),
        "{s}"
    );
}

/// The probe's name hijacks, with a real client: `udhcpc -x hostname:db` (a
/// `static_dns` name) and an ECO naming itself after another app. Configured names
/// win, and the refusals show in status.
#[test]
fn an_eco_cannot_take_a_static_dns_name_or_another_apps_name() {
    let b = setup();
    let e = start(&b);
    // eco1 is app "web"; eco2 is app "api", which asks for its own name.
    let api = udhcpc(&b.eco2, &ClientDir::new(), "api").expect("api lease");
    let web = udhcpc(&b.eco1, &ClientDir::new(), "db").expect("web lease");
    let q = |name: &str| dig(&b.eco2, "10.1.0.1", &["+short", name]).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(3), || e
        .status_json()
        .contains("host name db asked by")));
    assert_eq!(q("db.eco.internal").trim(), "10.1.0.77", "static_dns wins");
    // web renews under api's name: refused too; api keeps its own.
    b.eco1.ip(&["addr", "flush", "dev", "eth0"]);
    assert_eq!(udhcpc(&b.eco1, &ClientDir::new(), "api"), Some(web));
    assert!(wait_until(Duration::from_secs(3), || e
        .status_json()
        .contains("is the name of app api")));
    assert_eq!(
        q("api.eco.internal").trim(),
        api.to_string(),
        "the app keeps its name"
    );
    let s = e.status_json();
    assert!(
        s.contains(&format!(
            "host name api asked by {web} (app a1) is the name of app api: not published"
        )),
        "{s}"
    );
    // The ECO gets its own name back when it asks for it.
    b.eco1.ip(&["addr", "flush", "dev", "eth0"]);
    assert_eq!(udhcpc(&b.eco1, &ClientDir::new(), "web"), Some(web));
    assert!(wait_until(Duration::from_secs(3), || q("web.eco.internal")
        .trim()
        == web.to_string()));
}

/// 70 TCP connections to the gateway's port 53, each trickling a query one byte a
/// second, for 12 s; prints `accepted N closed_by_server M max_life S open_at_end K`.
const TRICKLE: &str = r#"
import socket, sys, time
q = bytes.fromhex("001c" "1234 0100 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00 0001 0001".replace(" ", ""))
conns = []
for i in range(70):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((sys.argv[1], 53))
    except OSError:
        continue
    s.setblocking(False)
    conns.append([s, time.time(), None])
t0 = time.time()
step = 0
while time.time() - t0 < 12:
    for c in conns:
        if c[2] is not None:
            continue
        try:
            if c[0].recv(1) == b"":
                c[2] = time.time()
                continue
        except BlockingIOError:
            pass
        except OSError:
            c[2] = time.time()
            continue
        try:
            c[0].send(q[step % len(q):step % len(q) + 1])
        except OSError:
            c[2] = time.time()
    step += 1
    time.sleep(1)
closed = [c[2] - c[1] for c in conns if c[2] is not None]
print("accepted", len(conns), "closed_by_server", len(closed),
      "max_life", round(max(closed) if closed else 0, 1),
      "open_at_end", len(conns) - len(closed))
"#;

/// The probe's slow-loris: one ECO's 70 trickling TCP connections shut TCP DNS for
/// every network for 45 s. Now a client gets a few connections, its network a fair
/// share, and each query a deadline that trickling does not extend.
#[test]
fn one_ecos_trickling_tcp_connections_do_not_shut_tcp_dns_for_others() {
    let b = setup();
    let e = start(&b);
    udhcpc(&b.eco1, &ClientDir::new(), "web").expect("web lease");
    udhcpc(&b.eco2, &ClientDir::new(), "api").expect("api lease");
    udhcpc(&b.eco3, &ClientDir::new(), "safe").expect("safe lease");
    let attacker = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.eco1.name,
            "/usr/bin/python3",
            "-c",
            TRICKLE,
            "10.1.0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // While it trickles: TCP queries from another ECO on its network, and from an
    // ECO of another network, all answered.
    let started = std::time::Instant::now();
    let mut answered = 0;
    for _ in 0..8 {
        let lan = dig(
            &b.eco2,
            "10.1.0.1",
            &["+tcp", "+short", "+tries=1", "+time=2", "db.eco.internal"],
        );
        let vault = dig(
            &b.eco3,
            "10.2.0.1",
            &["+tcp", "+short", "+tries=1", "+time=2", "safe"],
        );
        answered += usize::from(lan.is_some_and(|s| s.trim() == "10.1.0.77"));
        answered += usize::from(vault.is_some_and(|s| s.starts_with("10.2.0.")));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let out = attacker.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        answered, 16,
        "TCP queries answered during the trickle; attacker: {report}"
    );
    // The attacker held a few connections, each cut at the query deadline (5 s)
    // however it trickled; the rest were refused at once.
    let field = |k: &str| -> f64 {
        let w: Vec<&str> = report.split_whitespace().collect();
        w.iter()
            .position(|x| *x == k)
            .and_then(|i| w.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {report:?}"))
    };
    assert_eq!(field("open_at_end"), 0.0, "{report}");
    assert!(field("max_life") <= 8.0, "{report}");
    let s = e.status_json();
    let refused: u64 = json_at(&s, "networks.0.dns.tcp_refused")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 60, "{s}");
}

/// The probe's bookkeeping attack, with a real frame: an ECO's DHCPREQUEST for its
/// own address but naming another chaddr. Before, the ECO's allowed entry moved to
/// that MAC (at the next reconcile), cutting the ECO's own traffic off.
#[test]
fn a_request_naming_another_chaddr_does_not_move_the_ecos_allowed_entry() {
    let b = setup();
    let e = start(&b);
    let a1 = udhcpc(&b.eco1, &ClientDir::new(), "web").expect("lease");
    let script = format!(
        r#"
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, sendp, get_if_hwaddr
mac = get_if_hwaddr("eth0")
p = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
     / UDP(sport=68, dport=67)
     / BOOTP(chaddr=bytes.fromhex("020000007777") + bytes(10), xid=0x5157, flags=0x8000)
     / DHCP(options=[("message-type", "request"), ("requested_addr", "{a1}"),
                     ("server_id", "10.1.0.1"), "end"]))
sendp(p, iface="eth0", verbose=0)
"#
    );
    assert!(b.eco1.try_exec(&["/usr/bin/python3", "-c", &script]));
    std::thread::sleep(Duration::from_millis(300));
    // A reconcile pass rebuilds the allowed sets from the leases.
    e.reload(&config(&b, "2", true));
    let set = stdout(
        &b.dev
            .exec(&["nft", "list", "set", "bridge", "econet", "allowed4"]),
    );
    assert!(!set.contains("02:00:00:00:77:77"), "{set}");
    b.eco1
        .ip(&["route", "replace", "default", "via", "10.1.0.1"]);
    assert!(
        b.eco1.ping_within("192.0.2.1", 5),
        "the ECO was cut off: {set}"
    );
}

/// A guest behind `ns`'s ECO (a macvlan `ifname` on its eth0: its own MAC) asks for
/// a lease with busybox udhcpc, afresh (no address requested); returns the address.
fn guest_lease(ns: &Netns, ifname: &str) -> Option<std::net::Ipv4Addr> {
    let out = ns.exec(&[
        "timeout",
        "20",
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-n",
        "-i",
        ifname,
        "-s",
        "/bin/true",
        "-t",
        "5",
        "-T",
        "1",
    ]);
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    text.split("lease of ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn add_guests(ns: &Netns, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let g = format!("g{i}");
            ns.ip(&["link", "add", "link", "eth0", "name", &g, "type", "macvlan"]);
            ns.ip(&[
                "link",
                "set",
                &g,
                "address",
                &format!("02:00:00:00:9a:{i:02x}"),
            ]);
            ns.ip(&["link", "set", &g, "up"]);
            g
        })
        .collect()
}

/// The probe's kill -9 during a lease burst: leases ACKed just before it were lost,
/// and the same clients came back to other addresses. Now each batch's new
/// allocations are on disk before their ACKs leave.
#[test]
fn leases_acked_just_before_kill_9_survive_it() {
    let b = setup();
    let mut e = start(&b);
    let guests = add_guests(&b.eco1, 4);
    // Leased in reverse order, so fresh clients asking in order would get others'.
    let mut got = Vec::new();
    for g in guests.iter().rev() {
        got.push((g.clone(), guest_lease(&b.eco1, g).expect("guest lease")));
    }
    e.stop("KILL");
    e.spawn();
    for (g, a) in got.iter().rev() {
        assert_eq!(guest_lease(&b.eco1, g), Some(*a), "{g} after kill -9");
    }
}

/// Unmounts a test's tmpfs on drop.
struct Umount(std::path::PathBuf);

impl Drop for Umount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The probe's full state disk: leases ACKed and then lost across a restart, status
/// `online` with no errors, the file never rewritten, a 0-byte temp file left. Now
/// the failure shows (a warning and a counter), the write is retried until it
/// succeeds, no temp file stays, and what was on disk stays there.
#[test]
fn a_full_state_disk_is_said_and_retried_and_loses_nothing_on_disk() {
    let b = setup();
    let mut e = start(&b);
    let a2 = udhcpc(&b.eco2, &ClientDir::new(), "api").expect("lease");
    e.stop("TERM");
    // The state directory on a small filesystem of its own.
    let st = e.state_dir();
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&st)
        .unwrap()
        .flatten()
        .filter(|f| f.path().is_file())
        .map(|f| (f.path(), std::fs::read(f.path()).unwrap()))
        .collect();
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=512k,mode=0700",
        "econet-test",
        &st.to_string_lossy(),
    ]);
    let _umount = Umount(st.clone());
    for (p, bytes) in &files {
        std::fs::write(p, bytes).unwrap();
    }
    e.spawn();
    let leases = st.join("leases-lan.txt");
    let before = std::fs::read_to_string(&leases).unwrap();
    assert!(before.contains(&a2.to_string()));
    // Fill it.
    let filler = st.join("filler");
    let _ = try_run(&[
        "dd",
        "if=/dev/zero",
        &format!("of={}", filler.display()),
        "bs=4k",
    ]);
    // DHCP keeps working; the failure shows, counted, in status.
    let a1 = udhcpc(&b.eco1, &ClientDir::new(), "web").expect("lease on a full disk");
    assert!(
        wait_until(Duration::from_secs(5), || e
            .status_json()
            .contains("cannot write")),
        "{}",
        e.status_json()
    );
    let failures = |s: &str| -> u64 {
        json_at(s, "networks.0.dhcp.lease_write_failures")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(failures(&e.status_json()) >= 1);
    // No temporary file left; what was on disk is still there, whole.
    let names: Vec<String> = std::fs::read_dir(&st)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert!(std::fs::read_to_string(&leases)
        .unwrap()
        .contains(&a2.to_string()));
    // Space comes back: the file is written within a few seconds, the warning goes.
    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&leases).is_ok_and(|t| t.contains(&a1.to_string()))
            && !e.status_json().contains("cannot write")
    }));
    // And both ECOs keep their addresses across a hard restart.
    e.restart_hard();
    for (ns, name, a) in [(&b.eco1, "web", a1), (&b.eco2, "api", a2)] {
        ns.ip(&["addr", "flush", "dev", "eth0"]);
        assert_eq!(udhcpc(ns, &ClientDir::new(), name), Some(a));
    }
}
