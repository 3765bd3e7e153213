use super::*;
use crate::addr::MacAddr;
use crate::reconcile::current::{Current, NsView};
use crate::reconcile::desired::{desired, Desired};
use std::collections::HashMap;

const CFG: &str = r#"{
  "device_id": "d",
  "ports": [{"name": "eth1", "ifname": "eth1"}],
  "networks": [{"id": "n1", "name": "fieldbus", "type": "switch", "port": "eth1"}],
  "apps": [
    {"id": "a1", "name": "web", "interfaces": [{"name": "eth0", "network": "n1", "attach": {"netns": "/run/netns/web"}}]},
    {"id": "a2", "name": "plc", "interfaces": [{"name": "eth0", "network": "n1", "attach": {"tap": "vif-plc0"}}]}
  ]
}"#;

fn d() -> Desired {
    let cfg = crate::config::parse(CFG.as_bytes()).unwrap();
    let mut d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[]);
    // These tests are about links; the firewall has its own.
    d.firewall = Default::default();
    d
}

fn link(index: i32, name: &str, kind: Option<&str>) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        mtu: 1500,
        ..Default::default()
    }
}

/// The kernel state a finished reconcile of `CFG` leaves.
fn converged(d: &Desired) -> Current {
    let b = &d.bridges[0];
    let mut br = link(10, &b.name, Some("bridge"));
    br.alias = Some(b.alias.clone());
    br.mac = Some(b.mac);
    br.up = true;
    let mut port = link(2, "eth1", None);
    port.master = Some(10);
    port.up = true;
    let web = &d.endpoints[0];
    let mut veth = link(11, &web.host_name, Some("veth"));
    veth.alias = Some(web.alias.clone());
    veth.mac = Some(web.host_mac);
    veth.master = Some(10);
    veth.up = true;
    let plc = &d.endpoints[1];
    let mut tap = link(12, "vif-plc0", Some("tun"));
    tap.tun_type = Some(2);
    tap.alias = Some(plc.alias.clone());
    tap.mac = Some(plc.host_mac);
    tap.master = Some(10);
    tap.up = true;
    let EndpointKind::Veth { peer_mac, .. } = &web.kind else {
        unreachable!()
    };
    let mut peer = link(2, "eth0", Some("veth"));
    peer.peer_index = Some(11);
    peer.link_netnsid = Some(0);
    peer.mac = Some(*peer_mac);
    peer.up = true;
    let mut netns = HashMap::new();
    netns.insert(
        "/run/netns/web".to_string(),
        Ok(NsView {
            id: (1, 2),
            links: vec![link(1, "lo", None), peer],
        }),
    );
    Current {
        links: vec![link(1, "lo", None), port, br, veth, tap],
        netns,
        ..Default::default()
    }
}

#[test]
fn converged_state_plans_nothing() {
    let d = d();
    let p = plan(&d, &converged(&d));
    assert_eq!(p, Plan::default());
}

#[test]
fn empty_kernel_creates_parents_first() {
    let d = d();
    let mut cur = converged(&d);
    cur.links.retain(|l| l.name == "lo" || l.name == "eth1");
    cur.links[1].master = None;
    if let Some(Ok(ns)) = cur.netns.get_mut("/run/netns/web") {
        ns.links.retain(|l| l.name == "lo");
    }
    let p = plan(&d, &cur);
    let ops: Vec<&Op> = p.steps.iter().map(|s| &s.op).collect();
    // The bridge and the tap first; the port and the veth wait for the bridge.
    assert!(matches!(ops[0], Op::CreateBridge { name, .. } if name == "ec-fieldbus"));
    assert!(matches!(ops[1], Op::CreateTap { name } if name == "vif-plc0"));
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(p.issues.is_empty());
}

#[test]
fn unmarked_bridge_of_our_name_is_adopted() {
    let d = d();
    let mut cur = converged(&d);
    cur.links[2].alias = None;
    let p = plan(&d, &cur);
    assert!(
        matches!(&p.steps[0].op, Op::Set { change, .. } if change.alias.as_deref() == Some("econet:net:n1"))
    );
}

