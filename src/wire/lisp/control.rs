//! LISP control messages on UDP 4342 (RFC 9301 §5): Map-Request, Map-Reply,
//! Map-Register, Map-Notify and the Encapsulated Control Message, with their EID
//! records and locators. Only IPv4 EIDs are built; IPv6 and unknown-LCAF ITR-RLOCs or
//! locators of other peers are parsed and left for the caller to skip. Counts in the
//! headers bound every loop, and every read is checked, so no input panics.

use super::addr::{Address, Eid, SecurityKey};
use super::auth::{self, AuthAlg};
use super::rw::{Reader, Writer};
use crate::wire::{ipv4, udp, Error, Result};
use std::net::Ipv4Addr;

/// Control message types.
pub mod msg_type {
    pub const MAP_REQUEST: u8 = 1;
    pub const MAP_REPLY: u8 = 2;
    pub const MAP_REGISTER: u8 = 3;
    pub const MAP_NOTIFY: u8 = 4;
    pub const MAP_NOTIFY_ACK: u8 = 5;
    pub const ECM: u8 = 8;
}

/// Map-Reply record actions (RFC 9301 §5.4), for negative replies.
pub mod action {
    pub const NO_ACTION: u8 = 0;
    pub const NATIVELY_FORWARD: u8 = 1;
    pub const SEND_MAP_REQUEST: u8 = 2;
    pub const DROP: u8 = 3;
}

/// Record TTL meaning "forever".
pub const TTL_UNLIMITED: u32 = u32::MAX;

mod field {
    use core::ops::Range;
    pub const FIRST_WORD: Range<usize> = 0..4;
    pub const NONCE: Range<usize> = 4..12;
}

/// A view of the common start of a control message: type, flags, record count, and
/// (for every type but ECM) the nonce.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the first word is there, and the nonce for types that have one.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < 4 || (p.msg_type() != msg_type::ECM && len < field::NONCE.end) {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn first_word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FIRST_WORD];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn record_count(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    pub fn nonce(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buffer.as_ref()[field::NONCE]);
        u64::from_be_bytes(a)
    }
}

/// The type of a control message, if it has one byte.
pub fn message_type(buf: &[u8]) -> Option<u8> {
    buf.first().map(|b| b >> 4)
}

/// A locator of an EID record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    pub priority: u8,
    pub weight: u8,
    pub m_priority: u8,
    pub m_weight: u8,
    /// L: the locator is the sender's own.
    pub local: bool,
    /// p: the record answers an RLOC-probe for this locator.
    pub probed: bool,
    /// R: reachable.
    pub reachable: bool,
    /// IPv4, or a Security Key LCAF around IPv4; anything else is skipped by users.
    pub address: Address,
}

impl Locator {
    pub fn rloc(&self) -> Option<Ipv4Addr> {
        self.address.ipv4()
    }

    pub fn key(&self) -> Option<&SecurityKey> {
        self.address.key()
    }

