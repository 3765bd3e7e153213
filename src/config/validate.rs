//! Raw config to model: every rule of the config contract, each failure naming the
//! JSON path of the offending field. All errors are collected, not just the first.

use super::decode::RawDoc;
use super::json::Path;
use super::model::*;
use super::raw::{RawIp, RawMesh, RawNetwork, RawVpn};
use super::ConfigError;
use crate::addr::{Ipv4Net, Ipv6Net, MacAddr};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

mod acl;

pub const DEFAULT_LEASE_SECS: u32 = 3600;
pub const DEFAULT_MAX_LEASES_PER_ENDPOINT: u32 = 16;

struct V {
    errors: Vec<ConfigError>,
}

impl V {
    fn err(&mut self, path: Path, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(path, msg));
    }

    /// A required string field.
    fn req<'a>(&mut self, v: &'a Option<impl AsRef<str>>, path: Path) -> Option<&'a str> {
        match v {
            Some(s) if !s.as_ref().is_empty() => Some(s.as_ref()),
            Some(_) => {
                self.err(path, "must not be empty");
                None
            }
            None => {
                self.err(path, "is required");
                None
            }
        }
    }

    fn ipv4(&mut self, s: &str, path: Path) -> Option<Ipv4Addr> {
        match s.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, format!("{s:?} is not an IPv4 address"));
                None
            }
        }
    }

    fn prefix(&mut self, s: &str, path: Path) -> Option<Ipv4Net> {
        match s.parse::<Ipv4Net>() {
            Ok(n) => Some(n),
            Err(e) => {
                self.err(path, format!("{s:?} {e}"));
                None
            }
        }
    }

    fn ipv6(&mut self, s: &str, path: Path) -> Option<Ipv6Addr> {
        match s.parse::<Ipv6Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, format!("{s:?} is not an IPv6 address"));
                None
            }
        }
    }

    fn prefix6(&mut self, s: &str, path: Path) -> Option<Ipv6Net> {
        match s.parse::<Ipv6Net>() {
            Ok(n) => Some(n),
            Err(e) => {
                self.err(path, format!("{s:?} {e}"));
                None
            }
        }
    }
}

/// Checks an id: non-empty, printable, no spaces.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a Linux interface name (IFNAMSIZ - 1 bytes, no '/', ':' or spaces).
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'%')
}

/// Checks a DNS name (labels of letters, digits and hyphens, at most 253 characters).
pub fn valid_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn hash_hex(parts: &[&str], digits: usize) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u32).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    let d = ctx.finish();
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    hex[..digits].to_string()
}

fn sanitize(name: &str, max: usize) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(max)
        .collect()
}

/// The bridge name of a network: `ec-<name>` when that fits, else a shortened name
/// with a hash of the network id.
pub fn bridge_name(net_name: &str, net_id: &str) -> String {
    let clean = sanitize(net_name, 64);
    if clean == net_name && !clean.is_empty() && clean.len() <= 12 {
        format!("ec-{clean}")
    } else {
        format!("ec-{}-{}", sanitize(net_name, 7), hash_hex(&[net_id], 4))
    }
}

/// The host-side name of a container endpoint's veth: readable prefix plus a hash
/// of (app id, interface name), so it is stable and unique.
pub fn veth_name(app_name: &str, app_id: &str, ifname: &str) -> String {
    format!(
        "v{}{}",
        sanitize(app_name, 9),
        hash_hex(&[app_id, ifname], 5)
    )
}

