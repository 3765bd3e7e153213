//! End to end: `econet::dhcp::Server` on a packet socket in one network namespace
//! serving the real udhcpc, dhclient and dhcpcd in another, over a veth. Needs root and
//! those clients, so it is ignored by default:
//!
//!     cargo test --test dhcp_clients -- --ignored --nocapture
//!
//! This is a test shell, not the product's: the event loop integrates the server.
//! Namespaces are named `ecdhcp-<pid>-<n>` and always deleted; only addresses inside
//! them are used; every loop and wait is bounded.

use econet::addr::MacAddr;
use econet::dhcp::{frame, Config, Endpoint, EndpointKey, Output, Rx, Server};
use econet::wire::udp::Checksum;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GW: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn must(cmd: &str) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "{cmd}: {out}");
    out
}

/// Two namespaces joined by a veth (eth0 in each); deleted on drop, even on panic.
struct Netns {
    server: String,
    client: String,
    dir: String,
}

impl Netns {
    fn new() -> Netns {
        let pid = std::process::id();
        let n = Netns {
            server: format!("ecdhcp-{pid}-1"),
            client: format!("ecdhcp-{pid}-2"),
            dir: format!("/tmp/ecdhcp-{pid}"),
        };
        must(&format!("mkdir -p {}", n.dir));
        must(&format!("ip netns add {}", n.server));
        must(&format!("ip netns add {}", n.client));
        must(&format!(
            "ip -n {s} link add eth0 type veth peer name eth0 netns {c} && \
             ip -n {s} addr add {GW}/24 dev eth0 && ip -n {s} link set eth0 up && \
             ip -n {c} link set eth0 up && ip -n {c} link set lo up",
            s = n.server,
            c = n.client
        ));
        n
    }

    fn mac(&self, ns: &str) -> MacAddr {
        let out = must(&format!("ip -n {ns} -br link show eth0"));
        out.split_whitespace()
            .nth(2)
            .and_then(|m| m.parse().ok())
            .expect("mac")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.server));
        let _ = sh(&format!("ip netns del {}", self.client));
        let _ = sh(&format!("rm -rf {}", self.dir));
    }
}

/// A packet socket on `eth0` of the namespace at `path`, opened from a thread that
/// entered it (the socket stays in that namespace).
fn packet_socket(path: &str) -> (OwnedFd, i32) {
    let ns = std::fs::File::open(path).expect("netns");
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    // SAFETY: plain socket(2) and bind(2) calls with a zeroed, filled sockaddr_ll.
    unsafe {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        assert!(fd >= 0, "socket");
        let fd = OwnedFd::from_raw_fd(fd);
        let ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
        assert!(ifindex > 0);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        let r = libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind");
        (fd, ifindex)
    }
}

fn wall() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The test shell: receive, hand to the server, send what it says; until `stop`.
fn serve(path: String, mut server: Server, key: EndpointKey, stop: Arc<AtomicBool>) -> Server {
    let (fd, _) = packet_socket(&path);
    let gw_mac = {
        let out = std::fs::read_to_string("/sys/class/net/eth0/address").unwrap_or_default();
        out.trim().parse::<MacAddr>().expect("own mac")
    };
    let mut rx = [0u8; 2048];
    let mut tx = [0u8; 1514];
    let send = |frame: &[u8]| {
        // SAFETY: send(2) of an initialised buffer on a bound packet socket.
        let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize, "send");
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let now = Instant::now();
        let timeout = server
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now).as_millis().min(50) as i32)
            .unwrap_or(50);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout) };
        let mut outputs = Vec::new();
        loop {
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: recvfrom(2) into our buffer and sockaddr.
            let n = unsafe {
                libc::recvfrom(
                    fd.as_raw_fd(),
                    rx.as_mut_ptr().cast(),
                    rx.len(),
                    libc::MSG_DONTWAIT,
                    &mut from as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n <= 0 {
                break;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let frame = &rx[..n as usize];
            let now = Instant::now();
            if let Some((mac, ip)) = frame::parse_arp(frame) {
                if let Some(o) = server.handle_arp(now, mac, ip) {
                    outputs.push((o, Vec::new()));
                }
                continue;
            }
            // Frames from a local veth may carry partial checksums.
            let Some((src_mac, src_ip, payload)) = frame::parse_request(frame, Checksum::Ignore)
            else {
                continue;
            };
            let msg = Rx {
                endpoint: Some(&key),
                src_mac,
                src_ip,
                payload,
            };
            let mut buf = [0u8; 1472];
            if let Some(o) = server.handle(now, wall(), msg, &mut buf) {
                outputs.push((o, buf.to_vec()));
            }
        }
        let mut buf = [0u8; 1472];
        while let Some(o) = server.poll(Instant::now(), wall(), &mut buf) {
            outputs.push((o, buf.to_vec()));
            if outputs.len() > 1000 {
                break;
            }
        }
        for (o, payload) in outputs {
            match o {
                Output::Reply(r) => {
                    tx[frame::PAYLOAD_OFFSET..frame::PAYLOAD_OFFSET + r.payload_len]
                        .copy_from_slice(&payload[..r.payload_len]);
                    let n = frame::emit_reply(&mut tx, gw_mac, GW, &r).expect("frame");
                    send(&tx[..n]);
                }
                Output::Probe(ip) => {
                    let n = frame::emit_probe(&mut tx, gw_mac, ip).expect("probe");
                    send(&tx[..n]);
                }
            }
        }
    }
    server
}

fn hook(dir: &str) -> String {
    let path = format!("{dir}/hook");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         case \"${1:-}${reason:-}\" in\n\
         bound|renew|BOUND|RENEW|REBOOT|REBIND)\n\
             a=${ip:-${new_ip_address:-}}\n\
             [ -n \"$a\" ] && ip addr replace \"$a/24\" dev eth0 ;;\n\
         esac\n\
         exit 0\n",
    )
    .expect("hook");
    must(&format!("chmod +x {path}"));
    path
}

