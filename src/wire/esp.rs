//! ESP (RFC 4303) headers and their UDP encapsulation (RFC 3948). The view covers the
//! cleartext part (SPI, sequence number); what follows is the cipher's business (for
//! AES-GCM: 8-byte IV, ciphertext with the trailer inside, 16-byte ICV; see
//! [`crate::esp`]).
//!
//! On UDP port 4500 three things share one socket: ESP (SPI never zero), IKE behind a
//! four-byte zero "non-ESP marker", and one-byte NAT keepalives (0xFF).
//! [`classify`] tells them apart.

use super::{Error, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// SPI and sequence number.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Prefix of an IKE message on the NAT-T port (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The whole payload of a NAT keepalive (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];
/// The IKE NAT-traversal port.
pub const NAT_T_PORT: u16 = 4500;
/// The plain IKE port.
pub const IKE_PORT: u16 = 500;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A read/write view of an ESP packet.
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

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SPI])
    }

    pub fn seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }

    /// IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi(&mut self, v: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The meaning of an ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi: u32,
    pub seq: u32,
}

impl Repr {
    /// SPI zero is the non-ESP marker and SPIs 1..=255 are reserved (RFC 4303 §2.1).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.spi() < 256 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            spi: packet.spi(),
            seq: packet.seq(),
        })
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_spi(self.spi);
        packet.set_seq(self.seq);
    }
}

/// What a datagram on the NAT-T port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap<'a> {
    /// A NAT keepalive: ignore it.
    Keepalive,
    /// An IKE message, the marker stripped.
    Ike(&'a [u8]),
    /// An ESP packet (SPI first).
    Esp(&'a [u8]),
}

/// Sorts a UDP payload received on port 4500 (RFC 3948 §2.2, §2.3).
pub fn classify(payload: &[u8]) -> Result<Encap<'_>> {
    if payload == NAT_KEEPALIVE {
        return Ok(Encap::Keepalive);
    }
    match payload.get(..4) {
        None => Err(Error::Truncated),
        Some(m) if m == NON_ESP_MARKER => Ok(Encap::Ike(&payload[4..])),
        Some(_) if payload.len() < HEADER_LEN => Err(Error::Truncated),
        Some(_) => Ok(Encap::Esp(payload)),
    }
}

/// Writes the non-ESP marker and an IKE message into `out`; returns the length, or
/// `None` if `out` is too small.
pub fn encap_ike(msg: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = NON_ESP_MARKER.len() + msg.len();
    let dst = out.get_mut(..len)?;
    dst[..4].copy_from_slice(&NON_ESP_MARKER);
    dst[4..].copy_from_slice(msg);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_nat_t_payloads() {
        assert_eq!(classify(&[0xff]), Ok(Encap::Keepalive));
        assert_eq!(classify(&[]), Err(Error::Truncated));
        assert_eq!(classify(&[0, 0, 0]), Err(Error::Truncated));
        assert_eq!(classify(&[0, 0, 0, 0, 1, 2]), Ok(Encap::Ike(&[1, 2][..])));
        assert_eq!(classify(&[0, 0, 1, 0, 0]), Err(Error::Truncated));
        let esp = [0, 0, 1, 0, 0, 0, 0, 1, 9];
        assert_eq!(classify(&esp), Ok(Encap::Esp(&esp[..])));
        let mut out = [0u8; 8];
        assert_eq!(encap_ike(&[7, 8], &mut out), Some(6));
        assert_eq!(out[..6], [0, 0, 0, 0, 7, 8]);
        assert_eq!(encap_ike(&[0; 5], &mut out), None);
    }

    #[test]
    fn header_round_trip() {
        let mut b = [0u8; 12];
        Repr {
            spi: 0xc1a2_b3c4,
            seq: 7,
        }
        .emit(&mut Packet::new_unchecked(&mut b[..]));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p),
            Ok(Repr {
                spi: 0xc1a2_b3c4,
                seq: 7
            })
        );
        assert_eq!(p.payload().len(), 4);
        assert_eq!(Packet::new_checked(&b[..7]).err(), Some(Error::Truncated));
        let reserved = [0, 0, 0, 255, 0, 0, 0, 1];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&reserved[..]).unwrap()),
            Err(Error::Malformed)
        );
    }
}
