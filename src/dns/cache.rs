//! The answer cache: upstream replies kept per (network, lowercase qname, qtype,
//! qclass), bounded in entries and bytes, least recently used evicted first.
//!
//! An entry is the reply message itself, ready to copy out: OPT removed (EDNS is per
//! hop), TTLs capped, plus where each record ends and where its TTL sits, so serving
//! is a copy, a few TTL rewrites and an id, with no allocation and no parsing.

use super::NetId;
use crate::wire::dns::{
    field, flags, Packet, RData, Rcode, Records, Section, Type, HEADER_LEN, OPT_LEN,
};
use crate::wire::Result;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// The shape of a reply: one entry per record, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec {
    pub section: Section,
    pub rtype: Type,
    pub offset: usize,
    pub ttl_offset: usize,
    pub end: usize,
    pub ttl: u32,
    /// For SOA records: the negative-caching TTL (RFC 2308 §5: min of TTL and MINIMUM).
    pub neg_ttl: Option<u32>,
}

/// Parses every record of a reply (validating all names) and returns where the
/// question ends and the records.
pub(crate) fn shape(msg: &[u8]) -> Result<(usize, Vec<Rec>)> {
    let p = Packet::new_checked(msg)?;
    let mut qs = p.questions();
    for q in qs.by_ref() {
        q?;
    }
    let qend = qs.offset();
    let counts = [p.ancount(), p.nscount(), p.arcount()];
    let mut recs = Vec::with_capacity(counts.iter().map(|&c| c as usize).sum::<usize>().min(64));
    for r in Records::new(msg, qend, counts) {
        let (section, r) = r?;
        let neg_ttl = match r.rtype {
            Type::SOA => match r.rdata()? {
                RData::Soa(s) => Some(s.minimum.min(r.ttl)),
                _ => None,
            },
            _ => None,
        };
        recs.push(Rec {
            section,
            rtype: r.rtype,
            offset: r.offset,
            ttl_offset: r.ttl_offset(),
            end: r.end(),
            ttl: r.ttl,
            neg_ttl,
        });
    }
    Ok((qend, recs))
}

/// How many records of `recs` fit when the message may be `avail` bytes long, and
/// whether cutting there drops answer or authority records (which needs TC).
pub(crate) fn cut_point(qend: usize, recs: &[(u16, u16)], avail: usize) -> Option<usize> {
    if qend > avail {
        return None;
    }
    Some(
        recs.iter()
            .take_while(|&&(_, end)| end as usize <= avail)
            .count(),
    )
}

/// Hashes are already keyed (SipHash with a random key), so the map need not rehash.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

const NIL: u32 = u32::MAX;

pub(crate) struct Entry {
    net: NetId,
    qtype: u16,
    qclass: u16,
    hash: u64,
    /// Lowercase query name, wire form.
    name: Box<[u8]>,
    /// The reply (id zero, no OPT, TTLs capped).
    msg: Box<[u8]>,
    /// Per record: (TTL offset, end offset).
    recs: Box<[(u16, u16)]>,
    /// Records per section: answer, authority, additional.
    counts: [u16; 3],
    qend: u16,
    stored: Instant,
    expires: Instant,
    prev: u32,
    next: u32,
}

impl Entry {
    fn cost(&self) -> usize {
        self.msg.len() + self.name.len() + self.recs.len() * 4 + 96
    }
}

/// Why a reply was not cached (for counters and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotCached {
    Uncacheable,
    ZeroTtl,
    TooBig,
}

pub(crate) struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
}

