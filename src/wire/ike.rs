//! IKEv2 messages (RFC 7296 §3): the fixed header as a zero-copy [`Packet`] view, a
//! payload-chain iterator ([`Payloads`]) that stops at the first inconsistency instead
//! of panicking, and owned [`Payload`] reprs (IKE messages are small and rare, so the
//! reprs own their bytes; the per-packet data path is ESP, see [`super::esp`]).
//!
//! The Encrypted payload (SK) is kept opaque here: its "next payload" field names the
//! first payload *inside* the ciphertext, so the iterator ends the outer chain at SK and
//! hands its raw body to the IKE core, which decrypts it and parses the inner chain with
//! [`parse_chain`].

use super::{Error, Result};
use std::net::Ipv4Addr;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
    pub const PAYLOADS: RangeFrom<usize> = 28..;
}

/// The fixed IKE header.
pub const HEADER_LEN: usize = field::PAYLOADS.start;
/// The generic payload header (next payload, critical bit, length).
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// Major version 2, minor 0.
pub const VERSION_2: u8 = 0x20;

/// Exchange types (§3.1).
pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

/// Header flags (§3.1).
pub mod flags {
    /// Set by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// "Can speak a higher major version": never set by IKEv2 implementations.
    pub const VERSION: u8 = 0x10;
    /// The message is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload type numbers (§3.2).
pub mod payload_type {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    pub const CP: u8 = 47;
    pub const EAP: u8 = 48;
    /// Encrypted fragment (RFC 7383); econet never announces fragmentation.
    pub const SKF: u8 = 53;
}

/// Security protocol ids in proposals, notifies and deletes (§3.3.1).
pub mod protocol {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

/// Transform types and ids (§3.3.2, IANA registry).
pub mod transform {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    /// Diffie-Hellman / key exchange method.
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;

    pub const ENCR_AES_CBC: u16 = 12;
    pub const ENCR_AES_GCM_16: u16 = 20;
    pub const PRF_HMAC_SHA1: u16 = 2;
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    pub const INTEG_NONE: u16 = 0;
    pub const DH_NONE: u16 = 0;
    pub const DH_ECP256: u16 = 19;
    pub const DH_CURVE25519: u16 = 31;
    pub const ESN_NONE: u16 = 0;
    pub const ESN_YES: u16 = 1;

    /// The Key Length attribute (TV format).
    pub const ATTR_KEY_LENGTH: u16 = 14;
}

/// Identification types (§3.5).
pub mod id_type {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const IPV6_ADDR: u8 = 5;
    pub const KEY_ID: u8 = 11;
}

/// Authentication methods (§3.8).
pub mod auth_method {
    pub const RSA_SIG: u8 = 1;
    pub const SHARED_KEY_MIC: u8 = 2;
    pub const DSS_SIG: u8 = 3;
}

/// Traffic selector types (§3.13.1).
pub mod ts_type {
    pub const IPV4_ADDR_RANGE: u8 = 7;
    pub const IPV6_ADDR_RANGE: u8 = 8;
}

/// Notify message types (§3.10.1). Below 16384: errors; from 16384: status.
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;

    pub const INITIAL_CONTACT: u16 = 16384;
    pub const SET_WINDOW_SIZE: u16 = 16385;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    pub const MOBIKE_SUPPORTED: u16 = 16396;
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;

    /// Whether a notify type is an error (§3.10.1).
    pub const fn is_error(kind: u16) -> bool {
        kind < 16384
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// A read/write view of an IKE message: the header and the payload bytes after it.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header fits and the length field covers the header and no more than
    /// the buffer (bytes past it are ignored by `payloads`).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.length() as usize;
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi_i(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::SPI_I])
    }

