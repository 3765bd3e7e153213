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

use crate::addr::{Ipv4Net, MacAddr};
use crate::netlink::nft::*;
use std::net::Ipv4Addr;

pub const TABLE: &str = "econet";
/// Bump when the rules below change, so running devices rebuild their tables.
const RULES_VERSION: u32 = 1;

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
}

/// The structure of the firewall: what the fingerprint covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FwSpec {
    /// Interface names of the config's ports: no forwarding between any two.
    pub ports: Vec<String>,
    pub nets: Vec<FwNet>,
    /// Host-side interfaces of endpoints on L3 networks (anti-spoofing applies).
    pub eco_ports: Vec<String>,
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
    pub fn fingerprint(&self) -> Vec<u8> {
        let text = format!("v{RULES_VERSION} {self:?}");
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// The batch that replaces both tables with this structure and `allowed`.
    pub fn build(&self, b: &mut Batch, replace: (bool, bool), allowed: &[Allowed]) {
        let fp = self.fingerprint();
        if replace.0 {
            b.del_table(NFPROTO_INET, TABLE);
        }
        if replace.1 {
            b.del_table(NFPROTO_BRIDGE, TABLE);
        }
        self.build_inet(b, &fp);
        self.build_bridge(b, &fp, allowed);
    }

    fn build_inet(&self, b: &mut Batch, fp: &[u8]) {
        let f = NFPROTO_INET;
        b.add_table(f, TABLE, fp);
        b.add_set(f, TABLE, "ports", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, "bridges", TYPE_IFNAME, 16);
        b.add_set(f, TABLE, "l3_bridges", TYPE_IFNAME, 16);
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
            "l3_bridges",
            &names(
                self.nets
                    .iter()
                    .filter(|n| n.l3)
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
        for n in self.nets.iter().filter(|n| n.nat_port.is_some()) {
            let mut r = is(META_IIFNAME, &n.bridge);
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
        for n in &self.nets {
            let mut r = is(META_IIFNAME, &n.bridge);
            r.extend(is(META_OIFNAME, &n.bridge));
            r.push(verdict(NF_ACCEPT));
            b.add_rule(f, TABLE, "forward", &r);
            for out in [&n.nat_port, &n.tunnel].into_iter().flatten() {
                let mut r = is(META_IIFNAME, &n.bridge);
                r.extend(is(META_OIFNAME, out));
                r.push(verdict(NF_ACCEPT));
                b.add_rule(f, TABLE, "forward", &r);
            }
            if let Some(p) = &n.nat_port {
                let mut r = is(META_IIFNAME, p);
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
        let mut r = in_set(META_IIFNAME, "l3_bridges");
        r.extend(ct_state(CT_STATE_ESTABLISHED | CT_STATE_RELATED, true));
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, "input", &r);
        let mut r = in_set(META_IIFNAME, "bridges");
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, "input", &r);

        // postrouting: masquerade a local network out of its port.
        for n in &self.nets {
            if let (Some(p), Some(s)) = (&n.nat_port, &n.subnet) {
                let mut r = ip_saddr_in(s, true);
                r.extend(is(META_OIFNAME, p));
                r.push(Expr::Masq);
                b.add_rule(f, TABLE, "postrouting", &r);
            }
        }
    }

    fn build_bridge(&self, b: &mut Batch, fp: &[u8], allowed: &[Allowed]) {
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
        let eco: Vec<Vec<u8>> = self.eco_ports.iter().map(|n| ifname(n).to_vec()).collect();
        b.add_elems(f, TABLE, "eco_ports", &eco);
        let (ips, macs) = allowed_keys(allowed);
        b.add_elems(f, TABLE, SET_ALLOWED4, &ips);
        b.add_elems(f, TABLE, SET_ALLOWED_MAC, &macs);
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
        let mut r = in_set(META_IIFNAME, "eco_ports");
        r.push(Expr::Verdict {
            code: NFT_JUMP,
            chain: Some("eco_in".into()),
        });
        b.add_rule(f, TABLE, "guard", &r);

        let c = "eco_in";
        // No DHCP server replies and no router advertisements from ECOs.
        let mut r = ether_type(0x0800);
        r.extend(l4proto(17));
        r.extend(port_is(0, 67));
        r.push(verdict(NF_DROP));
        b.add_rule(f, TABLE, c, &r);
        let mut r = ether_type(0x86dd);
        r.extend(l4proto(58));
        r.extend(field_is(BASE_TRANSPORT, 0, vec![134]));
        r.push(verdict(NF_DROP));
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
        let mut r = vec![
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
        ];
        r.push(verdict(NF_ACCEPT));
        b.add_rule(f, TABLE, c, &r);
        b.add_rule(f, TABLE, c, &[verdict(NF_DROP)]);
    }
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

fn verdict(code: i32) -> Expr {
    Expr::Verdict { code, chain: None }
}

fn is(key: u32, name: &str) -> Vec<Expr> {
    vec![
        Expr::Meta { key, dreg: REG_1 },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: ifname(name).to_vec(),
        },
    ]
}

fn in_set(key: u32, set: &str) -> Vec<Expr> {
    vec![
        Expr::Meta { key, dreg: REG_1 },
        Expr::Lookup {
            set: set.into(),
            sreg: REG_1,
            invert: false,
        },
    ]
}

fn l4proto(p: u8) -> Vec<Expr> {
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
fn port_is(offset: u32, port: u16) -> Vec<Expr> {
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

fn ct_state(bits: u32, any: bool) -> Vec<Expr> {
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
fn field_is(base: u32, offset: u32, data: Vec<u8>) -> Vec<Expr> {
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

fn ether_type(t: u16) -> Vec<Expr> {
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
fn ip_saddr_in(net: &Ipv4Net, inet: bool) -> Vec<Expr> {
    let mut v = Vec::new();
    if inet {
        v.push(Expr::Meta {
            key: META_NFPROTO,
            dreg: REG_1,
        });
        v.push(Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: vec![NFPROTO_IPV4],
        });
    }
    v.push(Expr::Payload {
        base: BASE_NETWORK,
        offset: 12,
        len: 4,
        dreg: REG_1,
    });
    v.push(Expr::Bitwise {
        reg: REG_1,
        len: 4,
        mask: net.mask().octets().to_vec(),
        xor: vec![0; 4],
    });
    v.push(Expr::Cmp {
        sreg: REG_1,
        op: CMP_EQ,
        data: net.addr().octets().to_vec(),
    });
    v
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
