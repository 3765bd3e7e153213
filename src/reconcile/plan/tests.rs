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
    let mut d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[], &[]);
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
fn empty_kernel_plans_everything_at_once_parents_first() {
    let d = d();
    let mut cur = converged(&d);
    cur.links.retain(|l| l.name == "lo" || l.name == "eth1");
    cur.links[1].master = None;
    if let Some(Ok(ns)) = cur.netns.get_mut("/run/netns/web") {
        ns.links.retain(|l| l.name == "lo");
    }
    let p = plan(&d, &cur);
    assert!(p.issues.is_empty());
    let (steps, cyclic) = crate::reconcile::order::order(p.steps);
    assert!(cyclic.is_empty());
    let br = Ref::Made("ec-fieldbus".into());
    let shape: Vec<String> = steps
        .iter()
        .map(|s| match &s.op {
            Op::CreateBridge { name, .. } => format!("bridge {name}"),
            Op::Set { link, master, .. } => format!("set {link:?} master {master:?}"),
            Op::CreateVeth { host, master, .. } => {
                format!(
                    "veth {} master {master:?}",
                    host.name.as_deref().unwrap_or("?")
                )
            }
            Op::SetPeer { link, change, .. } => format!("peer {link:?} up {:?}", change.up),
            Op::CreateTap { name } => format!("tap {name}"),
            other => format!("{other:?}"),
        })
        .collect();
    let web = &d.endpoints[0].host_name;
    assert_eq!(
        shape,
        [
            "bridge ec-fieldbus".to_string(),
            "set Made(\"ec-fieldbus\") master None".into(),
            format!("set Index(2) master Some({br:?})"),
            format!("veth {web} master {br:?}"),
            format!("set Made({web:?}) master None"),
            "peer Made(\"eth0\") up Some(true)".into(),
            "tap vif-plc0".into(),
            format!("set Made(\"vif-plc0\") master Some({br:?})"),
        ]
    );
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
                link: Ref::Index(30),
                name: "eth2".into(),
                change: LinkChange::default(),
                master: Some(NO_MASTER),
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
        Err(crate::reconcile::current::NsError::Open(
            "No such file or directory".into(),
        )),
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
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[], &[]);
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
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[], &[]);
    let p = plan(&d, &cur);
    let o = ops(&p);
    assert!(
        o.iter().any(
            |op| matches!(op, Op::AddAddr { ip, prefix: 24, .. } if ip.to_string() == "10.1.0.1")
        ),
        "{o:?}"
    );
    assert!(o.iter().any(|op| matches!(op, Op::Sysctl { path, value, .. } if path.ends_with("ip_forward") && value == "1")));
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
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[], &[]);
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
        matches!(o[1], Op::Set { link: Ref::Made(n), master: Some(Ref::Index(10)), .. } if n == "vif-web"),
        "{o:?}"
    );
    assert!(
        matches!(o[2], Op::DelAddr { ip, .. } if ip.to_string() == "192.168.9.9"),
        "{o:?}"
    );
    // The ECO's own (port, MAC) is not in the set yet: only that is added.
    assert!(
        matches!(o[3], Op::FirewallElems { add4, add_mac, del4, del_mac, .. } if add4.is_empty() && add_mac.len() == 1 && del4.is_empty() && del_mac.is_empty()),
        "{o:?}"
    );
    assert_eq!(o.len(), 4);
}

#[test]
fn nat_follows_the_port_that_is_up_and_overlap_withdraws_the_gateway() {
    use crate::reconcile::facts::{Facts, PortFact};
    let (cfg, _) = l3();
    let up = PortFact {
        present: true,
        carrier: true,
        addrs: vec![("192.0.2.2".parse().unwrap(), 24)],
        addrs6: Vec::new(),
        mtu: 1500,
        accept_ra: None,
    };
    let d = desired(
        &cfg,
        &Facts {
            ports: vec![up.clone()],
            ..Default::default()
        },
        &[],
        &[],
    );
    assert_eq!(d.firewall.nets[0].nat_port.as_deref(), Some("eth0"));
    let down = PortFact {
        carrier: false,
        ..up.clone()
    };
    let d = desired(
        &cfg,
        &Facts {
            ports: vec![down],
            ..Default::default()
        },
        &[],
        &[],
    );
    assert_eq!(d.firewall.nets[0].nat_port, None);
    assert_eq!(d.addrs.len(), 1);
    let clash = PortFact {
        addrs: vec![("10.1.0.77".parse().unwrap(), 16)],
        ..up
    };
    let facts = Facts {
        ports: vec![clash],
        ..Default::default()
    };
    assert!(facts
        .overlap(&cfg, 0)
        .unwrap()
        .contains("overlaps port eth0 (10.1.0.77/16)"));
    let d = desired(&cfg, &facts, &[], &[]);
    assert!(d.addrs.is_empty(), "gateway withdrawn");
}

