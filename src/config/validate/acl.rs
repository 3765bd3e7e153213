//! Endpoint ACLs (`apps[].interfaces[].acls`): EVE's ACE model, checked ACE by ACE,
//! then the port maps of the whole device against each other and against the ports
//! econet itself listens on.

use super::{resolve_ports, valid_dns_name, V};
use crate::addr::{Ipv4Net, Ipv6Net};
use crate::config::json::Path;
use crate::config::model::*;
use crate::config::raw::{AceIn, MatchIn, RawAction, ACTION_FIELDS};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest ACE id (24 bits: it is carried in packet marks and flow logs).
pub const MAX_ACE_ID: u32 = 0xff_ffff;
/// iptables' and EVE's burst when none is given.
pub const DEFAULT_LIMIT_BURST: u32 = 5;

/// A port map, kept for the checks across endpoints.
pub(super) struct PortmapAt {
    /// The ACE, for naming it in another's error.
    ace: Path,
    /// Its `lport` match, where an error about it is reported.
    lport_path: Path,
    proto: AceProto,
    port: u16,
    /// The device ports it is reachable through.
    ports: Vec<usize>,
    /// The endpoint's `acls` path, and the port the map goes to on the ECO.
    endpoint: Path,
    app_port: u16,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Ip,
    Host,
    Eidset,
    Protocol,
    Lport,
    Fport,
    Adapter,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s.to_ascii_lowercase().as_str() {
            "ip" => Ty::Ip,
            "host" => Ty::Host,
            "eidset" => Ty::Eidset,
            "protocol" => Ty::Protocol,
            "lport" => Ty::Lport,
            "fport" => Ty::Fport,
            "adapter" => Ty::Adapter,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Ty::Ip => "ip",
            Ty::Host => "host",
            Ty::Eidset => "eidset",
            Ty::Protocol => "protocol",
            Ty::Lport => "lport",
            Ty::Fport => "fport",
            Ty::Adapter => "adapter",
        }
    }
}

/// Protocol names EVE takes besides numbers (its docs allow names from
/// /etc/protocols; these are the ones an ACL is likely to use).
const PROTOCOLS: [(&str, u8); 15] = [
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
];

/// A `protocol` value: a name, `all`, or a number 0-255 (any case).
pub fn parse_proto(s: &str) -> Option<AceProto> {
    let l = s.to_ascii_lowercase();
    if l == "all" {
        return Some(AceProto::All);
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == l) {
        return Some(AceProto::Number(*n));
    }
    if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) {
        return l.parse::<u8>().ok().map(AceProto::Number);
    }
    None
}

fn proto_name(p: AceProto) -> String {
    match p {
        AceProto::TCP => "tcp".into(),
        AceProto::UDP => "udp".into(),
        AceProto::Number(n) => format!("protocol {n}"),
        AceProto::All => "all".into(),
    }
}

/// A port number 1-65535, digits only.
fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p > 0)
}

/// An `lport`/`fport` value: `"N"` or `"N-M"`, 0 < N <= M <= 65535.
pub fn parse_port_range(s: &str) -> Option<PortRange> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (port_number(a.trim())?, port_number(b.trim())?),
        None => {
            let p = port_number(s.trim())?;
            (p, p)
        }
    };
    (lo <= hi).then_some(PortRange { lo, hi })
}

/// An IPv6 `ip` value: an address (a /128) or prefix.
fn parse_ip6(v: &mut V, s: &str, path: Path) -> Option<Ipv6Net> {
    if s.contains('/') {
        return v.prefix6(s, path);
    }
    match s.parse::<Ipv6Addr>() {
        Ok(a) => Some(Ipv6Net::containing(a, 128)),
        Err(_) => {
            v.err(
                path,
                format!("{s:?} is not an IPv6 address or prefix (like 2001:db8::/32)"),
            );
            None
        }
    }
}

/// An `ip` value: an IPv4 address (a /32) or prefix.
fn parse_ip(v: &mut V, s: &str, path: Path) -> Option<Ipv4Net> {
    if s.contains('/') {
        return v.prefix(s, path);
    }
    match s.parse::<Ipv4Addr>() {
        Ok(a) => Some(Ipv4Net::containing(a, 32)),
        Err(_) => {
            v.err(
                path,
                format!("{s:?} is not an IPv4 address or prefix (like 192.0.2.0/24)"),
            );
            None
        }
    }
}

