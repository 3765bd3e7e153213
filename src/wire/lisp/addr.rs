//! AFI-encoded addresses (RFC 9301 §5) and the LISP Canonical Address Format
//! (RFC 8060) types econet speaks: Instance ID (type 2) around EIDs, and Security Key
//! (type 11, RFC 8061) around an RLOC that carries a Diffie-Hellman public key. An
//! AFI List (type 1), as lispers.net sends a locator (its IPv4 address with a host
//! name, or with a Security Key LCAF), reads as its first IPv4 address with the first
//! key in it. Other LCAF types parse as [`Address::Lcaf`] so a peer's extra ITR-RLOCs
//! (telemetry, JSON) are skipped instead of failing the whole message. Only an AFI
//! List nests another LCAF, one level deep.

use super::rw::{Reader, Writer};
use crate::addr::Ipv4Net;
use crate::wire::{Error, Result};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const AFI_NONE: u16 = 0;
pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const AFI_LCAF: u16 = 16387;

pub const LCAF_AFI_LIST: u8 = 1;
pub const LCAF_INSTANCE_ID: u8 = 2;
pub const LCAF_SECURITY_KEY: u8 = 11;

/// Length of the LCAF header after the AFI: Rsvd1, Flags, Type, Rsvd2, Length.
pub const LCAF_HEADER_LEN: usize = 6;

/// The largest public key accepted (a 3072-bit MODP key is 384 bytes).
pub const MAX_KEY_LEN: usize = 512;

/// One key of a Security Key LCAF (RFC 8061 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityKey {
    /// The cipher suite ("Key Algorithm"), e.g. 5 = LISP_256_EC25519_AES128_GCM.
    pub cipher_suite: u8,
    /// The R bit: econet sets it on a rekey (see `lisp::crypto`). RFC 8061 keeps it
    /// for LISP-DDT and says to send 0; a peer that rekeys the RFC's way (a new
    /// key for key id 1, R clear) is answered as a first exchange, which is the same.
    pub rekey: bool,
    pub public_key: Vec<u8>,
}

/// An address as carried in control messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// AFI 0: "no address".
    None,
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// LCAF Instance ID around an IPv4 address (or none, AFI 0).
    InstanceId {
        iid: u32,
        mask_len: u8,
        addr: Option<Ipv4Addr>,
    },
    /// LCAF Security Key around an IPv4 RLOC (or none).
    SecurityKey {
        key: SecurityKey,
        addr: Option<Ipv4Addr>,
    },
    /// Another LCAF type, skipped.
    Lcaf {
        lcaf_type: u8,
    },
}

