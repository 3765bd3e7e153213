//! The DNS shell: sockets around the sans-I/O [`crate::dns::Dns`] core. One UDP socket
//! and one TCP listener per L3 network on its gateway address, and on its `gateway6`
//! when it has IPv6, bound to its bridge (so nothing on a port is ever answered); an
//! upstream UDP socket per network and family (the IPv4 one bound to the gateway
//! where the spec wants forwarded queries to leave from it; the IPv6 one opened when
//! an upstream is IPv6), and TCP connections to clients and upstreams, all
//! non-blocking in the event loop.

use super::sock;
use crate::acl::hosts;
use crate::dns::{Action, Dns, Limits, NetId, NetParams, Transport};
use crate::wire::dns::tcp;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
    UdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// TCP clients served at once: in all, per network (so no network can take another's
/// share), and per client address (so one ECO cannot take its network's).
const MAX_TCP_CLIENTS: usize = 256;
const MAX_TCP_PER_NET: usize = 32;
const MAX_TCP_PER_CLIENT: usize = 4;
/// A client has this long for each whole query, from the connection's start or its
/// last whole query: trickling bytes does not extend it (RFC 7766 6.2.3).
const TCP_MSG_DEADLINE: Duration = Duration::from_secs(5);
/// How long an upstream connection may take to answer.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Most TCP connections to upstreams in flight.
const MAX_TCP_UPSTREAMS: usize = 64;

/// What the shell needs to know of one network.
#[derive(Clone, Debug)]
pub struct NetSpec {
    pub net_id: String,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    /// The network's IPv6 gateway (`ip.subnet6`): DNS listens there too.
    pub gateway6: Option<Ipv6Addr>,
    /// Forwarded queries leave from the gateway address (cloud and mesh networks).
    pub forward_from_gateway: bool,
    pub params: NetParams,
    /// The names of the `host` matches in the ACLs of the network's endpoints
    /// (lowercase, no trailing dot): the addresses answers give for them (or their
    /// subdomains) are admitted to the network's set before the answer leaves.
    pub acl_hosts: Vec<String>,
}

struct NetSockets {
    spec: NetSpec,
    id: NetId,
    udp: UdpSocket,
    tcp: TcpListener,
    up: UdpSocket,
    /// On `gateway6`: opened with the others, or at a later configure if that
    /// failed (say, IPv6 turned off then on).
    udp6: Option<UdpSocket>,
    tcp6: Option<TcpListener>,
    /// For IPv6 upstreams: opened when the network has one.
    up6: Option<UdpSocket>,
    /// TCP clients refused or cut for a fairer one (for status).
    tcp_refused: u64,
    /// Addresses admitted for `host` matches, refused by a full set, or not
    /// admitted for another reason (for status).
    acl_learned: u64,
    acl_full: u64,
    acl_failed: u64,
    /// The set's `static_dns` elements (no timeout), which answers must not renew
    /// with one: sorted.
    static_keys: Vec<[u8; 8]>,
}

struct TcpConn {
    net: NetId,
    peer: SocketAddr,
    sock: TcpStream,
    inbuf: tcp::Reader,
    out: Vec<u8>,
    deadline: Instant,
    /// When it was accepted (the oldest of a crowded client goes first).
    since: Instant,
    /// For an upstream connection: whether its connect has completed.
    connected: bool,
}

impl TcpConn {
    fn new(
        net: NetId,
        peer: SocketAddr,
        sock: TcpStream,
        now: Instant,
        connected: bool,
    ) -> TcpConn {
        TcpConn {
            net,
            peer,
            sock,
            inbuf: tcp::Reader::default(),
            out: Vec::new(),
            deadline: now + TCP_IDLE,
            since: now,
            connected,
        }
    }

    /// Takes one complete length-prefixed message from the input, if there is one.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        self.inbuf.next_message()
    }

    /// Reads what is available; `false` when the connection is finished.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if !self.inbuf.push(&buf[..n]) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Writes what is queued; `false` on a broken connection.
    fn flush(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(0) => return false,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        true
    }
}

