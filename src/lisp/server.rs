//! Map-Server and Map-Resolver (RFC 9301 §8) in one sans-I/O core, for
//! `econet map-server`: authenticated registrations that expire, Map-Notify,
//! Map-Requests (in ECMs) forwarded to the registered ETR, proxy replies only for ETRs
//! that asked and only without LISP-crypto keys (those must come from the ETR), and
//! negative replies for EIDs no ETR holds.

use super::ms_config::{MapServerConfig, Site};
use super::ms_store;
use crate::addr::Ipv4Net;
use crate::wire::lisp::control::{self, action, message_type, msg_type};
use crate::wire::lisp::{
    auth, AuthAlg, Ecm, Eid, MapRegister, MapReply, MapRequest, Record, CONTROL_PORT,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// TTL (minutes) of a negative reply for an unregistered EID inside a site.
pub const NEGATIVE_TTL_SITE: u32 = 1;
/// TTL (minutes) of a negative reply for an EID outside every site.
pub const NEGATIVE_TTL_OUTSIDE: u32 = 15;
/// Bounds on the registration lifetime learnt from the xTR's register interval.
const MIN_TIMEOUT: Duration = Duration::from_secs(3);
/// EID-records of one Map-Request answered; senders send one (RFC 9301 §5.2).
const MAX_REQUEST_RECORDS: usize = 8;
/// Minutes of registration churn history kept per site (one bucket a minute).
pub const CHURN_MINUTES: usize = 5;

/// A datagram to send from the control socket (UDP 4342).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub to: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// The longest a registration lives without a refresh: `lifetime_ms` saturates.
pub const MAX_LIFETIME: Duration = Duration::from_millis(u32::MAX as u64);

/// A live registration. Kept small: a fleet's map server holds one per EID (80 bytes
/// here, 96 with its key in the table, and the record's locators on the heap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Index into the config's sites.
    pub site: u32,
    /// The record as registered (EID, locators, TTL).
    pub record: Record,
    pub proxy_reply: bool,
    /// Where the Map-Register came from.
    pub from: SocketAddrV4,
    pub registered: Instant,
    /// How long it lives after `registered`, at most [`MAX_LIFETIME`] (49.7 days).
    pub lifetime_ms: u32,
}

impl Registration {
    pub fn expires(&self) -> Instant {
        self.registered + Duration::from_millis(u64::from(self.lifetime_ms))
    }

    pub fn rlocs(&self) -> Vec<Ipv4Addr> {
        self.record
            .locators
            .iter()
            .filter_map(|l| l.rloc())
            .collect()
    }
}

/// One registered EID, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EidStatus {
    pub site: String,
    pub eid: Eid,
    pub rlocs: Vec<Ipv4Addr>,
    pub expires_in: Duration,
    /// Since the last Map-Register for it (for a restored one, by the wall clock
    /// before the restart).
    pub age: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub registers: u64,
    /// Map-Registers no site key authenticates.
    pub auth_failures: u64,
    /// Of those, the ones whose EIDs lie in no site (the others count in their site's
    /// [`SiteCounters`]).
    pub auth_failures_no_site: u64,
    /// Authenticated Map-Registers with EIDs outside their site.
    pub refused: u64,
    pub notifies: u64,
    pub forwarded: u64,
    pub proxy_replies: u64,
    pub negative_replies: u64,
    pub malformed: u64,
    pub expired: u64,
}

/// Registration churn: registrations that appeared, changed or went away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Churn {
    /// EIDs registered that had no live registration in the site.
    pub new: u64,
    /// Re-registrations with other locators, TTL, flags, or from another address
    /// (a refresh of the same record is not churn).
    pub changed: u64,
    /// Withdrawn by their xTR (record TTL 0).
    pub withdrawn: u64,
    /// Not refreshed in time.
    pub expired: u64,
}

/// What a site's holders have done, since the map server started (the counts of a
/// site survive a reload that keeps the site's name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteCounters {
    /// Map-Registers authenticated with the site's key and accepted.
    pub registers: u64,
    /// Authenticated with the site's key, refused: an EID outside the site.
    pub refused: u64,
    /// Map-Registers for the site's EIDs whose MAC no site key verifies.
    pub bad_mac: u64,
    /// Map-Registers for the site's EIDs with an Algorithm ID econet does not know
    /// (only 1 and 2 are), or a MAC length that algorithm does not have.
    pub unknown_alg: u64,
    pub churn: Churn,
}

impl SiteCounters {
    pub fn auth_failures(&self) -> u64 {
        self.bad_mac + self.unknown_alg
    }
}

/// One minute of churn.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Minutes since the map server's first event.
    minute: u64,
    new: u32,
    changed: u32,
    withdrawn: u32,
    expired: u32,
}

#[derive(Debug, Clone, Default)]
struct SiteStats {
    counters: SiteCounters,
    /// Indexed by minute modulo [`CHURN_MINUTES`].
    buckets: [Bucket; CHURN_MINUTES],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChurnKind {
    New,
    Changed,
    Withdrawn,
    Expired,
}

/// One site, for status.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteStatus {
    pub name: String,
    /// Live registrations (EIDs) of the site.
    pub registered: usize,
    pub counters: SiteCounters,
    /// The churn of the last [`CHURN_MINUTES`] minutes (fewer right after start).
    pub recent: Churn,
    /// How long `recent` covers, and the rates are taken over: at least a minute,
    /// so the first seconds after a start do not read as a storm.
    pub window: Duration,
    /// New and changed registrations a minute over `window`.
    pub churn_per_min: f64,
    /// Expiries a minute over `window`, likewise.
    pub expired_per_min: f64,
}

/// How often a snapshot is written when registrations were only refreshed: every
/// refresh would rewrite the whole table every few seconds at fleet scale.
pub const REFRESH_SAVE_EVERY: Duration = Duration::from_secs(60);

pub struct MapServer {
    cfg: MapServerConfig,
    regs: HashMap<Eid, Registration>,
    /// The prefix lengths registered (bit n: /n), a superset: set on insert, made
    /// exact when `poll` scans. A lookup tries only these, longest first.
    lens: u64,
    /// No registration expires before this (a lower bound, exact after a scan): `poll`
    /// scans only once it is due, and it is the next deadline.
    next_expiry: Option<Instant>,
    counters: Counters,
    /// Per site, in the order of `cfg.sites`.
    stats: Vec<SiteStats>,
    /// The first instant the core saw: minute 0 of the churn buckets.
    epoch: Option<Instant>,
    /// The registrations changed (or were refreshed) since the last
    /// [`MapServer::take_dirty`]: the shell's cue to write a snapshot.
    dirty: bool,
    /// Refreshed since the last snapshot, nothing else changed.
    refreshed: bool,
    /// Negative answers by (instance, prefix), with their TTL. A registration that
    /// expires or is withdrawn leaves them true (only no longer the least specific);
    /// a new one, or a config reload, clears them. A flood of Map-Requests for
    /// unregistered EIDs then costs hash lookups, not a scan each.
    negative: HashMap<(u32, Ipv4Net), u32>,
    /// The prefix lengths in `negative` (bit n: /n).
    negative_lens: u64,
}

