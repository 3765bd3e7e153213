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
