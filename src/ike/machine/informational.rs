//! INFORMATIONAL: liveness checks (DPD, and when ESP goes unanswered), deletes of
//! CHILD SAs and of IKE SAs, in both roles.
//!
//! DPD runs `dpd` after the peer was last heard on IKE. ESP is watched too, from the
//! facts the shell reports: ESP that keeps going out with none coming back for
//! `esp_silence` starts a check at once (the last packets of a conversation, with
//! nothing sent after them, are not enough). That is how a NAT in front of us that
//! changed its mapping shows (a conntrack flush, a new outside address): our packets
//! reach the peer from the new mapping, the peer's go to the old one and are lost.
//! The check goes out from the new mapping, and a peer not behind a NAT moves to the
//! address of an authenticated request (§2.23), so the tunnel works again a round
//! trip later. If the peer does not answer, the check fails as DPD does. When the
//! peer answers and ESP still only goes one way (a one-way stream), each further
//! check waits twice as long, up to `dpd`; ESP received starts over.

use super::payloads::{delete_ike, find_notify};
use super::window::After;
use super::{ChildState, Ike, Intent, Phase, Req, Timer};
use crate::ike::{ChildDownReason, DownReason, Event};
use crate::wire::ike::{exchange, notify, protocol, Delete, Payload};
use std::time::Instant;

/// Liveness from ESP.
impl Ike {
    /// ESP went out: the first since ESP last came in starts the unanswered stretch,
    /// and its check is due `esp_wait` later. Only while the current IKE SA is
    /// established.
    pub(super) fn on_esp_sent(&mut self, now: Instant) {
        let established = self
            .current_idx()
            .is_some_and(|i| self.sas[i].phase == Phase::Established);
        if !established || self.cfg.esp_silence.is_zero() {
            return;
        }
        self.esp_last_sent = now;
        if self.esp_unanswered.is_none() {
            self.esp_unanswered = Some(now);
            self.timers.set(Timer::EspSilence, now + self.esp_wait);
        }
    }

    /// ESP came in: nothing is unanswered, and the next stretch gets the full
    /// `esp_silence` again.
    pub(super) fn on_esp_received(&mut self, _now: Instant) {
        self.esp_reset();
    }

    pub(super) fn esp_reset(&mut self) {
        self.esp_unanswered = None;
        self.esp_wait = self.cfg.esp_silence;
        self.esp_checks = 0;
        self.timers.stop(Timer::EspSilence);
    }

    /// [`Timer::EspSilence`]: `esp_wait` since ESP went out unanswered. If ESP kept
    /// going out (some in the second half of the stretch), a liveness check, unless a
    /// request is already out (its retransmissions are one); the next check waits
    /// twice as long. If not, the stretch was only the last packets of a conversation
    /// (someone sends last) and needs no check. Either way the next stretch starts
    /// with the next ESP sent.
    pub(super) fn esp_silent(&mut self, now: Instant) {
        self.timers.stop(Timer::EspSilence);
        let Some(since) = self.esp_unanswered.take() else {
            return;
        };
        if self.esp_last_sent < since + self.esp_wait / 2 {
            return;
        }
        let Some(i) = self.current_idx() else {
            return;
        };
        let sa = &mut self.sas[i];
        if sa.phase != Phase::Established || sa.pending.is_some() || !sa.intents.is_empty() {
            return;
        }
        sa.push_intent(Intent::Dpd);
        let waited = now.saturating_duration_since(since);
        self.esp_checks = self.esp_checks.saturating_add(1);
        if self.esp_checks == 1 {
            log::info!(
                "IKE: no ESP from {} for {waited:?} while sending: checking liveness",
                self.cfg.remote_id
            );
        } else {
            log::debug!(
                "IKE: ESP to {} still one-way after {waited:?}: checking liveness",
                self.cfg.remote_id
            );
        }
        let cap = self.cfg.dpd.max(self.cfg.esp_silence);
        self.esp_wait = self.esp_wait.saturating_mul(2).min(cap);
    }
}

