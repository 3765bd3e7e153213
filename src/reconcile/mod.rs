//! Making the kernel match the config, the way EVE's nireconciler does: build the
//! desired state, read the current state back from the kernel, diff them into a plan
//! whose steps declare what they make and need, order it by those dependencies, and
//! apply it in one pass. Reapplying the same config plans nothing; a restart adopts
//! what exists.

pub mod current;
pub mod desired;
pub mod facts;
pub mod order;
pub mod plan;

use crate::config::{Attach, Config, NetKind};
use crate::firewall::{
    Allowed, Allowed6, SET_ALLOWED4, SET_ALLOWED6, SET_ALLOWED6_IP, SET_ALLOWED_MAC, TABLE,
};
use crate::netlink::addr::Addr;
use crate::netlink::link::VethPeer;
use crate::netlink::netns::Netns;
use crate::netlink::nft::{Nft, NFPROTO_BRIDGE, NFPROTO_INET};
pub use crate::netlink::Error as KernelError;
use crate::netlink::{tuntap, Rtnl};

fn nft_unavailable() -> KernelError {
    KernelError::new("nftables", std::io::Error::other("unavailable"))
}
use desired::Desired;
use facts::Facts;
use order::Item;
use plan::{Issue, Op, Ref, Step};
use std::collections::HashSet;

/// The result of one reconcile pass.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Kernel changes made (zero when the kernel already matched).
    pub changes: u64,
    /// Things that keep objects from their desired state (missing port, namespace…).
    pub issues: Vec<Issue>,
    /// Operations that failed: the network they serve (if any), the object and why.
    pub errors: Vec<(Option<usize>, KernelError)>,
    /// A kernel read failed: nothing could be compared.
    pub fatal: Option<KernelError>,
    /// The ports' state as last read.
    pub facts: Facts,
    /// econet's namespace's links after the pass (read again if it changed any).
    pub links: Vec<crate::netlink::link::Link>,
    /// The process's first pass kept the admitted senders, ACL map elements and
    /// port maps it found: DHCP had not restored its allocations yet. A pass with
    /// them must follow.
    pub held_back: bool,
}

/// The only holder of netlink sockets that write: every kernel change econet makes
/// goes through [`Reconciler::run`] or [`Reconciler::admit`], as [`Op`]s.
pub struct Reconciler {
    rtnl: Rtnl,
    /// nf_tables; `None` where the kernel has no netfilter netlink (then L3
    /// networks report it).
    nft: Option<Nft>,
    /// The facts the last pass read (to see a network's NAT move).
    last_facts: Option<Facts>,
    /// The ACL units of L3 endpoints the last pass wanted, by host-side interface:
    /// a lease's address joins its unit in the batch that admits it.
    acl_units: Vec<crate::acl::Unit>,
    /// No pass has run in this process yet.
    first_pass: bool,
}

