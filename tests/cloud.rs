//! Cloud networks: econet (the real binary) as the VPN end of a device, against
//! strongSwan's charon (kernel-libipsec) as the cloud's VPN gateway, in namespaces:
//!
//! ```text
//!   eco (10.3.0.20) ── dev ── eth0 192.0.2.1 ──┐
//!                           └ eth1 198.51.100.1 ┴─ wan ── 203.0.113.1 gw (charon) ── host 172.31.1.2
//! ```

mod common;

use common::capture::Capture;
use common::clients::*;
use common::nat;
use common::strongswan::{Charon, SwanConf};
use common::*;
use std::time::Duration;

const PSK: &str = "a long shared secret";

struct Bed {
    dev: Netns,
    wan: Netns,
    gw: Netns,
    host: Netns,
    eco: Netns,
    dir: TempDir,
}

fn bed() -> Bed {
    require_root();
    let b = Bed {
        dev: Netns::new("dev"),
        wan: Netns::new("wan"),
        gw: Netns::new("gw"),
        host: Netns::new("host"),
        eco: Netns::new("eco"),
        dir: TempDir::new("cloud"),
    };
    veth(&b.dev, "eth0", &b.wan, "w0");
    veth(&b.dev, "eth1", &b.wan, "w1");
    veth(&b.wan, "w2", &b.gw, "g0");
    veth(&b.gw, "g1", &b.host, "h0");
    for (ns, a, d) in [
        (&b.dev, "192.0.2.1/24", "eth0"),
        (&b.dev, "198.51.100.1/24", "eth1"),
        (&b.wan, "192.0.2.254/24", "w0"),
        (&b.wan, "198.51.100.254/24", "w1"),
        (&b.wan, "203.0.113.254/24", "w2"),
        (&b.gw, "203.0.113.1/24", "g0"),
        (&b.gw, "172.31.1.1/24", "g1"),
        (&b.host, "172.31.1.2/24", "h0"),
    ] {
        ns.ip(&["addr", "add", a, "dev", d]);
    }
    // Each port routes to the world itself, as an uplink's network manager would set.
    b.dev.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.0.2.254",
        "metric",
        "100",
    ]);
    b.dev.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.51.100.254",
        "metric",
        "200",
    ]);
    b.gw.ip(&["route", "add", "default", "via", "203.0.113.254"]);
    b.host.ip(&["route", "add", "default", "via", "172.31.1.1"]);
    for ns in [&b.wan, &b.gw] {
        ns.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    }
    b
}

fn charon(b: &Bed, psk: &str, remote_id: &str, ike_extra: &str, child_extra: &str) -> Charon {
    charon_to(b, "%any", psk, remote_id, ike_extra, child_extra)
}

/// charon with a concrete peer address (needed when it initiates).
fn charon_to(
    b: &Bed,
    remote_addrs: &str,
    psk: &str,
    remote_id: &str,
    ike_extra: &str,
    child_extra: &str,
) -> Charon {
    let conf = SwanConf {
        local_addrs: "203.0.113.1",
        remote_addrs,
        local_id: "gw.example.com",
        remote_id,
        psk,
        local_ts: "172.31.1.0/24",
        remote_ts: "10.3.0.0/24",
        ike_extra,
        child_extra,
    };
    Charon::start(&b.gw, &b.dir.path, &conf.render())
}