pub struct DnsShell {
    pub core: Dns,
    nets: Vec<NetSockets>,
    ids: HashMap<String, NetId>,
    next_id: NetId,
    out: Vec<u8>,
    /// Queries in and replies out, a batch per system call.
    batch: sock::UdpBatch,
    /// Upstream replies (up to 64 KiB each), allocated on first use.
    up_buf: Vec<u8>,
    clients: Vec<TcpConn>,
    upstreams: Vec<TcpConn>,
    /// Writes the addresses answers give for `host` matches into the firewall.
    learner: hosts::Learner,
}

/// Tokens: per network 6 (udp, tcp listener, upstream udp, then the same for IPv6)
/// from `base`, then clients and upstream connections.
const PER_NET: u64 = 6;
const CLIENT_BASE: u64 = 0x8000;
const UPSTREAM_BASE: u64 = 0xc000;

impl Default for DnsShell {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsShell {
    pub fn new() -> DnsShell {
        DnsShell {
            core: Dns::new(Limits::default()),
            nets: Vec::new(),
            ids: HashMap::new(),
            next_id: 1,
            out: vec![0; 65535],
            batch: sock::UdpBatch::new(),
            up_buf: Vec::new(),
            clients: Vec::new(),
            upstreams: Vec::new(),
            learner: hosts::Learner::new(),
        }
    }

    fn id_for(&mut self, net_id: &str) -> NetId {
        if let Some(&id) = self.ids.get(net_id) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(net_id.to_string(), id);
        id
    }

    /// Brings the served networks to `specs`: new sockets for new networks (or a new
    /// gateway or bridge), new parameters for the rest, nothing for the unchanged.
    /// Returns the errors, per network id.
    pub fn set_networks(&mut self, specs: &[NetSpec]) -> super::NetErrors {
        let mut errors = Vec::new();
        // Drop networks that are gone or whose sockets must change.
        let keep: Vec<bool> = self
            .nets
            .iter()
            .map(|n| {
                specs.iter().any(|s| {
                    s.net_id == n.spec.net_id
                        && s.bridge == n.spec.bridge
                        && s.gateway == n.spec.gateway
                        && s.forward_from_gateway == n.spec.forward_from_gateway
                })
            })
            .collect();
        let mut i = 0;
        self.nets.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
        let live: Vec<NetId> = specs
            .iter()
            .filter_map(|s| self.ids.get(&s.net_id).copied())
            .collect();
        let gone: Vec<String> = self
            .ids
            .iter()
            .filter(|(k, v)| !specs.iter().any(|s| &s.net_id == *k) || !live.contains(v))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(id) = self.ids.remove(&k) {
                self.core.remove_network(id);
                self.clients.retain(|c| c.net != id);
                self.upstreams.retain(|c| c.net != id);
            }
        }
        for s in specs {
            let id = self.id_for(&s.net_id);
            if let Err(e) = self.core.set_network(id, s.params.clone()) {
                errors.push(super::ServiceError::new(
                    &s.net_id,
                    "DNS",
                    io::Error::other(e.to_string()),
                ));
                continue;
            }
            if let Some(n) = self.nets.iter_mut().find(|n| n.id == id) {
                if n.spec.gateway6 != s.gateway6 {
                    (n.udp6, n.tcp6) = (None, None);
                }
                n.spec = s.clone();
                n.static_keys = hosts::static_elems(
                    &s.acl_hosts,
                    &hosts::static_names(&s.params.static_dns, s.params.domain.as_deref()),
                );
                errors.extend(n.open_v6());
                continue;
            }
            match open_net(s) {
                Ok((udp, tcp, up)) => self.nets.push(NetSockets {
                    spec: s.clone(),
                    id,
                    udp,
                    tcp,
                    up,
                    udp6: None,
                    tcp6: None,
                    up6: None,
                    tcp_refused: 0,
                    acl_learned: 0,
                    acl_full: 0,
                    acl_failed: 0,
                    static_keys: hosts::static_elems(
                        &s.acl_hosts,
                        &hosts::static_names(&s.params.static_dns, s.params.domain.as_deref()),
                    ),
                }),
                Err(e) => errors.push(super::ServiceError::new(
                    &s.net_id,
                    format!("DNS sockets on {}:53", s.gateway),
                    e,
                )),
            }
            if let Some(n) = self.nets.iter_mut().find(|n| n.id == id) {
                errors.extend(n.open_v6());
            }
        }
        errors
    }

