//! Every deadline of the machine in one [`TimerTable`], in the style of quinn-proto's
//! `connection/timers.rs`: a [`Timer`] names what a deadline is for (of the peer
//! relationship, of the current IKE SA, of one IKE SA by our SPI, of one CHILD SA by
//! our inbound SPI), and the table holds a timer exactly while it is armed.
//! [`Ike::poll_timeout`] is the earliest entry and [`Ike::on_timers`] handles the due
//! ones: retransmissions, reconnects, NAT keepalives, IKE SA and CHILD SA lifetimes
//! and rekeys, DPD, the check when ESP goes unanswered, and the end of half-open,
//! superseded and lingering SAs.
//!
//! A lone timer is set and stopped where its cause is (a reconnect scheduled in
//! `down`, the keepalive started in `establish`, a half-open SA's end in
//! `answer_init`). Changes that timers depend on go through the methods at the end of
//! this file, so none is forgotten: making an SA current, sending or settling a
//! request, hearing from the peer, moving a CHILD SA between states, removing SAs and
//! CHILD SAs.

use super::{Child, ChildState, Ike, Intent, Pending, Phase, Req, Sa, SaId};
use crate::ike::{ChildDownReason, DownReason, Event};
use std::time::Instant;

/// What a deadline in the [`TimerTable`] is for. SAs are named by our SPI (our
/// `spi_i` for an SA we initiated, our `spi_r` otherwise: unique and fixed for the
/// SA's life), CHILD SAs by our inbound SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Initiator: connect again after the IKE SA went down.
    Reconnect,
    /// A NAT keepalive on the current IKE SA.
    Keepalive,
    /// The outstanding request of this IKE SA: send it again, or give up on the peer.
    Retransmit(u64),
    /// This half-open IKE SA was never authenticated, or this superseded one never
    /// deleted by the peer: it goes.
    DropSa(u64),
    /// The current IKE SA's hard lifetime ends.
    IkeExpire,
    /// The current IKE SA is due for a rekey.
    IkeRekey,
    /// Nothing heard on the current IKE SA for the DPD interval, and no request out:
    /// a liveness check.
    Dpd,
    /// ESP went out and none came back for `esp_wait`: a liveness check (see
    /// `informational.rs`).
    EspSilence,
    /// A deadline of this CHILD SA.
    Child(u32, ChildTimer),
}

/// The deadlines of one CHILD SA, in the order they fire when due together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ChildTimer {
    /// A lingering SA (deleted on the wire after a rekey) is removed.
    Linger,
    /// The hard lifetime ends (any state but lingering).
    Expire,
    /// An active SA is due for a rekey.
    Rekey,
    /// The peer rekeyed this SA but has not deleted it a retransmission span later:
    /// send on the replacement anyway.
    Switch,
}

impl Timer {
    const LAST_PASS: u8 = 8;

    /// The pass of [`Ike::on_timers`] that handles it: passes run in this order,
    /// which is the order the protocol needs (a retransmission before the SA is
    /// dropped, the IKE SA's expiry before its rekey and DPD).
    fn pass(self) -> u8 {
        match self {
            Timer::Reconnect => 0,
            Timer::Keepalive => 1,
            Timer::Retransmit(_) => 2,
            Timer::DropSa(_) => 3,
            Timer::IkeExpire => 4,
            Timer::IkeRekey => 5,
            Timer::Dpd => 6,
            Timer::EspSilence => 7,
            Timer::Child(..) => 8,
        }
    }
}

/// Every deadline of one peer's IKE, in the style of quinn-proto's `TimerTable`: a
/// timer is in the table exactly while it is armed, so [`Ike::poll_timeout`] is the
/// earliest entry and [`Ike::on_timers`] handles the entries that are due.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    /// At most one entry per timer; a few dozen at most (half-open SAs are bounded).
    entries: Vec<(Timer, Instant)>,
}

