//! IKE_SA_INIT in both roles: the initiator's request (with COOKIE and
//! INVALID_KE_PAYLOAD retries) and its unauthenticated response, the responder's
//! answer (cookies under load, stateless refusals, the half-open SA), the SA keys and
//! NAT detection.

use super::payloads::{
    error_notify, find_notify, has_unknown_critical, ke_payload, nonce_payload, sa_payload,
};
use super::timers::Timer;
use super::{datagram, Ike, Pending, Phase, Req, Sa, SaKeys};
use crate::ike::crypto::{
    ct_eq, prf, prf_plus, sha1, CryptoError, KeyShare, SkCipher, PRF_LEN, SK_E_LEN,
};
use crate::ike::proposal::Choice;
use crate::ike::{crypto, proposal, DownReason, Error, Group};
use crate::wire::ike::{exchange, flags, notify, Header, Message, Notify, Payload, Proposal};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// COOKIE and INVALID_KE_PAYLOAD round trips before giving up on IKE_SA_INIT.
const MAX_INIT_RETRIES: u32 = 3;

/// {SK_d | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
/// (§2.14; AES-GCM has no SK_a).
pub(super) fn derive_sa_keys(
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    we_initiated: bool,
) -> Result<SaKeys, CryptoError> {
    let len = PRF_LEN + 2 * SK_E_LEN + 2 * PRF_LEN;
    let km = prf_plus(
        skeyseed,
        &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
        len,
    );
    let k = km.expose();
    let sk_d = &k[..PRF_LEN];
    let sk_ei = &k[PRF_LEN..PRF_LEN + SK_E_LEN];
    let sk_er = &k[PRF_LEN + SK_E_LEN..PRF_LEN + 2 * SK_E_LEN];
    let sk_pi = &k[PRF_LEN + 2 * SK_E_LEN..2 * PRF_LEN + 2 * SK_E_LEN];
    let sk_pr = &k[2 * PRF_LEN + 2 * SK_E_LEN..];
    let (eo, ei, po, pp) = if we_initiated {
        (sk_ei, sk_er, sk_pi, sk_pr)
    } else {
        (sk_er, sk_ei, sk_pr, sk_pi)
    };
    Ok(SaKeys {
        sk_d: sk_d.into(),
        enc_out: SkCipher::new(eo)?,
        enc_in: SkCipher::new(ei)?,
        sk_p_own: po.into(),
        sk_p_peer: pp.into(),
    })
}

fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddrV4) -> Vec<u8> {
    sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &addr.ip().octets(),
        &addr.port().to_be_bytes(),
    ])
    .to_vec()
}

/// IKE_SA_INIT state kept until IKE_AUTH is done.
#[derive(Default)]
pub(super) struct Handshake {
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    /// The IKE_SA_INIT request and response as sent: signed in AUTH.
    pub(super) msg1: Vec<u8>,
    pub(super) msg2: Vec<u8>,
    pub(super) share: Option<KeyShare>,
    pub(super) cookie: Option<Vec<u8>>,
    pub(super) retries: u32,
    /// The initiator's inbound SPI for the first CHILD SA.
    pub(super) child_spi: u32,
    /// When we last answered a COOKIE or INVALID_KE_PAYLOAD.
    pub(super) last_retry: Option<Instant>,
    /// An unauthenticated refusal: the attempt ends with it unless a valid response
    /// comes first.
    pub(super) error: Option<DownReason>,
}

impl Handshake {
    /// We answered a COOKIE or INVALID_KE_PAYLOAD less than `interval` ago.
    fn retried_recently(&self, now: Instant, interval: Duration) -> bool {
        self.last_retry.is_some_and(|t| now < t + interval)
    }
}

/// An IKE_SA_INIT request as the responder reads it, before any SA exists.
struct InitRequest<'a> {
    spi_i: u64,
    /// Where it came in (answers go back the same way).
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// The whole message (signed in the initiator's AUTH) and its payloads.
    msg: &'a [u8],
    p: &'a [Payload],
    /// The initiator's key share and nonce.
    ke: &'a [u8],
    ni: &'a [u8],
}

/// An unencrypted IKE_SA_INIT message (message ID 0).
fn init_message(spi_i: u64, spi_r: u64, flags: u8, payloads: Vec<Payload>) -> Message {
    Message {
        header: Header {
            spi_i,
            spi_r,
            next_payload: 0,
            exchange: exchange::IKE_SA_INIT,
            flags,
            message_id: 0,
            length: 0,
        },
        payloads,
    }
}

