//! Addresses learned for `host` matches: what econet's DNS told ECOs of a network.
//!
//! One set per network in the `inet econet` table, named by [`set_name`], with
//! elements `name id . IPv4 address` ([`key`]), each with a timeout. An ACE's
//! `host` match looks its remote address up under the host name's id.

use std::net::Ipv4Addr;

/// Most learned addresses per network (the set's size).
pub const MAX_PER_NET: u32 = 4096;
/// A learned address is kept at least this long, and at most `MAX_TTL_SECS`.
pub const MIN_TTL_SECS: u32 = 60;
pub const MAX_TTL_SECS: u32 = 24 * 3600;

/// The names of the learned-address sets begin so.
pub const SET_PREFIX: &str = "hosts4_";

/// The set of learned addresses on the network with bridge `bridge`.
pub fn set_name(bridge: &str) -> String {
    format!("{SET_PREFIX}{bridge}")
}

/// The elements (no timeout) of the `static_dns` entries under an ACL host name.
pub fn static_elems(hosts: &[String], static_dns: &[crate::config::HostEntry]) -> Vec<[u8; 8]> {
    let mut out = Vec::new();
    for h in hosts {
        for e in static_dns {
            let name = e.host.trim_end_matches('.').to_ascii_lowercase();
            let under = name == *h
                || (name.len() > h.len()
                    && name.ends_with(h.as_str())
                    && name.as_bytes()[name.len() - h.len() - 1] == b'.');
            if under {
                out.extend(e.addrs.iter().map(|a| key(name_id(h), *a)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The id of a host name (lowercase, no trailing dot) in its network's set.
pub fn name_id(host: &str) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, host.as_bytes());
    let h = d.as_ref();
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// The set key: the name id (big-endian) then the address.
pub fn key(id: u32, addr: Ipv4Addr) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&id.to_be_bytes());
    k[4..].copy_from_slice(&addr.octets());
    k
}
