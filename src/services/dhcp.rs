//! The DHCP shell: one packet socket for every L3 network (a kernel filter passes
//! only ARP and DHCP to the server), one [`crate::dhcp::Server`] per network, lease
//! files in the state directory.
//!
//! A request is attributed to the bridge port (endpoint) it arrived on, which is how
//! an ECO is told from a guest nested behind it; its reply goes out of that port as a
//! whole frame to the client's MAC, so the kernel's ARP table is never touched (it
//! overflows at about 1024 entries under load). Leases are written atomically when an
//! allocation changes, at most once a second, never on a mere renewal.

use super::sock;
use crate::addr::MacAddr;
use crate::dhcp::{frame, Config, EndpointKey, Output, Rx, Server};
use crate::netlink::link::Link;
use crate::wire::dhcp::{MessageType, Packet, Repr};
use crate::wire::udp::Checksum;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lease files are written at most this often.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What the shell needs to run one network's server.
#[derive(Clone, Debug)]
pub struct NetSpec {
    pub net_id: String,
    pub bridge: String,
    pub cfg: Config,
    /// Each endpoint's key and host-side interface.
    pub endpoints: Vec<(EndpointKey, String)>,
}

/// A sender admitted or dismissed by a DHCP exchange.
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
}

struct NetDhcp {
    spec: NetSpec,
    server: Server,
    bridge_index: i32,
    bridge_mac: MacAddr,
    file: PathBuf,
    write_at: Option<Instant>,
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
    /// clients: (interface index, range in `held_bytes`).
    held: Vec<(i32, std::ops::Range<usize>)>,
    held_bytes: Vec<u8>,
    /// The lease events of one batch, in order.
    events: Vec<LeaseEvent>,
    /// Networks whose leases changed since the DNS zones were last refreshed.
    pub changed: Vec<String>,
    /// The same, since the daemon last looked (for status and mesh routes).
    pub touched: Vec<String>,
}

/// Wall-clock unix seconds. Read with clock_gettime through nix rather than
/// `SystemTime`: std on armv7 musl uses a 32-bit time_t and would fail after 2038.
pub fn wall_now() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec().max(0) as u64)
        .unwrap_or(0)
}

