use super::*;
use std::time::{Duration, Instant};

fn keys(spi: u32, fill: u8) -> EspKeys {
    EspKeys {
        spi,
        keymat: KeyMaterial::from_slice(&[fill; KEYMAT_LEN]).unwrap(),
    }
}

fn pair(life: Lifetime) -> (Outbound, Inbound) {
    let now = Instant::now();
    let k = keys(0xc0ffee01, 7);
    (Outbound::new(&k, life, now), Inbound::new(&k, life, now))
}

fn inner(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Seals an arbitrary plaintext (inner packet and trailer) the way a peer might, to
/// test what the receiver makes of odd trailers.
fn seal_raw(k: &EspKeys, seq: u32, pt: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&k.spi.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&u64::from(seq).to_be_bytes());
    b.extend_from_slice(pt);
    let key = aead_key(k);
    let mut aad = [0u8; 8];
    aad.copy_from_slice(&b[..8]);
    let n = nonce(&k.keymat.salt(), &b[8..16]);
    let tag = key
        .seal_in_place_separate_tag(n, Aad::from(aad), &mut b[HEADER_LEN..])
        .unwrap();
    b.extend_from_slice(tag.as_ref());
    b
}

#[test]
fn round_trip_all_small_sizes_and_1400() {
    let (mut tx, mut rx) = pair(Lifetime::default());
    for len in (0..=64).chain([1400, 1438]) {
        let pkt = inner(len);
        let mut buf = vec![0u8; 2048];
        let n = tx.seal(&pkt, &mut buf).unwrap();
        assert_eq!(n, sealed_len(len));
        assert_eq!((n - HEADER_LEN - ICV_LEN) % 4, 0, "ciphertext 4-aligned");
        let r = rx.open_in_place(&mut buf[..n]).unwrap();
        assert_eq!(&buf[r], &pkt[..]);
    }
    assert_eq!(tx.counters().packets, 67);
    assert_eq!(rx.counters(), tx.counters());
    assert_eq!(rx.top(), 67);
}

#[test]
fn wire_layout() {
    let (mut tx, _) = pair(Lifetime::default());
    let mut buf = [0u8; 64];
    let n = tx.seal(&[0x45; 5], &mut buf).unwrap();
    // 8 header + 8 IV + 5 + 1 pad + 2 + 16 ICV.
    assert_eq!(n, 40);
    let p = crate::wire::esp::Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(p.spi(), 0xc0ffee01);
    assert_eq!(p.seq(), 1);
    // The IV is the 64-bit sequence number.
    assert_eq!(&buf[8..16], &1u64.to_be_bytes());
    assert_eq!(max_inner_len(1472), 1438);
    assert_eq!(sealed_len(1438), 1472);
    assert!(sealed_len(max_inner_len(1400)) <= 1400);
}

#[test]
fn in_place_with_headroom() {
    // The shell keeps room for IPv4 + UDP in front; seal works on the ESP slice.
    let (mut tx, mut rx) = pair(Lifetime::default());
    let mut frame = vec![0u8; 28 + HEADER_LEN + 100 + 64];
    let pkt = inner(100);
    frame[28 + HEADER_LEN..28 + HEADER_LEN + 100].copy_from_slice(&pkt);
    let n = tx.seal_in_place(&mut frame[28..], 100).unwrap();
    let r = rx.open_in_place(&mut frame[28..28 + n]).unwrap();
    assert_eq!(&frame[28..][r], &pkt[..]);
    // Too small a buffer is an error, not a panic.
    let mut small = vec![0u8; sealed_len(100) - 1];
    assert_eq!(tx.seal(&pkt, &mut small), Err(Error::Truncated));
    assert_eq!(tx.seal_in_place(&mut small, 100_000), Err(Error::Truncated));
}

