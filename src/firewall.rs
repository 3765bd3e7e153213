//! The device's firewall policy for econet's networks, as nftables rules in two
//! tables of econet's own: `inet econet` (forwarding, input, NAT, MSS clamping) and
//! `bridge econet` (anti-spoofing at the ECO endpoints).
//!
//! Every chain has policy accept and only ever drops traffic that involves econet's
//! bridges or the config's ports, so another firewall on the box keeps working, and a
//! drop there still drops. The structure is rebuilt in one atomic batch when it
//! changes (a fingerprint in the table's userdata says whether it has); the sets of
//! allowed (endpoint, MAC, address) tuples change with DHCP leases and are updated
//! element by element.

use crate::acl;
use crate::addr::{Ipv4Net, Ipv6Net, MacAddr};
use crate::netlink::nft::*;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TABLE: &str = "econet";
/// Bump when the rules below change, so running devices rebuild their tables.
const RULES_VERSION: u32 = 5;

/// How long an IPv6 address stays an ECO port's after the port last used it. Without
/// traffic the claim lapses and the address is free for the next claimant, so this is
/// long: an idle ECO keeps its link-local address for a day.
const V6_HOLD_MS: u64 = 24 * 3600 * 1000;
/// The most (port, MAC, address) bindings, and claimed addresses, per bridge.
const V6_BINDINGS: u32 = 2048;
/// New claims a port may make: a burst of 16 (an ECO and the nested guests DHCP
/// admits beside it, at most 16 by default), then 2 an hour. Bounds what one ECO can
/// take of its bridge's bindings (16 + 48 a day of 2048).
const V6_CLAIM_RATE: (u64, u64, u32) = (2, 3600, 16);
/// The per-port claim meter (one element per ECO port that claimed something).
const V6_METER_SIZE: u32 = 4096;
const SET_CLAIM_METER: &str = "claims6";
const MAP_ND6: &str = "nd6_port";
/// Key lengths in the kernel's layout: ifname . ether_addr (padded to 8) . ipv6_addr.
const BIND6_KEY_LEN: usize = 16 + 8 + 16;
const CLAIM6_KEY_LEN: usize = 16;

/// The set of (port, MAC, address) bindings on `bridge`.
fn bind_set(bridge: &str) -> String {
    format!("bind6_{bridge}")
}

/// The set of addresses claimed on `bridge` (by whichever port).
fn claim_set(bridge: &str) -> String {
    format!("claim6_{bridge}")
}

/// The chain with `bridge`'s first-come-first-served rules.
fn nd6_chain(bridge: &str) -> String {
    format!("nd6_{bridge}")
}

/// One of econet's bridges, as the firewall sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNet {
    pub bridge: String,
    /// L3 networks get DHCP/DNS input rules, MSS clamping and anti-spoofing.
    pub l3: bool,
    pub subnet: Option<Ipv4Net>,
    /// The port a local network's NAT goes out of, if it has one that is up.
    pub nat_port: Option<String>,
    /// A tunnel device (VPN, mesh) the network may forward to and from.
    pub tunnel: Option<String>,
    /// Conntrack mark of this network's NATed flows (flushed when the port moves).
    pub mark: u32,
    /// A local network: port maps reach its ECOs, and its ECOs reach port maps.
    pub local: bool,
    /// A dual-stack local network's IPv6 prefix: its ECOs may send from it (from
    /// addresses econet admitted, or claimed first come, first served with `slaac`),
    /// and reach the device for neighbour discovery, DHCPv6 and DNS.
    pub subnet6: Option<Ipv6Net>,
    /// ECOs may claim addresses of `subnet6` themselves (SLAAC), first come, first
    /// served.
    pub slaac: bool,
    /// The port the network's IPv6 leaves by, masqueraded (NAT66): its NAT port when
    /// that has a global IPv6 address. `None`: IPv6 stays on the network.
    pub nat6_port: Option<String>,
}

impl FwNet {
    /// The ports the network's traffic leaves by, translated: its NAT port and its
    /// NAT66 port, each once.
    fn nat_ports(&self) -> impl Iterator<Item = &String> {
        let six = self
            .nat6_port
            .as_ref()
            .filter(|p| Some(*p) != self.nat_port.as_ref());
        self.nat_port.iter().chain(six)
    }

    /// What of the families may leave by port `p` (none, `meta nfproto`, or both):
    /// IPv4 by the NAT port; IPv6 of a dual-stack network by its NAT66 port only.
    /// (Other networks' ECOs send IPv6 only from link-local addresses, which are
    /// never forwarded: their rules stay as they were.)
    fn families_out_of(&self, p: &String) -> Vec<Expr> {
        let v4 = self.nat_port.as_ref() == Some(p);
        let v6 = self.subnet6.is_none() || self.nat6_port.as_ref() == Some(p);
        match (v4, v6) {
            (true, false) => nfproto_ipv4(),
            (false, _) => nfproto_ipv6(),
            (true, true) => Vec::new(),
        }
    }
}

/// The structure of the firewall: what the fingerprint covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FwSpec {
    /// Interface names of the config's ports: no forwarding between any two.
    pub ports: Vec<String>,
    pub nets: Vec<FwNet>,
    /// Host-side interfaces of endpoints on L3 networks (anti-spoofing applies).
    pub eco_ports: Vec<EcoPort>,
    /// Bridged IPv4 passes the inet hooks (br_netfilter), where the ACL units of L3
    /// endpoints see it; without it, what a bridge carries between ECOs with ACLs is
    /// dropped (fail closed).
    pub br_netfilter: bool,
}

/// An endpoint's host-side interface on an L3 network, and that network's bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcoPort {
    pub ifname: String,
    pub bridge: String,
}

/// The IPv6 address claims of the bridge table in the kernel, kept across a rebuild
/// of the table (each set's elements with the milliseconds they have left), so that
/// replacing the rules never frees an address an ECO holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldClaims {
    pub sets: Vec<(String, Vec<TimedKey>)>,
}

/// A tuple that may send from an endpoint: interface, MAC, IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allowed {
    pub ifname: [u8; 16],
    pub mac: MacAddr,
    pub ip: Option<Ipv4Addr>,
}

pub const SET_ALLOWED4: &str = "allowed4";
pub const SET_ALLOWED_MAC: &str = "allowed_mac";
/// IPv6 senders econet admitted (static `ip6`, DHCPv6 leases): `ifname . ether_addr
/// . ipv6_addr`, no timeout (they stay until dismissed).
pub const SET_ALLOWED6: &str = "allowed6";
/// The addresses of `allowed6`: no other port claims one of them.
pub const SET_ALLOWED6_IP: &str = "allowed6_ip";
/// inet: the bridges of dual-stack networks.
const SET_V6_BRIDGES: &str = "v6_bridges";

/// An IPv6 sender econet admits on an ECO port: interface, MAC, address (a DHCPv6
/// lease, or an endpoint's static `ip6`). It may send from the address with the
/// MAC, do DAD for it and advertise it, whatever the claims on its bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allowed6 {
    pub ifname: [u8; 16],
    pub mac: MacAddr,
    pub ip: Ipv6Addr,
}

impl Allowed6 {
    pub fn new(ifname: &str, mac: MacAddr, ip: Ipv6Addr) -> Allowed6 {
        Allowed6 {
            ifname: crate::netlink::nft::ifname(ifname),
            mac,
            ip,
        }
    }

    /// The key in `allowed6` (ifname . ether_addr . ipv6_addr: 16 + 8 + 16 bytes).
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.ifname.to_vec();
        k.extend_from_slice(&self.mac.0);
        k.extend_from_slice(&[0, 0]);
        k.extend_from_slice(&self.ip.octets());
        k
    }

    /// The key in `allowed6_ip`.
    pub fn ip_key(&self) -> Vec<u8> {
        self.ip.octets().to_vec()
    }
}

/// The set keys of `allowed`: (allowed6 keys, allowed6_ip keys), deduplicated.
pub fn allowed6_keys(allowed: &[Allowed6]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut keys: Vec<Vec<u8>> = allowed.iter().map(Allowed6::key).collect();
    let mut ips: Vec<Vec<u8>> = allowed.iter().map(Allowed6::ip_key).collect();
    keys.sort();
    keys.dedup();
    ips.sort();
    ips.dedup();
    (keys, ips)
}

impl Allowed {
    pub fn new(ifname: &str, mac: MacAddr, ip: Option<Ipv4Addr>) -> Allowed {
        Allowed {
            ifname: crate::netlink::nft::ifname(ifname),
            mac,
            ip,
        }
    }

    /// The key in `allowed_mac` (ifname . ether_addr: 16 + 8 bytes).
    pub fn mac_key(&self) -> Vec<u8> {
        let mut k = self.ifname.to_vec();
        k.extend_from_slice(&self.mac.0);
        k.extend_from_slice(&[0, 0]);
        k
    }

    /// The key in `allowed4` (ifname . ether_addr . ipv4_addr: 16 + 8 + 4 bytes).
    pub fn ip_key(&self) -> Option<Vec<u8>> {
        let mut k = self.mac_key();
        k.extend_from_slice(&self.ip?.octets());
        Some(k)
    }
}

/// A stable conntrack mark for a network id.
pub fn mark_for(net_id: &str) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, net_id.as_bytes());
    let h = d.as_ref();
    0xec00_0000 | (u32::from(h[0]) << 16) | (u32::from(h[1]) << 8) | u32::from(h[2])
}

