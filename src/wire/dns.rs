//! DNS messages (RFC 1035), with EDNS0's OPT record (RFC 6891) and AAAA (RFC 3596).
//!
//! Reading: [`Packet`] is the zero-copy header view; [`Questions`] and [`Records`] walk
//! the sections, yielding borrowed [`Question`]s and [`Record`]s whose [`Name`]s point
//! into the message. Every name is validated when it is read (bounded decompression:
//! pointers must point strictly backwards, so loops and forward pointers are rejected;
//! labels ≤ 63, names ≤ 255), so later walks over it cannot misbehave.
//!
//! Writing: [`Builder`] emits a message into a caller's buffer with name compression,
//! under a size limit, rolling back a record that does not fit so the caller can set
//! TC and stop at a record boundary. Names to write are uncompressed wire format
//! (`\x03web\x03eco\x08internal\x00`), usually held in a stack [`NameBuf`].

use super::{Error, Result};
use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[cfg(test)]
pub(crate) mod captures;

/// Byte ranges of the header fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const ID: Field = 0..2;
    pub const FLAGS: Field = 2..4;
    pub const QDCOUNT: Field = 4..6;
    pub const ANCOUNT: Field = 6..8;
    pub const NSCOUNT: Field = 8..10;
    pub const ARCOUNT: Field = 10..12;
    pub const HEADER_END: usize = 12;
}

pub const HEADER_LEN: usize = field::HEADER_END;
/// Longest name in wire form, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;
/// The UDP payload every DNS client accepts; more needs EDNS0.
pub const MIN_UDP_PAYLOAD: usize = 512;
/// Size of an OPT record with no options.
pub const OPT_LEN: usize = 11;

/// Header flag bits (the second 16-bit word).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const OPCODE_SHIFT: u16 = 11;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const RCODE_MASK: u16 = 0x000f;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Query,
    IQuery,
    Status,
    Notify,
    Update,
    Unknown(u8),
}

impl From<u8> for Opcode {
    fn from(v: u8) -> Opcode {
        match v {
            0 => Opcode::Query,
            1 => Opcode::IQuery,
            2 => Opcode::Status,
            4 => Opcode::Notify,
            5 => Opcode::Update,
            v => Opcode::Unknown(v),
        }
    }
}

impl From<Opcode> for u8 {
    fn from(v: Opcode) -> u8 {
        match v {
            Opcode::Query => 0,
            Opcode::IQuery => 1,
            Opcode::Status => 2,
            Opcode::Notify => 4,
            Opcode::Update => 5,
            Opcode::Unknown(v) => v & 0x0f,
        }
    }
}

/// The four-bit header rcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    Unknown(u8),
}

impl From<u8> for Rcode {
    fn from(v: u8) -> Rcode {
        match v {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            v => Rcode::Unknown(v),
        }
    }
}

impl From<Rcode> for u8 {
    fn from(v: Rcode) -> u8 {
        match v {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::Unknown(v) => v & 0x0f,
        }
    }
}

/// An RR type. A newtype rather than an enum: unknown types pass through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type(pub u16);

impl Type {
    pub const A: Type = Type(1);
    pub const NS: Type = Type(2);
    pub const CNAME: Type = Type(5);
    pub const SOA: Type = Type(6);
    pub const PTR: Type = Type(12);
    pub const MX: Type = Type(15);
    pub const TXT: Type = Type(16);
    pub const AAAA: Type = Type(28);
    pub const OPT: Type = Type(41);
    pub const IXFR: Type = Type(251);
    pub const AXFR: Type = Type(252);
    pub const ANY: Type = Type(255);
}

/// An RR class (for OPT records this field is the UDP payload size instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class(pub u16);

impl Class {
    pub const IN: Class = Class(1);
    pub const CH: Class = Class(3);
    pub const ANY: Class = Class(255);
}

