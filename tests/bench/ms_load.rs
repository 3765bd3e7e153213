//! Map-server load generator for `tests/bench/map_server.sh` (a benchmark tool, not a
//! test): it plays a fleet of D xTRs with E EIDs each against `econet map-server`.
//!
//! `ms-load config --devices D --eids E --listen IP [--register-secs S]` prints the
//! map server's config: one site per device (its own key, its own EID prefix, as
//! `ms_config` recommends: one device cannot claim another's EIDs), with
//! `registration_timeout_secs` three register intervals.
//!
//! `ms-load run --ms IP --src IP[,IP...] --devices D --eids E [options]` then:
//! 1. Burst: every device sends its Map-Register at once (all E records in one
//!    message, HMAC-SHA-256 with its site key, want-map-notify and proxy-reply set),
//!    as after an outage. Each is retransmitted after `--notify-timeout-ms` (2000,
//!    what an econet xTR with a 60 s register interval waits) up to 3 times, as the
//!    xTR does; a device unacknowledged after that is a failure. Every Map-Notify is
//!    checked: its nonce, its MAC with the device's key, its record count.
//! 2. Steady: for `--steady-secs` (default one register interval) every device
//!    re-registers every `--register-secs` (60), spread evenly, and ITRs send
//!    ECM-encapsulated Map-Requests for registered EIDs at `--rate` a second (100000),
//!    open loop. Every Map-Reply is matched by nonce and checked: the EID asked for,
//!    the device's RLOC. Unanswered after `--request-timeout-ms` (1000): lost.
//!
//! The devices share the sockets of `--src` (one UDP socket on port 4342 per address,
//! the device d on address d mod S). With `--ms-pid` it reads the map server's RSS
//! before the burst and once every device is registered, for bytes per EID.
//! Prints a report and one `RESULT key=value ...` line.

use econet::addr::Ipv4Net;
use econet::wire::lisp::control::{Ecm, MapRegister, MapReply, MapRequest, Record};
use econet::wire::lisp::{auth, Address, AuthAlg, Eid, Locator, CONTROL_PORT};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const IID: u32 = 1000;
/// EID space: 10.64.0.0/10.
const EID_BASE: u32 = 0x0a40_0000;
const EID_SPACE: u64 = 1 << 22;
/// RLOCs (only data in the records): 100.64.0.0/10.
const RLOC_BASE: u32 = 0x6440_0000;
const REGISTER_ATTEMPTS: u32 = 3;

fn die(msg: &str) -> ! {
    eprintln!("ms-load: {msg}");
    std::process::exit(2);
}

/// Addresses per device: E EIDs and the block's network address, a power of two.
fn block(eids: u32) -> u32 {
    (eids + 1).next_power_of_two().max(2)
}

fn site_prefix(d: u32, eids: u32) -> Ipv4Net {
    let b = block(eids);
    Ipv4Net::containing(
        Ipv4Addr::from(EID_BASE + d * b),
        32 - b.trailing_zeros() as u8,
    )
}

fn eid_ip(d: u32, e: u32, eids: u32) -> Ipv4Addr {
    Ipv4Addr::from(EID_BASE + d * block(eids) + 1 + e)
}

fn rloc(d: u32) -> Ipv4Addr {
    Ipv4Addr::from(RLOC_BASE + d)
}

fn key(d: u32) -> String {
    format!("k{d:x}-bench")
}

fn check_size(devices: u32, eids: u32) {
    if eids == 0 || eids > 30 || devices == 0 {
        die("--eids must be 1..=30 (one Map-Register per device), --devices at least 1");
    }
    if u64::from(devices) * u64::from(block(eids)) > EID_SPACE {
        die("devices x EID block exceed 10.64.0.0/10");
    }
}

fn config(devices: u32, eids: u32, listen: Ipv4Addr, register_secs: u64) {
    check_size(devices, eids);
    let mut s = format!(
        "{{\"listen\": \"{listen}\", \"registration_timeout_secs\": {}, \"sites\": [\n",
        register_secs * 3
    );
    for d in 0..devices {
        s += &format!(
            "{{\"name\":\"d{d}\",\"key\":\"{}\",\"instance_id\":{IID},\"eid_prefixes\":[\"{}\"]}}{}\n",
            key(d),
            site_prefix(d, eids),
            if d + 1 < devices { "," } else { "" }
        );
    }
    s += "]}\n";
    print!("{s}");
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_time() -> Duration {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn socket(addr: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddrV4::new(addr, CONTROL_PORT))
        .unwrap_or_else(|e| die(&format!("bind {addr}:{CONTROL_PORT}: {e}")));
    s.set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("nonblocking: {e}")));
    let size: libc::c_int = 16 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: valid fd; the value points to a c_int.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
    }
    s
}

