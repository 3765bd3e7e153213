//! Making the kernel match the config, the way EVE's nireconciler does: build the
//! desired state, read the current state back from the kernel, diff them into an
//! ordered plan, apply it, and repeat until nothing is left to do. Reapplying the same
//! config plans nothing; a restart adopts what exists.

pub mod current;
pub mod desired;
pub mod facts;
pub mod plan;

use crate::config::{Attach, Config};
use crate::firewall::{Allowed, SET_ALLOWED4, SET_ALLOWED_MAC, TABLE};
use crate::netlink::addr::Addr;
use crate::netlink::link::VethPeer;
use crate::netlink::netns::Netns;
use crate::netlink::nft::{Nft, NFPROTO_BRIDGE, NFPROTO_INET};
use crate::netlink::{tuntap, Rtnl};
use desired::Desired;
use facts::Facts;
use plan::{Issue, Op, Step};

/// Rounds of plan-and-apply in one pass: a new network needs three (bridge, then
/// its ports and endpoints, then their far ends); more would only repeat failures.
const MAX_ROUNDS: usize = 5;

/// The result of one reconcile pass.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Kernel changes made (zero when the kernel already matched).
    pub changes: u64,
    /// Things that keep objects from their desired state (missing port, namespace…).
    pub issues: Vec<Issue>,
    /// Operations that failed: the network they serve (if any) and why.
    pub errors: Vec<(Option<usize>, String)>,
    /// A kernel read failed: nothing could be compared.
    pub fatal: Option<String>,
    /// The ports' state as last read.
    pub facts: Facts,
    /// econet's namespace's links as last read.
    pub links: Vec<crate::netlink::link::Link>,
}