impl Ike {
    pub(super) fn start_init(&mut self, now: Instant) -> Result<(), CryptoError> {
        let group = *self.cfg.groups.first().ok_or(CryptoError)?;
        let share = KeyShare::new(group, &self.rng)?;
        let hs = Handshake {
            ni: self.nonce()?,
            share: Some(share),
            child_spi: self.new_spi_in()?,
            ..Handshake::default()
        };
        let (local, remote) = (self.cfg.local, self.cfg.remote);
        let spi_i = self.new_ike_spi()?;
        let sa = Sa {
            hs: Some(Box::new(hs)),
            ..Sa::new(spi_i, 0, true, Phase::Connecting, local, remote, group, now)
        };
        log::info!(
            "IKE: connecting to {} ({})",
            self.cfg.remote,
            self.cfg.remote_id
        );
        self.sas.push(sa);
        let idx = self.sas.len() - 1;
        self.send_init(idx, now);
        Ok(())
    }

    /// (Re)sends IKE_SA_INIT from the handshake state (after COOKIE / INVALID_KE too).
    fn send_init(&mut self, idx: usize, now: Instant) {
        let sa = &self.sas[idx];
        let Some(hs) = sa.hs.as_deref() else { return };
        let Some(share) = hs.share.as_ref() else {
            return;
        };
        let mut p = Vec::new();
        if let Some(c) = &hs.cookie {
            p.push(Payload::Notify(Notify::new(notify::COOKIE, c.clone())));
        }
        // Offer every group, preferred first, with the KE for the one we try.
        let mut groups = vec![share.group()];
        groups.extend(self.cfg.groups.iter().filter(|g| **g != share.group()));
        p.push(Payload::Sa(vec![proposal::ike_offer(&groups, None)]));
        p.push(Payload::Ke {
            group: share.group().id(),
            data: share.public().to_vec(),
        });
        p.push(Payload::Nonce(hs.ni.clone()));
        p.extend(self.nat_notifies(sa.spi_i, 0, sa.local, sa.remote));
        let Ok(data) = init_message(sa.spi_i, 0, flags::INITIATOR, p).emit() else {
            return;
        };
        let base = self.cfg.retransmit_base;
        let sa = &mut self.sas[idx];
        if let Some(hs) = sa.hs.as_deref_mut() {
            hs.msg1 = data.clone();
        }
        sa.my_next_id = 1;
        let d = sa.datagram(data.clone());
        let p = Pending {
            msg_id: 0,
            data,
            req: Req::Init,
            sent: 1,
        };
        self.set_pending(idx, p, now + base);
        self.send(d);
    }