/// Negative answers kept before the cache starts over.
const NEGATIVE_CACHE: usize = 4096;

/// What [`MapServer::restore`] did with a stored file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    pub loaded: usize,
    /// Expired while the map server was down.
    pub expired: usize,
    /// Of a site no longer configured, outside their site now, or a duplicate EID.
    pub dropped: usize,
}

impl MapServer {
    pub fn new(cfg: MapServerConfig) -> MapServer {
        MapServer {
            stats: vec![SiteStats::default(); cfg.sites.len()],
            cfg,
            regs: HashMap::new(),
            lens: 0,
            next_expiry: None,
            counters: Counters::default(),
            epoch: None,
            dirty: false,
            refreshed: false,
            negative: HashMap::new(),
            negative_lens: 0,
        }
    }

    /// Whether the registrations changed since the last call (and forgets it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Whether registrations were refreshed (only their expiry moved) since the
    /// last call (and forgets it): worth a snapshot every [`REFRESH_SAVE_EVERY`].
    pub fn take_refreshed(&mut self) -> bool {
        std::mem::take(&mut self.refreshed)
    }

    /// The live registrations in the [`ms_store`] format, for the state directory;
    /// `wall_ms` is the wall clock at `now`, in milliseconds since the epoch.
    pub fn snapshot(&self, now: Instant, wall_ms: u64) -> Vec<u8> {
        let mut regs: Vec<&Registration> =
            self.regs.values().filter(|r| r.expires() > now).collect();
        regs.sort_unstable_by_key(|r| r.record.eid);
        let mut out = String::with_capacity(40 + regs.len() * 120);
        out.push_str(ms_store::HEADER);
        out.push('\n');
        let at = |t: Instant| -> u64 {
            if t >= now {
                wall_ms.saturating_add(millis(t - now))
            } else {
                wall_ms.saturating_sub(millis(now - t))
            }
        };
        for r in regs {
            let Some(site) = self.cfg.sites.get(r.site as usize) else {
                continue;
            };
            let e = ms_store::Stored {
                site: site.name.clone(),
                expires: at(r.expires()),
                registered: at(r.registered),
                from: r.from,
                proxy_reply: r.proxy_reply,
                record: r.record.clone(),
            };
            if !ms_store::encode(&e, &mut out) {
                log::warn!("registration of {} cannot be stored", r.record.eid);
            }
        }
        out.into_bytes()
    }

    /// Loads stored registrations (call right after `new`, before any Map-Register):
    /// those that expired by `wall_ms`, of sites no longer configured or outside their
    /// site now are dropped. A clock that jumped cannot make one live longer than its
    /// record TTL or the configured timeout.
    pub fn restore(
        &mut self,
        stored: Vec<ms_store::Stored>,
        now: Instant,
        wall_ms: u64,
    ) -> Restored {
        let mut done = Restored::default();
        for e in stored {
            // Refreshes are written at most every REFRESH_SAVE_EVERY: an entry may
            // have been refreshed that long after its stored expiry was written.
            let lag = REFRESH_SAVE_EVERY.as_millis() as u64;
            let expires_ms = e.expires.saturating_add(lag);
            if expires_ms <= wall_ms {
                done.expired += 1;
                continue;
            }
            let Some(si) = self
                .cfg
                .sites
                .iter()
                .position(|s| s.name == e.site && in_site(s, &e.record.eid))
            else {
                done.dropped += 1;
                continue;
            };
            if e.record.ttl == 0 || self.regs.contains_key(&e.record.eid) {
                done.dropped += 1;
                continue;
            }
            let ttl = Duration::from_secs(u64::from(e.record.ttl.min(u32::MAX / 60)) * 60);
            let most = self
                .cfg
                .registration_timeout
                .unwrap_or(ttl)
                .max(MIN_TIMEOUT);
            let left = Duration::from_millis(expires_ms - wall_ms).min(most);
            let age = Duration::from_millis(wall_ms.saturating_sub(e.registered));
            let (Some(expires), registered) =
                (now.checked_add(left), now.checked_sub(age).unwrap_or(now))
            else {
                done.dropped += 1;
                continue;
            };
            let lifetime = expires
                .saturating_duration_since(registered)
                .min(MAX_LIFETIME);
            self.insert(Registration {
                site: si as u32,
                record: e.record,
                proxy_reply: e.proxy_reply,
                from: e.from,
                registered,
                lifetime_ms: lifetime.as_millis() as u32,
            });
            done.loaded += 1;
        }
        // What was dropped must leave the file too.
        self.dirty = done.expired + done.dropped > 0;
        done
    }

    pub fn config(&self) -> &MapServerConfig {
        &self.cfg
    }

