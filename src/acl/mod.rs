//! Per-endpoint access control lists and port maps (EVE's ACE model), compiled to
//! nftables objects in econet's own tables.
//!
//! Each endpoint with `acls` gets a *unit*: two chains (packets from the ECO, packets
//! to it), a named counter per ACE plus one for the implicit drop, and a named limit
//! per `limit` ACE (one bucket for both directions). Units are entered through verdict
//! maps keyed by the endpoint: `bridge . address` on routed paths in the inet table
//! (anti-spoofing makes the address trustworthy), the bridge port in the bridge table
//! (switch networks). A packet's cost is one map lookup and its endpoint's own list,
//! whatever the number of endpoints or ACEs on the device.
//!
//! IPv6 (dual-stack local networks): a dual-stack endpoint's unit has two more
//! chains, IPv6's, with the same ACEs in the same order, the same named counters and
//! the same limits (one bucket for both families). An IPv4 `ip` or `host` never
//! matches IPv6 and an IPv6 `ip` never IPv4; `host` is IPv4 only (econet learns no
//! AAAA answers); `eidset` is, for IPv6, the network's `subnet6` and its `static_dns`
//! IPv6 addresses; `protocol` `icmp` is ICMPv6 for IPv6. Port maps are IPv4 only.
//! An IPv6 `ip` on an endpoint whose IPv6 reaches no unit (a network without
//! `subnet6`, a switch network) is accepted and inert.
//!
//! The IPv6 chains are entered in the inet forward chain, which sees routed IPv6
//! (through NAT66, or back into the bridge) and, by br_netfilter
//! (`bridge-nf-call-ip6tables`, set on), bridged IPv6 between ECOs; for both the
//! input interface is the bridge, not the port, so the keys are:
//! - from an ECO (`acl_out6`): `iifname . ether saddr`, the bridge and each MAC
//!   the anti-spoofing rules let the port send from. Whatever its source address
//!   (DHCPv6, static, SLAAC claimed first come first served, link-local), an ECO's
//!   packet finds its unit: econet need not know its SLAAC addresses.
//! - to an ECO (`acl_in6`): `oifname . ip6 daddr`, the bridge and each address
//!   econet admitted (static `ip6`, DHCPv6 leases); the destination MAC of a routed
//!   packet is not known in the forward hook. What goes to an ECO's other addresses
//!   (SLAAC, link-local) has no unit: the bridge family lets it reach an endpoint
//!   with ACLs only as the reply side of an allowed flow, or neighbour discovery
//!   (CHAIN_L3_IN6, from the bridge forward hook for bridged frames and from the
//!   output hook for routed ones; the inet forward chain marks routed IPv6 and the
//!   reply side of flows for it, MARK_FWD6 and MARK_FLOW_REPLY, as the bridge family
//!   has no conntrack on this kernel). So INGRESS IPv6 reaches such an endpoint only
//!   at its admitted addresses.
//!
//! Without br_netfilter, bridged IPv6 of endpoints with ACLs is dropped (fail
//! closed); routed IPv6 is filtered all the same.
//!
//! A unit's names carry a hash of everything it is built from, so the kernel's objects
//! say what they are: the reconciler reads the names back, keeps the units that are
//! still wanted (after a restart or `kill -9` too), creates the new ones and deletes
//! the stale ones, all in one batch. Changing one endpoint's ACL touches only its unit.

pub mod hosts;
#[cfg(test)]
mod ipv6_tests;

use crate::addr::{Ipv4Net, Ipv6Net, MacAddr};
use crate::config::{Ace, AceAction, AceMatches, AceProto, Config, NetKind, PortRange};
use crate::firewall::{self as fw, Allowed, Allowed6, TABLE};
use crate::netlink::nft::*;
use crate::reconcile::facts::Facts;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// inet: `iifname . ip saddr` of an ECO's packets to its unit's `out` chain.
pub const MAP_OUT4: &str = "acl_out4";
/// inet: `oifname . ip daddr` of packets to an ECO to its unit's `in` chain.
pub const MAP_IN4: &str = "acl_in4";
/// bridge: the bridge port a frame came in on, and the one it leaves by.
pub const MAP_OUT_PORT: &str = "acl_out_port";
pub const MAP_IN_PORT: &str = "acl_in_port";
/// inet: port maps reached from outside, `iifname . ip daddr . l4proto . th dport`
/// to `ECO address . appPort`.
pub const MAP_PM_OUT: &str = "portmap_out";
/// inet: port maps reached from ECOs (hairpin, other networks), by the port's
/// address: `ip daddr . l4proto . th dport` to `ECO address . appPort`.
pub const MAP_PM_IN: &str = "portmap_in";
/// inet: `iifname . ether saddr` of an ECO's IPv6 packets (the bridge and a MAC
/// admitted on the endpoint's port) to its unit's `out` chain.
pub const MAP_OUT6: &str = "acl_out6";
/// inet: `oifname . ip6 daddr` of IPv6 packets to an ECO (the bridge and an address
/// econet admitted for it: static `ip6`, DHCPv6 leases) to its unit's `in` chain.
pub const MAP_IN6: &str = "acl_in6";
/// bridge: the chain L3 endpoints with ACLs on a network without `subnet6` take for
/// what the inet rules cannot see bridged between ECOs: IPv6 is dropped but for
/// neighbour discovery (their IPv6 is link-local only and reaches no unit).
pub const CHAIN_L3_BRIDGED: &str = "acl_l3_bridged";
/// bridge: the same for endpoints with ACLs on a dual-stack network, frames from
/// them: IPv6 passed to the inet rules (their unit, found by MAC), given br_netfilter.
pub const CHAIN_L3_OUT6: &str = "acl_l3_out6";
/// bridge: frames to them, bridged or routed: IPv6 passes if it is the reply side
/// of an allowed flow or addressed to an admitted address (whose unit the inet
/// rules ran), and neighbour discovery; nothing else (a SLAAC or link-local address
/// of the endpoint has no unit to ask).
pub const CHAIN_L3_IN6: &str = "acl_l3_in6";
/// bridge: the output hook's chain: routed IPv6 to an endpoint with ACLs.
pub const CHAIN_BRIDGE_OUT: &str = "acl_output";
/// bridge: the base chain that enters the units of switch endpoints.
pub const CHAIN_BRIDGE_FWD: &str = "acl_forward";