impl FwSpec {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.nets.is_empty()
    }

    /// Identifies this structure: equal fingerprints, equal rules.
    ///
    /// It is the table's userdata, which `nft` reads as type-length-value
    /// attributes: so it is written as the table's comment (attribute 0, a
    /// NUL-terminated string), `econet <hex digest>`. Raw digest bytes there made
    /// `nft list` crash on some digests.
    pub fn fingerprint(&self) -> Vec<u8> {
        let text = format!("v{RULES_VERSION} {self:?}");
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let comment = format!("econet {hex}\0");
        let mut tlv = vec![0u8, comment.len() as u8];
        tlv.extend_from_slice(comment.as_bytes());
        tlv
    }

    /// The batch that replaces both tables with this structure, `allowed` and
    /// `allowed6`, with the IPv6 claims `held` (read from the table being replaced)
    /// carried over.
    pub fn build(
        &self,
        b: &mut Batch,
        replace: (bool, bool),
        allowed: (&[Allowed], &[Allowed6]),
        held: &HeldClaims,
    ) {
        let fp = self.fingerprint();
        if replace.0 {
            b.del_table(NFPROTO_INET, TABLE);
        }
        if replace.1 {
            b.del_table(NFPROTO_BRIDGE, TABLE);
        }
        self.build_inet(b, &fp);
        self.build_bridge(b, &fp, allowed, held);
    }

    /// The network whose bridge is `bridge`.
    fn net(&self, bridge: &str) -> Option<&FwNet> {
        self.nets.iter().find(|n| n.bridge == bridge)
    }

    /// The bridges with ECO ports, each once, in order.
    fn eco_bridges(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for p in &self.eco_ports {
            if !v.contains(&p.bridge.as_str()) {
                v.push(&p.bridge);
            }
        }
        v
    }

    /// The IPv6 claims in the kernel's bridge table for this structure's bridges (a
    /// bridge new to it has none). What cannot be read is left out: those ECOs
    /// claim their addresses again with their next packet.
    pub fn held_claims(&self, nft: &mut Nft) -> HeldClaims {
        let mut held = HeldClaims::default();
        for br in self.eco_bridges() {
            for (set, key_len) in [
                (bind_set(br), BIND6_KEY_LEN),
                (claim_set(br), CLAIM6_KEY_LEN),
            ] {
                let max = V6_BINDINGS as usize;
                match nft.set_elems_expiring(NFPROTO_BRIDGE, TABLE, &set, max) {
                    Ok(elems) => {
                        let keep = claims_to_keep(elems, key_len);
                        if !keep.is_empty() {
                            held.sets.push((set, keep));
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => log::warn!("cannot read IPv6 claims of {br} to keep them: {e}"),
                }
            }
        }
        held
    }

    fn build_inet(&self, b: &mut Batch, fp: &[u8]) {
        let f = NFPROTO_INET;
        b.add_table(f, TABLE, fp);
        b.add_set(f, TABLE, "ports", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, "bridges", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, "l3_bridges", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, "local_bridges", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, SET_V6_BRIDGES, TYPE_IFNAME, 16);
        for map in [acl::MAP_OUT4, acl::MAP_IN4] {
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: map,
                    key_type: concat_type(&[TYPE_IFNAME, TYPE_IPADDR]),
                    key_len: acl::VMAP4_KEY_LEN,
                    data_type: Some(DATA_VERDICT),
                    ..SetDef::default()
                },
            );
        }
        for (map, key_type, key_len) in [
            (
                acl::MAP_OUT6,
                concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR]),
                acl::VMAP6_OUT_KEY_LEN,
            ),
            (
                acl::MAP_IN6,
                concat_type(&[TYPE_IFNAME, TYPE_IP6ADDR]),
                acl::VMAP6_IN_KEY_LEN,
            ),
        ] {
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: map,
                    key_type,
                    key_len,
                    data_type: Some(DATA_VERDICT),
                    ..SetDef::default()
                },
            );
        }
        for (map, key_type, key_len) in [
            (
                acl::MAP_PM_OUT,
                concat_type(&[TYPE_IFNAME, TYPE_IPADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
                acl::PM_OUT_KEY_LEN,
            ),
            (
                acl::MAP_PM_IN,
                concat_type(&[TYPE_IPADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
                acl::PM_IN_KEY_LEN,
            ),
        ] {
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: map,
                    key_type,
                    key_len,
                    data_type: Some(concat_type(&[TYPE_IPADDR, TYPE_INET_SERVICE])),
                    data_len: acl::PM_DATA_LEN,
                    ..SetDef::default()
                },
            );
        }
        let names = |v: Vec<&String>| {
            v.into_iter()
                .map(|n| ifname(n).to_vec())
                .collect::<Vec<_>>()
        };
        b.add_elems(f, TABLE, "ports", &names(self.ports.iter().collect()));
        b.add_elems(
            f,
            TABLE,
            "bridges",
            &names(self.nets.iter().map(|n| &n.bridge).collect()),
        );
        b.add_elems(
            f,
            TABLE,
            "local_bridges",
            &names(
                self.nets
                    .iter()
                    .filter(|n| n.local)
                    .map(|n| &n.bridge)
                    .collect(),
            ),
        );
        b.add_elems(
            f,
            TABLE,
            "l3_bridges",
            &names(
                self.nets
                    .iter()
                    .filter(|n| n.l3)
                    .map(|n| &n.bridge)
                    .collect(),
            ),
        );
        b.add_elems(
            f,
            TABLE,
            SET_V6_BRIDGES,
            &names(
                self.nets
                    .iter()
                    .filter(|n| n.subnet6.is_some())
                    .map(|n| &n.bridge)
                    .collect(),
            ),
        );
        let filter = |num| Hook {
            num,
            priority: 0,
            kind: "filter",
        };
        b.add_chain(f, TABLE, "forward", Some(&filter(HOOK_FORWARD)));
        b.add_chain(f, TABLE, "input", Some(&filter(HOOK_INPUT)));
        b.add_chain(
            f,
            TABLE,
            "postrouting",
            Some(&Hook {
                num: HOOK_POSTROUTING,
                priority: 100,
                kind: "nat",
            }),
        );

        // forward: clamp MSS, mark NATed flows, then the allowed paths, then drops.
        for dir in [META_IIFNAME, META_OIFNAME] {
            let mut r = in_set(dir, "l3_bridges");
            r.extend(tcp_syn());
            r.extend(clamp_mss());
            b.add_rule(f, TABLE, "forward", &r);
        }
        for (n, p) in self
            .nets
            .iter()
            .flat_map(|n| n.nat_ports().map(move |p| (n, p)))
        {
            // Only flows out of the port (a port map's from ECOs keep their mark).
            let mut r = is(META_IIFNAME, &n.bridge);
            r.extend(is(META_OIFNAME, p));
            r.extend(ct_state(CT_STATE_NEW, true));
            r.push(Expr::Immediate {
                dreg: REG_1,
                data: n.mark.to_ne_bytes().to_vec(),
            });
            r.push(Expr::CtSet {
                key: CT_MARK,
                sreg: REG_1,
            });
            b.add_rule(f, TABLE, "forward", &r);
        }
        let mut r = in_set(META_IIFNAME, "ports");
        r.extend(in_set(META_OIFNAME, "ports"));
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, "forward", &r);
        // What a bridge carries for an allowed flow, marked for the bridge family's
        // ACL units (see acl::MARK_FLOW_REPLY).
        for state in [ct_reply(), ct_state(CT_STATE_RELATED, true)] {
            let mut r = in_set(META_IIFNAME, "bridges");
            r.extend(state);
            r.push(Expr::Meta {
                key: META_MARK,
                dreg: REG_1,
            });
            r.push(Expr::Bitwise {
                reg: REG_1,
                len: 4,
                mask: (!acl::MARK_FLOW_REPLY).to_ne_bytes().to_vec(),
                xor: acl::MARK_FLOW_REPLY.to_ne_bytes().to_vec(),
            });
            r.push(Expr::MetaSet {
                key: META_MARK,
                sreg: REG_1,
            });
            b.add_rule(f, TABLE, "forward", &r);
        }
        // IPv6 routed into a dual-stack bridge is marked as such, and its replies
        // and related packets as those of an allowed flow, for the bridge family's
        // output hook (see acl::CHAIN_L3_IN6).
        for (state, bit) in [
            (Vec::new(), acl::MARK_FWD6),
            (ct_reply(), acl::MARK_FLOW_REPLY),
            (ct_state(CT_STATE_RELATED, true), acl::MARK_FLOW_REPLY),
        ] {
            let mut r = nfproto_ipv6();
            r.extend(in_set(META_OIFNAME, SET_V6_BRIDGES));
            r.extend(state);
            r.extend(set_mark_bit(bit));
            b.add_rule(f, TABLE, "forward", &r);
        }
        // Endpoints with ACLs: their units decide (and return what they allow).
        // IPv6 from an ECO by the MAC it comes from, to an ECO by its address.
        for (key, base, off, len, map) in [
            (META_IIFNAME, BASE_LL, 6, 6, acl::MAP_OUT6),
            (META_OIFNAME, BASE_NETWORK, 24, 16, acl::MAP_IN6),
        ] {
            let mut r = nfproto_ipv6();
            if base == BASE_LL {
                // An Ethernet header (the dependency that lets nft print `ether`).
                r.push(Expr::Meta {
                    key: META_IIFTYPE,
                    dreg: REG_1,
                });
                r.push(Expr::Cmp {
                    sreg: REG_1,
                    op: CMP_EQ,
                    data: 1u16.to_ne_bytes().to_vec(),
                });
            }
            r.push(Expr::Meta { key, dreg: REG_1 });
            r.push(Expr::Payload {
                base,
                offset: off,
                len,
                dreg: REG_2,
            });
            r.push(Expr::Vmap {
                set: map.into(),
                sreg: REG_1,
            });
            b.add_rule(f, TABLE, "forward", &r);
        }
        for (key, off, map) in [
            (META_IIFNAME, 12, acl::MAP_OUT4),
            (META_OIFNAME, 16, acl::MAP_IN4),
        ] {
            let mut r = nfproto_ipv4();
            r.push(Expr::Meta { key, dreg: REG_1 });
            r.push(Expr::Payload {
                base: BASE_NETWORK,
                offset: off,
                len: 4,
                dreg: REG_2,
            });
            r.push(Expr::Vmap {
                set: map.into(),
                sreg: REG_1,
            });
            b.add_rule(f, TABLE, "forward", &r);
        }
        // Port-mapped connections the units allowed, into any ECO network.
        let mut r = acl::pm_marked();
        r.extend(in_set(META_OIFNAME, "local_bridges"));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, "forward", &r);
        for n in &self.nets {
            let mut r = is(META_IIFNAME, &n.bridge);
            r.extend(is(META_OIFNAME, &n.bridge));
            r.push(verdict(NF_ACCEPT));
            b.add_rule(f, TABLE, "forward", &r);
            // Out of the NAT port(s), in the families that leave by each.
            for p in n.nat_ports() {
                let mut r = n.families_out_of(p);
                r.extend(is(META_IIFNAME, &n.bridge));
                r.extend(is(META_OIFNAME, p));
                r.push(verdict(NF_ACCEPT));
                b.add_rule(f, TABLE, "forward", &r);
            }
            if let Some(t) = &n.tunnel {
                let mut r = is(META_IIFNAME, &n.bridge);
                r.extend(is(META_OIFNAME, t));
                r.push(verdict(NF_ACCEPT));
                b.add_rule(f, TABLE, "forward", &r);
            }
            for p in n.nat_ports() {
                let mut r = n.families_out_of(p);
                r.extend(is(META_IIFNAME, p));
                r.extend(is(META_OIFNAME, &n.bridge));
                r.extend(ct_state(CT_STATE_ESTABLISHED | CT_STATE_RELATED, true));
                r.push(verdict(NF_ACCEPT));
                b.add_rule(f, TABLE, "forward", &r);
            }
            if let Some(t) = &n.tunnel {
                let mut r = is(META_IIFNAME, t);
                r.extend(is(META_OIFNAME, &n.bridge));
                r.push(verdict(NF_ACCEPT));
                b.add_rule(f, TABLE, "forward", &r);
            }
        }
        for dir in [META_IIFNAME, META_OIFNAME] {
            let mut r = in_set(dir, "bridges");
            r.push(verdict(NF_DROP));
            b.add_rule(f, TABLE, "forward", &r);
        }

        // input: from an ECO network only DHCP and DNS reach the device.
        for (proto, port) in [(17u8, 67u16), (17, 53), (6, 53)] {
            let mut r = in_set(META_IIFNAME, "l3_bridges");
            r.extend(l4proto(proto));
            r.extend(port_is(2, port));
            r.push(verdict(NF_ACCEPT));
            b.add_rule(f, TABLE, "input", &r);
        }
        // From a dual-stack network also neighbour discovery (not from beyond the
        // link: hop limit 255) and DHCPv6.
        for t in [ND_RS, ND_NS, ND_NA] {
            let mut r = in_set(META_IIFNAME, SET_V6_BRIDGES);
            r.extend(nfproto_ipv6());
            r.extend(icmpv6_type(t));
            r.extend(field_is(BASE_NETWORK, 7, vec![255]));
            r.push(verdict(NF_ACCEPT));
            b.add_rule(f, TABLE, "input", &r);
        }
        let mut r = in_set(META_IIFNAME, SET_V6_BRIDGES);
        r.extend(nfproto_ipv6());
        r.extend(l4proto(17));
        r.extend(port_is(2, DHCP6_SERVER_PORT));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, "input", &r);
        let mut r = in_set(META_IIFNAME, "l3_bridges");
        r.extend(ct_state(CT_STATE_ESTABLISHED | CT_STATE_RELATED, true));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, "input", &r);
        let mut r = in_set(META_IIFNAME, "bridges");
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, "input", &r);

        // output: no ICMP redirects into ECO networks. A port map's hairpin sends an
        // ECO's packet back out of the bridge it came in by, which would tell the
        // ECO to go to the other ECO directly, past the translation.
        b.add_chain(f, TABLE, "output", Some(&filter(HOOK_OUTPUT)));
        let mut r = in_set(META_OIFNAME, "l3_bridges");
        r.extend(nfproto_ipv4());
        r.extend(l4proto(1));
        r.extend(field_is(BASE_TRANSPORT, 0, vec![5]));
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, "output", &r);
        let mut r = in_set(META_OIFNAME, "l3_bridges");
        r.extend(nfproto_ipv6());
        r.extend(icmpv6_type(ND_REDIRECT));
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, "output", &r);

        // prerouting: port maps, from outside by the port they arrive on, from ECOs
        // by the port's address; marked, so that the units know them.
        b.add_chain(
            f,
            TABLE,
            "prerouting",
            Some(&Hook {
                num: HOOK_PREROUTING,
                priority: -100,
                kind: "nat",
            }),
        );
        for (outside, map, mark) in [
            (true, acl::MAP_PM_OUT, acl::MARK_PM_OUT),
            (false, acl::MAP_PM_IN, acl::MARK_PM_IN),
        ] {
            let mut r = nfproto_ipv4();
            let mut reg = 0;
            if outside {
                r.push(Expr::Meta {
                    key: META_IIFNAME,
                    dreg: REG_1,
                });
                reg = 4;
            } else {
                // From ECOs of local networks only: a cloud or mesh network reaches
                // nothing of the device's local networks.
                r.extend(in_set(META_IIFNAME, "local_bridges"));
            }
            r.push(Expr::Payload {
                base: BASE_NETWORK,
                offset: 16,
                len: 4,
                dreg: reg32(reg),
            });
            r.push(Expr::Meta {
                key: META_L4PROTO,
                dreg: reg32(reg + 1),
            });
            r.push(Expr::Payload {
                base: BASE_TRANSPORT,
                offset: 2,
                len: 2,
                dreg: reg32(reg + 2),
            });
            r.push(Expr::MapLookup {
                set: map.into(),
                sreg: REG_1,
                dreg: REG_1,
            });
            r.push(Expr::Immediate {
                dreg: REG_3,
                data: mark.to_ne_bytes().to_vec(),
            });
            r.push(Expr::CtSet {
                key: CT_MARK,
                sreg: REG_3,
            });
            r.push(Expr::Dnat {
                reg_addr: REG_1,
                reg_proto: reg32(1),
            });
            b.add_rule(f, TABLE, "prerouting", &r);
        }

        // postrouting: port-mapped connections from ECOs leave from the gateway.
        let mut r = ct_mark_is(acl::MARK_PM_IN);
        r.push(Expr::Masq);
        b.add_rule(f, TABLE, "postrouting", &r);
        // Masquerade a local network out of its port.
        for n in &self.nets {
            if let (Some(p), Some(s)) = (&n.nat_port, &n.subnet) {
                let mut r = ip_saddr_in(s, true);
                r.extend(is(META_OIFNAME, p));
                r.push(Expr::Masq);
                b.add_rule(f, TABLE, "postrouting", &r);
            }
            // And its IPv6 out of its NAT66 port (NAT66).
            if let (Some(p), Some(s)) = (&n.nat6_port, &n.subnet6) {
                let mut r = nfproto_ipv6();
                r.extend(ip6_in(BASE_NETWORK, 8, s, true));
                r.extend(is(META_OIFNAME, p));
                r.push(Expr::Masq);
                b.add_rule(f, TABLE, "postrouting", &r);
            }
        }
    }

    fn build_bridge(
        &self,
        b: &mut Batch,
        fp: &[u8],
        (allowed, allowed6): (&[Allowed], &[Allowed6]),
        held: &HeldClaims,
    ) {
        let f = NFPROTO_BRIDGE;
        b.add_table(f, TABLE, fp);
        b.add_set(f, TABLE, "eco_ports", TYPE_IFNAME, 16);
        b.add_set(
            f,
            TABLE,
            SET_ALLOWED4,
            concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR, TYPE_IPADDR]),
            28,
        );
        b.add_set(
            f,
            TABLE,
            SET_ALLOWED_MAC,
            concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR]),
            24,
        );
        b.add_set(
            f,
            TABLE,
            SET_ALLOWED6,
            concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR, TYPE_IP6ADDR]),
            BIND6_KEY_LEN as u32,
        );
        b.add_set(
            f,
            TABLE,
            SET_ALLOWED6_IP,
            TYPE_IP6ADDR,
            CLAIM6_KEY_LEN as u32,
        );
        for map in [acl::MAP_OUT_PORT, acl::MAP_IN_PORT] {
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: map,
                    key_type: TYPE_IFNAME,
                    key_len: 16,
                    data_type: Some(DATA_VERDICT),
                    ..SetDef::default()
                },
            );
        }
        self.build_acl_bridge(b);
        let bridges = self.eco_bridges();
        self.add_v6_sets(b, &bridges, held);
        let eco: Vec<Vec<u8>> = self
            .eco_ports
            .iter()
            .map(|p| ifname(&p.ifname).to_vec())
            .collect();
        b.add_elems(f, TABLE, "eco_ports", &eco);
        let (ips, macs) = allowed_keys(allowed);
        b.add_elems(f, TABLE, SET_ALLOWED4, &ips);
        b.add_elems(f, TABLE, SET_ALLOWED_MAC, &macs);
        let (keys6, ips6) = allowed6_keys(allowed6);
        b.add_elems(f, TABLE, SET_ALLOWED6, &keys6);
        b.add_elems(f, TABLE, SET_ALLOWED6_IP, &ips6);
        b.add_chain(
            f,
            TABLE,
            "guard",
            Some(&Hook {
                num: HOOK_PREROUTING,
                priority: -200,
                kind: "filter",
            }),
        );
        b.add_chain(f, TABLE, "eco_in", None);
        b.add_chain(f, TABLE, "eco_in6", None);
        for br in &bridges {
            b.add_chain(f, TABLE, &nd6_chain(br), None);
        }
        let to_chain: Vec<(Vec<u8>, i32, String)> = self
            .eco_ports
            .iter()
            .map(|p| (ifname(&p.ifname).to_vec(), NFT_JUMP, nd6_chain(&p.bridge)))
            .collect();
        b.add_verdict_elems(f, TABLE, MAP_ND6, &to_chain);
        let mut r = in_set(META_IIFNAME, "eco_ports");
        r.push(Expr::Verdict {
            code: NFT_JUMP,
            chain: Some("eco_in".into()),
        });
        b.add_rule(f, TABLE, "guard", &r);

        let c = "eco_in";
        // No VLAN tags: L3 networks are untagged, and a receiver takes a frame with
        // priority tags (VLAN 0, one or two) as untagged, so a tag would hide the
        // frame's protocol from the rules below. (The kernel has taken the outer tag
        // off by now; `ether type` shows it again.)
        for et in [0x8100u16, 0x88a8] {
            let mut r = ether_type(et);
            r.push(verdict(NF_DROP));
            b.add_rule(f, TABLE, c, &r);
        }
        // No DHCP server replies from ECOs.
        let mut r = ether_type(0x0800);
        r.extend(l4proto(17));
        r.extend(port_is(0, 67));
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, c, &r);
        // IPv6 has rules of its own.
        let mut r = meta_protocol(0x86dd);
        r.push(Expr::Verdict {
            code: NFT_JUMP,
            chain: Some("eco_in6".into()),
        });
        b.add_rule(f, TABLE, c, &r);
        // DHCP from a client without an address yet, from any MAC (nested guests).
        let mut r = ether_type(0x0800);
        r.extend(field_is(BASE_NETWORK, 12, vec![0; 4]));
        r.extend(l4proto(17));
        r.extend(port_is(2, 67));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, c, &r);
        // IPv4 and ARP only from a (port, MAC, address) the ECO holds.
        for (et, off) in [(0x0800u16, 12u32), (0x0806, 14)] {
            let mut r = ether_type(et);
            r.push(Expr::Meta {
                key: META_IIFNAME,
                dreg: REG_1,
            });
            r.push(Expr::Payload {
                base: BASE_LL,
                offset: 6,
                len: 6,
                dreg: REG_2,
            });
            r.push(Expr::Payload {
                base: BASE_NETWORK,
                offset: off,
                len: 4,
                dreg: reg32(6),
            });
            r.push(Expr::Lookup {
                set: SET_ALLOWED4.into(),
                sreg: REG_1,
                invert: false,
            });
            r.push(verdict(NF_ACCEPT));
            b.add_rule(f, TABLE, c, &r);
        }
        // ARP probes (sender 0.0.0.0) claim nothing.
        let mut r = ether_type(0x0806);
        r.extend(field_is(BASE_NETWORK, 14, vec![0; 4]));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, c, &r);
        // Everything else except IPv4 and ARP, from the ECO's own MACs.
        for et in [0x0800u16, 0x0806] {
            let mut r = ether_type(et);
            r.push(verdict(NF_DROP));
            b.add_rule(f, TABLE, c, &r);
        }
        let mut r = own_mac();
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, c, &r);
        b.add_rule(f, TABLE, c, &[verdict(NF_DROP)]);

        self.build_eco_in6(b);
        for br in &bridges {
            build_nd6(b, br, self.net(br));
        }
    }

    /// The bridge family's entry to the units of switch endpoints (keyed by bridge
    /// port), and the chain for what L3 endpoints with ACLs bridge to each other
    /// beside IPv4 (which the inet rules see).
    fn build_acl_bridge(&self, b: &mut Batch) {
        let f = NFPROTO_BRIDGE;
        let ret = || Expr::Verdict {
            code: NFT_RETURN,
            chain: None,
        };
        let c = acl::CHAIN_L3_BRIDGED;
        b.add_chain(f, TABLE, c, None);
        self.l3_bridged_v4(b, c);
        for t in [ND_RS, ND_RA, ND_NS, ND_NA] {
            let mut r = meta_protocol(0x86dd);
            r.extend(icmpv6_type(t));
            r.push(ret());
            b.add_rule(f, TABLE, c, &r);
        }
        b.add_rule(f, TABLE, c, &[verdict(NF_DROP)]);
        // Dual-stack networks: IPv4 as above; IPv6 from an endpoint with ACLs is its
        // unit's (in the inet table, through br_netfilter); to it, see CHAIN_L3_IN6.
        for c in [acl::CHAIN_L3_OUT6, acl::CHAIN_L3_IN6] {
            b.add_chain(f, TABLE, c, None);
            self.l3_bridged_v4(b, c);
            for t in [
                MLD_QUERY,
                MLD_REPORT,
                MLD_DONE,
                ND_RS,
                ND_RA,
                ND_NS,
                ND_NA,
                MLD2_REPORT,
            ] {
                let mut r = meta_protocol(0x86dd);
                r.extend(icmpv6_type(t));
                r.push(ret());
                b.add_rule(f, TABLE, c, &r);
            }
        }
        let c = acl::CHAIN_L3_OUT6;
        if self.br_netfilter {
            let mut r = meta_protocol(0x86dd);
            r.push(ret());
            b.add_rule(f, TABLE, c, &r);
        }
        b.add_rule(f, TABLE, c, &[verdict(NF_DROP)]);
        let c = acl::CHAIN_L3_IN6;
        // The reply side of a flow the inet rules saw (and the units allowed).
        let mut r = meta_protocol(0x86dd);
        r.extend(masked(
            Expr::Meta {
                key: META_MARK,
                dreg: REG_1,
            },
            acl::MARK_FLOW_REPLY.to_ne_bytes().to_vec(),
            CMP_NEQ,
            vec![0; 4],
        ));
        r.push(ret());
        b.add_rule(f, TABLE, c, &r);
        // To an address econet admitted: the inet rules ran its unit (bridged IPv6
        // only through br_netfilter; routed IPv6 always).
        let mut r = meta_protocol(0x86dd);
        if !self.br_netfilter {
            r.extend(masked(
                Expr::Meta {
                    key: META_MARK,
                    dreg: REG_1,
                },
                acl::MARK_FWD6.to_ne_bytes().to_vec(),
                CMP_NEQ,
                vec![0; 4],
            ));
        }
        r.push(Expr::Payload {
            base: BASE_NETWORK,
            offset: 24,
            len: 16,
            dreg: REG_1,
        });
        r.push(Expr::Lookup {
            set: SET_ALLOWED6_IP.into(),
            sreg: REG_1,
            invert: false,
        });
        r.push(ret());
        b.add_rule(f, TABLE, c, &r);
        b.add_rule(f, TABLE, c, &[verdict(NF_DROP)]);
        // Routed IPv6 leaves the bridge by its output hook: to an endpoint with ACLs
        // (a dual-stack one: only those are in SET_V6 bridges' ports here) it is
        // checked as bridged IPv6 is; what the device itself sends is not.
        b.add_chain(
            f,
            TABLE,
            acl::CHAIN_BRIDGE_OUT,
            Some(&Hook {
                num: HOOK_OUTPUT,
                priority: 0,
                kind: "filter",
            }),
        );
        let mut r = meta_protocol(0x86dd);
        r.extend(masked(
            Expr::Meta {
                key: META_MARK,
                dreg: REG_1,
            },
            acl::MARK_FWD6.to_ne_bytes().to_vec(),
            CMP_NEQ,
            vec![0; 4],
        ));
        r.extend(in_set(META_OIFNAME, "eco_ports"));
        r.push(Expr::Meta {
            key: META_OIFNAME,
            dreg: REG_1,
        });
        r.push(Expr::Vmap {
            set: acl::MAP_IN_PORT.into(),
            sreg: REG_1,
        });
        b.add_rule(f, TABLE, acl::CHAIN_BRIDGE_OUT, &r);
        // After br_netfilter's forward hook (priority -1), so conntrack is attached.
        b.add_chain(
            f,
            TABLE,
            acl::CHAIN_BRIDGE_FWD,
            Some(&Hook {
                num: HOOK_FORWARD,
                priority: 0,
                kind: "filter",
            }),
        );
        for (key, map) in [
            (META_IIFNAME, acl::MAP_OUT_PORT),
            (META_OIFNAME, acl::MAP_IN_PORT),
        ] {
            let r = vec![
                Expr::Meta { key, dreg: REG_1 },
                Expr::Vmap {
                    set: map.into(),
                    sreg: REG_1,
                },
            ];
            b.add_rule(f, TABLE, acl::CHAIN_BRIDGE_FWD, &r);
        }
    }

    /// The IPv4 and ARP rules of the chains L3 endpoints with ACLs take for what their
    /// bridge carries (IPv6 follows in each).
    fn l3_bridged_v4(&self, b: &mut Batch, c: &str) {
        let f = NFPROTO_BRIDGE;
        // Broadcast and multicast IPv4 have no address of the ECO to find its unit
        // by: they do not reach an endpoint with ACLs, nor leave one for other ECOs.
        // (DHCP replies come from the device, not through here.)
        for t in [PACKET_BROADCAST, PACKET_MULTICAST] {
            let mut r = meta_protocol(0x0800);
            r.push(Expr::Meta {
                key: META_PKTTYPE,
                dreg: REG_1,
            });
            r.push(Expr::Cmp {
                sreg: REG_1,
                op: CMP_EQ,
                data: vec![t],
            });
            r.push(verdict(NF_DROP));
            b.add_rule(f, TABLE, c, &r);
        }
        // Unicast IPv4 is the inet rules' (see br_netfilter); without br_netfilter
        // they never see it, so it is dropped here.
        let mut r = meta_protocol(0x0800);
        r.push(match self.br_netfilter {
            true => Expr::Verdict {
                code: NFT_RETURN,
                chain: None,
            },
            false => verdict(NF_DROP),
        });
        b.add_rule(f, TABLE, c, &r);
        let mut r = meta_protocol(0x0806);
        r.push(Expr::Verdict {
            code: NFT_RETURN,
            chain: None,
        });
        b.add_rule(f, TABLE, c, &r);
    }

    /// The IPv6 sets: per bridge, its bindings and claimed addresses (both aging out
    /// a day after their last use, bounded, carried over from `held`); the per-port
    /// claim meter; the map from ECO port to its bridge's chain.
    fn add_v6_sets(&self, b: &mut Batch, bridges: &[&str], held: &HeldClaims) {
        let f = NFPROTO_BRIDGE;
        for br in bridges {
            let (bind, claim) = (bind_set(br), claim_set(br));
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: &bind,
                    key_type: concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR, TYPE_IP6ADDR]),
                    key_len: BIND6_KEY_LEN as u32,
                    flags: SET_F_EVAL,
                    size: V6_BINDINGS,
                    timeout_ms: Some(V6_HOLD_MS),
                    ..SetDef::default()
                },
            );
            b.add_set_def(
                f,
                TABLE,
                &SetDef {
                    name: &claim,
                    key_type: TYPE_IP6ADDR,
                    key_len: CLAIM6_KEY_LEN as u32,
                    flags: SET_F_EVAL,
                    size: V6_BINDINGS,
                    timeout_ms: Some(V6_HOLD_MS),
                    ..SetDef::default()
                },
            );
            let net = self.net(br);
            for (name, elems) in &held.sets {
                let at = match name {
                    n if *n == bind => BIND6_KEY_LEN - 16,
                    n if *n == claim => 0,
                    _ => continue,
                };
                // Only what may still be claimed (the subnet or slaac may be gone).
                let keep: Vec<TimedKey> = elems
                    .iter()
                    .filter(|(k, _)| k.get(at..at + 16).is_some_and(|ip| claimable(net, ip)))
                    .take(V6_BINDINGS as usize)
                    .cloned()
                    .collect();
                b.add_elems_timed(f, TABLE, name, &keep);
            }
        }
        b.add_set_def(
            f,
            TABLE,
            &SetDef {
                name: SET_CLAIM_METER,
                key_type: TYPE_IFNAME,
                key_len: 16,
                flags: SET_F_EVAL,
                size: V6_METER_SIZE,
                timeout_ms: Some(V6_HOLD_MS),
                ..SetDef::default()
            },
        );
        b.add_set_def(
            f,
            TABLE,
            &SetDef {
                name: MAP_ND6,
                key_type: TYPE_IFNAME,
                key_len: 16,
                data_type: Some(DATA_VERDICT),
                ..SetDef::default()
            },
        );
    }

    /// IPv6 from an ECO port: checks that need no binding, then its bridge's chain.
    fn build_eco_in6(&self, b: &mut Batch) {
        let c = "eco_in6";
        // Only from the port's own MACs.
        let mut r = own_mac();
        if let Some(Expr::Lookup { invert, .. }) = r.last_mut() {
            *invert = true;
        }
        r.push(verdict(NF_DROP));
        add_rule6(b, c, &r);
        // No router advertisements and no redirects.
        for t in [ND_RA, ND_REDIRECT] {
            let mut r = icmpv6_type(t);
            r.push(verdict(NF_DROP));
            add_rule6(b, c, &r);
        }
        // Neighbour discovery with its ICMPv6 header right after the IPv6 header (no
        // extension headers, no fragments) and at most one 8-byte option, so the
        // link-layer address options the rules check are the only ones there are.
        let mut r = l4proto(58);
        r.push(Expr::Payload {
            base: BASE_TRANSPORT,
            offset: 0,
            len: 1,
            dreg: REG_1,
        });
        r.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_GTE,
            data: vec![ND_RS],
        });
        r.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_LTE,
            data: vec![ND_REDIRECT],
        });
        r.extend(field_cmp(BASE_NETWORK, 6, vec![58], CMP_NEQ));
        r.push(verdict(NF_DROP));
        add_rule6(b, c, &r);
        for (t, opt) in ND_OPTS {
            let mut r = icmpv6_type(t);
            r.extend(ip6_plen(opt, CMP_NEQ));
            r.extend(ip6_plen(opt + 8, CMP_NEQ));
            r.push(verdict(NF_DROP));
            add_rule6(b, c, &r);
        }
        // No DHCPv6 server (or relay) messages.
        for (off, port) in [(0, DHCP6_SERVER_PORT), (2, DHCP6_CLIENT_PORT)] {
            let mut r = l4proto(17);
            r.extend(port_is(off, port));
            r.push(verdict(NF_DROP));
            add_rule6(b, c, &r);
        }
        // :: only for DAD, router solicitations and MLD reports. (Which sources
        // are the port's to use, its bridge's chain says.)
        let mut r = field_is(BASE_NETWORK, 8, vec![0; 16]);
        r.push(Expr::Meta {
            key: META_L4PROTO,
            dreg: REG_1,
        });
        r.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_NEQ,
            data: vec![58],
        });
        r.push(verdict(NF_DROP));
        add_rule6(b, c, &r);
        let mut r = field_is(BASE_NETWORK, 8, vec![0; 16]);
        r.extend(l4proto(58));
        r.push(Expr::Payload {
            base: BASE_TRANSPORT,
            offset: 0,
            len: 1,
            dreg: REG_1,
        });
        for t in [MLD_REPORT, MLD_DONE, ND_RS, ND_NS, MLD2_REPORT] {
            r.push(Expr::Cmp {
                sreg: REG_1,
                op: CMP_NEQ,
                data: vec![t],
            });
        }
        r.push(verdict(NF_DROP));
        add_rule6(b, c, &r);
        // Then the first-come-first-served rules of the port's bridge.
        let r = vec![
            Expr::Meta {
                key: META_IIFNAME,
                dreg: REG_1,
            },
            Expr::Vmap {
                set: MAP_ND6.into(),
                sreg: REG_1,
            },
        ];
        add_rule6(b, c, &r);
        add_rule6(b, c, &[verdict(NF_DROP)]);
    }
}

