//! LISP for mesh networks (RFC 9300, 9301, 8061), as sans-I/O cores over
//! [`crate::wire::lisp`]: the device's [`xtr::Xtr`] and the
//! [`server::MapServer`] of `econet map-server`. They own no sockets and read no
//! clock; randomness (nonces, keys) comes from ring's system generator.
//!
//! Driving an [`xtr::Xtr`] (the shell's part, one per mesh network):
//! - Two UDP sockets on the port address: 4341 (data) and 4342 (control). Datagrams on
//!   4342 → [`xtr::Xtr::handle_control`]; on 4341 → [`xtr::Xtr::handle_data`], then
//!   write `payload[decap.inner]` to the TUN.
//! - Packets read from the TUN (the routes for the mesh subnet, minus local ECOs, point
//!   into it) → [`xtr::Xtr::encap`]; `Encap::Send` goes out of the data socket.
//!   `Negative` deserves an ICMP unreachable; `Miss` needs nothing (the packet
//!   leaves later as `Action::SendData`).
//! - [`xtr::Xtr::set_local_rloc`] with the port's address (and on every change or
//!   loss), [`xtr::Xtr::set_local_eids`] with the ECO addresses on the network.
//! - After every call, drain [`xtr::Xtr::poll`] until `None`; sleep at most until
//!   [`xtr::Xtr::poll_timeout`].
//! - Encapsulation adds 36 bytes (IPv4 + UDP + LISP), 84 with encryption
//!   ([`OVERHEAD_CLEAR`], [`OVERHEAD_ENCRYPTED`]): the ECO MTU is the port MTU minus that.
//!
//! Driving a [`server::MapServer`]: one UDP socket on `listen`:4342; each datagram →
//! `handle`, send what it returns; call `poll` at `poll_timeout` to expire
//! registrations.

pub mod cache;
pub mod crypto;
pub mod ms_config;
pub mod ms_store;
pub mod server;
pub mod xtr;

#[cfg(test)]
mod rfc_vector_tests;
#[cfg(test)]
pub(crate) mod tests;

/// Outer IPv4 + UDP + LISP header.
pub const OVERHEAD_CLEAR: usize = 20 + 8 + crate::wire::lisp::data::HEADER_LEN;
/// The same, with LISP-crypto's IV, GCM tag and ICV.
pub const OVERHEAD_ENCRYPTED: usize = OVERHEAD_CLEAR + crypto::OVERHEAD;