fn config(b: &Bed, initiator: bool, psk: &str, lifetimes: &str) -> String {
    format!(
        r#"{{"device_id": "dev", "config_version": "1",
 "ports": [{{"name": "eth0", "ifname": "eth0", "labels": ["uplink"], "cost": 0}},
           {{"name": "eth1", "ifname": "eth1", "labels": ["uplink"], "cost": 10}}],
 "networks": [{{"id": "vpc", "name": "to-vpc", "type": "cloud", "port": "uplink",
   "ip": {{"subnet": "10.3.0.0/24", "dhcp_range": {{"start": "10.3.0.100", "end": "10.3.0.200"}}}},
   "vpn": {{"remote": "203.0.113.1", "local_id": "device-42.example.com", "remote_id": "gw.example.com",
           "auth": {{"psk": "{psk}"}}, "remote_subnets": ["172.31.1.0/24"], "dpd_secs": 2,
           "initiator": {initiator} {lifetimes}}}}}],
 "apps": [{{"id": "a1", "name": "web", "interfaces": [{{"name": "eth0", "network": "vpc", "ip": "10.3.0.20", "attach": {{"netns": "{}"}}}}]}}]}}"#,
        b.eco.path()
    )
}

fn start(b: &Bed, cfg: &str) -> Econet {
    let e = Econet::start(&b.dev, cfg);
    b.eco.ip(&["addr", "add", "10.3.0.20/24", "dev", "eth0"]);
    b.eco.ip(&["route", "add", "default", "via", "10.3.0.1"]);
    e
}

fn vpn(e: &Econet, field: &str) -> Option<String> {
    json_at(&e.status_json(), &format!("networks.0.vpn.{field}"))
}

fn established(e: &Econet) -> bool {
    vpn(e, "state").as_deref() == Some("\"established\"")
}

#[test]
fn econet_initiates_and_traffic_flows_only_through_the_tunnel() {
    let b = bed();
    let c = charon(&b, PSK, "device-42.example.com", "", "");
    let e = start(&b, &config(&b, true, PSK, ""));
    assert!(
        wait_until(Duration::from_secs(10), || established(&e)),
        "{}\n{}",
        e.status_json(),
        c.log()
    );
    assert!(c.list_sas().contains("ESTABLISHED"), "{}", c.list_sas());
    // Watch the underlay while ECO traffic flows: only IKE and ESP-in-UDP may appear.
    let leak = Capture::start(
        &b.wan,
        "w0",
        "not udp port 4500 and not udp port 500 and not arp",
        10,
    );
    let esp = Capture::start(&b.wan, "w0", "udp port 4500 or udp port 500", 2000);
    let _srv = tcp_whoami(&b.host, "172.31.1.2", 7000, 60);
    assert!(
        b.eco.ping_within("172.31.1.2", 5),
        "ECO to a host behind the VPN"
    );
    // TCP, with the ECO's own address (no NAT through a VPN).
    assert_eq!(
        tcp_ask(&b.eco, "172.31.1.2", 7000).as_deref(),
        Some("10.3.0.20")
    );
    let big = b.eco.try_exec(&[
        "ping",
        "-c",
        "3",
        "-s",
        "1300",
        "-M",
        "do",
        "-W",
        "2",
        "172.31.1.2",
    ]);
    assert!(
        big,
        "1300-byte packets without fragmenting (the MTU leaves room for ESP)"
    );
    let leaked = leak.finish(Duration::from_millis(500));
    assert!(
        leaked.is_empty(),
        "ECO packets on the underlay outside the tunnel: {leaked:02x?}"
    );
    let mut esp = esp;
    esp.stop(Duration::from_millis(500));
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            esp.file.to_str().unwrap(),
            "-V",
            "-d",
            "udp.port==4500,udpencap",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("Internet Security Association and Key Management Protocol")
            || text.contains("Encapsulating Security Payload"),
        "tshark saw neither IKE nor ESP"
    );
    assert!(
        text.contains("Encapsulating Security Payload"),
        "no ESP seen"
    );
    assert!(
        !text.contains("Malformed") && !text.contains("Expert Info (Error"),
        "tshark:\n{text}"
    );
    // Status: port, remote, counters.
    assert_eq!(vpn(&e, "port").as_deref(), Some("\"eth0\""));
    assert!(vpn(&e, "tx_bytes").unwrap().parse::<u64>().unwrap() > 0);
    assert!(vpn(&e, "rx_bytes").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(
        json_str(&e.status_json(), "networks.0.state").as_deref(),
        Some("online")
    );
    // Outside the remote subnets, nothing goes anywhere (no NAT, no other path).
    assert!(
        !b.eco.ping("203.0.113.254"),
        "a cloud network reached the underlay"
    );
}