/// The packet mark bit the inet rules set on what a switch bridge carries for an
/// allowed flow (its replies, what relates to it): the bridge family has no
/// conntrack of its own on this kernel (no `nf_conntrack_bridge`), so the units of
/// switch endpoints read the state br_netfilter's conntrack found this way. Without
/// br_netfilter no packet carries it, and replies are dropped: it fails closed.
pub const MARK_FLOW_REPLY: u32 = 0x0002_0000;
/// The packet mark bit the inet forward chain sets on IPv6 it routes into a
/// dual-stack bridge, so that the bridge family's output hook tells routed packets
/// (to check) from the device's own (DHCPv6, DNS, ND: never a unit's business, as
/// for IPv4).
pub const MARK_FWD6: u32 = 0x0004_0000;

/// Conntrack marks of port-mapped connections, from outside and from ECOs (the
/// latter are masqueraded to the gateway, so the ECO's answer comes back through
/// the device). Apart from the networks' NAT marks (`0xec……`).
pub const MARK_PM_OUT: u32 = 0xed00_00fe;
pub const MARK_PM_IN: u32 = 0xed00_00ff;
pub const MARK_PM_MASK: u32 = 0xffff_fffe;

/// br_netfilter's switch: bridged IPv4 passes the inet hooks (and conntrack).
pub const BR_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
/// The same for bridged IPv6 (kernel default on, set by econet where it matters).
pub const BR_NF_CALL_IP6TABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-ip6tables";

pub const VMAP4_KEY_LEN: u32 = 16 + 4;
/// ifname . ether_addr (6 bytes, padded to 8).
pub const VMAP6_OUT_KEY_LEN: u32 = 16 + 8;
pub const VMAP6_IN_KEY_LEN: u32 = 16 + 16;
pub const PM_OUT_KEY_LEN: u32 = 16 + 4 + 4 + 4;
pub const PM_IN_KEY_LEN: u32 = 4 + 4 + 4;
pub const PM_DATA_LEN: u32 = 4 + 4;

/// Bump when `compile` changes, so running devices re-make their units.
const UNIT_VERSION: u32 = 1;
const UNIT_CHAIN_OUT: &str = "acl_o_";
const UNIT_CHAIN_IN: &str = "acl_i_";
const UNIT_CHAIN_OUT6: &str = "acl_o6_";
const UNIT_CHAIN_IN6: &str = "acl_i6_";
const OBJ_PREFIX: &str = "acl_";
const EIDS_PREFIX: &str = "eids_";

/// One endpoint's compiled ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub family: u8,
    pub app_id: String,
    pub ifname: String,
    /// The endpoint's host-side interface and its network's bridge.
    pub port: String,
    pub bridge: String,
    /// Names the unit's objects; covers everything they are built from.
    pub hash: String,
    pub out_rules: Vec<Vec<Expr>>,
    pub in_rules: Vec<Vec<Expr>>,
    /// A dual-stack endpoint's unit has IPv6 chains too (entered by MAP_OUT6 and
    /// MAP_IN6), with the same counters and limits.
    pub v6: bool,
    pub out6_rules: Vec<Vec<Expr>>,
    pub in6_rules: Vec<Vec<Expr>>,
    /// The ACE ids with a counter, and 0 for the implicit drop.
    pub ids: Vec<u32>,
    /// `limit` ACEs: id and (rate, unit seconds, burst).
    pub limits: Vec<(u32, (u64, u64, u32))>,
}

impl Unit {
    pub fn out_chain(&self) -> String {
        format!("{UNIT_CHAIN_OUT}{}", self.hash)
    }
    pub fn in_chain(&self) -> String {
        format!("{UNIT_CHAIN_IN}{}", self.hash)
    }
    pub fn out6_chain(&self) -> String {
        format!("{UNIT_CHAIN_OUT6}{}", self.hash)
    }
    pub fn in6_chain(&self) -> String {
        format!("{UNIT_CHAIN_IN6}{}", self.hash)
    }
    /// The unit's chains and their rules.
    pub fn chains(&self) -> Vec<(String, &Vec<Vec<Expr>>)> {
        let mut v = vec![
            (self.out_chain(), &self.out_rules),
            (self.in_chain(), &self.in_rules),
        ];
        if self.v6 {
            v.push((self.out6_chain(), &self.out6_rules));
            v.push((self.in6_chain(), &self.in6_rules));
        }
        v
    }
    pub fn counter(&self, id: u32) -> String {
        counter_name(&self.hash, id)
    }
}

fn counter_name(hash: &str, id: u32) -> String {
    format!("{OBJ_PREFIX}{hash}_{id}")
}

fn limit_name(hash: &str, id: u32) -> String {
    format!("{OBJ_PREFIX}{hash}_{id}_limit")
}

/// A verdict map element: `key : jump chain`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VElem {
    pub family: u8,
    pub map: &'static str,
    pub key: Vec<u8>,
    pub chain: String,
}

/// A port map element: `key : ECO address . appPort`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PmElem {
    pub map: &'static str,
    pub key: Vec<u8>,
    pub data: Vec<u8>,
}

/// A set the units look remote addresses up in (inet table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclSet {
    /// A network's learned `host` addresses (see [`hosts`]), with the elements of its
    /// `static_dns` entries, which never expire.
    Hosts { name: String, statics: Vec<Vec<u8>> },
    /// A network's `eidset`: address ranges `[start, end)`, named by their hash.
    Eids {
        name: String,
        ranges: Vec<(u32, u64)>,
    },
}

impl AclSet {
    pub fn name(&self) -> &str {
        match self {
            AclSet::Hosts { name, .. } | AclSet::Eids { name, .. } => name,
        }
    }
}

/// Everything the ACLs of a config want in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclSpec {
    pub units: Vec<Unit>,
    pub velems: Vec<VElem>,
    pub pm: Vec<PmElem>,
    pub sets: Vec<AclSet>,
}

/// Direction of a packet relative to the ECO.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the ECO: the remote is the destination.
    Out,
    /// To the ECO: the remote is the source.
    In,
}

impl Way {
    fn remote_off(self) -> u32 {
        match self {
            Way::Out => 16,
            Way::In => 12,
        }
    }
    /// Offsets of the ECO's own port and the remote port in the transport header.
    fn ports(self) -> (u32, u32) {
        match self {
            Way::Out => (0, 2),
            Way::In => (2, 0),
        }
    }
    /// The remote address in an IPv6 header.
    fn remote6_off(self) -> u32 {
        match self {
            Way::Out => 24,
            Way::In => 8,
        }
    }
}

