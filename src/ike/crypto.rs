//! The cryptography IKEv2 needs, all from `ring`: PRF_HMAC_SHA2_256 and prf+ (RFC 7296
//! §2.13), key exchange over x25519 (RFC 8031) and ecp256 (RFC 5903), the SK payload's
//! AES-256-GCM (RFC 5282), SHA-1 for NAT detection (§2.23) and random numbers.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256, X25519};
use ring::digest;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

use crate::wire::ike::transform;

/// Bytes that must not leak: never printed, wiped on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(b: Vec<u8>) -> SecretBytes {
        SecretBytes(b)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(b: &[u8]) -> SecretBytes {
        SecretBytes(b.to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid exclusive reference; volatile so the wipe is kept.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// PRF output length of PRF_HMAC_SHA2_256 (and its preferred key length).
pub const PRF_LEN: usize = 32;

/// prf(key, data...) with HMAC-SHA-256.
pub fn prf(key: &[u8], data: &[&[u8]]) -> [u8; PRF_LEN] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    for d in data {
        ctx.update(d);
    }
    let mut out = [0u8; PRF_LEN];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// prf+(key, seed) truncated to `len` bytes (§2.13): T1 = prf(K, S | 0x01),
/// Tn = prf(K, Tn-1 | S | n). `len` is at most 255 blocks.
pub fn prf_plus(key: &[u8], seed: &[&[u8]], len: usize) -> SecretBytes {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = Vec::with_capacity(len + PRF_LEN);
    let mut t: Vec<u8> = Vec::new();
    let mut n: u8 = 1;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(&t);
        for s in seed {
            ctx.update(s);
        }
        ctx.update(&[n]);
        t = ctx.sign().as_ref().to_vec();
        out.extend_from_slice(&t);
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    for b in t.iter_mut() {
        *b = 0;
    }
    SecretBytes(out)
}

/// Key exchange groups econet implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Curve25519, group 31.
    X25519,
    /// NIST P-256, group 19.
    Ecp256,
}

impl Group {
    pub const fn id(self) -> u16 {
        match self {
            Group::X25519 => transform::DH_CURVE25519,
            Group::Ecp256 => transform::DH_ECP256,
        }
    }

    pub const fn from_id(id: u16) -> Option<Group> {
        match id {
            transform::DH_CURVE25519 => Some(Group::X25519),
            transform::DH_ECP256 => Some(Group::Ecp256),
            _ => None,
        }
    }

    /// Length of the KE payload's key data.
    pub const fn public_len(self) -> usize {
        match self {
            Group::X25519 => 32,
            Group::Ecp256 => 64,
        }
    }
}

/// An ephemeral key pair for one exchange.
pub struct KeyShare {
    group: Group,
    private: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Randomness or key generation failed (the system RNG is broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoError;

impl KeyShare {
    pub fn new(group: Group, rng: &SystemRandom) -> Result<KeyShare, CryptoError> {
        let alg = match group {
            Group::X25519 => &X25519,
            Group::Ecp256 => &ECDH_P256,
        };
        let private = EphemeralPrivateKey::generate(alg, rng).map_err(|_| CryptoError)?;
        let pk = private.compute_public_key().map_err(|_| CryptoError)?;
        let public = match group {
            Group::X25519 => pk.as_ref().to_vec(),
            // RFC 5903 §7: x | y, without the uncompressed-point prefix 0x04.
            Group::Ecp256 => pk.as_ref().get(1..).unwrap_or(&[]).to_vec(),
        };
        Ok(KeyShare {
            group,
            private,
            public,
        })
    }

    pub fn group(&self) -> Group {
        self.group
    }

    /// The KE payload's key data.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data; fails on a wrong length or an invalid point.
    pub fn agree(self, peer: &[u8]) -> Result<SecretBytes, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError);
        }
        let (alg, bytes) = match self.group {
            Group::X25519 => (&X25519, peer.to_vec()),
            Group::Ecp256 => {
                let mut b = Vec::with_capacity(65);
                b.push(4);
                b.extend_from_slice(peer);
                (&ECDH_P256, b)
            }
        };
        let peer = UnparsedPublicKey::new(alg, bytes);
        agreement::agree_ephemeral(self.private, &peer, |s| SecretBytes(s.to_vec()))
            .map_err(|_| CryptoError)
    }
}

/// Fills `out` with random bytes.
pub fn random(rng: &SystemRandom, out: &mut [u8]) -> Result<(), CryptoError> {
    rng.fill(out).map_err(|_| CryptoError)
}

