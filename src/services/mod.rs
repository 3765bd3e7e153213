//! The shells around the sans-I/O protocol cores (DHCP, DNS, the IKEv2/ESP VPN and
//! the LISP xTR): their sockets, TUN devices, timers and persistence, driven by the
//! event loop; and what each should serve, derived from the config and the facts.

pub mod dhcp;
pub mod dns;
pub mod gro;
pub mod mesh;
pub mod offload;
pub mod sock;
pub mod tun;
pub mod udp_batch;
pub mod vpn;

use crate::config::{Config, NetKind};
use crate::reconcile::facts::Facts;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// A DNS label from an app or client name: lowercase letters, digits and hyphens.
pub fn host_label(name: &str) -> Option<String> {
    let mut s: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while s.ends_with('-') {
        s.pop();
    }
    let s = s.trim_start_matches('-').to_string();
    (!s.is_empty()).then_some(s)
}

/// What the DNS shell should serve for `cfg` now: every L3 network whose gateway
/// address is in place.
pub fn dns_specs(cfg: &Config, facts: &Facts, system: &[SocketAddr]) -> Vec<dns::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        let Some(l3) = &n.ip else { continue };
        if facts.overlap(cfg, i).is_some() {
            continue;
        }
        let upstreams = match (&l3.dns, n.kind) {
            (Some(list), _) => list
                .iter()
                .map(|a| SocketAddr::V4(SocketAddrV4::new(*a, 53)))
                .collect(),
            // An air-gapped network gets no default upstream: its names stay local,
            // and nothing leaves the device through its DNS either.
            (None, NetKind::Local) if n.ports.is_empty() => Vec::new(),
            (None, NetKind::Local) => system
                .iter()
                .copied()
                // A resolver inside the network itself would loop back to us.
                .filter(|a| !matches!(a, SocketAddr::V4(v4) if l3.subnet.contains(*v4.ip())))
                .collect(),
            (None, _) => Vec::new(),
        };
        v.push(dns::NetSpec {
            net_id: n.id.clone(),
            bridge: n.bridge.clone(),
            gateway: l3.gateway,
            forward_from_gateway: matches!(n.kind, NetKind::Cloud | NetKind::Mesh),
            params: crate::dns::NetParams {
                domain: l3.domain.clone(),
                upstreams,
                static_dns: n.static_dns.clone(),
                subnet: Some(l3.subnet),
            },
        });
    }
    v
}

/// What the DHCP shell should serve for `cfg` now: every L3 network whose gateway
/// address is in place.
pub fn dhcp_specs(cfg: &Config, facts: &Facts) -> Vec<dhcp::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        let Some(l3) = &n.ip else { continue };
        if facts.overlap(cfg, i).is_some() {
            continue;
        }
        let mut c = crate::dhcp::Config::new(l3.subnet, l3.gateway);
        // Air-gapped: no default route for the ECOs.
        c.router = (!n.ports.is_empty()).then_some(l3.gateway);
        c.range_start = l3.range_start;
        c.range_end = l3.range_end;
        c.domain = l3.domain.clone();
        c.ntp = l3.ntp.into_iter().collect();
        c.mtu = Some(crate::reconcile::desired::network_mtu(cfg, facts, i) as u16);
        c.lease_secs = l3.lease_secs;
        c.max_leases_per_endpoint = l3.max_leases_per_endpoint;
        let mut endpoints = Vec::new();
        for (app, itf) in cfg.endpoints().filter(|(_, itf)| itf.network == i) {
            let key = crate::dhcp::EndpointKey {
                app_id: app.id.clone(),
                ifname: itf.name.clone(),
            };
            c.endpoints.push(crate::dhcp::Endpoint {
                key: key.clone(),
                mac: itf.eco_mac(&app.id),
                static_ip: itf.ip,
                hostname: host_label(&app.name).unwrap_or_default(),
            });
            endpoints.push((key, itf.host_ifname.clone()));
        }
        v.push(dhcp::NetSpec {
            net_id: n.id.clone(),
            bridge: n.bridge.clone(),
            cfg: c,
            endpoints,
        });
    }
    v
}

/// What the mesh shell should serve now: every mesh network, its RLOC being the
/// active port's first IPv4 address.
pub fn mesh_specs(
    cfg: &Config,
    facts: &Facts,
    leased: &[crate::firewall::Allowed],
) -> Vec<mesh::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        let Some(m) = &n.mesh else { continue };
        if facts.overlap(cfg, i).is_some() {
            continue;
        }
        let rloc = facts
            .active_port(cfg, i)
            .and_then(|p| facts.ports.get(p))
            .and_then(|f| f.addrs.first())
            .map(|a| a.0);
        v.push(mesh::NetSpec {
            net_id: n.id.clone(),
            tun: crate::reconcile::desired::tunnel_name(&n.bridge),
            rloc,
            eids: crate::reconcile::desired::local_eids(cfg, i, leased),
            mesh: m.clone(),
        });
    }
    v
}

/// What the VPN shell should serve now: every cloud network, with its ports in cost
/// order and the address of each one that is up.
pub fn vpn_specs(cfg: &Config, facts: &Facts) -> Vec<vpn::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in cfg.networks.iter().enumerate() {
        let (Some(vpn), Some(l3)) = (&n.vpn, &n.ip) else {
            continue;
        };
        if facts.overlap(cfg, i).is_some() {
            continue;
        }
        v.push(vpn::NetSpec {
            net_id: n.id.clone(),
            tun: crate::reconcile::desired::tunnel_name(&n.bridge),
            subnet: l3.subnet,
            vpn: vpn.clone(),
            ports: n
                .ports
                .iter()
                .map(|&p| vpn::PortChoice {
                    name: cfg.ports[p].name.clone(),
                    ifname: cfg.ports[p].ifname.clone(),
                    addr: facts
                        .ports
                        .get(p)
                        .filter(|f| f.up())
                        .and_then(|f| f.addrs.first())
                        .map(|a| a.0),
                })
                .collect(),
        });
    }
    v
}

/// Host names of a network's ECOs with static addresses (by app name).
pub fn static_hosts(cfg: &Config, net: usize) -> Vec<(String, Ipv4Addr)> {
    cfg.endpoints()
        .filter(|(_, i)| i.network == net)
        .filter_map(|(a, i)| Some((host_label(&a.name)?, i.ip?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels() {
        assert_eq!(host_label("Web Server 2").as_deref(), Some("web-server-2"));
        assert_eq!(host_label("--x--").as_deref(), Some("x"));
        assert_eq!(host_label("__"), None);
        assert_eq!(host_label(&"a".repeat(100)).unwrap().len(), 63);
    }
}