/// What a unit's rules refer to on its network.
#[derive(Default)]
struct NetSets {
    hosts: Option<String>,
    eids: Option<String>,
    /// The IPv6 eidset of a dual-stack network: its `subnet6` and the IPv6 addresses
    /// of its `static_dns` (each a /128), matched by a rule each.
    eids6: Vec<Ipv6Net>,
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

fn digest(text: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .to_vec()
}

/// The eidset ranges of a network: its subnet (a mesh: the whole mesh subnet, the
/// other devices' ECOs included) and its `static_dns` addresses, merged.
fn eid_ranges(subnet: Ipv4Net, statics: &[Ipv4Addr]) -> Vec<(u32, u64)> {
    let mut r: Vec<(u32, u64)> = vec![(
        u32::from(subnet.addr()),
        u64::from(u32::from(subnet.addr())) + (1u64 << (32 - u32::from(subnet.len()))),
    )];
    for a in statics {
        let s = u32::from(*a);
        r.push((s, u64::from(s) + 1));
    }
    r.sort();
    let mut out: Vec<(u32, u64)> = Vec::new();
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if u64::from(s) <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The IPv6 eidset of a dual-stack network: its `subnet6` and the IPv6 addresses of
/// its `static_dns` outside it.
fn eid6_prefixes(subnet6: Ipv6Net, statics: &[crate::config::HostEntry]) -> Vec<Ipv6Net> {
    let mut out = vec![subnet6];
    for a in statics.iter().flat_map(|h| h.addrs6.iter()) {
        if !subnet6.contains(*a) {
            out.push(Ipv6Net::containing(*a, 128));
        }
    }
    out.sort_by_key(|n| (u128::from(n.addr()), n.len()));
    out.dedup();
    out
}

/// The ACL objects `cfg` wants, given the ports' state and the senders admitted
/// (`allowed`: static addresses and leases).
pub fn desired(cfg: &Config, facts: &Facts, allowed: &[Allowed], allowed6: &[Allowed6]) -> AclSpec {
    let mut spec = AclSpec::default();
    let mut net_sets: HashMap<usize, NetSets> = HashMap::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        let aces = || {
            cfg.endpoints()
                .filter(move |(_, itf)| itf.network == i)
                .flat_map(|(_, itf)| itf.acls.iter().flatten())
        };
        let hosts = hosts::acl_hosts(cfg, i);
        let mut sets = NetSets::default();
        if !hosts.is_empty() {
            let name = hosts::set_name(&n.bridge);
            let entries = hosts::static_names(
                &n.static_dns,
                n.ip.as_ref().and_then(|l3| l3.domain.as_deref()),
            );
            let statics = hosts::static_elems(&hosts, &entries)
                .into_iter()
                .map(|k| k.to_vec())
                .collect();
            spec.sets.push(AclSet::Hosts {
                name: name.clone(),
                statics,
            });
            sets.hosts = Some(name);
        }
        if let (true, Some(l3)) = (aces().any(|a| a.matches.eidset), &n.ip) {
            let statics: Vec<Ipv4Addr> = n
                .static_dns
                .iter()
                .flat_map(|h| h.addrs.iter().copied())
                .collect();
            let ranges = eid_ranges(l3.subnet, &statics);
            let name = format!("{EIDS_PREFIX}{}", hex(&digest(&format!("{ranges:?}")), 6));
            if !spec.sets.iter().any(|s| s.name() == name) {
                spec.sets.push(AclSet::Eids {
                    name: name.clone(),
                    ranges,
                });
            }
            sets.eids = Some(name);
        }
        if let (true, Some(v6)) = (
            aces().any(|a| a.matches.eidset),
            n.ip.as_ref().and_then(|l3| l3.v6.as_ref()),
        ) {
            sets.eids6 = eid6_prefixes(v6.subnet6, &n.static_dns);
        }
        net_sets.insert(i, sets);
    }
    for (app, itf) in cfg.endpoints() {
        let Some(aces) = &itf.acls else { continue };
        let n = &cfg.networks[itf.network];
        let family = if n.kind.is_l3() {
            NFPROTO_INET
        } else {
            NFPROTO_BRIDGE
        };
        // Only the sets this endpoint's ACEs use name its unit: another endpoint's
        // first host ACE re-makes nothing here.
        let sets = net_sets.get(&itf.network);
        let hosts_set = sets
            .and_then(|s| s.hosts.clone())
            .filter(|_| aces.iter().any(|a| a.matches.host.is_some()));
        let eids_set = sets
            .and_then(|s| s.eids.clone())
            .filter(|_| aces.iter().any(|a| a.matches.eidset));
        let eids6: Vec<Ipv6Net> = sets
            .map(|s| s.eids6.clone())
            .filter(|_| aces.iter().any(|a| a.matches.eidset))
            .unwrap_or_default();
        let dual = family == NFPROTO_INET && n.ip.as_ref().is_some_and(|l3| l3.v6.is_some());
        // (An IPv4-only unit is named as before IPv6 came.)
        let v6_text = match dual {
            true => format!(" v6 {eids6:?}"),
            false => String::new(),
        };
        let hash = hex(
            &digest(&format!(
                "v{UNIT_VERSION} {family} {} {} {} {aces:?} {hosts_set:?} {eids_set:?}{v6_text}",
                app.id, itf.name, itf.host_ifname
            )),
            6,
        );
        let mut unit = compile(
            family,
            &app.id,
            &itf.name,
            hash,
            aces,
            &NetSets {
                hosts: hosts_set,
                eids: eids_set,
                eids6,
            },
            dual,
        );
        unit.port = itf.host_ifname.clone();
        unit.bridge = n.bridge.clone();
        let name = ifname(&itf.host_ifname).to_vec();
        if family == NFPROTO_BRIDGE {
            for (map, chain) in [
                (MAP_OUT_PORT, unit.out_chain()),
                (MAP_IN_PORT, unit.in_chain()),
            ] {
                spec.velems.push(VElem {
                    family,
                    map,
                    key: name.clone(),
                    chain,
                });
            }
        } else {
            // What the bridge carries beside unicast IPv4 is checked in the bridge
            // family: see CHAIN_L3_BRIDGED, CHAIN_L3_OUT6 and CHAIN_L3_IN6.
            let chains = match dual {
                true => [CHAIN_L3_OUT6, CHAIN_L3_IN6],
                false => [CHAIN_L3_BRIDGED, CHAIN_L3_BRIDGED],
            };
            for (map, chain) in [MAP_OUT_PORT, MAP_IN_PORT].into_iter().zip(chains) {
                spec.velems.push(VElem {
                    family: NFPROTO_BRIDGE,
                    map,
                    key: name.clone(),
                    chain: chain.into(),
                });
            }
            if dual {
                // IPv6 from the ECO by the MACs its port may send from (whatever
                // the source: DHCPv6, static, SLAAC, link-local); to it by the
                // addresses econet admitted.
                let mut macs: Vec<MacAddr> = allowed
                    .iter()
                    .filter(|a| a.ifname[..] == name[..])
                    .map(|a| a.mac)
                    .chain(
                        allowed6
                            .iter()
                            .filter(|a| a.ifname[..] == name[..])
                            .map(|a| a.mac),
                    )
                    .collect();
                macs.push(itf.eco_mac(&app.id));
                macs.sort();
                macs.dedup();
                let mut ips: Vec<Ipv6Addr> = allowed6
                    .iter()
                    .filter(|a| a.ifname[..] == name[..])
                    .map(|a| a.ip)
                    .collect();
                ips.extend(itf.ip6);
                ips.sort();
                ips.dedup();
                spec.velems.extend(macs.iter().map(|m| mac_elem(&unit, *m)));
                spec.velems
                    .extend(ips.iter().map(|ip| addr6_elem(&unit, *ip)));
            }
            let mut addrs: Vec<Ipv4Addr> = allowed
                .iter()
                .filter(|a| a.ifname[..] == name[..])
                .filter_map(|a| a.ip)
                .collect();
            addrs.extend(itf.ip);
            addrs.sort();
            addrs.dedup();
            for ip in &addrs {
                spec.velems.extend(addr_elems(&unit, *ip));
            }
            // The ECO's own address: static, else the lease of its own MAC.
            let mac = itf.eco_mac(&app.id);
            let eco = itf.ip.or_else(|| {
                allowed
                    .iter()
                    .filter(|a| a.ifname[..] == name[..] && a.mac == mac)
                    .find_map(|a| a.ip)
            });
            if let Some(eco) = eco {
                spec.pm.extend(portmaps(cfg, facts, itf.network, aces, eco));
            }
        }
        spec.units.push(unit);
    }
    spec.velems.sort();
    // One chain per key (a MAC or address two endpoints claim goes to the first).
    spec.velems
        .dedup_by(|a, b| a.family == b.family && a.map == b.map && a.key == b.key);
    spec.pm.sort();
    spec.pm.dedup();
    spec
}

/// The port map elements of an endpoint at `eco`: for its network's active port,
/// if the ACE's adapters allow it, each of the port's addresses.
fn portmaps(cfg: &Config, facts: &Facts, net: usize, aces: &[Ace], eco: Ipv4Addr) -> Vec<PmElem> {
    let mut out = Vec::new();
    let Some(port) = facts.active_port(cfg, net) else {
        return out;
    };
    let Some(pf) = facts.ports.get(port) else {
        return out;
    };
    for ace in aces {
        let AceAction::Portmap { app_port } = ace.action else {
            continue;
        };
        let m = &ace.matches;
        let (Some(AceProto::Number(proto)), Some(lport)) = (m.protocol, m.lport) else {
            continue;
        };
        if !m.adapter_ports.is_empty() && !m.adapter_ports.contains(&port) {
            continue;
        }
        let mut data = eco.octets().to_vec();
        data.extend_from_slice(&app_port.to_be_bytes());
        data.extend_from_slice(&[0, 0]);
        let tail = |addr: Ipv4Addr| {
            let mut k = addr.octets().to_vec();
            k.extend_from_slice(&[proto, 0, 0, 0]);
            k.extend_from_slice(&lport.lo.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
            k
        };
        for &(addr, _) in &pf.addrs {
            let mut key = ifname(&cfg.ports[port].ifname).to_vec();
            key.extend(tail(addr));
            out.push(PmElem {
                map: MAP_PM_OUT,
                key,
                data: data.clone(),
            });
            out.push(PmElem {
                map: MAP_PM_IN,
                key: tail(addr),
                data: data.clone(),
            });
        }
    }
    out
}

/// A connection a port map made (from outside or from an ECO).
pub fn pm_marked() -> Vec<Expr> {
    fw::masked(
        Expr::Ct {
            key: CT_MARK,
            dreg: REG_1,
        },
        MARK_PM_MASK.to_ne_bytes().to_vec(),
        CMP_EQ,
        MARK_PM_OUT.to_ne_bytes().to_vec(),
    )
}

fn ret() -> Expr {
    Expr::Verdict {
        code: NFT_RETURN,
        chain: None,
    }
}

fn counter(name: String) -> Expr {
    Expr::Objref {
        ty: OBJ_COUNTER,
        name,
    }
}

/// `th PORT` at `offset` in the range.
fn port_range(offset: u32, r: PortRange) -> Vec<Expr> {
    let mut v = vec![Expr::Payload {
        base: BASE_TRANSPORT,
        offset,
        len: 2,
        dreg: REG_1,
    }];
    if r.lo == r.hi {
        v.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: r.lo.to_be_bytes().to_vec(),
        });
    } else {
        v.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_GTE,
            data: r.lo.to_be_bytes().to_vec(),
        });
        v.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_LTE,
            data: r.hi.to_be_bytes().to_vec(),
        });
    }
    v
}

