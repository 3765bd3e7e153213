//! The mesh shell: per mesh network, the network's TUN and the LISP data (4341) and
//! control (4342) sockets on the RLOC (the active port's address), around the
//! sans-I/O [`crate::lisp::xtr::Xtr`].
//!
//! The kernel routes packets for remote EIDs (the mesh subnet, minus this device's
//! ECOs, which have host routes on the bridge) into the TUN; the xTR encapsulates them
//! to the RLOC of the device that registered the EID. Decapsulated packets go back
//! into the TUN and the kernel delivers them to the ECO.

use super::sock;
use super::tun::Tun;
use super::{NetErrors, Service, ServiceError, ServiceEvent, World};
use crate::config::{Mesh, NetKind, Network};
use crate::lisp::xtr::{Action, Encap, Xtr, XtrConfig};
use crate::status::MeshStatus;
use crate::status::NetworkStatus;
use crate::wire::lisp::{CONTROL_PORT, DATA_PORT};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// What the shell needs to run one mesh network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    pub net_id: String,
    pub tun: String,
    /// The active port's address: the RLOC. `None` while no port is up.
    pub rloc: Option<Ipv4Addr>,
    /// This device's ECOs on the network (static and leased addresses).
    pub eids: Vec<Ipv4Addr>,
    pub mesh: Mesh,
}

struct MeshNet {
    spec: NetSpec,
    xtr: Xtr,
    tun: Option<Tun>,
    data: Option<UdpSocket>,
    ctl: Option<UdpSocket>,
    bound: Option<Ipv4Addr>,
    /// Registration as last reported by the core.
    registered: bool,
    /// (registered, bound) as last told to the daemon.
    reported: Option<(bool, Option<Ipv4Addr>)>,
}

pub struct MeshShell {
    nets: Vec<MeshNet>,
    buf: Vec<u8>,
    out: Vec<u8>,
    gso: super::udp_batch::GsoSender,
}

const PER_NET: u64 = 3;

impl Default for MeshShell {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshShell {
    pub fn new() -> MeshShell {
        MeshShell {
            nets: Vec::new(),
            buf: vec![0; 65536],
            out: vec![0; 65536],
            gso: super::udp_batch::GsoSender::new(),
        }
    }

    /// Brings the served mesh networks to `specs`; returns errors per network id.
    pub fn set_networks(&mut self, specs: &[NetSpec], now: Instant) -> NetErrors {
        let mut errors = Vec::new();
        self.nets.retain(|n| {
            specs
                .iter()
                .any(|s| s.net_id == n.spec.net_id && s.mesh == n.spec.mesh)
        });
        for s in specs {
            let i = match self.nets.iter().position(|n| n.spec.net_id == s.net_id) {
                Some(i) => i,
                None => {
                    self.nets.push(MeshNet {
                        spec: s.clone(),
                        xtr: Xtr::new(XtrConfig::from_mesh(&s.mesh), now),
                        tun: None,
                        data: None,
                        ctl: None,
                        bound: None,
                        registered: false,
                        reported: None,
                    });
                    self.nets.len() - 1
                }
            };
            let n = &mut self.nets[i];
            n.spec = s.clone();
            if n.tun.is_none() {
                match Tun::attach(&s.tun) {
                    Ok(t) => n.tun = Some(t),
                    Err(e) => errors.push(ServiceError::new(
                        &s.net_id,
                        format!("mesh tunnel {}", s.tun),
                        e,
                    )),
                }
            }
            if n.bound != s.rloc {
                n.data = None;
                n.ctl = None;
                n.bound = None;
                if let Some(rloc) = s.rloc {
                    let open = |port| sock::udp_bound(SocketAddrV4::new(rloc, port), None);
                    match (open(DATA_PORT), open(CONTROL_PORT)) {
                        (Ok(d), Ok(c)) => {
                            super::udp_batch::enable_gro(&d);
                            n.data = Some(d);
                            n.ctl = Some(c);
                            n.bound = Some(rloc);
                        }
                        (Err(e), _) | (_, Err(e)) => errors.push(ServiceError::new(
                            &s.net_id,
                            format!("LISP sockets on {rloc}"),
                            e,
                        )),
                    }
                }
            }
            // A new RLOC re-registers at once and tells peers (SMR); new EIDs too.
            n.xtr.set_local_rloc(now, n.bound);
            n.xtr.set_local_eids(now, &s.eids);
        }
        self.flush(now);
        errors
    }

    /// A registration or RLOC that changed since the daemon was last told.
    fn state_changes(&mut self, events: &mut Vec<ServiceEvent>) {
        for n in &mut self.nets {
            let now = Some((n.registered, n.bound));
            if n.reported != now {
                n.reported = now;
                events.push(ServiceEvent::StateChanged {
                    net_id: n.spec.net_id.clone(),
                });
            }
        }
    }

