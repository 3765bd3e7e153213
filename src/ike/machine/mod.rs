//! The state machine behind [`Ike`]. Every IKE SA the peer relationship has (the
//! current one, one being set up, one replaced by a rekey and waiting for its DELETE,
//! half-open ones as responder) is an [`Sa`] in one bounded list; CHILD SAs belong to
//! the peer, not to an IKE SA, so an IKE SA rekey moves nothing. Each SA sends at most
//! one request at a time (window 1): the next one waits in the SA's intent queue.
//!
//! The code is split by exchange, each file with its own `impl Ike` block:
//! - `mod.rs`: [`Ike`] with its public API, the IKE SA and CHILD SA records ([`Sa`],
//!   [`Child`]), our requests and queued intents, teardown, small helpers.
//! - `window.rs`: the window of one in both directions: our queued requests go out
//!   and their responses are matched, the peer's requests are checked against the
//!   message IDs and answered (retransmitted ones from a cache); the work of each
//!   exchange is dispatched to the files below.
//! - `init.rs`: IKE_SA_INIT in both roles: COOKIE and INVALID_KE_PAYLOAD, stateless
//!   refusals, half-open SAs, the SA keys, NAT detection.
//! - `auth.rs`: IKE_AUTH in both roles (PSK), the first CHILD SA as initiator, and
//!   `establish`.
//! - `child.rs`: CREATE_CHILD_SA for CHILD SAs in both roles: new ones and rekeys,
//!   simultaneous rekeys (§2.8.1), refusals and retries; it also dispatches the
//!   peer's CREATE_CHILD_SA requests.
//! - `ike_rekey.rs`: CREATE_CHILD_SA that rekeys the IKE SA, in both roles, with
//!   simultaneous rekeys (§2.8.2).
//! - `informational.rs`: INFORMATIONAL: DPD, deletes of CHILD SAs and IKE SAs.
//! - `timers.rs`: every deadline in one [`TimerTable`]; [`Ike::poll_timeout`] is its
//!   earliest entry and `on_timers` handles the due ones, so the two cannot disagree.
//!   The state changes that timers depend on go through methods there that keep the
//!   table in step; the records keep only timestamps (created, established, last
//!   heard from).
//! - `payloads.rs`: finding payloads in a message, and small payloads to send.

mod auth;
mod child;
mod ike_rekey;
mod informational;
mod init;
mod payloads;
mod timers;
mod window;

use super::crypto::{self, random_u32, random_u64, CryptoError, SkCipher};
use super::message;
use super::ts;
use super::{
    ChildDownReason, ChildSpis, ChildStatus, Datagram, DownReason, Error, Event, Group, IkeConfig,
    State, Status,
};
use crate::esp::Lifetime;
use crate::wire::esp::IKE_PORT;
use crate::wire::ike::{exchange, flags, Header, Packet, Payload, TsV4};
use child::ChildReq;
use ike_rekey::IkeRekeyReq;
use init::Handshake;
use ring::rand::SystemRandom;
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};
use timers::{Timer, TimerTable};

type SaId = (u64, u64);

const NONCE_LEN: usize = 32;
/// Queued requests per IKE SA.
const MAX_INTENTS: usize = 16;
/// TEMPORARY_FAILURE / INVALID_KE_PAYLOAD retries of one CREATE_CHILD_SA.
const MAX_CREATE_RETRIES: u32 = 5;

/// An IKE SA's keys (§2.14).
struct SaKeys {
    sk_d: crypto::SecretBytes,
    enc_out: SkCipher,
    enc_in: SkCipher,
    /// SK_pi or SK_pr: ours signs our ID, the peer's checks theirs.
    sk_p_own: crypto::SecretBytes,
    sk_p_peer: crypto::SecretBytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Initiator: IKE_SA_INIT or IKE_AUTH outstanding.
    Connecting,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    HalfOpen,
    Established,
    /// Replaced by a rekey; the peer deletes it (or it is dropped by its
    /// [`Timer::DropSa`]).
    Superseded,
    /// We are deleting it.
    Deleting,
}

