//! Packet formats, in the style of smoltcp's `wire`: each format is a zero-copy
//! `Packet<T: AsRef<[u8]>>` view with its field ranges in a `mod field`, a checked
//! constructor (`new_checked`) that validates lengths before any accessor runs, and a
//! `Repr` (the parsed, owned meaning) with `parse` and `emit`. Nothing here panics on
//! any input; tests use bytes captured from real peers.

pub mod dns;

use std::fmt;

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its headers or its length fields say.
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
    /// Well-formed, but a feature econet does not handle.
    Unsupported,
    /// A checksum or integrity check failed.
    Checksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
            Error::Checksum => "bad checksum",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

pub mod arp;
pub mod dhcp;
pub mod dhcpv6;
pub mod esp;
pub mod ethernet;
pub mod icmpv6;
pub mod ike;
pub mod ipv4;
pub mod ipv6;
pub mod lisp;
pub mod udp;

#[cfg(test)]
pub(crate) mod testdata;