/// Of a claims set's elements, those to carry into a rebuilt table: keys of the
/// set's layout (an older layout is dropped, not misread) with a second or more
/// left, none longer than the hold time, at most a set's size.
fn claims_to_keep(elems: Vec<TimedKey>, key_len: usize) -> Vec<TimedKey> {
    elems
        .into_iter()
        .filter(|(k, ms)| k.len() == key_len && *ms >= 1000)
        .map(|(k, ms)| (k, ms.min(V6_HOLD_MS)))
        .take(V6_BINDINGS as usize)
        .collect()
}

/// Whether an ECO port on `net`'s bridge may claim the address `ip` (16 bytes): a
/// link-local one, or one of the network's subnet with `slaac`.
fn claimable(net: Option<&FwNet>, ip: &[u8]) -> bool {
    let Ok(octets) = <[u8; 16]>::try_from(ip) else {
        return false;
    };
    let ip = Ipv6Addr::from(octets);
    (ip.segments()[0] & 0xffc0) == 0xfe80
        || net.is_some_and(|n| n.slaac && n.subnet6.is_some_and(|s| s.contains(ip)))
}

/// `meta pkttype` values (`PACKET_*`).
const PACKET_BROADCAST: u8 = 1;
const PACKET_MULTICAST: u8 = 2;

