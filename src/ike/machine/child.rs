//! CREATE_CHILD_SA for CHILD SAs in both roles: new CHILD SAs and CHILD SA rekeys
//! (optional PFS), simultaneous rekeys (§2.8.1), refusals and retries. The peer's
//! CREATE_CHILD_SA requests are dispatched here too; IKE SA rekeys are in
//! `ike_rekey.rs`.

use super::payloads::{
    error_notify, find_notify, ke_payload, n, n_esp, nonce_payload, sa_payload, tsi_payload,
    tsr_payload, v4s,
};
use super::timers::{ChildTimer, Timer};
use super::{Child, ChildState, Ike, Intent, Pending, Phase, Req, MAX_CREATE_RETRIES};
use crate::esp::{EspKeys, KeyMaterial, KEYMAT_LEN};
use crate::ike::crypto::{prf_plus, CryptoError, KeyShare};
use crate::ike::proposal::Choice;
use crate::ike::{crypto, proposal, ts, ChildDownReason, ChildSa, Event, Group};
use crate::wire::ike::{exchange, notify, protocol, Notify, Payload, Proposal, TsV4};
use std::time::Instant;

/// CHILD SAs per peer (one is the norm; a few more cover rekeys and collisions).
const MAX_CHILDREN: usize = 8;

/// KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr): initiator-to-responder key first
/// (§2.17). Returns (sent by the exchange initiator, sent by the responder).
pub(super) fn child_keymat(
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
) -> (KeyMaterial, KeyMaterial) {
    let km = prf_plus(sk_d, &[shared.unwrap_or(&[]), ni, nr], 2 * KEYMAT_LEN);
    let k = km.expose();
    // Both slices are exactly KEYMAT_LEN long.
    let a = KeyMaterial::from_slice(&k[..KEYMAT_LEN]);
    let b = KeyMaterial::from_slice(&k[KEYMAT_LEN..]);
    match (a, b) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("prf+ returns the requested length"),
    }
}

/// A CREATE_CHILD_SA request of ours for a new or rekeyed CHILD SA.
pub(super) struct ChildReq {
    /// The CHILD SA being rekeyed (our inbound SPI), or `None` for a new one.
    rekey: Option<u32>,
    spi_in: u32,
    ni: Vec<u8>,
    share: Option<KeyShare>,
    ts_local: Vec<TsV4>,
    ts_remote: Vec<TsV4>,
    /// The CHILD SA (our inbound SPI) the peer made by rekeying the same SA while
    /// this request was out (§2.8.1).
    collision: Option<u32>,
    retries: u32,
}

impl Ike {
    pub(super) fn child_sa(
        &self,
        c: &Child,
        inbound: KeyMaterial,
        outbound: KeyMaterial,
    ) -> ChildSa {
        let peer = self
            .current_idx()
            .map_or(self.cfg.remote, |i| self.sas[i].remote);
        ChildSa {
            inbound: EspKeys {
                spi: c.spi_in,
                keymat: inbound,
            },
            outbound: EspKeys {
                spi: c.spi_out,
                keymat: outbound,
            },
            ts_local: ts::to_nets(&c.ts_local),
            ts_remote: ts::to_nets(&c.ts_remote),
            peer,
            lifetime: self.esp_lifetime(),
        }
    }

