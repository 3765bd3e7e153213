//! Peers and observers for per-endpoint ACLs and port maps: UDP servers that say who
//! they see, a paced UDP flood and a counting receiver (for `limit`), an upstream
//! resolver serving a hosts file with a short TTL (for `host`), a lookup followed at
//! once by a connect (the first packet after a DNS answer), the per-ACE counters of
//! the status document, and the firewall as `nft` shows it without counters.
#![allow(dead_code)]

use super::{json_at, json_str, stdout, wait_until, Netns, Proc};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn python(ns: &Netns, script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", script])
        .args(args);
    c
}

/// A UDP server in `ns` on `addr:port` that answers each datagram with the sender's
/// address, for `secs` seconds.
pub fn udp_whoami(ns: &Netns, addr: &str, port: u16, secs: u64) -> Proc {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.settimeout(0.5)\n\
         end = time.time() + {secs}\n\
         while time.time() < end:\n\
         \x20   try:\n\
         \x20       d, a = s.recvfrom(2048)\n\
         \x20   except socket.timeout:\n\
         \x20       continue\n\
         \x20   s.sendto(a[0].encode(), a)\n"
    );
    let child = python(ns, &script, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Proc(child)
}

/// Sends one datagram from `ns` to `addr:port` on a connected socket (so only a reply
/// from that very address and port counts, as for a real client) and waits 2 s;
/// the server's answer, if any.
pub fn udp_ask(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n\
         s.connect(('{addr}', {port})); s.send(b'who')\n\
         print(s.recv(100).decode())\n"
    );
    let out = python(ns, &script, &[]).output().ok()?;
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

/// A UDP receiver in `ns` on `addr:port` (IPv4 or IPv6) counting datagrams for `secs` seconds.
pub struct UdpCounter {
    child: Option<Child>,
}

impl UdpCounter {
    pub fn start(ns: &Netns, addr: &str, port: u16, secs: u64) -> UdpCounter {
        let fam = super::clients::family(addr);
        let script = format!(
            "import socket, time\n\
             s = socket.socket(socket.{fam}, socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)\n\
             s.bind(('{addr}', {port})); s.settimeout(0.2)\n\
             end = time.time() + {secs}; n = 0\n\
             while time.time() < end:\n\
             \x20   try:\n\
             \x20       s.recv(2048); n += 1\n\
             \x20   except socket.timeout:\n\
             \x20       pass\n\
             print(n)\n"
        );
        let child = python(ns, &script, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        UdpCounter { child: Some(child) }
    }

    /// Waits for the end of its time and returns how many datagrams came.
    pub fn count(mut self) -> u64 {
        let c = self.child.take().unwrap();
        let out = c.wait_with_output().unwrap();
        stdout(&out)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("UDP counter said {:?}", stdout(&out)))
    }
}

impl Drop for UdpCounter {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `n` datagrams from `ns` to each of the broadcast addresses `to`, port
/// `port` (a socket with SO_BROADCAST).
pub fn udp_broadcast(ns: &Netns, to: &[&str], port: u16, n: u32) {
    let dests: Vec<String> = to.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n\
         for i in range({n}):\n\
         \x20   for a in [{}]:\n\
         \x20       s.sendto(b'econet-broadcast-probe', (a, {port}))\n\
         \x20   time.sleep(0.02)\n",
        dests.join(", ")
    );
    let out = python(ns, &script, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `n` small datagrams from `ns` to `addr:port`, paced evenly over `secs`
/// seconds; returns the time from the first to the last send, in seconds.
pub fn udp_flood(ns: &Netns, addr: &str, port: u16, n: u32, secs: f64) -> f64 {
    let fam = super::clients::family(addr);
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.{fam}, socket.SOCK_DGRAM)\n\
         t0 = time.time(); last = t0\n\
         for i in range({n}):\n\
         \x20   d = t0 + i * {secs} / {n} - time.time()\n\
         \x20   if d > 0:\n\
         \x20       time.sleep(d)\n\
         \x20   try:\n\
         \x20       s.sendto(b'econet-limit-probe', ('{addr}', {port}))\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         \x20   last = time.time()\n\
         print(last - t0)\n"
    );
    let out = python(ns, &script, &[]).output().unwrap();
    stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("flood said {:?}", stdout(&out)))
}

