//! The VPN shell: per cloud network, the IKEv2 core ([`crate::ike::Ike`]), its ESP SAs
//! ([`crate::esp`]), UDP 500 and 4500 on the active port's address, and the network's
//! TUN, into which the kernel routes the VPN's remote subnets.
//!
//! The port: the lowest-cost port of the network that is up and has not just failed
//! the VPN (dead peer detection, a handshake that never completed). On a port change
//! the tunnel is brought up again from the new port (no MOBIKE), and it comes back
//! when the better port returns.
//!
//! Outbound: packets (segments of up to 64 KiB with TUN offloads) are cut to wire
//! size, sealed in place and sent to the peer in GSO batches. Inbound: datagrams
//! (coalesced by UDP GRO) are split, classified (IKE, ESP, keepalive), ESP opened by
//! SPI and the inner packet written to the TUN, but only when it comes from the
//! remote subnets and goes to this network.
//!
//! The shell tells the core the ESP facts it sees, once per batch: ESP sealed and
//! sent, ESP opened (authenticated, not replayed). The core decides from them when
//! unanswered ESP calls for a liveness check (a NAT in front of us that changed its
//! mapping), and says where ESP goes when the peer moves.

use super::sock;
use super::tun::Tun;
use super::udp_batch::{self, GsoSender};
use super::{NetErrors, Service, ServiceError, ServiceEvent, World};
use crate::addr::Ipv4Net;
use crate::config::{NetKind, Network, Vpn};
use crate::esp::{self, Inbound, Outbound};
use crate::ike::failover::PortFailover;
use crate::ike::{ChildSa, ChildSpis, DownReason, Event, Ike, IkeConfig, State};
use crate::status::{NetworkStatus, VpnState, VpnStatus};
use crate::wire::esp::{classify, Encap, NAT_KEEPALIVE, NON_ESP_MARKER};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How often ESP SA lifetimes (bytes, packets) are checked.
const ESP_CHECK: Duration = Duration::from_secs(1);

/// A port the VPN may use, in cost order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortChoice {
    pub name: String,
    pub ifname: String,
    /// Its IPv4 address when the port is up; `None` when down.
    pub addr: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    pub net_id: String,
    pub tun: String,
    pub subnet: Ipv4Net,
    pub vpn: Vpn,
    pub ports: Vec<PortChoice>,
}

struct VpnNet {
    spec: NetSpec,
    ike: Option<Ike>,
    /// The port in use: its index in `spec.ports` and the address bound.
    port: Option<(usize, Ipv4Addr)>,
    s500: Option<UdpSocket>,
    s4500: Option<UdpSocket>,
    tun: Option<Tun>,
    /// The outbound SA traffic goes out on, and those installed but not yet used.
    out: Option<Outbound>,
    out_pending: Vec<Outbound>,
    inbound: Vec<Inbound>,
    peer: Option<SocketAddrV4>,
    failover: PortFailover,
    since_wall: Option<u64>,
    rx: u64,
    tx: u64,
    dropped: u64,
    next_esp_check: Instant,
    last_down: Option<DownReason>,
    /// (state, port) as last told to the daemon.
    reported: Option<(VpnState, Option<usize>)>,
}

pub struct VpnShell {
    nets: Vec<VpnNet>,
    buf: Vec<u8>,
    seg: Vec<u8>,
    gso: GsoSender,
}

const PER_NET: u64 = 3;

impl Default for VpnShell {
    fn default() -> Self {
        Self::new()
    }
}

impl VpnNet {
    fn new(spec: &NetSpec, now: Instant) -> VpnNet {
        VpnNet {
            spec: spec.clone(),
            ike: None,
            port: None,
            s500: None,
            s4500: None,
            tun: None,
            out: None,
            out_pending: Vec::new(),
            inbound: Vec::new(),
            peer: None,
            failover: PortFailover::new(),
            since_wall: None,
            rx: 0,
            tx: 0,
            dropped: 0,
            next_esp_check: now,
            last_down: None,
            reported: None,
        }
    }

