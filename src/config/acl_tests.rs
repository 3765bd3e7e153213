//! Endpoint ACLs: the spec's example, EVE's own examples, and one test per rule.

use super::*;

const SPEC: &str = include_str!("../../board/examples/spec-device.json");

/// Endpoint anchors in the spec example: (text to extend, its path).
const LAN: (&str, &str) = (
    "\"attach\": {\"netns\": \"/run/netns/web\"}}",
    "apps[0].interfaces[0]",
);
const SWITCH: (&str, &str) = (
    "\"attach\": {\"tap\": \"vif-plc0\"}}",
    "apps[1].interfaces[0]",
);
const CLOUD: (&str, &str) = (
    "\"attach\": {\"tap\": \"vif-plc1\"}}",
    "apps[1].interfaces[1]",
);
/// The second endpoint with the same attach text as LAN: web's eth1 on the mesh.
const MESH_PATH: &str = "apps[0].interfaces[1]";

/// The spec example with `acls` (any JSON text) on the endpoint at `anchor`.
fn on(doc: &str, anchor: &str, acls: &str) -> String {
    assert!(doc.contains(anchor), "no {anchor:?}");
    let with = format!("{}, \"acls\": {acls}}}", &anchor[..anchor.len() - 1]);
    doc.replacen(anchor, &with, 1)
}

/// The spec example with `acls` on web's eth1, on the mesh network.
fn on_mesh(acls: &str) -> String {
    let (a, _) = LAN;
    let at = SPEC.find(a).unwrap() + a.len();
    let (head, tail) = SPEC.split_at(at);
    format!("{head}{}", on(tail, a, acls))
}

fn lan(acls: &str) -> String {
    on(SPEC, LAN.0, acls)
}

