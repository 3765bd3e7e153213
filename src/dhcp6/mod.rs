//! The DHCPv6 server core (RFC 8415), one [`Server`] per network with a `subnet6`.
//! Sans-I/O, like [`crate::dhcp`]: the shell feeds it the UDP payloads of messages
//! received on port 547 ([`Server::handle`]) and the time ([`Server::poll`] at
//! [`Server::poll_timeout`]); the server answers with a [`Reply`] whose payload is in
//! the caller's buffer. It never reads a clock or touches a socket or file.
//!
//! Identity, the same rule as IPv4: a message from endpoint E whose frame source MAC
//! is E's ECO MAC is the ECO, identified by (app id, interface name), never by its
//! DUID or IAID, so the same ECO keeps the same address across renew, a server
//! restart, a reboot and a redeploy that gives it a new DUID. It gets its static
//! `ip6`, else its own stable allocation, placed at an address derived from the
//! endpoint key (a hash of app id and interface name into the range, linear probing
//! on collision), so it survives even the loss of the lease file. Any other sender
//! (another MAC behind the endpoint, an unknown endpoint) gets no address: Advertise
//! with NoAddrsAvail, and NoAddrsAvail / NoBinding in the IAs of a Reply; stateless
//! configuration (Information-request) is answered for everyone.
//!
//! Several IA_NA in one message get one address each: an IA that lists an address
//! the ECO holds keeps it, the others take the ECO's free slots in order (slot 0 is
//! the one a static `ip6` applies to), up to [`server::MAX_SLOTS`]. IA_TA is
//! answered NoAddrsAvail and IA_PD NoPrefixAvail.
//!
//! The server's DUID is a DUID-LL of the bridge MAC ([`Config::new`]). The bridge MAC
//! is derived from the network id (`MacAddr::derive(["bridge", id])`), so it is the
//! same after every restart, reboot and upgrade without any stored state, differs
//! between networks, and clients (and Wireshark) show it as a MAC an operator can
//! recognise. DUID-UUID from the network id would do as well; DUID-LLT would not
//! (its time must then be stored).
//!
//! Client FQDN (option 39) is read for the host name only; no FQDN option is sent
//! back (econet's DNS names ECOs itself). Relay messages are dropped: econet serves
//! its own links only. Messages unicast to the server get UseMulticast where RFC 8415
//! §18.4 says so (econet never sends the Server Unicast option).
//!
//! Allocations outlive leases and apps, and are persisted as the IPv4 server's are:
//! see [`server`] and [`store`].

pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

use crate::addr::MacAddr;
pub use crate::dhcp::EndpointKey;
use crate::wire::dhcpv6::Duid;
pub use server::Server;
use std::net::Ipv6Addr;
use std::time::Duration;

/// A known endpoint of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub key: EndpointKey,
    /// The ECO's own MAC: only frames from it get addresses.
    pub mac: MacAddr,
    pub static_ip6: Option<Ipv6Addr>,
    /// The app name: the lease's host name when the ECO sends none.
    pub hostname: String,
}

/// The server's configuration, filled by the shell from the config model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The network's /64; the low 64 bits are ignored.
    pub prefix: Ipv6Addr,
    /// The server's DUID (option 2), as bytes.
    pub server_duid: Vec<u8>,
    /// The range dynamic addresses come from (inside the /64).
    pub range_start: Ipv6Addr,
    pub range_end: Ipv6Addr,
    pub preferred_secs: u32,
    pub valid_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// Option 23 (the gateway6).
    pub dns: Vec<Ipv6Addr>,
    /// Option 24.
    pub domains: Vec<String>,
    /// Option 32, in replies to Information-request.
    pub info_refresh_secs: Option<u32>,
    /// Answer a Solicit with Rapid Commit by a Reply (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
    pub endpoints: Vec<Endpoint>,
    /// How long an address declined by a client is kept out of the pool.
    pub decline_hold: Duration,
}

impl Config {
    /// Defaults: DUID-LL of the bridge MAC, `<prefix>::1` as DNS server (the
    /// gateway6), the range `<prefix>::1000`–`<prefix>::ffff`, one-hour lifetimes,
    /// T1 and T2 at 0.5 and 0.8 of them (RFC 8415 §21.4), rapid commit on, a
    /// ten-minute hold on declined addresses.
    pub fn new(prefix: Ipv6Addr, bridge_mac: MacAddr) -> Config {
        let p = u128::from(prefix) & PREFIX_MASK;
        Config {
            prefix: Ipv6Addr::from(p),
            server_duid: Duid::ll_ethernet(bridge_mac.0).to_vec(),
            range_start: Ipv6Addr::from(p | 0x1000),
            range_end: Ipv6Addr::from(p | 0xffff),
            preferred_secs: 3600,
            valid_secs: 3600,
            t1_secs: 1800,
            t2_secs: 2880,
            dns: vec![Ipv6Addr::from(p | 1)],
            domains: Vec::new(),
            info_refresh_secs: None,
            rapid_commit: true,
            endpoints: Vec::new(),
            decline_hold: Duration::from_secs(600),
        }
    }
}

/// The high 64 bits: the /64 of an address.
pub const PREFIX_MASK: u128 = !0u128 << 64;

/// A received DHCPv6 message.
#[derive(Debug, Clone, Copy)]
pub struct Rx<'a> {
    /// The endpoint (bridge port) the frame arrived on; `None` (not an ECO endpoint,
    /// e.g. the uplink) is ignored.
    pub endpoint: Option<&'a EndpointKey>,
    /// The frame's source MAC.
    pub src_mac: MacAddr,
    /// The IPv6 source address (the client's link-local address).
    pub src_ip: Ipv6Addr,
    /// Whether it was sent to one of the server's unicast addresses rather than to
    /// All_DHCP_Relay_Agents_and_Servers (ff02::1:2).
    pub unicast: bool,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// A reply whose UDP payload (server port 547 → `dst_port`) is in the caller's
/// buffer: the shell sends it from its link-local address to `dst_ip` (the client's
/// source address), framed to `dst_mac` (the frame's source MAC, so no neighbour
/// discovery is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub dst_mac: MacAddr,
    pub dst_ip: Ipv6Addr,
    pub dst_port: u16,
    pub payload_len: usize,
}

/// A lease the server granted (every Reply with an address with non-zero lifetimes:
/// Request, Renew, Rebind, rapid commit) or ended (Release, Decline, expiry, an
/// address taken back), with the sender's MAC: anti-spoofing admits or dismisses
/// exactly that (MAC, address) on that endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Granted {
        endpoint: EndpointKey,
        mac: MacAddr,
        ip: Ipv6Addr,
    },
    Ended {
        endpoint: EndpointKey,
        mac: MacAddr,
        ip: Ipv6Addr,
    },
}

/// An active lease, for status and DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo<'a> {
    pub endpoint: &'a EndpointKey,
    /// 0 for the ECO's first IA_NA, 1.. for further ones.
    pub slot: u8,
    pub mac: MacAddr,
    pub ip: Ipv6Addr,
    /// The client FQDN's host label if it is a valid name, else the app name.
    pub hostname: &'a str,
    /// Wall-clock expiry (end of the valid lifetime), unix seconds.
    pub expires: u64,
}
