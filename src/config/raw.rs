//! The config as serde-json-core reads it: bounded types, every field optional, enums
//! and addresses as strings. `validate` turns these into the model, naming the JSON
//! path of anything wrong. Capacities here are the limits documented in the README.

use heapless::{String, Vec};
use serde::Deserialize;

/// Longest id (network, app, device) accepted.
pub const ID_LEN: usize = 64;
/// Longest network, app, port or label name.
pub const NAME_LEN: usize = 64;
/// Longest text field of other kinds (identities, keys, domain names).
pub const TEXT_LEN: usize = 255;
/// Longest netns path.
pub const PATH_LEN: usize = 255;
/// Longest address or prefix written as text.
pub const ADDR_LEN: usize = 48;

pub const MAX_PORTS: usize = 32;
pub const MAX_NETWORKS: usize = 128;
pub const MAX_APPS: usize = 512;
pub const MAX_INTERFACES: usize = 8;
pub const MAX_LABELS: usize = 8;
pub const MAX_DNS: usize = 4;
pub const MAX_STATIC_DNS: usize = 64;
pub const MAX_HOST_ADDRS: usize = 8;
pub const MAX_REMOTE_SUBNETS: usize = 32;
pub const MAX_MAP_SERVERS: usize = 4;
/// ACEs per endpoint, and on the device in all.
pub const MAX_ACES: usize = 64;
pub const MAX_ACES_TOTAL: usize = 4096;
/// Matches per ACE: seven types, at most one of each (one more lets a duplicate be
/// named as such rather than as one too many).
pub const MAX_MATCHES: usize = 8;
/// Action objects per ACE (EVE may write several with false flags; one may act).
pub const MAX_ACTIONS: usize = 8;
/// Largest config document accepted, in bytes.
pub const MAX_DOC: usize = 1 << 20;

pub type Id = String<ID_LEN>;
pub type Name = String<NAME_LEN>;
pub type Text = String<TEXT_LEN>;
pub type Addr = String<ADDR_LEN>;

