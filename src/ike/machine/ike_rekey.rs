//! CREATE_CHILD_SA that rekeys the IKE SA, in both roles: the new SA's keys from the
//! old SA's SK_d (§2.18), the switch to it, and simultaneous rekeys (§2.8.2). The
//! dispatch of incoming CREATE_CHILD_SA requests is in `child.rs`.

use super::init::derive_sa_keys;
use super::payloads::{error_notify, find_notify, ke_payload, n, nonce_payload, sa_payload};
use super::{Ike, Intent, Pending, Phase, Req, Sa, SaId, MAX_CREATE_RETRIES};
use crate::ike::crypto::{prf, CryptoError, KeyShare};
use crate::ike::proposal::Choice;
use crate::ike::{crypto, proposal, Group};
use crate::wire::ike::{exchange, notify, Notify, Payload};
use std::time::Instant;

/// Established IKE SAs at once: current, replaced, redundant, being deleted.
const MAX_ESTABLISHED: usize = 4;

/// A CREATE_CHILD_SA request of ours that rekeys the IKE SA.
pub(super) struct IkeRekeyReq {
    /// Our SPI of the new SA.
    spi: u64,
    ni: Vec<u8>,
    share: KeyShare,
    /// The IKE SA the peer made by rekeying this one meanwhile (§2.8.2).
    collision: Option<SaId>,
    retries: u32,
}

impl Ike {
    /// Sends a CREATE_CHILD_SA that rekeys IKE SA `idx` (with `group`, or the SA's
    /// own); false if `idx` is no longer current.
    pub(super) fn start_ike_rekey(
        &mut self,
        idx: usize,
        now: Instant,
        retries: u32,
        group: Option<Group>,
    ) -> bool {
        if Some(self.sas[idx].id()) != self.current {
            return false;
        }
        let g = group.unwrap_or(self.sas[idx].group);
        let r = (|| -> Result<_, CryptoError> {
            Ok((
                KeyShare::new(g, &self.rng)?,
                self.nonce()?,
                self.new_ike_spi()?,
            ))
        })();
        let Ok((share, ni, spi)) = r else {
            return false;
        };
        let mut groups = vec![g];
        groups.extend(self.cfg.groups.iter().filter(|x| **x != g));
        let p = vec![
            Payload::Sa(vec![proposal::ike_offer(&groups, Some(spi))]),
            Payload::Nonce(ni.clone()),
            Payload::Ke {
                group: g.id(),
                data: share.public().to_vec(),
            },
        ];
        log::info!("IKE: rekeying the IKE SA with {}", self.cfg.remote_id);
        let req = Req::RekeyIke(IkeRekeyReq {
            spi,
            ni,
            share,
            collision: None,
            retries,
        });
        self.send_request(idx, now, exchange::CREATE_CHILD_SA, &p, req);
        true
    }

    /// The peer rekeys IKE SA `idx`; returns the response payloads.
    pub(super) fn on_ike_rekey_request(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        ni: &[u8],
        nr: Vec<u8>,
    ) -> Vec<Payload> {
        if self.sas[idx].has_pending_child_op() {
            return vec![n(notify::TEMPORARY_FAILURE)];
        }
        if self.sas.iter().filter(|s| s.established.is_some()).count() >= MAX_ESTABLISHED {
            return vec![n(notify::TEMPORARY_FAILURE)];
        }
        let Ok(our_spi) = self.new_ike_spi() else {
            return vec![n(notify::TEMPORARY_FAILURE)];
        };
        let ke = ke_payload(p);
        let Some(sa_p) = sa_payload(p) else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        let (reply, peer_spi, g) =
            match proposal::choose_ike(sa_p, &self.cfg.groups, ke.map(|k| k.0), Some(our_spi)) {
                Choice::Accept {
                    reply,
                    peer_spi,
                    group: Some(g),
                } => (reply, peer_spi, g),
                Choice::InvalidKe(g) => {
                    return vec![Payload::Notify(Notify::new(
                        notify::INVALID_KE_PAYLOAD,
                        g.id().to_be_bytes().to_vec(),
                    ))]
                }
                _ => return vec![n(notify::NO_PROPOSAL_CHOSEN)],
            };
        let Ok(peer_spi) = <[u8; 8]>::try_from(peer_spi.as_slice()).map(u64::from_be_bytes) else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        let Some((_, ke_data)) = ke else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        let Ok(share) = KeyShare::new(g, &self.rng) else {
            return vec![n(notify::TEMPORARY_FAILURE)];
        };
        let public = share.public().to_vec();
        let Ok(shared) = share.agree(ke_data) else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        // The peer started the exchange: it is the new SA's initiator.
        let Some(new) = self.rekeyed_sa(now, idx, g, &shared, ni, &nr, peer_spi, our_spi, false)
        else {
            return vec![n(notify::TEMPORARY_FAILURE)];
        };
        let new_id = new.id();
        let colliding = self.sas[idx].has_pending_ike_rekey();
        self.sas.push(new);
        if colliding {
            if let Some(Pending {
                req: Req::RekeyIke(r),
                ..
            }) = self.sas[idx].pending.as_mut()
            {
                r.collision = Some(new_id);
            }
        } else {
            self.switch_current(now, idx, new_id, false);
        }
        self.ike_rekeys += 1;
        log::info!("IKE: {} rekeyed the IKE SA", self.cfg.remote_id);
        vec![
            Payload::Sa(vec![reply]),
            Payload::Nonce(nr),
            Payload::Ke {
                group: g.id(),
                data: public,
            },
        ]
    }

