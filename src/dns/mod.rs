//! The DNS service of every L3 network, as one sans-I/O core.
//!
//! [`Dns`] answers ECO names from each network's local zone, serves a shared bounded
//! cache, and forwards everything else to the network's upstream resolvers. It owns
//! no sockets and reads no clock: the shell hands it messages and the time, and it
//! says what to send ([`Action`]), with the bytes in a caller-provided buffer.
//!
//! Local names carry IPv4 and IPv6 addresses: A and AAAA answers, PTR under
//! in-addr.arpa and ip6.arpa (nibble format, RFC 3596). A name with addresses of
//! only one family answers the other type with no data (NODATA).
//!
//! Driving it (the shell's part):
//! - Per L3 network: a UDP socket and a TCP listener on the gateway address, port 53,
//!   and on `gateway6` too for a network with IPv6 (replies to an IPv6 client leave
//!   from there).
//!   Each UDP datagram → [`Dns::handle_query`] with [`Transport::Udp`]; each TCP message
//!   (the shell strips and adds the two-byte length prefix) → the same with
//!   [`Transport::Tcp`].
//! - [`Action::Reply`]: send `out[..len]` to `to`: over UDP from the address the
//!   network's queries arrive on, or on that client's TCP connection.
//! - [`Action::Forward`]: send `out[..len]` to `upstream`, from the network's gateway
//!   address (so a resolver behind a VPN is reached through it); over UDP from a
//!   socket with a random source port (an IPv6 one for an IPv6 upstream), or over a
//!   fresh TCP connection. Whatever comes
//!   back from that upstream → [`Dns::handle_upstream`], with the transport it came on.
//!   A TCP connection that fails needs no report: the retry timer moves on.
//! - Timers: sleep at most until [`Dns::poll_timeout`], then call [`Dns::poll`] until
//!   it returns `None` (each call gives one retry or one SERVFAIL).
//! - `out` should be 65535 bytes (the largest TCP message); UDP replies are cut to
//!   the client's size.

mod cache;
mod zone;

#[cfg(test)]
mod e2e;
#[cfg(test)]
mod tests;

use crate::addr::{Ipv4Net, Ipv6Net};
use crate::config::HostEntry;
use crate::wire::dns::{
    flags, Builder, Class, Data, Edns, NameBuf, Opcode, Packet, Questions, Rcode, Records, Section,
    Type, MIN_UDP_PAYLOAD, OPT_LEN,
};
use crate::wire::{self, Error};
use cache::{Cache, CacheLimits, ServeParams};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use zone::{Lookup, Zone};