/// The matches of an ACE on the remote end and the ECO's port, for packets going
/// `way`. `lport` is left out for a port map (it is the port before DNAT).
fn matches(m: &AceMatches, way: Way, sets: &NetSets, lport: bool) -> Vec<Expr> {
    let mut v = Vec::new();
    let remote = way.remote_off();
    let (own_port, remote_port) = way.ports();
    if let Some(AceProto::Number(p)) = m.protocol {
        v.extend(fw::l4proto(p));
    }
    if let Some(net) = m.ip.filter(|n| n.len() > 0) {
        v.extend(fw::prefix_at(remote, &net));
    }
    if let (Some(host), Some(set)) = (&m.host, &sets.hosts) {
        v.push(Expr::Immediate {
            dreg: reg32(0),
            data: hosts::name_id(host).to_be_bytes().to_vec(),
        });
        v.push(Expr::Payload {
            base: BASE_NETWORK,
            offset: remote,
            len: 4,
            dreg: reg32(1),
        });
        v.push(Expr::Lookup {
            set: set.clone(),
            sreg: REG_1,
            invert: false,
        });
    }
    if let (true, Some(set)) = (m.eidset, &sets.eids) {
        v.push(Expr::Payload {
            base: BASE_NETWORK,
            offset: remote,
            len: 4,
            dreg: REG_1,
        });
        v.push(Expr::Lookup {
            set: set.clone(),
            sreg: REG_1,
            invert: false,
        });
    }
    if let (true, Some(r)) = (lport, m.lport) {
        v.extend(port_range(own_port, r));
    }
    if let Some(r) = m.fport {
        v.extend(port_range(remote_port, r));
    }
    v
}

