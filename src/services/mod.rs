//! The services econet runs beside the kernel objects: DHCP, DNS, the IKEv2/ESP VPN
//! and the LISP xTR. Each is a shell around a sans-I/O protocol core that owns its
//! sockets, TUN devices, timers and persistence, behind one interface ([`Service`])
//! that the daemon drives from the event loop: readiness and timeouts in, typed
//! [`ServiceEvent`]s and typed status out. [`Services`] holds them all and is the one
//! place a new service is registered. What each serves is derived from the config
//! and the facts (the `*_specs` functions below).

pub mod dhcp;
pub mod dns;
pub mod gro;
pub mod ipv6;
pub mod lease_file;
pub mod mesh;
pub mod offload;
pub mod sock;
pub mod tun;
pub mod udp_batch;
pub mod vpn;

use crate::config::{Config, NetKind, Network};
use crate::event_loop::{earliest, Poller};
use crate::firewall::Allowed;
use crate::netlink::link::Link;
use crate::reconcile::facts::Facts;
use crate::status::NetworkStatus;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Instant;

pub use dhcp::LeaseEvent;

/// What a service tells the daemon, which routes it: to the reconciler's desired
/// state, to DNS and to status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    /// DHCP granted or ended a lease. The firewall admits or dismisses the sender
    /// before the reply that granted it leaves ([`Service::flush`]); DNS republishes
    /// the network's names; a mesh network's EIDs follow; status shows it.
    Lease(LeaseEvent),
    /// A tunnel came up or went down, a registration was acknowledged or lost, or the
    /// port carrying a tunnel moved: status of substance.
    StateChanged { net_id: String },
}

/// What every service is configured from.
pub struct World<'a> {
    pub cfg: &'a Config,
    pub facts: &'a Facts,
    /// econet's namespace's links as the last reconcile pass read them.
    pub links: &'a [Link],
    /// The senders DHCP has admitted (a mesh network's EIDs are among them).
    pub leased: &'a [Allowed],
}

/// Something a service could not do for a network (a socket that could not be
/// opened, a TUN that is not there): which network, what, and the error.
#[derive(Debug)]
pub struct ServiceError {
    pub net_id: String,
    pub what: String,
    pub err: std::io::Error,
}

impl ServiceError {
    pub fn new(net_id: &str, what: impl Into<String>, err: std::io::Error) -> ServiceError {
        ServiceError {
            net_id: net_id.to_string(),
            what: what.into(),
            err,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.err)
    }
}

impl std::error::Error for ServiceError {}

/// The errors of configuring a service.
pub type NetErrors = Vec<ServiceError>;

/// One service, as the event loop drives it (the shape of quinn-proto's and
/// boringtun's cores, one level up: the shell owns the I/O).
pub trait Service {
    /// Points the service at the networks as they now are.
    fn configure(&mut self, world: &World<'_>, now: Instant) -> NetErrors;
    /// Adds its descriptors to `p`, with tokens `base + slot`, `slot < TOKEN_SPAN`.
    fn register(&self, p: &mut Poller, base: u64);
    /// The descriptor of `slot` is ready.
    fn ready(&mut self, slot: u64, now: Instant, events: &mut Vec<ServiceEvent>);
    /// When [`Service::handle_timeout`] must run next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Runs what is due at `now`.
    fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>);
    /// Sends what waited for the events of the last `ready` or `handle_timeout` to be
    /// routed (DHCP holds its ACKs until the firewall has admitted their clients).
    fn flush(&mut self) {}
    /// Adds what it knows of a network to the network's status.
    fn status(&self, _net: &Network, _now: Instant, _ns: &mut NetworkStatus) {}
    /// On exit: saves what must survive.
    fn shutdown(&mut self) {}
}

/// Tokens each service may use: `base..base + TOKEN_SPAN`.
pub const TOKEN_SPAN: u64 = 0x10000;

/// Every service econet runs. Adding one: its field here, in `new`, and in `all` and
/// `all_mut`.
pub struct Services {
    pub dhcp: dhcp::DhcpShell,
    pub dns: dns::DnsShell,
    pub vpn: vpn::VpnShell,
    pub mesh: mesh::MeshShell,
    pub ipv6: ipv6::Ipv6Shell,
}

/// Which service a token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub service: usize,
    pub slot: u64,
}

impl Services {
    /// Index of DNS in `all`: its names follow the leases lazily, just before it reads.
    pub const DNS: usize = 1;