    pub fn spi_r(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::SPI_R])
    }

    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_PAYLOAD]
    }

    /// Major version in the high nibble, minor in the low one.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn exchange(&self) -> u8 {
        self.buffer.as_ref()[field::EXCHANGE]
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn message_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::MESSAGE_ID])
    }

    /// The length field: the whole message, header included.
    #[allow(clippy::len_without_is_empty)]
    pub fn length(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The payload bytes, up to the length field.
    pub fn payload_bytes(&self) -> &[u8] {
        let len = self.length() as usize;
        self.buffer.as_ref().get(HEADER_LEN..len).unwrap_or(&[])
    }

    /// The outer payload chain.
    pub fn payloads(&self) -> Payloads<'_> {
        Payloads::new(self.next_payload(), self.payload_bytes())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi_i(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_spi_r(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_next_payload(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = v;
    }

    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    pub fn set_exchange(&mut self, v: u8) {
        self.buffer.as_mut()[field::EXCHANGE] = v;
    }

    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    pub fn set_message_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// The meaning of an IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: u8,
    pub exchange: u8,
    pub flags: u8,
    pub message_id: u32,
    /// The whole message's length.
    pub length: u32,
}

impl Header {
    /// Parses the header; a major version other than 2 is `Unsupported` (the caller may
    /// answer INVALID_MAJOR_VERSION).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Header> {
        packet.check_len()?;
        if packet.version() >> 4 != 2 {
            return Err(Error::Unsupported);
        }
        Ok(Header {
            spi_i: packet.spi_i(),
            spi_r: packet.spi_r(),
            next_payload: packet.next_payload(),
            exchange: packet.exchange(),
            flags: packet.flags(),
            message_id: packet.message_id(),
            length: packet.length(),
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }

    /// Whether the sender is the original initiator of the IKE SA.
    pub fn from_initiator(&self) -> bool {
        self.flags & flags::INITIATOR != 0
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_spi_i(self.spi_i);
        packet.set_spi_r(self.spi_r);
        packet.set_next_payload(self.next_payload);
        packet.set_version(VERSION_2);
        packet.set_exchange(self.exchange);
        packet.set_flags(self.flags);
        packet.set_message_id(self.message_id);
        packet.set_length(self.length);
    }

    /// The header as 28 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut Packet::new_unchecked(&mut b[..]));
        b
    }
}

/// One payload of a chain, not yet interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (named by the previous payload or the header).
    pub kind: u8,
    /// The "next payload" field; for SK it names the first payload inside.
    pub next: u8,
    pub critical: bool,
    /// The body after the 4-byte generic header.
    pub body: &'a [u8],
}

/// Walks a payload chain. Yields an error once (and then ends) on a length that does
/// not fit or on bytes after the last payload; ends after SK/SKF, which must be last.
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    next: u8,
    rest: &'a [u8],
    done: bool,
}

impl<'a> Payloads<'a> {
    pub fn new(first: u8, bytes: &'a [u8]) -> Payloads<'a> {
        Payloads {
            next: first,
            rest: bytes,
            done: false,
        }
    }
}

impl<'a> Iterator for Payloads<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.next == payload_type::NONE {
            self.done = true;
            return if self.rest.is_empty() {
                None
            } else {
                Some(Err(Error::Malformed))
            };
        }
        self.done = true;
        let Some(head) = self.rest.get(..PAYLOAD_HEADER_LEN) else {
            return Some(Err(Error::Truncated));
        };
        let len = be16(&head[2..4]) as usize;
        if len < PAYLOAD_HEADER_LEN {
            return Some(Err(Error::Malformed));
        }
        let Some(body) = self.rest.get(PAYLOAD_HEADER_LEN..len) else {
            return Some(Err(Error::Truncated));
        };
        let raw = RawPayload {
            kind: self.next,
            next: head[0],
            critical: head[1] & 0x80 != 0,
            body,
        };
        self.rest = &self.rest[len..];
        if raw.kind == payload_type::SK || raw.kind == payload_type::SKF {
            if !self.rest.is_empty() {
                return Some(Err(Error::Malformed));
            }
            self.next = payload_type::NONE;
        } else {
            self.next = raw.next;
        }
        self.done = false;
        Some(Ok(raw))
    }
}

