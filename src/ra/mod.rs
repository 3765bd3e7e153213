//! Router advertisements (RFC 4861 §6.2), one [`Advertiser`] per dual-stack local
//! network. Sans-I/O like the DHCP core: the shell feeds it what its raw ICMPv6 socket
//! on the bridge reads ([`Advertiser::handle`]) and the time ([`Advertiser::poll`] at
//! [`Advertiser::poll_timeout`]); the advertiser answers with whole ICMPv6 messages
//! ([`Output`]) for the shell to send from the bridge's link-local address with hop
//! limit 255 ([`HOP_LIMIT`]). It never reads a clock or a random source: time comes
//! in as arguments, randomness from a PRNG seeded by the caller.
//!
//! What it sends (the config contract, "IPv6 on local networks"): the prefix, on-link,
//! with the `A` flag only with `slaac` (and a /64); the `M` and `O` flags; RDNSS (the
//! gateway) and DNSSL (the domain) of RFC 8106; the MTU; the bridge's MAC as source
//! link-layer address.
//!
//! When (RFC 4861 §6.2.4, §6.2.6):
//! - unsolicited RAs at intervals drawn uniformly from [`Config::min_interval`,
//!   `Config::max_interval`] (200-600 s by default, radvd's and odhcpd's), the first
//!   [`MAX_INITIAL_RTR_ADVERTISEMENTS`] at most [`MAX_INITIAL_RTR_ADVERT_INTERVAL`]
//!   apart; a config change that changes the RA starts that fast phase again;
//! - a valid Router Solicitation is answered after a random 0-[`MAX_RA_DELAY_TIME`],
//!   to all nodes, unless a multicast RA is due within that delay anyway; multicast
//!   RAs are at least [`MIN_DELAY_BETWEEN_RAS`] apart, so a storm of solicitations
//!   costs one RA every 3 s; every multicast RA restarts the unsolicited interval;
//! - [`Advertiser::shutdown`]: a final RA with router lifetime 0 and DNS lifetimes 0
//!   (RFC 4861 §6.2.5, RFC 8106 §5.1), the prefix's lifetimes 0 too when the network
//!   goes away; then nothing more.
//!
//! A solicitation is valid (RFC 4861 §6.1.1) with hop limit 255, a good checksum, code
//! 0, at least 8 bytes, options of non-zero length that fit, and no source link-layer
//! address option when the source is `::`. Anything else is ignored and counted
//! ([`Stats`]).
//!
//! For the shell (not wired yet): a raw ICMPv6 socket on the bridge
//! (`SOCK_RAW`/`IPPROTO_ICMPV6`, `SO_BINDTODEVICE`), `ICMP6_FILTER` passing type 133,
//! `IPV6_RECVHOPLIMIT` and `IPV6_RECVPKTINFO` to fill [`Rx`], `IPV6_MULTICAST_HOPS`
//! 255 and the bridge's link-local address as source (the kernel recomputes the
//! checksum of what a raw ICMPv6 socket sends anyway, RFC 3542 §3.1). The bridge must
//! be in ff02::2 to hear solicitations sent there: Linux joins it on interfaces that
//! forward IPv6. A network with no IPv6 way off the device should advertise router
//! lifetime 0 (on-link prefix and DNS only), and the configured one once NAT66 is up:
//! [`Advertiser::update_config`] tells the hosts within seconds.
//!
//! Checked by hand once: the RA of `tests::config()` and its final RA (withdrawing the
//! prefix), framed and dumped as `wire::icmpv6` describes, decode in tshark 4.0.17
//! with correct checksums and no expert info; sent from a packet socket to a Linux
//! 6.18 host in a network namespace (`accept_ra=2`), the first gives it the on-link
//! route for fd00:1:2:3::/64 (86400 s) and a default route via the bridge's
//! link-local address (1800 s, MTU 1400, hop limit 64), and the final one removes
//! both.

#[cfg(test)]
mod tests;

use crate::addr::MacAddr;
use crate::wire::icmpv6::{
    self, Addrs, Domains, Message, NdOptionRepr, NdOptions, PrefixInfo, Repr,
};
use crate::wire::ipv6::ALL_NODES;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// RFC 4861 §10 router constants.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);
/// The IPv6 hop limit every neighbour-discovery message is sent with (and a
/// solicitation must arrive with).
pub const HOP_LIMIT: u8 = 255;
/// The longest RA the advertiser writes: the IPv6 minimum MTU (1280) minus the IPv6
/// header, so it never needs fragmenting. A buffer of this size always suffices.
pub const MAX_RA_LEN: usize = 1232;

