//! Receive coalescing for the TUN: what the kernel's GRO does for a NIC, done before
//! the write. Packets out of a tunnel arrive one wire-sized TCP segment at a time;
//! written one by one, each pays the kernel's whole forwarding and TCP receive path.
//! Consecutive in-order segments of one flow are instead joined into one TCPv4 GSO
//! packet (the virtio-net header says so) and written once, as wireguard-go does.
//!
//! Sans-I/O: [`Gro::push`] and [`Gro::flush`] hand finished packets to a closure.
//! Anything that is not a plain, checksum-valid TCP/IPv4 data segment passes through
//! unchanged, after whatever of its own flow is pending, so order within a flow holds.

use super::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4};
use crate::wire::ipv4::{checksum, Protocol};
use std::net::Ipv4Addr;

/// Flows coalesced at once; a batch from one socket read rarely holds more.
const SLOTS: usize = 4;
/// The largest IPv4 packet, which bounds a coalesced one.
const MAX_PACKET: usize = 65535;
const IP_LEN: usize = 20;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// One flow's pending coalesced packet.
#[derive(Default)]
struct Slot {
    /// IPv4 header, TCP header and the payloads so far; empty when the slot is free.
    buf: Vec<u8>,
    /// IPv4 plus TCP header length.
    hlen: usize,
    /// Payload size of the first segment: later ones may not be larger.
    mss: usize,
    segs: usize,
    next_seq: u32,
    /// A PSH or a short segment ends the run.
    closed: bool,
    /// When the slot was last used, to pick one to evict.
    used: u64,
}

#[derive(Default)]
pub struct Gro {
    slots: [Slot; SLOTS],
    clock: u64,
}

/// What `push` needs to know of a segment that may be coalesced.
struct Segment {
    hlen: usize,
    seq: u32,
    flags: u8,
}

/// A plain TCP/IPv4 data segment with valid checksums, no IP options, no
/// fragmentation and only ACK (and perhaps PSH) set.
fn eligible(p: &[u8]) -> Option<Segment> {
    if p.len() < IP_LEN + 20 || p[0] != 0x45 || p[9] != 6 {
        return None;
    }
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    // Neither more fragments nor an offset; DF may be set.
    let frag = u16::from_be_bytes([p[6], p[7]]) & 0xbfff;
    let doff = ((p[IP_LEN + 12] >> 4) as usize) * 4;
    let hlen = IP_LEN + doff;
    let flags = p[IP_LEN + 13];
    if total != p.len() || frag != 0 || doff < 20 || hlen >= p.len() {
        return None;
    }
    if flags != TCP_ACK && flags != TCP_ACK | TCP_PSH {
        return None;
    }
    // The kernel will trust the coalesced packet's checksum; each part must be right.
    if checksum::data(&p[..IP_LEN]) != 0xffff || !tcp_checksum_ok(p) {
        return None;
    }
    let seq = u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
    Some(Segment { hlen, seq, flags })
}

fn addrs(p: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        Ipv4Addr::new(p[16], p[17], p[18], p[19]),
    )
}

fn tcp_checksum_ok(p: &[u8]) -> bool {
    let (src, dst) = addrs(p);
    let len = (p.len() - IP_LEN) as u16;
    checksum::combine(&[
        checksum::pseudo_header(src, dst, Protocol::Tcp, len),
        checksum::data(&p[IP_LEN..]),
    ]) == 0xffff
}

/// Same addresses and ports.
fn same_flow(a: &[u8], b: &[u8]) -> bool {
    a.len() >= IP_LEN + 4 && b.len() >= IP_LEN + 4 && a[12..IP_LEN + 4] == b[12..IP_LEN + 4]
}