impl Ike {
    /// INFORMATIONAL as responder: deletes, an error notice, or a liveness check
    /// (empty, answered empty).
    pub(super) fn on_informational(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
    ) -> (Vec<Payload>, After) {
        let is_current = Some(self.sas[idx].id()) == self.current;
        if p.iter().any(|x| {
            matches!(
                x,
                Payload::Delete(Delete {
                    protocol: protocol::IKE,
                    ..
                })
            )
        }) {
            return if is_current && self.sas[idx].phase != Phase::Deleting {
                log::info!("IKE: {} deleted the IKE SA", self.cfg.remote_id);
                (Vec::new(), After::Down(DownReason::PeerDeleted))
            } else if is_current {
                // Our own DELETE crossed theirs.
                (Vec::new(), After::Down(DownReason::Closed))
            } else {
                (Vec::new(), After::Remove)
            };
        }
        if is_current && find_notify(p, notify::AUTHENTICATION_FAILED).is_some() {
            return (Vec::new(), After::Down(DownReason::AuthFailed));
        }
        let mut ours = Vec::new();
        for x in p {
            let Payload::Delete(Delete {
                protocol: protocol::ESP,
                spis,
            }) = x
            else {
                continue;
            };
            for &spi in spis {
                if let Some(ci) = self.children.iter().position(|c| c.spi_out == spi) {
                    self.on_child_delete(now, idx, ci, is_current, &mut ours);
                }
            }
        }
        let resp = if ours.is_empty() {
            Vec::new()
        } else {
            vec![Payload::Delete(Delete {
                protocol: protocol::ESP,
                spis: ours,
            })]
        };
        (resp, After::Nothing)
    }

    /// The peer deletes CHILD SA `ci` (on SA `idx`): we list our SPI in the answer
    /// unless our own DELETE for it is out. A rekeyed SA lingers for packets in flight.
    fn on_child_delete(
        &mut self,
        now: Instant,
        idx: usize,
        ci: usize,
        is_current: bool,
        ours: &mut Vec<u32>,
    ) {
        self.switch_to_replacement(ci);
        let c = &mut self.children[ci];
        match c.state {
            // Crossed DELETEs: ours is already out, so do not list it again.
            ChildState::Deleting | ChildState::Linger => {}
            _ => ours.push(c.spi_in),
        }
        if c.rekeyed {
            if !matches!(c.state, ChildState::Linger) {
                self.linger(ci, now);
            }
            return;
        }
        let spis = c.spis();
        self.remove_child(ci);
        log::info!(
            "IKE: {} deleted CHILD SA {:08x}",
            self.cfg.remote_id,
            spis.outbound
        );
        self.events.push_back(Event::ChildDown {
            spis,
            reason: ChildDownReason::PeerDeleted,
        });
        // The configured initiator wants a tunnel: ask for a fresh one.
        let others = self
            .children
            .iter()
            .any(|c| matches!(c.state, ChildState::Active | ChildState::Rekeying));
        if self.cfg.initiator && !others && is_current {
            self.sas[idx].push_intent(Intent::CreateChild {
                retries: 0,
                group: None,
            });
        }
    }

    /// Sends a DELETE for these CHILD SAs (our inbound SPIs); false if none is left to
    /// delete.
    pub(super) fn start_delete_children(
        &mut self,
        idx: usize,
        now: Instant,
        spis: Vec<u32>,
    ) -> bool {
        // SAs already deleted on the wire are skipped; ones already removed here (hard
        // expiry) are still announced.
        let spis: Vec<u32> = spis
            .into_iter()
            .filter(|s| {
                !self
                    .children
                    .iter()
                    .any(|c| c.spi_in == *s && matches!(c.state, ChildState::Linger))
            })
            .collect();
        if spis.is_empty() {
            return false;
        }
        for ci in 0..self.children.len() {
            if spis.contains(&self.children[ci].spi_in) {
                self.set_child_state(ci, ChildState::Deleting, now);
            }
        }
        let d = Payload::Delete(Delete {
            protocol: protocol::ESP,
            spis: spis.clone(),
        });
        let req = Req::DeleteChildren(spis);
        self.send_request(idx, now, exchange::INFORMATIONAL, &[d], req);
        true
    }

    /// The peer confirmed our DELETE for these CHILD SAs: they go (rekeyed ones after
    /// lingering).
    pub(super) fn on_children_deleted(&mut self, now: Instant, spis: Vec<u32>) {
        for spi in spis {
            if let Some(ci) = self.children.iter().position(|c| c.spi_in == spi) {
                let c = &self.children[ci];
                if c.rekeyed {
                    self.linger(ci, now);
                } else {
                    let spis = c.spis();
                    self.remove_child(ci);
                    self.events.push_back(Event::ChildDown {
                        spis,
                        reason: ChildDownReason::Closed,
                    });
                }
            }
        }
    }

    /// The peer confirmed our DELETE for IKE SA `idx`.
    pub(super) fn on_ike_deleted(&mut self, now: Instant, idx: usize) {
        if Some(self.sas[idx].id()) == self.current {
            self.down(now, DownReason::Closed, false);
        } else {
            self.remove_sa(idx);
        }
    }

    /// Tells the peer, without waiting for an answer, that IKE SA `idx` is gone.
    pub(super) fn send_ike_delete(&mut self, idx: usize) {
        self.send_oneshot(idx, exchange::INFORMATIONAL, &[delete_ike()]);
    }
}