#[test]
fn econet_as_responder_and_rekeys_of_both_kinds_under_traffic() {
    let b = bed();
    let c = charon_to(&b, "192.0.2.1", PSK, "device-42.example.com", "", "");
    let e = start(
        &b,
        &config(
            &b,
            false,
            PSK,
            r#", "ike_lifetime_secs": 12, "child_lifetime_secs": 10"#,
        ),
    );
    let _init = c.initiate();
    assert!(
        wait_until(Duration::from_secs(10), || established(&e)),
        "{}\n{}",
        e.status_json(),
        c.log()
    );
    // 30 s of pings across rekeys by econet's timers (CHILD every 10 s, IKE every 12 s)
    // and by charon's (swanctl --rekey), with none lost.
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.eco.name,
            "ping",
            "-c",
            "120",
            "-i",
            "0.25",
            "-W",
            "2",
            "172.31.1.2",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    c.swanctl(&["--rekey", "--child", "net"]);
    std::thread::sleep(Duration::from_secs(5));
    c.swanctl(&["--rekey", "--ike", "econet"]);
    let out = ping.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("120 received"),
        "traffic stopped during a rekey: {text}"
    );
    let child: u32 = vpn(&e, "child_rekeys").unwrap().parse().unwrap();
    let ike: u32 = vpn(&e, "ike_rekeys").unwrap().parse().unwrap();
    assert!(
        child >= 3 && ike >= 2,
        "child rekeys {child}, IKE rekeys {ike}"
    );
}

#[test]
fn dead_peer_wrong_secrets_replays_and_tampering_are_handled() {
    let b = bed();
    // Wrong PSK: refused, stays down.
    let c = charon(&b, "another secret", "device-42.example.com", "", "");
    let e = start(&b, &config(&b, true, PSK, ""));
    assert!(
        wait_until(Duration::from_secs(10), || vpn(&e, "last_down")
            .is_some_and(|d| d.contains("AuthFailed"))),
        "{}",
        e.status_json()
    );
    assert!(!established(&e));
    assert!(json_at(&e.status_json(), "networks.0.errors")
        .unwrap()
        .contains("VPN to 203.0.113.1 is"));
    drop(c);
    // Wrong identity: charon expects someone else.
    let c = charon(&b, PSK, "someone-else.example.com", "", "");
    e.signal("HUP");
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !established(&e),
        "a peer expecting another identity let us in"
    );
    assert!(!c.list_sas().contains("ESTABLISHED"));
    drop(c);
    // The right gateway: up; then replayed and tampered ESP are dropped.
    let mut c = charon(&b, PSK, "device-42.example.com", "", "");
    assert!(
        wait_until(Duration::from_secs(40), || established(&e)),
        "{}\n{}",
        e.status_json(),
        c.log()
    );
    let cap = Capture::start(&b.wan, "w0", "udp src port 4500 and greater 100", 3);
    assert!(b.eco.ping_within("172.31.1.2", 5));
    // ESP only: IKE on 4500 starts with the four-zero-byte non-ESP marker.
    let frames: Vec<Vec<u8>> = cap
        .finish(Duration::from_secs(2))
        .into_iter()
        .filter(|f| f.get(42..46).is_some_and(|m| m != [0, 0, 0, 0]))
        .collect();
    assert!(!frames.is_empty(), "no ESP from the gateway captured");
    let dropped = |e: &Econet| {
        vpn(e, "dropped")
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let before = dropped(&e);
    // Resend the captured ESP (Ethernet + IPv4 + UDP headers stripped) as is, and
    // with one byte flipped, from the gateway's address.
    let payloads: Vec<String> = frames
        .iter()
        .map(|f| f.iter().skip(14 + 28).map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('203.0.113.1', 0))\n\
         for h in {payloads:?}:\n    b = bytes.fromhex(h)\n    s.sendto(b, ('192.0.2.1', 4500))\n    t = bytearray(b); t[-5] ^= 0x40\n    s.sendto(bytes(t), ('192.0.2.1', 4500))\n"
    );
    b.gw.exec(&["/usr/bin/python3", "-c", &script]);
    assert!(
        wait_until(Duration::from_secs(3), || dropped(&e)
            >= before + 2 * frames.len() as u64),
        "replayed/tampered ESP not counted as dropped: {} -> {}",
        before,
        dropped(&e)
    );
    assert!(
        b.eco.ping_within("172.31.1.2", 3),
        "the tunnel broke after replays"
    );
    // The gateway dies: dead peer detection notices.
    c.kill();
    assert!(
        wait_until(Duration::from_secs(30), || vpn(&e, "last_down")
            .is_some_and(
                |d| d.contains("DpdTimeout") || d.contains("RetransmitExhausted")
            )),
        "{}",
        e.log()
    );
}