pub fn validate(raw: &RawDoc) -> Result<Config, Vec<ConfigError>> {
    let mut v = V { errors: Vec::new() };
    let root = Path::root();

    let device_id = v
        .req(&raw.top.device_id, root.key("device_id"))
        .unwrap_or_default()
        .to_string();
    if !device_id.is_empty() && !valid_id(&device_id) {
        v.err(
            root.key("device_id"),
            "must be printable text without spaces",
        );
    }
    let version = raw
        .top
        .config_version
        .as_deref()
        .unwrap_or_default()
        .to_string();

    // Ports.
    let mut ports = Vec::new();
    let mut port_names: HashMap<String, usize> = HashMap::new();
    let mut port_ifnames: HashMap<String, usize> = HashMap::new();
    for (i, p) in raw.ports.iter().enumerate() {
        let path = root.key("ports").index(i);
        let name = v
            .req(&p.name, path.key("name"))
            .unwrap_or_default()
            .to_string();
        let ifname = v
            .req(&p.ifname, path.key("ifname"))
            .unwrap_or_default()
            .to_string();
        if !ifname.is_empty() && !valid_ifname(&ifname) {
            v.err(
                path.key("ifname"),
                format!("{ifname:?} is not a valid interface name"),
            );
        }
        if let Some(j) = port_names.insert(name.clone(), i) {
            if !name.is_empty() {
                v.err(
                    path.key("name"),
                    format!("duplicate port name {name:?} (also ports[{j}])"),
                );
            }
        }
        if let Some(j) = port_ifnames.insert(ifname.clone(), i) {
            if !ifname.is_empty() {
                v.err(
                    path.key("ifname"),
                    format!("interface {ifname:?} is already ports[{j}]"),
                );
            }
        }
        let labels: Vec<String> = p
            .labels
            .iter()
            .flatten()
            .map(|l| l.as_str().to_string())
            .collect();
        for (k, l) in labels.iter().enumerate() {
            if l.is_empty() {
                v.err(path.key("labels").index(k), "must not be empty");
            }
        }
        ports.push(Port {
            name,
            ifname,
            labels,
            cost: p.cost.unwrap_or(0),
        });
    }

    // Networks.
    let mut networks = Vec::new();
    let mut net_ids: HashMap<String, usize> = HashMap::new();
    let mut net_names: HashMap<String, usize> = HashMap::new();
    let mut bridges: HashMap<String, usize> = HashMap::new();
    let mut broken: HashSet<usize> = HashSet::new();
    for (i, n) in raw.networks.iter().enumerate() {
        let path = root.key("networks").index(i);
        if let Some(net) = network(&mut v, n, &path, &ports) {
            if let Some(j) = net_ids.insert(net.id.clone(), i) {
                v.err(path.key("id"), format!("duplicate id (also networks[{j}])"));
            }
            if let Some(j) = net_names.insert(net.name.clone(), i) {
                v.err(
                    path.key("name"),
                    format!("duplicate name {:?} (also networks[{j}])", net.name),
                );
            }
            if let Some(j) = bridges.insert(net.bridge.clone(), i) {
                v.err(
                    path.key("name"),
                    format!(
                        "bridge name {} clashes with networks[{j}]: rename one",
                        net.bridge
                    ),
                );
            }
            if let Some(j) = port_ifnames.get(&net.bridge) {
                v.err(
                    path.key("name"),
                    format!("bridge name {} is the interface of ports[{j}]", net.bridge),
                );
            }
            networks.push(net);
        } else {
            // Keep indices aligned and the id known, so users of this network do not
            // report errors of their own; the config is rejected anyway.
            broken.insert(i);
            if let Some(id) = n.id.as_deref() {
                net_ids.entry(id.to_string()).or_insert(i);
            }
            networks.push(placeholder_network());
        }
    }
    cross_network_checks(&mut v, &networks, &ports, &root);

    // Apps.
    let mut apps = Vec::new();
    let mut app_ids: HashMap<String, usize> = HashMap::new();
    let mut taps: HashMap<String, String> = HashMap::new();
    let mut netns_names: HashMap<(String, String), String> = HashMap::new();
    let mut host_names: HashMap<String, String> = HashMap::new();
    let mut macs: HashMap<(usize, MacAddr), String> = HashMap::new();
    let mut static_ips: HashMap<(usize, Ipv4Addr), String> = HashMap::new();
    let mut static_ips6: HashMap<(usize, Ipv6Addr), String> = HashMap::new();
    let mut portmaps = Vec::new();
    for (i, a) in raw.apps.iter().enumerate() {
        let path = root.key("apps").index(i);
        let id = v.req(&a.id, path.key("id")).unwrap_or_default().to_string();
        if !id.is_empty() && !valid_id(&id) {
            v.err(path.key("id"), "must be printable text without spaces");
        }
        if let Some(j) = app_ids.insert(id.clone(), i) {
            if !id.is_empty() {
                v.err(path.key("id"), format!("duplicate id (also apps[{j}])"));
            }
        }
        let name = a.name.as_deref().unwrap_or(id.as_str()).to_string();
        let mut interfaces = Vec::new();
        let mut if_names = HashSet::new();
        for (k, ri) in a.interfaces.iter().flatten().enumerate() {
            let ip_path = path.key("interfaces").index(k);
            let ifname = v
                .req(&ri.name, ip_path.key("name"))
                .unwrap_or_default()
                .to_string();
            if !ifname.is_empty() && !if_names.insert(ifname.clone()) {
                v.err(
                    ip_path.key("name"),
                    format!("duplicate interface name {ifname:?} in this app"),
                );
            }
            let net_id = v
                .req(&ri.network, ip_path.key("network"))
                .unwrap_or_default();
            let net_idx = match net_ids.get(net_id) {
                Some(&n) => Some(n),
                None => {
                    if !net_id.is_empty() {
                        v.err(
                            ip_path.key("network"),
                            format!("unknown network {net_id:?}"),
                        );
                    }
                    None
                }
            };
            let mac = match ri.mac.as_deref() {
                None => None,
                Some(s) => match s.parse::<MacAddr>() {
                    Ok(m) if m.is_multicast() || m.is_zero() => {
                        v.err(
                            ip_path.key("mac"),
                            format!("{s} is not a unicast MAC address"),
                        );
                        None
                    }
                    Ok(m) => Some(m),
                    Err(e) => {
                        v.err(ip_path.key("mac"), format!("{s:?} is {e}"));
                        None
                    }
                },
            };
            let ip = ri.ip.as_deref().and_then(|s| v.ipv4(s, ip_path.key("ip")));
            let ip6 = ri
                .ip6
                .as_deref()
                .and_then(|s| v.ipv6(s, ip_path.key("ip6")));
            let attach = match &ri.attach {
                None => {
                    v.err(
                        ip_path.key("attach"),
                        "is required ({\"netns\": PATH} or {\"tap\": NAME})",
                    );
                    None
                }
                Some(at) => match (&at.netns, &at.tap) {
                    (Some(ns), None) => {
                        if !ns.starts_with('/') || ns.contains('\0') {
                            v.err(
                                ip_path.key("attach").key("netns"),
                                "must be an absolute path",
                            );
                        }
                        if !ifname.is_empty() && !valid_ifname(&ifname) {
                            v.err(
                                ip_path.key("name"),
                                format!("{ifname:?} is not a valid interface name for a container"),
                            );
                        }
                        Some(Attach::Netns(ns.to_string()))
                    }
                    (None, Some(t)) => {
                        if !valid_ifname(t) {
                            v.err(
                                ip_path.key("attach").key("tap"),
                                format!("{t:?} is not a valid interface name"),
                            );
                        }
                        Some(Attach::Tap(t.to_string()))
                    }
                    _ => {
                        v.err(ip_path.key("attach"), "needs exactly one of netns or tap");
                        None
                    }
                },
            };
            // Checked even when the endpoint is otherwise broken, for all errors at once;
            // the rules that depend on the network only when it is known and sound.
            let acl_net = net_idx
                .filter(|n| !broken.contains(n))
                .and_then(|n| networks.get(n));
            let acls = acl::endpoint_acls(
                &mut v,
                ri.acls.as_deref(),
                &ip_path,
                acl_net,
                &ports,
                &mut portmaps,
            );
            let (Some(net_idx), Some(attach)) = (net_idx, attach) else {
                continue;
            };
            if broken.contains(&net_idx) {
                continue;
            }
            let net = &networks[net_idx];
            let host_ifname = match &attach {
                Attach::Tap(t) => t.clone(),
                Attach::Netns(_) => veth_name(&name, &id, &ifname),
            };
            let here = format!("apps[{i}].interfaces[{k}]");
            match &attach {
                Attach::Tap(t) => {
                    if let Some(o) = taps.insert(t.clone(), here.clone()) {
                        v.err(
                            ip_path.key("attach").key("tap"),
                            format!("tap {t:?} is also used by {o}"),
                        );
                    }
                    if port_ifnames.contains_key(t) || bridges.contains_key(t) {
                        v.err(
                            ip_path.key("attach").key("tap"),
                            format!("tap {t:?} is the name of a port or a bridge"),
                        );
                    }
                }
                Attach::Netns(ns) => {
                    if port_ifnames.contains_key(&host_ifname) {
                        v.err(
                            ip_path.key("name"),
                            format!("host interface {host_ifname} is the name of a port: rename the app"),
                        );
                    }
                    if let Some(o) = netns_names.insert((ns.clone(), ifname.clone()), here.clone())
                    {
                        v.err(
                            ip_path.key("name"),
                            format!("{ifname:?} in {ns} is also used by {o}"),
                        );
                    }
                }
            }
            if let Some(o) = host_names.insert(host_ifname.clone(), here.clone()) {
                v.err(
                    ip_path.key("name"),
                    format!("host interface {host_ifname} clashes with {o}: rename the app"),
                );
            }
            if let Some(m) = mac {
                if let Some(o) = macs.insert((net_idx, m), here.clone()) {
                    v.err(
                        ip_path.key("mac"),
                        format!("{m} is also used by {o} on this network"),
                    );
                }
            }
            if let Some(ip) = ip {
                match &net.ip {
                    None => v.err(
                        ip_path.key("ip"),
                        format!(
                            "network {:?} is a switch network: it has no addresses",
                            net.name
                        ),
                    ),
                    Some(l3) => {
                        if !l3.subnet.contains(ip) {
                            v.err(
                                ip_path.key("ip"),
                                format!("{ip} is outside the subnet {}", l3.subnet),
                            );
                        } else if ip == l3.subnet.addr()
                            || ip == l3.subnet.broadcast()
                            || ip == l3.gateway
                        {
                            v.err(
                                ip_path.key("ip"),
                                format!("{ip} is the network, broadcast or gateway address"),
                            );
                        } else if in_range(ip, l3.range_start, l3.range_end) {
                            v.err(
                                ip_path.key("ip"),
                                format!(
                                    "{ip} is inside the DHCP range {}-{}",
                                    l3.range_start, l3.range_end
                                ),
                            );
                        }
                        if let Some(o) = static_ips.insert((net_idx, ip), here.clone()) {
                            v.err(ip_path.key("ip"), format!("{ip} is also used by {o}"));
                        }
                    }
                }
            }
            if let Some(ip6) = ip6 {
                static_ip6(&mut v, ip6, net, &ip_path.key("ip6"));
                if let Some(o) = static_ips6.insert((net_idx, ip6), here.clone()) {
                    v.err(ip_path.key("ip6"), format!("{ip6} is also used by {o}"));
                }
            }
            interfaces.push(Interface {
                name: ifname,
                network: net_idx,
                mac,
                ip,
                ip6,
                attach,
                host_ifname,
                acls,
            });
        }
        apps.push(App {
            id,
            name,
            interfaces,
        });
    }
    acl::portmap_checks(&mut v, &portmaps, &networks, &ports);
    if v.errors.is_empty() {
        Ok(Config {
            device_id,
            version,
            ports,
            networks,
            apps,
        })
    } else {
        Err(v.errors)
    }
}

