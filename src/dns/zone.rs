//! One network's local names: ECO host names and `static_dns` entries, in the
//! network's `domain` (and bare), with their reverse names (in-addr.arpa, and
//! ip6.arpa in the nibble format of RFC 3596 §2.5).

use crate::addr::{Ipv4Net, Ipv6Net};
use crate::wire::dns::{wire_labels, NameBuf, MAX_NAME_LEN};
use crate::wire::{Error, Result};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A local name and what it resolves to.
#[derive(Debug)]
pub(crate) struct Host {
    /// The fully qualified name (host + domain) in wire form, in the case it was
    /// given: what PTR answers carry.
    pub fqdn: Box<[u8]>,
    /// Its IPv4 addresses (A records) and IPv6 addresses (AAAA); either may be
    /// empty (the other type then gets no data).
    pub addrs: Vec<Ipv4Addr>,
    pub addrs6: Vec<Ipv6Addr>,
}

/// What the zone says about a query name.
#[derive(Debug)]
pub(crate) enum Lookup<'z> {
    /// Not a local name: forward it.
    NotLocal,
    /// A local host: its addresses answer A and AAAA (and ANY); other types get no
    /// data.
    Host(&'z Host),
    /// A name that exists with no records of any type we serve (the domain's apex,
    /// or a local reverse name asked for a type other than PTR).
    Exists,
    /// The reverse name of a local address: its host name.
    Ptr(&'z [u8]),
    /// Inside the local domain or subnet, but no such name.
    NxDomain,
}

/// A host's lookup key (lowercase host labels) and its FQDN (wire form).
type HostKey = (Box<[u8]>, Box<[u8]>);

#[derive(Debug, Default)]
pub(crate) struct Zone {
    /// The domain, lowercase wire form with the root label.
    domain: Option<NameBuf>,
    subnet: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    hosts: Vec<Host>,
    /// Lowercase host part (wire labels, no root label) → index into `hosts`.
    by_name: HashMap<Box<[u8]>, usize>,
    by_addr: HashMap<Ipv4Addr, usize>,
    by_addr6: HashMap<Ipv6Addr, usize>,
}

/// A name and its addresses, as [`Zone::build_dual`] takes them.
pub(crate) type Entry<'a> = (&'a str, &'a [Ipv4Addr], &'a [Ipv6Addr]);