pub(crate) struct Cache {
    limits: CacheLimits,
    keys: RandomState,
    map: IdMap<u32>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: evicted first.
    tail: u32,
    bytes: usize,
    pub evictions: u64,
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Cache {
        Cache {
            limits,
            keys: RandomState::new(),
            map: IdMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn key_hash(&self, net: NetId, name: &[u8], qtype: u16, qclass: u16) -> u64 {
        self.keys.hash_one((net, qtype, qclass, name))
    }

    fn unlink(&mut self, i: u32) {
        let Some(e) = self.slots.get(i as usize).and_then(|s| s.as_ref()) else {
            return;
        };
        let (p, n) = (e.prev, e.next);
        match self.slot_mut(p) {
            Some(pe) => pe.next = n,
            None => self.head = n,
        }
        match self.slot_mut(n) {
            Some(ne) => ne.prev = p,
            None => self.tail = p,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(e) = self.slot_mut(i) {
            e.prev = NIL;
            e.next = old;
        }
        match self.slot_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Entry> {
        self.slots.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        if let Some(e) = self.slots.get_mut(i as usize).and_then(|s| s.take()) {
            self.bytes -= e.cost();
            if self.map.get(&e.hash) == Some(&i) {
                self.map.remove(&e.hash);
            }
            self.free.push(i);
        }
    }

    /// The live entry for this key, marked most recently used; an expired one is
    /// dropped.
    pub fn get(
        &mut self,
        now: Instant,
        net: NetId,
        name: &[u8],
        qtype: u16,
        qclass: u16,
    ) -> Option<&Entry> {
        let h = self.key_hash(net, name, qtype, qclass);
        let i = *self.map.get(&h)?;
        let e = self.slots.get(i as usize)?.as_ref()?;
        if e.net != net || e.qtype != qtype || e.qclass != qclass || *e.name != *name {
            return None;
        }
        if now >= e.expires {
            self.remove(i);
            return None;
        }
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        self.slots.get(i as usize)?.as_ref()
    }

    /// Stores a validated reply to the question (`name` lowercase wire form) if it
    /// is cacheable: NOERROR or NXDOMAIN, not truncated, one question written
    /// uncompressed, a non-zero TTL; negative answers only with an SOA (RFC 2308).
    pub fn insert(
        &mut self,
        now: Instant,
        net: NetId,
        name: &[u8],
        qtype: u16,
        qclass: u16,
        msg: &[u8],
    ) -> std::result::Result<(), NotCached> {
        use NotCached::*;
        let p = Packet::new_checked(msg).map_err(|_| Uncacheable)?;
        let rcode = p.rcode();
        if p.tc() || p.qdcount() != 1 || !matches!(rcode, Rcode::NoError | Rcode::NxDomain) {
            return Err(Uncacheable);
        }
        if msg.len() > u16::MAX as usize {
            return Err(TooBig);
        }
        let (qend, recs) = shape(msg).map_err(|_| Uncacheable)?;
        // The question name must sit uncompressed at the start (it is overwritten with
        // each client's spelling when served).
        if qend != HEADER_LEN + name.len() + 4 {
            return Err(Uncacheable);
        }
        // OPT is stripped: only when it is the very last record.
        let mut body_end = msg.len();
        let mut kept = &recs[..];
        if let Some((last, rest)) = recs.split_last() {
            if last.rtype == Type::OPT {
                body_end = last.offset;
                kept = rest;
            }
        }
        if kept.iter().any(|r| r.rtype == Type::OPT) {
            return Err(Uncacheable);
        }
        let answers = kept.iter().filter(|r| r.section == Section::Answer).count();
        let negative = rcode == Rcode::NxDomain || answers == 0;
        let ttl = if negative {
            let soa = kept
                .iter()
                .find(|r| r.section == Section::Authority && r.neg_ttl.is_some());
            match soa.and_then(|r| r.neg_ttl) {
                Some(t) => t.min(self.limits.max_negative_ttl),
                None => return Err(Uncacheable),
            }
        } else {
            let min = kept.iter().map(|r| r.ttl).min().unwrap_or(0);
            min.min(self.limits.max_ttl)
        };
        if ttl == 0 {
            return Err(ZeroTtl);
        }
        let mut stored: Box<[u8]> = msg[..body_end].into();
        let mut p = Packet::new_unchecked(&mut stored[..]);
        p.set_id(0);
        let mut counts = [0u16; 3];
        for r in kept {
            counts[r.section as usize] += 1;
        }
        p.set_ancount(counts[0]);
        p.set_nscount(counts[1]);
        p.set_arcount(counts[2]);
        let cap = if negative { ttl } else { self.limits.max_ttl };
        for r in kept {
            // Negative answers: the SOA's TTL becomes the negative TTL (RFC 2308 §5).
            let t = if r.neg_ttl.is_some() && negative {
                ttl
            } else {
                r.ttl.min(cap)
            };
            if let Some(b) = stored.get_mut(r.ttl_offset..r.ttl_offset + 4) {
                b.copy_from_slice(&t.to_be_bytes());
            }
        }
        let entry = Entry {
            net,
            qtype,
            qclass,
            hash: self.key_hash(net, name, qtype, qclass),
            name: name.into(),
            msg: stored,
            recs: kept
                .iter()
                .map(|r| (r.ttl_offset as u16, r.end as u16))
                .collect(),
            counts,
            qend: qend as u16,
            stored: now,
            expires: now + Duration::from_secs(ttl as u64),
            prev: NIL,
            next: NIL,
        };
        let cost = entry.cost();
        if cost > self.limits.max_bytes || self.limits.max_entries == 0 {
            return Err(TooBig);
        }
        if let Some(&old) = self.map.get(&entry.hash) {
            self.remove(old);
        }
        while self.map.len() >= self.limits.max_entries || self.bytes + cost > self.limits.max_bytes
        {
            if self.tail == NIL {
                break;
            }
            self.remove(self.tail);
            self.evictions += 1;
        }
        let hash = entry.hash;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(entry);
                i
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        self.bytes += cost;
        self.map.insert(hash, i);
        self.push_front(i);
        Ok(())
    }

    /// Drops a network's entries (it was removed).
    pub fn remove_net(&mut self, net: NetId) {
        let doomed: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|e| e.net == net))
            .map(|(i, _)| i as u32)
            .collect();
        for i in doomed {
            self.remove(i);
        }
    }
}

/// What the client asked, as the cache needs it to serve an entry.
pub(crate) struct ServeParams<'q> {
    pub id: u16,
    pub rd: bool,
    /// The query name as the client spelt it (uncompressed wire form).
    pub name: &'q [u8],
    /// Largest reply the client takes.
    pub limit: usize,
    /// Append an OPT record advertising this UDP size (the client used EDNS0).
    pub edns: Option<u16>,
}

impl Entry {
    /// Writes the cached reply for a client into `out` with TTLs aged; cuts it at a
    /// record boundary if it is too big (TC set when answers or authority are cut).
    /// Returns the length and whether it was truncated.
    pub fn serve(
        &self,
        now: Instant,
        q: &ServeParams<'_>,
        out: &mut [u8],
    ) -> Option<(usize, bool)> {
        let limit = q.limit.min(out.len());
        let avail = limit.checked_sub(if q.edns.is_some() { OPT_LEN } else { 0 })?;
        let k = cut_point(self.qend as usize, &self.recs, avail)?;
        let len = match k.checked_sub(1) {
            None => self.qend as usize,
            Some(last) => self.recs.get(last)?.1 as usize,
        };
        let (an, ns, ar) = (
            self.counts[0] as usize,
            self.counts[1] as usize,
            self.counts[2] as usize,
        );
        let truncated = k < an + ns;
        let msg = self.msg.get(..len)?;
        out.get_mut(..len)?.copy_from_slice(msg);
        let qname = out.get_mut(HEADER_LEN..HEADER_LEN + q.name.len())?;
        if qname.len() == q.name.len() {
            qname.copy_from_slice(q.name);
        }
        let age = now.saturating_duration_since(self.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        for &(at, _) in self.recs.get(..k)? {
            let at = at as usize;
            let b = out.get_mut(at..at + 4)?;
            let ttl = u32::from_be_bytes([b[0], b[1], b[2], b[3]]).saturating_sub(age);
            b.copy_from_slice(&ttl.to_be_bytes());
        }
        let mut p = Packet::new_unchecked(&mut out[..len]);
        p.set_id(q.id);
        let mut f = p.flags() & !(flags::RD | flags::TC);
        if q.rd {
            f |= flags::RD;
        }
        if truncated {
            f |= flags::TC;
        }
        p.set_flags(f);
        let kept_an = k.min(an);
        let kept_ns = k.saturating_sub(an).min(ns);
        let kept_ar = k.saturating_sub(an + ns).min(ar);
        p.set_ancount(kept_an as u16);
        p.set_nscount(kept_ns as u16);
        p.set_arcount(kept_ar as u16);
        let mut len = len;
        if let Some(size) = q.edns {
            let opt = out.get_mut(len..len + OPT_LEN)?;
            opt.copy_from_slice(&[0, 0, 41, 0, 0, 0, 0, 0, 0, 0, 0]);
            opt[3..5].copy_from_slice(&size.to_be_bytes());
            len += OPT_LEN;
            let hdr = out.get_mut(field::ARCOUNT)?;
            hdr.copy_from_slice(&(kept_ar as u16 + 1).to_be_bytes());
        }
        Some((len, truncated))
    }
}