/// ICMPv6 types.
const MLD_QUERY: u8 = 130;
const MLD_REPORT: u8 = 131;
const MLD_DONE: u8 = 132;
const ND_RS: u8 = 133;
const ND_RA: u8 = 134;
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const ND_REDIRECT: u8 = 137;
const MLD2_REPORT: u8 = 143;
/// DHCPv6 ports (RFC 8415 §7.2).
const DHCP6_CLIENT_PORT: u16 = 546;
const DHCP6_SERVER_PORT: u16 = 547;
/// Neighbour discovery messages from ECOs and where their options begin.
const ND_OPTS: [(u8, u16); 3] = [(ND_RS, 8), (ND_NS, 24), (ND_NA, 24)];
/// ND option types: source and target link-layer address.
const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;

/// Where an IPv6 address is in the packet: the source, or an ND target.
#[derive(Clone, Copy)]
enum Addr6 {
    Source,
    Target,
}

impl Addr6 {
    fn at(self) -> (u32, u32) {
        match self {
            Addr6::Source => (BASE_NETWORK, 8),
            Addr6::Target => (BASE_TRANSPORT, 8),
        }
    }
}

/// A bridge's first-come-first-served rules: an ECO port may use a link-local
/// address (and with `slaac` an address of the network's `subnet6`) if no other port
/// (or other MAC of the port) on the bridge has used it within the hold time; its
/// first use, or its DAD probe, claims it. Addresses of `subnet6` econet admitted
/// (`allowed6`) are their port's and MAC's only, claimed or not; without `slaac` no
/// others are. ND messages must name the sender's own bound MAC and, for an
/// advertisement, its own address.
fn build_nd6(b: &mut Batch, bridge: &str, net: Option<&FwNet>) {
    let (c, bind) = (nd6_chain(bridge), bind_set(bridge));
    let subnet6 = net.and_then(|n| n.subnet6);
    let slaac = subnet6.is_some() && net.is_some_and(|n| n.slaac);
    // Sources: link-local, :: (what eco_in6 let through of it), the subnet.
    let mut r = ip6_is_link_local(BASE_NETWORK, 8, false);
    r.extend(field_cmp(BASE_NETWORK, 8, vec![0; 16], CMP_NEQ));
    if let Some(s) = &subnet6 {
        r.extend(ip6_in(BASE_NETWORK, 8, s, false));
    }
    r.push(verdict(NF_DROP));
    add_rule6(b, &c, &r);
    // (Endpoints with ACLs: their IPv6 is their units' in the inet table, see acl.)
    let mut dad = field_is(BASE_NETWORK, 8, vec![0; 16]);
    dad.extend(icmpv6_type(ND_NS));
    // Admitted: the binding is in allowed6.
    let not_admitted = |addr: Addr6| binding(addr, LlFrom::Frame, SET_ALLOWED6, true);
    // A DAD probe claims its target; an address's first use as source claims it.
    for (base, addr) in [(dad, Addr6::Target), (Vec::new(), Addr6::Source)] {
        let (abase, aoff) = addr.at();
        let mut ll = base.clone();
        ll.extend(ip6_is_link_local(abase, aoff, true));
        claim_rules(b, bridge, ll.clone(), addr, false);
        if let (Some(s), true) = (&subnet6, slaac) {
            let mut cond = base.clone();
            cond.extend(ip6_in(abase, aoff, s, true));
            cond.extend(not_admitted(addr));
            claim_rules(b, bridge, cond, addr, true);
        }
        // Not bound now (a full set, a DAD target of nobody's, an address of the
        // subnet neither admitted nor, with slaac, claimed): no.
        let mut r = match addr {
            Addr6::Target => base.clone(),
            Addr6::Source => ll,
        };
        r.extend(binding(addr, LlFrom::Frame, &bind, true));
        if subnet6.is_some() && matches!(addr, Addr6::Target) {
            r.extend(not_admitted(addr));
        }
        r.push(verdict(NF_DROP));
        add_rule6(b, &c, &r);
        if let (Some(s), Addr6::Source) = (&subnet6, addr) {
            let mut r = ip6_in(abase, aoff, s, true);
            if slaac {
                r.extend(binding(addr, LlFrom::Frame, &bind, true));
            }
            r.extend(not_admitted(addr));
            r.push(verdict(NF_DROP));
            add_rule6(b, &c, &r);
        }
    }
    // Link-layer address options: the MAC bound to the address they speak for (the
    // source's for RS and NS, the target's for NA); the other kind not at all.
    for (t, opt) in ND_OPTS {
        let (own, other, addr) = if t == ND_NA {
            (OPT_TLLA, OPT_SLLA, Addr6::Target)
        } else {
            (OPT_SLLA, OPT_TLLA, Addr6::Source)
        };
        let mut with_opt = icmpv6_type(t);
        with_opt.extend(ip6_plen(opt + 8, CMP_EQ));
        let mut r = with_opt.clone();
        r.extend(field_is(BASE_TRANSPORT, u32::from(opt), vec![own]));
        r.extend(binding(addr, LlFrom::Option(opt), &bind, true));
        if subnet6.is_some() {
            r.extend(binding(addr, LlFrom::Option(opt), SET_ALLOWED6, true));
        }
        r.push(verdict(NF_DROP));
        add_rule6(b, &c, &r);
        let mut r = with_opt;
        r.extend(field_is(BASE_TRANSPORT, u32::from(opt), vec![other]));
        r.push(verdict(NF_DROP));
        add_rule6(b, &c, &r);
    }
    // An advertisement only for an address the sender holds: not one admitted for
    // another (a claim made before the admission may still be in the set).
    if slaac {
        let mut r = icmpv6_type(ND_NA);
        r.extend(load_addr(Addr6::Target, REG_1));
        r.push(Expr::Lookup {
            set: SET_ALLOWED6_IP.into(),
            sreg: REG_1,
            invert: false,
        });
        r.extend(not_admitted(Addr6::Target));
        r.push(verdict(NF_DROP));
        add_rule6(b, &c, &r);
    }
    let mut r = icmpv6_type(ND_NA);
    r.extend(binding(Addr6::Target, LlFrom::Frame, &bind, true));
    if subnet6.is_some() {
        r.extend(not_admitted(Addr6::Target));
    }
    r.push(verdict(NF_DROP));
    add_rule6(b, &c, &r);
    add_rule6(b, &c, &[verdict(NF_ACCEPT)]);
}

