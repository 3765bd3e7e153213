//! The DHCP shell: one packet socket for every L3 network (a kernel filter passes
//! only ARP and DHCP to the server), one [`crate::dhcp::Server`] per network, lease
//! files in the state directory.
//!
//! A request is attributed to the bridge port (endpoint) it arrived on, which is how
//! an ECO is told from a guest nested behind it; its reply goes out of that port as a
//! whole frame to the client's MAC, so the kernel's ARP table is never touched (it
//! overflows at about 1024 entries under load). Leases are written atomically when an
//! allocation changes, at most once a second, never on a mere renewal.

use super::lease_file::{index_endpoints, HeldFrames, LeaseFile};
use super::sock;
use super::{NetErrors, Service, ServiceError, ServiceEvent, World};
use crate::addr::MacAddr;
use crate::config::Network;
use crate::dhcp::{frame, Config, EndpointKey, LeaseChange, Output, Rx, Server};
use crate::firewall::Allowed;
use crate::netlink::link::Link;
use crate::status::NetworkStatus;
use crate::wire::udp::Checksum;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the shell needs to run one network's server.
#[derive(Clone, Debug)]
pub struct NetSpec {
    pub net_id: String,
    pub bridge: String,
    pub cfg: Config,
    /// Each endpoint's key and host-side interface.
    pub endpoints: Vec<(EndpointKey, String)>,
}

/// A sender admitted or dismissed by a DHCP or DHCPv6 exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    Granted {
        net_id: String,
        ifname: String,
        mac: MacAddr,
        ip: Ipv4Addr,
    },
    Ended {
        net_id: String,
        ifname: String,
        mac: MacAddr,
        ip: Ipv4Addr,
    },
    Granted6 {
        net_id: String,
        ifname: String,
        mac: MacAddr,
        ip: std::net::Ipv6Addr,
    },
    Ended6 {
        net_id: String,
        ifname: String,
        mac: MacAddr,
        ip: std::net::Ipv6Addr,
    },
}

struct NetDhcp {
    spec: NetSpec,
    /// Endpoint key → its index in `spec.endpoints` (a lease change names its
    /// endpoint by key; the lookup is on every ACK).
    endpoint_index: HashMap<EndpointKey, usize>,
    server: Server,
    bridge_index: i32,
    bridge_mac: MacAddr,
    file: LeaseFile,
}

pub struct DhcpShell {
    sock: Option<OwnedFd>,
    nets: Vec<NetDhcp>,
    /// Endpoint interface index → (network, index in its `spec.endpoints`).
    by_ifindex: HashMap<i32, (usize, usize)>,
    dir: PathBuf,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Replies granting an address, held until the firewall has admitted their
    /// clients.
    held: HeldFrames,
}

/// Wall-clock unix seconds. Read with clock_gettime through nix rather than
/// `SystemTime`: std on armv7 musl uses a 32-bit time_t and would fail after 2038.
pub fn wall_now() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec().max(0) as u64)
        .unwrap_or(0)
}

/// The most a network's lease file can hold: a line of at most 2 KiB (every field
/// at its longest, escaped) per address of its pool, and never more than 64 MiB.
fn lease_file_cap(cfg: &Config) -> u64 {
    let pool = u64::from(u32::from(cfg.range_end).saturating_sub(u32::from(cfg.range_start))) + 1;
    (4096 + pool * 2048).min(64 << 20)
}

impl DhcpShell {
    pub fn new(state_dir: &Path) -> DhcpShell {
        DhcpShell {
            sock: None,
            nets: Vec::new(),
            by_ifindex: HashMap::new(),
            dir: state_dir.to_path_buf(),
            rx: vec![0; 4096],
            tx: vec![0; 2048],
            held: HeldFrames::default(),
        }
    }