/// `seg` may follow the pending packet `s`: everything but sequence, PSH and
/// payload is as the first segment had it (ECN, TTL, DF, ack, window, options).
fn continues(s: &Slot, p: &[u8], seg: &Segment) -> bool {
    let h = &s.buf;
    let payload = p.len() - seg.hlen;
    !s.closed
        && seg.seq == s.next_seq
        && seg.hlen == s.hlen
        && payload <= s.mss
        && s.buf.len() + payload <= MAX_PACKET
        && h[1] == p[1]
        && h[6] & 0x40 == p[6] & 0x40
        && h[8] == p[8]
        && h[IP_LEN + 8..IP_LEN + 12] == p[IP_LEN + 8..IP_LEN + 12]
        && h[IP_LEN + 14..IP_LEN + 16] == p[IP_LEN + 14..IP_LEN + 16]
        && h[IP_LEN + 20..s.hlen] == p[IP_LEN + 20..seg.hlen]
}

impl Gro {
    /// Takes one packet out of the tunnel; `out` gets whatever is ready to write.
    pub fn push(&mut self, p: &[u8], out: &mut impl FnMut(&VnetHdr, &[u8])) {
        self.clock += 1;
        let Some(seg) = eligible(p) else {
            // Whatever of its flow is pending goes first.
            if let Some(i) = self.slots.iter().position(|s| same_flow(&s.buf, p)) {
                self.emit(i, out);
            }
            out(&VnetHdr::default(), p);
            return;
        };
        let payload = p.len() - seg.hlen;
        if let Some(i) = self.slots.iter().position(|s| same_flow(&s.buf, p)) {
            if continues(&self.slots[i], p, &seg) {
                let s = &mut self.slots[i];
                s.buf.extend_from_slice(&p[seg.hlen..]);
                s.segs += 1;
                s.next_seq = seg.seq.wrapping_add(payload as u32);
                s.closed = seg.flags & TCP_PSH != 0 || payload < s.mss;
                s.used = self.clock;
                // The last segment's PSH stands for the whole run, and ends it.
                if seg.flags & TCP_PSH != 0 {
                    s.buf[IP_LEN + 13] |= TCP_PSH;
                }
                if s.closed {
                    self.emit(i, out);
                }
                return;
            }
            self.emit(i, out);
        }
        if seg.flags & TCP_PSH != 0 {
            // A run of one: nothing can follow it.
            out(&VnetHdr::default(), p);
            return;
        }
        let i = match self.slots.iter().position(|s| s.buf.is_empty()) {
            Some(i) => i,
            None => {
                let i = (0..SLOTS).min_by_key(|&i| self.slots[i].used).unwrap_or(0);
                self.emit(i, out);
                i
            }
        };
        let s = &mut self.slots[i];
        if s.buf.capacity() == 0 {
            s.buf.reserve_exact(MAX_PACKET);
        }
        s.buf.extend_from_slice(p);
        s.hlen = seg.hlen;
        s.mss = payload;
        s.segs = 1;
        s.next_seq = seg.seq.wrapping_add(payload as u32);
        s.closed = false;
        s.used = self.clock;
    }

    /// Writes out everything pending: call when a batch of input is done.
    pub fn flush(&mut self, out: &mut impl FnMut(&VnetHdr, &[u8])) {
        for i in 0..SLOTS {
            self.emit(i, out);
        }
    }

