//! ICMPv6 (RFC 4443) as a local network uses it: the neighbour-discovery messages of
//! RFC 4861 (Router Solicitation and Advertisement, Neighbor Solicitation and
//! Advertisement) and their options, with RDNSS and DNSSL (RFC 8106).
//!
//! Options are read with [`NdOptionsIter`], which never panics: an option of length
//! zero is `Malformed` (RFC 4861 §4.6: the whole packet is discarded), one running
//! past the message is `Truncated`; either ends the walk. [`NdOptions`] is an options
//! field checked once (every option readable, every option econet knows well-formed);
//! a message `Repr` holds one, so parse → emit writes the options back in their order.
//! Options econet does not know (the DAD nonce of RFC 7527, route information, …) are
//! kept as they are.
//!
//! The checksum covers the IPv6 pseudo-header (RFC 4443 §2.3), so `Repr::parse` and
//! `emit` take the addresses. It is always verified: the kernel computes ICMPv6
//! checksums in software, so a frame read off a veth or tap carries a complete one.
//!
//! Test data: whole frames captured on a veth between two network namespaces (Linux,
//! dnsmasq 2.90, radvd 2.19; see the `captures` module). Messages built by `emit` were
//! checked once by hand with Wireshark 4.0.17: `tests::ra_to_hex_dump` prints an RA
//! with every option (SLLA, MTU, prefix with L and A, RDNSS, DNSSL of two names) in a
//! 14-byte Ethernet and a 40-byte IPv6 header, as a hex dump:
//!
//! ```text
//! cargo test --lib wire::icmpv6::tests::ra_to_hex_dump -- --nocapture \
//!     | grep -E '^[0-9a-f]{6} ' > /tmp/ra.txt
//! text2pcap /tmp/ra.txt /tmp/ra.pcap
//! tshark -r /tmp/ra.pcap -V                 # every option decoded, checksum [correct]
//! tshark -r /tmp/ra.pcap -q -z expert       # prints nothing: no malformed, no warnings
//! ```

use super::ipv6::{self, NextHeader};
use super::{Error, Result};
use crate::addr::MacAddr;
use std::net::Ipv6Addr;

/// ICMPv6 message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    DstUnreachable,
    PktTooBig,
    TimeExceeded,
    ParamProblem,
    EchoRequest,
    EchoReply,
    RouterSolicit,
    RouterAdvert,
    NeighborSolicit,
    NeighborAdvert,
    Redirect,
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(v: u8) -> Message {
        match v {
            1 => Message::DstUnreachable,
            2 => Message::PktTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            o => Message::Unknown(o),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> u8 {
        match v {
            Message::DstUnreachable => 1,
            Message::PktTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(o) => o,
        }
    }
}

impl Message {
    /// Bytes before the options (neighbour discovery) or the body (the rest: type,
    /// code, checksum and the 32 bits every message has).
    pub fn header_len(self) -> usize {
        match self {
            Message::RouterSolicit => field::RS_OPTIONS,
            Message::RouterAdvert => field::RA_OPTIONS,
            Message::NeighborSolicit | Message::NeighborAdvert => field::NS_OPTIONS,
            Message::Redirect => 40,
            Message::Unknown(_) => MIN_HEADER_LEN,
            _ => 8,
        }
    }
}

/// Option types (RFC 4861 §4.6, RFC 8106).
pub mod opt {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const NONCE: u8 = 14;
    pub const RDNSS: u8 = 25;
    pub const DNSSL: u8 = 31;
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;

    // Router Solicitation: 4 reserved bytes, then options.
    pub const RS_OPTIONS: usize = 8;

    // Router Advertisement.
    pub const CUR_HOP_LIMIT: usize = 4;
    pub const RA_FLAGS: usize = 5;
    pub const ROUTER_LIFETIME: Range<usize> = 6..8;
    pub const REACHABLE_TIME: Range<usize> = 8..12;
    pub const RETRANS_TIMER: Range<usize> = 12..16;
    pub const RA_OPTIONS: usize = 16;

    // Neighbor Solicitation and Advertisement.
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
    pub const NS_OPTIONS: usize = 24;
}

/// Bytes of type, code and checksum: what every message has.
pub const MIN_HEADER_LEN: usize = 4;

/// RA flag: addresses by DHCPv6 ("managed").
pub const RA_MANAGED: u8 = 0x80;
/// RA flag: other configuration by DHCPv6.
pub const RA_OTHER: u8 = 0x40;
/// NA flags.
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;
/// Prefix information flags.
pub const PREFIX_ON_LINK: u8 = 0x80;
pub const PREFIX_AUTONOMOUS: u8 = 0x40;

/// One option as found in the message: its type and the bytes after the type and
/// length bytes (`8 × length − 2` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Walks an options field. Yields one `Err` for an option of length zero
/// (`Malformed`) or one running past the field (`Truncated`), then stops.
#[derive(Debug, Clone)]
pub struct NdOptionsIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> NdOptionsIter<'a> {
    pub fn new(options: &'a [u8]) -> NdOptionsIter<'a> {
        NdOptionsIter {
            buf: options,
            pos: 0,
        }
    }
}

impl<'a> Iterator for NdOptionsIter<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        // Whatever happens next, nothing after a broken option can be trusted.
        let stop = self.buf.len();
        let (kind, len) = match rest {
            [k, l, ..] => (*k, usize::from(*l) * 8),
            _ => {
                self.pos = stop;
                return Some(Err(Error::Truncated));
            }
        };
        if len == 0 {
            self.pos = stop;
            return Some(Err(Error::Malformed));
        }
        let Some(data) = rest.get(2..len) else {
            self.pos = stop;
            return Some(Err(Error::Truncated));
        };
        self.pos += len;
        Some(Ok(NdOption { kind, data }))
    }
}

/// A list of IPv6 addresses (RDNSS): validated bytes, a non-zero multiple of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs<'a>(&'a [u8]);

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    if b.len() == 16 {
        o.copy_from_slice(b);
    }
    Ipv6Addr::from(o)
}

impl<'a> Addrs<'a> {
    pub fn from_bytes(b: &'a [u8]) -> Result<Addrs<'a>> {
        if b.is_empty() || !b.len().is_multiple_of(16) {
            return Err(Error::Malformed);
        }
        Ok(Addrs(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        self.0.chunks_exact(16).map(ip6)
    }

    /// Appends the addresses to `out`.
    pub fn encode(addrs: &[Ipv6Addr], out: &mut Vec<u8>) {
        for a in addrs {
            out.extend_from_slice(&a.octets());
        }
    }
}

/// The names of a DNSSL option: validated bytes, one or more domain names in DNS wire
/// encoding (uncompressed, RFC 8106 §5.2) followed by zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domains<'a>(&'a [u8]);

/// The longest domain name in wire encoding (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;

/// The length of the name starting `b`, with its terminating zero; `None` if it is
/// not a valid uncompressed name.
fn name_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = usize::from(*b.get(pos)?);
        if len > 63 {
            return None; // a compression pointer or a reserved label type
        }
        pos += 1 + len;
        if pos > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            return Some(pos);
        }
    }
}