fn in_range(ip: Ipv4Addr, a: Ipv4Addr, b: Ipv4Addr) -> bool {
    (u32::from(a)..=u32::from(b)).contains(&u32::from(ip))
}

/// The rules for an endpoint's static IPv6 address on its network: in `subnet6`,
/// neither the subnet-router anycast nor the gateway, outside the DHCPv6 range.
fn static_ip6(v: &mut V, ip6: Ipv6Addr, net: &Network, path: &Path) {
    let Some(l3) = &net.ip else {
        v.err(
            path.clone(),
            format!(
                "network {:?} is a switch network: it has no addresses",
                net.name
            ),
        );
        return;
    };
    let Some(v6) = &l3.v6 else {
        v.err(
            path.clone(),
            format!("network {:?} has no IPv6 (no ip.subnet6)", net.name),
        );
        return;
    };
    if !v6.subnet6.contains(ip6) {
        v.err(
            path.clone(),
            format!("{ip6} is outside the subnet6 {}", v6.subnet6),
        );
    } else if ip6 == v6.subnet6.addr() {
        v.err(
            path.clone(),
            format!("{ip6} is the subnet-router anycast address"),
        );
    } else if ip6 == v6.gateway6 {
        v.err(path.clone(), format!("{ip6} is the gateway6 address"));
    } else if v6.in_dhcp6_range(ip6) {
        v.err(
            path.clone(),
            format!(
                "{ip6} is inside the DHCPv6 range {}-{}",
                v6.range6_start, v6.range6_end
            ),
        );
    }
}