pub fn random_u64(rng: &SystemRandom) -> Result<u64, CryptoError> {
    let mut b = [0u8; 8];
    random(rng, &mut b)?;
    Ok(u64::from_be_bytes(b))
}

pub fn random_u32(rng: &SystemRandom) -> Result<u32, CryptoError> {
    let mut b = [0u8; 4];
    random(rng, &mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// SHA-1 as RFC 7296 §2.23 requires for the NAT detection hashes.
pub fn sha1(data: &[&[u8]]) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for d in data {
        ctx.update(d);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Compares in time independent of where the first difference is.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SK payload's AES-256-GCM with a 16-byte ICV (RFC 5282): 32-byte key, 4-byte
/// salt, explicit 8-byte IV.
pub struct SkCipher {
    key: LessSafeKey,
    salt: [u8; 4],
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SkCipher(<key>)")
    }
}

/// SK_e length for ENCR_AES_GCM_16 with 256-bit keys: key and salt.
pub const SK_E_LEN: usize = 36;
pub const SK_IV_LEN: usize = 8;
pub const SK_ICV_LEN: usize = 16;

impl SkCipher {
    /// From `SK_E_LEN` bytes of key material.
    pub fn new(keymat: &[u8]) -> Result<SkCipher, CryptoError> {
        if keymat.len() != SK_E_LEN {
            return Err(CryptoError);
        }
        let key = UnboundKey::new(&AES_256_GCM, &keymat[..32]).map_err(|_| CryptoError)?;
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&keymat[32..]);
        Ok(SkCipher {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    fn nonce(&self, iv: &[u8; SK_IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `in_out` in place; returns the ICV.
    pub fn seal(
        &self,
        iv: &[u8; SK_IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; SK_ICV_LEN], CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(aad), in_out)
            .map_err(|_| CryptoError)?;
        let mut t = [0u8; SK_ICV_LEN];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    /// Decrypts ciphertext-with-ICV in place; returns the plaintext's length.
    pub fn open(
        &self,
        iv: &[u8; SK_IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.key
            .open_in_place(self.nonce(iv), Aad::from(aad), in_out)
            .map(|p| p.len())
            .map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_sha256_rfc4231_case2() {
        // RFC 4231 test case 2: key "Jefe".
        let out = prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            out.to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn prf_plus_concatenates_blocks() {
        let k = b"key";
        let t1 = prf(k, &[b"seed", &[1]]);
        let t2 = prf(k, &[&t1, b"seed", &[2]]);
        let t3 = prf(k, &[&t2, b"seed", &[3]]);
        let out = prf_plus(k, &[b"se", b"ed"], 80);
        assert_eq!(&out.expose()[..32], &t1);
        assert_eq!(&out.expose()[32..64], &t2);
        assert_eq!(&out.expose()[64..], &t3[..16]);
    }

    #[test]
    fn sha1_abc() {
        assert_eq!(
            sha1(&[b"a", b"bc"]).to_vec(),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
    }

    #[test]
    fn key_exchange_agrees() {
        let rng = SystemRandom::new();
        for g in [Group::X25519, Group::Ecp256] {
            let a = KeyShare::new(g, &rng).unwrap();
            let b = KeyShare::new(g, &rng).unwrap();
            assert_eq!(a.public().len(), g.public_len());
            let (pa, pb) = (a.public().to_vec(), b.public().to_vec());
            let s1 = a.agree(&pb).unwrap();
            let s2 = b.agree(&pa).unwrap();
            assert_eq!(s1, s2);
            assert_eq!(s1.len(), 32);
        }
        // Wrong lengths and invalid points fail instead of panicking.
        let a = KeyShare::new(Group::Ecp256, &rng).unwrap();
        assert!(a.agree(&[0u8; 64]).is_err());
        let a = KeyShare::new(Group::Ecp256, &rng).unwrap();
        assert!(a.agree(&[1u8; 10]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "<secret>");
        let c = SkCipher::new(&[7u8; SK_E_LEN]).unwrap();
        assert!(!format!("{c:?}").contains('7'));
    }

    #[test]
    fn sk_cipher_round_trip() {
        let c = SkCipher::new(&[1u8; SK_E_LEN]).unwrap();
        let mut buf = b"payloads".to_vec();
        let tag = c.seal(&[0, 0, 0, 0, 0, 0, 0, 1], b"aad", &mut buf).unwrap();
        buf.extend_from_slice(&tag);
        let n = c.open(&[0, 0, 0, 0, 0, 0, 0, 1], b"aad", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"payloads");
        buf[0] ^= 1;
        assert!(c.open(&[0, 0, 0, 0, 0, 0, 0, 1], b"aad", &mut buf).is_err());
    }
}