    pub fn new(state_dir: &Path) -> Services {
        Services {
            dhcp: dhcp::DhcpShell::new(state_dir),
            dns: dns::DnsShell::new(),
            vpn: vpn::VpnShell::new(),
            mesh: mesh::MeshShell::new(),
            ipv6: ipv6::Ipv6Shell::new(state_dir),
        }
    }

    /// DHCP first (the others are configured with its leases), DNS second
    /// ([`Services::DNS`]).
    fn all(&self) -> [&dyn Service; 5] {
        [&self.dhcp, &self.dns, &self.vpn, &self.mesh, &self.ipv6]
    }

    fn all_mut(&mut self) -> [&mut dyn Service; 5] {
        [
            &mut self.dhcp,
            &mut self.dns,
            &mut self.vpn,
            &mut self.mesh,
            &mut self.ipv6,
        ]
    }

    /// Configures every service; DHCP first, so the others see its leases.
    /// Errors by network id.
    pub fn configure(
        &mut self,
        cfg: &Config,
        facts: &Facts,
        links: &[Link],
        now: Instant,
    ) -> BTreeMap<String, Vec<String>> {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut world = World {
            cfg,
            facts,
            links,
            leased: &[],
        };
        let first = self.dhcp.configure(&world, now);
        let leased = self.dhcp.admitted();
        world.leased = &leased;
        let rest = self
            .all_mut()
            .into_iter()
            .skip(1) // DHCP, done
            .flat_map(|s| s.configure(&world, now));
        for e in first.into_iter().chain(rest.collect::<Vec<_>>()) {
            errors
                .entry(e.net_id.clone())
                .or_default()
                .push(e.to_string());
        }
        errors
    }

    /// Registers every service's descriptors, service `i` from `base + i * TOKEN_SPAN`.
    pub fn register(&self, p: &mut Poller, base: u64) {
        for (i, s) in self.all().into_iter().enumerate() {
            s.register(p, base + i as u64 * TOKEN_SPAN);
        }
    }

    /// The service and slot of `token`, if it is a service's.
    pub fn slot(&self, token: u64, base: u64) -> Option<Slot> {
        let t = token.checked_sub(base)?;
        let service = (t / TOKEN_SPAN) as usize;
        (service < self.all().len()).then_some(Slot {
            service,
            slot: t % TOKEN_SPAN,
        })
    }

    pub fn ready(&mut self, at: Slot, now: Instant, events: &mut Vec<ServiceEvent>) {
        if let Some(s) = self.all_mut().into_iter().nth(at.service) {
            s.ready(at.slot, now, events);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.all()
            .into_iter()
            .fold(None, |t, s| earliest(t, s.poll_timeout()))
    }

    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>) {
        for s in self.all_mut() {
            s.handle_timeout(now, events);
        }
    }

    /// Flushes every service (after timeouts).
    pub fn flush(&mut self) {
        for s in self.all_mut() {
            s.flush();
        }
    }

    /// Flushes the service a `ready` went to, and only that one: the others' data
    /// paths pay nothing for it.
    pub fn flush_one(&mut self, at: Slot) {
        if let Some(s) = self.all_mut().into_iter().nth(at.service) {
            s.flush();
        }
    }

    pub fn status(&self, net: &Network, now: Instant, ns: &mut NetworkStatus) {
        for s in self.all() {
            s.status(net, now, ns);
        }
    }

    pub fn shutdown(&mut self) {
        for s in self.all_mut() {
            s.shutdown();
        }
    }
}

/// The networks services serve: every one whose subnet does not overlap a port's
/// (such a network gives up its gateway address, so the device keeps its uplink).
fn served<'a>(cfg: &'a Config, facts: &'a Facts) -> impl Iterator<Item = (usize, &'a Network)> {
    cfg.networks
        .iter()
        .enumerate()
        .filter(move |(i, _)| facts.overlap(cfg, *i).is_none())
}

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
    for (i, n) in served(cfg, facts) {
        let Some(l3) = &n.ip else { continue };
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
                .filter(|a| match a {
                    SocketAddr::V4(v4) => !l3.subnet.contains(*v4.ip()),
                    SocketAddr::V6(v6) => {
                        !l3.v6.as_ref().is_some_and(|v| v.subnet6.contains(*v6.ip()))
                    }
                })
                .collect(),
            (None, _) => Vec::new(),
        };
        v.push(dns::NetSpec {
            net_id: n.id.clone(),
            bridge: n.bridge.clone(),
            gateway: l3.gateway,
            gateway6: l3.v6.as_ref().map(|v| v.gateway6),
            forward_from_gateway: matches!(n.kind, NetKind::Cloud | NetKind::Mesh),
            params: crate::dns::NetParams {
                domain: l3.domain.clone(),
                upstreams,
                static_dns: n.static_dns.clone(),
                subnet: Some(l3.subnet),
                subnet6: l3.v6.as_ref().map(|v| v.subnet6),
                app_names: app_names(cfg, i),
            },
            acl_hosts: crate::acl::hosts::acl_hosts(cfg, i),
        });
    }
    v
}