/// The claim of the address at `addr` when `cond` holds: refused if another port or
/// MAC on the bridge claimed it (or, `admitted`, econet admitted it for another), or
/// if it is new and over the port's claim rate; else claimed (or refreshed).
fn claim_rules(b: &mut Batch, bridge: &str, cond: Vec<Expr>, addr: Addr6, admitted: bool) {
    let (c, bind, claim) = (nd6_chain(bridge), bind_set(bridge), claim_set(bridge));
    let c = c.as_str();
    if admitted {
        let mut r = cond.clone();
        r.extend(load_addr(addr, REG_1));
        r.push(Expr::Lookup {
            set: SET_ALLOWED6_IP.into(),
            sreg: REG_1,
            invert: false,
        });
        r.push(verdict(NF_DROP));
        add_rule6(b, c, &r);
    }
    // Claimed by another port or MAC on this bridge.
    let mut r = cond.clone();
    r.extend(binding(addr, LlFrom::Frame, &bind, true));
    r.extend(load_addr(addr, REG_1));
    r.push(Expr::Lookup {
        set: claim.clone(),
        sreg: REG_1,
        invert: false,
    });
    r.push(verdict(NF_DROP));
    add_rule6(b, c, &r);
    // A new claim: within the port's rate.
    let mut r = cond.clone();
    r.extend(binding(addr, LlFrom::Frame, &bind, true));
    r.push(Expr::Meta {
        key: META_IIFNAME,
        dreg: REG_1,
    });
    r.push(Expr::Dynset {
        set: SET_CLAIM_METER.into(),
        op: DYNSET_OP_UPDATE,
        sreg: REG_1,
        timeout_ms: None,
        expr: Some(Box::new(Expr::Limit {
            rate: V6_CLAIM_RATE.0,
            unit_secs: V6_CLAIM_RATE.1,
            burst: V6_CLAIM_RATE.2,
            over: true,
        })),
    });
    r.push(verdict(NF_DROP));
    add_rule6(b, c, &r);
    // Claim it, or refresh the claim.
    let mut r = cond;
    r.extend(load_addr(addr, REG_1));
    r.push(Expr::Dynset {
        set: claim,
        op: DYNSET_OP_UPDATE,
        sreg: REG_1,
        timeout_ms: None,
        expr: None,
    });
    r.extend(binding_key(addr, LlFrom::Frame));
    r.push(Expr::Dynset {
        set: bind,
        op: DYNSET_OP_UPDATE,
        sreg: REG_1,
        timeout_ms: None,
        expr: None,
    });
    add_rule6(b, c, &r);
}

