//! The server state machine.
//!
//! State, and why it is shaped so (every per-message step is a hash lookup or a
//! B-tree operation, never a walk over all leases):
//! - `allocs` (by IP) and `by_ident`: one allocation per identity, kept after its lease
//!   ends and after its app leaves the config. Static IPs are allocations too (never
//!   evicted, never persisted), so leases and status work the same for both.
//! - `idle`: allocations with no lease, ordered for reuse when the pool runs dry:
//!   first identities no longer in the config, then nested guests, then ECOs, each
//!   least recently used first. (Guests before ECOs is a refinement of the contract's
//!   "least recently used first": an ECO's address should stay its own as long as at
//!   all possible.)
//! - `resv`: addresses being probed or offered, not yet requested. An offer may take an
//!   idle allocation as its victim; the victim is only dropped when the new client
//!   commits, and wins the address back if its owner shows up first.
//! - the pool: a cursor over never-used addresses of the range plus a queue of freed
//!   ones (checked lazily on the way out).
//! - `timers`: lease ends, reservation deadlines and conflict holds, in one ordered set.
//!
//! Persistence: a new allocation, a reassignment, a DECLINE or a config change that
//! drops allocations set `dirty`. Renewals and releases only update the last-used time
//! and host name in memory (`touched`), which `take_dirty` reports at most once an
//! hour, to spare flash. After a restart, allocations whose last use is recent enough
//! that their lease may still run are held (not reused) until it surely has ended.

use super::store;
use super::{ClientKey, Config, EndpointKey, LeaseChange, LeaseInfo, Output, Reply, Rx};
use crate::addr::MacAddr;
use crate::wire::dhcp::{self as wire, Addrs, MessageType, Routes};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How often at most touched last-used times make `take_dirty` say "write".
pub const TOUCH_FLUSH_SECS: u64 = 3600;
/// How long an OFFER holds its address for the REQUEST.
pub const OFFER_HOLD: Duration = Duration::from_secs(30);
/// How long an address probed ahead for a new ECO ([`Server::prepare`]) waits for
/// the ECO's first DISCOVER (a container starts or a VM boots meanwhile).
pub const PREPARED_HOLD: Duration = Duration::from_secs(60);
/// Probes per DISCOVER before giving up (the client retries).
const MAX_PROBES: u8 = 4;
/// Bound on addresses being probed at once (memory held by stored DISCOVERs).
const MAX_PROBING: usize = 1024;
/// Timers never reach further than this (so `Instant` arithmetic cannot overflow).
const MAX_TIMER: Duration = Duration::from_secs(10 * 365 * 86400);

type Ip = u32;
type EpId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ident {
    Eco(EpId),
    Guest(EpId, ClientKey),
}

impl Ident {
    fn ep(&self) -> EpId {
        match self {
            Ident::Eco(e) | Ident::Guest(e, _) => *e,
        }
    }
    fn is_guest(&self) -> bool {
        matches!(self, Ident::Guest(..))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Lease(Ip),
    Resv(Ip),
    Bad(Ip),
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    expires: Instant,
    expires_wall: u64,
    /// Restored from the file: a lease that may still run; not shown, not counted.
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

#[derive(Debug)]
enum ResvState {
    /// Waiting for the probe window; the DISCOVER is kept to answer it afterwards.
    Probing {
        request: Box<[u8]>,
        src_mac: MacAddr,
        attempts: u8,
    },
    Offered,
    /// Probed ahead for an ECO that has not asked yet ([`Server::prepare`]): waiting
    /// for the probe window, with no DISCOVER to answer afterwards.
    Preparing {
        attempts: u8,
    },
    /// Probed ahead, the window passed unanswered: the ECO's first DISCOVER is
    /// offered this address at once.
    Prepared,
}

#[derive(Debug)]
struct Resv {
    ident: Ident,
    chaddr: MacAddr,
    deadline: Instant,
    state: ResvState,
}

/// What the server knows of an endpoint in the config.
#[derive(Debug, Clone)]
struct EpConf {
    mac: MacAddr,
    static_ip: Option<Ipv4Addr>,
    hostname: String,
}

/// Endpoint keys interned to small ids, so identities are cheap to hash and copy.
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
    network: Ip,
    broadcast: Ip,
    gateway: Ip,
    lo: Ip,
    hi: Ip,
    mask: [u8; 4],
    statics: HashMap<Ip, EpId>,
    router: Vec<u8>,
    dns: [u8; 4],
    ntp: Vec<u8>,
    domain: Vec<u8>,
    routes: Vec<u8>,
}

impl Net {
    fn new(cfg: &Config) -> Net {
        let s = cfg.subnet;
        let network = u32::from(s.addr());
        let broadcast = u32::from(s.broadcast());
        let lo = u32::from(cfg.range_start).max(network.saturating_add(1));
        let hi = u32::from(cfg.range_end).min(broadcast.saturating_sub(1));
        let mut ntp = Vec::new();
        for a in &cfg.ntp {
            ntp.extend_from_slice(&a.octets());
        }
        let mut routes = Vec::new();
        if !cfg.routes.is_empty() {
            let mut all = cfg.routes.clone();
            if let Some(r) = cfg.router {
                if !all.iter().any(|x| x.dest.len() == 0) {
                    all.push(super::Route {
                        dest: crate::addr::Ipv4Net::containing(Ipv4Addr::UNSPECIFIED, 0),
                        gateway: r,
                    });
                }
            }
            Routes::encode(&all, &mut routes);
        }
        Net {
            network,
            broadcast,
            gateway: u32::from(cfg.gateway),
            lo,
            hi,
            mask: s.mask().octets(),
            statics: HashMap::new(),
            router: cfg.router.map(|r| r.octets().to_vec()).unwrap_or_default(),
            dns: cfg.gateway.octets(),
            ntp,
            domain: cfg.domain.clone().unwrap_or_default().into_bytes(),
            routes,
        }
    }

    fn in_subnet(&self, ip: Ip) -> bool {
        ip >= self.network && ip <= self.broadcast
    }

