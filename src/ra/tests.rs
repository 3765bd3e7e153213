//! Advertiser tests: timing driven by a virtual clock, solicitations from the Linux
//! RS captured in `wire::icmpv6::captures` (and variants of it), RAs checked by
//! parsing them back.

use super::*;
use crate::wire::icmpv6::captures::*;
use crate::wire::icmpv6::{opt, Packet};
use crate::wire::ipv6::{self, ALL_ROUTERS};

/// The bridge: the router of the captures.
const MAC: MacAddr = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ll() -> Ipv6Addr {
    addr("fe80::8065:8dff:fe5f:8512")
}

/// fd00:1:2:3::/64 with the gateway as DNS server and a domain, as the contract
/// wants it (and as dnsmasq was set up in the captures).
fn config() -> Config {
    let mut c = Config::new(addr("fd00:1:2:3::"), ll(), MAC);
    c.mtu = Some(1400);
    c.rdnss = vec![addr("fd00:1:2:3::1")];
    c.dnssl = vec!["eco.internal".into()];
    c
}

/// The captured RS: its source, destination and ICMPv6 message.
fn captured_rs() -> (Ipv6Addr, Ipv6Addr, Vec<u8>) {
    let ip = ipv6::Packet::new_checked(&KERNEL_RS[14..]).unwrap();
    (ip.src_addr(), ip.dst_addr(), ip.payload().to_vec())
}

/// The captured RS with some bytes changed, its checksum made right for `src`.
fn edited_rs(src: Ipv6Addr, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let (_, dst, mut m) = captured_rs();
    f(&mut m);
    Packet::new_unchecked(&mut m[..]).fill_checksum(src, dst);
    m
}

/// The parts of an RA the tests look at.
#[derive(Debug)]
struct Ra {
    managed: bool,
    other: bool,
    cur_hop_limit: u8,
    router_lifetime: u16,
    prefixes: Vec<PrefixInfo>,
    mtu: Option<u32>,
    slla: Option<MacAddr>,
    rdnss: Vec<(u32, Vec<Ipv6Addr>)>,
    dnssl: Vec<(u32, Vec<String>)>,
    kinds: Vec<u8>,
}

/// Parses an RA sent from `src` to all nodes (checksum included).
fn ra_from(src: Ipv6Addr, b: &[u8]) -> Ra {
    let p = Packet::new_checked(b).unwrap();
    let Repr::RouterAdvert {
        cur_hop_limit,
        managed,
        other,
        router_lifetime,
        reachable_time,
        retrans_time,
        options,
    } = Repr::parse(&p, src, ALL_NODES).unwrap()
    else {
        panic!("not an RA");
    };
    assert_eq!((reachable_time, retrans_time), (0, 0));
    let mut ra = Ra {
        managed,
        other,
        cur_hop_limit,
        router_lifetime,
        prefixes: options.prefixes().collect(),
        mtu: options.mtu(),
        slla: options.source_ll_addr(),
        rdnss: Vec::new(),
        dnssl: Vec::new(),
        kinds: Vec::new(),
    };
    for o in options.iter() {
        match o {
            NdOptionRepr::Rdnss { lifetime, servers } => {
                ra.rdnss.push((lifetime, servers.iter().collect()))
            }
            NdOptionRepr::Dnssl { lifetime, domains } => {
                ra.dnssl.push((lifetime, domains.iter().collect()))
            }
            _ => {}
        }
    }
    let mut it = icmpv6::NdOptionsIter::new(options.as_bytes());
    while let Some(Ok(o)) = it.next() {
        ra.kinds.push(o.kind);
    }
    ra
}

fn ra(b: &[u8]) -> Ra {
    ra_from(ll(), b)
}

/// A harness: the advertiser on a virtual clock, and every RA it sends.
struct H {
    a: Advertiser,
    t0: Instant,
    now: Instant,
    buf: Vec<u8>,
    sent: Vec<(Instant, Vec<u8>)>,
}

