//! Address value types shared by the config, the netlink layer and the services:
//! MAC addresses and IPv4 and IPv6 prefixes, parsed from text without panics.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// A stable, locally administered unicast MAC derived from `parts`: the same
    /// inputs give the same MAC on every run and every device.
    pub fn derive(parts: &[&[u8]]) -> MacAddr {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in parts {
            ctx.update(&(p.len() as u32).to_be_bytes());
            ctx.update(p);
        }
        let d = ctx.finish();
        let b = d.as_ref();
        // 0x02: locally administered, unicast.
        MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        let a: [u8; 6] = b.try_into().ok()?;
        Some(MacAddr(a))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err("not a MAC address (six hex pairs separated by ':')");
            }
            out[n] = u8::from_str_radix(part, 16)
                .map_err(|_| "not a MAC address (six hex pairs separated by ':')")?;
            n += 1;
        }
        if n != 6 {
            return Err("not a MAC address (six hex pairs separated by ':')");
        }
        Ok(MacAddr(out))
    }
}

/// An IPv4 prefix: a network address and a prefix length, host bits zero.
/// (`len` is the prefix length, so it has no `is_empty`.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// A prefix; `None` if `len > 32` or `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Net> {
        if len > 32 || u32::from(addr) & !mask(len) != 0 {
            return None;
        }
        Some(Ipv4Net { addr, len })
    }

    /// The prefix of length `len` that contains `addr`.
    pub fn containing(addr: Ipv4Addr, len: u8) -> Ipv4Net {
        let len = len.min(32);
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.len))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.len))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let l = self.len.min(other.len);
        u32::from(self.addr) & mask(l) == u32::from(other.addr) & mask(l)
    }

    /// First usable host (network + 1).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(1))
    }

    /// Last usable host (broadcast - 1).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()).wrapping_sub(1))
    }

    /// Number of addresses in the prefix (saturating at u32::MAX).
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.len as u32)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32) as u32)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a prefix failed to parse; `HostBits` carries the prefix that was probably meant.
#[derive(Debug, PartialEq, Eq)]
pub enum NetParseError {
    Syntax,
    HostBits(Ipv4Net),
}

impl fmt::Display for NetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetParseError::Syntax => f.write_str("is not an IPv4 prefix (like 10.1.0.0/24)"),
            NetParseError::HostBits(n) => write!(f, "has host bits set (did you mean {n}?)"),
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = NetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or(NetParseError::Syntax)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| NetParseError::Syntax)?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NetParseError::Syntax);
        }
        let len: u8 = l.parse().map_err(|_| NetParseError::Syntax)?;
        if len > 32 {
            return Err(NetParseError::Syntax);
        }
        Ipv4Net::new(addr, len).ok_or(NetParseError::HostBits(Ipv4Net::containing(addr, len)))
    }
}

/// Adds `n` to an address, `None` on overflow.
pub fn ip_add(ip: Ipv4Addr, n: u32) -> Option<Ipv4Addr> {
    u32::from(ip).checked_add(n).map(Ipv4Addr::from)
}

/// An IPv6 prefix: a network address and a prefix length, host bits zero.
/// (`len` is the prefix length, so it has no `is_empty`.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Net {
    /// A prefix; `None` if `len > 128` or `addr` has host bits set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Ipv6Net> {
        if len > 128 || u128::from(addr) & !mask6(len) != 0 {
            return None;
        }
        Some(Ipv6Net { addr, len })
    }

    /// The prefix of length `len` that contains `addr`.
    pub fn containing(addr: Ipv6Addr, len: u8) -> Ipv6Net {
        let len = len.min(128);
        Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(len)),
            len,
        }
    }

    /// The network address (for a /64, the subnet-router anycast address).
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.len) == u128::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        let l = self.len.min(other.len);
        u128::from(self.addr) & mask6(l) == u128::from(other.addr) & mask6(l)
    }

    /// The address with host part `host` (`prefix::1` for 1); `None` when `host`
    /// does not fit in the host bits.
    pub fn host(&self, host: u128) -> Option<Ipv6Addr> {
        if host & mask6(self.len) != 0 {
            return None;
        }
        Some(Ipv6Addr::from(u128::from(self.addr) | host))
    }

    /// The host part of `ip` (its bits outside the prefix).
    pub fn host_part(&self, ip: Ipv6Addr) -> u128 {
        u128::from(ip) & !mask6(self.len)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why an IPv6 prefix failed to parse; `HostBits` carries the prefix that was
/// probably meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Net6ParseError {
    Syntax,
    HostBits(Ipv6Net),
}

impl fmt::Display for Net6ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Net6ParseError::Syntax => f.write_str("is not an IPv6 prefix (like fd00:1:2:3::/64)"),
            Net6ParseError::HostBits(n) => write!(f, "has host bits set (did you mean {n}?)"),
        }
    }
}