enum Req {
    Init,
    Auth,
    Dpd,
    Child(ChildReq),
    RekeyIke(IkeRekeyReq),
    /// Our inbound SPIs.
    DeleteChildren(Vec<u32>),
    DeleteIke,
}

struct Pending {
    msg_id: u32,
    data: Vec<u8>,
    req: Req,
    /// Transmissions so far (the next is due at its [`Timer::Retransmit`]).
    sent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Intent {
    Dpd,
    RekeyIke {
        retries: u32,
        group: Option<Group>,
    },
    RekeyChild {
        spi_in: u32,
        retries: u32,
        group: Option<Group>,
    },
    CreateChild {
        retries: u32,
        group: Option<Group>,
    },
    DeleteChildren(Vec<u32>),
    DeleteIke,
}

pub(super) struct Sa {
    spi_i: u64,
    spi_r: u64,
    /// We are the original initiator of this IKE SA (sets the I flag, picks SK_ei).
    we_initiated: bool,
    phase: Phase,
    keys: Option<SaKeys>,
    hs: Option<Box<Handshake>>,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    my_next_id: u32,
    peer_next_id: u32,
    /// The last request answered and its response, for retransmitted requests.
    last_reply: Option<(Vec<u8>, Vec<u8>)>,
    pending: Option<Pending>,
    intents: VecDeque<Intent>,
    created: Instant,
    /// When IKE_AUTH or the rekey that made it completed: its lifetime runs from here.
    established: Option<Instant>,
    /// When the peer was last heard on it: DPD counts from here.
    last_rx: Instant,
    /// The nonces of the exchange that made this SA (rekey collisions compare them).
    nonces: (Vec<u8>, Vec<u8>),
    group: Group,
    iv: u64,
    nat_local: bool,
    nat_remote: bool,
}

/// An IKE message to send from `local` to `remote`, behind the non-ESP marker
/// unless `local` is port 500.
fn datagram(local: SocketAddrV4, remote: SocketAddrV4, data: Vec<u8>) -> Datagram {
    Datagram {
        local,
        remote,
        nat_t: local.port() != IKE_PORT,
        data,
    }
}

impl Sa {
    /// A new IKE SA between `local` and `remote`, with no keys, messages or timers
    /// yet; the exchange that makes it fills in the rest.
    #[allow(clippy::too_many_arguments)]
    fn new(
        spi_i: u64,
        spi_r: u64,
        we_initiated: bool,
        phase: Phase,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        group: Group,
        now: Instant,
    ) -> Sa {
        Sa {
            spi_i,
            spi_r,
            we_initiated,
            phase,
            keys: None,
            hs: None,
            local,
            remote,
            my_next_id: 0,
            peer_next_id: 0,
            last_reply: None,
            pending: None,
            intents: VecDeque::new(),
            created: now,
            established: None,
            last_rx: now,
            nonces: (Vec::new(), Vec::new()),
            group,
            iv: 0,
            nat_local: false,
            nat_remote: false,
        }
    }

    fn id(&self) -> SaId {
        (self.spi_i, self.spi_r)
    }