impl Reconciler {
    pub fn new() -> std::io::Result<Reconciler> {
        let nft = match Nft::open() {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!("nftables unavailable ({e}): L3 networks cannot get their firewall");
                None
            }
        };
        Ok(Reconciler {
            rtnl: Rtnl::open()?,
            nft,
            last_facts: None,
            acl_units: Vec::new(),
            first_pass: true,
        })
    }

    /// Brings the kernel to `cfg`, with `leased` the senders DHCP has admitted and
    /// `leased6` those DHCPv6 has (all of them: what the tables hold beyond these
    /// and the static ones goes): one reading of the kernel, one plan, applied in
    /// dependency order. A step whose dependency failed is not attempted; the next
    /// pass retries both.
    pub fn run(&mut self, cfg: &Config, leased: &[Allowed], leased6: &[Allowed6]) -> Outcome {
        let pass_start = std::time::Instant::now();
        let mut out = Outcome::default();
        let start = self.rtnl.changes;
        let netns: Vec<String> = cfg
            .endpoints()
            .filter_map(|(_, i)| match &i.attach {
                Attach::Netns(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        // The sysctl paths depend only on the config, not on facts.
        let sys_paths = desired::desired(cfg, &Facts::default(), &[], &[]).sysctls;
        let cur = match current::read(
            &mut self.rtnl,
            self.nft.as_mut(),
            netns.iter().map(String::as_str),
            sys_paths.iter().map(|s| s.path.as_str()),
        ) {
            Ok(c) => c,
            Err(e) => {
                out.fatal = Some(e);
                return out;
            }
        };
        let read_done = std::time::Instant::now();
        out.facts = Facts::read(cfg, &cur);
        let d = desired::desired(cfg, &out.facts, leased, leased6);
        self.acl_units.clone_from(&d.acl.units);
        let p = plan::plan(&d, &cur);
        out.issues = p.issues;
        let planned = std::time::Instant::now();
        let mut steps = p.steps;
        if std::mem::take(&mut self.first_pass) {
            out.held_back = hold_back_removals(&mut steps);
        }
        let (steps, cyclic) = order::order(steps);
        for s in cyclic {
            let e = KernelError::new(describe(&s.op), std::io::Error::other("dependency cycle"));
            log::error!("{e}");
            out.errors.push((s.net, e));
        }
        let mut failed: HashSet<Item> = HashSet::new();
        for s in steps {
            let res = match order::blocked_by(&s.op, &failed) {
                Some(item) => Err(KernelError::new(
                    describe(&s.op),
                    std::io::Error::other(format!("not attempted: {item} could not be made")),
                )),
                None => {
                    log::debug!("apply {}", describe(&s.op));
                    self.apply(&s.op, &d, &mut out.changes)
                }
            };
            if let Err(e) = res {
                log::warn!("{e}");
                failed.extend(s.op.makes());
                out.errors.push((s.net, e));
            }
        }
        out.changes += self.rtnl.changes - start;
        log::debug!(
            "pass: read {} µs, desired and plan {} µs, apply {} µs",
            read_done.duration_since(pass_start).as_micros(),
            planned.duration_since(read_done).as_micros(),
            planned.elapsed().as_micros()
        );
        // The services bind to links by index: give them the links as they now are.
        out.links = match out.changes {
            0 => cur.links,
            _ => self.rtnl.links().unwrap_or(cur.links),
        };
        let prev = self.last_facts.replace(out.facts.clone());
        for s in prev
            .map(|p| nat_moves(cfg, &p, &out.facts))
            .unwrap_or_default()
        {
            if let Err(e) = self.apply_now(&s.op) {
                let name = s.net.map(|i| cfg.networks[i].name.as_str());
                log::warn!("network {}: {e}", name.unwrap_or("-"));
            }
        }
        out
    }

    /// Admits (`true`) and dismisses (`false`) the senders of a batch of lease
    /// changes at once, without waiting for the next pass: one [`Op::FirewallElems`],
    /// where the last change of a sender wins. If the kernel refuses it (a dismissal of
    /// a sender the last pass already removed), each change is applied on its own, so
    /// one stale change cannot keep the others out.
    pub fn admit(&mut self, changes: &[(bool, Allowed)]) -> Vec<KernelError> {
        if self.nft.is_none() || changes.is_empty() {
            return Vec::new();
        }
        let units = std::mem::take(&mut self.acl_units);
        let batch = admission(changes, &units);
        let errors = if changes.len() > 1 && self.apply_now(&batch).is_ok() {
            Vec::new()
        } else {
            changes
                .iter()
                .filter_map(|c| {
                    self.apply_now(&admission(std::slice::from_ref(c), &units))
                        .err()
                })
                .collect()
        };
        self.acl_units = units;
        errors
    }

    /// Admits (`true`) and dismisses (`false`) IPv6 senders (DHCPv6 leases) at once,
    /// as [`Reconciler::admit`] does IPv4's: one batch where the last change of a
    /// sender wins, each change on its own if the kernel refuses the batch. An
    /// admitted sender may send from its address with its MAC on its port, do DAD
    /// for it and advertise it, whoever claimed it; no other port or MAC may. It
    /// stays until dismissed, or until a pass that neither `leased6` nor the config
    /// names it.
    pub fn admit6(&mut self, changes: &[(bool, Allowed6)]) -> Vec<KernelError> {
        if self.nft.is_none() || changes.is_empty() {
            return Vec::new();
        }
        if changes.len() > 1 && self.apply_now(&admission6(changes)).is_ok() {
            return Vec::new();
        }
        changes
            .iter()
            .filter_map(|c| self.apply_now(&admission6(std::slice::from_ref(c))).err())
            .collect()
    }

    /// The ACL counters of the endpoints the last pass gave units, read now.
    pub fn acl_counters(
        &self,
    ) -> std::collections::HashMap<(String, String), Vec<crate::acl::AceCount>> {
        if self.acl_units.is_empty() {
            return Default::default();
        }
        match Nft::open() {
            Ok(mut nft) => crate::acl::read_counters(&mut nft, &self.acl_units),
            Err(e) => {
                log::warn!("cannot read the ACL counters: {e}");
                Default::default()
            }
        }
    }

    /// Applies one operation that needs no desired state.
    fn apply_now(&mut self, op: &Op) -> Result<(), KernelError> {
        let mut changes = 0;
        self.apply(op, &Desired::default(), &mut changes)
    }

    fn apply(&mut self, op: &Op, d: &Desired, changes: &mut u64) -> Result<(), KernelError> {
        let r = &mut self.rtnl;
        match op {
            Op::Delete { index, name } => r.delete_link(*index, name),
            Op::CreateBridge { name, mac, mtu } => r.create_bridge(name, *mac, *mtu),
            Op::Set {
                link,
                name,
                change,
                master,
            } => {
                let mut c = change.clone();
                c.master = master.as_ref().map(index_of).transpose()?;
                r.set_link(index_of(link)?, name, &c)
            }
            Op::CreateVeth {
                host,
                master,
                netns,
                peer_name,
                peer_mac,
                mtu,
            } => {
                let ns = Netns::open(netns)
                    .map_err(|e| KernelError::new(format!("open network namespace {netns}"), e))?;
                let mut host = host.clone();
                host.master = Some(index_of(master)?);
                r.create_veth(
                    &host,
                    &VethPeer {
                        name: peer_name,
                        mac: *peer_mac,
                        mtu: *mtu,
                        netns: Some(ns.raw_fd()),
                    },
                )
            }
            Op::CreateTun { name } => {
                tuntap::create_persistent_tun(name)
                    .map_err(|e| KernelError::new(format!("create tunnel {name}"), e))?;
                *changes += 1;
                Ok(())
            }
            Op::AddRoute { route, dev, .. } => {
                let mut route = route.clone();
                route.oif = Some(index_of(dev)?);
                r.add_route(&route)
            }
            Op::DelRoute(route) => r.del_route(route),
            Op::CreateTap { name } => {
                tuntap::create_persistent_tap(name)
                    .map_err(|e| KernelError::new(format!("create tap {name}"), e))?;
                *changes += 1;
                Ok(())
            }
            Op::SetPeer {
                netns,
                link,
                name,
                change,
            } => {
                let ns = Netns::open(netns)
                    .map_err(|e| KernelError::new(format!("open network namespace {netns}"), e))?;
                let index = match link {
                    Ref::Index(i) => *i,
                    Ref::Made(n) => ns
                        .enter(|| index_of(&Ref::Made(n.clone())))
                        .map_err(|e| KernelError::new(format!("enter {netns}"), e))??,
                };
                let mut inner = ns
                    .rtnl()
                    .map_err(|e| KernelError::new(format!("socket in {netns}"), e))?;
                let res = inner.set_link(index, &format!("{name} in {netns}"), change);
                *changes += inner.changes;
                res
            }
            Op::AddAddr {
                link,
                name,
                ip,
                prefix,
            } => r.add_addr(
                &Addr {
                    index: index_of(link)?,
                    ip: *ip,
                    prefix_len: *prefix,
                },
                name,
            ),
            Op::DelAddr {
                index,
                name,
                ip,
                prefix,
            } => r.del_addr(
                &Addr {
                    index: *index,
                    ip: *ip,
                    prefix_len: *prefix,
                },
                name,
            ),
            Op::Sysctl { path, value, .. } => {
                std::fs::write(path, value)
                    .map_err(|e| KernelError::new(format!("set {path} = {value}"), e))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallBuild {
                replace_inet,
                replace_bridge,
            } => {
                let nft = self.nft.as_mut().ok_or_else(nft_unavailable)?;
                let held = if *replace_bridge {
                    d.firewall.held_claims(nft)
                } else {
                    Default::default()
                };
                let learned = crate::acl::learned_hosts(nft, &d.acl);
                let mut b = nft.batch();
                d.firewall.build(
                    &mut b,
                    (*replace_inet, *replace_bridge),
                    (&d.allowed, &d.allowed6),
                    &held,
                );
                // The ACLs in the same batch: no moment without them.
                crate::acl::changes(&d.acl, &Default::default()).write(&mut b);
                crate::acl::restore_learned(&mut b, &learned);
                nft.commit(b)
                    .map_err(|e| KernelError::new("install firewall", e))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallDelete { inet, bridge } => {
                let nft = self.nft.as_mut().ok_or_else(nft_unavailable)?;
                let mut b = nft.batch();
                if *inet {
                    b.del_table(NFPROTO_INET, TABLE);
                }
                if *bridge {
                    b.del_table(NFPROTO_BRIDGE, TABLE);
                }
                nft.commit(b)
                    .map_err(|e| KernelError::new("remove firewall", e))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallElems {
                add4,
                del4,
                add_mac,
                del_mac,
                acl,
                v6,
            } => {
                let nft = self.nft.as_mut().ok_or_else(nft_unavailable)?;
                let mut b = nft.batch();
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, del4);
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, del_mac);
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6, &v6.del);
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6_IP, &v6.del_ip);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, add4);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, add_mac);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6, &v6.add);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6_IP, &v6.add_ip);
                acl.write(&mut b);
                nft.commit(b)
                    .map_err(|e| KernelError::new("update allowed senders and ACLs", e))?;
                *changes += 1 + acl.count();
                Ok(())
            }
            Op::FlushConntrack { mark } => {
                let nft = self.nft.as_mut().ok_or_else(nft_unavailable)?;
                nft.flush_conntrack_mark(*mark)
                    .map_err(|e| KernelError::new("flushing its connections", e))?;
                *changes += 1;
                Ok(())
            }
        }
    }
}