    /// The ports that are up, with their addresses, in cost order.
    fn ports_up(&self) -> Vec<(usize, Ipv4Addr)> {
        self.spec
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.addr?)))
            .collect()
    }

    /// Drops the tunnel (sockets, SAs, IKE state).
    fn down(&mut self) {
        self.ike = None;
        self.port = None;
        self.s500 = None;
        self.s4500 = None;
        self.out = None;
        self.out_pending.clear();
        self.inbound.clear();
        self.peer = None;
        self.failover.stopped();
        self.since_wall = None;
    }

    /// Brings the tunnel up from `port`.
    fn up(&mut self, port: (usize, Ipv4Addr), now: Instant) -> Result<(), ServiceError> {
        self.down();
        let (i, addr) = port;
        let dev = self.spec.ports.get(i).map(|p| p.ifname.clone());
        let open = |p| sock::udp_bound(SocketAddrV4::new(addr, p), dev.as_deref());
        let net = &self.spec.net_id;
        let s4500 = open(crate::wire::esp::NAT_T_PORT)
            .map_err(|e| ServiceError::new(net, format!("VPN socket on {addr}:4500"), e))?;
        let s500 = open(500)
            .map_err(|e| ServiceError::new(net, format!("VPN socket on {addr}:500"), e))?;
        udp_batch::enable_gro(&s4500);
        let cfg = IkeConfig::from_vpn(&self.spec.vpn, addr, self.spec.subnet);
        let mut ike = Ike::new(cfg, now);
        if self.spec.vpn.initiator {
            ike.connect(now);
        }
        self.ike = Some(ike);
        self.s4500 = Some(s4500);
        self.s500 = Some(s500);
        self.port = Some(port);
        self.failover.connecting(now);
        log::info!(
            "vpn {}: from port {} ({addr}) to {}",
            self.spec.net_id,
            self.spec
                .ports
                .get(i)
                .map(|p| p.name.as_str())
                .unwrap_or("?"),
            self.spec.vpn.remote
        );
        Ok(())
    }

    fn install(&mut self, sa: &ChildSa, now: Instant, current: bool) {
        self.inbound
            .push(Inbound::new(&sa.inbound, sa.lifetime, now));
        let out = Outbound::new(&sa.outbound, sa.lifetime, now);
        if current {
            if let Some(old) = self.out.replace(out) {
                // Kept until its ChildDown, in case the peer still expects it.
                self.out_pending.push(old);
            }
        } else {
            self.out_pending.push(out);
        }
        self.peer = Some(sa.peer);
    }

    fn remove(&mut self, spis: ChildSpis) {
        self.inbound.retain(|i| i.spi() != spis.inbound);
        self.out_pending.retain(|o| o.spi() != spis.outbound);
        if self.out.as_ref().is_some_and(|o| o.spi() == spis.outbound) {
            self.out = self.out_pending.pop();
        }
    }

    fn send_from(&self, local_port: u16, to: SocketAddrV4, data: &[u8]) {
        let s = if local_port == 500 {
            &self.s500
        } else {
            &self.s4500
        };
        if let Some(s) = s {
            let _ = s.send_to(data, to);
        }
    }

    /// Acts on the core's events.
    fn events(&mut self, now: Instant) {
        for _ in 0..256 {
            let Some(ev) = self.ike.as_mut().and_then(|i| i.poll(now)) else {
                break;
            };
            match ev {
                Event::Send(d) => {
                    log::debug!(
                        "vpn {}: IKE {} bytes to {}",
                        self.spec.net_id,
                        d.data.len(),
                        d.remote
                    );
                    let mut msg = Vec::with_capacity(d.data.len() + 4);
                    if d.nat_t {
                        msg.extend_from_slice(&NON_ESP_MARKER);
                    }
                    msg.extend_from_slice(&d.data);
                    self.send_from(d.local.port(), d.remote, &msg);
                }
                Event::Keepalive { remote, .. } => self.send_from(4500, remote, &NAT_KEEPALIVE),
                Event::IkeUp { remote, .. } => {
                    log::info!("vpn {}: IKE SA up with {remote}", self.spec.net_id);
                }
                Event::ChildUp(sa) => {
                    self.install(&sa, now, true);
                    self.failover.established();
                    self.since_wall = Some(super::dhcp::wall_now());
                    log::info!(
                        "vpn {}: tunnel established (SPIs {:08x}/{:08x})",
                        self.spec.net_id,
                        sa.inbound.spi,
                        sa.outbound.spi
                    );
                }
                Event::ChildRekeyed { new, send, .. } => self.install(&new, now, send),
                Event::ChildSend { spis } => {
                    if let Some(i) = self
                        .out_pending
                        .iter()
                        .position(|o| o.spi() == spis.outbound)
                    {
                        let new = self.out_pending.remove(i);
                        if let Some(old) = self.out.replace(new) {
                            self.out_pending.push(old);
                        }
                    }
                }
                Event::PeerMoved { remote } => {
                    log::info!("vpn {}: peer moved to {remote}", self.spec.net_id);
                    if self.peer.is_some() {
                        self.peer = Some(remote);
                    }
                }
                Event::ChildDown { spis, .. } => self.remove(spis),
                Event::IkeDown { reason } => {
                    log::warn!("vpn {}: IKE SA down ({reason:?})", self.spec.net_id);
                    self.last_down = Some(reason);
                    self.out = None;
                    self.out_pending.clear();
                    self.inbound.clear();
                    self.since_wall = None;
                    // A dead peer or a handshake that went nowhere counts against the
                    // port: the next one gets a turn.
                    let failed = matches!(
                        reason,
                        DownReason::DpdTimeout | DownReason::RetransmitExhausted
                    );
                    if self.failover.ike_down(now, self.port.map(|p| p.0), failed) {
                        self.port = None;
                    }
                }
            }
        }
    }

    /// Switches ports when another one should be used; re-establishes the tunnel.
    fn steer(&mut self, now: Instant) -> Result<(), ServiceError> {
        let up = self.ports_up();
        let steer = self.failover.steer(now, self.port.map(|p| p.0), &up);
        if steer.give_up {
            self.port = None;
        }
        let want = steer.want;
        if want != self.port {
            match want {
                Some(p) => return self.up(p, now),
                None => self.down(),
            }
        }
        Ok(())
    }

    /// The tunnel's state as status names it.
    fn state(&self) -> VpnState {
        match (&self.ike, self.ike.as_ref().map(|i| i.state())) {
            (None, _) if self.port.is_none() => VpnState::Down,
            (None, _) => VpnState::Idle,
            (_, Some(State::Established)) if self.out.is_some() => VpnState::Established,
            (_, Some(State::Established)) => VpnState::IkeOnly,
            (_, Some(State::Connecting)) => VpnState::Connecting,
            (_, Some(State::Closing)) => VpnState::Closing,
            _ => VpnState::Idle,
        }
    }

    fn status(&self, now: Instant) -> VpnStatus {
        let st = self.ike.as_ref().map(|i| i.status(now));
        let state = self.state();
        let active_child = st
            .as_ref()
            .and_then(|s| s.children.iter().find(|c| c.active).cloned());
        VpnStatus {
            state,
            remote: self.spec.vpn.remote.to_string(),
            port: self
                .port
                .and_then(|(i, _)| self.spec.ports.get(i))
                .map(|p| p.name.clone()),
            standby: self
                .spec
                .ports
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != self.port.map(|p| p.0))
                .map(|(_, p)| p.name.clone())
                .collect(),
            since: self.since_wall,
            rx_bytes: self.rx,
            tx_bytes: self.tx,
            spi_in: active_child.as_ref().map(|c| c.spis.inbound),
            spi_out: active_child.as_ref().map(|c| c.spis.outbound),
            child_age_secs: active_child.map(|c| c.age.as_secs()),
            ike_age_secs: st.as_ref().and_then(|s| s.ike_age).map(|d| d.as_secs()),
            ike_rekeys: st.as_ref().map(|s| s.ike_rekeys).unwrap_or(0),
            child_rekeys: st.as_ref().map(|s| s.child_rekeys).unwrap_or(0),
            last_down: self.last_down.map(|d| format!("{d:?}")),
            dropped: self.dropped,
        }
    }
}