fn be16(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at.checked_add(2).ok_or(Error::Truncated)?) {
        Some(&[x, y]) => Ok(u16::from_be_bytes([x, y])),
        _ => Err(Error::Truncated),
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at.checked_add(4).ok_or(Error::Truncated)?) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Error::Truncated),
    }
}

/// A zero-copy view of a DNS message's header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors then read short buffers as zeros.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer that holds at least a header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word(&self, f: field::Field) -> u16 {
        be16(self.buffer.as_ref(), f.start).unwrap_or(0)
    }

    pub fn id(&self) -> u16 {
        self.word(field::ID)
    }
    /// The raw flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub fn flags(&self) -> u16 {
        self.word(field::FLAGS)
    }
    pub fn qr(&self) -> bool {
        self.flags() & flags::QR != 0
    }
    pub fn opcode(&self) -> Opcode {
        Opcode::from(((self.flags() & flags::OPCODE_MASK) >> flags::OPCODE_SHIFT) as u8)
    }
    pub fn aa(&self) -> bool {
        self.flags() & flags::AA != 0
    }
    pub fn tc(&self) -> bool {
        self.flags() & flags::TC != 0
    }
    pub fn rd(&self) -> bool {
        self.flags() & flags::RD != 0
    }
    pub fn ra(&self) -> bool {
        self.flags() & flags::RA != 0
    }
    pub fn ad(&self) -> bool {
        self.flags() & flags::AD != 0
    }
    pub fn cd(&self) -> bool {
        self.flags() & flags::CD != 0
    }
    pub fn rcode(&self) -> Rcode {
        Rcode::from((self.flags() & flags::RCODE_MASK) as u8)
    }
    pub fn qdcount(&self) -> u16 {
        self.word(field::QDCOUNT)
    }
    pub fn ancount(&self) -> u16 {
        self.word(field::ANCOUNT)
    }
    pub fn nscount(&self) -> u16 {
        self.word(field::NSCOUNT)
    }
    pub fn arcount(&self) -> u16 {
        self.word(field::ARCOUNT)
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The question section.
    pub fn questions(&self) -> Questions<'a> {
        Questions::new(self.buffer, self.qdcount())
    }

    /// The answer, authority and additional sections (the questions are skipped, so
    /// a bad question is an error here too).
    pub fn records(&self) -> Result<Records<'a>> {
        let mut q = self.questions();
        for r in q.by_ref() {
            r?;
        }
        Ok(Records::new(
            self.buffer,
            q.offset(),
            [self.ancount(), self.nscount(), self.arcount()],
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word(&mut self, f: field::Field, v: u16) {
        if let Some(b) = self.buffer.as_mut().get_mut(f) {
            b.copy_from_slice(&v.to_be_bytes());
        }
    }
    fn set_flag(&mut self, bit: u16, on: bool) {
        let f = self.flags();
        self.set_flags(if on { f | bit } else { f & !bit });
    }

    pub fn set_id(&mut self, v: u16) {
        self.set_word(field::ID, v)
    }
    pub fn set_flags(&mut self, v: u16) {
        self.set_word(field::FLAGS, v)
    }
    pub fn set_qr(&mut self, on: bool) {
        self.set_flag(flags::QR, on)
    }
    pub fn set_opcode(&mut self, op: Opcode) {
        let f = self.flags() & !flags::OPCODE_MASK;
        self.set_flags(f | (((u8::from(op) as u16) << flags::OPCODE_SHIFT) & flags::OPCODE_MASK))
    }
    pub fn set_aa(&mut self, on: bool) {
        self.set_flag(flags::AA, on)
    }
    pub fn set_tc(&mut self, on: bool) {
        self.set_flag(flags::TC, on)
    }
    pub fn set_rd(&mut self, on: bool) {
        self.set_flag(flags::RD, on)
    }
    pub fn set_ra(&mut self, on: bool) {
        self.set_flag(flags::RA, on)
    }
    pub fn set_rcode(&mut self, rc: Rcode) {
        let f = self.flags() & !flags::RCODE_MASK;
        self.set_flags(f | u8::from(rc) as u16)
    }
    pub fn set_qdcount(&mut self, v: u16) {
        self.set_word(field::QDCOUNT, v)
    }
    pub fn set_ancount(&mut self, v: u16) {
        self.set_word(field::ANCOUNT, v)
    }
    pub fn set_nscount(&mut self, v: u16) {
        self.set_word(field::NSCOUNT, v)
    }
    pub fn set_arcount(&mut self, v: u16) {
        self.set_word(field::ARCOUNT, v)
    }
}

/// A validated, possibly compressed name inside a message.
#[derive(Clone, Copy)]
pub struct Name<'a> {
    msg: &'a [u8],
    start: usize,
    wire_len: u8,
}

