//! Endpoint ACLs for IPv6 on a dual-stack local network, with real clients: ECOs
//! with static `ip6` behind a device whose port has a global address (NAT66 on),
//! an upstream with addresses on and beyond the port's link. What an ACE allows
//! gets through (masqueraded), what it drops and what no ACE matches does not,
//! `limit` holds a flood to about its rate, `dir` works between ECOs, IPv4-only ACEs
//! never match IPv6, an endpoint with `acls: []` keeps ND and DNS only, and IPv6
//! counts on the same per-ACE counters as IPv4.

mod common;

use common::acl::*;
use common::clients::{dig, tcp_ask, tcp_whoami};
use common::*;
use std::time::Duration;

const GW6: &str = "fd00:9::1";
const A6: &str = "fd00:9::a";
const B6: &str = "fd00:9::b";
const C6: &str = "fd00:9::c";
/// The port's address (what the upstream sees of NAT66).
const PORT6: &str = "2001:db8:1::2";
/// The upstream on the port's link, and two addresses beyond it.
const UP6: &str = "2001:db8:1::1";
const FAR6: &str = "2001:db8:7::1";
const FAR6_DROP: &str = "2001:db8:7::2";

struct Bed {
    dev: Netns,
    up: Netns,
    a: Netns,
    b: Netns,
    c: Netns,
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
        a: Netns::new("a"),
        b: Netns::new("b"),
        c: Netns::new("c"),
    };
    for ns in [&b.dev, &b.up, &b.a, &b.b, &b.c] {
        ipv6_on(ns);
    }
    veth(&b.dev, "eth0", &b.up, "eth0");
    b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    b.up.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.dev.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{PORT6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    b.up.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{UP6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    for far in [FAR6, FAR6_DROP] {
        b.up.ip(&["-6", "addr", "add", &format!("{far}/128"), "dev", "lo"]);
    }
    b.dev.ip(&["-6", "route", "add", "default", "via", UP6]);
    b
}

/// A's ACL: a drop for one upstream address, TCP 8080 and (limited) UDP 9999 to the
/// far prefix, TCP 7000 from the ECO network as INGRESS, and all IPv4 (which must
/// not match IPv6). B: `acls: []`. C: none.
const ACL_A: &str = r#"[
  {"id": 10, "matches": [{"type": "ip", "value": "2001:db8:7::2"}], "actions": [{"drop": true}]},
  {"id": 11, "matches": [{"type": "ip", "value": "2001:db8:7::/64"}, {"type": "protocol", "value": "tcp"}, {"type": "fport", "value": "8080"}], "dir": "EGRESS"},
  {"id": 12, "matches": [{"type": "ip", "value": "2001:db8:7::/64"}, {"type": "protocol", "value": "udp"}, {"type": "fport", "value": "9999"}],
   "actions": [{"limit": true, "limitrate": 10, "limitunit": "s", "limitburst": 10}], "dir": "EGRESS"},
  {"id": 13, "matches": [{"type": "ip", "value": "fd00:9::/64"}, {"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "7000"}], "dir": "INGRESS"},
  {"id": 14, "matches": [{"type": "ip", "value": "0.0.0.0/0"}]}
]"#;

fn config(b: &Bed) -> String {
    let eco = |id: &str, ns: &Netns, ip: &str, ip6: &str, acls: Option<&str>| {
        let acls = acls
            .map(|a| format!(r#", "acls": {a}"#))
            .unwrap_or_default();
        format!(
            r#"{{"id": "{id}", "name": "{id}", "interfaces": [{{"name": "eth0", "network": "lan", "ip": "{ip}", "ip6": "{ip6}", "attach": {{"netns": "{}"}}{acls}}}]}}"#,
            ns.path()
        )
    };
    let apps = [
        eco("a", &b.a, "10.9.0.10", A6, Some(ACL_A)),
        eco("b", &b.b, "10.9.0.11", B6, Some("[]")),
        eco("c", &b.c, "10.9.0.12", C6, None),
    ];
    format!(
        r#"{{
  "device_id": "dev-acl6", "config_version": "1",
  "ports": [{{"name": "eth0", "ifname": "eth0", "labels": ["uplink"], "cost": 0}}],
  "networks": [
    {{"id": "lan", "name": "lan", "type": "local", "port": "uplink",
      "ip": {{"subnet": "10.9.0.0/24", "dhcp_range": {{"start": "10.9.0.100", "end": "10.9.0.200"}},
             "subnet6": "fd00:9::/64", "domain": "eco.internal"}}}}
  ],
  "apps": [{}]
}}"#,
        apps.join(",\n")
    )
}

/// Adds `addr`/64 to eth0 in `ns`, waits for DAD (at most 5 s), routes by the gateway.
fn add_addr(ns: &Netns, addr: &str) {
    ns.ip(&["-6", "addr", "add", &format!("{addr}/64"), "dev", "eth0"]);
    let done = wait_until(Duration::from_secs(5), || {
        let s = stdout(&ns.ip(&["-6", "-o", "addr", "show", "dev", "eth0"]));
        s.contains(addr)
            && !s
                .lines()
                .any(|l| l.contains(addr) && l.contains("tentative"))
    });
    assert!(done, "DAD of {addr} in {} did not finish", ns.name);
    ns.ip(&[
        "-6", "route", "replace", "default", "via", GW6, "dev", "eth0",
    ]);
}

fn ready(b: &Bed) -> Econet {
    let e = Econet::start(&b.dev, &config(b));
    for (ns, addr) in [(&b.a, A6), (&b.b, B6), (&b.c, C6)] {
        add_addr(ns, addr);
    }
    // NAT66 in place (the port has a global address and a default route).
    let up = wait_until(Duration::from_secs(10), || {
        stdout(&b.dev.exec(&["nft", "list", "ruleset"]))
            .contains("ip6 saddr fd00:9::/64 oifname \"eth0\" masquerade")
    });
    assert!(
        up,
        "no NAT66: {}",
        stdout(&b.dev.exec(&["nft", "list", "ruleset"]))
    );
    e
}

fn ace(c: &[AceCount], id: u32) -> AceCount {
    c.iter()
        .find(|a| a.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("no ACE {id} in {c:?}"))
}

/// The per-ACE counters of `app` once `ok` holds of them (at most 5 s).
fn counters_until(e: &Econet, app: &str, ok: impl Fn(&[AceCount]) -> bool) -> Vec<AceCount> {
    let mut last = None;
    wait_until(Duration::from_secs(5), || {
        last = ace_counters(&e.status_json(), app, "eth0");
        last.as_deref().is_some_and(&ok)
    });
    last.unwrap_or_else(|| panic!("no per-ACE counters for {app}: {}", e.status_json()))
}

#[test]
fn ipv6_aces_allow_drop_limit_and_fall_through_to_the_implicit_drop() {
    let b = setup();
    let e = ready(&b);
    let _far = tcp_whoami(&b.up, FAR6, 8080, 60);
    let _far2 = tcp_whoami(&b.up, FAR6_DROP, 8080, 60);
    let _near = tcp_whoami(&b.up, UP6, 8080, 60);

    // Allowed: TCP 8080 to the far prefix, masqueraded to the port's address.
    let seen = (0..5).find_map(|_| tcp_ask(&b.a, FAR6, 8080));
    assert_eq!(seen.as_deref(), Some(PORT6), "A to the far prefix");
    // C (no ACLs) gets out the same way: NAT66 itself works.
    assert_eq!(tcp_ask(&b.c, UP6, 8080).as_deref(), Some(PORT6));
    // Not allowed: another upstream address (no ACE: the IPv4 0.0.0.0/0 one does
    // not match IPv6), and the address the first ACE drops.
    assert!(tcp_blocked(&b.a, UP6, 8080), "A reached {UP6}");
    assert!(tcp_blocked(&b.a, FAR6_DROP, 8080), "A reached {FAR6_DROP}");
    // Not allowed: the allowed prefix on another port.
    assert!(tcp_blocked(&b.a, FAR6, 8081), "A reached {FAR6}:8081");

    // limit: 10/s, bursts of 10: of 100 datagrams over 2 s, about 30 pass.
    let c = UdpCounter::start(&b.up, FAR6, 9999, 4);
    udp_flood(&b.a, FAR6, 9999, 100, 2.0);
    let n = c.count();
    assert!(
        (10..=50).contains(&n),
        "{n} of 100 datagrams passed a 10/s limit"
    );

    // IPv6 counts on the ACE counters: the allow, the drop, the limit, the implicit.
    let c = counters_until(&e, "a", |c| {
        c.iter().any(|a| a.id == 0 && a.packets >= 2)
            && c.iter().any(|a| a.id == 12 && a.packets >= 50)
    });
    assert!(ace(&c, 11).packets >= 3, "{c:?}");
    assert!(ace(&c, 10).packets >= 1, "{c:?}");
    assert!(ace(&c, 12).packets >= 50, "{c:?}");
    assert!(ace(&c, 0).packets >= 2, "{c:?}");
    assert_eq!(ace(&c, 14).packets, 0, "IPv4 ACE counted IPv6: {c:?}");
}

#[test]
fn dir_and_an_empty_acl_between_ecos_and_to_the_device() {
    let b = setup();
    let _e = ready(&b);
    // INGRESS: C may connect to A's 7000; A may not start a flow to C's 7000 (no
    // EGRESS ACE for the ECO network), nor be reached on 7001.
    let _a7000 = tcp_whoami(&b.a, A6, 7000, 60);
    let _a7001 = tcp_whoami(&b.a, A6, 7001, 60);
    let _c7000 = tcp_whoami(&b.c, C6, 7000, 60);
    let seen = (0..5).find_map(|_| tcp_ask(&b.c, A6, 7000));
    assert_eq!(seen.as_deref(), Some(C6), "C to A:7000 (INGRESS)");
    assert!(
        tcp_blocked(&b.a, C6, 7000),
        "A started a flow to C (EGRESS)"
    );
    assert!(tcp_blocked(&b.c, A6, 7001), "C reached A:7001");

    // B (acls: []): ND with the gateway and its neighbours, DNS at the gateway;
    // nothing to or from the other ECOs or upstream.
    let _up = tcp_whoami(&b.up, UP6, 8080, 60);
    let _b7000 = tcp_whoami(&b.b, B6, 7000, 60);
    assert!(tcp_blocked(&b.b, UP6, 8080), "B reached upstream");
    assert!(tcp_blocked(&b.b, C6, 7000), "B reached C");
    assert!(tcp_blocked(&b.c, B6, 7000), "C reached B");
    let neigh = stdout(&b.b.ip(&["-6", "neigh", "show", GW6, "dev", "eth0"]));
    assert!(
        neigh.contains("lladdr"),
        "B has no ND entry for the gateway: {neigh}"
    );
    let neigh = stdout(&b.b.ip(&["-6", "neigh", "show", C6, "dev", "eth0"]));
    assert!(neigh.contains("lladdr"), "B has no ND entry for C: {neigh}");
    let answer = (0..3).find_map(|_| dig(&b.b, GW6, &["+short", "AAAA", "c.eco.internal"]));
    assert!(
        answer.as_deref().is_some_and(|a| a.contains(C6)),
        "B's DNS over IPv6: {answer:?}"
    );
}
