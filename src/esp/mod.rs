//! ESP security associations (RFC 4303, tunnel mode) with AES-256-GCM (RFC 4106):
//! one [`Outbound`] or [`Inbound`] SA per direction, each with its own key and salt.
//!
//! The per-packet path works in place on the caller's buffer and never allocates:
//! the shell reads an inner IPv4 packet into `buf[HEADER_LEN..]` (leaving room in
//! front for its own IPv4/UDP headers if it likes), calls [`Outbound::seal_in_place`]
//! and sends `buf[..len]`. Inbound it hands the ESP part of a datagram to
//! [`Inbound::open_in_place`] and writes the returned range to the TUN device.
//!
//! Layout: SPI (4) | sequence (4) | IV (8) | ciphertext of (payload | padding |
//! pad length | next header) | ICV (16). The IV is the 64-bit sequence number, unique
//! per key because the sequence number never wraps (no ESN: the SA is hard-expired
//! before 2^32). AAD is SPI | sequence; the nonce is salt | IV.
//!
//! Lifetimes: bytes, packets and time. [`Outbound::check`] / [`Inbound::check`] report
//! a soft expiry once (rekey now) and a hard expiry once (stop using the SA); the
//! shell passes them on to the IKE core, which rekeys before the hard limit.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

pub const KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 4;
/// Key material per SA as it comes out of IKE's prf+: key then salt (RFC 4106 §8.1).
pub const KEYMAT_LEN: usize = KEY_LEN + SALT_LEN;
pub const IV_LEN: usize = 8;
pub const ICV_LEN: usize = 16;
/// SPI, sequence number and IV: the bytes in front of the inner packet.
pub const HEADER_LEN: usize = crate::wire::esp::HEADER_LEN + IV_LEN;
/// Next header value for an inner IPv4 packet.
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header value of a dummy (traffic-flow confidentiality) packet.
pub const NEXT_HEADER_NONE: u8 = 59;
/// Anti-replay window in packets.
pub const REPLAY_WINDOW: u64 = 1024;

/// Bytes after the inner packet: padding to a 4-byte boundary, pad length, next
/// header, ICV.
pub const fn trailer_len(inner_len: usize) -> usize {
    pad_len(inner_len) + 2 + ICV_LEN
}

/// The whole ESP packet for an inner packet of this length.
pub const fn sealed_len(inner_len: usize) -> usize {
    HEADER_LEN + inner_len + trailer_len(inner_len)
}

/// The largest inner packet whose ESP packet fits `esp_space` bytes (the UDP
/// payload room: path MTU minus IPv4 and UDP headers).
pub const fn max_inner_len(esp_space: usize) -> usize {
    let room = esp_space.saturating_sub(HEADER_LEN + ICV_LEN);
    // (inner + 2) must be a multiple of 4.
    (room & !3).saturating_sub(2)
}

const fn pad_len(inner_len: usize) -> usize {
    (4 - (inner_len + 2) % 4) % 4
}

/// Why a packet was not sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Too short for ESP with AES-GCM, or the caller's buffer is too small.
    Truncated,
    /// Not this SA's SPI.
    WrongSpi,
    /// Sequence number zero, already seen, or older than the window.
    Replay,
    /// The ICV did not verify (tampered, or the wrong key).
    Auth,
    /// The trailer is inconsistent after decryption.
    Malformed,
    /// A dummy packet (next header 59): drop silently.
    Dummy,
    /// An inner protocol other than IPv4.
    NextHeader(u8),
    /// The SA reached a hard limit (bytes, packets or sequence numbers): rekey.
    Expired,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated ESP packet or short buffer"),
            Error::WrongSpi => f.write_str("wrong SPI"),
            Error::Replay => f.write_str("replayed or too old sequence number"),
            Error::Auth => f.write_str("ICV check failed"),
            Error::Malformed => f.write_str("malformed ESP trailer"),
            Error::Dummy => f.write_str("dummy packet"),
            Error::NextHeader(n) => write!(f, "inner protocol {n} is not IPv4"),
            Error::Expired => f.write_str("SA expired"),
        }
    }
}

impl std::error::Error for Error {}

/// 36 bytes of key material (AES-256 key and salt); never printed, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial([u8; KEYMAT_LEN]);

impl KeyMaterial {
    /// From exactly `KEYMAT_LEN` bytes.
    pub fn from_slice(b: &[u8]) -> Option<KeyMaterial> {
        Some(KeyMaterial(b.try_into().ok()?))
    }

    pub fn key(&self) -> &[u8] {
        &self.0[..KEY_LEN]
    }

    pub fn salt(&self) -> [u8; SALT_LEN] {
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(&self.0[KEY_LEN..]);
        s
    }

    /// The raw bytes, for test tools that need them (tshark's ESP decryption table).
    pub fn expose(&self) -> &[u8; KEYMAT_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<key>")
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference; a volatile write keeps
            // the wipe from being optimized away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// What one ESP SA needs: the SPI (ours for inbound, the peer's for outbound) and its
/// key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspKeys {
    pub spi: u32,
    pub keymat: KeyMaterial,
}

/// Limits after which an SA must be replaced. `soft_*` ask for a rekey, `hard_*` stop
/// the SA. Byte counts are inner (plaintext) bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    pub soft_time: Option<Duration>,
    pub hard_time: Option<Duration>,
}