    /// A new config: registrations stay if their site (by name) still exists and
    /// still covers their EID; the others are dropped.
    pub fn set_config(&mut self, cfg: MapServerConfig) {
        let old = std::mem::replace(&mut self.cfg, cfg);
        let mut old_stats = std::mem::take(&mut self.stats);
        self.stats = self
            .cfg
            .sites
            .iter()
            .map(|s| {
                old.sites
                    .iter()
                    .position(|o| o.name == s.name)
                    .and_then(|i| old_stats.get_mut(i))
                    .map(std::mem::take)
                    .unwrap_or_default()
            })
            .collect();
        self.forget_negative();
        let sites = &self.cfg.sites;
        let before = self.regs.len();
        self.regs.retain(|eid, r| {
            let Some(name) = old.sites.get(r.site as usize).map(|s| &s.name) else {
                return false;
            };
            match sites
                .iter()
                .position(|s| &s.name == name && in_site(s, eid))
            {
                Some(i) => {
                    r.site = i as u32;
                    true
                }
                None => false,
            }
        });
        self.dirty |= self.regs.len() != before;
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn registration(&self, eid: &Eid) -> Option<&Registration> {
        self.regs.get(eid)
    }

    /// Handles a datagram received on UDP 4342; returns what to send.
    pub fn handle(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) -> Vec<Send> {
        self.epoch.get_or_insert(now);
        match message_type(msg) {
            Some(msg_type::MAP_REGISTER) => self.register(now, from, msg),
            Some(msg_type::ECM) => self.resolve(now, msg),
            // Answers a Map-Notify of ours that came late (we send no unsolicited
            // ones): nothing to do.
            Some(msg_type::MAP_NOTIFY_ACK) => Vec::new(),
            _ => {
                self.counters.malformed += 1;
                Vec::new()
            }
        }
    }

    fn register(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) -> Vec<Send> {
        let reg = match MapRegister::parse(msg) {
            Ok(reg) => reg,
            Err(crate::wire::Error::Unsupported) if auth::alg_of(msg).is_none() => {
                // An Algorithm ID econet does not know: an authentication failure.
                // Its records, read as if the ID were one econet knows, name the site
                // it claims.
                let mut m = msg.to_vec();
                if let Some(b) = m.get_mut(auth::ALG_ID) {
                    *b = AuthAlg::HmacSha256.id();
                }
                match MapRegister::parse(&m) {
                    Ok(reg) => self.auth_failure(from, msg, &reg),
                    Err(_) => self.counters.malformed += 1,
                }
                return Vec::new();
            }
            Err(_) => {
                self.counters.malformed += 1;
                return Vec::new();
            }
        };
        // The site that holds the first EID first: one MAC to check, not one per site
        // (with a site per device, thousands). Then every key, as before, so a key
        // used for another site's EIDs is refused as outside its site.
        let verifies = |s: &Site| auth::verify(msg, s.key.expose().as_bytes());
        let Some(si) = reg
            .records
            .first()
            .and_then(|r| {
                self.cfg
                    .sites
                    .iter()
                    .position(|s| in_site(s, &r.eid) && verifies(s))
            })
            .or_else(|| self.cfg.sites.iter().position(verifies))
        else {
            self.auth_failure(from, msg, &reg);
            return Vec::new();
        };
        let site = &self.cfg.sites[si];
        if let Some(r) = reg.records.iter().find(|r| !in_site(site, &r.eid)) {
            self.counters.refused += 1;
            if let Some(st) = self.stats.get_mut(si) {
                st.counters.refused += 1;
            }
            log::warn!(
                "map-register from {from} (site {}): {} is outside the site; refused",
                site.name,
                r.eid
            );
            return Vec::new();
        }
        self.counters.registers += 1;
        if let Some(st) = self.stats.get_mut(si) {
            st.counters.registers += 1;
        }
        for rec in &reg.records {
            if rec.ttl == 0 {
                // TTL 0 withdraws the registration.
                if self
                    .regs
                    .get(&rec.eid)
                    .is_some_and(|r| r.site as usize == si)
                {
                    self.regs.remove(&rec.eid);
                    self.churn(si, now, ChurnKind::Withdrawn);
                    self.dirty = true;
                }
                continue;
            }
            let kind = match self.regs.get(&rec.eid) {
                Some(p) if p.site as usize == si && p.expires() > now => {
                    (p.record != *rec || p.from != from || p.proxy_reply != reg.proxy_reply)
                        .then_some(ChurnKind::Changed)
                }
                _ => Some(ChurnKind::New),
            };
            // A change is written soon; a refresh (only the expiry moved) at most
            // every REFRESH_SAVE_EVERY, which `restore` allows for.
            match kind {
                Some(kind) => {
                    self.churn(si, now, kind);
                    self.dirty = true;
                }
                None => self.refreshed = true,
            }
            let ttl = Duration::from_secs(u64::from(rec.ttl.min(u32::MAX / 60)) * 60);
            let timeout = match (self.cfg.registration_timeout, self.regs.get(&rec.eid)) {
                (Some(t), _) => t,
                // T: the xTR asks for its records' TTL as the timeout (RFC 9301 §5.6);
                // the operator's timeout above still wins.
                _ if reg.use_ttl => ttl.max(MIN_TIMEOUT),
                (None, Some(prev)) if prev.site as usize == si && prev.from == from => {
                    (now.saturating_duration_since(prev.registered) * 3)
                        .clamp(MIN_TIMEOUT, ttl.max(MIN_TIMEOUT))
                }
                (None, _) => ttl,
            };
            self.insert(Registration {
                site: si as u32,
                record: rec.clone(),
                proxy_reply: reg.proxy_reply,
                from,
                registered: now,
                lifetime_ms: timeout.min(MAX_LIFETIME).as_millis() as u32,
            });
        }
        // M (want-map-notify) asks for the Map-Notify: the Map-Register's nonce and
        // records as received, authenticated with the site's key (RFC 9301 §5.7).
        if !reg.want_notify {
            return Vec::new();
        }
        let Some(site) = self.cfg.sites.get(si) else {
            return Vec::new();
        };
        let mut buf = vec![0u8; msg.len()];
        match control::acknowledgement(msg, site.key.expose().as_bytes(), &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.counters.notifies += 1;
                // To port 4342, whatever the Map-Register's source port (RFC 9301 §8.2).
                vec![Send {
                    to: SocketAddrV4::new(*from.ip(), CONTROL_PORT),
                    bytes: buf,
                }]
            }
            Err(_) => Vec::new(),
        }
    }

    /// Map-Resolver: an ECM from an ITR with a Map-Request inside. Each of its
    /// EID-records (RFC 9301 §5.2: one from a sender, any number accepted) is
    /// answered: by proxy or negatively in one Map-Reply, or by forwarding the ECM
    /// once to each ETR that answers for itself. RLOC-probes (P) and Map-Requests
    /// that want no reply (D) are dropped, as RFC 9301 §5.2 says a map resolver must.
    fn resolve(&mut self, now: Instant, msg: &[u8]) -> Vec<Send> {
        let Some((ecm, req)) = Ecm::parse(msg)
            .ok()
            .filter(|e| e.dst_port == CONTROL_PORT)
            .and_then(|e| Some((e, MapRequest::parse(e.message).ok()?)))
        else {
            self.counters.malformed += 1;
            return Vec::new();
        };
        let Some(itr) = req.reply_rloc() else {
            self.counters.malformed += 1;
            return Vec::new();
        };
        if req.probe || req.dont_reply || req.eids.is_empty() {
            self.counters.malformed += 1;
            return Vec::new();
        }
        let reply_to = SocketAddrV4::new(itr, ecm.src_port);
        let mut records = Vec::new();
        let mut etrs: Vec<Ipv4Addr> = Vec::new();
        for want in req.eids.iter().take(MAX_REQUEST_RECORDS) {
            let addr = want.prefix.addr();
            match longest(&self.regs, self.lens, now, want.iid, addr) {
                Some(r) if r.proxy_reply && req.itr_key().is_none() => {
                    self.counters.proxy_replies += 1;
                    records.push(proxy_record(&r.record));
                }
                Some(r) => {
                    let etr = r
                        .record
                        .locators
                        .iter()
                        .filter(|l| l.reachable && l.priority != 255)
                        .find_map(|l| l.rloc());
                    if let Some(etr) = etr.filter(|e| !etrs.contains(e)) {
                        etrs.push(etr);
                    }
                }
                None => {
                    self.counters.negative_replies += 1;
                    let (prefix, ttl) = self.uncovered(now, want.iid, addr);
                    records.push(Record {
                        ttl,
                        eid: Eid::new(want.iid, prefix),
                        action: action::NATIVELY_FORWARD,
                        authoritative: true,
                        map_version: 0,
                        locators: Vec::new(),
                    });
                }
            }
        }
        let mut out = reply(reply_to, req.nonce, records);
        for etr in etrs {
            let mut buf = vec![0u8; msg.len()];
            if let Ok(n) = ecm.emit(&mut buf) {
                buf.truncate(n);
                self.counters.forwarded += 1;
                out.push(Send {
                    to: SocketAddrV4::new(etr, CONTROL_PORT),
                    bytes: buf,
                });
            }
        }
        out
    }

