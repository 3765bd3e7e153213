//! DHCP load generator for `tests/bench/dhcp.sh` (a benchmark tool, not a test).
//!
//! `dhcp-load client IFACE [options]` runs inside an ECO's network namespace. It plays
//! many nested guests behind that one endpoint: each guest has its own random
//! locally administered MAC (frame source and chaddr), and runs DISCOVER, OFFER,
//! REQUEST, ACK on a raw AF_PACKET socket. It keeps a window of W DORAs outstanding,
//! retransmits a message that is unanswered after a timeout (counted), gives a guest
//! up after a few attempts (counted as a failure), and stops after N leases or a time
//! limit, whichever comes first. It prints leases/s overall and per 1000-lease bucket,
//! DORA latency percentiles, retransmits and failures, and its own CPU time, then one
//! `RESULT key=value ...` line for scripts.
//!
//! `dhcp-load respond IFACE [--secs S]` is a trivially fast stateless server (it
//! answers every DISCOVER with an OFFER and every REQUEST with an ACK, nothing else),
//! to show what the generator itself can drive.
//!
//! Options of `client`: `--leases N` (10000), `--window W` (256), `--timeout-ms T`
//! (2000, per message), `--attempts A` (4 sends per message before giving up),
//! `--time-limit S` (120), `--unicast` (do not set the BOOTP broadcast flag; servers
//! then unicast replies to chaddr), `--client-id` (send option 61 per guest),
//! `--no-hostname` (by default each guest sends a host name, option 12, as real
//! clients do), `--seed X`.

use econet::addr::MacAddr;
use econet::dhcp::frame;
use econet::dhcp::Reply;
use econet::wire::dhcp::{self as wire, MessageType, Packet, Repr};
use econet::wire::{ethernet, ipv4, udp};
use std::collections::HashMap;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const ETH_P_IP: u16 = 0x0800;

fn die(msg: &str) -> ! {
    eprintln!("dhcp-load: {msg}");
    std::process::exit(2);
}

/// A packet socket on `iface` receiving only IPv4 UDP to `port`, non-blocking.
fn packet_socket(iface: &str, port: u16) -> (i32, i32) {
    let name = CString::new(iface).unwrap_or_else(|_| die("bad interface name"));
    // SAFETY: a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    if ifindex == 0 {
        die(&format!("no interface {iface}"));
    }
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_IP.to_be()),
        )
    };
    if fd < 0 {
        die(&format!("socket: {}", std::io::Error::last_os_error()));
    }
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(0x28, 0, 0, 12),     // ldh [12]          ethertype
        f(0x15, 0, 8, 0x0800), // jeq IPv4          else drop
        f(0x30, 0, 0, 23),     // ldb [23]          protocol
        f(0x15, 0, 6, 17),     // jeq UDP           else drop
        f(0x28, 0, 0, 20),     // ldh [20]          fragment offset
        f(0x45, 4, 0, 0x1fff), // jset 0x1fff       fragment: drop
        f(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf)
        f(0x48, 0, 0, 16),     // ldh [x+16]        destination port
        f(0x15, 0, 1, u32::from(port)),
        f(0x06, 0, 0, 0x40000),
        f(0x06, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    let bufsize: libc::c_int = 8 << 20;
    // SAFETY: valid fd; the option values point to live data of the given sizes.
    unsafe {
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as u32,
        ) < 0
        {
            die("SO_ATTACH_FILTER failed");
        }
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &bufsize as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
    }
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_IP.to_be(),
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

/// One received frame (length), `None` when nothing waits.
fn recv(fd: i32, buf: &mut [u8]) -> Option<(usize, u8)> {
    // SAFETY: zeroed sockaddr_ll is valid; buffers are valid for the given lengths.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
            &mut sll as *mut _ as *mut libc::sockaddr,
            &mut alen,
        )
    };
    (n >= 0).then(|| ((n as usize).min(buf.len()), sll.sll_pkttype))
}

fn send(fd: i32, ifindex: i32, frame: &[u8]) -> bool {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&frame[..6]);
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_IP.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    };
    // SAFETY: valid fd; frame and sll valid for the given lengths.
    let n = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    n >= 0
}

