//! In-memory IKE tests: an initiator and a responder core talking to each other over
//! a simulated wire, each with a little ESP data path built from the events (real
//! `esp::Inbound`/`Outbound` SAs), so every test also proves both ends derived the
//! same keys and installed them when the events say so.

use super::*;
use crate::esp::{self, Inbound, Outbound};
use crate::wire::ike::{exchange, Header, Message, Packet, Payload};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4500);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 4500);

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn cfg_a() -> IkeConfig {
    let mut c = IkeConfig::new(true, "a.example", "b.example", b"swordfish", A, B);
    c.local_ts = vec![net("10.3.0.0/24")];
    c.remote_ts = vec![net("172.31.0.0/16")];
    c.retransmit_base = Duration::from_millis(500);
    c.retransmit_tries = 3;
    c.dpd = Duration::from_secs(10);
    c.reconnect = Some(Duration::from_secs(5));
    c
}

fn cfg_b() -> IkeConfig {
    let mut c = IkeConfig::new(false, "b.example", "a.example", b"swordfish", B, A);
    c.local_ts = vec![net("172.31.0.0/16")];
    c.remote_ts = vec![net("10.3.0.0/24")];
    c.retransmit_base = Duration::from_millis(500);
    c.retransmit_tries = 3;
    c.dpd = Duration::from_secs(10);
    c
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    AtoB,
    BtoA,
}

impl Dir {
    fn other(self) -> Dir {
        match self {
            Dir::AtoB => Dir::BtoA,
            Dir::BtoA => Dir::AtoB,
        }
    }
}

/// One end: the core and the data path the shell would build from its events.
struct Side {
    ike: Ike,
    inbound: HashMap<u32, Inbound>,
    outbound: Option<Outbound>,
    /// Outbound SAs installed but not sent on yet, by their CHILD SA's inbound SPI.
    standby: HashMap<u32, Outbound>,
    events: Vec<Event>,
    sent: Vec<Datagram>,
    keepalives: usize,
    /// Where ESP goes.
    peer: Option<SocketAddrV4>,
}

impl Side {
    fn new(cfg: IkeConfig, now: Instant) -> Side {
        Side {
            ike: Ike::new(cfg, now),
            inbound: HashMap::new(),
            outbound: None,
            standby: HashMap::new(),
            events: Vec::new(),
            sent: Vec::new(),
            keepalives: 0,
            peer: None,
        }
    }

