//! The server state machine.
//!
//! State, shaped as the IPv4 server's (every per-message step is a hash lookup or a
//! B-tree operation; only placing a new allocation probes, at most [`PROBE_LIMIT`]
//! addresses):
//! - `allocs` (by address) and `by_ident`: one allocation per identity (ECO endpoint
//!   and IA slot), kept after its lease ends and after its app leaves the config.
//!   Static addresses are allocations too (never evicted, never persisted).
//! - `idle`: allocations with no lease, in reuse order for when the probe finds no
//!   free address: identities gone from the config first, then further slots, then
//!   ECOs' first slots, each least recently used first.
//! - `bad`: declined addresses, out of the pool for `decline_hold`.
//! - `timers`: lease ends and decline holds, in one ordered set.
//!
//! A new ECO's allocation is placed at `range_start + H(app id, ifname, slot) mod
//! size`, or the next free address after it: the same ECO lands on the same address
//! on every server, with or without the lease file. It is made on the first Solicit
//! (an Advertise names the address the Request then gets).
//!
//! Persistence, as for IPv4: a new allocation, a reassignment, a Decline or a config
//! change that drops allocations set `dirty` (the new ones also go to the journal).
//! Renewals and releases only update the last-used time and host name in memory
//! (`touched`), which `take_dirty` reports at most once an hour, to spare flash.
//! After a restart, allocations whose last use is recent enough that their lease may
//! still run are held (presumed leased) until it surely has ended.

use super::store;
use super::{Config, EndpointKey, LeaseChange, LeaseInfo, Reply, Rx, PREFIX_MASK};
use crate::addr::MacAddr;
use crate::wire::dhcpv6::{
    self as wire, Addrs, DomainList, Duid, Ia, IaAddress, IaKind, MessageType, Status, StatusCode,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// How often at most touched last-used times make `take_dirty` say "write".
pub const TOUCH_FLUSH_SECS: u64 = 3600;
/// IA_NA per ECO that get an address.
pub const MAX_SLOTS: u8 = 4;
/// Addresses tried from an identity's hashed position before taking an idle one.
pub const PROBE_LIMIT: u32 = 4096;
/// Timers never reach further than this (so `Instant` arithmetic cannot overflow).
const MAX_TIMER: Duration = Duration::from_secs(10 * 365 * 86400);

type Ip = u128;
type EpId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ident {
    ep: EpId,
    slot: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Lease(Ip),
    Bad(Ip),
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    expires: Instant,
    expires_wall: u64,
    /// Restored from the file: a lease that may still run; not shown.
    provisional: bool,
}

#[derive(Debug)]
struct Alloc {
    ident: Ident,
    last_used: u64,
    mac: MacAddr,
    hostname: String,
    lease: Option<Lease>,
    is_static: bool,
    /// Its key in `idle`, when it is there.
    idle_key: Option<(u8, u64)>,
}

#[derive(Debug, Clone)]
struct EpConf {
    mac: MacAddr,
    static_ip6: Option<Ipv6Addr>,
    hostname: String,
}

/// Endpoint keys interned to small ids.
#[derive(Debug, Default)]
struct Endpoints {
    keys: Vec<EndpointKey>,
    ids: HashMap<EndpointKey, EpId>,
    conf: Vec<Option<EpConf>>,
}

impl Endpoints {
    fn intern(&mut self, key: &EndpointKey) -> EpId {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as EpId;
        self.keys.push(key.clone());
        self.conf.push(None);
        self.ids.insert(key.clone(), id);
        id
    }
    fn conf(&self, id: EpId) -> Option<&EpConf> {
        self.conf.get(id as usize).and_then(|c| c.as_ref())
    }
    fn key(&self, id: EpId) -> Option<&EndpointKey> {
        self.keys.get(id as usize)
    }
}

/// Derived from the config once, used per message.
#[derive(Debug, Default)]
struct Net {
    prefix: Ip,
    lo: Ip,
    hi: Ip,
    statics: HashMap<Ip, EpId>,
    /// Addresses never handed out: the DNS servers (the gateway).
    reserved: HashSet<Ip>,
    duid: Vec<u8>,
    dns: Vec<u8>,
    domains: Vec<u8>,
}

impl Net {
    fn new(cfg: &Config) -> Net {
        let prefix = u128::from(cfg.prefix) & PREFIX_MASK;
        let within = |a: Ipv6Addr| (u128::from(a) & !PREFIX_MASK) | prefix;
        let mut dns = Vec::new();
        for a in &cfg.dns {
            dns.extend_from_slice(&a.octets());
        }
        let mut domains = Vec::new();
        for d in &cfg.domains {
            if DomainList::encode(d, &mut domains).is_err() {
                log::warn!("dhcp6: domain {d:?} cannot be sent, left out");
            }
        }
        Net {
            prefix,
            lo: within(cfg.range_start),
            hi: within(cfg.range_end),
            statics: HashMap::new(),
            reserved: cfg.dns.iter().map(|&a| u128::from(a)).collect(),
            duid: cfg.server_duid.clone(),
            dns,
            domains,
        }
    }

    fn on_link(&self, ip: Ip) -> bool {
        ip & PREFIX_MASK == self.prefix
    }

    /// Whether a dynamic allocation may hold `ip`: in the range, not the
    /// subnet-router anycast address, not an RFC 2526 reserved anycast address, not
    /// the gateway or a static address.
    fn poolable(&self, ip: Ip) -> bool {
        let iid = ip & !PREFIX_MASK;
        ip >= self.lo
            && ip <= self.hi
            && self.on_link(ip)
            && iid != 0
            && iid < 0xfdff_ffff_ffff_ff80
            && !self.reserved.contains(&ip)
            && !self.statics.contains_key(&ip)
    }
}

/// A DHCPv6 server for one network.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    net: Net,
    eps: Endpoints,
    allocs: HashMap<Ip, Alloc>,
    by_ident: HashMap<Ident, Ip>,
    idle: BTreeSet<(u8, u64, Ip)>,
    bad: HashMap<Ip, Instant>,
    timers: BTreeSet<(Instant, Timer)>,
    dirty: bool,
    touched: bool,
    /// Allocations made since the shell last took the journal.
    fresh: Vec<Ip>,
    last_flush: Option<u64>,
    changes: Vec<LeaseChange>,
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TIMER)).unwrap_or(now)
}

