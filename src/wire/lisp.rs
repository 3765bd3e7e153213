//! LISP wire formats: the data header of RFC 9300 (UDP 4341) and the control
//! messages of RFC 9301 (UDP 4342), with the LCAF address types of RFC 8060 and the
//! Security Key LCAF of RFC 8061 (LISP-crypto). Fixed headers are zero-copy
//! `Packet<T>` views ([`data::Packet`], [`control::Packet`]); variable parts (EID
//! records, locators, addresses) are read through bounds-checked cursors into owned
//! `Repr`s. Nothing here panics on any input.

pub mod addr;
pub mod auth;
pub mod control;
pub mod data;
mod rw;

#[cfg(test)]
pub(crate) mod tests;

pub use addr::{Address, Eid, SecurityKey};
pub use auth::AuthAlg;
pub use control::{Ecm, Locator, MapNotify, MapRegister, MapReply, MapRequest, Record, XtrId};

/// The data port: encapsulated packets.
pub const DATA_PORT: u16 = 4341;
/// The control port: Map-Requests, Map-Replies, registrations.
pub const CONTROL_PORT: u16 = 4342;
