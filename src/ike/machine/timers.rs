//! Timers: retransmissions, lifetimes, rekeys, DPD, keepalives and reconnects.

use super::*;

/// What a deadline in the [`TimerTable`] is for. SAs are named by our SPI (our
/// `spi_i` for an SA we initiated, our `spi_r` otherwise: unique and fixed for the
/// SA's life), CHILD SAs by our inbound SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// Initiator: connect again after the IKE SA went down.
    Reconnect,
    /// A NAT keepalive on the current IKE SA.
    Keepalive,
    /// The outstanding request of this IKE SA: send it again, or give up on the peer.
    Retransmit(u64),
    /// This half-open IKE SA was never authenticated, or this superseded one never
    /// deleted by the peer: it goes.
    Drop(u64),
    /// The current IKE SA's hard lifetime ends.
    IkeExpire,
    /// The current IKE SA is due for a rekey.
    IkeRekey,
    /// Nothing heard on the current IKE SA for the DPD interval, and no request out:
    /// a liveness check.
    Dpd,
    /// A deadline of this CHILD SA.
    Child(u32, ChildTimer),
}

/// The deadlines of one CHILD SA, in the order they fire when due together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

#[allow(dead_code)] // Read by on_timers in the next step.
impl Timer {
    /// The pass of [`Ike::on_timers`] that handles it: passes run in this order,
    /// which is the order the protocol needs (a retransmission before the SA is
    /// dropped, the IKE SA's expiry before its rekey and DPD).
    fn pass(self) -> u8 {
        match self {
            Timer::Reconnect => 0,
            Timer::Keepalive => 1,
            Timer::Retransmit(_) => 2,
            Timer::Drop(_) => 3,
            Timer::IkeExpire => 4,
            Timer::IkeRekey => 5,
            Timer::Dpd => 6,
            Timer::Child(..) => 7,
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

#[allow(dead_code)] // Read by on_timers in the next step.
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

    #[cfg(test)]
    pub(super) fn sorted(&self) -> Vec<(Timer, Instant)> {
        let mut v = self.entries.clone();
        v.sort();
        v
    }
}

impl Ike {
    #[cfg(debug_assertions)]
    pub(super) fn shadow_check(&self, at: &str) {
        let mut v = Vec::new();
        if let Some(t) = self.reconnect_at {
            v.push((Timer::Reconnect, t));
        }
        if let Some(t) = self.keepalive_at {
            v.push((Timer::Keepalive, t));
        }
        let span = self.retransmit_span();
        for sa in &self.sas {
            if let Some(p) = &sa.pending {
                v.push((Timer::Retransmit(sa.spi()), p.next));
            }
            match sa.phase {
                Phase::HalfOpen => v.push((Timer::Drop(sa.spi()), sa.created + span)),
                Phase::Superseded(d) => v.push((Timer::Drop(sa.spi()), d)),
                Phase::Established if Some(sa.id()) == self.current => {
                    if let Some(t) = sa.rekey_at {
                        v.push((Timer::IkeRekey, t));
                    }
                    if let Some(t) = sa.expire_at {
                        v.push((Timer::IkeExpire, t));
                    }
                    if sa.pending.is_none() && !self.cfg.dpd.is_zero() {
                        v.push((Timer::Dpd, sa.last_rx + self.cfg.dpd));
                    }
                }
                _ => {}
            }
        }
        for c in &self.children {
            let t = |k| Timer::Child(c.spi_in, k);
            if c.state == ChildState::Active {
                if let Some(x) = c.rekey_at {
                    v.push((t(ChildTimer::Rekey), x));
                }
            }
            if c.state == ChildState::Superseded && c.replaced_by.is_some() {
                if let Some(x) = c.superseded_at {
                    v.push((t(ChildTimer::Switch), x + span));
                }
            }
            match c.state {
                ChildState::Linger(u) => v.push((t(ChildTimer::Linger), u)),
                _ => v.push((t(ChildTimer::Expire), c.expire_at)),
            }
        }
        v.sort();
        let mut w = self.timers.entries.clone();
        w.sort();
        if v != w {
            eprintln!("SHADOW MISMATCH at {at}\n old {v:?}\n new {w:?}");
            panic!("shadow mismatch at {at}");
        }
    }

    pub(super) fn on_timers(&mut self, now: Instant) {
        #[cfg(debug_assertions)]
        self.shadow_check("on_timers start");
        if self.reconnect_at.is_some_and(|t| now >= t) {
            self.reconnect_at = None;
            self.timers.stop(Timer::Reconnect);
            self.connect(now);
        }
        if let (Some(t), Some(i)) = (self.keepalive_at, self.current_idx()) {
            if now >= t {
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
                self.keepalive_at = Some(next);
                self.timers.set(Timer::Keepalive, next);
            }
        }
        // Retransmissions and dead peers.
        let tries = self.cfg.retransmit_tries;
        let mut i = 0;
        while i < self.sas.len() {
            let Some(p) = self.sas[i].pending.as_mut() else {
                i += 1;
                continue;
            };
            if now < p.next {
                i += 1;
                continue;
            }
            let refused = self.sas[i]
                .hs
                .as_deref()
                .and_then(|h| h.error)
                .filter(|_| self.sas[i].phase == Phase::Connecting);
            if let Some(reason) = refused {
                log::info!(
                    "IKE: {} refused IKE_SA_INIT: {reason:?}",
                    self.cfg.remote_id
                );
                self.attempt_failed(now, i, reason);
                i = 0;
                continue;
            }
            let Some(p) = self.sas[i].pending.as_mut() else {
                i += 1;
                continue;
            };
            if p.sent > tries {
                let req_is_dpd = matches!(p.req, Req::Dpd);
                let sa_id = self.sas[i].id();
                let phase = self.sas[i].phase;
                log::info!("IKE: {} does not answer", self.cfg.remote_id);
                if phase == Phase::Connecting {
                    self.attempt_failed(now, i, DownReason::RetransmitExhausted);
                } else if Some(sa_id) == self.current {
                    let reason = if req_is_dpd {
                        DownReason::DpdTimeout
                    } else if phase == Phase::Deleting {
                        DownReason::Closed
                    } else {
                        DownReason::RetransmitExhausted
                    };
                    self.down(now, reason, false);
                } else {
                    self.remove_sa(i);
                }
                i = 0;
                continue;
            }
            let step = self.cfg.retransmit_base.saturating_mul(1 << p.sent.min(16));
            p.sent += 1;
            p.next = now + step;
            let data = p.data.clone();
            let spi = self.sas[i].spi();
            self.timers.set(Timer::Retransmit(spi), now + step);
            let d = self.sas[i].datagram(data);
            self.send(d);
            i += 1;
        }
        // SA lifetimes.
        let span = self.retransmit_span();
        self.retain_sas(|s| match s.phase {
            Phase::HalfOpen => now < s.created + span,
            Phase::Superseded(d) => now < d,
            _ => true,
        });
        if let Some(ci) = self.current_idx() {
            let sa = &mut self.sas[ci];
            if sa.phase == Phase::Established {
                if sa.expire_at.is_some_and(|t| now >= t) {
                    log::warn!("IKE: IKE SA with {} expired", self.cfg.remote_id);
                    self.down(now, DownReason::Expired, true);
                } else {
                    if sa.rekey_at.is_some_and(|t| now >= t) {
                        sa.rekey_at = None;
                        self.timers.stop(Timer::IkeRekey);
                        sa.push_intent(Intent::RekeyIke {
                            retries: 0,
                            group: None,
                        });
                    }
                    if !self.cfg.dpd.is_zero()
                        && sa.pending.is_none()
                        && sa.intents.is_empty()
                        && now >= sa.last_rx + self.cfg.dpd
                    {
                        sa.push_intent(Intent::Dpd);
                    }
                }
            }
        }
        // CHILD SA lifetimes.
        let mut ci = 0;
        while ci < self.children.len() {
            let c = &self.children[ci];
            match c.state {
                ChildState::Linger(u) if now >= u => {
                    let spis = c.spis();
                    self.remove_child(ci);
                    self.events.push_back(Event::ChildDown {
                        spis,
                        reason: ChildDownReason::Rekeyed,
                    });
                    continue;
                }
                ChildState::Linger(_) => {}
                _ if now >= c.expire_at => {
                    self.expire_child(ci, now);
                    continue;
                }
                ChildState::Active if c.rekey_at.is_some_and(|t| now >= t) => {
                    let s = c.spi_in;
                    self.queue_child_rekey(s);
                }
                ChildState::Superseded
                    if c.replaced_by.is_some()
                        && c.superseded_at.is_some_and(|t| now >= t + span) =>
                {
                    self.switch_to_replacement(ci);
                }
                _ => {}
            }
            ci += 1;
        }
        self.kick_all(now);
        #[cfg(debug_assertions)]
        self.shadow_check("on_timers end");
    }
}

/// Keeping the table in step with the state: every change that arms, moves or ends a
/// deadline goes through one of these.
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
        sa.pending = Some(Pending { next, ..p }); // OLD
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
        self.sas[idx].phase = Phase::Superseded(at); // OLD
        self.timers.set(Timer::Drop(self.sas[idx].spi()), at);
    }

