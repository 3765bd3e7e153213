//! Interop proof of econet's IKEv2 and ESP cores against strongSwan's charon 5.9
//! (kernel-libipsec), in network namespaces this test creates and removes:
//!
//! ```text
//!   [e] econet side      [g] charon gateway          [h] host behind it
//!   e0 192.0.2.1  ----  g0 192.0.2.2  g1 172.31.1.1 ---- h0 172.31.1.2
//!   (ECO 10.3.0.20, virtual)   ipsec0 (charon's TUN)
//! ```
//!
//! The shell here is test code, not the product: UDP sockets on 500 and 4500 in `e`,
//! the IKE core driven by its events, ESP SAs from `econet::esp`, and ICMP echo
//! requests built by hand from 10.3.0.20 to 172.31.1.2 that must come back as replies
//! through charon's TUN. Captures are checked with tshark's isakmp and esp dissectors.
//!
//! Run (as root, with strongswan-charon, strongswan-swanctl, libcharon-extra-plugins,
//! tcpdump and tshark installed):
//! `cargo test --test ike_interop` (about 26 s; part of tests/run).
#![allow(clippy::zombie_processes)]

mod common;

use common::*;
use econet::addr::Ipv4Net;
use econet::esp::{Inbound, Outbound, HEADER_LEN};
use econet::ike::{ChildDownReason, DownReason, Event, Ike, IkeConfig, State};
use econet::netlink::netns::Netns as NsHandle;
use econet::wire::esp::{classify, Encap, NAT_KEEPALIVE, NON_ESP_MARKER};
use econet::wire::ipv4::checksum;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const E_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const G_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const H_ADDR: Ipv4Addr = Ipv4Addr::new(172, 31, 1, 2);
const ECO: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 20);
const PSK: &str = "a long shared secret";
const E_ID: &str = "device-42.example.com";
const G_ID: &str = "gw.example.com";

/// The three namespaces, wired.
struct Bed {
    e: Netns,
    g: Netns,
    _h: Netns,
    dir: TempDir,
}

impl Bed {
    fn new() -> Bed {
        require_root();
        let (e, g, h) = (
            Netns::new("ike-e"),
            Netns::new("ike-g"),
            Netns::new("ike-h"),
        );
        veth(&e, "e0", &g, "g0");
        veth(&g, "g1", &h, "h0");
        e.ip(&["addr", "add", "192.0.2.1/24", "dev", "e0"]);
        g.ip(&["addr", "add", "192.0.2.2/24", "dev", "g0"]);
        g.ip(&["addr", "add", "172.31.1.1/24", "dev", "g1"]);
        h.ip(&["addr", "add", "172.31.1.2/24", "dev", "h0"]);
        h.ip(&["route", "add", "default", "via", "172.31.1.1"]);
        g.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        Bed {
            e,
            g,
            _h: h,
            dir: TempDir::new("ike"),
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.path.join(f).to_string_lossy().into_owned()
    }

    /// tcpdump on e0 into `name`, until dropped.
    fn capture(&self, name: &str) -> Capture {
        let mut p = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.e.name,
                "tcpdump",
                "-i",
                "e0",
                "-U",
                "-n",
            ])
            .arg("--immediate-mode")
            .args(["-w", &self.path(name), "udp"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // It says "listening on e0" once it sees packets.
        let mut line = String::new();
        let mut err = std::io::BufReader::new(p.stderr.take().expect("stderr"));
        let _ = std::io::BufRead::read_line(&mut err, &mut line);
        assert!(line.contains("listening"), "tcpdump: {line}");
        Capture(Some(p))
    }
}

/// A running tcpdump, stopped with SIGTERM (so it writes out everything) on drop.
struct Capture(Option<std::process::Child>);

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

use common::strongswan::{Charon, SwanConf};

fn start_charon(bed: &Bed, conf: &str) -> Charon {
    Charon::start(&bed.g, &bed.dir.path, conf)
}

fn swanctl_conf(
    _initiator: bool,
    child_extra: &str,
    ike_extra: &str,
    psk: &str,
    remote_id: &str,
) -> String {
    SwanConf {
        local_addrs: "192.0.2.2",
        remote_addrs: "192.0.2.1",
        local_id: G_ID,
        remote_id,
        psk,
        local_ts: "172.31.1.0/24",
        remote_ts: "10.3.0.0/24",
        ike_extra,
        child_extra,
    }
    .render()
}

/// The test-only shell: sockets, the IKE core, the ESP SAs and a ping.
struct Shell {
    s500: UdpSocket,
    s4500: UdpSocket,
    ike: Ike,
    inbound: HashMap<u32, Inbound>,
    outbound: Option<Outbound>,
    /// Outbound SAs installed but not sent on yet, by their CHILD SA's inbound SPI.
    standby: HashMap<u32, Outbound>,
    /// Every ESP SA's SPI and key material (hex), for tshark's ESP decryption.
    esp_keys: Vec<(u32, String)>,
    peer: SocketAddrV4,
    events: Vec<Event>,
    /// Echo replies that came back, by sequence number.
    replies: Vec<u16>,
    esp_in: usize,
    esp_drops: usize,
}

fn local500() -> SocketAddrV4 {
    SocketAddrV4::new(E_ADDR, 500)
}

fn local4500() -> SocketAddrV4 {
    SocketAddrV4::new(E_ADDR, 4500)
}

impl Shell {
    fn new(bed: &Bed, cfg: IkeConfig) -> Shell {
        let ns = NsHandle::open(&bed.e.path()).expect("namespace");
        let (s500, s4500) = ns
            .enter(|| {
                (
                    UdpSocket::bind(local500()).expect("bind 500"),
                    UdpSocket::bind(local4500()).expect("bind 4500"),
                )
            })
            .expect("enter namespace");
        for s in [&s500, &s4500] {
            s.set_nonblocking(true).unwrap();
        }
        let now = Instant::now();
        Shell {
            s500,
            s4500,
            peer: cfg.remote,
            ike: Ike::new(cfg, now),
            inbound: HashMap::new(),
            outbound: None,
            standby: HashMap::new(),
            esp_keys: Vec::new(),
            events: Vec::new(),
            replies: Vec::new(),
            esp_in: 0,
            esp_drops: 0,
        }
    }

