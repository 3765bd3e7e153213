//! Map-Server and Map-Resolver (RFC 9301 §8) in one sans-I/O core, for
//! `econet map-server`: authenticated registrations that expire, Map-Notify,
//! Map-Requests (in ECMs) forwarded to the registered ETR, proxy replies only for ETRs
//! that asked and only without LISP-crypto keys (those must come from the ETR), and
//! negative replies for EIDs no ETR holds.

use super::ms_config::{MapServerConfig, Site};
use crate::addr::Ipv4Net;
use crate::wire::lisp::control::{self, action, message_type, msg_type};
use crate::wire::lisp::{auth, Ecm, Eid, MapRegister, MapReply, MapRequest, Record, CONTROL_PORT};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// TTL (minutes) of a negative reply for an unregistered EID inside a site.
pub const NEGATIVE_TTL_SITE: u32 = 1;
/// TTL (minutes) of a negative reply for an EID outside every site.
pub const NEGATIVE_TTL_OUTSIDE: u32 = 15;
/// Bounds on the registration lifetime learnt from the xTR's register interval.
const MIN_TIMEOUT: Duration = Duration::from_secs(3);

/// A datagram to send from the control socket (UDP 4342).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub to: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// A live registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Index into the config's sites.
    pub site: usize,
    /// The record as registered (EID, locators, TTL).
    pub record: Record,
    pub proxy_reply: bool,
    /// Where the Map-Register came from.
    pub from: SocketAddrV4,
    pub registered: Instant,
    pub expires: Instant,
}

impl Registration {
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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub registers: u64,
    /// Map-Registers no site key authenticates.
    pub auth_failures: u64,
    /// Authenticated Map-Registers with EIDs outside their site.
    pub refused: u64,
    pub notifies: u64,
    pub forwarded: u64,
    pub proxy_replies: u64,
    pub negative_replies: u64,
    pub malformed: u64,
    pub expired: u64,
}

pub struct MapServer {
    cfg: MapServerConfig,
    regs: HashMap<Eid, Registration>,
    counters: Counters,
}