impl TimerTable {
    /// Arms `timer` for `at` (re-arms it if it was armed).
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        match self.entries.iter_mut().find(|(t, _)| *t == timer) {
            Some(e) => e.1 = at,
            None => self.entries.push((timer, at)),
        }
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.entries.retain(|(t, _)| *t != timer);
    }

    /// Stops every timer `f` selects.
    pub(super) fn stop_all(&mut self, f: impl Fn(Timer) -> bool) {
        self.entries.retain(|(t, _)| !f(*t));
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.entries
            .iter()
            .find_map(|(t, at)| (*t == timer).then_some(*at))
    }

    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.entries.iter().map(|(_, at)| *at).min()
    }

    /// The timers due at `now`.
    pub(super) fn expired(&self, now: Instant) -> impl Iterator<Item = Timer> + '_ {
        self.entries
            .iter()
            .filter(move |(_, at)| *at <= now)
            .map(|(t, _)| *t)
    }
}

impl Ike {
    /// Handles every timer that is due, pass by pass in [`Timer::pass`] order; within a
    /// pass SAs and CHILD SAs go in list order (a CHILD SA's timers in
    /// [`ChildTimer`] order). A pass takes the timers due when it starts and skips any
    /// that an earlier handler stopped or moved; one a handler arms for a pass already
    /// done waits for the next call.
    pub(super) fn on_timers(&mut self, now: Instant) {
        for pass in 0..=Timer::LAST_PASS {
            let mut due: Vec<Timer> = self
                .timers
                .expired(now)
                .filter(|t| t.pass() == pass)
                .collect();
            due.sort_by_key(|&t| self.list_order(t));
            for t in due {
                if self.timers.is_expired(t, now) {
                    self.fire(t, now);
                }
            }
        }
        self.kick_all(now);
    }

    /// Where the SA or CHILD SA a timer belongs to is in its list.
    fn list_order(&self, t: Timer) -> (usize, Option<ChildTimer>) {
        match t {
            Timer::Retransmit(spi) | Timer::DropSa(spi) => (self.sa_by_spi(spi).unwrap_or(0), None),
            Timer::Child(spi, kind) => (self.child_by_spi(spi).unwrap_or(0), Some(kind)),
            _ => (0, None),
        }
    }

    fn sa_by_spi(&self, spi: u64) -> Option<usize> {
        self.sas.iter().position(|s| s.spi() == spi)
    }

    fn child_by_spi(&self, spi_in: u32) -> Option<usize> {
        self.children.iter().position(|c| c.spi_in == spi_in)
    }

    fn fire(&mut self, t: Timer, now: Instant) {
        match t {
            Timer::Reconnect => {
                self.timers.stop(Timer::Reconnect);
                self.connect(now);
            }
            Timer::Keepalive => self.send_keepalive(now),
            Timer::Retransmit(spi) => {
                if let Some(i) = self.sa_by_spi(spi) {
                    self.retransmit(i, now);
                }
            }
            Timer::DropSa(spi) => {
                if let Some(i) = self.sa_by_spi(spi) {
                    self.remove_sa(i);
                }
            }
            Timer::IkeExpire => {
                log::warn!("IKE: IKE SA with {} expired", self.cfg.remote_id);
                self.down(now, DownReason::Expired, true);
            }
            Timer::IkeRekey => {
                self.timers.stop(Timer::IkeRekey);
                if let Some(i) = self.current_idx() {
                    self.sas[i].push_intent(Intent::RekeyIke {
                        retries: 0,
                        group: None,
                    });
                }
            }
            Timer::Dpd => {
                // Not while other requests wait: their answers show the peer is alive.
                if let Some(i) = self.current_idx() {
                    let sa = &mut self.sas[i];
                    if sa.pending.is_none() && sa.intents.is_empty() {
                        sa.push_intent(Intent::Dpd);
                    }
                }
            }
            Timer::EspSilence => self.esp_silent(now),
            Timer::Child(spi, kind) => {
                let Some(ci) = self.child_by_spi(spi) else {
                    return;
                };
                match kind {
                    ChildTimer::Linger => {
                        let spis = self.remove_child(ci).spis();
                        self.events.push_back(Event::ChildDown {
                            spis,
                            reason: ChildDownReason::Rekeyed,
                        });
                    }
                    ChildTimer::Expire => self.expire_child(ci, now),
                    ChildTimer::Rekey => self.queue_child_rekey(spi),
                    ChildTimer::Switch => self.switch_to_replacement(ci),
                }
            }
        }
    }