    /// Whether a dynamic allocation may hold `ip` at all.
    fn poolable(&self, ip: Ip) -> bool {
        ip >= self.lo
            && ip <= self.hi
            && ip != self.gateway
            && ip != self.network
            && ip != self.broadcast
            && !self.statics.contains_key(&ip)
    }
}

/// Never-used addresses (a cursor) and freed ones (a queue, validated when taken).
#[derive(Debug, Default)]
struct Pool {
    cursor: u64,
    free: VecDeque<Ip>,
    queued: HashSet<Ip>,
}

impl Pool {
    fn push(&mut self, ip: Ip) {
        if self.queued.insert(ip) {
            self.free.push_back(ip);
        }
    }
}

/// The per-message facts a reply needs.
struct Ctx<'a> {
    req: &'a wire::Repr<'a>,
    src_mac: MacAddr,
}

/// A DHCPv4 server for one L3 network.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    net: Net,
    eps: Endpoints,
    allocs: HashMap<Ip, Alloc>,
    by_ident: HashMap<Ident, Ip>,
    idle: BTreeSet<(u8, u64, Ip)>,
    resv: HashMap<Ip, Resv>,
    resv_by_ident: HashMap<Ident, Ip>,
    probing: usize,
    bad: HashMap<Ip, Instant>,
    pool: Pool,
    timers: BTreeSet<(Instant, Timer)>,
    guests: HashMap<EpId, u32>,
    /// ECOs already probed ahead for (once each).
    prepared: HashSet<EpId>,
    dirty: bool,
    touched: bool,
    /// Allocations made since the shell last took the journal (see `take_journal`).
    fresh: Vec<Ip>,
    last_flush: Option<u64>,
    /// Leases granted or ended since the shell last took them.
    changes: Vec<LeaseChange>,
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TIMER)).unwrap_or(now)
}

