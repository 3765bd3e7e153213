//! IPv6 on local networks (`ip.subnet6`, `gateway6`, `slaac`, endpoint `ip6`, IPv6
//! addresses in `static_dns`): defaults, and every rule with its exact message.

use super::*;
use crate::addr::Ipv6Net;
use std::net::{Ipv4Addr, Ipv6Addr};

const SPEC: &str = include_str!("../../board/examples/spec-device.json");
const DUAL: &str = include_str!("../../board/examples/dual-stack-device.json");

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn errors(doc: &str) -> Vec<String> {
    match parse(doc.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// Replaces the first occurrence of `from` in `doc`.
fn with(doc: &str, from: &str, to: &str) -> String {
    assert!(doc.contains(from), "example lacks {from:?}");
    doc.replacen(from, to, 1)
}

/// The spec example with `lan` made dual stack, as the spec's IPv6 section writes it.
fn spec_dual() -> String {
    with(
        SPEC,
        "\"subnet\": \"10.1.0.0/24\",",
        "\"subnet\": \"10.1.0.0/24\", \"subnet6\": \"fd00:1:2:3::/64\",",
    )
}

/// Asserts that `doc` is rejected with exactly the error `want`, among others.
fn rejected(doc: &str, want: &str) {
    let e = errors(doc);
    assert!(
        e.iter().any(|e| e == want),
        "wanted the error {want:?}, got {e:#?}"
    );
}

fn only_error(doc: &str, want: &str) {
    assert_eq!(errors(doc), vec![want.to_string()]);
}

#[test]
fn the_spec_dual_stack_snippet_is_accepted_with_defaults() {
    let doc = r#"{
      "device_id": "d",
      "ports": [{"name": "eth0", "ifname": "eth0"}],
      "networks": [{"id": "n1", "name": "lan", "type": "local", "port": "eth0",
                    "ip": {"subnet": "10.1.0.0/24", "subnet6": "fd00:1:2:3::/64"}}],
      "apps": [{"id": "a1", "name": "web", "interfaces": [
        {"name": "eth0", "network": "n1", "attach": {"netns": "/run/netns/web"}}]}]
    }"#;
    let c = parse(doc.as_bytes()).expect("the spec's dual-stack network");
    let ip = c.networks[0].ip.as_ref().unwrap();
    assert_eq!(ip.gateway, Ipv4Addr::new(10, 1, 0, 1));
    let v6 = ip.v6.as_ref().unwrap();
    assert_eq!(
        *v6,
        L3v6 {
            subnet6: "fd00:1:2:3::/64".parse::<Ipv6Net>().unwrap(),
            gateway6: a6("fd00:1:2:3::1"),
            slaac: false,
            range6_start: a6("fd00:1:2:3::1000"),
            range6_end: a6("fd00:1:2:3::ffff"),
        }
    );
    assert!(v6.in_dhcp6_range(a6("fd00:1:2:3::1000")));
    assert!(v6.in_dhcp6_range(a6("fd00:1:2:3::ffff")));
    assert!(!v6.in_dhcp6_range(a6("fd00:1:2:3::fff")));
    assert!(!v6.in_dhcp6_range(a6("fd00:1:2:3::1:0")));
    assert!(!v6.in_dhcp6_range(a6("fd00:1:2:4::1000")));
    assert_eq!(c.apps[0].interfaces[0].ip6, None);
    // The same network inside the spec's full example.
    let c = parse(spec_dual().as_bytes()).expect("spec example, dual stack");
    let v6 = c.networks[0].ip.as_ref().unwrap().v6.as_ref().unwrap();
    assert_eq!(v6.gateway6, a6("fd00:1:2:3::1"));
}

#[test]
fn the_dual_stack_example_is_accepted() {
    let c = parse(DUAL.as_bytes()).expect("board/examples/dual-stack-device.json");
    let lan = c.networks[0].ip.as_ref().unwrap().v6.as_ref().unwrap();
    assert_eq!(lan.subnet6.to_string(), "fd00:1:2:3::/64");
    assert_eq!(lan.gateway6, a6("fd00:1:2:3::1"));
    assert!(!lan.slaac);
    let plant = c.networks[1].ip.as_ref().unwrap().v6.as_ref().unwrap();
    assert_eq!(plant.gateway6, a6("fd00:1:2:4::1"));
    assert!(plant.slaac);
    assert_eq!(c.networks[2].ip.as_ref().unwrap().v6, None);
    let db = &c.networks[0].static_dns[0];
    assert_eq!(db.addrs, vec![Ipv4Addr::new(10, 1, 0, 5)]);
    assert_eq!(db.addrs6, vec![a6("fd00:1:2:3::5")]);
    let historian = &c.networks[0].static_dns[1];
    assert!(historian.addrs.is_empty());
    assert_eq!(historian.addrs6, vec![a6("2001:db8:42::10")]);
    let web = &c.apps[0].interfaces[0];
    assert_eq!(web.ip, Some(Ipv4Addr::new(10, 1, 0, 20)));
    assert_eq!(web.ip6, Some(a6("fd00:1:2:3::20")));
    assert_eq!(c.apps[1].interfaces[0].ip6, Some(a6("fd00:1:2:4::1:7")));
    assert_eq!(c.apps[1].interfaces[1].ip6, None);
}

#[test]
fn a_config_without_ipv6_parses_as_before() {
    let c = parse(SPEC.as_bytes()).unwrap();
    for n in &c.networks {
        assert_eq!(n.ip.as_ref().and_then(|ip| ip.v6.as_ref()), None);
        for h in &n.static_dns {
            assert!(h.addrs6.is_empty());
        }
    }
    assert!(c.endpoints().all(|(_, i)| i.ip6.is_none()));
    assert_eq!(
        c.networks[0].static_dns[0].addrs,
        vec![Ipv4Addr::new(10, 1, 0, 5)]
    );
    // Null is absent, as for every optional field.
    let nulls = with(
        &with(
            SPEC,
            "\"lease_secs\": 3600",
            "\"lease_secs\": 3600, \"subnet6\": null, \"gateway6\": null, \"slaac\": null",
        ),
        "\"ip\": \"10.3.0.20\"",
        "\"ip\": \"10.3.0.20\", \"ip6\": null",
    );
    assert_eq!(parse(nulls.as_bytes()), Ok(c));
}

#[test]
fn subnet6_must_be_a_unicast_64_without_host_bits() {
    let net = |s: &str| {
        with(
            SPEC,
            "\"subnet\": \"10.1.0.0/24\",",
            &format!("\"subnet\": \"10.1.0.0/24\", \"subnet6\": \"{s}\","),
        )
    };
    for (subnet6, msg) in [
        (
            "fd00:1:2::/48",
            "fd00:1:2::/48 is not a /64 (router advertisements and SLAAC need one)",
        ),
        (
            "fd00:1:2:3::/80",
            "fd00:1:2:3::/80 is not a /64 (router advertisements and SLAAC need one)",
        ),
        (
            "fd00:1:2:3::5/64",
            "\"fd00:1:2:3::5/64\" has host bits set (did you mean fd00:1:2:3::/64?)",
        ),
        (
            "10.1.0.0/24",
            "\"10.1.0.0/24\" is not an IPv6 prefix (like fd00:1:2:3::/64)",
        ),
        (
            "fd00:1:2:3::",
            "\"fd00:1:2:3::\" is not an IPv6 prefix (like fd00:1:2:3::/64)",
        ),
        ("fe80::/64", "fe80::/64 overlaps fe80::/10 (link-local)"),
        ("febf:1::/64", "febf:1::/64 overlaps fe80::/10 (link-local)"),
        ("ff02::/64", "ff02::/64 overlaps ff00::/8 (multicast)"),
        ("::1/128", "::1/128 overlaps ::1/128 (loopback)"),
        ("::/128", "::/128 overlaps ::/128 (unspecified)"),
        ("::/64", "::/64 overlaps ::/128 (unspecified)"),
        (
            "::ffff:10.1.0.0/120",
            "::ffff:10.1.0.0/120 overlaps ::ffff:0:0/96 (IPv4-mapped)",
        ),
    ] {
        only_error(&net(subnet6), &format!("networks[0].ip.subnet6: {msg}"));
    }
    // Unique local, global and documentation prefixes are fine.
    for ok in [
        "fd00::/64",
        "2a01:4f8:1:2::/64",
        "2001:db8::/64",
        "fec0::/64",
    ] {
        assert_eq!(errors(&net(ok)), Vec::<String>::new(), "{ok}");
    }
}

#[test]
fn subnet6_only_on_local_networks_for_now() {
    rejected(
        &with(
            SPEC,
            "\"ip\": {\"subnet\": \"10.3.0.0/24\",",
            "\"ip\": {\"subnet\": \"10.3.0.0/24\", \"subnet6\": \"fd00:3::/64\",",
        ),
        "networks[2].ip.subnet6: is not supported on a cloud network (IPv6 is for local networks only, for now)",
    );
    rejected(
        &with(
            SPEC,
            "\"ip\": {\"subnet\": \"10.200.0.0/16\",",
            "\"ip\": {\"subnet\": \"10.200.0.0/16\", \"subnet6\": \"fd00:200::/64\",",
        ),
        "networks[3].ip.subnet6: is not supported on a mesh network (IPv6 is for local networks only, for now)",
    );
    let switch = with(
        SPEC,
        "\"type\": \"switch\", \"port\": \"eth1\"",
        "\"type\": \"switch\", \"port\": \"eth1\", \"ip\": {\"subnet6\": \"fd00:9::/64\"}",
    );
    assert_eq!(
        errors(&switch),
        vec![
            "networks[1].ip: is not allowed on a switch network (L2: no IP services)",
            "networks[1].ip.subnet6: is not allowed on a switch network (IPv6 frames pass through it unchanged)",
        ]
    );
}

#[test]
fn gateway6_and_slaac_need_subnet6() {
    for (field, value) in [
        ("gateway6", "\"fd00:1:2:3::1\""),
        ("slaac", "true"),
        ("slaac", "false"),
    ] {
        only_error(
            &with(
                SPEC,
                "\"lease_secs\": 3600",
                &format!("\"lease_secs\": 3600, \"{field}\": {value}"),
            ),
            &format!("networks[0].ip.{field}: is only allowed with subnet6"),
        );
    }
    // On a cloud network too, where subnet6 itself is not allowed.
    only_error(
        &with(
            SPEC,
            "\"dns\": [\"172.31.0.2\"]",
            "\"dns\": [\"172.31.0.2\"], \"slaac\": true",
        ),
        "networks[2].ip.slaac: is only allowed with subnet6",
    );
}

#[test]
fn gateway6_rules() {
    let gw = |g: &str| {
        with(
            &spec_dual(),
            "\"lease_secs\": 3600",
            &format!("\"lease_secs\": 3600, \"gateway6\": \"{g}\""),
        )
    };
    for (g, msg) in [
        (
            "fd00:1:2:4::1",
            "fd00:1:2:4::1 is outside the subnet6 fd00:1:2:3::/64",
        ),
        (
            "fd00:1:2:3::",
            "fd00:1:2:3:: is the subnet-router anycast address of fd00:1:2:3::/64",
        ),
        (
            "fd00:1:2:3::1000",
            "fd00:1:2:3::1000 is inside the DHCPv6 range fd00:1:2:3::1000-fd00:1:2:3::ffff",
        ),
        (
            "fd00:1:2:3::ffff",
            "fd00:1:2:3::ffff is inside the DHCPv6 range fd00:1:2:3::1000-fd00:1:2:3::ffff",
        ),
        ("10.1.0.1", "\"10.1.0.1\" is not an IPv6 address"),
        (
            "fd00:1:2:3::1/64",
            "\"fd00:1:2:3::1/64\" is not an IPv6 address",
        ),
    ] {
        only_error(&gw(g), &format!("networks[0].ip.gateway6: {msg}"));
    }
    let c = parse(gw("fd00:1:2:3:ffff:ffff:ffff:fffe").as_bytes()).unwrap();
    let v6 = c.networks[0].ip.as_ref().unwrap().v6.as_ref().unwrap();
    assert_eq!(v6.gateway6, a6("fd00:1:2:3:ffff:ffff:ffff:fffe"));
}

#[test]
fn subnet6_must_not_overlap_another_networks() {
    let doc = with(
        DUAL,
        "\"subnet6\": \"fd00:1:2:4::/64\"",
        "\"subnet6\": \"fd00:1:2:3::/64\"",
    );
    // An endpoint there keeps its own rules (plc's ip6 is now outside its subnet6).
    rejected(
        &doc,
        "networks[1].ip.subnet6: overlaps networks[0] (fd00:1:2:3::/64)",
    );
    // The same /64 written differently is the same prefix.
    let doc = with(
        DUAL,
        "\"subnet6\": \"fd00:1:2:4::/64\"",
        "\"subnet6\": \"FD00:0001:0002:0003:0:0:0:0/64\"",
    );
    rejected(
        &doc,
        "networks[1].ip.subnet6: overlaps networks[0] (fd00:1:2:3::/64)",
    );
}

#[test]
fn errors_of_subnet6_come_with_those_of_subnet() {
    let doc = with(
        &spec_dual(),
        "\"subnet6\": \"fd00:1:2:3::/64\"",
        "\"subnet6\": \"fd00:1:2::/48\"",
    );
    let doc = with(
        &doc,
        "\"subnet\": \"10.1.0.0/24\"",
        "\"subnet\": \"10.1.0.0/33\"",
    );
    let e = errors(&doc);
    assert!(
        e.contains(&"networks[0].ip.subnet6: fd00:1:2::/48 is not a /64 (router advertisements and SLAAC need one)".to_string())
            && e.iter().any(|e| e.starts_with("networks[0].ip.subnet: \"10.1.0.0/33\"")),
        "{e:#?}"
    );
}

#[test]
fn endpoint_ip6_rules() {
    // apps[0].interfaces[0] is web's eth0 on lan; apps[1].interfaces[1] is plc's eth1
    // on lan (by DHCPv6); apps[1].interfaces[2] is on legacy (IPv4 only).
    let web = |ip6: &str| {
        with(
            DUAL,
            "\"ip6\": \"fd00:1:2:3::20\"",
            &format!("\"ip6\": \"{ip6}\""),
        )
    };
    let p = "apps[0].interfaces[0].ip6";
    for (ip6, msg) in [
        (
            "fd00:1:2:4::20",
            "fd00:1:2:4::20 is outside the subnet6 fd00:1:2:3::/64",
        ),
        (
            "fe80::20",
            "fe80::20 is outside the subnet6 fd00:1:2:3::/64",
        ),
        ("fd00:1:2:3::1", "fd00:1:2:3::1 is the gateway6 address"),
        (
            "fd00:1:2:3::",
            "fd00:1:2:3:: is the subnet-router anycast address",
        ),
        (
            "fd00:1:2:3::1000",
            "fd00:1:2:3::1000 is inside the DHCPv6 range fd00:1:2:3::1000-fd00:1:2:3::ffff",
        ),
        (
            "fd00:1:2:3::abcd",
            "fd00:1:2:3::abcd is inside the DHCPv6 range fd00:1:2:3::1000-fd00:1:2:3::ffff",
        ),
        (
            "fd00:1:2:3::ffff",
            "fd00:1:2:3::ffff is inside the DHCPv6 range fd00:1:2:3::1000-fd00:1:2:3::ffff",
        ),
        ("10.1.0.20", "\"10.1.0.20\" is not an IPv6 address"),
    ] {
        only_error(&web(ip6), &format!("{p}: {msg}"));
    }
    // Just outside the range, and the rest of the /64, are free for statics.
    for ip6 in [
        "fd00:1:2:3::2",
        "fd00:1:2:3::fff",
        "fd00:1:2:3::1:0",
        "fd00:1:2:3:ffff:ffff:ffff:ffff",
    ] {
        let c = parse(web(ip6).as_bytes()).unwrap_or_else(|e| panic!("{ip6}: {e:?}"));
        assert_eq!(c.apps[0].interfaces[0].ip6, Some(a6(ip6)));
    }
    // Two endpoints with one address.
    let doc = with(
        DUAL,
        "\"attach\": {\"tap\": \"vif-plc1\"}",
        "\"ip6\": \"fd00:1:2:3::20\", \"attach\": {\"tap\": \"vif-plc1\"}",
    );
    only_error(
        &doc,
        "apps[1].interfaces[1].ip6: fd00:1:2:3::20 is also used by apps[0].interfaces[0]",
    );
    // A network without subnet6, and a switch network.
    let doc = with(
        DUAL,
        "\"attach\": {\"tap\": \"vif-plc2\"}",
        "\"ip6\": \"fd00:1:2:5::20\", \"attach\": {\"tap\": \"vif-plc2\"}",
    );
    only_error(
        &doc,
        "apps[1].interfaces[2].ip6: network \"legacy\" has no IPv6 (no ip.subnet6)",
    );
    let doc = with(
        SPEC,
        "\"mac\": \"02:16:3e:00:00:01\",",
        "\"mac\": \"02:16:3e:00:00:01\", \"ip6\": \"fd00::1\",",
    );
    only_error(
        &doc,
        "apps[1].interfaces[0].ip6: network \"fieldbus\" is a switch network: it has no addresses",
    );
    let doc = with(
        SPEC,
        "\"ip\": \"10.3.0.20\"",
        "\"ip\": \"10.3.0.20\", \"ip6\": \"fd00::1\"",
    );
    only_error(
        &doc,
        "apps[1].interfaces[1].ip6: network \"to-vpc\" has no IPv6 (no ip.subnet6)",
    );
}

#[test]
fn static_dns_takes_ipv6_addresses() {
    let addrs = |list: &str| {
        with(
            DUAL,
            "\"addrs\": [\"10.1.0.5\", \"fd00:1:2:3::5\"]",
            &format!("\"addrs\": [{list}]"),
        )
    };
    let p = "networks[0].static_dns[0].addrs";
    only_error(
        &addrs("\"10.1.0.5\", \"::\""),
        &format!("{p}[1]: :: is not a unicast IPv6 address"),
    );
    only_error(
        &addrs("\"ff02::1\""),
        &format!("{p}[0]: ff02::1 is not a unicast IPv6 address"),
    );
    only_error(
        &addrs("\"db.example\""),
        &format!("{p}[0]: \"db.example\" is not an IPv4 or IPv6 address"),
    );
    only_error(&addrs(""), &format!("{p}: must not be empty"));
    // Either, or both, up to eight in all.
    let eight = "\"10.1.0.5\", \"10.1.0.6\", \"10.1.0.7\", \"10.1.0.8\", \"fd00::5\", \"fd00::6\", \"fd00::7\", \"2001:db8::8\"";
    let c = parse(addrs(eight).as_bytes()).unwrap();
    let h = &c.networks[0].static_dns[0];
    assert_eq!(h.addrs.len(), 4);
    assert_eq!(
        h.addrs6,
        vec![
            a6("fd00::5"),
            a6("fd00::6"),
            a6("fd00::7"),
            a6("2001:db8::8")
        ]
    );
    let e = errors(&addrs(&format!("{eight}, \"fd00::9\"")));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{p}: too many entries: 9")),
        "{e:?}"
    );
    // On a network without subnet6 too: DNS answers AAAA over IPv4 as well.
    let doc = with(
        SPEC,
        "\"addrs\": [\"10.1.0.5\"]",
        "\"addrs\": [\"10.1.0.5\", \"2001:db8::5\"]",
    );
    let c = parse(doc.as_bytes()).unwrap();
    assert_eq!(c.networks[0].static_dns[0].addrs6, vec![a6("2001:db8::5")]);
}

#[test]
fn wrong_json_types_name_the_field() {
    for (from, to, want) in [
        (
            "\"slaac\": false",
            "\"slaac\": \"no\"",
            "networks[0].ip.slaac: expected true or false, found a string",
        ),
        (
            "\"subnet6\": \"fd00:1:2:3::/64\"",
            "\"subnet6\": 64",
            "networks[0].ip.subnet6: expected a string of at most 48 characters, found a number",
        ),
        (
            "\"gateway6\": \"fd00:1:2:3::1\"",
            "\"gateway6\": [\"fd00:1:2:3::1\"]",
            "networks[0].ip.gateway6: expected a string of at most 48 characters, found an array",
        ),
        (
            "\"ip6\": \"fd00:1:2:3::20\"",
            "\"ip6\": true",
            "apps[0].interfaces[0].ip6: expected a string of at most 48 characters, found true or false",
        ),
    ] {
        only_error(&with(DUAL, from, to), want);
    }
}