    fn apply(&mut self, ev: &Event, now: Instant) {
        match ev {
            Event::ChildUp(c) | Event::ChildRekeyed { new: c, .. } => {
                let old = self
                    .inbound
                    .insert(c.inbound.spi, Inbound::new(&c.inbound, c.lifetime, now));
                assert!(old.is_none(), "inbound SPI installed twice");
                let out = Outbound::new(&c.outbound, c.lifetime, now);
                self.peer = Some(c.peer);
                if matches!(ev, Event::ChildRekeyed { send: false, .. }) {
                    self.standby.insert(c.inbound.spi, out);
                } else {
                    self.outbound = Some(out);
                }
            }
            Event::ChildSend { spis } => {
                let out = self.standby.remove(&spis.inbound);
                assert!(out.is_some(), "ChildSend for an SA not installed");
                self.outbound = out;
            }
            Event::ChildDown { spis, .. } => {
                assert!(
                    self.inbound.remove(&spis.inbound).is_some(),
                    "ChildDown for an SA never installed"
                );
                self.standby.remove(&spis.inbound);
                if self.outbound.as_ref().map(|o| o.spi()) == Some(spis.outbound) {
                    self.outbound = None;
                }
            }
            Event::Keepalive { .. } => self.keepalives += 1,
            Event::PeerMoved { remote } => self.peer = Some(*remote),
            _ => {}
        }
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

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

type Filter = Box<dyn FnMut(Dir, &Datagram) -> bool>;

struct Pair {
    a: Side,
    b: Side,
    now: Instant,
    wire: VecDeque<(Dir, Datagram)>,
    /// Returns false to drop a datagram.
    filter: Filter,
    delivered: usize,
    /// a is behind a NAT with this outside mapping: b sees a's datagrams come from
    /// it, and b's reach a only when sent to it.
    nat: Option<SocketAddrV4>,
}

impl Pair {
    fn new(ca: IkeConfig, cb: IkeConfig) -> Pair {
        let now = Instant::now();
        Pair {
            a: Side::new(ca, now),
            b: Side::new(cb, now),
            now,
            wire: VecDeque::new(),
            filter: Box::new(|_, _| true),
            delivered: 0,
            nat: None,
        }
    }

    fn up() -> Pair {
        Pair::up_with(cfg_a(), cfg_b())
    }

    fn up_with(ca: IkeConfig, cb: IkeConfig) -> Pair {
        let mut p = Pair::new(ca, cb);
        p.a.ike.connect(p.now);
        p.pump();
        assert_eq!(p.a.ike.state(), State::Established);
        assert_eq!(p.b.ike.state(), State::Established);
        p.traffic();
        p
    }

    /// Moves events and datagrams until both ends are quiet.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let now = self.now;
            let mut busy = false;
            for (dir, side) in [(Dir::AtoB, &mut self.a), (Dir::BtoA, &mut self.b)] {
                while let Some(ev) = side.ike.poll(now) {
                    busy = true;
                    side.apply(&ev, now);
                    if let Event::Send(d) = &ev {
                        side.sent.push(d.clone());
                        self.wire.push_back((dir, d.clone()));
                    } else {
                        side.events.push(ev);
                    }
                }
            }
            while let Some((dir, d)) = self.wire.pop_front() {
                busy = true;
                if !(self.filter)(dir, &d) {
                    continue;
                }
                // (local, remote) as the receiver sees them.
                let seen = match (dir, self.nat) {
                    (_, None) => Some((d.remote, d.local)),
                    (Dir::AtoB, Some(m)) => Some((d.remote, m)),
                    (Dir::BtoA, Some(m)) => (d.remote == m).then_some((A, d.local)),
                };
                let Some((local, remote)) = seen else {
                    continue;
                };
                self.delivered += 1;
                let to = match dir {
                    Dir::AtoB => &mut self.b,
                    Dir::BtoA => &mut self.a,
                };
                let _ = to.ike.handle(now, local, remote, &d.data);
            }
            if !busy {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Runs the clock forward by `d`, waking each end at its poll timeout.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            self.pump();
            let next = [self.a.ike.poll_timeout(), self.b.ike.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
        panic!("timers never settle");
    }

    /// A packet each way over the current outbound SAs.
    fn send(&mut self, dir: Dir) -> Result<(), esp::Error> {
        let (tx, rx) = match dir {
            Dir::AtoB => (&mut self.a, &mut self.b),
            Dir::BtoA => (&mut self.b, &mut self.a),
        };
        let out = tx.outbound.as_mut().ok_or(esp::Error::WrongSpi)?;
        let mut buf = [0u8; 256];
        let n = out.seal(&[0x45; 60], &mut buf)?;
        let spi = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let inb = rx.inbound.get_mut(&spi).ok_or(esp::Error::WrongSpi)?;
        let r = inb.open_in_place(&mut buf[..n])?;
        assert_eq!(&buf[r], &[0x45; 60]);
        Ok(())
    }

    fn traffic(&mut self) {
        self.send(Dir::AtoB).expect("a to b");
        self.send(Dir::BtoA).expect("b to a");
    }

    /// Both ends agree on the IKE SA and have exactly one active CHILD SA, the same
    /// one.
    fn converged(&self) {
        let (sa, sb) = (self.a.ike.status(self.now), self.b.ike.status(self.now));
        assert_eq!((sa.spi_i, sa.spi_r), (sb.spi_i, sb.spi_r));
        let act = |s: &Status| -> Vec<ChildSpis> {
            s.children
                .iter()
                .filter(|c| c.active)
                .map(|c| c.spis)
                .collect()
        };
        let (ca, cb) = (act(&sa), act(&sb));
        assert_eq!(ca.len(), 1, "{sa:?}");
        assert_eq!(cb.len(), 1, "{sb:?}");
        assert_eq!(ca[0].inbound, cb[0].outbound);
        assert_eq!(ca[0].outbound, cb[0].inbound);
    }
}

fn exchange_of(d: &Datagram) -> u8 {
    Packet::new_checked(&d.data[..]).map_or(0, |p| p.exchange())
}

fn is_init_response(d: &Datagram) -> bool {
    Packet::new_checked(&d.data[..])
        .is_ok_and(|p| p.exchange() == exchange::IKE_SA_INIT && p.flags() & 0x20 != 0)
}

#[test]
fn establishes_with_x25519() {
    let p = Pair::up();
    let s = p.a.ike.status(p.now);
    assert_eq!(s.state, State::Established);
    assert_eq!(s.children.len(), 1);
    assert_eq!(s.children[0].ts_local, [net("10.3.0.0/24")]);
    assert_eq!(s.children[0].ts_remote, [net("172.31.0.0/16")]);
    // Four messages: IKE_SA_INIT and IKE_AUTH.
    assert_eq!(p.delivered, 4);
    assert_eq!(p.a.count(|e| matches!(e, Event::IkeUp { .. })), 1);
    assert_eq!(p.b.count(|e| matches!(e, Event::ChildUp(_))), 1);
    // Every message travels on the NAT-T port, marked.
    assert!(p.a.sent.iter().chain(&p.b.sent).all(|d| d.nat_t));
    // The x25519 KE went out first.
    let init = Message::parse(&p.a.sent[0].data).unwrap();
    assert!(init
        .payloads
        .iter()
        .any(|x| matches!(x, Payload::Ke { group: 31, data } if data.len() == 32)));
    p.converged();
}

#[test]
fn invalid_ke_payload_retry_with_ecp256() {
    let mut cb = cfg_b();
    cb.groups = vec![Group::Ecp256];
    let p = Pair::up_with(cfg_a(), cb);
    let inits =
        p.a.sent
            .iter()
            .filter(|d| exchange_of(d) == exchange::IKE_SA_INIT)
            .count();
    assert_eq!(inits, 2);
    let last =
        p.a.sent
            .iter()
            .rfind(|d| exchange_of(d) == exchange::IKE_SA_INIT)
            .unwrap();
    let m = Message::parse(&last.data).unwrap();
    assert!(m
        .payloads
        .iter()
        .any(|x| matches!(x, Payload::Ke { group: 19, data } if data.len() == 64)));
}

#[test]
fn no_common_group() {
    let mut ca = cfg_a();
    ca.groups = vec![Group::X25519];
    let mut cb = cfg_b();
    cb.groups = vec![Group::Ecp256];
    let mut p = Pair::new(ca, cb);
    p.a.ike.connect(p.now);
    p.pump();
    // An unauthenticated refusal ends the attempt one retransmission interval later.
    assert!(p.a.downs().is_empty());
    p.advance(Duration::from_millis(500));
    assert_eq!(p.a.downs(), [DownReason::NoProposal]);
    assert_eq!(p.b.ike.state(), State::Idle);
}

#[test]
fn cookie_round_trip() {
    let mut cb = cfg_b();
    cb.cookie_threshold = 0;
    let p = Pair::up_with(cfg_a(), cb);
    let inits: Vec<_> =
        p.a.sent
            .iter()
            .filter(|d| exchange_of(d) == exchange::IKE_SA_INIT)
            .collect();
    assert_eq!(inits.len(), 2);
    let m = Message::parse(&inits[1].data).unwrap();
    assert!(
        matches!(&m.payloads[0], Payload::Notify(n) if n.kind == crate::wire::ike::notify::COOKIE)
    );
}

#[test]
fn wrong_psk_fails_both_ends() {
    let mut cb = cfg_b();
    cb.psk = SecretBytes::from(&b"not swordfish"[..]);
    let mut p = Pair::new(cfg_a(), cb);
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::AuthFailed]);
    assert_eq!(p.b.downs(), [DownReason::AuthFailed]);
    assert_eq!(p.a.ike.state(), State::Idle);
    assert_eq!(p.b.ike.state(), State::Idle);
    assert!(p.a.inbound.is_empty() && p.b.inbound.is_empty());
    // The initiator tries again later, and fails again.
    p.advance(Duration::from_secs(6));
    assert_eq!(p.a.downs().len(), 2);
    assert_eq!(
        p.b.ike.status(p.now).last_down,
        Some(DownReason::AuthFailed)
    );
}

#[test]
fn wrong_identity_fails() {
    // The responder expects someone else.
    let mut cb = cfg_b();
    cb.remote_id = Identity::parse("c.example");
    let mut p = Pair::new(cfg_a(), cb);
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::AuthFailed]);
    assert_eq!(p.b.downs(), [DownReason::AuthFailed]);

    // The initiator expects someone else: it wants IDr c.example, which b is not.
    let mut ca = cfg_a();
    ca.remote_id = Identity::parse("c.example");
    let mut p = Pair::new(ca, cfg_b());
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::AuthFailed]);
    assert_eq!(p.b.ike.state(), State::Idle);

    // The responder answers as someone else (it ignores IDr here: it has a different
    // own identity than the initiator asks for, so it refuses).
    let mut cb = cfg_b();
    cb.local_id = Identity::parse("192.0.2.2");
    let mut p = Pair::new(cfg_a(), cb);
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::AuthFailed]);
}