#[test]
fn tampering_is_rejected_everywhere() {
    let (mut tx, _) = pair(Lifetime::default());
    let mut buf = vec![0u8; 256];
    let n = tx.seal(&inner(60), &mut buf).unwrap();
    let sealed = buf[..n].to_vec();
    for i in 0..n {
        for bit in [0x01, 0x80] {
            let (_, mut rx) = pair(Lifetime::default());
            let mut m = sealed.clone();
            m[i] ^= bit;
            let e = rx.open_in_place(&mut m).unwrap_err();
            assert!(
                matches!(e, Error::Auth | Error::WrongSpi | Error::Replay),
                "byte {i}: {e:?}"
            );
            if e == Error::Auth {
                assert_eq!(rx.counters().auth_failed, 1);
                // A forged packet does not move the window.
                assert_eq!(rx.top(), 0);
            }
        }
    }
    // Truncations.
    let (_, mut rx) = pair(Lifetime::default());
    for len in 0..n {
        let mut m = sealed[..len].to_vec();
        assert!(rx.open_in_place(&mut m).is_err());
    }
    // The wrong key.
    let mut rx = Inbound::new(&keys(0xc0ffee01, 8), Lifetime::default(), Instant::now());
    let mut m = sealed.clone();
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Auth));
}

#[test]
fn replay_window_edges() {
    let (mut tx, mut rx) = pair(Lifetime::default());
    let mut pkts = Vec::new();
    for _ in 0..3000 {
        let mut b = vec![0u8; 128];
        let n = tx.seal(&inner(20), &mut b).unwrap();
        b.truncate(n);
        pkts.push(b);
    }
    let open = |rx: &mut Inbound, seq: u32| {
        let mut m = pkts[seq as usize - 1].clone();
        rx.open_in_place(&mut m).map(|_| ())
    };
    assert_eq!(open(&mut rx, 2000), Ok(()));
    assert_eq!(open(&mut rx, 2000), Err(Error::Replay));
    // The oldest still inside the window, then just outside.
    assert_eq!(open(&mut rx, 2000 - 1023), Ok(()));
    assert_eq!(open(&mut rx, 2000 - 1023), Err(Error::Replay));
    assert_eq!(open(&mut rx, 2000 - 1024), Err(Error::Replay));
    // Out of order inside the window: each once.
    for s in (1500..2000).rev() {
        assert_eq!(open(&mut rx, s), Ok(()), "{s}");
    }
    for s in 1500..=2000 {
        assert_eq!(open(&mut rx, s), Err(Error::Replay), "{s}");
    }
    // A jump far ahead clears everything behind the new window.
    assert_eq!(open(&mut rx, 2999), Ok(()));
    assert_eq!(open(&mut rx, 2000), Err(Error::Replay));
    assert_eq!(open(&mut rx, 2001), Ok(()));
    assert_eq!(open(&mut rx, 2999 - 1024), Err(Error::Replay));
    assert_eq!(open(&mut rx, 2998), Ok(()));
    assert_eq!(rx.counters().replayed, 506);
}

#[test]
fn replay_window_word_boundaries() {
    let mut w = ReplayWindow::default();
    assert!(!w.check(0));
    for s in [63u32, 64, 65, 127, 128, 1087, 1088, 1089, 2175, 2176] {
        assert!(w.check(s), "{s}");
        w.update(s);
        assert!(!w.check(s), "{s}");
    }
    // After 2176, everything up to 2176 - 1024 is outside, the rest unseen.
    assert!(!w.check(1152));
    for s in 1153..2175 {
        assert!(w.check(s), "{s}");
    }
    // A jump of exactly the ring's size clears every word.
    let mut w = ReplayWindow::default();
    w.update(5);
    w.update(5 + 17 * 64);
    assert!(!w.check(5));
    assert!(w.check(5 + 17 * 64 - 1));
    w.update(u32::MAX);
    assert!(!w.check(u32::MAX));
    assert!(w.check(u32::MAX - 1));
}