/// The match expressions of an ACE in a unit's IPv6 chains, one list per rule it
/// needs (their union is the ACE's match). Empty: the ACE never matches IPv6.
///
/// An IPv4 `ip` and `host` (no AAAA learning) never match IPv6; an IPv6 `ip` is
/// matched here only; `eidset` is the network's `subnet6` and its `static_dns` IPv6
/// addresses, a rule each; `protocol` `icmp` (1) means ICMPv6 (58).
fn matches6(m: &AceMatches, way: Way, sets: &NetSets, lport: bool) -> Vec<Vec<Expr>> {
    if m.ip.is_some() || m.host.is_some() {
        return Vec::new();
    }
    let mut head = fw::nfproto_ipv6();
    match m.protocol {
        Some(AceProto::Number(1)) => head.extend(fw::l4proto(58)),
        Some(AceProto::Number(p)) => head.extend(fw::l4proto(p)),
        _ => {}
    }
    let mut tail = Vec::new();
    let (own_port, remote_port) = way.ports();
    if let (true, Some(r)) = (lport, m.lport) {
        tail.extend(port_range(own_port, r));
    }
    if let Some(r) = m.fport {
        tail.extend(port_range(remote_port, r));
    }
    let mut prefixes: Vec<Ipv6Net> = Vec::new();
    prefixes.extend(m.ip6);
    if m.eidset {
        prefixes.extend(sets.eids6.iter().copied());
    } else if m.ip6.is_none() {
        head.extend(tail);
        return vec![head];
    }
    prefixes
        .into_iter()
        .map(|net| {
            let mut r = head.clone();
            if net.len() > 0 {
                r.extend(fw::ip6_in(BASE_NETWORK, way.remote6_off(), &net, true));
            }
            r.extend(tail.iter().cloned());
            r
        })
        .collect()
}

/// The rules of an ACE whose matches are each of `variants` (none: no rule).
fn action_rules(hash: &str, ace: &Ace, variants: Vec<Vec<Expr>>) -> Vec<Vec<Expr>> {
    let c = counter(counter_name(hash, ace.id));
    let mut rules = Vec::new();
    for m in variants {
        match ace.action {
            AceAction::Allow | AceAction::Portmap { .. } => {
                let mut r = m;
                r.push(c.clone());
                r.push(ret());
                rules.push(r);
            }
            AceAction::Drop => {
                let mut r = m;
                r.push(c.clone());
                r.push(fw::verdict(NF_DROP));
                rules.push(r);
            }
            AceAction::Limit { .. } => {
                let mut r = m.clone();
                r.push(c.clone());
                r.push(Expr::Objref {
                    ty: OBJ_LIMIT,
                    name: limit_name(hash, ace.id),
                });
                r.push(fw::verdict(NF_DROP));
                rules.push(r);
                let mut r = m;
                r.push(ret());
                rules.push(r);
            }
        }
    }
    rules
}

/// ICMPv6 types of neighbour discovery and multicast listener discovery, which an
/// IPv6 unit chain lets pass between ECOs (what the anti-spoofing rules let through).
const ND_MLD_TYPES: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

/// The first rules of both chains: the rest of a flow whose first packet was
/// allowed passes (its replies, what it relates to).
fn prelude(family: u8, way: Way) -> Vec<Vec<Expr>> {
    if family == NFPROTO_BRIDGE {
        return bridge_prelude(way);
    }
    vec![
        {
            let mut r = fw::ct_reply();
            r.push(ret());
            r
        },
        {
            let mut r = fw::ct_state(CT_STATE_RELATED, true);
            r.push(ret());
            r
        },
    ]
}

/// The first rules of a unit's IPv6 chains: as for IPv4, and neighbour and
/// multicast listener discovery between ECOs.
fn prelude6() -> Vec<Vec<Expr>> {
    let mut rules = prelude(NFPROTO_INET, Way::Out);
    rules.extend(ND_MLD_TYPES.iter().map(|&t| {
        let mut r = fw::nfproto_ipv6();
        r.extend(fw::icmpv6_type(t));
        r.push(ret());
        r
    }));
    rules
}

/// The prelude of a switch endpoint's chains: the flow state comes as a packet
/// mark (see [`MARK_FLOW_REPLY`]); then what a switch network needs to work at all:
/// ARP, neighbour discovery, and DHCP with the network's own server.
fn bridge_prelude(way: Way) -> Vec<Vec<Expr>> {
    let mut bit = fw::masked(
        Expr::Meta {
            key: META_MARK,
            dreg: REG_1,
        },
        MARK_FLOW_REPLY.to_ne_bytes().to_vec(),
        CMP_NEQ,
        vec![0; 4],
    );
    bit.push(ret());
    let mut rules = vec![bit];
    {
        let mut r = fw::meta_protocol(0x0806);
        r.push(ret());
        rules.push(r);
        for t in 133u8..=136 {
            let mut r = fw::meta_protocol(0x86dd);
            r.extend(fw::icmpv6_type(t));
            r.push(ret());
            rules.push(r);
        }
        // DHCP: client port to server port from the ECO, the reverse to it.
        let (from, to) = match way {
            Way::Out => (68u16, 67u16),
            Way::In => (67, 68),
        };
        let mut r = fw::meta_protocol(0x0800);
        r.extend(fw::l4proto(17));
        r.extend(fw::port_is(0, from));
        r.extend(fw::port_is(2, to));
        r.push(ret());
        rules.push(r);
    }
    rules
}

