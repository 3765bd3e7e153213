//! The order of a plan, from what each step makes and what it needs, the way EVE's
//! depgraph orders items by their declared dependencies. A plan is computed once, from
//! one reading of the kernel, and applied in this order: no step waits for a re-read.
//!
//! Each kind of operation declares the [`Item`]s it makes and those it needs
//! ([`Op::makes`], [`Op::needs`]). A step runs after every other step that makes
//! something it needs; an item that no step makes is taken to be in place already.
//! Removals run first: they make nothing and need nothing, and they free names that
//! creations may reuse. When a step fails, the steps that need what it would have made
//! are not attempted (see [`blocked_by`]).

use super::plan::{Op, Ref, Step};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

/// A kernel object, as far as ordering goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    /// A link in econet's namespace, under this name.
    Link(String),
    /// That link, up: a route through a link needs it (the kernel refuses a route
    /// through a link that is down).
    Up(String),
    /// That link, down: a rename needs it (kernels before 6.2 refuse to rename a
    /// link that is up, and apply a rename before the flags of the same request).
    Down(String),
    /// A link inside an ECO's namespace.
    Peer { netns: String, name: String },
    /// That link, down (for its rename).
    PeerDown { netns: String, name: String },
    /// econet's nftables tables.
    Firewall,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Link(n) => write!(f, "link {n}"),
            Item::Up(n) => write!(f, "link {n} up"),
            Item::Down(n) => write!(f, "link {n} down"),
            Item::Peer { netns, name } => write!(f, "{name} in {netns}"),
            Item::PeerDown { netns, name } => write!(f, "{name} in {netns} down"),
            Item::Firewall => f.write_str("the firewall"),
        }
    }
}

/// What a reference needs: a link made earlier in the same plan.
fn made(r: &Ref) -> Option<Item> {
    match r {
        Ref::Made(n) => Some(Item::Link(n.clone())),
        Ref::Index(_) => None,
    }
}

impl Op {
    /// Deletions of objects: run before everything else.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Op::Delete { .. } | Op::DelAddr { .. } | Op::DelRoute(_) | Op::FirewallDelete { .. }
        )
    }

    /// The items this operation brings into being (or up, or down) for others.
    pub fn makes(&self) -> Vec<Item> {
        match self {
            Op::CreateBridge { name, .. } | Op::CreateTap { name } | Op::CreateTun { name } => {
                vec![Item::Link(name.clone())]
            }
            Op::CreateVeth {
                host,
                netns,
                peer_name,
                ..
            } => vec![
                Item::Link(host.name.clone().unwrap_or_default()),
                Item::Peer {
                    netns: netns.clone(),
                    name: peer_name.clone(),
                },
            ],
            Op::Set { name, change, .. } => {
                let new_name = change.name.as_ref().unwrap_or(name);
                let mut v = Vec::new();
                if change.name.is_some() {
                    v.push(Item::Link(new_name.clone()));
                }
                match change.up {
                    Some(true) => v.push(Item::Up(new_name.clone())),
                    Some(false) => v.push(Item::Down(name.clone())),
                    None => {}
                }
                v
            }
            Op::SetPeer {
                netns,
                name,
                change,
                ..
            } => {
                let mut v = Vec::new();
                if let Some(n) = &change.name {
                    v.push(Item::Peer {
                        netns: netns.clone(),
                        name: n.clone(),
                    });
                }
                if change.up == Some(false) {
                    v.push(Item::PeerDown {
                        netns: netns.clone(),
                        name: name.clone(),
                    });
                }
                v
            }
            Op::FirewallBuild { .. } => vec![Item::Firewall],
            _ => Vec::new(),
        }
    }

    /// The items that must be in place before this operation runs.
    pub fn needs(&self) -> Vec<Item> {
        match self {
            Op::Set {
                link,
                name,
                change,
                master,
            } => {
                let mut v: Vec<Item> = made(link)
                    .into_iter()
                    .chain(master.iter().filter_map(made))
                    .collect();
                if change.name.is_some() {
                    v.push(Item::Down(name.clone()));
                }
                v
            }
            Op::CreateVeth { master, .. } => made(master).into_iter().collect(),
            Op::SetPeer {
                netns,
                link,
                name,
                change,
            } => {
                let mut v = Vec::new();
                if let Ref::Made(_) = link {
                    v.push(Item::Peer {
                        netns: netns.clone(),
                        name: name.clone(),
                    });
                }
                if change.name.is_some() {
                    v.push(Item::PeerDown {
                        netns: netns.clone(),
                        name: name.clone(),
                    });
                }
                v
            }
            Op::AddAddr { link, .. } => made(link).into_iter().collect(),
            Op::Sysctl { link, .. } => link.iter().map(|l| Item::Link(l.clone())).collect(),
            Op::AddRoute { dev, name, .. } => made(dev)
                .into_iter()
                .chain([Item::Up(name.clone())])
                .collect(),
            Op::FirewallElems { .. } => vec![Item::Firewall],
            _ => Vec::new(),
        }
    }
}