    fn parse(r: &mut Reader<'_>) -> Result<Locator> {
        let (priority, weight, m_priority, m_weight) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let f = r.u16()?;
        Ok(Locator {
            priority,
            weight,
            m_priority,
            m_weight,
            local: f & 4 != 0,
            probed: f & 2 != 0,
            reachable: f & 1 != 0,
            address: Address::parse(r)?,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.bytes(&[self.priority, self.weight, self.m_priority, self.m_weight])?;
        w.u16(
            u16::from(self.local) << 2 | u16::from(self.probed) << 1 | u16::from(self.reachable),
        )?;
        self.address.emit(w)
    }
}

/// An EID record (mapping record) of a Map-Reply, Map-Register or Map-Notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Minutes; [`TTL_UNLIMITED`] is forever.
    pub ttl: u32,
    pub eid: Eid,
    /// ACT, meaningful when there are no locators.
    pub action: u8,
    /// A: the sender is authoritative.
    pub authoritative: bool,
    pub map_version: u16,
    pub locators: Vec<Locator>,
}

impl Record {
    fn parse(r: &mut Reader<'_>) -> Result<Record> {
        let ttl = r.u32()?;
        let count = r.u8()?;
        let mask_len = r.u8()?;
        let f = r.u16()?;
        let map_version = r.u16()? & 0x0fff;
        let eid = Eid::from_address(&Address::parse(r)?, mask_len)?;
        let mut locators = Vec::new();
        for _ in 0..count {
            locators.push(Locator::parse(r)?);
        }
        Ok(Record {
            ttl,
            eid,
            action: (f >> 13) as u8,
            authoritative: f & 0x1000 != 0,
            map_version,
            locators,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let count = u8::try_from(self.locators.len()).map_err(|_| Error::Malformed)?;
        if self.action > 7 || self.map_version > 0x0fff {
            return Err(Error::Malformed);
        }
        w.u32(self.ttl)?;
        w.u8(count)?;
        w.u8(self.eid.prefix.len())?;
        w.u16(u16::from(self.action) << 13 | u16::from(self.authoritative) << 12)?;
        w.u16(self.map_version)?;
        self.eid.address().emit(w)?;
        self.locators.iter().try_for_each(|l| l.emit(w))
    }

    /// The record alone, in its wire layout (RFC 9301 §5.4): what a map server keeps
    /// on disk.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let len = 12
            + self.eid.address().buffer_len()
            + self
                .locators
                .iter()
                .map(|l| 6 + l.address.buffer_len())
                .sum::<usize>();
        let mut buf = vec![0u8; len];
        let mut w = Writer::new(&mut buf);
        self.emit(&mut w)?;
        let n = w.pos();
        buf.truncate(n);
        Ok(buf)
    }

    /// One record that fills `buf` exactly (what [`Record::to_bytes`] wrote).
    pub fn from_bytes(buf: &[u8]) -> Result<Record> {
        let mut r = Reader::new(buf);
        let rec = Record::parse(&mut r)?;
        if !r.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(rec)
    }
}

/// Iterates over `count` records; stops at the first error (which it yields).
pub struct Records<'a> {
    r: Reader<'a>,
    left: u8,
}

impl<'a> Records<'a> {
    pub fn new(buf: &'a [u8], count: u8) -> Records<'a> {
        Records {
            r: Reader::new(buf),
            left: count,
        }
    }

    /// Bytes the records consumed so far.
    pub fn consumed(&self) -> usize {
        self.r.pos()
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Result<Record>> {
        if self.left == 0 {
            return None;
        }
        let rec = Record::parse(&mut self.r);
        self.left = if rec.is_ok() { self.left - 1 } else { 0 };
        Some(rec)
    }
}

fn parse_records(r: &mut Reader<'_>, count: u8) -> Result<Vec<Record>> {
    let mut it = Records::new(r.rest(), count);
    let recs = it.by_ref().collect::<Result<Vec<_>>>()?;
    r.bytes(it.consumed())?;
    Ok(recs)
}

/// Map-Request header bits after the IRC's neighbours (RFC 9301 §5.2).
mod req_bits {
    pub const LOCAL_XTR: u32 = 0x0000_4000;
    pub const DONT_REPLY: u32 = 0x0000_2000;
}

/// Map-Register header bits (RFC 9301 §5.6).
mod reg_bits {
    pub const PROXY_REPLY: u32 = 0x0800_0000;
    pub const ID_PRESENT: u32 = 0x0200_0000;
    pub const USE_TTL: u32 = 0x0000_0800;
    pub const WANT_NOTIFY: u32 = 0x0000_0100;
    /// Map-Notify and Map-Notify-Ack: the xTR-ID trailer is there (as tcpdump,
    /// Wireshark and lispers.net place it; RFC 9301 names no bit).
    pub const NOTIFY_ID_PRESENT: u32 = 0x0800_0000;
}

/// A Map-Request (RFC 9301 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRequest {
    /// A: authoritative (set by the ITR only on probes).
    pub authoritative: bool,
    /// P: RLOC-probe.
    pub probe: bool,
    /// S: Solicit-Map-Request.
    pub smr: bool,
    /// p: sent by a proxy ITR.
    pub pitr: bool,
    /// s: SMR-invoked.
    pub smr_invoked: bool,
    /// L: local-xtr, for xTRs of the same site; econet reads it and sends 0.
    pub local_xtr: bool,
    /// D: dont-map-reply; set on SMRs, and the receiver sends no Map-Reply.
    pub dont_reply: bool,
    pub nonce: u64,
    pub source_eid: Address,
    /// At least one, at most 32; the first IPv4 one is where the reply goes.
    pub itr_rlocs: Vec<Address>,
    /// The EIDs asked for (record count ≥ 1 when built by econet); records of other
    /// kinds are not kept.
    pub eids: Vec<Eid>,
    /// M: the sender's own mapping (in SMRs and probes).
    pub map_reply: Option<Record>,
}

impl MapRequest {
    pub fn parse(buf: &[u8]) -> Result<MapRequest> {
        let p = Packet::new_checked(buf)?;
        if p.msg_type() != msg_type::MAP_REQUEST {
            return Err(Error::Malformed);
        }
        let w = p.first_word();
        let mut r = Reader::new(buf);
        r.bytes(12)?;
        let source_eid = Address::parse(&mut r)?;
        let irc = ((w >> 8) & 0x1f) as usize + 1;
        let mut itr_rlocs = Vec::with_capacity(irc);
        for _ in 0..irc {
            itr_rlocs.push(Address::parse(&mut r)?);
        }
        // EID-records econet cannot look up (AFI 0, as some RLOC-probes carry, IPv6,
        // other LCAFs) are skipped, not the whole message.
        let mut eids = Vec::new();
        for _ in 0..p.record_count() {
            let _rsvd = r.u8()?;
            let mask_len = r.u8()?;
            let a = Address::parse(&mut r)?;
            match Eid::from_address(&a, mask_len) {
                Ok(e) => eids.push(e),
                Err(_) if a.ipv4().is_none() => {}
                Err(e) => return Err(e),
            }
        }
        let map_reply = if w & 0x0400_0000 != 0 {
            Some(Record::parse(&mut r)?)
        } else {
            None
        };
        Ok(MapRequest {
            authoritative: w & 0x0800_0000 != 0,
            probe: w & 0x0200_0000 != 0,
            smr: w & 0x0100_0000 != 0,
            pitr: w & 0x0080_0000 != 0,
            smr_invoked: w & 0x0040_0000 != 0,
            local_xtr: w & req_bits::LOCAL_XTR != 0,
            dont_reply: w & req_bits::DONT_REPLY != 0,
            nonce: p.nonce(),
            source_eid,
            itr_rlocs,
            eids,
            map_reply,
        })
    }