    fn status_of(&self, net_id: &str) -> Option<MeshStatus> {
        let n = self.nets.iter().find(|n| n.spec.net_id == net_id)?;
        let x = n.xtr.status();
        Some(MeshStatus {
            registered: x.registered,
            map_cache: x.map_cache as u64,
            rloc: x.rloc.map(|r| r.to_string()),
            encap: x.counters.encap,
            decap: x.counters.decap,
            dropped: x.counters.dropped,
        })
    }

    fn ready_slot(&mut self, slot: u64, now: Instant) {
        let i = (slot / PER_NET) as usize;
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        // Bounded per wakeup so one busy network cannot starve the loop.
        match slot % PER_NET {
            0 => {
                let (Some(tun), Some(data)) = (n.tun.as_mut(), n.data.as_ref()) else {
                    return;
                };
                let (xtr, out, gso) = (&mut n.xtr, &mut self.out, &mut self.gso);
                for _ in 0..64 {
                    // A miss is held and sent when the mapping arrives; negative
                    // answers and bad packets are dropped.
                    let got = tun.recv(&mut self.buf, |pkt| {
                        if let Encap::Send { to, len, .. } = xtr.encap(now, pkt, out) {
                            gso.push(data, to, &out[..len]);
                        }
                    });
                    if !got {
                        break;
                    }
                }
                gso.flush(data);
            }
            1 => {
                for _ in 0..64 {
                    let Some(d) = &n.data else { break };
                    let Some((len, from, seg)) = super::udp_batch::recv_gro(d, &mut self.buf)
                    else {
                        break;
                    };
                    for chunk in self.buf[..len].chunks_mut(seg.max(1)) {
                        if let Ok(dec) = n.xtr.handle_data(now, from, chunk) {
                            if let (Some(tun), Some(inner)) =
                                (n.tun.as_mut(), chunk.get(dec.inner.clone()))
                            {
                                tun.send(inner);
                            }
                        }
                    }
                }
                if let Some(tun) = n.tun.as_mut() {
                    tun.flush();
                }
            }
            _ => {
                for _ in 0..256 {
                    let Some(c) = &n.ctl else { break };
                    let Ok((len, SocketAddr::V4(from))) = c.recv_from(&mut self.buf) else {
                        break;
                    };
                    n.xtr.handle_control(now, from, &self.buf[..len]);
                }
            }
        }
        self.flush(now);
    }

    /// Sends what the cores ask for.
    fn flush(&mut self, now: Instant) {
        for n in &mut self.nets {
            // Bounded: the core's queue is finite, this is a guard.
            for _ in 0..4096 {
                let Some(a) = n.xtr.poll(now) else { break };
                match a {
                    Action::SendControl { to, bytes } => {
                        if let Some(c) = &n.ctl {
                            let _ = c.send_to(&bytes, to);
                        }
                    }
                    Action::SendData { to, bytes } => {
                        if let Some(d) = &n.data {
                            let _ = d.send_to(&bytes, to);
                        }
                    }
                    Action::Registered { map_server } => {
                        if !n.registered {
                            log::info!("mesh {}: registered with {map_server}", n.spec.net_id);
                        }
                        n.registered = true;
                    }
                    Action::RegistrationFailed { map_server } => {
                        if n.registered {
                            log::warn!(
                                "mesh {}: {map_server} did not acknowledge the registration",
                                n.spec.net_id
                            );
                        }
                        n.registered = false;
                    }
                    Action::MapCache { .. } => {}
                }
            }
        }
    }
}

impl Service for MeshShell {
    fn configure(&mut self, w: &World<'_>, now: Instant) -> NetErrors {
        self.set_networks(&super::mesh_specs(w.cfg, w.facts, w.leased), now)
    }

    fn register(&self, p: &mut crate::event_loop::Poller, base: u64) {
        for (i, n) in self.nets.iter().enumerate() {
            let t = base + i as u64 * PER_NET;
            if let Some(tun) = &n.tun {
                p.add(tun.fd(), false, t);
            }
            if let Some(d) = &n.data {
                p.add(d.as_raw_fd(), false, t + 1);
            }
            if let Some(c) = &n.ctl {
                p.add(c.as_raw_fd(), false, t + 2);
            }
        }
    }

    fn ready(&mut self, slot: u64, now: Instant, events: &mut Vec<ServiceEvent>) {
        self.ready_slot(slot, now);
        self.state_changes(events);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.nets.iter().filter_map(|n| n.xtr.poll_timeout()).min()
    }

    fn handle_timeout(&mut self, now: Instant, events: &mut Vec<ServiceEvent>) {
        self.flush(now);
        self.state_changes(events);
    }

    fn status(&self, net: &Network, _now: Instant, ns: &mut NetworkStatus) {
        if net.kind == NetKind::Mesh {
            ns.mesh = Some(self.status_of(&net.id).unwrap_or_default());
        }
    }
}