#[test]
fn no_networks_and_no_ports_removes_the_tables() {
    let cfg = crate::config::parse(br#"{"device_id": "d"}"#).unwrap();
    let d = desired(&cfg, &crate::reconcile::facts::Facts::default(), &[], &[]);
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

/// A model of the kernel, as strict as the kernel where order matters: a reference
/// by name must find its link, a far end can only be changed once it exists, a
/// route needs its link up, a sysctl its link's directory, a set element the table.
mod fake_kernel {
    use super::*;
    use crate::firewall::allowed_keys;
    use crate::reconcile::order::order;

    fn next_index(cur: &Current) -> i32 {
        cur.links.iter().map(|l| l.index).max().unwrap_or(0) + 1
    }

    fn index_of(cur: &Current, r: &Ref) -> Result<i32, String> {
        match r {
            Ref::Index(0) => Ok(0),
            Ref::Index(i) => cur
                .links
                .iter()
                .any(|l| l.index == *i)
                .then_some(*i)
                .ok_or(format!("no link {i}")),
            Ref::Made(n) => cur
                .links
                .iter()
                .find(|l| l.name == *n)
                .map(|l| l.index)
                .ok_or(format!("no link {n}")),
        }
    }

    fn change(l: &mut Link, c: &LinkChange, master: Option<i32>) -> Result<(), String> {
        if let Some(n) = &c.name {
            // As before Linux 6.2, and the rename goes before the flags.
            if l.up {
                return Err(format!("rename {} while up: EBUSY", l.name));
            }
            l.name = n.clone();
        }
        if let Some(m) = c.mtu {
            l.mtu = m;
        }
        if c.mac.is_some() {
            l.mac = c.mac;
        }
        if let Some(m) = master.or(c.master) {
            l.master = (m != 0).then_some(m);
        }
        if c.alias.is_some() {
            l.alias = c.alias.clone();
        }
        if let Some(up) = c.up {
            l.up = up;
        }
        Ok(())
    }

    /// The sysctl files under a link's directory appear with it, with the defaults,
    /// and go with it.
    fn sysctls_appear(cur: &mut Current, name: &str) {
        for (path, v) in cur.sysctls.iter_mut() {
            if path.contains(&format!("/{name}/")) && v.is_none() {
                *v = Some("0".into());
            }
        }
    }

    fn sysctls_go(cur: &mut Current, name: &str) {
        for (path, v) in cur.sysctls.iter_mut() {
            if path.contains(&format!("/{name}/")) {
                *v = None;
            }
        }
    }

    pub fn apply(cur: &mut Current, d: &Desired, op: &Op) -> Result<(), String> {
        match op {
            Op::Delete { index, .. } => {
                if let Some(l) = cur.links.iter().find(|l| l.index == *index) {
                    let name = l.name.clone();
                    sysctls_go(cur, &name);
                }
                cur.links.retain(|l| l.index != *index);
                for l in cur.links.iter_mut().filter(|l| l.master == Some(*index)) {
                    l.master = None;
                }
                for ns in cur.netns.values_mut().flatten() {
                    ns.links
                        .retain(|pl| !(pl.peer_index == Some(*index) && pl.link_netnsid.is_some()));
                }
                cur.addrs.retain(|a| a.index != *index);
                cur.routes.retain(|r| r.oif != Some(*index));
            }
            Op::CreateBridge { name, mac, mtu } => {
                if cur.links.iter().any(|l| l.name == *name) {
                    return Err(format!("{name} exists"));
                }
                let mut l = link(next_index(cur), name, Some("bridge"));
                l.mac = Some(*mac);
                l.mtu = *mtu;
                cur.links.push(l);
                sysctls_appear(cur, name);
            }
            Op::CreateTap { name } | Op::CreateTun { name } => {
                if cur.links.iter().any(|l| l.name == *name) {
                    return Err(format!("{name} exists"));
                }
                let mut l = link(next_index(cur), name, Some("tun"));
                l.tun_type = Some(if matches!(op, Op::CreateTap { .. }) {
                    2
                } else {
                    1
                });
                l.mac = Some(MacAddr([2, 0x77, 0, 0, 0, 1]));
                cur.links.push(l);
            }
            Op::Set {
                link: r,
                change: c,
                master,
                ..
            } => {
                let i = index_of(cur, r)?;
                let m = master.as_ref().map(|m| index_of(cur, m)).transpose()?;
                let l = cur.links.iter_mut().find(|l| l.index == i).ok_or("gone")?;
                let old_name = l.name.clone();
                change(l, c, m)?;
                if let Some(n) = &c.name {
                    sysctls_go(cur, &old_name);
                    sysctls_appear(cur, n);
                }
                // Down flushes the IPv4 routes through the link.
                if c.up == Some(false) {
                    cur.routes.retain(|r| r.oif != Some(i));
                }
            }
            Op::CreateVeth {
                host,
                master,
                netns,
                peer_name,
                peer_mac,
                mtu,
            } => {
                let m = index_of(cur, master)?;
                let hname = host.name.clone().ok_or("no name")?;
                if cur.links.iter().any(|l| l.name == hname) {
                    return Err(format!("{hname} exists"));
                }
                let Some(Ok(ns)) = cur.netns.get(netns) else {
                    return Err(format!("no {netns}"));
                };
                if ns.links.iter().any(|l| l.name == *peer_name) {
                    return Err(format!("{peer_name} exists in {netns}"));
                }
                let index = next_index(cur);
                let mut l = link(index, &hname, Some("veth"));
                change(&mut l, host, Some(m))?;
                cur.links.push(l);
                let Some(Ok(ns)) = cur.netns.get_mut(netns) else {
                    return Err(format!("no {netns}"));
                };
                let mut pl = link(100 + index, peer_name, Some("veth"));
                pl.mac = Some(*peer_mac);
                pl.mtu = *mtu;
                pl.peer_index = Some(index);
                pl.link_netnsid = Some(0);
                ns.links.push(pl);
            }
            Op::SetPeer {
                netns,
                link: r,
                change: c,
                ..
            } => {
                let Some(Ok(ns)) = cur.netns.get_mut(netns) else {
                    return Err(format!("no {netns}"));
                };
                let pl = ns
                    .links
                    .iter_mut()
                    .find(|l| match r {
                        Ref::Index(i) => l.index == *i,
                        Ref::Made(n) => l.name == *n,
                    })
                    .ok_or(format!("no {r:?} in {netns}"))?;
                change(pl, c, None)?;
            }
            Op::AddAddr {
                link: r,
                ip,
                prefix,
                ..
            } => {
                let index = index_of(cur, r)?;
                cur.addrs.push(crate::netlink::addr::Addr {
                    index,
                    ip: *ip,
                    prefix_len: *prefix,
                });
            }
            Op::DelAddr { index, ip, .. } => {
                let before = cur.addrs.len();
                cur.addrs.retain(|a| !(a.index == *index && a.ip == *ip));
                if cur.addrs.len() == before {
                    return Err(format!("no address {ip}"));
                }
            }
            Op::Sysctl { path, value, .. } => match cur.sysctls.get_mut(path) {
                Some(v @ Some(_)) => *v = Some(value.clone()),
                _ => return Err(format!("no file {path}")),
            },
            Op::AddRoute { route, dev, .. } => {
                let i = index_of(cur, dev)?;
                if !cur.links.iter().any(|l| l.index == i && l.up) {
                    return Err(format!("route through {dev:?}: network is down"));
                }
                let mut r = route.clone();
                r.oif = Some(i);
                cur.routes.push(r);
            }
            Op::DelRoute(r) => {
                let before = cur.routes.len();
                cur.routes.retain(|x| x != r);
                if cur.routes.len() == before {
                    return Err(format!("no route {r:?}"));
                }
            }
            Op::FirewallBuild { .. } => {
                let fp = d.firewall.fingerprint();
                let (a4, amac) = allowed_keys(&d.allowed);
                cur.firewall.inet = Some(fp.clone());
                cur.firewall.bridge = Some(fp);
                cur.firewall.allowed4 = a4;
                cur.firewall.allowed_mac = amac;
                let (a6, a6ip) = crate::firewall::allowed6_keys(&d.allowed6);
                cur.firewall.allowed6 = a6;
                cur.firewall.allowed6_ip = a6ip;
                let mut acl = crate::acl::AclState::default();
                crate::acl::changes(&d.acl, &acl).apply_to(&mut acl);
                cur.firewall.acl = acl;
            }
            Op::FirewallDelete { inet, bridge } => {
                if *inet {
                    cur.firewall.inet = None;
                }
                if *bridge {
                    cur.firewall.bridge = None;
                }
            }
            Op::FirewallElems {
                add4,
                del4,
                add_mac,
                del_mac,
                acl,
                v6,
            } => {
                if cur.firewall.bridge.is_none() {
                    return Err("no table".into());
                }
                let fw = &mut cur.firewall;
                fw.allowed4.retain(|k| !del4.contains(k));
                fw.allowed_mac.retain(|k| !del_mac.contains(k));
                fw.allowed4.extend(add4.iter().cloned());
                fw.allowed_mac.extend(add_mac.iter().cloned());
                fw.allowed6.retain(|k| !v6.del.contains(k));
                fw.allowed6_ip.retain(|k| !v6.del_ip.contains(k));
                fw.allowed6.extend(v6.add.iter().cloned());
                fw.allowed6_ip.extend(v6.add_ip.iter().cloned());
                acl.apply_to(&mut fw.acl);
            }
            Op::FlushConntrack { .. } => {}
        }
        Ok(())
    }

    /// Plans from `cur`, orders the steps (after reversing them when `reverse`, so
    /// the planner's own order cannot carry it), applies them, and checks that the
    /// kernel then matches: a second plan is empty.
    pub fn one_pass(d: &Desired, cur: &mut Current, reverse: bool) -> usize {
        let mut p = plan(d, cur);
        assert!(p.issues.is_empty(), "{:?}", p.issues);
        if reverse {
            p.steps.reverse();
        }
        let n = p.steps.len();
        let (steps, cyclic) = order(p.steps);
        assert!(cyclic.is_empty(), "{cyclic:?}");
        for s in &steps {
            if let Err(e) = apply(cur, d, &s.op) {
                panic!("{e}: {:?}\nin {steps:#?}", s.op);
            }
        }
        let again = plan(d, cur);
        assert_eq!(again, Plan::default(), "after {steps:#?}");
        n
    }

    /// The example device of `board/`: all four network types, veths and taps.
    fn spec_device() -> (crate::config::Config, Current) {
        device(include_bytes!("../../../board/examples/spec-device.json"))
    }

    fn device(doc: &[u8]) -> (crate::config::Config, Current) {
        let cfg = crate::config::parse(doc).unwrap();
        let mut eth0 = link(2, "eth0", None);
        eth0.up = true;
        eth0.lower_up = true;
        let mut eth1 = link(3, "eth1", None);
        eth1.up = true;
        eth1.lower_up = true;
        let mut cur = Current {
            links: vec![link(1, "lo", None), eth0, eth1],
            addrs: vec![crate::netlink::addr::Addr {
                index: 2,
                ip: "192.0.2.2".parse().unwrap(),
                prefix_len: 24,
            }],
            ..Default::default()
        };
        cur.sysctls.insert(
            crate::acl::BR_NF_CALL_IPTABLES.into(),
            Some("1".to_string()),
        );
        cur.netns.insert(
            "/run/netns/web".into(),
            Ok(NsView {
                id: (1, 2),
                links: vec![link(1, "lo", None)],
            }),
        );
        (cfg, cur)
    }

    fn desired_for(cfg: &crate::config::Config, cur: &mut Current) -> Desired {
        let facts = crate::reconcile::facts::Facts::read(cfg, cur);
        let d0 = desired(cfg, &facts, &[], &[]);
        // A lease on the mesh network, so the mesh's EID route is planned too.
        let mesh_ep = d0
            .endpoints
            .iter()
            .find(|e| cfg.networks[e.net].name == "fleet")
            .unwrap();
        let lease = crate::firewall::Allowed::new(
            &mesh_ep.host_name,
            MacAddr([2, 0, 0, 0, 0, 9]),
            Some("10.200.4.10".parse().unwrap()),
        );
        let d = desired(cfg, &facts, &[lease], &[]);
        for sc in &d.sysctls {
            cur.sysctls
                .entry(sc.path.clone())
                .or_insert_with(|| sc.link.is_none().then(|| "0".to_string()));
        }
        d
    }

    #[test]
    fn a_whole_device_converges_in_one_pass_whatever_order_the_planner_used() {
        for reverse in [false, true] {
            let (cfg, mut cur) = spec_device();
            let d = desired_for(&cfg, &mut cur);
            assert!(d.tunnels.len() == 2 && d.routes.len() >= 3, "{d:?}");
            let n = one_pass(&d, &mut cur, reverse);
            assert!(n > 20, "{n} steps");
        }
    }

    #[test]
    fn acls_converge_in_one_pass_and_one_endpoints_change_remakes_only_its_unit() {
        for reverse in [false, true] {
            let (cfg, mut cur) = device(include_bytes!("../../../board/examples/acl-device.json"));
            let d = desired_for(&cfg, &mut cur);
            assert_eq!(d.acl.units.len(), 3, "{:?}", d.acl.units);
            one_pass(&d, &mut cur, reverse);
            assert_eq!(cur.firewall.acl.chains.len(), 6);
            // The switch endpoint's limit changes: one unit re-made, nothing else.
            let mut cfg2 = cfg.clone();
            let plc = &mut cfg2.apps[1].interfaces[0];
            if let Some(crate::config::AceAction::Limit { rate, .. }) =
                plc.acls.as_mut().map(|a| &mut a[1].action)
            {
                *rate = 20;
            }
            let d2 = desired_for(&cfg2, &mut cur);
            let p = plan(&d2, &cur);
            let [Step {
                op: Op::FirewallElems { acl: c, add4, .. },
                ..
            }] = &p.steps[..]
            else {
                panic!("{:#?}", p.steps);
            };
            assert!(add4.is_empty());
            assert_eq!((c.new_units.len(), c.del_chains.len()), (1, 2), "{c:#?}");
            assert!(c.new_sets.is_empty() && c.del_sets.is_empty() && c.add_pm.is_empty());
            one_pass(&d2, &mut cur, reverse);
        }
    }

    #[test]
    fn stale_renamed_moved_and_wrong_kind_objects_converge_in_one_pass() {
        let (cfg, mut cur) = spec_device();
        let d = desired_for(&cfg, &mut cur);
        one_pass(&d, &mut cur, false);
        let lan = d.bridges[0].name.clone();
        let tun = d.tunnels[0].name.clone();
        let next = next_index(&cur);
        let fleet = d.bridges[3].name.clone();
        for l in cur.links.iter_mut() {
            if l.name == lan || l.name == fleet {
                // An operator renamed the bridges (they stay up, with their
                // addresses and routes).
                l.name = format!("x{}", l.index);
            } else if l.name == tun {
                // Something replaced the VPN's TUN with a tap of its name and mark.
                l.tun_type = Some(2);
            }
        }
        // The web container restarted in a new namespace: its old far end is gone
        // and the new namespace is empty.
        if let Some(Ok(ns)) = cur.netns.get_mut("/run/netns/web") {
            ns.links.retain(|pl| pl.name == "lo");
            ns.id = (1, 3);
        }
        // A leftover endpoint of an app that is gone, still holding a route.
        let mut old = link(next, "vold0", Some("veth"));
        old.alias = Some("econet:ep:gone:gone:eth0".into());
        cur.links.push(old);
        cur.routes.push(crate::netlink::route::Route {
            dst: "10.99.0.0/24".parse().unwrap(),
            oif: Some(next),
            gateway: None,
            prefsrc: None,
            table: crate::netlink::route::TABLE_MAIN,
            metric: 0,
            protocol: crate::netlink::route::RTPROT_ECONET,
            scope: libc::RT_SCOPE_LINK,
        });
        sysctls_go(&mut cur, &lan);
        sysctls_go(&mut cur, &fleet);
        let n = one_pass(&d, &mut cur, true);
        assert!(n >= 8, "{n} steps");
        assert!(cur.links.iter().any(|l| l.name == lan && l.up));
        assert!(cur.links.iter().all(|l| l.name != "vold0"));
    }

    /// The example device with its JSON edited by `before`, converged; then edited by
    /// `after` too, and converged from there in one pass (in the planner's order, and
    /// from the same state in reverse).
    fn reconfigured(before: &[(&str, &str)], after: &[(&str, &str)]) -> Current {
        let edit = |edits: &[(&str, &str)], doc: &mut String| {
            for (from, to) in edits {
                assert!(doc.contains(from), "{from}");
                *doc = doc.replace(from, to);
            }
        };
        let (_, mut cur) = spec_device();
        let mut doc = include_str!("../../../board/examples/spec-device.json").to_string();
        edit(before, &mut doc);
        let cfg = crate::config::parse(doc.as_bytes()).unwrap();
        let d = desired_for(&cfg, &mut cur);
        one_pass(&d, &mut cur, false);
        edit(after, &mut doc);
        let cfg = crate::config::parse(doc.as_bytes()).unwrap();
        let d = desired_for(&cfg, &mut cur);
        let mut reversed = cur.clone();
        one_pass(&d, &mut reversed, true);
        one_pass(&d, &mut cur, false);
        cur
    }

    #[test]
    fn a_network_recreated_under_a_new_id_with_the_same_names_converges_in_one_pass() {
        // The local and mesh networks deleted and created again by the controller: new
        // ids (so new marks), the same bridge, veth and far-end names.
        let new_ids = [
            (
                "11111111-0000-4000-8000-000000000001",
                "11111111-0000-4000-8000-0000000000a1",
            ),
            (
                "11111111-0000-4000-8000-000000000004",
                "11111111-0000-4000-8000-0000000000a4",
            ),
        ];
        reconfigured(&[], &new_ids);
    }

    #[test]
    fn a_port_that_moves_to_another_switch_network_ends_up_on_its_bridge() {
        let second = r#"{"id": "11111111-0000-4000-8000-000000000005", "name": "line2", "type": "switch"},
    {"id": "11111111-0000-4000-8000-000000000002", "name": "fieldbus","#;
        let cur = reconfigured(
            &[(
                r#"{"id": "11111111-0000-4000-8000-000000000002", "name": "fieldbus","#,
                second,
            )],
            &[
                (
                    r#""name": "line2", "type": "switch""#,
                    r#""name": "line2", "type": "switch", "port": "eth1""#,
                ),
                (
                    r#""name": "fieldbus",
     "type": "switch", "port": "eth1""#,
                    r#""name": "fieldbus",
     "type": "switch""#,
                ),
            ],
        );
        let line2 = cur.links.iter().find(|l| l.name == "ec-line2").unwrap();
        let eth1 = cur.links.iter().find(|l| l.name == "eth1").unwrap();
        assert_eq!(eth1.master, Some(line2.index));
    }
}

#[test]
fn ipv6_leaves_by_the_active_port_only_while_it_has_a_global_address() {
    use crate::reconcile::facts::{Facts, PortFact};
    let cfg = crate::config::parse(include_bytes!(
        "../../../board/examples/dual-stack-device.json"
    ))
    .unwrap();
    let port = |v6: &str| PortFact {
        present: true,
        carrier: true,
        addrs: vec![(std::net::Ipv4Addr::new(192, 0, 2, 7), 24)],
        addrs6: vec![(v6.parse().unwrap(), 64)],
        mtu: 1500,
        accept_ra: None,
    };
    let facts = |v6: &str| Facts {
        ports: vec![port(v6), port("fe80::2")],
        ..Default::default()
    };
    let d = desired(&cfg, &facts("2001:db8::7"), &[], &[]);
    let lan = &d.firewall.nets[0];
    assert_eq!(lan.nat_port.as_deref(), Some("eth0"));
    assert_eq!(lan.nat6_port.as_deref(), Some("eth0"));
    assert_eq!(lan.subnet6, Some("fd00:1:2:3::/64".parse().unwrap()));
    assert!(!lan.slaac && d.firewall.nets[1].slaac);
    // A link-local or ULA address is not an uplink for IPv6.
    for v6 in ["fe80::7", "fd00:99::7"] {
        let d = desired(&cfg, &facts(v6), &[], &[]);
        assert_eq!(d.firewall.nets[0].nat_port.as_deref(), Some("eth0"));
        assert_eq!(d.firewall.nets[0].nat6_port, None, "{v6}");
    }
    // The static ip6 of endpoints are admitted, with the ECO's MAC.
    let ips: Vec<String> = d.allowed6.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(ips, ["fd00:1:2:3::20", "fd00:1:2:4::1:7"]);
    let web = &cfg.apps[0].interfaces[0];
    assert_eq!(d.allowed6[0].mac, web.eco_mac(&cfg.apps[0].id));
}