/// The bounds RFC 4861 §6.2.1 sets on the intervals and the router lifetime.
const MIN_MIN_INTERVAL: Duration = Duration::from_secs(3);
const MIN_MAX_INTERVAL: Duration = Duration::from_secs(4);
const MAX_MAX_INTERVAL: Duration = Duration::from_secs(1800);
const MAX_ROUTER_LIFETIME: Duration = Duration::from_secs(9000);
/// The IPv6 minimum link MTU: an MTU option below it is not sent (hosts ignore it).
const MIN_MTU: u32 = 1280;

/// The advertiser's configuration, filled by the shell from the config model and the
/// bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The network's prefix (`ip.subnet6`); host bits are ignored.
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// The bridge's link-local address: the RAs' source (checksummed with it).
    pub link_local: Ipv6Addr,
    /// The bridge's MAC: the source link-layer address option.
    pub mac: MacAddr,
    /// The prefix's `A` flag (addresses by SLAAC); only ever set for a /64.
    pub slaac: bool,
    /// `M`: addresses by DHCPv6.
    pub managed: bool,
    /// `O`: other configuration by DHCPv6.
    pub other: bool,
    /// The MTU option; none below 1280.
    pub mtu: Option<u32>,
    /// RDNSS (RFC 8106): the gateway, econet's DNS.
    pub rdnss: Vec<Ipv6Addr>,
    /// DNSSL: the network's `domain`. Names that cannot be encoded are left out.
    pub dnssl: Vec<String>,
    /// 0 (not a default router: for a network whose IPv6 stays on it) or from
    /// `max_interval` to 9000 s; whole seconds.
    pub router_lifetime: Duration,
    /// The prefix's valid and preferred lifetimes, seconds.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    /// The unsolicited interval: `max_interval` from 4 to 1800 s, `min_interval`
    /// from 3 s to 3/4 of it (RFC 4861 §6.2.1); values outside are clamped.
    pub min_interval: Duration,
    pub max_interval: Duration,
    /// Cur Hop Limit for hosts; 0 leaves theirs.
    pub cur_hop_limit: u8,
}

impl Config {
    /// Defaults: `M` and `O` (econet's DHCPv6 gives addresses and DNS), no SLAAC, no
    /// MTU, RDNSS or DNSSL; unsolicited RAs every 200-600 s, router lifetime 1800 s
    /// (3 × the maximum interval, RFC 4861's default), the prefix valid for a day and
    /// preferred for four hours (radvd's defaults: short enough that a changed
    /// prefix fades within a day), hop limit 64.
    pub fn new(prefix: Ipv6Addr, link_local: Ipv6Addr, mac: MacAddr) -> Config {
        Config {
            prefix,
            prefix_len: 64,
            link_local,
            mac,
            slaac: false,
            managed: true,
            other: true,
            mtu: None,
            rdnss: Vec::new(),
            dnssl: Vec::new(),
            router_lifetime: Duration::from_secs(1800),
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            min_interval: Duration::from_secs(200),
            max_interval: Duration::from_secs(600),
            cur_hop_limit: 64,
        }
    }
}

/// A received ICMPv6 message, with what the shell knows of its IPv6 header (from
/// `IPV6_RECVPKTINFO` and `IPV6_RECVHOPLIMIT` on a raw socket, or the frame).
#[derive(Debug, Clone, Copy)]
pub struct Rx<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// The ICMPv6 message.
    pub payload: &'a [u8],
}

/// An RA in the caller's buffer (`buf[..len]`, checksum filled for the configured
/// link-local source and `dst`), to send to `dst` with hop limit [`HOP_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub dst: Ipv6Addr,
    pub len: usize,
}

/// Counters, for status and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Valid Router Solicitations.
    pub solicitations: u64,
    /// Router Solicitations that failed validation (ignored).
    pub invalid_solicitations: u64,
    /// Other messages handed in (ignored).
    pub ignored: u64,
    /// RAs sent (unsolicited, answers and the final one).
    pub advertisements: u64,
}