struct Opts {
    ms: Ipv4Addr,
    src: Vec<Ipv4Addr>,
    devices: u32,
    eids: u32,
    register_secs: u64,
    steady_secs: u64,
    rate: u64,
    notify_timeout: Duration,
    request_timeout: Duration,
    ms_pid: Option<u32>,
}

#[derive(Clone, Copy, Default)]
struct Dev {
    /// Nonce of the Map-Register awaiting its Map-Notify.
    nonce: Option<u64>,
    sent: Option<Instant>,
    attempts: u32,
    /// Next (re-)registration.
    next: Option<Instant>,
    registered: bool,
}

#[derive(Default)]
struct RegStats {
    sent: u64,
    acked: u64,
    retransmits: u64,
    failures: u64,
    bad_notifies: u64,
    send_errors: u64,
    last_ack: Option<Instant>,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    seq: u64,
    sent_us: u64,
    dev: u32,
    eid: u32,
    live: bool,
}

/// A latency histogram: 10 µs bins up to 2 s, then one overflow bin.
struct Hist {
    bins: Vec<u64>,
    n: u64,
}

const BIN_US: u64 = 10;
const BINS: usize = 200_000;

impl Hist {
    fn new() -> Hist {
        Hist {
            bins: vec![0; BINS + 1],
            n: 0,
        }
    }
    fn add(&mut self, us: u64) {
        let i = ((us / BIN_US) as usize).min(BINS);
        self.bins[i] += 1;
        self.n += 1;
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.bins.iter().enumerate() {
            acc += c;
            if acc >= want {
                return ((i as u64 + 1) * BIN_US) as f64 / 1000.0;
            }
        }
        (BINS as u64 * BIN_US) as f64 / 1000.0
    }
}

struct Gen {
    o: Opts,
    socks: Vec<UdpSocket>,
    devs: Vec<Dev>,
    keys: Vec<Vec<u8>>,
    rng: Rng,
    salt: u64,
    reg: RegStats,
    buf: Vec<u8>,
    rx: Vec<u8>,
}