#[test]
fn identities() {
    assert_eq!(Identity::parse("10.0.0.1").id().id_type, 1);
    assert_eq!(Identity::parse("10.0.0.1").id().data, [10, 0, 0, 1]);
    assert_eq!(Identity::parse("gw.example.com").id().id_type, 2);
    assert_eq!(Identity::parse("me@example.com").id().id_type, 3);
    assert_eq!(Identity::parse("10.0.0.1").to_string(), "10.0.0.1");
    assert_eq!(
        Identity::parse("gw.example.com").to_string(),
        "gw.example.com"
    );
}

#[test]
fn traffic_selectors_narrowed_by_responder() {
    let mut ca = cfg_a();
    ca.local_ts = vec![net("10.3.0.0/16")];
    ca.remote_ts = vec![net("0.0.0.0/0")];
    let mut cb = cfg_b();
    cb.remote_ts = vec![net("10.3.1.0/24")];
    let p = Pair::up_with(ca, cb);
    let s = p.a.ike.status(p.now);
    assert_eq!(s.children[0].ts_local, [net("10.3.1.0/24")]);
    assert_eq!(s.children[0].ts_remote, [net("172.31.0.0/16")]);
    let s = p.b.ike.status(p.now);
    assert_eq!(s.children[0].ts_local, [net("172.31.0.0/16")]);
    assert_eq!(s.children[0].ts_remote, [net("10.3.1.0/24")]);
}

#[test]
fn traffic_selectors_unacceptable() {
    let mut cb = cfg_b();
    cb.remote_ts = vec![net("192.168.0.0/24")];
    let mut p = Pair::new(cfg_a(), cb);
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(
        p.a.downs(),
        [DownReason::ChildRejected(
            crate::wire::ike::notify::TS_UNACCEPTABLE
        )]
    );
    // The initiator deleted the useless IKE SA on the responder too.
    assert_eq!(p.b.downs(), [DownReason::PeerDeleted]);
}

fn rekey_child(from_a: bool, pfs: Option<Group>) {
    let mut ca = cfg_a();
    let mut cb = cfg_b();
    ca.child_pfs = pfs;
    cb.child_pfs = pfs;
    let mut p = Pair::up_with(ca, cb);
    let before = p.a.ike.status(p.now).children[0].spis;
    if from_a {
        p.a.ike.rekey_children(p.now);
    } else {
        p.b.ike.rekey_children(p.now);
    }
    p.pump();
    for s in [&p.a, &p.b] {
        assert_eq!(s.count(|e| matches!(e, Event::ChildRekeyed { .. })), 1);
        assert_eq!(s.ike.status(p.now).child_rekeys, 1);
    }
    // New SAs in use, the old inbound ones still installed (make-before-break).
    p.traffic();
    assert_eq!(p.a.inbound.len(), 2);
    assert_eq!(p.b.inbound.len(), 2);
    p.converged();
    let after = p.a.ike.status(p.now).children;
    assert!(after
        .iter()
        .all(|c| c.spis.inbound != before.inbound || !c.active));
    // After the linger time the old inbound SAs go.
    p.advance(Duration::from_secs(6));
    assert_eq!(p.a.inbound.len(), 1);
    assert_eq!(p.b.inbound.len(), 1);
    for s in [&p.a, &p.b] {
        assert_eq!(
            s.count(|e| matches!(
                e,
                Event::ChildDown {
                    reason: ChildDownReason::Rekeyed,
                    ..
                }
            )),
            1
        );
    }
    p.traffic();
    p.converged();
}

#[test]
fn child_rekey_by_initiator() {
    rekey_child(true, None);
}

#[test]
fn child_rekey_by_responder() {
    rekey_child(false, None);
}

#[test]
fn child_rekey_with_pfs() {
    rekey_child(true, Some(Group::Ecp256));
    rekey_child(false, Some(Group::X25519));
}

#[test]
fn child_rekey_pfs_group_mismatch_retries() {
    let mut ca = cfg_a();
    ca.child_pfs = Some(Group::X25519);
    let mut cb = cfg_b();
    cb.child_pfs = Some(Group::Ecp256);
    cb.groups = vec![Group::Ecp256];
    ca.groups = vec![Group::Ecp256];
    let mut p = Pair::up_with(ca, cb);
    p.a.ike.rekey_children(p.now);
    p.pump();
    // b took the x25519 KE anyway? It only implements what it lists: INVALID_KE then
    // a retry with ecp256.
    assert_eq!(p.a.count(|e| matches!(e, Event::ChildRekeyed { .. })), 1);
    p.traffic();
    p.converged();
}

fn rekey_ike(from_a: bool) {
    let mut p = Pair::up();
    let before = p.a.ike.status(p.now);
    if from_a {
        p.a.ike.rekey_ike(p.now);
    } else {
        p.b.ike.rekey_ike(p.now);
    }
    p.pump();
    let (sa, sb) = (p.a.ike.status(p.now), p.b.ike.status(p.now));
    assert_eq!(sa.ike_rekeys, 1);
    assert_eq!(sb.ike_rekeys, 1);
    assert_ne!((sa.spi_i, sa.spi_r), (before.spi_i, before.spi_r));
    p.converged();
    // The old IKE SA is gone on both ends, CHILD SAs untouched.
    assert_eq!(p.a.ike.sas.len(), 1);
    assert_eq!(p.b.ike.sas.len(), 1);
    assert_eq!(sa.children, before.children);
    p.traffic();
    // The new IKE SA works: rekey the CHILD SA over it, from both ends, and DPD.
    p.a.ike.rekey_children(p.now);
    p.pump();
    p.b.ike.rekey_children(p.now);
    p.pump();
    p.traffic();
    p.converged();
    p.advance(Duration::from_secs(30));
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    // A second IKE rekey from the other end.
    if from_a {
        p.b.ike.rekey_ike(p.now);
    } else {
        p.a.ike.rekey_ike(p.now);
    }
    p.pump();
    p.converged();
    assert_eq!(p.a.ike.status(p.now).ike_rekeys, 2);
    p.traffic();
}

#[test]
fn ike_rekey_by_initiator() {
    rekey_ike(true);
}

#[test]
fn ike_rekey_by_responder() {
    rekey_ike(false);
}

