//! Any bytes as a UDP payload on the NAT-T port: classified, and ESP opened by an
//! inbound SA with a fixed key; then as a plaintext sealed under that key (any trailer).
#![no_main]
use econet::esp::{EspKeys, Inbound, KeyMaterial, Lifetime, HEADER_LEN, KEYMAT_LEN};
use econet::wire::esp::{classify, Encap, Packet, Repr};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::time::Instant;

const SPI: u32 = 0xc0ff_ee01;
const FILL: u8 = 7;

fn keys() -> EspKeys {
    EspKeys {
        spi: SPI,
        keymat: KeyMaterial::from_slice(&[FILL; KEYMAT_LEN]).unwrap(),
    }
}

/// SPI | seq | IV (the seq) | AES-256-GCM(pt) | ICV, as src/esp/tests.rs `seal_raw`.
fn seal_raw(seq: u32, pt: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + pt.len() + 16);
    b.extend_from_slice(&SPI.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&u64::from(seq).to_be_bytes());
    b.extend_from_slice(pt);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[FILL; 32]).unwrap());
    let mut n = [FILL; 12];
    n[4..].copy_from_slice(&b[8..16]);
    let mut aad = [0u8; 8];
    aad.copy_from_slice(&b[..8]);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from(aad),
            &mut b[HEADER_LEN..],
        )
        .unwrap();
    b.extend_from_slice(tag.as_ref());
    b
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let k = keys();
    match classify(data) {
        Ok(Encap::Esp(p)) => {
            if let Ok(pk) = Packet::new_checked(p) {
                let _ = Repr::parse(&pk);
            }
            let mut sa = Inbound::new(&k, Lifetime::default(), now);
            let _ = sa.open_in_place(&mut p.to_vec());
        }
        Ok(Encap::Ike(m)) => {
            let _ = econet::wire::ike::Message::parse(m);
        }
        _ => {}
    }

    // Past the ICV: the first 4 bytes are the sequence number, the rest the plaintext.
    let Some((seq, pt)) = data.split_first_chunk::<4>() else {
        return;
    };
    let sealed = seal_raw(u32::from_be_bytes(*seq), pt);
    let mut sa = Inbound::new(&k, Lifetime::default(), now);
    let mut buf = sealed.clone();
    let first = sa.open_in_place(&mut buf);
    if let Ok(r) = &first {
        assert!(r.start == HEADER_LEN && r.end <= HEADER_LEN + pt.len());
        assert_eq!(&buf[r.clone()], &pt[..r.len()]);
    }
    let _ = sa.check(now);
    // The same packet again is a replay once it was accepted.
    let again = sa.open_in_place(&mut sealed.clone());
    if first.is_ok() {
        assert!(again.is_err(), "replayed packet accepted");
    }
});