/// The index of a link in the caller's namespace: as planned, or looked up by the
/// name an earlier step gave it.
fn index_of(link: &Ref) -> Result<i32, KernelError> {
    match link {
        Ref::Index(i) => Ok(*i),
        Ref::Made(name) => nix::net::if_::if_nametoindex(name.as_str())
            .map(|i| i as i32)
            .map_err(|e| KernelError::new(format!("find link {name}"), e.into())),
    }
}

/// After a restart (even `kill -9`) the kernel keeps the senders anti-spoofing
/// admitted, their ACL map elements and port maps, while DHCP restores its
/// allocations only after the first pass: that pass adopts them rather than remove
/// them (and cut the ECOs off) for a moment. A key that changes its data is still
/// replaced. Whether anything was held back.
fn hold_back_removals(steps: &mut [Step]) -> bool {
    let mut held = false;
    for s in steps.iter_mut() {
        if let Op::FirewallElems {
            del4,
            del_mac,
            acl,
            v6,
            ..
        } = &mut s.op
        {
            held |= !del4.is_empty() || !del_mac.is_empty();
            held |= !v6.del.is_empty() || !v6.del_ip.is_empty();
            del4.clear();
            del_mac.clear();
            v6.del.clear();
            v6.del_ip.clear();
            let n = acl.del_velems.len() + acl.del_pm.len();
            let readded: Vec<(u8, &str, Vec<u8>)> = acl
                .add_velems
                .iter()
                .map(|e| (e.family, e.map, e.key.clone()))
                .collect();
            // (An element pointing at a unit this pass deletes must go with it.)
            let gone: Vec<(u8, String)> = acl.del_chains.clone();
            acl.del_velems.retain(|e| {
                readded.contains(&(e.family, e.map, e.key.clone()))
                    || gone.contains(&(e.family, e.chain.clone()))
            });
            let remapped: Vec<(&str, Vec<u8>)> =
                acl.add_pm.iter().map(|e| (e.map, e.key.clone())).collect();
            acl.del_pm
                .retain(|e| remapped.contains(&(e.map, e.key.clone())));
            held |= acl.del_velems.len() + acl.del_pm.len() != n;
        }
    }
    held
}