/// The RA's meaning, derived from the config once: clamped and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advert {
    managed: bool,
    other: bool,
    cur_hop_limit: u8,
    router_lifetime: u16,
    prefix: PrefixInfo,
    mtu: Option<u32>,
    /// RDNSS addresses, encoded.
    rdnss: Vec<u8>,
    /// DNSSL names, encoded (no padding).
    dnssl: Vec<u8>,
    dns_lifetime: u32,
    mac: MacAddr,
    min_interval: Duration,
    max_interval: Duration,
}

fn mask(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let m = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    Ipv6Addr::from(bits & m)
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Advert {
    fn new(cfg: &Config) -> Advert {
        let max_interval = cfg.max_interval.max(MIN_MAX_INTERVAL).min(MAX_MAX_INTERVAL);
        let min_interval = cfg
            .min_interval
            .min(max_interval.saturating_mul(3) / 4)
            .max(MIN_MIN_INTERVAL);
        let router_lifetime = if cfg.router_lifetime.is_zero() {
            0
        } else {
            let l = cfg
                .router_lifetime
                .max(max_interval)
                .min(MAX_ROUTER_LIFETIME);
            u16::try_from(l.as_secs()).unwrap_or(u16::MAX)
        };
        let prefix_len = cfg.prefix_len.min(128);
        let mtu = cfg.mtu.filter(|&m| {
            let ok = m >= MIN_MTU;
            if !ok {
                log::warn!("ra: MTU {m} is below IPv6's minimum 1280, not advertised");
            }
            ok
        });
        let mut dnssl = Vec::new();
        for name in &cfg.dnssl {
            let mut one = Vec::new();
            if Domains::encode(&[name], &mut one).is_ok() {
                dnssl.extend_from_slice(&one);
            } else {
                log::warn!("ra: search domain {name:?} cannot be advertised, left out");
            }
        }
        let mut rdnss = Vec::new();
        Addrs::encode(&cfg.rdnss, &mut rdnss);
        let mut a = Advert {
            managed: cfg.managed,
            other: cfg.other,
            cur_hop_limit: cfg.cur_hop_limit,
            router_lifetime,
            prefix: PrefixInfo {
                prefix_len,
                on_link: true,
                autonomous: cfg.slaac && prefix_len == 64,
                valid_lifetime: cfg.valid_lifetime,
                // RFC 4862 §5.5.3 c: a host ignores preferred > valid.
                preferred_lifetime: cfg.preferred_lifetime.min(cfg.valid_lifetime),
                prefix: mask(cfg.prefix, prefix_len),
            },
            mtu,
            rdnss,
            dnssl,
            // RFC 8106 §5.1: at least 3 × MaxRtrAdvInterval, so one lost RA does not
            // take DNS away.
            dns_lifetime: secs_u32(max_interval.saturating_mul(3)),
            mac: cfg.mac,
            min_interval,
            max_interval,
        };
        // Stay within MAX_RA_LEN: search domains go first (from the end), then DNS
        // servers; nothing else can make an RA that long.
        while a.len() > MAX_RA_LEN && !a.dnssl.is_empty() {
            let mut names: Vec<usize> = Vec::new();
            let mut pos = 0;
            while let Some(n) = a.dnssl.get(pos..).and_then(name_len) {
                names.push(pos);
                pos += n;
            }
            a.dnssl.truncate(names.last().copied().unwrap_or(0));
        }
        while a.len() > MAX_RA_LEN && !a.rdnss.is_empty() {
            a.rdnss.truncate(a.rdnss.len().saturating_sub(16));
        }
        if a.dnssl.len() < cfg_dnssl_len(cfg) || a.rdnss.len() < 16 * cfg.rdnss.len() {
            log::warn!("ra: DNS options cut to fit an RA in {MAX_RA_LEN} bytes");
        }
        a
    }

    /// The options, in the order radvd sends them. `last`: the final RA's (DNS
    /// lifetimes 0; with `withdraw`, the prefix's too).
    fn options(&self, last: bool, withdraw: bool) -> Vec<u8> {
        let mut prefix = self.prefix;
        if last && withdraw {
            prefix.valid_lifetime = 0;
            prefix.preferred_lifetime = 0;
        }
        let dns_lifetime = if last { 0 } else { self.dns_lifetime };
        let mut o = vec![NdOptionRepr::PrefixInformation(prefix)];
        if let Ok(servers) = Addrs::from_bytes(&self.rdnss) {
            o.push(NdOptionRepr::Rdnss {
                lifetime: dns_lifetime,
                servers,
            });
        }
        if let Ok(domains) = Domains::from_bytes(&self.dnssl) {
            o.push(NdOptionRepr::Dnssl {
                lifetime: dns_lifetime,
                domains,
            });
        }
        if let Some(m) = self.mtu {
            o.push(NdOptionRepr::Mtu(m));
        }
        o.push(NdOptionRepr::SourceLinkLayerAddr(self.mac));
        let mut out = Vec::new();
        // Every option here is well under 2040 bytes (the RA is under 1232).
        if NdOptions::encode(&o, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// The RA's length in bytes.
    fn len(&self) -> usize {
        let mut n = 16 + 32 + 8; // header, prefix information, source link-layer
        if self.mtu.is_some() {
            n += 8;
        }
        if !self.rdnss.is_empty() {
            n += 8 + self.rdnss.len();
        }
        if !self.dnssl.is_empty() {
            n += (8 + self.dnssl.len()).div_ceil(8) * 8;
        }
        n
    }

    fn repr<'a>(&self, options: &'a [u8], last: bool) -> Repr<'a> {
        Repr::RouterAdvert {
            cur_hop_limit: self.cur_hop_limit,
            managed: self.managed,
            other: self.other,
            router_lifetime: if last { 0 } else { self.router_lifetime },
            reachable_time: 0,
            retrans_time: 0,
            options: NdOptions::from_bytes(options).unwrap_or_default(),
        }
    }
}

/// The length of the encoded name at the start of `b`, with its terminating zero.
fn name_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let l = usize::from(*b.get(pos)?);
        pos += 1 + l;
        if l == 0 {
            return (pos > 1).then_some(pos);
        }
    }
}

