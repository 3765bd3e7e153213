//! The IPv6 shell of dual-stack local networks: router advertisements
//! ([`crate::ra::Advertiser`]) and DHCPv6 ([`crate::dhcp6::Server`]), one of each per
//! network with `subnet6`, on one packet socket for all of them (a kernel filter
//! passes only router solicitations and UDP to port 547).
//!
//! As for DHCPv4, a request is attributed to the bridge port (endpoint) it arrived
//! on, and its reply leaves by that port as a whole frame to the client's MAC, from
//! the bridge's MAC and link-local address: no neighbour discovery on the device, and
//! an ECO is told from a guest behind it by the frame's source MAC. Replies that grant
//! an address wait until the firewall has admitted it ([`Service::flush`]).
//! Router advertisements go out of the bridge to all nodes. The router lifetime is
//! zero (the prefix and DNS only) while the network has no IPv6 way off the device,
//! so an ECO does not send its IPv6 traffic to a router that drops it.
//!
//! Lease files: `leases6-<network>.txt` in the state directory, written as DHCPv4's.

use super::lease_file::{index_endpoints, HeldFrames, LeaseFile};
use super::sock;
use super::{NetErrors, Service, ServiceError, ServiceEvent, World};
use crate::addr::MacAddr;
use crate::config::Network;
use crate::dhcp6::{self, EndpointKey, LeaseChange, Rx, Server};
use crate::netlink::link::Link;
use crate::ra::{self, Advertiser};
use crate::services::dhcp::{wall_now, LeaseEvent};
use crate::status::NetworkStatus;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The most a lease file is read: a line of at most 2 KiB per possible allocation.
const LEASE_FILE_CAP: u64 = 64 << 20;

/// What the shell needs to serve one network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    pub net_id: String,
    pub bridge: String,
    pub dhcp: dhcp6::Config,
    /// The advertisement, but for the bridge's link-local address and MAC, which
    /// the shell fills in from the link.
    pub ra: ra::Config,
    /// Each endpoint's key and host-side interface.
    pub endpoints: Vec<(EndpointKey, String)>,
}

struct Net6 {
    spec: NetSpec,
    endpoint_index: HashMap<EndpointKey, usize>,
    server: Server,
    ra: Option<Advertiser>,
    bridge_index: i32,
    bridge_mac: MacAddr,
    link_local: Ipv6Addr,
    file: LeaseFile,
}

pub struct Ipv6Shell {
    sock: Option<OwnedFd>,
    nets: Vec<Net6>,
    /// Endpoint interface index → (network, index in its `spec.endpoints`).
    by_ifindex: HashMap<i32, (usize, usize)>,
    dir: PathBuf,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Replies granting an address, held until the firewall has admitted them.
    held: HeldFrames,
    seed: u64,
}

impl Ipv6Shell {
    pub fn new(state_dir: &Path) -> Ipv6Shell {
        let mut seed = [0u8; 8];
        // The RA timers' randomness; a fixed seed (no randomness) is still correct.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
        Ipv6Shell {
            sock: None,
            nets: Vec::new(),
            by_ifindex: HashMap::new(),
            dir: state_dir.to_path_buf(),
            rx: vec![0; 4096],
            tx: vec![0; 2048],
            held: HeldFrames::default(),
            seed: u64::from_ne_bytes(seed),
        }
    }

    fn fd(&self) -> Option<i32> {
        self.sock.as_ref().map(|s| s.as_raw_fd())
    }