/// The firewall operation for a batch of lease changes (see [`Reconciler::admit`]).
/// An admitted address of an endpoint with ACLs joins its unit at once; a
/// dismissed one leaves it with the next pass.
fn admission(changes: &[(bool, Allowed)], units: &[crate::acl::Unit]) -> Op {
    let mut last: std::collections::BTreeMap<Allowed, bool> = Default::default();
    for (add, a) in changes {
        last.insert(*a, *add);
    }
    let (mut add4, mut del4, mut add_mac) = (Vec::new(), Vec::new(), Vec::new());
    let mut acl = crate::acl::AclChanges::default();
    for (a, add) in last {
        if add {
            add4.extend(a.ip_key());
            add_mac.push(a.mac_key());
            let unit = units.iter().find(|u| {
                u.family == crate::netlink::nft::NFPROTO_INET
                    && crate::netlink::nft::ifname(&u.port) == a.ifname
            });
            if let (Some(u), Some(ip)) = (unit, a.ip) {
                acl.add_velems.extend(crate::acl::addr_elems(u, ip));
            }
        } else {
            del4.extend(a.ip_key());
        }
    }
    Op::FirewallElems {
        add4,
        del4,
        add_mac,
        del_mac: Vec::new(),
        acl: Box::new(acl),
        v6: Default::default(),
    }
}

