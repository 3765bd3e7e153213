//! Making the kernel match the config, the way EVE's nireconciler does: build the
//! desired state, read the current state back from the kernel, diff them into an
//! ordered plan, apply it, and repeat until nothing is left to do. Reapplying the same
//! config plans nothing; a restart adopts what exists.

pub mod current;
pub mod desired;
pub mod plan;

use crate::netlink::link::VethPeer;
use crate::netlink::netns::Netns;
use crate::netlink::{tuntap, Rtnl};
use desired::Desired;
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
}

pub struct Reconciler {
    pub rtnl: Rtnl,
}

impl Reconciler {
    pub fn new() -> std::io::Result<Reconciler> {
        Ok(Reconciler {
            rtnl: Rtnl::open()?,
        })
    }

    /// Brings the kernel to `d`.
    pub fn run(&mut self, d: &Desired) -> Outcome {
        let mut out = Outcome::default();
        let start = self.rtnl.changes;
        let mut failed: Vec<Op> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let cur = match current::read(&mut self.rtnl, d) {
                Ok(c) => c,
                Err(e) => {
                    out.fatal = Some(e.to_string());
                    break;
                }
            };
            let p = plan::plan(d, &cur);
            out.issues = p.issues;
            let todo: Vec<Step> = p
                .steps
                .into_iter()
                .filter(|s| !failed.contains(&s.op))
                .collect();
            if todo.is_empty() {
                break;
            }
            for s in todo {
                log::debug!("apply {:?}", s.op);
                if let Err(e) = self.apply(&s.op, &mut out.changes) {
                    log::warn!("{e}");
                    out.errors.push((s.net, e));
                    failed.push(s.op);
                }
            }
        }
        out.changes += self.rtnl.changes - start;
        out
    }

    fn apply(&mut self, op: &Op, changes: &mut u64) -> Result<(), String> {
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
        }
    }
}

/// The desired state for the parts of `cfg` this build implements.
pub fn desired_for(cfg: &crate::config::Config) -> Desired {
    desired::desired(cfg)
}
