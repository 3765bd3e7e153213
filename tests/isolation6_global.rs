//! IPv6 beyond link-local on a dual-stack local network (`ip.subnet6`): who may send
//! from the subnet's addresses (static `ip6`, with `slaac` the first claimant), what
//! ECOs may send the device (neighbour discovery, DHCPv6, DNS) and each other (no
//! router advertisements, no DHCPv6 server messages), nothing across networks, and
//! NAT66 out of the network's port, following it on failover. Spoofed frames are
//! built with scapy in the ECOs; captures in the others show what got through.

mod common;

use common::capture::Capture;
use common::*;
use std::time::Duration;

const MAC_A: &str = "02:00:5e:20:00:0a";
const MAC_B: &str = "02:00:5e:20:00:0b";
const MAC_C: &str = "02:00:5e:20:00:0c";
const MAC_X: &str = "02:00:5e:20:00:0f";
const GW6: &str = "fd00:9::1";
const A6: &str = "fd00:9::a";
const B6: &str = "fd00:9::b";
const C6: &str = "fd00:9::c";
const X6: &str = "fd00:8::f";

/// The device (ports eth0 to `up`, eth1 to `other`, both with IPv4 and a global
/// IPv6 address), ECOs a, b, c on `lan` (fd00:9::/64; a and b with static ip6) and x
/// on `vault` (fd00:8::/64, no port).
struct Bed {
    dev: Netns,
    up: Netns,
    other: Netns,
    a: Netns,
    b: Netns,
    c: Netns,
    x: Netns,
}

fn ipv6_on(ns: &Netns) {
    ns.exec(&[
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
    ]);
}

fn setup() -> Bed {
    require_root();
    let b = Bed {
        dev: Netns::new("dev"),
        up: Netns::new("up"),
        other: Netns::new("other"),
        a: Netns::new("a"),
        b: Netns::new("b"),
        c: Netns::new("c"),
        x: Netns::new("x"),
    };
    for ns in [&b.dev, &b.up, &b.other, &b.a, &b.b, &b.c, &b.x] {
        ipv6_on(ns);
    }
    veth(&b.dev, "eth0", &b.up, "eth0");
    veth(&b.dev, "eth1", &b.other, "eth0");
    b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    b.dev.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth1"]);
    b.up.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.other.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    for (ns, addr) in [
        (&b.dev, "2001:db8:1::2/64"),
        (&b.up, "2001:db8:1::1/64"),
        (&b.other, "2001:db8:2::1/64"),
    ] {
        ns.ip(&["-6", "addr", "add", addr, "dev", "eth0", "nodad"]);
    }
    b.dev.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:2::2/64",
        "dev",
        "eth1",
        "nodad",
    ]);
    b.dev
        .ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    // Hosts that try to reach into the device's networks.
    b.up.ip(&["-6", "route", "add", "fd00::/8", "via", "2001:db8:1::2"]);
    b.other
        .ip(&["-6", "route", "add", "fd00::/8", "via", "2001:db8:2::2"]);
    b
}

fn config(b: &Bed, slaac: bool) -> String {
    config_a6(b, slaac, A6, "1")
}

/// The config with `a6` as A's static address.
fn config_a6(b: &Bed, slaac: bool, a6: &str, version: &str) -> String {
    let eco = |id: &str, net: &str, ns: &Netns, mac: &str, ip: &str, ip6: Option<&str>| {
        let ip6 = ip6.map(|a| format!(r#""ip6": "{a}","#)).unwrap_or_default();
        format!(
            r#"{{"id": "{id}", "name": "{id}", "interfaces": [{{"name": "eth0", "network": "{net}", "mac": "{mac}", "ip": "{ip}", {ip6} "attach": {{"netns": "{}"}}}}]}}"#,
            ns.path()
        )
    };
    let apps = [
        eco("a", "lan", &b.a, MAC_A, "10.9.0.10", Some(a6)),
        eco("b", "lan", &b.b, MAC_B, "10.9.0.11", Some(B6)),
        eco("c", "lan", &b.c, MAC_C, "10.9.0.12", None),
        eco("x", "vault", &b.x, MAC_X, "10.8.0.10", Some(X6)),
    ];
    format!(
        r#"{{
  "device_id": "dev-v6g", "config_version": "{version}",
  "ports": [
    {{"name": "eth0", "ifname": "eth0", "labels": ["uplink"], "cost": 0}},
    {{"name": "eth1", "ifname": "eth1", "labels": ["uplink"], "cost": 10}}
  ],
  "networks": [
    {{"id": "lan", "name": "lan", "type": "local", "port": "uplink",
      "ip": {{"subnet": "10.9.0.0/24", "dhcp_range": {{"start": "10.9.0.100", "end": "10.9.0.200"}},
             "subnet6": "fd00:9::/64", "slaac": {slaac}}}}},
    {{"id": "vault", "name": "vault", "type": "local",
      "ip": {{"subnet": "10.8.0.0/24", "dhcp_range": {{"start": "10.8.0.100", "end": "10.8.0.200"}},
             "subnet6": "fd00:8::/64"}}}}
  ],
  "apps": [{}]
}}"#,
        apps.join(",\n")
    )
}