fn placeholder_network() -> Network {
    Network {
        id: String::new(),
        name: String::new(),
        kind: NetKind::Switch,
        port: None,
        ports: Vec::new(),
        mtu: None,
        ip: None,
        static_dns: Vec::new(),
        vpn: None,
        mesh: None,
        bridge: String::new(),
    }
}

/// Resolves a `port` selector: a port name wins over a label of the same text.
pub fn resolve_ports(sel: &str, ports: &[Port]) -> Vec<usize> {
    if let Some(i) = ports.iter().position(|p| p.name == sel) {
        return vec![i];
    }
    let mut v: Vec<usize> = (0..ports.len())
        .filter(|&i| ports[i].labels.iter().any(|l| l == sel))
        .collect();
    v.sort_by_key(|&i| (ports[i].cost, i));
    v
}

fn network(v: &mut V, n: &RawNetwork, path: &Path, ports: &[Port]) -> Option<Network> {
    let nerr = v.errors.len();
    let id = v.req(&n.id, path.key("id")).unwrap_or_default().to_string();
    if !id.is_empty() && !valid_id(&id) {
        v.err(path.key("id"), "must be printable text without spaces");
    }
    let name = v
        .req(&n.name, path.key("name"))
        .unwrap_or_default()
        .to_string();
    let kind = match v.req(&n.kind, path.key("type")) {
        None => None,
        Some(t) => match NetKind::parse(t) {
            Some(k) => Some(k),
            None => {
                v.err(
                    path.key("type"),
                    format!("unknown type {t:?} (switch, local, cloud or mesh)"),
                );
                None
            }
        },
    };
    let port = n
        .port
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let resolved = match &port {
        None => Vec::new(),
        Some(sel) => {
            let r = resolve_ports(sel, ports);
            if r.is_empty() {
                v.err(
                    path.key("port"),
                    format!("{sel:?} names no port and no label"),
                );
            }
            r
        }
    };
    let mtu = match n.mtu {
        None => None,
        Some(m) if (576..=9216).contains(&m) => Some(m as u16),
        Some(m) => {
            v.err(
                path.key("mtu"),
                format!("{m} is out of range (576 to 9216)"),
            );
            None
        }
    };
    let kind = kind?;
    let mut ip = None;
    let mut static_dns = Vec::new();
    let mut vpn = None;
    let mut mesh = None;
    match kind {
        NetKind::Switch => {
            if resolved.len() > 1 {
                let names: Vec<&str> = resolved.iter().map(|&i| ports[i].name.as_str()).collect();
                v.err(
                    path.key("port"),
                    format!(
                        "a switch network takes one port, but {:?} resolves to {}",
                        port.as_deref().unwrap_or_default(),
                        names.join(", ")
                    ),
                );
            }
            for (field, present) in [
                ("ip", n.ip.is_some()),
                ("static_dns", n.static_dns.is_some()),
                ("vpn", n.vpn.is_some()),
                ("mesh", n.mesh.is_some()),
            ] {
                if present {
                    v.err(
                        path.key(field),
                        "is not allowed on a switch network (L2: no IP services)",
                    );
                }
            }
            if n.ip.as_ref().is_some_and(|ip| ip.subnet6.is_some()) {
                v.err(
                    path.key("ip").key("subnet6"),
                    "is not allowed on a switch network (IPv6 frames pass through it unchanged)",
                );
            }
        }
        _ => {
            match &n.ip {
                None => v.err(
                    path.key("ip"),
                    "is required for an L3 network (at least a subnet)",
                ),
                Some(rip) => ip = l3(v, rip, &path.key("ip"), kind),
            }
            for (k, h) in n.static_dns.iter().flatten().enumerate() {
                let hp = path.key("static_dns").index(k);
                let host = v
                    .req(&h.host, hp.key("host"))
                    .unwrap_or_default()
                    .to_string();
                if !host.is_empty() && !valid_dns_name(&host) {
                    v.err(hp.key("host"), format!("{host:?} is not a valid DNS name"));
                }
                let mut addrs = Vec::new();
                let mut addrs6 = Vec::new();
                match &h.addrs {
                    None => v.err(hp.key("addrs"), "is required"),
                    Some(a) if a.is_empty() => v.err(hp.key("addrs"), "must not be empty"),
                    Some(a) => {
                        for (j, s) in a.iter().enumerate() {
                            let p = hp.key("addrs").index(j);
                            if let Ok(x) = s.parse::<Ipv4Addr>() {
                                addrs.push(x);
                            } else if let Ok(x) = s.parse::<Ipv6Addr>() {
                                if x.is_unspecified() || x.is_multicast() {
                                    v.err(p, format!("{x} is not a unicast IPv6 address"));
                                } else {
                                    addrs6.push(x);
                                }
                            } else {
                                v.err(p, format!("{s:?} is not an IPv4 or IPv6 address"));
                            }
                        }
                    }
                }
                static_dns.push(HostEntry {
                    host,
                    addrs,
                    addrs6,
                });
            }
            if kind != NetKind::Cloud && n.vpn.is_some() {
                v.err(
                    path.key("vpn"),
                    format!("is only for cloud networks, not {}", kind.as_str()),
                );
            }
            if kind != NetKind::Mesh && n.mesh.is_some() {
                v.err(
                    path.key("mesh"),
                    format!("is only for mesh networks, not {}", kind.as_str()),
                );
            }
            if kind == NetKind::Cloud {
                if resolved.is_empty() && port.is_none() {
                    v.err(
                        path.key("port"),
                        "a cloud network needs at least one port for its VPN",
                    );
                }
                match &n.vpn {
                    None => v.err(path.key("vpn"), "is required for a cloud network"),
                    Some(rv) => vpn = vpn_settings(v, rv, &path.key("vpn")),
                }
            }
            if kind == NetKind::Mesh {
                match &n.mesh {
                    None => v.err(path.key("mesh"), "is required for a mesh network"),
                    Some(rm) => mesh = mesh_settings(v, rm, &path.key("mesh")),
                }
            }
            if kind == NetKind::Local && resolved.len() > 1 {
                // A label with several ports: the best one that is up is used at run time.
            }
        }
    }
    if v.errors.len() != nerr {
        return None;
    }
    let bridge = bridge_name(&name, &id);
    Some(Network {
        id,
        name,
        kind,
        port,
        ports: resolved,
        mtu,
        ip,
        static_dns,
        vpn,
        mesh,
        bridge,
    })
}