    /// Brings the served networks to `specs`, given the links as they are now. A
    /// network that goes sends its final advertisement (withdrawing the prefix).
    pub fn set_networks(&mut self, specs: &[NetSpec], links: &[Link], now: Instant) -> NetErrors {
        let mut errors = Vec::new();
        let mut i = 0;
        while i < self.nets.len() {
            if specs.iter().any(|s| s.net_id == self.nets[i].spec.net_id) {
                i += 1;
                continue;
            }
            let mut n = self.nets.remove(i);
            n.file.save(&n.server.snapshot(), now);
            if let (Some(fd), Some(ra)) = (self.fd(), n.ra.as_mut()) {
                let mut buf = vec![0u8; frame::RA_OFFSET + ra::MAX_RA_LEN];
                if let Some(out) = ra.shutdown(now, &mut buf[frame::RA_OFFSET..], true) {
                    send_ra(fd, &n, &mut buf, out);
                }
            }
        }
        for s in specs {
            let br = links.iter().find(|l| l.name == s.bridge);
            let (bridge_index, bridge_mac) = match br {
                Some(l) => (l.index, l.mac.unwrap_or_default()),
                None => (0, MacAddr::default()),
            };
            let link_local = crate::wire::ipv6::link_local_from_mac(bridge_mac);
            let mut ra_cfg = s.ra.clone();
            ra_cfg.link_local = link_local;
            ra_cfg.mac = bridge_mac;
            self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let seed = self.seed;
            match self.nets.iter_mut().find(|n| n.spec.net_id == s.net_id) {
                Some(n) => {
                    if n.spec.dhcp != s.dhcp {
                        n.server.update_config(s.dhcp.clone());
                    }
                    // No advertisements until the bridge is there (its MAC makes the
                    // source address).
                    match (&mut n.ra, bridge_index > 0) {
                        (Some(a), true) if *a.config() != ra_cfg => a.update_config(ra_cfg, now),
                        (Some(_), true) => {}
                        (None, true) => n.ra = Some(Advertiser::new(ra_cfg, now, seed)),
                        (_, false) => n.ra = None,
                    }
                    n.spec = s.clone();
                    n.endpoint_index = index_endpoints(&s.endpoints);
                    n.bridge_index = bridge_index;
                    n.bridge_mac = bridge_mac;
                    n.link_local = link_local;
                }
                None => {
                    let (file, bytes) = LeaseFile::open(
                        &self.dir,
                        "leases6",
                        dhcp6::store::HEADER,
                        &s.net_id,
                        LEASE_FILE_CAP,
                    );
                    let mut server = Server::new(s.dhcp.clone());
                    if let Some(bytes) = bytes {
                        let n = server.restore(&bytes, now, wall_now());
                        log::info!("network {}: {n} DHCPv6 allocations restored", s.net_id);
                    }
                    self.nets.push(Net6 {
                        spec: s.clone(),
                        endpoint_index: index_endpoints(&s.endpoints),
                        server,
                        ra: (bridge_index > 0).then(|| Advertiser::new(ra_cfg, now, seed)),
                        bridge_index,
                        bridge_mac,
                        link_local,
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
            match sock::ipv6_packet_socket() {
                Ok(s) => self.sock = Some(s),
                Err(err) => {
                    for s in specs {
                        let e = std::io::Error::new(err.kind(), err.to_string());
                        errors.push(ServiceError::new(&s.net_id, "IPv6 packet socket", e));
                    }
                }
            }
        }
        errors
    }

    /// Every DHCPv6 lease (and allocation held for an ECO) of every network: who may
    /// send from what, as (interface, MAC, address).
    pub fn admitted(&self) -> Vec<(String, MacAddr, Ipv6Addr)> {
        let mut v = Vec::new();
        for n in &self.nets {
            for l in n.server.held() {
                if let Some((_, ifname)) = n
                    .endpoint_index
                    .get(l.endpoint)
                    .and_then(|&i| n.spec.endpoints.get(i))
                {
                    v.push((ifname.clone(), l.mac, l.ip));
                }
            }
        }
        v
    }

    /// Host names for a network's DNS zone from its DHCPv6 leases: (name, address,
    /// app id).
    pub fn hosts(&self, net_id: &str) -> Vec<(String, Ipv6Addr, String)> {
        let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net_id) else {
            return Vec::new();
        };
        n.server
            .held()
            .filter_map(|l| {
                Some((
                    super::host_label(l.hostname)?,
                    l.ip,
                    l.endpoint.app_id.clone(),
                ))
            })
            .collect()
    }

    /// The server's lease changes as events; whether any granted an address.
    fn lease_events(n: &mut Net6, events: &mut Vec<ServiceEvent>) -> bool {
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
                LeaseEvent::Granted6 {
                    net_id,
                    ifname,
                    mac,
                    ip,
                }
            } else {
                LeaseEvent::Ended6 {
                    net_id,
                    ifname,
                    mac,
                    ip,
                }
            }));
        }
        granted
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        wall: u64,
        len: usize,
        ifindex: i32,
        events: &mut Vec<ServiceEvent>,
    ) {
        let Some(fd) = self.fd() else { return };
        let Some(&(ni, ei)) = self.by_ifindex.get(&ifindex) else {
            // Not an ECO endpoint (a port, or the bridge's own copy): never served.
            return;
        };
        let Some(n) = self.nets.get_mut(ni) else {
            return;
        };
        let Some(f) = frame::parse(&self.rx[..len]) else {
            return;
        };
        match f.kind {
            frame::Kind::RouterSolicit => {
                if let Some(ra) = n.ra.as_mut() {
                    ra.handle(
                        now,
                        ra::Rx {
                            src: f.src_ip,
                            dst: f.dst_ip,
                            hop_limit: f.hop_limit,
                            payload: f.payload,
                        },
                    );
                }
            }
            frame::Kind::Dhcp6 => {
                let Some((key, _)) = n.spec.endpoints.get(ei) else {
                    return;
                };
                let rx = Rx {
                    endpoint: Some(key),
                    src_mac: f.src_mac,
                    src_ip: f.src_ip,
                    unicast: !f.dst_ip.is_multicast(),
                    payload: f.payload,
                };
                let reply = n
                    .server
                    .handle(now, wall, rx, &mut self.tx[frame::DHCP_OFFSET..]);
                let granted = Self::lease_events(n, events);
                if let Some(r) = reply {
                    if let Some(len) =
                        frame::emit_dhcp(&mut self.tx, n.bridge_mac, n.link_local, &r)
                    {
                        if granted {
                            self.held.hold(ifindex, &self.tx[..len]);
                        } else {
                            let _ = sock::send_frame(fd, ifindex, &self.tx[..len]);
                        }
                    }
                }
                if n.server.take_dirty(wall) {
                    n.file.changed(now);
                }
            }
        }
    }

    fn commit_journal(&mut self, now: Instant) {
        for n in self.nets.iter_mut() {
            let lines = n.server.take_journal();
            n.file.commit(&lines, now);
        }
    }

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

