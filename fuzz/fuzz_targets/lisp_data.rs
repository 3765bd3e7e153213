//! Any bytes as a LISP data packet into an xTR (clear and LISP-crypto; see
//! lisp_common.rs), as a TUN read
//! (vnet header then packet) into offload segmentation, and as packets into GRO.
#![no_main]
use econet::services::gro::Gro;
use econet::services::offload::{segments, VnetHdr, GSO_TCPV4, VNET_HDR_LEN};
use econet::wire::lisp::DATA_PORT;
use std::time::Instant;

mod lisp_common;
use lisp_common::*;

/// The IPv4 header checksum over `b`.
fn csum(b: &[u8], init: u32) -> u16 {
    let mut s = init;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Makes a TCP/IPv4-looking packet consistent (total length, both checksums) so it can
/// get past GRO's eligibility checks.
fn fix_up(p: &mut [u8]) {
    if p.len() < 40 || p.len() > 0xffff {
        return;
    }
    p[0] = 0x45;
    p[9] = 6;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[36..38].copy_from_slice(&[0, 0]);
    let mut ph = 6 + u32::from(len - 20);
    for c in p[12..20].chunks(2) {
        ph += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let c = csum(&p[20..], ph);
    p[36..38].copy_from_slice(&c.to_be_bytes());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    for encrypt in [false, true] {
        let mut x = xtr(encrypt, now);
        let mut buf = data.to_vec();
        if let Ok(d) = x.handle_data(now, from(RLOC0, DATA_PORT), &mut buf) {
            assert!(d.inner.end <= buf.len());
        }
        while x.poll(now).is_some() {}
        let _ = x.status();
    }

    let mut scratch = vec![0u8; 65535];
    if let Some(h) = VnetHdr::parse(data) {
        let mut pkt = data[VNET_HDR_LEN..].to_vec();
        let _ = segments(&h, &mut pkt, &mut scratch, |s| assert!(s.len() <= 65535));
    }

    // Packets: a flags byte (bit 0: fix lengths and checksums), a 16-bit length, bytes.
    let mut pkts = Vec::new();
    let mut rest = data;
    while pkts.len() < 8 {
        let Some((&[f, l0, l1], tail)) = rest.split_first_chunk::<3>() else {
            break;
        };
        let n = usize::from(u16::from_be_bytes([l0, l1])).min(tail.len());
        let mut p = tail[..n].to_vec();
        if f & 1 != 0 {
            fix_up(&mut p);
        }
        pkts.push(p);
        rest = &tail[n..];
    }
    let mut gro = Gro::default();
    let mut written: Vec<(VnetHdr, Vec<u8>)> = Vec::new();
    let mut w = |h: &VnetHdr, p: &[u8]| written.push((*h, p.to_vec()));
    for p in &pkts {
        gro.push(p, &mut w);
    }
    gro.flush(&mut w);
    // What GRO writes, the kernel (and our own segmentation) must be able to cut again.
    for (h, mut p) in written {
        let r = segments(&h, &mut p, &mut scratch, |_| {});
        if h.gso_type == GSO_TCPV4 {
            assert!(
                r.is_ok(),
                "GRO wrote a GSO packet segments() refuses: {r:?}"
            );
        }
    }
});
