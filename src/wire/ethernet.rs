//! Ethernet II frames. VLAN tags are not unwrapped here: an 802.1Q frame reads as
//! ethertype `Vlan`, and the caller decides (switch networks pass tags unchanged).

use super::{Error, Result};
use crate::addr::MacAddr;

/// The protocol in an Ethernet frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Vlan,
    Ipv6,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> EtherType {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an Ethernet II frame (without FCS).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may panic unless `check_len` passed.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds a whole header.
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

    pub fn dst_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        MacAddr(m)
    }

    pub fn src_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        MacAddr(m)
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything after the header, including any padding to the 60-byte minimum.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_dst_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&m.0);
    }

    pub fn set_src_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&m.0);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The meaning of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: MacAddr,
    pub dst_addr: MacAddr,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            ethertype: packet.ethertype(),
        })
    }

    /// The header length; the payload follows it.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; the buffer must hold at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::*;

    #[test]
    fn parse_captured_discover() {
        let p = Packet::new_checked(&UDHCPC_DISCOVER[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.dst_addr, MacAddr::BROADCAST);
        assert_eq!(r.src_addr, MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]));
        assert_eq!(r.ethertype, EtherType::Ipv4);
        assert_eq!(p.payload().len(), UDHCPC_DISCOVER.len() - 14);
    }

    #[test]
    fn parse_captured_arp_and_roundtrip() {
        let p = Packet::new_checked(&KERNEL_ARP_REPLY[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.ethertype, EtherType::Arp);
        let mut buf = [0u8; 42];
        buf[14..].copy_from_slice(p.payload());
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, KERNEL_ARP_REPLY);
    }

    #[test]
    fn short_frames_are_rejected() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&UDHCPC_DISCOVER[..n]).err(),
                Some(Error::Truncated)
            );
        }
        assert!(Packet::new_checked(&UDHCPC_DISCOVER[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn ethertype_roundtrip() {
        for v in [0x0800u16, 0x0806, 0x8100, 0x86dd, 0x88b5] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }
}