#[test]
fn the_tunnel_fails_over_to_the_standby_port_and_comes_back() {
    let b = bed();
    let c = charon(&b, PSK, "device-42.example.com", "", "");
    let e = start(&b, &config(&b, true, PSK, ""));
    assert!(
        wait_until(Duration::from_secs(10), || established(&e)),
        "{}",
        c.log()
    );
    assert_eq!(vpn(&e, "port").as_deref(), Some("\"eth0\""));
    assert_eq!(
        json_at(&e.status_json(), "networks.0.ports.standby.0").as_deref(),
        Some("\"eth1\"")
    );
    assert!(b.eco.ping_within("172.31.1.2", 5));
    // eth0 loses its link: the tunnel moves to eth1.
    b.wan.ip(&["link", "set", "w0", "down"]);
    assert!(
        wait_until(Duration::from_secs(20), || established(&e)
            && vpn(&e, "port").as_deref() == Some("\"eth1\"")),
        "{}",
        e.status_json()
    );
    assert!(
        b.eco.ping_within("172.31.1.2", 10),
        "no traffic over the standby port"
    );
    // eth0 is back: the tunnel returns to it.
    b.wan.ip(&["link", "set", "w0", "up"]);
    b.dev.ip(&[
        "route",
        "replace",
        "default",
        "via",
        "192.0.2.254",
        "metric",
        "100",
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || established(&e)
            && vpn(&e, "port").as_deref() == Some("\"eth0\"")),
        "{}",
        e.status_json()
    );
    assert!(b.eco.ping_within("172.31.1.2", 10));
}