    /// Replaces a network's host names (ECO names from DHCP or the app names).
    /// A network's configured host names and the names its DHCP clients claim.
    pub fn set_names(
        &mut self,
        net_id: &str,
        hosts: Vec<(String, IpAddr)>,
        claims: Vec<crate::dns::HostClaim>,
    ) {
        if let Some(&id) = self.ids.get(net_id) {
            self.core.set_names(id, hosts, claims);
        }
    }

    fn udp_ready(&mut self, i: usize, now: Instant) {
        // Bounded per wakeup so one busy network cannot starve the loop.
        for _ in 0..256 / sock::UdpBatch::SIZE {
            let Some(n) = self.nets.get(i) else { return };
            let (fd, id) = (n.udp.as_raw_fd(), n.id);
            let got = self.batch.recv(fd);
            for k in 0..got {
                let Some((msg, from)) = self.batch.datagram(k) else {
                    continue;
                };
                let a = self
                    .core
                    .handle_query(now, id, from, Transport::Udp, msg, &mut self.out);
                // Answers on this network's socket go out with the batch.
                self.act_on(a, now, Some(id));
            }
            self.batch.flush(fd);
            if got < sock::UdpBatch::SIZE {
                return;
            }
        }
    }

    /// Queries on the IPv6 socket: one datagram per system call (the batch is IPv4's).
    fn udp6_ready(&mut self, i: usize, now: Instant) {
        let mut buf = [0u8; sock::UdpBatch::RX_SLOT];
        for _ in 0..256 {
            let Some(n) = self.nets.get(i) else { return };
            let id = n.id;
            let Some(Ok((len, from))) = n.udp6.as_ref().map(|s| s.recv_from(&mut buf)) else {
                return;
            };
            let a =
                self.core
                    .handle_query(now, id, from, Transport::Udp, &buf[..len], &mut self.out);
            self.act(a, now);
        }
    }

    fn upstream_udp_ready(&mut self, i: usize, v6: bool, now: Instant) {
        if self.up_buf.is_empty() {
            self.up_buf = vec![0u8; 65535];
        }
        for _ in 0..256 {
            let Some(n) = self.nets.get(i) else { return };
            let up = if v6 { n.up6.as_ref() } else { Some(&n.up) };
            let Some(Ok((len, from))) = up.map(|u| u.recv_from(&mut self.up_buf)) else {
                return;
            };
            let a = self.core.handle_upstream(
                now,
                from,
                Transport::Udp,
                &self.up_buf[..len],
                &mut self.out,
            );
            self.act(a, now);
        }
    }

    fn accept(&mut self, i: usize, v6: bool, now: Instant) {
        let Some(n) = self.nets.get(i) else { return };
        let net = n.id;
        // Bounded: a flood of connections is taken a batch per wakeup.
        for _ in 0..64 {
            let Some(n) = self.nets.get(i) else { return };
            let l = if v6 { n.tcp6.as_ref() } else { Some(&n.tcp) };
            let Some(Ok((sock, peer))) = l.map(TcpListener::accept) else {
                return;
            };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            match tcp_admission(&self.clients, net, peer.ip()) {
                Admission::Refuse => {
                    self.count_refused(net);
                    continue; // dropped: closed at once
                }
                Admission::Evict(k) => {
                    let victim = self.clients.swap_remove(k);
                    self.count_refused(victim.net);
                }
                Admission::Admit => {}
            }
            let mut c = TcpConn::new(net, peer, sock, now, true);
            c.deadline = now + TCP_MSG_DEADLINE;
            self.clients.push(c);
        }
    }

    fn count_refused(&mut self, net: NetId) {
        if let Some(n) = self.nets.iter_mut().find(|n| n.id == net) {
            n.tcp_refused += 1;
        }
    }

