//! Run-time facts the desired state depends on, read from the kernel each pass:
//! which ports are up (carrier and an IPv4 address) and which port subnets would
//! collide with a network's subnet.

use super::current::Current;
use crate::addr::Ipv4Net;
use crate::config::{Config, NetKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFact {
    pub present: bool,
    pub carrier: bool,
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses, link-local ones included.
    pub addrs6: Vec<(Ipv6Addr, u8)>,
    pub mtu: u32,
    /// Its `accept_ra` sysctl, when econet reads it (IPv6 networks need forwarding,
    /// which makes a port that takes router advertisements as a host ignore them).
    pub accept_ra: Option<String>,
}

impl PortFact {
    /// The spec's "up": carrier and an IPv4 address.
    pub fn up(&self) -> bool {
        self.present && self.carrier && !self.addrs.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per config port, in config order.
    pub ports: Vec<PortFact>,
    /// br_netfilter is there: bridged IPv4 passes the inet hooks (where ACLs need
    /// it, econet switches it on in the same pass).
    pub br_netfilter: bool,
}

impl Facts {
    pub fn read(cfg: &Config, cur: &Current) -> Facts {
        let ports = cfg
            .ports
            .iter()
            .map(|p| match cur.links.iter().find(|l| l.name == p.ifname) {
                None => PortFact::default(),
                Some(l) => PortFact {
                    present: true,
                    carrier: l.lower_up,
                    addrs: cur
                        .addrs
                        .iter()
                        .filter(|a| a.index == l.index)
                        .filter_map(|a| match a.ip {
                            IpAddr::V4(ip) => Some((ip, a.prefix_len)),
                            IpAddr::V6(_) => None,
                        })
                        .collect(),
                    addrs6: cur
                        .addrs
                        .iter()
                        .filter(|a| a.index == l.index)
                        .filter_map(|a| match a.ip {
                            IpAddr::V6(ip) => Some((ip, a.prefix_len)),
                            IpAddr::V4(_) => None,
                        })
                        .collect(),
                    mtu: l.mtu,
                    accept_ra: cur
                        .sysctls
                        .get(&accept_ra_path(&p.ifname))
                        .cloned()
                        .flatten(),
                },
            })
            .collect();
        let br_netfilter = matches!(
            cur.sysctls.get(crate::acl::BR_NF_CALL_IPTABLES),
            Some(Some(_))
        );
        Facts {
            ports,
            br_netfilter,
        }
    }

    /// Whether the port has a global unicast IPv6 address (2000::/3): IPv6 of a
    /// local network leaves by it, masqueraded.
    pub fn has_global6(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(|p| {
            p.addrs6
                .iter()
                .any(|(a, _)| a.segments()[0] & 0xe000 == 0x2000)
        })
    }

    /// The port a network uses now: the lowest-cost one of its ports that is up.
    pub fn active_port(&self, cfg: &Config, net: usize) -> Option<usize> {
        cfg.networks[net]
            .ports
            .iter()
            .copied()
            .find(|&p| self.ports.get(p).is_some_and(PortFact::up))
    }

    /// Why a network cannot have its gateway: its subnet overlaps a port's subnet
    /// (the device would lose its route to the controller).
    pub fn overlap(&self, cfg: &Config, net: usize) -> Option<String> {
        let n = &cfg.networks[net];
        let subnet = n.ip.as_ref()?.subnet;
        if n.kind == NetKind::Switch {
            return None;
        }
        for (i, pf) in self.ports.iter().enumerate() {
            for &(ip, len) in &pf.addrs {
                let psub = Ipv4Net::containing(ip, len);
                if psub.overlaps(&subnet) {
                    return Some(format!(
                        "subnet {subnet} overlaps port {} ({ip}/{len}); the gateway is withdrawn so the device keeps its own route",
                        cfg.ports[i].name
                    ));
                }
            }
        }
        None
    }
}

/// A port's `accept_ra` sysctl.
pub fn accept_ra_path(ifname: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{ifname}/accept_ra")
}