    pub(super) fn remove_sa(&mut self, idx: usize) -> Sa {
        let sa = self.sas.remove(idx);
        let spi = sa.spi();
        self.timers
            .stop_all(|t| matches!(t, Timer::Retransmit(s) | Timer::Drop(s) if s == spi));
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
        if matches!(c.state, ChildState::Linger(_)) && !matches!(state, ChildState::Linger(_)) {
            self.timers.stop(timer(ChildTimer::Linger));
            self.timers.set(timer(ChildTimer::Expire), expire);
        }
        if state != ChildState::Active {
            self.timers.stop(timer(ChildTimer::Rekey));
            c.rekey_at = None; // OLD
        }
        if state == ChildState::Superseded && c.replaced_by.is_some() {
            self.timers.set(timer(ChildTimer::Switch), now + span);
            c.superseded_at = Some(now); // OLD
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
        c.state = ChildState::Linger(at); // OLD
        for k in [ChildTimer::Expire, ChildTimer::Rekey, ChildTimer::Switch] {
            self.timers.stop(Timer::Child(c.spi_in, k));
        }
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Linger), at);
    }

    /// Moves the rekey of CHILD SA `ci` (an active one) to `at`.
    pub(super) fn set_child_rekey(&mut self, ci: usize, at: Instant) {
        let c = &mut self.children[ci];
        c.rekey_at = Some(at); // OLD
        self.timers
            .set(Timer::Child(c.spi_in, ChildTimer::Rekey), at);
    }

    /// CHILD SA `ci` sends on its replacement now: no more switch timer.
    pub(super) fn switched(&mut self, ci: usize) {
        let c = &mut self.children[ci];
        self.timers.stop(Timer::Child(c.spi_in, ChildTimer::Switch));
    }
}
