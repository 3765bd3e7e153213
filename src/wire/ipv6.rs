//! IPv6 headers (RFC 8200). Extension headers are not walked: the Next Header field is
//! reported as it is, and a caller that wants ICMPv6 or UDP takes only packets whose
//! fixed header names them directly (what econet's neighbour discovery and DHCPv6
//! need: their messages never carry extension headers). A jumbogram (payload length
//! 0 with a Hop-by-Hop jumbo option) reads as an empty payload.
//!
//! Accessors never panic, on any buffer: a field the buffer does not hold reads as
//! zero and is not written. `new_checked` makes every field present.

use super::{Error, Result};
use crate::addr::MacAddr;
use std::net::Ipv6Addr;

/// The Next Header values econet meets in a fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHeader {
    HopByHop,
    Tcp,
    Udp,
    Esp,
    Icmpv6,
    NoNext,
    Unknown(u8),
}

impl From<u8> for NextHeader {
    fn from(v: u8) -> NextHeader {
        match v {
            0 => NextHeader::HopByHop,
            6 => NextHeader::Tcp,
            17 => NextHeader::Udp,
            50 => NextHeader::Esp,
            58 => NextHeader::Icmpv6,
            59 => NextHeader::NoNext,
            o => NextHeader::Unknown(o),
        }
    }
}

impl From<NextHeader> for u8 {
    fn from(v: NextHeader) -> u8 {
        match v {
            NextHeader::HopByHop => 0,
            NextHeader::Tcp => 6,
            NextHeader::Udp => 17,
            NextHeader::Esp => 50,
            NextHeader::Icmpv6 => 58,
            NextHeader::NoNext => 59,
            NextHeader::Unknown(o) => o,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// All nodes on the link (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers on the link.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The solicited-node multicast group of an address (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `a` is in fe80::/10.
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The modified EUI-64 link-local address of a MAC (RFC 4291 appendix A), as Linux
/// gives an interface by default (`addr_gen_mode` 0).
pub fn link_local_from_mac(m: MacAddr) -> Ipv6Addr {
    let b = m.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        b[0] ^ 0x02,
        b[1],
        b[2],
        0xff,
        0xfe,
        b[3],
        b[4],
        b[5],
    ])
}

/// The upper-layer checksum over IPv6 (RFC 8200 §8.1): the Internet checksum of
/// [`ipv4::checksum`](super::ipv4::checksum) with the IPv6 pseudo-header. ICMPv6 and
/// UDP use it alike.
pub mod checksum {
    pub use super::super::ipv4::checksum::{combine, data};
    use super::NextHeader;
    use std::net::Ipv6Addr;

    /// The partial sum of the IPv6 pseudo-header: source, destination, upper-layer
    /// length (32 bits), three zero bytes, next header.
    pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next: NextHeader, length: u32) -> u16 {
        let mut b = [0u8; 40];
        b[0..16].copy_from_slice(&src.octets());
        b[16..32].copy_from_slice(&dst.octets());
        b[32..36].copy_from_slice(&length.to_be_bytes());
        b[39] = u8::from(next);
        data(&b)
    }

    /// Whether `segment` (an upper-layer header and payload, checksum in place) sums
    /// right for this pseudo-header.
    pub fn verify(src: Ipv6Addr, dst: Ipv6Addr, next: NextHeader, segment: &[u8]) -> bool {
        let Ok(len) = u32::try_from(segment.len()) else {
            return false;
        };
        combine(&[pseudo_header(src, dst, next, len), data(segment)]) == 0xffff
    }