/// Frames an advertisement the core wrote at `buf[RA_OFFSET..]` and sends it out of
/// the bridge.
fn send_ra(fd: i32, n: &Net6, buf: &mut [u8], out: ra::Output) {
    if n.bridge_index <= 0 {
        return;
    }
    if let Some(len) = frame::emit_ra(buf, n.bridge_mac, n.link_local, out.dst, out.len) {
        let _ = sock::send_frame(fd, n.bridge_index, &buf[..len]);
    }
}

impl Service for Ipv6Shell {
    fn configure(&mut self, w: &World<'_>, now: Instant) -> NetErrors {
        self.set_networks(&super::ipv6_specs(w.cfg, w.facts), w.links, now)
    }

    fn register(&self, p: &mut crate::event_loop::Poller, base: u64) {
        if let Some(fd) = self.fd() {
            p.add(fd, false, base);
        }
    }

    fn ready(&mut self, _slot: u64, now: Instant, events: &mut Vec<ServiceEvent>) {
        let Some(fd) = self.fd() else { return };
        let wall = wall_now();
        for _ in 0..512 {
            let Some(from) = sock::recv_frame(fd, &mut self.rx) else {
                break;
            };
            if from.pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            self.handle_frame(now, wall, from.len, from.ifindex, events);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.nets
            .iter()
            .flat_map(|n| {
                [
                    n.server.poll_timeout(),
                    n.file.due(),
                    n.ra.as_ref().and_then(Advertiser::poll_timeout),
                ]
            })
            .flatten()
            .min()
    }

    /// Advertisements due, lease expiries (their events), lease files due.
    fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>) {
        let fd = self.fd();
        let mut buf = vec![0u8; frame::RA_OFFSET + ra::MAX_RA_LEN];
        for n in self.nets.iter_mut() {
            n.server.poll(now);
            Self::lease_events(n, events);
            let Some(fd) = fd else { continue };
            for _ in 0..4 {
                let Some(out) =
                    n.ra.as_mut()
                        .and_then(|a| a.poll(now, &mut buf[frame::RA_OFFSET..]))
                else {
                    break;
                };
                send_ra(fd, n, &mut buf, out);
            }
        }
    }

