//! IPv6 in ACL units: rule building and the map elements of dual-stack endpoints.

use super::*;
use crate::firewall as fw;

const DUAL: &str = include_str!("../../board/examples/dual-stack-device.json");

/// The dual-stack example with `acls` on web's eth0 (lan, static ip6) and plc's eth2
/// (legacy, IPv4 only).
fn cfg(acls: &str) -> Config {
    let web = "\"ip6\": \"fd00:1:2:3::20\", \"attach\": {\"netns\": \"/run/netns/web\"}}";
    let legacy = "\"attach\": {\"tap\": \"vif-plc2\"}}";
    let doc = DUAL
        .replacen(
            web,
            &format!("{}, \"acls\": {acls}}}", &web[..web.len() - 1]),
            1,
        )
        .replacen(
            legacy,
            &format!("{}, \"acls\": {acls}}}", &legacy[..legacy.len() - 1]),
            1,
        );
    match crate::config::parse(doc.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{e:#?}"),
    }
}

/// Whether `rule` has `part` as a contiguous run.
fn has(rule: &[Expr], part: &[Expr]) -> bool {
    rule.windows(part.len()).any(|w| w == part)
}

fn v4(r: &[Expr]) -> bool {
    has(r, &fw::nfproto_ipv4())
}

fn v6(r: &[Expr]) -> bool {
    has(r, &fw::nfproto_ipv6())
}

/// The rules of `rules` that count on ACE `id`'s counter.
fn of<'a>(u: &Unit, rules: &'a [Vec<Expr>], id: u32) -> Vec<&'a Vec<Expr>> {
    let c = counter(u.counter(id));
    rules.iter().filter(|r| r.contains(&c)).collect()
}

fn unit(family: u8, aces: &str, sets: &NetSets, v6: bool) -> Unit {
    let c = cfg(aces);
    let acl = c.apps[0].interfaces[0].acls.clone().unwrap_or_default();
    compile(family, "a", "eth0", "h".into(), &acl, sets, v6)
}

const ACES: &str = r#"[
  {"id": 1, "matches": [{"type": "ip", "value": "2001:db8:1::/48"}, {"type": "protocol", "value": "tcp"}, {"type": "fport", "value": "443"}]},
  {"id": 2, "matches": [{"type": "ip", "value": "192.0.2.0/24"}]},
  {"id": 3, "matches": [{"type": "protocol", "value": "icmp"}]},
  {"id": 4, "matches": [{"type": "protocol", "value": "udp"}, {"type": "fport", "value": "53"}], "actions": [{"drop": true}]},
  {"id": 5, "matches": [{"type": "host", "value": "example.com"}]},
  {"id": 6, "matches": [{"type": "eidset"}]},
  {"id": 7, "matches": [{"type": "ip", "value": "::/0"}], "actions": [{"limit": true, "limitrate": 5, "limitunit": "s", "limitburst": 5}], "dir": "EGRESS"},
  {"id": 8, "matches": [{"type": "ip", "value": "0.0.0.0/0"}], "dir": "INGRESS"}
]"#;

fn sets() -> NetSets {
    NetSets {
        hosts: Some("hosts_x".into()),
        eids: Some("eids_x".into()),
        eids6: vec![
            "fd00:1:2:3::/64".parse().unwrap(),
            "2001:db8:42::10/128".parse().unwrap(),
        ],
    }
}