fn client_addr(ns: &str) -> Option<Ipv4Addr> {
    let out = must(&format!("ip -n {ns} -4 -br addr show eth0"));
    out.split_whitespace()
        .nth(2)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

#[test]
#[ignore = "needs root, network namespaces, udhcpc, dhclient and dhcpcd"]
fn real_clients_get_the_same_stable_address() {
    let n = Netns::new();
    let eco_mac = n.mac(&n.client);
    let key = EndpointKey {
        app_id: "22222222-0000-4000-8000-000000000001".into(),
        ifname: "eth0".into(),
    };
    let mut cfg = Config::new("10.77.0.0/24".parse().unwrap(), GW);
    cfg.range_start = Ipv4Addr::new(10, 77, 0, 100);
    cfg.range_end = Ipv4Addr::new(10, 77, 0, 150);
    cfg.domain = Some("eco.internal".into());
    cfg.mtu = Some(1400);
    cfg.routes = vec![econet::dhcp::Route {
        dest: "192.168.5.0/24".parse().unwrap(),
        gateway: GW,
    }];
    cfg.endpoints = vec![Endpoint {
        key: key.clone(),
        mac: eco_mac,
        static_ip: None,
        hostname: "web".into(),
    }];
    let stop = Arc::new(AtomicBool::new(false));
    let path = format!("/run/netns/{}", n.server);
    let server = Server::new(cfg);
    let handle = {
        let (stop, key) = (stop.clone(), key.clone());
        std::thread::spawn(move || serve(path, server, key, stop))
    };
    let hook = hook(&n.dir);
    let c = &n.client;
    let d = &n.dir;
    let mut got = Vec::new();

    let t = Instant::now();
    let (ok, out) = sh(&format!(
        "timeout 20 ip netns exec {c} busybox udhcpc -f -q -n -i eth0 -s {hook} -t 5 -T 1 -x hostname:web"
    ));
    eprintln!("udhcpc: {:?}\n{out}", t.elapsed());
    assert!(ok, "udhcpc failed");
    got.push(client_addr(c));
    must(&format!("ip -n {c} addr flush dev eth0"));

    let t = Instant::now();
    let (ok, out) = sh(&format!(
        "timeout 20 ip netns exec {c} unshare --uts sh -c 'hostname web; exec dhclient -4 -v -1 \
         -sf {hook} -pf {d}/dhclient.pid -lf {d}/dhclient.leases eth0'"
    ));
    eprintln!("dhclient: {:?}\n{out}", t.elapsed());
    let _ = sh(&format!("kill $(cat {d}/dhclient.pid)"));
    assert!(ok, "dhclient failed");
    got.push(client_addr(c));
    must(&format!("ip -n {c} addr flush dev eth0"));

    let t = Instant::now();
    let (ok, out) = sh(&format!(
        "timeout 40 ip netns exec {c} sh -c 'mount -t tmpfs none /run && mkdir -p /var/lib/dhcpcd \
         && mount -t tmpfs none /var/lib/dhcpcd && \
         dhcpcd -4 -B -1 -t 30 --nodelay --noarp -h web -c {hook} eth0'"
    ));
    eprintln!("dhcpcd: {:?}\n{out}", t.elapsed());
    assert!(ok, "dhcpcd failed");
    got.push(client_addr(c));

    stop.store(true, Ordering::Relaxed);
    let server = handle.join().expect("server thread");
    eprintln!("addresses: {got:?}");
    let first = got[0].expect("an address");
    assert!(got.iter().all(|a| *a == Some(first)), "{got:?}");
    assert_eq!(server.eco_address(&key), Some(first));
    let leases: Vec<_> = server.leases().collect();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].ip, leases[0].hostname), (first, "web"));
    let snap = String::from_utf8(server.snapshot()).unwrap();
    eprintln!("{snap}");
    assert!(snap.contains(&format!("{first} ")));
}