    /// A CHILD SA the peer proposes (IKE_AUTH, a new one, or a rekey of `rekeys`):
    /// returns our response payloads (SA, [Nr, KE,] TSi, TSr) and the event, or the
    /// error notify to answer with.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_child(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        rekeys: Option<usize>,
        ni: &[u8],
        nr: &[u8],
        in_auth: bool,
    ) -> Result<(Vec<Payload>, Event), u16> {
        let (Some(sa_p), Some(tsi), Some(tsr)) = (sa_payload(p), tsi_payload(p), tsr_payload(p))
        else {
            return Err(notify::INVALID_SYNTAX);
        };
        if !in_auth
            && self
                .children
                .iter()
                .filter(|c| !matches!(c.state, ChildState::Linger))
                .count()
                >= MAX_CHILDREN
        {
            return Err(notify::NO_ADDITIONAL_SAS);
        }
        let spi_in = self.new_spi_in().map_err(|_| notify::TEMPORARY_FAILURE)?;
        let ke = if in_auth { None } else { ke_payload(p) };
        let (reply, spi_out, group) =
            self.choose_child_proposal(sa_p, ke.map(|k| k.0), spi_in, in_auth)?;
        // Narrow: TSi is the initiator's side (our remote), TSr ours.
        let ts_remote = ts::narrow(tsi, &self.cfg.remote_ts);
        let ts_local = ts::narrow(tsr, &self.cfg.local_ts);
        if ts_remote.is_empty() || ts_local.is_empty() {
            return Err(notify::TS_UNACCEPTABLE);
        }
        let mut out = vec![Payload::Sa(vec![reply])];
        let mut shared = None;
        if !in_auth {
            out.push(Payload::Nonce(nr.to_vec()));
            if let (Some(g), Some((_, data))) = (group, ke) {
                let share = KeyShare::new(g, &self.rng).map_err(|_| notify::TEMPORARY_FAILURE)?;
                out.push(Payload::Ke {
                    group: g.id(),
                    data: share.public().to_vec(),
                });
                shared = Some(share.agree(data).map_err(|_| notify::INVALID_SYNTAX)?);
            }
        }
        out.push(Payload::TsI(v4s(&ts_remote)));
        out.push(Payload::TsR(v4s(&ts_local)));
        let Some(sk_d) = self.sas[idx].keys.as_ref().map(|k| k.sk_d.clone()) else {
            return Err(notify::TEMPORARY_FAILURE);
        };
        let (i2r, r2i) = child_keymat(sk_d.expose(), shared.as_ref().map(|s| s.expose()), ni, nr);
        let c = Child::new(
            now,
            spi_in,
            spi_out,
            ts_local,
            ts_remote,
            (ni.to_vec(), nr.to_vec()),
        );
        // We are the responder of this exchange: the peer sends with the i2r keys.
        let child = self.child_sa(&c, i2r, r2i);
        self.push_child(c);
        let ev = match rekeys {
            Some(old) => self.rekeyed_by_peer(now, old, child),
            None => Event::ChildUp(child),
        };
        Ok((out, ev))
    }

    /// The ESP proposal we take from the peer's SA payload (with the group of its KE
    /// payload, if any): (our reply, the peer's SPI, the PFS group).
    fn choose_child_proposal(
        &self,
        sa_p: &[Proposal],
        ke_group: Option<u16>,
        spi_in: u32,
        in_auth: bool,
    ) -> Result<(Proposal, u32, Option<Group>), u16> {
        let mut groups = self.cfg.groups.clone();
        if let Some(g) = self.cfg.child_pfs {
            if !groups.contains(&g) {
                groups.insert(0, g);
            }
        }
        let (reply, peer_spi, group) =
            match proposal::choose_esp(sa_p, &groups, ke_group, spi_in, in_auth) {
                Choice::Accept {
                    reply,
                    peer_spi,
                    group,
                } => (reply, peer_spi, group),
                Choice::InvalidKe(_) => return Err(notify::INVALID_KE_PAYLOAD),
                Choice::NoProposal => return Err(notify::NO_PROPOSAL_CHOSEN),
            };
        match <[u8; 4]>::try_from(peer_spi.as_slice()) {
            Ok(b) if u32::from_be_bytes(b) >= 256 => Ok((reply, u32::from_be_bytes(b), group)),
            _ => Err(notify::INVALID_SYNTAX),
        }
    }

    /// The peer rekeyed CHILD SA `old` into `new` (already in the list): we keep
    /// sending on `old` until the peer deletes it.
    fn rekeyed_by_peer(&mut self, now: Instant, old: usize, new: ChildSa) -> Event {
        let o = &mut self.children[old];
        o.rekeyed = true;
        o.replaced_by = Some(new.inbound.spi);
        let spis = o.spis();
        if o.state == ChildState::Active {
            self.set_child_state(old, ChildState::Superseded, now);
        }
        self.child_rekeys += 1;
        Event::ChildRekeyed {
            old: spis,
            new,
            send: false,
        }
    }

    /// CREATE_CHILD_SA as responder: a CHILD SA rekey, a new CHILD SA or an IKE SA
    /// rekey. Returns the response payloads.
    pub(super) fn on_create_child(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
    ) -> Vec<Payload> {
        let Some(ni) = nonce_payload(p).map(<[u8]>::to_vec) else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        let is_current = Some(self.sas[idx].id()) == self.current;
        if !is_current || self.sas[idx].phase != Phase::Established {
            return vec![n(notify::TEMPORARY_FAILURE)];
        }
        let Ok(nr) = self.nonce() else {
            return vec![n(notify::TEMPORARY_FAILURE)];
        };
        let rekey = find_notify(p, notify::REKEY_SA).filter(|n| n.protocol == protocol::ESP);
        if let Some(r) = rekey {
            return self.on_child_rekey_request(now, idx, p, &r.spi, &ni, &nr);
        }
        match sa_payload(p).and_then(|s| s.first()).map(|s| s.protocol) {
            Some(protocol::IKE) => self.on_ike_rekey_request(now, idx, p, &ni, nr),
            Some(_) => match self.accept_child(now, idx, p, None, &ni, &nr, false) {
                Ok((out, ev)) => {
                    self.events.push_back(ev);
                    out
                }
                Err(e) => vec![self.child_error(e, p)],
            },
            None => vec![n(notify::INVALID_SYNTAX)],
        }
    }

    /// The peer rekeys the CHILD SA whose outbound SPI is `spi` (the REKEY_SA notify's).
    fn on_child_rekey_request(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        spi: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Vec<Payload> {
        let Ok(spi) = <[u8; 4]>::try_from(spi).map(u32::from_be_bytes) else {
            return vec![n(notify::INVALID_SYNTAX)];
        };
        let Some(ci) = self.children.iter().position(|c| c.spi_out == spi) else {
            return vec![n_esp(notify::CHILD_SA_NOT_FOUND, spi)];
        };
        if self.sas[idx].has_pending_ike_rekey()
            || !matches!(
                self.children[ci].state,
                ChildState::Active | ChildState::Rekeying
            )
        {
            return vec![n(notify::TEMPORARY_FAILURE)];
        }
        let colliding = self.children[ci].state == ChildState::Rekeying;
        match self.accept_child(now, idx, p, Some(ci), ni, nr, false) {
            Ok((out, ev)) => {
                if colliding {
                    // Remember the peer's new SA for when our own rekey completes.
                    let new_in = self.children.last().map(|c| c.spi_in);
                    if let Some(Pending {
                        req: Req::Child(r), ..
                    }) = self.sas[idx].pending.as_mut()
                    {
                        r.collision = new_in;
                    }
                    // Still ours to finish: the rekey outcome decides its fate.
                    self.set_child_state(ci, ChildState::Rekeying, now);
                }
                log::info!("IKE: {} rekeyed CHILD SA {:08x}", self.cfg.remote_id, spi);
                self.events.push_back(ev);
                out
            }
            Err(e) => vec![self.child_error(e, p)],
        }
    }

    /// An error notify for a refused CHILD SA; INVALID_KE_PAYLOAD names the group we
    /// want.
    fn child_error(&self, e: u16, p: &[Payload]) -> Payload {
        if e != notify::INVALID_KE_PAYLOAD {
            return n(e);
        }
        let offered: Vec<u16> = sa_payload(p)
            .into_iter()
            .flatten()
            .flat_map(|prop| prop.of(crate::wire::ike::transform::DH).map(|t| t.id))
            .collect();
        let g = self
            .cfg
            .child_pfs
            .into_iter()
            .chain(self.cfg.groups.iter().copied())
            .find(|g| offered.contains(&g.id()))
            .unwrap_or(Group::X25519);
        Payload::Notify(Notify::new(
            notify::INVALID_KE_PAYLOAD,
            g.id().to_be_bytes().to_vec(),
        ))
    }

    /// Sends a CREATE_CHILD_SA that rekeys CHILD SA `spi_in` (our inbound SPI);
    /// false if it is no longer active.
    pub(super) fn start_child_rekey(
        &mut self,
        idx: usize,
        now: Instant,
        spi_in: u32,
        retries: u32,
        group: Option<Group>,
    ) -> bool {
        let Some(c) = self
            .children
            .iter()
            .position(|c| c.spi_in == spi_in && c.state == ChildState::Active)
        else {
            return false;
        };
        let (tl, tr) = (
            self.children[c].ts_local.clone(),
            self.children[c].ts_remote.clone(),
        );
        if !self.send_child_request(idx, now, Some(spi_in), tl, tr, retries, group) {
            return false;
        }
        self.set_child_state(c, ChildState::Rekeying, now);
        log::info!("IKE: rekeying CHILD SA {spi_in:08x}");
        true
    }

    /// Sends a CREATE_CHILD_SA for a new CHILD SA between the configured subnets.
    pub(super) fn start_create_child(
        &mut self,
        idx: usize,
        now: Instant,
        retries: u32,
        group: Option<Group>,
    ) -> bool {
        let tl: Vec<TsV4> = self.cfg.local_ts.iter().map(ts::from_net).collect();
        let tr: Vec<TsV4> = self.cfg.remote_ts.iter().map(ts::from_net).collect();
        self.send_child_request(idx, now, None, tl, tr, retries, group)
    }

    #[allow(clippy::too_many_arguments)]
    fn send_child_request(
        &mut self,
        idx: usize,
        now: Instant,
        rekey: Option<u32>,
        ts_local: Vec<TsV4>,
        ts_remote: Vec<TsV4>,
        retries: u32,
        group: Option<Group>,
    ) -> bool {
        if Some(self.sas[idx].id()) != self.current {
            return false;
        }
        let pfs = group.or(self.cfg.child_pfs);
        let r = (|| -> Result<_, CryptoError> {
            let share = match pfs {
                Some(g) => Some(KeyShare::new(g, &self.rng)?),
                None => None,
            };
            Ok((share, self.nonce()?, self.new_spi_in()?))
        })();
        let Ok((share, ni, spi_in)) = r else {
            return false;
        };
        let mut p = Vec::new();
        if let Some(old) = rekey {
            p.push(n_esp(notify::REKEY_SA, old));
        }
        let groups: Vec<Group> = match pfs {
            Some(g) => std::iter::once(g)
                .chain(self.cfg.groups.iter().copied().filter(|x| *x != g))
                .collect(),
            None => Vec::new(),
        };
        p.push(Payload::Sa(vec![proposal::esp_offer(spi_in, &groups)]));
        p.push(Payload::Nonce(ni.clone()));
        if let Some(s) = &share {
            p.push(Payload::Ke {
                group: s.group().id(),
                data: s.public().to_vec(),
            });
        }
        p.push(Payload::TsI(v4s(&ts_local)));
        p.push(Payload::TsR(v4s(&ts_remote)));
        self.send_request(
            idx,
            now,
            exchange::CREATE_CHILD_SA,
            &p,
            Req::Child(ChildReq {
                rekey,
                spi_in,
                ni,
                share,
                ts_local,
                ts_remote,
                collision: None,
                retries,
            }),
        );
        true
    }

    /// The answer to our CREATE_CHILD_SA for a new or rekeyed CHILD SA.
    pub(super) fn on_child_response(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
        r: ChildReq,
    ) {
        if let Some(e) = error_notify(p) {
            self.on_child_refused(now, idx, p, &r, e);
            return;
        }
        let old = r
            .rekey
            .and_then(|s| self.children.iter().position(|c| c.spi_in == s));
        let group = r.share.as_ref().map(KeyShare::group);
        let spi_out = sa_payload(p).and_then(|s| proposal::check_esp_reply(s, group));
        let nr = nonce_payload(p);
        let tsi = tsi_payload(p).and_then(|t| ts::within(t, &ts::to_nets(&r.ts_local)));
        let tsr = tsr_payload(p).and_then(|t| ts::within(t, &ts::to_nets(&r.ts_remote)));
        let shared = match (r.share, ke_payload(p)) {
            (Some(share), Some((g, data))) if g == share.group().id() => share.agree(data).ok(),
            (None, None) => Some(crypto::SecretBytes::default()),
            _ => None,
        };
        let sk_d = self.sas[idx].keys.as_ref().map(|k| k.sk_d.clone());
        let (Some(spi_out), Some(nr), Some(tsi), Some(tsr), Some(shared), Some(sk_d)) =
            (spi_out, nr, tsi, tsr, shared, sk_d)
        else {
            log::warn!(
                "IKE: unusable CREATE_CHILD_SA response from {}",
                self.cfg.remote_id
            );
            if let Some(oi) = old {
                self.set_child_state(oi, ChildState::Active, now);
                self.set_child_rekey(oi, now + self.cfg.child_lifetime / 20);
            }
            return;
        };
        let shared = (shared.len() > 0).then_some(shared);
        let (i2r, r2i) = child_keymat(
            sk_d.expose(),
            shared.as_ref().map(|s| s.expose()),
            &r.ni,
            nr,
        );
        let c = Child::new(
            now,
            r.spi_in,
            spi_out,
            tsi,
            tsr,
            (r.ni.clone(), nr.to_vec()),
        );
        // We started this exchange: we send with the i2r keys.
        let child = self.child_sa(&c, r2i, i2r);
        let ours_min = c.nonces.0.as_slice().min(c.nonces.1.as_slice()).to_vec();
        self.push_child(c);
        let Some(oi) = old else {
            self.events.push_back(Event::ChildUp(child));
            return;
        };
        self.child_rekeys += 1;
        let theirs = r
            .collision
            .and_then(|s| self.children.iter().position(|c| c.spi_in == s));
        match theirs {
            Some(ti) => {
                let t = &self.children[ti];
                let their_min = t.nonces.0.as_slice().min(t.nonces.1.as_slice());
                if ours_min.as_slice() < their_min {
                    self.our_rekey_redundant(now, idx, oi, child);
                } else {
                    // Theirs is redundant (the peer deletes it); we delete the old one.
                    log::info!("IKE: CHILD SA rekey collision, ours survives");
                    self.set_child_state(ti, ChildState::Superseded, now);
                    self.children[ti].rekeyed = true;
                    self.children[oi].replaced_by = None;
                    self.switched(oi);
                    self.our_rekey_done(now, idx, oi, child);
                }
            }
            None => {
                self.children[oi].rekeyed = true;
                self.our_rekey_done(now, idx, oi, child);
            }
        }
    }

    /// Our CREATE_CHILD_SA for a new or rekeyed CHILD SA was refused with error `e`.
    fn on_child_refused(&mut self, now: Instant, idx: usize, p: &[Payload], r: &ChildReq, e: u16) {
        log::info!("IKE: {} refused CREATE_CHILD_SA ({e})", self.cfg.remote_id);
        let old = r
            .rekey
            .and_then(|s| self.children.iter().position(|c| c.spi_in == s));
        match e {
            notify::TEMPORARY_FAILURE => {
                self.retry_child(now, idx, r, r.share.as_ref().map(KeyShare::group), true)
            }
            notify::INVALID_KE_PAYLOAD => {
                let g = find_notify(p, notify::INVALID_KE_PAYLOAD)
                    .and_then(|n| n.data.get(..2))
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .and_then(Group::from_id);
                match g {
                    Some(g) if r.retries < MAX_CREATE_RETRIES => {
                        self.retry_child(now, idx, r, Some(g), false)
                    }
                    _ => self.retry_child(now, idx, r, None, true),
                }
            }
            notify::CHILD_SA_NOT_FOUND => {
                if let Some(oi) = old {
                    let spis = self.remove_child(oi).spis();
                    self.events.push_back(Event::ChildDown {
                        spis,
                        reason: ChildDownReason::PeerDeleted,
                    });
                }
            }
            _ => {
                // Try again later; the hard lifetime ends it if this keeps failing.
                if let Some(oi) = old {
                    self.set_child_state(oi, ChildState::Active, now);
                    let d = self.cfg.child_lifetime / 20;
                    self.set_child_rekey(oi, now + d.max(self.cfg.retransmit_base));
                }
            }
        }
    }

    /// Tries a refused CREATE_CHILD_SA again, with `group` for PFS: a rekey after a
    /// short random wait if `delay`, otherwise (and for a new CHILD SA) queued now.
    fn retry_child(
        &mut self,
        now: Instant,
        idx: usize,
        r: &ChildReq,
        group: Option<Group>,
        delay: bool,
    ) {
        let old = r
            .rekey
            .and_then(|s| self.children.iter().position(|c| c.spi_in == s));
        let intent = match r.rekey {
            Some(spi_in) => Intent::RekeyChild {
                spi_in,
                retries: r.retries + 1,
                group,
            },
            None => Intent::CreateChild {
                retries: r.retries + 1,
                group,
            },
        };
        if let Some(oi) = old {
            self.set_child_state(oi, ChildState::Active, now);
            if delay {
                let d = self.cfg.retransmit_base + self.jitter(self.cfg.retransmit_base * 2);
                self.set_child_rekey(oi, now + d);
                return;
            }
        }
        if r.retries < MAX_CREATE_RETRIES {
            self.sas[idx].push_intent(intent);
        }
    }

    /// Our rekey of CHILD SA `oi` made `new`, which replaces it: we send on `new` now
    /// and delete `oi` (unless the peer already did).
    fn our_rekey_done(&mut self, now: Instant, idx: usize, oi: usize, new: ChildSa) {
        let o = &self.children[oi];
        let old = o.spis();
        // The peer may have deleted the old SA meanwhile: then it only lingers.
        let old_gone = matches!(o.state, ChildState::Linger);
        self.events.push_back(Event::ChildRekeyed {
            old,
            new,
            send: true,
        });
        if !old_gone {
            self.set_child_state(oi, ChildState::Deleting, now);
            self.sas[idx].push_intent(Intent::DeleteChildren(vec![old.inbound]));
        }
    }

    /// Our rekey of CHILD SA `oi` collided with the peer's and lost (§2.8.1): we delete
    /// our `new` and never send on it; the peer deletes `oi`, and then we switch to
    /// its replacement.
    fn our_rekey_redundant(&mut self, now: Instant, idx: usize, oi: usize, new: ChildSa) {
        log::info!("IKE: CHILD SA rekey collision, ours is redundant");
        let spi_in = new.inbound.spi;
        if let Some(ni) = self.children.iter().position(|c| c.spi_in == spi_in) {
            self.set_child_state(ni, ChildState::Deleting, now);
            self.children[ni].rekeyed = true;
        }
        let old = self.children[oi].spis();
        // The peer may have deleted the old SA meanwhile: then it only lingers.
        if !matches!(self.children[oi].state, ChildState::Linger) {
            self.set_child_state(oi, ChildState::Superseded, now);
        }
        self.events.push_back(Event::ChildRekeyed {
            old,
            new,
            send: false,
        });
        self.sas[idx].push_intent(Intent::DeleteChildren(vec![spi_in]));
    }

    /// The peer's rekey of CHILD SA `ci` is complete (it deleted `ci`, or took too long
    /// to): send on the replacement from now on.
    pub(super) fn switch_to_replacement(&mut self, ci: usize) {
        let Some(r) = self.children[ci].replaced_by.take() else {
            return;
        };
        self.switched(ci);
        if let Some(n) = self.children.iter().find(|c| {
            c.spi_in == r && !matches!(c.state, ChildState::Deleting | ChildState::Linger)
        }) {
            self.events.push_back(Event::ChildSend { spis: n.spis() });
        }
    }

    pub(super) fn queue_child_rekey(&mut self, spi_in: u32) {
        if let Some(i) = self.current_idx() {
            self.sas[i].push_intent(Intent::RekeyChild {
                spi_in,
                retries: 0,
                group: None,
            });
        }
        self.timers.stop(Timer::Child(spi_in, ChildTimer::Rekey));
    }

    /// A CHILD SA reached its hard limit: it goes now (with a DELETE if it was in use).
    pub(super) fn expire_child(&mut self, ci: usize, _now: Instant) {
        self.switch_to_replacement(ci);
        let c = self.remove_child(ci);
        log::info!("IKE: CHILD SA {:08x} expired", c.spi_in);
        let notify_peer = matches!(c.state, ChildState::Active | ChildState::Rekeying);
        self.events.push_back(Event::ChildDown {
            spis: c.spis(),
            reason: ChildDownReason::Expired,
        });
        if let Some(i) = self.current_idx() {
            if notify_peer {
                self.sas[i].push_intent(Intent::DeleteChildren(vec![c.spi_in]));
                // The configured initiator wants a tunnel: make a fresh CHILD SA.
                let others = self
                    .children
                    .iter()
                    .any(|c| matches!(c.state, ChildState::Active | ChildState::Rekeying));
                if self.cfg.initiator && !others {
                    self.sas[i].push_intent(Intent::CreateChild {
                        retries: 0,
                        group: None,
                    });
                }
            }
        }
    }
}
