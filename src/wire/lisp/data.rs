//! The LISP data header (RFC 9300 §5.3) in front of every encapsulated packet on UDP
//! 4341, with the two key-id bits of LISP-crypto (RFC 8061 §6):
//!
//! ```text
//! |N|L|E|V|I|R|K|K|            Nonce/Map-Version                  |
//! |                 Instance ID/Locator-Status-Bits               |
//! ```

use crate::wire::{Error, Result};

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const NONCE: Range<usize> = 1..4;
    pub const IID_LSB: Range<usize> = 4..8;
}

pub const HEADER_LEN: usize = 8;

pub mod flags {
    pub const N: u8 = 0x80;
    pub const L: u8 = 0x40;
    pub const E: u8 = 0x20;
    pub const V: u8 = 0x10;
    pub const I: u8 = 0x08;
    pub const R: u8 = 0x04;
    pub const KEY_ID: u8 = 0x03;
}

/// A read/write view of a LISP data packet (header and payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The 24-bit nonce or map-version field.
    pub fn nonce(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::NONCE];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    fn word2(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::IID_LSB];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The instance ID, when the I bit is set.
    pub fn instance_id(&self) -> Option<u32> {
        (self.flags() & flags::I != 0).then(|| self.word2() >> 8)
    }

    /// The locator-status bits, when the L bit is set (8 of them with an instance ID).
    pub fn lsb(&self) -> Option<u32> {
        if self.flags() & flags::L == 0 {
            None
        } else if self.flags() & flags::I != 0 {
            Some(self.word2() & 0xff)
        } else {
            Some(self.word2())
        }
    }

    /// The LISP-crypto key id (0: not encrypted).
    pub fn key_id(&self) -> u8 {
        self.flags() & flags::KEY_ID
    }

    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    pub fn set_nonce(&mut self, v: u32) {
        self.buffer.as_mut()[field::NONCE].copy_from_slice(&v.to_be_bytes()[1..]);
    }

    pub fn set_word2(&mut self, v: u32) {
        self.buffer.as_mut()[field::IID_LSB].copy_from_slice(&v.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The meaning of a data header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// N bit and its 24-bit nonce.
    pub nonce: Option<u32>,
    /// E bit: echo-nonce request (needs a nonce).
    pub echo_nonce: bool,
    /// V bit: source and destination map-versions (12 bits each).
    pub map_version: Option<u32>,
    pub instance_id: Option<u32>,
    pub lsb: Option<u32>,
    pub key_id: u8,
}

impl Repr {
    /// Reads the header as RFC 9300 §5.3 says a decapsulating ETR must: it never
    /// refuses a combination of flags.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&T>) -> Result<Repr> {
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        // RFC 9300 §5.3: with N and V both set the field is a nonce; E means
        // nothing without N; R is ignored.
        let f = p.flags();
        let n = f & flags::N != 0;
        Ok(Repr {
            nonce: n.then(|| p.nonce()),
            echo_nonce: n && f & flags::E != 0,
            map_version: (!n && f & flags::V != 0).then(|| p.nonce()),
            instance_id: p.instance_id(),
            lsb: p.lsb(),
            key_id: p.key_id(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        p: &mut Packet<&mut T>,
    ) -> Result<()> {
        if p.buffer.as_ref().len() < HEADER_LEN
            || (self.nonce.is_some() && self.map_version.is_some())
            || self.key_id > 3
            || self.instance_id.is_some_and(|i| i > 0xff_ffff)
        {
            return Err(Error::Malformed);
        }
        let mut f = self.key_id;
        if self.nonce.is_some() {
            f |= flags::N;
        }
        if self.echo_nonce {
            f |= flags::E;
        }
        if self.map_version.is_some() {
            f |= flags::V;
        }
        if self.lsb.is_some() {
            f |= flags::L;
        }
        let word2 = match self.instance_id {
            Some(iid) => {
                f |= flags::I;
                (iid << 8) | (self.lsb.unwrap_or(0) & 0xff)
            }
            None => self.lsb.unwrap_or(0),
        };
        p.set_flags(f);
        p.set_nonce(self.nonce.or(self.map_version).unwrap_or(0) & 0xff_ffff);
        p.set_word2(word2);
        Ok(())
    }
}
