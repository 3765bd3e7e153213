//! The diff: desired state against what the kernel holds, as an ordered list of
//! operations. A pure function, so every rule here is unit-tested without a kernel.
//!
//! A plan holds only operations that can run against the current state; an object
//! whose parent does not exist yet is left for the next round, after the parent is
//! created and the state read again. Deletions come first (endpoints before bridges),
//! then bridges, then ports and endpoints.

use super::current::{Current, NsView};
use super::desired::{is_bridge_alias, Desired, Endpoint, EndpointKind, ALIAS_PREFIX};
use crate::firewall::allowed_keys;
use crate::netlink::link::{Link, LinkChange};
use std::net::Ipv4Addr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Delete an econet-owned link (a veth takes its far end with it).
    Delete {
        index: i32,
        name: String,
    },
    CreateBridge {
        name: String,
        mac: crate::addr::MacAddr,
        mtu: u32,
    },
    /// Change a link in econet's own namespace.
    Set {
        index: i32,
        name: String,
        change: LinkChange,
    },
    CreateVeth {
        host: LinkChange,
        netns: String,
        peer_name: String,
        peer_mac: crate::addr::MacAddr,
        mtu: u32,
    },
    CreateTap {
        name: String,
    },
    /// Change the far end of a veth, inside the ECO's namespace.
    SetPeer {
        netns: String,
        index: i32,
        name: String,
        change: LinkChange,
    },
    AddAddr {
        index: i32,
        name: String,
        ip: Ipv4Addr,
        prefix: u8,
    },
    DelAddr {
        index: i32,
        name: String,
        ip: Ipv4Addr,
        prefix: u8,
    },
    Sysctl {
        path: String,
        value: String,
    },
    CreateTun {
        name: String,
    },
    AddRoute(crate::netlink::route::Route),
    DelRoute(crate::netlink::route::Route),
    /// Replace econet's nftables tables (those that exist) with the desired ones.
    FirewallBuild {
        replace_inet: bool,
        replace_bridge: bool,
    },
    /// Remove econet's nftables tables: no ports and no networks any more.
    FirewallDelete {
        inet: bool,
        bridge: bool,
    },
    /// Bring the allowed-sender sets to the desired elements (a pass), or admit and
    /// dismiss the senders of a batch of leases at once.
    FirewallElems {
        add4: Vec<Vec<u8>>,
        del4: Vec<Vec<u8>>,
        add_mac: Vec<Vec<u8>>,
        del_mac: Vec<Vec<u8>>,
    },
    /// Forget the connections a network's NAT translated (its NAT moved to another
    /// port, or lost it): they re-establish through the new port.
    FlushConntrack {
        mark: u32,
    },
}

/// An operation and the network it serves (`None` for clean-up of stale objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub net: Option<usize>,
    pub op: Op,
}

/// Something that keeps an object from being as desired, found while planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub net: usize,
    /// (app id, interface name) when the issue concerns one endpoint.
    pub endpoint: Option<(String, String)>,
    pub msg: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub issues: Vec<Issue>,
}

fn owned(l: &Link) -> bool {
    l.alias
        .as_deref()
        .is_some_and(|a| a.starts_with(ALIAS_PREFIX))
}