    fn flush(&mut self) {
        let now = Instant::now();
        self.commit_journal(now);
        let fd = self.fd();
        self.held.release(fd);
        self.save_due(now);
    }

    /// Each endpoint's DHCPv6 address (a static one wins) and the lease file's
    /// troubles.
    fn status(&self, net: &Network, _now: Instant, ns: &mut NetworkStatus) {
        let Some(n) = self.nets.iter().find(|n| n.spec.net_id == net.id) else {
            return;
        };
        n.file.status_warnings(&mut ns.warnings);
        for e in &mut ns.endpoints {
            let key = EndpointKey {
                app_id: e.app.clone(),
                ifname: e.interface.clone(),
            };
            if let Some(ip) = n.server.eco_address(&key) {
                e.ip6 = e.ip6.take().or_else(|| Some(ip.to_string()));
            }
        }
    }

    /// Writes unsaved lease files. The advertisements stop with the process; the
    /// prefix and router stay valid in the ECOs for their lifetimes, which covers a
    /// restart.
    fn shutdown(&mut self) {
        let now = Instant::now();
        for n in self.nets.iter_mut() {
            if n.server.has_unsaved() || n.file.unsaved() {
                n.file.save(&n.server.snapshot(), now);
            }
        }
    }
}

/// Whole Ethernet frames around router solicitations, advertisements and DHCPv6
/// messages: what the packet socket reads and writes.
pub mod frame {
    use crate::addr::MacAddr;
    use crate::dhcp6::Reply;
    use crate::wire::ipv6::{self, checksum, NextHeader};
    use crate::wire::{dhcpv6, ethernet};
    use std::net::Ipv6Addr;

