//! TUN offloads, the way wireguard-go uses them. With `IFF_VNET_HDR` and
//! `TUNSETOFFLOAD`, the kernel hands the tunnel TCP segments of up to 64 KiB with a
//! virtio-net header (one read instead of forty) and leaves checksums to us. Before a
//! packet is encrypted and encapsulated, it is cut back into wire-sized segments with
//! complete checksums, here, without allocating.

use crate::wire::ipv4::checksum;

/// The virtio-net header the TUN puts before each packet (without mergeable buffers).
pub const VNET_HDR_LEN: usize = 10;

pub const F_NEEDS_CSUM: u8 = 1;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header (native endianness, as the TUN writes it).
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// The header as the TUN reads it.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        ]
        .into_iter()
        .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// Why a packet from the TUN could not be turned into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    Malformed,
    Unsupported,
}

/// Finishes a partial checksum: the sum over `pkt[start..]` (which already holds the
/// pseudo-header sum in the checksum field), stored inverted at `start + offset`.
fn complete(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), Bad> {
    let at = start.checked_add(offset).ok_or(Bad::Malformed)?;
    if at + 2 > pkt.len() || start > pkt.len() {
        return Err(Bad::Malformed);
    }
    let sum = !checksum::data(&pkt[start..]);
    pkt[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Calls `f` with every wire-ready IPv4 packet in `pkt` (the bytes after the vnet
/// header). `scratch` must hold one segment (65535 bytes is always enough).
pub fn segments(
    hdr: &VnetHdr,
    pkt: &mut [u8],
    scratch: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> Result<(), Bad> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete(pkt, hdr.csum_start as usize, hdr.csum_offset as usize)?;
            }
            f(pkt);
            Ok(())
        }
        GSO_TCPV4 => tcp4(hdr, pkt, scratch, f),
        _ => Err(Bad::Unsupported),
    }
}

fn tcp4(
    hdr: &VnetHdr,
    pkt: &[u8],
    scratch: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> Result<(), Bad> {
    let ihl = (*pkt.first().ok_or(Bad::Malformed)? as usize & 0xf) * 4;
    if pkt.first().map(|b| b >> 4) != Some(4)
        || ihl < 20
        || pkt.len() < ihl + 20
        || pkt.get(9) != Some(&6)
    {
        return Err(Bad::Malformed);
    }
    let doff = ((pkt[ihl + 12] >> 4) as usize) * 4;
    let hlen = ihl + doff;
    let mss = hdr.gso_size as usize;
    if doff < 20 || pkt.len() < hlen || mss == 0 {
        return Err(Bad::Malformed);
    }
    let payload = &pkt[hlen..];
    let ident = u16::from_be_bytes([pkt[4], pkt[5]]);
    let seq0 = u32::from_be_bytes([pkt[ihl + 4], pkt[ihl + 5], pkt[ihl + 6], pkt[ihl + 7]]);
    let flags0 = pkt[ihl + 13];
    let src = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = std::net::Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let count = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let len = hlen + chunk.len();
        let seg = scratch.get_mut(..len).ok_or(Bad::Malformed)?;
        seg[..hlen].copy_from_slice(&pkt[..hlen]);
        seg[hlen..].copy_from_slice(chunk);
        // IPv4: length, a fresh id per segment, checksum.
        seg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        seg[4..6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
        seg[10..12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&seg[..ihl]);
        seg[10..12].copy_from_slice(&c.to_be_bytes());
        // TCP: sequence; FIN and PSH only on the last, CWR only on the first.
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[ihl + 4..ihl + 8].copy_from_slice(&seq.to_be_bytes());
        let mut fl = flags0;
        if i + 1 < count {
            fl &= !(0x01 | 0x08);
        }
        if i > 0 {
            fl &= !0x80;
        }
        seg[ihl + 13] = fl;
        seg[ihl + 16..ihl + 18].copy_from_slice(&[0, 0]);
        let tcp_len = (len - ihl) as u16;
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, crate::wire::ipv4::Protocol::Tcp, tcp_len),
            checksum::data(&seg[ihl..]),
        ]);
        seg[ihl + 16..ihl + 18].copy_from_slice(&(!sum).to_be_bytes());
        f(seg);
    }
    if payload.is_empty() {
        return Err(Bad::Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 packet with `n` payload bytes, checksums left as the kernel leaves
    /// them for offload (pseudo-header sum in the TCP checksum field).
    fn super_packet(n: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40 + n];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((40 + n) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&5000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn valid(seg: &[u8]) -> bool {
        let ip_ok = checksum::data(&seg[..20]) == 0xffff;
        let tcp_len = (seg.len() - 20) as u16;
        let sum = checksum::combine(&[
            checksum::pseudo_header(
                [10, 0, 0, 1].into(),
                [10, 0, 0, 2].into(),
                crate::wire::ipv4::Protocol::Tcp,
                tcp_len,
            ),
            checksum::data(&seg[20..]),
        ]);
        ip_ok && sum == 0xffff
    }

    #[test]
    fn a_super_packet_becomes_valid_segments() {
        let mut p = super_packet(3000, 0x18 | 0x01 | 0x80); // PSH|ACK|FIN|CWR
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1400,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut scratch = vec![0u8; 65535];
        let mut segs = Vec::new();
        segments(&hdr, &mut p, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(segs.len(), 3);
        assert_eq!(
            segs.iter().map(|s| s.len() - 40).collect::<Vec<_>>(),
            vec![1400, 1400, 200]
        );
        for (i, s) in segs.iter().enumerate() {
            assert!(valid(s), "segment {i} checksums");
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, 1000 + 1400 * i as u32);
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
            let last = i == 2;
            assert_eq!(s[33] & 0x09 != 0, last, "FIN/PSH only on the last");
            assert_eq!(s[33] & 0x80 != 0, i == 0, "CWR only on the first");
        }
        // Payload bytes carried through in order.
        let data: Vec<u8> = segs.iter().flat_map(|s| s[40..].to_vec()).collect();
        assert_eq!(data, super_packet(3000, 0)[40..].to_vec());
    }

    #[test]
    fn a_plain_packet_gets_its_checksum_completed() {
        let mut p = super_packet(100, 0x10);
        // The kernel leaves the pseudo-header sum in the field.
        let ph = checksum::pseudo_header(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            crate::wire::ipv4::Protocol::Tcp,
            120,
        );
        p[36..38].copy_from_slice(&ph.to_be_bytes());
        let ipc = !checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ipc.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            csum_start: 20,
            csum_offset: 16,
            ..Default::default()
        };
        let mut out = Vec::new();
        segments(&hdr, &mut p, &mut [0u8; 10], |s| out = s.to_vec()).unwrap();
        assert!(valid(&out));
    }

    #[test]
    fn garbage_never_panics() {
        let mut scratch = vec![0u8; 2000];
        for n in 0..80 {
            for gso in [GSO_NONE, GSO_TCPV4, 3, 0x81] {
                for (cs, co) in [(0u16, 0u16), (20, 16), (65535, 65535), (70, 2)] {
                    let mut p: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
                    if n > 0 {
                        p[0] = 0x45;
                    }
                    let hdr = VnetHdr {
                        flags: F_NEEDS_CSUM,
                        gso_type: gso,
                        hdr_len: 0,
                        gso_size: (n % 7) as u16,
                        csum_start: cs,
                        csum_offset: co,
                    };
                    let _ = segments(&hdr, &mut p, &mut scratch, |_| {});
                }
            }
        }
        assert!(VnetHdr::parse(&[0; 9]).is_none());
    }
}
