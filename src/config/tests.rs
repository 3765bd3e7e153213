use super::*;
use std::net::Ipv4Addr;

const SPEC: &str = include_str!("../../board/examples/spec-device.json");

fn errors(doc: &str) -> Vec<String> {
    match parse(doc.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// Replaces the first occurrence of `from` in the spec example.
fn spec_with(from: &str, to: &str) -> String {
    assert!(SPEC.contains(from), "spec example lacks {from:?}");
    SPEC.replacen(from, to, 1)
}

fn has(errs: &[String], want: &str) {
    assert!(
        errs.iter().any(|e| e.starts_with(want)),
        "wanted an error starting {want:?}, got {errs:#?}"
    );
}

#[test]
fn spec_example_is_accepted_with_defaults() {
    let c = parse(SPEC.as_bytes()).expect("spec example");
    assert_eq!(c.device_id, "5a7c0f7e-1c39-4f3a-9c55-0b8e3cf4b2aa");
    assert_eq!(c.version, "17");
    assert_eq!(c.networks.len(), 4);
    let lan = &c.networks[0];
    assert_eq!(lan.kind, NetKind::Local);
    assert_eq!(lan.bridge, "ec-lan");
    assert_eq!(lan.ports, vec![0]);
    let ip = lan.ip.as_ref().unwrap();
    assert_eq!(ip.gateway, Ipv4Addr::new(10, 1, 0, 1));
    assert_eq!(ip.lease_secs, 3600);
    assert_eq!(ip.domain.as_deref(), Some("eco.internal"));
    assert_eq!(lan.static_dns[0].host, "db");
    let fieldbus = &c.networks[1];
    assert_eq!(fieldbus.kind, NetKind::Switch);
    assert_eq!(fieldbus.ports, vec![2]);
    let vpc = &c.networks[2];
    // "uplink" is a label: eth0 (cost 0) before wwan0 (cost 10).
    assert_eq!(vpc.ports, vec![0, 1]);
    let ip = vpc.ip.as_ref().unwrap();
    assert_eq!(ip.gateway, Ipv4Addr::new(10, 3, 0, 1));
    let vpn = vpc.vpn.as_ref().unwrap();
    assert!(vpn.initiator);
    assert_eq!(format!("{:?}", vpn.psk), "<secret>");
    let mesh = c.networks[3].mesh.as_ref().unwrap();
    assert_eq!(mesh.instance_id, 1000);
    assert!(mesh.encrypt);
    assert_eq!(mesh.map_servers[0].auth, MapAuth::HmacSha256);
    assert_eq!(mesh.map_resolvers, vec![Ipv4Addr::new(198, 51, 100, 1)]);
    let plc = &c.apps[1];
    assert_eq!(plc.interfaces[0].attach, Attach::Tap("vif-plc0".into()));
    assert_eq!(plc.interfaces[0].host_ifname, "vif-plc0");
    assert_eq!(plc.interfaces[1].ip, Some(Ipv4Addr::new(10, 3, 0, 20)));
    let web = &c.apps[0];
    assert_eq!(web.interfaces[1].network, 3);
    assert!(web.interfaces[0].host_ifname.starts_with("vweb"));
}

#[test]
fn secrets_never_print() {
    let c = parse(SPEC.as_bytes()).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("a long shared secret"));
    assert!(!dbg.contains("ms-secret"));
}

#[test]
fn overlapping_subnets_name_both() {
    let doc = spec_with(
        "\"subnet\": \"10.3.0.0/24\", \"dhcp_range\": {\"start\": \"10.3.0.100\", \"end\": \"10.3.0.200\"}",
        "\"subnet\": \"10.1.0.0/23\", \"dhcp_range\": {\"start\": \"10.1.1.100\", \"end\": \"10.1.1.200\"}",
    );
    let e = errors(&doc);
    has(
        &e,
        "networks[2].ip.subnet: overlaps networks[0] (10.1.0.0/24)",
    );
    // A broken network does not cascade into "unknown network" errors for its users.
    let e = errors(&spec_with(
        "\"start\": \"10.3.0.100\"",
        "\"start\": \"10.3.0.300\"",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn syntax_error_names_the_element() {
    let doc = spec_with("\"mtu\": 1500,", "\"mtu\": 1500,,");
    let e = errors(&doc);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("networks[0]: invalid JSON at line 15, column 19"),
        "{e:?}"
    );
}

#[test]
fn each_rule_names_its_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("\"type\": \"local\"", "\"type\": \"lan\"", "networks[0].type: unknown type \"lan\""),
        ("\"port\": \"eth0\",\n      \"mtu\"", "\"port\": \"eth9\",\n      \"mtu\"", "networks[0].port: \"eth9\" names no port"),
        ("\"gateway\": \"10.1.0.1\"", "\"gateway\": \"10.2.0.1\"", "networks[0].ip.gateway: 10.2.0.1 is not a host address"),
        ("\"subnet\": \"10.1.0.0/24\"", "\"subnet\": \"10.1.0.7/24\"", "networks[0].ip.subnet: \"10.1.0.7/24\" has host bits set (did you mean 10.1.0.0/24?)"),
        ("\"start\": \"10.1.0.10\"", "\"start\": \"10.1.0.1\"", "networks[0].ip.dhcp_range: 10.1.0.1-10.1.0.200 contains the gateway"),
        ("\"end\": \"10.1.0.200\"", "\"end\": \"10.1.0.5\"", "networks[0].ip.dhcp_range.end: 10.1.0.5 is before the start"),
        ("\"dns\": [\"192.0.2.53\"]", "\"dns\": [\"192.0.2.530\"]", "networks[0].ip.dns[0]: \"192.0.2.530\" is not an IPv4 address"),
        ("\"mtu\": 1500", "\"mtu\": 100", "networks[0].mtu: 100 is out of range"),
        ("\"ip\": \"10.3.0.20\"", "\"ip\": \"10.3.0.150\"", "apps[1].interfaces[1].ip: 10.3.0.150 is inside the DHCP range"),
        ("\"ip\": \"10.3.0.20\"", "\"ip\": \"10.9.0.20\"", "apps[1].interfaces[1].ip: 10.9.0.20 is outside the subnet"),
        ("\"network\": \"11111111-0000-4000-8000-000000000002\"", "\"network\": \"nope\"", "apps[1].interfaces[0].network: unknown network \"nope\""),
        ("\"mac\": \"02:16:3e:00:00:01\"", "\"mac\": \"01:16:3e:00:00:01\"", "apps[1].interfaces[0].mac: 01:16:3e:00:00:01 is not a unicast"),
        ("\"mac\": \"02:16:3e:00:00:01\"", "\"mac\": \"02:16:3e:00:00\"", "apps[1].interfaces[0].mac: \"02:16:3e:00:00\" is not a MAC"),
        ("\"id\": \"11111111-0000-4000-8000-000000000002\"", "\"id\": \"11111111-0000-4000-8000-000000000001\"", "networks[1].id: duplicate id (also networks[0])"),
        ("\"remote_subnets\": [\"172.31.0.0/16\"]", "\"remote_subnets\": [\"10.1.0.0/16\"]", "networks[2].vpn.remote_subnets[0]: 10.1.0.0/16 overlaps networks[0]"),
        ("\"instance_id\": 1000", "\"instance_id\": 16777216", "networks[3].mesh.instance_id: 16777216 does not fit"),
        ("\"auth\": {\"psk\": \"a long shared secret\"}", "\"auth\": {}", "networks[2].vpn.auth.psk: is required"),
        ("\"attach\": {\"tap\": \"vif-plc0\"}", "\"attach\": {\"tap\": \"vif-plc0\", \"netns\": \"/run/netns/x\"}", "apps[1].interfaces[0].attach: needs exactly one of netns or tap"),
        ("\"attach\": {\"tap\": \"vif-plc1\"}", "\"attach\": {\"tap\": \"vif-plc0\"}", "apps[1].interfaces[1].attach.tap: tap \"vif-plc0\" is also used by apps[1].interfaces[0]"),
        ("\"attach\": {\"netns\": \"/run/netns/web\"}", "\"attach\": {\"netns\": \"run/netns/web\"}", "apps[0].interfaces[0].attach.netns: must be an absolute path"),
        ("\"device_id\": \"5a7c0f7e-1c39-4f3a-9c55-0b8e3cf4b2aa\",", "", "device_id: is required"),
        ("\"cost\": 10", "\"cost\": -1", "ports[1].cost: expected a whole number"),
        ("\"auth\": {\"psk\": \"a long shared secret\"}", "\"auth\": {\"psk\": \"a long shared secret\"}, \"dpd_secs\": 0", "networks[2].vpn.dpd_secs: 0 is out of range"),
    ];
    for (from, to, want) in cases {
        let e = errors(&spec_with(from, to));
        has(&e, want);
    }
}

#[test]
fn switch_rules() {
    // A label resolving to two ports on a switch network.
    let e = errors(&spec_with(
        "\"type\": \"switch\", \"port\": \"eth1\"",
        "\"type\": \"switch\", \"port\": \"uplink\"",
    ));
    has(
        &e,
        "networks[1].port: a switch network takes one port, but \"uplink\" resolves to eth0, wwan0",
    );
    // ip on a switch network.
    let e = errors(&spec_with(
        "\"type\": \"switch\", \"port\": \"eth1\"",
        "\"type\": \"switch\", \"port\": \"eth1\", \"ip\": {\"subnet\": \"10.9.0.0/24\"}",
    ));
    has(&e, "networks[1].ip: is not allowed on a switch network");
    // A port enslaved to a switch network cannot serve another.
    let e = errors(&spec_with(
        "\"type\": \"switch\", \"port\": \"eth1\"",
        "\"type\": \"switch\", \"port\": \"eth0\"",
    ));
    has(
        &e,
        "networks[0].port: port eth0 is enslaved to switch network networks[1]",
    );
}

#[test]
fn cloud_and_mesh_requirements() {
    let e = errors(&spec_with("\"port\": \"uplink\",", ""));
    has(
        &e,
        "networks[2].port: a cloud network needs at least one port",
    );
    let e = errors(&spec_with(
        "\"dhcp_range\": {\"start\": \"10.200.4.10\", \"end\": \"10.200.4.250\"}",
        "\"dns\": []",
    ));
    has(
        &e,
        "networks[3].ip.dhcp_range: is required for a mesh network",
    );
    let doc = SPEC.replacen("\"vpn\": {", "\"x-vpn\": {", 1);
    has(
        &errors(&doc),
        "networks[2].vpn: is required for a cloud network",
    );
}

#[test]
fn name_wins_over_label() {
    let doc = spec_with(
        "{\"name\": \"eth1\", \"ifname\": \"eth1\", \"labels\": []}",
        "{\"name\": \"eth1\", \"ifname\": \"eth1\", \"labels\": []}, {\"name\": \"x\", \"ifname\": \"eth7\", \"labels\": [\"eth1\"]}",
    );
    let c = parse(doc.as_bytes()).unwrap();
    assert_eq!(c.networks[1].ports, vec![2]);
}

#[test]
fn type_change_is_rejected() {
    let old = parse(SPEC.as_bytes()).unwrap();
    // lan becomes a mesh network on wwan0 (eth0 already carries the mesh "fleet").
    let doc = spec_with("\"type\": \"local\"", "\"type\": \"mesh\", \"mesh\": {\"instance_id\": 1, \"map_servers\": [{\"address\": \"1.2.3.4\", \"key\": \"k\"}]}")
        .replacen("\"port\": \"eth0\",\n      \"mtu\"", "\"port\": \"wwan0\",\n      \"mtu\"", 1);
    let new = parse(doc.as_bytes());
    let new = new.unwrap();
    let e = validate::check_transition(&old, &new);
    assert_eq!(e.len(), 1);
    assert!(e[0]
        .to_string()
        .starts_with("networks[0].type: changing a network's type (local to mesh)"));
}

#[test]
fn oversized_and_hostile_input_is_refused_cleanly() {
    let huge = format!("{{\"device_id\": \"{}\"}}", "x".repeat(raw::MAX_DOC));
    has(&errors(&huge), "(document): the config is");
    let deep = format!("{{\"apps\": {}{}}}", "[".repeat(40), "]".repeat(40));
    has(&errors(&deep), "apps");
    let many: Vec<String> = (0..raw::MAX_NETWORKS + 1)
        .map(|i| format!("{{\"id\": \"n{i}\"}}"))
        .collect();
    let doc = format!(
        "{{\"device_id\": \"d\", \"networks\": [{}]}}",
        many.join(",")
    );
    has(
        &errors(&doc),
        "networks: too many entries: 129 (at most 128)",
    );
    for doc in [
        "",
        "null",
        "{\"device_id\": \"d\", \"apps\": [{\"interfaces\": 5}]}",
        "\u{0}",
    ] {
        assert!(parse(doc.as_bytes()).is_err(), "{doc:?}");
    }
}

#[test]
fn every_prefix_of_the_spec_example_is_rejected_without_panic() {
    let b = SPEC.as_bytes();
    for n in 0..b.len() - 1 {
        if let Ok(c) = parse(&b[..n]) {
            panic!("prefix of {n} bytes accepted: {c:?}");
        }
    }
}

#[test]
fn loopback_multicast_this_network_class_e_and_link_local_subnets_are_refused() {
    for (subnet, block) in [
        ("127.0.0.0/24", "127.0.0.0/8 (loopback)"),
        ("224.0.0.0/24", "224.0.0.0/4 (multicast)"),
        ("0.0.0.0/24", "0.0.0.0/8 (\"this network\")"),
        (
            "240.0.0.0/24",
            "240.0.0.0/4 (reserved, class E, and broadcast)",
        ),
        ("169.254.1.0/24", "169.254.0.0/16 (link-local)"),
        // Only a remote subnet may be this large; one that covers a block counts.
        ("96.0.0.0/3", "127.0.0.0/8 (loopback)"),
    ] {
        if !subnet.ends_with("/3") {
            let e = errors(&spec_with(
                "\"subnet\": \"10.1.0.0/24\"",
                &format!("\"subnet\": \"{subnet}\""),
            ));
            has(
                &e,
                &format!("networks[0].ip.subnet: {subnet} overlaps {block}"),
            );
        }
        let e = errors(&spec_with(
            "\"remote_subnets\": [\"172.31.0.0/16\"]",
            &format!("\"remote_subnets\": [\"{subnet}\"]"),
        ));
        has(
            &e,
            &format!("networks[2].vpn.remote_subnets[0]: {subnet} overlaps {block}"),
        );
    }
    // Next to a reserved block is fine.
    let e = errors(&spec_with(
        "\"remote_subnets\": [\"172.31.0.0/16\"]",
        "\"remote_subnets\": [\"126.0.0.0/8\", \"128.0.0.0/8\", \"223.255.255.0/24\"]",
    ));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn escapes_decode_as_the_same_text_written_raw_surrogate_pairs_included() {
    // In every kind of string field: ids, versions, names, secrets, DNS entries.
    for (field, raw_value) in [
        ("\"config_version\": \"17\"", "17 \u{1f600}"),
        ("\"name\": \"fieldbus\"", "fieldbus-\u{e9}\u{1f3ed}"),
        (
            "\"psk\": \"a long shared secret\"",
            "a long shared secret \u{1f511}\u{20ac}",
        ),
        ("\"host\": \"db\"", "d\u{1f600}b"),
        ("\"name\": \"web\"", "w\u{e9}b"),
    ] {
        let key = field.split(':').next().unwrap();
        let escaped: String = raw_value
            .encode_utf16()
            .map(|u| format!("\\u{u:04x}"))
            .collect();
        let raw = parse(spec_with(field, &format!("{key}: \"{raw_value}\"")).as_bytes());
        let esc = parse(spec_with(field, &format!("{key}: \"{escaped}\"")).as_bytes());
        assert_eq!(
            format!("{raw:?}"),
            format!("{esc:?}"),
            "{field} as {escaped}"
        );
    }
    // A lone half of a pair cannot be UTF-8: refused with its position.
    for lone in ["\\ud83d", "\\ude00", "\\ud83d\\u0041"] {
        let e = errors(&spec_with(
            "\"config_version\": \"17\"",
            &format!("\"config_version\": \"{lone}\""),
        ));
        assert!(e[0].contains("lone"), "{lone}: {e:?}");
    }
}