/// The steps in an order where each comes after the steps that make what it needs;
/// among steps free to go, the planned order stands. The second list holds steps
/// caught in a dependency cycle (a planner bug, reported rather than applied).
pub fn order(steps: Vec<Step>) -> (Vec<Step>, Vec<Step>) {
    let (removals, rest): (Vec<Step>, Vec<Step>) =
        steps.into_iter().partition(|s| s.op.is_removal());
    let mut makers: HashMap<Item, Vec<usize>> = HashMap::new();
    for (i, s) in rest.iter().enumerate() {
        for it in s.op.makes() {
            makers.entry(it).or_default().push(i);
        }
    }
    // after[i]: the steps waiting for step i; waiting[j]: how many step j waits for.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); rest.len()];
    let mut waiting = vec![0usize; rest.len()];
    for (j, s) in rest.iter().enumerate() {
        let mut deps: BTreeSet<usize> = BTreeSet::new();
        for need in s.op.needs() {
            deps.extend(makers.get(&need).into_iter().flatten().filter(|&&i| i != j));
        }
        waiting[j] = deps.len();
        for i in deps {
            after[i].push(j);
        }
    }
    let mut ready: BTreeSet<usize> = (0..rest.len()).filter(|&j| waiting[j] == 0).collect();
    let mut sequence = Vec::with_capacity(rest.len());
    while let Some(i) = ready.pop_first() {
        sequence.push(i);
        for &j in &after[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    let mut slots: Vec<Option<Step>> = rest.into_iter().map(Some).collect();
    let mut ordered = removals;
    ordered.extend(sequence.iter().filter_map(|&i| slots[i].take()));
    let cyclic = slots.into_iter().flatten().collect();
    (ordered, cyclic)
}

/// The first item `op` needs that an earlier, failed step was to make.
pub fn blocked_by(op: &Op, failed: &HashSet<Item>) -> Option<Item> {
    op.needs().into_iter().find(|n| failed.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link::LinkChange;

    fn step(op: Op) -> Step {
        Step { net: None, op }
    }

    fn up(link: Ref, name: &str) -> Op {
        Op::Set {
            link,
            name: name.into(),
            change: LinkChange {
                up: Some(true),
                ..Default::default()
            },
            master: None,
        }
    }

    #[test]
    fn a_step_comes_after_what_it_needs_and_removals_come_first() {
        let route = Op::AddRoute {
            route: crate::netlink::route::Route {
                dst: "10.9.0.0/24".parse().unwrap(),
                oif: None,
                gateway: None,
                prefsrc: None,
                table: 254,
                metric: 0,
                protocol: 0,
                scope: 253,
            },
            dev: Ref::Made("et-x".into()),
            name: "et-x".into(),
        };
        let steps = vec![
            step(route.clone()),
            step(up(Ref::Made("et-x".into()), "et-x")),
            step(Op::CreateTun {
                name: "et-x".into(),
            }),
            step(Op::Delete {
                index: 7,
                name: "et-x".into(),
            }),
        ];
        let (ordered, cyclic) = order(steps);
        assert!(cyclic.is_empty());
        let kinds: Vec<&str> = ordered
            .iter()
            .map(|s| match s.op {
                Op::Delete { .. } => "delete",
                Op::CreateTun { .. } => "create",
                Op::Set { .. } => "up",
                Op::AddRoute { .. } => "route",
                _ => "?",
            })
            .collect();
        assert_eq!(kinds, ["delete", "create", "up", "route"]);
        // A route through a link that exists but is down waits for it to come up.
        let (ordered, _) = order(vec![step(route), step(up(Ref::Index(3), "et-x"))]);
        assert!(matches!(ordered[0].op, Op::Set { .. }));
    }

    #[test]
    fn what_a_failed_step_was_to_make_blocks_the_steps_that_need_it() {
        let create = Op::CreateBridge {
            name: "ec-a".into(),
            mac: crate::addr::MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        };
        let failed: HashSet<Item> = create.makes().into_iter().collect();
        let follow = up(Ref::Made("ec-a".into()), "ec-a");
        assert_eq!(
            blocked_by(&follow, &failed),
            Some(Item::Link("ec-a".into()))
        );
        assert_eq!(blocked_by(&up(Ref::Index(4), "ec-b"), &failed), None);
    }

    #[test]
    fn a_dependency_cycle_is_reported_not_applied() {
        // Two renames that each need the other's new name (no planner makes these).
        let rename = |from: i32, to: &str, needs: &str| Op::Set {
            link: Ref::Index(from),
            name: format!("old{from}"),
            change: LinkChange {
                name: Some(to.into()),
                ..Default::default()
            },
            master: Some(Ref::Made(needs.into())),
        };
        let (ordered, cyclic) = order(vec![
            step(rename(1, "a", "b")),
            step(rename(2, "b", "a")),
            step(up(Ref::Index(5), "c")),
        ]);
        assert_eq!(ordered.len(), 1);
        assert_eq!(cyclic.len(), 2);
    }
}