/// What the DHCP shell should serve for `cfg` now: every L3 network whose gateway
/// address is in place.
pub fn dhcp_specs(cfg: &Config, facts: &Facts) -> Vec<dhcp::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in served(cfg, facts) {
        let Some(l3) = &n.ip else { continue };
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

/// What the IPv6 shell should serve: every local network with `subnet6`. Its
/// advertisements name the gateway a default router only while IPv6 can leave by
/// the network's active port (NAT66); otherwise the prefix and DNS only.
pub fn ipv6_specs(cfg: &Config, facts: &Facts) -> Vec<ipv6::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in served(cfg, facts) {
        let Some(l3) = n.ip.as_ref().filter(|_| n.kind == NetKind::Local) else {
            continue;
        };
        let Some(v6) = &l3.v6 else { continue };
        let prefix = v6.subnet6.addr();
        let mut d = crate::dhcp6::Config::new(prefix, crate::reconcile::desired::bridge_mac(n));
        d.range_start = v6.range6_start;
        d.range_end = v6.range6_end;
        d.dns = vec![v6.gateway6];
        d.domains = l3.domain.iter().cloned().collect();
        let mut r = crate::ra::Config::new(
            prefix,
            std::net::Ipv6Addr::UNSPECIFIED,
            crate::addr::MacAddr::default(),
        );
        r.slaac = v6.slaac;
        r.mtu = Some(crate::reconcile::desired::network_mtu(cfg, facts, i));
        r.rdnss = vec![v6.gateway6];
        r.dnssl = l3.domain.iter().cloned().collect();
        let routed = facts
            .active_port(cfg, i)
            .is_some_and(|p| facts.has_global6(p));
        if !routed {
            r.router_lifetime = std::time::Duration::ZERO;
        }
        let mut endpoints = Vec::new();
        for (app, itf) in cfg.endpoints().filter(|(_, itf)| itf.network == i) {
            let key = crate::dhcp::EndpointKey {
                app_id: app.id.clone(),
                ifname: itf.name.clone(),
            };
            d.endpoints.push(crate::dhcp6::Endpoint {
                key: key.clone(),
                mac: itf.eco_mac(&app.id),
                static_ip6: itf.ip6,
                hostname: host_label(&app.name).unwrap_or_default(),
            });
            endpoints.push((key, itf.host_ifname.clone()));
        }
        v.push(ipv6::NetSpec {
            net_id: n.id.clone(),
            bridge: n.bridge.clone(),
            dhcp: d,
            ra: r,
            endpoints,
        });
    }
    v
}

/// What the mesh shell should serve now: every mesh network, its RLOC being the
/// active port's first IPv4 address.
pub fn mesh_specs(cfg: &Config, facts: &Facts, leased: &[Allowed]) -> Vec<mesh::NetSpec> {
    let mut v = Vec::new();
    for (i, n) in served(cfg, facts) {
        let Some(m) = &n.mesh else { continue };
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
    for (_, n) in served(cfg, facts) {
        let (Some(vpn), Some(l3)) = (&n.vpn, &n.ip) else {
            continue;
        };
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
/// The names of the apps with an endpoint on network `net`: (host label, app id).
pub fn app_names(cfg: &Config, net: usize) -> Vec<(String, String)> {
    cfg.endpoints()
        .filter(|(_, i)| i.network == net)
        .filter_map(|(a, _)| Some((host_label(&a.name)?, a.id.clone())))
        .collect()
}

/// The configured names of network `net`: each endpoint's app name (as a host
/// label) with its static `ip` and its static `ip6`, one entry per address.
pub fn static_hosts(cfg: &Config, net: usize) -> Vec<(String, IpAddr)> {
    cfg.endpoints()
        .filter(|(_, i)| i.network == net)
        .filter_map(|(a, i)| Some((host_label(&a.name)?, i)))
        .flat_map(|(label, i)| {
            let v4 = i.ip.map(IpAddr::V4);
            let v6 = i.ip6.map(IpAddr::V6);
            v4.into_iter().chain(v6).map(move |ip| (label.clone(), ip))
        })
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