/// A rule of the IPv6 chains, which only IPv6 frames reach. Rules that look into the
/// IPv6 header say so again (`meta protocol ip6`): that is the dependency `nft` needs to
/// show `ip6 saddr` and friends by name.
fn add_rule6(b: &mut Batch, chain: &str, exprs: &[Expr]) {
    let mut r = Vec::with_capacity(exprs.len() + 2);
    let reads_ip6 = exprs.iter().any(|e| {
        matches!(
            e,
            Expr::Payload {
                base: BASE_NETWORK,
                ..
            }
        )
    });
    if reads_ip6 {
        r.extend(meta_protocol(0x86dd));
    }
    r.extend_from_slice(exprs);
    b.add_rule(NFPROTO_BRIDGE, TABLE, chain, &r);
}

/// Where the MAC of a binding comes from: the frame's source, or an ND option.
#[derive(Clone, Copy)]
enum LlFrom {
    Frame,
    /// The link-layer address option at this offset in the ICMPv6 message.
    Option(u16),
}

/// `iifname . MAC . ADDR` into registers 1.. (the key of `bind6_*`).
fn binding_key(addr: Addr6, ll: LlFrom) -> Vec<Expr> {
    let mac = match ll {
        LlFrom::Frame => Expr::Payload {
            base: BASE_LL,
            offset: 6,
            len: 6,
            dreg: REG_2,
        },
        LlFrom::Option(o) => Expr::Payload {
            base: BASE_TRANSPORT,
            offset: u32::from(o) + 2,
            len: 6,
            dreg: REG_2,
        },
    };
    let mut v = vec![
        Expr::Meta {
            key: META_IIFNAME,
            dreg: REG_1,
        },
        mac,
    ];
    v.extend(load_addr(addr, reg32(6)));
    v
}

/// `iifname . MAC . ADDR [!=] @set`
fn binding(addr: Addr6, ll: LlFrom, set: &str, invert: bool) -> Vec<Expr> {
    let mut v = binding_key(addr, ll);
    v.push(Expr::Lookup {
        set: set.into(),
        sreg: REG_1,
        invert,
    });
    v
}

fn load_addr(addr: Addr6, dreg: u32) -> Vec<Expr> {
    let (base, offset) = addr.at();
    vec![Expr::Payload {
        base,
        offset,
        len: 16,
        dreg,
    }]
}

/// `iifname . ether saddr @allowed_mac`: one of the port's own MACs.
fn own_mac() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_IIFNAME,
            dreg: REG_1,
        },
        Expr::Payload {
            base: BASE_LL,
            offset: 6,
            len: 6,
            dreg: REG_2,
        },
        Expr::Lookup {
            set: SET_ALLOWED_MAC.into(),
            sreg: REG_1,
            invert: false,
        },
    ]
}

/// The set keys of `allowed`: (allowed4 keys, allowed_mac keys), deduplicated.
pub fn allowed_keys(allowed: &[Allowed]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut ips: Vec<Vec<u8>> = allowed.iter().filter_map(Allowed::ip_key).collect();
    let mut macs: Vec<Vec<u8>> = allowed.iter().map(Allowed::mac_key).collect();
    ips.sort();
    ips.dedup();
    macs.sort();
    macs.dedup();
    (ips, macs)
}

/// `meta nfproto ipv4`
pub(crate) fn nfproto_ipv4() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_NFPROTO,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: vec![NFPROTO_IPV4],
        },
    ]
}

/// `meta nfproto ipv6`
pub(crate) fn nfproto_ipv6() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_NFPROTO,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: vec![NFPROTO_IPV6],
        },
    ]
}

/// `ct direction reply`
pub(crate) fn ct_reply() -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CT_DIRECTION,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: vec![CT_DIR_REPLY],
        },
    ]
}

/// `ct mark MARK`
fn ct_mark_is(mark: u32) -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CT_MARK,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: mark.to_ne_bytes().to_vec(),
        },
    ]
}

/// `meta mark set meta mark | BIT`
fn set_mark_bit(bit: u32) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_MARK,
            dreg: REG_1,
        },
        Expr::Bitwise {
            reg: REG_1,
            len: 4,
            mask: (!bit).to_ne_bytes().to_vec(),
            xor: bit.to_ne_bytes().to_vec(),
        },
        Expr::MetaSet {
            key: META_MARK,
            sreg: REG_1,
        },
    ]
}

pub(crate) fn verdict(code: i32) -> Expr {
    Expr::Verdict { code, chain: None }
}

