//! DHCPv6 load generator for `tests/bench/dhcp6.sh` (a benchmark tool, not a test).
//!
//! DHCPv6 addresses are per ECO endpoint, so a load of N leases needs N endpoints.
//! `dhcp6-load client [options]` runs in the device namespace and plays N ECOs, each
//! on its own tap (`<tap-prefix><k>`, opened with TUNSETIFF, IFF_TAP|IFF_NO_PI):
//! ECO k is interface `eth<k % per-app>` of app `<app-prefix><k / per-app>`, its
//! frames come from that interface's ECO MAC (derived as econet derives it), from
//! the link-local address of that MAC, with a DUID-LL of that MAC and one IA_NA.
//! It runs Solicit with Rapid Commit → Reply (or, with `--four`, Solicit, Advertise,
//! Request, Reply), W exchanges outstanding, retransmits a message unanswered after
//! a timeout (counted), gives an ECO up after a few sends (counted as a failure), and
//! stops after every ECO has an address or a time limit. It prints leases/s overall
//! and per 1000-lease bucket, latency percentiles (first Solicit to the Reply with
//! the address), retransmits, failures, Advertises to a rapid-commit Solicit, and
//! its own CPU time, then one `RESULT key=value ...` line for scripts.
//!
//! `dhcp6-load respond IFACE [--secs S]` is a trivially fast stateless server on a
//! packet socket on IFACE (the bridge): every Solicit gets a Reply (rapid commit) or
//! an Advertise, every Request a Reply, addresses from a counter; it shows what the
//! generator itself can drive.
//!
//! Options of `client`: `--count N` (ECOs, 2000), `--tap-prefix P` (`t`),
//! `--app-prefix P` (`a`), `--per-app K` (8), `--window W` (128), `--timeout-ms T`
//! (1000, per message, as RFC 8415's SOL_TIMEOUT and REQ_TIMEOUT), `--attempts A` (4),
//! `--time-limit S` (120), `--four`.

use econet::addr::MacAddr;
use econet::config::{Attach, Interface};
use econet::wire::dhcpv6::{
    self as wire, Duid, Ia, IaAddress, IaKind, MessageType, Oro, Packet, Repr, StatusCode,
};
use econet::wire::ipv6::{self, checksum, NextHeader};
use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const ETH: usize = 14;
const UDP: usize = 8;
const OFF: usize = ETH + ipv6::HEADER_LEN + UDP;
/// The option codes a client asks for: DNS servers, domain list.
const ORO: [u8; 4] = [0, 23, 0, 24];