impl Default for Lifetime {
    /// No byte or time limit; packets limited by the 32-bit sequence number, with the
    /// soft limit early enough for a rekey at any rate.
    fn default() -> Lifetime {
        Lifetime {
            soft_bytes: u64::MAX,
            hard_bytes: u64::MAX,
            soft_packets: 0xf000_0000,
            hard_packets: u32::MAX as u64,
            soft_time: None,
            hard_time: None,
        }
    }
}

/// A lifetime limit crossed (each reported once per SA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Rekey now.
    Soft,
    /// The SA is unusable.
    Hard,
}

/// Traffic counters of one SA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Inner packets and bytes sealed or accepted.
    pub packets: u64,
    pub bytes: u64,
    /// Inbound drops.
    pub replayed: u64,
    pub auth_failed: u64,
}

#[derive(Debug)]
struct Life {
    limits: Lifetime,
    created: Instant,
    soft_done: bool,
    hard_done: bool,
}

impl Life {
    fn new(limits: Lifetime, now: Instant) -> Life {
        Life {
            limits,
            created: now,
            soft_done: false,
            hard_done: false,
        }
    }

    fn check(&mut self, c: &Counters, now: Instant) -> Option<Expiry> {
        let age = now.saturating_duration_since(self.created);
        let l = &self.limits;
        let hard = c.bytes >= l.hard_bytes
            || c.packets >= l.hard_packets
            || l.hard_time.is_some_and(|t| age >= t);
        if hard && !self.hard_done {
            self.hard_done = true;
            self.soft_done = true;
            return Some(Expiry::Hard);
        }
        let soft = c.bytes >= l.soft_bytes
            || c.packets >= l.soft_packets
            || l.soft_time.is_some_and(|t| age >= t);
        if soft && !self.soft_done {
            self.soft_done = true;
            return Some(Expiry::Soft);
        }
        None
    }

    fn deadline(&self) -> Option<Instant> {
        let l = &self.limits;
        let t = if !self.soft_done {
            l.soft_time.or(l.hard_time)
        } else if !self.hard_done {
            l.hard_time
        } else {
            None
        };
        t.map(|t| self.created + t)
    }
}

fn aead_key(keys: &EspKeys) -> LessSafeKey {
    // KEY_LEN is AES-256's key length: UnboundKey::new cannot fail on it.
    let key = UnboundKey::new(&AES_256_GCM, keys.keymat.key())
        .unwrap_or_else(|_| unreachable!("AES-256 key length"));
    LessSafeKey::new(key)
}