/// Address blocks no network may use (RFC 6890): traffic there never leaves a
/// host, or is not unicast, so a network there breaks the device.
const RESERVED: [(&str, [u8; 4], u8); 5] = [
    ("0.0.0.0/8 (\"this network\")", [0, 0, 0, 0], 8),
    ("127.0.0.0/8 (loopback)", [127, 0, 0, 0], 8),
    ("169.254.0.0/16 (link-local)", [169, 254, 0, 0], 16),
    ("224.0.0.0/4 (multicast)", [224, 0, 0, 0], 4),
    (
        "240.0.0.0/4 (reserved, class E, and broadcast)",
        [240, 0, 0, 0],
        4,
    ),
];

/// The reserved block `net` overlaps, if any.
fn reserved(net: &Ipv4Net) -> Option<&'static str> {
    RESERVED
        .iter()
        .find(|(_, a, len)| net.overlaps(&Ipv4Net::containing(Ipv4Addr::from(*a), *len)))
        .map(|(why, ..)| *why)
}

/// Address blocks no `subnet6` may overlap (RFC 4291): not unicast, or never
/// leaving a host or a link. The spec's example is a unique local /64
/// (fd00::/8); global and documentation prefixes are accepted too.
const RESERVED6: [(&str, u128, u8); 5] = [
    ("::/128 (unspecified)", 0, 128),
    ("::1/128 (loopback)", 1, 128),
    ("::ffff:0:0/96 (IPv4-mapped)", 0xffff_0000_0000, 96),
    ("fe80::/10 (link-local)", 0xfe80 << 112, 10),
    ("ff00::/8 (multicast)", 0xff00 << 112, 8),
];

/// The reserved IPv6 block `net` overlaps, if any.
fn reserved6(net: &Ipv6Net) -> Option<&'static str> {
    RESERVED6
        .iter()
        .find(|(_, a, len)| net.overlaps(&Ipv6Net::containing(Ipv6Addr::from(*a), *len)))
        .map(|(why, ..)| *why)
}

/// `subnet6` with the interface identifier `iid` (`subnet6` is a /64).
fn with_iid(subnet6: &Ipv6Net, iid: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet6.addr()) | u128::from(iid))
}