pub fn plan(d: &Desired, cur: &Current) -> Plan {
    let mut p = Plan::default();
    let by_alias = |a: &str| cur.links.iter().find(|l| l.alias.as_deref() == Some(a));
    let by_name = |n: &str| cur.links.iter().find(|l| l.name == n);

    // 1. Owned links nobody wants any more, or of the wrong kind: endpoints first.
    let wanted_kind = |alias: &str| -> Option<&'static str> {
        if d.bridges.iter().any(|b| b.alias == alias) {
            return Some("bridge");
        }
        if d.tunnels.iter().any(|t| t.alias == alias) {
            return Some("tun");
        }
        d.endpoints
            .iter()
            .find(|e| e.alias == alias)
            .map(|e| match e.kind {
                EndpointKind::Veth { .. } => "veth",
                EndpointKind::Tap => "tun",
            })
    };
    let mut stale: Vec<&Link> = cur
        .links
        .iter()
        .filter(|l| owned(l))
        .filter(|l| {
            let alias = l.alias.as_deref().unwrap_or_default();
            match wanted_kind(alias) {
                None => true,
                Some(k) => l.kind.as_deref() != Some(k),
            }
        })
        .collect();
    stale.sort_by_key(|l| is_bridge_alias(l.alias.as_deref().unwrap_or_default()));
    for l in stale {
        push_delete(&mut p, None, l);
    }
    let deleting: Vec<i32> = p
        .steps
        .iter()
        .filter_map(|s| match s.op {
            Op::Delete { index, .. } => Some(index),
            _ => None,
        })
        .collect();

    // 2. Bridges. An unmarked bridge of the right name was made by an econet that
    // stopped (or had not yet come round) before it could mark it: adopt it.
    for b in &d.bridges {
        let found = by_alias(&b.alias)
            .filter(|l| !deleting.contains(&l.index))
            .or_else(|| {
                by_name(&b.name)
                    .filter(|l| l.alias.is_none() && l.kind.as_deref() == Some("bridge"))
            });
        match found {
            None => match by_name(&b.name) {
                Some(l) if deleting.contains(&l.index) => {}
                Some(_) => p.issues.push(Issue {
                    net: b.net,
                    endpoint: None,
                    msg: format!(
                        "bridge name {} is taken by a link econet does not own",
                        b.name
                    ),
                }),
                None => p.steps.push(Step {
                    net: Some(b.net),
                    op: Op::CreateBridge {
                        name: b.name.clone(),
                        mac: b.mac,
                        mtu: b.mtu,
                    },
                }),
            },
            Some(l) => {
                let mut c = LinkChange::default();
                if l.alias.is_none() {
                    c.alias = Some(b.alias.clone());
                }
                if l.name != b.name {
                    if by_name(&b.name).is_some() {
                        p.issues.push(Issue {
                            net: b.net,
                            endpoint: None,
                            msg: format!(
                                "cannot rename bridge {} to {}: the name is taken",
                                l.name, b.name
                            ),
                        });
                        continue;
                    }
                    // The kernel renames only links that are down; up again next round.
                    c.name = Some(b.name.clone());
                    c.up = Some(false);
                } else if !l.up {
                    c.up = Some(true);
                    // First time up: no IPv6 link-local address or chatter on ECO networks.
                    c.no_ipv6_addrgen = true;
                }
                if l.mtu != b.mtu {
                    c.mtu = Some(b.mtu);
                }
                if l.mac != Some(b.mac) {
                    c.mac = Some(b.mac);
                }
                push_set(&mut p, Some(b.net), l, c);
            }
        }
    }

    let bridge_index = |name: &str| -> Option<i32> {
        let b = d.bridges.iter().find(|b| b.name == name)?;
        cur.links
            .iter()
            .find(|l| {
                l.alias.as_deref() == Some(b.alias.as_str())
                    && l.name == name
                    && l.kind.as_deref() == Some("bridge")
            })
            .map(|l| l.index)
    };

    // 3. Ports enslaved to switch bridges; release ports no longer wanted there.
    for pm in &d.ports {
        let Some(l) = by_name(&pm.ifname) else {
            p.issues.push(Issue {
                net: pm.net,
                endpoint: None,
                msg: format!("port {} (interface {}) is not present", pm.port, pm.ifname),
            });
            continue;
        };
        if owned(l) {
            p.issues.push(Issue {
                net: pm.net,
                endpoint: None,
                msg: format!("port {} names econet's own link {}", pm.port, pm.ifname),
            });
            continue;
        }
        let Some(bi) = bridge_index(&pm.bridge) else {
            continue;
        };
        let mut c = LinkChange::default();
        if l.master != Some(bi) {
            c.master = Some(bi);
        }
        if !l.up {
            c.up = Some(true);
        }
        push_set(&mut p, Some(pm.net), l, c);
    }
    let our_bridges: Vec<i32> = cur
        .links
        .iter()
        .filter(|l| l.alias.as_deref().is_some_and(is_bridge_alias))
        .map(|l| l.index)
        .collect();
    for l in &cur.links {
        let Some(m) = l.master else { continue };
        if owned(l) || !our_bridges.contains(&m) {
            continue;
        }
        // Endpoints not yet marked are econet's, not ports left behind.
        let wanted = d
            .ports
            .iter()
            .any(|pm| pm.ifname == l.name && bridge_index(&pm.bridge) == Some(m))
            || d.endpoints.iter().any(|e| e.host_name == l.name);
        if !wanted {
            p.steps.push(Step {
                net: None,
                op: Op::Set {
                    index: l.index,
                    name: l.name.clone(),
                    change: LinkChange {
                        master: Some(0),
                        ..Default::default()
                    },
                },
            });
        }
    }

    // 4. Endpoints.
    for e in &d.endpoints {
        endpoint(&mut p, e, cur, &deleting, bridge_index(&e.bridge));
    }

    // 5. Gateway addresses on econet's bridges: exactly the desired ones.
    for l in cur
        .links
        .iter()
        .filter(|l| l.alias.as_deref().is_some_and(is_bridge_alias))
    {
        for a in cur.addrs.iter().filter(|a| a.index == l.index) {
            let wanted = d
                .addrs
                .iter()
                .any(|w| w.bridge == l.name && w.ip == a.ip && w.prefix == a.prefix_len);
            if !wanted {
                let net = d.bridges.iter().find(|b| b.name == l.name).map(|b| b.net);
                p.steps.push(Step {
                    net,
                    op: Op::DelAddr {
                        index: l.index,
                        name: l.name.clone(),
                        ip: a.ip,
                        prefix: a.prefix_len,
                    },
                });
            }
        }
    }
    for w in &d.addrs {
        let Some(bi) = bridge_index(&w.bridge) else {
            continue;
        };
        if !cur
            .addrs
            .iter()
            .any(|a| a.index == bi && a.ip == w.ip && a.prefix_len == w.prefix)
        {
            p.steps.push(Step {
                net: Some(w.net),
                op: Op::AddAddr {
                    index: bi,
                    name: w.bridge.clone(),
                    ip: w.ip,
                    prefix: w.prefix,
                },
            });
        }
    }

    // 6. Sysctls (those of a bridge once the bridge exists).
    for sc in &d.sysctls {
        if let Some(Some(v)) = cur.sysctls.get(&sc.path) {
            if *v != sc.value {
                p.steps.push(Step {
                    net: sc.net,
                    op: Op::Sysctl {
                        path: sc.path.clone(),
                        value: sc.value.clone(),
                    },
                });
            }
        }
    }

    // 7. Tunnel devices, then the routes into them.
    for t in &d.tunnels {
        tunnel(&mut p, t, cur, &deleting);
    }
    routes(&mut p, d, cur);

    // 8. The firewall.
    firewall(&mut p, d, cur);
    p
}