/// Adds `addr`/64 to eth0 in `ns` and waits for DAD to finish (at most 5 s); a
/// default route through the gateway.
fn add_addr(ns: &Netns, addr: &str) {
    ns.ip(&["-6", "addr", "add", &format!("{addr}/64"), "dev", "eth0"]);
    let done = wait_until(Duration::from_secs(5), || {
        let out = ns.ip(&["-6", "-o", "addr", "show", "dev", "eth0"]);
        let s = stdout(&out);
        s.contains(addr)
            && !s
                .lines()
                .any(|l| l.contains(addr) && l.contains("tentative"))
    });
    assert!(done, "DAD of {addr} in {} did not finish", ns.name);
    let gw = if addr.starts_with("fd00:8:") {
        "fd00:8::1"
    } else {
        GW6
    };
    ns.ip(&[
        "-6", "route", "replace", "default", "via", gw, "dev", "eth0",
    ]);
}

fn ping6(ns: &Netns, from: &str, to: &str) -> bool {
    ns.try_exec(&["ping", "-6", "-c", "1", "-W", "1", "-I", from, to])
}

fn ping6_within(ns: &Netns, from: &str, to: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || ping6(ns, from, to))
}

/// The MAC `ns` has for neighbour `addr` on eth0, if it has an entry with one.
fn neigh_mac(ns: &Netns, addr: &str) -> Option<String> {
    let out = ns.ip(&["-6", "neigh", "show", addr, "dev", "eth0"]);
    let s = stdout(&out);
    let mut it = s.split_whitespace();
    while let Some(w) = it.next() {
        if w == "lladdr" {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// Sends the scapy frames `frames` (a Python list expression) out of eth0 in `ns`.
fn send(ns: &Netns, frames: &str) {
    let script = format!("from scapy.all import *\nsendp({frames}, iface='eth0', verbose=0)");
    ns.exec(&["/usr/bin/python3", "-c", &script]);
}

/// A UDP datagram to all nodes carrying `marker`, from `mac` and `src`.
fn udp_all(mac: &str, src: &str, marker: &str) -> String {
    format!(
        "Ether(src='{mac}', dst='33:33:00:00:00:01')/IPv6(src='{src}', dst='ff02::1')/UDP(sport=5555, dport=5555)/Raw(b'{marker}')"
    )
}

/// Captures in `ns` on eth0 while `f` runs; the markers among `markers` that arrived.
fn arrived(ns: &Netns, markers: &[&str], f: impl FnOnce()) -> Vec<String> {
    let cap = Capture::start(ns, "eth0", "", 1000);
    f();
    let frames = cap.finish(Duration::from_secs(2));
    markers
        .iter()
        .filter(|m| {
            frames
                .iter()
                .any(|fr| fr.windows(m.len()).any(|w| w == m.as_bytes()))
        })
        .map(|m| m.to_string())
        .collect()
}

/// The link-local address of eth0 in `ns` once DAD has passed (at most 10 s).
fn link_local(ns: &Netns) -> String {
    let mut addr = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let out = ns.ip(&["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]);
        addr = stdout(&out)
            .lines()
            .find(|l| !l.contains("tentative"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|a| a.split('/').next())
            .map(str::to_string);
        addr.is_some()
    });
    assert!(ok, "no link-local address on eth0 in {}", ns.name);
    addr.unwrap_or_default()
}

fn nft_set(dev: &Netns, set: &str) -> String {
    stdout(&dev.exec(&["nft", "list", "set", "bridge", "econet", set]))
}

#[test]
fn static_addresses_are_their_ecos_only_and_ecos_reach_the_device_for_nd_alone() {
    let bed = setup();
    let _e = Econet::start(&bed.dev, &config(&bed, false));
    add_addr(&bed.a, A6);
    add_addr(&bed.b, B6);
    add_addr(&bed.x, X6);
    // ECO to ECO by their static addresses; the gateway resolved by ND.
    assert!(ping6_within(&bed.a, A6, B6, 5), "A reaches B");
    assert_eq!(neigh_mac(&bed.a, B6).as_deref(), Some(MAC_B));
    // The device answers ND, not pings.
    assert!(!ping6(&bed.a, A6, GW6), "the gateway answered a ping");
    let bridge_mac = stdout(&bed.dev.ip(&["-br", "link", "show", "ec-lan"]))
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        wait_until(Duration::from_secs(3), || neigh_mac(&bed.a, GW6).as_deref()
            == Some(bridge_mac.as_str())),
        "A has no neighbour entry for the gateway: {}",
        stdout(&bed.a.ip(&["-6", "neigh"]))
    );
    let set = nft_set(&bed.dev, "allowed6");
    assert!(
        set.contains(A6) && set.contains(B6) && set.contains(MAC_A),
        "{set}"
    );

    // C has no admitted address: it cannot use its own choice of the subnet (no
    // slaac), nor A's, nor send router advertisements or DHCPv6 server messages.
    bed.c.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{C6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(
        !ping6(&bed.c, C6, B6),
        "C reached B from an unadmitted address"
    );
    let ra = format!(
        "Ether(src='{MAC_C}', dst='33:33:00:00:00:01')/IPv6(src='fe80::c', dst='ff02::1', hlim=255)/ICMPv6ND_RA(routerlifetime=1800)/ICMPv6NDOptPrefixInfo(prefix='2001:db8:66::', prefixlen=64)/Raw(b'rogue-ra')"
    );
    let c_ll = stdout(
        &bed.c
            .ip(&["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]),
    )
    .split_whitespace()
    .nth(3)
    .and_then(|a| a.split('/').next())
    .unwrap_or("fe80::c")
    .to_string();
    let ra = ra.replace("fe80::c", &c_ll);
    let dhcp6 = |dst: &str, marker: &str| {
        format!(
            "Ether(src='{MAC_C}', dst='33:33:00:00:00:01')/IPv6(src='{c_ll}', dst='{dst}')/UDP(sport=547, dport=546)/Raw(b'{marker}')"
        )
    };
    let frames = format!(
        "[{}, {}, {}, {}, {ra}, {}, {}]",
        udp_all(MAC_C, &c_ll, "c-own-ll"),
        udp_all(MAC_C, C6, "c-unadmitted"),
        udp_all(MAC_C, A6, "c-as-a"),
        udp_all(MAC_A, A6, "c-as-a-mac"),
        dhcp6("ff02::1", "rogue-dhcp6-reply"),
        dhcp6("ff02::1:2", "rogue-dhcp6-relay"),
    );
    let markers = [
        "c-own-ll",
        "c-unadmitted",
        "c-as-a",
        "c-as-a-mac",
        "rogue-ra",
        "rogue-dhcp6-reply",
        "rogue-dhcp6-relay",
    ];
    let got = arrived(&bed.b, &markers, || send(&bed.c, &frames));
    assert_eq!(got, ["c-own-ll"], "arrived at B");
    // A still owns its address.
    assert!(ping6(&bed.a, A6, B6));
    assert_eq!(neigh_mac(&bed.b, A6).as_deref(), Some(MAC_A));

    // Nothing across networks, either way, by any address.
    assert!(!ping6(&bed.a, A6, X6), "lan reached vault");
    assert!(!ping6(&bed.x, X6, A6), "vault reached lan");
    assert!(!ping6(&bed.x, X6, GW6), "vault reached lan's gateway");
    // Nor from outside into the network.
    assert!(!bed.up.try_exec(&["ping", "-6", "-c", "1", "-W", "1", A6]));
}

#[test]
fn with_slaac_the_first_eco_to_use_a_subnet_address_holds_it() {
    let bed = setup();
    let e = Econet::start(&bed.dev, &config(&bed, true));
    add_addr(&bed.b, B6);
    let c_ll = link_local(&bed.c);
    // C picks an address of its own: its DAD claims it, then it works.
    add_addr(&bed.c, C6);
    assert!(
        ping6_within(&bed.c, C6, B6, 5),
        "C reaches B from its own address"
    );
    let claims = nft_set(&bed.dev, "claim6_ec-lan");
    assert!(claims.contains(C6), "{claims}");
    // A cannot take it (its DAD probe and its traffic are dropped), nor B's
    // admitted address, whose owner has not sent from it yet either.
    let dad = |tgt: &str| {
        format!(
            "Ether(src='{MAC_A}', dst='33:33:ff:00:00:0c')/IPv6(src='::', dst='ff02::1:ff00:c', hlim=255)/ICMPv6ND_NS(tgt='{tgt}')"
        )
    };
    let frames = format!(
        "[{}, {}, {}, {}, {}]",
        dad(C6),
        udp_all(MAC_A, C6, "a-takes-c"),
        udp_all(MAC_A, A6, "a-own-static"),
        udp_all(MAC_A, "fd00:9::1:b", "a-claims-new"),
        udp_all(MAC_A, "fd00:7::a", "a-off-subnet"),
    );
    let got = arrived(
        &bed.b,
        &["a-takes-c", "a-own-static", "a-claims-new", "a-off-subnet"],
        || send(&bed.a, &frames),
    );
    assert_eq!(got, ["a-own-static", "a-claims-new"], "arrived at B");
    let to_b = udp_all(MAC_C, B6, "c-takes-b");
    assert!(arrived(&bed.a, &["c-takes-b"], || send(&bed.c, &to_b)).is_empty());
    assert!(ping6(&bed.c, C6, B6), "C keeps its address");

    // The config makes C's address A's static one: the admission wins over C's
    // claim at once, its traffic and its advertisements of the address included.
    e.reload(&config_a6(&bed, true, C6, "2"));
    assert!(
        wait_until(Duration::from_secs(5), || nft_set(&bed.dev, "allowed6")
            .contains(C6)),
        "C6 not admitted for A"
    );
    let na = format!(
        "Ether(src='{MAC_C}', dst='33:33:00:00:00:01')/IPv6(src='{c_ll}', dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt='{C6}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{MAC_C}')/Raw(b'c-advertises')"
    );
    let frames = format!("[{}, {na}]", udp_all(MAC_C, C6, "c-after-admission"));
    let got = arrived(&bed.b, &["c-after-admission", "c-advertises"], || {
        send(&bed.c, &frames)
    });
    assert!(got.is_empty(), "arrived at B: {got:?}");
}

#[test]
fn nat66_leaves_by_the_active_port_and_follows_it_on_failover() {
    let bed = setup();
    let e = Econet::start(&bed.dev, &config(&bed, false));
    add_addr(&bed.a, A6);
    let st = || e.status_json();
    assert_eq!(
        json_str(&st(), "networks.0.ports.active").as_deref(),
        Some("eth0")
    );
    let ruleset = stdout(
        &bed.dev
            .exec(&["nft", "list", "chain", "inet", "econet", "postrouting"]),
    );
    assert!(
        ruleset.contains("ip6 saddr fd00:9::/64 oifname \"eth0\" masquerade"),
        "{ruleset}"
    );
    // The upstream sees the port's address.
    let seen_from = |ns: &Netns, to: &str| -> Vec<String> {
        let cap = Capture::start(ns, "eth0", "icmp6 and ip6[40] == 128", 1);
        let ok = ping6_within(&bed.a, A6, to, 5);
        let frames = cap.finish(Duration::from_secs(2));
        assert!(ok, "A's ping to {to} got no answer");
        frames
            .iter()
            .filter(|f| f.len() >= 38)
            .map(|f| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&f[22..38]);
                std::net::Ipv6Addr::from(o).to_string()
            })
            .collect()
    };
    assert_eq!(seen_from(&bed.up, "2001:db8:1::1"), ["2001:db8:1::2"]);
    // Not out of the other port while eth0 is the network's.
    assert!(!ping6(&bed.a, A6, "2001:db8:2::1"), "IPv6 left by eth1");

    // eth0 loses its carrier: NAT66 moves to eth1.
    bed.up.ip(&["link", "set", "eth0", "down"]);
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
    assert_eq!(seen_from(&bed.other, "2001:db8:2::1"), ["2001:db8:2::2"]);
    let ruleset = stdout(
        &bed.dev
            .exec(&["nft", "list", "chain", "inet", "econet", "postrouting"]),
    );
    assert!(
        ruleset.contains("ip6 saddr fd00:9::/64 oifname \"eth1\" masquerade")
            && !ruleset.contains("oifname \"eth0\""),
        "{ruleset}"
    );
    // The port loses its global address: IPv6 stays on the network, IPv4 leaves.
    bed.dev
        .ip(&["-6", "addr", "del", "2001:db8:2::2/64", "dev", "eth1"]);
    assert!(
        wait_until(Duration::from_secs(5), || !stdout(&bed.dev.exec(&[
            "nft",
            "list",
            "chain",
            "inet",
            "econet",
            "postrouting"
        ]))
        .contains("ip6 saddr")),
        "NAT66 stayed without a global address"
    );
    let fwd = stdout(
        &bed.dev
            .exec(&["nft", "list", "chain", "inet", "econet", "forward"]),
    );
    assert!(
        fwd.contains("meta nfproto ipv4 iifname \"ec-lan\" oifname \"eth1\" accept"),
        "{fwd}"
    );
}