/// The IPv6 settings of an L3 network (`subnet6`, `gateway6`, `slaac`); `None`
/// when there are none or they are wrong (then with errors).
fn l3v6(v: &mut V, r: &RawIp, path: &Path, kind: NetKind) -> Option<L3v6> {
    let Some(s) = r.subnet6.as_deref() else {
        for (field, present) in [
            ("gateway6", r.gateway6.is_some()),
            ("slaac", r.slaac.is_some()),
        ] {
            if present {
                v.err(path.key(field), "is only allowed with subnet6");
            }
        }
        return None;
    };
    let sp = path.key("subnet6");
    if kind != NetKind::Local {
        v.err(
            sp,
            format!(
                "is not supported on a {} network (IPv6 is for local networks only, for now)",
                kind.as_str()
            ),
        );
        return None;
    }
    let subnet6 = v.prefix6(s, sp.clone())?;
    if let Some(why) = reserved6(&subnet6) {
        v.err(sp, format!("{subnet6} overlaps {why}"));
        return None;
    }
    if subnet6.len() != 64 {
        v.err(
            sp,
            format!("{subnet6} is not a /64 (router advertisements and SLAAC need one)"),
        );
        return None;
    }
    let range6_start = with_iid(&subnet6, L3v6::DHCP6_FIRST);
    let range6_end = with_iid(&subnet6, L3v6::DHCP6_LAST);
    let gateway6 = match r.gateway6.as_deref() {
        None => with_iid(&subnet6, 1),
        Some(s) => {
            let gp = path.key("gateway6");
            let g = v.ipv6(s, gp.clone())?;
            if !subnet6.contains(g) {
                v.err(gp, format!("{g} is outside the subnet6 {subnet6}"));
                return None;
            }
            if g == subnet6.addr() {
                v.err(
                    gp,
                    format!("{g} is the subnet-router anycast address of {subnet6}"),
                );
                return None;
            }
            if (u128::from(range6_start)..=u128::from(range6_end)).contains(&u128::from(g)) {
                v.err(
                    gp,
                    format!("{g} is inside the DHCPv6 range {range6_start}-{range6_end}"),
                );
                return None;
            }
            g
        }
    };
    Some(L3v6 {
        subnet6,
        gateway6,
        slaac: r.slaac.unwrap_or(false),
        range6_start,
        range6_end,
    })
}

fn l3(v: &mut V, r: &RawIp, path: &Path, kind: NetKind) -> Option<L3> {
    // First, so its errors are reported even when the IPv4 settings are wrong.
    let v6 = l3v6(v, r, path, kind);
    let subnet = v
        .req(&r.subnet, path.key("subnet"))
        .and_then(|s| v.prefix(s, path.key("subnet")))?;
    if subnet.len() > 29 {
        v.err(
            path.key("subnet"),
            format!("{subnet} is too small (at most /29)"),
        );
        return None;
    }
    if subnet.len() < 8 {
        v.err(
            path.key("subnet"),
            format!("{subnet} is too large (at least /8)"),
        );
        return None;
    }
    if let Some(why) = reserved(&subnet) {
        v.err(path.key("subnet"), format!("{subnet} overlaps {why}"));
        return None;
    }
    let host_ok =
        |ip: Ipv4Addr| subnet.contains(ip) && ip != subnet.addr() && ip != subnet.broadcast();
    let gateway = match r.gateway.as_deref() {
        None => subnet.first_host(),
        Some(s) => {
            let g = v.ipv4(s, path.key("gateway"))?;
            if !host_ok(g) {
                v.err(
                    path.key("gateway"),
                    format!("{g} is not a host address of {subnet}"),
                );
                return None;
            }
            g
        }
    };
    let (range_start, range_end) = match &r.dhcp_range {
        None => {
            if kind == NetKind::Mesh {
                v.err(
                    path.key("dhcp_range"),
                    "is required for a mesh network (each device gets its own range of the shared subnet)",
                );
                return None;
            }
            // The whole subnet minus network, broadcast and the gateway, which is
            // skipped by the pool if it falls inside.
            (subnet.first_host(), subnet.last_host())
        }
        Some(rr) => {
            let rp = path.key("dhcp_range");
            let s = v
                .req(&rr.start, rp.key("start"))
                .and_then(|s| v.ipv4(s, rp.key("start")));
            let e = v
                .req(&rr.end, rp.key("end"))
                .and_then(|s| v.ipv4(s, rp.key("end")));
            let (s, e) = (s?, e?);
            for (f, a) in [("start", s), ("end", e)] {
                if !host_ok(a) {
                    v.err(rp.key(f), format!("{a} is not a host address of {subnet}"));
                }
            }
            if u32::from(s) > u32::from(e) {
                v.err(rp.key("end"), format!("{e} is before the start {s}"));
            }
            if in_range(gateway, s, e) {
                v.err(
                    rp.clone(),
                    format!("{s}-{e} contains the gateway {gateway}"),
                );
            }
            (s, e)
        }
    };
    let dns = r.dns.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| v.ipv4(s, path.key("dns").index(i)))
            .collect::<Vec<_>>()
    });
    let domain = match r.domain.as_deref() {
        None | Some("") => None,
        Some(d) if valid_dns_name(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
        Some(d) => {
            v.err(path.key("domain"), format!("{d:?} is not a valid DNS name"));
            None
        }
    };
    let ntp = r.ntp.as_deref().and_then(|s| v.ipv4(s, path.key("ntp")));
    let lease_secs = match r.lease_secs {
        None => DEFAULT_LEASE_SECS,
        Some(s) if (60..=31_536_000).contains(&s) => s,
        Some(s) => {
            v.err(
                path.key("lease_secs"),
                format!("{s} is out of range (60 to 31536000)"),
            );
            DEFAULT_LEASE_SECS
        }
    };
    let max_leases_per_endpoint = match r.max_leases_per_endpoint {
        None => DEFAULT_MAX_LEASES_PER_ENDPOINT,
        Some(s) if (1..=65_536).contains(&s) => s,
        Some(s) => {
            v.err(
                path.key("max_leases_per_endpoint"),
                format!("{s} is out of range (1 to 65536)"),
            );
            DEFAULT_MAX_LEASES_PER_ENDPOINT
        }
    };
    Some(L3 {
        subnet,
        gateway,
        range_start,
        range_end,
        dns,
        domain,
        ntp,
        lease_secs,
        max_leases_per_endpoint,
        v6,
    })
}

