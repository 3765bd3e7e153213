//! The validated device config: what econet makes the kernel match. Every value here
//! has passed `validate`, so consumers do not re-check ranges or references.

use crate::addr::{Ipv4Net, Ipv6Net, MacAddr};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub device_id: String,
    pub version: String,
    pub ports: Vec<Port>,
    pub networks: Vec<Network>,
    pub apps: Vec<App>,
}

/// A device port, set up by the device's own network manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub ifname: String,
    pub labels: Vec<String>,
    pub cost: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetKind {
    Switch,
    Local,
    Cloud,
    Mesh,
}

impl NetKind {
    pub fn parse(s: &str) -> Option<NetKind> {
        Some(match s {
            "switch" => NetKind::Switch,
            "local" => NetKind::Local,
            "cloud" => NetKind::Cloud,
            "mesh" => NetKind::Mesh,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Switch => "switch",
            NetKind::Local => "local",
            NetKind::Cloud => "cloud",
            NetKind::Mesh => "mesh",
        }
    }
    pub fn is_l3(self) -> bool {
        self != NetKind::Switch
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub kind: NetKind,
    /// The `port` selector as written (a port name or a label); `None` when air-gapped.
    pub port: Option<String>,
    /// Indices into `Config::ports` the selector resolves to, best (lowest cost) first.
    pub ports: Vec<usize>,
    /// The MTU given in the config; the default depends on the type and the port.
    pub mtu: Option<u16>,
    pub ip: Option<L3>,
    pub static_dns: Vec<HostEntry>,
    pub vpn: Option<Vpn>,
    pub mesh: Option<Mesh>,
    /// The bridge's interface name, derived from the network's name.
    pub bridge: String,
}

/// IP settings of an L3 network, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L3 {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    /// Upstream resolvers; `None` means the default for the type (see the spec).
    pub dns: Option<Vec<Ipv4Addr>>,
    pub domain: Option<String>,
    pub ntp: Option<Ipv4Addr>,
    pub lease_secs: u32,
    pub max_leases_per_endpoint: u32,
    /// IPv6 (`ip.subnet6`): only on local networks; `None` is IPv4 only.
    pub v6: Option<L3v6>,
}

/// The IPv6 settings of a dual-stack local network, defaults filled in.
///
/// Addresses in `subnet6` (always a /64), by their 64-bit interface identifier:
/// - `::` is the subnet-router anycast address: never a host's.
/// - `gateway6` (default `::1`) is the bridge's; it is outside the DHCPv6 range.
/// - `::1000` to `::ffff` ([`L3v6::DHCP6_FIRST`], [`L3v6::DHCP6_LAST`]: 61,440
///   addresses) is the DHCPv6 range, from which the DHCPv6 server allocates (IA_NA).
///   The spec has no field to set it. Static `ip6` addresses of endpoints are outside
///   it (as static IPv4 addresses are outside `dhcp_range`), so the server never
///   hands out one of them; the low ones (`::2` to `::fff`) and everything from
///   `::1:0` up are free for statics. SLAAC addresses (when `slaac`) use random or
///   EUI-64 identifiers, which in practice never fall in the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L3v6 {
    pub subnet6: Ipv6Net,
    pub gateway6: Ipv6Addr,
    /// Router advertisements set the prefix's `A` flag (ECOs may configure
    /// addresses themselves, admitted first come, first served).
    pub slaac: bool,
    /// The DHCPv6 range, inclusive: `subnet6` with [`L3v6::DHCP6_FIRST`] and
    /// [`L3v6::DHCP6_LAST`] as interface identifiers.
    pub range6_start: Ipv6Addr,
    pub range6_end: Ipv6Addr,
}

impl L3v6 {
    /// The first interface identifier of the DHCPv6 range.
    pub const DHCP6_FIRST: u64 = 0x1000;
    /// The last interface identifier of the DHCPv6 range.
    pub const DHCP6_LAST: u64 = 0xffff;

    /// Whether `ip` is in the DHCPv6 range.
    pub fn in_dhcp6_range(&self, ip: Ipv6Addr) -> bool {
        (u128::from(self.range6_start)..=u128::from(self.range6_end)).contains(&u128::from(ip))
    }
}

/// A `static_dns` entry: a name and its addresses (IPv4 for A records, IPv6 for
/// AAAA; at least one of either, at most `raw::MAX_HOST_ADDRS` in all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub addrs: Vec<Ipv4Addr>,
    pub addrs6: Vec<Ipv6Addr>,
}