pub(crate) fn is(key: u32, name: &str) -> Vec<Expr> {
    vec![
        Expr::Meta { key, dreg: REG_1 },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: ifname(name).to_vec(),
        },
    ]
}

pub(crate) fn in_set(key: u32, set: &str) -> Vec<Expr> {
    vec![
        Expr::Meta { key, dreg: REG_1 },
        Expr::Lookup {
            set: set.into(),
            sreg: REG_1,
            invert: false,
        },
    ]
}

pub(crate) fn l4proto(p: u8) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_L4PROTO,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: vec![p],
        },
    ]
}

/// A transport port at `offset` (0 source, 2 destination) equal to `port`.
pub(crate) fn port_is(offset: u32, port: u16) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: BASE_TRANSPORT,
            offset,
            len: 2,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

pub(crate) fn ct_state(bits: u32, any: bool) -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CT_STATE,
            dreg: REG_1,
        },
        Expr::Bitwise {
            reg: REG_1,
            len: 4,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: REG_1,
            op: if any { CMP_NEQ } else { CMP_EQ },
            data: vec![0; 4],
        },
    ]
}

/// The packet's bytes at `offset` from `base` equal `data`.
pub(crate) fn field_is(base: u32, offset: u32, data: Vec<u8>) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base,
            offset,
            len: data.len() as u32,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data,
        },
    ]
}

/// The packet's bytes at `offset` from `base` compared with `data` by `op`.
pub(crate) fn field_cmp(base: u32, offset: u32, data: Vec<u8>, op: u32) -> Vec<Expr> {
    let mut v = field_is(base, offset, data);
    if let Some(Expr::Cmp { op: o, .. }) = v.last_mut() {
        *o = op;
    }
    v
}

/// `meta protocol T`: the frame's protocol after the kernel took off a VLAN tag.
pub(crate) fn meta_protocol(t: u16) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_PROTOCOL,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: t.to_be_bytes().to_vec(),
        },
    ]
}

/// `icmpv6 type T`
pub(crate) fn icmpv6_type(t: u8) -> Vec<Expr> {
    let mut v = l4proto(58);
    v.extend(field_is(BASE_TRANSPORT, 0, vec![t]));
    v
}

/// `ip6 length OP LEN` (the payload length).
fn ip6_plen(len: u16, op: u32) -> Vec<Expr> {
    field_cmp(BASE_NETWORK, 4, len.to_be_bytes().to_vec(), op)
}

/// The IPv6 address at `offset` from `base` is (or is not) in fe80::/10.
fn ip6_is_link_local(base: u32, offset: u32, is: bool) -> Vec<Expr> {
    ip6_prefix(base, offset, &[0xfe, 0x80], 10, is)
}

/// The IPv6 address at `offset` from `base` is (or is not) in `net`.
pub(crate) fn ip6_in(base: u32, offset: u32, net: &Ipv6Net, is: bool) -> Vec<Expr> {
    ip6_prefix(base, offset, &net.addr().octets(), net.len(), is)
}

/// The IPv6 address at `offset` from `base` is (or is not) in the prefix of `len`
/// bits that begins with `lead` (the rest zero).
fn ip6_prefix(base: u32, offset: u32, lead: &[u8], len: u8, is: bool) -> Vec<Expr> {
    let mut mask = vec![0u8; 16];
    for (i, m) in mask.iter_mut().enumerate() {
        let bits = usize::from(len).saturating_sub(i * 8).min(8);
        *m = (0xff00u16 >> bits) as u8;
    }
    let mut value = vec![0u8; 16];
    for (i, v) in value.iter_mut().enumerate() {
        *v = lead.get(i).copied().unwrap_or(0) & mask[i];
    }
    vec![
        Expr::Payload {
            base,
            offset,
            len: 16,
            dreg: REG_1,
        },
        Expr::Bitwise {
            reg: REG_1,
            len: 16,
            mask,
            xor: vec![0; 16],
        },
        Expr::Cmp {
            sreg: REG_1,
            op: if is { CMP_EQ } else { CMP_NEQ },
            data: value,
        },
    ]
}

pub(crate) fn ether_type(t: u16) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: BASE_LL,
            offset: 12,
            len: 2,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: t.to_be_bytes().to_vec(),
        },
    ]
}

/// `ip saddr PREFIX` (in an inet table, with the IPv4 check nft adds).
pub(crate) fn ip_saddr_in(net: &Ipv4Net, inet: bool) -> Vec<Expr> {
    let mut v = if inet { nfproto_ipv4() } else { Vec::new() };
    v.extend(prefix_at(12, net));
    v
}

/// The IPv4 address at `offset` of the network header is in `net`.
pub(crate) fn prefix_at(offset: u32, net: &Ipv4Net) -> Vec<Expr> {
    let load = Expr::Payload {
        base: BASE_NETWORK,
        offset,
        len: 4,
        dreg: REG_1,
    };
    let addr = net.addr().octets().to_vec();
    if net.len() == 32 {
        return vec![
            load,
            Expr::Cmp {
                sreg: REG_1,
                op: CMP_EQ,
                data: addr,
            },
        ];
    }
    masked(load, net.mask().octets().to_vec(), CMP_EQ, addr)
}

/// `load` (into register 1) `& mask OP value`.
pub(crate) fn masked(load: Expr, mask: Vec<u8>, op: u32, value: Vec<u8>) -> Vec<Expr> {
    vec![
        load,
        Expr::Bitwise {
            reg: REG_1,
            len: mask.len() as u32,
            xor: vec![0; mask.len()],
            mask,
        },
        Expr::Cmp {
            sreg: REG_1,
            op,
            data: value,
        },
    ]
}

fn tcp_syn() -> Vec<Expr> {
    let mut v = l4proto(6);
    v.push(Expr::Payload {
        base: BASE_TRANSPORT,
        offset: 13,
        len: 1,
        dreg: REG_1,
    });
    v.push(Expr::Bitwise {
        reg: REG_1,
        len: 1,
        mask: vec![0x06],
        xor: vec![0],
    });
    v.push(Expr::Cmp {
        sreg: REG_1,
        op: CMP_EQ,
        data: vec![0x02],
    });
    v
}