/// One endpoint's unit; with `v6`, its IPv6 chains too (a dual-stack endpoint).
fn compile(
    family: u8,
    app_id: &str,
    ifname: &str,
    hash: String,
    aces: &[Ace],
    sets: &NetSets,
    v6: bool,
) -> Unit {
    let mut u = Unit {
        family,
        app_id: app_id.into(),
        ifname: ifname.into(),
        port: String::new(),
        bridge: String::new(),
        hash,
        out_rules: prelude(family, Way::Out),
        in_rules: prelude(family, Way::In),
        v6,
        out6_rules: if v6 { prelude6() } else { Vec::new() },
        in6_rules: if v6 { prelude6() } else { Vec::new() },
        ids: Vec::new(),
        limits: Vec::new(),
    };
    let implicit = |rules: &mut Vec<Vec<Expr>>, hash: &str| {
        rules.push(vec![counter(counter_name(hash, 0)), fw::verdict(NF_DROP)]);
    };
    if family == NFPROTO_BRIDGE {
        // Beyond the prelude, ACLs see IPv4.
        for rules in [&mut u.out_rules, &mut u.in_rules] {
            let mut r = vec![Expr::Meta {
                key: META_PROTOCOL,
                dreg: REG_1,
            }];
            r.push(Expr::Cmp {
                sreg: REG_1,
                op: CMP_NEQ,
                data: 0x0800u16.to_be_bytes().to_vec(),
            });
            r.push(counter(counter_name(&u.hash, 0)));
            r.push(fw::verdict(NF_DROP));
            rules.push(r);
        }
    }
    for ace in aces {
        let c = counter(counter_name(&u.hash, ace.id));
        u.ids.push(ace.id);
        if let AceAction::Limit {
            rate,
            per_secs,
            burst,
        } = ace.action
        {
            u.limits
                .push((ace.id, (u64::from(rate), u64::from(per_secs), burst)));
        }
        for way in [Way::Out, Way::In] {
            let (rules, rules6) = match way {
                Way::Out => (&mut u.out_rules, &mut u.out6_rules),
                Way::In => (&mut u.in_rules, &mut u.in6_rules),
            };
            let applies = match way {
                Way::Out => ace.dir.egress(),
                Way::In => ace.dir.ingress(),
            };
            match ace.action {
                AceAction::Portmap { app_port } => {
                    if way == Way::Out {
                        continue; // a port map is a way in
                    }
                    let mut r = matches(&ace.matches, way, sets, false);
                    r.extend(pm_marked());
                    if let Some(lport) = ace.matches.lport {
                        r.push(Expr::CtOrig {
                            key: CT_PROTO_DST,
                            dreg: REG_1,
                        });
                        r.push(Expr::Cmp {
                            sreg: REG_1,
                            op: CMP_EQ,
                            data: lport.lo.to_be_bytes().to_vec(),
                        });
                    }
                    r.extend(fw::port_is(2, app_port));
                    r.push(c.clone());
                    r.push(ret());
                    rules.push(r);
                }
                _ if !applies => {}
                _ => {
                    // The IPv4 chains: an IPv6 ip never matches there.
                    let v4 = match ace.matches.ip6 {
                        Some(_) => Vec::new(),
                        None => vec![matches(&ace.matches, way, sets, true)],
                    };
                    rules.extend(action_rules(&u.hash, ace, v4));
                    if v6 {
                        let m = matches6(&ace.matches, way, sets, true);
                        rules6.extend(action_rules(&u.hash, ace, m));
                    }
                }
            }
        }
    }
    u.ids.push(0);
    implicit(&mut u.out_rules, &u.hash);
    implicit(&mut u.in_rules, &u.hash);
    if v6 {
        implicit(&mut u.out6_rules, &u.hash);
        implicit(&mut u.in6_rules, &u.hash);
    }
    u
}

/// econet's ACL objects as the kernel holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclState {
    /// Unit chains, per family.
    pub chains: Vec<(u8, String)>,
    /// Named counters and limits: (family, name, type).
    pub objs: Vec<(u8, String, u32)>,
    /// The inet table's host and eidset sets.
    pub sets: Vec<String>,
    pub velems: Vec<VElem>,
    pub pm: Vec<PmElem>,
    /// The elements without a timeout of each host set.
    pub statics: Vec<(String, Vec<Vec<u8>>)>,
}

const VMAPS: [(u8, &str); 6] = [
    (NFPROTO_INET, MAP_OUT4),
    (NFPROTO_INET, MAP_IN4),
    (NFPROTO_INET, MAP_OUT6),
    (NFPROTO_INET, MAP_IN6),
    (NFPROTO_BRIDGE, MAP_OUT_PORT),
    (NFPROTO_BRIDGE, MAP_IN_PORT),
];

/// Reads the ACL objects of econet's tables (both exist).
pub fn read(nft: &mut Nft) -> std::io::Result<AclState> {
    let mut st = AclState::default();
    for family in [NFPROTO_INET, NFPROTO_BRIDGE] {
        for c in nft.chains(family, TABLE)? {
            if [
                UNIT_CHAIN_OUT,
                UNIT_CHAIN_IN,
                UNIT_CHAIN_OUT6,
                UNIT_CHAIN_IN6,
            ]
            .iter()
            .any(|p| c.starts_with(p))
            {
                st.chains.push((family, c));
            }
        }
        for ty in [OBJ_COUNTER, OBJ_LIMIT] {
            for (name, _, _) in nft.objects(family, TABLE, ty)? {
                if name.starts_with(OBJ_PREFIX) {
                    st.objs.push((family, name, ty));
                }
            }
        }
    }
    for s in nft.sets(NFPROTO_INET, TABLE)? {
        if s.starts_with(hosts::SET_PREFIX) {
            let statics = nft
                .set_elems_timed(NFPROTO_INET, TABLE, &s)?
                .into_iter()
                .filter(|(_, exp)| exp.is_none())
                .map(|(k, _)| k)
                .collect();
            st.statics.push((s.clone(), statics));
            st.sets.push(s);
        } else if s.starts_with(EIDS_PREFIX) {
            st.sets.push(s);
        }
    }
    for (family, map) in VMAPS {
        for (key, data) in nft.map_elems(family, TABLE, map)? {
            if let ElemData::Verdict(_, Some(chain)) = data {
                st.velems.push(VElem {
                    family,
                    map,
                    key,
                    chain,
                });
            }
        }
    }
    for map in [MAP_PM_OUT, MAP_PM_IN] {
        for (key, data) in nft.map_elems(NFPROTO_INET, TABLE, map)? {
            if let ElemData::Value(data) = data {
                st.pm.push(PmElem { map, key, data });
            }
        }
    }
    Ok(st)
}