#[test]
fn simultaneous_child_rekey() {
    for _ in 0..8 {
        let mut p = Pair::up();
        p.a.ike.rekey_children(p.now);
        p.b.ike.rekey_children(p.now);
        p.pump();
        p.traffic();
        // Each end made one SA; one of the two is redundant and deleted by its maker.
        p.advance(Duration::from_secs(6));
        p.converged();
        p.traffic();
        assert_eq!(p.a.inbound.len(), 1, "{:?}", p.a.ike.status(p.now));
        assert_eq!(p.b.inbound.len(), 1, "{:?}", p.b.ike.status(p.now));
        assert_eq!(p.a.ike.children.len(), 1);
        assert_eq!(p.b.ike.children.len(), 1);
        assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
        // And the survivor rekeys normally afterwards.
        p.b.ike.rekey_children(p.now);
        p.advance(Duration::from_secs(6));
        p.converged();
        p.traffic();
    }
}

#[test]
fn simultaneous_ike_rekey() {
    for _ in 0..8 {
        let mut p = Pair::up();
        p.a.ike.rekey_ike(p.now);
        p.b.ike.rekey_ike(p.now);
        p.pump();
        p.advance(Duration::from_secs(10));
        p.converged();
        assert_eq!(p.a.ike.sas.len(), 1, "{:?}", p.a.ike.status(p.now));
        assert_eq!(p.b.ike.sas.len(), 1, "{:?}", p.b.ike.status(p.now));
        assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
        // The survivor carries on: CHILD SA rekeys and DPD.
        p.a.ike.rekey_children(p.now);
        p.advance(Duration::from_secs(30));
        p.converged();
        p.traffic();
        assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    }
}

#[test]
fn ike_and_child_rekey_at_once() {
    for _ in 0..4 {
        let mut p = Pair::up();
        p.a.ike.rekey_ike(p.now);
        p.b.ike.rekey_children(p.now);
        p.advance(Duration::from_secs(20));
        p.converged();
        p.traffic();
        assert_eq!(p.a.ike.status(p.now).ike_rekeys, 1);
        assert_eq!(p.a.ike.status(p.now).child_rekeys, 1);
        assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    }
}

#[test]
fn lifetimes_drive_rekeys_under_traffic() {
    let mut ca = cfg_a();
    let mut cb = cfg_b();
    for c in [&mut ca, &mut cb] {
        c.child_lifetime = Duration::from_secs(20);
        c.ike_lifetime = Duration::from_secs(45);
        c.dpd = Duration::from_secs(5);
    }
    let mut p = Pair::up_with(ca, cb);
    for _ in 0..240 {
        p.advance(Duration::from_millis(500));
        p.traffic();
    }
    let (sa, sb) = (p.a.ike.status(p.now), p.b.ike.status(p.now));
    // 120 s: about 6 CHILD SA and 2 IKE SA rekeys, all by the configured initiator.
    assert!((5..=7).contains(&sa.child_rekeys), "{sa:?}");
    assert!((2..=3).contains(&sa.ike_rekeys), "{sa:?}");
    assert_eq!(sa.child_rekeys, sb.child_rekeys);
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    assert!(p.a.inbound.len() <= 2 && p.b.inbound.len() <= 2);
    p.converged();
}

#[test]
fn soft_and_hard_esp_expiry() {
    let mut p = Pair::up();
    let spis = p.a.ike.status(p.now).children[0].spis;
    p.a.ike.esp_expired(spis.outbound, false, p.now);
    p.pump();
    assert_eq!(p.a.ike.status(p.now).child_rekeys, 1);
    p.traffic();
    p.converged();
    // A hard expiry on the new SA: deleted, and a fresh one is made.
    let spis =
        p.a.ike
            .status(p.now)
            .children
            .iter()
            .find(|c| c.active)
            .unwrap()
            .spis;
    p.a.ike.esp_expired(spis.inbound, true, p.now);
    p.advance(Duration::from_secs(6));
    p.converged();
    p.traffic();
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    // Byte limits reach the ESP SAs.
    let mut ca = cfg_a();
    ca.child_lifetime_bytes = Some(1_000_000);
    let p = Pair::up_with(ca, cfg_b());
    let ev = p.a.events.iter().find_map(|e| match e {
        Event::ChildUp(c) => Some(c.lifetime),
        _ => None,
    });
    let l = ev.unwrap();
    assert_eq!((l.soft_bytes, l.hard_bytes), (900_000, 1_000_000));
}

#[test]
fn dpd_detects_dead_peer_and_initiator_reconnects() {
    let mut p = Pair::up();
    // b dies silently.
    p.filter = Box::new(|dir, _| dir == Dir::BtoA);
    p.advance(Duration::from_secs(9));
    assert!(p.a.downs().is_empty());
    // DPD after 10 s idle, then 0.5 + 1 + 2 + 4 s of retransmissions.
    p.advance(Duration::from_secs(8));
    assert!(p.a.downs().is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.downs(), [DownReason::DpdTimeout]);
    assert!(p.a.inbound.is_empty() && p.a.outbound.is_none());
    assert_eq!(
        p.a.count(|e| matches!(
            e,
            Event::ChildDown {
                reason: ChildDownReason::IkeDown,
                ..
            }
        )),
        1
    );
    // The initiator reconnects after 5 s; b (really dead) does not answer.
    let sent = p.a.sent.len();
    p.advance(Duration::from_secs(6));
    assert!(p.a.sent[sent..]
        .iter()
        .any(|d| exchange_of(d) == exchange::IKE_SA_INIT));
    // b comes back as a fresh process: a gets through on a later attempt.
    p.b = Side::new(cfg_b(), p.now);
    p.filter = Box::new(|_, _| true);
    p.advance(Duration::from_secs(40));
    assert_eq!(p.a.ike.state(), State::Established);
    p.traffic();
}

#[test]
fn responder_detects_dead_initiator() {
    let mut p = Pair::up();
    p.filter = Box::new(|_, _| false);
    p.advance(Duration::from_secs(20));
    assert_eq!(p.b.downs(), [DownReason::DpdTimeout]);
    // A responder does not reconnect.
    let sent = p.b.sent.len();
    p.advance(Duration::from_secs(60));
    assert_eq!(p.b.sent.len(), sent);
}

