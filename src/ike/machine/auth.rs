//! IKE_AUTH in both roles with a pre-shared key: the initiator's request and its
//! check of the response (and the first CHILD SA in it), the responder's check and
//! answer, and `establish`, which makes the authenticated SA the current one.

use super::child::child_keymat;
use super::init::Handshake;
use super::payloads::{
    auth_payload, error_notify, find_notify, idi_payload, idr_payload, n, sa_payload, tsi_payload,
    tsr_payload,
};
use super::timers::Timer;
use super::window::After;
use super::{Child, Ike, Phase, Req};
use crate::ike::crypto::{ct_eq, prf, PRF_LEN};
use crate::ike::{proposal, ts, DownReason, Event};
use crate::wire::ike::{auth_method, exchange, notify, Id, Payload};
use std::time::Instant;

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>) with SignedOctets =
/// RealMessage | Nonce of the other side | prf(SK_p, ID body) (§2.15).
fn psk_auth(psk: &[u8], message: &[u8], nonce: &[u8], sk_p: &[u8], id: &Id) -> [u8; PRF_LEN] {
    let maced_id = prf(sk_p, &[&id.body()]);
    let key = prf(psk, &[KEY_PAD]);
    prf(&key, &[message, nonce, &maced_id])
}

impl Ike {
    pub(super) fn send_auth(&mut self, idx: usize, now: Instant) {
        let Some(hs) = self.sas[idx].hs.as_deref() else {
            return;
        };
        let idi = self.cfg.local_id.id().clone();
        let Some(auth) = self.own_auth(idx, &idi) else {
            return;
        };
        let p = vec![
            Payload::IdI(idi),
            n(notify::INITIAL_CONTACT),
            Payload::IdR(self.cfg.remote_id.id().clone()),
            Payload::Auth {
                method: auth_method::SHARED_KEY_MIC,
                data: auth.to_vec(),
            },
            Payload::Sa(vec![proposal::esp_offer(hs.child_spi, &[])]),
            Payload::TsI(ts::from_nets(&self.cfg.local_ts)),
            Payload::TsR(ts::from_nets(&self.cfg.remote_ts)),
        ];
        self.send_request(idx, now, exchange::IKE_AUTH, &p, Req::Auth);
    }

    /// The AUTH payload we send on SA `idx`: we sign the IKE_SA_INIT message we sent
    /// and the peer's nonce.
    fn own_auth(&self, idx: usize, id: &Id) -> Option<[u8; PRF_LEN]> {
        let sa = &self.sas[idx];
        let (hs, keys) = (sa.hs.as_deref()?, sa.keys.as_ref()?);
        let (msg, nonce) = if sa.we_initiated {
            (&hs.msg1, &hs.nr)
        } else {
            (&hs.msg2, &hs.ni)
        };
        let psk = self.cfg.psk.expose();
        Some(psk_auth(psk, msg, nonce, keys.sk_p_own.expose(), id))
    }

    /// Whether the peer proved it is `remote_id` on SA `idx`: it signed the IKE_SA_INIT
    /// message it sent and our nonce.
    fn peer_auth_ok(&self, idx: usize, id: &Id, method: u8, data: &[u8]) -> bool {
        let sa = &self.sas[idx];
        let (Some(hs), Some(keys)) = (sa.hs.as_deref(), sa.keys.as_ref()) else {
            return false;
        };
        let (msg, nonce) = if sa.we_initiated {
            (&hs.msg2, &hs.ni)
        } else {
            (&hs.msg1, &hs.nr)
        };
        let psk = self.cfg.psk.expose();
        let expected = psk_auth(psk, msg, nonce, keys.sk_p_peer.expose(), id);
        *id == *self.cfg.remote_id.id()
            && method == auth_method::SHARED_KEY_MIC
            && ct_eq(&expected, data)
    }

    pub(super) fn on_auth_response(&mut self, now: Instant, idx: usize, p: &[Payload]) {
        let (Some(idr), Some((method, auth))) = (idr_payload(p), auth_payload(p)) else {
            let reason = match error_notify(p) {
                Some(notify::AUTHENTICATION_FAILED) => DownReason::AuthFailed,
                Some(e) => DownReason::Rejected(e),
                None => DownReason::Rejected(notify::INVALID_SYNTAX),
            };
            log::warn!("IKE: {} refused IKE_AUTH: {reason:?}", self.cfg.remote_id);
            self.attempt_failed(now, idx, reason);
            return;
        };
        if !self.peer_auth_ok(idx, idr, method, auth) {
            log::warn!(
                "IKE: responder failed authentication as {}",
                self.cfg.remote_id
            );
            self.send_ike_delete(idx);
            self.attempt_failed(now, idx, DownReason::AuthFailed);
            return;
        }
        let hs = self.sas[idx].hs.take();
        self.establish(now, idx);
        self.first_child(now, idx, p, hs);
    }