/// `limitunit` in seconds: `s`, `m`, `h`, `d` or the word (default `s`).
fn limit_unit(s: &str) -> Option<u32> {
    Some(match s.to_ascii_lowercase().as_str() {
        "" | "s" | "second" => 1,
        "m" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        _ => return None,
    })
}

/// `dir`: `BOTH`, `INGRESS` or `EGRESS` in any case, or the enum's number.
fn parse_dir(s: &str) -> Option<AceDir> {
    Some(match s.to_ascii_lowercase().as_str() {
        "both" | "0" => AceDir::Both,
        "ingress" | "1" => AceDir::Ingress,
        "egress" | "2" => AceDir::Egress,
        _ => return None,
    })
}

/// Checks an endpoint's `acls`; `net` is `None` when the endpoint's network is
/// unknown or broken (its own error is reported), which skips the rules that depend
/// on the network. Port maps are added to `portmaps` for [`portmap_checks`].
pub(super) fn endpoint_acls(
    v: &mut V,
    acls: Option<&[AceIn]>,
    path: &Path,
    net: Option<&Network>,
    ports: &[Port],
    portmaps: &mut Vec<PortmapAt>,
) -> Option<Vec<Ace>> {
    let acls = acls?;
    let mut out = Vec::with_capacity(acls.len());
    let mut ids: HashMap<u32, usize> = HashMap::new();
    for (k, a) in acls.iter().enumerate() {
        let ap = path.key("acls").index(k);
        if let Some(id) = a.id {
            if let Some(j) = ids.insert(id, k) {
                v.err(ap.key("id"), format!("duplicate id {id} (also acls[{j}])"));
            }
        }
        if let Some(ace) = ace(v, a, &ap, net, ports, portmaps) {
            out.push(ace);
        }
    }
    Some(out)
}

fn ace(
    v: &mut V,
    a: &AceIn,
    path: &Path,
    net: Option<&Network>,
    ports: &[Port],
    portmaps: &mut Vec<PortmapAt>,
) -> Option<Ace> {
    let nerr = v.errors.len();
    let id = match a.id {
        None => {
            v.err(path.key("id"), format!("is required (1 to {MAX_ACE_ID})"));
            0
        }
        Some(0) => {
            v.err(
                path.key("id"),
                format!("0 is out of range (1 to {MAX_ACE_ID}; 0 is the implicit drop rule)"),
            );
            0
        }
        Some(x) if x > MAX_ACE_ID => {
            v.err(
                path.key("id"),
                format!("{x} is out of range (1 to {MAX_ACE_ID})"),
            );
            0
        }
        Some(x) => x,
    };
    let name = a.name.clone().filter(|n| !n.is_empty());
    let dir = match a.dir.as_deref() {
        None => AceDir::Both,
        Some(d) => parse_dir(d).unwrap_or_else(|| {
            v.err(
                path.key("dir"),
                format!("unknown direction {d:?} (BOTH, INGRESS or EGRESS)"),
            );
            AceDir::Both
        }),
    };
    let (m, at) = matches(
        v,
        a.matches.as_deref().unwrap_or_default(),
        path,
        net,
        ports,
    );
    let action = action(v, a, path, &m, &at, net);
    let mpath = |j: usize| path.key("matches").index(j);

    if let Some(j) = at.adapter {
        if !matches!(action, Some(AceAction::Portmap { .. })) {
            v.err(
                mpath(j),
                "adapter is only for port maps (an ACE with a portmap action)",
            );
        }
    }
    if let (Some(AceAction::Portmap { app_port }), true) = (action, v.errors.len() == nerr) {
        if let (Some(net), Some(lport), Some(proto), Some(j)) = (
            net,
            m.lport.and_then(PortRange::single),
            m.protocol.filter(|p| p.has_ports()),
            at.lport,
        ) {
            let reach = if m.adapter_ports.is_empty() {
                net.ports.clone()
            } else {
                m.adapter_ports.clone()
            };
            if reach.is_empty() {
                v.err(
                    mpath(j),
                    format!(
                        "a port map needs a port, and network {:?} has none",
                        net.name
                    ),
                );
            } else {
                portmaps.push(PortmapAt {
                    ace: path.clone(),
                    lport_path: mpath(j),
                    proto,
                    port: lport,
                    ports: reach,
                    endpoint: endpoint_of(path),
                    app_port,
                });
            }
        }
    }
    if v.errors.len() != nerr {
        return None;
    }
    Some(Ace {
        id,
        name,
        matches: m,
        action: action?,
        dir,
    })
}