fn die(msg: &str) -> ! {
    eprintln!("dhcp6-load: {msg}");
    std::process::exit(2);
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Frames the DHCPv6 message at `buf[OFF..OFF + plen]`: UDP `sport` → `dport`,
/// IPv6 `src` → `dst`, Ethernet `smac` → `dmac`. Returns the frame length.
#[allow(clippy::too_many_arguments)]
fn frame(
    buf: &mut [u8],
    smac: MacAddr,
    dmac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    plen: usize,
) -> usize {
    let seg_len = UDP + plen;
    {
        let seg = &mut buf[ETH + ipv6::HEADER_LEN..ETH + ipv6::HEADER_LEN + seg_len];
        seg[0..2].copy_from_slice(&sport.to_be_bytes());
        seg[2..4].copy_from_slice(&dport.to_be_bytes());
        seg[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
        seg[6..8].copy_from_slice(&[0, 0]);
        let mut c = checksum::compute(src, dst, NextHeader::Udp, seg);
        if c == 0 {
            c = 0xffff;
        }
        seg[6..8].copy_from_slice(&c.to_be_bytes());
    }
    buf[0..6].copy_from_slice(&dmac.0);
    buf[6..12].copy_from_slice(&smac.0);
    buf[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: NextHeader::Udp,
        payload_len: seg_len,
        hop_limit: if dst.is_multicast() { 1 } else { 64 },
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut buf[ETH..]))
    .unwrap_or_else(|_| die("emit"));
    ETH + ipv6::HEADER_LEN + seg_len
}

/// The source MAC, source address and DHCPv6 payload of a UDP frame to `port`.
fn dhcp_payload(f: &[u8], port: u16) -> Option<(MacAddr, Ipv6Addr, &[u8])> {
    if f.len() < OFF || f[12..14] != [0x86, 0xdd] {
        return None;
    }
    let mut smac = [0u8; 6];
    smac.copy_from_slice(&f[6..12]);
    let ip = ipv6::Packet::new_checked(&f[ETH..]).ok()?;
    if ip.next_header() != NextHeader::Udp {
        return None;
    }
    let plen = usize::from(ip.payload_len());
    let src = ip.src_addr();
    let seg = f.get(ETH + ipv6::HEADER_LEN..ETH + ipv6::HEADER_LEN + plen)?;
    let dport = u16::from_be_bytes([*seg.get(2)?, *seg.get(3)?]);
    let ulen = usize::from(u16::from_be_bytes([*seg.get(4)?, *seg.get(5)?]));
    if dport != port || ulen < UDP || ulen > seg.len() {
        return None;
    }
    Some((MacAddr(smac), src, &seg[UDP..ulen]))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Solicit,
    Request,
    Done,
    Failed,
}

struct Eco {
    tap: File,
    mac: MacAddr,
    ll: Ipv6Addr,
    duid: [u8; 10],
    iaid: u32,
    phase: Phase,
    xid: u32,
    server: Vec<u8>,
    addr: Ipv6Addr,
    started: Instant,
    sent: Instant,
    attempts: u32,
}

struct Opts {
    count: usize,
    tap_prefix: String,
    app_prefix: String,
    per_app: usize,
    window: usize,
    timeout: Duration,
    attempts: u32,
    time_limit: Duration,
    four: bool,
    server_pid: Option<u32>,
}

fn send_msg(e: &Eco, four: bool, now: Instant, buf: &mut [u8]) -> bool {
    let (kind, rapid) = match e.phase {
        Phase::Request => (MessageType::Request, false),
        _ => (MessageType::Solicit, !four),
    };
    let mut r = Repr::new(kind, e.xid);
    r.client_id = Duid::from_bytes(&e.duid).ok();
    let mut ia = Ia::new(IaKind::Na, e.iaid);
    if kind == MessageType::Request {
        r.server_id = Duid::from_bytes(&e.server).ok();
        ia.addresses.push(IaAddress::new(e.addr, 0, 0));
    }
    r.ias.push(ia);
    r.rapid_commit = rapid;
    r.oro = Oro::from_bytes(&ORO).ok();
    let cs = (now - e.started).as_millis() / 10;
    r.elapsed_time = Some(cs.min(0xffff) as u16);
    let plen = r.buffer_len();
    r.emit(&mut Packet::new_unchecked(&mut buf[OFF..OFF + plen]))
        .unwrap_or_else(|_| die("emit"));
    let dst = wire::ALL_RELAY_AGENTS_AND_SERVERS;
    let o = dst.octets();
    let dmac = MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]]);
    let len = frame(
        buf,
        e.mac,
        dmac,
        e.ll,
        dst,
        wire::CLIENT_PORT,
        wire::SERVER_PORT,
        plen,
    );
    (&e.tap).write(&buf[..len]).is_ok()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Raises the open file limit to what `n` taps need.
fn raise_nofile(n: usize) {
    let want = (n + 64) as libc::rlim_t;
    // SAFETY: a zeroed rlimit is valid; get/setrlimit read and write it.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if r.rlim_cur < want {
        r.rlim_cur = want.min(r.rlim_max);
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
}

/// The ECO MAC econet gives ECO k: interface eth<k % per-app> of app
/// <app-prefix><k / per-app>.
fn eco_mac(o: &Opts, k: usize) -> MacAddr {
    let iface = Interface {
        name: format!("eth{}", k % o.per_app),
        network: 0,
        mac: None,
        ip: None,
        ip6: None,
        attach: Attach::Tap(format!("{}{k}", o.tap_prefix)),
        host_ifname: String::new(),
        acls: None,
    };
    iface.eco_mac(&format!("{}{}", o.app_prefix, k / o.per_app))
}