fn wait_readable(fd: i32, ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// xorshift64*: good enough for MACs and transaction ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A client frame: Ethernet broadcast from `mac`, IPv4 0.0.0.0 → 255.255.255.255,
/// UDP 68 → 67, around `r`. Returns its length.
fn client_frame(buf: &mut [u8], mac: MacAddr, r: &Repr<'_>) -> usize {
    let off = frame::PAYLOAD_OFFSET;
    let plen = r.buffer_len();
    r.emit(&mut Packet::new_unchecked(&mut buf[off..off + plen]))
        .unwrap_or_else(|_| die("emit"));
    let (src, dst) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    ethernet::Repr {
        src_addr: mac,
        dst_addr: MacAddr::BROADCAST,
        ethertype: ethernet::EtherType::Ipv4,
    }
    .emit(&mut ethernet::Packet::new_unchecked(eth));
    let (ip, u) = rest.split_at_mut(ipv4::HEADER_LEN);
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: ipv4::Protocol::Udp,
        payload_len: udp::HEADER_LEN + plen,
        ttl: 64,
    }
    .emit(&mut ipv4::Packet::new_unchecked(ip))
    .unwrap_or_else(|_| die("emit"));
    udp::Repr {
        src_port: wire::CLIENT_PORT,
        dst_port: wire::SERVER_PORT,
        payload_len: plen,
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut u[..udp::HEADER_LEN + plen]),
        src,
        dst,
        udp::Checksum::Verify,
    )
    .unwrap_or_else(|_| die("emit"));
    off + plen
}

/// The DHCP payload of a frame to port 68 (server → client).
fn reply_payload(f: &[u8]) -> Option<&[u8]> {
    let eth = ethernet::Packet::new_checked(f).ok()?;
    if eth.ethertype() != ethernet::EtherType::Ipv4 {
        return None;
    }
    let ipb = f.get(ethernet::HEADER_LEN..)?;
    let ip = ipv4::Packet::new_checked(ipb).ok()?;
    let hl = ip.header_len() as usize;
    let seg = ipb.get(hl..ip.total_len() as usize)?;
    let u = udp::Packet::new_checked(seg).ok()?;
    if u.dst_port() != wire::CLIENT_PORT {
        return None;
    }
    seg.get(udp::HEADER_LEN..u.len() as usize)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discover,
    Request { ip: Ipv4Addr, server: Ipv4Addr },
}

struct Guest {
    n: u64,
    mac: MacAddr,
    xid: u32,
    phase: Phase,
    started: Instant,
    sent: Instant,
    attempts: u32,
}

struct Opts {
    iface: String,
    leases: u64,
    window: usize,
    timeout: Duration,
    attempts: u32,
    time_limit: Duration,
    broadcast: bool,
    client_id: bool,
    hostname: bool,
    seed: u64,
}

const PRL: &[u8] = &[1, 3, 6, 12, 15, 28, 42];