    fn cfg(initiator: bool) -> IkeConfig {
        let mut c = IkeConfig::new(
            initiator,
            E_ID,
            G_ID,
            PSK.as_bytes(),
            local4500(),
            SocketAddrV4::new(G_ADDR, 4500),
        );
        c.local_ts = vec!["10.3.0.0/24".parse::<Ipv4Net>().unwrap()];
        c.remote_ts = vec!["172.31.1.0/24".parse::<Ipv4Net>().unwrap()];
        c.retransmit_base = Duration::from_millis(500);
        c.retransmit_tries = 3;
        c.dpd = Duration::from_secs(2);
        c.reconnect = None;
        c.rekey_linger = Duration::from_secs(1);
        c
    }

    /// Drains the core's events, acting on each.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(ev) = self.ike.poll(now) {
            match &ev {
                Event::Send(d) => {
                    if d.nat_t {
                        let mut b = NON_ESP_MARKER.to_vec();
                        b.extend_from_slice(&d.data);
                        let _ = self.s4500.send_to(&b, d.remote);
                    } else {
                        let _ = self.s500.send_to(&d.data, d.remote);
                    }
                    continue;
                }
                Event::Keepalive { remote, .. } => {
                    let _ = self.s4500.send_to(&NAT_KEEPALIVE, remote);
                }
                Event::ChildUp(c) | Event::ChildRekeyed { new: c, .. } => {
                    keep_keys(c);
                    for k in [&c.inbound, &c.outbound] {
                        let hex: String = k
                            .keymat
                            .expose()
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        self.esp_keys.push((k.spi, hex));
                    }
                    self.inbound
                        .insert(c.inbound.spi, Inbound::new(&c.inbound, c.lifetime, now));
                    let out = Outbound::new(&c.outbound, c.lifetime, now);
                    if matches!(ev, Event::ChildRekeyed { send: false, .. }) {
                        self.standby.insert(c.inbound.spi, out);
                    } else {
                        self.outbound = Some(out);
                    }
                    self.peer = c.peer;
                }
                Event::ChildSend { spis } => {
                    if let Some(out) = self.standby.remove(&spis.inbound) {
                        self.outbound = Some(out);
                    }
                }
                Event::ChildDown { spis, .. } => {
                    self.inbound.remove(&spis.inbound);
                    self.standby.remove(&spis.inbound);
                    if self.outbound.as_ref().map(|o| o.spi()) == Some(spis.outbound) {
                        self.outbound = None;
                    }
                }
                Event::PeerMoved { remote } => self.peer = *remote,
                Event::IkeUp { .. } | Event::IkeDown { .. } => {}
            }
            eprintln!("econet: {}", brief(&ev));
            self.events.push(ev);
        }
    }

    /// Runs the loop for at most `limit`, returning as soon as `done` holds.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Shell) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            self.drain();
            self.check_lifetimes();
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            let wake = self
                .ike
                .poll_timeout()
                .map_or(end, |t| t.min(end))
                .max(now)
                .min(now + Duration::from_millis(50));
            self.wait(wake - now);
            self.receive();
        }
    }

    fn wait(&self, d: Duration) {
        let mut fds = [
            libc::pollfd {
                fd: self.s500.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.s4500.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, d.as_millis() as i32) };
    }

    fn receive(&mut self) {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = self.s500.recv_from(&mut buf) {
            let std::net::SocketAddr::V4(from) = from else {
                continue;
            };
            if let Err(e) = self.ike.handle(Instant::now(), local500(), from, &buf[..n]) {
                eprintln!("econet: dropped IKE message on 500: {e}");
            }
        }
        while let Ok((n, from)) = self.s4500.recv_from(&mut buf) {
            let std::net::SocketAddr::V4(from) = from else {
                continue;
            };
            match classify(&buf[..n]) {
                Ok(Encap::Keepalive) => {}
                Ok(Encap::Ike(m)) => {
                    let m = m.to_vec();
                    if let Err(e) = self.ike.handle(Instant::now(), local4500(), from, &m) {
                        eprintln!("econet: dropped IKE message on 4500: {e}");
                    }
                }
                Ok(Encap::Esp(_)) => self.on_esp(&mut buf[..n]),
                Err(_) => {}
            }
        }
    }

    fn on_esp(&mut self, pkt: &mut [u8]) {
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        let Some(sa) = self.inbound.get_mut(&spi) else {
            self.esp_drops += 1;
            return;
        };
        match sa.open_in_place(pkt) {
            Ok(r) => {
                self.esp_in += 1;
                let ip = &pkt[r];
                // An echo reply from the host to the ECO.
                if ip.len() >= 28
                    && ip[9] == 1
                    && ip[12..16] == H_ADDR.octets()
                    && ip[16..20] == ECO.octets()
                    && ip[20] == 0
                    && checksum::data(&ip[..20]) == 0xffff
                    && checksum::data(&ip[20..]) == 0xffff
                {
                    self.replies.push(u16::from_be_bytes([ip[26], ip[27]]));
                }
            }
            Err(e) => {
                eprintln!("econet: ESP dropped: {e}");
                self.esp_drops += 1;
            }
        }
    }

    /// Passes ESP SA expiries on to the core, as the real shell would.
    fn check_lifetimes(&mut self) {
        let now = Instant::now();
        let mut exp = Vec::new();
        if let Some(o) = self.outbound.as_mut() {
            if let Some(x) = o.check(now) {
                exp.push((o.spi(), x));
            }
        }
        for (spi, sa) in self.inbound.iter_mut() {
            if let Some(x) = sa.check(now) {
                exp.push((*spi, x));
            }
        }
        for (spi, x) in exp {
            self.ike
                .esp_expired(spi, x == econet::esp::Expiry::Hard, now);
        }
    }

    /// Sends one ICMP echo request from the ECO to the host through the tunnel.
    fn send_ping(&mut self, seq: u16) -> bool {
        let Some(out) = self.outbound.as_mut() else {
            return false;
        };
        let mut ip = vec![0u8; 20 + 8 + 56];
        ip[0] = 0x45;
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&seq.to_be_bytes());
        ip[8] = 64;
        ip[9] = 1;
        ip[12..16].copy_from_slice(&ECO.octets());
        ip[16..20].copy_from_slice(&H_ADDR.octets());
        let c = !checksum::data(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip[20] = 8;
        ip[24..26].copy_from_slice(&0x4543u16.to_be_bytes());
        ip[26..28].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in ip[28..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = !checksum::data(&ip[20..]);
        ip[22..24].copy_from_slice(&c.to_be_bytes());
        let mut buf = vec![0u8; 2048];
        buf[HEADER_LEN..HEADER_LEN + ip.len()].copy_from_slice(&ip);
        let Ok(n) = out.seal_in_place(&mut buf, ip.len()) else {
            return false;
        };
        self.s4500.send_to(&buf[..n], self.peer).is_ok()
    }

    /// A ping that must come back within a second.
    fn ping(&mut self, seq: u16) -> bool {
        if !self.send_ping(seq) {
            return false;
        }
        self.run_until(Duration::from_secs(1), |s| s.replies.contains(&seq))
    }

    fn up(&self) -> bool {
        self.ike.state() == State::Established && self.outbound.is_some()
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    fn downs(&self) -> Vec<DownReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::IkeDown { reason } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

/// With `ECONET_IKE_KEEP=DIR`, the ESP keys of every CHILD SA go to DIR/keys.txt (and
/// the captures to DIR), to make test vectors from real strongSwan traffic. Test code.
fn keep_keys(c: &econet::ike::ChildSa) {
    let Ok(dir) = std::env::var("ECONET_IKE_KEEP") else {
        return;
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let line = format!(
        "in {:08x} {}\nout {:08x} {}\n",
        c.inbound.spi,
        hex(c.inbound.keymat.expose()),
        c.outbound.spi,
        hex(c.outbound.keymat.expose())
    );
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{dir}/keys.txt"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

fn keep_capture(bed: &Bed, file: &str) {
    if let Ok(dir) = std::env::var("ECONET_IKE_KEEP") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(bed.path(file), format!("{dir}/{file}"));
    }
}

fn brief(e: &Event) -> String {
    match e {
        Event::ChildUp(c) => format!(
            "ChildUp in {:08x} out {:08x} {:?} <-> {:?}",
            c.inbound.spi, c.outbound.spi, c.ts_local, c.ts_remote
        ),
        Event::ChildRekeyed { old, new, send } => format!(
            "ChildRekeyed {:08x}/{:08x} -> {:08x}/{:08x} send {send}",
            old.inbound, old.outbound, new.inbound.spi, new.outbound.spi
        ),
        e => format!("{e:?}"),
    }
}

/// Pings continuously while `during` runs, every ping must answer.
fn pings_ok(sh: &mut Shell, charon: &Charon, seq: &mut u16, n: usize) {
    for _ in 0..n {
        *seq += 1;
        if !sh.ping(*seq) {
            let log = charon.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "ping {seq} got no reply (ESP in {}, dropped {}); charon:\n{}\n{}",
                sh.esp_in,
                sh.esp_drops,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                charon.list_sas()
            );
        }
    }
}

/// The SPIs of installed CHILD SAs as charon lists them (its in and out).
fn charon_spis(list: &str) -> Vec<String> {
    let mut installed = false;
    let mut out = Vec::new();
    for l in list.lines() {
        if l.contains("reqid") {
            installed = l.contains("INSTALLED");
        }
        let mut w = l.split_whitespace();
        if let (true, Some("in" | "out"), Some(spi)) = (installed, w.next(), w.next()) {
            out.push(spi.trim_end_matches(',').to_string());
        }
    }
    out
}

/// tshark's isakmp and esp dissectors over a capture: no malformed packets, and the
/// expected message kinds present.
fn tshark_check(
    bed: &Bed,
    file: &str,
    must: &[&str],
    keys: &[(u32, String)],
    requests: usize,
    replies: usize,
) {
    keep_capture(bed, file);
    let tshark = |verbose: bool| {
        let mut c = Command::new("tshark");
        c.args(["-r", &bed.path(file), "-d", "udp.port==4500,udpencap"]);
        // Our ESP keys, so tshark decrypts both directions (RFC 4106 AES-GCM, 16-byte
        // ICV: key and salt in one).
        c.args(["-o", "esp.enable_encryption_decode:TRUE"]);
        for (spi, key) in keys {
            c.arg("-o").arg(format!(
                "uat:esp_sa:\"IPv4\",\"*\",\"*\",\"0x{spi:08x}\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{key}\",\"NULL\",\"\""
            ));
        }
        if verbose {
            c.arg("-V");
        }
        let out = c.output().expect("tshark");
        assert!(out.status.success(), "tshark failed on {file}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let summary = tshark(false);
    eprintln!("{summary}");
    let text = tshark(true);
    for bad in ["Malformed", "Expert Info (Error", "[Malformed Packet"] {
        assert!(!text.contains(bad), "tshark: {bad} in {file}:\n{text}");
    }
    for m in must {
        assert!(text.contains(m), "tshark: no {m:?} in {file}");
    }
    // Every ESP packet decrypted to our pings and their replies.
    assert!(!summary.contains("ESP (SPI="), "undecrypted ESP in {file}");
    let count = |what: &str| {
        summary
            .lines()
            .filter(|l| l.contains(what) && l.contains("id=0x4543"))
            .count()
    };
    assert_eq!(count("Echo (ping) request"), requests, "{file}");
    assert_eq!(count("Echo (ping) reply"), replies, "{file}");
}

/// econet initiates; both sides rekey both SA kinds on demand, under traffic; DPD
/// notices charon's death.
#[test]
fn econet_initiator() {
    let bed = Bed::new();
    let _cap = bed.capture("initiator.pcap");
    let mut charon = start_charon(&bed, &swanctl_conf(false, "", "", PSK, E_ID));
    let mut sh = Shell::new(&bed, Shell::cfg(true));
    let t0 = Instant::now();
    sh.ike.connect(Instant::now());
    assert!(
        sh.run_until(Duration::from_secs(5), Shell::up),
        "no tunnel: {:?}\n{}",
        sh.events,
        charon.log()
    );
    eprintln!("established in {:?}", t0.elapsed());
    let list = charon.list_sas();
    assert!(
        list.contains("ESTABLISHED") && list.contains("INSTALLED"),
        "{list}"
    );
    assert!(
        list.contains("AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"),
        "{list}"
    );
    assert!(list.contains("local  172.31.1.0/24"), "{list}");
    assert!(list.contains("remote 10.3.0.0/24"), "{list}");
    let mut seq = 0;
    pings_ok(&mut sh, &charon, &mut seq, 3);

    // CHILD SA rekey by econet, with pings in flight around it.
    let before = charon_spis(&list);
    sh.send_ping(100);
    sh.ike.rekey_children(Instant::now());
    assert!(sh.run_until(Duration::from_secs(3), |s| {
        s.count(|e| matches!(e, Event::ChildRekeyed { .. })) == 1 && s.replies.contains(&100)
    }));
    pings_ok(&mut sh, &charon, &mut seq, 3);
    let list = charon.list_sas();
    let after = charon_spis(&list);
    let ours = sh.ike.status(Instant::now());
    let active = ours.children.iter().find(|c| c.active).unwrap().spis;
    assert_eq!(
        after,
        [
            format!("{:08x}", active.outbound),
            format!("{:08x}", active.inbound)
        ],
        "{before:?} {after:?}\n{list}"
    );

    // IKE SA rekey by econet.
    let ike_before = sh.ike.status(Instant::now());
    sh.ike.rekey_ike(Instant::now());
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .ike
        .status(Instant::now())
        .ike_rekeys
        == 1));
    sh.run_until(Duration::from_millis(300), |_| false);
    let st = sh.ike.status(Instant::now());
    assert_ne!(st.spi_i, ike_before.spi_i);
    let list = charon.list_sas();
    assert_eq!(list.matches("ESTABLISHED").count(), 1, "{list}");
    assert!(
        list.contains(&format!("{:016x}_i", st.spi_i)),
        "{st:?}\n{list}"
    );
    pings_ok(&mut sh, &charon, &mut seq, 3);

    // charon rekeys the CHILD SA, then the IKE SA, under traffic.
    let _ = charon.swanctl(&["--rekey", "--child", "net"]);
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .count(|e| matches!(e, Event::ChildRekeyed { .. }))
        == 2));
    pings_ok(&mut sh, &charon, &mut seq, 3);
    let _ = charon.swanctl(&["--rekey", "--ike", "econet"]);
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .ike
        .status(Instant::now())
        .ike_rekeys
        == 2));
    pings_ok(&mut sh, &charon, &mut seq, 3);
    // The replaced inbound SAs go after the linger time; one CHILD SA remains.
    sh.run_until(Duration::from_millis(1500), |_| false);
    assert_eq!(sh.inbound.len(), 1);
    assert_eq!(
        sh.count(|e| matches!(
            e,
            Event::ChildDown {
                reason: ChildDownReason::Rekeyed,
                ..
            }
        )),
        2
    );
    let list = charon.list_sas();
    assert_eq!(list.matches("INSTALLED").count(), 1, "{list}");
    assert_eq!(list.matches("ESTABLISHED").count(), 1, "{list}");
    pings_ok(&mut sh, &charon, &mut seq, 2);
    // A second round, now under continuous traffic: pings keep flowing while both
    // sides rekey; every one must come back.
    let _ = charon.swanctl(&["--rekey", "--child", "net"]);
    pings_ok(&mut sh, &charon, &mut seq, 3);
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .count(|e| matches!(e, Event::ChildRekeyed { .. }))
        == 3));
    sh.ike.rekey_children(Instant::now());
    pings_ok(&mut sh, &charon, &mut seq, 3);
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .count(|e| matches!(e, Event::ChildRekeyed { .. }))
        == 4));
    let st = sh.ike.status(Instant::now());
    assert_eq!(st.child_rekeys, 4);
    assert_eq!(sh.esp_drops, 0);
    assert!(sh.downs().is_empty(), "{:?}", sh.downs());
    assert!(charon.log().contains("IKE_SA econet[1] established"));

    // Let the last rekey's DELETE exchange and the linger time pass first, so the
    // only request left to go unanswered is the liveness check.
    assert!(sh.run_until(Duration::from_secs(3), |s| s.inbound.len() == 1));
    sh.run_until(Duration::from_millis(200), |_| false);
    // DPD: charon dies; econet notices within DPD (2 s) + retransmits (7.5 s).
    charon.kill();
    let t = Instant::now();
    assert!(sh.run_until(Duration::from_secs(15), |s| !s.downs().is_empty()));
    eprintln!("DPD noticed in {:?}", t.elapsed());
    assert_eq!(sh.downs(), [DownReason::DpdTimeout]);
    assert!(sh.inbound.is_empty() && sh.outbound.is_none());
    drop(_cap);
    tshark_check(
        &bed,
        "initiator.pcap",
        &[
            "IKE_SA_INIT",
            "IKE_AUTH",
            "CREATE_CHILD_SA",
            "INFORMATIONAL",
            "Encapsulating Security Payload",
        ],
        &sh.esp_keys,
        usize::from(seq) + 1, // and ping 100
        sh.replies.len(),
    );
}