    /// The first CHILD SA, from the IKE_AUTH response; without it the IKE SA goes
    /// again.
    fn first_child(&mut self, now: Instant, idx: usize, p: &[Payload], hs: Option<Box<Handshake>>) {
        let child_err = find_notify(p, notify::NO_PROPOSAL_CHOSEN)
            .or_else(|| find_notify(p, notify::TS_UNACCEPTABLE))
            .or_else(|| find_notify(p, notify::SINGLE_PAIR_REQUIRED))
            .or_else(|| find_notify(p, notify::INTERNAL_ADDRESS_FAILURE))
            .or_else(|| find_notify(p, notify::FAILED_CP_REQUIRED))
            .map(|n| n.kind);
        let spi_out = sa_payload(p).and_then(|s| proposal::check_esp_reply(s, None));
        let tsi = tsi_payload(p).and_then(|t| ts::within(t, &self.cfg.local_ts));
        let tsr = tsr_payload(p).and_then(|t| ts::within(t, &self.cfg.remote_ts));
        match (child_err, spi_out, tsi, tsr, hs) {
            (None, Some(spi_out), Some(tsi), Some(tsr), Some(hs)) => {
                let sk_d = self.sas[idx].keys.as_ref().map(|k| k.sk_d.clone());
                let Some(sk_d) = sk_d else { return };
                let (i2r, r2i) = child_keymat(sk_d.expose(), None, &hs.ni, &hs.nr);
                let c = Child::new(
                    now,
                    hs.child_spi,
                    spi_out,
                    tsi,
                    tsr,
                    (hs.ni.clone(), hs.nr.clone()),
                );
                let sa = self.child_sa(&c, r2i, i2r);
                self.push_child(c);
                self.events.push_back(Event::ChildUp(sa));
            }
            (err, ..) => {
                let e = err.unwrap_or(notify::NO_PROPOSAL_CHOSEN);
                log::warn!("IKE: {} refused the CHILD SA ({e})", self.cfg.remote_id);
                self.down(now, DownReason::ChildRejected(e), true);
            }
        }
    }

    /// Makes `idx` the current, established IKE SA (after IKE_AUTH); an older one is
    /// replaced (the peer has just authenticated anew, so it lost the old one).
    fn establish(&mut self, now: Instant, idx: usize) {
        let id = {
            let sa = &mut self.sas[idx];
            sa.phase = Phase::Established;
            sa.established = Some(now);
            sa.last_rx = now;
            sa.id()
        };
        self.timers.stop(Timer::DropSa(self.sas[idx].spi()));
        if let Some(old) = self.current.filter(|&o| o != id) {
            log::info!("IKE: {} authenticated a new IKE SA", self.cfg.remote_id);
            if let Some(oi) = self.idx_of(old) {
                self.send_ike_delete(oi);
            }
            self.children_down_with_ike();
            self.last_down = Some(DownReason::Replaced);
        }
        // Only the new SA and half-open ones stay.
        self.retain_sas(|s| s.id() == id || s.phase == Phase::HalfOpen);
        self.set_current(Some(id));
        self.up_since = Some(now);
        self.reconnect_delay = self.cfg.reconnect.unwrap_or_default();
        self.timers.stop(Timer::Reconnect);
        let Some(i) = self.idx_of(id) else { return };
        let sa = &self.sas[i];
        log::info!(
            "IKE with {} ({}) established, NAT here {}, NAT there {}",
            self.cfg.remote_id,
            sa.remote,
            sa.nat_local,
            sa.nat_remote
        );
        let ev = Event::IkeUp {
            remote: sa.remote,
            nat_local: sa.nat_local,
            nat_remote: sa.nat_remote,
        };
        let nat = sa.nat_local || sa.nat_remote || self.cfg.force_encap;
        self.events.push_back(ev);
        if nat && !self.cfg.keepalive.is_zero() {
            self.timers.set(Timer::Keepalive, now + self.cfg.keepalive);
        } else {
            self.timers.stop(Timer::Keepalive);
        }
    }

    /// IKE_AUTH as responder; returns the response payloads.
    pub(super) fn on_auth_request(
        &mut self,
        now: Instant,
        idx: usize,
        p: &[Payload],
    ) -> (Vec<Payload>, After) {
        let (idi, idr) = (idi_payload(p), idr_payload(p));
        let verified = match (idi, auth_payload(p)) {
            (Some(idi), Some((method, data))) => {
                idr.is_none_or(|r| *r == *self.cfg.local_id.id())
                    && self.peer_auth_ok(idx, idi, method, data)
            }
            _ => false,
        };
        if !verified {
            log::warn!(
                "IKE: authentication of {} failed (wrong identity or PSK)",
                idi.map_or_else(
                    || "?".into(),
                    |i| String::from_utf8_lossy(&i.data).into_owned()
                )
            );
            if self.current.is_none() {
                self.last_down = Some(DownReason::AuthFailed);
                self.events.push_back(Event::IkeDown {
                    reason: DownReason::AuthFailed,
                });
            }
            return (vec![n(notify::AUTHENTICATION_FAILED)], After::Remove);
        }
        let own = self.cfg.local_id.id().clone();
        let Some(our_auth) = self.own_auth(idx, &own) else {
            return (vec![n(notify::AUTHENTICATION_FAILED)], After::Remove);
        };
        let Some(hs) = self.sas[idx].hs.take() else {
            return (vec![n(notify::AUTHENTICATION_FAILED)], After::Remove);
        };
        self.establish(now, idx);
        let Some(idx) = self.current_idx() else {
            return (Vec::new(), After::Nothing);
        };
        let mut out = vec![
            Payload::IdR(own),
            Payload::Auth {
                method: auth_method::SHARED_KEY_MIC,
                data: our_auth.to_vec(),
            },
        ];
        match self.accept_child(now, idx, p, None, &hs.ni, &hs.nr, true) {
            Ok((mut child_payloads, ev)) => {
                out.append(&mut child_payloads);
                self.events.push_back(ev);
            }
            Err(e) => {
                log::warn!("IKE: refused {}'s CHILD SA ({e})", self.cfg.remote_id);
                out.push(n(e));
            }
        }
        (out, After::Nothing)
    }
}