    const ETH: usize = 14;
    const UDP: usize = 8;
    /// Where a DHCPv6 reply's payload starts in the frame `emit_dhcp` builds.
    pub const DHCP_OFFSET: usize = ETH + ipv6::HEADER_LEN + UDP;
    /// Where an advertisement's ICMPv6 message starts in the frame `emit_ra` builds.
    pub const RA_OFFSET: usize = ETH + ipv6::HEADER_LEN;
    const ICMPV6_RS: u8 = 133;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        RouterSolicit,
        Dhcp6,
    }

    /// What a received frame holds, if it is one of ours.
    #[derive(Debug)]
    pub struct Frame<'a> {
        pub kind: Kind,
        pub src_mac: MacAddr,
        pub src_ip: Ipv6Addr,
        pub dst_ip: Ipv6Addr,
        pub hop_limit: u8,
        /// The ICMPv6 message, or the UDP payload.
        pub payload: &'a [u8],
    }

    /// Reads a router solicitation (the ICMPv6 message, checked by the core) or a
    /// DHCPv6 message to port 547 (the UDP payload).
    pub fn parse(f: &[u8]) -> Option<Frame<'_>> {
        let eth = ethernet::Packet::new_checked(f).ok()?;
        if u16::from(eth.ethertype()) != 0x86dd {
            return None;
        }
        let src_mac = eth.src_addr();
        let ip = ipv6::Packet::new_checked(f.get(ETH..)?).ok()?;
        let plen = usize::from(ip.payload_len());
        let payload = f.get(ETH + ipv6::HEADER_LEN..ETH + ipv6::HEADER_LEN + plen)?;
        let (src_ip, dst_ip, hop_limit) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        match ip.next_header() {
            NextHeader::Icmpv6 if payload.first() == Some(&ICMPV6_RS) => Some(Frame {
                kind: Kind::RouterSolicit,
                src_mac,
                src_ip,
                dst_ip,
                hop_limit,
                payload,
            }),
            NextHeader::Udp => {
                let dport = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
                let ulen = usize::from(u16::from_be_bytes([*payload.get(4)?, *payload.get(5)?]));
                if dport != dhcpv6::SERVER_PORT || ulen < UDP || ulen > payload.len() {
                    return None;
                }
                // Not checked: from a local veth or tap the checksum may be an
                // offloaded partial one (as for DHCPv4; the core parses defensively).
                let seg = &payload[..ulen];
                Some(Frame {
                    kind: Kind::Dhcp6,
                    src_mac,
                    src_ip,
                    dst_ip,
                    hop_limit,
                    payload: seg.get(UDP..)?,
                })
            }
            _ => None,
        }
    }

    /// The link-layer and IPv6 ends of a frame econet sends.
    struct Ends {
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    }

    /// Writes Ethernet and IPv6 headers (hop limit 255) in front of `payload_len`
    /// bytes already at `frame[ETH + 40..]`; returns the frame length.
    fn emit_headers(
        frame: &mut [u8],
        e: Ends,
        next: NextHeader,
        payload_len: usize,
    ) -> Option<usize> {
        let len = ETH + ipv6::HEADER_LEN + payload_len;
        let frame = frame.get_mut(..len)?;
        frame[0..6].copy_from_slice(&e.dst_mac.0);
        frame[6..12].copy_from_slice(&e.src_mac.0);
        frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        ipv6::Repr {
            src_addr: e.src,
            dst_addr: e.dst,
            next_header: next,
            payload_len,
            hop_limit: 255,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut frame[ETH..]))
        .ok()?;
        Some(len)
    }

    /// The multicast MAC of an IPv6 multicast address (RFC 2464 §7).
    fn multicast_mac(a: Ipv6Addr) -> MacAddr {
        let o = a.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// Frames a DHCPv6 reply whose payload is at `frame[DHCP_OFFSET..]`: from the
    /// bridge's MAC and link-local address, port 547, to the client.
    pub fn emit_dhcp(
        frame: &mut [u8],
        src_mac: MacAddr,
        src: Ipv6Addr,
        r: &Reply,
    ) -> Option<usize> {
        let seg_len = UDP + r.payload_len;
        {
            let seg = frame.get_mut(ETH + ipv6::HEADER_LEN..ETH + ipv6::HEADER_LEN + seg_len)?;
            seg[0..2].copy_from_slice(&dhcpv6::SERVER_PORT.to_be_bytes());
            seg[2..4].copy_from_slice(&r.dst_port.to_be_bytes());
            seg[4..6].copy_from_slice(&u16::try_from(seg_len).ok()?.to_be_bytes());
            seg[6..8].copy_from_slice(&[0, 0]);
            let mut c = checksum::compute(src, r.dst_ip, NextHeader::Udp, seg);
            if c == 0 {
                c = 0xffff;
            }
            seg[6..8].copy_from_slice(&c.to_be_bytes());
        }
        let ends = Ends {
            src_mac,
            dst_mac: r.dst_mac,
            src,
            dst: r.dst_ip,
        };
        emit_headers(frame, ends, NextHeader::Udp, seg_len)
    }

    /// Frames an advertisement whose ICMPv6 message (checksummed for `src` and
    /// `dst`) is at `frame[RA_OFFSET..]`, hop limit 255.
    pub fn emit_ra(
        frame: &mut [u8],
        src_mac: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        len: usize,
    ) -> Option<usize> {
        let ends = Ends {
            src_mac,
            dst_mac: multicast_mac(dst),
            src,
            dst,
        };
        emit_headers(frame, ends, NextHeader::Icmpv6, len)
    }
}

