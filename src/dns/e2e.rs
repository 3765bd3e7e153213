//! End to end without root: real `dig` → a tiny blocking shell around the core on
//! 127.0.0.1 → a real `dnsmasq` as the upstream, on another loopback port.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const NET: NetId = 1;

/// Kills and reaps a child process on every path, panics included.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the shell thread on every path.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn have(bin: &str, arg: &str) -> bool {
    Command::new(bin)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A query for `name` A, for probing dnsmasq.
fn probe_query(name: &str) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = Builder::new(&mut buf, 0x5151, flags::RD).unwrap();
    let n = NameBuf::from_text(name).unwrap();
    b.question(n.as_wire(), Type::A, Class::IN).unwrap();
    let len = b.finish();
    buf[..len].to_vec()
}

/// Starts dnsmasq on a free loopback port and waits until it answers.
fn start_dnsmasq() -> (KillOnDrop, u16) {
    for _ in 0..5 {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port();
        let mut args = vec![
            "--no-daemon".to_string(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!("--port={port}"),
            "--listen-address=127.0.0.1".into(),
            "--bind-interfaces".into(),
            "--address=/upstream.test/192.0.2.7".into(),
            "--host-record=cached.test,192.0.2.8".into(),
            "--local-ttl=300".into(),
            "--pid-file=".into(),
        ];
        for i in 1..=40 {
            args.push(format!("--host-record=big.test,192.0.2.{i}"));
        }
        let child = Command::new("dnsmasq")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let mut guard = KillOnDrop(child);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let q = probe_query("upstream.test");
        let mut buf = [0u8; 512];
        for _ in 0..50 {
            if !matches!(guard.0.try_wait(), Ok(None)) {
                break; // It exited: most likely the port was taken.
            }
            let _ = sock.send_to(&q, ("127.0.0.1", port));
            if sock.recv_from(&mut buf).is_ok() {
                return (guard, port);
            }
        }
        // Probably lost the port to someone else: try another.
    }
    panic!("dnsmasq did not come up");
}

/// The shell: blocking sockets with short timeouts, one client at a time.
struct Shell {
    dns: Dns,
    udp: UdpSocket,
    tcp: TcpListener,
    upstream: UdpSocket,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn read_framed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).ok()?;
    Some(m)
}

fn write_framed(s: &mut TcpStream, m: &[u8]) {
    let mut f = (m.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(m);
    let _ = s.write_all(&f);
}

impl Shell {
    fn run(mut self, stop: Arc<AtomicBool>) -> Dns {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, from)) = self.udp.recv_from(&mut self.buf) {
                let q = self.buf[..n].to_vec();
                let a = self.dns.handle_query(
                    Instant::now(),
                    NET,
                    from,
                    Transport::Udp,
                    &q,
                    &mut self.out,
                );
                self.act(a, None);
            }
            if let Ok((n, from)) = self.upstream.recv_from(&mut self.buf) {
                let r = self.buf[..n].to_vec();
                let a = self.dns.handle_upstream(
                    Instant::now(),
                    from,
                    Transport::Udp,
                    &r,
                    &mut self.out,
                );
                self.act(a, None);
            }
            if let Ok((mut conn, from)) = self.tcp.accept() {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                while let Some(q) = read_framed(&mut conn) {
                    let a = self.dns.handle_query(
                        Instant::now(),
                        NET,
                        from,
                        Transport::Tcp,
                        &q,
                        &mut self.out,
                    );
                    self.act(a, Some(&mut conn));
                }
            }
            while let Some(a) = self.dns.poll(Instant::now(), &mut self.out) {
                self.act(a, None);
            }
        }
        self.dns
    }

    fn act(&mut self, a: Action, conn: Option<&mut TcpStream>) {
        match a {
            Action::None => {}
            Action::Reply {
                to,
                transport: Transport::Udp,
                len,
                ..
            } => {
                let _ = self.udp.send_to(&self.out[..len], to);
            }
            Action::Reply {
                transport: Transport::Tcp,
                len,
                ..
            } => {
                if let Some(c) = conn {
                    write_framed(c, &self.out[..len]);
                }
            }
            Action::Forward {
                upstream,
                transport: Transport::Udp,
                len,
                ..
            } => {
                let _ = self.upstream.send_to(&self.out[..len], upstream);
            }
            Action::Forward {
                upstream,
                transport: Transport::Tcp,
                len,
                ..
            } => {
                let Ok(mut up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    return;
                };
                let _ = up.set_read_timeout(Some(Duration::from_secs(2)));
                write_framed(&mut up, &self.out[..len]);
                if let Some(r) = read_framed(&mut up) {
                    let a = self.dns.handle_upstream(
                        Instant::now(),
                        upstream,
                        Transport::Tcp,
                        &r,
                        &mut self.out,
                    );
                    // The reply goes back on the client's connection (one level deep).
                    if let Action::Reply { .. } = a {
                        self.act(a, conn);
                    }
                }
            }
        }
    }
}