/// A secret (PSK, key): compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpn {
    pub remote: Ipv4Addr,
    pub local_id: String,
    pub remote_id: String,
    pub psk: Secret,
    pub remote_subnets: Vec<Ipv4Net>,
    pub ike_lifetime_secs: u32,
    pub child_lifetime_secs: u32,
    pub dpd_secs: u32,
    pub initiator: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapAuth {
    HmacSha1,
    HmacSha256,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapServer {
    pub address: Ipv4Addr,
    pub key: Secret,
    pub auth: MapAuth,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mesh {
    pub instance_id: u32,
    pub map_servers: Vec<MapServer>,
    pub map_resolvers: Vec<Ipv4Addr>,
    pub encrypt: bool,
    pub register_secs: u32,
    pub ttl_mins: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub interfaces: Vec<Interface>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Index into `Config::networks`.
    pub network: usize,
    pub mac: Option<MacAddr>,
    pub ip: Option<Ipv4Addr>,
    /// A static IPv6 address in the network's `subnet6`, outside its DHCPv6 range.
    pub ip6: Option<Ipv6Addr>,
    pub attach: Attach,
    /// The host-side interface name: the tap's name, or the veth's host end.
    pub host_ifname: String,
    /// The endpoint's access control list. `None`: no per-endpoint filtering (the
    /// network's own policy only). `Some` (even empty): EVE semantics, the first ACE
    /// that matches decides and a packet none matches is dropped.
    pub acls: Option<Vec<Ace>>,
}

/// One access control entry (EVE's ACE, eve-api `fw.proto`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// 1 to 2^24-1, unique within the endpoint; names the ACE's counters.
    pub id: u32,
    pub name: Option<String>,
    pub matches: AceMatches,
    pub action: AceAction,
    pub dir: AceDir,
}

/// The matches of an ACE, all of which must hold (at most one of each type).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AceMatches {
    /// The remote endpoint's address or prefix, IPv4 (matches IPv4 packets only).
    pub ip: Option<Ipv4Net>,
    /// The same, IPv6 (an `ip` match with an IPv6 prefix or address, a /128): matches
    /// IPv6 packets only. At most one of `ip` and `ip6` (one `ip` match per ACE).
    /// Inert where the endpoint's IPv6 never reaches a unit (a network without
    /// `subnet6`, a switch network).
    pub ip6: Option<Ipv6Net>,
    /// A domain name (lowercase, no trailing dot): remote addresses econet's DNS
    /// returned for it or a subdomain, and `static_dns` addresses under it.
    pub host: Option<String>,
    /// The other ECOs of the network (a mesh: the mesh subnet) and `static_dns`.
    pub eidset: bool,
    pub protocol: Option<AceProto>,
    /// The ECO's own port (for a port map: the port exposed on the device).
    pub lport: Option<PortRange>,
    /// The remote port.
    pub fport: Option<PortRange>,
    /// For a port map: the `adapter` as written, and the indices into
    /// `Config::ports` it resolves to. Empty: every port the network may use.
    pub adapter: Option<String>,
    pub adapter_ports: Vec<usize>,
}

/// An ACE's `protocol`: a number (tcp 6, udp 17, icmp 1) or `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AceProto {
    Number(u8),
    All,
}

impl AceProto {
    pub const TCP: AceProto = AceProto::Number(6);
    pub const UDP: AceProto = AceProto::Number(17);
    /// Whether ports can be matched (tcp or udp).
    pub fn has_ports(self) -> bool {
        self == AceProto::TCP || self == AceProto::UDP
    }
}

/// A port or an inclusive range of ports, `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(self) -> Option<u16> {
        (self.lo == self.hi).then_some(self.lo)
    }
    pub fn overlaps(self, other: PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AceAction {
    /// No `actions`: the flow is allowed.
    Allow,
    Drop,
    /// A token bucket for the ACE: `rate` packets per `per_secs`, bursts of `burst`;
    /// packets over it are dropped, the rest allowed.
    Limit {
        rate: u32,
        per_secs: u32,
        burst: u32,
    },
    /// Connections to the active port's address on `lport` (a single port, protocol
    /// tcp or udp) are forwarded to the ECO's `app_port`.
    Portmap {
        app_port: u16,
    },
}

/// Which flows an ACE applies to, by who starts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AceDir {
    #[default]
    Both,
    /// Flows started toward the ECO.
    Ingress,
    /// Flows the ECO starts.
    Egress,
}

impl AceDir {
    pub fn ingress(self) -> bool {
        self != AceDir::Egress
    }
    pub fn egress(self) -> bool {
        self != AceDir::Ingress
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attach {
    /// A container: a veth whose far end goes into this network namespace.
    Netns(String),
    /// A VM: a tap device of this name for the hypervisor to open.
    Tap(String),
}

impl Interface {
    /// The ECO's MAC: the configured one, or one derived from (app id, interface name).
    pub fn eco_mac(&self, app_id: &str) -> MacAddr {
        self.mac
            .unwrap_or_else(|| MacAddr::derive(&[b"eco", app_id.as_bytes(), self.name.as_bytes()]))
    }
}

impl Config {
    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.id == id)
    }

    /// Every ECO endpoint as (app, interface).
    pub fn endpoints(&self) -> impl Iterator<Item = (&App, &Interface)> {
        self.apps
            .iter()
            .flat_map(|a| a.interfaces.iter().map(move |i| (a, i)))
    }
}
