//! LISP-crypto (RFC 8061): the key exchange carried in Map-Request and Map-Reply
//! Security Key LCAFs, the data keys it derives, and encrypted data packets.
//!
//! Cipher suite: 5, LISP_256_EC25519_AES128_GCM (X25519 and AES-128-GCM), the only
//! RFC 8061 suite ring provides whole (suites 1–4 need MODP Diffie-Hellman or
//! AES-CBC, 6 needs ChaCha20 with an 8-byte nonce; RFC 8061 has no AES-256-GCM suite).
//!
//! The byte layouts follow lispers.net, the implementation by the RFC's editor and
//! the only open one, so that econet can talk to it:
//! - shared secret: SHA-256("curve25519-shared:" ‖ X25519(private, peer public)), as
//!   its curve25519 library returns it;
//! - key material: HMAC-SHA-256(key = context, message = shared secret), where context
//!   is the ASCII text "0001" ‖ "lisp-crypto" ‖ hex(ITR public ⊕ ETR public) ‖ "0100"
//!   (RFC 8061 §6's context; the XOR as lowercase hex without leading zeros); the
//!   first 16 bytes are the AES key, the last 16 (after four zero bytes) the ICV key;
//! - packet: LISP header ‖ IV (12) ‖ AES-GCM ciphertext ‖ GCM tag (16) ‖ ICV (20),
//!   the ICV being HMAC-SHA-256(ICV key, header ‖ IV ‖ ciphertext ‖ tag) cut to 20
//!   bytes. The ICV makes the key id bits in the header tamper-evident.
//!
//! Key ids (the K bits): the first exchange with a peer (R bit clear) is key id 1, as
//! lispers.net uses; a rekey sets R and takes key id 2 or 3 by the parity of the
//! last byte of the ITR's public key, so both ends agree without extra state and a
//! lost reply cannot desynchronise them.

use crate::wire::lisp::data;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::digest;
use ring::hmac;
use ring::rand::SecureRandom;
use std::ops::Range;

/// RFC 8061 cipher suite 5.
pub const SUITE_X25519_AES128_GCM: u8 = 5;
pub const PUBLIC_KEY_LEN: usize = 32;
pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const ICV_LEN: usize = 20;
/// Bytes an encrypted packet adds over a clear one.
pub const OVERHEAD: usize = IV_LEN + TAG_LEN + ICV_LEN;

/// The key id a public key gets (see the module doc).
pub fn key_id_for(rekey: bool, itr_public: &[u8]) -> u8 {
    if rekey {
        2 + (itr_public.last().copied().unwrap_or(0) & 1)
    } else {
        1
    }
}

/// An ephemeral X25519 key pair, used for one exchange.
pub struct KeyPair {
    private: EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(<secret>)")
    }
}

impl KeyPair {
    pub fn generate(rng: &dyn SecureRandom) -> Option<KeyPair> {
        let private = EphemeralPrivateKey::generate(&X25519, rng).ok()?;
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(private.compute_public_key().ok()?.as_ref());
        Some(KeyPair { private, public })
    }

    pub fn public(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Completes the exchange with the peer's public key (consuming the private key)
    /// and derives the data keys. `None` for a malformed or low-order peer key.
    pub fn agree(self, peer: &[u8], rng: &dyn SecureRandom) -> Option<SessionKey> {
        if peer.len() != PUBLIC_KEY_LEN {
            return None;
        }
        let public = self.public;
        let shared = agreement::agree_ephemeral(
            self.private,
            &UnparsedPublicKey::new(&X25519, peer),
            |raw| {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(b"curve25519-shared:");
                ctx.update(raw);
                let mut s = [0u8; 32];
                s.copy_from_slice(ctx.finish().as_ref());
                s
            },
        )
        .ok()?;
        let (ek, ik) = derive(&shared, &public, peer);
        SessionKey::new(&ek, &ik, rng)
    }
}

/// The key material for a shared secret and the two public keys (in either order).
pub fn derive(shared: &[u8; 32], a: &[u8], b: &[u8]) -> ([u8; 16], [u8; 20]) {
    let mut x = [0u8; PUBLIC_KEY_LEN];
    for (i, o) in x.iter_mut().enumerate() {
        *o = a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    let mut hex = String::with_capacity(64);
    for byte in x {
        hex.push_str(&format!("{byte:02x}"));
    }
    let hex = hex.trim_start_matches('0');
    let context = format!(
        "0001lisp-crypto{}0100",
        if hex.is_empty() { "0" } else { hex }
    );
    let km = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, context.as_bytes()),
        shared,
    );
    let km = km.as_ref();
    let mut ek = [0u8; 16];
    ek.copy_from_slice(&km[..16]);
    let mut ik = [0u8; 20];
    ik[4..].copy_from_slice(&km[16..32]);
    (ek, ik)
}

/// The keys of one direction to one peer, under one key id.
pub struct SessionKey {
    aead: LessSafeKey,
    icv: hmac::Key,
    salt: [u8; 4],
    counter: u64,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<secret>)")
    }
}