/// A network's number, assigned by the caller.
pub type NetId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the shell should do after a call; the message is `out[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to send.
    None,
    /// Send a reply to the client `to` of network `net`.
    Reply {
        net: NetId,
        to: SocketAddr,
        transport: Transport,
        len: usize,
    },
    /// Send a query to an upstream resolver on behalf of network `net`.
    Forward {
        net: NetId,
        upstream: SocketAddr,
        transport: Transport,
        len: usize,
    },
}

/// Sizes and times; the defaults suit a small device.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Cache bounds: whichever is reached first evicts the least recently used.
    pub cache_entries: usize,
    pub cache_bytes: usize,
    /// Forwarded queries in flight; more are dropped (the client retries).
    pub max_pending: usize,
    /// TTL of local answers.
    pub local_ttl: u32,
    /// Cap on cached TTLs, positive and negative (RFC 2308 suggests hours at most).
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
    /// An upstream that has not answered by then is abandoned for the next one.
    pub retry_after: Duration,
    /// Time after which the client gets SERVFAIL (checked at each retry tick).
    pub give_up_after: Duration,
    /// The UDP payload size advertised to EDNS0 clients, and the cap on UDP replies
    /// (1232: no fragmentation on any common path).
    pub edns_udp_size: u16,
    /// Queries each client (address, per network) may have forwarded upstream: this
    /// many a second on average, in bursts of up to `forward_burst`. Cache hits and
    /// local names do not count; a query over budget gets REFUSED.
    pub forward_rate: u32,
    pub forward_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cache_entries: 4096,
            cache_bytes: 4 << 20,
            max_pending: 1024,
            local_ttl: 60,
            max_ttl: 86_400,
            max_negative_ttl: 3600,
            retry_after: Duration::from_secs(1),
            give_up_after: Duration::from_secs(4),
            edns_udp_size: 1232,
            forward_rate: 100,
            forward_burst: 1000,
        }
    }
}

/// A network's DNS settings (from its `ip` config block and `static_dns`).
#[derive(Debug, Clone, Default)]
pub struct NetParams {
    /// Local names live in this domain (and are also answered bare); `None`: bare only.
    pub domain: Option<String>,
    /// Resolvers for everything else, in order of preference (IPv4 or IPv6); empty:
    /// REFUSED.
    pub upstreams: Vec<SocketAddr>,
    pub static_dns: Vec<HostEntry>,
    /// Reverse names of addresses in this subnet are answered locally (NXDOMAIN when
    /// unknown) instead of leaking to the upstreams.
    pub subnet: Option<Ipv4Net>,
    /// The same for the network's IPv6 subnet (ip6.arpa names).
    pub subnet6: Option<Ipv6Net>,
    /// The names of the apps on this network (host label, app id): configured, so a
    /// DHCP client of another app cannot take one.
    pub app_names: Vec<(String, String)>,
}

/// A host name a DHCP client asks for (option 12; its app's name by default), or a
/// DHCPv6 client (its FQDN option) for an IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostClaim {
    pub name: String,
    pub addr: IpAddr,
    /// The app whose endpoint (or a guest behind it) asks.
    pub app: String,
}

/// Counters for status and benchmarks (monotonic except the gauges at the end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub queries: u64,
    /// Answered from a local zone (including NXDOMAIN/NODATA).
    pub local: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_inserts: u64,
    pub cache_evictions: u64,
    pub forwarded: u64,
    pub retries: u64,
    pub upstream_replies: u64,
    /// Replies not matching a pending query (late, spoofed, wrong question).
    pub upstream_ignored: u64,
    /// SERVFAIL after all upstreams timed out.
    pub timeouts: u64,
    pub refused: u64,
    pub formerr: u64,
    pub notimp: u64,
    pub truncated: u64,
    /// Queries dropped without a reply (unreadable, responses, overload).
    pub dropped: u64,
    /// Queries refused for being over their client's forwarding budget.
    pub forwards_limited: u64,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub pending: u64,
}

struct Network {
    params: NetParams,
    /// Configured names (a statically addressed app's own name): always published.
    hosts: Vec<(String, IpAddr)>,
    /// Names DHCP clients ask for, published by [`Network::admit`]'s rules.
    claims: Vec<HostClaim>,
    /// Who holds each claimed name (its key): the first claimant keeps it.
    holders: HashMap<String, String>,
    /// The claims refused at the last rebuild, said in status.
    conflicts: Vec<String>,
    /// Queries refused for being over their client's forwarding budget.
    forwards_limited: u64,
    zone: Zone,
    /// Names given that were not valid DNS names (skipped).
    skipped: usize,
}

impl Network {
    /// A name as the zone compares it: lowercase, without a trailing dot or the
    /// network's domain.
    fn key(&self, name: &str) -> String {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        match &self.params.domain {
            Some(d) => {
                let suffix = format!(".{}", d.trim_end_matches('.').to_ascii_lowercase());
                n.strip_suffix(&suffix).map(str::to_string).unwrap_or(n)
            }
            None => n,
        }
    }

    /// The claims that may be published. Configured names always win: a claim on a
    /// `static_dns` name, or on another app's name, is refused. Between two claims
    /// on one name the holder keeps it (the app that had it at the last rebuild, or
    /// the first in `claims`). Refusals are left in `conflicts`.
    fn admit(&mut self) -> Vec<(String, IpAddr)> {
        let statics: HashSet<String> = self
            .params
            .static_dns
            .iter()
            .map(|h| self.key(&h.host))
            .collect();
        let apps: HashMap<String, (&str, &str)> = self
            .params
            .app_names
            .iter()
            .map(|(label, id)| (self.key(label), (label.as_str(), id.as_str())))
            .collect();
        let mut claims: Vec<(String, &HostClaim)> =
            self.claims.iter().map(|c| (self.key(&c.name), c)).collect();
        // Holders first, so they keep what they have.
        claims.sort_by_key(|(k, c)| self.holders.get(k) != Some(&c.app));
        let (mut holders, mut out, mut conflicts) = (HashMap::new(), Vec::new(), Vec::new());
        for (k, c) in claims {
            let refused = if statics.contains(&k) {
                Some("a static_dns name".to_string())
            } else if let Some((label, _)) = apps.get(&k).filter(|(_, id)| *id != c.app) {
                Some(format!("the name of app {label}"))
            } else {
                match holders.get(&k) {
                    Some(app) if *app != c.app => Some(format!("held by app {app}")),
                    _ => None,
                }
            };
            match refused {
                Some(why) => conflicts.push(format!(
                    "host name {} asked by {} (app {}) is {why}: not published",
                    c.name, c.addr, c.app
                )),
                None => {
                    holders.insert(k, c.app.clone());
                    out.push((c.name.clone(), c.addr));
                }
            }
        }
        for c in conflicts.iter().filter(|c| !self.conflicts.contains(c)) {
            log::warn!("{c}");
        }
        self.holders = holders;
        self.conflicts = conflicts;
        out
    }

    fn rebuild(&mut self) -> wire::Result<()> {
        let claimed = self.admit();
        let eco = self
            .hosts
            .iter()
            .chain(claimed.iter())
            .map(|(n, a)| match a {
                IpAddr::V4(a) => (n.as_str(), std::slice::from_ref(a), &[][..]),
                IpAddr::V6(a) => (n.as_str(), &[][..], std::slice::from_ref(a)),
            });
        let statics = self
            .params
            .static_dns
            .iter()
            .map(|h| (h.host.as_str(), &h.addrs[..], &h.addrs6[..]));
        let (zone, skipped) = Zone::build_dual(
            self.params.domain.as_deref(),
            self.params.subnet,
            self.params.subnet6,
            eco.chain(statics),
        )?;
        self.zone = zone;
        self.skipped = skipped;
        Ok(())
    }
}

const NIL: u32 = u32::MAX;

/// A forwarded query waiting for its upstream.
struct Pending {
    net: NetId,
    client: SocketAddr,
    client_id: u16,
    transport: Transport,
    /// The client's query as received (the upstream copy differs only in its id).
    query: Box<[u8]>,
    client_limit: usize,
    /// The id and upstream of the current attempt.
    id: u16,
    upstream: SocketAddr,
    upstream_idx: usize,
    attempts: usize,
    started: Instant,
    deadline: Instant,
    /// Timer list (ordered by deadline: every deadline is now + retry_after).
    prev: u32,
    next: u32,
}

/// Random query ids from the OS generator, fetched in batches.
struct Ids {
    rng: ring::rand::SystemRandom,
    buf: [u8; 64],
    pos: usize,
    fallback: u64,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            rng: ring::rand::SystemRandom::new(),
            buf: [0; 64],
            pos: 64,
            fallback: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn next(&mut self) -> u16 {
        use ring::rand::SecureRandom;
        if self.pos + 2 > self.buf.len() {
            if self.rng.fill(&mut self.buf).is_err() {
                // Never seen in practice; stay unpredictable-ish rather than stop.
                for c in self.buf.chunks_mut(8) {
                    self.fallback ^= self.fallback << 13;
                    self.fallback ^= self.fallback >> 7;
                    self.fallback ^= self.fallback << 17;
                    let b = self.fallback.to_le_bytes();
                    c.copy_from_slice(&b[..c.len()]);
                }
            }
            self.pos = 0;
        }
        let v = u16::from_le_bytes([self.buf[self.pos], self.buf[self.pos + 1]]);
        self.pos += 2;
        v
    }
}

/// The client's query, read once.
struct Query<'a> {
    id: u16,
    rd: bool,
    /// The query name as sent, and lowercased (the key for zones and cache).
    name: NameBuf,
    lower: NameBuf,
    qtype: Type,
    qclass: Class,
    edns: Option<Edns>,
    /// Where the OPT record's UDP size sits in `msg`.
    opt_size_at: Option<usize>,
    msg: &'a [u8],
}

fn parse_query(msg: &[u8]) -> wire::Result<Query<'_>> {
    let p = Packet::new_checked(msg)?;
    if p.qdcount() != 1 {
        return Err(Error::Malformed);
    }
    let mut qs = p.questions();
    let q = qs.next().ok_or(Error::Malformed)??;
    let mut edns = None;
    let mut opt_size_at = None;
    for r in Records::new(msg, qs.offset(), [p.ancount(), p.nscount(), p.arcount()]) {
        let (section, r) = r?;
        if let Some(e) = r.edns() {
            // One OPT, in the additional section, owned by the root (RFC 6891 §6.1.1).
            if edns.is_some() || section != Section::Additional || !r.name.is_root() {
                return Err(Error::Malformed);
            }
            edns = Some(e);
            // The class field: after the root name (1 byte) and the type (2).
            opt_size_at = Some(r.offset + 3);
        }
    }
    let name = NameBuf::from_name(&q.name, false);
    let mut lower = name;
    lower.make_lowercase();
    Ok(Query {
        id: p.id(),
        rd: p.rd(),
        name,
        lower,
        qtype: q.qtype,
        qclass: q.qclass,
        edns,
        opt_size_at,
        msg,
    })
}

/// The DNS core for all networks.
pub struct Dns {
    limits: Limits,
    nets: HashMap<NetId, Network>,
    cache: Cache,
    slots: Vec<Option<Pending>>,
    free: Vec<u32>,
    by_id: HashMap<u16, u32>,
    timer_head: u32,
    timer_tail: u32,
    ids: Ids,
    counters: Counters,
    /// Each client's forwarding budget (network, address).
    budgets: HashMap<(NetId, IpAddr), Budget>,
}

/// A token bucket, in thousandths of a query.
#[derive(Clone, Copy, Debug)]
struct Budget {
    milli: u64,
    at: Instant,
}

/// Most clients whose budget is remembered; full buckets are forgotten first.
const MAX_BUDGETS: usize = 4096;

impl Dns {
    pub fn new(limits: Limits) -> Dns {
        let cache = Cache::new(CacheLimits {
            max_entries: limits.cache_entries,
            max_bytes: limits.cache_bytes,
            max_ttl: limits.max_ttl,
            max_negative_ttl: limits.max_negative_ttl,
        });
        Dns {
            // Ids are 16 bits and must be unique among pending queries.
            limits: Limits {
                max_pending: limits.max_pending.min(16_384),
                ..limits
            },
            nets: HashMap::new(),
            cache,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timer_head: NIL,
            timer_tail: NIL,
            ids: Ids::new(),
            counters: Counters::default(),
            budgets: HashMap::new(),
        }
    }

    /// Adds or updates a network. Fails (changing nothing) if `domain` is not a
    /// valid DNS name. Host names set earlier are kept.
    pub fn set_network(&mut self, net: NetId, params: NetParams) -> wire::Result<()> {
        let old = self.nets.remove(&net);
        let mut n = Network {
            params,
            zone: Zone::default(),
            skipped: 0,
            hosts: Vec::new(),
            claims: Vec::new(),
            holders: HashMap::new(),
            conflicts: Vec::new(),
            forwards_limited: 0,
        };
        if let Some(o) = old {
            (n.hosts, n.claims, n.holders, n.conflicts) =
                (o.hosts, o.claims, o.holders, o.conflicts);
            n.forwards_limited = o.forwards_limited;
        }
        n.rebuild()?;
        self.nets.insert(net, n);
        Ok(())
    }

    /// Forgets a network: its zone, its cache entries and its pending queries
    /// (whose clients get no answer).
    pub fn remove_network(&mut self, net: NetId) {
        self.nets.remove(&net);
        self.budgets.retain(|(n, _), _| *n != net);
        self.cache.remove_net(net);
        let doomed: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.pending(i).is_some_and(|p| p.net == net))
            .collect();
        for i in doomed {
            self.take_pending(i);
        }
    }

    /// Replaces a network's configured ECO host names (a statically addressed app's
    /// name), IPv4 ones only: [`Dns::set_names`] takes both families. Names that are
    /// not valid DNS names are skipped; returns how many were. Unknown networks are
    /// ignored (returns `None`): call [`Dns::set_network`] first.
    pub fn set_hosts(&mut self, net: NetId, hosts: Vec<(String, Ipv4Addr)>) -> Option<usize> {
        let claims = self.nets.get(&net)?.claims.clone();
        let hosts = hosts.into_iter().map(|(n, a)| (n, IpAddr::V4(a))).collect();
        self.set_names(net, hosts, claims)
    }

    /// Replaces both a network's configured host names and the names its DHCP
    /// clients claim (see [`Network::admit`] for which claims are published).
    /// A name may appear several times (an app's IPv4 and IPv6 address).
    pub fn set_names(
        &mut self,
        net: NetId,
        hosts: Vec<(String, IpAddr)>,
        claims: Vec<HostClaim>,
    ) -> Option<usize> {
        let n = self.nets.get_mut(&net)?;
        n.hosts = hosts;
        n.claims = claims;
        // The domain was checked by set_network, so this cannot fail.
        let _ = n.rebuild();
        Some(n.skipped)
    }

    /// The host-name claims of a network refused at its last rebuild.
    pub fn conflicts(&self, net: NetId) -> &[String] {
        self.nets.get(&net).map_or(&[], |n| &n.conflicts)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            cache_entries: self.cache.len() as u64,
            cache_bytes: self.cache.bytes() as u64,
            cache_evictions: self.cache.evictions,
            pending: self.by_id.len() as u64,
            ..self.counters
        }
    }

    /// Handles one query from a client of `net`; the answer or the query to forward
    /// is written to `out`.
    pub fn handle_query(
        &mut self,
        now: Instant,
        net: NetId,
        client: SocketAddr,
        transport: Transport,
        query: &[u8],
        out: &mut [u8],
    ) -> Action {
        self.counters.queries += 1;
        let Ok(hdr) = Packet::new_checked(query) else {
            self.counters.dropped += 1;
            return Action::None;
        };
        if hdr.qr() {
            // Never answer a response: that is how reflection loops start.
            self.counters.dropped += 1;
            return Action::None;
        }
        let reply = |len: usize| Action::Reply {
            net,
            to: client,
            transport,
            len,
        };
        if hdr.opcode() != Opcode::Query {
            self.counters.notimp += 1;
            return self
                .header_only(query, Rcode::NotImp, out)
                .map_or(Action::None, reply);
        }
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(_) => {
                self.counters.formerr += 1;
                return self
                    .header_only(query, Rcode::FormErr, out)
                    .map_or(Action::None, reply);
            }
        };
        let limit = self.client_limit(transport, q.edns, out.len());
        if q.edns.is_some_and(|e| e.version > 0) {
            // BADVERS (RFC 6891 §6.1.3): rcode 16 = extended 1, header 0.
            self.counters.formerr += 1;
            return self
                .error_reply(&q, Rcode::NoError, 1, limit, out)
                .map_or(Action::None, reply);
        }
        let Some(network) = self.nets.get(&net) else {
            self.counters.refused += 1;
            return self
                .error_reply(&q, Rcode::Refused, 0, limit, out)
                .map_or(Action::None, reply);
        };
        if q.qclass == Class::IN || q.qclass == Class::ANY {
            let ptr = q.qtype == Type::PTR || q.qtype == Type::ANY;
            let lookup = network.zone.lookup(q.lower.as_wire(), ptr);
            if !matches!(lookup, Lookup::NotLocal) {
                self.counters.local += 1;
                let ra = !network.params.upstreams.is_empty();
                return match self.local_answer(&q, &lookup, ra, limit, out) {
                    Some((len, tc)) => {
                        self.counters.truncated += tc as u64;
                        reply(len)
                    }
                    None => {
                        self.counters.dropped += 1;
                        Action::None
                    }
                };
            }
        }
        let has_upstreams = !network.params.upstreams.is_empty();
        let served = self
            .cache
            .get(now, net, q.lower.as_wire(), q.qtype.0, q.qclass.0)
            .and_then(|e| {
                let sp = ServeParams {
                    id: q.id,
                    rd: q.rd,
                    name: q.name.as_wire(),
                    limit,
                    edns: q.edns.map(|_| self.limits.edns_udp_size),
                };
                e.serve(now, &sp, out)
            });
        if let Some((len, tc)) = served {
            self.counters.cache_hits += 1;
            self.counters.truncated += tc as u64;
            return reply(len);
        }
        self.counters.cache_misses += 1;
        if !has_upstreams {
            self.counters.refused += 1;
            return self
                .error_reply(&q, Rcode::Refused, 0, limit, out)
                .map_or(Action::None, reply);
        }
        if !self.spend(now, net, client.ip()) {
            self.counters.refused += 1;
            self.counters.forwards_limited += 1;
            if let Some(n) = self.nets.get_mut(&net) {
                n.forwards_limited += 1;
            }
            return self
                .error_reply(&q, Rcode::Refused, 0, limit, out)
                .map_or(Action::None, reply);
        }
        self.forward(now, net, client, transport, &q, limit, out)
    }

    /// Takes one query from the forwarding budget of `client` on `net`; `false` when
    /// it has none left.
    fn spend(&mut self, now: Instant, net: NetId, client: IpAddr) -> bool {
        let (rate, burst) = (
            u64::from(self.limits.forward_rate),
            u64::from(self.limits.forward_burst.max(1)) * 1000,
        );
        if self.budgets.len() >= MAX_BUDGETS && !self.budgets.contains_key(&(net, client)) {
            // Forget the clients whose bucket has refilled: they lose nothing.
            self.budgets.retain(|_, b| {
                let refill = now.saturating_duration_since(b.at).as_millis() as u64 * rate;
                b.milli.saturating_add(refill) < burst
            });
            if self.budgets.len() >= MAX_BUDGETS {
                return false;
            }
        }
        let b = self.budgets.entry((net, client)).or_insert(Budget {
            milli: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_millis() as u64 * rate;
        b.milli = b.milli.saturating_add(refill).min(burst);
        b.at = now;
        if b.milli < 1000 {
            return false;
        }
        b.milli -= 1000;
        true
    }

    /// Queries of a network refused for being over their client's forwarding budget.
    pub fn forwards_limited(&self, net: NetId) -> u64 {
        self.nets.get(&net).map_or(0, |n| n.forwards_limited)
    }

    /// The largest reply this client takes.
    fn client_limit(&self, transport: Transport, edns: Option<Edns>, out_len: usize) -> usize {
        let l = match transport {
            Transport::Tcp => u16::MAX as usize,
            Transport::Udp => match edns {
                Some(e) => (e.udp_size as usize)
                    .min(self.limits.edns_udp_size as usize)
                    .max(MIN_UDP_PAYLOAD),
                None => MIN_UDP_PAYLOAD,
            },
        };
        l.min(out_len)
    }

    fn reply_flags(rd: bool, ra: bool, aa: bool, rcode: Rcode) -> u16 {
        let mut f = flags::QR | u8::from(rcode) as u16;
        if rd {
            f |= flags::RD;
        }
        if ra {
            f |= flags::RA;
        }
        if aa {
            f |= flags::AA;
        }
        f
    }

    /// A reply with no sections, for queries we cannot read (FORMERR) or do not
    /// implement (NOTIMP): it echoes id, opcode and RD.
    fn header_only(&self, query: &[u8], rcode: Rcode, out: &mut [u8]) -> Option<usize> {
        let p = Packet::new_checked(query).ok()?;
        let f = (p.flags() & (flags::OPCODE_MASK | flags::RD)) | flags::QR | u8::from(rcode) as u16;
        let b = Builder::new(out, p.id(), f).ok()?;
        Some(b.finish())
    }

    /// A reply with the question and no records (REFUSED, SERVFAIL, BADVERS).
    fn error_reply(
        &self,
        q: &Query<'_>,
        rcode: Rcode,
        ext_rcode: u8,
        limit: usize,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut b = Builder::new(out, q.id, Self::reply_flags(q.rd, true, false, rcode)).ok()?;
        b.set_limit(limit);
        b.question(q.name.as_wire(), q.qtype, q.qclass).ok()?;
        if q.edns.is_some() {
            b.opt(self.limits.edns_udp_size, ext_rcode, false).ok()?;
        }
        Some(b.finish())
    }

    /// Answers from the local zone: A and AAAA records (ANY: both, A first), PTR,
    /// NODATA or NXDOMAIN, always authoritative. Returns the length and whether it
    /// was truncated.
    fn local_answer(
        &self,
        q: &Query<'_>,
        lookup: &Lookup<'_>,
        ra: bool,
        limit: usize,
        out: &mut [u8],
    ) -> Option<(usize, bool)> {
        let rcode = match lookup {
            Lookup::NxDomain => Rcode::NxDomain,
            _ => Rcode::NoError,
        };
        let mut b = Builder::new(out, q.id, Self::reply_flags(q.rd, ra, true, rcode)).ok()?;
        let opt = if q.edns.is_some() { OPT_LEN } else { 0 };
        b.set_limit(limit.checked_sub(opt)?);
        let owner = q.name.as_wire();
        b.question(owner, q.qtype, q.qclass).ok()?;
        let ttl = self.limits.local_ttl;
        let mut tc = false;
        match lookup {
            Lookup::Host(h) => {
                let (a, aaaa) = match q.qtype {
                    Type::A => (&h.addrs[..], &[][..]),
                    Type::AAAA => (&[][..], &h.addrs6[..]),
                    Type::ANY => (&h.addrs[..], &h.addrs6[..]),
                    _ => (&[][..], &[][..]),
                };
                let records = a
                    .iter()
                    .map(|&a| (Type::A, Data::A(a)))
                    .chain(aaaa.iter().map(|&a| (Type::AAAA, Data::Aaaa(a))));
                for (t, d) in records {
                    if b.record(Section::Answer, owner, t, Class::IN, ttl, d)
                        .is_err()
                    {
                        tc = true;
                        break;
                    }
                }
            }
            Lookup::Ptr(target) => {
                let d = Data::Name(target);
                if b.record(Section::Answer, owner, Type::PTR, Class::IN, ttl, d)
                    .is_err()
                {
                    tc = true;
                }
            }
            _ => {}
        }
        if tc {
            b.header().set_tc(true);
        }
        b.set_limit(limit);
        if q.edns.is_some() {
            b.opt(self.limits.edns_udp_size, 0, false).ok()?;
        }
        Some((b.finish(), tc))
    }

    fn pending(&self, i: u32) -> Option<&Pending> {
        self.slots.get(i as usize).and_then(|s| s.as_ref())
    }

    fn pending_mut(&mut self, i: u32) -> Option<&mut Pending> {
        self.slots.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    /// A fresh id not used by any pending query.
    fn fresh_id(&mut self) -> Option<u16> {
        (0..64)
            .map(|_| self.ids.next())
            .find(|id| !self.by_id.contains_key(id))
    }

    fn timer_unlink(&mut self, i: u32) {
        let Some(p) = self.pending(i) else { return };
        let (prev, next) = (p.prev, p.next);
        match self.pending_mut(prev) {
            Some(pp) => pp.next = next,
            None => self.timer_head = next,
        }
        match self.pending_mut(next) {
            Some(np) => np.prev = prev,
            None => self.timer_tail = prev,
        }
    }

    fn timer_push(&mut self, i: u32) {
        let tail = self.timer_tail;
        if let Some(p) = self.pending_mut(i) {
            p.prev = tail;
            p.next = NIL;
        }
        match self.pending_mut(tail) {
            Some(t) => t.next = i,
            None => self.timer_head = i,
        }
        self.timer_tail = i;
    }

    fn take_pending(&mut self, i: u32) -> Option<Pending> {
        self.timer_unlink(i);
        let p = self.slots.get_mut(i as usize)?.take()?;
        self.by_id.remove(&p.id);
        self.free.push(i);
        Some(p)
    }

    /// Starts forwarding a query to the network's first upstream.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        now: Instant,
        net: NetId,
        client: SocketAddr,
        transport: Transport,
        q: &Query<'_>,
        limit: usize,
        out: &mut [u8],
    ) -> Action {
        let Some(upstream) = self
            .nets
            .get(&net)
            .and_then(|n| n.params.upstreams.first().copied())
        else {
            return Action::None;
        };
        if self.by_id.len() >= self.limits.max_pending || q.msg.len() > out.len() {
            self.counters.dropped += 1;
            return Action::None;
        }
        let Some(id) = self.fresh_id() else {
            self.counters.dropped += 1;
            return Action::None;
        };
        let p = Pending {
            net,
            client,
            client_id: q.id,
            transport,
            query: self.upstream_query(q),
            client_limit: limit,
            id,
            upstream,
            upstream_idx: 0,
            attempts: 1,
            started: now,
            deadline: now + self.limits.retry_after,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(p);
                i
            }
            None => {
                self.slots.push(Some(p));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id, i);
        self.timer_push(i);
        self.counters.forwarded += 1;
        self.emit_forward(i, out)
    }

    /// The client's query as it goes upstream: the EDNS0 size clamped to what we
    /// relay over UDP, so the upstream truncates (well) rather than us.
    fn upstream_query(&self, q: &Query<'_>) -> Box<[u8]> {
        let mut m: Box<[u8]> = q.msg.into();
        if let (Some(at), Some(e)) = (q.opt_size_at, q.edns) {
            let size = e.udp_size.min(self.limits.edns_udp_size);
            if let Some(b) = m.get_mut(at..at + 2) {
                b.copy_from_slice(&size.to_be_bytes());
            }
        }
        m
    }

    /// Writes pending query `i` (with its current id) to `out` and says where to send it.
    fn emit_forward(&mut self, i: u32, out: &mut [u8]) -> Action {
        let Some(p) = self.pending(i) else {
            return Action::None;
        };
        let len = p.query.len();
        let Some(dst) = out.get_mut(..len) else {
            return Action::None;
        };
        dst.copy_from_slice(&p.query);
        Packet::new_unchecked(dst).set_id(p.id);
        Action::Forward {
            net: p.net,
            upstream: p.upstream,
            transport: p.transport,
            len,
        }
    }

    /// Moves pending query `i` to the next upstream with a new id.
    fn retry(&mut self, now: Instant, i: u32, out: &mut [u8]) -> Action {
        let Some(id) = self.fresh_id() else {
            return Action::None;
        };
        let Some(p) = self.pending(i) else {
            return Action::None;
        };
        let Some(ups) = self.nets.get(&p.net).map(|n| &n.params.upstreams) else {
            return Action::None;
        };
        if ups.is_empty() {
            return Action::None;
        }
        let idx = (p.upstream_idx + 1) % ups.len();
        let upstream = ups[idx];
        let old_id = p.id;
        self.by_id.remove(&old_id);
        self.by_id.insert(id, i);
        self.timer_unlink(i);
        let deadline = now + self.limits.retry_after;
        if let Some(p) = self.pending_mut(i) {
            p.id = id;
            p.upstream = upstream;
            p.upstream_idx = idx;
            p.attempts += 1;
            p.deadline = deadline;
        }
        self.timer_push(i);
        self.counters.retries += 1;
        self.emit_forward(i, out)
    }

    /// Handles a message from an upstream resolver: a reply to a pending query is
    /// relayed to its client (and cached); anything else is ignored.
    pub fn handle_upstream(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        reply: &[u8],
        out: &mut [u8],
    ) -> Action {
        let Some(i) = self.match_reply(from, transport, reply) else {
            self.counters.upstream_ignored += 1;
            return Action::None;
        };
        self.counters.upstream_replies += 1;
        let Ok(hdr) = Packet::new_checked(reply) else {
            return Action::None;
        };
        // A resolver that fails or refuses: try the next one while some are untried.
        let rcode = hdr.rcode();
        if matches!(rcode, Rcode::ServFail | Rcode::Refused | Rcode::NotImp) {
            let untried = self.pending(i).is_some_and(|p| {
                let n = self
                    .nets
                    .get(&p.net)
                    .map_or(0, |n| n.params.upstreams.len());
                p.attempts < n
            });
            if untried {
                return self.retry(now, i, out);
            }
        }
        let Some(p) = self.take_pending(i) else {
            return Action::None;
        };
        if let Ok(q) = parse_query(&p.query) {
            if self.nets.contains_key(&p.net) {
                let key = (q.lower.as_wire(), q.qtype.0, q.qclass.0);
                if self
                    .cache
                    .insert(now, p.net, key.0, key.1, key.2, reply)
                    .is_ok()
                {
                    self.counters.cache_inserts += 1;
                }
            }
        }
        let Some(dst) = out.get_mut(..reply.len()) else {
            return Action::None;
        };
        dst.copy_from_slice(reply);
        Packet::new_unchecked(&mut *dst).set_id(p.client_id);
        let mut len = reply.len();
        if len > p.client_limit {
            match truncate(dst, p.client_limit) {
                Some(l) => {
                    len = l;
                    self.counters.truncated += 1;
                }
                None => return Action::None,
            }
        }
        Action::Reply {
            net: p.net,
            to: p.client,
            transport: p.transport,
            len,
        }
    }

    /// The pending query a reply answers: same id, same upstream and transport, and
    /// the same question; the whole reply must parse.
    fn match_reply(&self, from: SocketAddr, transport: Transport, reply: &[u8]) -> Option<u32> {
        let hdr = Packet::new_checked(reply).ok()?;
        if !hdr.qr() || hdr.qdcount() != 1 {
            return None;
        }
        let &i = self.by_id.get(&hdr.id())?;
        let p = self.pending(i)?;
        if p.upstream != from || p.transport != transport {
            return None;
        }
        let rq = hdr.questions().next()?.ok()?;
        let pq = Questions::new(&p.query, 1).next()?.ok()?;
        if rq.qtype != pq.qtype || rq.qclass != pq.qclass || !rq.name.eq_ignore_case(&pq.name) {
            return None;
        }
        cache::shape(reply).ok()?;
        Some(i)
    }

    /// When [`Dns::poll`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending(self.timer_head).map(|p| p.deadline)
    }

    /// Handles one expired timer: a retry to the next upstream, or SERVFAIL to the
    /// client once `give_up_after` has passed. Call until it returns `None`.
    pub fn poll(&mut self, now: Instant, out: &mut [u8]) -> Option<Action> {
        loop {
            let i = self.timer_head;
            let p = self.pending(i)?;
            if p.deadline > now {
                return None;
            }
            let has_upstreams = self
                .nets
                .get(&p.net)
                .is_some_and(|n| !n.params.upstreams.is_empty());
            if has_upstreams && now.saturating_duration_since(p.started) < self.limits.give_up_after
            {
                match self.retry(now, i, out) {
                    Action::None => {
                        self.take_pending(i);
                    }
                    a => return Some(a),
                }
                continue;
            }
            let p = self.take_pending(i)?;
            self.counters.timeouts += 1;
            let Ok(q) = parse_query(&p.query) else {
                continue;
            };
            if let Some(len) = self.error_reply(&q, Rcode::ServFail, 0, p.client_limit, out) {
                return Some(Action::Reply {
                    net: p.net,
                    to: p.client,
                    transport: p.transport,
                    len,
                });
            }
        }
    }
}

/// Cuts a message in place to at most `limit` bytes at a record boundary, setting
/// TC when answer or authority records go. Returns the new length.
fn truncate(msg: &mut [u8], limit: usize) -> Option<usize> {
    let (qend, recs) = cache::shape(msg).ok()?;
    if qend > limit {
        return None;
    }
    let kept = recs.iter().take_while(|r| r.end <= limit).count();
    let len = recs
        .get(..kept)
        .and_then(|r| r.last())
        .map_or(qend, |r| r.end);
    let count = |s: Section| recs[..kept].iter().filter(|r| r.section == s).count() as u16;
    let (an, ns, ar) = (
        count(Section::Answer),
        count(Section::Authority),
        count(Section::Additional),
    );
    let cut_needed = recs[kept..]
        .iter()
        .any(|r| r.section != Section::Additional);
    let mut p = Packet::new_unchecked(&mut msg[..len]);
    p.set_ancount(an);
    p.set_nscount(ns);
    p.set_arcount(ar);
    if cut_needed {
        p.set_tc(true);
    }
    Some(len)
}