/// Where each match type was found (its index in `matches`).
#[derive(Default)]
struct At {
    seen: Vec<(Ty, usize)>,
    host: Option<usize>,
    eidset: Option<usize>,
    protocol: Option<usize>,
    /// A protocol match that did not parse: rules needing tcp or udp stay quiet.
    protocol_bad: bool,
    lport: Option<usize>,
    adapter: Option<usize>,
    /// An `ip` match with an IPv6 value.
    ip6: Option<usize>,
}

fn matches(
    v: &mut V,
    list: &[MatchIn],
    path: &Path,
    net: Option<&Network>,
    ports: &[Port],
) -> (AceMatches, At) {
    let mut m = AceMatches::default();
    let mut at = At::default();
    let mut fport_at = None;
    for (j, mi) in list.iter().enumerate() {
        let mp = path.key("matches").index(j);
        let Some(t) = v.req(&mi.kind, mp.key("type")) else {
            continue;
        };
        let Some(ty) = Ty::parse(t) else {
            v.err(
                mp.key("type"),
                format!(
                    "unknown match type {t:?} (ip, host, eidset, protocol, lport, fport or adapter)"
                ),
            );
            continue;
        };
        if let Some(&(_, k)) = at.seen.iter().find(|(s, _)| *s == ty) {
            v.err(
                mp,
                format!(
                    "duplicate match type {:?} (also matches[{k}]); at most one of each type per ACE",
                    ty.name()
                ),
            );
            continue;
        }
        at.seen.push((ty, j));
        let vp = mp.key("value");
        if ty == Ty::Eidset {
            if mi.value.as_deref().is_some_and(|s| !s.is_empty()) {
                v.err(
                    vp,
                    "eidset takes no value (it matches the other ECOs of the network and static_dns)",
                );
            }
            m.eidset = true;
            at.eidset = Some(j);
            continue;
        }
        let Some(val) = v.req(&mi.value, vp.clone()) else {
            if ty == Ty::Protocol {
                at.protocol_bad = true;
            }
            continue;
        };
        match ty {
            Ty::Ip if val.contains(':') => {
                m.ip6 = parse_ip6(v, val, vp);
                at.ip6 = Some(j);
            }
            Ty::Ip => m.ip = parse_ip(v, val, vp),
            Ty::Host => {
                let h = val.trim_end_matches('.').to_ascii_lowercase();
                if val.parse::<Ipv4Addr>().is_ok() || val.contains(':') {
                    v.err(vp, format!("{val:?} is an address: use an ip match"));
                } else if !valid_dns_name(val) {
                    v.err(vp, format!("{val:?} is not a valid DNS name"));
                } else {
                    m.host = Some(h);
                }
                at.host = Some(j);
            }
            Ty::Protocol => {
                m.protocol = parse_proto(val);
                if m.protocol.is_none() {
                    at.protocol_bad = true;
                    v.err(
                        vp,
                        format!("unknown protocol {val:?} (tcp, udp, icmp, all or a number 0-255)"),
                    );
                }
                at.protocol = Some(j);
            }
            Ty::Lport | Ty::Fport => {
                let r = parse_port_range(val);
                if r.is_none() {
                    v.err(
                        vp,
                        format!(
                            "{val:?} is not a port or a range of ports (1 to 65535, like \"8080\" or \"8000-8099\")"
                        ),
                    );
                }
                if ty == Ty::Lport {
                    m.lport = r;
                    at.lport = Some(j);
                } else {
                    m.fport = r;
                    fport_at = Some(j);
                }
            }
            Ty::Adapter => {
                at.adapter = Some(j);
                m.adapter = Some(val.to_string());
                let resolved = resolve_ports(val, ports);
                if resolved.is_empty() {
                    v.err(vp, format!("{val:?} names no port and no label"));
                    continue;
                }
                if let Some(net) = net {
                    let foreign: Vec<&str> = resolved
                        .iter()
                        .filter(|p| !net.ports.contains(p))
                        .map(|&p| ports[p].name.as_str())
                        .collect();
                    if !foreign.is_empty() {
                        let usable: Vec<&str> =
                            net.ports.iter().map(|&p| ports[p].name.as_str()).collect();
                        v.err(
                            vp,
                            format!(
                                "{val:?} resolves to {}, which network {:?} does not use ({})",
                                foreign.join(", "),
                                net.name,
                                if usable.is_empty() {
                                    "it has no port".to_string()
                                } else {
                                    format!("it may use {}", usable.join(", "))
                                }
                            ),
                        );
                        continue;
                    }
                }
                m.adapter_ports = resolved;
            }
            Ty::Eidset => {}
        }
    }
    let mpath = |j: usize| path.key("matches").index(j);
    let has_ports = m.protocol.is_some_and(AceProto::has_ports);
    if !has_ports && !at.protocol_bad {
        for (name, j) in [("lport", at.lport), ("fport", fport_at)] {
            if let Some(j) = j {
                v.err(mpath(j), format!("{name} without protocol tcp or udp"));
            }
        }
    }
    if let (Some(h), Some(i)) = (at.host, at.ip6) {
        v.err(
            mpath(h.max(i)),
            "host matches IPv4 addresses only: it cannot be with an IPv6 ip in one ACE",
        );
    }
    if let (Some(h), Some(e)) = (at.host, at.eidset) {
        v.err(
            mpath(h.max(e)),
            "host and eidset cannot be in one ACE: use two ACEs",
        );
    }
    if let Some(net) = net {
        if net.kind == NetKind::Switch {
            for (name, j) in [("host", at.host), ("eidset", at.eidset)] {
                if let Some(j) = j {
                    v.err(
                        mpath(j),
                        format!(
                            "{name} is not available on a switch network (it has no DNS or NAT)"
                        ),
                    );
                }
            }
        }
    }
    (m, at)
}