fn tunnel(p: &mut Plan, t: &super::desired::Tunnel, cur: &Current, deleting: &[i32]) {
    let by_alias = cur
        .links
        .iter()
        .find(|l| l.alias.as_deref() == Some(t.alias.as_str()) && !deleting.contains(&l.index));
    let by_name = cur
        .links
        .iter()
        .find(|l| l.name == t.name && !deleting.contains(&l.index));
    let l = match (by_alias, by_name) {
        (Some(l), _) => l,
        // Made by an econet that stopped before marking it: adopt.
        (None, Some(l)) if l.alias.is_none() && l.tun_type == Some(1) => l,
        (None, Some(l)) if owned(l) => return,
        (None, Some(_)) => {
            p.issues.push(Issue {
                net: t.net,
                endpoint: None,
                msg: format!(
                    "tunnel name {} is taken by a link econet does not own",
                    t.name
                ),
            });
            return;
        }
        (None, None) => {
            p.steps.push(Step {
                net: Some(t.net),
                op: Op::CreateTun {
                    name: t.name.clone(),
                },
            });
            return;
        }
    };
    if l.tun_type != Some(1) || l.name != t.name {
        push_delete(p, Some(t.net), l);
        return;
    }
    let mut c = LinkChange::default();
    if l.alias.as_deref() != Some(t.alias.as_str()) {
        c.alias = Some(t.alias.clone());
        c.no_ipv6_addrgen = true;
    }
    if l.mtu != t.mtu {
        c.mtu = Some(t.mtu);
    }
    if !l.up {
        c.up = Some(true);
    }
    push_set(p, Some(t.net), l, c);
}

/// econet's routes: exactly the desired ones (for devices that exist).
fn routes(p: &mut Plan, d: &Desired, cur: &Current) {
    use crate::netlink::route::{Route, RTPROT_ECONET, TABLE_MAIN};
    let want: Vec<(usize, Route)> = d
        .routes
        .iter()
        .filter_map(|r| {
            let l = cur.links.iter().find(|l| l.name == r.dev)?;
            Some((
                r.net,
                Route {
                    dst: r.dst,
                    oif: Some(l.index),
                    gateway: None,
                    prefsrc: None,
                    table: TABLE_MAIN,
                    metric: 0,
                    protocol: RTPROT_ECONET,
                    scope: libc::RT_SCOPE_LINK,
                },
            ))
        })
        .collect();
    let same = |a: &Route, b: &Route| a.dst == b.dst && a.oif == b.oif && a.table == b.table;
    for r in &cur.routes {
        if !want.iter().any(|(_, w)| same(w, r)) {
            p.steps.push(Step {
                net: None,
                op: Op::DelRoute(r.clone()),
            });
        }
    }
    for (net, w) in want {
        if !cur.routes.iter().any(|r| same(&w, r)) {
            p.steps.push(Step {
                net: Some(net),
                op: Op::AddRoute(w),
            });
        }
    }
}