#[test]
fn odd_trailers() {
    let k = keys(0x1000, 1);
    let now = Instant::now();
    let mut rx = Inbound::new(&k, Lifetime::default(), now);
    // Next header 59: a dummy packet.
    let mut m = seal_raw(&k, 1, &[0xaa, 0xbb, 0, 59]);
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Dummy));
    // IPv6 inside: not ours.
    let mut m = seal_raw(&k, 2, &[0xaa, 0xbb, 0, 41]);
    assert_eq!(rx.open_in_place(&mut m), Err(Error::NextHeader(41)));
    // Pad length longer than the plaintext.
    let mut m = seal_raw(&k, 3, &[1, 2, 9, 4]);
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Malformed));
    // Padding bytes not 1, 2, ...
    let mut m = seal_raw(&k, 4, &[0x45, 7, 7, 2, 4]);
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Malformed));
    // Correct padding 1, 2 is accepted.
    let mut m = seal_raw(&k, 5, &[0x45, 0x00, 1, 2, 2, 4]);
    let r = rx.open_in_place(&mut m).unwrap();
    assert_eq!(&m[r], &[0x45, 0x00]);
    // Sequence number zero never is.
    let mut m = seal_raw(&k, 0, &[0x45, 0, 0, 4]);
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Replay));
}

#[test]
fn byte_and_packet_lifetimes() {
    let life = Lifetime {
        soft_bytes: 900,
        hard_bytes: 1000,
        soft_packets: 50,
        hard_packets: 60,
        ..Lifetime::default()
    };
    let now = Instant::now();
    let (mut tx, mut rx) = pair(life);
    let mut buf = [0u8; 256];
    assert_eq!(tx.check(now), None);
    for _ in 0..9 {
        let n = tx.seal(&inner(100), &mut buf).unwrap();
        rx.open_in_place(&mut buf[..n]).unwrap();
    }
    assert_eq!(tx.check(now), Some(Expiry::Soft));
    assert_eq!(tx.check(now), None, "reported once");
    assert_eq!(rx.check(now), Some(Expiry::Soft));
    let n = tx.seal(&inner(100), &mut buf).unwrap();
    rx.open_in_place(&mut buf[..n]).unwrap();
    // Exactly at the hard limit: the next packet is refused.
    assert_eq!(tx.seal(&inner(1), &mut buf), Err(Error::Expired));
    assert_eq!(tx.check(now), Some(Expiry::Hard));
    assert_eq!(tx.check(now), None);
    assert_eq!(rx.check(now), Some(Expiry::Hard));

    // Packet count.
    let (mut tx, _) = pair(Lifetime {
        soft_packets: 2,
        hard_packets: 3,
        ..Lifetime::default()
    });
    for _ in 0..2 {
        tx.seal(&[], &mut buf).unwrap();
    }
    assert_eq!(tx.check(now), Some(Expiry::Soft));
    tx.seal(&[], &mut buf).unwrap();
    assert_eq!(tx.seal(&[], &mut buf), Err(Error::Expired));
    assert_eq!(tx.check(now), Some(Expiry::Hard));
}

#[test]
fn sequence_numbers_never_wrap() {
    let (mut tx, mut rx) = pair(Lifetime::default());
    let now = Instant::now();
    tx.seq = 0xf000_0000 - 1;
    let mut buf = [0u8; 128];
    let n = tx.seal(&[0x45], &mut buf).unwrap();
    assert_eq!(tx.check(now), Some(Expiry::Soft));
    rx.open_in_place(&mut buf[..n]).unwrap();
    tx.seq = u32::MAX - 1;
    let n = tx.seal(&[0x45], &mut buf).unwrap();
    assert_eq!(
        crate::wire::esp::Packet::new_checked(&buf[..n])
            .unwrap()
            .seq(),
        u32::MAX
    );
    rx.open_in_place(&mut buf[..n]).unwrap();
    assert_eq!(tx.seal(&[0x45], &mut buf), Err(Error::Expired));
    assert_eq!(tx.check(now), Some(Expiry::Hard));
}

#[test]
fn time_lifetimes() {
    let t0 = Instant::now();
    let life = Lifetime {
        soft_time: Some(Duration::from_secs(9)),
        hard_time: Some(Duration::from_secs(10)),
        ..Lifetime::default()
    };
    let k = keys(0x2000, 2);
    let mut tx = Outbound::new(&k, life, t0);
    assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(9)));
    assert_eq!(tx.check(t0 + Duration::from_secs(8)), None);
    assert_eq!(tx.check(t0 + Duration::from_secs(9)), Some(Expiry::Soft));
    assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(tx.check(t0 + Duration::from_secs(11)), Some(Expiry::Hard));
    assert_eq!(tx.deadline(), None);
}