    /// A NAT keepalive on the current IKE SA, and the next one an interval later.
    fn send_keepalive(&mut self, now: Instant) {
        let (Some(i), Some(t)) = (self.current_idx(), self.timers.get(Timer::Keepalive)) else {
            return;
        };
        let sa = &self.sas[i];
        let ev = Event::Keepalive {
            local: sa.local,
            remote: sa.remote,
        };
        self.events.push_back(ev);
        let mut next = t + self.cfg.keepalive;
        if next <= now {
            next = now + self.cfg.keepalive;
        }
        self.timers.set(Timer::Keepalive, next);
    }

    /// Sends the outstanding request of IKE SA `idx` again (each wait twice the one
    /// before), or ends the SA: a refused IKE_SA_INIT, or no answer after
    /// `retransmit_tries` retransmissions.
    fn retransmit(&mut self, idx: usize, now: Instant) {
        let sa = &self.sas[idx];
        let refused = sa
            .hs
            .as_deref()
            .and_then(|h| h.error)
            .filter(|_| sa.phase == Phase::Connecting);
        if let Some(reason) = refused {
            log::info!(
                "IKE: {} refused IKE_SA_INIT: {reason:?}",
                self.cfg.remote_id
            );
            self.attempt_failed(now, idx, reason);
            return;
        }
        let base = self.cfg.retransmit_base;
        let tries = self.cfg.retransmit_tries;
        let sa = &mut self.sas[idx];
        let spi = sa.spi();
        let Some(p) = sa.pending.as_mut() else {
            return;
        };
        if p.sent > tries {
            self.peer_silent(now, idx);
            return;
        }
        let step = base.saturating_mul(1 << p.sent.min(16));
        p.sent += 1;
        let data = p.data.clone();
        self.timers.set(Timer::Retransmit(spi), now + step);
        let d = sa.datagram(data);
        self.send(d);
    }

    /// The peer never answered the request of IKE SA `idx`.
    fn peer_silent(&mut self, now: Instant, idx: usize) {
        let sa = &self.sas[idx];
        let dpd = matches!(sa.pending, Some(Pending { req: Req::Dpd, .. }));
        let (id, phase) = (sa.id(), sa.phase);
        log::info!("IKE: {} does not answer", self.cfg.remote_id);
        if phase == Phase::Connecting {
            self.attempt_failed(now, idx, DownReason::RetransmitExhausted);
        } else if Some(id) == self.current {
            let reason = if dpd {
                DownReason::DpdTimeout
            } else if phase == Phase::Deleting {
                DownReason::Closed
            } else {
                DownReason::RetransmitExhausted
            };
            self.down(now, reason, false);
        } else {
            self.remove_sa(idx);
        }
    }
}

/// Keeping the table in step with the state: the changes that timers depend on go
/// through these.
impl Ike {
    /// Makes `id` the current IKE SA (or none). The current SA, while established,
    /// has rekey and expiry timers (from when it was established) and DPD.
    pub(super) fn set_current(&mut self, id: Option<SaId>) {
        self.current = id;
        self.timers.stop(Timer::IkeRekey);
        self.timers.stop(Timer::IkeExpire);
        let established = self
            .current_idx()
            .map(|i| &self.sas[i])
            .filter(|sa| sa.phase == Phase::Established)
            .and_then(|sa| sa.established);
        if let Some(t) = established {
            let (rekey, expire) = self.lifetimes(t, self.cfg.ike_lifetime);
            self.timers.set(Timer::IkeRekey, rekey);
            self.timers.set(Timer::IkeExpire, expire);
        }
        self.rearm_dpd();
    }