impl MapServer {
    pub fn new(cfg: MapServerConfig) -> MapServer {
        MapServer {
            cfg,
            regs: HashMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &MapServerConfig {
        &self.cfg
    }

    /// A new config: registrations stay if their site (by name) still exists and
    /// still covers their EID; the others are dropped.
    pub fn set_config(&mut self, cfg: MapServerConfig) {
        let old = std::mem::replace(&mut self.cfg, cfg);
        let sites = &self.cfg.sites;
        self.regs.retain(|eid, r| {
            let Some(name) = old.sites.get(r.site).map(|s| &s.name) else {
                return false;
            };
            match sites
                .iter()
                .position(|s| &s.name == name && in_site(s, eid))
            {
                Some(i) => {
                    r.site = i;
                    true
                }
                None => false,
            }
        });
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn registration(&self, eid: &Eid) -> Option<&Registration> {
        self.regs.get(eid)
    }

    /// Handles a datagram received on UDP 4342; returns what to send.
    pub fn handle(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) -> Vec<Send> {
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
        let Ok(reg) = MapRegister::parse(msg) else {
            self.counters.malformed += 1;
            return Vec::new();
        };
        let Some(si) = self
            .cfg
            .sites
            .iter()
            .position(|s| auth::verify(msg, s.key.expose().as_bytes()))
        else {
            self.counters.auth_failures += 1;
            log::warn!("map-register from {from}: no site's key authenticates it; refused");
            return Vec::new();
        };
        let site = &self.cfg.sites[si];
        if let Some(r) = reg.records.iter().find(|r| !in_site(site, &r.eid)) {
            self.counters.refused += 1;
            log::warn!(
                "map-register from {from} (site {}): {} is outside the site; refused",
                site.name,
                r.eid
            );
            return Vec::new();
        }
        self.counters.registers += 1;
        for rec in &reg.records {
            if rec.ttl == 0 {
                // TTL 0 withdraws the registration.
                if self.regs.get(&rec.eid).is_some_and(|r| r.site == si) {
                    self.regs.remove(&rec.eid);
                }
                continue;
            }
            let ttl = Duration::from_secs(u64::from(rec.ttl.min(u32::MAX / 60)) * 60);
            let timeout = match (self.cfg.registration_timeout, self.regs.get(&rec.eid)) {
                (Some(t), _) => t,
                (None, Some(prev)) if prev.site == si && prev.from == from => {
                    (now.saturating_duration_since(prev.registered) * 3)
                        .clamp(MIN_TIMEOUT, ttl.max(MIN_TIMEOUT))
                }
                (None, _) => ttl,
            };
            self.regs.insert(
                rec.eid,
                Registration {
                    site: si,
                    record: rec.clone(),
                    proxy_reply: reg.proxy_reply,
                    from,
                    registered: now,
                    expires: now + timeout,
                },
            );
        }
        // M (want-map-notify) asks for the Map-Notify: the Map-Register's nonce and
        // records as received, authenticated with the site's key (RFC 9301 §5.7).
        if !reg.want_notify {
            return Vec::new();
        }
        let mut buf = vec![0u8; msg.len()];
        match control::acknowledgement(msg, site.key.expose().as_bytes(), &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.counters.notifies += 1;
                vec![Send {
                    to: from,
                    bytes: buf,
                }]
            }
            Err(_) => Vec::new(),
        }
    }

    /// Map-Resolver: an ECM from an ITR with a Map-Request inside.
    fn resolve(&mut self, now: Instant, msg: &[u8]) -> Vec<Send> {
        let Some((ecm, req)) = Ecm::parse(msg)
            .ok()
            .filter(|e| e.dst_port == CONTROL_PORT)
            .and_then(|e| Some((e, MapRequest::parse(e.message).ok()?)))
        else {
            self.counters.malformed += 1;
            return Vec::new();
        };
        let (Some(itr), Some(want)) = (req.reply_rloc(), req.eids.first()) else {
            self.counters.malformed += 1;
            return Vec::new();
        };
        let reply_to = SocketAddrV4::new(itr, ecm.src_port);
        let addr = want.prefix.addr();
        let found = self
            .regs
            .values()
            .filter(|r| r.expires > now && r.record.eid.contains(want.iid, addr))
            .max_by_key(|r| r.record.eid.prefix.len());
        if let Some(r) = found {
            if r.proxy_reply && req.itr_key().is_none() {
                self.counters.proxy_replies += 1;
                let mut rec = r.record.clone();
                rec.authoritative = false;
                return reply(reply_to, req.nonce, rec);
            }
            let Some(etr) = r
                .record
                .locators
                .iter()
                .filter(|l| l.reachable && l.priority != 255)
                .find_map(|l| l.rloc())
            else {
                return Vec::new();
            };
            let mut buf = vec![0u8; msg.len()];
            return match ecm.emit(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    self.counters.forwarded += 1;
                    vec![Send {
                        to: SocketAddrV4::new(etr, CONTROL_PORT),
                        bytes: buf,
                    }]
                }
                Err(_) => Vec::new(),
            };
        }
        self.counters.negative_replies += 1;
        let (prefix, ttl) = self.uncovered(now, want.iid, addr);
        reply(
            reply_to,
            req.nonce,
            Record {
                ttl,
                eid: Eid::new(want.iid, prefix),
                action: action::NATIVELY_FORWARD,
                authoritative: true,
                map_version: 0,
                locators: Vec::new(),
            },
        )
    }

    /// The negative answer for an unregistered `addr` (RFC 9301 §8.4): inside a site,
    /// the least specific prefix of the site around `addr` that holds no registered
    /// EID; outside every site, the least specific one that touches no site.
    fn uncovered(&self, now: Instant, iid: u32, addr: Ipv4Addr) -> (Ipv4Net, u32) {
        let site = self
            .cfg
            .sites
            .iter()
            .flat_map(|s| s.eid_prefixes.iter().map(move |p| (s, p)))
            .filter(|(s, p)| s.instance_id == iid && p.contains(addr))
            .map(|(_, p)| *p)
            .max_by_key(|p| p.len());
        let (start, avoid, ttl): (u8, Vec<Ipv4Net>, u32) = match site {
            Some(p) => (
                p.len(),
                self.regs
                    .values()
                    .filter(|r| r.expires > now && r.record.eid.iid == iid)
                    .map(|r| r.record.eid.prefix)
                    .collect(),
                NEGATIVE_TTL_SITE,
            ),
            None => (
                0,
                self.cfg
                    .sites
                    .iter()
                    .filter(|s| s.instance_id == iid)
                    .flat_map(|s| s.eid_prefixes.iter().copied())
                    .collect(),
                NEGATIVE_TTL_OUTSIDE,
            ),
        };
        for len in start..=32 {
            let p = Ipv4Net::containing(addr, len);
            if !avoid.iter().any(|a| a.overlaps(&p)) {
                return (p, ttl);
            }
        }
        (Ipv4Net::containing(addr, 32), ttl)
    }

    /// Drops expired registrations; returns them.
    pub fn poll(&mut self, now: Instant) -> Vec<Eid> {
        let gone: Vec<Eid> = self
            .regs
            .values()
            .filter(|r| r.expires <= now)
            .map(|r| r.record.eid)
            .collect();
        for e in &gone {
            self.regs.remove(e);
            log::info!("registration of {e} expired");
        }
        self.counters.expired += gone.len() as u64;
        gone
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.regs.values().map(|r| r.expires).min()
    }

    /// The registered EIDs, for `status`.
    pub fn status(&self, now: Instant) -> Vec<EidStatus> {
        let mut v: Vec<EidStatus> = self
            .regs
            .values()
            .filter(|r| r.expires > now)
            .map(|r| EidStatus {
                site: self.cfg.sites[r.site].name.clone(),
                eid: r.record.eid,
                rlocs: r.rlocs(),
                expires_in: r.expires.saturating_duration_since(now),
            })
            .collect();
        v.sort_by_key(|s| s.eid);
        v
    }
}

fn in_site(site: &Site, eid: &Eid) -> bool {
    eid.iid == site.instance_id
        && site
            .eid_prefixes
            .iter()
            .any(|p| p.len() <= eid.prefix.len() && p.contains(eid.prefix.addr()))
}

fn reply(to: SocketAddrV4, nonce: u64, rec: Record) -> Vec<Send> {
    let m = MapReply {
        probe: false,
        echo_nonce: false,
        security: false,
        nonce,
        records: vec![rec],
    };
    let mut buf = vec![0u8; 1500];
    match m.emit(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            vec![Send { to, bytes: buf }]
        }
        Err(_) => Vec::new(),
    }
}
