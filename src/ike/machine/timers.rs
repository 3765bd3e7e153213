//! Timers: retransmissions, lifetimes, rekeys, DPD, keepalives and reconnects.

use super::*;

impl Ike {
    pub(super) fn on_timers(&mut self, now: Instant) {
        if self.reconnect_at.is_some_and(|t| now >= t) {
            self.reconnect_at = None;
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
                    self.sas.remove(i);
                }
                i = 0;
                continue;
            }
            let step = self.cfg.retransmit_base.saturating_mul(1 << p.sent.min(16));
            p.sent += 1;
            p.next = now + step;
            let data = p.data.clone();
            let d = self.sas[i].datagram(data);
            self.send(d);
            i += 1;
        }
        // SA lifetimes.
        let span = self.retransmit_span();
        self.sas.retain(|s| match s.phase {
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
                    self.children.remove(ci);
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
    }
}