impl Gen {
    fn register_msg(&mut self, d: u32, nonce: u64) -> Option<usize> {
        let records = (0..self.o.eids)
            .map(|e| Record {
                ttl: (self.o.register_secs as u32 * 3).div_ceil(60).max(1),
                eid: Eid::host(IID, eid_ip(d, e, self.o.eids)),
                action: 0,
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
                    address: Address::Ipv4(rloc(d)),
                }],
            })
            .collect();
        let reg = MapRegister {
            proxy_reply: true,
            want_notify: true,
            use_ttl: false,
            nonce,
            key_id: 0,
            alg: AuthAlg::HmacSha256,
            records,
            xtr_id: None,
        };
        reg.emit_register(&mut self.buf, &self.keys[d as usize])
            .ok()
    }

    /// Sends device d's Map-Register (a new one, or a retransmission).
    fn send_register(&mut self, d: u32, now: Instant, retransmit: bool) -> bool {
        let nonce = match self.devs[d as usize].nonce {
            Some(n) if retransmit => n,
            _ => self.salt ^ (u64::from(d) << 16) ^ (self.rng.next() & 0xffff),
        };
        let Some(n) = self.register_msg(d, nonce) else {
            self.reg.send_errors += 1;
            return false;
        };
        let sock = &self.socks[d as usize % self.socks.len()];
        if sock
            .send_to(&self.buf[..n], SocketAddrV4::new(self.o.ms, CONTROL_PORT))
            .is_err()
        {
            self.reg.send_errors += 1;
            return false;
        }
        let dev = &mut self.devs[d as usize];
        dev.nonce = Some(nonce);
        dev.sent = Some(now);
        if retransmit {
            dev.attempts += 1;
            self.reg.retransmits += 1;
        } else {
            dev.attempts = 1;
        }
        self.reg.sent += 1;
        true
    }

    /// Registration timers: due (re-)registrations and retransmissions; at most
    /// `budget` sends.
    fn reg_timers(&mut self, now: Instant, budget: usize) {
        let mut sent = 0;
        for d in 0..self.o.devices {
            if sent >= budget {
                break;
            }
            let dev = self.devs[d as usize];
            match (dev.nonce, dev.sent) {
                (Some(_), Some(at)) if now - at >= self.o.notify_timeout => {
                    if dev.attempts >= REGISTER_ATTEMPTS {
                        self.reg.failures += 1;
                        self.devs[d as usize].nonce = None;
                    } else if self.send_register(d, now, true) {
                        sent += 1;
                    }
                }
                (None, _)
                    if dev.next.is_some_and(|t| t <= now) && self.send_register(d, now, false) =>
                {
                    sent += 1;
                    if let Some(t) = self.devs[d as usize].next.as_mut() {
                        *t += Duration::from_secs(self.o.register_secs);
                    }
                }
                _ => {}
            }
        }
    }

    fn on_notify(&mut self, msg: &[u8], now: Instant) {
        let Ok(n) = MapRegister::parse(msg) else {
            self.reg.bad_notifies += 1;
            return;
        };
        let d = ((n.nonce ^ self.salt) >> 16) as usize;
        let ok = self
            .devs
            .get(d)
            .is_some_and(|dev| dev.nonce == Some(n.nonce))
            && n.records.len() == self.o.eids as usize
            && auth::verify(msg, &self.keys[d]);
        if !ok {
            self.reg.bad_notifies += 1;
            return;
        }
        let dev = &mut self.devs[d];
        dev.nonce = None;
        dev.registered = true;
        self.reg.acked += 1;
        self.reg.last_ack = Some(now);
    }
}