impl Zone {
    /// [`Zone::build_dual`] for IPv4 only.
    #[cfg(test)]
    pub fn build<'a>(
        domain: Option<&str>,
        subnet: Option<Ipv4Net>,
        entries: impl Iterator<Item = (&'a str, &'a [Ipv4Addr])>,
    ) -> Result<(Zone, usize)> {
        Zone::build_dual(domain, subnet, None, entries.map(|(n, a)| (n, a, &[][..])))
    }

    /// Builds the zone; `entries` in order of precedence for reverse names (the first
    /// name given for an address is its PTR). Names that are not valid DNS names
    /// (they come from DHCP clients) are skipped; the count of those is returned.
    /// Reverse names of unknown addresses in `subnet` or `subnet6` are NXDOMAIN.
    pub fn build_dual<'a>(
        domain: Option<&str>,
        subnet: Option<Ipv4Net>,
        subnet6: Option<Ipv6Net>,
        entries: impl Iterator<Item = Entry<'a>>,
    ) -> Result<(Zone, usize)> {
        let domain_orig = match domain {
            Some(d) if !d.trim_end_matches('.').is_empty() => Some(NameBuf::from_text(d)?),
            _ => None,
        };
        let domain = domain_orig.map(|mut d| {
            d.make_lowercase();
            d
        });
        let mut z = Zone {
            domain,
            subnet,
            subnet6,
            ..Zone::default()
        };
        let mut skipped = 0;
        for (name, addrs, addrs6) in entries {
            let Ok((key, fqdn)) = z.host_key(name, domain_orig.as_ref()) else {
                skipped += 1;
                continue;
            };
            let idx = match z.by_name.get(&key[..]) {
                Some(&i) => i,
                None => {
                    z.hosts.push(Host {
                        fqdn,
                        addrs: Vec::new(),
                        addrs6: Vec::new(),
                    });
                    z.by_name.insert(key, z.hosts.len() - 1);
                    z.hosts.len() - 1
                }
            };
            for &a in addrs {
                let h = &mut z.hosts[idx];
                if !h.addrs.contains(&a) {
                    h.addrs.push(a);
                }
                z.by_addr.entry(a).or_insert(idx);
            }
            for &a in addrs6 {
                let h = &mut z.hosts[idx];
                if !h.addrs6.contains(&a) {
                    h.addrs6.push(a);
                }
                z.by_addr6.entry(a).or_insert(idx);
            }
        }
        Ok((z, skipped))
    }

    /// The lookup key (lowercase host labels) and the FQDN of a configured name; a
    /// name already ending in the domain is taken as that host.
    fn host_key(&self, name: &str, domain_orig: Option<&NameBuf>) -> Result<HostKey> {
        let n = NameBuf::from_text(name)?;
        let mut lower = n;
        lower.make_lowercase();
        let w = lower.as_wire();
        let host_len = match self.domain_cut(w) {
            Some(cut) => cut,
            None => w.len() - 1,
        };
        if host_len == 0 {
            return Err(Error::Malformed);
        }
        let key: Box<[u8]> = w[..host_len].into();
        let mut fqdn = n.as_wire()[..host_len].to_vec();
        match domain_orig {
            Some(d) => fqdn.extend_from_slice(d.as_wire()),
            None => fqdn.push(0),
        }
        if fqdn.len() > MAX_NAME_LEN {
            return Err(Error::Malformed);
        }
        Ok((key, fqdn.into()))
    }

    /// If lowercase `wire` is a name strictly inside the domain, the length of its
    /// host part (where the domain's labels start).
    fn domain_cut(&self, wire: &[u8]) -> Option<usize> {
        let d = self.domain.as_ref()?.as_wire();
        let cut = wire.len().checked_sub(d.len())?;
        if cut == 0 || wire.get(cut..)? != d {
            return None;
        }
        // The suffix must start on a label boundary.
        let mut pos = 0;
        for l in wire_labels(wire) {
            if pos == cut {
                return Some(cut);
            }
            pos += 1 + l.len();
            if pos > cut {
                return None;
            }
        }
        None
    }

    /// Looks up a lowercase query name (wire form).
    pub fn lookup(&self, lower: &[u8], ptr_query: bool) -> Lookup<'_> {
        if let Some(addr) = reverse_addr(lower) {
            return match self.by_addr.get(&addr) {
                Some(&i) if ptr_query => Lookup::Ptr(&self.hosts[i].fqdn),
                Some(_) => Lookup::Exists,
                None if self.subnet.is_some_and(|s| s.contains(addr)) => Lookup::NxDomain,
                None => Lookup::NotLocal,
            };
        }
        if let Some(addr) = reverse_addr6(lower) {
            return match self.by_addr6.get(&addr) {
                Some(&i) if ptr_query => Lookup::Ptr(&self.hosts[i].fqdn),
                Some(_) => Lookup::Exists,
                None if self.subnet6.is_some_and(|s| s.contains(addr)) => Lookup::NxDomain,
                None => Lookup::NotLocal,
            };
        }
        if let Some(d) = &self.domain {
            if lower == d.as_wire() {
                return Lookup::Exists;
            }
            if let Some(cut) = self.domain_cut(lower) {
                return match self.by_name.get(&lower[..cut]) {
                    Some(&i) => Lookup::Host(&self.hosts[i]),
                    None => Lookup::NxDomain,
                };
            }
        }
        // Bare names (with or without a domain).
        match lower
            .len()
            .checked_sub(1)
            .and_then(|n| self.by_name.get(&lower[..n]))
        {
            Some(&i) => Lookup::Host(&self.hosts[i]),
            None => Lookup::NotLocal,
        }
    }
}