    /// The answer to our IKE_SA_INIT. It is not authenticated (§2.4, §2.21.1): a
    /// forged COOKIE, INVALID_KE_PAYLOAD or error must not spoil the attempt. Retries
    /// happen at most once per retransmission interval; errors end the attempt only if
    /// no valid response arrives within one interval.
    pub(super) fn on_init_response(
        &mut self,
        now: Instant,
        idx: usize,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Error> {
        let m = Message::parse(msg)?;
        let p = &m.payloads;
        if self.sas[idx].hs.is_none() {
            return Err(Error::Unexpected);
        }
        if let Some(c) = find_notify(p, notify::COOKIE) {
            self.on_init_cookie(now, idx, &c.data);
            return Ok(());
        }
        if let Some(ke) = find_notify(p, notify::INVALID_KE_PAYLOAD) {
            return self.on_init_invalid_ke(now, idx, &ke.data);
        }
        if let Some(e) = error_notify(p) {
            let reason = if e == notify::NO_PROPOSAL_CHOSEN {
                DownReason::NoProposal
            } else {
                DownReason::Rejected(e)
            };
            self.init_refused(now, idx, reason);
            return Ok(());
        }
        self.complete_init(now, idx, h, msg, p)
    }

    /// The responder wants its COOKIE back (§2.6): IKE_SA_INIT again, with it.
    fn on_init_cookie(&mut self, now: Instant, idx: usize, cookie: &[u8]) {
        let base = self.cfg.retransmit_base;
        let Some(hs) = self.sas[idx].hs.as_deref_mut() else {
            return;
        };
        if hs.retried_recently(now, base) {
            return;
        }
        if hs.retries >= MAX_INIT_RETRIES || cookie.is_empty() || cookie.len() > 64 {
            self.init_refused(now, idx, DownReason::Rejected(notify::COOKIE));
            return;
        }
        hs.retries += 1;
        hs.last_retry = Some(now);
        hs.cookie = Some(cookie.to_vec());
        log::debug!("IKE: responder asks for a cookie");
        self.send_init(idx, now);
    }

    /// The responder wants another key exchange group (§1.2): IKE_SA_INIT again with
    /// a key share of that group, if it is one of ours.
    fn on_init_invalid_ke(&mut self, now: Instant, idx: usize, data: &[u8]) -> Result<(), Error> {
        let base = self.cfg.retransmit_base;
        let want = data
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .and_then(Group::from_id)
            .filter(|g| self.cfg.groups.contains(g));
        let sa = &mut self.sas[idx];
        let Some(hs) = sa.hs.as_deref_mut() else {
            return Ok(());
        };
        if hs.retried_recently(now, base) {
            return Ok(());
        }
        let current = hs.share.as_ref().map(KeyShare::group);
        match want {
            Some(g) if hs.retries < MAX_INIT_RETRIES && Some(g) != current => {
                hs.retries += 1;
                hs.last_retry = Some(now);
                hs.share = Some(KeyShare::new(g, &self.rng).map_err(|_| Error::Unexpected)?);
                sa.group = g;
                log::debug!("IKE: responder wants group {}", g.id());
                self.send_init(idx, now);
            }
            _ => self.init_refused(now, idx, DownReason::NoProposal),
        }
        Ok(())
    }

    /// An unauthenticated refusal of our IKE_SA_INIT: the attempt ends with `reason`
    /// at the next retransmission (at most an interval away) unless a valid response
    /// comes first.
    fn init_refused(&mut self, now: Instant, idx: usize, reason: DownReason) {
        let base = self.cfg.retransmit_base;
        let sa = &mut self.sas[idx];
        if let Some(hs) = sa.hs.as_deref_mut() {
            hs.error.get_or_insert(reason);
        }
        let timer = Timer::Retransmit(sa.spi());
        if let Some(at) = self.timers.get(timer) {
            self.timers.set(timer, at.min(now + base));
        }
    }

    /// A proper IKE_SA_INIT response: the SA's keys and NAT detection, then IKE_AUTH.
    fn complete_init(
        &mut self,
        now: Instant,
        idx: usize,
        h: &Header,
        msg: &[u8],
        p: &[Payload],
    ) -> Result<(), Error> {
        if h.spi_r == 0 || has_unknown_critical(p) {
            return Err(Error::Unexpected);
        }
        let (Some(sa_p), Some((ke_group, ke_data)), Some(nr)) =
            (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            return Err(Error::Malformed(crate::wire::Error::Malformed));
        };
        let sa = &mut self.sas[idx];
        let hs = sa.hs.as_deref_mut().ok_or(Error::Unexpected)?;
        let Some(group) = hs.share.as_ref().map(KeyShare::group) else {
            return Err(Error::Unexpected);
        };
        if proposal::check_ike_reply(sa_p, group, false).is_none()
            || ke_group != group.id()
            || ke_data.len() != group.public_len()
        {
            self.init_refused(now, idx, DownReason::NoProposal);
            return Ok(());
        }
        let Some(share) = hs.share.take() else {
            return Err(Error::Unexpected);
        };
        let Ok(shared) = share.agree(ke_data) else {
            // The key share is spent: this attempt cannot take another response.
            self.init_refused(now, idx, DownReason::NoProposal);
            return Ok(());
        };
        hs.nr = nr.to_vec();
        hs.msg2 = msg.to_vec();
        let ni = hs.ni.clone();
        let skeyseed = prf(&[ni.as_slice(), nr].concat(), &[shared.expose()]);
        let keys = derive_sa_keys(&skeyseed, &ni, nr, h.spi_i, h.spi_r, true)
            .map_err(|_| Error::Unexpected)?;
        let (nat_local, nat_remote) = Self::nat_detect(p, h.spi_i, h.spi_r, sa.local, sa.remote);
        sa.spi_r = h.spi_r;
        sa.keys = Some(keys);
        sa.nat_local = nat_local;
        sa.nat_remote = nat_remote;
        sa.nonces = (ni, nr.to_vec());
        self.heard(idx, now);
        self.take_pending(idx);
        self.send_auth(idx, now);
        Ok(())
    }

    /// IKE_SA_INIT as responder: a stateless refusal or COOKIE demand, or a new
    /// half-open SA and its response.
    pub(super) fn on_init_request(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Error> {
        if h.spi_r != 0 || h.message_id != 0 || !h.from_initiator() || h.spi_i == 0 {
            return Err(Error::Unexpected);
        }
        if let Some(resp) = self.init_answered(h.spi_i, remote, msg) {
            self.send(datagram(local, remote, resp));
            return Ok(());
        }
        let m = Message::parse(msg)?;
        let p = &m.payloads;
        let (Some(sa), Some((ke_group, ke)), Some(ni)) =
            (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            return Err(Error::Malformed(crate::wire::Error::Malformed));
        };
        let req = InitRequest {
            spi_i: h.spi_i,
            local,
            remote,
            msg,
            p,
            ke,
            ni,
        };
        if has_unknown_critical(p) {
            self.refuse_init(&req, notify::UNSUPPORTED_CRITICAL_PAYLOAD, Vec::new());
            return Ok(());
        }
        let half_open = self
            .sas
            .iter()
            .filter(|s| s.phase == Phase::HalfOpen)
            .count();
        if half_open >= self.cfg.cookie_threshold && !self.cookie_returned(&req, half_open) {
            return Ok(());
        }
        let (reply, g) = match proposal::choose_ike(sa, &self.cfg.groups, Some(ke_group), None) {
            Choice::Accept {
                reply,
                group: Some(g),
                ..
            } => (reply, g),
            Choice::InvalidKe(g) => {
                let want = g.id().to_be_bytes().to_vec();
                self.refuse_init(&req, notify::INVALID_KE_PAYLOAD, want);
                return Ok(());
            }
            _ => {
                log::warn!("IKE: no acceptable IKE proposal from {remote}");
                self.refuse_init(&req, notify::NO_PROPOSAL_CHOSEN, Vec::new());
                return Ok(());
            }
        };
        self.answer_init(now, &req, reply, g, half_open)
    }

    /// Our response to an IKE_SA_INIT request we already answered, sent again. (Another
    /// request with the same SPI is a new attempt: IKE_SA_INIT is unauthenticated, so a
    /// forged copy must not block the real one.)
    fn init_answered(&self, spi_i: u64, remote: SocketAddrV4, msg: &[u8]) -> Option<Vec<u8>> {
        self.sas.iter().find_map(|s| match &s.last_reply {
            Some((req, resp))
                if s.spi_i == spi_i
                    && s.phase == Phase::HalfOpen
                    && s.remote == remote
                    && req.as_slice() == msg =>
            {
                Some(resp.clone())
            }
            _ => None,
        })
    }

    /// Answers an IKE_SA_INIT request with a lone notify and keeps no state.
    fn refuse_init(&mut self, req: &InitRequest, kind: u16, data: Vec<u8>) {
        let m = init_message(
            req.spi_i,
            0,
            flags::RESPONSE,
            vec![Payload::Notify(Notify::new(kind, data))],
        );
        if let Ok(data) = m.emit() {
            self.send(datagram(req.local, req.remote, data));
        }
    }

    /// Under load (`half_open` SAs): whether the request returns the COOKIE we would
    /// give it; if not, it gets one (§2.6).
    fn cookie_returned(&mut self, req: &InitRequest, half_open: usize) -> bool {
        let want = self.cookie(req.ni, req.remote, req.spi_i);
        let got = match req.p.first() {
            Some(Payload::Notify(n)) if n.kind == notify::COOKIE => Some(&n.data),
            _ => None,
        };
        if got.is_some_and(|g| ct_eq(g, &want)) {
            return true;
        }
        let remote = req.remote;
        log::debug!("IKE: {half_open} half-open SAs, asking {remote} for a cookie");
        self.refuse_init(req, notify::COOKIE, want);
        false
    }

    /// Accepts an IKE_SA_INIT request with proposal `reply` and group `g`: a new
    /// half-open SA, and the response.
    fn answer_init(
        &mut self,
        now: Instant,
        req: &InitRequest,
        reply: Proposal,
        g: Group,
        half_open: usize,
    ) -> Result<(), Error> {
        let r = (|| -> Result<(KeyShare, Vec<u8>, u64), CryptoError> {
            Ok((
                KeyShare::new(g, &self.rng)?,
                self.nonce()?,
                self.new_ike_spi()?,
            ))
        })();
        let Ok((share, nr, spi_r)) = r else {
            return Err(Error::Unexpected);
        };
        let public = share.public().to_vec();
        let Ok(shared) = share.agree(req.ke) else {
            self.refuse_init(req, notify::INVALID_SYNTAX, Vec::new());
            return Ok(());
        };
        let (spi_i, local, remote, ni) = (req.spi_i, req.local, req.remote, req.ni);
        let skeyseed = prf(&[ni, nr.as_slice()].concat(), &[shared.expose()]);
        let keys = derive_sa_keys(&skeyseed, ni, &nr, spi_i, spi_r, false)
            .map_err(|_| Error::Unexpected)?;
        let (nat_local, nat_remote) = Self::nat_detect(req.p, spi_i, 0, local, remote);
        let mut out = vec![
            Payload::Sa(vec![reply]),
            Payload::Ke {
                group: g.id(),
                data: public,
            },
            Payload::Nonce(nr.clone()),
        ];
        out.extend(self.nat_notifies(spi_i, spi_r, local, remote));
        let resp = init_message(spi_i, spi_r, flags::RESPONSE, out).emit()?;
        if half_open >= self.cfg.max_half_open {
            self.drop_oldest_half_open();
        }
        let hs = Handshake {
            ni: ni.to_vec(),
            nr: nr.clone(),
            msg1: req.msg.to_vec(),
            msg2: resp.clone(),
            ..Handshake::default()
        };
        let sa = Sa {
            keys: Some(keys),
            hs: Some(Box::new(hs)),
            peer_next_id: 1,
            last_reply: Some((req.msg.to_vec(), resp.clone())),
            nonces: (ni.to_vec(), nr),
            nat_local,
            nat_remote,
            ..Sa::new(spi_i, spi_r, false, Phase::HalfOpen, local, remote, g, now)
        };
        self.sas.push(sa);
        let span = self.retransmit_span();
        self.timers.set(Timer::DropSa(spi_r), now + span);
        self.send(datagram(local, remote, resp));
        Ok(())
    }

    /// Half-open SAs are bounded: the oldest makes room.
    fn drop_oldest_half_open(&mut self) {
        if let Some(oldest) = self
            .sas
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == Phase::HalfOpen)
            .min_by_key(|(_, s)| s.created)
            .map(|(i, _)| i)
        {
            self.remove_sa(oldest);
        }
    }

    fn cookie(&self, ni: &[u8], remote: SocketAddrV4, spi_i: u64) -> Vec<u8> {
        prf(
            &self.cookie_secret,
            &[
                ni,
                &remote.ip().octets(),
                &remote.port().to_be_bytes(),
                &spi_i.to_be_bytes(),
            ],
        )
        .to_vec()
    }

    fn nat_notifies(
        &self,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> [Payload; 2] {
        let src = if self.cfg.force_encap {
            // A hash of nothing real: the peer sees a NAT in front of us.
            let mut junk = [0u8; 20];
            let _ = crypto::random(&self.rng, &mut junk);
            junk.to_vec()
        } else {
            nat_hash(spi_i, spi_r, local)
        };
        [
            Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, src)),
            Payload::Notify(Notify::new(
                notify::NAT_DETECTION_DESTINATION_IP,
                nat_hash(spi_i, spi_r, remote),
            )),
        ]
    }

    /// (NAT in front of us, NAT in front of the peer) from the peer's NAT notifies.
    fn nat_detect(
        p: &[Payload],
        spi_i: u64,
        spi_r: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> (bool, bool) {
        let mut dst = p.iter().filter_map(|x| match x {
            Payload::Notify(n) if n.kind == notify::NAT_DETECTION_DESTINATION_IP => {
                Some(n.data.as_slice())
            }
            _ => None,
        });
        let mut src = p.iter().filter_map(|x| match x {
            Payload::Notify(n) if n.kind == notify::NAT_DETECTION_SOURCE_IP => {
                Some(n.data.as_slice())
            }
            _ => None,
        });
        let me = nat_hash(spi_i, spi_r, local);
        let peer = nat_hash(spi_i, spi_r, remote);
        let local_nat = dst.clone().next().is_some() && !dst.any(|d| d == me);
        let remote_nat = src.clone().next().is_some() && !src.any(|d| d == peer);
        (local_nat, remote_nat)
    }
}
