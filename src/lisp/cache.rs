//! The ITR's map-cache: EID prefix → locators (or a negative answer), bounded, with
//! TTLs, longest-prefix match per instance and the locator choice of RFC 9300 §10:
//! the lowest priority among usable locators, then weight shares by a hash of the
//! inner flow so one flow keeps one path.

use crate::wire::lisp::Eid;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Instant;

/// Priority 255: "do not use for unicast" (RFC 9301 §5.4).
pub const UNUSABLE: u8 = 255;

/// A locator of a cached mapping, with what econet knows of its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rloc {
    pub addr: Ipv4Addr,
    pub priority: u8,
    pub weight: u8,
    /// Up as far as the mapping's R bit, the locator-status bits and RLOC-probing say.
    pub up: bool,
}

/// What a cached prefix maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    Positive(Vec<Rloc>),
    /// A negative Map-Reply: no ETR for this prefix; `action` as sent.
    Negative {
        action: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub eid: Eid,
    pub mapping: Mapping,
    pub expires: Instant,
    /// When the mapping arrived (refreshes start from here).
    pub installed: Instant,
    pub last_used: Instant,
    /// A refresh Map-Request is out for this entry.
    pub refreshing: bool,
}

impl Entry {
    /// The locator for a flow, if any is usable.
    pub fn select(&self, flow_hash: u32) -> Option<Ipv4Addr> {
        match &self.mapping {
            Mapping::Positive(r) => select(r, flow_hash),
            Mapping::Negative { .. } => None,
        }
    }
}

/// Chooses among the usable locators of the best priority, in proportion to their
/// weights (equal shares when all weights are zero).
pub fn select(rlocs: &[Rloc], flow_hash: u32) -> Option<Ipv4Addr> {
    let best = rlocs
        .iter()
        .filter(|r| r.up && r.priority != UNUSABLE)
        .map(|r| r.priority)
        .min()?;
    let set = || rlocs.iter().filter(move |r| r.up && r.priority == best);
    let total: u32 = set().map(|r| u32::from(r.weight)).sum();
    if total == 0 {
        let n = set().count() as u32;
        return set().nth((flow_hash % n) as usize).map(|r| r.addr);
    }
    let mut pick = flow_hash % total;
    for r in set() {
        let w = u32::from(r.weight);
        if pick < w {
            return Some(r.addr);
        }
        pick -= w;
    }
    None
}

/// A hash of an IPv4 packet's flow: addresses, protocol and, for TCP and UDP, ports.
pub fn flow_hash(ip: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u32::from(x);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    if ip.len() >= 20 {
        eat(&ip[12..20]);
        eat(&ip[9..10]);
        let hl = usize::from(ip[0] & 0x0f) * 4;
        if matches!(ip[9], 6 | 17) {
            if let Some(p) = ip.get(hl..hl + 4) {
                eat(p);
            }
        }
    }
    // Mix the low bits, which choose among few locators.
    h ^ (h >> 16)
}

/// The bounded map-cache.
#[derive(Debug)]
pub struct MapCache {
    map: HashMap<Eid, Entry>,
    /// How many entries have each prefix length, so lookups skip absent lengths.
    lens: [u32; 33],
    capacity: usize,
}