#[test]
fn stale_objects_are_deleted_and_foreign_ones_left_alone() {
    let d = d();
    let mut cur = converged(&d);
    let mut stale = link(20, "vold12345", Some("veth"));
    stale.alias = Some("econet:ep:n9:a9:eth0".into());
    let mut foreign = link(21, "docker0", Some("bridge"));
    foreign.alias = Some("not ours".into());
    let mut old_bridge = link(22, "ec-old", Some("bridge"));
    old_bridge.alias = Some("econet:net:n9".into());
    cur.links.extend([old_bridge, stale, foreign]);
    let p = plan(&d, &cur);
    let deleted: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Delete { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        vec!["vold12345", "ec-old"],
        "endpoints before bridges"
    );
}

#[test]
fn port_left_behind_on_our_bridge_is_released() {
    let d = d();
    let mut cur = converged(&d);
    let mut extra = link(30, "eth2", None);
    extra.master = Some(10);
    cur.links.push(extra);
    let p = plan(&d, &cur);
    assert_eq!(
        p.steps,
        vec![Step {
            net: None,
            op: Op::Set {
                index: 30,
                name: "eth2".into(),
                change: LinkChange {
                    master: Some(0),
                    ..Default::default()
                }
            }
        }]
    );
}

#[test]
fn veth_whose_far_end_left_is_recreated() {
    let d = d();
    let mut cur = converged(&d);
    if let Some(Ok(ns)) = cur.netns.get_mut("/run/netns/web") {
        ns.links.retain(|l| l.name == "lo");
    }
    let p = plan(&d, &cur);
    assert!(
        matches!(&p.steps[0].op, Op::Delete { index: 11, .. }),
        "{p:?}"
    );
}

#[test]
fn far_end_is_brought_up_and_corrected_in_its_namespace() {
    let d = d();
    let mut cur = converged(&d);
    if let Some(Ok(ns)) = cur.netns.get_mut("/run/netns/web") {
        ns.links[1].up = false;
        ns.links[1].mtu = 9000;
    }
    let p = plan(&d, &cur);
    assert!(
        matches!(&p.steps[0].op, Op::SetPeer { netns, change, .. } if netns == "/run/netns/web" && change.up == Some(true) && change.mtu == Some(1500)),
        "{p:?}"
    );
}

#[test]
fn missing_things_become_issues_not_errors() {
    let d = d();
    let mut cur = converged(&d);
    cur.links.retain(|l| l.name != "eth1");
    cur.netns.insert(
        "/run/netns/web".into(),
        Err("No such file or directory".into()),
    );
    let p = plan(&d, &cur);
    let msgs: Vec<&str> = p.issues.iter().map(|i| i.msg.as_str()).collect();
    assert!(
        msgs[0].contains("port eth1 (interface eth1) is not present"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("waiting for network namespace /run/netns/web"),
        "{msgs:?}"
    );
    assert_eq!(p.issues[1].endpoint, Some(("a1".into(), "eth0".into())));
}

#[test]
fn foreign_link_with_our_name_is_an_issue() {
    let d = d();
    let mut cur = converged(&d);
    cur.links[2].alias = None;
    cur.links[2].kind = Some("dummy".into());
    let p = plan(&d, &cur);
    assert!(
        p.issues[0]
            .msg
            .contains("taken by a link econet does not own"),
        "{p:?}"
    );
}

#[test]
fn mtu_and_mac_drift_is_corrected() {
    let d = d();
    let mut cur = converged(&d);
    cur.links[3].mtu = 1400;
    cur.links[2].mac = Some(MacAddr([2, 9, 9, 9, 9, 9]));
    let p = plan(&d, &cur);
    assert_eq!(p.steps.len(), 2, "{p:?}");
}

const L3: &str = r#"{
  "device_id": "d",
  "ports": [{"name": "eth0", "ifname": "eth0"}],
  "networks": [{"id": "n2", "name": "lan", "type": "local", "port": "eth0", "ip": {"subnet": "10.1.0.0/24"}}],
  "apps": [{"id": "a1", "name": "web", "interfaces": [{"name": "eth0", "network": "n2", "attach": {"tap": "vif-web"}}]}]
}"#;

fn l3() -> (crate::config::Config, Current) {
    let cfg = crate::config::parse(L3.as_bytes()).unwrap();
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[]);
    let mut br = link(10, "ec-lan", Some("bridge"));
    br.alias = Some(d.bridges[0].alias.clone());
    br.mac = Some(d.bridges[0].mac);
    br.up = true;
    let mut cur = Current {
        links: vec![link(1, "lo", None), br],
        ..Default::default()
    };
    cur.sysctls
        .insert("/proc/sys/net/ipv4/ip_forward".into(), Some("0".into()));
    cur.sysctls.insert(
        "/proc/sys/net/ipv4/conf/ec-lan/rp_filter".into(),
        Some("1".into()),
    );
    (cfg, cur)
}