/// The firewall operation for a batch of DHCPv6 lease changes (see
/// [`Reconciler::admit6`]).
fn admission6(changes: &[(bool, Allowed6)]) -> Op {
    let mut last: std::collections::BTreeMap<Allowed6, bool> = Default::default();
    for (add, a) in changes {
        last.insert(*a, *add);
    }
    let mut v6 = plan::Elems6::default();
    for (a, add) in last {
        let (keys, ips) = match add {
            true => (&mut v6.add, &mut v6.add_ip),
            false => (&mut v6.del, &mut v6.del_ip),
        };
        keys.push(a.key());
        if !ips.contains(&a.ip_key()) {
            ips.push(a.ip_key());
        }
    }
    Op::FirewallElems {
        add4: Vec::new(),
        del4: Vec::new(),
        add_mac: Vec::new(),
        del_mac: Vec::new(),
        acl: Box::default(),
        v6,
    }
}

/// A local network whose NAT moved to another port (or lost it) since `before`
/// forgets its translated connections.
fn nat_moves(cfg: &Config, before: &Facts, after: &Facts) -> Vec<Step> {
    if before.ports.len() != after.ports.len() {
        return Vec::new();
    }
    let mut v = Vec::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        if n.kind != NetKind::Local {
            continue;
        }
        let (was, is) = (before.active_port(cfg, i), after.active_port(cfg, i));
        if was.is_some() && was != is {
            log::info!(
                "network {}: NAT moves from {} to {}; flushing its connections",
                n.name,
                was.map(|p| cfg.ports[p].name.as_str()).unwrap_or("-"),
                is.map(|p| cfg.ports[p].name.as_str()).unwrap_or("none")
            );
            v.push(Step {
                net: Some(i),
                op: Op::FlushConntrack {
                    mark: crate::firewall::mark_for(&n.id),
                },
            });
        }
    }
    v
}