impl Address {
    /// The IPv4 address inside, if any.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self {
            Address::Ipv4(a) => Some(*a),
            Address::InstanceId { addr, .. } | Address::SecurityKey { addr, .. } => *addr,
            _ => None,
        }
    }

    /// The security key inside, if any.
    pub fn key(&self) -> Option<&SecurityKey> {
        match self {
            Address::SecurityKey { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Reads the AFI and the address after it.
    pub fn parse(r: &mut Reader<'_>) -> Result<Address> {
        let afi = r.u16()?;
        match afi {
            AFI_NONE => Ok(Address::None),
            AFI_IPV4 => Ok(Address::Ipv4(ipv4(r.bytes(4)?))),
            AFI_IPV6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(r.bytes(16)?);
                Ok(Address::Ipv6(Ipv6Addr::from(a)))
            }
            AFI_LCAF => parse_lcaf(r, true),
            _ => Err(Error::Unsupported),
        }
    }

    /// Encoded length, AFI included.
    pub fn buffer_len(&self) -> usize {
        match self {
            Address::None => 2,
            Address::Ipv4(_) => 6,
            Address::Ipv6(_) => 18,
            Address::InstanceId { addr, .. } => 2 + LCAF_HEADER_LEN + 4 + inner_len(addr),
            Address::SecurityKey { key, addr } => {
                2 + LCAF_HEADER_LEN + 6 + key.public_key.len() + inner_len(addr)
            }
            Address::Lcaf { .. } => 0,
        }
    }

    pub fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Address::None => w.u16(AFI_NONE),
            Address::Ipv4(a) => {
                w.u16(AFI_IPV4)?;
                w.bytes(&a.octets())
            }
            Address::Ipv6(a) => {
                w.u16(AFI_IPV6)?;
                w.bytes(&a.octets())
            }
            Address::InstanceId {
                iid,
                mask_len,
                addr,
            } => {
                lcaf_header(w, LCAF_INSTANCE_ID, *mask_len, 4 + inner_len(addr))?;
                w.u32(*iid)?;
                emit_inner(w, addr)
            }
            Address::SecurityKey { key, addr } => {
                let klen = key.public_key.len();
                if klen > MAX_KEY_LEN {
                    return Err(Error::Malformed);
                }
                lcaf_header(w, LCAF_SECURITY_KEY, 0, 6 + klen + inner_len(addr))?;
                w.u8(1)?; // Key Count
                w.u8(0)?; // Rsvd3
                w.u8(key.cipher_suite)?;
                w.u8(u8::from(key.rekey))?; // Rsvd4 | R
                w.u16(klen as u16)?;
                w.bytes(&key.public_key)?;
                emit_inner(w, addr)
            }
            Address::Lcaf { .. } => Err(Error::Unsupported),
        }
    }
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn inner_len(addr: &Option<Ipv4Addr>) -> usize {
    if addr.is_some() {
        6
    } else {
        2
    }
}

fn emit_inner(w: &mut Writer<'_>, addr: &Option<Ipv4Addr>) -> Result<()> {
    match addr {
        Some(a) => {
            w.u16(AFI_IPV4)?;
            w.bytes(&a.octets())
        }
        None => w.u16(AFI_NONE),
    }
}

fn lcaf_header(w: &mut Writer<'_>, lcaf_type: u8, rsvd2: u8, len: usize) -> Result<()> {
    w.u16(AFI_LCAF)?;
    w.u8(0)?; // Rsvd1
    w.u8(0)?; // Flags
    w.u8(lcaf_type)?;
    w.u8(rsvd2)?;
    w.u16(u16::try_from(len).map_err(|_| Error::Malformed)?)
}

/// The inner address of an LCAF: AFI 0 or 1 only (no nesting, no IPv6 EIDs).
fn parse_inner(r: &mut Reader<'_>) -> Result<Option<Ipv4Addr>> {
    match r.u16()? {
        AFI_NONE => Ok(None),
        AFI_IPV4 => Ok(Some(ipv4(r.bytes(4)?))),
        _ => Err(Error::Unsupported),
    }
}

/// The items of an AFI List LCAF: IPv4 and IPv6 addresses, distinguished names (AFI
/// 17, up to a zero byte), and LCAFs of their own (Security Key). Returns the first
/// IPv4 address, with the first key, or [`Address::Lcaf`] when there is none.
fn parse_afi_list(b: &mut Reader<'_>) -> Result<Address> {
    const AFI_NAME: u16 = 17;
    let (mut ip, mut key) = (None, None);
    while !b.is_empty() {
        let afi = b.u16()?;
        match afi {
            AFI_NONE => {}
            AFI_IPV4 => {
                let a = ipv4(b.bytes(4)?);
                ip.get_or_insert(a);
            }
            AFI_IPV6 => {
                b.bytes(16)?;
            }
            AFI_NAME => while b.u8()? != 0 {},
            AFI_LCAF => match parse_lcaf(b, false)? {
                Address::SecurityKey { key: k, addr } => {
                    key.get_or_insert(k);
                    if let Some(a) = addr {
                        ip.get_or_insert(a);
                    }
                }
                a => {
                    if let Some(a) = a.ipv4() {
                        ip.get_or_insert(a);
                    }
                }
            },
            _ => return Err(Error::Unsupported),
        }
    }
    Ok(match (ip, key) {
        (Some(a), Some(key)) => Address::SecurityKey { key, addr: Some(a) },
        (Some(a), None) => Address::Ipv4(a),
        (None, _) => Address::Lcaf {
            lcaf_type: LCAF_AFI_LIST,
        },
    })
}