    /// Writes the message; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let n = self.itr_rlocs.len();
        if n == 0 || n > 32 {
            return Err(Error::Malformed);
        }
        let count = u8::try_from(self.eids.len()).map_err(|_| Error::Malformed)?;
        let mut word =
            u32::from(msg_type::MAP_REQUEST) << 28 | ((n as u32 - 1) << 8) | u32::from(count);
        for (bit, on) in [
            (0x0800_0000, self.authoritative),
            (0x0400_0000, self.map_reply.is_some()),
            (0x0200_0000, self.probe),
            (0x0100_0000, self.smr),
            (0x0080_0000, self.pitr),
            (0x0040_0000, self.smr_invoked),
            (req_bits::LOCAL_XTR, self.local_xtr),
            (req_bits::DONT_REPLY, self.dont_reply),
        ] {
            if on {
                word |= bit;
            }
        }
        let mut w = Writer::new(buf);
        w.u32(word)?;
        w.u64(self.nonce)?;
        self.source_eid.emit(&mut w)?;
        self.itr_rlocs.iter().try_for_each(|a| a.emit(&mut w))?;
        for e in &self.eids {
            w.u8(0)?;
            w.u8(e.prefix.len())?;
            e.address().emit(&mut w)?;
        }
        if let Some(rec) = &self.map_reply {
            rec.emit(&mut w)?;
        }
        Ok(w.pos())
    }

    /// Where a Map-Reply goes: the first IPv4 ITR-RLOC.
    pub fn reply_rloc(&self) -> Option<Ipv4Addr> {
        self.itr_rlocs.iter().find_map(Address::ipv4)
    }