fn run(o: Opts) {
    check_size(o.devices, o.eids);
    let socks: Vec<UdpSocket> = o.src.iter().map(|a| socket(*a)).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let salt = rng.next() & !0xffff_ffff_ffff;
    let mut g = Gen {
        keys: (0..o.devices).map(|d| key(d).into_bytes()).collect(),
        devs: vec![Dev::default(); o.devices as usize],
        socks,
        rng,
        salt,
        reg: RegStats::default(),
        buf: vec![0u8; 2048],
        rx: vec![0u8; 2048],
        o,
    };
    let n_eids = u64::from(g.o.devices) * u64::from(g.o.eids);
    let rss0 = g.o.ms_pid.and_then(rss_kb);
    let cpu0 = cpu_time();

    // ---------------------------------------------------------------- burst
    let t0 = Instant::now();
    for d in 0..g.o.devices {
        g.devs[d as usize].next = Some(t0);
    }
    // Every Map-Register at once (a socket buffer full sends on the next round).
    let burst_limit = t0 + g.o.notify_timeout * (REGISTER_ATTEMPTS + 1) + Duration::from_secs(5);
    for d in 0..g.o.devices {
        if g.send_register(d, t0, false) {
            g.devs[d as usize].next = None;
        }
    }
    loop {
        let now = Instant::now();
        let waiting = g.devs.iter().any(|d| d.nonce.is_some() || d.next.is_some());
        if !waiting || now >= burst_limit {
            break;
        }
        for d in 0..g.o.devices as usize {
            // A burst registration never sent (socket full) goes now.
            if g.devs[d].next.is_some() && g.send_register(d as u32, now, false) {
                g.devs[d].next = None;
            }
        }
        g.reg_timers(now, usize::MAX);
        receive(&mut g, None, &mut Hist::new(), now);
        wait(&g.socks, 2);
    }
    let burst_end = g.reg.last_ack.unwrap_or(t0);
    let burst_secs = (burst_end - t0).as_secs_f64().max(1e-6);
    let burst_ok = g.devs.iter().filter(|d| d.registered).count() as u64;
    let burst = (
        g.reg.sent,
        g.reg.acked,
        g.reg.retransmits,
        g.reg.failures,
        burst_ok,
    );
    std::thread::sleep(Duration::from_millis(200));
    let rss1 = g.o.ms_pid.and_then(rss_kb);

    // ---------------------------------------------------------------- steady
    g.reg = RegStats::default();
    let ts = Instant::now();
    let interval = Duration::from_secs(g.o.register_secs);
    for d in 0..g.o.devices {
        let dev = &mut g.devs[d as usize];
        dev.nonce = None;
        dev.next = Some(ts + interval.mul_f64(f64::from(d) / f64::from(g.o.devices)));
    }
    let end = ts + Duration::from_secs(g.o.steady_secs);
    let registered: Vec<u32> = (0..g.o.devices)
        .filter(|&d| g.devs[d as usize].registered)
        .collect();
    let ring_len = ((g.o.rate as f64 * g.o.request_timeout.as_secs_f64() * 2.0) as usize)
        .next_power_of_two()
        .max(1024);
    let mut req = Requests {
        ring: vec![Slot::default(); ring_len],
        next_seq: 0,
        oldest: 0,
        ok: 0,
        wrong: 0,
        lost: 0,
        send_errors: 0,
        t0: ts,
    };
    let mut hist = Hist::new();
    let mut tx = vec![0u8; 512];
    let mut inner = vec![0u8; 256];
    let mut rr = 0usize;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        g.reg_timers(now, 512);
        // Map-Requests due by now, at most 256 a round so replies are read in time.
        let due = ((now - ts).as_secs_f64() * g.o.rate as f64) as u64;
        let mut n = 0;
        while req.next_seq < due && n < 256 && !registered.is_empty() {
            n += 1;
            let r = g.rng.next();
            let d = registered[(r % registered.len() as u64) as usize];
            let e = ((r >> 32) % u64::from(g.o.eids)) as u32;
            let seq = req.next_seq;
            req.next_seq += 1;
            let si = rr % g.socks.len();
            rr += 1;
            let ip = eid_ip(d, e, g.o.eids);
            let itr = g.o.src[si];
            let mr = MapRequest {
                authoritative: false,
                probe: false,
                smr: false,
                pitr: false,
                smr_invoked: false,
                local_xtr: false,
                dont_reply: false,
                nonce: g.salt ^ seq,
                source_eid: Address::None,
                itr_rlocs: vec![Address::Ipv4(itr)],
                eids: vec![Eid::host(IID, ip)],
                map_reply: None,
            };
            let sent = mr.emit(&mut inner).ok().and_then(|len| {
                Ecm {
                    security: false,
                    ddt: false,
                    src: itr,
                    dst: ip,
                    src_port: CONTROL_PORT,
                    dst_port: CONTROL_PORT,
                    message: &inner[..len],
                }
                .emit(&mut tx)
                .ok()
            });
            let ok = sent.is_some_and(|len| {
                g.socks[si]
                    .send_to(&tx[..len], SocketAddrV4::new(g.o.ms, CONTROL_PORT))
                    .is_ok()
            });
            let slot = &mut req.ring[(seq as usize) & (ring_len - 1)];
            if slot.live {
                req.lost += 1; // overwritten before its timeout: counted lost
            }
            *slot = Slot {
                seq,
                sent_us: (now - ts).as_micros() as u64,
                dev: d,
                eid: e,
                live: ok,
            };
            if !ok {
                req.send_errors += 1;
            }
        }
        let got = receive(&mut g, Some(&mut req), &mut hist, now);
        req.expire(now, g.o.request_timeout, ring_len);
        if got == 0 && n == 0 {
            wait(&g.socks, 1);
        }
    }
    let steady_secs = (Instant::now() - ts).as_secs_f64();
    // Late answers to what was sent, for one request timeout; nothing new goes out.
    let drain_end = Instant::now() + g.o.request_timeout;
    while Instant::now() < drain_end {
        let now = Instant::now();
        if receive(&mut g, Some(&mut req), &mut hist, now) == 0 {
            wait(&g.socks, 5);
        }
    }
    req.expire(
        Instant::now() + g.o.request_timeout * 2,
        g.o.request_timeout,
        ring_len,
    );
    let cpu = cpu_time() - cpu0;
    let rss2 = g.o.ms_pid.and_then(rss_kb);

    // ---------------------------------------------------------------- report
    let o = &g.o;
    let (b_sent, b_acked, b_retx, b_fail, b_ok) = burst;
    let reg_rate = g.reg.acked as f64 * f64::from(o.eids) / steady_secs;
    let q_rate = req.ok as f64 / steady_secs;
    let (p50, p99, p999) = (
        hist.percentile(0.50),
        hist.percentile(0.99),
        hist.percentile(0.999),
    );
    // Over the EIDs registered in the burst.
    let reg_eids = b_ok * u64::from(o.eids);
    let bytes_per_eid = match (rss0, rss1) {
        (Some(a), Some(b)) if reg_eids > 0 => (b.saturating_sub(a) * 1024) as f64 / reg_eids as f64,
        _ => -1.0,
    };
    println!(
        "ms-load: {} devices x {} EIDs ({} EIDs), {} sockets, register every {} s, \
         Map-Requests at {}/s for {} s",
        o.devices,
        o.eids,
        n_eids,
        o.src.len(),
        o.register_secs,
        o.rate,
        o.steady_secs
    );
    println!(
        "  burst       {b_sent} Map-Registers at once: {b_ok}/{} devices registered in {burst_secs:.2} s \
         ({:.0} EIDs/s), {b_acked} Map-Notifies, {b_retx} retransmits, {b_fail} failed",
        o.devices,
        b_ok as f64 * f64::from(o.eids) / burst_secs
    );
    println!(
        "  steady      {} Map-Registers, {} acknowledged ({reg_rate:.0} EIDs/s, {:.0} messages/s), \
         {} retransmits, {} failed, {} bad notifies, {} send errors",
        g.reg.sent,
        g.reg.acked,
        g.reg.acked as f64 / steady_secs,
        g.reg.retransmits,
        g.reg.failures,
        g.reg.bad_notifies,
        g.reg.send_errors
    );
    println!(
        "  requests    {} sent, {} answered right ({q_rate:.0}/s), {} wrong, {} lost, {} send errors; \
         latency p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms",
        req.next_seq, req.ok, req.wrong, req.lost, req.send_errors
    );
    if let (Some(a), Some(b), Some(c)) = (rss0, rss1, rss2) {
        println!(
            "  map server  RSS {a} KiB before, {b} KiB registered, {c} KiB at the end: \
             {bytes_per_eid:.0} B per EID"
        );
    }
    println!(
        "  generator   CPU {:.2} s ({:.0}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / (t0.elapsed().as_secs_f64()).max(1e-6)
    );
    println!(
        "RESULT devices={} eids={} burst_secs={burst_secs:.3} burst_registered={b_ok} \
         burst_retransmits={b_retx} burst_failed={b_fail} reg_rate={reg_rate:.0} \
         reg_sent={} reg_acked={} reg_retransmits={} reg_failed={} q_sent={} q_ok={} \
         q_rate={q_rate:.0} q_wrong={} q_lost={} p50_ms={p50:.2} p99_ms={p99:.2} \
         bytes_per_eid={bytes_per_eid:.0} rss0_kb={} rss1_kb={} rss2_kb={}",
        o.devices,
        o.eids,
        g.reg.sent,
        g.reg.acked,
        g.reg.retransmits,
        g.reg.failures,
        req.next_seq,
        req.ok,
        req.wrong,
        req.lost,
        rss0.unwrap_or(0),
        rss1.unwrap_or(0),
        rss2.unwrap_or(0),
    );
}