/// The ACE's action: `None` after an error (already reported).
fn action(
    v: &mut V,
    a: &AceIn,
    path: &Path,
    m: &AceMatches,
    at: &At,
    net: Option<&Network>,
) -> Option<AceAction> {
    let nerr = v.errors.len();
    for (i, field) in &a.unknown_action_fields {
        v.err(
            path.key("actions").index(*i).key(field),
            format!(
                "unknown action field {field:?} ({})",
                ACTION_FIELDS.join(", ")
            ),
        );
    }
    let mut chosen: Option<(usize, &str)> = None;
    let mut action = AceAction::Allow;
    for (i, ra) in a.actions.iter().flatten().enumerate() {
        let ap = path.key("actions").index(i);
        let set: Vec<&str> = [
            ("drop", ra.drop),
            ("limit", ra.limit),
            ("portmap", ra.portmap),
        ]
        .into_iter()
        .filter(|(_, f)| *f == Some(true))
        .map(|(n, _)| n)
        .collect();
        unflagged_params(v, ra, &ap);
        if set.len() > 1 {
            v.err(
                ap,
                format!(
                    "more than one action ({}): an ACE takes one",
                    set.join(" and ")
                ),
            );
            continue;
        }
        let Some(&kind) = set.first() else { continue };
        if let Some((j, first)) = chosen {
            v.err(
                ap,
                format!(
                    "more than one action ({first} in actions[{j}], {kind} here): an ACE takes one"
                ),
            );
            continue;
        }
        chosen = Some((i, kind));
        action = match kind {
            "drop" => AceAction::Drop,
            "limit" => limit(v, ra, &ap).unwrap_or(AceAction::Allow),
            _ => portmap(v, ra, &ap, path, m, at, net).unwrap_or(AceAction::Allow),
        };
    }
    (v.errors.len() == nerr).then_some(action)
}