fn nonce(salt: &[u8; SALT_LEN], iv: &[u8]) -> Nonce {
    let mut n = [0u8; 12];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

/// The sending side of an ESP SA.
pub struct Outbound {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
    /// The last sequence number used (0: none yet).
    seq: u32,
    counters: Counters,
    life: Life,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("seq", &self.seq)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(keys: &EspKeys, lifetime: Lifetime, now: Instant) -> Outbound {
        Outbound {
            spi: keys.spi,
            key: aead_key(keys),
            salt: keys.keymat.salt(),
            seq: 0,
            counters: Counters::default(),
            life: Life::new(lifetime, now),
        }
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Encrypts the inner packet at `buf[HEADER_LEN..HEADER_LEN + inner_len]` in place,
    /// writing the header before it and the trailer after it; returns the ESP packet's
    /// length (`sealed_len(inner_len)`). `buf` must hold that much.
    pub fn seal_in_place(&mut self, buf: &mut [u8], inner_len: usize) -> Result<usize, Error> {
        let pad = pad_len(inner_len);
        let ct_end = HEADER_LEN + inner_len + pad + 2;
        let total = ct_end + ICV_LEN;
        if buf.len() < total {
            return Err(Error::Truncated);
        }
        let l = &self.life.limits;
        if self.seq == u32::MAX
            || self.counters.packets >= l.hard_packets
            || self.counters.bytes.saturating_add(inner_len as u64) > l.hard_bytes
        {
            return Err(Error::Expired);
        }
        self.seq += 1;
        let seq = self.seq;
        buf[0..4].copy_from_slice(&self.spi.to_be_bytes());
        buf[4..8].copy_from_slice(&seq.to_be_bytes());
        buf[8..16].copy_from_slice(&u64::from(seq).to_be_bytes());
        let trailer = &mut buf[HEADER_LEN + inner_len..ct_end];
        for (i, b) in trailer[..pad].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        trailer[pad] = pad as u8;
        trailer[pad + 1] = NEXT_HEADER_IPV4;
        let mut aad = [0u8; 8];
        aad.copy_from_slice(&buf[..8]);
        let n = nonce(&self.salt, &buf[8..16]);
        let tag = self
            .key
            .seal_in_place_separate_tag(n, Aad::from(aad), &mut buf[HEADER_LEN..ct_end])
            .map_err(|_| Error::Truncated)?;
        buf[ct_end..total].copy_from_slice(tag.as_ref());
        self.counters.packets += 1;
        self.counters.bytes += inner_len as u64;
        Ok(total)
    }

    /// Copies `inner` into `out` and seals it there; returns the ESP packet's length.
    pub fn seal(&mut self, inner: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let dst = out
            .get_mut(HEADER_LEN..HEADER_LEN + inner.len())
            .ok_or(Error::Truncated)?;
        dst.copy_from_slice(inner);
        self.seal_in_place(out, inner.len())
    }

    /// A lifetime limit crossed since the last call (each reported once).
    pub fn check(&mut self, now: Instant) -> Option<Expiry> {
        let mut c = self.counters;
        // Sequence numbers count even when bytes do not.
        c.packets = c.packets.max(u64::from(self.seq));
        self.life.check(&c, now)
    }

    /// When a time limit will next be crossed.
    pub fn deadline(&self) -> Option<Instant> {
        self.life.deadline()
    }
}

/// The anti-replay window (RFC 4303 §3.4.3), a ring of 64-bit words as in RFC 6479:
/// moving the window clears whole words, never shifts bits.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    top: u64,
    bits: [u64; WORDS],
}

/// One word more than the window so a window that straddles words always fits.
const WORDS: usize = (REPLAY_WINDOW as usize) / 64 + 1;

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    fn pos(seq: u64) -> (usize, u64) {
        let bit = seq % (WORDS as u64 * 64);
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Whether `seq` may be new (checked before decryption, so forged packets cost no
    /// window movement).
    pub fn check(&self, seq: u32) -> bool {
        let seq = u64::from(seq);
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        if self.top - seq >= REPLAY_WINDOW {
            return false;
        }
        let (w, m) = Self::pos(seq);
        self.bits[w] & m == 0
    }

    /// Records an authenticated `seq`.
    pub fn update(&mut self, seq: u32) {
        let seq = u64::from(seq);
        if seq > self.top {
            let old = self.top / 64;
            let new = seq / 64;
            let n = (new - old).min(WORDS as u64);
            for i in 1..=n {
                self.bits[((old + i) % WORDS as u64) as usize] = 0;
            }
            self.top = seq;
        }
        let (w, m) = Self::pos(seq);
        self.bits[w] |= m;
    }

    /// The highest sequence number accepted.
    pub fn top(&self) -> u32 {
        self.top as u32
    }
}

/// The receiving side of an ESP SA.
pub struct Inbound {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
    window: ReplayWindow,
    counters: Counters,
    life: Life,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("top", &self.window.top())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    pub fn new(keys: &EspKeys, lifetime: Lifetime, now: Instant) -> Inbound {
        Inbound {
            spi: keys.spi,
            key: aead_key(keys),
            salt: keys.keymat.salt(),
            window: ReplayWindow::default(),
            counters: Counters::default(),
            life: Life::new(lifetime, now),
        }
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Verifies and decrypts an ESP packet (SPI first) in place; returns where the inner
    /// IPv4 packet now is in `buf`.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<Range<usize>, Error> {
        // The smallest ciphertext is pad length and next header, padded to 4 bytes.
        if buf.len() < HEADER_LEN + 4 + ICV_LEN {
            return Err(Error::Truncated);
        }
        let spi = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if spi != self.spi {
            return Err(Error::WrongSpi);
        }
        let seq = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if !self.window.check(seq) {
            self.counters.replayed += 1;
            return Err(Error::Replay);
        }
        if self.counters.bytes >= self.life.limits.hard_bytes {
            return Err(Error::Expired);
        }
        let mut aad = [0u8; 8];
        aad.copy_from_slice(&buf[..8]);
        let n = nonce(&self.salt, &buf[8..16]);
        let pt_len = match self
            .key
            .open_in_place(n, Aad::from(aad), &mut buf[HEADER_LEN..])
        {
            Ok(pt) => pt.len(),
            Err(_) => {
                self.counters.auth_failed += 1;
                return Err(Error::Auth);
            }
        };
        self.window.update(seq);
        let pt = &buf[HEADER_LEN..HEADER_LEN + pt_len];
        let (pad, next) = (pt[pt_len - 2] as usize, pt[pt_len - 1]);
        let inner_len = pt_len.checked_sub(pad + 2).ok_or(Error::Malformed)?;
        let padding = &pt[inner_len..inner_len + pad];
        if padding
            .iter()
            .enumerate()
            .any(|(i, &b)| b as usize != i + 1)
        {
            return Err(Error::Malformed);
        }
        self.counters.packets += 1;
        self.counters.bytes += inner_len as u64;
        match next {
            NEXT_HEADER_IPV4 => Ok(HEADER_LEN..HEADER_LEN + inner_len),
            NEXT_HEADER_NONE => Err(Error::Dummy),
            n => Err(Error::NextHeader(n)),
        }
    }

    /// A lifetime limit crossed since the last call (each reported once).
    pub fn check(&mut self, now: Instant) -> Option<Expiry> {
        self.life.check(&self.counters, now)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.life.deadline()
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u32 {
        self.window.top()
    }
}