/// The client FQDN's host label if it is a plausible host name.
fn clean_hostname(h: &[u8]) -> Option<String> {
    if h.is_empty()
        || h.len() > 63
        || !h
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    std::str::from_utf8(h).ok().map(str::to_owned)
}

/// The stable position of an identity in a range of `size` addresses.
fn hashed_offset(key: &EndpointKey, slot: u8, size: u128) -> u128 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in [
        &b"econet-dhcp6"[..],
        key.app_id.as_bytes(),
        key.ifname.as_bytes(),
        &[slot],
    ] {
        ctx.update(&(p.len() as u32).to_be_bytes());
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut h = [0u8; 16];
    if let Some(s) = d.as_ref().get(..16) {
        h.copy_from_slice(s);
    }
    u128::from_be_bytes(h) % size.max(1)
}

/// What one IA of the request comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IaPlan {
    /// The identity's address.
    Addr(Ident, Ip),
    /// No address for it: this status in the IA.
    Refuse(StatusCode),
}

/// The parts of a reply the handlers decide.
struct Answer {
    kind: MessageType,
    ias: Vec<Ia<'static>>,
    status: Option<StatusCode>,
    rapid_commit: bool,
    /// Leases to grant once the reply is built.
    commit: Vec<(Ident, Ip)>,
}

impl Answer {
    fn new(kind: MessageType) -> Answer {
        Answer {
            kind,
            ias: Vec::new(),
            status: None,
            rapid_commit: false,
            commit: Vec::new(),
        }
    }
}

fn status_text(code: StatusCode) -> &'static [u8] {
    match code {
        StatusCode::Success => b"success",
        StatusCode::NoAddrsAvail => b"no addresses available",
        StatusCode::NoBinding => b"no binding",
        StatusCode::NotOnLink => b"not on link",
        StatusCode::UseMulticast => b"use multicast",
        StatusCode::NoPrefixAvail => b"no prefixes available",
        _ => b"",
    }
}