    /// The ITR's public key, if it asked for LISP-crypto.
    pub fn itr_key(&self) -> Option<&SecurityKey> {
        self.itr_rlocs.iter().find_map(Address::key)
    }
}

/// A Map-Reply (RFC 9301 §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapReply {
    /// P: answers an RLOC-probe.
    pub probe: bool,
    /// E: the ETR does echo-nonce.
    pub echo_nonce: bool,
    /// S: LISP-SEC data follows.
    pub security: bool,
    pub nonce: u64,
    pub records: Vec<Record>,
}

impl MapReply {
    pub fn parse(buf: &[u8]) -> Result<MapReply> {
        let p = Packet::new_checked(buf)?;
        if p.msg_type() != msg_type::MAP_REPLY {
            return Err(Error::Malformed);
        }
        let w = p.first_word();
        let mut r = Reader::new(buf);
        r.bytes(12)?;
        Ok(MapReply {
            probe: w & 0x0800_0000 != 0,
            echo_nonce: w & 0x0400_0000 != 0,
            security: w & 0x0200_0000 != 0,
            nonce: p.nonce(),
            records: parse_records(&mut r, p.record_count())?,
        })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let count = u8::try_from(self.records.len()).map_err(|_| Error::Malformed)?;
        let mut word = u32::from(msg_type::MAP_REPLY) << 28 | u32::from(count);
        if self.probe {
            word |= 0x0800_0000;
        }
        if self.echo_nonce {
            word |= 0x0400_0000;
        }
        if self.security {
            word |= 0x0200_0000;
        }
        let mut w = Writer::new(buf);
        w.u32(word)?;
        w.u64(self.nonce)?;
        self.records.iter().try_for_each(|r| r.emit(&mut w))?;
        Ok(w.pos())
    }
}

/// The optional xTR-ID and site-ID trailer (I bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XtrId {
    pub xtr_id: [u8; 16],
    pub site_id: u64,
}

const XTR_ID_LEN: usize = 24;

/// A Map-Register (type 3) or Map-Notify (type 4): they share their layout
/// (RFC 9301 §5.6, §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRegister {
    /// P: the ETR asks the Map-Server to answer Map-Requests for it.
    pub proxy_reply: bool,
    /// M: want a Map-Notify back.
    pub want_notify: bool,
    /// T: time the registration out by the records' TTL, not the default.
    pub use_ttl: bool,
    pub nonce: u64,
    pub key_id: u8,
    pub alg: AuthAlg,
    pub records: Vec<Record>,
    pub xtr_id: Option<XtrId>,
}

/// A Map-Notify has the same fields; `proxy_reply`, `want_notify` and `use_ttl` are
/// not sent.
pub type MapNotify = MapRegister;

impl MapRegister {
    /// Parses a Map-Register or Map-Notify, without checking its MAC
    /// ([`auth::verify`] does, once the caller knows the key).
    pub fn parse(buf: &[u8]) -> Result<MapRegister> {
        let p = Packet::new_checked(buf)?;
        let t = p.msg_type();
        if t != msg_type::MAP_REGISTER && t != msg_type::MAP_NOTIFY {
            return Err(Error::Malformed);
        }
        let w = p.first_word();
        let mut r = Reader::new(buf);
        r.bytes(12)?;
        let key_id = r.u8()?;
        let alg = AuthAlg::from_id(r.u8()?).ok_or(Error::Unsupported)?;
        let auth_len = r.u16()? as usize;
        r.bytes(auth_len)?;
        let records = parse_records(&mut r, p.record_count())?;
        let has_xtr = if t == msg_type::MAP_REGISTER {
            w & reg_bits::ID_PRESENT != 0
        } else {
            w & reg_bits::NOTIFY_ID_PRESENT != 0
        };
        let xtr_id = if has_xtr {
            let mut xtr_id = [0u8; 16];
            xtr_id.copy_from_slice(r.bytes(16)?);
            Some(XtrId {
                xtr_id,
                site_id: r.u64()?,
            })
        } else {
            None
        };
        let reg = t == msg_type::MAP_REGISTER;
        Ok(MapRegister {
            proxy_reply: reg && w & reg_bits::PROXY_REPLY != 0,
            want_notify: reg && w & reg_bits::WANT_NOTIFY != 0,
            use_ttl: reg && w & reg_bits::USE_TTL != 0,
            nonce: p.nonce(),
            key_id,
            alg,
            records,
            xtr_id,
        })
    }