/// The address of `d.c.b.a.in-addr.arpa.` (lowercase wire form), if it is one.
fn reverse_addr(lower: &[u8]) -> Option<Ipv4Addr> {
    const SUFFIX: &[u8] = b"\x07in-addr\x04arpa\x00";
    let head = lower.strip_suffix(SUFFIX)?;
    let mut octets = [0u8; 4];
    let mut n = 0;
    for l in wire_labels(head) {
        if n == 4 || l.is_empty() || l.len() > 3 || !l.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if l.len() > 1 && l[0] == b'0' {
            return None;
        }
        let v: u32 = l.iter().fold(0, |a, &c| a * 10 + (c - b'0') as u32);
        octets[3 - n] = u8::try_from(v).ok()?;
        n += 1;
    }
    // The labels must cover the head exactly (wire_labels stops early on junk).
    let used: usize = wire_labels(head).map(|l| l.len() + 1).sum();
    if n != 4 || used != head.len() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// The address of a full nibble name (RFC 3596 §2.5: 32 one-hex-digit labels, the
/// lowest nibble first, then `ip6.arpa.`) in lowercase wire form, if it is one.
/// Anything else (fewer or more labels, a longer label, a non-hex digit) is not.
fn reverse_addr6(lower: &[u8]) -> Option<Ipv6Addr> {
    const SUFFIX: &[u8] = b"\x03ip6\x04arpa\x00";
    let head = lower.strip_suffix(SUFFIX)?;
    // Exactly 32 labels of one character: 64 bytes, a length byte 1 before each.
    if head.len() != 64 {
        return None;
    }
    let mut v: u128 = 0;
    for pair in head.chunks_exact(2).rev() {
        let &[1, c] = pair else { return None };
        let nibble = (c as char).to_digit(16)?;
        v = (v << 4) | u128::from(nibble);
    }
    Some(Ipv6Addr::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(text: &str) -> NameBuf {
        let mut n = NameBuf::from_text(text).unwrap();
        n.make_lowercase();
        n
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_addr(lower("23.0.1.10.in-addr.arpa").as_wire()),
            Some(Ipv4Addr::new(10, 1, 0, 23))
        );
        for bad in [
            "0.1.10.in-addr.arpa",
            "1.23.0.1.10.in-addr.arpa",
            "256.0.1.10.in-addr.arpa",
            "01.0.1.10.in-addr.arpa",
            "a.0.1.10.in-addr.arpa",
            "in-addr.arpa",
        ] {
            assert_eq!(reverse_addr(lower(bad).as_wire()), None, "{bad}");
        }
    }

    #[test]
    fn reverse_names6() {
        let full = "3.2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(
            reverse_addr6(lower(full).as_wire()),
            Some("fd00:1:2:3::123".parse().unwrap())
        );
        assert_eq!(
            reverse_addr6(lower(&full.to_uppercase()).as_wire()),
            Some("fd00:1:2:3::123".parse().unwrap())
        );
        let bad = [
            &full[2..],                       // 31 nibbles
            &format!("0.{full}"),             // 33
            &full.replacen("3.2", "32", 1),   // a two-digit label
            &full.replacen("3.", "x.", 1),    // not hex
            &full.replacen("3.2.", "3..", 1), // not a name at all
            &full.replace("ip6.arpa", "ip6.int"),
            "ip6.arpa",
            "f.d.ip6.arpa",
        ];
        for b in bad {
            let parsed = NameBuf::from_text(b).map(|mut n| {
                n.make_lowercase();
                reverse_addr6(n.as_wire())
            });
            assert!(matches!(parsed, Err(_) | Ok(None)), "{b}");
        }
        // Every byte string of the right length but wrong shape: never an address,
        // never a panic.
        let mut w = lower(full).as_wire().to_vec();
        for i in 0..64 {
            let keep = w[i];
            for v in [0u8, 2, b'g', b'.', 0xff] {
                w[i] = v;
                let _ = reverse_addr6(&w);
            }
            w[i] = keep;
        }
    }

    #[test]
    fn dual_stack_hosts_and_reverse_names() {
        let a4 = [Ipv4Addr::new(10, 1, 0, 23)];
        let a6: [Ipv6Addr; 1] = ["fd00:1:2:3::23".parse().unwrap()];
        let only6: [Ipv6Addr; 1] = ["fd00:1:2:3::6".parse().unwrap()];
        let entries: [Entry<'_>; 3] = [
            ("web", &a4[..], &[][..]),
            ("web", &[][..], &a6[..]),
            ("v6", &[][..], &only6[..]),
        ];
        let (z, _) = Zone::build_dual(
            Some("eco.internal"),
            None,
            Some("fd00:1:2:3::/64".parse().unwrap()),
            entries.into_iter(),
        )
        .unwrap();
        match z.lookup(lower("web.eco.internal").as_wire(), false) {
            Lookup::Host(h) => assert_eq!((&h.addrs[..], &h.addrs6[..]), (&a4[..], &a6[..])),
            x => panic!("{x:?}"),
        }
        let rev = "3.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa";
        match z.lookup(lower(rev).as_wire(), true) {
            Lookup::Ptr(n) => assert_eq!(n, b"\x03web\x03eco\x08internal\x00"),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            z.lookup(lower(rev).as_wire(), false),
            Lookup::Exists
        ));
        let nobody = rev.replacen("3.2", "4.2", 1);
        assert!(matches!(
            z.lookup(lower(&nobody).as_wire(), true),
            Lookup::NxDomain
        ));
        let outside = rev.replace("d.f.ip6", "e.f.ip6");
        assert!(matches!(
            z.lookup(lower(&outside).as_wire(), true),
            Lookup::NotLocal
        ));
    }

    #[test]
    fn domain_and_bare_names() {
        let web = [Ipv4Addr::new(10, 1, 0, 23)];
        let db = [Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 6)];
        let entries = [
            ("Web", &web[..]),
            ("db.eco.internal", &db[..]),
            ("bad name", &db[..]),
        ];
        let (z, skipped) = Zone::build(
            Some("Eco.Internal"),
            Some("10.1.0.0/24".parse().unwrap()),
            entries.iter().map(|(n, a)| (*n, *a)),
        )
        .unwrap();
        assert_eq!(skipped, 1);
        match z.lookup(lower("WEB.eco.internal").as_wire(), false) {
            Lookup::Host(h) => assert_eq!(h.addrs, web),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            z.lookup(lower("web").as_wire(), false),
            Lookup::Host(_)
        ));
        match z.lookup(lower("db").as_wire(), false) {
            Lookup::Host(h) => assert_eq!(h.addrs, db),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            z.lookup(lower("nope.eco.internal").as_wire(), false),
            Lookup::NxDomain
        ));
        assert!(matches!(
            z.lookup(lower("eco.internal").as_wire(), false),
            Lookup::Exists
        ));
        assert!(matches!(
            z.lookup(lower("xeco.internal").as_wire(), false),
            Lookup::NotLocal
        ));
        assert!(matches!(
            z.lookup(lower("example.com").as_wire(), false),
            Lookup::NotLocal
        ));
        assert!(matches!(
            z.lookup(lower("nope").as_wire(), false),
            Lookup::NotLocal
        ));
        match z.lookup(lower("23.0.1.10.in-addr.arpa").as_wire(), true) {
            Lookup::Ptr(n) => assert_eq!(n, b"\x03Web\x03Eco\x08Internal\x00"),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            z.lookup(lower("6.0.1.10.in-addr.arpa").as_wire(), true),
            Lookup::Ptr(_)
        ));
        assert!(matches!(
            z.lookup(lower("6.0.1.10.in-addr.arpa").as_wire(), false),
            Lookup::Exists
        ));
        assert!(matches!(
            z.lookup(lower("99.0.1.10.in-addr.arpa").as_wire(), true),
            Lookup::NxDomain
        ));
        assert!(matches!(
            z.lookup(lower("8.8.8.8.in-addr.arpa").as_wire(), true),
            Lookup::NotLocal
        ));
    }

    #[test]
    fn no_domain_means_bare_names_only() {
        let a = [Ipv4Addr::new(10, 3, 0, 20)];
        let (z, _) = Zone::build(None, None, [("plc", &a[..])].into_iter()).unwrap();
        assert!(matches!(
            z.lookup(lower("PLC").as_wire(), false),
            Lookup::Host(_)
        ));
        assert!(matches!(
            z.lookup(lower("plc.example").as_wire(), false),
            Lookup::NotLocal
        ));
        match z.lookup(lower("20.0.3.10.in-addr.arpa").as_wire(), true) {
            Lookup::Ptr(n) => assert_eq!(n, b"\x03plc\x00"),
            x => panic!("{x:?}"),
        }
        assert!(Zone::build(Some("bad..domain"), None, [].into_iter()).is_err());
    }
}