    fn emit(&mut self, i: usize, out: &mut impl FnMut(&VnetHdr, &[u8])) {
        let s = &mut self.slots[i];
        if s.buf.is_empty() {
            return;
        }
        if s.segs == 1 {
            // Unchanged, checksums and all.
            out(&VnetHdr::default(), &s.buf);
            s.buf.clear();
            return;
        }
        let len = s.buf.len();
        let b = &mut s.buf;
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        b[10..12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&b[..IP_LEN]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        // Partial checksum: the pseudo-header sum, which the kernel completes.
        let (src, dst) = addrs(b);
        let ph = checksum::pseudo_header(src, dst, Protocol::Tcp, (len - IP_LEN) as u16);
        b[IP_LEN + 16..IP_LEN + 18].copy_from_slice(&ph.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: s.hlen as u16,
            gso_size: s.mss as u16,
            csum_start: IP_LEN as u16,
            csum_offset: 16,
        };
        out(&hdr, b);
        s.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::offload::segments;
    use super::*;

    /// Wire segments of one flow, as the far end's TSO would cut them.
    fn flow(sport: u16, seq: u32, sizes: &[usize], last_flags: u8) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut seq = seq;
        for (k, &n) in sizes.iter().enumerate() {
            let mut p = vec![0u8; 40 + n];
            p[0] = 0x45;
            p[2..4].copy_from_slice(&((40 + n) as u16).to_be_bytes());
            p[4..6].copy_from_slice(&(7 + k as u16).to_be_bytes());
            p[6] = 0x40;
            p[8] = 63;
            p[9] = 6;
            p[12..16].copy_from_slice(&[10, 1, 0, 1]);
            p[16..20].copy_from_slice(&[10, 2, 0, 2]);
            p[20..22].copy_from_slice(&sport.to_be_bytes());
            p[22..24].copy_from_slice(&5201u16.to_be_bytes());
            p[24..28].copy_from_slice(&seq.to_be_bytes());
            p[28..32].copy_from_slice(&99u32.to_be_bytes());
            p[32] = 5 << 4;
            p[33] = if k + 1 == sizes.len() {
                last_flags
            } else {
                TCP_ACK
            };
            p[34..36].copy_from_slice(&512u16.to_be_bytes());
            for (i, b) in p[40..].iter_mut().enumerate() {
                *b = (i as u32 + seq) as u8;
            }
            seal(&mut p);
            seq = seq.wrapping_add(n as u32);
            out.push(p);
        }
        out
    }

    /// Fills in both checksums.
    fn seal(p: &mut [u8]) {
        p[10..12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[36..38].copy_from_slice(&[0, 0]);
        let (src, dst) = addrs(p);
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, Protocol::Tcp, (p.len() - 20) as u16),
            checksum::data(&p[20..]),
        ]);
        p[36..38].copy_from_slice(&(!sum).to_be_bytes());
    }

    /// What GRO wrote: headers and packets.
    type Written = Vec<(VnetHdr, Vec<u8>)>;

    /// Runs packets through GRO, then through the TUN's own segmentation, as the
    /// kernel would: what comes out must be exactly what went in.
    fn through(pkts: &[Vec<u8>]) -> (Written, Vec<Vec<u8>>) {
        let mut gro = Gro::default();
        let mut written = Vec::new();
        let mut w = |h: &VnetHdr, p: &[u8]| written.push((*h, p.to_vec()));
        for p in pkts {
            gro.push(p, &mut w);
        }
        gro.flush(&mut w);
        let mut scratch = vec![0u8; MAX_PACKET];
        let mut back = Vec::new();
        for (h, p) in &written {
            let mut p = p.clone();
            segments(h, &mut p, &mut scratch, |s| back.push(s.to_vec())).unwrap();
        }
        (written, back)
    }

    #[test]
    fn a_run_of_segments_becomes_one_gso_packet_and_back() {
        let pkts = flow(40000, 1000, &[1400, 1400, 1400, 600], TCP_ACK | TCP_PSH);
        let (written, back) = through(&pkts);
        assert_eq!(written.len(), 1);
        let (h, p) = &written[0];
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len), (GSO_TCPV4, 1400, 40));
        assert_eq!(p.len(), 40 + 4800);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        assert_eq!(checksum::data(&p[..20]), 0xffff);
        assert_eq!(p[33], TCP_ACK | TCP_PSH, "the run's PSH is kept");
        // IP ids are the kernel's to choose when it cuts; all else is identical.
        let strip = |v: &Vec<Vec<u8>>| {
            v.iter()
                .map(|p| {
                    let mut p = p.clone();
                    p[4..6].copy_from_slice(&[0, 0]);
                    p[10..12].copy_from_slice(&[0, 0]);
                    p
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&back), strip(&pkts));
        assert!(back.iter().all(|p| checksum::data(&p[..20]) == 0xffff));
        assert!(back.iter().all(|p| tcp_checksum_ok(p)));
    }

    #[test]
    fn interleaved_flows_coalesce_separately_in_order() {
        let a = flow(1, 0, &[1000, 1000, 1000], TCP_ACK);
        let b = flow(2, 500, &[1200, 1200], TCP_ACK);
        let mixed = vec![
            a[0].clone(),
            b[0].clone(),
            a[1].clone(),
            b[1].clone(),
            a[2].clone(),
        ];
        let (written, back) = through(&mixed);
        assert_eq!(written.len(), 2);
        let of = |port: u8| {
            back.iter()
                .filter(|p| p[21] == port)
                .map(|p| p[24..].to_vec())
                .collect::<Vec<_>>()
        };
        let want = |v: &Vec<Vec<u8>>| v.iter().map(|p| p[24..].to_vec()).collect::<Vec<_>>();
        assert_eq!(of(1), want(&a));
        assert_eq!(of(2), want(&b));
    }

    #[test]
    fn what_cannot_join_passes_unchanged_and_in_order() {
        let mut pkts = flow(7, 0, &[1000, 1000], TCP_ACK);
        // A gap in sequence, a bad checksum, a FIN, UDP, a SYN.
        pkts.extend(flow(7, 5000, &[1000], TCP_ACK));
        let mut bad = flow(7, 6000, &[1000], TCP_ACK).remove(0);
        bad[100] ^= 1;
        pkts.push(bad.clone());
        pkts.extend(flow(7, 6000, &[10], TCP_ACK | 0x01));
        let mut udp = flow(8, 0, &[30], TCP_ACK).remove(0);
        udp[9] = 17;
        pkts.push(udp.clone());
        let (written, _) = through(&pkts);
        let hdrs: Vec<u8> = written.iter().map(|(h, _)| h.gso_type).collect();
        assert_eq!(hdrs, vec![GSO_TCPV4, 0, 0, 0, 0]);
        assert_eq!(written[1].1, pkts[2]);
        assert_eq!(written[2].1, bad, "not repaired, not merged");
        assert_eq!(written[3].1, pkts[4]);
        assert_eq!(written[4].1, udp);
        // A segment larger than the first one's also starts a new run.
        let pkts = flow(9, 0, &[500, 1000], TCP_ACK);
        assert_eq!(through(&pkts).0.len(), 2);
        // So does a different window or ack.
        let mut pkts = flow(9, 0, &[500, 500], TCP_ACK);
        pkts[1][35] ^= 1;
        seal(&mut pkts[1]);
        assert_eq!(through(&pkts).0.len(), 2);
    }

    #[test]
    fn many_flows_evict_and_never_lose_a_packet() {
        let mut pkts = Vec::new();
        for round in 0..3u32 {
            for port in 0..(SLOTS as u16 + 3) {
                pkts.extend(flow(port, round * 100, &[100], TCP_ACK));
            }
        }
        let (_, back) = through(&pkts);
        assert_eq!(back.len(), pkts.len());
    }

    #[test]
    fn garbage_never_panics() {
        let mut gro = Gro::default();
        let mut n = 0usize;
        let mut w = |_: &VnetHdr, _: &[u8]| n += 1;
        let base = flow(3, 0, &[64], TCP_ACK).remove(0);
        for len in 0..base.len() + 4 {
            for k in 0..base.len() {
                let mut p: Vec<u8> = base.iter().copied().chain([1, 2, 3, 4]).take(len).collect();
                if let Some(b) = p.get_mut(k) {
                    *b = b.wrapping_mul(31).wrapping_add(len as u8);
                }
                gro.push(&p, &mut w);
            }
        }
        gro.flush(&mut w);
        assert!(n > 0);
    }
}
