//! IPv6 neighbour spoofing between ECOs. ECOs have IPv6 link-local addresses on every
//! bridge; on a local network an ECO may send IPv6 only from its own MAC and from
//! link-local addresses it claimed first (or `::` for DAD), and its neighbour
//! discovery may speak only for itself. Spoofed frames are built with scapy and sent
//! from one ECO; the others' neighbour tables and captures show what got through.
//! A switch network (L2) carries IPv6 unchanged.

mod common;

use common::capture::Capture;
use common::*;
use std::time::Duration;

const MAC_A: &str = "02:00:5e:10:00:0a";
const MAC_B: &str = "02:00:5e:10:00:0b";
const MAC_C: &str = "02:00:5e:10:00:0c";
const MAC_D: &str = "02:00:5e:10:00:0d";
/// The local network's bridge (network name "lan").
const BRIDGE: &str = "ec-lan";

/// A device with a local network `lan` (ECOs a, b, c, and d when `with_d`) and a
/// switch network `field` without a port (ECOs s1, s2).
struct Bed {
    dev: Netns,
    a: Netns,
    b: Netns,
    c: Netns,
    d: Netns,
    s1: Netns,
    s2: Netns,
}

fn setup() -> Bed {
    require_root();
    let bed = Bed {
        dev: Netns::new("dev"),
        a: Netns::new("a"),
        b: Netns::new("b"),
        c: Netns::new("c"),
        d: Netns::new("d"),
        s1: Netns::new("s1"),
        s2: Netns::new("s2"),
    };
    // The test bed turns IPv6 off in its namespaces; ECOs have it, as real ones do.
    for ns in [&bed.a, &bed.b, &bed.c, &bed.d, &bed.s1, &bed.s2] {
        ns.exec(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ]);
    }
    bed
}