/// A transform (§3.3.2) with its one attribute econet knows, the key length; any
/// other attributes are kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub kind: u8,
    pub id: u16,
    pub key_len: Option<u16>,
    /// Attributes other than the key length, as they came. A transform with such
    /// attributes must not be chosen (§3.3.6).
    pub other_attrs: Vec<u8>,
}

impl Transform {
    pub const fn new(kind: u8, id: u16) -> Transform {
        Transform {
            kind,
            id,
            key_len: None,
            other_attrs: Vec::new(),
        }
    }

    pub const fn with_key_len(kind: u8, id: u16, bits: u16) -> Transform {
        Transform {
            kind,
            id,
            key_len: Some(bits),
            other_attrs: Vec::new(),
        }
    }

    /// Whether it carries attributes econet does not understand.
    pub fn unknown_attr(&self) -> bool {
        !self.other_attrs.is_empty()
    }

    fn parse(b: &[u8]) -> Result<Transform> {
        // b: the substructure after its 4-byte header: type, reserved, id, attributes.
        if b.len() < 4 {
            return Err(Error::Truncated);
        }
        let mut t = Transform::new(b[0], be16(&b[2..4]));
        let mut attrs = &b[4..];
        while !attrs.is_empty() {
            let a = attrs.get(..4).ok_or(Error::Truncated)?;
            let kind = be16(&a[0..2]);
            let len = if kind & 0x8000 != 0 {
                4
            } else {
                4 + be16(&a[2..4]) as usize
            };
            let attr = attrs.get(..len).ok_or(Error::Truncated)?;
            if kind == 0x8000 | transform::ATTR_KEY_LENGTH && t.key_len.is_none() {
                t.key_len = Some(be16(&a[2..4]));
            } else {
                t.other_attrs.extend_from_slice(attr);
            }
            attrs = &attrs[len..];
        }
        Ok(t)
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let len = 8 + if self.key_len.is_some() { 4 } else { 0 } + self.other_attrs.len();
        out.push(if last { 0 } else { 3 });
        out.push(0);
        out.extend_from_slice(
            &u16::try_from(len)
                .map_err(|_| Error::Malformed)?
                .to_be_bytes(),
        );
        out.push(self.kind);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        if let Some(bits) = self.key_len {
            out.extend_from_slice(&(0x8000 | transform::ATTR_KEY_LENGTH).to_be_bytes());
            out.extend_from_slice(&bits.to_be_bytes());
        }
        out.extend_from_slice(&self.other_attrs);
        Ok(())
    }
}

/// A proposal (§3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    /// Empty in IKE_SA_INIT; 8 bytes for an IKE SA rekey; 4 for ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// The transforms of one type, in order.
    pub fn of(&self, kind: u8) -> impl Iterator<Item = &Transform> {
        self.transforms.iter().filter(move |t| t.kind == kind)
    }

    /// The SPI as an ESP SPI (4 bytes).
    pub fn spi_u32(&self) -> Option<u32> {
        (self.spi.len() == 4).then(|| be32(&self.spi))
    }

    /// The SPI as an IKE SPI (8 bytes).
    pub fn spi_u64(&self) -> Option<u64> {
        (self.spi.len() == 8).then(|| be64(&self.spi))
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.push(if last { 0 } else { 2 });
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.push(self.num);
        out.push(self.protocol);
        out.push(u8::try_from(self.spi.len()).map_err(|_| Error::Malformed)?);
        out.push(u8::try_from(self.transforms.len()).map_err(|_| Error::Malformed)?);
        out.extend_from_slice(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(i + 1 == self.transforms.len(), out)?;
        }
        let len = u16::try_from(out.len() - start).map_err(|_| Error::Malformed)?;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

fn parse_proposals(mut b: &[u8]) -> Result<Vec<Proposal>> {
    let mut out = Vec::new();
    loop {
        let h = b.get(..8).ok_or(Error::Truncated)?;
        let last = h[0];
        let len = be16(&h[2..4]) as usize;
        if len < 8 {
            return Err(Error::Malformed);
        }
        let p = b.get(..len).ok_or(Error::Truncated)?;
        let spi_size = h[6] as usize;
        let n = h[7] as usize;
        let spi = p.get(8..8 + spi_size).ok_or(Error::Truncated)?.to_vec();
        let mut ts = &p[8 + spi_size..];
        let mut transforms = Vec::with_capacity(n);
        for i in 0..n {
            let th = ts.get(..4).ok_or(Error::Truncated)?;
            let tlen = be16(&th[2..4]) as usize;
            if tlen < 8 {
                return Err(Error::Malformed);
            }
            let tb = ts.get(4..tlen).ok_or(Error::Truncated)?;
            let more = i + 1 < n;
            if (th[0] == 3) != more {
                return Err(Error::Malformed);
            }
            transforms.push(Transform::parse(tb)?);
            ts = &ts[tlen..];
        }
        if !ts.is_empty() {
            return Err(Error::Malformed);
        }
        out.push(Proposal {
            num: h[4],
            protocol: h[5],
            spi,
            transforms,
        });
        b = &b[len..];
        match last {
            0 if b.is_empty() => return Ok(out),
            2 if !b.is_empty() => continue,
            _ => return Err(Error::Malformed),
        }
    }
}

/// An identification payload body (§3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    pub id_type: u8,
    pub data: Vec<u8>,
}