/// An operation, briefly, for the log (no secrets live in ops).
fn describe(op: &Op) -> String {
    match op {
        Op::FirewallElems {
            add4,
            del4,
            add_mac,
            del_mac,
            acl,
            v6,
        } => format!(
            "FirewallElems (+{} -{} addresses, +{} -{} MACs, +{} -{} IPv6 senders; ACLs +{} -{} units, +{} -{} map elements, +{} -{} port maps)",
            add4.len(),
            del4.len(),
            add_mac.len(),
            del_mac.len(),
            v6.add.len(),
            v6.del.len(),
            acl.new_units.len(),
            acl.del_chains.len() / 2,
            acl.add_velems.len(),
            acl.del_velems.len(),
            acl.add_pm.len(),
            acl.del_pm.len()
        ),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::MacAddr;
    use crate::reconcile::facts::PortFact;

    fn sender(last: u8) -> Allowed {
        Allowed::new(
            "veco0",
            MacAddr([2, 0, 0, 0, 0, last]),
            Some(std::net::Ipv4Addr::new(10, 1, 0, last)),
        )
    }

    #[test]
    fn the_first_pass_adopts_admitted_senders_and_acl_elements_but_replaces_changed_ones() {
        use crate::acl::{AclChanges, PmElem, VElem};
        let v = |key: u8, chain: &str| VElem {
            family: 1,
            map: crate::acl::MAP_OUT4,
            key: vec![key],
            chain: chain.into(),
        };
        let pm = |key: u8| PmElem {
            map: crate::acl::MAP_PM_OUT,
            key: vec![key],
            data: vec![1],
        };
        let mut steps = vec![Step {
            net: None,
            op: Op::FirewallElems {
                add4: vec![vec![9]],
                del4: vec![vec![1]],
                add_mac: vec![],
                del_mac: vec![vec![2]],
                acl: Box::new(AclChanges {
                    // 1: a lease DHCP has not restored yet; 2: re-pointed; 3: its
                    // unit goes.
                    del_velems: vec![v(1, "acl_o_a"), v(2, "acl_o_a"), v(3, "acl_o_gone")],
                    add_velems: vec![v(2, "acl_o_b")],
                    del_pm: vec![pm(1)],
                    del_chains: vec![(1, "acl_o_gone".into())],
                    ..Default::default()
                }),
                v6: Default::default(),
            },
        }];
        assert!(hold_back_removals(&mut steps));
        let Op::FirewallElems {
            add4,
            del4,
            del_mac,
            acl,
            ..
        } = &steps[0].op
        else {
            unreachable!()
        };
        assert_eq!((add4.len(), del4.len(), del_mac.len()), (1, 0, 0));
        assert_eq!(acl.del_velems, vec![v(2, "acl_o_a"), v(3, "acl_o_gone")]);
        assert!(acl.del_pm.is_empty());
        // Nothing to hold back: nothing held.
        let mut none = vec![Step {
            net: None,
            op: Op::FirewallElems {
                add4: vec![vec![9]],
                del4: vec![],
                add_mac: vec![],
                del_mac: vec![],
                acl: Box::default(),
                v6: Default::default(),
            },
        }];
        assert!(!hold_back_removals(&mut none));
    }

    #[test]
    fn a_batch_of_lease_changes_is_one_firewall_op_where_the_last_change_wins() {
        let (a, b, c) = (sender(1), sender(2), sender(3));
        let op = admission(
            &[(true, a), (true, b), (false, b), (false, c), (true, c)],
            &[],
        );
        let Op::FirewallElems {
            add4,
            del4,
            add_mac,
            del_mac,
            ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!(add4, [a.ip_key().unwrap(), c.ip_key().unwrap()]);
        assert_eq!(add_mac, [a.mac_key(), c.mac_key()]);
        // A dismissal takes the address only: the MAC may still send from another.
        assert_eq!(del4, [b.ip_key().unwrap()]);
        assert!(del_mac.is_empty());
    }

    #[test]
    fn a_local_network_whose_nat_moves_flushes_its_connections() {
        let cfg = crate::config::parse(
            br#"{"device_id": "d",
                 "ports": [{"name": "eth0", "ifname": "eth0", "labels": ["up"], "cost": 0},
                           {"name": "eth1", "ifname": "eth1", "labels": ["up"], "cost": 1}],
                 "networks": [{"id": "n1", "name": "lan", "type": "local", "port": "up",
                               "ip": {"subnet": "10.1.0.0/24"}},
                              {"id": "n2", "name": "sw", "type": "switch"}]}"#,
        )
        .unwrap();
        let port = |up: bool, last: u8| PortFact {
            present: true,
            carrier: up,
            addrs: vec![(std::net::Ipv4Addr::new(192, 0, 2, last), 24)],
            addrs6: Vec::new(),
            mtu: 1500,
            accept_ra: None,
        };
        let both = Facts {
            ports: vec![port(true, 1), port(true, 2)],
            ..Default::default()
        };
        let eth0_down = Facts {
            ports: vec![port(false, 1), port(true, 2)],
            ..Default::default()
        };
        let flush = |before: &Facts, after: &Facts| -> Vec<Op> {
            nat_moves(&cfg, before, after)
                .into_iter()
                .map(|s| s.op)
                .collect()
        };
        assert_eq!(flush(&both, &both), []);
        let mark = crate::firewall::mark_for("n1");
        assert_eq!(flush(&both, &eth0_down), [Op::FlushConntrack { mark }]);
        // Coming back moves it again; a network that had no port up has nothing to flush.
        assert_eq!(flush(&eth0_down, &both), [Op::FlushConntrack { mark }]);
        let none = Facts {
            ports: vec![port(false, 1), port(false, 2)],
            ..Default::default()
        };
        assert_eq!(flush(&none, &both), []);
    }
}