impl VpnShell {
    pub fn new() -> VpnShell {
        VpnShell {
            nets: Vec::new(),
            buf: vec![0; 65536],
            seg: vec![0; 2048],
            gso: GsoSender::new(),
        }
    }

    /// Brings the VPNs to `specs`; returns errors per network id.
    pub fn set_networks(&mut self, specs: &[NetSpec], now: Instant) -> NetErrors {
        let mut errors = Vec::new();
        self.nets
            .retain_mut(|n| match specs.iter().find(|s| s.net_id == n.spec.net_id) {
                Some(s)
                    if s.vpn == n.spec.vpn && s.subnet == n.spec.subnet && s.tun == n.spec.tun =>
                {
                    true
                }
                // A changed VPN config: close the old tunnel politely, start over.
                _ => {
                    if let Some(i) = n.ike.as_mut() {
                        i.close(now);
                    }
                    n.events(now);
                    false
                }
            });
        for s in specs {
            let i = match self.nets.iter().position(|n| n.spec.net_id == s.net_id) {
                Some(i) => i,
                None => {
                    self.nets.push(VpnNet::new(s, now));
                    self.nets.len() - 1
                }
            };
            let n = &mut self.nets[i];
            // Ports may have changed (up, down, new address): keep the index of the
            // port in use only if it is still that port with that address.
            if let Some((pi, addr)) = n.port {
                if s.ports.get(pi).and_then(|p| p.addr) != Some(addr) {
                    n.port = None;
                    n.ike = None;
                }
            }
            n.spec = s.clone();
            if n.tun.is_none() {
                match Tun::attach(&s.tun) {
                    Ok(t) => n.tun = Some(t),
                    Err(e) => errors.push(ServiceError::new(
                        &s.net_id,
                        format!("VPN tunnel {}", s.tun),
                        e,
                    )),
                }
            }
            if n.ike.is_none() {
                n.port = None;
            }
            if let Err(e) = n.steer(now) {
                errors.push(e);
            }
            n.events(now);
        }
        errors
    }