fn bounded(v: &mut V, val: Option<u32>, default: u32, lo: u32, hi: u32, path: Path) -> u32 {
    match val {
        None => default,
        Some(x) if (lo..=hi).contains(&x) => x,
        Some(x) => {
            v.err(path, format!("{x} is out of range ({lo} to {hi})"));
            default
        }
    }
}

fn vpn_settings(v: &mut V, r: &RawVpn, path: &Path) -> Option<Vpn> {
    let remote = v
        .req(&r.remote, path.key("remote"))
        .and_then(|s| v.ipv4(s, path.key("remote")));
    let local_id = v.req(&r.local_id, path.key("local_id")).map(str::to_string);
    let remote_id = v
        .req(&r.remote_id, path.key("remote_id"))
        .map(str::to_string);
    let psk = match &r.auth {
        None => {
            v.err(path.key("auth"), "is required ({\"psk\": ...})");
            None
        }
        Some(a) => v
            .req(&a.psk, path.key("auth").key("psk"))
            .map(|s| Secret(s.to_string())),
    };
    let mut remote_subnets = Vec::new();
    match &r.remote_subnets {
        None => v.err(path.key("remote_subnets"), "is required"),
        Some(l) if l.is_empty() => v.err(path.key("remote_subnets"), "must not be empty"),
        Some(l) => {
            for (i, s) in l.iter().enumerate() {
                let p = path.key("remote_subnets").index(i);
                if let Some(n) = v.prefix(s, p.clone()) {
                    match reserved(&n) {
                        Some(why) => v.err(p, format!("{n} overlaps {why}")),
                        None => remote_subnets.push(n),
                    }
                }
            }
        }
    }
    let ike_lifetime_secs = bounded(
        v,
        r.ike_lifetime_secs,
        14_400,
        10,
        86_400 * 7,
        path.key("ike_lifetime_secs"),
    );
    let child_lifetime_secs = bounded(
        v,
        r.child_lifetime_secs,
        3_600,
        10,
        86_400 * 7,
        path.key("child_lifetime_secs"),
    );
    let dpd_secs = bounded(v, r.dpd_secs, 30, 1, 3_600, path.key("dpd_secs"));
    Some(Vpn {
        remote: remote?,
        local_id: local_id?,
        remote_id: remote_id?,
        psk: psk?,
        remote_subnets,
        ike_lifetime_secs,
        child_lifetime_secs,
        dpd_secs,
        initiator: r.initiator.unwrap_or(true),
    })
}

fn mesh_settings(v: &mut V, r: &RawMesh, path: &Path) -> Option<Mesh> {
    let instance_id = match r.instance_id {
        None => {
            v.err(path.key("instance_id"), "is required");
            None
        }
        Some(x) if x <= 0xff_ffff => Some(x),
        Some(x) => {
            v.err(
                path.key("instance_id"),
                format!("{x} does not fit in 24 bits"),
            );
            None
        }
    };
    let mut map_servers = Vec::new();
    match &r.map_servers {
        None => v.err(path.key("map_servers"), "is required"),
        Some(l) if l.is_empty() => v.err(path.key("map_servers"), "must not be empty"),
        Some(l) => {
            for (i, ms) in l.iter().enumerate() {
                let mp = path.key("map_servers").index(i);
                let address = v
                    .req(&ms.address, mp.key("address"))
                    .and_then(|s| v.ipv4(s, mp.key("address")));
                let key = v.req(&ms.key, mp.key("key")).map(|s| Secret(s.to_string()));
                let auth = match ms.auth.as_deref() {
                    None | Some("hmac-sha256") => Some(MapAuth::HmacSha256),
                    Some("hmac-sha1") => Some(MapAuth::HmacSha1),
                    Some(o) => {
                        v.err(
                            mp.key("auth"),
                            format!("unknown {o:?} (hmac-sha256 or hmac-sha1)"),
                        );
                        None
                    }
                };
                if let (Some(address), Some(key), Some(auth)) = (address, key, auth) {
                    map_servers.push(MapServer { address, key, auth });
                }
            }
        }
    }
    let map_resolvers = match &r.map_resolvers {
        None => map_servers.iter().map(|m| m.address).collect(),
        Some(l) => l
            .iter()
            .enumerate()
            .filter_map(|(i, s)| v.ipv4(s, path.key("map_resolvers").index(i)))
            .collect(),
    };
    let register_secs = bounded(v, r.register_secs, 60, 1, 3_600, path.key("register_secs"));
    let ttl_mins = bounded(v, r.ttl_mins, 1_440, 1, 10_080, path.key("ttl_mins"));
    Some(Mesh {
        instance_id: instance_id?,
        map_servers,
        map_resolvers,
        encrypt: r.encrypt.unwrap_or(true),
        register_secs,
        ttl_mins,
    })
}