impl H {
    fn new(cfg: Config, seed: u64) -> H {
        let t0 = Instant::now();
        H {
            a: Advertiser::new(cfg, t0, seed),
            t0,
            now: t0,
            buf: vec![0; MAX_RA_LEN],
            sent: Vec::new(),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Runs the timers up to `until` and moves the clock there.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            let Some(t) = self.a.poll_timeout() else {
                break;
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            let out = self.a.poll(self.now, &mut self.buf);
            let o = out.expect("poll at poll_timeout sends nothing");
            assert_eq!(o.dst, ALL_NODES);
            self.sent.push((self.now, self.buf[..o.len].to_vec()));
            assert!(self.a.poll(self.now, &mut self.buf).is_none());
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, secs: f64) {
        let until = self.now + Duration::from_secs_f64(secs);
        self.run_until(until);
    }

    fn rs_from(&mut self, src: Ipv6Addr, hop_limit: u8, msg: &[u8]) -> bool {
        let rx = Rx {
            src,
            dst: ALL_ROUTERS,
            hop_limit,
            payload: msg,
        };
        self.a.handle(self.now, rx)
    }

    /// The captured RS, as the kernel sent it.
    fn rs(&mut self) -> bool {
        let (src, _, m) = captured_rs();
        self.rs_from(src, 255, &m)
    }

    /// Times of the RAs sent, in seconds since start.
    fn times(&self) -> Vec<f64> {
        self.sent
            .iter()
            .map(|(t, _)| (*t - self.t0).as_secs_f64())
            .collect()
    }
}

#[test]
fn initial_burst_then_periodic() {
    for seed in 0..200 {
        let mut h = H::new(config(), seed);
        h.run_for(5000.0);
        let t = h.times();
        // The first at once; the next two at most 16 s apart (and at least 3).
        assert_eq!(t[0], 0.0);
        for w in t[..3].windows(2) {
            let d = w[1] - w[0];
            assert!((3.0..=16.0).contains(&d), "seed {seed}: initial gap {d}");
        }
        // Then 200-600 s apart.
        for w in t[2..].windows(2) {
            let d = w[1] - w[0];
            assert!((200.0..=600.0).contains(&d), "seed {seed}: gap {d}");
        }
        assert!(t.len() >= 2 + 5000 / 600);
    }
}

#[test]
fn intervals_are_random() {
    let mut h = H::new(config(), 7);
    h.run_for(100_000.0);
    let t = h.times();
    let gaps: Vec<f64> = t[3..].windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!((350.0..450.0).contains(&mean), "mean gap {mean}");
    assert!(gaps.iter().any(|&g| g < 250.0) && gaps.iter().any(|&g| g > 550.0));
    // Another seed, another schedule.
    let mut other = H::new(config(), 8);
    other.run_for(100_000.0);
    // (The initial ones are 16 s apart whatever the seed: 200-600 s capped at 16.)
    assert_eq!(other.times()[..3], t[..3]);
    assert_ne!(other.times()[3..6], t[3..6]);
}

#[test]
fn solicitation_answered_within_half_a_second() {
    let mut delays = Vec::new();
    for seed in 0..100 {
        let mut h = H::new(config(), seed);
        h.run_for(60.0); // past the initial burst
        let n = h.sent.len();
        let next = h.a.poll_timeout().unwrap();
        assert!(h.rs());
        let at = h.a.poll_timeout().unwrap();
        let delay = (at - h.now).as_secs_f64();
        assert!((0.0..=0.5).contains(&delay), "seed {seed}: delay {delay}");
        delays.push(delay);
        h.run_for(1.0);
        assert_eq!(h.sent.len(), n + 1);
        let r = ra(&h.sent[n].1);
        assert_eq!(r.router_lifetime, 1800);
        // The interval starts again from the answer.
        let after_answer = h.a.poll_timeout().unwrap();
        assert!(after_answer >= at + Duration::from_secs(200));
        assert_ne!(after_answer, next);
        assert_eq!(h.a.stats().solicitations, 1);
    }
    assert!(delays.iter().any(|&d| d < 0.1) && delays.iter().any(|&d| d > 0.4));
}

#[test]
fn solicitations_are_rate_limited() {
    let mut h = H::new(config(), 3);
    h.run_for(60.0);
    // A storm: an RS every 100 ms for a minute.
    let start = h.sent.len();
    for _ in 0..600 {
        assert!(h.rs());
        h.run_for(0.1);
    }
    let t = h.times();
    let storm = &t[start..];
    assert!((16..=21).contains(&storm.len()), "{} RAs", storm.len());
    for w in t.windows(2) {
        assert!(w[1] - w[0] >= 3.0, "{} s apart", w[1] - w[0]);
    }
    // Each answer within MIN_DELAY_BETWEEN_RAS + MAX_RA_DELAY_TIME of the last RA.
    for w in storm.windows(2) {
        assert!(w[1] - w[0] <= 3.5 + 1e-9, "{} s apart", w[1] - w[0]);
    }
}

#[test]
fn solicitation_right_after_an_ra_waits_for_the_rate_limit() {
    let mut h = H::new(config(), 11);
    h.run_for(0.0); // the first RA, at 0
    assert_eq!(h.sent.len(), 1);
    h.run_until(h.at(1.0));
    assert!(h.rs());
    let at = h.a.poll_timeout().unwrap();
    let d = (at - h.t0).as_secs_f64();
    // Either the answer at 3-3.5 s, or the second initial RA if it is due earlier.
    assert!((3.0..=3.5).contains(&d), "answer at {d}");
}

#[test]
fn solicitation_coalesced_with_a_due_ra() {
    let mut coalesced = 0;
    for seed in 0..50 {
        let mut h = H::new(config(), seed);
        h.run_for(0.0);
        let next = h.a.poll_timeout().unwrap();
        // 10 ms before the second initial RA: that one answers, unless the random
        // delay is under 10 ms (then the answer goes first, and replaces it).
        h.run_until(next - Duration::from_millis(10));
        assert!(h.rs());
        let at = h.a.poll_timeout().unwrap();
        assert!(at <= next);
        if at == next {
            coalesced += 1;
        }
        h.run_until(next + Duration::from_secs(2));
        assert_eq!(h.sent.len(), 2, "seed {seed}");
    }
    assert!(coalesced >= 45, "{coalesced} of 50");
}

#[test]
fn flags() {
    let mut h = H::new(config(), 1);
    h.run_for(0.0);
    let r = ra(&h.sent[0].1);
    assert!(r.managed && r.other);
    assert_eq!(r.cur_hop_limit, 64);
    let p = r.prefixes[0];
    assert!(p.on_link && !p.autonomous, "A without slaac");

    let mut c = config();
    c.slaac = true;
    c.managed = false;
    let mut h = H::new(c.clone(), 1);
    h.run_for(0.0);
    let r = ra(&h.sent[0].1);
    assert!(!r.managed && r.other);
    assert!(r.prefixes[0].autonomous);

    // SLAAC needs a /64.
    c.prefix_len = 56;
    c.other = false;
    let mut h = H::new(c, 1);
    h.run_for(0.0);
    let r = ra(&h.sent[0].1);
    assert!(!r.managed && !r.other);
    assert!(!r.prefixes[0].autonomous);
    assert_eq!(r.prefixes[0].prefix_len, 56);
}

#[test]
fn options() {
    let mut c = config();
    c.prefix = addr("fd00:1:2:3::1"); // host bits are dropped
    let mut h = H::new(c, 1);
    h.run_for(0.0);
    let r = ra(&h.sent[0].1);
    assert_eq!(
        r.prefixes,
        [PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: false,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: addr("fd00:1:2:3::"),
        }]
    );
    assert_eq!(r.mtu, Some(1400));
    assert_eq!(r.slla, Some(MAC));
    assert_eq!(r.rdnss, [(1800, vec![addr("fd00:1:2:3::1")])]);
    assert_eq!(r.dnssl, [(1800, vec!["eco.internal".to_string()])]);
    assert_eq!(r.router_lifetime, 1800);
    assert_eq!(
        r.kinds,
        [
            opt::PREFIX_INFO,
            opt::RDNSS,
            opt::DNSSL,
            opt::MTU,
            opt::SOURCE_LL_ADDR
        ]
    );

    // Without MTU, DNS servers or domain: prefix and link-layer address only.
    let mut h = H::new(Config::new(addr("fd00:9::"), ll(), MAC), 1);
    h.run_for(0.0);
    let r = ra(&h.sent[0].1);
    assert_eq!(r.kinds, [opt::PREFIX_INFO, opt::SOURCE_LL_ADDR]);
}

/// For the same network, econet says what dnsmasq said (lifetimes and option order
/// aside).
#[test]
fn same_meaning_as_dnsmasq() {
    let mut h = H::new(config(), 1);
    h.run_for(0.0);
    let ours = ra(&h.sent[0].1);
    let dnsmasq = ra_from(ll(), &DNSMASQ_RA[54..]);
    assert_eq!(
        (
            ours.managed,
            ours.other,
            ours.cur_hop_limit,
            ours.router_lifetime
        ),
        (
            dnsmasq.managed,
            dnsmasq.other,
            dnsmasq.cur_hop_limit,
            dnsmasq.router_lifetime
        )
    );
    let strip = |p: &PrefixInfo| (p.prefix, p.prefix_len, p.on_link, p.autonomous);
    assert_eq!(strip(&ours.prefixes[0]), strip(&dnsmasq.prefixes[0]));
    assert_eq!((ours.mtu, ours.slla), (dnsmasq.mtu, dnsmasq.slla));
    assert_eq!(ours.rdnss[0].1, dnsmasq.rdnss[0].1);
    assert_eq!(ours.dnssl[0].1, dnsmasq.dnssl[0].1);
}

#[test]
fn invalid_solicitations_are_ignored_and_counted() {
    let mut h = H::new(config(), 5);
    h.run_for(60.0);
    let next = h.a.poll_timeout();
    let (src, _, good) = captured_rs();
    let cases: Vec<(Ipv6Addr, u8, Vec<u8>)> = vec![
        // Hop limit not 255: it came through a router.
        (src, 254, good.clone()),
        (src, 64, good.clone()),
        // Code 1.
        (src, 255, edited_rs(src, |m| m[1] = 1)),
        // Bad checksum.
        (src, 255, {
            let mut m = good.clone();
            m[3] ^= 0x40;
            m
        }),
        // Shorter than an RS; an option cut short; an option of length zero.
        (src, 255, good[..7].to_vec()),
        (src, 255, edited_rs(src, |m| m.truncate(12))),
        (src, 255, edited_rs(src, |m| m[9] = 0)),
        // From the unspecified address with a source link-layer address.
        (
            Ipv6Addr::UNSPECIFIED,
            255,
            edited_rs(Ipv6Addr::UNSPECIFIED, |_| {}),
        ),
    ];
    let n = cases.len() as u64;
    for (s, hop, m) in cases {
        assert!(!h.rs_from(s, hop, &m), "accepted {m:?} from {s} hop {hop}");
        assert_eq!(h.a.poll_timeout(), next, "scheduled for {m:?}");
    }
    assert_eq!(h.a.stats().invalid_solicitations, n);
    assert_eq!(h.a.stats().solicitations, 0);
    // Other ICMPv6 (an NS) is not a solicitation at all.
    let ns = &KERNEL_NS[54..];
    assert!(!h.rs_from(ll(), 255, ns));
    assert_eq!(h.a.stats().ignored, 1);
    assert_eq!(h.a.stats().invalid_solicitations, n);
    // From the unspecified address without the option: valid.
    let bare = edited_rs(Ipv6Addr::UNSPECIFIED, |m| m.truncate(8));
    assert!(h.rs_from(Ipv6Addr::UNSPECIFIED, 255, &bare));
    assert_eq!(h.a.stats().solicitations, 1);
    assert_ne!(h.a.poll_timeout(), next);
}

#[test]
fn shutdown_sends_a_final_ra_then_nothing() {
    for withdraw in [false, true] {
        let mut h = H::new(config(), 2);
        h.run_for(100.0);
        let n = h.a.stats().advertisements;
        let o = h.a.shutdown(h.now, &mut h.buf, withdraw).unwrap();
        assert_eq!(o.dst, ALL_NODES);
        let r = ra(&h.buf[..o.len]);
        assert_eq!(r.router_lifetime, 0);
        assert_eq!(r.rdnss[0].0, 0);
        assert_eq!(r.dnssl[0].0, 0);
        let p = r.prefixes[0];
        if withdraw {
            assert_eq!((p.valid_lifetime, p.preferred_lifetime), (0, 0));
        } else {
            assert_eq!((p.valid_lifetime, p.preferred_lifetime), (86400, 14400));
        }
        assert_eq!(h.a.stats().advertisements, n + 1);
        assert!(h.a.shutdown(h.now, &mut h.buf, withdraw).is_none());
        assert_eq!(h.a.poll_timeout(), None);
        assert!(h.rs());
        assert_eq!(h.a.poll_timeout(), None);
        let later = h.now + Duration::from_secs(10_000);
        assert!(h.a.poll(later, &mut h.buf).is_none());
    }
}

#[test]
fn config_change_restarts_the_fast_phase() {
    let mut h = H::new(config(), 4);
    h.run_for(100.0);
    let n = h.sent.len();
    // The same config: nothing changes.
    let next = h.a.poll_timeout();
    h.a.update_config(config(), h.now);
    assert_eq!(h.a.poll_timeout(), next);
    // A new MTU: an RA at once, two more within 16 s each, then the slow pace.
    let mut c = config();
    c.mtu = Some(1450);
    h.a.update_config(c, h.now);
    assert_eq!(h.a.poll_timeout(), Some(h.now));
    h.run_for(1000.0);
    let t = h.times();
    assert_eq!(ra(&h.sent[n].1).mtu, Some(1450));
    assert!(t[n + 1] - t[n] <= 16.0 && t[n + 2] - t[n + 1] <= 16.0);
    assert!(t[n + 3] - t[n + 2] >= 200.0);

    // Right after an RA, the first new one waits out the rate limit.
    let mut h = H::new(config(), 4);
    h.run_for(0.0);
    h.a.update_config(Config::new(addr("fd00:2::"), ll(), MAC), h.now);
    h.run_for(5.0);
    let t = h.times();
    assert_eq!(t[1], 3.0);
    assert_eq!(ra(&h.sent[1].1).prefixes[0].prefix, addr("fd00:2::"));
}

#[test]
fn config_values_are_clamped() {
    let mut c = config();
    c.min_interval = Duration::ZERO;
    c.max_interval = Duration::from_secs(1);
    c.router_lifetime = Duration::from_secs(1);
    c.preferred_lifetime = 100_000;
    c.mtu = Some(1000);
    let mut h = H::new(c, 9);
    h.run_for(200.0);
    let t = h.times();
    for w in t.windows(2) {
        assert!((3.0..=4.0).contains(&(w[1] - w[0])), "gap {}", w[1] - w[0]);
    }
    let r = ra(&h.sent[0].1);
    assert_eq!(r.router_lifetime, 4);
    assert_eq!(r.prefixes[0].preferred_lifetime, 86400);
    assert_eq!(r.mtu, None);

    let mut c = config();
    c.min_interval = Duration::from_secs(5000);
    c.max_interval = Duration::from_secs(5000);
    c.router_lifetime = Duration::from_secs(100_000);
    c.dnssl = vec!["ok.example".into(), "bad..name".into(), "x".repeat(64)];
    let mut h = H::new(c, 9);
    h.run_for(20_000.0);
    let t = h.times();
    for w in t[2..].windows(2) {
        assert!((3.0..=1800.0).contains(&(w[1] - w[0])));
        assert!(w[1] - w[0] >= 1350.0);
    }
    let r = ra(&h.sent[0].1);
    assert_eq!(r.router_lifetime, 9000);
    assert_eq!(r.dnssl[0].1, ["ok.example"]);
}

#[test]
fn long_dns_lists_are_cut_to_fit() {
    let mut c = config();
    c.rdnss = (0..100u16)
        .map(|i| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))
        .collect();
    c.dnssl = (0..100)
        .map(|i| format!("domain-{i}.example.com"))
        .collect();
    let mut h = H::new(c, 1);
    h.run_for(0.0);
    let b = &h.sent[0].1;
    assert!(b.len() <= MAX_RA_LEN, "{} bytes", b.len());
    let r = ra(b);
    assert!(r.dnssl.is_empty(), "search domains go first");
    assert!(!r.rdnss[0].1.is_empty());
    assert_eq!(r.rdnss[0].1[0], Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
    // A few domains fit whole.
    let mut c = config();
    c.dnssl = (0..100).map(|i| format!("d{i}.example")).collect();
    let mut h = H::new(c, 1);
    h.run_for(0.0);
    let b = &h.sent[0].1;
    assert!(b.len() <= MAX_RA_LEN && b.len() > MAX_RA_LEN - 64);
    let r = ra(b);
    let names = &r.dnssl[0].1;
    assert!(names.len() > 50 && names.len() < 100);
    assert_eq!(names[0], "d0.example");
}

#[test]
fn small_buffer_skips_the_ra_and_moves_on() {
    let mut a = Advertiser::new(config(), Instant::now(), 1);
    let now = a.poll_timeout().unwrap();
    let mut small = [0u8; 40];
    assert!(a.poll(now, &mut small).is_none());
    assert!(a.poll_timeout().unwrap() > now);
    assert_eq!(a.stats().advertisements, 0);
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Thousands of random, truncated and mangled messages, at random times, from
/// random sources and hop limits, between config changes: nothing panics, every RA
/// parses with a good checksum, and multicast RAs are never closer than 3 s.
#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (src, _, good) = captured_rs();
    let sources = [src, Ipv6Addr::UNSPECIFIED, ll(), addr("fd00:1:2:3::5")];
    let mut h = H::new(config(), 77);
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut m = match rng.below(4) {
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut m = good.clone();
                m.truncate(rng.below(m.len() + 1));
                m
            }
            _ => {
                let mut m = good.clone();
                for _ in 0..rng.below(3) {
                    let at = rng.below(m.len());
                    m[at] = rng.next() as u8;
                }
                if rng.below(2) == 0 {
                    m[0] = 133;
                }
                m
            }
        };
        let s = sources[rng.below(sources.len())];
        if rng.below(4) != 0 && m.len() >= 4 {
            Packet::new_unchecked(&mut m[..]).fill_checksum(s, ALL_ROUTERS);
        }
        let hop = if rng.below(8) == 0 {
            rng.next() as u8
        } else {
            255
        };
        if h.rs_from(s, hop, &m) {
            accepted += 1;
        }
        h.run_for(rng.below(2000) as f64 / 1000.0);
        if i % 5000 == 4999 {
            let mut c = config();
            c.mtu = Some(1280 + i as u32 / 5000);
            h.a.update_config(c, h.now);
        }
    }
    assert!(accepted > 1000, "only {accepted} accepted");
    let st = h.a.stats();
    assert_eq!(st.solicitations, accepted);
    assert!(st.invalid_solicitations > 1000);
    let t = h.times();
    for w in t.windows(2) {
        assert!(w[1] - w[0] >= 3.0);
    }
    for (_, b) in &h.sent {
        assert!(ra(b).router_lifetime > 0);
    }
    assert_eq!(st.advertisements as usize, h.sent.len());
}