impl MapCache {
    pub fn new(capacity: usize) -> MapCache {
        MapCache {
            map: HashMap::new(),
            lens: [0; 33],
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Longest-prefix match of `ip` in instance `iid`, ignoring expired entries;
    /// marks the entry used.
    pub fn lookup(&mut self, iid: u32, ip: Ipv4Addr, now: Instant) -> Option<&mut Entry> {
        let key = self.find(iid, ip, now)?;
        let e = self.map.get_mut(&key)?;
        e.last_used = now;
        Some(e)
    }

    /// The key of the longest live match, without touching it.
    pub fn find(&self, iid: u32, ip: Ipv4Addr, now: Instant) -> Option<Eid> {
        (0..=32u8)
            .rev()
            .filter(|l| self.lens[*l as usize] > 0)
            .find_map(|l| {
                let k = Eid::new(iid, crate::addr::Ipv4Net::containing(ip, l));
                self.map.get(&k).filter(|e| e.expires > now).map(|_| k)
            })
    }

    pub fn get(&self, eid: &Eid) -> Option<&Entry> {
        self.map.get(eid)
    }

    pub fn get_mut(&mut self, eid: &Eid) -> Option<&mut Entry> {
        self.map.get_mut(eid)
    }

    /// Adds or replaces an entry; when full, the least recently used one goes.
    /// Returns the evicted prefix.
    pub fn insert(&mut self, entry: Entry) -> Option<Eid> {
        let mut evicted = None;
        if !self.map.contains_key(&entry.eid) && self.map.len() >= self.capacity {
            if let Some(k) = self.map.values().min_by_key(|e| e.last_used).map(|e| e.eid) {
                self.remove(&k);
                evicted = Some(k);
            }
        }
        if self.map.insert(entry.eid, entry.clone()).is_none() {
            self.lens[entry.eid.prefix.len() as usize] += 1;
        }
        evicted
    }

    pub fn remove(&mut self, eid: &Eid) -> Option<Entry> {
        let e = self.map.remove(eid)?;
        let l = &mut self.lens[eid.prefix.len() as usize];
        *l = l.saturating_sub(1);
        Some(e)
    }

    /// Removes expired entries; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Eid> {
        let gone: Vec<Eid> = self
            .map
            .values()
            .filter(|e| e.expires <= now)
            .map(|e| e.eid)
            .collect();
        for k in &gone {
            self.remove(k);
        }
        gone
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.map.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.map.values_mut()
    }

    /// Marks a locator up or down in every entry that lists it; returns how many
    /// entries were touched.
    pub fn set_rloc_up(&mut self, addr: Ipv4Addr, up: bool) -> usize {
        let mut n = 0;
        for e in self.map.values_mut() {
            if let Mapping::Positive(rs) = &mut e.mapping {
                for r in rs.iter_mut().filter(|r| r.addr == addr) {
                    r.up = up;
                    n += 1;
                }
            }
        }
        n
    }

    /// Every distinct locator in the cache, with one prefix that uses it.
    pub fn rlocs(&self) -> Vec<(Ipv4Addr, Eid)> {
        let mut seen: HashMap<Ipv4Addr, Eid> = HashMap::new();
        for e in self.map.values() {
            if let Mapping::Positive(rs) = &e.mapping {
                for r in rs {
                    seen.entry(r.addr).or_insert(e.eid);
                }
            }
        }
        let mut v: Vec<_> = seen.into_iter().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(a: u8, priority: u8, weight: u8, up: bool) -> Rloc {
        Rloc {
            addr: Ipv4Addr::new(192, 0, 2, a),
            priority,
            weight,
            up,
        }
    }

    fn entry(eid: &str, rlocs: Vec<Rloc>, now: Instant, ttl: u64) -> Entry {
        Entry {
            eid: Eid::new(7, eid.parse().unwrap()),
            mapping: Mapping::Positive(rlocs),
            expires: now + Duration::from_secs(ttl),
            installed: now,
            last_used: now,
            refreshing: false,
        }
    }

    #[test]
    fn priority_then_weight() {
        let rs = [
            r(1, 2, 50, true),
            r(2, 1, 30, true),
            r(3, 1, 70, true),
            r(4, 0, 1, false),
        ];
        let mut count = [0u32; 5];
        for h in 0..1000u32 {
            let a = select(&rs, h).unwrap();
            count[a.octets()[3] as usize] += 1;
        }
        assert_eq!(
            (count[1], count[4]),
            (0, 0),
            "worse priority and down never chosen"
        );
        assert_eq!((count[2], count[3]), (300, 700), "weights share");
        // The best priority all down: the next one takes over.
        let rs = [r(1, 2, 0, true), r(2, 1, 30, false), r(3, 255, 70, true)];
        assert_eq!(select(&rs, 5), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(select(&[r(3, 255, 1, true)], 0), None);
        // Zero weights share equally.
        let rs = [r(1, 1, 0, true), r(2, 1, 0, true)];
        assert_ne!(select(&rs, 0), select(&rs, 1));
    }

    #[test]
    fn longest_prefix_ttl_and_lru() {
        let t0 = Instant::now();
        let mut c = MapCache::new(2);
        c.insert(entry("10.0.0.0/8", vec![r(1, 1, 1, true)], t0, 10));
        c.insert(entry("10.1.2.3/32", vec![r(2, 1, 1, true)], t0, 5));
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(c.lookup(7, ip, t0).unwrap().eid.prefix.len(), 32);
        assert!(c.lookup(8, ip, t0).is_none(), "other instance");
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(
            c.lookup(7, ip, t1).unwrap().eid.prefix.len(),
            8,
            "expired /32 skipped"
        );
        assert_eq!(c.expire(t1).len(), 1);
        c.insert(entry("10.9.0.0/16", vec![], t1, 10));
        // Full: the least recently used (/8 was used at t1, the /16 is new) goes.
        let t2 = t1 + Duration::from_secs(1);
        c.lookup(7, Ipv4Addr::new(10, 9, 0, 1), t2);
        let ev = c.insert(entry("10.2.0.0/16", vec![], t2, 10));
        assert_eq!(ev.unwrap().prefix.to_string(), "10.0.0.0/8");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn probing_state() {
        let t0 = Instant::now();
        let mut c = MapCache::new(8);
        c.insert(entry(
            "10.0.0.1/32",
            vec![r(1, 1, 1, true), r(2, 2, 1, true)],
            t0,
            10,
        ));
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            c.lookup(7, ip, t0).unwrap().select(0).unwrap().octets()[3],
            1
        );
        assert_eq!(c.set_rloc_up(Ipv4Addr::new(192, 0, 2, 1), false), 1);
        assert_eq!(
            c.lookup(7, ip, t0).unwrap().select(0).unwrap().octets()[3],
            2
        );
        assert_eq!(c.rlocs().len(), 2);
    }

    #[test]
    fn flow_hash_uses_ports() {
        let mut a = [0u8; 28];
        a[0] = 0x45;
        a[9] = 17;
        let mut b = a;
        b[21] = 1;
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_eq!(flow_hash(&[1, 2]), flow_hash(&[]));
    }
}