/// The CPU time of process `pid` (all its threads), in nanoseconds, from the
/// scheduler's own accounting (`schedstat`; `stat`'s ticks are 10 ms, a few of them
/// for a whole run).
fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(t) = t else { continue };
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        sum += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(sum)
}

/// The peak resident set of process `pid`, KiB.
fn proc_hwm_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn client(o: Opts) {
    raise_nofile(o.count);
    // SAFETY: plain epoll_create1(2).
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        die("epoll_create1");
    }
    let t_open = Instant::now();
    let mut ecos: Vec<Eco> = Vec::with_capacity(o.count);
    for k in 0..o.count {
        let name = format!("{}{k}", o.tap_prefix);
        let tap = econet::netlink::tuntap::open(&name, true, 0)
            .unwrap_or_else(|e| die(&format!("tap {name}: {e}")));
        // SAFETY: valid fd; O_NONBLOCK on its status flags.
        unsafe {
            let fl = libc::fcntl(tap.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(tap.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: k as u64,
        };
        // SAFETY: valid epoll fd and tap fd; ev lives for the call.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, tap.as_raw_fd(), &mut ev) } < 0 {
            die("epoll_ctl");
        }
        let mac = eco_mac(&o, k);
        let now = Instant::now();
        ecos.push(Eco {
            tap,
            mac,
            ll: ipv6::link_local_from_mac(mac),
            duid: Duid::ll_ethernet(mac.0),
            iaid: u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]),
            phase: Phase::Idle,
            xid: 0,
            server: Vec::new(),
            addr: Ipv6Addr::UNSPECIFIED,
            started: now,
            sent: now,
            attempts: 0,
        });
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    // Let the taps' carrier settle (the kernel tells of carrier changes at most once a
    // second, linkwatch), and the server finish what N links coming up gave it to do
    // (econet reconciles, a pass of about a second for 2000 endpoints, during which it
    // serves nothing): wait 1.5 s, then until it has used (next to) no CPU for 300 ms
    // (at most 20 s).
    let t_settle = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(pid) = o.server_pid {
        let mut last = proc_cpu_ns(pid);
        let mut quiet = 0;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(100));
            let t = proc_cpu_ns(pid);
            let busy = match (t, last) {
                (Some(a), Some(b)) => a.saturating_sub(b) > 1_000_000,
                _ => false,
            };
            quiet = if busy { 0 } else { quiet + 1 };
            last = t;
            if quiet >= 3 {
                break;
            }
        }
    }
    let settle_secs = t_settle.elapsed().as_secs_f64();
    let server0 = o.server_pid.and_then(proc_cpu_ns);
    let mut tx = vec![0u8; 1600];
    let mut rx = vec![0u8; 2048];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut next_eco = 0usize;
    let mut in_flight = 0usize;
    let mut done = 0usize;
    let mut xid = 1u32;
    let (mut retransmits, mut failures, mut send_errors) = (0u64, 0u64, 0u64);
    let (mut advertised, mut no_addrs, mut frames_in) = (0u64, 0u64, 0u64);
    let mut lat: Vec<Duration> = Vec::with_capacity(o.count);
    let mut bucket_at: Vec<Instant> = Vec::new();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let end = t0 + o.time_limit;
    let mut next_scan = t0;
    loop {
        let now = Instant::now();
        if done + failures as usize >= o.count || now >= end {
            break;
        }
        while in_flight < o.window && next_eco < o.count {
            let e = &mut ecos[next_eco];
            next_eco += 1;
            in_flight += 1;
            e.phase = Phase::Solicit;
            e.xid = xid & 0x00ff_ffff;
            xid = xid.wrapping_add(1);
            e.started = now;
            e.sent = now;
            e.attempts = 1;
            if !send_msg(e, o.four, now, &mut tx) {
                send_errors += 1;
            }
        }
        // SAFETY: valid epoll fd; events has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 2) };
        for ev in events.iter().take(n.max(0) as usize) {
            let k = ev.u64 as usize;
            let Some(e) = ecos.get_mut(k) else { continue };
            while let Ok(len) = (&e.tap).read(&mut rx) {
                frames_in += 1;
                let Some((_, _, payload)) = dhcp_payload(&rx[..len], wire::CLIENT_PORT) else {
                    continue;
                };
                let Ok(p) = Packet::new_checked(payload) else {
                    continue;
                };
                let Ok(r) = Repr::parse(&p) else { continue };
                if r.transaction_id != e.xid || !matches!(e.phase, Phase::Solicit | Phase::Request)
                {
                    continue;
                }
                let ia = r.ia_nas().find(|ia| ia.iaid == e.iaid);
                let addr = ia.and_then(|ia| {
                    let ok = ia.status.is_none_or(|s| s.code == StatusCode::Success);
                    ia.addresses.first().filter(|a| ok && a.valid > 0)
                });
                let now = Instant::now();
                let Some(a) = addr else {
                    no_addrs += 1;
                    failures += 1;
                    e.phase = Phase::Failed;
                    in_flight -= 1;
                    continue;
                };
                match (r.message_type, e.phase) {
                    (MessageType::Advertise, Phase::Solicit) => {
                        if !o.four {
                            advertised += 1;
                        }
                        let Some(s) = r.server_id else { continue };
                        e.server = s.as_bytes().to_vec();
                        e.addr = a.addr;
                        e.phase = Phase::Request;
                        e.xid = xid & 0x00ff_ffff;
                        xid = xid.wrapping_add(1);
                        e.sent = now;
                        e.attempts = 1;
                        if !send_msg(e, o.four, now, &mut tx) {
                            send_errors += 1;
                        }
                    }
                    (MessageType::Reply, Phase::Request) | (MessageType::Reply, Phase::Solicit) => {
                        if e.phase == Phase::Solicit && !r.rapid_commit {
                            continue;
                        }
                        e.addr = a.addr;
                        e.phase = Phase::Done;
                        in_flight -= 1;
                        lat.push(now - e.started);
                        done += 1;
                        if done.is_multiple_of(1000) {
                            bucket_at.push(now);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Timeouts, at most every 5 ms.
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + Duration::from_millis(5);
            for e in ecos[..next_eco].iter_mut() {
                if !matches!(e.phase, Phase::Solicit | Phase::Request) || now - e.sent < o.timeout {
                    continue;
                }
                if e.attempts >= o.attempts {
                    failures += 1;
                    e.phase = Phase::Failed;
                    in_flight -= 1;
                    continue;
                }
                e.attempts += 1;
                e.sent = now;
                retransmits += 1;
                if !send_msg(e, o.four, now, &mut tx) {
                    send_errors += 1;
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let server1 = o.server_pid.and_then(proc_cpu_ns);
    let server_us = match (server0, server1) {
        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 1e3 / (done.max(1) as f64),
        _ => 0.0,
    };
    let server_hwm = o.server_pid.map_or(0, proc_hwm_kb);
    lat.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let rate = done as f64 / secs.max(1e-9);
    let mut buckets = Vec::new();
    let mut prev = t0;
    for &t in &bucket_at {
        buckets.push(1000.0 / (t - prev).as_secs_f64().max(1e-9));
        prev = t;
    }
    let (bmin, bmax) = buckets
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    let max = lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let mut addrs: Vec<Ipv6Addr> = ecos
        .iter()
        .filter(|e| e.phase == Phase::Done)
        .map(|e| e.addr)
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    println!(
        "dhcp6-load: {} ECOs on taps {}0.., window {}, timeout {} ms, {} (taps opened in {open_secs:.2} s, server settled in {settle_secs:.1} s)",
        o.count,
        o.tap_prefix,
        o.window,
        o.timeout.as_millis(),
        if o.four {
            "Solicit/Advertise/Request/Reply"
        } else {
            "Solicit with Rapid Commit/Reply"
        },
    );
    println!("  leases            {done} in {secs:.2} s: {rate:.0} leases/s");
    let list: Vec<String> = buckets.iter().map(|b| format!("{b:.0}")).collect();
    println!("  per 1000 leases   {}", list.join(" "));
    println!("  latency           p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
    println!(
        "  retransmits {retransmits}, failures {failures} (NoAddrsAvail or no address {no_addrs}), \
         Advertise to a rapid-commit Solicit {advertised}, send errors {send_errors}, \
         distinct addresses {}, frames read {frames_in}",
        addrs.len()
    );
    let per = cpu.as_secs_f64() * 1e6 / (done.max(1) as f64);
    println!(
        "  generator CPU     {:.2} s ({per:.0} us per lease, {:.0}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / secs.max(1e-9)
    );
    if o.server_pid.is_some() {
        println!("  server CPU        {server_us:.0} us per lease, peak RSS {server_hwm} KiB");
    }
    println!(
        "RESULT leases={done} secs={secs:.3} rate={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} \
         bucket_min={:.0} bucket_max={bmax:.0} retransmits={retransmits} failures={failures} \
         advertised={advertised} distinct={} gen_cpu_us_per_lease={per:.1} \
         server_cpu_us_per_lease={server_us:.1} server_hwm_kb={server_hwm}",
        if buckets.is_empty() { 0.0 } else { bmin },
        addrs.len(),
    );
}

/// A packet socket on `iface` for every protocol, non-blocking; (fd, ifindex).
fn packet_socket(iface: &str) -> (i32, i32) {
    let name = std::ffi::CString::new(iface).unwrap_or_else(|_| die("bad interface name"));
    // SAFETY: a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    if ifindex == 0 {
        die(&format!("no interface {iface}"));
    }
    let proto = 0x86ddu16.to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        die(&format!("socket: {}", std::io::Error::last_os_error()));
    }
    let bufsize: libc::c_int = 8 << 20;
    // SAFETY: valid fd; the option value points to a live c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &bufsize as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: proto,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: valid fd and sockaddr_ll.
    let r = unsafe {
        libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        die(&format!("bind: {}", std::io::Error::last_os_error()));
    }
    (fd, ifindex)
}

/// Answers Solicits (a Reply to rapid commit, else an Advertise) and Requests (a
/// Reply) from a counter of addresses, out of `iface`: a server that costs next to
/// nothing.
fn respond(ifaces: &str, secs: u64) {
    let socks: Vec<(i32, i32)> = ifaces.split(',').map(packet_socket).collect();
    let mac = MacAddr([0x02, 0xec, 0, 0, 0, 1]);
    let src = ipv6::link_local_from_mac(mac);
    let duid = Duid::ll_ethernet(mac.0);
    let mut rx = vec![0u8; 2048];
    let mut tx = vec![0u8; 1600];
    let mut next: u128 = u128::from(
        "fd00:ff::1000"
            .parse::<Ipv6Addr>()
            .unwrap_or_else(|_| die("addr")),
    );
    let end = Instant::now() + Duration::from_secs(secs);
    let mut answered = 0u64;
    let mut idle = 0;
    let mut i = 0;
    while Instant::now() < end {
        i = (i + 1) % socks.len();
        let (fd, ifindex) = socks[i];
        // SAFETY: valid fd; rx is writable for its length.
        let n = unsafe { libc::recv(fd, rx.as_mut_ptr() as *mut libc::c_void, rx.len(), 0) };
        if n < 0 {
            idle += 1;
            if idle >= socks.len() {
                idle = 0;
                let mut p: Vec<libc::pollfd> = socks
                    .iter()
                    .map(|&(fd, _)| libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: valid pollfds, as many as the length says.
                unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, 20) };
            }
            continue;
        }
        idle = 0;
        let Some((cmac, cip, payload)) = dhcp_payload(&rx[..n as usize], wire::SERVER_PORT) else {
            continue;
        };
        let Ok(p) = Packet::new_checked(payload) else {
            continue;
        };
        let Ok(req) = Repr::parse(&p) else { continue };
        let kind = match req.message_type {
            MessageType::Solicit if req.rapid_commit => MessageType::Reply,
            MessageType::Solicit => MessageType::Advertise,
            MessageType::Request => MessageType::Reply,
            _ => continue,
        };
        let mut r = Repr::new(kind, req.transaction_id);
        r.client_id = req.client_id;
        r.server_id = Duid::from_bytes(&duid).ok();
        r.rapid_commit = req.message_type == MessageType::Solicit && req.rapid_commit;
        for ia in req.ia_nas() {
            let addr = match ia.addresses.first() {
                Some(a) if req.message_type == MessageType::Request => a.addr,
                _ => {
                    next += 1;
                    Ipv6Addr::from(next)
                }
            };
            let mut out = Ia::new(IaKind::Na, ia.iaid);
            out.t1 = 1800;
            out.t2 = 2880;
            out.addresses.push(IaAddress::new(addr, 3600, 3600));
            r.ias.push(out);
        }
        let plen = r.buffer_len();
        if r.emit(&mut Packet::new_unchecked(&mut tx[OFF..OFF + plen]))
            .is_err()
        {
            continue;
        }
        let len = frame(
            &mut tx,
            mac,
            cmac,
            src,
            cip,
            wire::SERVER_PORT,
            wire::CLIENT_PORT,
            plen,
        );
        let mut addr = [0u8; 8];
        addr[..6].copy_from_slice(&cmac.0);
        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0x86ddu16.to_be(),
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: addr,
        };
        // SAFETY: valid fd; frame and sll valid for the given lengths.
        let sent = unsafe {
            libc::sendto(
                fd,
                tx.as_ptr() as *const libc::c_void,
                len,
                0,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent >= 0 {
            answered += 1;
        }
    }
    println!("dhcp6-load respond: {answered} replies");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: dhcp6-load client [--count N] [--tap-prefix P] [--app-prefix P] \
                 [--per-app K] [--window W] [--timeout-ms T] [--attempts A] [--time-limit S] \
                 [--four] [--server-pid PID] | dhcp6-load macs [--count N] [--app-prefix P] \
                 [--per-app K] | dhcp6-load respond IFACE[,IFACE...] [--secs S]";
    let Some(mode) = args.first() else { die(usage) };
    let num = |v: Option<&String>, what: &str| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{what} needs a number")))
    };
    match mode.as_str() {
        "client" | "macs" => {
            let mut rest = args[1..].iter();
            let mut o = Opts {
                count: 2000,
                tap_prefix: "t".into(),
                app_prefix: "a".into(),
                per_app: 8,
                window: 128,
                timeout: Duration::from_millis(1000),
                attempts: 4,
                time_limit: Duration::from_secs(120),
                four: false,
                server_pid: None,
            };
            let text = |v: Option<&String>| v.cloned().unwrap_or_else(|| die(usage));
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--count" => o.count = num(rest.next(), a).clamp(1, 1 << 20) as usize,
                    "--tap-prefix" => o.tap_prefix = text(rest.next()),
                    "--app-prefix" => o.app_prefix = text(rest.next()),
                    "--per-app" => o.per_app = num(rest.next(), a).clamp(1, 64) as usize,
                    "--window" => o.window = num(rest.next(), a).clamp(1, 65_536) as usize,
                    "--timeout-ms" => o.timeout = Duration::from_millis(num(rest.next(), a).max(1)),
                    "--attempts" => o.attempts = num(rest.next(), a).clamp(1, 100) as u32,
                    "--time-limit" => {
                        o.time_limit = Duration::from_secs(num(rest.next(), a).clamp(1, 3600))
                    }
                    "--four" => o.four = true,
                    "--server-pid" => o.server_pid = Some(num(rest.next(), a) as u32),
                    _ => die(usage),
                }
            }
            if mode == "macs" {
                for k in 0..o.count {
                    let mac = eco_mac(&o, k);
                    println!("{k} {mac} {}", ipv6::link_local_from_mac(mac));
                }
            } else {
                client(o);
            }
        }
        "respond" => {
            let Some(iface) = args.get(1) else { die(usage) };
            let mut rest = args[2..].iter();
            let mut secs = 60;
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--secs" => secs = num(rest.next(), a).clamp(1, 3600),
                    _ => die(usage),
                }
            }
            respond(iface, secs);
        }
        _ => die(usage),
    }
}