/// What to change to bring the kernel's ACL objects to the desired ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclChanges {
    pub del_velems: Vec<VElem>,
    pub del_pm: Vec<PmElem>,
    pub new_sets: Vec<AclSet>,
    /// Static host elements to add to (and remove from) existing host sets.
    pub add_statics: Vec<(String, Vec<Vec<u8>>)>,
    pub del_statics: Vec<(String, Vec<Vec<u8>>)>,
    pub new_units: Vec<Unit>,
    pub add_velems: Vec<VElem>,
    pub add_pm: Vec<PmElem>,
    pub del_chains: Vec<(u8, String)>,
    pub del_objs: Vec<(u8, String, u32)>,
    pub del_sets: Vec<String>,
}

impl AclChanges {
    pub fn is_empty(&self) -> bool {
        *self == AclChanges::default()
    }

    /// Writes the changes into `b` in an order the kernel accepts: references to
    /// what goes away first, then what is new, then what went away.
    pub fn write(&self, b: &mut Batch) {
        for e in &self.del_velems {
            b.del_elems(e.family, TABLE, e.map, std::slice::from_ref(&e.key));
        }
        for e in &self.del_pm {
            b.del_elems(NFPROTO_INET, TABLE, e.map, std::slice::from_ref(&e.key));
        }
        for s in &self.new_sets {
            write_set(b, s);
        }
        for (set, keys) in &self.del_statics {
            b.del_elems(NFPROTO_INET, TABLE, set, keys);
        }
        for (set, keys) in &self.add_statics {
            b.add_elems(NFPROTO_INET, TABLE, set, keys);
        }
        for u in &self.new_units {
            for &id in &u.ids {
                b.add_counter(u.family, TABLE, &u.counter(id));
            }
            for (id, rate) in &u.limits {
                b.add_limit(u.family, TABLE, &limit_name(&u.hash, *id), *rate, true);
            }
            for (chain, rules) in u.chains() {
                b.add_chain(u.family, TABLE, &chain, None);
                for r in rules {
                    b.add_rule(u.family, TABLE, &chain, r);
                }
            }
        }
        for e in &self.add_velems {
            b.add_verdict_elems(
                e.family,
                TABLE,
                e.map,
                &[(e.key.clone(), NFT_JUMP, e.chain.clone())],
            );
        }
        for e in &self.add_pm {
            b.add_map_elems(
                NFPROTO_INET,
                TABLE,
                e.map,
                &[(e.key.clone(), e.data.clone())],
            );
        }
        for (family, chain) in &self.del_chains {
            b.del_chain(*family, TABLE, chain);
        }
        for (family, name, ty) in &self.del_objs {
            b.del_obj(*family, TABLE, name, *ty);
        }
        for s in &self.del_sets {
            b.del_set(NFPROTO_INET, TABLE, s);
        }
    }

    /// How many objects change (for the pass's change count).
    pub fn count(&self) -> u64 {
        (self.del_velems.len()
            + self.del_pm.len()
            + self.new_sets.len()
            + self.add_statics.len()
            + self.del_statics.len()
            + self.new_units.len()
            + self.add_velems.len()
            + self.add_pm.len()
            + self.del_chains.len()
            + self.del_objs.len()
            + self.del_sets.len()) as u64
    }
}

impl AclChanges {
    /// What these changes do to the objects `st` describes, as the kernel would
    /// (the model kernel of the reconciler's tests).
    #[cfg(test)]
    pub fn apply_to(&self, st: &mut AclState) {
        st.velems.retain(|e| !self.del_velems.contains(e));
        st.pm.retain(|e| !self.del_pm.contains(e));
        for s in &self.new_sets {
            st.sets.push(s.name().to_string());
            if let AclSet::Hosts { name, statics } = s {
                st.statics.push((name.clone(), statics.clone()));
            }
        }
        for (set, keys) in &self.del_statics {
            if let Some((_, v)) = st.statics.iter_mut().find(|(n, _)| n == set) {
                v.retain(|k| !keys.contains(k));
            }
        }
        for (set, keys) in &self.add_statics {
            if let Some((_, v)) = st.statics.iter_mut().find(|(n, _)| n == set) {
                v.extend(keys.iter().cloned());
            }
        }
        for u in &self.new_units {
            st.chains
                .extend(u.chains().into_iter().map(|(c, _)| (u.family, c)));
            st.objs.extend(
                u.ids
                    .iter()
                    .map(|&id| (u.family, u.counter(id), OBJ_COUNTER)),
            );
            st.objs.extend(
                u.limits
                    .iter()
                    .map(|(id, _)| (u.family, limit_name(&u.hash, *id), OBJ_LIMIT)),
            );
        }
        st.velems.extend(self.add_velems.iter().cloned());
        st.pm.extend(self.add_pm.iter().cloned());
        st.chains.retain(|c| !self.del_chains.contains(c));
        st.objs.retain(|o| !self.del_objs.contains(o));
        st.sets.retain(|s| !self.del_sets.contains(s));
        st.statics.retain(|(n, _)| !self.del_sets.contains(n));
    }
}

fn write_set(b: &mut Batch, s: &AclSet) {
    match s {
        AclSet::Hosts { name, statics } => {
            b.add_set_def(
                NFPROTO_INET,
                TABLE,
                &SetDef {
                    name,
                    key_type: concat_type(&[TYPE_MARK, TYPE_IPADDR]),
                    key_len: 8,
                    // Learned elements carry their own timeout; static ones none.
                    flags: SET_F_TIMEOUT,
                    size: hosts::MAX_PER_NET,
                    ..SetDef::default()
                },
            );
            b.add_elems(NFPROTO_INET, TABLE, name, statics);
        }
        AclSet::Eids { name, ranges } => {
            b.add_set_def(
                NFPROTO_INET,
                TABLE,
                &SetDef {
                    name,
                    key_type: TYPE_IPADDR,
                    key_len: 4,
                    flags: SET_F_INTERVAL,
                    ..SetDef::default()
                },
            );
            b.add_intervals(NFPROTO_INET, TABLE, name, ranges);
        }
    }
}

