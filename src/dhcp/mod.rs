//! The DHCPv4 server core (RFC 2131), one [`Server`] per L3 network. Sans-I/O: the
//! shell feeds it received messages ([`Server::handle`]), ARP it sees on the bridge
//! ([`Server::handle_arp`]) and the time ([`Server::poll`] at
//! [`Server::poll_timeout`]); the server answers with [`Output`]s for the shell to send.
//! It never reads a clock or touches a socket or file.
//!
//! Identity: a message from endpoint E whose frame source MAC is E's ECO MAC is the ECO
//! itself, identified by (app id, interface name); it gets its static IP, else its own
//! stable allocation. Any other MAC behind E is a nested guest identified by (E, client
//! id or chaddr), limited to `max_leases_per_endpoint` active leases per endpoint.
//!
//! Allocations outlive leases and apps: see [`server`] for the reuse order, and
//! [`store`] for the persisted format.

pub mod frame;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

use crate::addr::{Ipv4Net, MacAddr};
pub use crate::wire::dhcp::Route;
pub use server::Server;
use std::net::Ipv4Addr;
use std::time::Duration;

/// An ECO endpoint: one interface of one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub app_id: String,
    pub ifname: String,
}

/// A known endpoint of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub key: EndpointKey,
    /// The ECO's own MAC: frames from it are the ECO, others behind it are guests.
    pub mac: MacAddr,
    pub static_ip: Option<Ipv4Addr>,
    /// The app name: the lease's host name when the ECO sends none.
    pub hostname: String,
}

/// The server's configuration, filled by the shell from the config model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub subnet: Ipv4Net,
    /// The server's own address: server identifier (54) and DNS server (6).
    pub gateway: Ipv4Addr,
    /// Option 3; `None` on an air-gapped network (no default route is handed out).
    pub router: Option<Ipv4Addr>,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub domain: Option<String>,
    pub ntp: Vec<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 121. When a router is set too, a default route via it is added, because
    /// a client that accepts option 121 must ignore option 3 (RFC 3442).
    pub routes: Vec<Route>,
    pub lease_secs: u32,
    pub max_leases_per_endpoint: u32,
    pub endpoints: Vec<Endpoint>,
    /// How long to wait for an answer to the ARP probe before offering an address no
    /// identity has held yet. Zero offers at once, without a probe.
    pub probe_window: Duration,
    /// How long an address declined by a client, or claimed by an unknown host, is
    /// kept out of the pool.
    pub conflict_hold: Duration,
}

impl Config {
    /// Defaults per the config contract: gateway as router, the whole subnet as the
    /// range, one-hour leases, 16 guests per endpoint, a 50 ms probe window and a
    /// ten-minute hold on conflicting addresses.
    pub fn new(subnet: Ipv4Net, gateway: Ipv4Addr) -> Config {
        Config {
            subnet,
            gateway,
            router: Some(gateway),
            range_start: subnet.first_host(),
            range_end: subnet.last_host(),
            domain: None,
            ntp: Vec::new(),
            mtu: None,
            routes: Vec::new(),
            lease_secs: 3600,
            max_leases_per_endpoint: 16,
            endpoints: Vec::new(),
            probe_window: Duration::from_millis(50),
            conflict_hold: Duration::from_secs(600),
        }
    }
}

/// A received DHCP message.
#[derive(Debug, Clone, Copy)]
pub struct Rx<'a> {
    /// The endpoint (bridge port) the frame arrived on; `None` (not an ECO endpoint,
    /// e.g. the uplink) is ignored.
    pub endpoint: Option<&'a EndpointKey>,
    /// The frame's source MAC.
    pub src_mac: MacAddr,
    /// The IP source address (0.0.0.0 before the client has an address).
    pub src_ip: Ipv4Addr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// A reply whose UDP payload (server port 67 → client port 68) is in the caller's
/// buffer. The shell sends it on a packet socket to `dst_mac`, so it never needs (or
/// fills) an ARP entry for a client that has no address yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub dst_mac: MacAddr,
    pub dst_ip: Ipv4Addr,
    pub payload_len: usize,
}

/// What the server asks the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send this reply.
    Reply(Reply),
    /// Send an RFC 5227 ARP probe for this address out of the bridge (sender IP
    /// 0.0.0.0; see [`frame::emit_probe`]) and pass any ARP seen from the address to
    /// [`Server::handle_arp`]. The offer follows from [`Server::poll`] after
    /// `probe_window`.
    Probe(Ipv4Addr),
}

/// A lease the server granted (every ACK with an address: new, renewed, rapid
/// commit) or ended (a valid RELEASE or DECLINE), with the sender it concerns: the
/// firewall admits or dismisses exactly that (MAC, address) on that endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Granted {
        endpoint: EndpointKey,
        mac: MacAddr,
        ip: Ipv4Addr,
    },
    Ended {
        endpoint: EndpointKey,
        mac: MacAddr,
        ip: Ipv4Addr,
    },
}

/// How a nested guest identifies itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    /// Option 61.
    Id(Box<[u8]>),
    /// chaddr, when the guest sends no client id.
    Mac(MacAddr),
}

/// An active lease, for status and DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo<'a> {
    pub endpoint: &'a EndpointKey,
    /// `None` for the ECO itself, the guest's key otherwise.
    pub client: Option<&'a ClientKey>,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Option 12 as the client sent it (if it is a valid name), else the app name for
    /// an ECO and empty for a guest.
    pub hostname: &'a str,
    /// Wall-clock expiry, unix seconds.
    pub expires: u64,
}