#[test]
fn lost_messages_are_retransmitted() {
    for lose in 0..4 {
        // Lose the n-th datagram once.
        let mut p = Pair::new(cfg_a(), cfg_b());
        let mut seen = 0;
        p.filter = Box::new(move |_, _| {
            seen += 1;
            seen != lose + 1
        });
        p.a.ike.connect(p.now);
        p.advance(Duration::from_secs(3));
        assert_eq!(p.a.ike.state(), State::Established, "lost #{lose}");
        assert_eq!(p.b.ike.state(), State::Established, "lost #{lose}");
        // One CHILD SA each, even when IKE_AUTH was answered twice (from the cache).
        assert_eq!(p.b.count(|e| matches!(e, Event::ChildUp(_))), 1);
        assert_eq!(p.a.count(|e| matches!(e, Event::ChildUp(_))), 1);
        p.traffic();
        p.converged();
    }
}

#[test]
fn duplicated_messages_are_harmless() {
    let mut p = Pair::new(cfg_a(), cfg_b());
    p.a.ike.connect(p.now);
    // Deliver every datagram twice.
    for _ in 0..10 {
        p.pump_dup();
    }
    p.traffic();
    p.converged();
    p.a.ike.rekey_children(p.now);
    p.b.ike.rekey_ike(p.now);
    for _ in 0..10 {
        p.pump_dup();
    }
    p.advance(Duration::from_secs(10));
    p.traffic();
    p.converged();
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
}

impl Pair {
    /// One round of polling where every datagram arrives twice.
    fn pump_dup(&mut self) {
        let now = self.now;
        let mut wire = Vec::new();
        for (dir, side) in [(Dir::AtoB, &mut self.a), (Dir::BtoA, &mut self.b)] {
            while let Some(ev) = side.ike.poll(now) {
                side.apply(&ev, now);
                match ev {
                    Event::Send(d) => wire.push((dir, d)),
                    ev => side.events.push(ev),
                }
            }
        }
        for (dir, d) in wire {
            let to = match dir {
                Dir::AtoB => &mut self.b,
                Dir::BtoA => &mut self.a,
            };
            let _ = to.ike.handle(now, d.remote, d.local, &d.data);
            let _ = to.ike.handle(now, d.remote, d.local, &d.data);
        }
    }
}

#[test]
fn connect_gives_up_without_answers() {
    let mut p = Pair::new(cfg_a(), cfg_b());
    p.filter = Box::new(|_, _| false);
    p.a.ike.connect(p.now);
    p.advance(Duration::from_secs(7));
    assert!(p.a.downs().is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.downs(), [DownReason::RetransmitExhausted]);
    // 1 + 3 retransmissions.
    assert_eq!(p.a.sent.len(), 4);
}

#[test]
fn close_deletes_everything() {
    let mut p = Pair::up();
    p.a.ike.close(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::Closed]);
    assert_eq!(p.b.downs(), [DownReason::PeerDeleted]);
    assert!(p.a.inbound.is_empty() && p.b.inbound.is_empty());
    // No reconnect after close.
    let sent = p.a.sent.len();
    p.advance(Duration::from_secs(60));
    assert_eq!(p.a.sent.len(), sent);
    assert_eq!(p.a.ike.state(), State::Idle);
    // The responder may close too.
    let mut p = Pair::up();
    p.b.ike.close(p.now);
    p.pump();
    assert_eq!(p.a.downs(), [DownReason::PeerDeleted]);
    assert_eq!(p.b.downs(), [DownReason::Closed]);
}

#[test]
fn restarted_initiator_replaces_the_old_sa() {
    let mut p = Pair::up();
    // a restarts with no memory; b still has the old IKE SA.
    p.a = Side::new(cfg_a(), p.now);
    p.a.ike.connect(p.now);
    p.pump();
    p.traffic();
    p.converged();
    assert_eq!(p.b.ike.sas.len(), 1);
    assert_eq!(p.b.count(|e| matches!(e, Event::ChildUp(_))), 2);
    assert_eq!(
        p.b.count(|e| matches!(
            e,
            Event::ChildDown {
                reason: ChildDownReason::IkeDown,
                ..
            }
        )),
        1
    );
}

#[test]
fn responder_on_port_500_then_4500() {
    let mut p = Pair::new(cfg_a(), cfg_b());
    // Pretend a started on port 500 (as strongSwan does) and floated to 4500.
    let a500 = SocketAddrV4::new(*A.ip(), 500);
    let b500 = SocketAddrV4::new(*B.ip(), 500);
    p.a.ike.connect(p.now);
    let Some(Event::Send(init)) = p.a.ike.poll(p.now) else {
        panic!()
    };
    p.b.ike.handle(p.now, b500, a500, &init.data).unwrap();
    let Some(Event::Send(resp)) = p.b.ike.poll(p.now) else {
        panic!()
    };
    assert!(!resp.nat_t);
    assert_eq!((resp.local, resp.remote), (b500, a500));
    p.a.ike.handle(p.now, A, B, &resp.data).unwrap();
    p.pump();
    let auth_resp =
        p.b.sent
            .iter()
            .find(|d| exchange_of(d) == exchange::IKE_AUTH)
            .unwrap();
    assert!(auth_resp.nat_t);
    assert_eq!(auth_resp.remote, A);
    p.traffic();
}

#[test]
fn keepalives_when_claiming_nat() {
    let mut p = Pair::up();
    p.advance(Duration::from_secs(61));
    assert_eq!(p.a.keepalives, 3);
    assert_eq!(p.b.keepalives, 3);
    let mut ca = cfg_a();
    let mut cb = cfg_b();
    ca.force_encap = false;
    cb.force_encap = false;
    let mut p = Pair::up_with(ca, cb);
    p.advance(Duration::from_secs(61));
    assert_eq!(p.a.keepalives, 0);
    let up = p.a.events.iter().find_map(|e| match e {
        Event::IkeUp {
            nat_local,
            nat_remote,
            ..
        } => Some((*nat_local, *nat_remote)),
        _ => None,
    });
    assert_eq!(up, Some((false, false)));
    // With force_encap, each end sees the other behind a NAT.
    let p = Pair::up();
    let up = p.a.events.iter().find_map(|e| match e {
        Event::IkeUp { nat_remote, .. } => Some(*nat_remote),
        _ => None,
    });
    assert_eq!(up, Some(true));
}