    fn status_of(&self, net_id: &str, now: Instant) -> Option<VpnStatus> {
        self.nets
            .iter()
            .find(|n| n.spec.net_id == net_id)
            .map(|n| n.status(now))
    }

    /// A tunnel state or port that changed since the daemon was last told.
    fn state_changes(&mut self, events: &mut Vec<ServiceEvent>) {
        for n in &mut self.nets {
            let now = Some((n.state(), n.port.map(|p| p.0)));
            if n.reported != now {
                n.reported = now;
                events.push(ServiceEvent::StateChanged {
                    net_id: n.spec.net_id.clone(),
                });
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        for n in &mut self.nets {
            if n.next_esp_check <= now {
                n.next_esp_check = now + ESP_CHECK;
                let mut expired = Vec::new();
                if let Some(o) = n.out.as_mut() {
                    if let Some(e) = o.check(now) {
                        expired.push((o.spi(), e == esp::Expiry::Hard));
                    }
                }
                for i in &mut n.inbound {
                    if let Some(e) = i.check(now) {
                        expired.push((i.spi(), e == esp::Expiry::Hard));
                    }
                }
                if let Some(ike) = n.ike.as_mut() {
                    for (spi, hard) in expired {
                        ike.esp_expired(spi, hard, now);
                    }
                }
                if let Err(e) = n.steer(now) {
                    log::warn!("vpn {}: {e}", n.spec.net_id);
                }
            }
            n.events(now);
        }
    }
}

impl Service for VpnShell {
    fn configure(&mut self, w: &World<'_>, now: Instant) -> NetErrors {
        self.set_networks(&super::vpn_specs(w.cfg, w.facts), now)
    }

    fn register(&self, p: &mut crate::event_loop::Poller, base: u64) {
        for (i, n) in self.nets.iter().enumerate() {
            let t = base + i as u64 * PER_NET;
            if let Some(tun) = &n.tun {
                // TUN packets wait until there is an SA to seal them with.
                if n.out.is_some() {
                    p.add(tun.fd(), false, t);
                }
            }
            if let Some(s) = &n.s4500 {
                p.add(s.as_raw_fd(), false, t + 1);
            }
            if let Some(s) = &n.s500 {
                p.add(s.as_raw_fd(), false, t + 2);
            }
        }
    }

    fn ready(&mut self, slot: u64, now: Instant, _events: &mut Vec<ServiceEvent>) {
        let i = (slot / PER_NET) as usize;
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        match slot % PER_NET {
            0 => {
                let (Some(tun), Some(out), Some(peer), Some(sock)) =
                    (n.tun.as_mut(), n.out.as_mut(), n.peer, n.s4500.as_ref())
                else {
                    return;
                };
                let (seg, gso, remote) = (&mut self.seg, &mut self.gso, &n.spec.vpn.remote_subnets);
                let (mut tx, mut dropped) = (0u64, 0u64);
                // Bounded per wakeup so one busy tunnel cannot starve the loop.
                for _ in 0..64 {
                    let got = tun.recv(&mut self.buf, |pkt| {
                        // Only traffic for the VPN's remote subnets goes in.
                        let dst = match pkt.get(16..20) {
                            Some(d) => Ipv4Addr::new(d[0], d[1], d[2], d[3]),
                            None => return,
                        };
                        if !remote.iter().any(|r| r.contains(dst))
                            || pkt.len() + esp::HEADER_LEN + 64 > seg.len()
                        {
                            dropped += 1;
                            return;
                        }
                        seg[esp::HEADER_LEN..esp::HEADER_LEN + pkt.len()].copy_from_slice(pkt);
                        if let Ok(len) = out.seal_in_place(seg, pkt.len()) {
                            tx += pkt.len() as u64;
                            gso.push(sock, peer, &seg[..len]);
                        }
                    });
                    if !got {
                        break;
                    }
                }
                gso.flush(sock);
                n.tx += tx;
                n.dropped += dropped;
                // The core watches for ESP that goes out and gets nothing back.
                if let Some(ike) = n.ike.as_mut().filter(|_| tx > 0) {
                    ike.esp_sent(now);
                }
            }
            1 => {
                let mut opened = false;
                for _ in 0..64 {
                    let Some(sock) = n.s4500.as_ref() else { break };
                    let Some((len, from, seg)) = udp_batch::recv_gro(sock, &mut self.buf) else {
                        break;
                    };
                    let local = sock.local_addr().ok();
                    for chunk in self.buf[..len].chunks_mut(seg.max(1)) {
                        match classify(chunk) {
                            Ok(Encap::Keepalive) | Err(_) => {}
                            Ok(Encap::Ike(msg)) => {
                                if let (Some(ike), Some(SocketAddr::V4(l))) =
                                    (n.ike.as_mut(), local)
                                {
                                    let _ = ike.handle(now, l, from, msg);
                                }
                            }
                            Ok(Encap::Esp(_)) => {
                                let spi =
                                    u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                                let Some(sa) = n.inbound.iter_mut().find(|s| s.spi() == spi) else {
                                    n.dropped += 1;
                                    continue;
                                };
                                match sa.open_in_place(chunk) {
                                    Ok(r) => {
                                        opened = true;
                                        let inner = &chunk[r];
                                        if inner_allowed(inner, &n.spec) {
                                            n.rx += inner.len() as u64;
                                            if let Some(t) = n.tun.as_mut() {
                                                t.send(inner);
                                            }
                                        } else {
                                            n.dropped += 1;
                                        }
                                    }
                                    // Replayed, tampered, dummy: dropped.
                                    Err(_) => n.dropped += 1,
                                }
                            }
                        }
                    }
                }
                if let Some(t) = n.tun.as_mut() {
                    t.flush();
                }
                if let Some(ike) = n.ike.as_mut().filter(|_| opened) {
                    ike.esp_received(now);
                }
            }
            _ => {
                let mut b = [0u8; 4096];
                for _ in 0..64 {
                    let Some(sock) = n.s500.as_ref() else { break };
                    let Ok((len, SocketAddr::V4(from))) = sock.recv_from(&mut b) else {
                        break;
                    };
                    let Ok(SocketAddr::V4(l)) = sock.local_addr() else {
                        break;
                    };
                    if let Some(ike) = n.ike.as_mut() {
                        let _ = ike.handle(now, l, from, &b[..len]);
                    }
                }
            }
        }
        n.events(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.nets
            .iter()
            .flat_map(|n| {
                [
                    n.ike.as_ref().and_then(|i| i.poll_timeout()),
                    n.ike.as_ref().map(|_| n.next_esp_check),
                ]
            })
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>) {
        self.tick(now);
        self.state_changes(events);
    }

    /// The tunnel, the port carrying it and its standbys; a cloud network works
    /// when its tunnel does.
    fn status(&self, net: &Network, now: Instant, ns: &mut NetworkStatus) {
        if net.kind != NetKind::Cloud {
            return;
        }
        let Some(v) = self.status_of(&net.id, now) else {
            return;
        };
        if ns.errors.is_empty() && v.state != VpnState::Established {
            ns.errors.push(format!(
                "VPN to {} is {}{}",
                v.remote,
                v.state,
                v.last_down
                    .as_ref()
                    .map(|d| format!(" (last down: {d})"))
                    .unwrap_or_default()
            ));
        }
        ns.active_port = v.port.clone();
        ns.standby_ports = v.standby.clone();
        ns.vpn = Some(v);
    }
}

/// An inner packet may enter only from the remote subnets, to the network's subnet.
fn inner_allowed(p: &[u8], spec: &NetSpec) -> bool {
    let (Some(s), Some(d)) = (p.get(12..16), p.get(16..20)) else {
        return false;
    };
    let src = Ipv4Addr::new(s[0], s[1], s[2], s[3]);
    let dst = Ipv4Addr::new(d[0], d[1], d[2], d[3]);
    p.first().map(|b| b >> 4) == Some(4)
        && spec.subnet.contains(dst)
        && spec.vpn.remote_subnets.iter().any(|r| r.contains(src))
}
