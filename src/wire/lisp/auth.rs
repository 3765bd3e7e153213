//! Map-Register and Map-Notify authentication (RFC 9301 §5.6–5.7).
//!
//! The MAC covers the whole message with the Authentication Data field zeroed, keyed
//! with the site's shared secret as configured. RFC 9301's Algorithm IDs 1
//! (HMAC-SHA-1-96-None) and 2 (HMAC-SHA-256-128-None) name "None" as their key
//! derivation: the raw key, which is what deployed peers (lispers.net, OOR) do. Its
//! per-message key derivation (HKDF-SHA256 over nonce and key) belongs to Algorithm ID
//! 3, which econet neither sends nor accepts. Deployed peers carry the untruncated MAC
//! (20 and 32 bytes) despite the "-96"/"-128" names; econet sends that, and accepts
//! the truncated lengths too.

use crate::wire::{Error, Result};
use ring::hmac;

/// Where the Key ID, Algorithm ID and Authentication Data Length sit.
pub const KEY_ID: usize = 12;
pub const ALG_ID: usize = 13;
pub const AUTH_LEN: core::ops::Range<usize> = 14..16;
/// Start of the Authentication Data.
pub const AUTH_DATA: usize = 16;

/// The MAC algorithm (RFC 9301 Algorithm ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAlg {
    /// Algorithm ID 1.
    HmacSha1,
    /// Algorithm ID 2.
    HmacSha256,
}

impl AuthAlg {
    pub fn id(self) -> u8 {
        match self {
            AuthAlg::HmacSha1 => 1,
            AuthAlg::HmacSha256 => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<AuthAlg> {
        match id {
            1 => Some(AuthAlg::HmacSha1),
            2 => Some(AuthAlg::HmacSha256),
            _ => None,
        }
    }

    /// The length econet sends: the full MAC.
    pub fn mac_len(self) -> usize {
        match self {
            AuthAlg::HmacSha1 => 20,
            AuthAlg::HmacSha256 => 32,
        }
    }

    /// Lengths accepted: full, or truncated as the algorithm names say.
    pub fn accepts(self, len: usize) -> bool {
        match self {
            AuthAlg::HmacSha1 => len == 20 || len == 12,
            AuthAlg::HmacSha256 => len == 32 || len == 16,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            AuthAlg::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            AuthAlg::HmacSha256 => hmac::HMAC_SHA256,
        }
    }
}

fn mac(msg: &[u8], alg: AuthAlg, key: &[u8], auth_len: usize) -> Option<hmac::Tag> {
    let end = AUTH_DATA.checked_add(auth_len)?;
    let (head, rest) = (msg.get(..AUTH_DATA)?, msg.get(end..)?);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg.ring(), key));
    ctx.update(head);
    ctx.update(&[0u8; 32][..auth_len.min(32)]);
    ctx.update(rest);
    Some(ctx.sign())
}

/// Fills the Authentication Data of a finished message whose header already names
/// `alg` and its length.
pub fn sign(msg: &mut [u8], alg: AuthAlg, key: &[u8]) -> Result<()> {
    sign_len(msg, alg, key, alg.mac_len())
}

/// The same with the MAC cut to `len` bytes (one of the lengths `alg` accepts), for
/// an answer that keeps the length its peer chose.
pub fn sign_len(msg: &mut [u8], alg: AuthAlg, key: &[u8], len: usize) -> Result<()> {
    if !alg.accepts(len) {
        return Err(Error::Malformed);
    }
    let tag = mac(msg, alg, key, len).ok_or(Error::Truncated)?;
    msg.get_mut(AUTH_DATA..AUTH_DATA + len)
        .ok_or(Error::Truncated)?
        .copy_from_slice(&tag.as_ref()[..len]);
    Ok(())
}

/// The algorithm a message says it uses, if econet knows it.
pub fn alg_of(msg: &[u8]) -> Option<AuthAlg> {
    AuthAlg::from_id(*msg.get(ALG_ID)?)
}

/// Whether the message's MAC is right for `key` (constant time in the MAC bytes).
pub fn verify(msg: &[u8], key: &[u8]) -> bool {
    let Some(alg) = alg_of(msg) else {
        return false;
    };
    let Some(l) = msg.get(AUTH_LEN) else {
        return false;
    };
    let len = u16::from_be_bytes([l[0], l[1]]) as usize;
    if !alg.accepts(len) {
        return false;
    }
    let (Some(tag), Some(got)) = (mac(msg, alg, key, len), msg.get(AUTH_DATA..AUTH_DATA + len))
    else {
        return false;
    };
    ct_eq(&tag.as_ref()[..len], got)
}

/// Compares without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