fn firewall(p: &mut Plan, d: &Desired, cur: &Current) {
    let fw = &cur.firewall;
    if let Some(e) = &fw.error {
        // Only L3 networks depend on the firewall; switch networks work without it.
        let mut l3: Vec<usize> = d.addrs.iter().map(|a| a.net).collect();
        l3.dedup();
        for net in l3 {
            p.issues.push(Issue {
                net,
                endpoint: None,
                msg: e.clone(),
            });
        }
        return;
    }
    if d.firewall.is_empty() {
        if fw.inet.is_some() || fw.bridge.is_some() {
            p.steps.push(Step {
                net: None,
                op: Op::FirewallDelete {
                    inet: fw.inet.is_some(),
                    bridge: fw.bridge.is_some(),
                },
            });
        }
        return;
    }
    let fp = d.firewall.fingerprint();
    if fw.inet.as_ref() != Some(&fp) || fw.bridge.as_ref() != Some(&fp) {
        p.steps.push(Step {
            net: None,
            op: Op::FirewallBuild {
                replace_inet: fw.inet.is_some(),
                replace_bridge: fw.bridge.is_some(),
            },
        });
        return;
    }
    let (want4, want_mac) = allowed_keys(&d.allowed);
    let diff = |want: &[Vec<u8>], have: &[Vec<u8>]| -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        use std::collections::HashSet;
        let w: HashSet<&Vec<u8>> = want.iter().collect();
        let h: HashSet<&Vec<u8>> = have.iter().collect();
        let add = want.iter().filter(|k| !h.contains(k)).cloned().collect();
        let del = have.iter().filter(|k| !w.contains(k)).cloned().collect();
        (add, del)
    };
    let (add4, del4) = diff(&want4, &fw.allowed4);
    let (add_mac, del_mac) = diff(&want_mac, &fw.allowed_mac);
    if !(add4.is_empty() && del4.is_empty() && add_mac.is_empty() && del_mac.is_empty()) {
        p.steps.push(Step {
            net: None,
            op: Op::FirewallElems {
                add4,
                del4,
                add_mac,
                del_mac,
            },
        });
    }
}

fn push_delete(p: &mut Plan, net: Option<usize>, l: &Link) {
    p.steps.push(Step {
        net,
        op: Op::Delete {
            index: l.index,
            name: l.name.clone(),
        },
    });
}

fn push_set(p: &mut Plan, net: Option<usize>, l: &Link, c: LinkChange) {
    if !c.is_empty() {
        p.steps.push(Step {
            net,
            op: Op::Set {
                index: l.index,
                name: l.name.clone(),
                change: c,
            },
        });
    }
}

fn issue(p: &mut Plan, e: &Endpoint, msg: String) {
    p.issues.push(Issue {
        net: e.net,
        endpoint: Some((e.app_id.clone(), e.ifname.clone())),
        msg,
    });
}

/// Host-side properties every endpoint link must have.
fn host_change(e: &Endpoint, l: &Link, bridge: i32) -> LinkChange {
    let mut c = LinkChange::default();
    if l.alias.as_deref() != Some(e.alias.as_str()) {
        c.alias = Some(e.alias.clone());
        c.no_ipv6_addrgen = true;
    }
    if l.mtu != e.mtu {
        c.mtu = Some(e.mtu);
    }
    if l.mac != Some(e.host_mac) {
        c.mac = Some(e.host_mac);
    }
    if l.master != Some(bridge) {
        c.master = Some(bridge);
    }
    if !l.up {
        c.up = Some(true);
    }
    c
}

/// The far end of the veth `l` inside the namespace `ns`, if it is there.
fn peer_of<'a>(ns: &'a NsView, l: &Link) -> Option<&'a Link> {
    ns.links.iter().find(|pl| {
        pl.peer_index == Some(l.index)
            && pl.kind.as_deref() == Some("veth")
            && pl.link_netnsid.is_some()
    })
}