#[test]
fn half_open_flood_is_bounded_and_cookies_kick_in() {
    let mut cb = cfg_b();
    cb.cookie_threshold = 4;
    cb.max_half_open = 6;
    let mut p = Pair::new(cfg_a(), cb);
    let mut cookies = 0;
    for i in 0..50u16 {
        // A fresh initiator each time, from spoofed ports.
        let mut a = Ike::new(cfg_a(), p.now);
        a.connect(p.now);
        let Some(Event::Send(d)) = a.poll(p.now) else {
            panic!()
        };
        let from = SocketAddrV4::new(*A.ip(), 10_000 + i);
        p.b.ike.handle(p.now, B, from, &d.data).unwrap();
        while let Some(ev) = p.b.ike.poll(p.now) {
            if let Event::Send(r) = ev {
                let m = Message::parse(&r.data).unwrap();
                if matches!(&m.payloads[..], [Payload::Notify(n)] if n.kind == crate::wire::ike::notify::COOKIE)
                {
                    cookies += 1;
                }
            }
        }
    }
    assert_eq!(cookies, 46);
    assert!(p.b.ike.sas.len() <= 6);
    // The real initiator still gets through (it answers the cookie).
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.a.ike.state(), State::Established);
    p.traffic();
    // Half-open SAs expire.
    p.advance(Duration::from_secs(10));
    assert_eq!(p.b.ike.sas.len(), 1);
}

/// Feeds damaged copies of every message of a full conversation to the receiving core
/// before the real one: nothing panics, the real exchange still succeeds.
#[test]
fn mutated_messages_never_panic_or_break_the_exchange() {
    let rng = ring::rand::SystemRandom::new();
    let rand =
        |n: usize| -> usize { (crate::ike::crypto::random_u32(&rng).unwrap() as usize) % n.max(1) };
    let mut p = Pair::new(cfg_a(), cfg_b());
    p.a.ike.connect(p.now);
    let mut rounds = 0;
    let mut later: Vec<(Dir, Datagram)> = Vec::new();
    loop {
        rounds += 1;
        assert!(rounds < 100);
        let now = p.now;
        if p.a.ike.state() == State::Established && p.b.ike.state() == State::Established {
            // Keep going through a CHILD and an IKE rekey.
            let st = p.a.ike.status(now);
            if st.child_rekeys == 0 {
                p.a.ike.rekey_children(now);
            } else if st.ike_rekeys == 0 {
                p.b.ike.rekey_ike(now);
            }
        }
        let mut wire = Vec::new();
        for (dir, side) in [(Dir::AtoB, &mut p.a), (Dir::BtoA, &mut p.b)] {
            while let Some(ev) = side.ike.poll(now) {
                side.apply(&ev, now);
                match ev {
                    Event::Send(d) => wire.push((dir, d)),
                    ev => side.events.push(ev),
                }
            }
        }
        wire.append(&mut later);
        if wire.is_empty() {
            break;
        }
        for (dir, d) in wire {
            let to = match dir {
                Dir::AtoB => &mut p.b,
                Dir::BtoA => &mut p.a,
            };
            // IKE_SA_INIT responses carry no integrity check (by design of IKEv2): a
            // forged one ahead of the real one spoils the attempt (retried later), so
            // damaged copies of those come after the real one.
            let init_resp = is_init_response(&d);
            if init_resp {
                let _ = to.ike.handle(now, d.remote, d.local, &d.data);
                // Keep what the real one caused for the next round.
                while let Some(ev) = to.ike.poll(now) {
                    to.apply(&ev, now);
                    match ev {
                        Event::Send(d) => later.push((dir.other(), d)),
                        ev => to.events.push(ev),
                    }
                }
            }
            for _ in 0..300 {
                let mut m = d.data.clone();
                match rand(4) {
                    0 => {
                        let i = rand(m.len());
                        m[i] ^= 1 << rand(8);
                    }
                    1 => m.truncate(rand(m.len())),
                    2 => {
                        // A length field somewhere gets a random value.
                        let i = rand(m.len().saturating_sub(1));
                        m[i] = rand(256) as u8;
                        m[i + 1] = rand(256) as u8;
                    }
                    _ => {
                        let extra: Vec<u8> = (0..rand(40)).map(|_| rand(256) as u8).collect();
                        m.extend_from_slice(&extra);
                    }
                }
                if m == d.data {
                    continue;
                }
                let _ = to.ike.handle(now, d.remote, d.local, &m);
                // Drain what the damaged copy caused (error replies) without delivering.
                while let Some(ev) = to.ike.poll(now) {
                    to.apply(&ev, now);
                    if !matches!(ev, Event::Send(_)) {
                        to.events.push(ev);
                    }
                }
            }
            if !init_resp {
                let _ = to.ike.handle(now, d.remote, d.local, &d.data);
            }
        }
    }
    p.traffic();
    p.converged();
    assert_eq!(p.a.ike.status(p.now).ike_rekeys, 1);
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
}

/// Random garbage and well-framed nonsense at both roles.
#[test]
fn garbage_never_panics() {
    let rng = ring::rand::SystemRandom::new();
    let rand =
        |n: usize| -> usize { (crate::ike::crypto::random_u32(&rng).unwrap() as usize) % n.max(1) };
    let mut p = Pair::up();
    let mut idle = Ike::new(cfg_b(), p.now);
    let st = p.a.ike.status(p.now);
    for i in 0..20_000 {
        let len = rand(120);
        let mut m: Vec<u8> = (0..len).map(|_| rand(256) as u8).collect();
        if m.len() >= 28 && i % 2 == 0 {
            // A plausible header: right version, length, maybe the live SPIs.
            m[17] = 0x20;
            m[18] = 34 + rand(4) as u8;
            let l = m.len() as u32;
            m[24..28].copy_from_slice(&l.to_be_bytes());
            if i % 4 == 0 {
                m[..8].copy_from_slice(&st.spi_i.to_be_bytes());
                m[8..16].copy_from_slice(&st.spi_r.to_be_bytes());
            }
            if i % 8 == 0 {
                m[8..16].fill(0);
                m[19] = 0x08;
                m[20..24].fill(0);
            }
        }
        let _ = Message::parse(&m);
        let _ = Header::parse(&Packet::new_unchecked(&m[..]));
        let _ = p.a.ike.handle(p.now, A, B, &m);
        let _ = p.b.ike.handle(p.now, B, A, &m);
        let _ = idle.handle(p.now, B, A, &m);
        while idle.poll(p.now).is_some() {}
        while p.a.ike.poll(p.now).is_some() {}
        while p.b.ike.poll(p.now).is_some() {}
    }
    assert_eq!(p.a.ike.state(), State::Established);
    p.traffic();
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let p = Pair::up();
    let cfg = format!("{:?}", cfg_a());
    assert!(!cfg.contains("swordfish"), "{cfg}");
    for e in p.a.events.iter().chain(&p.b.events) {
        let s = format!("{e:?}");
        assert!(!s.contains("keymat: [") && !s.contains("swordfish"), "{s}");
    }
    let s = format!("{:?} {:?}", p.a.ike, p.a.ike.status(p.now));
    assert!(!s.contains("swordfish"));
}