    /// Our SPI of this SA: it names the SA in the timer table.
    fn spi(&self) -> u64 {
        if self.we_initiated {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    fn seal(&mut self, exch: u8, response: bool, msg_id: u32, p: &[Payload]) -> Option<Vec<u8>> {
        let keys = self.keys.as_ref()?;
        let mut f = if self.we_initiated {
            flags::INITIATOR
        } else {
            0
        };
        if response {
            f |= flags::RESPONSE;
        }
        let h = Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: 0,
            exchange: exch,
            flags: f,
            message_id: msg_id,
            length: 0,
        };
        self.iv = self.iv.wrapping_add(1);
        message::seal(h, p, &keys.enc_out, self.iv).ok()
    }

    fn datagram(&self, data: Vec<u8>) -> Datagram {
        datagram(self.local, self.remote, data)
    }

    fn push_intent(&mut self, i: Intent) {
        let same_kind = |a: &Intent| match (a, &i) {
            (Intent::RekeyChild { spi_in: x, .. }, Intent::RekeyChild { spi_in: y, .. }) => x == y,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        };
        let duplicate = match &i {
            Intent::DeleteChildren(_) => false,
            _ => self.intents.iter().any(same_kind),
        };
        if !duplicate && self.intents.len() < MAX_INTENTS {
            self.intents.push_back(i);
        }
    }

    fn has_pending_child_op(&self) -> bool {
        matches!(
            self.pending,
            Some(Pending {
                req: Req::Child(_),
                ..
            })
        )
    }

    fn has_pending_ike_rekey(&self) -> bool {
        matches!(
            self.pending,
            Some(Pending {
                req: Req::RekeyIke(_),
                ..
            })
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Active,
    /// Our rekey request for it is out.
    Rekeying,
    /// Replaced by a rekey the peer started; the peer deletes it.
    Superseded,
    /// We are deleting it.
    Deleting,
    /// Deleted on the wire; its inbound SA stays for packets in flight until its
    /// [`ChildTimer::Linger`] fires.
    Linger,
}

pub(super) struct Child {
    spi_in: u32,
    spi_out: u32,
    ts_local: Vec<TsV4>,
    ts_remote: Vec<TsV4>,
    /// Nonces of the exchange that made it (rekey collisions compare them).
    nonces: (Vec<u8>, Vec<u8>),
    /// Its rekey and expiry timers run from here.
    created: Instant,
    state: ChildState,
    /// Replaced by a rekey (its removal waits for `rekey_linger`).
    rekeyed: bool,
    /// The CHILD SA (our inbound SPI) the peer's rekey made to replace this one; we
    /// switch sending to it when the peer deletes this one.
    replaced_by: Option<u32>,
}

impl Child {
    /// A new, active CHILD SA (its timers start when it joins the list).
    fn new(
        now: Instant,
        spi_in: u32,
        spi_out: u32,
        ts_local: Vec<TsV4>,
        ts_remote: Vec<TsV4>,
        nonces: (Vec<u8>, Vec<u8>),
    ) -> Child {
        Child {
            spi_in,
            spi_out,
            ts_local,
            ts_remote,
            nonces,
            created: now,
            state: ChildState::Active,
            rekeyed: false,
            replaced_by: None,
        }
    }

    fn spis(&self) -> ChildSpis {
        ChildSpis {
            inbound: self.spi_in,
            outbound: self.spi_out,
        }
    }
}

/// One peer's IKEv2: see the module documentation for how to drive it.
pub struct Ike {
    cfg: IkeConfig,
    rng: SystemRandom,
    pub(super) sas: Vec<Sa>,
    current: Option<SaId>,
    pub(super) children: Vec<Child>,
    events: VecDeque<Event>,
    timers: TimerTable,
    cookie_secret: [u8; 32],
    /// The next wait before reconnecting (doubles up to `reconnect_max`).
    reconnect_delay: Duration,
    closing: bool,
    /// The first ESP the shell sent since it last received any (or since the last
    /// liveness check this started): the unanswered stretch runs from here.
    esp_unanswered: Option<Instant>,
    /// How long ESP may go unanswered before a liveness check: `esp_silence`, doubled
    /// after each check while ESP stays one-way (up to `dpd`), reset by ESP received.
    esp_wait: Duration,
    /// When the shell last sent ESP (while established).
    esp_last_sent: Instant,
    /// Liveness checks started by unanswered ESP since ESP last came in.
    esp_checks: u32,
    up_since: Option<Instant>,
    ike_rekeys: u32,
    child_rekeys: u32,
    last_down: Option<DownReason>,
}

impl std::fmt::Debug for Ike {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ike")
            .field("local_id", &self.cfg.local_id)
            .field("remote_id", &self.cfg.remote_id)
            .field("state", &self.state())
            .field("sas", &self.sas.len())
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Ike {
    pub fn new(cfg: IkeConfig, now: Instant) -> Ike {
        let rng = SystemRandom::new();
        let mut cookie_secret = [0u8; 32];
        // A failing RNG leaves a zero secret: cookies still work, just guessably.
        let _ = crypto::random(&rng, &mut cookie_secret);
        let reconnect_delay = cfg.reconnect.unwrap_or_default();
        let esp_wait = cfg.esp_silence;
        Ike {
            cfg,
            rng,
            sas: Vec::new(),
            current: None,
            children: Vec::new(),
            events: VecDeque::new(),
            timers: TimerTable::default(),
            cookie_secret,
            reconnect_delay,
            closing: false,
            esp_unanswered: None,
            esp_wait,
            esp_last_sent: now,
            esp_checks: 0,
            up_since: None,
            ike_rekeys: 0,
            child_rekeys: 0,
            last_down: None,
        }
    }

    pub fn config(&self) -> &IkeConfig {
        &self.cfg
    }

    // ---- public driving API ----

    /// Starts an IKE SA (initiator); does nothing if one is up or under way.
    pub fn connect(&mut self, now: Instant) {
        self.closing = false;
        self.timers.stop(Timer::Reconnect);
        if self.current.is_some()
            || self
                .sas
                .iter()
                .any(|s| s.phase == Phase::Connecting && s.we_initiated)
        {
            return;
        }
        if let Err(CryptoError) = self.start_init(now) {
            self.down(now, DownReason::Crypto, false);
        }
    }

    /// Deletes the IKE SA (and with it the CHILD SAs) and stops reconnecting.
    pub fn close(&mut self, now: Instant) {
        self.closing = true;
        self.timers.stop(Timer::Reconnect);
        let cur = self.current_idx();
        match cur {
            Some(i) if self.sas[i].phase == Phase::Established => {
                self.current_deleting(i);
                self.sas[i].intents.clear();
                if let Some(p) = &self.sas[i].pending {
                    if !matches!(p.req, Req::DeleteIke) {
                        // The outstanding request's answer no longer matters.
                        self.take_pending(i);
                    }
                }
                self.sas[i].push_intent(Intent::DeleteIke);
                self.kick_all(now);
            }
            _ => {
                let connecting = self.sas.iter().any(|s| s.phase == Phase::Connecting);
                self.retain_sas(|s| s.phase != Phase::Connecting);
                if connecting {
                    self.down(now, DownReason::Closed, false);
                }
            }
        }
    }

    /// Starts an IKE SA rekey now (normally driven by `ike_lifetime`).
    pub fn rekey_ike(&mut self, now: Instant) {
        if let Some(i) = self.current_idx() {
            self.sas[i].push_intent(Intent::RekeyIke {
                retries: 0,
                group: None,
            });
            self.kick_all(now);
        }
    }

    /// Starts a rekey of every active CHILD SA now (normally driven by lifetimes).
    pub fn rekey_children(&mut self, now: Instant) {
        let spis: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.state == ChildState::Active)
            .map(|c| c.spi_in)
            .collect();
        for s in spis {
            self.queue_child_rekey(s);
        }
        self.kick_all(now);
    }

    /// An ESP SA of ours (either SPI of a CHILD SA) crossed its soft (`hard == false`)
    /// or hard byte/packet/time limit. Soft: rekey it. Hard: it is dead; delete it
    /// (a rekey normally replaced it long before).
    pub fn esp_expired(&mut self, spi: u32, hard: bool, now: Instant) {
        let Some(ci) = self
            .children
            .iter()
            .position(|c| c.spi_in == spi || c.spi_out == spi)
        else {
            return;
        };
        let c = &self.children[ci];
        match (hard, c.state) {
            (false, ChildState::Active) => self.queue_child_rekey(c.spi_in),
            (true, ChildState::Active | ChildState::Rekeying | ChildState::Superseded) => {
                self.expire_child(ci, now);
            }
            _ => {}
        }
        self.kick_all(now);
    }

    /// The shell sent ESP on this peer's CHILD SAs (once per batch is enough). If none
    /// comes back within `esp_silence`, a liveness check goes out.
    pub fn esp_sent(&mut self, now: Instant) {
        self.on_esp_sent(now);
    }

    /// ESP from the peer opened (authenticated, not a replay; once per batch is
    /// enough): the path works both ways.
    pub fn esp_received(&mut self, now: Instant) {
        self.on_esp_received(now);
    }

    /// Handles one IKE message that arrived from `remote` at `local` (the non-ESP
    /// marker already stripped). Events follow from [`Ike::poll`].
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        msg: &[u8],
    ) -> Result<(), Error> {
        let p = Packet::new_checked(msg)?;
        let h = Header::parse(&p)?;
        if h.length as usize != msg.len() {
            return Err(Error::Malformed(crate::wire::Error::Malformed));
        }
        if h.exchange == exchange::IKE_SA_INIT && !h.is_response() {
            return self.on_init_request(now, local, remote, &h, msg);
        }
        let idx = self.find_sa(&h).ok_or(Error::UnknownSa)?;
        // The I flag says whether the sender is the original initiator: never us.
        if h.from_initiator() == self.sas[idx].we_initiated {
            return Err(Error::Unexpected);
        }
        let r = if h.is_response() {
            self.on_response(now, idx, &h, msg)
        } else {
            self.on_request(now, idx, local, remote, &h, msg)
        };
        self.kick_all(now);
        r
    }

    /// The next thing for the shell to do; runs due timers first. Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Event> {
        if self.events.is_empty() {
            self.on_timers(now);
        }
        self.events.pop_front()
    }

    /// When [`Ike::poll`] must be called next at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_expiry()
    }