#[test]
fn econet_to_econet_with_dhcp_on_both_sides() {
    require_root();
    // A second econet plays the cloud's gateway: its own cloud network, responder.
    let a = Netns::new("a");
    let g = Netns::new("g");
    let eco_a = Netns::new("ecoa");
    let eco_g = Netns::new("ecog");
    veth(&a, "eth0", &g, "eth0");
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    g.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    let side = |id: &str,
                local: &str,
                remote: &str,
                subnet: &str,
                rs: &str,
                init: bool,
                eco: &Netns| {
        format!(
            r#"{{"device_id": "{id}", "ports": [{{"name": "eth0", "ifname": "eth0"}}],
 "networks": [{{"id": "vpc", "name": "vpc", "type": "cloud", "port": "eth0", "ip": {{"subnet": "{subnet}"}},
   "vpn": {{"remote": "{remote}", "local_id": "{local}", "remote_id": "{id}-peer", "auth": {{"psk": "{PSK}"}},
           "remote_subnets": ["{rs}"], "initiator": {init}}}}}],
 "apps": [{{"id": "x", "name": "{id}-eco", "interfaces": [{{"name": "eth0", "network": "vpc", "attach": {{"netns": "{}"}}}}]}}]}}"#,
            eco.path()
        )
    };
    let ea = Econet::start(
        &a,
        &side(
            "a",
            "a-peer",
            "192.0.2.2",
            "10.3.0.0/24",
            "172.31.0.0/24",
            true,
            &eco_a,
        )
        .replace("\"remote_id\": \"a-peer\"", "\"remote_id\": \"g-peer\""),
    );
    let eg = Econet::start(
        &g,
        &side(
            "g",
            "g-peer",
            "192.0.2.1",
            "172.31.0.0/24",
            "10.3.0.0/24",
            false,
            &eco_g,
        )
        .replace("\"remote_id\": \"g-peer\"", "\"remote_id\": \"a-peer\""),
    );
    let ip_a = udhcpc(&eco_a, &ClientDir::new(), "a").expect("lease a");
    let ip_g = udhcpc(&eco_g, &ClientDir::new(), "g").expect("lease g");
    assert!(
        wait_until(Duration::from_secs(10), || established(&ea)
            && established(&eg)),
        "{}\n{}",
        ea.status_json(),
        eg.status_json()
    );
    assert!(eco_a.ping_within(&ip_g.to_string(), 5));
    assert!(eco_g.ping_within(&ip_a.to_string(), 5));
    // The DHCP MTU leaves room for ESP: 1500 - 80.
    assert!(stdout(&eco_a.ip(&["link", "show", "eth0"])).contains("mtu 1420"));
}

/// The longest a NAT mapping change may stop traffic: econet notices ESP going out
/// with none coming back within 2 s and checks liveness from the new mapping, which
/// moves the gateway there. The DPD interval (30 s here) must not matter.
const NAT_OUTAGE_MAX_SECS: f64 = 5.0;

/// The device behind a masquerading router (`wan` plays it), as a home or cellular
/// router puts it, with one port:
///
/// ```text
///   eco (10.3.0.20) ── dev eth0 192.168.7.2 ── lan0 nat wan0 203.0.113.2 ── 203.0.113.1 gw (charon) ── host 172.31.1.2
/// ```
fn nat_bed() -> Bed {
    require_root();
    let b = Bed {
        dev: Netns::new("dev"),
        wan: Netns::new("nat"),
        gw: Netns::new("gw"),
        host: Netns::new("host"),
        eco: Netns::new("eco"),
        dir: TempDir::new("cloudnat"),
    };
    veth(&b.dev, "eth0", &b.wan, "lan0");
    veth(&b.wan, "wan0", &b.gw, "g0");
    veth(&b.gw, "g1", &b.host, "h0");
    for (ns, a, d) in [
        (&b.dev, "192.168.7.2/24", "eth0"),
        (&b.wan, "192.168.7.1/24", "lan0"),
        (&b.wan, "203.0.113.2/24", "wan0"),
        (&b.gw, "203.0.113.1/24", "g0"),
        (&b.gw, "172.31.1.1/24", "g1"),
        (&b.host, "172.31.1.2/24", "h0"),
    ] {
        ns.ip(&["addr", "add", a, "dev", d]);
    }
    b.dev.ip(&["route", "add", "default", "via", "192.168.7.1"]);
    b.host.ip(&["route", "add", "default", "via", "172.31.1.1"]);
    b.gw.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    nat::masquerade(&b.wan, "wan0", &b.dir.path);
    b
}

/// One port, the production DPD interval.
fn nat_config(b: &Bed) -> String {
    format!(
        r#"{{"device_id": "dev", "config_version": "1",
 "ports": [{{"name": "eth0", "ifname": "eth0"}}],
 "networks": [{{"id": "vpc", "name": "to-vpc", "type": "cloud", "port": "eth0",
   "ip": {{"subnet": "10.3.0.0/24", "dhcp_range": {{"start": "10.3.0.100", "end": "10.3.0.200"}}}},
   "vpn": {{"remote": "203.0.113.1", "local_id": "device-42.example.com", "remote_id": "gw.example.com",
           "auth": {{"psk": "{PSK}"}}, "remote_subnets": ["172.31.1.0/24"], "dpd_secs": 30}}}}],
 "apps": [{{"id": "a1", "name": "web", "interfaces": [{{"name": "eth0", "network": "vpc", "ip": "10.3.0.20", "attach": {{"netns": "{}"}}}}]}}]}}"#,
        b.eco.path()
    )
}