/// charon initiates; econet (the responder) rekeys both SA kinds by its own short
/// lifetimes under continuous pings. (charon's timers are set longer and without
/// jitter, so they never fire first: its rekeys are covered in `econet_initiator`.)
#[test]
fn econet_responder() {
    let bed = Bed::new();
    let _cap = bed.capture("responder.pcap");
    let charon = start_charon(
        &bed,
        &swanctl_conf(
            true,
            "rekey_time = 9s\n        rand_time = 0s\n        life_time = 30s",
            "rekey_time = 20s\n    rand_time = 0s\n    over_time = 10s",
            PSK,
            E_ID,
        ),
    );
    let mut cfg = Shell::cfg(false);
    // Our own timers: CHILD SA every 7.35 s (a responder waits 5% longer), IKE SA
    // every 11.55 s.
    cfg.child_lifetime = Duration::from_secs(7);
    cfg.ike_lifetime = Duration::from_secs(11);
    let mut sh = Shell::new(&bed, cfg);
    let _initiate = charon.initiate();
    assert!(
        sh.run_until(Duration::from_secs(5), Shell::up),
        "no tunnel: {:?}\n{}",
        sh.events,
        charon.log()
    );
    let list = charon.list_sas();
    assert!(
        list.contains("ESTABLISHED") && list.contains("INSTALLED"),
        "{list}"
    );
    // charon started on 500 and moved to 4500.
    assert!(
        list.contains("192.0.2.1[4500]") || list.contains("192.0.2.1"),
        "{list}"
    );
    let mut seq = 0;
    let t = Instant::now();
    // 24 s of pings, 4 a second, across several rekeys from both ends.
    while t.elapsed() < Duration::from_secs(24) {
        seq += 1;
        assert!(sh.send_ping(seq), "no SA to send ping {seq} on");
        sh.run_until(Duration::from_millis(250), |_| false);
    }
    sh.run_until(Duration::from_millis(500), |_| false);
    let lost: Vec<u16> = (1..=seq).filter(|s| !sh.replies.contains(s)).collect();
    let st = sh.ike.status(Instant::now());
    eprintln!("{st:?}\nlost {lost:?}\n{}", charon.list_sas());
    let log = charon.log();
    for l in log.lines().filter(|l| l.contains("CREATE_CHILD_SA")) {
        eprintln!("charon: {l}");
    }
    assert!(lost.is_empty(), "lost pings {lost:?}");
    assert_eq!(st.child_rekeys, 3, "{st:?}");
    assert_eq!(st.ike_rekeys, 2, "{st:?}");
    // Every rekey came from econet's timers: CHILD SA rekeys carry REKEY_SA, IKE SA
    // rekeys a KE.
    let requests = |f: &dyn Fn(&str) -> bool| {
        log.lines()
            .filter(|l| l.contains("parsed CREATE_CHILD_SA request") && f(l))
            .count()
    };
    let child = requests(&|l| l.contains("N(REKEY_SA)"));
    let ike = requests(&|l| l.contains(" KE "));
    assert_eq!(child, 3, "{st:?}");
    assert_eq!(ike, 2, "{st:?}");
    assert_eq!(
        child,
        sh.count(|e| matches!(e, Event::ChildRekeyed { send: true, .. }))
    );
    assert_eq!(log.matches("rekeyed between").count(), 2);
    assert!(sh.downs().is_empty(), "{:?}", sh.downs());
    assert_eq!(sh.esp_drops, 0);
    let list = charon.list_sas();
    assert_eq!(list.matches("ESTABLISHED").count(), 1, "{list}");
    drop(_cap);
    tshark_check(
        &bed,
        "responder.pcap",
        &[
            "IKE_SA_INIT",
            "IKE_AUTH",
            "CREATE_CHILD_SA",
            "Encapsulating Security Payload",
        ],
        &sh.esp_keys,
        usize::from(seq),
        sh.replies.len(),
    );
}