impl Id {
    /// The body as it is signed in AUTH (`RestOfInitIDPayload`, §2.15): type,
    /// three reserved bytes, data.
    pub fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.data.len());
        b.extend_from_slice(&[self.id_type, 0, 0, 0]);
        b.extend_from_slice(&self.data);
        b
    }
}

/// A notify payload body (§3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub kind: u16,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify about the IKE SA (no SPI).
    pub fn new(kind: u16, data: Vec<u8>) -> Notify {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            kind,
            data,
        }
    }
}

/// A delete payload body (§3.11): IKE (no SPIs) or ESP/AH SPIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: u8,
    pub spis: Vec<u32>,
}

/// One IPv4 traffic selector (§3.13.1); other types are kept opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsV4 {
    /// IP protocol, 0 for any.
    pub proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ts {
    V4(TsV4),
    Other {
        ts_type: u8,
        proto: u8,
        /// The selector after its 4-byte header.
        data: Vec<u8>,
    },
}

fn parse_ts(b: &[u8]) -> Result<Vec<Ts>> {
    let h = b.get(..4).ok_or(Error::Truncated)?;
    let n = h[0] as usize;
    let mut rest = &b[4..];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let th = rest.get(..4).ok_or(Error::Truncated)?;
        let len = be16(&th[2..4]) as usize;
        let t = rest.get(..len).ok_or(Error::Truncated)?;
        if th[0] == ts_type::IPV4_ADDR_RANGE {
            if len != 16 {
                return Err(Error::Malformed);
            }
            out.push(Ts::V4(TsV4 {
                proto: t[1],
                start_port: be16(&t[4..6]),
                end_port: be16(&t[6..8]),
                start: Ipv4Addr::new(t[8], t[9], t[10], t[11]),
                end: Ipv4Addr::new(t[12], t[13], t[14], t[15]),
            }));
        } else {
            if len < 4 {
                return Err(Error::Malformed);
            }
            out.push(Ts::Other {
                ts_type: th[0],
                proto: th[1],
                data: t[4..].to_vec(),
            });
        }
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(out)
}