fn endpoint(p: &mut Plan, e: &Endpoint, cur: &Current, deleting: &[i32], bridge: Option<i32>) {
    let found = cur
        .links
        .iter()
        .find(|l| l.alias.as_deref() == Some(e.alias.as_str()) && !deleting.contains(&l.index));
    let name_taken = cur
        .links
        .iter()
        .find(|l| l.name == e.host_name && !deleting.contains(&l.index));
    match &e.kind {
        EndpointKind::Tap => match found {
            Some(l) => {
                // Not a tap, or not of the name the hypervisor opens: make a new one.
                if l.tun_type != Some(2) || l.name != e.host_name {
                    push_delete(p, Some(e.net), l);
                    return;
                }
                if let Some(b) = bridge {
                    push_set(p, Some(e.net), l, host_change(e, l, b));
                }
            }
            None => match name_taken {
                // A tap of that name without an owner: made for this endpoint (for
                // instance by the hypervisor first, or by an econet that stopped).
                Some(l) if l.alias.is_none() && l.tun_type == Some(2) => {
                    if let Some(b) = bridge {
                        push_set(p, Some(e.net), l, host_change(e, l, b));
                    }
                }
                Some(l) if owned(l) => {}
                Some(_) => issue(
                    p,
                    e,
                    format!(
                        "tap name {} is taken by a link econet does not own",
                        e.host_name
                    ),
                ),
                None => p.steps.push(Step {
                    net: Some(e.net),
                    op: Op::CreateTap {
                        name: e.host_name.clone(),
                    },
                }),
            },
        },
        EndpointKind::Veth {
            netns,
            peer_name,
            peer_mac,
        } => {
            let ns: &NsView = match cur.netns.get(netns) {
                Some(Ok(v)) => v,
                Some(Err(why)) => {
                    issue(
                        p,
                        e,
                        format!("waiting for network namespace {netns}: {why}"),
                    );
                    return;
                }
                None => {
                    issue(p, e, format!("network namespace {netns} was not read"));
                    return;
                }
            };
            // An unmarked veth of the right name whose far end is in the right place
            // was made by an econet that stopped before it could mark it: adopt it.
            let adoptable = name_taken.filter(|l| {
                l.alias.is_none()
                    && l.kind.as_deref() == Some("veth")
                    && peer_of(ns, l).is_some_and(|pl| pl.name == *peer_name)
            });
            match found.or(adoptable) {
                Some(l) => {
                    if l.kind.as_deref() != Some("veth") {
                        return; // deleted as stale above
                    }
                    let Some(peer) = peer_of(ns, l) else {
                        // The far end is not in the namespace the config names (the
                        // container moved to a new namespace): start over.
                        push_delete(p, Some(e.net), l);
                        return;
                    };
                    if l.name != e.host_name {
                        push_delete(p, Some(e.net), l);
                        return;
                    }
                    if let Some(b) = bridge {
                        push_set(p, Some(e.net), l, host_change(e, l, b));
                    }
                    let mut c = LinkChange::default();
                    if peer.name != *peer_name {
                        if ns.links.iter().any(|x| x.name == *peer_name) {
                            issue(p, e, format!("{peer_name} already exists in {netns}"));
                            return;
                        }
                        c.name = Some(peer_name.clone());
                        c.up = Some(false);
                    } else if !peer.up {
                        c.up = Some(true);
                    }
                    if peer.mtu != e.mtu {
                        c.mtu = Some(e.mtu);
                    }
                    if peer.mac != Some(*peer_mac) {
                        c.mac = Some(*peer_mac);
                    }
                    if !c.is_empty() {
                        p.steps.push(Step {
                            net: Some(e.net),
                            op: Op::SetPeer {
                                netns: netns.clone(),
                                index: peer.index,
                                name: peer.name.clone(),
                                change: c,
                            },
                        });
                    }
                }
                None => {
                    if let Some(l) = name_taken {
                        if !owned(l) {
                            issue(
                                p,
                                e,
                                format!(
                                    "interface name {} is taken by a link econet does not own",
                                    e.host_name
                                ),
                            );
                        }
                        return;
                    }
                    if ns.links.iter().any(|x| x.name == *peer_name) {
                        issue(p, e, format!("{peer_name} already exists in {netns}"));
                        return;
                    }
                    let Some(b) = bridge else { return };
                    p.steps.push(Step {
                        net: Some(e.net),
                        op: Op::CreateVeth {
                            host: LinkChange {
                                name: Some(e.host_name.clone()),
                                mtu: Some(e.mtu),
                                mac: Some(e.host_mac),
                                master: Some(b),
                                up: Some(true),
                                ..Default::default()
                            },
                            netns: netns.clone(),
                            peer_name: peer_name.clone(),
                            peer_mac: *peer_mac,
                            mtu: e.mtu,
                        },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