fn lease_file(dir: &Path, net_id: &str) -> PathBuf {
    let safe: String = net_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("leases-{safe}.txt"))
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
            held: Vec::new(),
            held_bytes: Vec::new(),
            events: Vec::new(),
            changed: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Brings the served networks to `specs`, given the links as they are now.
    /// A new network's server starts from its lease file. Returns errors per network.
    pub fn set_networks(
        &mut self,
        specs: &[NetSpec],
        links: &[Link],
        now: Instant,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        // Networks that are gone: save and drop.
        let mut i = 0;
        while i < self.nets.len() {
            if specs.iter().any(|s| s.net_id == self.nets[i].spec.net_id) {
                i += 1;
            } else {
                let n = self.nets.remove(i);
                save(&n);
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
                    n.bridge_index = bridge_index;
                    n.bridge_mac = bridge_mac;
                }
                None => {
                    let file = lease_file(&self.dir, &s.net_id);
                    let mut server = Server::new(s.cfg.clone());
                    if let Ok(bytes) = std::fs::read(&file) {
                        let n = server.restore(&bytes, now, wall_now());
                        log::info!("network {}: {n} DHCP allocations restored", s.net_id);
                    }
                    self.nets.push(NetDhcp {
                        spec: s.clone(),
                        server,
                        bridge_index,
                        bridge_mac,
                        file,
                        write_at: None,
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
                Err(e) => {
                    for s in specs {
                        errors.push((s.net_id.clone(), format!("DHCP packet socket: {e}")));
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

    pub fn fd(&self) -> Option<i32> {
        self.sock.as_ref().map(|s| s.as_raw_fd())
    }

    /// Every lease (presumed ones too) of every network: who may send from what.
    pub fn senders(&self) -> Vec<(String, String, MacAddr, Ipv4Addr)> {
        let mut v = Vec::new();
        for n in &self.nets {
            let ifname_of: HashMap<&EndpointKey, &String> =
                n.spec.endpoints.iter().map(|(k, i)| (k, i)).collect();
            for l in n.server.held() {
                if let Some(ifn) = ifname_of.get(l.endpoint) {
                    v.push((n.spec.net_id.clone(), (*ifn).clone(), l.mac, l.ip));
                }
            }
        }
        v
    }

    /// A network's leases for status: endpoint → (MAC, IP, host name, expiry) of the
    /// ECO itself.
    pub fn eco_leases(
        &self,
        net_id: &str,
    ) -> HashMap<EndpointKey, (MacAddr, Ipv4Addr, String, u64)> {
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
    pub fn hosts(&self, net_id: &str) -> Vec<(String, Ipv4Addr)> {
        let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net_id) else {
            return Vec::new();
        };
        n.server
            .held()
            .filter_map(|l| Some((super::host_label(l.hostname)?, l.ip)))
            .collect()
    }

    /// Handles the waiting frames. `on_events` gets the lease events of the batch, in
    /// order, before any reply granting an address goes out (so the firewall admits
    /// the clients before they use their addresses): one firewall update per batch,
    /// not one per client.
    pub fn ready(&mut self, now: Instant, on_events: &mut dyn FnMut(&[LeaseEvent])) {
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
                    Self::emit(fd, n, None, out, &mut self.tx);
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
            let req_type = Packet::new_checked(payload)
                .ok()
                .and_then(|p| Repr::parse(&p).ok())
                .map(|r| (r.message_type, r.client_ip, r.requested_ip));
            let Some((key, ifname)) = n.spec.endpoints.get(ei) else {
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
            if let Some((t, ciaddr, requested)) = req_type {
                let ended = match t {
                    MessageType::Release => Some(ciaddr),
                    MessageType::Decline => requested,
                    _ => None,
                };
                if let Some(ip) = ended.filter(|ip| !ip.is_unspecified()) {
                    self.events.push(LeaseEvent::Ended {
                        net_id: n.spec.net_id.clone(),
                        ifname: ifname.clone(),
                        mac: src_mac,
                        ip,
                    });
                    mark_changed(&mut self.changed, &mut self.touched, &n.spec.net_id);
                }
            }
            if let Some(out) = out {
                let via = (ifname.clone(), from.ifindex, src_mac);
                if let Emitted::Grant {
                    ifindex,
                    len,
                    event,
                } = Self::emit(fd, n, Some(via), out, &mut self.tx)
                {
                    mark_changed(&mut self.changed, &mut self.touched, &n.spec.net_id);
                    self.events.push(event);
                    hold(
                        &mut self.held,
                        &mut self.held_bytes,
                        ifindex,
                        &self.tx[..len],
                    );
                }
            }
            if n.server.take_dirty(wall) && n.write_at.is_none() {
                n.write_at = Some(now + WRITE_EVERY);
            }
        }
        self.release_held(fd, on_events);
    }

    /// Hands the batch's events over, then sends the replies held for them.
    fn release_held(&mut self, fd: i32, on_events: &mut dyn FnMut(&[LeaseEvent])) {
        if !self.events.is_empty() {
            on_events(&self.events);
            self.events.clear();
        }
        for (ifindex, r) in self.held.drain(..) {
            if let Some(f) = self.held_bytes.get(r) {
                let _ = sock::send_frame(fd, ifindex, f);
            }
        }
        self.held_bytes.clear();
    }

    /// Sends an output, except a reply that grants an address: that frame is built
    /// and handed back with its event, so the caller admits the client to the
    /// firewall before the client sees the ACK.
    fn emit(
        fd: i32,
        n: &mut NetDhcp,
        via: Option<(String, i32, MacAddr)>,
        out: Output,
        tx: &mut [u8],
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
                let ack = tx
                    .get(frame::PAYLOAD_OFFSET..frame::PAYLOAD_OFFSET + r.payload_len)
                    .and_then(|b| Packet::new_checked(b).ok())
                    .and_then(|p| Repr::parse(&p).ok())
                    .filter(|p| p.message_type == MessageType::Ack && !p.your_ip.is_unspecified())
                    .map(|p| p.your_ip);
                let Some(len) = frame::emit_reply(tx, n.bridge_mac, n.spec.cfg.gateway, &r) else {
                    return Emitted::Done;
                };
                // Out of the port the request came in on; otherwise (an offer after a
                // probe window) out of the bridge, which delivers it by MAC.
                let ifindex = via.as_ref().map_or(n.bridge_index, |v| v.1);
                let who = match via {
                    Some((ifname, _, mac)) => Some((ifname, mac)),
                    None => ack.and_then(|ip| {
                        let l = n.server.held().find(|l| l.ip == ip)?;
                        let ifname = n
                            .spec
                            .endpoints
                            .iter()
                            .find(|(k, _)| k == l.endpoint)?
                            .1
                            .clone();
                        Some((ifname, l.mac))
                    }),
                };
                match (ack, who) {
                    (Some(ip), Some((ifname, mac))) => Emitted::Grant {
                        ifindex,
                        len,
                        event: LeaseEvent::Granted {
                            net_id: n.spec.net_id.clone(),
                            ifname,
                            mac,
                            ip,
                        },
                    },
                    _ => {
                        let _ = sock::send_frame(fd, ifindex, &tx[..len]);
                        Emitted::Done
                    }
                }
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.nets
            .iter()
            .flat_map(|n| [n.server.poll_timeout(), n.write_at])
            .flatten()
            .min()
    }

    /// Timers: offers after their probe window, expiries, lease files due. Lease
    /// events go to `on_events` as in [`DhcpShell::ready`].
    pub fn tick(&mut self, now: Instant, on_events: &mut dyn FnMut(&[LeaseEvent])) {
        let wall = wall_now();
        let fd = self.fd();
        for n in self.nets.iter_mut() {
            if let Some(fd) = fd {
                for _ in 0..256 {
                    let Some(out) = n
                        .server
                        .poll(now, wall, &mut self.tx[frame::PAYLOAD_OFFSET..])
                    else {
                        break;
                    };
                    if let Emitted::Grant {
                        ifindex,
                        len,
                        event,
                    } = Self::emit(fd, n, None, out, &mut self.tx)
                    {
                        mark_changed(&mut self.changed, &mut self.touched, &n.spec.net_id);
                        self.events.push(event);
                        hold(
                            &mut self.held,
                            &mut self.held_bytes,
                            ifindex,
                            &self.tx[..len],
                        );
                    }
                }
            }
        }
        if let Some(fd) = fd {
            self.release_held(fd, on_events);
        }
        // Lease files last: a write (with fsync) must not delay the replies above.
        for n in self.nets.iter_mut() {
            if n.server.take_dirty(wall) && n.write_at.is_none() {
                n.write_at = Some(now + WRITE_EVERY);
            }
            if n.write_at.is_some_and(|t| t <= now) {
                n.write_at = None;
                save(n);
            }
        }
    }

    /// Writes every unsaved lease file (on exit).
    pub fn save_all(&mut self) {
        for n in &self.nets {
            if n.server.has_unsaved() || n.write_at.is_some() {
                save(n);
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
        event: LeaseEvent,
    },
}

/// Keeps a reply granting an address until the batch's events are through.
fn hold(
    held: &mut Vec<(i32, std::ops::Range<usize>)>,
    bytes: &mut Vec<u8>,
    ifindex: i32,
    f: &[u8],
) {
    let start = bytes.len();
    bytes.extend_from_slice(f);
    held.push((ifindex, start..start + f.len()));
}

fn mark_changed(changed: &mut Vec<String>, touched: &mut Vec<String>, net: &str) {
    for v in [changed, touched] {
        if !v.iter().any(|n| n == net) {
            v.push(net.to_string());
        }
    }
}

fn save(n: &NetDhcp) {
    let bytes = n.server.snapshot();
    if let Err(e) = crate::persist::write_atomic(&n.file, &bytes, 0o600) {
        log::warn!(
            "network {}: cannot write {}: {e}",
            n.spec.net_id,
            n.file.display()
        );
    }
}