fn parse_lcaf(r: &mut Reader<'_>, may_nest: bool) -> Result<Address> {
    let _rsvd1 = r.u8()?;
    let _flags = r.u8()?;
    let lcaf_type = r.u8()?;
    let rsvd2 = r.u8()?;
    let len = r.u16()? as usize;
    let body = r.bytes(len)?;
    let mut b = Reader::new(body);
    let a = match lcaf_type {
        LCAF_AFI_LIST if may_nest => parse_afi_list(&mut b)?,
        LCAF_INSTANCE_ID => {
            // All 32 bits: the mapping system's instance space (RFC 8060 §4.1);
            // only the low 24 fit a data header, which is the config's limit.
            let iid = b.u32()?;
            Address::InstanceId {
                iid,
                mask_len: rsvd2,
                addr: parse_inner(&mut b)?,
            }
        }
        LCAF_SECURITY_KEY => {
            let count = b.u8()?;
            let _rsvd3 = b.u8()?;
            let cipher_suite = b.u8()?;
            let rekey = b.u8()? & 1 == 1;
            let klen = b.u16()? as usize;
            // Up to three keys, for key ids 1 to 3 (RFC 8061 §4); an ETR answers
            // for the ones it uses, and econet uses the first.
            if !(1..=3).contains(&count) || klen > MAX_KEY_LEN {
                return Err(Error::Unsupported);
            }
            let public_key = b.bytes(klen)?.to_vec();
            for _ in 1..count {
                let len = b.u16()? as usize;
                b.bytes(len)?;
            }
            Address::SecurityKey {
                key: SecurityKey {
                    cipher_suite,
                    rekey,
                    public_key,
                },
                addr: parse_inner(&mut b)?,
            }
        }
        t => return Ok(Address::Lcaf { lcaf_type: t }),
    };
    if !b.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(a)
}

/// An IPv4 EID prefix in a LISP instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Eid {
    pub iid: u32,
    pub prefix: Ipv4Net,
}

impl Eid {
    pub fn new(iid: u32, prefix: Ipv4Net) -> Eid {
        Eid { iid, prefix }
    }

    /// A host EID (/32).
    pub fn host(iid: u32, ip: Ipv4Addr) -> Eid {
        Eid {
            iid,
            prefix: Ipv4Net::containing(ip, 32),
        }
    }

    pub fn contains(&self, iid: u32, ip: Ipv4Addr) -> bool {
        self.iid == iid && self.prefix.contains(ip)
    }

    /// The address form: an Instance ID LCAF, or plain IPv4 in instance 0 (how
    /// peers without instances send it).
    pub fn address(&self) -> Address {
        if self.iid == 0 {
            Address::Ipv4(self.prefix.addr())
        } else {
            Address::InstanceId {
                iid: self.iid,
                mask_len: 0,
                addr: Some(self.prefix.addr()),
            }
        }
    }

    /// Builds an EID from an address and a mask length (host bits are cleared).
    pub fn from_address(a: &Address, mask_len: u8) -> Result<Eid> {
        if mask_len > 32 {
            return Err(Error::Malformed);
        }
        let (iid, ip) = match a {
            Address::Ipv4(ip) => (0, *ip),
            Address::InstanceId {
                iid,
                addr: Some(ip),
                ..
            } => (*iid, *ip),
            _ => return Err(Error::Unsupported),
        };
        Ok(Eid {
            iid,
            prefix: Ipv4Net::containing(ip, mask_len),
        })
    }
}

impl std::fmt::Display for Eid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]{}", self.iid, self.prefix)
    }
}