/// The encoded length of the names in the config that can be encoded.
fn cfg_dnssl_len(cfg: &Config) -> usize {
    cfg.dnssl
        .iter()
        .map(|n| {
            let mut b = Vec::new();
            Domains::encode(&[n], &mut b).map(|_| b.len()).unwrap_or(0)
        })
        .sum()
}

/// The router-advertisement state machine of one network.
#[derive(Debug)]
pub struct Advertiser {
    cfg: Config,
    advert: Advert,
    /// The options of the RA, encoded once per config.
    options: Vec<u8>,
    /// When the next unsolicited RA is due (`None` once stopped).
    next_unsolicited: Option<Instant>,
    /// When the answer to a solicitation is due, if one is scheduled on its own.
    answer_at: Option<Instant>,
    /// RAs still to send in the fast initial phase.
    initial_left: u8,
    last_multicast: Option<Instant>,
    /// xorshift64* state; never zero.
    rng: u64,
    stopped: bool,
    stats: Stats,
}

fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

impl Advertiser {
    /// An advertiser for an interface that starts advertising `now`: the first RA is
    /// due at once. `seed` feeds the PRNG of the random intervals and delays; give
    /// each network its own (RFC 4861 §6.2.4 wants routers on a link not to
    /// synchronise).
    pub fn new(cfg: Config, now: Instant, seed: u64) -> Advertiser {
        let advert = Advert::new(&cfg);
        let options = advert.options(false, false);
        Advertiser {
            cfg,
            advert,
            options,
            next_unsolicited: Some(now),
            answer_at: None,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            // splitmix64 of the seed, so seeds 0, 1, 2 … give unrelated streams.
            rng: splitmix64(seed) | 1,
            last_multicast: None,
            stopped: false,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Applies a new config. If the RA it makes differs, the fast initial phase
    /// starts again (RFC 4861 §6.2.4), so hosts learn the change within seconds: the
    /// next RA is due now, or as soon as the rate limit allows.
    pub fn update_config(&mut self, cfg: Config, now: Instant) {
        let advert = Advert::new(&cfg);
        self.cfg = cfg;
        if advert == self.advert || self.stopped {
            self.advert = advert;
            return;
        }
        self.options = advert.options(false, false);
        self.advert = advert;
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS;
        self.next_unsolicited = Some(now);
        self.answer_at = None;
    }

    /// Handles an ICMPv6 message received on the bridge. A valid Router Solicitation
    /// schedules an answer (see [`poll_timeout`](Self::poll_timeout)); returns
    /// whether it was one.
    pub fn handle(&mut self, now: Instant, rx: Rx<'_>) -> bool {
        if rx.payload.first() != Some(&u8::from(Message::RouterSolicit)) {
            self.stats.ignored += 1;
            return false;
        }
        if !valid_solicitation(&rx) {
            self.stats.invalid_solicitations += 1;
            return false;
        }
        self.stats.solicitations += 1;
        if self.stopped {
            return true;
        }
        // RFC 4861 §6.2.6: a random delay, pushed past the rate limit if a multicast
        // RA went out recently; nothing of its own if a multicast RA is due by then.
        let delay = self.random(Duration::ZERO, MAX_RA_DELAY_TIME);
        let mut at = after(now, delay);
        if let Some(last) = self.last_multicast {
            let free = after(last, MIN_DELAY_BETWEEN_RAS);
            if free > now {
                at = after(free, delay);
            }
        }
        let scheduled = [self.next_unsolicited, self.answer_at]
            .into_iter()
            .flatten()
            .min();
        if scheduled.is_none_or(|s| s > at) {
            self.answer_at = Some(at);
        }
        true
    }

    /// When `poll` next has something to do (`None` once stopped).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let due = [self.next_unsolicited, self.answer_at]
            .into_iter()
            .flatten()
            .min()?;
        // Never earlier than the rate limit allows.
        Some(match self.last_multicast {
            Some(last) => due.max(after(last, MIN_DELAY_BETWEEN_RAS)),
            None => due,
        })
    }

    /// Sends the RA due at `now`, if any, into `buf` ([`MAX_RA_LEN`] bytes always
    /// suffice; with less, the RA is skipped and `None` returned, the timers moving
    /// on all the same). Call it at `poll_timeout` until it returns `None`.
    pub fn poll(&mut self, now: Instant, buf: &mut [u8]) -> Option<Output> {
        if self.poll_timeout()? > now {
            return None;
        }
        // A multicast RA answers every solicitation and restarts the interval.
        self.answer_at = None;
        self.last_multicast = Some(now);
        self.initial_left = self.initial_left.saturating_sub(1);
        let mut interval = self.random(self.advert.min_interval, self.advert.max_interval);
        if self.initial_left > 0 {
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.next_unsolicited = Some(after(now, interval));
        let repr = self.advert.repr(&self.options, false);
        let out = send(self.cfg.link_local, &repr, buf)?;
        self.stats.advertisements += 1;
        Some(out)
    }

    /// Stops advertising: writes the final RA (router lifetime 0, RDNSS and DNSSL
    /// lifetimes 0; with `withdraw_prefix`, the prefix's valid and preferred
    /// lifetimes 0 too, for a network that goes away) into `buf`. Sent at once,
    /// whatever the rate limit: the shell removes the bridge next. Later calls and
    /// polls return `None`; solicitations are only counted.
    pub fn shutdown(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        withdraw_prefix: bool,
    ) -> Option<Output> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        self.next_unsolicited = None;
        self.answer_at = None;
        self.last_multicast = Some(now);
        let options = self.advert.options(true, withdraw_prefix);
        let repr = self.advert.repr(&options, true);
        let out = send(self.cfg.link_local, &repr, buf)?;
        self.stats.advertisements += 1;
        Some(out)
    }

    /// A uniformly random duration in [lo, hi], to the millisecond.
    fn random(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis();
        let span = u64::try_from(span).unwrap_or(u64::MAX).saturating_add(1);
        lo.saturating_add(Duration::from_millis(self.next_random() % span))
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Writes an RA from `src` to all nodes into `buf`.
fn send(src: Ipv6Addr, repr: &Repr<'_>, buf: &mut [u8]) -> Option<Output> {
    let len = repr.buffer_len();
    let mut p = icmpv6::Packet::new_unchecked(&mut *buf);
    if let Err(e) = repr.emit(&mut p, src, ALL_NODES) {
        log::warn!("ra: RA of {len} bytes not sent: {e}");
        return None;
    }
    Some(Output {
        dst: ALL_NODES,
        len,
    })
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// RFC 4861 §6.1.1, for a message whose type byte says Router Solicitation.
fn valid_solicitation(rx: &Rx<'_>) -> bool {
    if rx.hop_limit != HOP_LIMIT {
        return false;
    }
    let Ok(p) = icmpv6::Packet::new_checked(rx.payload) else {
        return false;
    };
    match Repr::parse(&p, rx.src, rx.dst) {
        Ok(Repr::RouterSolicit { options }) => {
            !(rx.src.is_unspecified() && options.source_ll_addr().is_some())
        }
        _ => false,
    }
}
