//! What the kernel should hold for a config: the objects econet owns, each with the
//! alias that marks it as econet's, and the ports it enslaves.

use super::facts::Facts;
use crate::addr::MacAddr;
use crate::config::{Attach, Config, NetKind};
use crate::firewall::{mark_for, Allowed, Allowed6, EcoPort, FwNet, FwSpec};
use std::net::{IpAddr, Ipv4Addr};

/// Prefix of every alias econet puts on the links it owns.
pub const ALIAS_PREFIX: &str = "econet:";

pub fn bridge_alias(net_id: &str) -> String {
    format!("{ALIAS_PREFIX}net:{net_id}")
}

pub fn endpoint_alias(net_id: &str, app_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}ep:{net_id}:{app_id}:{ifname}")
}

pub fn is_bridge_alias(a: &str) -> bool {
    a.starts_with("econet:net:")
}

pub fn tunnel_alias(net_id: &str) -> String {
    format!("{ALIAS_PREFIX}tun:{net_id}")
}

/// A network's tunnel device (TUN): its bridge's name with `et-` for `ec-`.
pub fn tunnel_name(bridge: &str) -> String {
    format!("et-{}", bridge.strip_prefix("ec-").unwrap_or(bridge))
}

/// Bytes an ESP-in-UDP tunnel adds to a packet: outer IPv4 (20) + UDP (8) + ESP
/// header (8) + IV (8) + padding and trailer (at most 5) + ICV (16) = 65, rounded up
/// so inner packets stay 16-byte friendly.
pub const VPN_OVERHEAD: u32 = 80;

/// The default MTU of a network without an explicit one.
pub const DEFAULT_MTU: u32 = 1500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    pub net: usize,
    pub name: String,
    pub alias: String,
    pub mac: MacAddr,
    pub mtu: u32,
}

/// A device port enslaved to a switch network's bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMember {
    pub net: usize,
    pub port: String,
    pub ifname: String,
    pub bridge: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// A veth whose far end lives in `netns`, named `peer_name`, with the ECO's MAC.
    Veth {
        netns: String,
        peer_name: String,
        peer_mac: MacAddr,
    },
    /// A persistent tap for a hypervisor.
    Tap,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub net: usize,
    pub app_id: String,
    pub ifname: String,
    /// The host-side link: the veth's host end or the tap.
    pub host_name: String,
    pub alias: String,
    pub host_mac: MacAddr,
    pub mtu: u32,
    pub bridge: String,
    pub kind: EndpointKind,
}

/// The gateway address of an L3 network, on its bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeAddr {
    pub net: usize,
    pub bridge: String,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A kernel setting under /proc/sys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl {
    pub net: Option<usize>,
    pub path: String,
    pub value: String,
    /// The link whose directory holds it (it exists only while the link does).
    pub link: Option<String>,
}

/// The TUN device a cloud or mesh network's traffic leaves and enters through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub net: usize,
    pub name: String,
    pub alias: String,
    pub mtu: u32,
}

/// A route econet owns (marked with its routing protocol number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRoute {
    pub net: usize,
    pub dst: crate::addr::Ipv4Net,
    pub dev: String,
}

/// Everything econet wants in the kernel, in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub bridges: Vec<Bridge>,
    pub ports: Vec<PortMember>,
    pub endpoints: Vec<Endpoint>,
    pub addrs: Vec<BridgeAddr>,
    pub sysctls: Vec<Sysctl>,
    pub firewall: FwSpec,
    /// Who may send from ECO endpoints: (port, MAC, address) tuples.
    pub allowed: Vec<Allowed>,
    /// Who may send IPv6 from addresses of a network's `subnet6` whatever the
    /// claims: static `ip6` and DHCPv6 leases.
    pub allowed6: Vec<Allowed6>,
    pub tunnels: Vec<Tunnel>,
    pub routes: Vec<OwnedRoute>,
    /// The endpoints' ACLs and port maps.
    pub acl: crate::acl::AclSpec,
}