/// Make-before-break on the responder's side: it installs the new SAs at once but
/// keeps sending on the old one until the initiator deletes it.
#[test]
fn rekey_responder_switches_after_the_delete() {
    let mut p = Pair::up();
    let old_a_out = p.a.outbound.as_ref().unwrap().spi();
    // Hold back b's DELETE of the old SA.
    p.filter = Box::new(|dir, d| !(dir == Dir::BtoA && exchange_of(d) == exchange::INFORMATIONAL));
    p.b.ike.rekey_children(p.now);
    p.pump();
    // a answered the rekey: new SAs installed, still sending on the old one.
    assert!(p
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { send: false, .. })));
    assert_eq!(p.a.outbound.as_ref().unwrap().spi(), old_a_out);
    assert_eq!(p.a.standby.len(), 1);
    // b, the initiator, sends on the new one; both directions still work.
    assert!(p
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { send: true, .. })));
    p.traffic();
    // The DELETE gets through (retransmitted): a switches.
    p.filter = Box::new(|_, _| true);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.count(|e| matches!(e, Event::ChildSend { .. })), 1);
    assert_ne!(p.a.outbound.as_ref().unwrap().spi(), old_a_out);
    assert!(p.a.standby.is_empty());
    p.traffic();
    p.advance(Duration::from_secs(6));
    p.converged();
    assert_eq!(p.a.inbound.len(), 1);
}

#[test]
fn config_from_the_vpn_block() {
    let vpn = crate::config::model::Vpn {
        remote: Ipv4Addr::new(203, 0, 113, 10),
        local_id: "device-42.example.com".into(),
        remote_id: "vpn.example.com".into(),
        psk: crate::config::model::Secret("a long shared secret".into()),
        remote_subnets: vec![net("172.31.0.0/16")],
        ike_lifetime_secs: 14_400,
        child_lifetime_secs: 3_600,
        dpd_secs: 30,
        initiator: true,
    };
    let c = IkeConfig::from_vpn(&vpn, Ipv4Addr::new(198, 51, 100, 7), net("10.3.0.0/24"));
    assert!(c.initiator);
    assert_eq!(c.local, "198.51.100.7:4500".parse().unwrap());
    assert_eq!(c.remote, "203.0.113.10:4500".parse().unwrap());
    assert_eq!(c.local_ts, [net("10.3.0.0/24")]);
    assert_eq!(c.remote_ts, [net("172.31.0.0/16")]);
    assert_eq!(c.ike_lifetime, Duration::from_secs(14_400));
    assert_eq!(c.child_lifetime, Duration::from_secs(3_600));
    assert_eq!(c.dpd, Duration::from_secs(30));
    assert_eq!(c.esp_silence, Duration::from_secs(2));
    let short = crate::config::model::Vpn {
        dpd_secs: 1,
        ..vpn.clone()
    };
    let s = IkeConfig::from_vpn(&short, Ipv4Addr::new(198, 51, 100, 7), net("10.3.0.0/24"));
    assert_eq!(s.esp_silence, Duration::from_secs(1));
    assert_eq!(c.psk.expose(), b"a long shared secret");
    assert_eq!(c.remote_id.to_string(), "vpn.example.com");
    assert!(!format!("{c:?}").contains("shared secret"));
}

/// The responder deletes the only CHILD SA (say its hard limit struck): the configured
/// initiator asks for a new one.
#[test]
fn initiator_replaces_a_child_the_peer_deleted() {
    let mut p = Pair::up();
    let spis = p.b.ike.status(p.now).children[0].spis;
    p.b.ike.esp_expired(spis.inbound, true, p.now);
    p.pump();
    assert_eq!(
        p.a.count(|e| matches!(
            e,
            Event::ChildDown {
                reason: ChildDownReason::PeerDeleted,
                ..
            }
        )),
        1
    );
    assert_eq!(p.a.count(|e| matches!(e, Event::ChildUp(_))), 2);
    p.traffic();
    p.converged();
}

// ---- liveness from ESP: ESP sent with none received starts a check at once ----

const STEP: Duration = Duration::from_millis(100);

fn is_check(d: &Datagram) -> bool {
    Packet::new_checked(&d.data[..])
        .is_ok_and(|p| p.exchange() == exchange::INFORMATIONAL && p.flags() & 0x20 == 0)
}

/// Liveness checks (INFORMATIONAL requests) `s` has sent.
fn checks(s: &Side) -> usize {
    s.sent.iter().filter(|d| is_check(d)).count()
}

impl Pair {
    /// One step of traffic: ESP each way as the shells would report it (`a_to_b`,
    /// `b_to_a`: whether that direction is sent, and whether it arrives), then the
    /// clock moves on by [`STEP`].
    fn esp_step(&mut self, a_to_b: Option<bool>, b_to_a: Option<bool>) {
        let now = self.now;
        if let Some(arrives) = a_to_b {
            self.a.ike.esp_sent(now);
            if arrives {
                self.b.ike.esp_received(now);
            }
        }
        if let Some(arrives) = b_to_a {
            self.b.ike.esp_sent(now);
            if arrives {
                self.a.ike.esp_received(now);
            }
        }
        self.advance(STEP);
    }

    /// Steps until a's next liveness check goes out (at most `limit`); how long it
    /// took.
    fn until_check(
        &mut self,
        limit: Duration,
        a_to_b: Option<bool>,
        b_to_a: Option<bool>,
    ) -> Option<Duration> {
        let (start, before) = (self.now, checks(&self.a));
        while self.now < start + limit {
            self.esp_step(a_to_b, b_to_a);
            if checks(&self.a) > before {
                return Some(self.now - start);
            }
        }
        None
    }
}

#[test]
fn esp_both_ways_or_none_at_all_needs_no_extra_check() {
    let (mut ca, mut cb) = (cfg_a(), cfg_b());
    ca.dpd = Duration::from_secs(60);
    cb.dpd = Duration::from_secs(60);
    let mut p = Pair::up_with(ca, cb);
    // 20 s of traffic both ways; 19.5 s with b answering only every 1.5 s (slower
    // than a round trip, within esp_silence); 19 s idle. DPD (60 s) is not due yet.
    for _ in 0..200 {
        p.esp_step(Some(true), Some(true));
    }
    for i in 0..195 {
        p.esp_step(Some(true), (i % 15 == 14).then_some(true));
    }
    // b sent last (its answer), a sent nothing after it: no check for that either.
    p.advance(Duration::from_secs(19));
    assert_eq!((checks(&p.a), checks(&p.b)), (0, 0));
    p.advance(Duration::from_secs(2));
    assert!(checks(&p.a) > 0 && checks(&p.b) > 0, "DPD is due");
}