    /// The current IKE SA is being deleted: no more rekey, expiry or DPD.
    pub(super) fn current_deleting(&mut self, idx: usize) {
        self.sas[idx].phase = Phase::Deleting;
        self.timers.stop(Timer::IkeRekey);
        self.timers.stop(Timer::IkeExpire);
        self.rearm_dpd();
    }

    /// Moves the rekey of IKE SA `idx` to `at`, if it is the current, established SA
    /// (only that one rekeys).
    pub(super) fn set_ike_rekey(&mut self, idx: usize, at: Instant) {
        if Some(self.sas[idx].id()) == self.current && self.sas[idx].phase == Phase::Established {
            self.timers.set(Timer::IkeRekey, at);
        }
    }

    /// DPD runs while the current SA is established and has no request out: it is due
    /// `dpd` after the SA last heard from the peer. Called after anything that changes
    /// one of these.
    pub(super) fn rearm_dpd(&mut self) {
        let dpd = self.cfg.dpd;
        let at = self
            .current_idx()
            .map(|i| &self.sas[i])
            .filter(|sa| sa.phase == Phase::Established && sa.pending.is_none())
            .filter(|_| !dpd.is_zero())
            .map(|sa| sa.last_rx + dpd);
        match at {
            Some(at) => self.timers.set(Timer::Dpd, at),
            None => self.timers.stop(Timer::Dpd),
        }
    }

    /// IKE SA `idx` heard from the peer.
    pub(super) fn heard(&mut self, idx: usize, now: Instant) {
        self.sas[idx].last_rx = now;
        self.rearm_dpd();
    }

    /// A request of IKE SA `idx` goes out (first transmission now, the next at `next`).
    pub(super) fn set_pending(&mut self, idx: usize, p: Pending, next: Instant) {
        let sa = &mut self.sas[idx];
        self.timers.set(Timer::Retransmit(sa.spi()), next);
        sa.pending = Some(p);
        self.rearm_dpd();
    }

    /// The request of IKE SA `idx` is answered or abandoned.
    pub(super) fn take_pending(&mut self, idx: usize) -> Option<Pending> {
        let sa = &mut self.sas[idx];
        self.timers.stop(Timer::Retransmit(sa.spi()));
        let p = sa.pending.take();
        self.rearm_dpd();
        p
    }

    /// IKE SA `idx` is replaced by a rekey: the peer deletes it, or it goes a
    /// retransmission span from `now`.
    pub(super) fn supersede(&mut self, idx: usize, now: Instant) {
        let at = now + self.retransmit_span();
        self.sas[idx].phase = Phase::Superseded;
        self.timers.set(Timer::DropSa(self.sas[idx].spi()), at);
    }

    pub(super) fn remove_sa(&mut self, idx: usize) -> Sa {
        let sa = self.sas.remove(idx);
        let spi = sa.spi();
        self.timers
            .stop_all(|t| matches!(t, Timer::Retransmit(s) | Timer::DropSa(s) if s == spi));
        sa
    }

    /// Keeps the IKE SAs `keep` selects.
    pub(super) fn retain_sas(&mut self, keep: impl Fn(&Sa) -> bool) {
        let mut i = 0;
        while i < self.sas.len() {
            if keep(&self.sas[i]) {
                i += 1;
            } else {
                self.remove_sa(i);
            }
        }
    }