struct Requests {
    ring: Vec<Slot>,
    next_seq: u64,
    /// Requests before this one are answered or counted lost.
    oldest: u64,
    ok: u64,
    wrong: u64,
    lost: u64,
    send_errors: u64,
    t0: Instant,
}

impl Requests {
    fn expire(&mut self, now: Instant, timeout: Duration, ring_len: usize) {
        let cutoff = (now.saturating_duration_since(self.t0)).saturating_sub(timeout);
        let cutoff = cutoff.as_micros() as u64;
        while self.oldest < self.next_seq {
            let slot = &mut self.ring[(self.oldest as usize) & (ring_len - 1)];
            if slot.seq == self.oldest && slot.live {
                if slot.sent_us > cutoff {
                    break;
                }
                slot.live = false;
                self.lost += 1;
            }
            self.oldest += 1;
        }
    }
}

/// Reads what waits on every socket (bounded); returns the datagrams read.
fn receive(g: &mut Gen, mut req: Option<&mut Requests>, hist: &mut Hist, now: Instant) -> usize {
    let mut got = 0;
    for si in 0..g.socks.len() {
        for _ in 0..512 {
            let Ok((n, from)) = g.socks[si].recv_from(&mut g.rx) else {
                break;
            };
            got += 1;
            if from != SocketAddr::V4(SocketAddrV4::new(g.o.ms, CONTROL_PORT)) {
                continue;
            }
            let msg = g.rx[..n].to_vec();
            match econet::wire::lisp::control::message_type(&msg) {
                Some(4) => g.on_notify(&msg, now),
                Some(2) => {
                    if let Some(r) = req.as_deref_mut() {
                        on_reply(g, r, hist, &msg, now);
                    }
                }
                _ => {}
            }
        }
    }
    got
}