impl<'a> Domains<'a> {
    /// Checks the bytes hold at least one name, names up to a zero byte where one
    /// would start, and only zeros after that.
    pub fn from_bytes(b: &'a [u8]) -> Result<Domains<'a>> {
        let mut pos = 0;
        let mut names = 0;
        while let Some(&first) = b.get(pos) {
            if first == 0 {
                break;
            }
            let rest = b.get(pos..).unwrap_or(&[]);
            pos += name_len(rest).ok_or(Error::Malformed)?;
            names += 1;
        }
        let padding = b.get(pos..).unwrap_or(&[]);
        if names == 0 || padding.iter().any(|&x| x != 0) {
            return Err(Error::Malformed);
        }
        Ok(Domains(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The names, dotted, without the trailing dot (bytes that are not UTF-8 are
    /// replaced; econet's own names are ASCII).
    pub fn iter(&self) -> impl Iterator<Item = String> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let n = name_len(rest).filter(|&n| n > 1)?;
            let (name, tail) = rest.split_at_checked(n)?;
            rest = tail;
            let mut labels = Vec::new();
            let mut l = name;
            while let [len, tail @ ..] = l {
                let (label, tail) = tail.split_at_checked(usize::from(*len))?;
                if !label.is_empty() {
                    labels.push(String::from_utf8_lossy(label).into_owned());
                }
                l = tail;
            }
            Some(labels.join("."))
        })
    }

    /// Appends the wire encoding of `names` to `out`, with no padding (emit pads). A
    /// name with an empty or over-long label, or over 255 bytes encoded, is `Malformed`
    /// and nothing is appended for it or after it.
    pub fn encode<S: AsRef<str>>(names: &[S], out: &mut Vec<u8>) -> Result<()> {
        for n in names.iter().map(AsRef::as_ref) {
            // A DNSSL lists domains: the root is not one.
            if n.strip_suffix('.').unwrap_or(n).is_empty() {
                return Err(Error::Malformed);
            }
            crate::wire::dns::encode_dotted(n, out)?;
        }
        Ok(())
    }
}

/// Prefix Information (RFC 4861 §4.6.2). The R flag (RFC 6275) and reserved bits are
/// not kept; `emit` writes them zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    pub on_link: bool,
    pub autonomous: bool,
    /// Seconds; `u32::MAX` is infinity.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// The meaning of one option. Variable data borrows from the message (parse) or from
/// the caller (emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOptionRepr<'a> {
    SourceLinkLayerAddr(MacAddr),
    TargetLinkLayerAddr(MacAddr),
    PrefixInformation(PrefixInfo),
    Mtu(u32),
    /// Recursive DNS servers (RFC 8106 §5.1); lifetime in seconds, 0 = stop using.
    Rdnss {
        lifetime: u32,
        servers: Addrs<'a>,
    },
    /// DNS search list (RFC 8106 §5.2).
    Dnssl {
        lifetime: u32,
        domains: Domains<'a>,
    },
    /// Any other option, kept as it is (`data` as in [`NdOption`]).
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl<'a> NdOptionRepr<'a> {
    /// Reads one option. A link-layer address option must hold an Ethernet MAC;
    /// an option econet knows with the wrong length is `Malformed`.
    pub fn parse(o: NdOption<'a>) -> Result<NdOptionRepr<'a>> {
        let d = o.data;
        Ok(match o.kind {
            opt::SOURCE_LL_ADDR | opt::TARGET_LL_ADDR => {
                let mac = MacAddr::from_slice(d)
                    .filter(|_| d.len() == 6)
                    .ok_or(Error::Malformed)?;
                if o.kind == opt::SOURCE_LL_ADDR {
                    NdOptionRepr::SourceLinkLayerAddr(mac)
                } else {
                    NdOptionRepr::TargetLinkLayerAddr(mac)
                }
            }
            opt::PREFIX_INFO => {
                let [len, flags, rest @ ..] = d else {
                    return Err(Error::Malformed);
                };
                if d.len() != 30 || *len > 128 {
                    return Err(Error::Malformed);
                }
                NdOptionRepr::PrefixInformation(PrefixInfo {
                    prefix_len: *len,
                    on_link: flags & PREFIX_ON_LINK != 0,
                    autonomous: flags & PREFIX_AUTONOMOUS != 0,
                    valid_lifetime: be32(rest),
                    preferred_lifetime: be32(rest.get(4..).unwrap_or(&[])),
                    prefix: ip6(rest.get(12..28).unwrap_or(&[])),
                })
            }
            opt::MTU => {
                if d.len() != 6 {
                    return Err(Error::Malformed);
                }
                NdOptionRepr::Mtu(be32(d.get(2..).unwrap_or(&[])))
            }
            opt::RDNSS => NdOptionRepr::Rdnss {
                lifetime: be32(d.get(2..).ok_or(Error::Malformed)?),
                servers: Addrs::from_bytes(d.get(6..).ok_or(Error::Malformed)?)?,
            },
            opt::DNSSL => NdOptionRepr::Dnssl {
                lifetime: be32(d.get(2..).ok_or(Error::Malformed)?),
                domains: Domains::from_bytes(d.get(6..).ok_or(Error::Malformed)?)?,
            },
            kind => NdOptionRepr::Unknown { kind, data: d },
        })
    }

    fn kind(&self) -> u8 {
        match self {
            NdOptionRepr::SourceLinkLayerAddr(_) => opt::SOURCE_LL_ADDR,
            NdOptionRepr::TargetLinkLayerAddr(_) => opt::TARGET_LL_ADDR,
            NdOptionRepr::PrefixInformation(_) => opt::PREFIX_INFO,
            NdOptionRepr::Mtu(_) => opt::MTU,
            NdOptionRepr::Rdnss { .. } => opt::RDNSS,
            NdOptionRepr::Dnssl { .. } => opt::DNSSL,
            NdOptionRepr::Unknown { kind, .. } => *kind,
        }
    }

    /// Bytes after type and length, before padding.
    fn data_len(&self) -> usize {
        match self {
            NdOptionRepr::SourceLinkLayerAddr(_) | NdOptionRepr::TargetLinkLayerAddr(_) => 6,
            NdOptionRepr::PrefixInformation(_) => 30,
            NdOptionRepr::Mtu(_) => 6,
            NdOptionRepr::Rdnss { servers, .. } => 6 + servers.as_bytes().len(),
            NdOptionRepr::Dnssl { domains, .. } => 6 + domains.as_bytes().len(),
            NdOptionRepr::Unknown { data, .. } => data.len(),
        }
    }

    /// The option's length in bytes: a multiple of 8, zero padding included.
    pub fn buffer_len(&self) -> usize {
        (2 + self.data_len()).div_ceil(8) * 8
    }

    /// Writes the option at the start of `buf` and returns its length. A buffer
    /// shorter than `buffer_len()` is `Truncated`; an option longer than the length
    /// byte can say (2040 bytes) is `Malformed`. Nothing is written on error.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let units = u8::try_from(len / 8).map_err(|_| Error::Malformed)?;
        let out = buf.get_mut(..len).ok_or(Error::Truncated)?;
        out.fill(0);
        let (head, data) = out.split_at_mut(2);
        head.copy_from_slice(&[self.kind(), units]);
        let mut put = |at: usize, b: &[u8]| {
            if let Some(d) = data.get_mut(at..at + b.len()) {
                d.copy_from_slice(b);
            }
        };
        match self {
            NdOptionRepr::SourceLinkLayerAddr(m) | NdOptionRepr::TargetLinkLayerAddr(m) => {
                put(0, &m.0)
            }
            NdOptionRepr::PrefixInformation(p) => {
                let mut flags = 0;
                if p.on_link {
                    flags |= PREFIX_ON_LINK;
                }
                if p.autonomous {
                    flags |= PREFIX_AUTONOMOUS;
                }
                put(0, &[p.prefix_len, flags]);
                put(2, &p.valid_lifetime.to_be_bytes());
                put(6, &p.preferred_lifetime.to_be_bytes());
                put(14, &p.prefix.octets());
            }
            NdOptionRepr::Mtu(m) => put(2, &m.to_be_bytes()),
            NdOptionRepr::Rdnss { lifetime, servers } => {
                put(2, &lifetime.to_be_bytes());
                put(6, servers.as_bytes());
            }
            NdOptionRepr::Dnssl { lifetime, domains } => {
                put(2, &lifetime.to_be_bytes());
                put(6, domains.as_bytes());
            }
            NdOptionRepr::Unknown { data: d, .. } => put(0, d),
        }
        Ok(len)
    }
}

/// A checked options field: every option has a length and fits, and every option
/// econet knows reads well. Borrows from the message (parse) or from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdOptions<'a>(&'a [u8]);

impl<'a> NdOptions<'a> {
    pub fn from_bytes(b: &'a [u8]) -> Result<NdOptions<'a>> {
        for o in NdOptionsIter::new(b) {
            NdOptionRepr::parse(o?)?;
        }
        Ok(NdOptions(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = NdOptionRepr<'a>> + 'a {
        NdOptionsIter::new(self.0).filter_map(|o| NdOptionRepr::parse(o.ok()?).ok())
    }

    /// Appends the encoding of `options`, in order, to `out`.
    pub fn encode(options: &[NdOptionRepr<'_>], out: &mut Vec<u8>) -> Result<()> {
        for o in options {
            let at = out.len();
            out.resize(at + o.buffer_len(), 0);
            let written = o.emit(out.get_mut(at..).unwrap_or(&mut []));
            if let Err(e) = written {
                out.truncate(at);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The first Source Link-Layer Address option.
    pub fn source_ll_addr(&self) -> Option<MacAddr> {
        self.iter().find_map(|o| match o {
            NdOptionRepr::SourceLinkLayerAddr(m) => Some(m),
            _ => None,
        })
    }

    /// The first Target Link-Layer Address option.
    pub fn target_ll_addr(&self) -> Option<MacAddr> {
        self.iter().find_map(|o| match o {
            NdOptionRepr::TargetLinkLayerAddr(m) => Some(m),
            _ => None,
        })
    }

    /// The first MTU option.
    pub fn mtu(&self) -> Option<u32> {
        self.iter().find_map(|o| match o {
            NdOptionRepr::Mtu(m) => Some(m),
            _ => None,
        })
    }

    pub fn prefixes(&self) -> impl Iterator<Item = PrefixInfo> + 'a {
        self.iter().filter_map(|o| match o {
            NdOptionRepr::PrefixInformation(p) => Some(p),
            _ => None,
        })
    }
}

/// A read/write view of an ICMPv6 message.
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

    /// Checks the buffer holds the fixed part of its message type. The view's length
    /// is the message's (an ICMPv6 message has no length field of its own: pass the
    /// IPv6 payload).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN || len < self.msg_type().header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, i: usize) -> u8 {
        self.b().get(i).copied().unwrap_or(0)
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        match self.b().get(r) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        match self.b().get(r) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    pub fn msg_type(&self) -> Message {
        Message::from(self.byte(field::TYPE))
    }
    pub fn msg_code(&self) -> u8 {
        self.byte(field::CODE)
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    // Router Advertisement fields (zero on a buffer too short for them).
    pub fn cur_hop_limit(&self) -> u8 {
        self.byte(field::CUR_HOP_LIMIT)
    }
    /// The RA flags byte (M, O, and the rest).
    pub fn router_flags(&self) -> u8 {
        self.byte(field::RA_FLAGS)
    }
    /// Seconds.
    pub fn router_lifetime(&self) -> u16 {
        self.u16_at(field::ROUTER_LIFETIME)
    }
    /// Milliseconds.
    pub fn reachable_time(&self) -> u32 {
        self.u32_at(field::REACHABLE_TIME)
    }
    /// Milliseconds.
    pub fn retrans_time(&self) -> u32 {
        self.u32_at(field::RETRANS_TIMER)
    }

    // Neighbor Solicitation and Advertisement fields.
    /// The NA flags byte (R, S, O).
    pub fn neighbor_flags(&self) -> u8 {
        self.byte(field::NA_FLAGS)
    }
    pub fn target_addr(&self) -> Ipv6Addr {
        ip6(self.b().get(field::TARGET).unwrap_or(&[]))
    }

    /// The options of a neighbour-discovery message (empty for other messages).
    pub fn options(&self) -> &[u8] {
        match self.msg_type() {
            Message::RouterSolicit
            | Message::RouterAdvert
            | Message::NeighborSolicit
            | Message::NeighborAdvert => {
                let start = self.msg_type().header_len();
                self.b().get(start..).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// Whether the checksum is right for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        ipv6::checksum::verify(src, dst, NextHeader::Icmpv6, self.b())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, i: usize, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(i) {
            *b = v;
        }
    }

    fn set_bytes(&mut self, r: core::ops::Range<usize>, v: &[u8]) {
        if let Some(b) = self.buffer.as_mut().get_mut(r) {
            if b.len() == v.len() {
                b.copy_from_slice(v);
            }
        }
    }

    pub fn set_msg_type(&mut self, v: Message) {
        self.set_byte(field::TYPE, u8::from(v));
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.set_byte(field::CODE, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.set_bytes(field::CHECKSUM, &v.to_be_bytes());
    }
    /// Sets the 32 bits after the checksum to zero (the reserved field of RS and NS).
    pub fn clear_reserved(&mut self) {
        self.set_bytes(4..8, &[0; 4]);
    }
    pub fn set_cur_hop_limit(&mut self, v: u8) {
        self.set_byte(field::CUR_HOP_LIMIT, v);
    }
    pub fn set_router_flags(&mut self, v: u8) {
        self.set_byte(field::RA_FLAGS, v);
    }
    pub fn set_router_lifetime(&mut self, v: u16) {
        self.set_bytes(field::ROUTER_LIFETIME, &v.to_be_bytes());
    }
    pub fn set_reachable_time(&mut self, v: u32) {
        self.set_bytes(field::REACHABLE_TIME, &v.to_be_bytes());
    }
    pub fn set_retrans_time(&mut self, v: u32) {
        self.set_bytes(field::RETRANS_TIMER, &v.to_be_bytes());
    }
    /// Sets the NA flags byte and the three reserved bytes after it.
    pub fn set_neighbor_flags(&mut self, v: u8) {
        self.set_bytes(4..8, &[v, 0, 0, 0]);
    }
    pub fn set_target_addr(&mut self, a: Ipv6Addr) {
        self.set_bytes(field::TARGET, &a.octets());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let start = self.msg_type().header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and stores the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum = ipv6::checksum::compute(src, dst, NextHeader::Icmpv6, self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

/// The meaning of a neighbour-discovery message. RA flags other than M and O (home
/// agent, router preference, proxy) and NA reserved bits are not kept: `emit`
/// writes them zero (medium router preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    RouterSolicit {
        options: NdOptions<'a>,
    },
    RouterAdvert {
        /// 0: unspecified.
        cur_hop_limit: u8,
        managed: bool,
        other: bool,
        /// Seconds; 0: not a default router.
        router_lifetime: u16,
        /// Milliseconds; 0: unspecified.
        reachable_time: u32,
        /// Milliseconds; 0: unspecified.
        retrans_time: u32,
        options: NdOptions<'a>,
    },
    NeighborSolicit {
        target: Ipv6Addr,
        options: NdOptions<'a>,
    },
    NeighborAdvert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        options: NdOptions<'a>,
    },
}

impl<'a> Repr<'a> {
    /// Parses a message sent from `src` to `dst`. A bad checksum is `Checksum`; a
    /// code other than 0 (RFC 4861 §6.1, §7.1) or a broken option is `Malformed`;
    /// messages other than RS, RA, NS and NA are `Unsupported`. What depends on the
    /// IPv6 header (hop limit 255, the source-address rules of each message) is the
    /// caller's to check; the options it needs for that are in `options`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        // Borrow from the underlying buffer so the repr outlives the view.
        let buf: &'a T = packet.buffer;
        let p: Packet<&'a [u8]> = Packet::new_unchecked(buf.as_ref());
        let kind = p.msg_type();
        if !matches!(
            kind,
            Message::RouterSolicit
                | Message::RouterAdvert
                | Message::NeighborSolicit
                | Message::NeighborAdvert
        ) {
            return Err(Error::Unsupported);
        }
        if p.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        let inner: &'a [u8] = buf.as_ref();
        let options =
            NdOptions::from_bytes(inner.get(kind.header_len()..).ok_or(Error::Truncated)?)?;
        Ok(match kind {
            Message::RouterSolicit => Repr::RouterSolicit { options },
            Message::RouterAdvert => Repr::RouterAdvert {
                cur_hop_limit: p.cur_hop_limit(),
                managed: p.router_flags() & RA_MANAGED != 0,
                other: p.router_flags() & RA_OTHER != 0,
                router_lifetime: p.router_lifetime(),
                reachable_time: p.reachable_time(),
                retrans_time: p.retrans_time(),
                options,
            },
            Message::NeighborSolicit => {
                let target = p.target_addr();
                if target.is_multicast() {
                    return Err(Error::Malformed);
                }
                Repr::NeighborSolicit { target, options }
            }
            _ => {
                let target = p.target_addr();
                if target.is_multicast() {
                    return Err(Error::Malformed);
                }
                let f = p.neighbor_flags();
                Repr::NeighborAdvert {
                    router: f & NA_ROUTER != 0,
                    solicited: f & NA_SOLICITED != 0,
                    override_: f & NA_OVERRIDE != 0,
                    target,
                    options,
                }
            }
        })
    }

    pub fn msg_type(&self) -> Message {
        match self {
            Repr::RouterSolicit { .. } => Message::RouterSolicit,
            Repr::RouterAdvert { .. } => Message::RouterAdvert,
            Repr::NeighborSolicit { .. } => Message::NeighborSolicit,
            Repr::NeighborAdvert { .. } => Message::NeighborAdvert,
        }
    }

    pub fn options(&self) -> NdOptions<'a> {
        match self {
            Repr::RouterSolicit { options }
            | Repr::RouterAdvert { options, .. }
            | Repr::NeighborSolicit { options, .. }
            | Repr::NeighborAdvert { options, .. } => *options,
        }
    }

    /// The message length: fixed part and options.
    pub fn buffer_len(&self) -> usize {
        self.msg_type().header_len() + self.options().as_bytes().len()
    }

    /// Writes the message into the first `buffer_len()` bytes of the packet's buffer,
    /// checksum included, for a message from `src` to `dst`. A shorter buffer is
    /// `Truncated` and nothing is written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<()> {
        let len = self.buffer_len();
        let Some(buf) = packet.buffer.as_mut().get_mut(..len) else {
            return Err(Error::Truncated);
        };
        buf.fill(0);
        let mut p = Packet::new_unchecked(buf);
        p.set_msg_type(self.msg_type());
        p.set_msg_code(0);
        match *self {
            Repr::RouterSolicit { .. } => p.clear_reserved(),
            Repr::RouterAdvert {
                cur_hop_limit,
                managed,
                other,
                router_lifetime,
                reachable_time,
                retrans_time,
                ..
            } => {
                p.set_cur_hop_limit(cur_hop_limit);
                let mut f = 0;
                if managed {
                    f |= RA_MANAGED;
                }
                if other {
                    f |= RA_OTHER;
                }
                p.set_router_flags(f);
                p.set_router_lifetime(router_lifetime);
                p.set_reachable_time(reachable_time);
                p.set_retrans_time(retrans_time);
            }
            Repr::NeighborSolicit { target, .. } => {
                p.clear_reserved();
                p.set_target_addr(target);
            }
            Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                ..
            } => {
                let mut f = 0;
                if router {
                    f |= NA_ROUTER;
                }
                if solicited {
                    f |= NA_SOLICITED;
                }
                if override_ {
                    f |= NA_OVERRIDE;
                }
                p.set_neighbor_flags(f);
                p.set_target_addr(target);
            }
        }
        let opts = self.options().as_bytes();
        if let Some(o) = p.options_mut().get_mut(..opts.len()) {
            o.copy_from_slice(opts);
        }
        p.fill_checksum(src, dst);
        Ok(())
    }
}

/// Frames captured on a veth between two network namespaces (`ip netns`), one running
/// dnsmasq 2.90 (`--enable-ra`, a DHCPv6 range, `--ra-param=vr,mtu:1400,10,1800`,
/// option6 dns-server and domain-search) or radvd 2.19, the other a Linux 6.18 kernel
/// bringing its veth up with `accept_ra=2`; `tcpdump -w` on the router's side. Whole
/// Ethernet frames: router 82:65:8d:5f:85:12 (fe80::8065:8dff:fe5f:8512), client
/// 72:1e:a0:80:59:50 (fe80::701e:a0ff:fe80:5950), prefix fd00:1:2:3::/64.
#[cfg(test)]
#[allow(dead_code)] // a library of captures; not every test uses every frame
pub(crate) mod captures {
    /// Linux 6.18 duplicate address detection NS for the bridge's link-local address (source ::, no SLLA).
    pub(crate) const KERNEL_DAD_NS: [u8; 86] = [
        0x33, 0x33, 0xff, 0x5f, 0x85, 0x12, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x5f, 0x85, 0x12, 0x87, 0x00, 0x20, 0x05, 0x00, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x65, 0x8d, 0xff, 0xfe,
        0x5f, 0x85, 0x12, 0x0e, 0x01, 0xdc, 0x7b, 0x01, 0x19, 0x59, 0x3b,
    ];

    /// Linux 6.18 Router Solicitation on link up (accept_ra=2), with an SLLA option.
    pub(crate) const KERNEL_RS: [u8; 70] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x02, 0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x70, 0x1e, 0xa0, 0xff, 0xfe, 0x80, 0x59, 0x50, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x85, 0x00, 0xa7, 0x4f, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x01, 0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50,
    ];

    /// Linux 6.18 Neighbor Solicitation to the solicited-node group, with an SLLA option.
    pub(crate) const KERNEL_NS: [u8; 86] = [
        0x33, 0x33, 0xff, 0x80, 0x59, 0x50, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x80, 0x59, 0x50, 0x87, 0x00, 0x93, 0x2e, 0x00, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x1e, 0xa0, 0xff, 0xfe,
        0x80, 0x59, 0x50, 0x01, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12,
    ];

    /// Linux 6.18 Neighbor Advertisement answering it (S and O flags, TLLA option).
    pub(crate) const KERNEL_NA_TLLA: [u8; 86] = [
        0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x70, 0x1e, 0xa0, 0xff, 0xfe, 0x80, 0x59, 0x50, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0x88, 0x00, 0x4a, 0x7b, 0x60, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x1e, 0xa0, 0xff, 0xfe,
        0x80, 0x59, 0x50, 0x02, 0x01, 0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50,
    ];

    /// dnsmasq 2.90 RA answering that RS, unicast to the client (PI, MTU, SLLA, DNSSL, RDNSS).
    pub(crate) const DNSMASQ_RA_UNICAST: [u8; 166] = [
        0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x6c,
        0x07, 0x4a, 0x3d, 0x00, 0x70, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x70, 0x1e, 0xa0, 0xff, 0xfe, 0x80, 0x59, 0x50, 0x86, 0x00, 0xce, 0x12, 0x40, 0xc0,
        0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x04, 0x40, 0x80, 0x00,
        0x00, 0x0e, 0x10, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x05, 0x78, 0x01, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x1f, 0x03,
        0x00, 0x00, 0x00, 0x00, 0x0e, 0x10, 0x03, 0x65, 0x63, 0x6f, 0x08, 0x69, 0x6e, 0x74, 0x65,
        0x72, 0x6e, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10,
        0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01,
    ];

    /// dnsmasq 2.90 unsolicited RA to ff02::1: M and O, prefix fd00:1:2:3::/64 L only, MTU 1400, SLLA, DNSSL eco.internal, RDNSS fd00:1:2:3::1.
    pub(crate) const DNSMASQ_RA: [u8; 166] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x6c,
        0x00, 0x19, 0x65, 0x00, 0x70, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0x00, 0x36, 0x7f, 0x40, 0xc0,
        0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x04, 0x40, 0x80, 0x00,
        0x00, 0x0e, 0x10, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x05, 0x78, 0x01, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x1f, 0x03,
        0x00, 0x00, 0x00, 0x00, 0x0e, 0x10, 0x03, 0x65, 0x63, 0x6f, 0x08, 0x69, 0x6e, 0x74, 0x65,
        0x72, 0x6e, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10,
        0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01,
    ];

    /// Linux 6.18 Neighbor Advertisement to a unicast NS (S flag, no TLLA).
    pub(crate) const KERNEL_NA: [u8; 78] = [
        0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x70, 0x1e, 0xa0, 0xff, 0xfe, 0x80, 0x59, 0x50, 0x88, 0x00, 0xaf, 0x8b, 0x40, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x65, 0x8d, 0xff, 0xfe,
        0x5f, 0x85, 0x12,
    ];

    /// radvd 2.19 unsolicited RA: M and O, reachable 30000 ms, retrans 1000 ms, prefix L and A, RDNSS, DNSSL eco.internal example.com, MTU 1500, SLLA.
    pub(crate) const RADVD_RA: [u8; 182] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x60,
        0x00, 0x19, 0x65, 0x00, 0x80, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0x00, 0x95, 0x62, 0x40, 0xc0,
        0x07, 0x08, 0x00, 0x00, 0x75, 0x30, 0x00, 0x00, 0x03, 0xe8, 0x03, 0x04, 0x40, 0xc0, 0x00,
        0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x04, 0xb0, 0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x1f, 0x05, 0x00, 0x00, 0x00, 0x00, 0x04, 0xb0, 0x03,
        0x65, 0x63, 0x6f, 0x08, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x6e, 0x61, 0x6c, 0x00, 0x07, 0x65,
        0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, 0x01, 0x01, 0x82, 0x65, 0x8d, 0x5f,
        0x85, 0x12,
    ];

    /// radvd 2.19 final RA on shutdown: router lifetime 0, RDNSS and DNSSL lifetimes 0.
    pub(crate) const RADVD_STOP_RA: [u8; 182] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12, 0x86, 0xdd, 0x60,
        0x00, 0x19, 0x65, 0x00, 0x80, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x65, 0x8d, 0xff, 0xfe, 0x5f, 0x85, 0x12, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0x00, 0xa5, 0xca, 0x40, 0xc0,
        0x00, 0x00, 0x00, 0x00, 0x75, 0x30, 0x00, 0x00, 0x03, 0xe8, 0x03, 0x04, 0x40, 0xc0, 0x00,
        0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x1f, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x65, 0x63, 0x6f, 0x08, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x6e, 0x61, 0x6c, 0x00, 0x07, 0x65,
        0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, 0x01, 0x01, 0x82, 0x65, 0x8d, 0x5f,
        0x85, 0x12,
    ];
}

#[cfg(test)]
mod tests {
    use super::captures::*;
    use super::*;
    use crate::wire::ipv6::{ALL_NODES, ALL_ROUTERS};

    const ROUTER_MAC: MacAddr = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);
    const CLIENT_MAC: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A captured frame's ICMPv6 message with its IPv6 source and destination.
    fn icmp(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, &[u8]) {
        let ip = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        let len = ip.payload().len();
        (s, d, &frame[54..54 + len])
    }

    fn parse(frame: &[u8]) -> Repr<'_> {
        let (s, d, b) = icmp(frame);
        Repr::parse(&Packet::new_checked(b).unwrap(), s, d).unwrap()
    }

    fn emit(r: &Repr<'_>, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut out = vec![0xee; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst)
            .unwrap();
        out
    }

    fn all_captures() -> [&'static [u8]; 9] {
        [
            &KERNEL_DAD_NS,
            &KERNEL_RS,
            &KERNEL_NS,
            &KERNEL_NA_TLLA,
            &DNSMASQ_RA_UNICAST,
            &DNSMASQ_RA,
            &KERNEL_NA,
            &RADVD_RA,
            &RADVD_STOP_RA,
        ]
    }

    #[test]
    fn parse_emit_gives_the_captured_bytes() {
        for f in all_captures() {
            let (s, d, b) = icmp(f);
            let r = parse(f);
            assert_eq!(emit(&r, s, d), b, "{r:?}");
        }
    }

    #[test]
    fn router_solicitation() {
        let Repr::RouterSolicit { options } = parse(&KERNEL_RS) else {
            panic!("not an RS");
        };
        assert_eq!(options.source_ll_addr(), Some(CLIENT_MAC));
        assert_eq!(options.iter().count(), 1);
        let (s, d, _) = icmp(&KERNEL_RS);
        assert_eq!((s, d), (addr("fe80::701e:a0ff:fe80:5950"), ALL_ROUTERS));
    }

    #[test]
    fn dnsmasq_router_advertisement() {
        let Repr::RouterAdvert {
            cur_hop_limit,
            managed,
            other,
            router_lifetime,
            reachable_time,
            retrans_time,
            options,
        } = parse(&DNSMASQ_RA)
        else {
            panic!("not an RA");
        };
        assert_eq!((cur_hop_limit, managed, other), (64, true, true));
        assert_eq!(
            (router_lifetime, reachable_time, retrans_time),
            (1800, 0, 0)
        );
        let opts: Vec<_> = options.iter().collect();
        assert_eq!(opts.len(), 5);
        assert_eq!(
            opts[0],
            NdOptionRepr::PrefixInformation(PrefixInfo {
                prefix_len: 64,
                on_link: true,
                autonomous: false,
                valid_lifetime: 3600,
                preferred_lifetime: 3600,
                prefix: addr("fd00:1:2:3::"),
            })
        );
        assert_eq!(opts[1], NdOptionRepr::Mtu(1400));
        assert_eq!(opts[2], NdOptionRepr::SourceLinkLayerAddr(ROUTER_MAC));
        let NdOptionRepr::Dnssl { lifetime, domains } = opts[3] else {
            panic!("{:?}", opts[3]);
        };
        assert_eq!(lifetime, 3600);
        assert_eq!(domains.iter().collect::<Vec<_>>(), ["eco.internal"]);
        let NdOptionRepr::Rdnss { lifetime, servers } = opts[4] else {
            panic!("{:?}", opts[4]);
        };
        assert_eq!(lifetime, 3600);
        assert_eq!(servers.iter().collect::<Vec<_>>(), [addr("fd00:1:2:3::1")]);
        assert_eq!(options.mtu(), Some(1400));
        assert_eq!(options.source_ll_addr(), Some(ROUTER_MAC));
        assert_eq!(options.prefixes().count(), 1);
    }

    #[test]
    fn radvd_router_advertisements() {
        let Repr::RouterAdvert {
            reachable_time,
            retrans_time,
            router_lifetime,
            options,
            ..
        } = parse(&RADVD_RA)
        else {
            panic!("not an RA");
        };
        assert_eq!(
            (router_lifetime, reachable_time, retrans_time),
            (1800, 30000, 1000)
        );
        let p = options.prefixes().next().unwrap();
        assert!(p.on_link && p.autonomous);
        assert_eq!((p.valid_lifetime, p.preferred_lifetime), (86400, 14400));
        let domains: Vec<String> = options
            .iter()
            .find_map(|o| match o {
                NdOptionRepr::Dnssl { domains, .. } => Some(domains.iter().collect()),
                _ => None,
            })
            .unwrap();
        assert_eq!(domains, ["eco.internal", "example.com"]);
        // On shutdown: not a default router any more, DNS withdrawn, prefix kept.
        let Repr::RouterAdvert {
            router_lifetime,
            options,
            ..
        } = parse(&RADVD_STOP_RA)
        else {
            panic!("not an RA");
        };
        assert_eq!(router_lifetime, 0);
        for o in options.iter() {
            match o {
                NdOptionRepr::Rdnss { lifetime, .. } | NdOptionRepr::Dnssl { lifetime, .. } => {
                    assert_eq!(lifetime, 0)
                }
                NdOptionRepr::PrefixInformation(p) => assert_eq!(p.valid_lifetime, 86400),
                _ => {}
            }
        }
    }

    #[test]
    fn neighbor_messages() {
        // DAD: from ::, no SLLA, and the RFC 7527 nonce kept as an unknown option.
        let Repr::NeighborSolicit { target, options } = parse(&KERNEL_DAD_NS) else {
            panic!("not an NS");
        };
        assert_eq!(target, addr("fe80::8065:8dff:fe5f:8512"));
        assert_eq!(options.source_ll_addr(), None);
        assert!(matches!(
            options.iter().next(),
            Some(NdOptionRepr::Unknown {
                kind: opt::NONCE,
                data
            }) if data.len() == 6
        ));
        let Repr::NeighborSolicit { options, .. } = parse(&KERNEL_NS) else {
            panic!("not an NS");
        };
        assert_eq!(options.source_ll_addr(), Some(ROUTER_MAC));
        let Repr::NeighborAdvert {
            router,
            solicited,
            override_,
            target,
            options,
        } = parse(&KERNEL_NA_TLLA)
        else {
            panic!("not an NA");
        };
        assert_eq!((router, solicited, override_), (false, true, true));
        assert_eq!(target, addr("fe80::701e:a0ff:fe80:5950"));
        assert_eq!(options.target_ll_addr(), Some(CLIENT_MAC));
        let Repr::NeighborAdvert {
            solicited,
            override_,
            options,
            ..
        } = parse(&KERNEL_NA)
        else {
            panic!("not an NA");
        };
        assert!(solicited && !override_);
        assert!(options.as_bytes().is_empty());
    }

    /// dnsmasq's RA rebuilt from its meaning, option by option, is byte for byte what
    /// dnsmasq sent: `emit` and the option encoders write what a real router writes.
    #[test]
    fn emit_from_scratch_matches_dnsmasq() {
        let mut names = Vec::new();
        Domains::encode(&["eco.internal"], &mut names).unwrap();
        let mut servers = Vec::new();
        Addrs::encode(&[addr("fd00:1:2:3::1")], &mut servers);
        let mut opts = Vec::new();
        NdOptions::encode(
            &[
                NdOptionRepr::PrefixInformation(PrefixInfo {
                    prefix_len: 64,
                    on_link: true,
                    autonomous: false,
                    valid_lifetime: 3600,
                    preferred_lifetime: 3600,
                    prefix: addr("fd00:1:2:3::"),
                }),
                NdOptionRepr::Mtu(1400),
                NdOptionRepr::SourceLinkLayerAddr(ROUTER_MAC),
                NdOptionRepr::Dnssl {
                    lifetime: 3600,
                    domains: Domains::from_bytes(&names).unwrap(),
                },
                NdOptionRepr::Rdnss {
                    lifetime: 3600,
                    servers: Addrs::from_bytes(&servers).unwrap(),
                },
            ],
            &mut opts,
        )
        .unwrap();
        let r = Repr::RouterAdvert {
            cur_hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_time: 0,
            options: NdOptions::from_bytes(&opts).unwrap(),
        };
        let (s, d, b) = icmp(&DNSMASQ_RA);
        assert_eq!(emit(&r, s, d), b);
    }

    #[test]
    fn options_iter_never_overruns() {
        // RFC 4861 §4.6: a zero length is an error, and ends the walk.
        let zero = [1u8, 0, 1, 2, 3, 4, 5, 6, 1, 1, 0, 0, 0, 0, 0, 0];
        let got: Vec<_> = NdOptionsIter::new(&zero).collect();
        assert_eq!(got, [Err(Error::Malformed)]);
        let after_good = [[1u8, 1, 1, 2, 3, 4, 5, 6], [5, 0, 0, 0, 0, 0, 0, 0]].concat();
        let got: Vec<_> = NdOptionsIter::new(&after_good).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err(Error::Malformed));
        // Longer than the field; a lone type byte.
        assert_eq!(
            NdOptionsIter::new(&[3, 4, 0, 0]).collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
        assert_eq!(
            NdOptionsIter::new(&[3]).collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
        assert_eq!(NdOptionsIter::new(&[]).count(), 0);
        assert_eq!(NdOptions::from_bytes(&zero), Err(Error::Malformed));
    }

    #[test]
    fn malformed_known_options() {
        let bad: [&[u8]; 9] = [
            // SLLA of 14 bytes (not Ethernet).
            &[1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
            // Prefix information of length 3; prefix length 129.
            &[&[3u8, 3, 64][..], &[0; 21]].concat(),
            &[&[3u8, 4, 129][..], &[0; 29]].concat(),
            // MTU of length 2.
            &[5, 2, 0, 0, 0, 0, 5, 0xdc, 0, 0, 0, 0, 0, 0, 0, 0],
            // RDNSS with no address; with half an address.
            &[25, 1, 0, 0, 0, 0, 0, 1],
            &[&[25u8, 2, 0, 0, 0, 0, 0, 1][..], &[0xfd; 8]].concat(),
            // DNSSL: a compression pointer; garbage in the padding; no name at all.
            &[31, 2, 0, 0, 0, 0, 0, 1, 0xc0, 12, 0, 0, 0, 0, 0, 0],
            &[31, 2, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 0, 0, 0, 9],
            &[31, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ];
        for b in bad {
            assert_eq!(NdOptions::from_bytes(b), Err(Error::Malformed), "{b:?}");
        }
        // A label running past the option.
        assert_eq!(Domains::from_bytes(&[5, b'a', b'b']), Err(Error::Malformed));
        // Unknown options of any length are fine.
        assert!(NdOptions::from_bytes(&[200, 1, 9, 9, 9, 9, 9, 9]).is_ok());
    }

    #[test]
    fn domain_encoding() {
        let mut b = Vec::new();
        Domains::encode(&["eco.internal.", "a.b"], &mut b).unwrap();
        assert_eq!(b, b"\x03eco\x08internal\x00\x01a\x01b\x00");
        let d = Domains::from_bytes(&b).unwrap();
        assert_eq!(d.iter().collect::<Vec<_>>(), ["eco.internal", "a.b"]);
        let long = "x".repeat(64);
        for bad in ["", "a..b", long.as_str(), ".", "a.b.."] {
            let mut b = Vec::new();
            assert_eq!(
                Domains::encode(&[bad], &mut b),
                Err(Error::Malformed),
                "{bad:?}"
            );
            assert!(b.is_empty());
        }
        let too_long = ["a"; 128].join(".");
        assert_eq!(
            Domains::encode(&[too_long], &mut Vec::new()),
            Err(Error::Malformed)
        );
        // An option pads its names to a multiple of 8 bytes.
        let o = NdOptionRepr::Dnssl {
            lifetime: 1,
            domains: Domains::from_bytes(&b"\x01a\x00"[..]).unwrap(),
        };
        assert_eq!(o.buffer_len(), 16);
        let mut out = [0xffu8; 16];
        assert_eq!(o.emit(&mut out), Ok(16));
        assert_eq!(out, [31, 2, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 0, 0, 0, 0]);
        assert_eq!(o.emit(&mut [0u8; 15]), Err(Error::Truncated));
    }

    #[test]
    fn bad_messages() {
        let (s, d, b) = icmp(&KERNEL_RS);
        let p = |b: &[u8]| Repr::parse(&Packet::new_checked(b).unwrap(), s, d).map(|_| ());
        // A wrong checksum; wrong addresses for the pseudo-header.
        let mut m = b.to_vec();
        m[9] ^= 1;
        assert_eq!(p(&m), Err(Error::Checksum));
        assert_eq!(
            Repr::parse(&Packet::new_checked(b).unwrap(), ALL_NODES, d),
            Err(Error::Checksum)
        );
        // Code 1, checksum fixed up.
        let mut m = b.to_vec();
        m[1] = 1;
        Packet::new_unchecked(&mut m[..]).fill_checksum(s, d);
        assert_eq!(p(&m), Err(Error::Malformed));
        // A zero-length option.
        let mut m = b.to_vec();
        m[9] = 0;
        Packet::new_unchecked(&mut m[..]).fill_checksum(s, d);
        assert_eq!(p(&m), Err(Error::Malformed));
        // An echo request is not neighbour discovery.
        let mut m = b.to_vec();
        m[0] = 128;
        Packet::new_unchecked(&mut m[..]).fill_checksum(s, d);
        assert_eq!(p(&m), Err(Error::Unsupported));
        // Shorter than an RS, an RA, an NS.
        for f in [&KERNEL_RS[..], &DNSMASQ_RA, &KERNEL_NS] {
            let (_, _, b) = icmp(f);
            let fixed = Message::from(b[0]).header_len();
            for n in 0..fixed {
                assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
            }
        }
        // A multicast target.
        let (s, d, b) = icmp(&KERNEL_NS);
        let mut m = b.to_vec();
        m[8] = 0xff;
        Packet::new_unchecked(&mut m[..]).fill_checksum(s, d);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&m[..]).unwrap(), s, d),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn accessors_on_short_buffers_do_not_panic() {
        let b = [134u8, 0, 0, 0];
        let p = Packet::new_unchecked(&b[..]);
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        assert_eq!(
            (p.router_lifetime(), p.reachable_time(), p.retrans_time()),
            (0, 0, 0)
        );
        assert_eq!(p.target_addr(), Ipv6Addr::UNSPECIFIED);
        assert!(p.options().is_empty());
        let mut b = [0u8; 2];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_router_lifetime(9);
        p.set_target_addr(ALL_NODES);
        p.fill_checksum(ALL_NODES, ALL_NODES);
        assert!(p.options_mut().is_empty());
    }

    /// A small deterministic PRNG (xorshift64*), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Whatever the bytes, nothing panics, and what parses emits back to the same
    /// meaning. Inputs: random bytes, and captured messages truncated and with bytes
    /// changed, their checksums made right so the parser goes past it.
    #[test]
    fn random_and_mangled_messages() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (s, d) = (addr("fe80::1"), ALL_NODES);
        let mut parsed = 0;
        for i in 0..20_000 {
            let mut m = if i % 4 == 0 {
                let n = rng.below(200);
                (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>()
            } else {
                let f = all_captures()[rng.below(9)];
                let (_, _, b) = icmp(f);
                let mut m = b.to_vec();
                for _ in 0..rng.below(4) {
                    let at = rng.below(m.len());
                    m[at] = match rng.below(3) {
                        0 => 0,
                        1 => 0xff,
                        _ => rng.next() as u8,
                    };
                }
                m.truncate(rng.below(m.len() + 1));
                m
            };
            if rng.below(8) != 0 {
                Packet::new_unchecked(&mut m[..]).fill_checksum(s, d);
            }
            let Ok(p) = Packet::new_checked(&m[..]) else {
                continue;
            };
            let _ = (p.router_lifetime(), p.target_addr(), p.options().len());
            for o in NdOptionsIter::new(p.options()).flatten() {
                if let Ok(NdOptionRepr::Dnssl { domains, .. }) = NdOptionRepr::parse(o) {
                    let _ = domains.iter().count();
                }
            }
            if let Ok(r) = Repr::parse(&p, s, d) {
                parsed += 1;
                let again = emit(&r, s, d);
                let r2 = Repr::parse(&Packet::new_checked(&again[..]).unwrap(), s, d).unwrap();
                assert_eq!(r, r2);
            }
        }
        assert!(parsed > 500, "only {parsed} parsed");
    }

    /// The RA econet's advertiser would send, with every option, as a hex dump for
    /// `text2pcap` (see the module doc); run with `--nocapture` to see it.
    #[test]
    fn ra_to_hex_dump() {
        let mut names = Vec::new();
        Domains::encode(&["eco.internal", "example.com"], &mut names).unwrap();
        let mut servers = Vec::new();
        Addrs::encode(&[addr("fd00:1:2:3::1")], &mut servers);
        let mut opts = Vec::new();
        NdOptions::encode(
            &[
                NdOptionRepr::SourceLinkLayerAddr(ROUTER_MAC),
                NdOptionRepr::Mtu(1500),
                NdOptionRepr::PrefixInformation(PrefixInfo {
                    prefix_len: 64,
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: 86400,
                    preferred_lifetime: 14400,
                    prefix: addr("fd00:1:2:3::"),
                }),
                NdOptionRepr::Rdnss {
                    lifetime: 1800,
                    servers: Addrs::from_bytes(&servers).unwrap(),
                },
                NdOptionRepr::Dnssl {
                    lifetime: 1800,
                    domains: Domains::from_bytes(&names).unwrap(),
                },
            ],
            &mut opts,
        )
        .unwrap();
        let r = Repr::RouterAdvert {
            cur_hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_time: 0,
            options: NdOptions::from_bytes(&opts).unwrap(),
        };
        let src = addr("fe80::8065:8dff:fe5f:8512");
        let msg = emit(&r, src, ALL_NODES);
        let mut frame = vec![0u8; 54];
        frame[..14].copy_from_slice(&DNSMASQ_RA[..14]);
        ipv6::Repr {
            src_addr: src,
            dst_addr: ALL_NODES,
            next_header: NextHeader::Icmpv6,
            payload_len: msg.len(),
            hop_limit: 255,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut frame[14..]))
        .unwrap();
        frame.extend_from_slice(&msg);
        for (i, line) in frame.chunks(16).enumerate() {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            println!("{:06x} {}", i * 16, hex.join(" "));
        }
        assert_eq!(parse(&frame), r);
    }
}