/// The MTU econet gives a network's bridge and endpoints: the configured one; else
/// 1500 on switch and local networks, and on cloud and mesh networks the port's MTU
/// less the encapsulation, so ECO packets never fragment on the underlay.
pub fn network_mtu(cfg: &Config, facts: &Facts, net: usize) -> u32 {
    let n = &cfg.networks[net];
    if let Some(m) = n.mtu {
        return u32::from(m);
    }
    let overhead = match n.kind {
        NetKind::Switch | NetKind::Local => return DEFAULT_MTU,
        NetKind::Cloud => VPN_OVERHEAD,
        NetKind::Mesh => {
            if n.mesh.as_ref().is_some_and(|m| m.encrypt) {
                crate::lisp::OVERHEAD_ENCRYPTED as u32
            } else {
                crate::lisp::OVERHEAD_CLEAR as u32
            }
        }
    };
    let port = facts.active_port(cfg, net).or(n.ports.first().copied());
    let base = port
        .and_then(|p| facts.ports.get(p))
        .map(|f| f.mtu)
        .filter(|&m| m >= 576)
        .unwrap_or(DEFAULT_MTU);
    base.saturating_sub(overhead).max(576)
}

/// Builds the desired state of `cfg` given the ports' state now and the addresses
/// DHCP has handed out (`leased`) and DHCPv6 (`leased6`).
pub fn desired(cfg: &Config, facts: &Facts, leased: &[Allowed], leased6: &[Allowed6]) -> Desired {
    let mut d = Desired::default();
    d.firewall.ports = cfg.ports.iter().map(|p| p.ifname.clone()).collect();
    // Only endpoints with ACLs on L3 networks depend on it (so the first such ACL
    // does not rebuild the firewall where br_netfilter is there).
    let l3_acls = cfg
        .endpoints()
        .any(|(_, i)| i.acls.is_some() && cfg.networks[i.network].kind.is_l3());
    d.firewall.br_netfilter = facts.br_netfilter || !l3_acls;
    let mut any_l3 = false;
    let mut any_v6 = false;
    for (i, n) in cfg.networks.iter().enumerate() {
        d.bridges.push(Bridge {
            net: i,
            name: n.bridge.clone(),
            alias: bridge_alias(&n.id),
            mac: bridge_mac(n),
            mtu: network_mtu(cfg, facts, i),
        });
        if n.kind == NetKind::Switch {
            if let Some(&p) = n.ports.first() {
                d.ports.push(PortMember {
                    net: i,
                    port: cfg.ports[p].name.clone(),
                    ifname: cfg.ports[p].ifname.clone(),
                    bridge: n.bridge.clone(),
                });
            }
        }
        let mut fw = FwNet {
            bridge: n.bridge.clone(),
            l3: n.kind.is_l3(),
            subnet: None,
            nat_port: None,
            tunnel: None,
            mark: 0,
            local: n.kind == NetKind::Local,
            subnet6: None,
            slaac: false,
            nat6_port: None,
        };
        if let Some(l3) = &n.ip {
            any_l3 = true;
            fw.subnet = Some(l3.subnet);
            if facts.overlap(cfg, i).is_none() {
                d.addrs.push(BridgeAddr {
                    net: i,
                    bridge: n.bridge.clone(),
                    ip: l3.gateway.into(),
                    // A mesh bridge holds only its own ECOs of the shared subnet: the
                    // gateway is a host address, each local ECO gets a host route and
                    // the rest of the subnet routes into the tunnel.
                    prefix: if n.kind == NetKind::Mesh {
                        32
                    } else {
                        l3.subnet.len()
                    },
                });
            }
            if let Some(v6) = &l3.v6 {
                any_v6 = true;
                d.addrs.push(BridgeAddr {
                    net: i,
                    bridge: n.bridge.clone(),
                    ip: v6.gateway6.into(),
                    prefix: v6.subnet6.len(),
                });
                // Its link-local address, the router's address on the link (the
                // bridge generates none itself, see plan::first_up), from its MAC as
                // the kernel would make it.
                d.addrs.push(BridgeAddr {
                    net: i,
                    bridge: n.bridge.clone(),
                    ip: crate::wire::ipv6::link_local_from_mac(bridge_mac(n)).into(),
                    prefix: 64,
                });
                d.sysctls.push(Sysctl {
                    net: Some(i),
                    path: format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", n.bridge),
                    value: "0".into(),
                    link: Some(n.bridge.clone()),
                });
                // The bridge is the network's router: it takes no advertisements.
                d.sysctls.push(Sysctl {
                    net: Some(i),
                    path: format!("/proc/sys/net/ipv6/conf/{}/accept_ra", n.bridge),
                    value: "0".into(),
                    link: Some(n.bridge.clone()),
                });
            }
            if n.kind == NetKind::Local {
                let active = facts.active_port(cfg, i);
                fw.nat_port = active.map(|p| cfg.ports[p].ifname.clone());
                fw.mark = mark_for(&n.id);
                if let Some(v6) = &l3.v6 {
                    fw.subnet6 = Some(v6.subnet6);
                    fw.slaac = v6.slaac;
                    fw.nat6_port = active
                        .filter(|&p| facts.has_global6(p))
                        .map(|p| cfg.ports[p].ifname.clone());
                }
            }
            // Reverse-path filtering: an ECO cannot route packets from addresses that
            // do not belong behind its bridge.
            d.sysctls.push(Sysctl {
                net: Some(i),
                path: format!("/proc/sys/net/ipv4/conf/{}/rp_filter", n.bridge),
                value: "1".into(),
                link: Some(n.bridge.clone()),
            });
            if matches!(n.kind, NetKind::Cloud | NetKind::Mesh) {
                let tun = tunnel_name(&n.bridge);
                fw.tunnel = Some(tun.clone());
                d.tunnels.push(Tunnel {
                    net: i,
                    name: tun.clone(),
                    alias: tunnel_alias(&n.id),
                    mtu: network_mtu(cfg, facts, i),
                });
                // Only what comes out of the tunnel may enter a cloud network from
                // outside it: the VPN's remote subnets route into the tunnel.
                for rs in n.vpn.iter().flat_map(|v| v.remote_subnets.iter()) {
                    d.routes.push(OwnedRoute {
                        net: i,
                        dst: *rs,
                        dev: tun.clone(),
                    });
                }
            }
            if n.kind == NetKind::Mesh {
                d.routes.push(OwnedRoute {
                    net: i,
                    dst: l3.subnet,
                    dev: tunnel_name(&n.bridge),
                });
                for ip in local_eids(cfg, i, leased) {
                    d.routes.push(OwnedRoute {
                        net: i,
                        dst: crate::addr::Ipv4Net::containing(ip, 32),
                        dev: n.bridge.clone(),
                    });
                }
                // The device answers ARP for remote EIDs (their route is the tunnel),
                // at once rather than after the default proxy delay.
                for (path, value) in [
                    (
                        format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", n.bridge),
                        "1",
                    ),
                    (
                        format!("/proc/sys/net/ipv4/neigh/{}/proxy_delay", n.bridge),
                        "0",
                    ),
                ] {
                    d.sysctls.push(Sysctl {
                        net: Some(i),
                        path,
                        value: value.into(),
                        link: Some(n.bridge.clone()),
                    });
                }
            }
        }
        d.firewall.nets.push(fw);
    }
    if any_v6 {
        d.sysctls.insert(
            0,
            Sysctl {
                net: None,
                path: "/proc/sys/net/ipv6/conf/all/forwarding".into(),
                value: "1".into(),
                link: None,
            },
        );
        // IPv6 forwarding makes every interface a router, and a router drops the
        // default routes advertisements gave it unless accept_ra is 2: a port that
        // took them as a host (1) keeps doing so, set before forwarding is. Other
        // values are the port manager's and stay.
        for (pi, port) in cfg.ports.iter().enumerate().rev() {
            let now = facts.ports.get(pi).and_then(|f| f.accept_ra.as_deref());
            d.sysctls.insert(
                0,
                Sysctl {
                    net: None,
                    path: super::facts::accept_ra_path(&port.ifname),
                    value: match now {
                        Some("1") | None => "2".into(),
                        Some(v) => v.into(),
                    },
                    link: Some(port.ifname.clone()),
                },
            );
        }
    }
    if any_l3 {
        d.sysctls.insert(
            0,
            Sysctl {
                net: None,
                path: "/proc/sys/net/ipv4/ip_forward".into(),
                value: "1".into(),
                link: None,
            },
        );
    }
    for (app, itf) in cfg.endpoints() {
        let n = &cfg.networks[itf.network];
        let kind = match &itf.attach {
            Attach::Netns(ns) => EndpointKind::Veth {
                netns: ns.clone(),
                peer_name: itf.name.clone(),
                peer_mac: itf.eco_mac(&app.id),
            },
            Attach::Tap(_) => EndpointKind::Tap,
        };
        d.endpoints.push(Endpoint {
            net: itf.network,
            app_id: app.id.clone(),
            ifname: itf.name.clone(),
            host_name: itf.host_ifname.clone(),
            alias: endpoint_alias(&n.id, &app.id, &itf.name),
            host_mac: MacAddr::derive(&[b"host", app.id.as_bytes(), itf.name.as_bytes()]),
            mtu: network_mtu(cfg, facts, itf.network),
            bridge: n.bridge.clone(),
            kind,
        });
        if n.kind.is_l3() {
            d.firewall.eco_ports.push(EcoPort {
                ifname: itf.host_ifname.clone(),
                bridge: n.bridge.clone(),
            });
            d.allowed
                .push(Allowed::new(&itf.host_ifname, itf.eco_mac(&app.id), itf.ip));
            let v6 = n.ip.as_ref().and_then(|l3| l3.v6.as_ref());
            if let (Some(v6), Some(ip6)) = (v6, itf.ip6) {
                if v6.subnet6.contains(ip6) {
                    d.allowed6
                        .push(Allowed6::new(&itf.host_ifname, itf.eco_mac(&app.id), ip6));
                }
            }
        }
    }
    d.allowed.extend_from_slice(leased);
    d.allowed6.extend_from_slice(leased6);
    d.acl = crate::acl::desired(cfg, facts, &d.allowed, &d.allowed6);
    // ACLs see what a bridge carries between ECOs through br_netfilter.
    let mut acl_nets: Vec<usize> = cfg
        .endpoints()
        .filter(|(_, i)| i.acls.is_some())
        .map(|(_, i)| i.network)
        .collect();
    acl_nets.sort();
    acl_nets.dedup();
    for net in acl_nets {
        d.sysctls.push(Sysctl {
            net: Some(net),
            path: crate::acl::BR_NF_CALL_IPTABLES.into(),
            value: "1".into(),
            link: None,
        });
        // And bridged IPv6 on a dual-stack network (the kernel's default).
        let dual = cfg.networks[net]
            .ip
            .as_ref()
            .is_some_and(|l3| l3.v6.is_some());
        if dual && cfg.networks[net].kind.is_l3() {
            d.sysctls.push(Sysctl {
                net: Some(net),
                path: crate::acl::BR_NF_CALL_IP6TABLES.into(),
                value: "1".into(),
                link: None,
            });
        }
    }
    d
}

/// The addresses of a mesh network's ECOs on this device: static ones from the config
/// and those DHCP holds for the network's endpoints.
pub fn local_eids(cfg: &Config, net: usize, leased: &[Allowed]) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = Vec::new();
    for (_, itf) in cfg.endpoints().filter(|(_, i)| i.network == net) {
        if let Some(ip) = itf.ip {
            v.push(ip);
        }
        let name = crate::netlink::nft::ifname(&itf.host_ifname);
        v.extend(
            leased
                .iter()
                .filter(|a| a.ifname == name)
                .filter_map(|a| a.ip),
        );
    }
    v.sort();
    v.dedup();
    v
}

/// A network's bridge MAC, derived from its id: the same across restarts, so the
/// bridge's IPv6 link-local address and the DHCPv6 server's DUID are too.
pub fn bridge_mac(n: &crate::config::Network) -> MacAddr {
    MacAddr::derive(&[b"bridge", n.id.as_bytes()])
}