    /// Brings the served networks to `specs`, given the links as they are now.
    /// A new network's server starts from its lease file. Returns errors per network.
    pub fn set_networks(&mut self, specs: &[NetSpec], links: &[Link], now: Instant) -> NetErrors {
        let mut errors = Vec::new();
        // Networks that are gone: save and drop.
        let mut i = 0;
        while i < self.nets.len() {
            if specs.iter().any(|s| s.net_id == self.nets[i].spec.net_id) {
                i += 1;
            } else {
                let mut n = self.nets.remove(i);
                n.file.save(&n.server.snapshot(), now);
            }
        }
        for s in specs {
            let br = links.iter().find(|l| l.name == s.bridge);
            let (bridge_index, bridge_mac) = match br {
                Some(l) => (l.index, l.mac.unwrap_or_default()),
                None => (0, MacAddr::default()),
            };
            match self.nets.iter_mut().find(|n| n.spec.net_id == s.net_id) {
                Some(n) => {
                    if n.spec.cfg != s.cfg {
                        n.server.update_config(s.cfg.clone());
                    }
                    n.spec = s.clone();
                    n.endpoint_index = index_endpoints(&s.endpoints);
                    n.bridge_index = bridge_index;
                    n.bridge_mac = bridge_mac;
                }
                None => {
                    let (file, bytes) = LeaseFile::open(
                        &self.dir,
                        "leases",
                        crate::dhcp::store::HEADER,
                        &s.net_id,
                        lease_file_cap(&s.cfg),
                    );
                    let mut server = Server::new(s.cfg.clone());
                    if let Some(bytes) = bytes {
                        let n = server.restore(&bytes, now, wall_now());
                        log::info!("network {}: {n} DHCP allocations restored", s.net_id);
                    }
                    self.nets.push(NetDhcp {
                        spec: s.clone(),
                        endpoint_index: index_endpoints(&s.endpoints),
                        server,
                        bridge_index,
                        bridge_mac,
                        file,
                    });
                }
            }
        }
        self.by_ifindex.clear();
        for (ni, n) in self.nets.iter().enumerate() {
            for (ei, (_, ifname)) in n.spec.endpoints.iter().enumerate() {
                if let Some(l) = links.iter().find(|l| &l.name == ifname) {
                    self.by_ifindex.insert(l.index, (ni, ei));
                }
            }
        }
        if self.nets.is_empty() {
            self.sock = None;
        } else if self.sock.is_none() {
            match sock::dhcp_packet_socket() {
                Ok(s) => self.sock = Some(s),
                Err(err) => {
                    for s in specs {
                        let e = std::io::Error::new(err.kind(), err.to_string());
                        errors.push(ServiceError::new(&s.net_id, "DHCP packet socket", e));
                    }
                }
            }
        }
        self.prepare(links, now);
        errors
    }

    /// Probes ahead for the ECOs that are plumbed and have no address yet, so their
    /// first DISCOVER is answered at once (see [`Server::prepare`]).
    fn prepare(&mut self, links: &[Link], now: Instant) {
        let Some(fd) = self.fd() else { return };
        for n in self.nets.iter_mut() {
            if n.bridge_index <= 0 {
                continue; // no probe can go out: nothing is prepared
            }
            let mut probes = Vec::new();
            for (key, ifname) in &n.spec.endpoints {
                if !links.iter().any(|l| &l.name == ifname) {
                    continue;
                }
                if let Some(Output::Probe(ip)) = n.server.prepare(now, key) {
                    probes.push(ip);
                }
            }
            for ip in probes {
                if let Some(len) = frame::emit_probe(&mut self.tx, n.bridge_mac, ip) {
                    let _ = sock::send_frame(fd, n.bridge_index, &self.tx[..len]);
                }
            }
        }
    }

    fn fd(&self) -> Option<i32> {
        self.sock.as_ref().map(|s| s.as_raw_fd())
    }

    /// Every lease (presumed ones too) of every network: who may send from what.
    pub fn admitted(&self) -> Vec<Allowed> {
        let mut v = Vec::new();
        for n in &self.nets {
            let ifname_of: HashMap<&EndpointKey, &String> =
                n.spec.endpoints.iter().map(|(k, i)| (k, i)).collect();
            for l in n.server.held() {
                if let Some(ifn) = ifname_of.get(l.endpoint) {
                    v.push(Allowed::new(ifn, l.mac, Some(l.ip)));
                }
            }
        }
        v
    }