    pub fn state(&self) -> State {
        match self.current_idx().map(|i| self.sas[i].phase) {
            Some(Phase::Deleting) => State::Closing,
            Some(_) => State::Established,
            None if self.sas.iter().any(|s| s.phase == Phase::Connecting) => State::Connecting,
            None => State::Idle,
        }
    }

    pub fn status(&self, now: Instant) -> Status {
        let cur = self.current_idx().map(|i| &self.sas[i]);
        Status {
            state: self.state(),
            spi_i: cur.map_or(0, |s| s.spi_i),
            spi_r: cur.map_or(0, |s| s.spi_r),
            remote: cur.map_or(self.cfg.remote, |s| s.remote),
            ike_age: cur
                .and_then(|s| s.established)
                .map(|t| now.saturating_duration_since(t)),
            up_for: self
                .up_since
                .filter(|_| cur.is_some())
                .map(|t| now.saturating_duration_since(t)),
            ike_rekeys: self.ike_rekeys,
            child_rekeys: self.child_rekeys,
            nat_local: cur.is_some_and(|s| s.nat_local),
            nat_remote: cur.is_some_and(|s| s.nat_remote),
            children: self
                .children
                .iter()
                .map(|c| ChildStatus {
                    spis: c.spis(),
                    ts_local: ts::to_nets(&c.ts_local),
                    ts_remote: ts::to_nets(&c.ts_remote),
                    age: now.saturating_duration_since(c.created),
                    active: matches!(c.state, ChildState::Active | ChildState::Rekeying),
                })
                .collect(),
            last_down: self.last_down,
        }
    }