#[test]
fn the_last_packets_of_a_conversation_need_no_check() {
    let mut p = Pair::up();
    // A request and its answer; then a sends a last burst (say the final ACKs) over
    // 0.9 s that nothing answers, and goes quiet.
    p.esp_step(Some(true), Some(true));
    for _ in 0..9 {
        p.esp_step(Some(true), None);
    }
    p.advance(Duration::from_secs(5));
    assert_eq!(checks(&p.a), 0);
    // A packet 1 s into the stretch is still sending: checked at 2 s.
    p.advance(Duration::from_secs(1));
    p.a.ike.esp_sent(p.now);
    p.advance(Duration::from_secs(1));
    p.a.ike.esp_sent(p.now);
    p.advance(Duration::from_millis(999));
    assert_eq!(checks(&p.a), 0);
    p.advance(Duration::from_millis(1));
    assert_eq!(checks(&p.a), 1);
}

#[test]
fn esp_sent_without_esp_received_checks_liveness_at_once() {
    let mut p = Pair::up();
    for _ in 0..10 {
        p.esp_step(Some(true), Some(true));
    }
    // b's ESP stops arriving (a NAT in front of a changed its mapping): a checks
    // 2 s (esp_silence) after its first unanswered packet, not at DPD's 10 s.
    let took = p.until_check(Duration::from_secs(9), Some(true), Some(false));
    assert_eq!(took, Some(Duration::from_secs(2)));
    // b answered: nothing went down, and a counted it as heard (DPD moved on).
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    assert_eq!(p.a.ike.state(), State::Established);
    // b only sent ESP: it checks nothing.
    assert_eq!(checks(&p.b), 0);
}

#[test]
fn one_way_esp_checks_back_off_to_the_dpd_interval() {
    let mut p = Pair::up();
    // a streams one way (b has nothing to send back) for 70 s: checks after 2, 4, 8
    // s, then every 10 s (dpd), each answered.
    let mut gaps = Vec::new();
    while let Some(gap) = p.until_check(Duration::from_secs(12), Some(true), None) {
        gaps.push(gap.as_millis());
        if gaps.len() == 7 {
            break;
        }
    }
    assert_eq!(gaps, [2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
    assert!(p.a.downs().is_empty());
    // ESP from b once: the next stretch gets 2 s again.
    p.esp_step(Some(true), Some(true));
    let took = p.until_check(Duration::from_secs(12), Some(true), None);
    assert_eq!(took, Some(Duration::from_secs(2)));
}

#[test]
fn an_unanswered_check_finds_a_dead_peer_sooner_than_dpd() {
    let mut p = Pair::up();
    // b dies; a keeps sending ESP. Its check goes out after 2 s, is retransmitted
    // 0.5, 1.5 and 3.5 s later, and a gives up 9.5 s in (DPD alone: 17.5 s).
    p.filter = Box::new(|dir, _| dir == Dir::AtoB);
    let start = p.now;
    while p.a.downs().is_empty() && p.now < start + Duration::from_secs(20) {
        p.esp_step(Some(false), None);
    }
    assert_eq!(p.a.downs(), [DownReason::DpdTimeout]);
    assert_eq!(p.now - start, Duration::from_millis(9_500));
    // Down: ESP reported sent now arms nothing.
    p.a.ike.esp_sent(p.now);
    assert!(p.a.ike.poll_timeout() > Some(p.now + Duration::from_secs(4)));
}

#[test]
fn a_pending_request_stands_in_for_the_check() {
    let mut p = Pair::up();
    // A CHILD SA rekey is out and its answer lost for now: when ESP goes unanswered,
    // no second request is queued (window of one); the rekey's retransmission is
    // the check.
    p.filter = Box::new(|dir, _| dir == Dir::AtoB);
    p.a.ike.rekey_children(p.now);
    p.pump();
    let before = checks(&p.a);
    for _ in 0..25 {
        p.esp_step(Some(true), Some(false));
    }
    assert_eq!(checks(&p.a), before);
    p.filter = Box::new(|_, _| true);
    p.advance(Duration::from_secs(5));
    p.traffic();
    p.converged();
}

/// a behind a NAT whose mapping changes (b, not behind one, sends to the old one):
/// a's ESP still reaches b, b's is lost until a's check, sent from the new mapping,
/// moves b there (`PeerMoved`: ESP follows). Measured with ESP both ways every 100 ms.
#[test]
fn a_new_nat_mapping_is_found_by_the_check_in_esp_silence() {
    let m1 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 2), 40_001);
    let m2 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 3), 51_002);
    let mut p = Pair::new(cfg_a(), cfg_b());
    p.nat = Some(m1);
    p.a.ike.connect(p.now);
    p.pump();
    assert_eq!(p.b.peer, Some(m1));
    assert_eq!(p.a.peer, Some(B));
    let arrives = |p: &Pair| p.b.peer == p.nat;
    for _ in 0..10 {
        let b_to_a = arrives(&p);
        p.esp_step(Some(true), Some(b_to_a));
    }
    p.nat = Some(m2);
    let start = p.now;
    let mut outage = None;
    while p.now < start + Duration::from_secs(20) {
        let b_to_a = arrives(&p);
        if b_to_a && outage.is_none() {
            outage = Some(p.now - start);
            // One check did it.
            assert_eq!(checks(&p.a), 1);
        }
        p.esp_step(Some(true), Some(b_to_a));
    }
    // The check 2 s in; its round trip takes no time here.
    assert_eq!(outage, Some(Duration::from_secs(2)));
    assert_eq!(p.b.peer, Some(m2));
    assert_eq!(p.b.count(|e| matches!(e, Event::PeerMoved { .. })), 1);
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
    // Rekeys after the move use the new address.
    p.a.ike.rekey_children(p.now);
    p.b.ike.rekey_ike(p.now);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.b.peer, Some(m2));
    assert_eq!(p.b.ike.status(p.now).remote, m2);
    p.converged();
}

/// Without the ESP facts (the shell before this check existed), the same change
/// costs the DPD interval: the tunnel is one-way until a's DPD.
#[test]
fn without_esp_facts_a_new_nat_mapping_waits_for_dpd() {
    let m1 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 2), 40_001);
    let mut p = Pair::new(cfg_a(), cfg_b());
    p.nat = Some(m1);
    p.a.ike.connect(p.now);
    p.pump();
    let start = p.now;
    p.nat = Some(SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 3), 51_002));
    while p.b.peer != p.nat && p.now < start + Duration::from_secs(20) {
        p.advance(STEP);
    }
    assert_eq!(p.now - start, Duration::from_secs(10));
}