    /// A new CHILD SA: it rekeys and expires by its lifetime from when it was made.
    pub(super) fn push_child(&mut self, c: Child) {
        let (rekey, expire) = self.lifetimes(c.created, self.cfg.child_lifetime);
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Rekey), rekey);
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Expire), expire);
        self.children.push(c);
    }

    pub(super) fn remove_child(&mut self, ci: usize) -> Child {
        let c = self.children.remove(ci);
        let spi = c.spi_in;
        self.timers
            .stop_all(|t| matches!(t, Timer::Child(s, _) if s == spi));
        c
    }

    /// Every CHILD SA goes (with the IKE SA).
    pub(super) fn take_children(&mut self) -> Vec<Child> {
        self.timers.stop_all(|t| matches!(t, Timer::Child(..)));
        std::mem::take(&mut self.children)
    }

    /// Moves CHILD SA `ci` to `state` (not `Linger`: see [`Ike::linger`]). Only an
    /// active SA has a rekey timer; a superseded one that knows its replacement
    /// switches to it a retransmission span from `now`; one that stops lingering
    /// expires by its lifetime again.
    pub(super) fn set_child_state(&mut self, ci: usize, state: ChildState, now: Instant) {
        let span = self.retransmit_span();
        let (_, expire) = self.lifetimes(self.children[ci].created, self.cfg.child_lifetime);
        let c = &mut self.children[ci];
        let timer = |k| Timer::Child(c.spi_in, k);
        if matches!(c.state, ChildState::Linger) && !matches!(state, ChildState::Linger) {
            self.timers.stop(timer(ChildTimer::Linger));
            self.timers.set(timer(ChildTimer::Expire), expire);
        }
        if state != ChildState::Active {
            self.timers.stop(timer(ChildTimer::Rekey));
        }
        if state == ChildState::Superseded && c.replaced_by.is_some() {
            self.timers.set(timer(ChildTimer::Switch), now + span);
        } else {
            self.timers.stop(timer(ChildTimer::Switch));
        }
        c.state = state;
    }

    /// CHILD SA `ci` is deleted on the wire after a rekey: its inbound SA stays for
    /// `rekey_linger` from `now` for packets in flight, then it goes.
    pub(super) fn linger(&mut self, ci: usize, now: Instant) {
        let c = &mut self.children[ci];
        let at = now + self.cfg.rekey_linger;
        c.state = ChildState::Linger;
        for k in [ChildTimer::Expire, ChildTimer::Rekey, ChildTimer::Switch] {
            self.timers.stop(Timer::Child(c.spi_in, k));
        }
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Linger), at);
    }

    /// Moves the rekey of CHILD SA `ci` (an active one) to `at`.
    pub(super) fn set_child_rekey(&mut self, ci: usize, at: Instant) {
        let c = &mut self.children[ci];
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Rekey), at);
    }

    /// CHILD SA `ci` sends on its replacement now: no more switch timer.
    pub(super) fn switched(&mut self, ci: usize) {
        let c = &mut self.children[ci];
        self.timers.stop(Timer::Child(c.spi_in, ChildTimer::Switch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::IkeConfig;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn set_rearms_and_stop_disarms() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.get(Timer::Dpd), None);
        t.set(Timer::Dpd, now + 5 * MS);
        t.set(Timer::Dpd, now + 3 * MS);
        assert_eq!(t.get(Timer::Dpd), Some(now + 3 * MS));
        assert_eq!(t.entries.len(), 1);
        t.stop(Timer::Dpd);
        assert_eq!(t.get(Timer::Dpd), None);
        assert_eq!(t.next_expiry(), None);
        // Stopping a timer that is not armed is fine.
        t.stop(Timer::Dpd);
    }

    #[test]
    fn next_expiry_is_the_earliest_and_expired_includes_now() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::IkeRekey, now + 10 * MS);
        t.set(Timer::Retransmit(7), now + 2 * MS);
        t.set(Timer::Child(300, ChildTimer::Expire), now + 4 * MS);
        assert_eq!(t.next_expiry(), Some(now + 2 * MS));
        assert_eq!(t.expired(now + MS).count(), 0);
        assert!(!t.is_expired(Timer::Retransmit(7), now + MS));
        assert!(t.is_expired(Timer::Retransmit(7), now + 2 * MS));
        let mut due: Vec<Timer> = t.expired(now + 4 * MS).collect();
        due.sort();
        assert_eq!(
            due,
            [Timer::Retransmit(7), Timer::Child(300, ChildTimer::Expire)]
        );
        t.stop(Timer::Retransmit(7));
        assert_eq!(t.next_expiry(), Some(now + 4 * MS));
    }

    #[test]
    fn stop_all_stops_only_what_it_selects() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::Retransmit(1), now);
        t.set(Timer::DropSa(1), now);
        t.set(Timer::Retransmit(2), now);
        t.set(Timer::Child(300, ChildTimer::Rekey), now);
        t.set(Timer::Child(301, ChildTimer::Rekey), now);
        t.stop_all(|x| matches!(x, Timer::Retransmit(s) | Timer::DropSa(s) if s == 1));
        t.stop_all(|x| matches!(x, Timer::Child(s, _) if s == 300));
        let mut left: Vec<Timer> = t.entries.iter().map(|e| e.0).collect();
        left.sort();
        assert_eq!(
            left,
            [Timer::Retransmit(2), Timer::Child(301, ChildTimer::Rekey)]
        );
    }

    #[test]
    fn passes_run_in_the_order_of_the_kinds() {
        let kinds = [
            Timer::Reconnect,
            Timer::Keepalive,
            Timer::Retransmit(9),
            Timer::DropSa(9),
            Timer::IkeExpire,
            Timer::IkeRekey,
            Timer::Dpd,
            Timer::EspSilence,
            Timer::Child(300, ChildTimer::Linger),
        ];
        for (i, k) in kinds.iter().enumerate() {
            assert_eq!(usize::from(k.pass()), i, "{k:?}");
        }
        assert_eq!(kinds.last().map(|k| k.pass()), Some(Timer::LAST_PASS));
        assert!(ChildTimer::Linger < ChildTimer::Expire);
        assert!(ChildTimer::Expire < ChildTimer::Rekey);
        assert!(ChildTimer::Rekey < ChildTimer::Switch);
    }

    /// An initiator whose IKE_SA_INIT is never answered: nothing happens before
    /// poll_timeout, the retransmission (then the give-up) happens at it, and the
    /// waits double.
    #[test]
    fn retransmissions_happen_at_poll_timeout() {
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4500);
        let b = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 4500);
        let mut cfg = IkeConfig::new(true, "a.example", "b.example", b"swordfish", a, b);
        cfg.retransmit_base = 500 * MS;
        cfg.retransmit_tries = 2;
        cfg.reconnect = None;
        let start = Instant::now();
        let mut ike = Ike::new(cfg, start);
        assert_eq!(ike.poll_timeout(), None);
        ike.connect(start);
        let drain = |ike: &mut Ike, now: Instant| {
            std::iter::from_fn(|| ike.poll(now)).collect::<Vec<Event>>()
        };
        let first = drain(&mut ike, start);
        assert!(matches!(first.as_slice(), [Event::Send(_)]));
        let mut at = start;
        for wait in [500, 1000] {
            let due = ike.poll_timeout();
            assert_eq!(due, Some(at + wait * MS));
            at += wait * MS;
            assert!(drain(&mut ike, at - MS).is_empty());
            assert_eq!(drain(&mut ike, at), first);
        }
        let due = ike.poll_timeout();
        assert_eq!(due, Some(at + 2000 * MS));
        let last = drain(&mut ike, at + 2000 * MS);
        assert_eq!(
            last,
            [Event::IkeDown {
                reason: DownReason::RetransmitExhausted
            }]
        );
        assert_eq!(ike.poll_timeout(), None);
    }
}