    // ---- helpers ----

    fn current_idx(&self) -> Option<usize> {
        let id = self.current?;
        self.sas.iter().position(|s| s.id() == id)
    }

    fn idx_of(&self, id: SaId) -> Option<usize> {
        self.sas.iter().position(|s| s.id() == id)
    }

    fn find_sa(&self, h: &Header) -> Option<usize> {
        self.sas.iter().position(|s| {
            s.spi_i == h.spi_i
                && (s.spi_r == h.spi_r
                    || (s.spi_r == 0
                        && s.phase == Phase::Connecting
                        && h.exchange == exchange::IKE_SA_INIT))
        })
    }

    fn retransmit_span(&self) -> Duration {
        let mut d = Duration::ZERO;
        let mut step = self.cfg.retransmit_base;
        for _ in 0..=self.cfg.retransmit_tries {
            d += step;
            step = step.saturating_mul(2);
        }
        d
    }

    fn jitter(&self, max: Duration) -> Duration {
        let ms = max.as_millis().max(1) as u32;
        Duration::from_millis(u64::from(random_u32(&self.rng).unwrap_or(0) % ms))
    }

    /// (rekey, hard expiry) for a lifetime: the configured initiator rekeys at the
    /// lifetime, the responder 5% later, both give up at 110%.
    fn lifetimes(&self, now: Instant, life: Duration) -> (Instant, Instant) {
        let rekey = if self.cfg.initiator {
            life
        } else {
            life + life / 20
        };
        (now + rekey, now + life + life / 10)
    }