    fn emit_typed(&self, buf: &mut [u8], t: u8, key: &[u8]) -> Result<usize> {
        let count = u8::try_from(self.records.len()).map_err(|_| Error::Malformed)?;
        let mut word = u32::from(t) << 28 | u32::from(count);
        if t == msg_type::MAP_REGISTER {
            for (bit, on) in [
                (reg_bits::PROXY_REPLY, self.proxy_reply),
                (reg_bits::ID_PRESENT, self.xtr_id.is_some()),
                (reg_bits::USE_TTL, self.use_ttl),
                (reg_bits::WANT_NOTIFY, self.want_notify),
            ] {
                if on {
                    word |= bit;
                }
            }
        } else if self.xtr_id.is_some() {
            word |= reg_bits::NOTIFY_ID_PRESENT;
        }
        let mac_len = self.alg.mac_len();
        let len = {
            let mut w = Writer::new(buf);
            w.u32(word)?;
            w.u64(self.nonce)?;
            w.u8(self.key_id)?;
            w.u8(self.alg.id())?;
            w.u16(mac_len as u16)?;
            w.bytes(&[0u8; 32][..mac_len])?;
            self.records.iter().try_for_each(|r| r.emit(&mut w))?;
            if let Some(x) = &self.xtr_id {
                w.bytes(&x.xtr_id)?;
                w.u64(x.site_id)?;
            }
            w.pos()
        };
        auth::sign(&mut buf[..len], self.alg, key)?;
        Ok(len)
    }

    /// Writes an authenticated Map-Register; returns its length.
    pub fn emit_register(&self, buf: &mut [u8], key: &[u8]) -> Result<usize> {
        self.emit_typed(buf, msg_type::MAP_REGISTER, key)
    }

    /// Writes an authenticated Map-Notify; returns its length.
    pub fn emit_notify(&self, buf: &mut [u8], key: &[u8]) -> Result<usize> {
        self.emit_typed(buf, msg_type::MAP_NOTIFY, key)
    }

    /// Bytes the xTR-ID trailer takes, for size planning.
    pub const XTR_ID_LEN: usize = XTR_ID_LEN;
}

/// The acknowledgement of an authenticated message, as RFC 9301 §5.7 has it: for a
/// Map-Register the Map-Notify, for a Map-Notify the Map-Notify-Ack. Its fields are
/// copied from the message: the nonce, the Key ID and Algorithm ID, the
/// Authentication Data Length, the EID-records and the xTR-ID/site-ID trailer, these
/// last two byte for byte as received (a peer matches them exactly, down to an IID
/// mask-length econet itself would not send). Only the type, the header flags (a
/// Map-Notify has I where a Map-Register has it at another place, and nothing else)
/// and the Authentication Data, recomputed with `key`, are new. Bytes after the
/// trailer are not copied. Writes into `buf`; returns the length.
pub fn acknowledgement(msg: &[u8], key: &[u8], buf: &mut [u8]) -> Result<usize> {
    let p = Packet::new_checked(msg)?;
    let w = p.first_word();
    let (t, has_xtr) = match p.msg_type() {
        msg_type::MAP_REGISTER => (msg_type::MAP_NOTIFY, w & reg_bits::ID_PRESENT != 0),
        msg_type::MAP_NOTIFY => (
            msg_type::MAP_NOTIFY_ACK,
            w & reg_bits::NOTIFY_ID_PRESENT != 0,
        ),
        _ => return Err(Error::Malformed),
    };
    let mut r = Reader::new(msg);
    r.bytes(12)?;
    let key_id = r.u8()?;
    let alg_id = r.u8()?;
    let alg = AuthAlg::from_id(alg_id).ok_or(Error::Unsupported)?;
    let auth_len = usize::from(r.u16()?);
    if !alg.accepts(auth_len) {
        return Err(Error::Unsupported);
    }
    r.bytes(auth_len)?;
    let mut it = Records::new(r.rest(), p.record_count());
    it.by_ref().try_for_each(|rec| rec.map(|_| ()))?;
    let records = r.bytes(it.consumed())?;
    let trailer = if has_xtr { r.bytes(XTR_ID_LEN)? } else { &[] };
    let mut word = u32::from(t) << 28 | u32::from(p.record_count());
    if has_xtr {
        word |= reg_bits::NOTIFY_ID_PRESENT;
    }
    let len = {
        let mut o = Writer::new(buf);
        o.u32(word)?;
        o.u64(p.nonce())?;
        o.u8(key_id)?;
        o.u8(alg_id)?;
        o.u16(auth_len as u16)?;
        o.bytes(&[0u8; 32][..auth_len])?;
        o.bytes(records)?;
        o.bytes(trailer)?;
        o.pos()
    };
    let out = buf.get_mut(..len).ok_or(Error::Truncated)?;
    auth::sign_len(out, alg, key, auth_len)?;
    Ok(len)
}