pub struct Reconciler {
    pub rtnl: Rtnl,
    /// nf_tables; `None` where the kernel has no netfilter netlink (then L3
    /// networks report it).
    pub nft: Option<Nft>,
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
        })
    }

    /// Brings the kernel to `cfg`, with `leased` the senders DHCP has admitted.
    pub fn run(&mut self, cfg: &Config, leased: &[Allowed]) -> Outcome {
        let mut out = Outcome::default();
        let start = self.rtnl.changes;
        let mut failed: Vec<Op> = Vec::new();
        let netns: Vec<String> = cfg
            .endpoints()
            .filter_map(|(_, i)| match &i.attach {
                Attach::Netns(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        for _ in 0..MAX_ROUNDS {
            // The sysctl paths depend only on the config, not on facts.
            let sys_paths = desired::desired(cfg, &Facts::default(), &[]).sysctls;
            let cur = match current::read(
                &mut self.rtnl,
                self.nft.as_mut(),
                netns.iter().map(String::as_str),
                sys_paths.iter().map(|s| s.path.as_str()),
            ) {
                Ok(c) => c,
                Err(e) => {
                    out.fatal = Some(e.to_string());
                    break;
                }
            };
            let facts = Facts::read(cfg, &cur);
            let d = desired::desired(cfg, &facts, leased);
            let p = plan::plan(&d, &cur);
            out.issues = p.issues;
            out.facts = facts;
            out.links = cur.links.clone();
            let todo: Vec<Step> = p
                .steps
                .into_iter()
                .filter(|s| !failed.contains(&s.op))
                .collect();
            if todo.is_empty() {
                break;
            }
            for s in todo {
                log::debug!("apply {}", describe(&s.op));
                if let Err(e) = self.apply(&s.op, &d, &mut out.changes) {
                    log::warn!("{e}");
                    out.errors.push((s.net, e));
                    failed.push(s.op);
                }
            }
        }
        out.changes += self.rtnl.changes - start;
        out
    }

    /// Adds or removes allowed senders at once (a lease granted or ended), without
    /// waiting for the next pass.
    pub fn update_allowed(&mut self, add: &[Allowed], del: &[Allowed]) -> Result<(), String> {
        let Some(nft) = self.nft.as_mut() else {
            return Ok(());
        };
        let keys4 = |v: &[Allowed]| v.iter().filter_map(Allowed::ip_key).collect::<Vec<_>>();
        let mut b = nft.batch();
        if !del.is_empty() {
            b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, &keys4(del));
        }
        if !add.is_empty() {
            b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, &keys4(add));
            let macs: Vec<Vec<u8>> = add.iter().map(Allowed::mac_key).collect();
            b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, &macs);
        }
        nft.commit(b)
            .map_err(|e| format!("update allowed senders: {e}"))
    }

    /// Admits (`true`) and dismisses (`false`) senders in one nftables transaction,
    /// in the order given: all of them, or on an error none.
    pub fn update_allowed_seq(&mut self, changes: &[(bool, Allowed)]) -> Result<(), String> {
        let Some(nft) = self.nft.as_mut() else {
            return Ok(());
        };
        let mut b = nft.batch();
        for run in changes.chunk_by(|x, y| x.0 == y.0) {
            let keys4: Vec<Vec<u8>> = run.iter().filter_map(|(_, a)| a.ip_key()).collect();
            if run[0].0 {
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, &keys4);
                let macs: Vec<Vec<u8>> = run.iter().map(|(_, a)| a.mac_key()).collect();
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, &macs);
            } else {
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, &keys4);
            }
        }
        nft.commit(b)
            .map_err(|e| format!("update allowed senders: {e}"))
    }

    fn apply(&mut self, op: &Op, d: &Desired, changes: &mut u64) -> Result<(), String> {
        let r = &mut self.rtnl;
        match op {
            Op::Delete { index, name } => r.delete_link(*index, name).map_err(|e| e.to_string()),
            Op::CreateBridge { name, mac, mtu } => {
                r.create_bridge(name, *mac, *mtu).map_err(|e| e.to_string())
            }
            Op::Set {
                index,
                name,
                change,
            } => r.set_link(*index, name, change).map_err(|e| e.to_string()),
            Op::CreateVeth {
                host,
                netns,
                peer_name,
                peer_mac,
                mtu,
            } => {
                let ns = Netns::open(netns)
                    .map_err(|e| format!("open network namespace {netns}: {e}"))?;
                r.create_veth(
                    host,
                    &VethPeer {
                        name: peer_name,
                        mac: *peer_mac,
                        mtu: *mtu,
                        netns: Some(ns.raw_fd()),
                    },
                )
                .map_err(|e| e.to_string())
            }
            Op::CreateTun { name } => {
                tuntap::create_persistent_tun(name)
                    .map_err(|e| format!("create tunnel {name}: {e}"))?;
                *changes += 1;
                Ok(())
            }
            Op::AddRoute(route) => r.add_route(route).map_err(|e| e.to_string()),
            Op::DelRoute(route) => r.del_route(route).map_err(|e| e.to_string()),
            Op::CreateTap { name } => {
                tuntap::create_persistent_tap(name)
                    .map_err(|e| format!("create tap {name}: {e}"))?;
                *changes += 1;
                Ok(())
            }
            Op::SetPeer {
                netns,
                index,
                name,
                change,
            } => {
                let ns = Netns::open(netns)
                    .map_err(|e| format!("open network namespace {netns}: {e}"))?;
                let mut inner = ns.rtnl().map_err(|e| format!("socket in {netns}: {e}"))?;
                let res = inner
                    .set_link(*index, &format!("{name} in {netns}"), change)
                    .map_err(|e| e.to_string());
                *changes += inner.changes;
                res
            }
            Op::AddAddr {
                index,
                name,
                ip,
                prefix,
            } => r
                .add_addr(
                    &Addr {
                        index: *index,
                        ip: *ip,
                        prefix_len: *prefix,
                    },
                    name,
                )
                .map_err(|e| e.to_string()),
            Op::DelAddr {
                index,
                name,
                ip,
                prefix,
            } => r
                .del_addr(
                    &Addr {
                        index: *index,
                        ip: *ip,
                        prefix_len: *prefix,
                    },
                    name,
                )
                .map_err(|e| e.to_string()),
            Op::Sysctl { path, value } => {
                std::fs::write(path, value).map_err(|e| format!("set {path} = {value}: {e}"))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallBuild {
                replace_inet,
                replace_bridge,
            } => {
                let nft = self.nft.as_mut().ok_or("nftables unavailable")?;
                let mut b = nft.batch();
                d.firewall
                    .build(&mut b, (*replace_inet, *replace_bridge), &d.allowed);
                nft.commit(b)
                    .map_err(|e| format!("install firewall: {e}"))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallDelete { inet, bridge } => {
                let nft = self.nft.as_mut().ok_or("nftables unavailable")?;
                let mut b = nft.batch();
                if *inet {
                    b.del_table(NFPROTO_INET, TABLE);
                }
                if *bridge {
                    b.del_table(NFPROTO_BRIDGE, TABLE);
                }
                nft.commit(b).map_err(|e| format!("remove firewall: {e}"))?;
                *changes += 1;
                Ok(())
            }
            Op::FirewallElems {
                add4,
                del4,
                add_mac,
                del_mac,
            } => {
                let nft = self.nft.as_mut().ok_or("nftables unavailable")?;
                let mut b = nft.batch();
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, del4);
                b.del_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, del_mac);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4, add4);
                b.add_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC, add_mac);
                nft.commit(b)
                    .map_err(|e| format!("update allowed senders: {e}"))?;
                *changes += 1;
                Ok(())
            }
        }
    }
}

/// An operation, briefly, for the log (no secrets live in ops).
fn describe(op: &Op) -> String {
    match op {
        Op::FirewallElems {
            add4,
            del4,
            add_mac,
            del_mac,
        } => format!(
            "FirewallElems (+{} -{} addresses, +{} -{} MACs)",
            add4.len(),
            del4.len(),
            add_mac.len(),
            del_mac.len()
        ),
        other => format!("{other:?}"),
    }
}