    fn esp_lifetime(&self) -> Lifetime {
        let mut l = Lifetime {
            hard_time: Some(self.cfg.child_lifetime + self.cfg.child_lifetime / 5),
            ..Lifetime::default()
        };
        if let Some(b) = self.cfg.child_lifetime_bytes {
            l.soft_bytes = b - b / 10;
            l.hard_bytes = b;
        }
        l
    }

    fn new_spi_in(&self) -> Result<u32, CryptoError> {
        loop {
            let s = random_u32(&self.rng)?;
            if s >= 256 && !self.children.iter().any(|c| c.spi_in == s) {
                return Ok(s);
            }
        }
    }

    fn new_ike_spi(&self) -> Result<u64, CryptoError> {
        loop {
            let s = random_u64(&self.rng)?;
            if s != 0 && !self.sas.iter().any(|x| x.spi_i == s || x.spi_r == s) {
                return Ok(s);
            }
        }
    }

    fn nonce(&self) -> Result<Vec<u8>, CryptoError> {
        let mut n = vec![0u8; NONCE_LEN];
        crypto::random(&self.rng, &mut n)?;
        Ok(n)
    }

    fn send(&mut self, d: Datagram) {
        self.events.push_back(Event::Send(d));
    }

    /// Every CHILD SA goes with the IKE SA it belonged to.
    fn children_down_with_ike(&mut self) {
        for c in self.take_children() {
            self.events.push_back(Event::ChildDown {
                spis: c.spis(),
                reason: ChildDownReason::IkeDown,
            });
        }
    }

    /// Tears the whole peer relationship down: CHILD SAs, every IKE SA; an initiator
    /// schedules a reconnect.
    fn down(&mut self, now: Instant, reason: DownReason, notify_peer: bool) {
        if notify_peer {
            if let Some(i) = self.current_idx() {
                if self.sas[i].keys.is_some() {
                    self.send_ike_delete(i);
                }
            }
        }
        self.children_down_with_ike();
        self.retain_sas(|s| s.phase == Phase::HalfOpen);
        self.set_current(None);
        self.timers.stop(Timer::Keepalive);
        self.esp_reset();
        self.up_since = None;
        self.last_down = Some(reason);
        log::info!("IKE with {} down: {reason:?}", self.cfg.remote_id);
        self.events.push_back(Event::IkeDown { reason });
        if self.cfg.initiator && !self.closing {
            if let Some(first) = self.cfg.reconnect {
                self.timers
                    .set(Timer::Reconnect, now + self.reconnect_delay);
                self.reconnect_delay = (self.reconnect_delay * 2)
                    .max(first)
                    .min(self.cfg.reconnect_max);
            }
        }
    }

    /// A connection attempt (not an established SA) failed.
    fn attempt_failed(&mut self, now: Instant, idx: usize, reason: DownReason) {
        self.remove_sa(idx);
        if self.current.is_none() {
            self.down(now, reason, false);
        } else {
            self.last_down = Some(reason);
        }
    }
}