/// `tcp option maxseg size set rt mtu`
fn clamp_mss() -> Vec<Expr> {
    vec![
        Expr::RtTcpMss { dreg: REG_1 },
        Expr::Byteorder {
            sreg: REG_1,
            dreg: REG_1,
            op: 1,
            len: 2,
            size: 2,
        },
        Expr::TcpOptWrite {
            kind: 2,
            offset: 2,
            len: 2,
            sreg: REG_1,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ports: &[(&str, &str)]) -> FwSpec {
        FwSpec {
            ports: vec![],
            nets: ports
                .iter()
                .map(|(_, br)| FwNet {
                    bridge: br.to_string(),
                    l3: true,
                    subnet: None,
                    nat_port: None,
                    tunnel: None,
                    mark: 0,
                    local: true,
                    subnet6: None,
                    slaac: false,
                    nat6_port: None,
                })
                .collect(),
            eco_ports: ports
                .iter()
                .map(|(p, br)| EcoPort {
                    ifname: p.to_string(),
                    bridge: br.to_string(),
                })
                .collect(),
            br_netfilter: true,
        }
    }

    /// The names (NFTA_*_NAME, attribute 2 or 3) and table-level names in a message.
    fn str_attr(m: &[u8], ty: u16) -> Option<String> {
        crate::netlink::link::raw_attrs(m)
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| {
                String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string()
            })
    }

    #[test]
    fn each_bridge_gets_its_claims_and_chain_and_each_port_its_bridges_chain() {
        let s = spec(&[("va", "ec-lan"), ("vb", "ec-lan"), ("vc", "ec-ot")]);
        let mut b = Batch::new(1);
        s.build(&mut b, (false, false), (&[], &[]), &HeldClaims::default());
        let msgs = b.messages();
        let sets: Vec<String> = msgs
            .iter()
            .filter(|(t, _)| *t == 9) // NFT_MSG_NEWSET
            .filter_map(|(_, m)| str_attr(m, 2))
            .collect();
        for want in [
            "bind6_ec-lan",
            "claim6_ec-lan",
            "bind6_ec-ot",
            "claim6_ec-ot",
            "claims6",
            "nd6_port",
        ] {
            assert!(sets.iter().any(|s| s == want), "{want} in {sets:?}");
        }
        let chains: Vec<String> = msgs
            .iter()
            .filter(|(t, _)| *t == 3) // NFT_MSG_NEWCHAIN
            .filter_map(|(_, m)| str_attr(m, 3))
            .collect();
        assert_eq!(
            chains.iter().filter(|c| c.starts_with("nd6_")).count(),
            2,
            "{chains:?}"
        );
        // Every chain a map element jumps to exists before the element.
        let pos = |name: &str| {
            msgs.iter()
                .position(|(t, m)| *t == 3 && str_attr(m, 3).as_deref() == Some(name))
        };
        let map_at = msgs
            .iter()
            .position(|(t, m)| *t == 12 && str_attr(m, 2).as_deref() == Some("nd6_port"))
            .unwrap();
        assert!(pos("nd6_ec-lan").unwrap() < map_at && pos("nd6_ec-ot").unwrap() < map_at);
    }

    #[test]
    fn held_claims_are_carried_for_the_bridges_still_there() {
        let s = spec(&[("va", "ec-lan")]);
        let ll = "fe80::fe".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        let held = HeldClaims {
            sets: vec![
                ("claim6_ec-lan".into(), vec![(ll.clone(), 5000)]),
                ("claim6_ec-gone".into(), vec![(ll, 5000)]),
            ],
        };
        let mut b = Batch::new(1);
        s.build(&mut b, (true, true), (&[], &[]), &held);
        let filled: Vec<String> = b
            .messages()
            .iter()
            .filter(|(t, _)| *t == 12) // NFT_MSG_NEWSETELEM
            .filter_map(|(_, m)| str_attr(m, 2))
            .collect();
        assert!(filled.iter().any(|s| s == "claim6_ec-lan"), "{filled:?}");
        assert!(!filled.iter().any(|s| s == "claim6_ec-gone"), "{filled:?}");
    }

    #[test]
    fn claims_kept_have_the_layout_time_left_and_count_of_the_sets() {
        let elems = vec![
            (vec![1; 16], 5000),
            (vec![2; 12], 5000),     // another layout
            (vec![3; 16], 999),      // about to go
            (vec![4; 16], u64::MAX), // longer than anything econet sets
        ];
        assert_eq!(
            claims_to_keep(elems, 16),
            vec![(vec![1; 16], 5000), (vec![4; 16], V6_HOLD_MS)]
        );
        let many = vec![(vec![0; 16], 5000); V6_BINDINGS as usize + 10];
        assert_eq!(claims_to_keep(many, 16).len(), V6_BINDINGS as usize);
    }

    #[test]
    fn the_fingerprint_is_a_table_comment_nft_can_read() {
        let fp = FwSpec::default().fingerprint();
        assert_eq!(fp[0], 0, "NFTNL_UDATA_TABLE_COMMENT");
        assert_eq!(usize::from(fp[1]), fp.len() - 2);
        assert_eq!(fp.last(), Some(&0));
        let text = std::str::from_utf8(&fp[2..fp.len() - 1]).unwrap();
        assert!(
            text.starts_with("econet ") && text.len() == 7 + 64,
            "{text}"
        );
    }

    #[test]
    fn moving_a_port_to_another_bridge_changes_the_fingerprint() {
        let a = spec(&[("va", "ec-lan")]);
        let mut b = a.clone();
        b.eco_ports[0].bridge = "ec-ot".into();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    fn dual_stack(nat: Option<&str>, nat6: Option<&str>, slaac: bool) -> FwSpec {
        let mut s = spec(&[("va", "ec-lan")]);
        let n = &mut s.nets[0];
        n.subnet = Some("10.1.0.0/24".parse().unwrap());
        n.subnet6 = Some("fd00:1:2:3::/64".parse().unwrap());
        n.slaac = slaac;
        n.nat_port = nat.map(str::to_string);
        n.nat6_port = nat6.map(str::to_string);
        s.ports = vec!["eth0".into()];
        s
    }

    /// The NEWRULE messages of `chain` (in either table).
    fn rules(s: &FwSpec, chain: &str) -> Vec<Vec<u8>> {
        let mut b = Batch::new(1);
        s.build(&mut b, (false, false), (&[], &[]), &HeldClaims::default());
        b.messages()
            .into_iter()
            .filter(|(t, m)| *t == 6 && str_attr(m, 2).as_deref() == Some(chain))
            .map(|(_, m)| m)
            .collect()
    }

    fn has(m: &[u8], needle: &[u8]) -> bool {
        m.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn ipv6_leaves_by_the_nat66_port_only_and_is_masqueraded_there() {
        let eth0 = "eth0".to_string();
        // Dual stack with IPv6 upstream: both families, one rule as before.
        let both = dual_stack(Some("eth0"), Some("eth0"), false);
        assert_eq!(both.nets[0].nat_ports().collect::<Vec<_>>(), [&eth0]);
        assert_eq!(both.nets[0].families_out_of(&eth0), vec![]);
        // No IPv6 upstream: IPv4 only leaves; IPv6 stays on the network.
        let v4 = dual_stack(Some("eth0"), None, false);
        assert_eq!(v4.nets[0].families_out_of(&eth0), nfproto_ipv4());
        // An IPv4-only network keeps its rule as it was.
        let mut old = spec(&[("va", "ec-lan")]);
        old.nets[0].nat_port = Some(eth0.clone());
        assert_eq!(old.nets[0].families_out_of(&eth0), vec![]);
        // NAT66 in postrouting only with a NAT66 port.
        let masq6 = |s: &FwSpec| {
            rules(s, "postrouting")
                .iter()
                .filter(|m| has(m, &[0xfd, 0, 0, 1, 0, 2, 0, 3]))
                .count()
        };
        assert_eq!(masq6(&both), 1);
        assert_eq!(masq6(&v4), 0);
        // The forward rules differ only by the family match.
        let fwd_v4 = rules(&v4, "forward");
        let fwd_both = rules(&both, "forward");
        assert_eq!(fwd_v4.len(), fwd_both.len());
        assert_ne!(fwd_v4, fwd_both);
    }

    #[test]
    fn only_dual_stack_bridges_take_neighbour_discovery_and_dhcpv6() {
        let s = dual_stack(None, None, false);
        let mut b = Batch::new(1);
        s.build(&mut b, (false, false), (&[], &[]), &HeldClaims::default());
        let v6_bridges: Vec<Vec<u8>> = b
            .messages()
            .into_iter()
            .filter(|(t, m)| *t == 12 && str_attr(m, 2).as_deref() == Some(SET_V6_BRIDGES))
            .map(|(_, m)| m)
            .collect();
        assert_eq!(v6_bridges.len(), 1);
        assert!(has(&v6_bridges[0], b"ec-lan"));
        let input = rules(&s, "input");
        let v6: Vec<&Vec<u8>> = input.iter().filter(|m| has(m, b"v6_bridges")).collect();
        // RS, NS, NA (hop limit 255) and DHCPv6; no echo request, no RA.
        assert_eq!(v6.len(), 4);
        for (m, t) in v6.iter().zip([ND_RS, ND_NS, ND_NA]) {
            assert!(has(m, &[t]) && has(m, &[255]));
        }
        assert!(has(v6[3], &547u16.to_be_bytes()));
        // Without subnet6 nothing changes for the bridge.
        let plain = spec(&[("va", "ec-lan")]);
        assert!(rules(&plain, "input").iter().all(|m| !has(m, b"ec-lan")));
    }

    #[test]
    fn subnet_addresses_are_claimed_only_with_slaac_and_admitted_ones_are_never_claimed() {
        let claims_of_subnet = |s: &FwSpec| {
            rules(s, "nd6_ec-lan")
                .iter()
                .filter(|m| has(m, SET_ALLOWED6_IP.as_bytes()))
                .count()
        };
        // Two claim groups (DAD target, source), each refusing others' admitted, and
        // advertisements of others' admitted addresses.
        assert_eq!(claims_of_subnet(&dual_stack(None, None, true)), 3);
        assert_eq!(claims_of_subnet(&dual_stack(None, None, false)), 0);
        let plain = rules(&spec(&[("va", "ec-lan")]), "nd6_ec-lan");
        assert!(plain.iter().all(|m| !has(m, SET_ALLOWED6.as_bytes())));
        // A bridge without subnet6: its first rule allows link-local and :: only.
        let slaac = rules(&dual_stack(None, None, true), "nd6_ec-lan");
        assert!(has(&slaac[0], &[0xfd, 0, 0, 1, 0, 2, 0, 3]));
        assert!(!has(&plain[0], &[0xfd, 0, 0, 1, 0, 2, 0, 3]));
        // ECOs' DHCPv6 server messages are dropped before any of it.
        let eco_in6 = rules(&dual_stack(None, None, false), "eco_in6");
        assert_eq!(
            eco_in6
                .iter()
                .filter(|m| has(m, &547u16.to_be_bytes()) || has(m, &546u16.to_be_bytes()))
                .count(),
            2
        );
    }

    #[test]
    fn admitted_senders_have_the_binding_layout_and_their_own_address_set() {
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let ip: Ipv6Addr = "fd00:1:2:3::1234".parse().unwrap();
        let a = Allowed6::new("veco0", mac, ip);
        let k = a.key();
        assert_eq!(k.len(), BIND6_KEY_LEN);
        assert_eq!(&k[..5], b"veco0");
        assert_eq!(&k[16..24], &[2, 0, 0, 0, 0, 7, 0, 0]);
        assert_eq!(&k[24..], &ip.octets());
        assert_eq!(a.ip_key(), ip.octets());
        let b = Allowed6::new("veco1", MacAddr([2, 0, 0, 0, 0, 8]), ip);
        let (keys, ips) = allowed6_keys(&[a, b, a]);
        assert_eq!((keys.len(), ips.len()), (2, 1));
        // Built into the table.
        let s = dual_stack(None, None, false);
        let mut batch = Batch::new(1);
        s.build(
            &mut batch,
            (false, false),
            (&[], &[a]),
            &HeldClaims::default(),
        );
        let filled: Vec<(String, Vec<u8>)> = batch
            .messages()
            .into_iter()
            .filter(|(t, _)| *t == 12)
            .filter_map(|(_, m)| Some((str_attr(&m, 2)?, m)))
            .collect();
        assert!(filled.iter().any(|(n, m)| n == SET_ALLOWED6 && has(m, &k)));
        assert!(filled
            .iter()
            .any(|(n, m)| n == SET_ALLOWED6_IP && has(m, &ip.octets())));
    }

    #[test]
    fn held_claims_of_the_subnet_are_carried_only_while_slaac_allows_them() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let sub: Ipv6Addr = "fd00:1:2:3::77".parse().unwrap();
        let off: Ipv6Addr = "fd00:9::1".parse().unwrap();
        let held = HeldClaims {
            sets: vec![(
                "claim6_ec-lan".into(),
                [ll, sub, off]
                    .iter()
                    .map(|a| (a.octets().to_vec(), 5000))
                    .collect(),
            )],
        };
        let carried = |s: &FwSpec| {
            let mut b = Batch::new(1);
            s.build(&mut b, (true, true), (&[], &[]), &held);
            let m: Vec<Vec<u8>> = b
                .messages()
                .into_iter()
                .filter(|(t, m)| *t == 12 && str_attr(m, 2).as_deref() == Some("claim6_ec-lan"))
                .map(|(_, m)| m)
                .collect();
            [ll, sub, off].map(|a| m.iter().any(|m| has(m, &a.octets())))
        };
        assert_eq!(carried(&dual_stack(None, None, true)), [true, true, false]);
        assert_eq!(
            carried(&dual_stack(None, None, false)),
            [true, false, false]
        );
        assert_eq!(carried(&spec(&[("va", "ec-lan")])), [true, false, false]);
    }
}
