//! The validated device config: what econet makes the kernel match. Every value here
//! has passed `validate`, so consumers do not re-check ranges or references.

use crate::addr::{Ipv4Net, MacAddr};
use std::fmt;
use std::net::Ipv4Addr;

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub addrs: Vec<Ipv4Addr>,
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
    pub attach: Attach,
    /// The host-side interface name: the tap's name, or the veth's host end.
    pub host_ifname: String,
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