fn ops(p: &Plan) -> Vec<&Op> {
    p.steps.iter().map(|s| &s.op).collect()
}

#[test]
fn gateway_address_sysctls_and_firewall_are_planned() {
    let (cfg, cur) = l3();
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[]);
    let p = plan(&d, &cur);
    let o = ops(&p);
    assert!(
        o.iter().any(
            |op| matches!(op, Op::AddAddr { ip, prefix: 24, .. } if ip.to_string() == "10.1.0.1")
        ),
        "{o:?}"
    );
    assert!(o.iter().any(|op| matches!(op, Op::Sysctl { path, value } if path.ends_with("ip_forward") && value == "1")));
    assert!(
        !o.iter()
            .any(|op| matches!(op, Op::Sysctl { path, .. } if path.ends_with("rp_filter"))),
        "already 1"
    );
    assert!(o.contains(&&Op::FirewallBuild {
        replace_inet: false,
        replace_bridge: false
    }));
}

#[test]
fn stray_addresses_on_our_bridge_go_and_matching_firewall_only_diffs_elements() {
    let (cfg, mut cur) = l3();
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[]);
    cur.sysctls
        .insert("/proc/sys/net/ipv4/ip_forward".into(), Some("1".into()));
    cur.addrs = vec![
        crate::netlink::addr::Addr {
            index: 10,
            ip: "10.1.0.1".parse().unwrap(),
            prefix_len: 24,
        },
        crate::netlink::addr::Addr {
            index: 10,
            ip: "192.168.9.9".parse().unwrap(),
            prefix_len: 24,
        },
        crate::netlink::addr::Addr {
            index: 1,
            ip: "127.0.0.1".parse().unwrap(),
            prefix_len: 8,
        },
    ];
    let fp = d.firewall.fingerprint();
    cur.firewall.inet = Some(fp.clone());
    cur.firewall.bridge = Some(fp);
    let p = plan(&d, &cur);
    let o = ops(&p);
    assert!(matches!(o[0], Op::CreateTap { .. }), "{o:?}");
    assert!(
        matches!(o[1], Op::DelAddr { ip, .. } if ip.to_string() == "192.168.9.9"),
        "{o:?}"
    );
    // The ECO's own (port, MAC) is not in the set yet: only that is added.
    assert!(
        matches!(o[2], Op::FirewallElems { add4, add_mac, del4, del_mac } if add4.is_empty() && add_mac.len() == 1 && del4.is_empty() && del_mac.is_empty()),
        "{o:?}"
    );
    assert_eq!(o.len(), 3);
}

#[test]
fn nat_follows_the_port_that_is_up_and_overlap_withdraws_the_gateway() {
    use crate::reconcile::facts::{Facts, PortFact};
    let (cfg, _) = l3();
    let up = PortFact {
        present: true,
        carrier: true,
        addrs: vec![("192.0.2.2".parse().unwrap(), 24)],
        mtu: 1500,
    };
    let d = desired(
        &cfg,
        &Facts {
            ports: vec![up.clone()],
        },
        &[],
    );
    assert_eq!(d.firewall.nets[0].nat_port.as_deref(), Some("eth0"));
    let down = PortFact {
        carrier: false,
        ..up.clone()
    };
    let d = desired(&cfg, &Facts { ports: vec![down] }, &[]);
    assert_eq!(d.firewall.nets[0].nat_port, None);
    assert_eq!(d.addrs.len(), 1);
    let clash = PortFact {
        addrs: vec![("10.1.0.77".parse().unwrap(), 16)],
        ..up
    };
    let facts = Facts { ports: vec![clash] };
    assert!(facts
        .overlap(&cfg, 0)
        .unwrap()
        .contains("overlaps port eth0 (10.1.0.77/16)"));
    let d = desired(&cfg, &facts, &[]);
    assert!(d.addrs.is_empty(), "gateway withdrawn");
}

#[test]
fn no_networks_and_no_ports_removes_the_tables() {
    let cfg = crate::config::parse(br#"{"device_id": "d"}"#).unwrap();
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[]);
    let mut cur = Current::default();
    cur.firewall.inet = Some(vec![1]);
    let p = plan(&d, &cur);
    assert_eq!(
        ops(&p),
        vec![&Op::FirewallDelete {
            inet: true,
            bridge: false
        }]
    );
}