#[test]
fn ipv6_chains_take_each_ace_by_its_matches() {
    let u = unit(NFPROTO_INET, ACES, &sets(), true);
    assert_eq!(u.chains().len(), 4);
    for rules in [&u.out6_rules, &u.in6_rules] {
        assert!(rules[2..rules.len() - 1].iter().all(|r| v6(r)));
        // ip IPv6: its prefix.
        let r = of(&u, rules, 1);
        assert_eq!(r.len(), 1);
        assert!(r[0].iter().any(|e| matches!(e, Expr::Cmp { data, .. }
            if data[..] == [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
        assert!(has(r[0], &fw::l4proto(6)));
        // ip IPv4 and host: never IPv6.
        for id in [2, 5, 8] {
            assert!(of(&u, rules, id).is_empty(), "{id}");
        }
        // icmp: ICMPv6.
        let r = of(&u, rules, 3);
        assert_eq!(r.len(), 1);
        assert!(has(r[0], &fw::l4proto(58)));
        // No address match: as for IPv4.
        let r = of(&u, rules, 4);
        assert_eq!(r.len(), 1);
        assert!(has(r[0], &fw::l4proto(17)) && r[0].contains(&fw::verdict(NF_DROP)));
        // eidset: a rule per IPv6 prefix.
        assert_eq!(of(&u, rules, 6).len(), 2);
        // ND and MLD pass before any ACE; the implicit drop counts last.
        assert!(rules.iter().any(|r| has(r, &fw::icmpv6_type(135))));
        let last = rules.last().unwrap();
        assert_eq!(last, &vec![counter(u.counter(0)), fw::verdict(NF_DROP)]);
    }
    // dir: EGRESS only out (a limit: counted and dropped over the rate, then a
    // return), INGRESS only in.
    let r = of(&u, &u.out6_rules, 7);
    assert_eq!(r.len(), 1);
    assert!(r[0]
        .iter()
        .any(|e| matches!(e, Expr::Objref { ty: OBJ_LIMIT, .. })));
    assert!(of(&u, &u.in6_rules, 7).is_empty());
    assert_eq!(u.ids, vec![1, 2, 3, 4, 5, 6, 7, 8, 0]);
}

#[test]
fn ipv4_chains_are_as_without_ipv6() {
    // The IPv4 chains of a dual-stack unit are those of an IPv4-only one, but for
    // the IPv6 ACEs, which have none; those of an IPv4-only unit have no IPv6.
    let with = unit(NFPROTO_INET, ACES, &sets(), true);
    let without = unit(NFPROTO_INET, ACES, &sets(), false);
    assert_eq!(
        (with.out_rules.clone(), with.in_rules.clone()),
        (without.out_rules.clone(), without.in_rules.clone())
    );
    assert!(without.out6_rules.is_empty() && without.chains().len() == 2);
    for rules in [&with.out_rules, &with.in_rules] {
        assert!(of(&with, rules, 1).is_empty() && of(&with, rules, 7).is_empty());
        assert!(rules.iter().all(|r| !v6(r) && !v4(r)));
        assert_eq!(of(&with, rules, 3).len(), 1);
    }
    // The same ACEs without the IPv6 ones compile to the same IPv4 rules.
    let v4_only: String = {
        let v: Vec<&str> = ACES.lines().filter(|l| !l.contains("::")).collect();
        v.join("\n")
            .replace("}},\n]", "}}\n]")
            .replace("\"INGRESS\"},\n]", "\"INGRESS\"}\n]")
    };
    let plain = unit(NFPROTO_INET, &v4_only, &sets(), false);
    assert_eq!(plain.out_rules, with.out_rules);
    assert_eq!(plain.in_rules, with.in_rules);
}

#[test]
fn switch_units_see_ipv4_and_ipv6_aces_have_no_rule_there() {
    let u = unit(NFPROTO_BRIDGE, ACES, &NetSets::default(), false);
    for rules in [&u.out_rules, &u.in_rules] {
        assert!(of(&u, rules, 1).is_empty());
        for id in [2, 3, 4] {
            let r = of(&u, rules, id);
            assert_eq!(r.len(), 1, "{id}");
            assert!(!v4(r[0]) && !v6(r[0]));
        }
    }
    assert!(u.ids.contains(&1) && u.chains().len() == 2);
}

/// The dual-stack example's desired ACL objects, with a DHCPv6 lease and a nested
/// guest's IPv4 lease on web's port.
fn spec_of(acls: &str) -> (Config, AclSpec, String) {
    let c = cfg(acls);
    let web = &c.apps[0].interfaces[0];
    let guest: MacAddr = "02:00:00:00:00:99".parse().unwrap();
    let allowed = vec![
        Allowed::new(&web.host_ifname, web.eco_mac(&c.apps[0].id), web.ip),
        Allowed::new(&web.host_ifname, guest, Some("10.1.0.150".parse().unwrap())),
    ];
    let allowed6 = vec![
        Allowed6::new(
            &web.host_ifname,
            web.eco_mac(&c.apps[0].id),
            "fd00:1:2:3::20".parse().unwrap(),
        ),
        Allowed6::new(
            &web.host_ifname,
            web.eco_mac(&c.apps[0].id),
            "fd00:1:2:3::1:77".parse().unwrap(),
        ),
    ];
    let d = desired(&c, &Facts::default(), &allowed, &allowed6);
    let port = web.host_ifname.clone();
    (c, d, port)
}

#[test]
fn dual_stack_endpoints_enter_their_unit_by_mac_out_and_by_admitted_address_in() {
    let (c, d, port) =
        spec_of(r#"[{"id": 1, "matches": [{"type": "ip", "value": "2001:db8::/32"}]}]"#);
    let web = &c.apps[0].interfaces[0];
    let u = d.units.iter().find(|u| u.port == port).unwrap();
    let br = ifname(&c.networks[0].bridge).to_vec();
    let out6: Vec<&VElem> = d.velems.iter().filter(|e| e.map == MAP_OUT6).collect();
    let in6: Vec<&VElem> = d.velems.iter().filter(|e| e.map == MAP_IN6).collect();
    // Its own MAC and the nested guest's.
    assert_eq!(out6.len(), 2, "{out6:?}");
    let mut key = br.clone();
    key.extend_from_slice(&web.eco_mac(&c.apps[0].id).0);
    key.extend_from_slice(&[0, 0]);
    assert!(out6
        .iter()
        .any(|e| e.key == key && e.chain == u.out6_chain()));
    assert!(out6
        .iter()
        .all(|e| e.key.len() == VMAP6_OUT_KEY_LEN as usize));
    // The static ip6 and the DHCPv6 lease.
    assert_eq!(in6.len(), 2, "{in6:?}");
    let mut key = br.clone();
    key.extend_from_slice(&"fd00:1:2:3::1:77".parse::<Ipv6Addr>().unwrap().octets());
    assert!(in6.iter().any(|e| e.key == key && e.chain == u.in6_chain()));
    // Its port's bridge-family entries take the dual-stack chains; the IPv4-only
    // network's endpoint keeps the chain it had, and has no IPv6 entries.
    let name = ifname(&port).to_vec();
    for (map, chain) in [(MAP_OUT_PORT, CHAIN_L3_OUT6), (MAP_IN_PORT, CHAIN_L3_IN6)] {
        assert!(d
            .velems
            .iter()
            .any(|e| e.map == map && e.key == name && e.chain == chain));
    }
    let legacy = ifname(&c.apps[1].interfaces[2].host_ifname).to_vec();
    let of_legacy: Vec<&VElem> = d
        .velems
        .iter()
        .filter(|e| e.key.starts_with(&legacy))
        .collect();
    assert_eq!(of_legacy.len(), 2);
    assert!(of_legacy.iter().all(|e| e.chain == CHAIN_L3_BRIDGED));
    let lbr = ifname(&c.networks[2].bridge).to_vec();
    assert!(!d
        .velems
        .iter()
        .any(|e| (e.map == MAP_OUT6 || e.map == MAP_IN6) && e.key.starts_with(&lbr)));
}

#[test]
fn the_ipv6_eidset_is_the_subnet6_and_the_static_dns_ipv6_addresses() {
    let c = cfg("[]");
    let n = &c.networks[0];
    let v6 = n.ip.as_ref().and_then(|l| l.v6.as_ref()).unwrap();
    let got = eid6_prefixes(v6.subnet6, &n.static_dns);
    let want: Vec<Ipv6Net> = ["2001:db8:42::10/128", "fd00:1:2:3::/64"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    // A unit with eidset is named by them: another static_dns address re-makes it.
    let acl = r#"[{"id": 1, "matches": [{"type": "eidset"}]}]"#;
    let (_, d1, port) = spec_of(acl);
    let mut c2 = cfg(acl);
    c2.networks[0].static_dns[1]
        .addrs6
        .push("2001:db8:42::11".parse().unwrap());
    let d2 = desired(&c2, &Facts::default(), &[], &[]);
    let h = |d: &AclSpec| {
        d.units
            .iter()
            .find(|u| u.port == port)
            .unwrap()
            .hash
            .clone()
    };
    assert_ne!(h(&d1), h(&d2));
}

#[test]
fn an_ipv6_ace_changes_only_its_endpoints_unit() {
    let (_, d1, _) = spec_of("[]");
    let (_, d2, port) =
        spec_of(r#"[{"id": 1, "matches": [{"type": "ip", "value": "2001:db8::/32"}]}]"#);
    let mut st = AclState::default();
    changes(&d1, &st).apply_to(&mut st);
    assert!(changes(&d1, &st).is_empty());
    // Both endpoints got the new ACE here; the legacy one's unit is re-made too,
    // and nothing else.
    let c = changes(&d2, &st);
    assert_eq!(c.new_units.len(), 2);
    assert!(c.new_units.iter().any(|u| u.port == port));
    assert!(c.new_sets.is_empty() && c.del_sets.is_empty());
    c.apply_to(&mut st);
    assert!(changes(&d2, &st).is_empty());
}