fn on_reply(g: &Gen, req: &mut Requests, hist: &mut Hist, msg: &[u8], now: Instant) {
    let Ok(m) = MapReply::parse(msg) else {
        req.wrong += 1;
        return;
    };
    let seq = m.nonce ^ g.salt;
    let len = req.ring.len();
    let slot = &mut req.ring[(seq as usize) & (len - 1)];
    if seq >= req.next_seq || slot.seq != seq || !slot.live {
        return; // late (already counted lost) or not ours
    }
    slot.live = false;
    let want = Eid::host(IID, eid_ip(slot.dev, slot.eid, g.o.eids));
    let right = m.records.len() == 1
        && m.records[0].eid == want
        && m.records[0]
            .locators
            .iter()
            .any(|l| l.rloc() == Some(rloc(slot.dev)));
    if right {
        req.ok += 1;
        hist.add(((now - req.t0).as_micros() as u64).saturating_sub(slot.sent_us));
    } else {
        req.wrong += 1;
    }
}

fn wait(socks: &[UdpSocket], ms: i32) {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: valid pollfds for the given count.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ms-load config --devices D --eids E --listen IP [--register-secs S] | \
                 ms-load run --ms IP --src IP[,IP...] --devices D --eids E [--register-secs S] \
                 [--steady-secs T] [--rate Q] [--notify-timeout-ms N] [--request-timeout-ms N] \
                 [--ms-pid PID]";
    let Some(mode) = args.first() else { die(usage) };
    let mut rest = args[1..].iter();
    let num = |v: Option<&String>, what: &str| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{what} needs a number")))
    };
    let ip = |v: Option<&String>, what: &str| -> Ipv4Addr {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{what} needs an IPv4 address")))
    };
    let mut o = Opts {
        ms: Ipv4Addr::UNSPECIFIED,
        src: Vec::new(),
        devices: 10_000,
        eids: 10,
        register_secs: 60,
        steady_secs: 0,
        rate: 100_000,
        notify_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        ms_pid: None,
    };
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--ms" | "--listen" => o.ms = ip(rest.next(), a),
            "--src" => {
                o.src = rest
                    .next()
                    .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default()
            }
            "--devices" => o.devices = num(rest.next(), a).clamp(1, 1 << 22) as u32,
            "--eids" => o.eids = num(rest.next(), a).clamp(1, 30) as u32,
            "--register-secs" => o.register_secs = num(rest.next(), a).clamp(1, 3600),
            "--steady-secs" => o.steady_secs = num(rest.next(), a).clamp(1, 3600),
            "--rate" => o.rate = num(rest.next(), a).clamp(0, 10_000_000),
            "--notify-timeout-ms" => {
                o.notify_timeout = Duration::from_millis(num(rest.next(), a).clamp(10, 60_000))
            }
            "--request-timeout-ms" => {
                o.request_timeout = Duration::from_millis(num(rest.next(), a).clamp(10, 60_000))
            }
            "--ms-pid" => o.ms_pid = Some(num(rest.next(), a) as u32),
            _ => die(usage),
        }
    }
    if o.steady_secs == 0 {
        o.steady_secs = o.register_secs;
    }
    match mode.as_str() {
        "config" => config(o.devices, o.eids, o.ms, o.register_secs),
        "run" => {
            if o.src.is_empty() || o.ms.is_unspecified() {
                die(usage);
            }
            run(o)
        }
        _ => die(usage),
    }
}