fn errors(doc: &str) -> Vec<String> {
    match parse(doc.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts the config is rejected with exactly this one error.
fn only(doc: &str, want: &str) {
    assert_eq!(errors(doc), vec![want.to_string()]);
}

/// The ACL of the endpoint at (app, interface) of an accepted config.
fn acl_of(doc: &str, app: usize, iface: usize) -> Option<Vec<Ace>> {
    let c = match parse(doc.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("rejected: {e:#?}"),
    };
    c.apps[app].interfaces[iface].acls.clone()
}

fn lan_acl(acls: &str) -> Vec<Ace> {
    acl_of(&lan(acls), 0, 0).unwrap()
}

fn net(s: &str) -> crate::addr::Ipv4Net {
    s.parse().unwrap()
}

fn port(p: u16) -> Option<PortRange> {
    Some(PortRange { lo: p, hi: p })
}

const SPEC_ACLS: &str = r#"[
   {"id": 1, "name": "https in", "matches": [{"type": "protocol", "value": "tcp"},
                                             {"type": "lport", "value": "8443"}],
    "actions": [{"portmap": true, "appPort": 443}]},
   {"id": 2, "matches": [{"type": "host", "value": "updates.example.com"}]},
   {"id": 3, "matches": [{"type": "ip", "value": "192.0.2.0/24"}, {"type": "protocol", "value": "udp"},
                         {"type": "fport", "value": "514"}],
    "actions": [{"limit": true, "limitrate": 100, "limitunit": "s", "limitburst": 200}]},
   {"id": 4, "matches": [{"type": "eidset"}]},
   {"id": 5, "matches": [{"type": "ip", "value": "10.1.0.0/16"}], "actions": [{"drop": true}], "dir": "EGRESS"}
 ]"#;

#[test]
fn spec_example_decodes_to_the_model() {
    let got = lan_acl(SPEC_ACLS);
    let want = vec![
        Ace {
            id: 1,
            name: Some("https in".into()),
            matches: AceMatches {
                protocol: Some(AceProto::TCP),
                lport: port(8443),
                ..Default::default()
            },
            action: AceAction::Portmap { app_port: 443 },
            dir: AceDir::Both,
        },
        Ace {
            id: 2,
            name: None,
            matches: AceMatches {
                host: Some("updates.example.com".into()),
                ..Default::default()
            },
            action: AceAction::Allow,
            dir: AceDir::Both,
        },
        Ace {
            id: 3,
            name: None,
            matches: AceMatches {
                ip: Some(net("192.0.2.0/24")),
                protocol: Some(AceProto::UDP),
                fport: port(514),
                ..Default::default()
            },
            action: AceAction::Limit {
                rate: 100,
                per_secs: 1,
                burst: 200,
            },
            dir: AceDir::Both,
        },
        Ace {
            id: 4,
            name: None,
            matches: AceMatches {
                eidset: true,
                ..Default::default()
            },
            action: AceAction::Allow,
            dir: AceDir::Both,
        },
        Ace {
            id: 5,
            name: None,
            matches: AceMatches {
                ip: Some(net("10.1.0.0/16")),
                ..Default::default()
            },
            action: AceAction::Drop,
            dir: AceDir::Egress,
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn absent_empty_and_null() {
    assert_eq!(acl_of(SPEC, 0, 0), None);
    assert_eq!(acl_of(&lan("[]"), 0, 0), Some(vec![]));
    assert_eq!(acl_of(&lan("null"), 0, 0), None);
    // Other endpoints are untouched.
    assert_eq!(acl_of(&lan("[]"), 0, 1), None);
}

#[test]
fn eve_documentation_examples_are_accepted_as_written() {
    let got = lan_acl(
        r#"[{"matches":[{"type":"host","value":"www.google.com"}],"id":1},
            {"matches":[{"type":"ip","value":"0.0.0.0/0"}],"id":2},
            {"matches":[{"type":"protocol","value":"tcp"},{"type":"lport","value":"8080"}],"actions":[{"portmap":true,"appPort":80}],"id":3},
            {"matches":[{"type":"host","value":"example.com"}],"actions":[{"limit":true,"limitrate":10,"limitunit":"s","limitburst":20}],"id":4},
            {"id":5,"matches":[{"type":"ip","value":"1.1.1.1"},{"type":"protocol","value":"tcp"},{"type":"fport","value":"80"}]},
            {"id":6,"matches":[{"type":"eidset"}]},
            {"id":7,"matches":[{"type":"protocol","value":"tcp"},{"type":"lport","value":"2222"}],"actions":[{"portmap":true,"appPort":22}]},
            {"id":8,"matches":[{"type":"host","value":"www.google.com"}],"actions":[{"limit":true,"limitrate":10,"limitunit":"s","limitburst":30}]}]"#,
    );
    assert_eq!(got.len(), 8);
    assert_eq!(got[0].matches.host.as_deref(), Some("www.google.com"));
    assert_eq!(got[1].matches.ip, Some(net("0.0.0.0/0")));
    assert_eq!(got[2].action, AceAction::Portmap { app_port: 80 });
    assert_eq!(got[2].matches.lport, port(8080));
    assert_eq!(
        got[3].action,
        AceAction::Limit {
            rate: 10,
            per_secs: 1,
            burst: 20
        }
    );
    assert_eq!(got[4].matches.ip, Some(net("1.1.1.1/32")));
    assert_eq!(got[4].matches.fport, port(80));
    assert!(got[5].matches.eidset);
    assert_eq!(got[6].action, AceAction::Portmap { app_port: 22 });
}

#[test]
fn eve_style_defaults_false_flags_and_spellings() {
    // Everything EVE writes when it emits unset fields: no action, so allow.
    let got = lan_acl(
        r#"[{"id": 1, "name": "", "matches": [{"type": "eidset", "value": ""}],
             "actions": [{"drop": false, "limit": false, "limitrate": 0, "limitunit": "",
                          "limitburst": 0, "portmap": false, "appPort": 0}], "dir": "BOTH"},
            {"id": 2, "actions": [], "matches": []},
            {"id": 3, "matches": null, "actions": null, "dir": null},
            {"id": 4, "matches": [{"type": "IP", "value": "10.9.0.0/16"}, {"type": "Protocol", "value": "UDP"}],
             "actions": [{"drop": false}, {"limit": true, "limitrate": 3, "limitunit": "minute"}], "dir": "ingress"},
            {"id": 5, "matches": [{"type": "host", "value": "WWW.Example.COM."}, {"type": "protocol", "value": "17"},
                                  {"type": "lport", "value": "8000-8099"}], "dir": 2},
            {"id": 16777215, "matches": [{"type": "protocol", "value": "all"}], "x-vendor": {"a": [1]}}]"#,
    );
    assert_eq!(got[0].name, None);
    assert!(got[0].matches.eidset);
    assert_eq!(got[0].action, AceAction::Allow);
    for a in &got[1..3] {
        assert_eq!(a.matches, AceMatches::default());
        assert_eq!(a.action, AceAction::Allow);
        assert_eq!(a.dir, AceDir::Both);
    }
    assert_eq!(got[3].matches.protocol, Some(AceProto::UDP));
    assert_eq!(
        got[3].action,
        AceAction::Limit {
            rate: 3,
            per_secs: 60,
            burst: 5
        }
    );
    assert_eq!(got[3].dir, AceDir::Ingress);
    assert_eq!(got[4].matches.host.as_deref(), Some("www.example.com"));
    assert_eq!(got[4].matches.protocol, Some(AceProto::UDP));
    assert_eq!(got[4].matches.lport, Some(PortRange { lo: 8000, hi: 8099 }));
    assert_eq!(got[4].dir, AceDir::Egress);
    assert_eq!(got[5].id, 16777215);
    assert_eq!(got[5].matches.protocol, Some(AceProto::All));
}

#[test]
fn limit_units() {
    for (unit, secs) in [
        ("s", 1),
        ("m", 60),
        ("h", 3600),
        ("d", 86400),
        ("second", 1),
        ("hour", 3600),
        ("day", 86400),
        ("H", 3600),
    ] {
        let got = lan_acl(&format!(
            r#"[{{"id": 1, "actions": [{{"limit": true, "limitrate": 7, "limitunit": "{unit}"}}]}}]"#
        ));
        assert_eq!(
            got[0].action,
            AceAction::Limit {
                rate: 7,
                per_secs: secs,
                burst: 5
            },
            "{unit}"
        );
    }
}

#[test]
fn id_rules() {
    let p = "apps[0].interfaces[0].acls";
    only(
        &lan(r#"[{"matches": []}]"#),
        &format!("{p}[0].id: is required (1 to 16777215)"),
    );
    only(
        &lan(r#"[{"id": 0}]"#),
        &format!("{p}[0].id: 0 is out of range (1 to 16777215; 0 is the implicit drop rule)"),
    );
    only(
        &lan(r#"[{"id": 16777216}]"#),
        &format!("{p}[0].id: 16777216 is out of range (1 to 16777215)"),
    );
    only(
        &lan(r#"[{"id": 7}, {"id": 8}, {"id": 7}]"#),
        &format!("{p}[2].id: duplicate id 7 (also acls[0])"),
    );
    // Ids are per endpoint: the same id on another endpoint is fine.
    let doc = on(&lan(r#"[{"id": 7}]"#), CLOUD.0, r#"[{"id": 7}]"#);
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

#[test]
fn match_rules() {
    let p = "apps[0].interfaces[0].acls[0]";
    let cases: &[(&str, String)] = &[
        (
            r#"[{"type": "mac", "value": "x"}]"#,
            format!("{p}.matches[0].type: unknown match type \"mac\" (ip, host, eidset, protocol, lport, fport or adapter)"),
        ),
        (
            r#"[{"value": "x"}]"#,
            format!("{p}.matches[0].type: is required"),
        ),
        (
            r#"[{"type": "ip", "value": "10.0.0.0/8"}, {"type": "host", "value": "a.b"}, {"type": "ip", "value": "10.1.0.0/16"}]"#,
            format!("{p}.matches[2]: duplicate match type \"ip\" (also matches[0]); at most one of each type per ACE"),
        ),
        (
            r#"[{"type": "ip", "value": "2001:db8::1/32"}]"#,
            format!("{p}.matches[0].value: \"2001:db8::1/32\" has host bits set (did you mean 2001:db8::/32?)"),
        ),
        (
            r#"[{"type": "ip", "value": "2001:db8::/129"}]"#,
            format!("{p}.matches[0].value: \"2001:db8::/129\" is not an IPv6 prefix (like fd00:1:2:3::/64)"),
        ),
        (
            r#"[{"type": "ip", "value": "2001:db8:::1"}]"#,
            format!("{p}.matches[0].value: \"2001:db8:::1\" is not an IPv6 address or prefix (like 2001:db8::/32)"),
        ),
        (
            r#"[{"type": "ip", "value": "2001:db8::/32"}, {"type": "ip", "value": "10.0.0.0/8"}]"#,
            format!("{p}.matches[1]: duplicate match type \"ip\" (also matches[0]); at most one of each type per ACE"),
        ),
        (
            r#"[{"type": "ip", "value": "2001:db8::/32"}, {"type": "host", "value": "a.b"}]"#,
            format!("{p}.matches[1]: host matches IPv4 addresses only: it cannot be with an IPv6 ip in one ACE"),
        ),
        (
            r#"[{"type": "ip", "value": "192.0.2.1/24"}]"#,
            format!("{p}.matches[0].value: \"192.0.2.1/24\" has host bits set (did you mean 192.0.2.0/24?)"),
        ),
        (
            r#"[{"type": "ip", "value": "192.0.2"}]"#,
            format!("{p}.matches[0].value: \"192.0.2\" is not an IPv4 address or prefix (like 192.0.2.0/24)"),
        ),
        (
            r#"[{"type": "ip"}]"#,
            format!("{p}.matches[0].value: is required"),
        ),
        (
            r#"[{"type": "host", "value": "bad host.com"}]"#,
            format!("{p}.matches[0].value: \"bad host.com\" is not a valid DNS name"),
        ),
        (
            r#"[{"type": "host", "value": "192.0.2.7"}]"#,
            format!("{p}.matches[0].value: \"192.0.2.7\" is an address: use an ip match"),
        ),
        (
            r#"[{"type": "host", "value": ""}]"#,
            format!("{p}.matches[0].value: must not be empty"),
        ),
        (
            r#"[{"type": "eidset", "value": "x"}]"#,
            format!("{p}.matches[0].value: eidset takes no value (it matches the other ECOs of the network and static_dns)"),
        ),
        (
            r#"[{"type": "eidset"}, {"type": "host", "value": "a.b"}]"#,
            format!("{p}.matches[1]: host and eidset cannot be in one ACE: use two ACEs"),
        ),
        (
            r#"[{"type": "protocol", "value": "tcpp"}]"#,
            format!("{p}.matches[0].value: unknown protocol \"tcpp\" (tcp, udp, icmp, all or a number 0-255)"),
        ),
        (
            r#"[{"type": "protocol", "value": "256"}]"#,
            format!("{p}.matches[0].value: unknown protocol \"256\" (tcp, udp, icmp, all or a number 0-255)"),
        ),
        (
            r#"[{"type": "ip", "value": "10.0.0.1"}, {"type": "lport", "value": "80"}]"#,
            format!("{p}.matches[1]: lport without protocol tcp or udp"),
        ),
        (
            r#"[{"type": "fport", "value": "53"}, {"type": "protocol", "value": "icmp"}]"#,
            format!("{p}.matches[0]: fport without protocol tcp or udp"),
        ),
        (
            r#"[{"type": "protocol", "value": "all"}, {"type": "lport", "value": "80"}]"#,
            format!("{p}.matches[1]: lport without protocol tcp or udp"),
        ),
        (
            r#"[{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "9-8"}]"#,
            format!("{p}.matches[1].value: \"9-8\" is not a port or a range of ports (1 to 65535, like \"8080\" or \"8000-8099\")"),
        ),
        (
            r#"[{"type": "protocol", "value": "udp"}, {"type": "fport", "value": "0"}]"#,
            format!("{p}.matches[1].value: \"0\" is not a port or a range of ports (1 to 65535, like \"8080\" or \"8000-8099\")"),
        ),
        (
            r#"[{"type": "protocol", "value": "udp"}, {"type": "fport", "value": "65536"}]"#,
            format!("{p}.matches[1].value: \"65536\" is not a port or a range of ports (1 to 65535, like \"8080\" or \"8000-8099\")"),
        ),
        (
            r#"[{"type": "adapter", "value": "eth0"}]"#,
            format!("{p}.matches[0]: adapter is only for port maps (an ACE with a portmap action)"),
        ),
    ];
    for (matches, want) in cases {
        only(
            &lan(&format!(r#"[{{"id": 1, "matches": {matches}}}]"#)),
            want,
        );
    }
}

#[test]
fn action_rules() {
    let p = "apps[0].interfaces[0].acls[0]";
    let pm = r#"[{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8080"}]"#;
    let cases: &[(&str, &str, String)] = &[
        (
            "[]",
            r#"[{"drop": true, "log": true}]"#,
            format!("{p}.actions[0].log: unknown action field \"log\" (drop, limit, limitrate, limitunit, limitburst, portmap, appPort)"),
        ),
        (
            "[]",
            r#"[{"limit": true, "limitrate": 1, "limitunit": "d", "limitburst": 300000}]"#,
            format!("{p}.actions[0].limitburst: 300000 is too large for 1 per d: the bucket would hold more than 584 years"),
        ),
        (
            "[]",
            r#"[{"drop": true, "limit": true, "limitrate": 5}]"#,
            format!("{p}.actions[0]: more than one action (drop and limit): an ACE takes one"),
        ),
        (
            "[]",
            r#"[{"drop": true}, {"drop": false}, {"drop": true}]"#,
            format!("{p}.actions[2]: more than one action (drop in actions[0], drop here): an ACE takes one"),
        ),
        (
            "[]",
            r#"[{"drop": true, "limitrate": 5}]"#,
            format!("{p}.actions[0].limitrate: limitrate without \"limit\": true"),
        ),
        (
            "[]",
            r#"[{"limit": false, "limitunit": "m"}]"#,
            format!("{p}.actions[0].limitunit: limitunit without \"limit\": true"),
        ),
        (
            "[]",
            r#"[{"appPort": 80}]"#,
            format!("{p}.actions[0].appPort: appPort without \"portmap\": true"),
        ),
        (
            "[]",
            r#"[{"limit": true}]"#,
            format!("{p}.actions[0].limitrate: is required for a limit (packets per limitunit, at least 1)"),
        ),
        (
            "[]",
            r#"[{"limit": true, "limitrate": 0, "limitunit": "s"}]"#,
            format!("{p}.actions[0].limitrate: is required for a limit (packets per limitunit, at least 1)"),
        ),
        (
            "[]",
            r#"[{"limit": true, "limitrate": 5, "limitunit": "w"}]"#,
            format!("{p}.actions[0].limitunit: unknown unit \"w\" (s, m, h or d)"),
        ),
        (
            pm,
            r#"[{"portmap": true}]"#,
            format!("{p}.actions[0].appPort: is required for a port map (the ECO's port, 1 to 65535)"),
        ),
        (
            pm,
            r#"[{"portmap": true, "appPort": 70000}]"#,
            format!("{p}.actions[0].appPort: 70000 is out of range (1 to 65535)"),
        ),
        (
            r#"[{"type": "lport", "value": "8080"}, {"type": "protocol", "value": "icmp"}]"#,
            r#"[{"portmap": true, "appPort": 80}]"#,
            format!("{p}.matches[0]: lport without protocol tcp or udp"),
        ),
        (
            r#"[{"type": "protocol", "value": "tcp"}]"#,
            r#"[{"portmap": true, "appPort": 80}]"#,
            format!("{p}.actions[0].portmap: a port map needs an lport match (the port exposed on the device)"),
        ),
        (
            r#"[{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8000-8001"}]"#,
            r#"[{"portmap": true, "appPort": 80}]"#,
            format!("{p}.matches[1].value: a port map takes a single lport, not a range (8000-8001)"),
        ),
    ];
    for (matches, actions, want) in cases {
        only(
            &lan(&format!(
                r#"[{{"id": 1, "matches": {matches}, "actions": {actions}}}]"#
            )),
            want,
        );
    }
    // A port map without matches: it needs both.
    let e = errors(&lan(
        r#"[{"id": 1, "actions": [{"portmap": true, "appPort": 80}]}]"#,
    ));
    assert_eq!(
        e,
        vec![
            format!("{p}.actions[0].portmap: a port map needs a protocol match tcp or udp in the same ACE"),
            format!("{p}.actions[0].portmap: a port map needs an lport match (the port exposed on the device)"),
        ]
    );
}

#[test]
fn where_rules() {
    let sw = SWITCH.1;
    only(
        &on(
            SPEC,
            SWITCH.0,
            r#"[{"id": 1, "matches": [{"type": "host", "value": "a.example"}]}]"#,
        ),
        &format!("{sw}.acls[0].matches[0]: host is not available on a switch network (it has no DNS or NAT)"),
    );
    only(
        &on(SPEC, SWITCH.0, r#"[{"id": 1, "matches": [{"type": "eidset"}]}]"#),
        &format!("{sw}.acls[0].matches[0]: eidset is not available on a switch network (it has no DNS or NAT)"),
    );
    let pm = r#"[{"id": 1, "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8080"}], "actions": [{"portmap": true, "appPort": 80}]}]"#;
    only(
        &on(SPEC, SWITCH.0, pm),
        &format!("{sw}.acls[0].actions[0].portmap: a port map is not available on a switch network (it has no DNS or NAT)"),
    );
    only(
        &on(SPEC, CLOUD.0, pm),
        &format!(
            "{}.acls[0].actions[0].portmap: a port map needs NAT, which a cloud network does not do",
            CLOUD.1
        ),
    );
    only(
        &on_mesh(pm),
        &format!("{MESH_PATH}.acls[0].actions[0].portmap: a port map needs NAT, which a mesh network does not do"),
    );
    // What a switch network can do: ip, protocol and ports, drop and limit.
    let got = acl_of(
        &on(
            SPEC,
            SWITCH.0,
            r#"[{"id": 1, "matches": [{"type": "ip", "value": "192.168.0.0/16"}, {"type": "protocol", "value": "tcp"},
                                      {"type": "fport", "value": "502"}]},
                {"id": 2, "actions": [{"drop": true}]}]"#,
        ),
        1,
        0,
    )
    .unwrap();
    assert_eq!(got.len(), 2);
    // host and eidset are fine on cloud and mesh networks.
    let doc = on(
        &on_mesh(r#"[{"id": 1, "matches": [{"type": "eidset"}]}]"#),
        CLOUD.0,
        r#"[{"id": 1, "matches": [{"type": "host", "value": "s3.amazonaws.com"}]}]"#,
    );
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

/// The spec example plus a second local network, "lan2", on `lan2_port`, with a
/// container endpoint on it (apps[1].interfaces[0]) and another on lan
/// (apps[1].interfaces[1]).
fn with_lan2(lan2_port: &str, lan_acls: &str, lan2_acls: &str, lan_b_acls: &str) -> String {
    let net = format!(
        r#"{{"id": "11111111-0000-4000-8000-000000000005", "name": "lan2", "type": "local", "port": "{lan2_port}",
            "ip": {{"subnet": "10.5.0.0/24"}}}},
    {{
      "id": "11111111-0000-4000-8000-000000000003""#
    );
    let app = format!(
        r#"{{"id": "22222222-0000-4000-8000-000000000003", "name": "db",
       "interfaces": [{{"name": "eth0", "network": "11111111-0000-4000-8000-000000000005",
                        "attach": {{"netns": "/run/netns/db"}}, "acls": {lan2_acls}}},
                      {{"name": "eth1", "network": "11111111-0000-4000-8000-000000000001",
                        "attach": {{"netns": "/run/netns/db"}}, "acls": {lan_b_acls}}}]}},
    {{
      "id": "22222222-0000-4000-8000-000000000002""#
    );
    let doc = lan(lan_acls)
        .replacen(
            "{\n      \"id\": \"11111111-0000-4000-8000-000000000003\"",
            &net,
            1,
        )
        .replacen(
            "{\n      \"id\": \"22222222-0000-4000-8000-000000000002\"",
            &app,
            1,
        );
    assert!(doc.contains("lan2") && doc.contains("/run/netns/db"));
    doc
}

fn pm(id: u32, proto: &str, lport: u16, adapter: Option<&str>) -> String {
    let adapter = adapter
        .map(|a| format!(r#", {{"type": "adapter", "value": "{a}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"id": {id}, "matches": [{{"type": "protocol", "value": "{proto}"}}, {{"type": "lport", "value": "{lport}"}}{adapter}],
            "actions": [{{"portmap": true, "appPort": 80}}]}}"#
    )
}

#[test]
fn adapters_resolve_within_the_network() {
    // lan2 on the "uplink" label: eth0 (cost 0), then wwan0 (cost 10).
    let doc = with_lan2(
        "uplink",
        "null",
        &format!(
            "[{}, {}]",
            pm(1, "tcp", 8080, Some("uplink")),
            pm(2, "tcp", 8081, Some("wwan0"))
        ),
        "null",
    );
    let got = acl_of(&doc, 1, 0).unwrap();
    assert_eq!(got[0].matches.adapter.as_deref(), Some("uplink"));
    assert_eq!(got[0].matches.adapter_ports, vec![0, 1]);
    assert_eq!(got[1].matches.adapter_ports, vec![1]);
    // Not a port lan may use (lan is on eth0 only).
    only(
        &lan(&format!("[{}]", pm(1, "tcp", 8080, Some("uplink")))),
        "apps[0].interfaces[0].acls[0].matches[2].value: \"uplink\" resolves to wwan0, which network \"lan\" does not use (it may use eth0)",
    );
    only(
        &lan(&format!("[{}]", pm(1, "tcp", 8080, Some("eth7")))),
        "apps[0].interfaces[0].acls[0].matches[2].value: \"eth7\" names no port and no label",
    );
}

#[test]
fn port_map_conflicts_name_both() {
    // Same endpoint, same protocol and port.
    only(
        &lan(&format!("[{}, {}]", pm(1, "tcp", 8080, None), pm(2, "tcp", 8080, None))),
        "apps[0].interfaces[0].acls[1].matches[1]: tcp port 8080 is already mapped to 80 of this endpoint by apps[0].interfaces[0].acls[0]: use one ACE (its adapter may be a label naming several ports)",
    );
    // Same endpoint, same mapping, through different ports: still one ACE, since
    // the ECO's rule cannot tell which port a connection came through.
    let doc = with_lan2(
        "uplink",
        "null",
        &format!(
            "[{}, {}]",
            pm(1, "tcp", 8080, Some("eth0")),
            pm(2, "tcp", 8080, Some("wwan0"))
        ),
        "null",
    );
    assert_eq!(
        errors(&doc),
        ["apps[1].interfaces[0].acls[1].matches[1]: tcp port 8080 is already mapped to 80 of this endpoint by apps[1].interfaces[0].acls[0]: use one ACE (its adapter may be a label naming several ports)"]
    );
    // Another endpoint of the same network.
    only(
        &with_lan2(
            "wwan0",
            &format!("[{}]", pm(1, "udp", 9000, None)),
            "null",
            &format!("[{}]", pm(1, "udp", 9000, None)),
        ),
        "apps[1].interfaces[1].acls[0].matches[1]: udp port 9000 on eth0 is already mapped by apps[0].interfaces[0].acls[0]",
    );
    // Another network whose ports overlap (uplink: eth0 and wwan0).
    only(
        &with_lan2(
            "uplink",
            &format!("[{}]", pm(1, "tcp", 8080, None)),
            &format!("[{}]", pm(1, "tcp", 8080, None)),
            "null",
        ),
        "apps[1].interfaces[0].acls[0].matches[1]: tcp port 8080 on eth0 is already mapped by apps[0].interfaces[0].acls[0]",
    );
    // Fine: other protocol, other port, disjoint ports, an adapter that avoids eth0.
    for (lan_acls, lan2_acls) in [
        (pm(1, "tcp", 8080, None), pm(1, "udp", 8080, None)),
        (pm(1, "tcp", 8080, None), pm(1, "tcp", 8081, None)),
        (pm(1, "tcp", 8080, None), pm(1, "tcp", 8080, Some("wwan0"))),
    ] {
        let doc = with_lan2(
            "uplink",
            &format!("[{lan_acls}]"),
            &format!("[{lan2_acls}]"),
            "null",
        );
        assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
    }
    let doc = with_lan2(
        "wwan0",
        &format!("[{}]", pm(1, "tcp", 8080, None)),
        &format!("[{}]", pm(1, "tcp", 8080, None)),
        "null",
    );
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

#[test]
fn port_maps_stay_off_econets_own_ports() {
    // lan shares eth0 with the cloud network to-vpc (uplink) and the mesh fleet.
    for (port, what, net) in [
        (500, "IKE", "networks[2] (to-vpc)"),
        (4500, "IKE", "networks[2] (to-vpc)"),
        (4341, "LISP", "networks[3] (fleet)"),
        (4342, "LISP", "networks[3] (fleet)"),
    ] {
        only(
            &lan(&format!("[{}]", pm(1, "udp", port, None))),
            &format!("apps[0].interfaces[0].acls[0].matches[1]: udp port {port} on eth0 is used by econet for {what} of {net}"),
        );
        // tcp on the same number is not econet's.
        assert!(errors(&lan(&format!("[{}]", pm(1, "tcp", port, None)))).is_empty());
    }
    // lan2 on wwan0: the cloud network may use wwan0 too, the mesh does not.
    only(
        &with_lan2("wwan0", "null", &format!("[{}]", pm(1, "udp", 4500, None)), "null"),
        "apps[1].interfaces[0].acls[0].matches[1]: udp port 4500 on wwan0 is used by econet for IKE of networks[3] (to-vpc)",
    );
    let doc = with_lan2(
        "wwan0",
        "null",
        &format!("[{}]", pm(1, "udp", 4341, None)),
        "null",
    );
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
    // A network without a port has nowhere to map from.
    let doc = lan(&format!("[{}]", pm(1, "tcp", 8080, None))).replacen(
        "\"port\": \"eth0\",\n      \"mtu\"",
        "\"mtu\"",
        1,
    );
    only(
        &doc,
        "apps[0].interfaces[0].acls[0].matches[1]: a port map needs a port, and network \"lan\" has none",
    );
}

#[test]
fn per_endpoint_and_device_limits() {
    let aces = |n: usize| {
        let v: Vec<String> = (1..=n).map(|i| format!("{{\"id\": {i}}}")).collect();
        format!("[{}]", v.join(","))
    };
    assert_eq!(lan_acl(&aces(64)).len(), 64);
    only(
        &lan(&aces(65)),
        "apps[0].interfaces[0].acls: too many entries: 65 (at most 64)",
    );
    // 65 endpoints of 64 ACEs: the 65th goes over 4096.
    let acl = aces(64);
    let apps: Vec<String> = (0..9)
        .map(|a| {
            let ifs: Vec<String> = (0..8)
                .map(|i| {
                    format!(
                        r#"{{"name": "e{i}", "network": "11111111-0000-4000-8000-000000000001",
                            "attach": {{"netns": "/run/netns/x{a}"}}, "acls": {acl}}}"#
                    )
                })
                .collect();
            format!(
                r#"{{"id": "app{a}", "name": "a{a}", "interfaces": [{}]}}"#,
                ifs.join(",")
            )
        })
        .collect();
    let doc = SPEC.replacen("\"apps\": [", &format!("\"apps\": [{},", apps.join(",")), 1);
    // Each extra app shifts the spec's apps; ours are apps[0..9].
    only(
        &doc,
        "apps[8].interfaces[0].acls: too many ACEs on the device: more than 4096 in all",
    );
    // 4096 exactly is fine.
    let doc = SPEC.replacen(
        "\"apps\": [",
        &format!("\"apps\": [{},", apps[..8].join(",")),
        1,
    );
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

#[test]
fn wrong_types_are_named() {
    let p = "apps[0].interfaces[0].acls";
    let cases: &[(&str, String)] = &[
        ("{}", format!("{p}: expected an array, found an object")),
        ("[1]", format!("{p}[0]: expected an object, found a number")),
        (
            r#"[{"id": "one"}]"#,
            format!("{p}[0].id: expected a whole number (1 to 16777215), found a string"),
        ),
        (
            r#"[{"id": -1}]"#,
            format!("{p}[0].id: expected a whole number (1 to 16777215), found a number"),
        ),
        (
            r#"[{"id": 1, "matches": "ip"}]"#,
            format!("{p}[0].matches: expected an array of at most 8 entries, found a string"),
        ),
        (
            r#"[{"id": 1, "matches": ["ip"]}]"#,
            format!("{p}[0].matches[0]: expected an object, found a string"),
        ),
        (
            r#"[{"id": 1, "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": 8080}]}]"#,
            format!("{p}[0].matches[1].value: expected a string of at most 255 characters, found a number"),
        ),
        (
            r#"[{"id": 1, "actions": [{"drop": "yes"}]}]"#,
            format!("{p}[0].actions[0].drop: expected true or false, found a string"),
        ),
        (
            r#"[{"id": 1, "actions": [{"portmap": true, "appPort": -80}]}]"#,
            format!("{p}[0].actions[0].appPort: expected a whole number (1 to 65535), found a number"),
        ),
        (
            r#"[{"id": 1, "actions": {"drop": true}}]"#,
            format!("{p}[0].actions: expected an array of at most 8 entries, found an object"),
        ),
        (
            r#"[{"id": 1, "matches": [[{"type": "eidset"}]]}]"#,
            format!("{p}[0].matches[0]: expected an object, found an array"),
        ),
        (
            r#"[{"id": 1, "matches": [{"type": "host", "value": ["a.b"]}]}]"#,
            format!("{p}[0].matches[0].value: expected a string of at most 255 characters, found an array"),
        ),
        (
            r#"[{"id": 1, "dir": "sideways"}]"#,
            format!("{p}[0].dir: unknown direction \"sideways\" (BOTH, INGRESS or EGRESS)"),
        ),
        (
            r#"[{"id": 1, "dir": 3}]"#,
            format!("{p}[0].dir: unknown direction \"3\" (BOTH, INGRESS or EGRESS)"),
        ),
        (
            r#"[{"id": 1, "dir": ["BOTH"]}]"#,
            format!("{p}[0].dir: expected \"BOTH\", \"INGRESS\" or \"EGRESS\", found an array"),
        ),
        (
            r#"[{"id": 1, "dir": "EGRESS", "dir": "INGRESS"}]"#,
            format!("{p}[0].dir: appears twice"),
        ),
        (
            r#"[{"id": 1, "name": 5}]"#,
            format!("{p}[0].name: expected a string of at most 255 characters, found a number"),
        ),
    ];
    for (acls, want) in cases {
        only(&lan(acls), want);
    }
    let nine: Vec<String> = (0..9)
        .map(|_| r#"{"type": "eidset"}"#.to_string())
        .collect();
    only(
        &lan(&format!(
            r#"[{{"id": 1, "matches": [{}]}}]"#,
            nine.join(",")
        )),
        &format!("{p}[0].matches: too many entries: 9 (an array of at most 8 entries)"),
    );
    let long = "a".repeat(300);
    only(
        &lan(&format!(
            r#"[{{"id": 1, "matches": [{{"type": "host", "value": "{long}"}}]}}]"#
        )),
        &format!("{p}[0].matches[0].value: too long: expected a string of at most 255 characters"),
    );
    // A DNS name must be at most 253 characters, each label at most 63.
    let labels = format!("{}.{}", "a".repeat(63), "b".repeat(64));
    only(
        &lan(&format!(
            r#"[{{"id": 1, "matches": [{{"type": "host", "value": "{labels}"}}]}}]"#
        )),
        &format!("{p}[0].matches[0].value: \"{labels}\" is not a valid DNS name"),
    );
    // acls twice on one endpoint.
    only(&lan("[], \"acls\": []"), &format!("{p}: appears twice"));
}

#[test]
fn hostile_acls_are_refused_without_panic() {
    // Deep nesting in a field econet ignores is fine up to the depth limit.
    let deep = |n: usize| format!("[{{\"id\": 1, \"x\": {}{}}}]", "[".repeat(n), "]".repeat(n));
    assert!(errors(&lan(&deep(20))).is_empty());
    assert!(!errors(&lan(&deep(40))).is_empty());
    for acls in [
        "[{\"id\": 1, \"matches\": [{\"type\": \"ip\", \"value\": \"\\u0000\"}]}]",
        "[{\"id\": 1e3}]",
        "[{\"id\": 4294967296}]",
        "[{\"id\": 1, \"matches\": [{\"type\": \"lport\", \"value\": \"99999999999999999999\"}]}]",
        "[{\"id\": 1, \"matches\": [{\"type\": \"protocol\", \"value\": \"tcp\"}, {\"type\": \"lport\", \"value\": \"1-99999999999999999999\"}]}]",
        "[{\"id\": 1, \"actions\": [{\"limit\": true, \"limitrate\": 4294967296}]}]",
        "[{\"id\": 1, \"actions\": [null]}]",
        "[{\"id\": 1, \"matches\": [null, {}]}]",
        "[{\"id\": 1, \"dir\": \"\"}]",
        "[{\"id\": 1, \"dir\": -1}]",
    ] {
        assert!(!errors(&lan(acls)).is_empty(), "{acls}");
    }
    // Every prefix of a config with ACLs is rejected cleanly.
    let doc = lan(SPEC_ACLS);
    let b = doc.as_bytes();
    let start = doc.find("\"acls\"").unwrap();
    for n in start..b.len() - 1 {
        assert!(parse(&b[..n]).is_err(), "prefix of {n} bytes accepted");
    }
}

#[test]
fn ip_takes_ipv6_addresses_and_prefixes() {
    let six = |s: &str| Some(s.parse::<crate::addr::Ipv6Net>().unwrap());
    let acl = r#"[{"id": 1, "matches": [{"type": "ip", "value": "2001:db8::/32"}, {"type": "protocol", "value": "tcp"}, {"type": "fport", "value": "443"}]},
        {"id": 2, "matches": [{"type": "ip", "value": "2001:DB8::1"}], "actions": [{"drop": true}], "dir": "EGRESS"},
        {"id": 3, "matches": [{"type": "ip", "value": "::/0"}, {"type": "protocol", "value": "udp"}],
         "actions": [{"limit": true, "limitrate": 5, "limitunit": "s", "limitburst": 5}]},
        {"id": 4, "matches": [{"type": "ip", "value": "10.0.0.0/8"}]}]"#;
    // The spec's LAN has no subnet6: accepted, and inert there (its IPv6 never
    // reaches the unit); on a dual-stack network the same.
    let dual = SPEC.replacen(
        "\"subnet\": \"10.1.0.0/24\",",
        "\"subnet\": \"10.1.0.0/24\", \"subnet6\": \"fd00:1:2:3::/64\",",
        1,
    );
    for doc in [lan(acl), on(&dual, LAN.0, acl)] {
        let got = acl_of(&doc, 0, 0).unwrap();
        assert_eq!(got[0].matches.ip6, six("2001:db8::/32"));
        assert_eq!(got[0].matches.ip, None);
        assert_eq!(got[1].matches.ip6, six("2001:db8::1/128"));
        assert_eq!(got[1].action, AceAction::Drop);
        assert_eq!(got[2].matches.ip6, six("::/0"));
        assert_eq!(got[3].matches.ip6, None);
        assert_eq!(got[3].matches.ip, Some(net("10.0.0.0/8")));
    }
    // On a switch endpoint too (inert: its units see IPv4).
    let got = acl_of(
        &on(
            SPEC,
            SWITCH.0,
            r#"[{"id": 1, "matches": [{"type": "ip", "value": "fd00::/8"}]}]"#,
        ),
        1,
        0,
    )
    .unwrap();
    assert_eq!(got[0].matches.ip6, six("fd00::/8"));
}

#[test]
fn port_maps_stay_ipv4() {
    let p = "apps[0].interfaces[0].acls[0]";
    only(
        &lan(
            r#"[{"id": 1, "matches": [{"type": "ip", "value": "2001:db8::/32"}, {"type": "protocol", "value": "tcp"},
                {"type": "lport", "value": "8080"}], "actions": [{"portmap": true, "appPort": 80}]}]"#,
        ),
        &format!(
            "{p}.matches[0].value: port maps are IPv4 only: a port map's ip match cannot be IPv6"
        ),
    );
}