/// Option 12 if it is a plausible host name (what status and DNS may show).
fn clean_hostname(h: Option<&[u8]>) -> Option<String> {
    let h = h?;
    let h = h.strip_suffix(&[0]).unwrap_or(h);
    if h.is_empty()
        || h.len() > 63
        || !h
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return None;
    }
    std::str::from_utf8(h).ok().map(str::to_owned)
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
            resv: HashMap::new(),
            resv_by_ident: HashMap::new(),
            probing: 0,
            bad: HashMap::new(),
            pool: Pool::default(),
            timers: BTreeSet::new(),
            guests: HashMap::new(),
            prepared: HashSet::new(),
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
    /// or collide with the gateway or a static IP (statics always win); an ECO given a
    /// static IP drops its dynamic allocation. Offers and probes in flight are dropped
    /// (clients retry).
    pub fn update_config(&mut self, cfg: Config) {
        let net = Net::new(&cfg);
        let range_changed = (net.lo, net.hi) != (self.net.lo, self.net.hi);
        let ips: Vec<Ip> = self.resv.keys().copied().collect();
        for ip in ips {
            self.remove_resv(ip);
        }
        for c in self.eps.conf.iter_mut() {
            *c = None;
        }
        self.net = net;
        for e in &cfg.endpoints {
            let id = self.eps.intern(&e.key);
            if let Some(c) = self.eps.conf.get_mut(id as usize) {
                *c = Some(EpConf {
                    mac: e.mac,
                    static_ip: e.static_ip,
                    hostname: e.hostname.clone(),
                });
            }
            if let Some(ip) = e.static_ip {
                let ip = u32::from(ip);
                if self.net.in_subnet(ip)
                    && ip != self.net.gateway
                    && ip != self.net.network
                    && ip != self.net.broadcast
                {
                    self.net.statics.entry(ip).or_insert(id);
                }
            }
        }
        self.cfg = cfg;
        // Drop what no longer fits.
        let mut drop = Vec::new();
        for (&ip, a) in &self.allocs {
            let ep = a.ident.ep();
            let keep = if a.is_static {
                matches!(&a.ident, Ident::Eco(e) if self.net.statics.get(&ip) == Some(e))
            } else {
                let eco_has_static =
                    matches!(&a.ident, Ident::Eco(e) if self.eco_static(*e).is_some());
                self.net.poolable(ip) && !eco_has_static
            };
            if !keep {
                drop.push((ip, a.is_static, ep));
            }
        }
        for (ip, is_static, _) in drop {
            self.remove_alloc(ip);
            if !is_static {
                self.dirty = true;
            }
        }
        // Statics: one allocation each, for leases and status.
        let statics: Vec<(Ip, EpId)> = self.net.statics.iter().map(|(&i, &e)| (i, e)).collect();
        for (ip, ep) in statics {
            if self.allocs.contains_key(&ip) {
                continue;
            }
            let hostname = self
                .eps
                .conf(ep)
                .map(|c| c.hostname.clone())
                .unwrap_or_default();
            let mac = self.eps.conf(ep).map(|c| c.mac).unwrap_or_default();
            self.insert_alloc(
                ip,
                Alloc {
                    ident: Ident::Eco(ep),
                    last_used: 0,
                    mac,
                    hostname,
                    lease: None,
                    is_static: true,
                    idle_key: None,
                },
            );
        }
        // Tiers depend on the config.
        let ips: Vec<Ip> = self.allocs.keys().copied().collect();
        for ip in ips {
            self.refresh_idle(ip);
        }
        if range_changed {
            self.pool = Pool {
                cursor: u64::from(self.net.lo),
                ..Pool::default()
            };
        }
    }

    // ----- invariant-keeping helpers -----

    fn tier(&self, ident: &Ident) -> u8 {
        if self.eps.conf(ident.ep()).is_none() {
            0
        } else if ident.is_guest() {
            1
        } else {
            2
        }
    }

    /// Puts an allocation in, or takes it out of, the reuse order, as its state says.
    fn refresh_idle(&mut self, ip: Ip) {
        let reserved = self.resv.contains_key(&ip);
        let Some(a) = self.allocs.get(&ip) else {
            return;
        };
        let want = if a.is_static || a.lease.is_some() || reserved {
            None
        } else {
            Some((self.tier(&a.ident), a.last_used))
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

    /// The static IP an ECO has, if the config gives it a usable one.
    fn eco_static(&self, ep: EpId) -> Option<Ip> {
        let ip = u32::from(self.eps.conf(ep)?.static_ip?);
        (self.net.statics.get(&ip) == Some(&ep)).then_some(ip)
    }

    fn guest_count(&mut self, ident: &Ident, up: bool) {
        if !ident.is_guest() {
            return;
        }
        let n = self.guests.entry(ident.ep()).or_insert(0);
        *n = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }

    fn guests_full(&self, ep: EpId) -> bool {
        let n = self.guests.get(&ep).copied().unwrap_or(0);
        n >= self.cfg.max_leases_per_endpoint
    }

    /// Sets (or ends) an allocation's lease. A lease that ends, however (release,
    /// decline, expiry, the address taken back), is reported, so its sender leaves
    /// the firewall's allowed set with it.
    fn set_lease(&mut self, ip: Ip, lease: Option<Lease>) {
        let Some(a) = self.allocs.get_mut(&ip) else {
            return;
        };
        let old = std::mem::replace(&mut a.lease, lease);
        if old.is_some() && lease.is_none() {
            let (ident, mac) = (a.ident.clone(), a.mac);
            self.changed(false, &ident, mac, ip);
        }
        let Some(a) = self.allocs.get_mut(&ip) else {
            return;
        };
        let counted = |l: &Option<Lease>| l.is_some_and(|l| !l.provisional);
        let (was, is) = (counted(&old), counted(&lease));
        if was != is && a.ident.is_guest() {
            let n = self.guests.entry(a.ident.ep()).or_insert(0);
            *n = if is {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
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
        self.by_ident.insert(a.ident.clone(), ip);
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
        if self.net.poolable(ip) {
            self.pool.push(ip);
        }
        Some(a)
    }

    fn insert_resv(&mut self, ip: Ip, r: Resv) {
        self.timers.insert((r.deadline, Timer::Resv(ip)));
        self.resv_by_ident.insert(r.ident.clone(), ip);
        self.guest_count(&r.ident, true);
        if matches!(r.state, ResvState::Probing { .. }) {
            self.probing += 1;
        }
        self.resv.insert(ip, r);
        self.refresh_idle(ip);
    }

    fn remove_resv(&mut self, ip: Ip) -> Option<Resv> {
        let r = self.resv.remove(&ip)?;
        self.timers.remove(&(r.deadline, Timer::Resv(ip)));
        if self.resv_by_ident.get(&r.ident) == Some(&ip) {
            self.resv_by_ident.remove(&r.ident);
        }
        self.guest_count(&r.ident, false);
        if matches!(r.state, ResvState::Probing { .. }) {
            self.probing = self.probing.saturating_sub(1);
        }
        if self.allocs.contains_key(&ip) {
            // A victim allocation goes back to the reuse order.
            self.refresh_idle(ip);
        } else if self.net.poolable(ip) {
            self.pool.push(ip);
        }
        Some(r)
    }

    fn mark_bad(&mut self, ip: Ip, now: Instant) {
        let until = after(now, self.cfg.conflict_hold);
        if let Some(old) = self.bad.insert(ip, until) {
            self.timers.remove(&(old, Timer::Bad(ip)));
        }
        self.timers.insert((until, Timer::Bad(ip)));
    }

    /// Whether `ip` can go to a new identity without taking anything from anyone.
    fn available(&self, ip: Ip) -> bool {
        self.net.poolable(ip)
            && !self.allocs.contains_key(&ip)
            && !self.resv.contains_key(&ip)
            && !self.bad.contains_key(&ip)
    }

    /// An address for a new identity: the one it asks for if free, a freed one, a
    /// never-used one, else the first idle allocation in reuse order (a victim).
    fn pick(&mut self, requested: Option<Ipv4Addr>) -> Option<Ip> {
        if let Some(r) = requested.map(u32::from) {
            if self.available(r) {
                return Some(r);
            }
        }
        while let Some(ip) = self.pool.free.pop_front() {
            self.pool.queued.remove(&ip);
            if self.available(ip) {
                return Some(ip);
            }
        }
        while self.pool.cursor <= u64::from(self.net.hi) {
            let ip = self.pool.cursor as Ip;
            self.pool.cursor += 1;
            if self.available(ip) {
                return Some(ip);
            }
        }
        self.idle
            .iter()
            .find(|&&(_, _, ip)| !self.bad.contains_key(&ip))
            .map(|&(_, _, ip)| ip)
    }

    /// A never-used or freed address, never an idle allocation of someone else.
    fn pick_free(&mut self) -> Option<Ip> {
        let ip = self.pick(None)?;
        self.available(ip).then_some(ip)
    }

    // ----- the protocol -----

    /// Probes ahead for an ECO (by DHCP, no static IP) that has no address yet, so
    /// its first DISCOVER is offered at once instead of after the probe window: the
    /// shell calls this when the ECO's endpoint is plumbed, and sends the probe.
    /// Conflict detection is the same as for a DISCOVER (the probe window, then ARP
    /// watched until the address is taken). At most once per endpoint; nothing
    /// without a probe window, or when only someone's idle allocation is left.
    pub fn prepare(&mut self, now: Instant, key: &EndpointKey) -> Option<Output> {
        if self.cfg.probe_window.is_zero() {
            return None;
        }
        let ep = *self.eps.ids.get(key)?;
        let conf = self.eps.conf(ep)?;
        if conf.static_ip.is_some() {
            return None;
        }
        let chaddr = conf.mac;
        let ident = Ident::Eco(ep);
        if self.by_ident.contains_key(&ident)
            || self.resv_by_ident.contains_key(&ident)
            || self.prepared.contains(&ep)
        {
            return None;
        }
        let ip = self.pick_free()?;
        self.prepared.insert(ep);
        self.insert_resv(
            ip,
            Resv {
                ident,
                chaddr,
                deadline: after(now, self.cfg.probe_window),
                state: ResvState::Preparing { attempts: 1 },
            },
        );
        Some(Output::Probe(Ipv4Addr::from(ip)))
    }

    /// Handles one DHCP message from a client. `buf` receives the reply's UDP payload
    /// (1472 bytes always suffice for a 1500-byte MTU; see [`frame`](super::frame)).
    pub fn handle(
        &mut self,
        now: Instant,
        wall: u64,
        rx: Rx<'_>,
        buf: &mut [u8],
    ) -> Option<Output> {
        let ep = *self.eps.ids.get(rx.endpoint?)?;
        let eco_mac = self.eps.conf(ep)?.mac;
        if rx.src_mac.is_multicast() || rx.src_mac.is_zero() {
            return None;
        }
        let pkt = wire::Packet::new_checked(rx.payload).ok()?;
        let req = wire::Repr::parse(&pkt).ok()?;
        // Relayed messages do not belong on an ECO bridge port.
        if !req.relay_agent_ip.is_unspecified() {
            return None;
        }
        let ident = if rx.src_mac == eco_mac {
            Ident::Eco(ep)
        } else {
            Ident::Guest(
                ep,
                match req.client_id {
                    Some(id) => ClientKey::Id(id.into()),
                    None => ClientKey::Mac(req.client_hardware_addr),
                },
            )
        };
        let ctx = Ctx {
            req: &req,
            src_mac: rx.src_mac,
        };
        match req.message_type {
            MessageType::Discover => self.discover(now, wall, ident, &ctx, rx.payload, buf),
            MessageType::Request => self.request(now, wall, ident, &ctx, buf),
            MessageType::Release => {
                self.release(wall, &ident, &ctx);
                None
            }
            MessageType::Decline => {
                self.decline(now, &ident, &ctx);
                None
            }
            MessageType::Inform => self.inform(&ctx, buf),
            _ => None,
        }
    }

    fn discover(
        &mut self,
        now: Instant,
        wall: u64,
        ident: Ident,
        ctx: &Ctx<'_>,
        raw: &[u8],
        buf: &mut [u8],
    ) -> Option<Output> {
        let ep = ident.ep();
        // Its own address, at once.
        if let Some(&ip) = self.by_ident.get(&ident) {
            let active = self
                .allocs
                .get(&ip)
                .is_some_and(|a| a.lease.is_some_and(|l| !l.provisional));
            if ident.is_guest() && !active && self.guests_full(ep) {
                return None;
            }
            if let Some(r) = self.resv.get(&ip) {
                if r.ident != ident {
                    // Its owner is back before the victim's new client committed.
                    self.remove_resv(ip);
                }
            }
            return self.offer_or_commit(now, wall, &ident, ip, ctx, buf);
        }
        if let Some(&ip) = self.resv_by_ident.get(&ident) {
            match self.resv.get_mut(&ip).map(|r| &mut r.state) {
                Some(ResvState::Offered) => {}
                Some(ResvState::Prepared) => {
                    // Probed ahead: offer it now, unless the client asks for
                    // another address it may have (then as if never prepared).
                    let other = ctx
                        .req
                        .requested_ip
                        .map(u32::from)
                        .is_some_and(|r| r != ip && self.available(r));
                    if other {
                        self.remove_resv(ip);
                        return self.discover(now, wall, ident, ctx, raw, buf);
                    }
                    if let Some(r) = self.resv.get_mut(&ip) {
                        r.state = ResvState::Offered;
                    }
                }
                Some(state @ ResvState::Preparing { .. }) => {
                    // Asked while the probe ahead runs: the offer follows its window.
                    let attempts = match state {
                        ResvState::Preparing { attempts } => *attempts,
                        _ => 1,
                    };
                    *state = ResvState::Probing {
                        request: raw.into(),
                        src_mac: ctx.src_mac,
                        attempts,
                    };
                    self.probing += 1;
                    return None;
                }
                _ => return None, // still probing: the offer follows the window
            }
            if ctx.req.rapid_commit {
                return self
                    .commit(now, wall, &ident, ip, ctx, buf)
                    .map(Output::Reply);
            }
            self.extend_resv(ip, after(now, OFFER_HOLD));
            return self
                .reply(
                    ctx,
                    MessageType::Offer,
                    Ipv4Addr::from(ip),
                    true,
                    false,
                    buf,
                )
                .map(Output::Reply);
        }
        if ident.is_guest() && self.guests_full(ep) {
            log::debug!("dhcp: endpoint {ep} at its guest limit, no offer");
            return None;
        }
        if self.probing >= MAX_PROBING && !self.cfg.probe_window.is_zero() {
            return None;
        }
        let Some(ip) = self.pick(ctx.req.requested_ip) else {
            log::info!("dhcp: pool of {} exhausted, no offer", self.cfg.subnet);
            return None;
        };
        let chaddr = ctx.req.client_hardware_addr;
        if self.cfg.probe_window.is_zero() {
            self.insert_resv(
                ip,
                Resv {
                    ident: ident.clone(),
                    chaddr,
                    deadline: after(now, OFFER_HOLD),
                    state: ResvState::Offered,
                },
            );
            return self.offer_or_commit(now, wall, &ident, ip, ctx, buf);
        }
        self.insert_resv(
            ip,
            Resv {
                ident,
                chaddr,
                deadline: after(now, self.cfg.probe_window),
                state: ResvState::Probing {
                    request: raw.into(),
                    src_mac: ctx.src_mac,
                    attempts: 1,
                },
            },
        );
        Some(Output::Probe(Ipv4Addr::from(ip)))
    }

    fn extend_resv(&mut self, ip: Ip, deadline: Instant) {
        if let Some(r) = self.resv.get_mut(&ip) {
            self.timers.remove(&(r.deadline, Timer::Resv(ip)));
            r.deadline = deadline;
            self.timers.insert((deadline, Timer::Resv(ip)));
        }
    }

    /// OFFER, or with rapid commit (RFC 4039) the ACK straight away.
    fn offer_or_commit(
        &mut self,
        now: Instant,
        wall: u64,
        ident: &Ident,
        ip: Ip,
        ctx: &Ctx<'_>,
        buf: &mut [u8],
    ) -> Option<Output> {
        if ctx.req.rapid_commit {
            return self
                .commit(now, wall, ident, ip, ctx, buf)
                .map(Output::Reply);
        }
        self.reply(
            ctx,
            MessageType::Offer,
            Ipv4Addr::from(ip),
            true,
            false,
            buf,
        )
        .map(Output::Reply)
    }

    fn request(
        &mut self,
        now: Instant,
        wall: u64,
        ident: Ident,
        ctx: &Ctx<'_>,
        buf: &mut [u8],
    ) -> Option<Output> {
        let req = ctx.req;
        let gw = Ipv4Addr::from(self.net.gateway);
        let known = self.by_ident.get(&ident).copied();
        let nak = |s: &Self, buf: &mut [u8]| {
            s.reply(
                ctx,
                MessageType::Nak,
                Ipv4Addr::UNSPECIFIED,
                false,
                false,
                buf,
            )
            .map(Output::Reply)
        };
        if let Some(sid) = req.server_id {
            // SELECTING.
            if sid != gw {
                if let Some(ip) = self.resv_by_ident.get(&ident).copied() {
                    self.remove_resv(ip);
                }
                return None;
            }
            let want = req
                .requested_ip
                .or(Some(req.client_ip).filter(|c| !c.is_unspecified()))?;
            let w = u32::from(want);
            if let Some(ip) = known {
                if ip != w {
                    return nak(self, buf);
                }
                return self.renew(now, wall, &ident, ip, ctx, buf);
            }
            match self.resv_by_ident.get(&ident).copied() {
                Some(ip) if ip == w => {
                    if matches!(self.resv.get(&ip), Some(r) if matches!(r.state, ResvState::Probing { .. } | ResvState::Preparing { .. }))
                    {
                        return None;
                    }
                    return self
                        .commit(now, wall, &ident, ip, ctx, buf)
                        .map(Output::Reply);
                }
                Some(ip) => {
                    self.remove_resv(ip);
                }
                None => {}
            }
            // Not offered by this run (say we restarted): give it if it is free.
            if self.available(w) && !(ident.is_guest() && self.guests_full(ident.ep())) {
                return self
                    .commit(now, wall, &ident, w, ctx, buf)
                    .map(Output::Reply);
            }
            return nak(self, buf);
        }
        if let Some(want) = req.requested_ip {
            // INIT-REBOOT (RFC 2131 §4.3.2): NAK a wrong address, stay silent when we
            // have no record of the client.
            if !req.client_ip.is_unspecified() {
                return None;
            }
            let w = u32::from(want);
            if !self.net.in_subnet(w) {
                return nak(self, buf);
            }
            return match known {
                Some(ip) if ip == w => self.renew(now, wall, &ident, ip, ctx, buf),
                Some(_) => nak(self, buf),
                None => None,
            };
        }
        if !req.client_ip.is_unspecified() {
            // RENEWING or REBINDING.
            let c = u32::from(req.client_ip);
            return match known {
                Some(ip) if ip == c => self.renew(now, wall, &ident, ip, ctx, buf),
                Some(_) => nak(self, buf),
                None => {
                    // No record (a lost lease file): adopt the address if it is free.
                    if self.available(c) && !(ident.is_guest() && self.guests_full(ident.ep())) {
                        self.commit(now, wall, &ident, c, ctx, buf)
                            .map(Output::Reply)
                    } else {
                        nak(self, buf)
                    }
                }
            };
        }
        None
    }

    /// ACK for the identity's own address; a guest whose lease has ended needs room.
    fn renew(
        &mut self,
        now: Instant,
        wall: u64,
        ident: &Ident,
        ip: Ip,
        ctx: &Ctx<'_>,
        buf: &mut [u8],
    ) -> Option<Output> {
        let active = self
            .allocs
            .get(&ip)
            .is_some_and(|a| a.lease.is_some_and(|l| !l.provisional));
        if ident.is_guest() && !active && self.guests_full(ident.ep()) {
            return self
                .reply(
                    ctx,
                    MessageType::Nak,
                    Ipv4Addr::UNSPECIFIED,
                    false,
                    false,
                    buf,
                )
                .map(Output::Reply);
        }
        self.commit(now, wall, ident, ip, ctx, buf)
            .map(Output::Reply)
    }

    /// Gives `ip` to `ident` with a fresh lease and ACKs. Creates or moves the
    /// allocation as needed (dirty); a renewal only touches times.
    fn commit(
        &mut self,
        now: Instant,
        wall: u64,
        ident: &Ident,
        ip: Ip,
        ctx: &Ctx<'_>,
        buf: &mut [u8],
    ) -> Option<Reply> {
        // Build the reply first: if it cannot be sent, nothing changes.
        let reply = self.reply(
            ctx,
            MessageType::Ack,
            Ipv4Addr::from(ip),
            true,
            ctx.req.rapid_commit,
            buf,
        )?;
        // Its own offer ends (and any other it was still probing); so does another
        // client's offer of the victim allocation this identity owns (the owner wins).
        self.remove_resv(ip);
        if let Some(other) = self.resv_by_ident.get(ident).copied() {
            self.remove_resv(other);
        }
        let secs = u64::from(self.cfg.lease_secs);
        let lease = Lease {
            expires: after(now, Duration::from_secs(secs)),
            expires_wall: wall.saturating_add(secs),
            provisional: false,
        };
        let host = clean_hostname(ctx.req.host_name).unwrap_or_else(|| match ident {
            Ident::Eco(e) => self
                .eps
                .conf(*e)
                .map(|c| c.hostname.clone())
                .unwrap_or_default(),
            Ident::Guest(..) => String::new(),
        });
        // The sender's MAC, which the firewall admits with the address: not chaddr,
        // which a client may set to anything (an ECO's REQUEST naming another MAC
        // must not move the ECO's own entry away from it).
        let mac = ctx.src_mac;
        let owned = self.allocs.get(&ip).is_some_and(|a| &a.ident == ident);
        if owned {
            let mut moved = None;
            if let Some(a) = self.allocs.get_mut(&ip) {
                if a.hostname != host || a.mac != mac || a.last_used != wall {
                    self.touched = true;
                }
                if a.mac != mac && a.lease.is_some() {
                    moved = Some(a.mac);
                }
                a.hostname = host;
                a.mac = mac;
                a.last_used = wall;
            }
            // A guest whose MAC changed: its old entry leaves.
            if let Some(old) = moved {
                self.changed(false, ident, old, ip);
            }
        } else {
            // A victim, or this identity's old address elsewhere, goes.
            if self.allocs.contains_key(&ip) {
                self.remove_alloc(ip);
            }
            if let Some(old) = self.by_ident.get(ident).copied() {
                self.remove_alloc(old);
            }
            self.insert_alloc(
                ip,
                Alloc {
                    ident: ident.clone(),
                    last_used: wall,
                    mac,
                    hostname: host,
                    lease: None,
                    is_static: false,
                    idle_key: None,
                },
            );
            self.dirty = true;
            self.fresh.push(ip);
        }
        self.set_lease(ip, Some(lease));
        self.changed(true, ident, mac, ip);
        Some(reply)
    }

    fn release(&mut self, wall: u64, ident: &Ident, ctx: &Ctx<'_>) {
        let req = ctx.req;
        if req
            .server_id
            .is_some_and(|s| u32::from(s) != self.net.gateway)
        {
            return;
        }
        let c = u32::from(req.client_ip);
        if self.by_ident.get(ident) != Some(&c) {
            return;
        }
        if let Some(a) = self.allocs.get_mut(&c) {
            a.last_used = wall;
            self.touched = true;
        }
        self.set_lease(c, None);
    }

    /// Records a lease granted or ended for the shell ([`Server::take_changes`]).
    fn changed(&mut self, granted: bool, ident: &Ident, mac: MacAddr, ip: Ip) {
        let Some(endpoint) = self.eps.key(ident.ep()).cloned() else {
            return;
        };
        let ip = Ipv4Addr::from(ip);
        self.changes.push(if granted {
            LeaseChange::Granted { endpoint, mac, ip }
        } else {
            LeaseChange::Ended { endpoint, mac, ip }
        });
    }

    fn decline(&mut self, now: Instant, ident: &Ident, ctx: &Ctx<'_>) {
        let req = ctx.req;
        if req
            .server_id
            .is_some_and(|s| u32::from(s) != self.net.gateway)
        {
            return;
        }
        let Some(ip) = req.requested_ip.map(u32::from) else {
            return;
        };
        if self.by_ident.get(ident) == Some(&ip) {
            if self.allocs.get(&ip).is_some_and(|a| a.is_static) {
                log::warn!(
                    "dhcp: static address {} declined: in use by another host",
                    Ipv4Addr::from(ip)
                );
                return;
            }
            self.remove_alloc(ip);
            self.dirty = true;
        } else if self.resv_by_ident.get(ident) == Some(&ip) {
            self.remove_resv(ip);
        } else {
            return;
        }
        log::info!(
            "dhcp: {} declined, held for {:?}",
            Ipv4Addr::from(ip),
            self.cfg.conflict_hold
        );
        self.mark_bad(ip, now);
    }

    fn inform(&mut self, ctx: &Ctx<'_>, buf: &mut [u8]) -> Option<Output> {
        if !self.net.in_subnet(u32::from(ctx.req.client_ip)) {
            return None;
        }
        self.reply(
            ctx,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            false,
            false,
            buf,
        )
        .map(Output::Reply)
    }

    /// Builds a reply into `buf`. `lease`: include lease times (not for INFORM or NAK).
    fn reply(
        &self,
        ctx: &Ctx<'_>,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        lease: bool,
        rapid: bool,
        buf: &mut [u8],
    ) -> Option<Reply> {
        let req = ctx.req;
        let mut r = wire::Repr::new(kind, req.transaction_id, req.client_hardware_addr);
        r.broadcast = req.broadcast;
        r.your_ip = yiaddr;
        r.server_id = Some(Ipv4Addr::from(self.net.gateway));
        // RFC 6842: echo the client identifier.
        r.client_id = req.client_id;
        if kind == MessageType::Nak {
            r.message = Some(b"address not available");
        } else {
            if kind == MessageType::Ack {
                r.client_ip = req.client_ip; // RFC 2131 table 3
            }
            if lease {
                let l = self.cfg.lease_secs;
                r.lease_time = Some(l);
                if l != u32::MAX {
                    r.renewal_time = Some(l / 2);
                    r.rebinding_time = Some((u64::from(l) * 7 / 8) as u32);
                }
            }
            r.rapid_commit = rapid;
            r.subnet_mask = Some(Ipv4Addr::from(self.net.mask));
            r.router = Addrs::from_bytes(&self.net.router).ok();
            r.dns_servers = Addrs::from_bytes(&self.net.dns).ok();
            // Beyond the basics, what the client asks for (all if it sends no list).
            let asks = |o: u8| req.parameter_request_list.is_none_or(|l| l.contains(&o));
            if asks(wire::opt::DOMAIN_NAME) && !self.net.domain.is_empty() {
                r.domain_name = Some(&self.net.domain);
            }
            if asks(wire::opt::INTERFACE_MTU) {
                r.interface_mtu = self.cfg.mtu;
            }
            if asks(wire::opt::NTP_SERVERS) {
                r.ntp_servers = Addrs::from_bytes(&self.net.ntp).ok();
            }
            if asks(wire::opt::CLASSLESS_STATIC_ROUTES) {
                r.classless_routes = Routes::from_bytes(&self.net.routes).ok();
            }
        }
        // Stay within what the client accepts (never less than 576 bytes of IP).
        let limit = usize::from(
            req.max_message_size
                .unwrap_or(wire::MIN_MAX_MESSAGE_SIZE)
                .max(wire::MIN_MAX_MESSAGE_SIZE),
        ) - 28;
        for shed in 0..3 {
            if r.buffer_len() <= limit {
                break;
            }
            match shed {
                0 => r.classless_routes = None,
                1 => r.ntp_servers = None,
                _ => r.domain_name = None,
            }
        }
        let len = r.buffer_len();
        if len > limit {
            return None;
        }
        r.emit(&mut wire::Packet::new_unchecked(&mut *buf)).ok()?;
        // RFC 2131 §4.1, giaddr being zero: NAKs are broadcast; to a client with an
        // address, unicast there; broadcast if asked; else unicast to yiaddr/chaddr.
        let (dst_mac, dst_ip) = if kind == MessageType::Nak {
            (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
        } else if !req.client_ip.is_unspecified() {
            (ctx.src_mac, req.client_ip)
        } else if req.broadcast {
            (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
        } else {
            (req.client_hardware_addr, yiaddr)
        };
        Some(Reply {
            dst_mac,
            dst_ip,
            payload_len: len,
        })
    }

    /// An ARP packet seen on the bridge (its sender's MAC and IP). A host other than
    /// the client claiming an address being probed or offered makes the server hold
    /// that address and, while probing, pick another: then a new `Output::Probe`. A
    /// claim on a free pool address holds it too, so it is not handed out.
    pub fn handle_arp(
        &mut self,
        now: Instant,
        sender_mac: MacAddr,
        sender_ip: Ipv4Addr,
    ) -> Option<Output> {
        let ip = u32::from(sender_ip);
        if sender_ip.is_unspecified() || !self.net.poolable(ip) {
            return None;
        }
        if let Some(r) = self.resv.get(&ip) {
            if r.chaddr == sender_mac {
                return None;
            }
            log::info!(
                "dhcp: {} is in use by {sender_mac}, not offering it",
                sender_ip
            );
            self.mark_bad(ip, now);
            let r = self.remove_resv(ip)?;
            if let ResvState::Probing {
                request,
                src_mac,
                attempts,
            } = r.state
            {
                if attempts >= MAX_PROBES {
                    return None;
                }
                let ident = r.ident;
                if ident.is_guest() && self.guests_full(ident.ep()) {
                    return None;
                }
                let next = self.pick(None)?;
                self.insert_resv(
                    next,
                    Resv {
                        ident,
                        chaddr: r.chaddr,
                        deadline: after(now, self.cfg.probe_window),
                        state: ResvState::Probing {
                            request,
                            src_mac,
                            attempts: attempts + 1,
                        },
                    },
                );
                return Some(Output::Probe(Ipv4Addr::from(next)));
            }
            if let ResvState::Preparing { attempts } = r.state {
                // Probing ahead: try another free address, as for a DISCOVER.
                if attempts >= MAX_PROBES {
                    return None;
                }
                let next = self.pick_free()?;
                self.insert_resv(
                    next,
                    Resv {
                        ident: r.ident,
                        chaddr: r.chaddr,
                        deadline: after(now, self.cfg.probe_window),
                        state: ResvState::Preparing {
                            attempts: attempts + 1,
                        },
                    },
                );
                return Some(Output::Probe(Ipv4Addr::from(next)));
            }
            return None;
        }
        if !self.allocs.contains_key(&ip) {
            self.mark_bad(ip, now);
        }
        None
    }

    /// The leases granted or ended since the last call, in order. The shell hands
    /// them on (the firewall admits a client) before it sends the replies that
    /// granted them.
    pub fn take_changes(&mut self) -> Vec<LeaseChange> {
        std::mem::take(&mut self.changes)
    }

    /// When `poll` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Runs the timers due at `now`: ends leases, offers and holds, and sends the OFFER
    /// (or rapid-commit ACK) of an address whose probe went unanswered. Call it until it
    /// returns `None`.
    pub fn poll(&mut self, now: Instant, wall: u64, buf: &mut [u8]) -> Option<Output> {
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match t {
                Timer::Lease(ip) => {
                    if let Some(a) = self.allocs.get_mut(&ip) {
                        if a.lease.is_some_and(|l| l.expires == at) {
                            self.set_lease(ip, None);
                        }
                    }
                }
                Timer::Bad(ip) => {
                    if self.bad.get(&ip) == Some(&at) {
                        self.bad.remove(&ip);
                        if self.net.poolable(ip) {
                            self.pool.push(ip);
                        }
                    }
                }
                Timer::Resv(ip) => {
                    if self.resv.get(&ip).is_none_or(|r| r.deadline != at) {
                        continue;
                    }
                    if let Some(r) = self.resv.get_mut(&ip) {
                        if matches!(r.state, ResvState::Preparing { .. }) {
                            // Probed ahead, unanswered: kept for the ECO's DISCOVER.
                            r.state = ResvState::Prepared;
                            r.deadline = after(now, PREPARED_HOLD);
                            self.timers.insert((r.deadline, Timer::Resv(ip)));
                            continue;
                        }
                    }
                    let Some(r) = self.remove_resv(ip) else {
                        continue;
                    };
                    if let ResvState::Probing {
                        request, src_mac, ..
                    } = r.state
                    {
                        if let Some(out) = self
                            .after_probe(now, wall, ip, r.ident, r.chaddr, &request, src_mac, buf)
                        {
                            return Some(out);
                        }
                    }
                }
            }
        }
        None
    }

    /// The probe for `ip` went unanswered: offer it (or commit, with rapid commit).
    #[allow(clippy::too_many_arguments)]
    fn after_probe(
        &mut self,
        now: Instant,
        wall: u64,
        ip: Ip,
        ident: Ident,
        chaddr: MacAddr,
        request: &[u8],
        src_mac: MacAddr,
        buf: &mut [u8],
    ) -> Option<Output> {
        let pkt = wire::Packet::new_checked(request).ok()?;
        let req = wire::Repr::parse(&pkt).ok()?;
        let ctx = Ctx { req: &req, src_mac };
        // The address may have gone meanwhile (config change, a claim).
        let victim_ok = self.allocs.get(&ip).is_some_and(|a| a.idle_key.is_some());
        if !(self.available(ip) || victim_ok) {
            return None;
        }
        self.insert_resv(
            ip,
            Resv {
                ident: ident.clone(),
                chaddr,
                deadline: after(now, OFFER_HOLD),
                state: ResvState::Offered,
            },
        );
        self.offer_or_commit(now, wall, &ident, ip, &ctx, buf)
    }

    // ----- persistence and status -----

    /// Whether the shell should write `snapshot()` now: after a change that must
    /// survive a restart (a new or moved allocation, a DECLINE, a config change that
    /// dropped allocations), or, at most once per `TOUCH_FLUSH_SECS`, when only
    /// last-used times and host names changed. Clears the flag. Snapshots are O(n):
    /// under a burst of new clients, write at most every second or so.
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
                // Start the clock: the first touch after start waits its turn too.
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
    /// (no header): the shell appends them to the lease file, synced, before the
    /// ACKs that granted them leave (group commit: one sync per batch). A later
    /// snapshot supersedes them; `restore` lets the last line of an identity win.
    pub fn take_journal(&mut self) -> Vec<u8> {
        let mut out = String::new();
        for ip in std::mem::take(&mut self.fresh) {
            self.encode_alloc(ip, &mut out);
        }
        out.into_bytes()
    }

    /// Appends the [`store`] line of the (non-static) allocation at `ip`, if any.
    fn encode_alloc(&self, ip: Ip, out: &mut String) {
        let Some(a) = self.allocs.get(&ip).filter(|a| !a.is_static) else {
            return;
        };
        let (ep, client) = match &a.ident {
            Ident::Eco(e) => (*e, None),
            Ident::Guest(e, c) => (*e, Some(c)),
        };
        let Some(key) = self.eps.key(ep) else {
            return;
        };
        store::encode_line(
            Ipv4Addr::from(ip),
            a.last_used,
            a.mac,
            key,
            client,
            &a.hostname,
            out,
        );
    }

    /// Whether anything (even only last-used times) is unsaved: write on shutdown.
    pub fn has_unsaved(&self) -> bool {
        self.dirty || self.touched
    }

    /// The allocation table in the [`store`] format, sorted by address. Written
    /// straight from the table (no copy of the records), about 100 bytes a line.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut ips: Vec<Ip> = self
            .allocs
            .iter()
            .filter(|(_, a)| !a.is_static)
            .map(|(&ip, _)| ip)
            .collect();
        ips.sort_unstable();
        let mut out = String::with_capacity(32 + ips.len() * 112);
        out.push_str(store::HEADER);
        out.push('\n');
        for ip in ips {
            self.encode_alloc(ip, &mut out);
        }
        out.into_bytes()
    }

    /// Loads allocations from a snapshot (call once, right after `new`). Lines that do
    /// not parse, addresses outside the range or taken by the gateway or a static IP,
    /// ECOs that now have a static IP, and duplicates are dropped: a later line of an
    /// identity or an address wins (journal lines follow the snapshot they update).
    /// An allocation used recently enough that its lease may still run is held from
    /// reuse until it surely has ended. Returns how many allocations were restored.
    pub fn restore(&mut self, bytes: &[u8], now: Instant, wall: u64) -> usize {
        let (records, skipped) = store::decode(bytes);
        let (records, superseded) = store::last_wins(records);
        let skipped = skipped + superseded;
        let mut n = 0;
        let mut dropped = skipped;
        for rec in records {
            let ip = u32::from(rec.ip);
            let ep = self.eps.intern(&rec.endpoint);
            let ident = match rec.client {
                None => Ident::Eco(ep),
                Some(c) => Ident::Guest(ep, c),
            };
            let eco_static = matches!(ident, Ident::Eco(e) if self.eco_static(e).is_some());
            if !self.available(ip) || self.by_ident.contains_key(&ident) || eco_static {
                dropped += 1;
                continue;
            }
            let hold_until = rec
                .last_used
                .saturating_add(u64::from(self.cfg.lease_secs))
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

    /// Every lease, including those only presumed after a restart (a client may still
    /// be using the address): who may send from what, for anti-spoofing and DNS.
    pub fn held(&self) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.lease_infos(true)
    }

    fn lease_infos(&self, presumed: bool) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.allocs.iter().filter_map(move |(&ip, a)| {
            let l = a.lease.filter(|l| presumed || !l.provisional)?;
            let (ep, client) = match &a.ident {
                Ident::Eco(e) => (*e, None),
                Ident::Guest(e, c) => (*e, Some(c)),
            };
            Some(LeaseInfo {
                endpoint: self.eps.key(ep)?,
                client,
                mac: a.mac,
                ip: Ipv4Addr::from(ip),
                hostname: &a.hostname,
                expires: l.expires_wall,
            })
        })
    }

    /// The address an ECO has (static or allocated), leased or not: for DNS.
    pub fn eco_address(&self, key: &EndpointKey) -> Option<Ipv4Addr> {
        let ep = *self.eps.ids.get(key)?;
        self.by_ident
            .get(&Ident::Eco(ep))
            .map(|&ip| Ipv4Addr::from(ip))
    }

    /// How many allocations (static ones included) the server holds.
    pub fn allocations(&self) -> usize {
        self.allocs.len()
    }
}

#[cfg(test)]
impl Server {
    /// Panics if the indexes disagree with each other: for tests that drive the server
    /// through long random sequences.
    pub(crate) fn check_invariants(&self) {
        let mut guests: HashMap<EpId, u32> = HashMap::new();
        let mut timers = BTreeSet::new();
        for (&ip, a) in &self.allocs {
            assert_eq!(self.by_ident.get(&a.ident), Some(&ip), "by_ident of {ip}");
            if a.is_static {
                assert!(self.net.statics.contains_key(&ip));
            } else {
                assert!(self.net.poolable(ip), "dynamic {ip} outside the pool");
            }
            let want_idle = !a.is_static && a.lease.is_none() && !self.resv.contains_key(&ip);
            assert_eq!(a.idle_key.is_some(), want_idle, "idle state of {ip}");
            if let Some((t, l)) = a.idle_key {
                assert!(self.idle.contains(&(t, l, ip)));
                assert_eq!(t, self.tier(&a.ident));
            }
            if let Some(l) = a.lease {
                timers.insert((l.expires, Timer::Lease(ip)));
                if !l.provisional && a.ident.is_guest() {
                    *guests.entry(a.ident.ep()).or_default() += 1;
                }
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
        let mut probing = 0;
        for (&ip, r) in &self.resv {
            assert_eq!(self.resv_by_ident.get(&r.ident), Some(&ip));
            assert!(self.net.poolable(ip));
            if let Some(a) = self.allocs.get(&ip) {
                assert_ne!(a.ident, r.ident, "a reservation of one's own allocation");
            }
            timers.insert((r.deadline, Timer::Resv(ip)));
            if r.ident.is_guest() {
                *guests.entry(r.ident.ep()).or_default() += 1;
            }
            if matches!(r.state, ResvState::Probing { .. }) {
                probing += 1;
            }
        }
        assert_eq!(self.resv_by_ident.len(), self.resv.len());
        assert_eq!(self.probing, probing);
        for (&ip, &until) in &self.bad {
            timers.insert((until, Timer::Bad(ip)));
        }
        assert_eq!(self.timers, timers, "timer set");
        for (ep, n) in &self.guests {
            assert_eq!(
                guests.get(ep).copied().unwrap_or(0),
                *n,
                "guest count of {ep}"
            );
        }
        for (ep, n) in &guests {
            assert_eq!(self.guests.get(ep), Some(n));
        }
    }
}