/// Reads the name at `at`: returns it and the offset just past it in place.
///
/// Each compression pointer must point before the start of the label run that holds
/// it (and past the header): targets strictly decrease, so decompression ends after
/// at most one hop per earlier byte, and neither loops nor forward pointers get in.
pub fn parse_name(msg: &[u8], at: usize) -> Result<(Name<'_>, usize)> {
    let mut pos = at;
    let mut limit = at;
    let mut end = None;
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(Error::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                let l = len as usize;
                total += l + 1;
                if total > MAX_NAME_LEN {
                    return Err(Error::Malformed);
                }
                if l == 0 {
                    break;
                }
                if pos + 1 + l > msg.len() {
                    return Err(Error::Truncated);
                }
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(Error::Truncated)?;
                let target = (((len & 0x3f) as usize) << 8) | lo as usize;
                if target >= limit || target < HEADER_LEN {
                    return Err(Error::Malformed);
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                limit = target;
                pos = target;
            }
            // 0x40 (extended label types, RFC 6891 §5) and 0x80 are not names we read.
            _ => return Err(Error::Malformed),
        }
    }
    let end = end.unwrap_or(pos + 1);
    Ok((
        Name {
            msg,
            start: at,
            wire_len: total as u8,
        },
        end,
    ))
}

impl<'a> Name<'a> {
    /// The labels, pointers followed.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: self.start,
            hops: 0,
        }
    }

    /// Length of the uncompressed wire form, root label included (1..=255).
    pub fn wire_len(&self) -> usize {
        self.wire_len as usize
    }

    /// Offset of the name's first byte in the message.
    pub fn offset(&self) -> usize {
        self.start
    }

    pub fn is_root(&self) -> bool {
        self.wire_len == 1
    }

    /// Case-insensitive equality (RFC 4343), label by label.
    pub fn eq_ignore_case(&self, other: &Name<'_>) -> bool {
        if self.wire_len != other.wire_len {
            return false;
        }
        let mut b = other.labels();
        for la in self.labels() {
            match b.next() {
                Some(lb) if la.eq_ignore_ascii_case(lb) => {}
                _ => return false,
            }
        }
        b.next().is_none()
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for l in self.labels() {
            any = true;
            for &c in l {
                if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
                    write!(f, "{}", c as char)?;
                } else {
                    write!(f, "\\{c:03}")?;
                }
            }
            f.write_str(".")?;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Iterator over a name's labels. Names come validated from [`parse_name`]; the walk
/// is still bounded and checked, so it ends quietly on anything odd.
#[derive(Clone)]
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    hops: u8,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let len = *self.msg.get(self.pos)?;
            if len & 0xc0 == 0xc0 {
                let lo = *self.msg.get(self.pos + 1)?;
                self.hops = self.hops.checked_add(1)?;
                self.pos = (((len & 0x3f) as usize) << 8) | lo as usize;
                continue;
            }
            if len == 0 || len as usize > MAX_LABEL_LEN {
                return None;
            }
            let l = self.msg.get(self.pos + 1..self.pos + 1 + len as usize)?;
            self.pos += 1 + len as usize;
            return Some(l);
        }
    }
}