    /// A network's leases for status: endpoint → (MAC, IP, host name, expiry) of the
    /// ECO itself.
    fn eco_leases(&self, net_id: &str) -> HashMap<EndpointKey, (MacAddr, Ipv4Addr, String, u64)> {
        let mut m = HashMap::new();
        if let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net_id) {
            for l in n.server.leases() {
                if l.client.is_none() {
                    m.insert(
                        l.endpoint.clone(),
                        (l.mac, l.ip, l.hostname.to_string(), l.expires),
                    );
                }
            }
        }
        m
    }

    /// Host names for a network's DNS zone: every held lease with a name.
    pub fn hosts(&self, net_id: &str) -> Vec<crate::dns::HostClaim> {
        let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net_id) else {
            return Vec::new();
        };
        n.server
            .held()
            .filter_map(|l| {
                Some(crate::dns::HostClaim {
                    name: super::host_label(l.hostname)?,
                    addr: l.ip.into(),
                    app: l.endpoint.app_id.clone(),
                })
            })
            .collect()
    }

    /// Turns the leases the server granted or ended since last asked into events;
    /// returns whether any was granted (then the reply that goes with it waits).
    fn lease_events(n: &mut NetDhcp, events: &mut Vec<ServiceEvent>) -> bool {
        let mut granted = false;
        for c in n.server.take_changes() {
            let (endpoint, mac, ip, is_grant) = match c {
                LeaseChange::Granted { endpoint, mac, ip } => (endpoint, mac, ip, true),
                LeaseChange::Ended { endpoint, mac, ip } => (endpoint, mac, ip, false),
            };
            let Some((_, ifname)) = n
                .endpoint_index
                .get(&endpoint)
                .and_then(|&i| n.spec.endpoints.get(i))
            else {
                continue;
            };
            let (net_id, ifname) = (n.spec.net_id.clone(), ifname.clone());
            granted |= is_grant;
            events.push(ServiceEvent::Lease(if is_grant {
                LeaseEvent::Granted {
                    net_id,
                    ifname,
                    mac,
                    ip,
                }
            } else {
                LeaseEvent::Ended {
                    net_id,
                    ifname,
                    mac,
                    ip,
                }
            }));
        }
        granted
    }

    /// Sends an output, except a reply that `granted` an address: that reply is built
    /// and handed back, so the caller admits the client to the firewall before the
    /// client sees the ACK. `via`: the interface the request came in on.
    fn emit(
        fd: i32,
        n: &mut NetDhcp,
        via: Option<i32>,
        out: Output,
        tx: &mut [u8],
        granted: bool,
    ) -> Emitted {
        match out {
            Output::Probe(ip) => {
                if n.bridge_index > 0 {
                    if let Some(len) = frame::emit_probe(tx, n.bridge_mac, ip) {
                        let _ = sock::send_frame(fd, n.bridge_index, &tx[..len]);
                    }
                }
                Emitted::Done
            }
            Output::Reply(r) => {
                let Some(len) = frame::emit_reply(tx, n.bridge_mac, n.spec.cfg.gateway, &r) else {
                    return Emitted::Done;
                };
                // Out of the port the request came in on; otherwise (an offer after a
                // probe window) out of the bridge, which delivers it by MAC.
                let ifindex = via.unwrap_or(n.bridge_index);
                if granted {
                    Emitted::Grant { ifindex, len }
                } else {
                    let _ = sock::send_frame(fd, ifindex, &tx[..len]);
                    Emitted::Done
                }
            }
        }
    }

    /// The batch's new allocations, onto disk before the ACKs that granted them
    /// leave: one append and one sync per network per batch (group commit).
    fn commit_journal(&mut self, now: Instant) {
        for n in self.nets.iter_mut() {
            let lines = n.server.take_journal();
            n.file.commit(&lines, now);
        }
    }

    /// Lease file snapshots due, after the replies: O(n) writes wait their turn.
    fn save_due(&mut self, now: Instant) {
        let wall = wall_now();
        for n in self.nets.iter_mut() {
            if n.server.take_dirty(wall) {
                n.file.changed(now);
            }
            let server = &n.server;
            n.file.save_due(now, || server.snapshot());
        }
    }
}

impl Service for DhcpShell {
    fn configure(&mut self, w: &World<'_>, now: Instant) -> NetErrors {
        self.set_networks(&super::dhcp_specs(w.cfg, w.facts), w.links, now)
    }

    fn register(&self, p: &mut crate::event_loop::Poller, base: u64) {
        if let Some(fd) = self.fd() {
            p.add(fd, false, base);
        }
    }