/// An upstream resolver (dnsmasq) in `ns` on `listen`:53 answering the names of a
/// hosts file, with records of TTL `ttl` seconds. `set` rewrites the file and
/// restarts it, as a zone that changes upstream.
pub struct HostsResolver {
    ns: String,
    listen: String,
    ttl: u32,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl HostsResolver {
    pub fn start(
        ns: &Netns,
        listen: &str,
        dir: &Path,
        hosts: &[(&str, &str)],
        ttl: u32,
    ) -> HostsResolver {
        let mut r = HostsResolver {
            ns: ns.name.clone(),
            listen: listen.to_string(),
            ttl,
            dir: dir.to_path_buf(),
            proc: None,
        };
        r.set(hosts);
        r
    }

    /// Serves `hosts` (name, address) from now on: a new file, dnsmasq restarted, and
    /// waits until it answers the first name with its address.
    pub fn set(&mut self, hosts: &[(&str, &str)]) {
        self.proc = None;
        let file = self.dir.join("hosts");
        let text: String = hosts.iter().map(|(n, a)| format!("{a} {n}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let p = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg(format!("--addn-hosts={}", file.display()))
            .arg(format!("--local-ttl={}", self.ttl))
            .arg(format!("--listen-address={}", self.listen))
            .args(["--bind-interfaces", "--port=53"])
            .arg(format!(
                "--pid-file={}",
                self.dir.join("hosts-dnsmasq.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Some(Proc(p));
        let (name, addr) = hosts[0];
        let at = format!("@{}", self.listen);
        let ok = wait_until(Duration::from_secs(5), || {
            Command::new("ip")
                .args([
                    "netns", "exec", &self.ns, "dig", "+short", "+time=1", "+tries=1", &at, name,
                ])
                .output()
                .is_ok_and(|o| stdout(&o).trim() == addr)
        });
        assert!(ok, "the upstream resolver did not come up");
    }
}

/// What a lookup followed at once by a TCP connect saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupConnect {
    /// The first A record of the answer.
    pub addr: Option<String>,
    /// What the server said over the connection (`None`: the connect failed).
    pub answer: Option<String>,
    /// Milliseconds from the DNS answer's arrival to the connection's establishment.
    pub ms: Option<f64>,
}

const LOOKUP_CONNECT: &str = r#"
import random, socket, struct, sys, time
server, name, port, tmo = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
q = struct.pack('>HHHHHH', random.randrange(65536), 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0' + struct.pack('>HH', 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.connect((server, 53)); u.send(q)
r = u.recv(4096)
t_answer = time.monotonic()
def skip(b, i):
    while True:
        l = b[i]
        if l == 0: return i + 1
        if l & 0xc0 == 0xc0: return i + 2
        i += 1 + l
qd, an = struct.unpack('>HH', r[4:8])
i = 12
for _ in range(qd): i = skip(r, i) + 4
addr = None
for _ in range(an):
    i = skip(r, i)
    t, c, ttl, n = struct.unpack('>HHIH', r[i:i + 10]); i += 10
    if t == 1 and n == 4 and addr is None: addr = socket.inet_ntoa(r[i:i + 4])
    i += n
if addr is None:
    print('- - -'); sys.exit(0)
c = socket.socket(); c.settimeout(tmo)
try:
    c.connect((addr, port)); ms = (time.monotonic() - t_answer) * 1000
    print(addr, c.recv(100).decode() or '-', '%.3f' % ms)
except OSError:
    print(addr, '- -')
"#;

/// From `ns`: asks `server` for `name`'s A record over UDP, and the moment the answer
/// arrives connects to its first address on `port`, giving up after `timeout_ms`
/// (under a second: no SYN retransmission, so only the first SYN counts).
pub fn lookup_then_connect(
    ns: &Netns,
    server: &str,
    name: &str,
    port: u16,
    timeout_ms: u64,
) -> LookupConnect {
    let tmo = format!("{}", timeout_ms as f64 / 1000.0);
    let out = python(ns, LOOKUP_CONNECT, &[server, name, &port.to_string(), &tmo])
        .output()
        .unwrap();
    let text = stdout(&out);
    let w: Vec<&str> = text.split_whitespace().collect();
    let field = |i: usize| w.get(i).filter(|s| **s != "-").map(|s| s.to_string());
    LookupConnect {
        addr: field(0),
        answer: field(1),
        ms: field(2).and_then(|s| s.parse().ok()),
    }
}

/// The status path (`networks.N.endpoints.M`) of app `app`'s endpoint `iface`.
pub fn endpoint_path(status: &str, app: &str, iface: &str) -> Option<String> {
    for n in 0.. {
        json_at(status, &format!("networks.{n}"))?;
        for m in 0.. {
            let p = format!("networks.{n}.endpoints.{m}");
            if json_at(status, &p).is_none() {
                break;
            }
            if json_str(status, &format!("{p}.app")).as_deref() == Some(app)
                && json_str(status, &format!("{p}.interface")).as_deref() == Some(iface)
            {
                return Some(p);
            }
        }
    }
    None
}

/// One ACE's counters in status (`"id": 0` is the implicit drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AceCount {
    pub id: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// The per-ACE counters app `app`'s endpoint `iface` reports. The contract gives each
/// entry's fields (`id`, `packets`, `bytes`) but not the member holding them, so this
/// takes the endpoint's first member that is a non-empty array of such entries.
pub fn ace_counters(status: &str, app: &str, iface: &str) -> Option<Vec<AceCount>> {
    use econet::config::json;
    let ep = json_at(status, &endpoint_path(status, app, iface)?)?;
    let b = ep.as_bytes();
    json::check_syntax(b).ok()?;
    for (_, span) in json::members(b, &(0..b.len())) {
        let arr = std::str::from_utf8(&b[span]).ok()?;
        let mut out = Vec::new();
        for i in 0.. {
            let num =
                |k: &str| json_at(arr, &format!("{i}.{k}")).and_then(|v| v.parse::<u64>().ok());
            match (num("id"), num("packets"), num("bytes")) {
                (Some(id), Some(packets), Some(bytes)) => out.push(AceCount {
                    id: id as u32,
                    packets,
                    bytes,
                }),
                _ => break,
            }
        }
        if !out.is_empty() {
            return Some(out);
        }
    }
    None
}

/// The firewall in `ns` as `nft -s list ruleset` shows it (no counters), with the
/// time left on dynamic set elements taken out: what a change of config would change.
pub fn stable_ruleset(ns: &Netns) -> String {
    let text = stdout(&ns.exec(&["nft", "-s", "list", "ruleset"]));
    let mut out = String::with_capacity(text.len());
    let mut words = text.split(' ').peekable();
    while let Some(w) = words.next() {
        if w == "expires" {
            words.next();
            continue;
        }
        out.push_str(w);
        out.push(' ');
    }
    out
}

/// Whether a TCP connect from `ns` to `addr:port` fails within a second (a filter's
/// drop: the SYN is never answered, and a second is before its first retransmission).
pub fn tcp_blocked(ns: &Netns, addr: &str, port: u16) -> bool {
    let script = format!(
        "import socket\ns = socket.create_connection(('{addr}', {port}), timeout=1)\nprint(s.recv(100).decode())\n"
    );
    !python(ns, &script, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a datagram from `ns` to `addr:port` gets no answer within a second.
pub fn udp_blocked(ns: &Netns, addr: &str, port: u16) -> bool {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)\n\
         s.connect(('{addr}', {port})); s.send(b'who')\n\
         print(s.recv(100).decode())\n"
    );
    !python(ns, &script, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