    fn client_ready(&mut self, i: usize, now: Instant) {
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let alive = c.fill() && c.flush();
        let (net, peer) = (c.net, c.peer);
        let mut msgs = Vec::new();
        while let Some(m) = c.take_message() {
            msgs.push(m);
        }
        // Only a whole query earns the client time for the next one.
        if !msgs.is_empty() {
            c.deadline = now + TCP_MSG_DEADLINE;
        }
        if !alive {
            c.deadline = now;
        }
        for m in msgs {
            let a = self
                .core
                .handle_query(now, net, peer, Transport::Tcp, &m, &mut self.out);
            self.act(a, now);
        }
    }

    fn upstream_ready(&mut self, i: usize, now: Instant) {
        let Some(c) = self.upstreams.get_mut(i) else {
            return;
        };
        if !c.connected {
            match c.sock.take_error() {
                Ok(None) => c.connected = true,
                _ => {
                    // Refused or unreachable: the core's retry timer moves on.
                    c.deadline = now;
                    return;
                }
            }
        }
        let alive = c.flush() && c.fill();
        let peer = c.peer;
        let msg = c.take_message();
        if msg.is_some() || !alive {
            c.deadline = now;
        }
        if let Some(m) = msg {
            let a = self
                .core
                .handle_upstream(now, peer, Transport::Tcp, &m, &mut self.out);
            self.act(a, now);
        }
    }

    fn act(&mut self, a: Action, now: Instant) {
        self.act_on(a, now, None);
    }