/// Top-level scalars; the arrays are read element by element.
#[derive(Deserialize, Debug, Default)]
pub struct RawTop {
    pub device_id: Option<Id>,
    pub config_version: Option<Name>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawPort {
    pub name: Option<Name>,
    pub ifname: Option<Name>,
    pub labels: Option<Vec<Name, MAX_LABELS>>,
    pub cost: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawRange {
    pub start: Option<Addr>,
    pub end: Option<Addr>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawIp {
    pub subnet: Option<Addr>,
    pub gateway: Option<Addr>,
    pub dhcp_range: Option<RawRange>,
    pub dns: Option<Vec<Addr, MAX_DNS>>,
    pub domain: Option<Text>,
    pub ntp: Option<Addr>,
    pub lease_secs: Option<u32>,
    pub max_leases_per_endpoint: Option<u32>,
    pub subnet6: Option<Addr>,
    pub gateway6: Option<Addr>,
    pub slaac: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawHost {
    pub host: Option<Text>,
    pub addrs: Option<Vec<Addr, MAX_HOST_ADDRS>>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawAuth {
    pub psk: Option<Text>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawVpn {
    pub remote: Option<Addr>,
    pub local_id: Option<Text>,
    pub remote_id: Option<Text>,
    pub auth: Option<RawAuth>,
    pub remote_subnets: Option<Vec<Addr, MAX_REMOTE_SUBNETS>>,
    pub ike_lifetime_secs: Option<u32>,
    pub child_lifetime_secs: Option<u32>,
    pub dpd_secs: Option<u32>,
    pub initiator: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawMapServer {
    pub address: Option<Addr>,
    pub key: Option<Text>,
    pub auth: Option<Name>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawMesh {
    pub instance_id: Option<u32>,
    pub map_servers: Option<Vec<RawMapServer, MAX_MAP_SERVERS>>,
    pub map_resolvers: Option<Vec<Addr, MAX_MAP_SERVERS>>,
    pub encrypt: Option<bool>,
    pub register_secs: Option<u32>,
    pub ttl_mins: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawNetwork {
    pub id: Option<Id>,
    pub name: Option<Name>,
    #[serde(rename = "type")]
    pub kind: Option<Name>,
    pub port: Option<Name>,
    pub mtu: Option<u32>,
    pub ip: Option<RawIp>,
    /// Read element by element by `decode` (a bounded list this large would not fit
    /// on the stack while serde builds it).
    #[serde(skip)]
    pub static_dns: Option<std::vec::Vec<RawHost>>,
    pub vpn: Option<RawVpn>,
    pub mesh: Option<RawMesh>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawAttach {
    pub netns: Option<String<PATH_LEN>>,
    pub tap: Option<Name>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RawInterface {
    pub name: Option<Name>,
    pub network: Option<Id>,
    pub mac: Option<Addr>,
    pub ip: Option<Addr>,
    pub ip6: Option<Addr>,
    pub attach: Option<RawAttach>,
    /// Read ACE by ACE by `decode` (see `RawAce`). `None`: no `acls` (or null).
    #[serde(skip)]
    pub acls: Option<std::vec::Vec<AceIn>>,
}

/// One `matches` entry of an ACE.
#[derive(Deserialize, Debug, Default)]
pub struct RawMatch {
    #[serde(rename = "type")]
    pub kind: Option<Name>,
    pub value: Option<Text>,
}

/// One `actions` entry of an ACE, in EVE's field names. EVE writes unset flags as
/// false and unset numbers as 0.
#[derive(Deserialize, Debug, Default, Clone)]
pub struct RawAction {
    pub drop: Option<bool>,
    pub limit: Option<bool>,
    pub limitrate: Option<u32>,
    pub limitunit: Option<Name>,
    pub limitburst: Option<u32>,
    pub portmap: Option<bool>,
    #[serde(rename = "appPort")]
    pub app_port: Option<u32>,
}

/// The fields an action object may have; any other is an error.
pub const ACTION_FIELDS: [&str; 7] = [
    "drop",
    "limit",
    "limitrate",
    "limitunit",
    "limitburst",
    "portmap",
    "appPort",
];

/// An ACE as serde-json-core reads it, one at a time: with its bounded lists it is
/// a few kilobytes, so `decode` turns each into an [`AceIn`] at once. `dir` is read
/// by `decode` too (EVE may write the enum as a name or a number).
#[derive(Deserialize, Debug, Default)]
pub struct RawAce {
    pub id: Option<u32>,
    pub name: Option<Text>,
    pub matches: Option<Vec<RawMatch, MAX_MATCHES>>,
    pub actions: Option<Vec<RawAction, MAX_ACTIONS>>,
}

/// One match of an [`AceIn`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MatchIn {
    pub kind: Option<std::string::String>,
    pub value: Option<std::string::String>,
}

/// An ACE once read: what `RawAce` holds, sized to what was written.
#[derive(Debug, Default, Clone)]
pub struct AceIn {
    pub id: Option<u32>,
    pub name: Option<std::string::String>,
    pub matches: Option<std::vec::Vec<MatchIn>>,
    pub actions: Option<std::vec::Vec<RawAction>>,
    /// `dir` as written: a name, or the digits of a number.
    pub dir: Option<std::string::String>,
    /// Members of `actions[i]` that are not action fields: (i, key).
    pub unknown_action_fields: std::vec::Vec<(usize, std::string::String)>,
}

impl AceIn {
    pub fn from_raw(r: RawAce) -> AceIn {
        let text = |s: &str| s.to_string();
        AceIn {
            id: r.id,
            name: r.name.as_deref().map(text),
            matches: r.matches.map(|l| {
                l.iter()
                    .map(|m| MatchIn {
                        kind: m.kind.as_deref().map(text),
                        value: m.value.as_deref().map(text),
                    })
                    .collect()
            }),
            actions: r.actions.map(|l| l.iter().cloned().collect()),
            dir: None,
            unknown_action_fields: std::vec::Vec::new(),
        }
    }
}

#[derive(Deserialize, Debug, Default)]
pub struct RawApp {
    pub id: Option<Id>,
    pub name: Option<Name>,
    pub interfaces: Option<Vec<RawInterface, MAX_INTERFACES>>,
}

/// What a field must hold, for messages when serde-json-core rejects a value
/// (it says only that something did not fit).
pub fn expectation(parent: &str, key: &str) -> Option<std::string::String> {
    let s = |n: usize| format!("a string of at most {n} characters");
    let list = |n: usize| format!("an array of at most {n} entries");
    let num = "a whole number (0 to 4294967295)".to_string();
    let boolean = "true or false".to_string();
    Some(match key {
        "id" if parent == "acls" => "a whole number (1 to 16777215)".to_string(),
        "name" if parent == "acls" => s(TEXT_LEN),
        "device_id" | "id" | "network" => s(ID_LEN),
        "auth" if parent == "vpn" => "an object like {\"psk\": \"...\"}".to_string(),
        "name" | "ifname" | "config_version" | "type" | "port" | "tap" | "auth" => s(NAME_LEN),
        "netns" => s(PATH_LEN),
        "subnet" | "gateway" | "start" | "end" | "ntp" | "mac" | "ip" | "remote" | "address"
        | "subnet6" | "gateway6" | "ip6" => s(ADDR_LEN),
        "domain" | "host" | "local_id" | "remote_id" | "psk" | "key" | "value" => s(TEXT_LEN),
        "dir" | "limitunit" => s(NAME_LEN),
        "cost"
        | "mtu"
        | "lease_secs"
        | "max_leases_per_endpoint"
        | "ike_lifetime_secs"
        | "child_lifetime_secs"
        | "dpd_secs"
        | "instance_id"
        | "register_secs"
        | "ttl_mins"
        | "limitrate"
        | "limitburst" => num,
        "appPort" => "a whole number (1 to 65535)".to_string(),
        "initiator" | "encrypt" | "drop" | "limit" | "portmap" | "slaac" => boolean,
        "labels" => list(MAX_LABELS),
        "dns" => list(MAX_DNS),
        "static_dns" => list(MAX_STATIC_DNS),
        "addrs" => list(MAX_HOST_ADDRS),
        "remote_subnets" => list(MAX_REMOTE_SUBNETS),
        "map_servers" | "map_resolvers" => list(MAX_MAP_SERVERS),
        "interfaces" => list(MAX_INTERFACES),
        "acls" => list(MAX_ACES),
        "matches" => list(MAX_MATCHES),
        "actions" => list(MAX_ACTIONS),
        "ports" => list(MAX_PORTS),
        "networks" => list(MAX_NETWORKS),
        "apps" => list(MAX_APPS),
        "dhcp_range" | "attach" | "vpn" | "mesh" => "an object".to_string(),
        _ => return None,
    })
}