/// An uncompressed name in wire form on the stack (no heap on the query path).
#[derive(Clone, Copy)]
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
}

impl Default for NameBuf {
    fn default() -> NameBuf {
        NameBuf::root()
    }
}

impl NameBuf {
    /// The root name (a single zero byte).
    pub const fn root() -> NameBuf {
        NameBuf {
            buf: [0; MAX_NAME_LEN],
            len: 1,
        }
    }

    /// Copies a message name out, optionally lowercased (for keys and matching).
    pub fn from_name(name: &Name<'_>, lowercase: bool) -> NameBuf {
        let mut n = NameBuf {
            buf: [0; MAX_NAME_LEN],
            len: 0,
        };
        let mut pos = 0usize;
        for l in name.labels() {
            // Validated names fit; the check keeps a foreign `Name` from panicking.
            if pos + 1 + l.len() >= MAX_NAME_LEN {
                break;
            }
            n.buf[pos] = l.len() as u8;
            let dst = &mut n.buf[pos + 1..pos + 1 + l.len()];
            dst.copy_from_slice(l);
            if lowercase {
                dst.make_ascii_lowercase();
            }
            pos += 1 + l.len();
        }
        n.buf[pos] = 0;
        n.len = (pos + 1) as u8;
        n
    }

    /// Parses dotted text (`web.eco.internal`, a trailing dot allowed). Labels must be
    /// 1..=63 bytes of printable ASCII other than dots; no escapes.
    pub fn from_text(text: &str) -> Result<NameBuf> {
        let t = text.strip_suffix('.').unwrap_or(text);
        let mut n = NameBuf::root();
        if t.is_empty() {
            return Ok(n);
        }
        let mut pos = 0usize;
        for label in t.split('.') {
            let l = label.as_bytes();
            if l.is_empty() || l.len() > MAX_LABEL_LEN || !l.iter().all(|c| c.is_ascii_graphic()) {
                return Err(Error::Malformed);
            }
            if pos + 1 + l.len() + 1 > MAX_NAME_LEN {
                return Err(Error::Malformed);
            }
            n.buf[pos] = l.len() as u8;
            n.buf[pos + 1..pos + 1 + l.len()].copy_from_slice(l);
            pos += 1 + l.len();
        }
        n.buf[pos] = 0;
        n.len = (pos + 1) as u8;
        Ok(n)
    }

    /// Builds a name from wire bytes, checking their structure.
    pub fn from_wire(wire: &[u8]) -> Result<NameBuf> {
        check_wire(wire)?;
        let mut n = NameBuf::root();
        n.buf[..wire.len()].copy_from_slice(wire);
        n.len = wire.len() as u8;
        Ok(n)
    }

    /// The uncompressed wire form, root label included.
    pub fn as_wire(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn make_lowercase(&mut self) {
        // Length bytes are ≤ 63, never ASCII letters, so lowercasing them is harmless.
        self.buf[..self.len as usize].make_ascii_lowercase();
    }

    /// Number of labels (the root not counted).
    pub fn label_count(&self) -> usize {
        wire_labels(self.as_wire()).count()
    }
}

impl fmt::Display for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Stored names are uncompressed, so a message-less `Name` renders them.
        let msg = self.as_wire();
        let n = Name {
            msg,
            start: 0,
            wire_len: self.len,
        };
        fmt::Display::fmt(&n, f)
    }
}

impl fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameBuf({self})")
    }
}

impl PartialEq for NameBuf {
    fn eq(&self, other: &NameBuf) -> bool {
        self.as_wire() == other.as_wire()
    }
}

impl Eq for NameBuf {}