    /// The negative answer for an unregistered `addr` (RFC 9301 §8.4): inside a site,
    /// the least specific prefix of the site around `addr` that holds no registered
    /// EID; outside every site, the least specific one that touches no site.
    fn uncovered(&mut self, now: Instant, iid: u32, addr: Ipv4Addr) -> (Ipv4Net, u32) {
        let mut lens = self.negative_lens;
        while lens != 0 {
            let len = lens.trailing_zeros() as u8;
            lens &= lens - 1;
            if let Some(ttl) = self.negative.get(&(iid, Ipv4Net::containing(addr, len))) {
                return (Ipv4Net::containing(addr, len), *ttl);
            }
        }
        let site = self
            .cfg
            .sites
            .iter()
            .flat_map(|s| s.eid_prefixes.iter().map(move |p| (s, p)))
            .filter(|(s, p)| s.instance_id == iid && p.contains(addr))
            .map(|(_, p)| *p)
            .max_by_key(|p| p.len());
        // Nothing to avoid contains `addr` (the lookup found no registration, and no
        // site holds it outside a site), so addr/len overlaps prefix `p` only if it
        // contains it: len <= min(p.len, the bits p and addr share). The answer is
        // one bit longer than the deepest such overlap.
        let a = u32::from(addr);
        let deepest = |p: &Ipv4Net| {
            let shared = (a ^ u32::from(p.addr())).leading_zeros() as u8;
            shared.min(p.len())
        };
        let (start, overlap, ttl) = match site {
            Some(p) => (
                p.len(),
                self.regs
                    .values()
                    .filter(|r| r.record.eid.iid == iid && r.expires() > now)
                    .map(|r| deepest(&r.record.eid.prefix))
                    .max(),
                NEGATIVE_TTL_SITE,
            ),
            None => (
                0,
                self.cfg
                    .sites
                    .iter()
                    .filter(|s| s.instance_id == iid)
                    .flat_map(|s| s.eid_prefixes.iter())
                    .map(deepest)
                    .max(),
                NEGATIVE_TTL_OUTSIDE,
            ),
        };
        let len = overlap
            .map_or(start, |d| d.saturating_add(1).max(start))
            .min(32);
        let p = Ipv4Net::containing(addr, len);
        if self.negative.len() >= NEGATIVE_CACHE {
            self.forget_negative();
        }
        self.negative.insert((iid, p), ttl);
        self.negative_lens |= 1 << len;
        (p, ttl)
    }

    fn insert(&mut self, r: Registration) {
        self.lens |= 1 << r.record.eid.prefix.len();
        let e = r.expires();
        self.next_expiry = Some(self.next_expiry.map_or(e, |t| t.min(e)));
        let at = r.registered;
        if self
            .regs
            .insert(r.record.eid, r)
            .is_none_or(|old| old.expires() <= at)
        {
            self.forget_negative();
        }
    }

    fn forget_negative(&mut self) {
        if !self.negative.is_empty() {
            self.negative.clear();
            self.negative_lens = 0;
        }
    }

    /// The live registration with the longest EID-prefix holding `addr`: a hash
    /// lookup for each prefix length registered, longest first.
    #[cfg(test)]
    fn lookup(&self, now: Instant, iid: u32, addr: Ipv4Addr) -> Option<&Registration> {
        longest(&self.regs, self.lens, now, iid, addr)
    }

    /// Drops expired registrations; returns them. Scans only when the earliest
    /// expiry may have come.
    pub fn poll(&mut self, now: Instant) -> Vec<Eid> {
        self.epoch.get_or_insert(now);
        if self.next_expiry.is_none_or(|t| t > now) {
            return Vec::new();
        }
        let gone: Vec<(Eid, usize)> = self
            .regs
            .values()
            .filter(|r| r.expires() <= now)
            .map(|r| (r.record.eid, r.site as usize))
            .collect();
        for (e, si) in &gone {
            self.regs.remove(e);
            self.churn(*si, now, ChurnKind::Expired);
            log::info!("registration of {e} expired");
        }
        self.counters.expired += gone.len() as u64;
        self.dirty |= !gone.is_empty();
        self.next_expiry = self.regs.values().map(|r| r.expires()).min();
        self.lens = self
            .regs
            .values()
            .fold(0, |m, r| m | 1 << r.record.eid.prefix.len());
        gone.into_iter().map(|(e, _)| e).collect()
    }

    /// A Map-Register no site's key authenticates: counted against the site that
    /// holds its first EID (the site it claims to be), else as of no site.
    fn auth_failure(&mut self, from: SocketAddrV4, msg: &[u8], reg: &MapRegister) {
        self.counters.auth_failures += 1;
        let known_alg = auth::alg_of(msg).is_some_and(|alg| {
            msg.get(auth::AUTH_LEN)
                .is_some_and(|l| alg.accepts(usize::from(u16::from_be_bytes([l[0], l[1]]))))
        });
        let claimed = reg.records.iter().find_map(|r| {
            self.cfg
                .sites
                .iter()
                .enumerate()
                .filter(|(_, s)| in_site(s, &r.eid))
                .max_by_key(|(_, s)| {
                    s.eid_prefixes
                        .iter()
                        .filter(|p| p.contains(r.eid.prefix.addr()))
                        .map(|p| p.len())
                        .max()
                })
                .map(|(i, _)| i)
        });
        let why = if known_alg {
            "no site's key verifies its MAC"
        } else {
            "unknown Algorithm ID or MAC length"
        };
        match claimed.and_then(|i| Some((self.cfg.sites.get(i)?, self.stats.get_mut(i)?))) {
            Some((site, st)) => {
                if known_alg {
                    st.counters.bad_mac += 1;
                } else {
                    st.counters.unknown_alg += 1;
                }
                log::warn!(
                    "map-register from {from} for site {}: {why}; refused",
                    site.name
                );
            }
            None => {
                self.counters.auth_failures_no_site += 1;
                log::warn!("map-register from {from} (EIDs in no site): {why}; refused");
            }
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        self.epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_secs() / 60)
    }