fn refused(ia: &Ia<'_>, code: StatusCode) -> Ia<'static> {
    let mut out = Ia::new(ia.kind, ia.iaid);
    out.status = Some(Status::new(code, status_text(code)));
    out
}

impl Server {
    pub fn new(cfg: Config) -> Server {
        let mut s = Server {
            cfg: cfg.clone(),
            net: Net::default(),
            eps: Endpoints::default(),
            allocs: HashMap::new(),
            by_ident: HashMap::new(),
            idle: BTreeSet::new(),
            bad: HashMap::new(),
            timers: BTreeSet::new(),
            dirty: false,
            touched: false,
            fresh: Vec::new(),
            last_flush: None,
            changes: Vec::new(),
        };
        s.update_config(cfg);
        s.dirty = false;
        s
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Applies a new config. Allocations are kept unless they no longer fit the range
    /// or the /64, or collide with the gateway or a static address (statics win); an
    /// ECO given a static `ip6` drops the dynamic allocation of its first slot.
    pub fn update_config(&mut self, cfg: Config) {
        for c in self.eps.conf.iter_mut() {
            *c = None;
        }
        self.net = Net::new(&cfg);
        for e in &cfg.endpoints {
            let id = self.eps.intern(&e.key);
            if let Some(c) = self.eps.conf.get_mut(id as usize) {
                *c = Some(EpConf {
                    mac: e.mac,
                    static_ip6: e.static_ip6,
                    hostname: e.hostname.clone(),
                });
            }
            if let Some(ip) = e.static_ip6 {
                let ip = u128::from(ip);
                if self.net.on_link(ip) && !self.net.reserved.contains(&ip) {
                    self.net.statics.entry(ip).or_insert(id);
                }
            }
        }
        self.cfg = cfg;
        let mut drop = Vec::new();
        for (&ip, a) in &self.allocs {
            let keep = if a.is_static {
                a.ident.slot == 0 && self.net.statics.get(&ip) == Some(&a.ident.ep)
            } else {
                let has_static = a.ident.slot == 0 && self.eco_static(a.ident.ep).is_some();
                self.net.poolable(ip) && !has_static
            };
            if !keep {
                drop.push((ip, a.is_static));
            }
        }
        for (ip, is_static) in drop {
            self.remove_alloc(ip);
            if !is_static {
                self.dirty = true;
            }
        }
        let statics: Vec<(Ip, EpId)> = self.net.statics.iter().map(|(&i, &e)| (i, e)).collect();
        for (ip, ep) in statics {
            if self.allocs.contains_key(&ip) {
                continue;
            }
            let (mac, hostname) = self
                .eps
                .conf(ep)
                .map(|c| (c.mac, c.hostname.clone()))
                .unwrap_or_default();
            self.insert_alloc(
                ip,
                Alloc {
                    ident: Ident { ep, slot: 0 },
                    last_used: 0,
                    mac,
                    hostname,
                    lease: None,
                    is_static: true,
                    idle_key: None,
                },
            );
        }
        let ips: Vec<Ip> = self.allocs.keys().copied().collect();
        for ip in ips {
            self.refresh_idle(ip);
        }
    }

    // ----- invariant-keeping helpers -----

    fn tier(&self, ident: Ident) -> u8 {
        if self.eps.conf(ident.ep).is_none() {
            0
        } else if ident.slot > 0 {
            1
        } else {
            2
        }
    }

    fn refresh_idle(&mut self, ip: Ip) {
        let Some(a) = self.allocs.get(&ip) else {
            return;
        };
        let want = if a.is_static || a.lease.is_some() {
            None
        } else {
            Some((self.tier(a.ident), a.last_used))
        };
        let old = a.idle_key;
        if old == want {
            return;
        }
        if let Some((t, l)) = old {
            self.idle.remove(&(t, l, ip));
        }
        if let Some((t, l)) = want {
            self.idle.insert((t, l, ip));
        }
        if let Some(a) = self.allocs.get_mut(&ip) {
            a.idle_key = want;
        }
    }

    fn eco_static(&self, ep: EpId) -> Option<Ip> {
        let ip = u128::from(self.eps.conf(ep)?.static_ip6?);
        (self.net.statics.get(&ip) == Some(&ep)).then_some(ip)
    }

    /// Sets (or ends) an allocation's lease; an ended lease is reported.
    fn set_lease(&mut self, ip: Ip, lease: Option<Lease>) {
        let Some(a) = self.allocs.get_mut(&ip) else {
            return;
        };
        let old = std::mem::replace(&mut a.lease, lease);
        if old.is_some() && lease.is_none() {
            let (ident, mac) = (a.ident, a.mac);
            self.changed(false, ident, mac, ip);
        }
        if old.map(|o| o.expires) != lease.map(|l| l.expires) {
            if let Some(o) = old {
                self.timers.remove(&(o.expires, Timer::Lease(ip)));
            }
            if let Some(n) = lease {
                self.timers.insert((n.expires, Timer::Lease(ip)));
            }
        }
        self.refresh_idle(ip);
    }

    fn insert_alloc(&mut self, ip: Ip, a: Alloc) {
        self.by_ident.insert(a.ident, ip);
        let lease = a.lease;
        self.allocs.insert(
            ip,
            Alloc {
                lease: None,
                idle_key: None,
                ..a
            },
        );
        self.set_lease(ip, lease);
    }

    fn remove_alloc(&mut self, ip: Ip) -> Option<Alloc> {
        self.set_lease(ip, None);
        let a = self.allocs.remove(&ip)?;
        if let Some((t, l)) = a.idle_key {
            self.idle.remove(&(t, l, ip));
        }
        if self.by_ident.get(&a.ident) == Some(&ip) {
            self.by_ident.remove(&a.ident);
        }
        Some(a)
    }

    fn mark_bad(&mut self, ip: Ip, now: Instant) {
        let until = after(now, self.cfg.decline_hold);
        if let Some(old) = self.bad.insert(ip, until) {
            self.timers.remove(&(old, Timer::Bad(ip)));
        }
        self.timers.insert((until, Timer::Bad(ip)));
    }

    /// Whether `ip` can go to a new identity without taking anything from anyone.
    fn available(&self, ip: Ip) -> bool {
        self.net.poolable(ip) && !self.allocs.contains_key(&ip) && !self.bad.contains_key(&ip)
    }

    /// The identity's address: its static one, its allocation, or a new allocation
    /// (hashed position and probe, else the first idle allocation in reuse order).
    fn ensure_alloc(&mut self, ident: Ident, mac: MacAddr, wall: u64) -> Option<Ip> {
        if ident.slot == 0 {
            if let Some(ip) = self.eco_static(ident.ep) {
                return Some(ip);
            }
        }
        if let Some(&ip) = self.by_ident.get(&ident) {
            return Some(ip);
        }
        let (lo, hi) = (self.net.lo, self.net.hi);
        let mut pick = None;
        if lo <= hi {
            let size = (hi - lo).saturating_add(1);
            let key = self.eps.key(ident.ep)?;
            let start = hashed_offset(key, ident.slot, size);
            let tries = size.min(u128::from(PROBE_LIMIT));
            for i in 0..tries {
                let ip = lo + (start + i) % size;
                if self.available(ip) {
                    pick = Some(ip);
                    break;
                }
            }
        }
        if pick.is_none() {
            pick = self
                .idle
                .iter()
                .find(|&&(_, _, ip)| !self.bad.contains_key(&ip))
                .map(|&(_, _, ip)| ip);
            if let Some(victim) = pick {
                log::info!(
                    "dhcp6: range of {} full, reusing {}",
                    self.cfg.prefix,
                    Ipv6Addr::from(victim)
                );
                self.remove_alloc(victim);
            }
        }
        let Some(ip) = pick else {
            log::info!("dhcp6: range of {} exhausted", self.cfg.prefix);
            return None;
        };
        let hostname = self
            .eps
            .conf(ident.ep)
            .map(|c| c.hostname.clone())
            .unwrap_or_default();
        self.insert_alloc(
            ip,
            Alloc {
                ident,
                last_used: wall,
                mac,
                hostname,
                lease: None,
                is_static: false,
                idle_key: None,
            },
        );
        self.dirty = true;
        self.fresh.push(ip);
        Some(ip)
    }

    /// Which of the endpoint's slots owns `ip`, if any.
    fn slot_of(&self, ep: EpId, ip: Ip) -> Option<u8> {
        self.allocs
            .get(&ip)
            .filter(|a| a.ident.ep == ep)
            .map(|a| a.ident.slot)
    }

    /// The slot of each IA_NA of the request (by index into `req.ias`): an IA that
    /// lists an address the ECO holds keeps that slot, the others take the free
    /// slots in order.
    fn slots(&self, ep: EpId, req: &wire::Repr<'_>) -> Vec<Option<u8>> {
        let mut out = vec![None; req.ias.len()];
        let mut used = [false; MAX_SLOTS as usize];
        for (i, ia) in req.ias.iter().enumerate() {
            if ia.kind != IaKind::Na {
                continue;
            }
            let owned = ia
                .addresses
                .iter()
                .find_map(|a| self.slot_of(ep, u128::from(a.addr)));
            if let Some(s) = owned {
                if let Some(u) = used.get_mut(usize::from(s)) {
                    if !*u {
                        *u = true;
                        if let Some(o) = out.get_mut(i) {
                            *o = Some(s);
                        }
                    }
                }
            }
        }
        for (i, ia) in req.ias.iter().enumerate() {
            if ia.kind != IaKind::Na || out.get(i).copied().flatten().is_some() {
                continue;
            }
            let free = used.iter().position(|u| !u);
            if let Some(s) = free {
                if let Some(u) = used.get_mut(s) {
                    *u = true;
                }
                if let Some(o) = out.get_mut(i) {
                    *o = Some(s as u8);
                }
            }
        }
        out
    }

    // ----- the protocol -----

    /// Handles one message from a client. `buf` receives the reply's UDP payload;
    /// a reply that does not fit is not sent and grants no lease (an allocation it
    /// made stays). 1232 bytes, an IPv6 minimum MTU's worth, hold the reply to
    /// anything short of a client listing dozens of addresses in its IAs.
    pub fn handle(&mut self, now: Instant, wall: u64, rx: Rx<'_>, buf: &mut [u8]) -> Option<Reply> {
        let ep = *self.eps.ids.get(rx.endpoint?)?;
        let eco_mac = self.eps.conf(ep)?.mac;
        if rx.src_mac.is_multicast() || rx.src_mac.is_zero() {
            return None;
        }
        if rx.src_ip.is_unspecified() || rx.src_ip.is_multicast() {
            return None;
        }
        let pkt = wire::Packet::new_checked(rx.payload).ok()?;
        if pkt.msg_type().is_relay() {
            log::debug!("dhcp6: relay message from {} dropped", rx.src_mac);
            return None;
        }
        let req = wire::Repr::parse(&pkt).ok()?;
        let eco = (rx.src_mac == eco_mac).then_some(ep);
        let ours = |d: Option<Duid<'_>>| d.is_some_and(|d| d.as_bytes() == &self.net.duid[..]);
        let has_ia = !req.ias.is_empty();
        // RFC 8415 §16: which messages to discard.
        use MessageType as M;
        match req.message_type {
            M::Solicit | M::Confirm | M::Rebind => {
                if req.client_id.is_none() || req.server_id.is_some() {
                    return None;
                }
            }
            M::Request | M::Renew | M::Release | M::Decline => {
                if req.client_id.is_none() || !ours(req.server_id) {
                    return None;
                }
            }
            M::InformationRequest => {
                if has_ia || (req.server_id.is_some() && !ours(req.server_id)) {
                    return None;
                }
            }
            _ => return None,
        }
        let answer = match req.message_type {
            M::Request | M::Renew | M::Release | M::Decline if rx.unicast => {
                // RFC 8415 §18.4: no Server Unicast option was sent.
                let mut a = Answer::new(M::Reply);
                a.status = Some(StatusCode::UseMulticast);
                a
            }
            M::Solicit => self.solicit(eco, &req, rx.src_mac, wall),
            M::Request => self.request(eco, &req, rx.src_mac, wall),
            M::Renew | M::Rebind => self.renew(eco, &req, rx.src_mac, wall),
            M::Confirm => self.confirm(eco, &req)?,
            M::Release => self.release(eco, &req, wall),
            M::Decline => self.decline(now, eco, &req),
            _ => Answer::new(M::Reply),
        };
        let len = self.build(&req, &answer, buf)?;
        let host = req.client_fqdn.and_then(|f| clean_hostname(f.host_label()));
        for &(ident, ip) in &answer.commit {
            self.commit(now, wall, ident, ip, rx.src_mac, host.as_deref());
        }
        Some(Reply {
            dst_mac: rx.src_mac,
            dst_ip: rx.src_ip,
            dst_port: wire::CLIENT_PORT,
            payload_len: len,
        })
    }

    /// The IAs of an Advertise, a Request's Reply or a rapid-commit Reply.
    fn assign(
        &mut self,
        eco: Option<EpId>,
        req: &wire::Repr<'_>,
        mac: MacAddr,
        wall: u64,
    ) -> Vec<(usize, IaPlan)> {
        let slots = match eco {
            Some(ep) => self.slots(ep, req),
            None => vec![None; req.ias.len()],
        };
        let mut out = Vec::with_capacity(req.ias.len());
        for (i, ia) in req.ias.iter().enumerate() {
            let plan = match (ia.kind, eco, slots.get(i).copied().flatten()) {
                (IaKind::Na, Some(ep), Some(slot)) => {
                    let ident = Ident { ep, slot };
                    match self.ensure_alloc(ident, mac, wall) {
                        Some(ip) => IaPlan::Addr(ident, ip),
                        None => IaPlan::Refuse(StatusCode::NoAddrsAvail),
                    }
                }
                (IaKind::Pd, ..) => IaPlan::Refuse(StatusCode::NoPrefixAvail),
                _ => IaPlan::Refuse(StatusCode::NoAddrsAvail),
            };
            out.push((i, plan));
        }
        out
    }

    fn granted_ia(&self, ia: &Ia<'_>, ip: Ip) -> Ia<'static> {
        let mut out = Ia::new(IaKind::Na, ia.iaid);
        out.t1 = self.cfg.t1_secs;
        out.t2 = self.cfg.t2_secs;
        out.addresses.push(IaAddress::new(
            Ipv6Addr::from(ip),
            self.cfg.preferred_secs.min(self.cfg.valid_secs),
            self.cfg.valid_secs,
        ));
        out
    }

    fn solicit(
        &mut self,
        eco: Option<EpId>,
        req: &wire::Repr<'_>,
        mac: MacAddr,
        wall: u64,
    ) -> Answer {
        let plans = self.assign(eco, req, mac, wall);
        let any = plans.iter().any(|(_, p)| matches!(p, IaPlan::Addr(..)));
        if !any {
            // RFC 8415 §18.3.9: no IA options, a message-level status.
            let mut a = Answer::new(MessageType::Advertise);
            let only_pd = !req.ias.is_empty() && req.ias.iter().all(|i| i.kind == IaKind::Pd);
            a.status = Some(if only_pd {
                StatusCode::NoPrefixAvail
            } else {
                StatusCode::NoAddrsAvail
            });
            return a;
        }
        let rapid = req.rapid_commit && self.cfg.rapid_commit;
        let mut a = Answer::new(if rapid {
            MessageType::Reply
        } else {
            MessageType::Advertise
        });
        a.rapid_commit = rapid;
        self.fill(req, &plans, &mut a, rapid);
        a
    }

    fn request(
        &mut self,
        eco: Option<EpId>,
        req: &wire::Repr<'_>,
        mac: MacAddr,
        wall: u64,
    ) -> Answer {
        let plans = self.assign(eco, req, mac, wall);
        let mut a = Answer::new(MessageType::Reply);
        self.fill(req, &plans, &mut a, true);
        a
    }

    /// IAs from plans: granted ones with the address, the others refused.
    fn fill(&self, req: &wire::Repr<'_>, plans: &[(usize, IaPlan)], a: &mut Answer, commit: bool) {
        for &(i, plan) in plans {
            let Some(ia) = req.ias.get(i) else {
                continue;
            };
            match plan {
                IaPlan::Addr(ident, ip) => {
                    a.ias.push(self.granted_ia(ia, ip));
                    if commit {
                        a.commit.push((ident, ip));
                    }
                }
                IaPlan::Refuse(code) => a.ias.push(refused(ia, code)),
            }
        }
    }

    /// Renew and Rebind (RFC 8415 §18.3.4, §18.3.5): the ECO's address with fresh
    /// lifetimes, every other address it lists with zero lifetimes (not on link, or
    /// not its own); an IA with no address for it: NoBinding, or its addresses with
    /// zero lifetimes when some are not on link. IA_TA and IA_PD: NoBinding.
    fn renew(
        &mut self,
        eco: Option<EpId>,
        req: &wire::Repr<'_>,
        mac: MacAddr,
        wall: u64,
    ) -> Answer {
        let slots = match eco {
            Some(ep) => self.slots(ep, req),
            None => vec![None; req.ias.len()],
        };
        let mut a = Answer::new(MessageType::Reply);
        for (i, ia) in req.ias.iter().enumerate() {
            let own = match (ia.kind, eco, slots.get(i).copied().flatten()) {
                (IaKind::Na, Some(ep), Some(slot)) => {
                    let ident = Ident { ep, slot };
                    self.ensure_alloc(ident, mac, wall).map(|ip| (ident, ip))
                }
                _ => None,
            };
            let zeroed = |out: &mut Ia<'static>, skip: Option<Ip>| {
                for x in &ia.addresses {
                    if Some(u128::from(x.addr)) != skip {
                        out.addresses.push(IaAddress::new(x.addr, 0, 0));
                    }
                }
            };
            match own {
                Some((ident, ip)) => {
                    let mut out = self.granted_ia(ia, ip);
                    zeroed(&mut out, Some(ip));
                    a.ias.push(out);
                    a.commit.push((ident, ip));
                }
                None => {
                    let off_link = ia
                        .addresses
                        .iter()
                        .any(|x| !self.net.on_link(u128::from(x.addr)));
                    if off_link && ia.kind != IaKind::Pd {
                        let mut out = Ia::new(ia.kind, ia.iaid);
                        zeroed(&mut out, None);
                        a.ias.push(out);
                    } else {
                        a.ias.push(refused(ia, StatusCode::NoBinding));
                    }
                }
            }
        }
        a
    }

    /// Confirm (RFC 8415 §18.3.3): Success when every address is on link (and, for
    /// a known ECO, is its own: an ECO confirming another address is sent back to
    /// Solicit, so it converges on its own address at once), NotOnLink otherwise; no
    /// reply when it lists no address.
    fn confirm(&self, eco: Option<EpId>, req: &wire::Repr<'_>) -> Option<Answer> {
        let mut any = false;
        let mut ok = true;
        for x in req.ias.iter().flat_map(|ia| ia.addresses.iter()) {
            any = true;
            let ip = u128::from(x.addr);
            let fits = match eco {
                Some(ep) => self.net.on_link(ip) && self.slot_of(ep, ip).is_some(),
                None => self.net.on_link(ip),
            };
            ok &= fits;
        }
        if !any {
            return None;
        }
        let mut a = Answer::new(MessageType::Reply);
        a.status = Some(if ok {
            StatusCode::Success
        } else {
            StatusCode::NotOnLink
        });
        Some(a)
    }

    /// Release (RFC 8415 §18.3.7): each address the ECO holds ends its lease (the
    /// allocation stays the ECO's); IAs with none: NoBinding.
    fn release(&mut self, eco: Option<EpId>, req: &wire::Repr<'_>, wall: u64) -> Answer {
        let mut a = Answer::new(MessageType::Reply);
        a.status = Some(StatusCode::Success);
        for ia in &req.ias {
            let mut bound = false;
            for x in &ia.addresses {
                let ip = u128::from(x.addr);
                let Some(ep) = eco else { continue };
                if ia.kind != IaKind::Na || self.slot_of(ep, ip).is_none() {
                    continue;
                }
                bound = true;
                if let Some(al) = self.allocs.get_mut(&ip) {
                    al.last_used = wall;
                    self.touched = true;
                }
                self.set_lease(ip, None);
            }
            if !bound {
                a.ias.push(refused(ia, StatusCode::NoBinding));
            }
        }
        a
    }

    /// Decline (RFC 8415 §18.3.8): each address the ECO holds is dropped and kept
    /// out of the pool for `decline_hold`; the ECO gets another on its next Solicit.
    /// IAs with none: NoBinding.
    fn decline(&mut self, now: Instant, eco: Option<EpId>, req: &wire::Repr<'_>) -> Answer {
        let mut a = Answer::new(MessageType::Reply);
        a.status = Some(StatusCode::Success);
        for ia in &req.ias {
            let mut bound = false;
            for x in &ia.addresses {
                let ip = u128::from(x.addr);
                let Some(ep) = eco else { continue };
                if ia.kind != IaKind::Na || self.slot_of(ep, ip).is_none() {
                    continue;
                }
                bound = true;
                if self.allocs.get(&ip).is_some_and(|al| al.is_static) {
                    log::warn!(
                        "dhcp6: static address {} declined: in use by another host",
                        x.addr
                    );
                    continue;
                }
                log::info!(
                    "dhcp6: {} declined, held for {:?}",
                    x.addr,
                    self.cfg.decline_hold
                );
                self.remove_alloc(ip);
                self.dirty = true;
                self.mark_bad(ip, now);
            }
            if !bound {
                a.ias.push(refused(ia, StatusCode::NoBinding));
            }
        }
        a
    }

    /// Gives `ip` to `ident` with a fresh lease (its allocation exists).
    fn commit(
        &mut self,
        now: Instant,
        wall: u64,
        ident: Ident,
        ip: Ip,
        mac: MacAddr,
        host: Option<&str>,
    ) {
        let valid = u64::from(self.cfg.valid_secs);
        let lease = Lease {
            expires: after(now, Duration::from_secs(valid)),
            expires_wall: wall.saturating_add(valid),
            provisional: false,
        };
        let host = host.map(str::to_owned).unwrap_or_else(|| {
            self.eps
                .conf(ident.ep)
                .map(|c| c.hostname.clone())
                .unwrap_or_default()
        });
        let mut moved = None;
        let Some(a) = self.allocs.get_mut(&ip).filter(|a| a.ident == ident) else {
            return;
        };
        if a.hostname != host || a.mac != mac || a.last_used != wall {
            self.touched = true;
        }
        if a.mac != mac && a.lease.is_some() {
            moved = Some(a.mac);
        }
        a.hostname = host;
        a.mac = mac;
        a.last_used = wall;
        if let Some(old) = moved {
            self.changed(false, ident, old, ip);
        }
        self.set_lease(ip, Some(lease));
        self.changed(true, ident, mac, ip);
    }

    fn changed(&mut self, granted: bool, ident: Ident, mac: MacAddr, ip: Ip) {
        let Some(endpoint) = self.eps.key(ident.ep).cloned() else {
            return;
        };
        let ip = Ipv6Addr::from(ip);
        self.changes.push(if granted {
            LeaseChange::Granted { endpoint, mac, ip }
        } else {
            LeaseChange::Ended { endpoint, mac, ip }
        });
    }

    /// Writes the reply: the client's id echoed, ours, the answer, and the
    /// configuration options the client asks for (all when it sends no ORO).
    fn build(&self, req: &wire::Repr<'_>, a: &Answer, buf: &mut [u8]) -> Option<usize> {
        let mut r = wire::Repr::new(a.kind, req.transaction_id);
        r.client_id = req.client_id;
        r.server_id = Duid::from_bytes(&self.net.duid).ok();
        r.rapid_commit = a.rapid_commit;
        r.ias = a.ias.clone();
        r.status = a.status.map(|c| Status::new(c, status_text(c)));
        if a.status != Some(StatusCode::UseMulticast) {
            let asks = |o: u16| req.oro.is_none_or(|l| l.contains(o));
            if asks(wire::opt::DNS_SERVERS) {
                r.dns_servers = Addrs::from_bytes(&self.net.dns).ok();
            }
            if asks(wire::opt::DOMAIN_LIST) {
                r.domain_list = DomainList::from_bytes(&self.net.domains).ok();
            }
            if req.message_type == MessageType::InformationRequest {
                r.information_refresh_time = self.cfg.info_refresh_secs;
            }
        }
        let len = r.buffer_len();
        r.emit(&mut wire::Packet::new_unchecked(&mut *buf)).ok()?;
        Some(len)
    }

    /// The leases granted or ended since the last call, in order. The shell hands
    /// them on (anti-spoofing admits the address) before it sends the replies that
    /// granted them.
    pub fn take_changes(&mut self) -> Vec<LeaseChange> {
        std::mem::take(&mut self.changes)
    }

    /// When `poll` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Runs the timers due at `now`: ends leases and decline holds.
    pub fn poll(&mut self, now: Instant) {
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match t {
                Timer::Lease(ip) => {
                    let due = self
                        .allocs
                        .get(&ip)
                        .is_some_and(|a| a.lease.is_some_and(|l| l.expires == at));
                    if due {
                        self.set_lease(ip, None);
                    }
                }
                Timer::Bad(ip) => {
                    if self.bad.get(&ip) == Some(&at) {
                        self.bad.remove(&ip);
                    }
                }
            }
        }
    }

    // ----- persistence and status -----

    /// Whether the shell should write `snapshot()` now; the same rule as
    /// [`crate::dhcp::Server::take_dirty`]: at once after a change that must survive
    /// a restart, at most once per `TOUCH_FLUSH_SECS` for last-used times and host
    /// names only. Clears the flag.
    pub fn take_dirty(&mut self, wall: u64) -> bool {
        if self.dirty {
            self.dirty = false;
            self.touched = false;
            self.last_flush = Some(wall);
            return true;
        }
        if !self.touched {
            return false;
        }
        match self.last_flush {
            None => {
                self.last_flush = Some(wall);
                false
            }
            Some(t) if wall >= t.saturating_add(TOUCH_FLUSH_SECS) => {
                self.touched = false;
                self.last_flush = Some(wall);
                true
            }
            Some(_) => false,
        }
    }

    /// The lines of the allocations made since the last call, in the [`store`] format
    /// (no header), for the shell to append, synced, before the replies leave.
    pub fn take_journal(&mut self) -> Vec<u8> {
        let mut out = String::new();
        for ip in std::mem::take(&mut self.fresh) {
            self.encode_alloc(ip, &mut out);
        }
        out.into_bytes()
    }

    fn encode_alloc(&self, ip: Ip, out: &mut String) {
        let Some(a) = self.allocs.get(&ip).filter(|a| !a.is_static) else {
            return;
        };
        let Some(key) = self.eps.key(a.ident.ep) else {
            return;
        };
        store::encode_line(
            Ipv6Addr::from(ip),
            a.last_used,
            a.mac,
            key,
            a.ident.slot,
            &a.hostname,
            out,
        );
    }

    /// Whether anything (even only last-used times) is unsaved: write on shutdown.
    pub fn has_unsaved(&self) -> bool {
        self.dirty || self.touched
    }

    /// The allocation table in the [`store`] format, sorted by address.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut ips: Vec<Ip> = self
            .allocs
            .iter()
            .filter(|(_, a)| !a.is_static)
            .map(|(&ip, _)| ip)
            .collect();
        ips.sort_unstable();
        let mut out = String::with_capacity(32 + ips.len() * 120);
        out.push_str(store::HEADER);
        out.push('\n');
        for ip in ips {
            self.encode_alloc(ip, &mut out);
        }
        out.into_bytes()
    }

    /// Loads allocations from a snapshot (and journal lines after it; call once,
    /// right after `new`). Lines that do not parse, addresses that no longer fit,
    /// first slots of ECOs that now have a static address, and duplicates are
    /// dropped (the last line of an identity or address wins). An allocation used
    /// recently enough that its lease may still run is held as leased until it surely
    /// has ended. Returns how many allocations were restored.
    pub fn restore(&mut self, bytes: &[u8], now: Instant, wall: u64) -> usize {
        let (records, skipped) = store::decode(bytes);
        let (records, superseded) = store::last_wins(records);
        let mut dropped = skipped + superseded;
        let mut n = 0;
        for rec in records {
            let ip = u128::from(rec.ip);
            let ep = self.eps.intern(&rec.endpoint);
            let ident = Ident { ep, slot: rec.slot };
            let has_static = rec.slot == 0 && self.eco_static(ep).is_some();
            if rec.slot >= MAX_SLOTS
                || !self.available(ip)
                || self.by_ident.contains_key(&ident)
                || has_static
            {
                dropped += 1;
                continue;
            }
            let hold_until = rec
                .last_used
                .saturating_add(u64::from(self.cfg.valid_secs))
                .saturating_add(TOUCH_FLUSH_SECS);
            let lease = (hold_until > wall).then(|| Lease {
                expires: after(now, Duration::from_secs(hold_until - wall)),
                expires_wall: hold_until,
                provisional: true,
            });
            self.insert_alloc(
                ip,
                Alloc {
                    ident,
                    last_used: rec.last_used,
                    mac: rec.mac,
                    hostname: rec.hostname,
                    lease,
                    is_static: false,
                    idle_key: None,
                },
            );
            n += 1;
        }
        if dropped > 0 {
            self.dirty = true;
        }
        self.last_flush = Some(wall);
        n
    }

    /// Active leases (not the ones only presumed after a restart), in no order.
    pub fn leases(&self) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.lease_infos(false)
    }

    /// Every lease, including those only presumed after a restart: who may send
    /// from what, for anti-spoofing and DNS.
    pub fn held(&self) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.lease_infos(true)
    }

    fn lease_infos(&self, presumed: bool) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.allocs.iter().filter_map(move |(&ip, a)| {
            let l = a.lease.filter(|l| presumed || !l.provisional)?;
            Some(LeaseInfo {
                endpoint: self.eps.key(a.ident.ep)?,
                slot: a.ident.slot,
                mac: a.mac,
                ip: Ipv6Addr::from(ip),
                hostname: &a.hostname,
                expires: l.expires_wall,
            })
        })
    }

    /// The address of an ECO's first slot (static or allocated), leased or not: for
    /// DNS.
    pub fn eco_address(&self, key: &EndpointKey) -> Option<Ipv6Addr> {
        let ep = *self.eps.ids.get(key)?;
        if let Some(ip) = self.eco_static(ep) {
            return Some(Ipv6Addr::from(ip));
        }
        self.by_ident
            .get(&Ident { ep, slot: 0 })
            .map(|&ip| Ipv6Addr::from(ip))
    }

    /// How many allocations (static ones included) the server holds.
    pub fn allocations(&self) -> usize {
        self.allocs.len()
    }

    /// The server's DUID.
    pub fn duid(&self) -> &[u8] {
        &self.net.duid
    }
}