/// Where charon sends to: the `remote … @ ADDR[PORT]` of its IKE SA.
fn charon_peer(c: &Charon) -> Option<String> {
    let sas = c.list_sas();
    let line = sas
        .lines()
        .find(|l| l.trim_start().starts_with("remote "))?;
    Some(line.split('@').nth(1)?.trim().to_string())
}

/// Both-way pings between `a` and `b` (a namespace and its address each) across
/// `change`; asserts each direction's outage is at most [`NAT_OUTAGE_MAX_SECS`].
fn nat_outage(
    what: &str,
    dir: &std::path::Path,
    a: (&Netns, &str),
    b: (&Netns, &str),
    change: impl FnOnce(),
) {
    let pings = [
        nat::PingLog::start(a.0, b.1, dir, 120),
        nat::PingLog::start(b.0, a.1, dir, 120),
    ];
    let out = nat::outage_across(&pings, Duration::from_secs(45), change);
    for (ping, secs) in &out {
        eprintln!("{what}: {ping}: outage {secs:.2?} s");
        let secs = secs.unwrap_or_else(|| panic!("{what}: {ping}: no replies within 45 s"));
        assert!(
            secs <= NAT_OUTAGE_MAX_SECS,
            "{what}: {ping}: {secs:.2} s without replies (at most {NAT_OUTAGE_MAX_SECS} s)"
        );
    }
}

#[test]
fn a_nat_mapping_change_costs_seconds_not_the_dpd_interval() {
    let b = nat_bed();
    let c = charon(&b, PSK, "device-42.example.com", "", "");
    let e = start(&b, &nat_config(&b));
    assert!(
        wait_until(Duration::from_secs(10), || established(&e)),
        "{}\n{}",
        e.status_json(),
        c.log()
    );
    let eco = (&b.eco, "10.3.0.20");
    let host = (&b.host, "172.31.1.2");
    // The router forgets its mappings: the next packets get new random ports.
    let first = charon_peer(&c);
    nat_outage("conntrack flush", &b.dir.path, eco, host, || {
        nat::conntrack_flush(&b.wan)
    });
    let second = charon_peer(&c);
    assert_ne!(first, second, "the gateway never saw a new mapping");
    // The router gets a new outside address (its old mappings go with the old one).
    nat_outage("new outside address", &b.dir.path, eco, host, || {
        b.wan.ip(&["addr", "del", "203.0.113.2/24", "dev", "wan0"]);
        b.wan.ip(&["addr", "add", "203.0.113.3/24", "dev", "wan0"]);
    });
    let third = charon_peer(&c);
    assert!(
        third
            .as_deref()
            .is_some_and(|p| p.starts_with("203.0.113.3[")),
        "the gateway still sends to {third:?}"
    );
    // It was econet's check that moved it, not a reconnect.
    assert!(e.log().contains("checking liveness"), "{}", e.log());
    assert_eq!(vpn(&e, "last_down"), Some("null".into()));
    assert!(established(&e), "{}", e.status_json());
}