#[cfg(test)]
mod tests {
    use super::frame::{self, Kind};
    use crate::addr::MacAddr;
    use crate::dhcp6::Reply;
    use crate::wire::icmpv6::captures::{KERNEL_DAD_NS, KERNEL_RS};
    use crate::wire::ipv6::{checksum, NextHeader};
    use std::net::Ipv6Addr;

    const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0xec, 0, 0, 0, 1]);

    #[test]
    fn a_captured_router_solicitation_is_read_and_other_icmpv6_is_not() {
        let f = frame::parse(&KERNEL_RS).unwrap();
        assert_eq!(f.kind, Kind::RouterSolicit);
        assert_eq!(f.src_mac, MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]));
        assert_eq!(f.dst_ip, crate::wire::ipv6::ALL_ROUTERS);
        assert_eq!(f.hop_limit, 255);
        assert_eq!(f.payload.len(), 16);
        assert!(frame::parse(&KERNEL_DAD_NS).is_none(), "an NS is not ours");
        for cut in 0..KERNEL_RS.len() {
            let _ = frame::parse(&KERNEL_RS[..cut]);
        }
    }

    /// A client's DHCPv6 message in a frame, checksummed as a client sends it.
    fn client_frame(payload: &[u8], sum: Option<u16>) -> Vec<u8> {
        let src: Ipv6Addr = "fe80::701e:a0ff:fe80:5950".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:2".parse().unwrap();
        let mut seg = vec![0x02, 0x22, 0x02, 0x23];
        seg.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(payload);
        let c = sum.unwrap_or_else(|| checksum::compute(src, dst, NextHeader::Udp, &seg));
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![
            0x33, 0x33, 0, 1, 0, 2, 0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50, 0x86, 0xdd,
        ];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        f.extend_from_slice(&[17, 1]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend(seg);
        f
    }

    #[test]
    fn a_dhcpv6_message_is_read_whatever_its_checksum() {
        let solicit =
            crate::wire::dhcpv6::captures::hex(crate::wire::dhcpv6::captures::DHCLIENT_SOLICIT);
        let f = client_frame(&solicit, None);
        let got = frame::parse(&f).unwrap();
        assert_eq!(got.kind, Kind::Dhcp6);
        assert_eq!(got.payload, &solicit[..]);
        // A veth's offloaded checksum is partial: not checked.
        assert!(frame::parse(&client_frame(&solicit, Some(0x1234))).is_some());
        for cut in 0..f.len() {
            let _ = frame::parse(&f[..cut]);
        }
    }

    #[test]
    fn replies_and_advertisements_are_framed_with_checksums_that_verify() {
        let src = crate::wire::ipv6::link_local_from_mac(BRIDGE_MAC);
        let client: Ipv6Addr = "fe80::701e:a0ff:fe80:5950".parse().unwrap();
        let mut buf = vec![0u8; 512];
        buf[frame::DHCP_OFFSET..frame::DHCP_OFFSET + 4].copy_from_slice(&[7, 1, 2, 3]);
        let r = Reply {
            dst_mac: MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]),
            dst_ip: client,
            dst_port: 546,
            payload_len: 4,
        };
        let n = frame::emit_dhcp(&mut buf, BRIDGE_MAC, src, &r).unwrap();
        let f = &buf[..n];
        assert_eq!(&f[0..6], &r.dst_mac.0);
        assert_eq!(&f[6..12], &BRIDGE_MAC.0);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[20], 17);
        let seg = &f[54..];
        assert_eq!(&seg[0..4], &[0x02, 0x23, 0x02, 0x22]);
        assert!(checksum::verify(src, client, NextHeader::Udp, seg));
        // An advertisement: to all nodes' multicast MAC, hop limit 255.
        let mut buf = vec![0u8; 512];
        let n =
            frame::emit_ra(&mut buf, BRIDGE_MAC, src, crate::wire::ipv6::ALL_NODES, 16).unwrap();
        assert_eq!(&buf[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!((buf[20], buf[21]), (58, 255));
        assert_eq!(n, 14 + 40 + 16);
    }
}