/// An Encapsulated Control Message (RFC 9301 §5.8): the 4-byte LISP header (type 8),
/// then an IPv4 header and a UDP header around a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecm<'a> {
    /// S: LISP-SEC.
    pub security: bool,
    /// D: sent by a DDT node.
    pub ddt: bool,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// The inner UDP payload: the control message.
    pub message: &'a [u8],
}

/// Bytes in front of the inner message: ECM header, IPv4 and UDP headers.
pub const ECM_OVERHEAD: usize = 4 + ipv4::HEADER_LEN + udp::HEADER_LEN;

impl<'a> Ecm<'a> {
    /// Parses an ECM; the inner IPv4 checksum must be right, a UDP checksum (when
    /// not zero) too.
    pub fn parse(buf: &'a [u8]) -> Result<Ecm<'a>> {
        let p = Packet::new_checked(buf)?;
        if p.msg_type() != msg_type::ECM {
            return Err(Error::Malformed);
        }
        let w = p.first_word();
        let ip = ipv4::Packet::new_checked(&buf[4..])?;
        let ipr = ipv4::Repr::parse(&ip)?;
        if ipr.protocol != ipv4::Protocol::Udp {
            return Err(Error::Unsupported);
        }
        let u = udp::Packet::new_checked(ip.payload())?;
        udp::Repr::parse(&u, ipr.src_addr, ipr.dst_addr, udp::Checksum::Verify)?;
        let message = {
            let ip_payload: &'a [u8] = {
                let hl = ip.header_len() as usize;
                buf.get(4 + hl..4 + ip.total_len() as usize)
                    .ok_or(Error::Truncated)?
            };
            ip_payload
                .get(udp::HEADER_LEN..u.len() as usize)
                .ok_or(Error::Truncated)?
        };
        Ok(Ecm {
            security: w & 0x0800_0000 != 0,
            ddt: w & 0x0400_0000 != 0,
            src: ipr.src_addr,
            dst: ipr.dst_addr,
            src_port: u.src_port(),
            dst_port: u.dst_port(),
            message,
        })
    }

    /// Writes the ECM around `self.message`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = ECM_OVERHEAD + self.message.len();
        let out = buf.get_mut(..total).ok_or(Error::Truncated)?;
        let mut word = u32::from(msg_type::ECM) << 28;
        if self.security {
            word |= 0x0800_0000;
        }
        if self.ddt {
            word |= 0x0400_0000;
        }
        out[..4].copy_from_slice(&word.to_be_bytes());
        out[ECM_OVERHEAD..].copy_from_slice(self.message);
        let ipr = ipv4::Repr {
            src_addr: self.src,
            dst_addr: self.dst,
            protocol: ipv4::Protocol::Udp,
            payload_len: udp::HEADER_LEN + self.message.len(),
            ttl: 64,
        };
        ipr.emit(&mut ipv4::Packet::new_unchecked(&mut out[4..]))?;
        let ur = udp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            payload_len: self.message.len(),
        };
        ur.emit(
            &mut udp::Packet::new_unchecked(&mut out[4 + ipv4::HEADER_LEN..]),
            self.src,
            self.dst,
            udp::Checksum::Verify,
        )?;
        Ok(total)
    }
}
