//! The diff: desired state against what the kernel holds, as a list of operations.
//! A pure function, so every rule here is unit-tested without a kernel.
//!
//! The plan is complete: an object whose parent does not exist yet is planned anyway,
//! referring to the parent by the name an earlier step gives it ([`Ref::Made`]), and
//! each operation declares what it makes and needs, from which
//! [`super::order::order`] sequences the plan. One reading of the kernel, one plan,
//! one pass.

use super::current::{Current, NsView};
use super::desired::{is_bridge_alias, Desired, Endpoint, EndpointKind, ALIAS_PREFIX};
use super::order::Item;
use crate::firewall::{allowed6_keys, allowed_keys};
use crate::netlink::link::{Link, LinkChange};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// A link an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// One the kernel holds now, by its index (which outlives a rename). As a master,
    /// index 0 means none: the link is released from its bridge.
    Index(i32),
    /// One an earlier step of the same plan creates or renames, by that name, looked
    /// up when the step runs.
    Made(String),
}

/// "No master": release a link from its bridge.
pub const NO_MASTER: Ref = Ref::Index(0);

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
    /// Change a link in econet's own namespace (`name`: what it is called now, for
    /// messages; `master`: the bridge to enslave it to, if that changes).
    Set {
        link: Ref,
        name: String,
        change: LinkChange,
        master: Option<Ref>,
    },
    /// A veth pair: the host end (`host`, enslaved to `master`) here, the far end,
    /// down, in `netns`.
    CreateVeth {
        host: LinkChange,
        master: Ref,
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
        link: Ref,
        name: String,
        change: LinkChange,
    },
    AddAddr {
        link: Ref,
        name: String,
        ip: IpAddr,
        prefix: u8,
    },
    DelAddr {
        index: i32,
        name: String,
        ip: IpAddr,
        prefix: u8,
    },
    /// Write a sysctl (`link`: the link whose directory holds it).
    Sysctl {
        path: String,
        value: String,
        link: Option<String>,
    },
    CreateTun {
        name: String,
    },
    /// Add a route through `dev` (called `name`), which fills in its `oif`.
    AddRoute {
        route: crate::netlink::route::Route,
        dev: Ref,
        name: String,
    },
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
        /// The ACL changes, in the same batch: an address never gets in (or stays)
        /// without its unit, and a failed ACL change admits nobody.
        acl: Box<crate::acl::AclChanges>,
        /// The IPv6 senders admitted and dismissed.
        v6: Elems6,
    },
    /// Forget the connections a network's NAT translated (its NAT moved to another
    /// port, or lost it): they re-establish through the new port.
    FlushConntrack {
        mark: u32,
    },
}

/// Keys to add to and delete from the IPv6 admission sets (`allowed6` and
/// `allowed6_ip`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Elems6 {
    pub add: Vec<Vec<u8>>,
    pub del: Vec<Vec<u8>>,
    pub add_ip: Vec<Vec<u8>>,
    pub del_ip: Vec<Vec<u8>>,
}

impl Elems6 {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.del.is_empty()
            && self.add_ip.is_empty()
            && self.del_ip.is_empty()
    }
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

/// The links in econet's namespace that no step of the plan so far deletes.
fn live<'a>(cur: &'a Current, deleting: &'a [i32]) -> impl Iterator<Item = &'a Link> + 'a {
    cur.links.iter().filter(|l| !deleting.contains(&l.index))
}