fn emit_ts(ts: &[Ts], out: &mut Vec<u8>) -> Result<()> {
    out.push(u8::try_from(ts.len()).map_err(|_| Error::Malformed)?);
    out.extend_from_slice(&[0, 0, 0]);
    for t in ts {
        match t {
            Ts::V4(t) => {
                out.extend_from_slice(&[ts_type::IPV4_ADDR_RANGE, t.proto, 0, 16]);
                out.extend_from_slice(&t.start_port.to_be_bytes());
                out.extend_from_slice(&t.end_port.to_be_bytes());
                out.extend_from_slice(&t.start.octets());
                out.extend_from_slice(&t.end.octets());
            }
            Ts::Other {
                ts_type,
                proto,
                data,
            } => {
                let len = u16::try_from(data.len() + 4).map_err(|_| Error::Malformed)?;
                out.extend_from_slice(&[*ts_type, *proto]);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
    }
    Ok(())
}

/// The meaning of one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI(Id),
    IdR(Id),
    Auth {
        method: u8,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    Vendor(Vec<u8>),
    TsI(Vec<Ts>),
    TsR(Vec<Ts>),
    /// The Encrypted payload, still encrypted: IV, ciphertext, ICV.
    Sk {
        first: u8,
        data: Vec<u8>,
    },
    /// Configuration payload, kept raw (econet neither asks for nor hands out
    /// addresses).
    Cp(Vec<u8>),
    /// Any other payload, kept raw.
    Unknown {
        kind: u8,
        critical: bool,
        body: Vec<u8>,
    },
}

impl Payload {
    /// Interprets one raw payload.
    pub fn parse(raw: &RawPayload<'_>) -> Result<Payload> {
        let b = raw.body;
        Ok(match raw.kind {
            payload_type::SA => Payload::Sa(parse_proposals(b)?),
            payload_type::KE => {
                let h = b.get(..4).ok_or(Error::Truncated)?;
                Payload::Ke {
                    group: be16(&h[0..2]),
                    data: b[4..].to_vec(),
                }
            }
            payload_type::IDI | payload_type::IDR => {
                let h = b.get(..4).ok_or(Error::Truncated)?;
                let id = Id {
                    id_type: h[0],
                    data: b[4..].to_vec(),
                };
                if raw.kind == payload_type::IDI {
                    Payload::IdI(id)
                } else {
                    Payload::IdR(id)
                }
            }
            payload_type::AUTH => {
                let h = b.get(..4).ok_or(Error::Truncated)?;
                Payload::Auth {
                    method: h[0],
                    data: b[4..].to_vec(),
                }
            }
            payload_type::NONCE => Payload::Nonce(b.to_vec()),
            payload_type::NOTIFY => {
                let h = b.get(..4).ok_or(Error::Truncated)?;
                let spi_size = h[1] as usize;
                let spi = b.get(4..4 + spi_size).ok_or(Error::Truncated)?;
                Payload::Notify(Notify {
                    protocol: h[0],
                    spi: spi.to_vec(),
                    kind: be16(&h[2..4]),
                    data: b[4 + spi_size..].to_vec(),
                })
            }
            payload_type::DELETE => {
                let h = b.get(..4).ok_or(Error::Truncated)?;
                let (protocol, spi_size, n) = (h[0], h[1] as usize, be16(&h[2..4]) as usize);
                let body = &b[4..];
                let spis = match (protocol, spi_size) {
                    (protocol::IKE, 0) if n == 0 && body.is_empty() => Vec::new(),
                    (protocol::ESP | protocol::AH, 4) if body.len() == 4 * n => {
                        body.chunks_exact(4).map(be32).collect()
                    }
                    _ => return Err(Error::Malformed),
                };
                Payload::Delete(Delete { protocol, spis })
            }
            payload_type::VENDOR => Payload::Vendor(b.to_vec()),
            payload_type::TSI => Payload::TsI(parse_ts(b)?),
            payload_type::TSR => Payload::TsR(parse_ts(b)?),
            payload_type::SK => Payload::Sk {
                first: raw.next,
                data: b.to_vec(),
            },
            payload_type::CP => Payload::Cp(b.to_vec()),
            kind => Payload::Unknown {
                kind,
                critical: raw.critical,
                body: b.to_vec(),
            },
        })
    }

    pub fn kind(&self) -> u8 {
        match self {
            Payload::Sa(_) => payload_type::SA,
            Payload::Ke { .. } => payload_type::KE,
            Payload::IdI(_) => payload_type::IDI,
            Payload::IdR(_) => payload_type::IDR,
            Payload::Auth { .. } => payload_type::AUTH,
            Payload::Nonce(_) => payload_type::NONCE,
            Payload::Notify(_) => payload_type::NOTIFY,
            Payload::Delete(_) => payload_type::DELETE,
            Payload::Vendor(_) => payload_type::VENDOR,
            Payload::TsI(_) => payload_type::TSI,
            Payload::TsR(_) => payload_type::TSR,
            Payload::Sk { .. } => payload_type::SK,
            Payload::Cp(_) => payload_type::CP,
            Payload::Unknown { kind, .. } => *kind,
        }
    }

    /// Appends the body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Sa(props) => {
                for (i, p) in props.iter().enumerate() {
                    p.emit(i + 1 == props.len(), out)?;
                }
            }
            Payload::Ke { group, data } => {
                out.extend_from_slice(&group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body()),
            Payload::Auth { method, data } => {
                out.extend_from_slice(&[*method, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            Payload::Nonce(d) | Payload::Vendor(d) | Payload::Cp(d) => out.extend_from_slice(d),
            Payload::Notify(n) => {
                out.push(n.protocol);
                out.push(u8::try_from(n.spi.len()).map_err(|_| Error::Malformed)?);
                out.extend_from_slice(&n.kind.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                let spi_size = if d.protocol == protocol::IKE { 0 } else { 4 };
                let n = u16::try_from(d.spis.len()).map_err(|_| Error::Malformed)?;
                out.extend_from_slice(&[d.protocol, spi_size]);
                out.extend_from_slice(&n.to_be_bytes());
                if d.protocol != protocol::IKE {
                    for s in &d.spis {
                        out.extend_from_slice(&s.to_be_bytes());
                    }
                }
            }
            Payload::TsI(ts) | Payload::TsR(ts) => emit_ts(ts, out)?,
            Payload::Sk { data, .. } => out.extend_from_slice(data),
            Payload::Unknown { body, .. } => out.extend_from_slice(body),
        }
        Ok(())
    }
}

/// Parses a whole chain (outer or decrypted inner) into reprs.
pub fn parse_chain(first: u8, bytes: &[u8]) -> Result<Vec<Payload>> {
    Payloads::new(first, bytes)
        .map(|raw| raw.and_then(|r| Payload::parse(&r)))
        .collect()
}

/// Appends a chain with its generic headers linked; returns the first payload's type
/// (for the header or the SK payload). An SK payload must be last: its "next payload"
/// field is its `first`.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<u8> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Sk { first, .. } => {
                if i + 1 != payloads.len() {
                    return Err(Error::Malformed);
                }
                *first
            }
            _ => payloads
                .get(i + 1)
                .map_or(payload_type::NONE, Payload::kind),
        };
        let start = out.len();
        let critical = matches!(p, Payload::Unknown { critical: true, .. });
        out.extend_from_slice(&[next, if critical { 0x80 } else { 0 }, 0, 0]);
        p.emit_body(out)?;
        let len = u16::try_from(out.len() - start).map_err(|_| Error::Malformed)?;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(payloads.first().map_or(payload_type::NONE, Payload::kind))
}

/// A whole message with its outer payloads (an SK payload stays encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a message whose length field must match the buffer exactly.
    pub fn parse(bytes: &[u8]) -> Result<Message> {
        let p = Packet::new_checked(bytes)?;
        let header = Header::parse(&p)?;
        if header.length as usize != bytes.len() {
            return Err(Error::Malformed);
        }
        let payloads = parse_chain(header.next_payload, p.payload_bytes())?;
        Ok(Message { header, payloads })
    }

    /// Serializes; `header.next_payload` and `header.length` are filled in.
    pub fn emit(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; HEADER_LEN];
        let first = emit_chain(&self.payloads, &mut out)?;
        let mut h = self.header;
        h.next_payload = first;
        h.length = u32::try_from(out.len()).map_err(|_| Error::Malformed)?;
        h.emit(&mut Packet::new_unchecked(&mut out[..]));
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod captures;
#[cfg(test)]
mod tests;