/// Rules that involve several networks: overlapping subnets, remote subnets that
/// overlap a network, and ports claimed by a switch network.
fn cross_network_checks(v: &mut V, nets: &[Network], ports: &[Port], root: &Path) {
    let npath = |i: usize| root.key("networks").index(i);
    for i in 0..nets.len() {
        let Some(a) = &nets[i].ip else { continue };
        for (j, other) in nets.iter().enumerate().take(i) {
            if let Some(b) = &other.ip {
                if a.subnet.overlaps(&b.subnet) {
                    v.err(
                        npath(i).key("ip").key("subnet"),
                        format!("overlaps networks[{j}] ({})", b.subnet),
                    );
                }
                if let (Some(a6), Some(b6)) = (&a.v6, &b.v6) {
                    if a6.subnet6.overlaps(&b6.subnet6) {
                        v.err(
                            npath(i).key("ip").key("subnet6"),
                            format!("overlaps networks[{j}] ({})", b6.subnet6),
                        );
                    }
                }
            }
        }
    }
    for (i, n) in nets.iter().enumerate() {
        let Some(vpn) = &n.vpn else { continue };
        for (k, rs) in vpn.remote_subnets.iter().enumerate() {
            for (j, m) in nets.iter().enumerate() {
                if let Some(l3) = &m.ip {
                    if rs.overlaps(&l3.subnet) {
                        v.err(
                            npath(i).key("vpn").key("remote_subnets").index(k),
                            format!("{rs} overlaps networks[{j}] ({})", l3.subnet),
                        );
                    }
                }
            }
        }
    }
    // Two mesh networks on one port would need the same LISP ports on its address.
    for (i, n) in nets.iter().enumerate() {
        if n.kind != NetKind::Mesh {
            continue;
        }
        for (j, m) in nets.iter().enumerate().take(i) {
            if m.kind == NetKind::Mesh {
                if let Some(&p) = n.ports.iter().find(|p| m.ports.contains(p)) {
                    v.err(
                        npath(i).key("port"),
                        format!(
                            "port {} already carries mesh network networks[{j}] ({}); one mesh network per port",
                            ports[p].name, m.name
                        ),
                    );
                }
            }
        }
    }
    // A port enslaved to a switch network serves only that network.
    for (i, n) in nets.iter().enumerate() {
        if n.kind != NetKind::Switch {
            continue;
        }
        for &p in &n.ports {
            for (j, m) in nets.iter().enumerate() {
                if j != i && m.ports.contains(&p) {
                    v.err(
                        npath(j).key("port"),
                        format!(
                            "port {} is enslaved to switch network networks[{i}] ({}) and serves only it",
                            ports[p].name, n.name
                        ),
                    );
                }
            }
        }
    }
}

/// Rules between the running config and a new one: a network keeps its type.
pub fn check_transition(old: &Config, new: &Config) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    for (i, n) in new.networks.iter().enumerate() {
        if let Some(o) = old.network(&n.id) {
            if o.kind != n.kind {
                errs.push(ConfigError::new(
                    Path::root().key("networks").index(i).key("type"),
                    format!(
                        "changing a network's type ({} to {}) is not allowed: delete it and create a new one",
                        o.kind.as_str(),
                        n.kind.as_str()
                    ),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_short() {
        assert_eq!(bridge_name("lan", "x"), "ec-lan");
        let b = bridge_name("a very long network name", "id1");
        assert!(b.len() <= 15 && b.starts_with("ec-averyl"), "{b}");
        assert_ne!(b, bridge_name("a very long network name", "id2"));
        let v = veth_name("web", "22222222-0000-4000-8000-000000000001", "eth0");
        assert!(v.len() <= 15 && v.starts_with("vweb"), "{v}");
        assert_eq!(
            v,
            veth_name("web", "22222222-0000-4000-8000-000000000001", "eth0")
        );
        assert_ne!(
            v,
            veth_name("web", "22222222-0000-4000-8000-000000000001", "eth1")
        );
        assert!(veth_name("a-really-long-app-name", "i", "e").len() <= 15);
        assert!(valid_ifname(&b) && valid_ifname(&v));
    }

    #[test]
    fn dns_names() {
        assert!(valid_dns_name("eco.internal"));
        assert!(valid_dns_name("db"));
        assert!(!valid_dns_name("-db"));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name(""));
        assert!(!valid_dns_name(&"a".repeat(64)));
    }
}