    fn churn(&mut self, si: usize, now: Instant, kind: ChurnKind) {
        let minute = self.minute(now);
        let Some(st) = self.stats.get_mut(si) else {
            return;
        };
        let b = &mut st.buckets[(minute % CHURN_MINUTES as u64) as usize];
        if b.minute != minute {
            *b = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        let (total, recent) = match kind {
            ChurnKind::New => (&mut st.counters.churn.new, &mut b.new),
            ChurnKind::Changed => (&mut st.counters.churn.changed, &mut b.changed),
            ChurnKind::Withdrawn => (&mut st.counters.churn.withdrawn, &mut b.withdrawn),
            ChurnKind::Expired => (&mut st.counters.churn.expired, &mut b.expired),
        };
        *total += 1;
        *recent = recent.saturating_add(1);
    }

    /// Per site: live EIDs, counters, and the churn of the last minutes.
    pub fn sites(&self, now: Instant) -> Vec<SiteStatus> {
        let mut live = vec![0usize; self.cfg.sites.len()];
        for r in self.regs.values().filter(|r| r.expires() > now) {
            if let Some(n) = live.get_mut(r.site as usize) {
                *n += 1;
            }
        }
        let minute = self.minute(now);
        let first = minute.saturating_sub(CHURN_MINUTES as u64 - 1);
        let window = self
            .epoch
            .map_or(Duration::ZERO, |e| {
                now.saturating_duration_since(e + Duration::from_secs(first * 60))
            })
            .max(Duration::from_secs(60));
        let per_min = |n: u64| n as f64 * 60.0 / window.as_secs_f64();
        self.cfg
            .sites
            .iter()
            .zip(&self.stats)
            .zip(live)
            .map(|((site, st), registered)| {
                let mut recent = Churn::default();
                for b in st
                    .buckets
                    .iter()
                    .filter(|b| b.minute >= first && b.minute <= minute)
                {
                    recent.new += u64::from(b.new);
                    recent.changed += u64::from(b.changed);
                    recent.withdrawn += u64::from(b.withdrawn);
                    recent.expired += u64::from(b.expired);
                }
                SiteStatus {
                    name: site.name.clone(),
                    registered,
                    counters: st.counters,
                    recent,
                    window,
                    churn_per_min: per_min(recent.new + recent.changed),
                    expired_per_min: per_min(recent.expired),
                }
            })
            .collect()
    }

    /// When to call `poll`: no registration expires earlier (it may be early: a
    /// refresh does not move it; `poll` then scans and sets it right).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// The registered EIDs, for `status`.
    pub fn status(&self, now: Instant) -> Vec<EidStatus> {
        let mut v: Vec<EidStatus> = self
            .regs
            .values()
            .filter(|r| r.expires() > now)
            .map(|r| EidStatus {
                site: self.cfg.sites[r.site as usize].name.clone(),
                eid: r.record.eid,
                rlocs: r.rlocs(),
                expires_in: r.expires().saturating_duration_since(now),
                age: now.saturating_duration_since(r.registered),
            })
            .collect();
        v.sort_by_key(|s| s.eid);
        v
    }
}

/// The live registration with the longest EID-prefix holding `addr`, trying the
/// prefix lengths in `lens` (bit n: /n), longest first.
fn longest(
    regs: &HashMap<Eid, Registration>,
    lens: u64,
    now: Instant,
    iid: u32,
    addr: Ipv4Addr,
) -> Option<&Registration> {
    (0..=32u8)
        .rev()
        .filter(|l| lens & 1 << l != 0)
        .find_map(|l| {
            regs.get(&Eid::new(iid, Ipv4Net::containing(addr, l)))
                .filter(|r| r.expires() > now)
        })
}

fn in_site(site: &Site, eid: &Eid) -> bool {
    eid.iid == site.instance_id
        && site
            .eid_prefixes
            .iter()
            .any(|p| p.len() <= eid.prefix.len() && p.contains(eid.prefix.addr()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A registered record as a map server answers for it (RFC 9301 §5.4): not
/// authoritative, no locator flagged local or probed, locators in ascending
/// address order.
fn proxy_record(r: &Record) -> Record {
    let mut rec = r.clone();
    rec.authoritative = false;
    for l in &mut rec.locators {
        l.local = false;
        l.probed = false;
    }
    rec.locators.sort_by_key(|l| (l.rloc().is_none(), l.rloc()));
    rec
}

/// One Map-Reply with `records`; nothing when there are none.
fn reply(to: SocketAddrV4, nonce: u64, records: Vec<Record>) -> Vec<Send> {
    if records.is_empty() {
        return Vec::new();
    }
    let m = MapReply {
        probe: false,
        echo_nonce: false,
        security: false,
        nonce,
        records,
    };
    let mut buf = vec![0u8; 4096];
    match m.emit(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            vec![Send { to, bytes: buf }]
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::wire::lisp::{Address, Locator};

    const IID: u32 = 1000;

    fn site(name: &str, key: &str, prefix: &str) -> Site {
        Site {
            name: name.into(),
            key: Secret(key.into()),
            instance_id: IID,
            eid_prefixes: vec![prefix.parse().unwrap()],
        }
    }

    fn server(timeout: Option<Duration>) -> MapServer {
        MapServer::new(MapServerConfig {
            listen: Ipv4Addr::new(198, 51, 100, 1),
            sites: vec![
                site("a", "key-a", "10.200.1.0/24"),
                site("b", "key-b", "10.200.2.0/24"),
            ],
            registration_timeout: timeout,
        })
    }

    fn from(i: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, i), CONTROL_PORT)
    }

    /// A Map-Register of `eid`/32 at `rloc`, signed with `key`.
    fn register(eid: &str, rloc: Ipv4Addr, ttl: u32, key: &str) -> Vec<u8> {
        register_with(eid, rloc, ttl, key, AuthAlg::HmacSha256)
    }

    fn register_with(eid: &str, rloc: Ipv4Addr, ttl: u32, key: &str, alg: AuthAlg) -> Vec<u8> {
        register_prefix(&format!("{eid}/32"), rloc, ttl, key, alg)
    }

    fn register_prefix(prefix: &str, rloc: Ipv4Addr, ttl: u32, key: &str, alg: AuthAlg) -> Vec<u8> {
        let reg = MapRegister {
            proxy_reply: false,
            want_notify: false,
            use_ttl: false,
            nonce: 1,
            key_id: 0,
            alg,
            records: vec![Record {
                ttl,
                eid: Eid::new(IID, prefix.parse().unwrap()),
                action: action::NO_ACTION,
                authoritative: true,
                map_version: 0,
                locators: vec![Locator {
                    priority: 1,
                    weight: 100,
                    m_priority: 255,
                    m_weight: 0,
                    local: true,
                    probed: false,
                    reachable: true,
                    address: Address::Ipv4(rloc),
                }],
            }],
            xtr_id: None,
        };
        let mut buf = vec![0u8; 512];
        let n = reg.emit_register(&mut buf, key.as_bytes()).unwrap();
        buf.truncate(n);
        buf
    }

    fn site_status(ms: &MapServer, now: Instant, name: &str) -> SiteStatus {
        ms.sites(now).into_iter().find(|s| s.name == name).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// The negative answer as RFC 9301 §8.4 words it, by brute force: the least
    /// specific prefix around `addr` (within its site, if any) that overlaps
    /// nothing to avoid.
    fn uncovered_by_brute_force(ms: &MapServer, now: Instant, addr: Ipv4Addr) -> Ipv4Net {
        let site = ms
            .cfg
            .sites
            .iter()
            .flat_map(|s| s.eid_prefixes.iter())
            .find(|p| p.contains(addr))
            .copied();
        let avoid: Vec<Ipv4Net> = match site {
            Some(_) => ms
                .regs
                .values()
                .filter(|r| r.expires() > now)
                .map(|r| r.record.eid.prefix)
                .collect(),
            None => ms
                .cfg
                .sites
                .iter()
                .flat_map(|s| s.eid_prefixes.clone())
                .collect(),
        };
        (site.map_or(0, |p| p.len())..=32)
            .map(|len| Ipv4Net::containing(addr, len))
            .find(|p| !avoid.iter().any(|a| a.overlaps(p)))
            .unwrap_or(Ipv4Net::containing(addr, 32))
    }

    /// Negative answers, computed in one pass and then cached, are what the brute
    /// force gives, through registrations of random prefixes (a new one clears the
    /// cache), expiries and queries inside and outside the sites.
    #[test]
    fn negative_answers_match_the_brute_force_through_changes() {
        let mut ms = server(None);
        let mut now = Instant::now();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        for round in 0..60 {
            let x = next();
            let (site, key) = if x & 1 == 0 {
                (1, "key-a")
            } else {
                (2, "key-b")
            };
            let len = 24 + (x >> 8) as u8 % 9;
            let host = Ipv4Addr::new(10, 200, site, (x >> 16) as u8);
            let prefix = Ipv4Net::containing(host, len);
            // TTL 1 minute: the early ones expire as time goes on.
            let m = register_prefix(&prefix.to_string(), r1, 1, key, AuthAlg::HmacSha256);
            ms.handle(now, from(site), &m);
            now += Duration::from_secs(3);
            for _ in 0..40 {
                let y = next();
                let addr = match y % 3 {
                    0 => Ipv4Addr::new(10, 200, 1 + (y >> 8) as u8 % 2, (y >> 16) as u8),
                    1 => Ipv4Addr::from((y >> 24) as u32),
                    _ => Ipv4Addr::new(10, 200, (y >> 8) as u8, (y >> 16) as u8),
                };
                if longest(&ms.regs, ms.lens, now, IID, addr).is_some() {
                    continue;
                }
                let want = uncovered_by_brute_force(&ms, now, addr);
                let got = ms.uncovered(now, IID, addr).0;
                // A cached answer may be more specific than the least specific one
                // after an expiry, never less, and never overlaps a registration.
                assert!(
                    got == want || want.contains(got.addr()) && want.len() < got.len(),
                    "round {round}: {addr}: {got}, brute force {want}"
                );
            }
        }
        assert!(!ms.negative.is_empty());
    }

    #[test]
    fn auth_failures_count_against_the_site_claimed() {
        let mut ms = server(None);
        let now = Instant::now();
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        ms.handle(now, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        // Site b's EID, a wrong key: a bad MAC for b.
        ms.handle(now, from(2), &register("10.200.2.1", r1, 10, "guess"));
        ms.handle(now, from(2), &register("10.200.2.1", r1, 10, "guess"));
        // Site b's EID, the right key, an Algorithm ID econet does not know.
        let mut m = register("10.200.2.1", r1, 10, "key-b");
        m[auth::ALG_ID] = 9;
        ms.handle(now, from(2), &m);
        // A MAC length HMAC-SHA-256 does not have: HMAC-SHA-1's 20 bytes.
        let mut m = register_with("10.200.2.1", r1, 10, "key-b", AuthAlg::HmacSha1);
        m[auth::ALG_ID] = AuthAlg::HmacSha256.id();
        ms.handle(now, from(2), &m);
        // EIDs in no site.
        ms.handle(now, from(3), &register("10.99.0.1", r1, 10, "guess"));
        // Site a's key for site b's EID: authenticated, refused.
        ms.handle(now, from(1), &register("10.200.2.9", r1, 10, "key-a"));

        let c = ms.counters();
        assert_eq!(c.auth_failures, 5);
        assert_eq!(c.auth_failures_no_site, 1);
        assert_eq!(c.refused, 1);
        let a = site_status(&ms, now, "a");
        assert_eq!(a.registered, 1);
        assert_eq!(a.counters.registers, 1);
        assert_eq!(a.counters.refused, 1);
        assert_eq!(a.counters.auth_failures(), 0);
        let b = site_status(&ms, now, "b");
        assert_eq!(b.registered, 0);
        assert_eq!(b.counters.registers, 0);
        assert_eq!(b.counters.bad_mac, 2);
        assert_eq!(b.counters.unknown_alg, 2);
        assert_eq!(b.counters.auth_failures(), 4);
        assert_eq!(b.counters.churn, Churn::default());
    }

    #[test]
    fn churn_counts_changes_not_refreshes_and_ages_out() {
        let mut ms = server(Some(Duration::from_secs(60)));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (r1, r2) = (
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(198, 51, 100, 8),
        );
        ms.handle(at(0), from(1), &register("10.200.1.1", r1, 10, "key-a"));
        // A refresh of the same record is not churn.
        ms.handle(at(10), from(1), &register("10.200.1.1", r1, 10, "key-a"));
        // Another RLOC is.
        ms.handle(at(20), from(1), &register("10.200.1.1", r2, 10, "key-a"));
        ms.handle(at(30), from(1), &register("10.200.1.2", r2, 10, "key-a"));
        // TTL 0 withdraws it.
        ms.handle(at(31), from(1), &register("10.200.1.2", r2, 0, "key-a"));
        assert_eq!(site_status(&ms, at(31), "a").registered, 1);
        // 10.200.1.1 was last registered at 20 s: it expires at 80 s.
        assert!(ms.poll(at(79)).is_empty());
        assert_eq!(ms.poll(at(81)).len(), 1);

        let a = site_status(&ms, at(90), "a");
        assert_eq!(a.registered, 0);
        assert_eq!(a.counters.registers, 5);
        let want = Churn {
            new: 2,
            changed: 1,
            withdrawn: 1,
            expired: 1,
        };
        assert_eq!(a.counters.churn, want);
        assert_eq!(a.recent, want);
        assert_eq!(a.window, Duration::from_secs(90));
        assert!(close(a.churn_per_min, 2.0), "{}", a.churn_per_min);
        assert!(
            close(a.expired_per_min, 60.0 / 90.0),
            "{}",
            a.expired_per_min
        );
        // Site b saw nothing.
        let b = site_status(&ms, at(90), "b");
        assert_eq!(
            (b.recent, b.counters.churn),
            (Churn::default(), Churn::default())
        );

        // Six minutes on, the first two minutes have left the window (minutes 2..=6).
        ms.handle(at(360), from(1), &register("10.200.1.3", r1, 10, "key-a"));
        let a = site_status(&ms, at(360), "a");
        assert_eq!(a.window, Duration::from_secs(240));
        assert_eq!(
            a.recent,
            Churn {
                new: 1,
                ..Churn::default()
            }
        );
        assert!(close(a.churn_per_min, 0.25), "{}", a.churn_per_min);
        assert_eq!(a.counters.churn.new, 3, "totals stay");
        // The first seconds count as a minute: no storm from one registration.
        let mut fresh = server(None);
        fresh.handle(at(0), from(1), &register("10.200.1.1", r1, 10, "key-a"));
        let a = site_status(&fresh, at(1), "a");
        assert_eq!(a.window, Duration::from_secs(60));
        assert!(close(a.churn_per_min, 1.0), "{}", a.churn_per_min);
    }

    /// An ECM'd Map-Request for `eid` from an ITR at `itr`.
    fn map_request(eid: &str, itr: Ipv4Addr) -> Vec<u8> {
        let req = MapRequest {
            authoritative: false,
            probe: false,
            smr: false,
            pitr: false,
            smr_invoked: false,
            local_xtr: false,
            dont_reply: false,
            nonce: 0x5eed,
            source_eid: Address::None,
            itr_rlocs: vec![Address::Ipv4(itr)],
            eids: vec![Eid::host(IID, eid.parse().unwrap())],
            map_reply: None,
        };
        let mut inner = vec![0u8; 512];
        let n = req.emit(&mut inner).unwrap();
        let ecm = Ecm {
            security: false,
            ddt: false,
            src: itr,
            dst: eid.parse().unwrap(),
            src_port: CONTROL_PORT,
            dst_port: CONTROL_PORT,
            message: &inner[..n],
        };
        let mut buf = vec![0u8; 1024];
        let n = ecm.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// Snapshot at `t0` (wall clock `wall0` ms), restored into a fresh server whose
    /// clocks read `now` and `wall`.
    fn restart(
        ms: &MapServer,
        t0: Instant,
        wall0: u64,
        cfg: MapServerConfig,
        now: Instant,
        wall: u64,
    ) -> (MapServer, Restored) {
        let d = ms_store::decode(&ms.snapshot(t0, wall0));
        assert_eq!((d.bad, d.foreign), (0, false));
        let mut fresh = MapServer::new(cfg);
        let r = fresh.restore(d.entries, now, wall);
        (fresh, r)
    }

    #[test]
    fn a_restarted_server_answers_from_its_snapshot_at_once() {
        let mut ms = server(None);
        let t0 = Instant::now();
        let wall0 = 1_700_000_000_000;
        let (r1, r2) = (
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(198, 51, 100, 8),
        );
        ms.handle(t0, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        ms.handle(t0, from(2), &register("10.200.2.1", r2, 10, "key-b"));
        assert!(ms.take_dirty());
        assert!(!ms.take_dirty());
        // A refresh (only the expiry moved) is worth a later snapshot, not an
        // early one: 20 s on, it learns a 60 s lifetime.
        let t1 = t0 + Duration::from_secs(20);
        ms.handle(t1, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        assert!(!ms.take_dirty());
        assert!(ms.take_refreshed());
        assert!(!ms.take_refreshed());

        // Down for 30 s: a new process, a new Instant epoch.
        let now = t0 + Duration::from_secs(1000);
        let wall = wall0 + 50_000;
        let (mut back, r) = restart(&ms, t1, wall0 + 20_000, server(None).cfg, now, wall);
        assert_eq!(
            r,
            Restored {
                loaded: 2,
                expired: 0,
                dropped: 0
            }
        );
        assert!(!back.take_dirty(), "nothing to rewrite");
        let reg = back
            .registration(&Eid::host(IID, Ipv4Addr::new(10, 200, 1, 1)))
            .unwrap();
        assert_eq!(
            reg,
            &Registration {
                site: 0,
                record: ms.registration(&reg.record.eid).unwrap().record.clone(),
                proxy_reply: false,
                from: from(1),
                registered: now - Duration::from_secs(30),
                // 60 s from its refresh, 30 s of it gone, and the minute a refresh
                // may not have been written yet: 120 s from its registration.
                lifetime_ms: 120_000,
            }
        );
        assert_eq!(
            reg.expires(),
            now + Duration::from_secs(30) + REFRESH_SAVE_EVERY
        );
        let b = back
            .registration(&Eid::host(IID, Ipv4Addr::new(10, 200, 2, 1)))
            .unwrap();
        // TTL 10 minutes, 50 s of it gone, plus the unwritten-refresh minute: at
        // most the TTL.
        assert_eq!(b.expires(), now + Duration::from_secs(600));
        assert_eq!(back.status(now).len(), 2);
        // The first Map-Request goes to the ETR, not a negative reply.
        let out = back.handle(
            now,
            from(9),
            &map_request("10.200.2.1", Ipv4Addr::new(192, 0, 2, 9)),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SocketAddrV4::new(r2, CONTROL_PORT));
        assert_eq!(back.counters().forwarded, 1);
        assert_eq!(back.counters().negative_replies, 0);
        // The registration interval learnt before still holds: a refresh 30 s after
        // the last one gives 3 x 30 s.
        back.handle(now, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        let reg = back
            .registration(&Eid::host(IID, Ipv4Addr::new(10, 200, 1, 1)))
            .unwrap();
        assert_eq!(reg.expires(), now + Duration::from_secs(90));
    }

    #[test]
    fn expired_and_unconfigured_registrations_are_not_restored() {
        let mut ms = server(Some(Duration::from_secs(60)));
        let t0 = Instant::now();
        let wall0 = 1_700_000_000_000;
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        ms.handle(t0, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        ms.handle(
            t0 + Duration::from_secs(30),
            from(1),
            &register("10.200.1.2", r1, 10, "key-a"),
        );
        ms.handle(t0, from(2), &register("10.200.2.1", r1, 10, "key-b"));
        let t1 = t0 + Duration::from_secs(31);
        let wall1 = wall0 + 31_000;
        // 100 s later: 10.200.1.1 and 10.200.2.1 (60 s from t0, plus the minute a
        // refresh may not have been written) have expired; 10.200.1.2 (90 s) not.
        let now = t0 + Duration::from_secs(500);
        let (mut back, r) = restart(&ms, t1, wall1, ms.cfg.clone(), now, wall1 + 100_000);
        assert_eq!(
            r,
            Restored {
                loaded: 1,
                expired: 2,
                dropped: 0
            }
        );
        assert!(back.take_dirty(), "the file must lose the expired ones");
        let left = back.status(now);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].eid, Eid::host(IID, Ipv4Addr::new(10, 200, 1, 2)));
        assert_eq!(left[0].expires_in, Duration::from_secs(19));
        // Site b gone, site a renamed: nothing stays.
        let cfg = MapServerConfig {
            listen: Ipv4Addr::new(198, 51, 100, 1),
            sites: vec![site("c", "key-a", "10.200.1.0/24")],
            registration_timeout: None,
        };
        let (back, r) = restart(&ms, t1, wall1, cfg, now, wall1);
        assert_eq!(
            r,
            Restored {
                loaded: 0,
                expired: 0,
                dropped: 3
            }
        );
        assert!(back.status(now).is_empty());
        // A clock set far back cannot stretch a registration past its timeout.
        let (back, r) = restart(&ms, t1, wall1, ms.cfg.clone(), now, 1_000);
        assert_eq!(r.loaded, 3);
        assert!(back
            .status(now)
            .iter()
            .all(|s| s.expires_in <= Duration::from_secs(60)));
    }

    #[test]
    fn site_counts_survive_a_reload_that_keeps_the_site() {
        let mut ms = server(None);
        let now = Instant::now();
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        ms.handle(now, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        ms.handle(now, from(2), &register("10.200.2.1", r1, 10, "key-b"));
        ms.handle(now, from(2), &register("10.200.2.1", r1, 10, "guess"));
        // b kept (listed first now), a renamed to c.
        ms.set_config(MapServerConfig {
            listen: Ipv4Addr::new(198, 51, 100, 1),
            sites: vec![
                site("b", "key-b", "10.200.2.0/24"),
                site("c", "key-a", "10.200.1.0/24"),
            ],
            registration_timeout: None,
        });
        let s = ms.sites(now);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "b");
        assert_eq!(s[0].registered, 1);
        assert_eq!(s[0].counters.registers, 1);
        assert_eq!(s[0].counters.bad_mac, 1);
        assert_eq!(s[0].counters.churn.new, 1);
        assert_eq!(s[1].name, "c");
        assert_eq!(s[1].registered, 0, "a's registration went with a");
        assert_eq!(s[1].counters, SiteCounters::default());
        ms.handle(now, from(1), &register("10.200.1.1", r1, 10, "key-a"));
        assert_eq!(ms.sites(now)[1].counters.registers, 1);
    }

    #[test]
    fn lookup_finds_the_longest_live_prefix() {
        let mut ms = server(Some(Duration::from_secs(60)));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (r1, r2) = (
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(198, 51, 100, 8),
        );
        let alg = AuthAlg::HmacSha256;
        ms.handle(
            at(0),
            from(1),
            &register_prefix("10.200.1.0/24", r1, 10, "key-a", alg),
        );
        ms.handle(at(30), from(2), &register("10.200.1.5", r2, 10, "key-a"));
        let found = |ms: &MapServer, t: u64, ip: [u8; 4]| {
            ms.lookup(at(t), IID, Ipv4Addr::from(ip))
                .map(|r| (r.record.eid.prefix.to_string(), r.rlocs()))
        };
        assert_eq!(
            found(&ms, 40, [10, 200, 1, 5]),
            Some(("10.200.1.5/32".into(), vec![r2]))
        );
        assert_eq!(
            found(&ms, 40, [10, 200, 1, 6]),
            Some(("10.200.1.0/24".into(), vec![r1]))
        );
        assert_eq!(found(&ms, 40, [10, 200, 2, 6]), None);
        assert_eq!(
            ms.lookup(at(40), IID + 1, Ipv4Addr::new(10, 200, 1, 5)),
            None
        );
        // The /24 expired at 60 s (not polled yet): only the /32 answers.
        assert_eq!(found(&ms, 70, [10, 200, 1, 6]), None);
        assert_eq!(
            found(&ms, 70, [10, 200, 1, 5]),
            Some(("10.200.1.5/32".into(), vec![r2]))
        );
        // Withdrawn, the /32 leaves the /24 (refreshed) to answer for it.
        ms.handle(
            at(80),
            from(1),
            &register_prefix("10.200.1.0/24", r1, 10, "key-a", alg),
        );
        ms.handle(at(80), from(2), &register("10.200.1.5", r2, 0, "key-a"));
        assert_eq!(
            found(&ms, 81, [10, 200, 1, 5]),
            Some(("10.200.1.0/24".into(), vec![r1]))
        );
    }

    #[test]
    fn poll_timeout_is_a_lower_bound_that_poll_corrects() {
        let mut ms = server(Some(Duration::from_secs(60)));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(ms.poll_timeout(), None);
        ms.handle(at(0), from(1), &register("10.200.1.1", r1, 10, "key-a"));
        ms.handle(at(10), from(1), &register("10.200.1.2", r1, 10, "key-a"));
        assert_eq!(ms.poll_timeout(), Some(at(60)));
        // A refresh does not move it; polling at it expires nothing and moves it.
        ms.handle(at(30), from(1), &register("10.200.1.1", r1, 10, "key-a"));
        assert_eq!(ms.poll_timeout(), Some(at(60)));
        assert!(ms.poll(at(60)).is_empty());
        assert_eq!(ms.poll_timeout(), Some(at(70)));
        assert_eq!(ms.poll(at(70)).len(), 1);
        assert_eq!(ms.poll_timeout(), Some(at(90)));
        assert_eq!(ms.poll(at(90)).len(), 1);
        assert_eq!(ms.poll_timeout(), None);
        assert_eq!(ms.counters().expired, 2);
    }

    #[test]
    fn the_site_that_holds_the_eid_authenticates_first() {
        // Two sites with one key: the EID's own site takes the registration (the
        // first site by order whose key verifies would refuse it as outside).
        let mut ms = MapServer::new(MapServerConfig {
            listen: Ipv4Addr::new(198, 51, 100, 1),
            sites: vec![
                site("a", "same", "10.200.1.0/24"),
                site("b", "same", "10.200.2.0/24"),
            ],
            registration_timeout: None,
        });
        let now = Instant::now();
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        ms.handle(now, from(1), &register("10.200.2.1", r1, 10, "same"));
        assert_eq!(ms.counters().refused, 0);
        assert_eq!(site_status(&ms, now, "b").registered, 1);
        // A key for another site's EIDs is still refused as outside its site.
        let mut ms = server(None);
        ms.handle(now, from(1), &register("10.200.2.9", r1, 10, "key-a"));
        assert_eq!(ms.counters().refused, 1);
        assert_eq!(site_status(&ms, now, "a").counters.refused, 1);
    }

    #[test]
    fn a_registration_stays_small() {
        // One per EID: 100,000 EIDs take 131,072 of these in the table.
        assert!(std::mem::size_of::<(Eid, Registration)>() <= 96);
        // A TTL beyond the longest lifetime saturates (the record keeps its TTL).
        let mut ms = server(None);
        let now = Instant::now();
        let r1 = Ipv4Addr::new(198, 51, 100, 7);
        let ttl = control::TTL_UNLIMITED;
        ms.handle(now, from(1), &register("10.200.1.1", r1, ttl, "key-a"));
        let r = ms
            .registration(&Eid::host(IID, Ipv4Addr::new(10, 200, 1, 1)))
            .unwrap();
        assert_eq!((r.lifetime_ms, r.record.ttl), (u32::MAX, ttl));
        assert_eq!(r.expires(), now + MAX_LIFETIME);
    }
}