    /// A new IKE SA from a rekey of `old`: SKEYSEED = prf(SK_d (old), g^ir (new) |
    /// Ni | Nr) (§2.18).
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(
        &self,
        now: Instant,
        old: usize,
        g: Group,
        shared: &crypto::SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        we_initiated: bool,
    ) -> Option<Sa> {
        let o = &self.sas[old];
        let sk_d = o.keys.as_ref()?.sk_d.expose();
        let skeyseed = prf(sk_d, &[shared.expose(), ni, nr]);
        let keys = derive_sa_keys(&skeyseed, ni, nr, spi_i, spi_r, we_initiated).ok()?;
        let phase = Phase::Established;
        Some(Sa {
            keys: Some(keys),
            established: Some(now),
            nonces: (ni.to_vec(), nr.to_vec()),
            nat_local: o.nat_local,
            nat_remote: o.nat_remote,
            ..Sa::new(spi_i, spi_r, we_initiated, phase, o.local, o.remote, g, now)
        })
    }

    /// Makes `new` current after a rekey of the SA at `old_idx`. `we_delete`: we
    /// started the surviving exchange and delete the old SA; otherwise the peer does.
    fn switch_current(&mut self, now: Instant, old_idx: usize, new: SaId, we_delete: bool) {
        let old = &mut self.sas[old_idx];
        // Queued CHILD SA work moves to the new SA; DPD is moot.
        let moved: Vec<Intent> = old
            .intents
            .drain(..)
            .filter(|i| !matches!(i, Intent::Dpd | Intent::RekeyIke { .. } | Intent::DeleteIke))
            .collect();
        if we_delete {
            old.phase = Phase::Deleting;
            old.push_intent(Intent::DeleteIke);
        } else {
            self.supersede(old_idx, now);
        }
        self.set_current(Some(new));
        if let Some(ni) = self.idx_of(new) {
            for i in moved {
                self.sas[ni].push_intent(i);
            }
        }
    }

    /// The answer to our rekey of IKE SA `idx`.
    pub(super) fn on_ike_rekey_response(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        r: IkeRekeyReq,
    ) {
        if let Some(e) = error_notify(p) {
            self.on_ike_rekey_refused(now, idx, p, r.retries, e);
            return;
        }
        let g = r.share.group();
        let peer_spi = sa_payload(p)
            .and_then(|s| proposal::check_ike_reply(s, g, true))
            .and_then(|s| <[u8; 8]>::try_from(s.as_slice()).ok())
            .map(u64::from_be_bytes)
            .filter(|&s| s != 0);
        let shared = match ke_payload(p) {
            Some((kg, data)) if kg == g.id() => r.share.agree(data).ok(),
            _ => None,
        };
        let (Some(peer_spi), Some(nr), Some(shared)) = (peer_spi, nonce_payload(p), shared) else {
            log::warn!(
                "IKE: unusable IKE SA rekey response from {}",
                self.cfg.remote_id
            );
            self.set_ike_rekey(idx, now + self.cfg.ike_lifetime / 20);
            return;
        };
        let ni = r.ni;
        let Some(new) = self.rekeyed_sa(now, idx, g, &shared, &ni, nr, r.spi, peer_spi, true)
        else {
            return;
        };
        let ours_min = ni.as_slice().min(nr).to_vec();
        let new_id = new.id();
        self.sas.push(new);
        self.ike_rekeys += 1;
        let theirs = r.collision.and_then(|c| self.idx_of(c).map(|i| (c, i)));
        match theirs {
            Some((their_id, ti)) => {
                let t = &self.sas[ti];
                let their_min = t.nonces.0.as_slice().min(t.nonces.1.as_slice());
                if ours_min.as_slice() < their_min {
                    log::info!("IKE: IKE SA rekey collision, ours is redundant");
                    // The peer's SA survives and the peer deletes the old one.
                    self.switch_current(now, idx, their_id, false);
                    if let Some(ni) = self.idx_of(new_id) {
                        self.sas[ni].phase = Phase::Deleting;
                        self.sas[ni].push_intent(Intent::DeleteIke);
                    }
                } else {
                    log::info!("IKE: IKE SA rekey collision, ours survives");
                    self.switch_current(now, idx, new_id, true);
                    self.supersede_theirs(now, their_id, new_id);
                }
            }
            None => self.switch_current(now, idx, new_id, true),
        }
        log::info!("IKE: rekeyed the IKE SA with {}", self.cfg.remote_id);
    }

    /// Our rekey of IKE SA `idx` was refused with error `e`: again with the group the
    /// peer wants, or after a short random wait.
    fn on_ike_rekey_refused(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        retries: u32,
        e: u16,
    ) {
        log::info!("IKE: {} refused the IKE SA rekey ({e})", self.cfg.remote_id);
        let group = if e == notify::INVALID_KE_PAYLOAD {
            find_notify(p, e)
                .and_then(|n| n.data.get(..2))
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(Group::from_id)
                .filter(|g| self.cfg.groups.contains(g))
        } else {
            None
        };
        if retries < MAX_CREATE_RETRIES {
            if group.is_some() {
                self.sas[idx].push_intent(Intent::RekeyIke {
                    retries: retries + 1,
                    group,
                });
            } else {
                let d = self.cfg.retransmit_base + self.jitter(self.cfg.retransmit_base * 2);
                self.set_ike_rekey(idx, now + d);
            }
        }
    }

    /// Our rekey won a collision (§2.8.2): the peer's new SA `theirs` is redundant and
    /// waits for the peer's DELETE; anything queued there moves to our `new` SA.
    fn supersede_theirs(&mut self, now: Instant, theirs: SaId, new: SaId) {
        let Some(ti) = self.idx_of(theirs) else {
            return;
        };
        self.supersede(ti, now);
        let moved: Vec<Intent> = self.sas[ti].intents.drain(..).collect();
        if let Some(ni) = self.idx_of(new) {
            for i in moved {
                self.sas[ni].push_intent(i);
            }
        }
    }
}
