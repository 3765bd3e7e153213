//! IPv4 headers (RFC 791). Options are skipped, not interpreted; fragments are visible
//! in the `Packet` view but refused by `Repr::parse` (econet's protocols never need
//! reassembly). The header checksum is always verified: unlike transport checksums it
//! is never left to offload.

use super::{Error, Result};
use std::net::Ipv4Addr;

/// The protocol carried in an IPv4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Icmp,
    Tcp,
    Udp,
    Esp,
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Protocol {
        match v {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            50 => Protocol::Esp,
            o => Protocol::Unknown(o),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(v: Protocol) -> u8 {
        match v {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Esp => 50,
            Protocol::Unknown(o) => o,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Internet checksum (RFC 1071) helpers, shared by IPv4 and the transports above it.
pub mod checksum {
    use super::Protocol;
    use std::net::Ipv4Addr;

    /// The one's complement sum of `data` (odd length padded with a zero byte), folded
    /// to 16 bits and not inverted.
    pub fn data(data: &[u8]) -> u16 {
        // 32-bit big-endian words summed into 64 bits: the same one's complement sum
        // once folded (carries out of 16 bits wrap around either way), a quarter of
        // the additions, and it vectorises. Tunnels checksum every segment they cut.
        let mut sum: u64 = 0;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let mut rest = words.remainder().chunks_exact(2);
        for c in &mut rest {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = rest.remainder() {
            sum += u64::from(*last) << 8;
        }
        fold(sum)
    }

    /// Adds partial sums.
    pub fn combine(parts: &[u16]) -> u16 {
        fold(parts.iter().map(|&p| u64::from(p)).sum())
    }

    /// The partial sum of the IPv4 pseudo-header for a transport checksum.
    pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: Protocol, length: u16) -> u16 {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&src.octets());
        b[4..8].copy_from_slice(&dst.octets());
        b[9] = u8::from(protocol);
        b[10..12].copy_from_slice(&length.to_be_bytes());
        data(&b)
    }

    fn fold(mut sum: u64) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }
}

/// A read/write view of an IPv4 packet.
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

    /// Checks that the buffer holds the header the IHL field claims and the whole
    /// packet the total length claims (a longer buffer, e.g. Ethernet padding, is fine).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        let total = self.total_len() as usize;
        if hl < HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if len < hl || len < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    pub fn total_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn ident(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::IDENT];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn flg_off(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLG_OFF];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn dont_frag(&self) -> bool {
        self.flg_off() & 0x4000 != 0
    }

    pub fn more_frags(&self) -> bool {
        self.flg_off() & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & 0x1fff) << 3
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is right (needs `check_len` to have passed).
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len() as usize;
        match self.buffer.as_ref().get(..hl) {
            Some(h) => checksum::data(h) == 0xffff,
            None => false,
        }
    }

    /// The payload: after the header and options, up to the total length (so Ethernet
    /// padding is excluded).
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        let total = self.total_len() as usize;
        self.buffer.as_ref().get(hl..total).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4).
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags and fragment offset: an unfragmented packet, DF as given.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        let v: u16 = if dont_frag { 0x4000 } else { 0 };
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(p);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len() as usize;
        let sum = checksum::data(self.buffer.as_ref().get(..hl).unwrap_or(&[]));
        self.set_checksum(!sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        let total = self.total_len() as usize;
        let buf = self.buffer.as_mut();
        if hl <= total && total <= buf.len() {
            &mut buf[hl..total]
        } else {
            &mut []
        }
    }
}

/// The meaning of an IPv4 header (options, DSCP and identification are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: Protocol,
    pub payload_len: usize,
    pub ttl: u8,
}

impl Repr {
    /// Parses a checked packet; a wrong version or checksum is an error, a fragment is
    /// `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
        })
    }

    /// Header length (econet never emits options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a header without options, DF set and identification 0 (RFC 6864 allows
    /// that for atomic datagrams). The buffer must hold `buffer_len()` bytes; a
    /// `payload_len` that does not fit in the length field is an error.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let total = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::Malformed)?;
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(0);
        packet.set_total_len(total);
        packet.set_ident(0);
        packet.set_unfragmented(true);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::*;

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn parse_captured() {
        let p = Packet::new_checked(ip(&UDHCPC_DISCOVER)).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.dst_addr, Ipv4Addr::BROADCAST);
        assert_eq!(r.protocol, Protocol::Udp);
        assert_eq!(r.payload_len, 308);
        let p = Packet::new_checked(ip(&DNSMASQ_OFFER)).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(10, 9, 0, 49));
    }

    #[test]
    fn every_captured_header_checksum_verifies() {
        for f in [
            &UDHCPC_DISCOVER[..],
            &DNSMASQ_OFFER,
            &UDHCPC_RENEW,
            &DHCLIENT_INIT_REBOOT,
            &DHCPCD_RELEASE,
            &DHCPCD_INFORM,
            &DNSMASQ_INFORM_ACK,
        ] {
            assert!(Packet::new_checked(ip(f)).unwrap().verify_checksum());
        }
    }

    #[test]
    fn emit_roundtrip() {
        let p = Packet::new_checked(ip(&UDHCPC_DISCOVER)).unwrap();
        let r = Repr::parse(&p).unwrap();
        let mut b = ip(&UDHCPC_DISCOVER).to_vec();
        b[..HEADER_LEN].fill(0);
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        let q = Packet::new_checked(&b[..]).unwrap();
        assert!(q.verify_checksum());
        assert_eq!(Repr::parse(&q).unwrap(), r);
        assert_eq!(q.payload(), p.payload());
    }

    #[test]
    fn bad_headers() {
        let good = ip(&UDHCPC_DISCOVER);
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&good[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // The total length claims more than the buffer holds.
        assert_eq!(
            Packet::new_checked(&good[..good.len() - 1]).err(),
            Some(Error::Truncated)
        );
        let mut b = good.to_vec();
        b[0] = 0x44; // IHL 4: shorter than a header
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        let mut b = good.to_vec();
        b[0] = 0x4f; // IHL 15: 60 bytes of header, fine length-wise, checksum now wrong
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Checksum)
        );
        let mut b = good.to_vec();
        b[2..4].copy_from_slice(&10u16.to_be_bytes()); // total < header
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        let mut b = good.to_vec();
        b[0] = 0x65;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Malformed)
        );
        let mut b = good.to_vec();
        b[6] = 0x20; // more fragments
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(
            checksum::data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(checksum::data(&[0xab]), 0xab00);
        assert_eq!(checksum::combine(&[0xffff, 0x0001]), 0x0001);
    }
}