/// Parameters of an action whose flag is not set: EVE writes them as 0 or "" when
/// unset, which is fine; anything else is likely a forgotten flag.
fn unflagged_params(v: &mut V, ra: &RawAction, ap: &Path) {
    if ra.limit != Some(true) {
        for (field, set) in [
            ("limitrate", ra.limitrate.is_some_and(|x| x != 0)),
            (
                "limitunit",
                ra.limitunit.as_deref().is_some_and(|s| !s.is_empty()),
            ),
            ("limitburst", ra.limitburst.is_some_and(|x| x != 0)),
        ] {
            if set {
                v.err(ap.key(field), format!("{field} without \"limit\": true"));
            }
        }
    }
    if ra.portmap != Some(true) && ra.app_port.is_some_and(|x| x != 0) {
        v.err(ap.key("appPort"), "appPort without \"portmap\": true");
    }
}

fn limit(v: &mut V, ra: &RawAction, ap: &Path) -> Option<AceAction> {
    let rate = match ra.limitrate {
        None | Some(0) => {
            v.err(
                ap.key("limitrate"),
                "is required for a limit (packets per limitunit, at least 1)",
            );
            None
        }
        Some(x) => Some(x),
    };
    let unit = ra.limitunit.as_deref().unwrap_or_default();
    let per_secs = limit_unit(unit);
    if per_secs.is_none() {
        v.err(
            ap.key("limitunit"),
            format!("unknown unit {unit:?} (s, m, h or d)"),
        );
    }
    // 0 is protobuf's "unset".
    let burst = match ra.limitburst {
        None | Some(0) => DEFAULT_LIMIT_BURST,
        Some(x) => x,
    };
    let (rate, per_secs) = (rate?, per_secs?);
    // The kernel keeps the bucket in nanoseconds: (unit / rate) x burst must fit
    // in 64 bits, or it refuses the limit (and with it the whole firewall batch).
    let per_token = u64::from(per_secs) * 1_000_000_000 / u64::from(rate.max(1));
    if per_token.checked_mul(u64::from(burst)).is_none() {
        v.err(
            ap.key("limitburst"),
            format!("{burst} is too large for {rate} per {unit}: the bucket would hold more than 584 years"),
        );
        return None;
    }
    Some(AceAction::Limit {
        rate,
        per_secs,
        burst,
    })
}

fn portmap(
    v: &mut V,
    ra: &RawAction,
    ap: &Path,
    path: &Path,
    m: &AceMatches,
    at: &At,
    net: Option<&Network>,
) -> Option<AceAction> {
    let nerr = v.errors.len();
    let app_port = match ra.app_port {
        None | Some(0) => {
            v.err(
                ap.key("appPort"),
                "is required for a port map (the ECO's port, 1 to 65535)",
            );
            0
        }
        Some(x) => u16::try_from(x).unwrap_or_else(|_| {
            v.err(
                ap.key("appPort"),
                format!("{x} is out of range (1 to 65535)"),
            );
            0
        }),
    };
    if let Some(net) = net {
        match net.kind {
            NetKind::Switch => v.err(
                ap.key("portmap"),
                "a port map is not available on a switch network (it has no DNS or NAT)",
            ),
            NetKind::Cloud | NetKind::Mesh => v.err(
                ap.key("portmap"),
                format!(
                    "a port map needs NAT, which a {} network does not do",
                    net.kind.as_str()
                ),
            ),
            NetKind::Local => {}
        }
    }
    if let Some(j) = at.ip6 {
        v.err(
            path.key("matches").index(j).key("value"),
            "port maps are IPv4 only: a port map's ip match cannot be IPv6",
        );
    }
    // With an lport match, a missing tcp or udp is reported there.
    let proto_ok = m.protocol == Some(AceProto::TCP) || m.protocol == Some(AceProto::UDP);
    if !proto_ok && !at.protocol_bad && at.lport.is_none() {
        v.err(
            ap.key("portmap"),
            "a port map needs a protocol match tcp or udp in the same ACE",
        );
    }
    match (at.lport, m.lport) {
        (None, _) => v.err(
            ap.key("portmap"),
            "a port map needs an lport match (the port exposed on the device)",
        ),
        (Some(j), Some(r)) if r.single().is_none() => v.err(
            path.key("matches").index(j).key("value"),
            format!(
                "a port map takes a single lport, not a range ({}-{})",
                r.lo, r.hi
            ),
        ),
        _ => {}
    }
    (v.errors.len() == nerr).then_some(AceAction::Portmap { app_port })
}