fn dig(port: u16, args: &[&str]) -> String {
    let t = Instant::now();
    let out = Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+tries=1", "+time=3"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dig runs");
    eprintln!("dig {args:?}: {:?}", t.elapsed());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The core's own listening sockets: UDP and TCP on the same free port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

#[test]
fn dig_through_the_core_to_dnsmasq() {
    if !have("dig", "-v") || !have("dnsmasq", "--version") {
        eprintln!("skipped: needs dig and dnsmasq (bind9-dnsutils, dnsmasq-base)");
        return;
    }
    let t = Instant::now();
    let (_dnsmasq, dport) = start_dnsmasq();
    eprintln!("dnsmasq up after {:?}", t.elapsed());
    let mut dns = Dns::new(Limits::default());
    dns.set_network(
        NET,
        NetParams {
            domain: Some("eco.internal".into()),
            upstreams: vec![SocketAddr::from(([127, 0, 0, 1], dport))],
            static_dns: vec![],
            subnet: Some("10.1.0.0/24".parse().unwrap()),
            subnet6: None,
            app_names: vec![],
        },
    )
    .unwrap();
    dns.set_hosts(NET, vec![("web".into(), Ipv4Addr::new(10, 1, 0, 23))]);
    let (udp, tcp) = bind_pair();
    let port = udp.local_addr().unwrap().port();
    udp.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    tcp.set_nonblocking(true).unwrap();
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let shell = Shell {
        dns,
        udp,
        tcp,
        upstream,
        buf: vec![0; 65535],
        out: vec![0; 65535],
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = StopOnDrop(stop.clone());
    let thread = std::thread::spawn(move || shell.run(stop));

    // Local names.
    assert_eq!(
        dig(port, &["+short", "web.eco.internal"]).trim(),
        "10.1.0.23"
    );
    assert_eq!(dig(port, &["+short", "WEB"]).trim(), "10.1.0.23");
    assert_eq!(
        dig(port, &["+short", "-x", "10.1.0.23"]).trim(),
        "web.eco.internal."
    );
    let aaaa = dig(port, &["web.eco.internal", "AAAA"]);
    assert!(
        aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"),
        "{aaaa}"
    );
    let nx = dig(port, &["nope.eco.internal"]);
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa"),
        "{nx}"
    );
    // Forwarded, then cached.
    assert_eq!(dig(port, &["+short", "upstream.test"]).trim(), "192.0.2.7");
    assert_eq!(dig(port, &["+short", "cached.test"]).trim(), "192.0.2.8");
    let again = dig(port, &["cached.test"]);
    assert!(again.contains("192.0.2.8"), "{again}");
    // Over TCP, forwarded over TCP: all 40 records.
    let big = dig(port, &["+tcp", "big.test"]);
    assert!(big.contains("ANSWER: 40"), "{big}");
    // Over UDP without EDNS0: truncated (from the cache) ...
    let tc = dig(port, &["+noedns", "+ignore", "big.test"]);
    assert!(tc.contains(" tc ") || tc.contains(" tc;"), "{tc}");
    // ... and dig's own retry over TCP gets everything.
    let retried = dig(port, &["+noedns", "big.test"]);
    assert!(retried.contains("ANSWER: 40"), "{retried}");

    drop(stopper);
    let dns = thread.join().expect("shell thread");
    let c = dns.counters();
    assert!(c.local >= 5, "{c:?}");
    assert!(c.forwarded >= 3, "{c:?}");
    assert!(c.cache_hits >= 2, "{c:?}");
    assert_eq!(c.timeouts, 0, "{c:?}");
}