/// A cloud network's config for the econet-to-econet bed: one port, DPD 30 s, one
/// ECO at a fixed address outside the DHCP range.
#[allow(clippy::too_many_arguments)]
fn peer_config(
    ids: (&str, &str),
    remote: &str,
    subnet: &str,
    range: (&str, &str),
    remote_subnet: &str,
    initiator: bool,
    eco_ip: &str,
    eco: &Netns,
) -> String {
    let (local_id, remote_id) = ids;
    format!(
        r#"{{"device_id": "{local_id}", "ports": [{{"name": "eth0", "ifname": "eth0"}}],
 "networks": [{{"id": "vpc", "name": "vpc", "type": "cloud", "port": "eth0",
   "ip": {{"subnet": "{subnet}", "dhcp_range": {{"start": "{}", "end": "{}"}}}},
   "vpn": {{"remote": "{remote}", "local_id": "{local_id}", "remote_id": "{remote_id}", "auth": {{"psk": "{PSK}"}},
           "remote_subnets": ["{remote_subnet}"], "dpd_secs": 30, "initiator": {initiator}}}}}],
 "apps": [{{"id": "x", "name": "{local_id}-eco", "interfaces": [{{"name": "eth0", "network": "vpc", "ip": "{eco_ip}", "attach": {{"netns": "{}"}}}}]}}]}}"#,
        range.0,
        range.1,
        eco.path()
    )
}

#[test]
fn econet_to_econet_behind_a_nat_follows_a_new_mapping() {
    require_root();
    // As nat_bed, with a second econet as the gateway (responder) instead of charon:
    //   ecoa 10.3.0.20 ── a eth0 192.168.7.2 ── nat 203.0.113.2 ── 203.0.113.1 g ── ecog 172.31.1.2
    let a = Netns::new("a");
    let nat = Netns::new("nat");
    let g = Netns::new("g");
    let eco_a = Netns::new("ecoa");
    let eco_g = Netns::new("ecog");
    let dir = TempDir::new("e2enat");
    veth(&a, "eth0", &nat, "lan0");
    veth(&nat, "wan0", &g, "eth0");
    for (ns, addr, dev) in [
        (&a, "192.168.7.2/24", "eth0"),
        (&nat, "192.168.7.1/24", "lan0"),
        (&nat, "203.0.113.2/24", "wan0"),
        (&g, "203.0.113.1/24", "eth0"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev]);
    }
    a.ip(&["route", "add", "default", "via", "192.168.7.1"]);
    nat::masquerade(&nat, "wan0", &dir.path);
    let ea = Econet::start(
        &a,
        &peer_config(
            ("a-peer", "g-peer"),
            "203.0.113.1",
            "10.3.0.0/24",
            ("10.3.0.100", "10.3.0.200"),
            "172.31.1.0/24",
            true,
            "10.3.0.20",
            &eco_a,
        ),
    );
    let eg = Econet::start(
        &g,
        &peer_config(
            ("g-peer", "a-peer"),
            "203.0.113.2",
            "172.31.1.0/24",
            ("172.31.1.100", "172.31.1.200"),
            "10.3.0.0/24",
            false,
            "172.31.1.2",
            &eco_g,
        ),
    );
    for (eco, addr, gw) in [
        (&eco_a, "10.3.0.20/24", "10.3.0.1"),
        (&eco_g, "172.31.1.2/24", "172.31.1.1"),
    ] {
        eco.ip(&["addr", "add", addr, "dev", "eth0"]);
        eco.ip(&["route", "add", "default", "via", gw]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || established(&ea)
            && established(&eg)),
        "{}\n{}",
        ea.status_json(),
        eg.status_json()
    );
    let ends = ((&eco_a, "10.3.0.20"), (&eco_g, "172.31.1.2"));
    nat_outage("econet: conntrack flush", &dir.path, ends.0, ends.1, || {
        nat::conntrack_flush(&nat)
    });
    nat_outage(
        "econet: new outside address",
        &dir.path,
        ends.0,
        ends.1,
        || {
            nat.ip(&["addr", "del", "203.0.113.2/24", "dev", "wan0"]);
            nat.ip(&["addr", "add", "203.0.113.3/24", "dev", "wan0"]);
        },
    );
    assert!(ea.log().contains("checking liveness"), "{}", ea.log());
    assert!(
        eg.log().contains("peer moved to 203.0.113.3:"),
        "{}",
        eg.log()
    );
    assert!(established(&ea) && established(&eg));
}