pub fn plan(d: &Desired, cur: &Current) -> Plan {
    let mut p = Plan::default();
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
    let deleting = deleted(&p);

    // 2. Bridges. An unmarked bridge of the right name was made by an econet that
    // stopped (or had not yet come round) before it could mark it: adopt it.
    let mut bridges: HashMap<&str, Ref> = HashMap::new();
    for b in &d.bridges {
        let found = live(cur, &deleting)
            .find(|l| l.alias.as_deref() == Some(b.alias.as_str()))
            .or_else(|| {
                by_name(&b.name)
                    .filter(|l| l.alias.is_none() && l.kind.as_deref() == Some("bridge"))
            });
        let name_taken = live(cur, &deleting).any(|l| l.name == b.name);
        let Some(l) = found else {
            if name_taken {
                net_issue(
                    &mut p,
                    b.net,
                    format!(
                        "bridge name {} is taken by a link econet does not own",
                        b.name
                    ),
                );
                continue;
            }
            p.steps.push(Step {
                net: Some(b.net),
                op: Op::CreateBridge {
                    name: b.name.clone(),
                    mac: b.mac,
                    mtu: b.mtu,
                },
            });
            push_made(&mut p, Some(b.net), &b.name, first_up(Some(&b.alias)));
            bridges.insert(&b.name, Ref::Made(b.name.clone()));
            continue;
        };
        let mut c = LinkChange::default();
        if l.alias.is_none() {
            c.alias = Some(b.alias.clone());
        }
        if l.mtu != b.mtu {
            c.mtu = Some(b.mtu);
        }
        if l.mac != Some(b.mac) {
            c.mac = Some(b.mac);
        }
        if l.name != b.name {
            if name_taken {
                net_issue(
                    &mut p,
                    b.net,
                    format!(
                        "cannot rename bridge {} to {}: the name is taken",
                        l.name, b.name
                    ),
                );
                continue;
            }
            // Kernels before 6.2 rename only links that are down, and a rename is
            // applied before the flags of the same request: down, renamed, then up.
            if l.up {
                push_set(&mut p, Some(b.net), l, down(), None);
            }
            c.name = Some(b.name.clone());
            push_set(&mut p, Some(b.net), l, c, None);
            push_made(&mut p, Some(b.net), &b.name, first_up(None));
        } else {
            if !l.up {
                c.up = Some(true);
                // First time up: no IPv6 link-local address or chatter on ECO networks.
                c.no_ipv6_addrgen = true;
            }
            push_set(&mut p, Some(b.net), l, c, None);
        }
        bridges.insert(&b.name, Ref::Index(l.index));
    }

    // 3. Ports enslaved to switch bridges; release ports no longer wanted there.
    for pm in &d.ports {
        let Some(l) = by_name(&pm.ifname) else {
            net_issue(
                &mut p,
                pm.net,
                format!("port {} (interface {}) is not present", pm.port, pm.ifname),
            );
            continue;
        };
        if owned(l) {
            net_issue(
                &mut p,
                pm.net,
                format!("port {} names econet's own link {}", pm.port, pm.ifname),
            );
            continue;
        }
        let Some(br) = bridges.get(pm.bridge.as_str()) else {
            continue;
        };
        let mut c = LinkChange::default();
        if !l.up {
            c.up = Some(true);
        }
        push_set(&mut p, Some(pm.net), l, c, master_change(l, br));
    }
    // econet's bridges: marked ones, and unmarked ones being adopted.
    let ours = |l: &Link| {
        l.alias.as_deref().is_some_and(is_bridge_alias)
            || bridges.values().any(|r| *r == Ref::Index(l.index))
    };
    let our_bridges: Vec<i32> = cur
        .links
        .iter()
        .filter(|l| ours(l))
        .map(|l| l.index)
        .collect();
    for l in live(cur, &deleting) {
        let Some(m) = l.master else { continue };
        if owned(l) || !our_bridges.contains(&m) {
            continue;
        }
        // A port a desired bridge takes (from this one or to another: enslaving moves
        // it) stays; endpoints not yet marked are econet's, not ports left behind.
        let wanted = d
            .ports
            .iter()
            .any(|pm| pm.ifname == l.name && bridges.contains_key(pm.bridge.as_str()))
            || d.endpoints.iter().any(|e| e.host_name == l.name);
        if !wanted {
            push_set(&mut p, None, l, LinkChange::default(), Some(NO_MASTER));
        }
    }

    // 4. Endpoints.
    for e in &d.endpoints {
        endpoint(&mut p, e, cur, &deleting, bridges.get(e.bridge.as_str()));
    }
    let deleting = deleted(&p);

    // 5. Sysctls, before addresses (an IPv6 address needs IPv6 on). One under a
    // link's directory appears with the link: set it once
    // this plan has made the link.
    let made: HashSet<Item> = p.steps.iter().flat_map(|s| s.op.makes()).collect();
    for sc in &d.sysctls {
        // A link this plan makes (or re-makes under the same name) starts from the
        // defaults, whatever the old one's file said.
        let fresh = sc
            .link
            .as_ref()
            .is_some_and(|l| made.contains(&Item::Link(l.clone())));
        if sc.path == crate::acl::BR_NF_CALL_IPTABLES
            && matches!(cur.sysctls.get(&sc.path), Some(None))
        {
            if let Some(net) = sc.net {
                net_issue(
                    &mut p,
                    net,
                    "ACLs need br_netfilter (the kernel module): without it, what the bridge carries between its endpoints is not filtered, and on a switch network replies are dropped".into(),
                );
            }
            continue;
        }
        let due = fresh || matches!(cur.sysctls.get(&sc.path), Some(Some(v)) if *v != sc.value);
        if due {
            p.steps.push(Step {
                net: sc.net,
                op: Op::Sysctl {
                    path: sc.path.clone(),
                    value: sc.value.clone(),
                    link: sc.link.clone(),
                },
            });
        }
    }

    // 6. Gateway addresses on econet's bridges: exactly the desired ones.
    for l in live(cur, &deleting).filter(|l| ours(l)) {
        let named = bridges
            .iter()
            .find(|(_, r)| **r == Ref::Index(l.index))
            .map(|(n, _)| *n);
        let net = d.bridges.iter().find(|b| Some(b.name.as_str()) == named);
        // The kernel's own IPv6 link-local address stays.
        for a in cur
            .addrs
            .iter()
            .filter(|a| a.index == l.index && !is_link_local(&a.ip))
        {
            let wanted = d.addrs.iter().any(|w| {
                Some(w.bridge.as_str()) == named && w.ip == a.ip && w.prefix == a.prefix_len
            });
            if !wanted {
                p.steps.push(Step {
                    net: net.map(|b| b.net),
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
        let Some(br) = bridges.get(w.bridge.as_str()) else {
            continue;
        };
        let present = match br {
            Ref::Index(bi) => cur
                .addrs
                .iter()
                .any(|a| a.index == *bi && a.ip == w.ip && a.prefix_len == w.prefix),
            Ref::Made(_) => false,
        };
        if !present {
            p.steps.push(Step {
                net: Some(w.net),
                op: Op::AddAddr {
                    link: br.clone(),
                    name: w.bridge.clone(),
                    ip: w.ip,
                    prefix: w.prefix,
                },
            });
        }
    }

    // 7. Tunnel devices, then the routes through them (and through bridges).
    let mut devs: HashMap<&str, Ref> = bridges;
    for t in &d.tunnels {
        if let Some(r) = tunnel(&mut p, t, cur, &deleting) {
            devs.insert(&t.name, r);
        }
    }
    let deleting = deleted(&p);
    routes(&mut p, d, cur, &devs, &deleting);

    // 8. The firewall.
    firewall(&mut p, d, cur);
    p
}

/// The indexes of the links `p` deletes.
fn deleted(p: &Plan) -> Vec<i32> {
    p.steps
        .iter()
        .filter_map(|s| match s.op {
            Op::Delete { index, .. } => Some(index),
            _ => None,
        })
        .collect()
}

/// Down: before a rename.
fn down() -> LinkChange {
    LinkChange {
        up: Some(false),
        ..Default::default()
    }
}

/// What a link econet just made (or renamed, which leaves it down) needs to be
/// ready: its mark if it has none yet, up, and no IPv6 address generation.
fn first_up(alias: Option<&str>) -> LinkChange {
    LinkChange {
        alias: alias.map(str::to_string),
        up: Some(true),
        no_ipv6_addrgen: true,
        ..Default::default()
    }
}

fn tunnel(
    p: &mut Plan,
    t: &super::desired::Tunnel,
    cur: &Current,
    deleting: &[i32],
) -> Option<Ref> {
    let by_alias = live(cur, deleting).find(|l| l.alias.as_deref() == Some(t.alias.as_str()));
    let by_name = live(cur, deleting).find(|l| l.name == t.name);
    let l = match (by_alias, by_name) {
        (Some(l), _) => l,
        // Made by an econet that stopped before marking it: adopt.
        (None, Some(l)) if l.alias.is_none() && l.tun_type == Some(1) => l,
        (None, Some(l)) if owned(l) => return None,
        (None, Some(_)) => {
            net_issue(
                p,
                t.net,
                format!(
                    "tunnel name {} is taken by a link econet does not own",
                    t.name
                ),
            );
            return None;
        }
        (None, None) => return Some(create_tunnel(p, t)),
    };
    if l.tun_type != Some(1) || l.name != t.name {
        // Not a TUN, or under another name: make a new one (once the name is free).
        push_delete(p, Some(t.net), l);
        if by_name.is_some_and(|n| n.index != l.index) {
            return None;
        }
        return Some(create_tunnel(p, t));
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
    push_set(p, Some(t.net), l, c, None);
    Some(Ref::Index(l.index))
}

fn create_tunnel(p: &mut Plan, t: &super::desired::Tunnel) -> Ref {
    p.steps.push(Step {
        net: Some(t.net),
        op: Op::CreateTun {
            name: t.name.clone(),
        },
    });
    let mut c = first_up(Some(&t.alias));
    c.mtu = Some(t.mtu);
    push_made(p, Some(t.net), &t.name, c);
    Ref::Made(t.name.clone())
}

/// econet's routes: exactly the desired ones, through links that exist or that this
/// plan makes (`devs`).
fn routes(p: &mut Plan, d: &Desired, cur: &Current, devs: &HashMap<&str, Ref>, deleting: &[i32]) {
    use crate::netlink::route::{Route, RTPROT_ECONET, TABLE_MAIN};
    let want: Vec<(usize, Route, Ref, &str)> = d
        .routes
        .iter()
        .filter_map(|r| {
            // Only through econet's own links: a bridge or tunnel whose name a
            // foreign link holds has no route.
            let dev = devs.get(r.dev.as_str())?.clone();
            let oif = match dev {
                Ref::Index(i) => Some(i),
                Ref::Made(_) => None,
            };
            let route = Route {
                dst: r.dst,
                oif,
                gateway: None,
                prefsrc: None,
                table: TABLE_MAIN,
                metric: 0,
                protocol: RTPROT_ECONET,
                scope: libc::RT_SCOPE_LINK,
            };
            Some((r.net, route, dev, r.dev.as_str()))
        })
        .collect();
    let same = |a: &Route, b: &Route| a.dst == b.dst && a.oif == b.oif && a.table == b.table;
    // Taking a link down (to rename it) flushes the routes through it.
    let downed: Vec<i32> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Set {
                link: Ref::Index(i),
                change,
                ..
            } if change.up == Some(false) => Some(*i),
            _ => None,
        })
        .collect();
    for r in &cur.routes {
        // A route through a link being deleted goes with it.
        if r.oif.is_some_and(|i| deleting.contains(&i)) {
            continue;
        }
        if !want.iter().any(|(_, w, ..)| same(w, r)) {
            p.steps.push(Step {
                net: None,
                op: Op::DelRoute(r.clone()),
            });
        }
    }
    for (net, route, dev, name) in want {
        let kept = route.oif.is_some_and(|i| !downed.contains(&i))
            && cur.routes.iter().any(|r| same(&route, r));
        if !kept {
            p.steps.push(Step {
                net: Some(net),
                op: Op::AddRoute {
                    route,
                    dev,
                    name: name.to_string(),
                },
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
            net_issue(p, net, e.clone());
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
    let acl = crate::acl::changes(&d.acl, &fw.acl);
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
    let (want6, want6_ip) = allowed6_keys(&d.allowed6);
    let (add6, del6) = diff(&want6, &fw.allowed6);
    let (add6_ip, del6_ip) = diff(&want6_ip, &fw.allowed6_ip);
    let v6 = Elems6 {
        add: add6,
        del: del6,
        add_ip: add6_ip,
        del_ip: del6_ip,
    };
    if !(add4.is_empty()
        && del4.is_empty()
        && add_mac.is_empty()
        && del_mac.is_empty()
        && acl.is_empty()
        && v6.is_empty())
    {
        p.steps.push(Step {
            net: None,
            op: Op::FirewallElems {
                add4,
                del4,
                add_mac,
                del_mac,
                acl: Box::new(acl),
                v6,
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

/// Changes the existing link `l`, if there is anything to change.
fn push_set(p: &mut Plan, net: Option<usize>, l: &Link, c: LinkChange, master: Option<Ref>) {
    if !c.is_empty() || master.is_some() {
        p.steps.push(Step {
            net,
            op: Op::Set {
                link: Ref::Index(l.index),
                name: l.name.clone(),
                change: c,
                master,
            },
        });
    }
}

/// Changes the link an earlier step of `p` creates or renames to `name`.
fn push_made(p: &mut Plan, net: Option<usize>, name: &str, c: LinkChange) {
    p.steps.push(Step {
        net,
        op: Op::Set {
            link: Ref::Made(name.to_string()),
            name: name.to_string(),
            change: c,
            master: None,
        },
    });
}

/// The master to give `l` so it ends up on bridge `want` (`None`: it is already).
fn master_change(l: &Link, want: &Ref) -> Option<Ref> {
    match want {
        Ref::Index(i) if l.master == Some(*i) => None,
        _ => Some(want.clone()),
    }
}

/// An issue of a whole network (a bridge, a port, a tunnel).
fn net_issue(p: &mut Plan, net: usize, msg: String) {
    p.issues.push(Issue {
        net,
        endpoint: None,
        msg,
    });
}

fn issue(p: &mut Plan, e: &Endpoint, msg: String) {
    p.issues.push(Issue {
        net: e.net,
        endpoint: Some((e.app_id.clone(), e.ifname.clone())),
        msg,
    });
}

/// Host-side properties every endpoint link must have (its bridge aside).
fn host_change(e: &Endpoint, l: &Link) -> LinkChange {
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
    if !l.up {
        c.up = Some(true);
    }
    c
}

/// The far end of the veth `l` inside the namespace `ns`, if it is there.
fn peer_of<'a>(ns: &'a NsView, l: &Link) -> Option<&'a Link> {
    ns.links.iter().find(|pl| is_peer_of(pl, l.index))
}

/// Whether `name` is taken in `ns` by a link that stays: the far end of a veth being
/// deleted goes with it, and frees its name.
fn far_end_taken(ns: &NsView, name: &str, deleting: &[i32]) -> bool {
    ns.links
        .iter()
        .any(|x| x.name == name && !deleting.iter().any(|&g| is_peer_of(x, g)))
}

fn is_peer_of(pl: &Link, host_index: i32) -> bool {
    pl.peer_index == Some(host_index)
        && pl.kind.as_deref() == Some("veth")
        && pl.link_netnsid.is_some()
}

fn endpoint(p: &mut Plan, e: &Endpoint, cur: &Current, deleting: &[i32], bridge: Option<&Ref>) {
    let found = live(cur, deleting).find(|l| l.alias.as_deref() == Some(e.alias.as_str()));
    let name_taken = live(cur, deleting).find(|l| l.name == e.host_name);
    match &e.kind {
        EndpointKind::Tap => {
            let mut gone = None;
            if let Some(l) = found {
                if l.tun_type == Some(2) && l.name == e.host_name {
                    if let Some(b) = bridge {
                        push_set(p, Some(e.net), l, host_change(e, l), master_change(l, b));
                    }
                    return;
                }
                // Not a tap, or not of the name the hypervisor opens: make a new one.
                push_delete(p, Some(e.net), l);
                gone = Some(l.index);
            }
            match name_taken.filter(|l| Some(l.index) != gone) {
                // A tap of that name without an owner: made for this endpoint (for
                // instance by the hypervisor first, or by an econet that stopped).
                Some(l) if l.alias.is_none() && l.tun_type == Some(2) => {
                    if let Some(b) = bridge {
                        push_set(p, Some(e.net), l, host_change(e, l), master_change(l, b));
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
                None => {
                    p.steps.push(Step {
                        net: Some(e.net),
                        op: Op::CreateTap {
                            name: e.host_name.clone(),
                        },
                    });
                    if let Some(b) = bridge {
                        // A new tap: down, unmarked, with a random MAC.
                        let fresh = Link {
                            name: e.host_name.clone(),
                            ..Default::default()
                        };
                        p.steps.push(Step {
                            net: Some(e.net),
                            op: Op::Set {
                                link: Ref::Made(e.host_name.clone()),
                                name: e.host_name.clone(),
                                change: host_change(e, &fresh),
                                master: Some(b.clone()),
                            },
                        });
                    }
                }
            }
        }
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
            let mut gone = None;
            if let Some(l) = found.or(adoptable) {
                match peer_of(ns, l) {
                    Some(peer) if l.name == e.host_name => {
                        if let Some(b) = bridge {
                            push_set(p, Some(e.net), l, host_change(e, l), master_change(l, b));
                        }
                        far_end(p, e, netns, ns, peer, peer_name, *peer_mac, deleting);
                        return;
                    }
                    // The far end is not in the namespace the config names (the
                    // container moved to a new one), or the name is wrong: start over.
                    _ => {
                        push_delete(p, Some(e.net), l);
                        gone = Some(l.index);
                    }
                }
            }
            if let Some(l) = name_taken.filter(|l| Some(l.index) != gone) {
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
            let deleting: Vec<i32> = deleting.iter().copied().chain(gone).collect();
            if far_end_taken(ns, peer_name, &deleting) {
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
                        up: Some(true),
                        ..Default::default()
                    },
                    master: b.clone(),
                    netns: netns.clone(),
                    peer_name: peer_name.clone(),
                    peer_mac: *peer_mac,
                    mtu: e.mtu,
                },
            });
            // The alias and address generation can only be set once the link exists;
            // the far end can only come up once both ends do.
            push_made(
                p,
                Some(e.net),
                &e.host_name,
                LinkChange {
                    alias: Some(e.alias.clone()),
                    no_ipv6_addrgen: true,
                    ..Default::default()
                },
            );
            p.steps.push(Step {
                net: Some(e.net),
                op: Op::SetPeer {
                    netns: netns.clone(),
                    link: Ref::Made(peer_name.clone()),
                    name: peer_name.clone(),
                    change: LinkChange {
                        up: Some(true),
                        ..Default::default()
                    },
                },
            });
        }
    }
}

/// Corrects the far end `peer` of an endpoint's veth inside its namespace.
#[allow(clippy::too_many_arguments)]
fn far_end(
    p: &mut Plan,
    e: &Endpoint,
    netns: &str,
    ns: &NsView,
    peer: &Link,
    peer_name: &str,
    peer_mac: crate::addr::MacAddr,
    deleting: &[i32],
) {
    let mut c = LinkChange::default();
    let renamed = peer.name != peer_name;
    let set = |link: Ref, name: &str, change: LinkChange| Step {
        net: Some(e.net),
        op: Op::SetPeer {
            netns: netns.to_string(),
            link,
            name: name.to_string(),
            change,
        },
    };
    if renamed {
        if far_end_taken(ns, peer_name, deleting) {
            issue(p, e, format!("{peer_name} already exists in {netns}"));
            return;
        }
        // Down, renamed, then up (see the bridge's rename).
        if peer.up {
            p.steps
                .push(set(Ref::Index(peer.index), &peer.name, down()));
        }
        c.name = Some(peer_name.to_string());
    } else if !peer.up {
        c.up = Some(true);
    }
    if peer.mtu != e.mtu {
        c.mtu = Some(e.mtu);
    }
    if peer.mac != Some(peer_mac) {
        c.mac = Some(peer_mac);
    }
    if !c.is_empty() {
        p.steps.push(set(Ref::Index(peer.index), &peer.name, c));
    }
    if renamed {
        let up = LinkChange {
            up: Some(true),
            ..Default::default()
        };
        p.steps
            .push(set(Ref::Made(peer_name.to_string()), peer_name, up));
    }
}

#[cfg(test)]
mod tests;

/// An IPv6 link-local address (fe80::/10), which the kernel gives a link itself.
fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}
