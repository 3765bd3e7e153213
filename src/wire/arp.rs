//! ARP for IPv4 over Ethernet (RFC 826), and the RFC 5227 probe the DHCP server sends
//! before offering an address no one has held yet.

use super::{Error, Result};
use crate::addr::MacAddr;
use std::net::Ipv4Addr;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Operation {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet (frames pad it to 46 bytes; padding is ignored).
pub const PACKET_LEN: usize = field::TPA.end;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(b);
    MacAddr(m)
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

    /// Checks the buffer holds an Ethernet/IPv4-sized packet. Other hardware or
    /// protocol types are rejected by `Repr::parse`.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> Operation {
        Operation::from(be16(&self.buffer.as_ref()[field::OPER]))
    }
    pub fn source_hardware_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::SHA])
    }
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ip4(&self.buffer.as_ref()[field::SPA])
    }
    pub fn target_hardware_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::THA])
    }
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ip4(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    pub fn set_operation(&mut self, v: Operation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(v).to_be_bytes());
    }
    pub fn set_source_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }
    pub fn set_target_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// An RFC 5227 probe for `target`: a request with sender IP 0.0.0.0, so that no
    /// host's ARP cache learns anything from it; a host holding `target` replies.
    pub fn probe(source_mac: MacAddr, target: Ipv4Addr) -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: source_mac,
            source_protocol_addr: Ipv4Addr::UNSPECIFIED,
            target_hardware_addr: MacAddr([0; 6]),
            target_protocol_addr: target,
        }
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; the buffer must hold at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet;
    use crate::wire::testdata::*;

    fn arp(frame: &[u8]) -> Result<Repr> {
        let eth = ethernet::Packet::new_checked(frame)?;
        Repr::parse(&Packet::new_checked(eth.payload())?)
    }

    #[test]
    fn parse_captured_reply() {
        let r = arp(&KERNEL_ARP_REPLY).unwrap();
        assert_eq!(r.operation, Operation::Reply);
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(10, 9, 0, 49));
        assert_eq!(
            r.source_hardware_addr,
            MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12])
        );
    }

    #[test]
    fn captured_probe_matches_our_probe() {
        // udhcpc -a's probe arrives padded to 60 bytes; padding is ignored.
        assert_eq!(UDHCPC_ARP_PROBE.len(), 60);
        let r = arp(&UDHCPC_ARP_PROBE).unwrap();
        let ours = Repr::probe(r.source_hardware_addr, Ipv4Addr::new(10, 9, 0, 77));
        assert_eq!(r, ours);
        let mut buf = [0u8; PACKET_LEN];
        ours.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &UDHCPC_ARP_PROBE[14..14 + PACKET_LEN]);
        // And the kernel's answer to it claims the address.
        let reply = arp(&KERNEL_ARP_PROBE_REPLY).unwrap();
        assert_eq!(reply.operation, Operation::Reply);
        assert_eq!(reply.source_protocol_addr, Ipv4Addr::new(10, 9, 0, 77));
    }

    #[test]
    fn roundtrip_request() {
        let r = arp(&UDHCPC_ARP_REQUEST).unwrap();
        assert_eq!(r.operation, Operation::Request);
        let mut buf = [0u8; PACKET_LEN];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &UDHCPC_ARP_REQUEST[14..]);
    }

    #[test]
    fn bad_packets() {
        let payload = &KERNEL_ARP_REPLY[14..];
        for n in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&payload[..n]).err(),
                Some(Error::Truncated)
            );
        }
        for i in [0usize, 1, 2, 3, 4, 5] {
            let mut b = [0u8; PACKET_LEN];
            b.copy_from_slice(payload);
            b[i] ^= 0x10;
            assert_eq!(
                Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
                Err(Error::Unsupported)
            );
        }
    }
}