/// A wrong PSK or identity fails cleanly in both roles.
#[test]
fn wrong_psk_and_identity_are_rejected() {
    let bed = Bed::new();
    let _cap = bed.capture("reject.pcap");
    // charon has another PSK: econet (initiator) is refused.
    let mut charon = start_charon(
        &bed,
        &swanctl_conf(false, "", "", "some other secret", E_ID),
    );
    let mut sh = Shell::new(&bed, Shell::cfg(true));
    sh.ike.connect(Instant::now());
    assert!(sh.run_until(Duration::from_secs(5), |s| !s.downs().is_empty()));
    assert_eq!(sh.downs(), [DownReason::AuthFailed]);
    assert!(!charon.list_sas().contains("ESTABLISHED"));
    assert!(sh.inbound.is_empty());
    charon.kill();
    drop(charon);
    drop(sh);

    // charon expects another identity.
    let mut charon = start_charon(
        &bed,
        &swanctl_conf(false, "", "", PSK, "someone-else.example.com"),
    );
    let mut sh = Shell::new(&bed, Shell::cfg(true));
    sh.ike.connect(Instant::now());
    assert!(sh.run_until(Duration::from_secs(5), |s| !s.downs().is_empty()));
    assert_eq!(sh.downs(), [DownReason::AuthFailed]);
    charon.kill();
    drop(charon);
    drop(sh);

    // econet expects another gateway identity: it refuses charon's AUTH.
    let mut charon = start_charon(&bed, &swanctl_conf(false, "", "", PSK, E_ID));
    let mut cfg = Shell::cfg(true);
    cfg.remote_id = econet::ike::Identity::parse("not-the-gw.example.com");
    let mut sh = Shell::new(&bed, cfg);
    sh.ike.connect(Instant::now());
    assert!(sh.run_until(Duration::from_secs(5), |s| !s.downs().is_empty()));
    assert_eq!(sh.downs(), [DownReason::AuthFailed]);
    charon.kill();
    drop(charon);
    drop(sh);

    // charon initiates with the wrong PSK: econet (responder) refuses it.
    let charon = start_charon(&bed, &swanctl_conf(true, "", "", "some other secret", E_ID));
    let mut sh = Shell::new(&bed, Shell::cfg(false));
    let _initiate = charon.initiate();
    sh.run_until(Duration::from_secs(4), |s| !s.downs().is_empty());
    assert_eq!(sh.downs(), [DownReason::AuthFailed]);
    assert_eq!(sh.ike.state(), State::Idle);
    assert!(
        wait_until(Duration::from_secs(3), || charon
            .log()
            .contains("AUTHENTICATION_FAILED")),
        "{}",
        charon.log()
    );
    drop(_cap);
    tshark_check(&bed, "reject.pcap", &["IKE_AUTH"], &[], 0, 0);
}