    /// Carries out what the core said. This is the only way answers leave for ECOs:
    /// each first has the addresses it gives for the network's `host` matches
    /// admitted, then it is sent (a UDP answer of network `batched` is queued on the
    /// batch its query came in, which the caller flushes).
    fn act_on(&mut self, a: Action, now: Instant, batched: Option<NetId>) {
        match a {
            Action::None => {}
            Action::Reply {
                net,
                to,
                transport,
                len,
            } => {
                let len = len.min(self.out.len());
                self.admit_hosts(net, len, now);
                let msg = &self.out[..len];
                match transport {
                    Transport::Udp => {
                        if batched == Some(net) && self.batch.queue(msg, to) {
                            return;
                        }
                        if let Some(n) = self.nets.iter().find(|n| n.id == net) {
                            // An IPv6 client asked on the IPv6 socket: the answer
                            // leaves from there (from gateway6).
                            let s = if to.is_ipv6() {
                                n.udp6.as_ref()
                            } else {
                                Some(&n.udp)
                            };
                            if let Some(s) = s {
                                let _ = s.send_to(msg, to);
                            }
                        }
                    }
                    Transport::Tcp => {
                        if let Some(c) = self
                            .clients
                            .iter_mut()
                            .find(|c| c.net == net && c.peer == to)
                        {
                            if !tcp::write_message(&mut c.out, msg) || !c.flush() {
                                c.deadline = now;
                            }
                        }
                    }
                }
            }
            Action::Forward {
                net,
                upstream,
                transport,
                len,
            } => {
                let Some(n) = self.nets.iter().find(|n| n.id == net) else {
                    return;
                };
                let msg = &self.out[..len.min(self.out.len())];
                match transport {
                    Transport::Udp => {
                        // Without an IPv6 socket the query is lost; the retry timer
                        // moves on.
                        let up = if upstream.is_ipv6() {
                            n.up6.as_ref()
                        } else {
                            Some(&n.up)
                        };
                        if let Some(up) = up {
                            let _ = up.send_to(msg, upstream);
                        }
                    }
                    Transport::Tcp => {
                        if self.upstreams.len() >= MAX_TCP_UPSTREAMS {
                            return;
                        }
                        let src = n.spec.forward_from_gateway.then_some(n.spec.gateway);
                        let conn = match upstream {
                            SocketAddr::V4(_) => sock::tcp_connect_nonblocking(upstream, src),
                            SocketAddr::V6(u) => tcp6_connect_nonblocking(u),
                        };
                        if let Ok(sock) = conn {
                            let mut c = TcpConn::new(net, upstream, sock, now, false);
                            if tcp::write_message(&mut c.out, msg) {
                                self.upstreams.push(c);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Before the answer `out[..len]` leaves for a client of `net`: the addresses it
    /// gives for the network's `host` matches are admitted to its set. A network
    /// without `host` matches costs a lookup, nothing is parsed.
    fn admit_hosts(&mut self, net: NetId, len: usize, now: Instant) {
        let Some(n) = self.nets.iter_mut().find(|n| n.id == net) else {
            return;
        };
        if n.spec.acl_hosts.is_empty() {
            return;
        }
        let answer = self.out.get(..len).unwrap_or_default();
        let mut elems = hosts::admitted_by_response(&n.spec.acl_hosts, answer);
        hosts::drop_static(&mut elems, &n.static_keys);
        let o = self.learner.learn(&n.spec.bridge, &elems, now);
        n.acl_learned += o.learned;
        n.acl_full += o.full;
        n.acl_failed += o.failed;
    }
}

/// What to do with a new TCP client of `net` from `ip`.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    Admit,
    /// Close it: its address, or its network, has its share already.
    Refuse,
    /// Admit it in place of this connection (the oldest of the client holding the
    /// most connections, which holds more than the newcomer).
    Evict(usize),
}

fn tcp_admission(clients: &[TcpConn], net: NetId, ip: std::net::IpAddr) -> Admission {
    let count = |f: &dyn Fn(&TcpConn) -> bool| clients.iter().filter(|c| f(c)).count();
    let mine = count(&|c| c.net == net && c.peer.ip() == ip);
    if mine >= MAX_TCP_PER_CLIENT {
        return Admission::Refuse;
    }
    // The oldest connection of the busiest clients among `pool`, if they hold more
    // than the newcomer would.
    let crowded = |pool: &dyn Fn(&TcpConn) -> bool| -> Option<usize> {
        let mut per: HashMap<(NetId, std::net::IpAddr), usize> = HashMap::new();
        for c in clients.iter().filter(|c| pool(c)) {
            *per.entry((c.net, c.peer.ip())).or_default() += 1;
        }
        let top = *per.values().max()?;
        if top <= mine + 1 {
            return None;
        }
        clients
            .iter()
            .enumerate()
            .filter(|(_, c)| pool(c) && per.get(&(c.net, c.peer.ip())) == Some(&top))
            .min_by_key(|(_, c)| c.since)
            .map(|(k, _)| k)
    };
    if count(&|c| c.net == net) >= MAX_TCP_PER_NET {
        return crowded(&|c| c.net == net).map_or(Admission::Refuse, Admission::Evict);
    }
    if clients.len() >= MAX_TCP_CLIENTS {
        // A network under its share takes a slot from the busiest client of all.
        return crowded(&|_| true).map_or(Admission::Refuse, Admission::Evict);
    }
    Admission::Admit
}

impl super::Service for DnsShell {
    fn configure(&mut self, w: &super::World<'_>, _now: Instant) -> super::NetErrors {
        let system = system_resolvers();
        self.set_networks(&super::dns_specs(w.cfg, w.facts, &system))
    }

    fn register(&self, p: &mut crate::event_loop::Poller, base: u64) {
        for (i, n) in self.nets.iter().enumerate() {
            let t = base + i as u64 * PER_NET;
            p.add(n.udp.as_raw_fd(), false, t);
            p.add(n.tcp.as_raw_fd(), false, t + 1);
            p.add(n.up.as_raw_fd(), false, t + 2);
            if let Some(s) = &n.udp6 {
                p.add(s.as_raw_fd(), false, t + 3);
            }
            if let Some(s) = &n.tcp6 {
                p.add(s.as_raw_fd(), false, t + 4);
            }
            if let Some(s) = &n.up6 {
                p.add(s.as_raw_fd(), false, t + 5);
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            p.add(
                c.sock.as_raw_fd(),
                !c.out.is_empty(),
                base + CLIENT_BASE + i as u64,
            );
        }
        for (i, c) in self.upstreams.iter().enumerate() {
            p.add(
                c.sock.as_raw_fd(),
                !c.connected || !c.out.is_empty(),
                base + UPSTREAM_BASE + i as u64,
            );
        }
    }

    fn ready(&mut self, t: u64, now: Instant, _events: &mut Vec<super::ServiceEvent>) {
        if t >= UPSTREAM_BASE {
            self.upstream_ready((t - UPSTREAM_BASE) as usize, now);
        } else if t >= CLIENT_BASE {
            self.client_ready((t - CLIENT_BASE) as usize, now);
        } else {
            let i = (t / PER_NET) as usize;
            match t % PER_NET {
                0 => self.udp_ready(i, now),
                1 => self.accept(i, false, now),
                2 => self.upstream_udp_ready(i, false, now),
                3 => self.udp6_ready(i, now),
                4 => self.accept(i, true, now),
                _ => self.upstream_udp_ready(i, true, now),
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let conns = self
            .clients
            .iter()
            .chain(self.upstreams.iter())
            .map(|c| c.deadline)
            .min();
        crate::event_loop::earliest(self.core.poll_timeout(), conns)
    }

    /// Host names a DHCP client asked for and did not get, as warnings; what DNS
    /// turned away to stay fair.
    fn status(
        &self,
        net: &crate::config::Network,
        _now: Instant,
        ns: &mut crate::status::NetworkStatus,
    ) {
        if let Some(&id) = self.ids.get(&net.id) {
            ns.warnings.extend(self.core.conflicts(id).iter().cloned());
            let n = self.nets.iter().find(|n| n.id == id);
            let count = |f: fn(&NetSockets) -> u64| n.map_or(0, f);
            ns.dns = Some(crate::status::DnsStatus {
                tcp_refused: count(|n| n.tcp_refused),
                forwards_limited: self.core.forwards_limited(id),
                acl_hosts_learned: count(|n| n.acl_learned),
                acl_hosts_full: count(|n| n.acl_full),
                acl_hosts_failed: count(|n| n.acl_failed),
            });
        }
    }

    /// Retries, SERVFAILs and idle connections due by `now`.
    fn handle_timeout(&mut self, now: Instant, _events: &mut Vec<super::ServiceEvent>) {
        // Bounded: the core hands out one action per call.
        for _ in 0..1024 {
            match self.core.poll(now, &mut self.out) {
                Some(a) => self.act(a, now),
                None => break,
            }
        }
        self.clients.retain(|c| c.deadline > now);
        self.upstreams.retain(|c| c.deadline > now);
    }
}

fn open_net(s: &NetSpec) -> io::Result<(UdpSocket, TcpListener, UdpSocket)> {
    let addr = SocketAddrV4::new(s.gateway, 53);
    let udp = sock::udp_bound(addr, Some(&s.bridge))?;
    let tcp = sock::tcp_listener(addr, Some(&s.bridge))?;
    let src = if s.forward_from_gateway {
        s.gateway
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let up = sock::udp_bound(SocketAddrV4::new(src, 0), None)?;
    Ok((udp, tcp, up))
}

impl NetSockets {
    /// Opens what IPv6 needs and is not open yet: the listeners on `gateway6`, the
    /// upstream socket when an upstream is IPv6. What fails is retried at the next
    /// configure (the listeners bind with IP_FREEBIND, as the IPv4 ones do, so a
    /// `gateway6` not yet on the bridge is no failure).
    fn open_v6(&mut self) -> Vec<super::ServiceError> {
        let mut errors = Vec::new();
        let s = &self.spec;
        if let (Some(gw6), None) = (s.gateway6, &self.udp6) {
            let addr = SocketAddrV6::new(gw6, 53, 0, 0);
            match udp6_bound(addr, Some(&s.bridge))
                .and_then(|u| Ok((u, tcp6_listener(addr, Some(&s.bridge))?)))
            {
                Ok((u, t)) => (self.udp6, self.tcp6) = (Some(u), Some(t)),
                Err(e) => errors.push(super::ServiceError::new(
                    &s.net_id,
                    format!("DNS sockets on [{gw6}]:53"),
                    e,
                )),
            }
        }
        let wants_up6 = s.params.upstreams.iter().any(SocketAddr::is_ipv6);
        if wants_up6 && self.up6.is_none() {
            match udp6_bound(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0), None) {
                Ok(u) => self.up6 = Some(u),
                Err(e) => errors.push(super::ServiceError::new(
                    &s.net_id,
                    "DNS upstream socket (IPv6)",
                    e,
                )),
            }
        }
        errors
    }
}

/// The device's own resolvers: the `nameserver` lines of /etc/resolv.conf (the first
/// three, as the C library takes them), IPv4 and IPv6.
pub fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    parse_resolvers(&text, |name| nix::net::if_::if_nametoindex(name).ok())
}

/// The resolvers of a resolv.conf text. An IPv6 link-local address needs its zone
/// (`fe80::1%eth0`, or a number): `ifindex` gives an interface's index; without a
/// zone, or with an unknown interface, it is skipped. IPv4-mapped IPv6 addresses are
/// taken as IPv4.
fn parse_resolvers(text: &str, ifindex: impl Fn(&str) -> Option<u32>) -> Vec<SocketAddr> {
    let resolver = |a: &str| -> Option<SocketAddr> {
        if let Ok(v4) = a.parse::<Ipv4Addr>() {
            return Some(SocketAddr::V4(SocketAddrV4::new(v4, 53)));
        }
        let (addr, zone) = match a.split_once('%') {
            Some((addr, zone)) => (addr, Some(zone)),
            None => (a, None),
        };
        let v6 = addr.parse::<Ipv6Addr>().ok()?;
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Some(SocketAddr::V4(SocketAddrV4::new(v4, 53)));
        }
        let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
        let scope = match (link_local, zone) {
            (false, _) => 0,
            (true, None) => return None,
            (true, Some(z)) => match z.parse::<u32>() {
                Ok(n) if n > 0 => n,
                Ok(_) => return None,
                Err(_) => ifindex(z)?,
            },
        };
        Some(SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, scope)))
    };
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(resolver)
        .take(3)
        .collect()
}

// IPv6 sockets as `sock` makes IPv4 ones: bound to a device, bindable before the
// address is there, IPv6 only, non-blocking from the start.

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd; the value points to a live c_int of the given size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(|_| ())
}

fn sockaddr6(a: SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: a.port().to_be(),
        sin6_flowinfo: a.flowinfo().to_be(),
        sin6_addr: libc::in6_addr {
            s6_addr: a.ip().octets(),
        },
        sin6_scope_id: a.scope_id(),
    }
}

fn socket6(ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET6,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setopt(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    Ok(fd)
}

fn bind6(fd: RawFd, addr: SocketAddrV6, dev: Option<&str>) -> io::Result<()> {
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if !addr.ip().is_unspecified() {
        // `gateway6` may not be on the bridge yet; bind anyway.
        setopt(fd, libc::SOL_IPV6, libc::IPV6_FREEBIND, 1)?;
    }
    if let Some(d) = dev {
        sock::bind_to_device(fd, d)?;
    }
    let sa = sockaddr6(addr);
    // SAFETY: valid fd; `sa` is a sockaddr_in6 of the given size.
    check(unsafe {
        libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    })
    .map(|_| ())
}

/// A non-blocking IPv6-only UDP socket bound to `addr`, optionally only on `dev`.
fn udp6_bound(addr: SocketAddrV6, dev: Option<&str>) -> io::Result<UdpSocket> {
    let fd = socket6(libc::SOCK_DGRAM)?;
    bind6(fd.as_raw_fd(), addr, dev)?;
    Ok(UdpSocket::from(fd))
}

/// A non-blocking IPv6-only TCP listener on `addr`, optionally only on `dev`.
fn tcp6_listener(addr: SocketAddrV6, dev: Option<&str>) -> io::Result<TcpListener> {
    let fd = socket6(libc::SOCK_STREAM)?;
    bind6(fd.as_raw_fd(), addr, dev)?;
    // SAFETY: valid, bound stream socket.
    check(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(TcpListener::from(fd))
}

/// Starts a non-blocking TCP connection to an IPv6 upstream.
fn tcp6_connect_nonblocking(to: SocketAddrV6) -> io::Result<TcpStream> {
    let fd = socket6(libc::SOCK_STREAM)?;
    let sa = sockaddr6(to);
    // SAFETY: valid fd; `sa` is a sockaddr_in6 of the given size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` connections of `net` from `ip` (as peers; the sockets are loopback ones).
    fn conns(l: &TcpListener, list: &[(NetId, &str, usize)], t0: Instant) -> Vec<TcpConn> {
        let mut v = Vec::new();
        for (k, &(net, ip, n)) in list.iter().enumerate() {
            for j in 0..n {
                let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let peer = SocketAddr::new(ip.parse().unwrap(), 1000 + j as u16);
                let at = t0 + Duration::from_millis((k * 100 + j) as u64);
                v.push(TcpConn::new(net, peer, sock, at, true));
            }
        }
        v
    }

    #[test]
    fn resolvers_of_both_families_from_resolv_conf() {
        let idx = |name: &str| (name == "eth0").then_some(2);
        let text = "# comment\nsearch example.com\nnameserver 192.0.2.53\n\
                    nameserver 2001:db8::53\nnameserver fe80::1\n\
                    nameserver fe80::2%eth9\nnameserver fe80::3%eth0\n\
                    nameserver ::ffff:192.0.2.54\nnameserver bogus\n";
        let got = parse_resolvers(text, idx);
        let want: Vec<SocketAddr> = vec![
            "192.0.2.53:53".parse().unwrap(),
            "[2001:db8::53]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::3".parse().unwrap(), 53, 0, 2)),
        ];
        assert_eq!(got, want);
        // A numeric zone; the fourth and later are not used (three, as libc).
        let text = "nameserver fe80::4%7\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n\
                    nameserver 10.0.0.3\nnameserver 2001:db8::1%eth0\n";
        let got = parse_resolvers(text, idx);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            SocketAddr::V6(SocketAddrV6::new("fe80::4".parse().unwrap(), 53, 0, 7))
        );
        // A global address with a zone: the zone means nothing.
        let got = parse_resolvers("nameserver 2001:db8::1%eth0\n", idx);
        assert_eq!(got, ["[2001:db8::1]:53".parse::<SocketAddr>().unwrap()]);
        assert!(parse_resolvers("nameserver fe80::1%0\n", idx).is_empty());
    }

    #[test]
    fn tcp_clients_get_a_fair_share_per_address_and_per_network() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
        // One address: a few connections, then refused.
        let c = conns(&l, &[(1, "10.1.0.9", MAX_TCP_PER_CLIENT)], t0);
        assert_eq!(tcp_admission(&c, 1, ip("10.1.0.9")), Admission::Refuse);
        assert_eq!(tcp_admission(&c, 1, ip("10.1.0.8")), Admission::Admit);
        // The same address on another network has its own count.
        assert_eq!(tcp_admission(&c, 2, ip("10.1.0.9")), Admission::Admit);
        // A full network: a newcomer takes the oldest slot of the busiest client...
        let many: Vec<(NetId, String, usize)> = (0..MAX_TCP_PER_NET / MAX_TCP_PER_CLIENT)
            .map(|i| (1, format!("10.1.0.{}", 10 + i), MAX_TCP_PER_CLIENT))
            .collect();
        let list: Vec<(NetId, &str, usize)> =
            many.iter().map(|(n, s, k)| (*n, s.as_str(), *k)).collect();
        let c = conns(&l, &list, t0);
        assert_eq!(c.len(), MAX_TCP_PER_NET);
        assert_eq!(tcp_admission(&c, 1, ip("10.1.0.99")), Admission::Evict(0));
        // ...but not from a client holding no more than it would.
        assert_eq!(tcp_admission(&c, 1, ip("10.1.0.10")), Admission::Refuse);
        // Another network is not affected by this one being full.
        assert_eq!(tcp_admission(&c, 2, ip("10.2.0.5")), Admission::Admit);
    }
}
