//! UDP (RFC 768) over IPv4. A zero checksum means "none" and is accepted. Frames from a
//! local veth or tap may carry a partial (offloaded) checksum: the shell knows that
//! from PACKET_AUXDATA (TP_STATUS_CSUMNOTREADY) and parses with `Checksum::Ignore`.

use super::ipv4::{checksum, Protocol};
use super::{Error, Result};
use std::net::Ipv4Addr;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// Whether to verify (on parse) or compute (on emit) the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Verify on receive, compute on send.
    Verify,
    /// Skip verification; send a zero checksum ("none", valid over IPv4).
    Ignore,
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
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
    /// the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.len() as usize;
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

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Whether the checksum is right for these addresses; a zero checksum is "none".
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let Some(data) = self.buffer.as_ref().get(..len as usize) else {
            return false;
        };
        checksum::combine(&[
            checksum::pseudo_header(src, dst, Protocol::Udp, len),
            checksum::data(data),
        ]) == 0xffff
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        let len = self.len() as usize;
        self.buffer.as_ref().get(HEADER_LEN..len).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes the checksum over the header and the payload already in place.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let data = self.buffer.as_ref().get(..len as usize).unwrap_or(&[]);
        let sum = !checksum::combine(&[
            checksum::pseudo_header(src, dst, Protocol::Udp, len),
            checksum::data(data),
        ]);
        // A computed zero is sent as all ones: zero means "no checksum".
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        let buf = self.buffer.as_mut();
        if (HEADER_LEN..=buf.len()).contains(&len) {
            &mut buf[HEADER_LEN..len]
        } else {
            &mut []
        }
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a datagram sent from `src` to `dst` (needed for the pseudo-header).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) -> Result<Repr> {
        packet.check_len()?;
        if checksum == Checksum::Verify && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header around a payload that is already in place after it (the
    /// usual in-place build: payload first, headers last), and the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) -> Result<()> {
        let len = u16::try_from(self.buffer_len()).map_err(|_| Error::Malformed)?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        match checksum {
            Checksum::Verify => packet.fill_checksum(src, dst),
            Checksum::Ignore => packet.set_checksum(0),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;
    use crate::wire::testdata::*;

    fn udp(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, &[u8]) {
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        let total = ip.total_len() as usize;
        (s, d, &frame[14 + 20..14 + total])
    }

    #[test]
    fn captured_client_checksums_verify() {
        // Clients on packet sockets compute the checksum themselves.
        for f in [
            &UDHCPC_DISCOVER[..],
            &UDHCPC_REQUEST,
            &UDHCPC_DECLINE,
            &DHCLIENT_DISCOVER,
            &DHCLIENT_INIT_REBOOT,
            &DHCPCD_DISCOVER,
            &DHCPCD_INIT_REBOOT,
            &DHCPCD_INFORM,
        ] {
            let (s, d, b) = udp(f);
            let p = Packet::new_checked(b).unwrap();
            let r = Repr::parse(&p, s, d, Checksum::Verify).unwrap();
            assert_eq!((r.src_port, r.dst_port), (68, 67));
        }
    }

    #[test]
    fn zero_checksum_is_valid() {
        // dhcpcd's unicast renewal and release go out with no checksum.
        for f in [&DHCPCD_RENEW[..], &DHCPCD_RELEASE] {
            let (s, d, b) = udp(f);
            let p = Packet::new_checked(b).unwrap();
            assert_eq!(p.checksum(), 0);
            assert!(Repr::parse(&p, s, d, Checksum::Verify).is_ok());
        }
    }

    #[test]
    fn offloaded_checksum_needs_ignore() {
        // udhcpc's renewal went through the kernel's UDP socket on a veth: the captured
        // checksum is only the pseudo-header part.
        let (s, d, b) = udp(&UDHCPC_RENEW);
        let p = Packet::new_checked(b).unwrap();
        assert_eq!(
            Repr::parse(&p, s, d, Checksum::Verify),
            Err(Error::Checksum)
        );
        assert!(Repr::parse(&p, s, d, Checksum::Ignore).is_ok());
    }

    #[test]
    fn emit_matches_capture() {
        let (s, d, b) = udp(&DHCLIENT_DISCOVER);
        let mut out = b.to_vec();
        out[..HEADER_LEN].fill(0);
        let r = Repr {
            src_port: 68,
            dst_port: 67,
            payload_len: b.len() - HEADER_LEN,
        };
        r.emit(
            &mut Packet::new_unchecked(&mut out[..]),
            s,
            d,
            Checksum::Verify,
        )
        .unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn bad_lengths() {
        let (s, d, b) = udp(&UDHCPC_DISCOVER);
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
        }
        assert_eq!(
            Packet::new_checked(&b[..b.len() - 1]).err(),
            Some(Error::Truncated)
        );
        let mut m = b.to_vec();
        m[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&m[..]).err(), Some(Error::Malformed));
        let mut m = b.to_vec();
        m[20] ^= 1;
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, s, d, Checksum::Verify),
            Err(Error::Checksum)
        );
    }
}
