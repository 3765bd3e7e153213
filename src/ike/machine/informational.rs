//! INFORMATIONAL: liveness checks (DPD), deletes of CHILD SAs and of IKE SAs, in both
//! roles.

use super::payloads::{delete_ike, find_notify};
use super::window::After;
use super::{ChildState, Ike, Intent, Phase, Req};
use crate::ike::{ChildDownReason, DownReason, Event};
use crate::wire::ike::{exchange, notify, protocol, Delete, Payload};
use std::time::Instant;

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