#[cfg(test)]
impl Server {
    /// Panics if the indexes disagree with each other.
    pub(crate) fn check_invariants(&self) {
        let mut timers = BTreeSet::new();
        for (&ip, a) in &self.allocs {
            assert_eq!(self.by_ident.get(&a.ident), Some(&ip), "by_ident of {ip:x}");
            if a.is_static {
                assert!(self.net.statics.contains_key(&ip));
            } else {
                assert!(self.net.poolable(ip), "dynamic {ip:x} outside the pool");
            }
            let want_idle = !a.is_static && a.lease.is_none();
            assert_eq!(a.idle_key.is_some(), want_idle, "idle state of {ip:x}");
            if let Some((t, l)) = a.idle_key {
                assert!(self.idle.contains(&(t, l, ip)));
                assert_eq!(t, self.tier(a.ident));
            }
            if let Some(l) = a.lease {
                timers.insert((l.expires, Timer::Lease(ip)));
            }
        }
        assert_eq!(self.by_ident.len(), self.allocs.len());
        assert_eq!(
            self.idle.len(),
            self.allocs
                .values()
                .filter(|a| a.idle_key.is_some())
                .count()
        );
        for (&ip, &until) in &self.bad {
            timers.insert((until, Timer::Bad(ip)));
        }
        assert_eq!(self.timers, timers, "timer set");
    }
}
