//! INFORMATIONAL: liveness checks (DPD), deletes of CHILD SAs and of IKE SAs, in both
//! roles.

use super::*;

impl Ike {
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
                let Some(ci) = self.children.iter().position(|c| c.spi_out == spi) else {
                    continue;
                };
                self.switch_to_replacement(ci);
                let c = &mut self.children[ci];
                match c.state {
                    // Crossed DELETEs: ours is already out, so do not list it again.
                    ChildState::Deleting | ChildState::Linger(_) => {}
                    _ => ours.push(c.spi_in),
                }
                if c.rekeyed {
                    if !matches!(c.state, ChildState::Linger(_)) {
                        c.state = ChildState::Linger(now + self.cfg.rekey_linger);
                    }
                } else {
                    let spis = c.spis();
                    self.children.remove(ci);
                    log::info!("IKE: {} deleted CHILD SA {:08x}", self.cfg.remote_id, spi);
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

    /// Tells the peer, without waiting for an answer, that IKE SA `idx` is gone.
    pub(super) fn send_ike_delete(&mut self, idx: usize) {
        self.send_oneshot(idx, exchange::INFORMATIONAL, &[delete_ike()]);
    }
}