/// The changes from `cur` to `d`.
pub fn changes(d: &AclSpec, cur: &AclState) -> AclChanges {
    let mut c = AclChanges::default();
    let have_chains: HashSet<&(u8, String)> = cur.chains.iter().collect();
    let mut want_chains: HashSet<(u8, String)> = HashSet::new();
    let mut want_objs: HashSet<(u8, String, u32)> = HashSet::new();
    for u in &d.units {
        let chains: Vec<(u8, String)> =
            u.chains().into_iter().map(|(c, _)| (u.family, c)).collect();
        if !chains.iter().all(|k| have_chains.contains(k)) {
            c.new_units.push(u.clone());
        }
        want_chains.extend(chains);
        for &id in &u.ids {
            want_objs.insert((u.family, u.counter(id), OBJ_COUNTER));
        }
        for (id, _) in &u.limits {
            want_objs.insert((u.family, limit_name(&u.hash, *id), OBJ_LIMIT));
        }
    }
    c.del_chains.extend(
        cur.chains
            .iter()
            .filter(|k| !want_chains.contains(*k))
            .cloned(),
    );
    c.del_objs
        .extend(cur.objs.iter().filter(|k| !want_objs.contains(*k)).cloned());
    // A changed unit is re-made: everything pointing at it is written again.
    let remade: HashSet<String> = c
        .new_units
        .iter()
        .flat_map(|u| u.chains().into_iter().map(|(c, _)| c))
        .collect();
    let want_v: HashSet<&VElem> = d.velems.iter().collect();
    let have_v: HashSet<&VElem> = cur.velems.iter().collect();
    // Keys change their chain by delete and add.
    c.del_velems = cur
        .velems
        .iter()
        .filter(|e| !want_v.contains(e) || remade.contains(&e.chain))
        .cloned()
        .collect();
    c.add_velems = d
        .velems
        .iter()
        .filter(|e| !have_v.contains(e) || remade.contains(&e.chain))
        .cloned()
        .collect();
    let want_p: HashSet<&PmElem> = d.pm.iter().collect();
    let have_p: HashSet<&PmElem> = cur.pm.iter().collect();
    c.del_pm = cur
        .pm
        .iter()
        .filter(|e| !want_p.contains(e))
        .cloned()
        .collect();
    c.add_pm =
        d.pm.iter()
            .filter(|e| !have_p.contains(e))
            .cloned()
            .collect();
    // Sets: new ones made with their elements; a host set's statics kept in step.
    for s in &d.sets {
        if !cur.sets.iter().any(|n| n == s.name()) {
            c.new_sets.push(s.clone());
        } else if let AclSet::Hosts { name, statics } = s {
            let have: Vec<Vec<u8>> = cur
                .statics
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let add: Vec<Vec<u8>> = statics
                .iter()
                .filter(|k| !have.contains(k))
                .cloned()
                .collect();
            let del: Vec<Vec<u8>> = have
                .iter()
                .filter(|k| !statics.contains(k))
                .cloned()
                .collect();
            if !add.is_empty() {
                c.add_statics.push((name.clone(), add));
            }
            if !del.is_empty() {
                c.del_statics.push((name.clone(), del));
            }
        }
    }
    c.del_sets = cur
        .sets
        .iter()
        .filter(|n| !d.sets.iter().any(|s| s.name() == n.as_str()))
        .cloned()
        .collect();
    c
}

/// The map elements that send the packets of an L3 endpoint's address `ip` to
/// its unit `u`.
pub fn addr_elems(u: &Unit, ip: Ipv4Addr) -> [VElem; 2] {
    let mut key = ifname(&u.bridge).to_vec();
    key.extend_from_slice(&ip.octets());
    [
        VElem {
            family: NFPROTO_INET,
            map: MAP_OUT4,
            key: key.clone(),
            chain: u.out_chain(),
        },
        VElem {
            family: NFPROTO_INET,
            map: MAP_IN4,
            key,
            chain: u.in_chain(),
        },
    ]
}

/// The map element that sends the IPv6 packets an L3 endpoint's MAC `mac` sends on
/// its bridge to its unit `u`.
pub fn mac_elem(u: &Unit, mac: MacAddr) -> VElem {
    let mut key = ifname(&u.bridge).to_vec();
    key.extend_from_slice(&mac.0);
    key.extend_from_slice(&[0, 0]);
    VElem {
        family: NFPROTO_INET,
        map: MAP_OUT6,
        key,
        chain: u.out6_chain(),
    }
}

/// The map element that sends IPv6 packets to an L3 endpoint's admitted address
/// `ip` to its unit `u`.
pub fn addr6_elem(u: &Unit, ip: Ipv6Addr) -> VElem {
    let mut key = ifname(&u.bridge).to_vec();
    key.extend_from_slice(&ip.octets());
    VElem {
        family: NFPROTO_INET,
        map: MAP_IN6,
        key,
        chain: u.in6_chain(),
    }
}

/// The learned elements of the host sets `d` keeps, with the time they have left,
/// read before their table is rebuilt so that a rebuild forgets no lookup.
pub fn learned_hosts(nft: &mut Nft, d: &AclSpec) -> Vec<(String, Vec<TimedKey>)> {
    let mut out = Vec::new();
    for s in &d.sets {
        if let AclSet::Hosts { name, .. } = s {
            match nft.set_elems_expiring(NFPROTO_INET, TABLE, name, hosts::MAX_PER_NET as usize) {
                Ok(v) if !v.is_empty() => out.push((name.clone(), v)),
                _ => {}
            }
        }
    }
    out
}

/// Adds back what [`learned_hosts`] read (the sets exist again by then).
pub fn restore_learned(b: &mut Batch, learned: &[(String, Vec<TimedKey>)]) {
    for (set, elems) in learned {
        let keep: Vec<TimedKey> = elems
            .iter()
            .filter(|(k, ms)| k.len() == 8 && *ms >= 1000)
            .cloned()
            .collect();
        b.add_elems_timed(NFPROTO_INET, TABLE, set, &keep);
    }
}

/// Per-ACE counters of an endpoint, as status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AceCount {
    pub id: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// The counters of `units`, per (app id, interface name), read from the kernel.
pub fn read_counters(nft: &mut Nft, units: &[Unit]) -> HashMap<(String, String), Vec<AceCount>> {
    let mut all: HashMap<String, (u64, u64)> = HashMap::new();
    for family in [NFPROTO_INET, NFPROTO_BRIDGE] {
        if let Ok(objs) = nft.objects(family, TABLE, OBJ_COUNTER) {
            for (name, p, b) in objs {
                all.insert(name, (p, b));
            }
        }
    }
    let mut out = HashMap::new();
    for u in units {
        let counts = u
            .ids
            .iter()
            .map(|&id| {
                let (packets, bytes) = all.get(&u.counter(id)).copied().unwrap_or_default();
                AceCount { id, packets, bytes }
            })
            .collect();
        out.insert((u.app_id.clone(), u.ifname.clone()), counts);
    }
    out
}

/// Whether a network of `kind` filters its ACLs in the bridge family.
pub fn in_bridge_family(kind: NetKind) -> bool {
    kind == NetKind::Switch
}