/// Checks an uncompressed wire name: labels ≤ 63, a root terminator at the very end,
/// total ≤ 255, no pointers.
pub fn check_wire(wire: &[u8]) -> Result<()> {
    if wire.is_empty() || wire.len() > MAX_NAME_LEN {
        return Err(Error::Malformed);
    }
    let mut pos = 0usize;
    loop {
        let l = *wire.get(pos).ok_or(Error::Malformed)? as usize;
        if l == 0 {
            return if pos + 1 == wire.len() {
                Ok(())
            } else {
                Err(Error::Malformed)
            };
        }
        if l > MAX_LABEL_LEN {
            return Err(Error::Malformed);
        }
        pos += 1 + l;
    }
}

/// Appends the uncompressed wire form of a dotted name (a trailing dot allowed; ""
/// is the root), as DHCPv6's domain list and the RA's DNSSL carry names. A name with
/// an empty or over-long label, or over 255 bytes encoded, is `Malformed` and
/// nothing is appended.
pub fn encode_dotted(name: &str, out: &mut Vec<u8>) -> Result<()> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                out.truncate(start);
                return Err(Error::Malformed);
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME_LEN {
        out.truncate(start);
        return Err(Error::Malformed);
    }
    Ok(())
}

/// Labels of an uncompressed wire name (stops at the root or at anything odd).
pub fn wire_labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    core::iter::from_fn(move || {
        let l = *wire.get(pos)? as usize;
        if l == 0 || l > MAX_LABEL_LEN {
            return None;
        }
        let s = wire.get(pos + 1..pos + 1 + l)?;
        pos += 1 + l;
        Some(s)
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: Type,
    pub qclass: Class,
}

/// Iterator over the question section; stops after the first error.
#[derive(Clone)]
pub struct Questions<'a> {
    msg: &'a [u8],
    pos: usize,
    left: u16,
}

impl<'a> Questions<'a> {
    /// Questions starting right after the header.
    pub fn new(msg: &'a [u8], count: u16) -> Questions<'a> {
        Questions {
            msg,
            pos: HEADER_LEN,
            left: count,
        }
    }

    /// Where the next question (or, once done, the answer section) starts.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Questions<'a> {
    type Item = Result<Question<'a>>;
    fn next(&mut self) -> Option<Result<Question<'a>>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let (name, end) = parse_name(self.msg, self.pos)?;
            let qtype = Type(be16(self.msg, end)?);
            let qclass = Class(be16(self.msg, end + 2)?);
            self.pos = end + 4;
            Ok(Question {
                name,
                qtype,
                qclass,
            })
        })();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// A resource record read from a message.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub name: Name<'a>,
    pub rtype: Type,
    pub class: Class,
    pub ttl: u32,
    pub data: &'a [u8],
    /// Offset of the record's first byte.
    pub offset: usize,
    /// Offset of its RDATA (the TTL sits 6 bytes before it).
    pub data_offset: usize,
}

/// The EDNS0 parameters an OPT record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub ext_rcode: u8,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// The start of authority a negative answer carries (RFC 2308).
#[derive(Debug, Clone, Copy)]
pub struct Soa<'a> {
    pub mname: Name<'a>,
    pub rname: Name<'a>,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