fn send_msg(fd: i32, ifindex: i32, o: &Opts, g: &Guest, buf: &mut [u8]) -> bool {
    let (t, ip, server) = match g.phase {
        Phase::Discover => (MessageType::Discover, None, None),
        Phase::Request { ip, server } => (MessageType::Request, Some(ip), Some(server)),
    };
    let mut r = Repr::new(t, g.xid, g.mac);
    r.broadcast = o.broadcast;
    r.requested_ip = ip;
    r.server_id = server;
    r.parameter_request_list = Some(PRL);
    r.max_message_size = Some(1500);
    let mut cid = [1u8; 7];
    cid[1..].copy_from_slice(&g.mac.0);
    if o.client_id {
        r.client_id = Some(&cid);
    }
    let name = format!("g{}", g.n);
    if o.hostname {
        r.host_name = Some(name.as_bytes());
    }
    let len = client_frame(buf, g.mac, &r);
    send(fd, ifindex, &buf[..len])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn client(o: Opts) {
    let (fd, ifindex) = packet_socket(&o.iface, wire::CLIENT_PORT);
    let mut rng = Rng(o.seed | 1);
    let mut used_macs = std::collections::HashSet::new();
    let mut slots: Vec<Option<Guest>> = (0..o.window).map(|_| None).collect();
    let mut by_xid: HashMap<u32, usize> = HashMap::new();
    let mut tx = vec![0u8; 1600];
    let mut rx = vec![0u8; 2048];
    let mut started: u64 = 0;
    let mut done: u64 = 0;
    let (mut retransmits, mut naks, mut failures, mut send_errors) = (0u64, 0u64, 0u64, 0u64);
    let mut lat: Vec<Duration> = Vec::with_capacity(o.leases as usize);
    let mut bucket_at: Vec<Instant> = Vec::new();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let end = t0 + o.time_limit;
    let mut next_scan = t0;

    let new_guest = |rng: &mut Rng,
                     used: &mut std::collections::HashSet<[u8; 6]>,
                     by_xid: &HashMap<u32, usize>,
                     n: u64,
                     now: Instant| {
        let mac = loop {
            let v = rng.next().to_be_bytes();
            let mut m = [v[0], v[1], v[2], v[3], v[4], v[5]];
            m[0] = (m[0] & 0xfc) | 0x02; // locally administered, unicast
            if used.insert(m) {
                break MacAddr(m);
            }
        };
        let xid = loop {
            let x = rng.next() as u32;
            if !by_xid.contains_key(&x) {
                break x;
            }
        };
        Guest {
            n,
            mac,
            xid,
            phase: Phase::Discover,
            started: now,
            sent: now,
            attempts: 1,
        }
    };

    loop {
        let now = Instant::now();
        if done >= o.leases || now >= end {
            break;
        }
        // Fill the window.
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && started < o.leases.saturating_add(failures) {
                let g = new_guest(&mut rng, &mut used_macs, &by_xid, started, now);
                started += 1;
                if !send_msg(fd, ifindex, &o, &g, &mut tx) {
                    send_errors += 1;
                }
                by_xid.insert(g.xid, i);
                *slot = Some(g);
            }
        }
        // Replies.
        let mut got = 0;
        while let Some((len, pkttype)) = recv(fd, &mut rx) {
            got += 1;
            if pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let Some(payload) = reply_payload(&rx[..len]) else {
                continue;
            };
            let Ok(p) = Packet::new_checked(payload) else {
                continue;
            };
            let Ok(r) = Repr::parse(&p) else { continue };
            let Some(&i) = by_xid.get(&r.transaction_id) else {
                continue;
            };
            let Some(g) = slots[i].as_mut() else { continue };
            if g.mac != r.client_hardware_addr {
                continue;
            }
            let now = Instant::now();
            match (r.message_type, g.phase) {
                (MessageType::Offer, Phase::Discover) => {
                    let Some(server) = r.server_id else { continue };
                    g.phase = Phase::Request {
                        ip: r.your_ip,
                        server,
                    };
                    g.sent = now;
                    g.attempts = 1;
                    if !send_msg(fd, ifindex, &o, g, &mut tx) {
                        send_errors += 1;
                    }
                }
                (MessageType::Ack, Phase::Request { .. }) => {
                    lat.push(now - g.started);
                    by_xid.remove(&g.xid);
                    slots[i] = None;
                    done += 1;
                    if done.is_multiple_of(1000) {
                        bucket_at.push(now);
                    }
                }
                (MessageType::Nak, Phase::Request { .. }) => {
                    naks += 1;
                    g.phase = Phase::Discover;
                    g.sent = now;
                    g.attempts = 1;
                    if !send_msg(fd, ifindex, &o, g, &mut tx) {
                        send_errors += 1;
                    }
                }
                _ => {}
            }
            if got >= 256 {
                break;
            }
        }
        // Timeouts, at most every 5 ms.
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + Duration::from_millis(5);
            for slot in slots.iter_mut() {
                let Some(g) = slot.as_mut() else { continue };
                if now - g.sent < o.timeout {
                    continue;
                }
                if g.attempts >= o.attempts {
                    failures += 1;
                    by_xid.remove(&g.xid);
                    *slot = None;
                    continue;
                }
                g.attempts += 1;
                g.sent = now;
                retransmits += 1;
                if !send_msg(fd, ifindex, &o, g, &mut tx) {
                    send_errors += 1;
                }
            }
        }
        if got == 0 {
            wait_readable(fd, 2);
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
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
    println!(
        "dhcp-load on {}: {} guests, window {}, timeout {} ms, {} replies{}{}",
        o.iface,
        o.leases,
        o.window,
        o.timeout.as_millis(),
        if o.broadcast { "broadcast" } else { "unicast" },
        if o.client_id { ", client ids" } else { "" },
        if o.hostname { ", host names" } else { "" },
    );
    println!("  leases            {done} in {secs:.2} s: {rate:.0} leases/s");
    let list: Vec<String> = buckets.iter().map(|b| format!("{b:.0}")).collect();
    println!("  per 1000 leases   {}", list.join(" "));
    println!("  DORA latency      p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
    println!(
        "  retransmits {retransmits}, NAKs {naks}, failures {failures}, send errors {send_errors}"
    );
    let per = cpu.as_secs_f64() * 1e6 / (done.max(1) as f64);
    println!(
        "  generator CPU     {:.2} s ({per:.0} us per lease, {:.0}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / secs.max(1e-9)
    );
    println!(
        "RESULT leases={done} secs={secs:.3} rate={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} \
         bucket_min={:.0} bucket_max={bmax:.0} retransmits={retransmits} naks={naks} \
         failures={failures} gen_cpu_us_per_lease={per:.1}",
        if buckets.is_empty() { 0.0 } else { bmin },
    );
}

/// Answers every DISCOVER with an OFFER and every REQUEST with an ACK, broadcast,
/// from 10.250.0.1, addresses from a counter: a server that costs next to nothing.
fn respond(iface: &str, secs: u64) {
    let (fd, ifindex) = packet_socket(iface, wire::SERVER_PORT);
    let server = Ipv4Addr::new(10, 250, 0, 1);
    let src_mac = MacAddr([0x02, 0xec, 0, 0, 0, 1]);
    let mut rx = vec![0u8; 2048];
    let mut tx = vec![0u8; 1600];
    let mut next: u32 = u32::from(Ipv4Addr::new(10, 251, 0, 0));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut answered = 0u64;
    while Instant::now() < end {
        let mut got = false;
        while let Some((len, pkttype)) = recv(fd, &mut rx) {
            got = true;
            if pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let Some((_, _, payload)) = frame::parse_request(&rx[..len], udp::Checksum::Ignore)
            else {
                continue;
            };
            let Ok(p) = Packet::new_checked(payload) else {
                continue;
            };
            let Ok(req) = Repr::parse(&p) else { continue };
            let kind = match req.message_type {
                MessageType::Discover => MessageType::Offer,
                MessageType::Request => MessageType::Ack,
                _ => continue,
            };
            let yiaddr = match req.requested_ip {
                Some(a) if kind == MessageType::Ack => a,
                _ => {
                    next = next.wrapping_add(1);
                    Ipv4Addr::from(next)
                }
            };
            let mut r = Repr::new(kind, req.transaction_id, req.client_hardware_addr);
            r.your_ip = yiaddr;
            r.server_id = Some(server);
            r.lease_time = Some(3600);
            r.subnet_mask = Some(Ipv4Addr::new(255, 255, 0, 0));
            let plen = r.buffer_len();
            let off = frame::PAYLOAD_OFFSET;
            if r.emit(&mut Packet::new_unchecked(&mut tx[off..off + plen]))
                .is_err()
            {
                continue;
            }
            let reply = Reply {
                dst_mac: MacAddr::BROADCAST,
                dst_ip: Ipv4Addr::BROADCAST,
                payload_len: plen,
            };
            if let Some(n) = frame::emit_reply(&mut tx, src_mac, server, &reply) {
                if send(fd, ifindex, &tx[..n]) {
                    answered += 1;
                }
            }
        }
        if !got {
            wait_readable(fd, 20);
        }
    }
    println!("dhcp-load respond: {answered} replies");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: dhcp-load client IFACE [--leases N] [--window W] [--timeout-ms T] \
                 [--attempts A] [--time-limit S] [--unicast] [--client-id] [--no-hostname] \
                 [--seed X] | dhcp-load respond IFACE [--secs S]";
    let (Some(mode), Some(iface)) = (args.first(), args.get(1)) else {
        die(usage)
    };
    let mut rest = args[2..].iter();
    let num = |v: Option<&String>, what: &str| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{what} needs a number")))
    };
    match mode.as_str() {
        "client" => {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                ^ u64::from(std::process::id()) << 32;
            let mut o = Opts {
                iface: iface.clone(),
                leases: 10_000,
                window: 256,
                timeout: Duration::from_millis(2000),
                attempts: 4,
                time_limit: Duration::from_secs(120),
                broadcast: true,
                client_id: false,
                hostname: true,
                seed,
            };
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--leases" => o.leases = num(rest.next(), a),
                    "--window" => o.window = num(rest.next(), a).clamp(1, 65_536) as usize,
                    "--timeout-ms" => o.timeout = Duration::from_millis(num(rest.next(), a).max(1)),
                    "--attempts" => o.attempts = num(rest.next(), a).clamp(1, 100) as u32,
                    "--time-limit" => {
                        o.time_limit = Duration::from_secs(num(rest.next(), a).clamp(1, 3600))
                    }
                    "--unicast" => o.broadcast = false,
                    "--client-id" => o.client_id = true,
                    "--no-hostname" => o.hostname = false,
                    "--seed" => o.seed = num(rest.next(), a),
                    _ => die(usage),
                }
            }
            client(o);
        }
        "respond" => {
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