/// The path of the endpoint an ACE's path is under (`apps[i].interfaces[j]`).
fn endpoint_of(ace: &Path) -> Path {
    let mut p = ace.clone();
    let keep = p.0.len().saturating_sub(2);
    p.0.truncate(keep);
    p
}

/// Port maps across the device: two on the same protocol and port reachable through
/// a common device port, or one on a port econet itself uses there (IKE of a cloud
/// network, LISP of a mesh network).
pub(super) fn portmap_checks(v: &mut V, maps: &[PortmapAt], nets: &[Network], ports: &[Port]) {
    // Keyed by (is udp, port): a port map's protocol is tcp or udp.
    let mut by_port: HashMap<(bool, u16), Vec<usize>> = HashMap::new();
    for (i, a) in maps.iter().enumerate() {
        let earlier = by_port
            .entry((a.proto == AceProto::UDP, a.port))
            .or_default();
        for &e in earlier.iter() {
            let b = &maps[e];
            // The ECO's rule knows a mapped connection by its ports, not by the device
            // port it came through: one endpoint maps a port to one of its own once.
            if a.endpoint == b.endpoint && a.app_port == b.app_port {
                v.err(
                    a.lport_path.clone(),
                    format!(
                        "{} port {} is already mapped to {} of this endpoint by {}: use one ACE (its adapter may be a label naming several ports)",
                        proto_name(a.proto),
                        a.port,
                        a.app_port,
                        b.ace
                    ),
                );
                break;
            }
            if let Some(&p) = a.ports.iter().find(|p| b.ports.contains(p)) {
                v.err(
                    a.lport_path.clone(),
                    format!(
                        "{} port {} on {} is already mapped by {}",
                        proto_name(a.proto),
                        a.port,
                        ports[p].name,
                        b.ace
                    ),
                );
                break;
            }
        }
        earlier.push(i);
        if a.proto != AceProto::UDP {
            continue;
        }
        for (j, n) in nets.iter().enumerate() {
            let (used, what): (&[u16], &str) = match n.kind {
                NetKind::Cloud => (&[500, 4500], "IKE"),
                NetKind::Mesh => (&[4341, 4342], "LISP"),
                _ => continue,
            };
            if !used.contains(&a.port) {
                continue;
            }
            if let Some(&p) = a.ports.iter().find(|p| n.ports.contains(p)) {
                v.err(
                    a.lport_path.clone(),
                    format!(
                        "udp port {} on {} is used by econet for {what} of networks[{j}] ({})",
                        a.port, ports[p].name, n.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_proto("TCP"), Some(AceProto::TCP));
        assert_eq!(parse_proto("17"), Some(AceProto::UDP));
        assert_eq!(parse_proto("all"), Some(AceProto::All));
        assert_eq!(parse_proto("0"), Some(AceProto::Number(0)));
        assert_eq!(parse_proto("255"), Some(AceProto::Number(255)));
        assert_eq!(parse_proto("256"), None);
        assert_eq!(parse_proto("0006"), None);
        assert_eq!(parse_proto("-1"), None);
        assert_eq!(parse_proto(""), None);
        assert_eq!(
            parse_port_range("8000-8099"),
            Some(PortRange { lo: 8000, hi: 8099 })
        );
        assert_eq!(
            parse_port_range("65535"),
            Some(PortRange {
                lo: 65535,
                hi: 65535
            })
        );
        for bad in [
            "0", "65536", "9-8", "-", "1-", "-5", "+5", "1-2-3", "", "0x10",
        ] {
            assert_eq!(parse_port_range(bad), None, "{bad}");
        }
        assert_eq!(parse_dir("ingress"), Some(AceDir::Ingress));
        assert_eq!(parse_dir("2"), Some(AceDir::Egress));
        assert_eq!(parse_dir("in"), None);
        assert_eq!(limit_unit("Minute"), Some(60));
        assert_eq!(limit_unit("w"), None);
    }
}
