//! Whole Ethernet frames around the server's messages, for a shell that receives and
//! sends on packet sockets: it must, to learn which bridge port a DISCOVER came in on
//! and to answer a client with no address without touching the ARP table.

use super::Reply;
use crate::addr::MacAddr;
use crate::wire::dhcp::{CLIENT_PORT, SERVER_PORT};
use crate::wire::{arp, ethernet, ipv4, udp};
use std::net::Ipv4Addr;

/// Where a reply's UDP payload starts in the frame `emit_reply` builds: hand
/// `&mut frame[PAYLOAD_OFFSET..]` to the server, then call `emit_reply`.
pub const PAYLOAD_OFFSET: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Ethernet's minimum frame length without FCS; shorter frames are zero-padded.
pub const MIN_FRAME_LEN: usize = 60;

/// Writes Ethernet, IPv4 and UDP headers (from `src_mac`/`src_ip`, port 67, to the
/// reply's destination, port 68) around the payload already at `PAYLOAD_OFFSET`.
/// Returns the frame length, `None` if the buffer is too small.
pub fn emit_reply(
    frame: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    reply: &Reply,
) -> Option<usize> {
    let len = PAYLOAD_OFFSET.checked_add(reply.payload_len)?;
    let frame = frame.get_mut(..len)?;
    let eth = ethernet::Repr {
        src_addr: src_mac,
        dst_addr: reply.dst_mac,
        ethertype: ethernet::EtherType::Ipv4,
    };
    let ip = ipv4::Repr {
        src_addr: src_ip,
        dst_addr: reply.dst_ip,
        protocol: ipv4::Protocol::Udp,
        payload_len: udp::HEADER_LEN + reply.payload_len,
        ttl: 64,
    };
    let u = udp::Repr {
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
        payload_len: reply.payload_len,
    };
    let (eth_buf, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    eth.emit(&mut ethernet::Packet::new_unchecked(eth_buf));
    let (ip_buf, udp_buf) = rest.split_at_mut(ipv4::HEADER_LEN);
    ip.emit(&mut ipv4::Packet::new_unchecked(ip_buf)).ok()?;
    u.emit(
        &mut udp::Packet::new_unchecked(udp_buf),
        src_ip,
        reply.dst_ip,
        udp::Checksum::Verify,
    )
    .ok()?;
    Some(len)
}

/// A DHCP message to the server in a received frame: (source MAC, source IP, UDP
/// payload). `None` for anything else, or a bad checksum when `checksum` asks to verify
/// (pass `Ignore` for frames the kernel marked as checksum-not-ready).
pub fn parse_request(frame: &[u8], checksum: udp::Checksum) -> Option<(MacAddr, Ipv4Addr, &[u8])> {
    let eth = ethernet::Packet::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::EtherType::Ipv4 {
        return None;
    }
    let src_mac = eth.src_addr();
    let frame: &[u8] = frame.get(ethernet::HEADER_LEN..)?;
    let ip = ipv4::Packet::new_checked(frame).ok()?;
    let ip_repr = ipv4::Repr::parse(&ip).ok()?;
    if ip_repr.protocol != ipv4::Protocol::Udp {
        return None;
    }
    let hl = ip.header_len() as usize;
    let total = ip.total_len() as usize;
    let seg = frame.get(hl..total)?;
    let u = udp::Packet::new_checked(seg).ok()?;
    let r = udp::Repr::parse(&u, ip_repr.src_addr, ip_repr.dst_addr, checksum).ok()?;
    if r.dst_port != SERVER_PORT {
        return None;
    }
    let payload = seg.get(udp::HEADER_LEN..udp::HEADER_LEN + r.payload_len)?;
    Some((src_mac, ip_repr.src_addr, payload))
}

/// Writes an RFC 5227 ARP probe for `target` as a broadcast frame (padded to 60
/// bytes). Returns the frame length, `None` if the buffer is too small.
pub fn emit_probe(frame: &mut [u8], src_mac: MacAddr, target: Ipv4Addr) -> Option<usize> {
    let frame = frame.get_mut(..MIN_FRAME_LEN)?;
    frame.fill(0);
    let (eth_buf, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    ethernet::Repr {
        src_addr: src_mac,
        dst_addr: MacAddr::BROADCAST,
        ethertype: ethernet::EtherType::Arp,
    }
    .emit(&mut ethernet::Packet::new_unchecked(eth_buf));
    arp::Repr::probe(src_mac, target).emit(&mut arp::Packet::new_unchecked(rest));
    Some(MIN_FRAME_LEN)
}

/// The sender (MAC, IP) of an ARP frame, for [`Server::handle_arp`](super::Server::handle_arp).
pub fn parse_arp(frame: &[u8]) -> Option<(MacAddr, Ipv4Addr)> {
    let eth = ethernet::Packet::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::EtherType::Arp {
        return None;
    }
    let a = arp::Repr::parse(&arp::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?).ok()?)
        .ok()?;
    Some((a.source_hardware_addr, a.source_protocol_addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::*;

    #[test]
    fn parse_captured_requests() {
        let (mac, ip, payload) = parse_request(&UDHCPC_DISCOVER, udp::Checksum::Verify).unwrap();
        assert_eq!(mac, MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]));
        assert_eq!(ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(payload.len(), 300);
        // Offloaded checksum: only with Ignore.
        assert!(parse_request(&UDHCPC_RENEW, udp::Checksum::Verify).is_none());
        let (_, ip, _) = parse_request(&UDHCPC_RENEW, udp::Checksum::Ignore).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 9, 0, 49));
        // Server replies go to port 68: not for us.
        assert!(parse_request(&DNSMASQ_OFFER, udp::Checksum::Ignore).is_none());
        assert!(parse_request(&KERNEL_ARP_REPLY, udp::Checksum::Ignore).is_none());
        for n in 0..UDHCPC_DISCOVER.len() {
            assert!(parse_request(&UDHCPC_DISCOVER[..n], udp::Checksum::Verify).is_none());
        }
    }

    #[test]
    fn reply_frame_matches_dnsmasq_layout() {
        // Rebuild dnsmasq's OFFER frame around its own payload: same bytes except the
        // TOS (dnsmasq marks CS6), IP identification/flags, and the checksums (dnsmasq's
        // UDP checksum was offloaded, ours is complete).
        let payload = &DNSMASQ_OFFER[PAYLOAD_OFFSET..];
        let mut buf = vec![0u8; 1514];
        buf[PAYLOAD_OFFSET..PAYLOAD_OFFSET + payload.len()].copy_from_slice(payload);
        let reply = Reply {
            dst_mac: MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]),
            dst_ip: Ipv4Addr::new(10, 9, 0, 49),
            payload_len: payload.len(),
        };
        let server = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);
        let n = emit_reply(&mut buf, server, Ipv4Addr::new(10, 9, 0, 1), &reply).unwrap();
        assert_eq!(n, DNSMASQ_OFFER.len());
        assert_eq!(buf[..15], DNSMASQ_OFFER[..15]);
        assert_eq!(buf[16..18], DNSMASQ_OFFER[16..18]);
        assert_eq!(buf[22..24], DNSMASQ_OFFER[22..24]);
        assert_eq!(buf[26..40], DNSMASQ_OFFER[26..40]);
        assert_eq!(buf[PAYLOAD_OFFSET..n], DNSMASQ_OFFER[PAYLOAD_OFFSET..]);
        let ip = ipv4::Packet::new_checked(&buf[14..n]).unwrap();
        assert!(ip.verify_checksum());
        let u = udp::Packet::new_checked(&buf[34..n]).unwrap();
        assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(emit_reply(
            &mut buf[..n - 1],
            server,
            Ipv4Addr::new(10, 9, 0, 1),
            &reply
        )
        .is_none());
    }

    #[test]
    fn probe_frame_matches_udhcpc_probe() {
        let mac = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
        let mut buf = [0u8; 64];
        let n = emit_probe(&mut buf, mac, Ipv4Addr::new(10, 9, 0, 77)).unwrap();
        assert_eq!(buf[..n], UDHCPC_ARP_PROBE);
        assert_eq!(
            parse_arp(&KERNEL_ARP_PROBE_REPLY),
            Some((
                MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]),
                Ipv4Addr::new(10, 9, 0, 77)
            ))
        );
        assert!(parse_arp(&UDHCPC_DISCOVER).is_none());
        assert!(emit_probe(&mut buf[..59], mac, Ipv4Addr::new(10, 9, 0, 77)).is_none());
    }
}