impl SessionKey {
    /// From derived material; the IV starts at a random salt and counter.
    pub fn new(ek: &[u8; 16], ik: &[u8; 20], rng: &dyn SecureRandom) -> Option<SessionKey> {
        let mut r = [0u8; 12];
        rng.fill(&mut r).ok()?;
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&r[..4]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&r[4..]);
        Some(SessionKey {
            aead: LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, ek).ok()?),
            icv: hmac::Key::new(hmac::HMAC_SHA256, ik),
            salt,
            // Leave room so the counter never wraps within a key's life.
            counter: u64::from_be_bytes(c) >> 2,
        })
    }

    /// Encrypts a packet whose LISP header (key id set) is in `buf[..8]` and whose
    /// plaintext is at `buf[8 + IV_LEN..][..plain_len]`: writes the IV before it and
    /// the tag and ICV after it. Returns the packet's length.
    pub fn seal(&mut self, buf: &mut [u8], plain_len: usize) -> Option<usize> {
        let start = data::HEADER_LEN + IV_LEN;
        let total = start + plain_len + TAG_LEN + ICV_LEN;
        if buf.len() < total {
            return None;
        }
        self.counter = self.counter.wrapping_add(1);
        let mut iv = [0u8; IV_LEN];
        iv[..4].copy_from_slice(&self.salt);
        iv[4..].copy_from_slice(&self.counter.to_be_bytes());
        buf[data::HEADER_LEN..start].copy_from_slice(&iv);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::empty(),
                &mut buf[start..start + plain_len],
            )
            .ok()?;
        buf[start + plain_len..start + plain_len + TAG_LEN].copy_from_slice(tag.as_ref());
        let icv_at = start + plain_len + TAG_LEN;
        let icv = hmac::sign(&self.icv, &buf[..icv_at]);
        buf[icv_at..total].copy_from_slice(&icv.as_ref()[..ICV_LEN]);
        Some(total)
    }

    /// Checks the ICV and decrypts in place; returns where the plaintext is.
    pub fn open(&self, buf: &mut [u8]) -> Option<Range<usize>> {
        let start = data::HEADER_LEN + IV_LEN;
        let icv_at = buf.len().checked_sub(ICV_LEN)?;
        if icv_at < start + TAG_LEN {
            return None;
        }
        let icv = hmac::sign(&self.icv, &buf[..icv_at]);
        if !crate::wire::lisp::auth::ct_eq(&icv.as_ref()[..ICV_LEN], &buf[icv_at..]) {
            return None;
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&buf[data::HEADER_LEN..start]);
        let plain = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(iv),
                Aad::empty(),
                &mut buf[start..icv_at],
            )
            .ok()?;
        Some(start..start + plain.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Vectors computed independently with Python's `hmac`/`hashlib` and the
    /// `cryptography` package (X25519, AESGCM), following the lispers.net layout.
    #[test]
    fn kdf_matches_independent_vector() {
        let a = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let raw = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let shared: [u8; 32] = digest::digest(
            &digest::SHA256,
            &[&b"curve25519-shared:"[..], &raw].concat(),
        )
        .as_ref()
        .try_into()
        .unwrap();
        let (ek, ik) = derive(&shared, &a, &b);
        assert_eq!(derive(&shared, &b, &a), (ek, ik), "order does not matter");
        assert_eq!(ek.to_vec(), hex(EK));
        assert_eq!(ik.to_vec(), hex(IK));
    }

    const EK: &str = "3035ead211c24e9729286c09181ae43d";
    const IK: &str = "000000006e9106c649706da447cf00c38f851da8";
    /// Header, IV 00..0b, AES-128-GCM of "an inner IPv4 packet" under EK, tag, ICV.
    const PACKET: &str = "890000010003e800000102030405060708090a0bad667e0c5c98315f00516607b70b8e7caccc40569fd97aaf250195f74d404cbc559074a29c46f4d11f57c5baf36f7b845e2f98b6444b53c0";

    #[test]
    fn opens_independently_built_packet() {
        let ek: [u8; 16] = hex(EK).try_into().unwrap();
        let ik: [u8; 20] = hex(IK).try_into().unwrap();
        let k = SessionKey::new(&ek, &ik, &SystemRandom::new()).unwrap();
        let mut p = hex(PACKET);
        let r = k.open(&mut p).unwrap();
        assert_eq!(&p[r], b"an inner IPv4 packet");
    }

    #[test]
    fn exchange_seal_open() {
        let rng = SystemRandom::new();
        let itr = KeyPair::generate(&rng).unwrap();
        let etr = KeyPair::generate(&rng).unwrap();
        let (ip, ep) = (*itr.public(), *etr.public());
        let mut enc = itr.agree(&ep, &rng).unwrap();
        let dec = etr.agree(&ip, &rng).unwrap();
        let plain = b"an inner IPv4 packet".to_vec();
        let mut buf = vec![0u8; 200];
        buf[..8].copy_from_slice(&[0x89, 0, 0, 1, 0, 3, 0xe8, 0]);
        buf[20..20 + plain.len()].copy_from_slice(&plain);
        let n = enc.seal(&mut buf, plain.len()).unwrap();
        assert_eq!(n, 8 + OVERHEAD + plain.len());
        let mut pkt = buf[..n].to_vec();
        let r = dec.open(&mut pkt).unwrap();
        assert_eq!(&pkt[r], &plain[..]);
        // Every changed byte, the header's key id bits included, is refused.
        for i in 0..n {
            let mut t = buf[..n].to_vec();
            t[i] ^= 1;
            assert!(dec.open(&mut t).is_none(), "byte {i}");
        }
        for n in 0..pkt.len() {
            let mut t = buf[..n].to_vec();
            assert!(dec.open(&mut t).is_none());
        }
        // IVs never repeat.
        let mut b2 = buf.clone();
        enc.seal(&mut b2, plain.len()).unwrap();
        assert_ne!(b2[8..20], buf[8..20]);
    }

    #[test]
    fn key_ids() {
        assert_eq!(key_id_for(false, &[7; 32]), 1);
        assert_eq!(key_id_for(true, &[6; 32]), 2);
        assert_eq!(key_id_for(true, &[7; 32]), 3);
    }
}