#[test]
fn keys_never_print() {
    let k = keys(0x3000, 0x5a);
    let s = format!("{k:?}");
    assert!(s.contains("<key>") && !s.contains("90"), "{s}");
    let (tx, rx) = pair(Lifetime::default());
    assert!(!format!("{tx:?} {rx:?}").contains("key:"));
}

/// ns per 1400-byte packet, sealed and opened: run with
/// `cargo test --release esp::tests::bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench() {
    let (mut tx, mut rx) = pair(Lifetime::default());
    let mut buf = vec![0u8; 1500];
    let pkt = inner(1400);
    let n = 200_000u32;
    let t = Instant::now();
    for _ in 0..n {
        buf[HEADER_LEN..HEADER_LEN + 1400].copy_from_slice(&pkt);
        let len = tx.seal_in_place(&mut buf, 1400).unwrap();
        std::hint::black_box(&buf[..len]);
    }
    let seal = t.elapsed().as_nanos() / u128::from(n);
    let mut sealed = Vec::with_capacity(n as usize);
    let (mut tx, _) = pair(Lifetime::default());
    for _ in 0..n {
        buf[HEADER_LEN..HEADER_LEN + 1400].copy_from_slice(&pkt);
        let len = tx.seal_in_place(&mut buf, 1400).unwrap();
        sealed.push(buf[..len].to_vec());
    }
    let t = Instant::now();
    for m in sealed.iter_mut() {
        let r = rx.open_in_place(m).unwrap();
        std::hint::black_box(r);
    }
    let open = t.elapsed().as_nanos() / u128::from(n);
    let gbps = |ns: u128| 1400.0 * 8.0 / ns as f64;
    println!(
        "ESP AES-256-GCM 1400 B: seal {seal} ns/packet ({:.1} Gbit/s), open {open} ns/packet ({:.1} Gbit/s)",
        gbps(seal),
        gbps(open)
    );
}

/// charon (kernel-libipsec) sealed this echo reply for econet; econet's key opens it.
#[test]
fn opens_charons_esp() {
    use crate::wire::ike::captures::{CHARON_ESP, CHARON_ESP_KEYMAT};
    let spi = u32::from_be_bytes(CHARON_ESP[..4].try_into().unwrap());
    let k = EspKeys {
        spi,
        keymat: KeyMaterial::from_slice(&CHARON_ESP_KEYMAT).unwrap(),
    };
    let mut rx = Inbound::new(&k, Lifetime::default(), Instant::now());
    let mut m = CHARON_ESP.to_vec();
    let r = rx.open_in_place(&mut m).unwrap();
    let ip = &m[r];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[9], 1, "ICMP");
    assert_eq!(ip[12..16], [172, 31, 1, 2]);
    assert_eq!(ip[16..20], [10, 3, 0, 20]);
    assert_eq!(ip[20], 0, "echo reply");
    // Replayed: refused.
    let mut m = CHARON_ESP.to_vec();
    assert_eq!(rx.open_in_place(&mut m), Err(Error::Replay));
}

/// econet's own packet as charon accepted it: opening it and sealing the plaintext
/// again with the same key and sequence number gives the same bytes.
#[test]
fn reseals_its_own_esp_identically() {
    use crate::wire::ike::captures::{ECONET_ESP, ECONET_ESP_KEYMAT};
    let spi = u32::from_be_bytes(ECONET_ESP[..4].try_into().unwrap());
    let seq = u32::from_be_bytes(ECONET_ESP[4..8].try_into().unwrap());
    let k = EspKeys {
        spi,
        keymat: KeyMaterial::from_slice(&ECONET_ESP_KEYMAT).unwrap(),
    };
    let now = Instant::now();
    let mut rx = Inbound::new(&k, Lifetime::default(), now);
    let mut m = ECONET_ESP.to_vec();
    let r = rx.open_in_place(&mut m).unwrap();
    let inner = m[r].to_vec();
    assert_eq!(inner[20], 8, "echo request");
    let mut tx = Outbound::new(&k, Lifetime::default(), now);
    tx.seq = seq - 1;
    let mut out = vec![0u8; 256];
    let n = tx.seal(&inner, &mut out).unwrap();
    assert_eq!(&out[..n], &ECONET_ESP[..]);
}
