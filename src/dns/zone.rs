//! One network's local names: ECO host names and `static_dns` entries, in the
//! network's `domain` (and bare), with their reverse (in-addr.arpa) names.

use crate::addr::Ipv4Net;
use crate::wire::dns::{wire_labels, NameBuf, MAX_NAME_LEN};
use crate::wire::{Error, Result};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A local name and what it resolves to.
#[derive(Debug)]
pub(crate) struct Host {
    /// The fully qualified name (host + domain) in wire form, in the case it was
    /// given: what PTR answers carry.
    pub fqdn: Box<[u8]>,
    pub addrs: Vec<Ipv4Addr>,
}

/// What the zone says about a query name.
#[derive(Debug)]
pub(crate) enum Lookup<'z> {
    /// Not a local name: forward it.
    NotLocal,
    /// A local host: its addresses answer A (and ANY); other types get no data.
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
    hosts: Vec<Host>,
    /// Lowercase host part (wire labels, no root label) → index into `hosts`.
    by_name: HashMap<Box<[u8]>, usize>,
    by_addr: HashMap<Ipv4Addr, usize>,
}

impl Zone {
    /// Builds the zone; `entries` in order of precedence for reverse names (the first
    /// name given for an address is its PTR). Names that are not valid DNS names
    /// (they come from DHCP clients) are skipped; the count of those is returned.
    pub fn build<'a>(
        domain: Option<&str>,
        subnet: Option<Ipv4Net>,
        entries: impl Iterator<Item = (&'a str, &'a [Ipv4Addr])>,
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
            ..Zone::default()
        };
        let mut skipped = 0;
        for (name, addrs) in entries {
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