    /// The checksum to store in `segment`, whose checksum field must hold zero.
    pub fn compute(src: Ipv6Addr, dst: Ipv6Addr, next: NextHeader, segment: &[u8]) -> u16 {
        let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
        !combine(&[pseudo_header(src, dst, next, len), data(segment)])
    }
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr(b: Option<&[u8]>) -> Ipv6Addr {
    let mut o = [0u8; 16];
    if let Some(b) = b {
        if b.len() == 16 {
            o.copy_from_slice(b);
        }
    }
    Ipv6Addr::from(o)
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

    /// Checks that the buffer holds the fixed header and the payload length field's
    /// bytes after it (a longer buffer, e.g. Ethernet padding, is fine).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn ver_tc_flow(&self) -> u32 {
        match self.buffer.as_ref().get(field::VER_TC_FLOW) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// The payload length field: the bytes after the fixed header.
    pub fn payload_len(&self) -> u16 {
        match self.buffer.as_ref().get(field::LENGTH) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    pub fn next_header(&self) -> NextHeader {
        NextHeader::from(self.byte(field::NXT_HDR))
    }

    pub fn hop_limit(&self) -> u8 {
        self.byte(field::HOP_LIMIT)
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref().get(field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref().get(field::DST_ADDR))
    }

    /// The payload, up to the payload length (so Ethernet padding is excluded).
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
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

    fn set_ver_tc_flow(&mut self, v: u32) {
        self.set_bytes(field::VER_TC_FLOW, &v.to_be_bytes());
    }

    pub fn set_version(&mut self, v: u8) {
        let w = self.ver_tc_flow();
        self.set_ver_tc_flow((w & 0x0fff_ffff) | (u32::from(v & 0x0f) << 28));
    }

    pub fn set_traffic_class(&mut self, v: u8) {
        let w = self.ver_tc_flow();
        self.set_ver_tc_flow((w & 0xf00f_ffff) | (u32::from(v) << 20));
    }

    pub fn set_flow_label(&mut self, v: u32) {
        let w = self.ver_tc_flow();
        self.set_ver_tc_flow((w & 0xfff0_0000) | (v & 0x000f_ffff));
    }

    pub fn set_payload_len(&mut self, v: u16) {
        self.set_bytes(field::LENGTH, &v.to_be_bytes());
    }

    pub fn set_next_header(&mut self, v: NextHeader) {
        self.set_byte(field::NXT_HDR, u8::from(v));
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.set_byte(field::HOP_LIMIT, v);
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.set_bytes(field::SRC_ADDR, &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.set_bytes(field::DST_ADDR, &a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// The meaning of an IPv6 fixed header (traffic class and flow label are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: NextHeader,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Repr {
    /// Parses a checked packet; a version other than 6 is `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload().len(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Header length (econet never emits extension headers).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header, traffic class and flow label zero. The buffer must hold
    /// `buffer_len()` bytes (else `Truncated`, nothing written); a `payload_len` that
    /// does not fit the length field is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let len = u16::try_from(self.payload_len).map_err(|_| Error::Malformed)?;
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_ver_tc_flow(6 << 28);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmpv6::captures::*;

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn parse_captured() {
        let p = Packet::new_checked(ip(&KERNEL_RS)).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r.src_addr,
            "fe80::701e:a0ff:fe80:5950".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(r.dst_addr, ALL_ROUTERS);
        assert_eq!(r.next_header, NextHeader::Icmpv6);
        assert_eq!(r.hop_limit, 255);
        assert_eq!(r.payload_len, 16);
        let p = Packet::new_checked(ip(&DNSMASQ_RA)).unwrap();
        // dnsmasq marks its RAs CS6 and gives them a flow label.
        assert_eq!(p.traffic_class(), 0xc0);
        assert_eq!(p.flow_label(), 0x01965);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.dst_addr, ALL_NODES);
        assert_eq!(r.payload_len, 112);
        let p = Packet::new_checked(ip(&KERNEL_DAD_NS)).unwrap();
        assert_eq!(p.src_addr(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            p.dst_addr(),
            solicited_node("fe80::8065:8dff:fe5f:8512".parse().unwrap())
        );
    }

    #[test]
    fn emit_matches_capture() {
        // The kernel's RS has traffic class and flow label zero, as `emit` writes.
        let b = ip(&KERNEL_RS);
        let r = Repr::parse(&Packet::new_checked(b).unwrap()).unwrap();
        let mut out = b.to_vec();
        out[..HEADER_LEN].fill(0xaa);
        r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, b);
        // Setters keep the fields they do not set.
        let mut out = ip(&DNSMASQ_RA).to_vec();
        let mut p = Packet::new_unchecked(&mut out[..]);
        p.set_flow_label(0xfffff);
        p.set_traffic_class(0x12);
        p.set_version(6);
        assert_eq!((p.version(), p.traffic_class()), (6, 0x12));
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(p.payload_len(), 112);
    }

    #[test]
    fn bad_headers() {
        let good = ip(&KERNEL_RS);
        for n in 0..good.len() {
            assert_eq!(
                Packet::new_checked(&good[..n]).err(),
                Some(Error::Truncated)
            );
        }
        let mut b = good.to_vec();
        b[0] = 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Malformed)
        );
        // Accessors on a buffer that holds nothing read zeros and write nothing.
        let mut empty: [u8; 0] = [];
        let mut p = Packet::new_unchecked(&mut empty[..]);
        p.set_src_addr(ALL_NODES);
        p.set_payload_len(9);
        assert_eq!(p.src_addr(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.payload(), &[] as &[u8]);
        let r = Repr {
            src_addr: ALL_NODES,
            dst_addr: ALL_NODES,
            next_header: NextHeader::Icmpv6,
            payload_len: 70000,
            hop_limit: 255,
        };
        let mut b = [0u8; HEADER_LEN];
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn addresses() {
        let mac = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);
        let ll = link_local_from_mac(mac);
        assert_eq!(ll, "fe80::8065:8dff:fe5f:8512".parse::<Ipv6Addr>().unwrap());
        assert!(is_link_local(ll));
        assert!(!is_link_local(ALL_NODES));
        assert!(!is_link_local("fd00::1".parse().unwrap()));
        assert_eq!(
            solicited_node("fd00:1:2:3::1:2345".parse().unwrap()),
            "ff02::1:ff01:2345".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn pseudo_header_checksum_of_captures() {
        for f in [
            &KERNEL_RS[..],
            &KERNEL_DAD_NS,
            &KERNEL_NS,
            &KERNEL_NA,
            &DNSMASQ_RA,
            &RADVD_RA,
        ] {
            let p = Packet::new_checked(ip(f)).unwrap();
            assert!(checksum::verify(
                p.src_addr(),
                p.dst_addr(),
                NextHeader::Icmpv6,
                p.payload()
            ));
            let mut seg = p.payload().to_vec();
            let want = u16::from_be_bytes([seg[2], seg[3]]);
            seg[2..4].fill(0);
            assert_eq!(
                checksum::compute(p.src_addr(), p.dst_addr(), NextHeader::Icmpv6, &seg),
                want
            );
        }
    }
}