impl FromStr for Ipv6Net {
    type Err = Net6ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or(Net6ParseError::Syntax)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| Net6ParseError::Syntax)?;
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Net6ParseError::Syntax);
        }
        let len: u8 = l.parse().map_err(|_| Net6ParseError::Syntax)?;
        if len > 128 {
            return Err(Net6ParseError::Syntax);
        }
        Ipv6Net::new(addr, len).ok_or(Net6ParseError::HostBits(Ipv6Net::containing(addr, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:16:3e:00:00:01".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:16:3e:00:00:01");
        assert!("02:16:3e:00:00".parse::<MacAddr>().is_err());
        assert!("02:16:3e:00:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:16:3e:00:00:zz".parse::<MacAddr>().is_err());
        assert!("".parse::<MacAddr>().is_err());
        assert!("2:16:3e:00:00:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn derived_mac_is_stable_local_unicast() {
        let a = MacAddr::derive(&[b"app", b"eth0"]);
        let b = MacAddr::derive(&[b"app", b"eth0"]);
        let c = MacAddr::derive(&[b"appe", b"th0"]);
        assert_eq!(a, b);
        assert_ne!(a, c, "length-prefixed parts keep boundaries");
        assert_eq!(a.0[0], 0x02);
        assert!(!a.is_multicast());
    }

    #[test]
    fn prefix_parse() {
        let n: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(n.last_host(), Ipv4Addr::new(10, 1, 0, 254));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert_eq!(n.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(
            "10.1.0.5/24".parse::<Ipv4Net>(),
            Err(NetParseError::HostBits(n))
        );
        // Read after the quoted text: `"10.1.0.0/33" is not an IPv4 prefix (...)`.
        assert_eq!(
            NetParseError::Syntax.to_string(),
            "is not an IPv4 prefix (like 10.1.0.0/24)"
        );
        assert_eq!(
            Net6ParseError::Syntax.to_string(),
            "is not an IPv6 prefix (like fd00:1:2:3::/64)"
        );
        assert!("10.1.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.1.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.1.0.0/".parse::<Ipv4Net>().is_err());
        assert!("10.1.0.0/+8".parse::<Ipv4Net>().is_err());
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(all.size(), 1 << 32);
    }

    #[test]
    fn overlap() {
        let a: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.1.4.0/24".parse().unwrap();
        let c: Ipv4Net = "10.2.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn prefix6_parse() {
        let n: Ipv6Net = "fd00:1:2:3::/64".parse().unwrap();
        assert_eq!(n.addr(), "fd00:1:2:3::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(n.len(), 64);
        assert_eq!(n.to_string(), "fd00:1:2:3::/64");
        assert_eq!(format!("{n:?}"), "fd00:1:2:3::/64");
        // Written longhand, it is the same prefix.
        assert_eq!(
            "fd00:0001:0002:0003:0000:0000:0000:0000/64".parse::<Ipv6Net>(),
            Ok(n)
        );
        assert_eq!(
            "fd00:1:2:3::5/64".parse::<Ipv6Net>(),
            Err(Net6ParseError::HostBits(n))
        );
        assert_eq!(
            Net6ParseError::HostBits(n).to_string(),
            "has host bits set (did you mean fd00:1:2:3::/64?)"
        );
        for bad in [
            "fd00:1:2:3::",
            "fd00:1:2:3::/",
            "fd00:1:2:3::/129",
            "fd00:1:2:3::/0064",
            "fd00:1:2:3::/+64",
            "fd00:1:2:3::/64/64",
            "fd00:1:2:3::%eth0/64",
            "10.1.0.0/24",
            "/64",
            "",
        ] {
            assert_eq!(bad.parse::<Ipv6Net>(), Err(Net6ParseError::Syntax), "{bad}");
        }
        let all: Ipv6Net = "::/0".parse().unwrap();
        assert!(all.contains(Ipv6Addr::LOCALHOST));
        let one: Ipv6Net = "::1/128".parse().unwrap();
        assert!(one.contains(Ipv6Addr::LOCALHOST));
        assert!(!one.contains(Ipv6Addr::UNSPECIFIED));
    }

    #[test]
    fn prefix6_new_containing_contains() {
        let a: Ipv6Addr = "fd00:1:2:3:4:5:6:7".parse().unwrap();
        assert_eq!(Ipv6Net::new(a, 64), None);
        assert_eq!(Ipv6Net::new(a, 129), None);
        assert_eq!(Ipv6Net::new(a, 128).map(|n| n.addr()), Some(a));
        let n = Ipv6Net::containing(a, 64);
        assert_eq!(n.to_string(), "fd00:1:2:3::/64");
        assert_eq!(Ipv6Net::containing(a, 200).len(), 128);
        assert_eq!(Ipv6Net::containing(a, 0).to_string(), "::/0");
        assert!(n.contains(a));
        assert!(n.contains("fd00:1:2:3:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!n.contains("fd00:1:2:4::".parse().unwrap()));
        assert_eq!(n.host_part(a), 0x0004_0005_0006_0007);
        assert_eq!(n.host(1), Some("fd00:1:2:3::1".parse().unwrap()));
        assert_eq!(n.host(0xffff), Some("fd00:1:2:3::ffff".parse().unwrap()));
        assert_eq!(n.host(1 << 64), None);
        assert_eq!(Ipv6Net::containing(a, 128).host(1), None);
    }

    #[test]
    fn overlap6() {
        let a: Ipv6Net = "fd00:1::/32".parse().unwrap();
        let b: Ipv6Net = "fd00:1:2:3::/64".parse().unwrap();
        let c: Ipv6Net = "fd00:2::/64".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !b.overlaps(&c));
        assert!(b.overlaps(&b));
    }
}