    /// Handles the waiting frames. The batch's lease events go to `events`; the
    /// replies that granted them are held until [`Service::flush`], after the daemon
    /// has routed the events (so the firewall admits the clients before they use
    /// their addresses): one firewall update per batch, not one per client.
    fn ready(&mut self, _slot: u64, now: Instant, events: &mut Vec<ServiceEvent>) {
        let Some(fd) = self.fd() else { return };
        let wall = wall_now();
        // Bounded per wakeup so a flood cannot starve the loop.
        for _ in 0..512 {
            let Some(from) = sock::recv_frame(fd, &mut self.rx) else {
                break;
            };
            if from.pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let Some(&(ni, ei)) = self.by_ifindex.get(&from.ifindex) else {
                // Not an ECO endpoint (a port, or the bridge's own copy): never served.
                continue;
            };
            let Some(n) = self.nets.get_mut(ni) else {
                continue;
            };
            let frame_bytes = &self.rx[..from.len];
            if let Some((mac, ip)) = frame::parse_arp(frame_bytes) {
                if let Some(out) = n.server.handle_arp(now, mac, ip) {
                    Self::emit(fd, n, None, out, &mut self.tx, false);
                }
                continue;
            }
            // Frames from a local veth or tap may carry offloaded (partial) UDP
            // checksums; the IPv4 header checksum is still verified.
            let Some((src_mac, src_ip, payload)) =
                frame::parse_request(frame_bytes, Checksum::Ignore)
            else {
                continue;
            };
            let Some((key, _)) = n.spec.endpoints.get(ei) else {
                continue;
            };
            let rx = Rx {
                endpoint: Some(key),
                src_mac,
                src_ip,
                payload,
            };
            let out = n
                .server
                .handle(now, wall, rx, &mut self.tx[frame::PAYLOAD_OFFSET..]);
            // Every change, a RELEASE's (no reply) too, goes out with this batch.
            let granted = Self::lease_events(n, events);
            let out = out.map(|o| Self::emit(fd, n, Some(from.ifindex), o, &mut self.tx, granted));
            if let Some(Emitted::Grant { ifindex, len }) = out {
                self.held.hold(ifindex, &self.tx[..len]);
            }
            if n.server.take_dirty(wall) {
                n.file.changed(now);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.nets
            .iter()
            .flat_map(|n| [n.server.poll_timeout(), n.file.due()])
            .flatten()
            .min()
    }

    /// Timers: offers after their probe window, expiries, lease files due. Lease
    /// events go to `events` as in `ready`.
    fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>) {
        let wall = wall_now();
        if let Some(fd) = self.fd() {
            for n in self.nets.iter_mut() {
                for _ in 0..256 {
                    let Some(out) = n
                        .server
                        .poll(now, wall, &mut self.tx[frame::PAYLOAD_OFFSET..])
                    else {
                        break;
                    };
                    let granted = Self::lease_events(n, events);
                    if let Emitted::Grant { ifindex, len } =
                        Self::emit(fd, n, None, out, &mut self.tx, granted)
                    {
                        self.held.hold(ifindex, &self.tx[..len]);
                    }
                }
                // A change that came with no output goes out with this batch too.
                Self::lease_events(n, events);
            }
        }
    }

    /// The batch's new allocations onto disk, then the replies held for the routed
    /// events, then the lease file snapshots due.
    fn flush(&mut self) {
        let now = Instant::now();
        self.commit_journal(now);
        let fd = self.fd();
        self.held.release(fd);
        self.save_due(now);
    }

    /// Each endpoint's lease: its address (a static one wins), name and expiry.
    fn status(&self, net: &Network, _now: Instant, ns: &mut NetworkStatus) {
        if let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net.id) {
            n.file.status_warnings(&mut ns.warnings);
            ns.dhcp = Some(crate::status::DhcpStatus {
                lease_write_failures: n.file.write_failures,
            });
        }
        let leases = self.eco_leases(&net.id);
        if leases.is_empty() {
            return;
        }
        for e in &mut ns.endpoints {
            let key = EndpointKey {
                app_id: e.app.clone(),
                ifname: e.interface.clone(),
            };
            if let Some((_, ip, name, expires)) = leases.get(&key) {
                e.ip = e.ip.take().or_else(|| Some(ip.to_string()));
                e.hostname = (!name.is_empty()).then(|| name.clone());
                e.lease_expires = Some(*expires);
            }
        }
    }

    /// Writes every unsaved lease file (on exit).
    fn shutdown(&mut self) {
        let now = Instant::now();
        for n in self.nets.iter_mut() {
            if n.server.has_unsaved() || n.file.unsaved() {
                n.file.save(&n.server.snapshot(), now);
            }
        }
    }
}

/// What `emit` did.
enum Emitted {
    Done,
    /// A reply granting an address, built at `tx[..len]`, still to be sent.
    Grant {
        ifindex: i32,
        len: usize,
    },
}