/// INVALID_KE_PAYLOAD in both roles, a COOKIE round trip, ecp256, and CHILD SA rekeys
/// with PFS from both ends.
#[test]
fn negotiation_variants() {
    let bed = Bed::new();
    let _cap = bed.capture("negotiation.pcap");
    // charon takes only x25519 and wants PFS; econet offers ecp256 first.
    let conf = swanctl_conf(false, "", "", PSK, E_ID)
        .replace("prfsha256-x25519-ecp256", "prfsha256-x25519")
        .replace(
            "esp_proposals = aes256gcm16",
            "esp_proposals = aes256gcm16-x25519",
        );
    let mut charon = start_charon(&bed, &conf);
    let mut cfg = Shell::cfg(true);
    cfg.groups = vec![econet::ike::Group::Ecp256, econet::ike::Group::X25519];
    cfg.child_pfs = Some(econet::ike::Group::X25519);
    let mut sh = Shell::new(&bed, cfg);
    sh.ike.connect(Instant::now());
    assert!(
        sh.run_until(Duration::from_secs(5), Shell::up),
        "{:?}\n{}",
        sh.events,
        charon.log()
    );
    assert!(
        charon.log().contains("N(INVAL_KE)"),
        "no INVALID_KE_PAYLOAD sent"
    );
    let list = charon.list_sas();
    assert!(list.contains("CURVE_25519"), "{list}");
    let mut seq = 0;
    pings_ok(&mut sh, &charon, &mut seq, 2);
    // PFS rekeys from both ends.
    sh.ike.rekey_children(Instant::now());
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .count(|e| matches!(e, Event::ChildRekeyed { .. }))
        == 1));
    pings_ok(&mut sh, &charon, &mut seq, 2);
    let _ = charon.swanctl(&["--rekey", "--child", "net"]);
    assert!(sh.run_until(Duration::from_secs(3), |s| s
        .count(|e| matches!(e, Event::ChildSend { .. }))
        == 1));
    pings_ok(&mut sh, &charon, &mut seq, 2);
    let log = charon.log();
    let pfs = log
        .lines()
        .filter(|l| l.contains("CREATE_CHILD_SA") && l.contains(" KE "))
        .count();
    assert!(pfs >= 4, "CREATE_CHILD_SA without KE:\n{log}");
    assert!(sh.downs().is_empty());
    let mut keys = sh.esp_keys.clone();
    let replies = sh.replies.len();
    charon.kill();
    drop(charon);
    drop(sh);

    // charon initiates with x25519; econet (responder) takes only ecp256 and demands a
    // cookie from everyone.
    let charon = start_charon(&bed, &swanctl_conf(true, "", "", PSK, E_ID));
    let mut cfg = Shell::cfg(false);
    cfg.groups = vec![econet::ike::Group::Ecp256];
    cfg.cookie_threshold = 0;
    let mut sh = Shell::new(&bed, cfg);
    let _initiate = charon.initiate();
    assert!(
        sh.run_until(Duration::from_secs(8), Shell::up),
        "{:?}\n{}",
        sh.events,
        charon.log()
    );
    let log = charon.log();
    assert!(log.contains("N(COOKIE)"), "no cookie:\n{log}");
    assert!(log.contains("N(INVAL_KE)"), "no INVALID_KE_PAYLOAD:\n{log}");
    let list = charon.list_sas();
    assert!(list.contains("ECP_256"), "{list}");
    pings_ok(&mut sh, &charon, &mut seq, 2);
    keys.extend(sh.esp_keys.iter().cloned());
    drop(_cap);
    tshark_check(
        &bed,
        "negotiation.pcap",
        &[
            "IKE_SA_INIT",
            "COOKIE",
            "INVALID_KE_PAYLOAD",
            "Key Exchange",
        ],
        &keys,
        usize::from(seq),
        replies + sh.replies.len(),
    );
}