#[derive(Debug, Clone, Copy)]
pub enum RData<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(Name<'a>),
    Cname(Name<'a>),
    Ptr(Name<'a>),
    Soa(Soa<'a>),
    Other(&'a [u8]),
}

impl<'a> Record<'a> {
    pub fn ttl_offset(&self) -> usize {
        self.data_offset - 6
    }

    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.data_offset + self.data.len()
    }

    /// The EDNS0 parameters, if this is an OPT record.
    pub fn edns(&self) -> Option<Edns> {
        if self.rtype != Type::OPT {
            return None;
        }
        Some(Edns {
            udp_size: self.class.0,
            ext_rcode: (self.ttl >> 24) as u8,
            version: (self.ttl >> 16) as u8,
            dnssec_ok: self.ttl & 0x8000 != 0,
        })
    }

    /// Decodes the RDATA of the types econet looks into; others come back raw.
    pub fn rdata(&self) -> Result<RData<'a>> {
        let msg = self.name.msg;
        let d = self.data;
        let name_in_data = |at: usize| -> Result<(Name<'a>, usize)> {
            let (n, end) = parse_name(msg, at)?;
            if end > self.end() {
                return Err(Error::Malformed);
            }
            Ok((n, end))
        };
        Ok(match self.rtype {
            Type::A => match d {
                &[a, b, c, e] => RData::A(Ipv4Addr::new(a, b, c, e)),
                _ => return Err(Error::Malformed),
            },
            Type::AAAA => {
                let o: [u8; 16] = d.try_into().map_err(|_| Error::Malformed)?;
                RData::Aaaa(Ipv6Addr::from(o))
            }
            Type::NS | Type::CNAME | Type::PTR => {
                let (n, end) = name_in_data(self.data_offset)?;
                if end != self.end() {
                    return Err(Error::Malformed);
                }
                match self.rtype {
                    Type::NS => RData::Ns(n),
                    Type::CNAME => RData::Cname(n),
                    _ => RData::Ptr(n),
                }
            }
            Type::SOA => {
                let (mname, e1) = name_in_data(self.data_offset)?;
                let (rname, e2) = name_in_data(e1)?;
                if e2 + 20 != self.end() {
                    return Err(Error::Malformed);
                }
                RData::Soa(Soa {
                    mname,
                    rname,
                    serial: be32(msg, e2)?,
                    refresh: be32(msg, e2 + 4)?,
                    retry: be32(msg, e2 + 8)?,
                    expire: be32(msg, e2 + 12)?,
                    minimum: be32(msg, e2 + 16)?,
                })
            }
            _ => RData::Other(d),
        })
    }
}

/// Iterator over the answer, authority and additional sections; stops after the
/// first error.
#[derive(Clone)]
pub struct Records<'a> {
    msg: &'a [u8],
    pos: usize,
    left: [u16; 3],
}

impl<'a> Records<'a> {
    /// Records starting at `pos`, with the three section counts.
    pub fn new(msg: &'a [u8], pos: usize, counts: [u16; 3]) -> Records<'a> {
        Records {
            msg,
            pos,
            left: counts,
        }
    }

    /// Where the next record starts (once done: where the message's records end).
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(Section, Record<'a>)>;
    fn next(&mut self) -> Option<Self::Item> {
        let (i, section) = if self.left[0] > 0 {
            (0, Section::Answer)
        } else if self.left[1] > 0 {
            (1, Section::Authority)
        } else if self.left[2] > 0 {
            (2, Section::Additional)
        } else {
            return None;
        };
        self.left[i] -= 1;
        let r = (|| {
            let start = self.pos;
            let (name, end) = parse_name(self.msg, start)?;
            let rtype = Type(be16(self.msg, end)?);
            let class = Class(be16(self.msg, end + 2)?);
            let ttl = be32(self.msg, end + 4)?;
            let rdlen = be16(self.msg, end + 8)? as usize;
            let data_offset = end + 10;
            let data = self
                .msg
                .get(data_offset..data_offset + rdlen)
                .ok_or(Error::Truncated)?;
            self.pos = data_offset + rdlen;
            Ok((
                section,
                Record {
                    name,
                    rtype,
                    class,
                    ttl,
                    data,
                    offset: start,
                    data_offset,
                },
            ))
        })();
        if r.is_err() {
            self.left = [0; 3];
        }
        Some(r)
    }
}

/// RDATA to emit.
#[derive(Debug, Clone, Copy)]
pub enum Data<'n> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A single name (PTR, NS, CNAME) in uncompressed wire form; compressed on write.
    Name(&'n [u8]),
    /// Bytes written as they are.
    Raw(&'n [u8]),
}

/// How many written names are remembered as compression targets.
const COMPRESS_SLOTS: usize = 32;

/// Writes a message into a buffer, compressing names. Sections must be written in
/// order (questions, answers, authority, additional). A question or record that does
/// not fit under the limit is rolled back and reported as [`Error::Truncated`], which
/// leaves a well-formed message cut at a record boundary.
pub struct Builder<'b> {
    buf: &'b mut [u8],
    len: usize,
    limit: usize,
    counts: [u16; 4],
    section: usize,
    comp: heapless::Vec<u16, COMPRESS_SLOTS>,
}

impl<'b> Builder<'b> {
    /// Starts a message with this id and flags word (see [`flags`]), counts zero.
    pub fn new(buf: &'b mut [u8], id: u16, flag_word: u16) -> Result<Builder<'b>> {
        let hdr = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        hdr.fill(0);
        hdr[field::ID].copy_from_slice(&id.to_be_bytes());
        hdr[field::FLAGS].copy_from_slice(&flag_word.to_be_bytes());
        let limit = buf.len();
        Ok(Builder {
            buf,
            len: HEADER_LEN,
            limit,
            counts: [0; 4],
            section: 0,
            comp: heapless::Vec::new(),
        })
    }

    /// Caps the message size (e.g. the client's UDP payload size); never above the
    /// buffer, never below what is already written.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len()).max(self.len);
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN && self.counts == [0; 4]
    }

    /// The header, to change flags as the answer takes shape.
    pub fn header(&mut self) -> Packet<&mut [u8]> {
        Packet::new_unchecked(&mut self.buf[..HEADER_LEN])
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.len + bytes.len();
        if end > self.limit {
            return Err(Error::Truncated);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_u16(&mut self, v: u16) -> Result<()> {
        self.put(&v.to_be_bytes())
    }

    /// Writes a name, pointing at an earlier copy of its longest known suffix.
    fn put_name(&mut self, wire: &[u8]) -> Result<()> {
        check_wire(wire)?;
        let mut i = 0usize;
        let mut new_starts: heapless::Vec<u16, COMPRESS_SLOTS> = heapless::Vec::new();
        loop {
            let l = wire[i] as usize;
            if l == 0 {
                self.put(&[0])?;
                break;
            }
            let suffix = &wire[i..];
            if let Some(&target) = self
                .comp
                .iter()
                .find(|&&o| name_at_eq(self.buf, o as usize, suffix))
            {
                self.put_u16(0xc000 | target)?;
                break;
            }
            if self.len < 0x3fff {
                let _ = new_starts.push(self.len as u16);
            }
            self.put(&wire[i..i + 1 + l])?;
            i += 1 + l;
        }
        for s in new_starts {
            if self.comp.push(s).is_err() {
                break;
            }
        }
        Ok(())
    }

    fn enter(&mut self, section: usize) -> Result<()> {
        if section < self.section {
            return Err(Error::Malformed);
        }
        self.section = section;
        Ok(())
    }

    fn transaction(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let (len, comp) = (self.len, self.comp.len());
        let r = f(self);
        if r.is_err() {
            self.len = len;
            self.comp.truncate(comp);
        }
        r
    }

    /// Appends a question.
    pub fn question(&mut self, name: &[u8], qtype: Type, qclass: Class) -> Result<()> {
        self.enter(0)?;
        if self.counts[0] == u16::MAX {
            return Err(Error::Truncated);
        }
        self.transaction(|b| {
            b.put_name(name)?;
            b.put_u16(qtype.0)?;
            b.put_u16(qclass.0)
        })?;
        self.counts[0] += 1;
        Ok(())
    }

    /// Appends a record to `section` (which must not come before the last one used).
    pub fn record(
        &mut self,
        section: Section,
        name: &[u8],
        rtype: Type,
        class: Class,
        ttl: u32,
        data: Data<'_>,
    ) -> Result<()> {
        let s = section as usize + 1;
        self.enter(s)?;
        if self.counts[s] == u16::MAX {
            return Err(Error::Truncated);
        }
        self.transaction(|b| {
            b.put_name(name)?;
            b.put_u16(rtype.0)?;
            b.put_u16(class.0)?;
            b.put(&ttl.to_be_bytes())?;
            let len_at = b.len;
            b.put_u16(0)?;
            match data {
                Data::A(a) => b.put(&a.octets())?,
                Data::Aaaa(a) => b.put(&a.octets())?,
                Data::Name(n) => b.put_name(n)?,
                Data::Raw(r) => b.put(r)?,
            }
            let rdlen = u16::try_from(b.len - len_at - 2).map_err(|_| Error::Truncated)?;
            b.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
            Ok(())
        })?;
        self.counts[s] += 1;
        Ok(())
    }

    /// Appends an OPT record without options (RFC 6891 §6.1.2). `ext_rcode` is the
    /// upper eight bits of a 12-bit rcode (1 for BADVERS).
    pub fn opt(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool) -> Result<()> {
        let ttl = ((ext_rcode as u32) << 24) | if dnssec_ok { 0x8000 } else { 0 };
        self.record(
            Section::Additional,
            &[0],
            Type::OPT,
            Class(udp_size),
            ttl,
            Data::Raw(&[]),
        )
    }

    /// Writes the section counts; returns the message length.
    pub fn finish(self) -> usize {
        let c = self.counts;
        let mut p = Packet::new_unchecked(&mut self.buf[..HEADER_LEN]);
        p.set_qdcount(c[0]);
        p.set_ancount(c[1]);
        p.set_nscount(c[2]);
        p.set_arcount(c[3]);
        self.len
    }
}

/// Does the (possibly compressed) name at `at` in `msg` equal the uncompressed
/// `wire`, ignoring case? Bounded like [`Labels`].
fn name_at_eq(msg: &[u8], at: usize, wire: &[u8]) -> bool {
    let mut a = Labels {
        msg,
        pos: at,
        hops: 0,
    };
    let mut b = wire_labels(wire);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
    }
}

/// DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its
/// length in two bytes, big-endian, and a connection carries any number of them.
pub mod tcp {
    /// The length prefix.
    pub const PREFIX_LEN: usize = 2;
    /// The longest message a prefix can announce.
    pub const MAX_MESSAGE: usize = u16::MAX as usize;

    /// The input side of one connection: bytes as they are read, cut into messages.
    #[derive(Debug, Default)]
    pub struct Reader {
        buf: Vec<u8>,
    }

    impl Reader {
        /// Most bytes held: two whole messages of the largest size. A peer that sends
        /// more without its messages being taken is cut off.
        pub const MAX_BUFFERED: usize = 2 * (PREFIX_LEN + MAX_MESSAGE);

        /// Adds bytes read from the connection; `false` once more than
        /// [`Reader::MAX_BUFFERED`] bytes wait (close the connection).
        pub fn push(&mut self, bytes: &[u8]) -> bool {
            self.buf.extend_from_slice(bytes);
            self.buf.len() <= Self::MAX_BUFFERED
        }

        /// Takes the next complete message (without its prefix), if all of it is here.
        pub fn next_message(&mut self) -> Option<Vec<u8>> {
            let (prefix, rest) = self.buf.split_first_chunk::<PREFIX_LEN>()?;
            let len = usize::from(u16::from_be_bytes(*prefix));
            let msg = rest.get(..len)?.to_vec();
            self.buf.drain(..PREFIX_LEN + len);
            Some(msg)
        }

        /// Bytes waiting: a partial message, or messages not yet taken.
        pub fn buffered(&self) -> usize {
            self.buf.len()
        }
    }

    /// Appends `msg` with its length prefix to a connection's output; `false` (and
    /// nothing appended) when it is longer than [`MAX_MESSAGE`].
    pub fn write_message(out: &mut Vec<u8>, msg: &[u8]) -> bool {
        let Ok(len) = u16::try_from(msg.len()) else {
            return false;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(msg);
        true
    }
}

#[cfg(test)]
pub(crate) mod tests;