fn config(bed: &Bed, version: &str, with_d: bool) -> String {
    let eco = |id: &str, net: &str, ns: &Netns, extra: &str| {
        format!(
            r#"{{"id": "{id}", "name": "{id}", "interfaces": [{{"name": "eth0", "network": "{net}", {extra} "attach": {{"netns": "{}"}}}}]}}"#,
            ns.path()
        )
    };
    let mut apps = vec![
        eco(
            "a",
            "lan",
            &bed.a,
            &format!(r#""mac": "{MAC_A}", "ip": "10.9.0.10","#),
        ),
        eco(
            "b",
            "lan",
            &bed.b,
            &format!(r#""mac": "{MAC_B}", "ip": "10.9.0.11","#),
        ),
        eco(
            "c",
            "lan",
            &bed.c,
            &format!(r#""mac": "{MAC_C}", "ip": "10.9.0.12","#),
        ),
        eco("s1", "field", &bed.s1, ""),
        eco("s2", "field", &bed.s2, ""),
    ];
    if with_d {
        apps.push(eco(
            "d",
            "lan",
            &bed.d,
            &format!(r#""mac": "{MAC_D}", "ip": "10.9.0.13","#),
        ));
    }
    format!(
        r#"{{
  "device_id": "dev-v6", "config_version": "{version}",
  "ports": [],
  "networks": [
    {{"id": "lan", "name": "lan", "type": "local", "ip": {{"subnet": "10.9.0.0/24", "dhcp_range": {{"start": "10.9.0.100", "end": "10.9.0.200"}}}}}},
    {{"id": "field", "name": "field", "type": "switch"}}
  ],
  "apps": [{}]
}}"#,
        apps.join(",\n")
    )
}

/// The link-local address of eth0 in `ns` once DAD has passed (at most 10 s).
fn link_local(ns: &Netns) -> String {
    let mut addr = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let out = ns.ip(&["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]);
        let s = stdout(&out);
        addr = s
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

fn mac_of(ns: &Netns) -> String {
    let out = ns.ip(&["-br", "link", "show", "eth0"]);
    stdout(&out)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
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

fn ping6(ns: &Netns, addr: &str) -> bool {
    ns.try_exec(&["ping", "-6", "-c", "1", "-W", "1", &format!("{addr}%eth0")])
}

fn ping6_within(ns: &Netns, addr: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || ping6(ns, addr))
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
    // No filter: tagged frames (one tag or two) are looked at as well.
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

/// Everything `nft list set bridge econet SET` prints (for the claims).
fn nft_set(dev: &Netns, set: &str) -> String {
    stdout(&dev.exec(&["nft", "list", "set", "bridge", "econet", set]))
}

/// Whether any frame captured while `f` ran is an NS or NA naming `target`.
fn nd_seen(ns: &Netns, target: &str, f: impl FnOnce()) -> bool {
    let cap = Capture::start(ns, "eth0", "icmp6", 100);
    f();
    let frames = cap.finish(Duration::from_secs(2));
    let t: std::net::Ipv6Addr = target.parse().unwrap();
    frames.iter().any(|fr| {
        fr.len() >= 78
            && fr[12..14] == [0x86, 0xdd]
            && fr[20] == 58
            && (fr[54] == 135 || fr[54] == 136)
            && fr[62..78] == t.octets()
    })
}

#[test]
fn an_eco_cannot_poison_neighbours_or_send_from_addresses_it_does_not_own() {
    let bed = setup();
    let _e = Econet::start(&bed.dev, &config(&bed, "1", false));
    let (a_ll, b_ll, c_ll) = (link_local(&bed.a), link_local(&bed.b), link_local(&bed.c));
    assert_eq!(mac_of(&bed.a), MAC_A);
    // C knows A and B (and they claimed their addresses by answering).
    assert!(ping6_within(&bed.c, &b_ll, 5), "C reaches B");
    assert!(ping6_within(&bed.c, &a_ll, 5), "C reaches A");
    assert_eq!(neigh_mac(&bed.c, &b_ll).as_deref(), Some(MAC_B));
    assert_eq!(neigh_mac(&bed.c, &a_ll).as_deref(), Some(MAC_A));

    // The probe's attack: an unsolicited NA for B's address with A's MAC, from A's own
    // address and from B's; an NA for A's own address naming B's MAC; an NS naming
    // B's MAC as A's. None may move C's entries.
    let na = |src: &str, tgt: &str, ll: &str| {
        format!(
            "Ether(src='{MAC_A}', dst='33:33:00:00:00:01')/IPv6(src='{src}', dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt='{tgt}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{ll}')"
        )
    };
    let ns = format!(
        "Ether(src='{MAC_A}', dst='{MAC_C}')/IPv6(src='{a_ll}', dst='{c_ll}', hlim=255)/ICMPv6ND_NS(tgt='{c_ll}')/ICMPv6NDOptSrcLLAddr(lladdr='{MAC_B}')"
    );
    send(
        &bed.a,
        &format!(
            "[{}, {}, {}, {ns}]",
            na(&a_ll, &b_ll, MAC_A),
            na(&b_ll, &b_ll, MAC_A),
            na(&a_ll, &a_ll, MAC_B)
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        neigh_mac(&bed.c, &b_ll).as_deref(),
        Some(MAC_B),
        "an NA from A moved C's entry for B"
    );
    assert_eq!(
        neigh_mac(&bed.c, &a_ll).as_deref(),
        Some(MAC_A),
        "an NA or NS from A pointed C's entry for A at B"
    );
    assert!(ping6(&bed.c, &b_ll), "C's pings still reach B");

    // A DAD probe for B's address (from ::) and an NS naming B's MAC from a fresh
    // address of A's: neither reaches C.
    let dad = format!(
        "Ether(src='{MAC_A}', dst='33:33:ff:00:00:01')/IPv6(src='::', dst='ff02::1:ff00:1', hlim=255)/ICMPv6ND_NS(tgt='{b_ll}')"
    );
    assert!(
        !nd_seen(&bed.c, &b_ll, || send(&bed.a, &dad)),
        "a DAD probe for B's address from A reached C"
    );

    // Frames from A with a source it does not own reach no one; from its own
    // address they do. Spoofs: B's link-local, a global and a ULA address, B's MAC,
    // and B's address behind a priority tag (VLAN 0, which receivers take as
    // untagged) or two; the same tags in front of IPv4 from B's address.
    let v4 = |tag: &str, marker: &str| {
        format!(
            "Ether(src='{MAC_A}', dst='ff:ff:ff:ff:ff:ff'){tag}/IP(src='10.9.0.11', dst='10.9.0.255')/UDP(sport=5555, dport=5555)/Raw(b'{marker}')"
        )
    };
    let frames = format!(
        "[{own}, {b}, {g}, {u}, {mac}, {tag}, {qinq}, {v4tag}, {v4qinq}]",
        own = udp_all(MAC_A, &a_ll, "own-ll"),
        b = udp_all(MAC_A, &b_ll, "spoof-b-ll"),
        g = udp_all(MAC_A, "2001:db8::a", "spoof-global"),
        u = udp_all(MAC_A, "fd00::a", "spoof-ula"),
        mac = udp_all(MAC_B, &b_ll, "spoof-b-mac"),
        tag = udp_all(MAC_A, &b_ll, "spoof-vlan0").replacen(")/IPv6", ")/Dot1Q(vlan=0)/IPv6", 1),
        qinq = udp_all(MAC_A, &b_ll, "spoof-qinq").replacen(
            ")/IPv6",
            ")/Dot1AD(vlan=0)/Dot1Q(vlan=0)/IPv6",
            1
        ),
        v4tag = v4("/Dot1Q(vlan=0)", "spoof-v4-vlan0"),
        v4qinq = v4("/Dot1AD(vlan=0)/Dot1Q(vlan=0)", "spoof-v4-qinq"),
    );
    let markers = [
        "own-ll",
        "spoof-b-ll",
        "spoof-global",
        "spoof-ula",
        "spoof-b-mac",
        "spoof-vlan0",
        "spoof-qinq",
        "spoof-v4-vlan0",
        "spoof-v4-qinq",
    ];
    for ns in [&bed.c, &bed.b] {
        let got = arrived(ns, &markers, || send(&bed.a, &frames));
        assert_eq!(got, vec!["own-ll".to_string()], "arrived at {}", ns.name);
    }
    // And C still reaches B, and A still reaches both.
    assert!(ping6(&bed.c, &b_ll));
    assert!(ping6(&bed.a, &b_ll));
    assert!(ping6(&bed.a, &c_ll));
}

#[test]
fn own_addresses_dad_and_new_link_locals_work_and_switch_networks_are_unchanged() {
    let bed = setup();
    let _e = Econet::start(&bed.dev, &config(&bed, "1", false));
    let (a_ll, b_ll) = (link_local(&bed.a), link_local(&bed.b));
    // A's own link-local traffic and neighbour discovery.
    assert!(ping6_within(&bed.a, &b_ll, 5), "A reaches B");
    assert_eq!(neigh_mac(&bed.a, &b_ll).as_deref(), Some(MAC_B));
    assert_eq!(neigh_mac(&bed.b, &a_ll).as_deref(), Some(MAC_A));
    let bind = nft_set(&bed.dev, &format!("bind6_{BRIDGE}"));
    assert!(bind.contains(&a_ll) && bind.contains(MAC_A), "{bind}");

    // A new link-local address: its DAD probe (from ::) reaches the others, DAD
    // passes, and the address works.
    let new = "fe80::a:1";
    let seen = nd_seen(&bed.b, new, || {
        bed.a
            .ip(&["-6", "addr", "add", &format!("{new}/64"), "dev", "eth0"]);
        assert!(
            wait_until(Duration::from_secs(5), || {
                let out = bed.a.ip(&["-6", "-o", "addr", "show", "dev", "eth0"]);
                let s = stdout(&out);
                s.contains(new)
                    && !s
                        .lines()
                        .any(|l| l.contains(new) && l.contains("tentative"))
            }),
            "DAD of {new} did not finish"
        );
    });
    assert!(seen, "A's DAD probe for {new} did not reach B");
    let idx = bed.a.ifindex("eth0").unwrap().to_string();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.bind(('{new}', 0, 0, {idx}))\ns.sendto(b'from-new-ll', ('{b_ll}', 5555, 0, {idx}))"
    );
    let got = arrived(&bed.b, &["from-new-ll"], || {
        bed.a.exec(&["/usr/bin/python3", "-c", &script]);
    });
    assert_eq!(got, vec!["from-new-ll".to_string()]);
    // B cannot take it now: its DAD probe is dropped and so is its traffic from it.
    let spoof = udp_all(MAC_B, new, "b-takes-new");
    let got = arrived(&bed.c, &["b-takes-new"], || send(&bed.b, &spoof));
    assert!(got.is_empty(), "B used A's address");

    // A switch network is L2: IPv6 passes unchanged, global sources included.
    let (s1_ll, _) = (link_local(&bed.s1), link_local(&bed.s2));
    let s1_mac = mac_of(&bed.s1);
    let frames = format!(
        "[{}, {}]",
        udp_all(&s1_mac, &s1_ll, "switch-ll"),
        udp_all(&s1_mac, "2001:db8::51", "switch-global")
    );
    let got = arrived(&bed.s2, &["switch-ll", "switch-global"], || {
        send(&bed.s1, &frames)
    });
    assert_eq!(got.len(), 2, "on the switch network: {got:?}");
}

#[test]
fn claims_survive_a_rebuild_of_the_firewall() {
    let bed = setup();
    let e = Econet::start(&bed.dev, &config(&bed, "1", false));
    let (a_ll, b_ll) = (link_local(&bed.a), link_local(&bed.b));
    assert!(ping6_within(&bed.c, &b_ll, 5), "C reaches B");
    let claims = format!("claim6_{BRIDGE}");
    assert!(nft_set(&bed.dev, &claims).contains(&b_ll));
    let handle = |dev: &Netns| {
        stdout(&dev.exec(&["nft", "-a", "list", "table", "bridge", "econet"]))
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let before = handle(&bed.dev);

    // A new ECO changes the firewall's structure: the bridge table is replaced.
    e.reload(&config(&bed, "2", true));
    assert!(
        wait_until(Duration::from_secs(5), || handle(&bed.dev) != before),
        "the bridge table was not rebuilt"
    );
    // B, silent since, still holds its address: A cannot take it.
    assert!(nft_set(&bed.dev, &claims).contains(&b_ll));
    let na = format!(
        "Ether(src='{MAC_A}', dst='33:33:00:00:00:01')/IPv6(src='{b_ll}', dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt='{b_ll}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{MAC_A}')"
    );
    let frames = format!("[{na}, {}]", udp_all(MAC_A, &b_ll, "after-rebuild"));
    let got = arrived(&bed.c, &["after-rebuild"], || send(&bed.a, &frames));
    assert!(got.is_empty(), "A took B's address after the rebuild");
    assert_eq!(neigh_mac(&bed.c, &b_ll).as_deref(), Some(MAC_B));
    assert!(ping6(&bed.c, &b_ll));
    // The new ECO has its own link-local and reaches the others.
    let d_ll = link_local(&bed.d);
    assert!(ping6_within(&bed.d, &a_ll, 5), "D reaches A");
    assert!(nft_set(&bed.dev, &format!("bind6_{BRIDGE}")).contains(&d_ll));
}
