//! IKE_SA_INIT in both roles: the initiator's request (with COOKIE and
//! INVALID_KE_PAYLOAD retries) and its unauthenticated response, the responder's
//! answer (cookies under load, stateless refusals, the half-open SA), the SA keys and
//! NAT detection.

use super::*;

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

impl Ike {
    pub(super) fn start_init(&mut self, now: Instant) -> Result<(), CryptoError> {
        let group = *self.cfg.groups.first().ok_or(CryptoError)?;
        let share = KeyShare::new(group, &self.rng)?;
        let hs = Handshake {
            ni: self.nonce()?,
            nr: Vec::new(),
            msg1: Vec::new(),
            msg2: Vec::new(),
            share: Some(share),
            cookie: None,
            retries: 0,
            child_spi: self.new_spi_in()?,
            last_retry: None,
            error: None,
        };
        let sa = Sa {
            spi_i: self.new_ike_spi()?,
            spi_r: 0,
            we_initiated: true,
            phase: Phase::Connecting,
            keys: None,
            hs: Some(Box::new(hs)),
            local: self.cfg.local,
            remote: self.cfg.remote,
            my_next_id: 0,
            peer_next_id: 0,
            last_reply: None,
            pending: None,
            intents: VecDeque::new(),
            created: now,
            established: None,
            last_rx: now,
            rekey_at: None,
            expire_at: None,
            nonces: (Vec::new(), Vec::new()),
            group,
            iv: 0,
            nat_local: false,
            nat_remote: false,
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
        let msg = Message {
            header: Header {
                spi_i: sa.spi_i,
                spi_r: 0,
                next_payload: 0,
                exchange: exchange::IKE_SA_INIT,
                flags: flags::INITIATOR,
                message_id: 0,
                length: 0,
            },
            payloads: p,
        };
        let Ok(data) = msg.emit() else { return };
        let base = self.cfg.retransmit_base;
        let sa = &mut self.sas[idx];
        if let Some(hs) = sa.hs.as_deref_mut() {
            hs.msg1 = data.clone();
        }
        sa.my_next_id = 1;
        sa.pending = Some(Pending {
            msg_id: 0,
            data: data.clone(),
            req: Req::Init,
            sent: 1,
            next: now + base,
        });
        let d = sa.datagram(data);
        self.send(d);
    }

    pub(super) fn on_init_response(
        &mut self,
        now: Instant,
        idx: usize,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Error> {
        let m = Message::parse(msg)?;
        let p = &m.payloads;
        let base = self.cfg.retransmit_base;
        // IKE_SA_INIT responses are not authenticated (§2.4, §2.21.1): a forged COOKIE,
        // INVALID_KE_PAYLOAD or error must not spoil the attempt. Retries happen at most
        // once per retransmission interval; errors end the attempt only if no valid
        // response arrives within one interval.
        let sa = &mut self.sas[idx];
        let hs = sa.hs.as_deref_mut().ok_or(Error::Unexpected)?;
        let recent_retry = hs.last_retry.is_some_and(|t| now < t + base);
        let current = hs.share.as_ref().map(KeyShare::group);
        let fail = |hs: &mut Handshake, pending: &mut Option<Pending>, r: DownReason| {
            hs.error.get_or_insert(r);
            if let Some(p) = pending.as_mut() {
                p.next = p.next.min(now + base);
            }
        };
        if let Some(c) = find_notify(p, notify::COOKIE) {
            if recent_retry {
                return Ok(());
            }
            if hs.retries >= MAX_INIT_RETRIES || c.data.is_empty() || c.data.len() > 64 {
                fail(hs, &mut sa.pending, DownReason::Rejected(notify::COOKIE));
                return Ok(());
            }
            hs.retries += 1;
            hs.last_retry = Some(now);
            hs.cookie = Some(c.data.clone());
            log::debug!("IKE: responder asks for a cookie");
            self.send_init(idx, now);
            return Ok(());
        }
        if let Some(ke) = find_notify(p, notify::INVALID_KE_PAYLOAD) {
            if recent_retry {
                return Ok(());
            }
            let want = ke
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(Group::from_id)
                .filter(|g| self.cfg.groups.contains(g));
            match want {
                Some(g) if hs.retries < MAX_INIT_RETRIES && Some(g) != current => {
                    hs.retries += 1;
                    hs.last_retry = Some(now);
                    hs.share = Some(KeyShare::new(g, &self.rng).map_err(|_| Error::Unexpected)?);
                    sa.group = g;
                    log::debug!("IKE: responder wants group {}", g.id());
                    self.send_init(idx, now);
                }
                _ => fail(hs, &mut sa.pending, DownReason::NoProposal),
            }
            return Ok(());
        }
        if let Some(e) = error_notify(p) {
            let reason = if e == notify::NO_PROPOSAL_CHOSEN {
                DownReason::NoProposal
            } else {
                DownReason::Rejected(e)
            };
            fail(hs, &mut sa.pending, reason);
            return Ok(());
        }
        if h.spi_r == 0 || has_unknown_critical(p) {
            return Err(Error::Unexpected);
        }
        let (Some(sa_p), Some((ke_group, ke_data)), Some(nr)) =
            (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            return Err(Error::Malformed(crate::wire::Error::Malformed));
        };
        let Some(group) = current else {
            return Err(Error::Unexpected);
        };
        if proposal::check_ike_reply(sa_p, group, false).is_none()
            || ke_group != group.id()
            || ke_data.len() != group.public_len()
        {
            fail(hs, &mut sa.pending, DownReason::NoProposal);
            return Ok(());
        }
        let Some(share) = hs.share.take() else {
            return Err(Error::Unexpected);
        };
        let Ok(shared) = share.agree(ke_data) else {
            // The key share is spent: this attempt cannot take another response.
            fail(hs, &mut sa.pending, DownReason::NoProposal);
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
        sa.last_rx = now;
        sa.pending = None;
        self.send_auth(idx, now);
        Ok(())
    }

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
        // A retransmission of a request we answered: answer the same. (Another request
        // with the same SPI is a new attempt: IKE_SA_INIT is unauthenticated, so a forged
        // copy must not block the real one.)
        let again = self.sas.iter().find_map(|s| match &s.last_reply {
            Some((req, resp))
                if s.spi_i == h.spi_i
                    && s.phase == Phase::HalfOpen
                    && s.remote == remote
                    && req.as_slice() == msg =>
            {
                Some(resp.clone())
            }
            _ => None,
        });
        if let Some(resp) = again {
            self.send(Datagram {
                local,
                remote,
                nat_t: local.port() != IKE_PORT,
                data: resp,
            });
            return Ok(());
        }
        let m = Message::parse(msg)?;
        let p = &m.payloads;
        let (Some(sa_p), Some((ke_group, ke_data)), Some(ni)) =
            (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            return Err(Error::Malformed(crate::wire::Error::Malformed));
        };
        let stateless = |kind: u16, data: Vec<u8>| -> Option<Datagram> {
            let m = Message {
                header: Header {
                    spi_i: h.spi_i,
                    spi_r: 0,
                    next_payload: 0,
                    exchange: exchange::IKE_SA_INIT,
                    flags: flags::RESPONSE,
                    message_id: 0,
                    length: 0,
                },
                payloads: vec![Payload::Notify(Notify::new(kind, data))],
            };
            Some(Datagram {
                local,
                remote,
                nat_t: local.port() != IKE_PORT,
                data: m.emit().ok()?,
            })
        };
        if has_unknown_critical(p) {
            if let Some(d) = stateless(notify::UNSUPPORTED_CRITICAL_PAYLOAD, Vec::new()) {
                self.send(d);
            }
            return Ok(());
        }
        let half_open = self
            .sas
            .iter()
            .filter(|s| s.phase == Phase::HalfOpen)
            .count();
        if half_open >= self.cfg.cookie_threshold {
            let want = self.cookie(ni, remote, h.spi_i);
            let got = match p.first() {
                Some(Payload::Notify(n)) if n.kind == notify::COOKIE => Some(&n.data),
                _ => None,
            };
            if got.is_none_or(|g| !ct_eq(g, &want)) {
                log::debug!("IKE: {half_open} half-open SAs, asking {remote} for a cookie");
                if let Some(d) = stateless(notify::COOKIE, want) {
                    self.send(d);
                }
                return Ok(());
            }
        }
        let group = match proposal::choose_ike(sa_p, &self.cfg.groups, Some(ke_group), None) {
            Choice::Accept {
                reply,
                group: Some(g),
                ..
            } => (reply, g),
            Choice::InvalidKe(g) => {
                if let Some(d) =
                    stateless(notify::INVALID_KE_PAYLOAD, g.id().to_be_bytes().to_vec())
                {
                    self.send(d);
                }
                return Ok(());
            }
            _ => {
                log::warn!("IKE: no acceptable IKE proposal from {remote}");
                if let Some(d) = stateless(notify::NO_PROPOSAL_CHOSEN, Vec::new()) {
                    self.send(d);
                }
                return Ok(());
            }
        };
        let (reply, g) = group;
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
        let Ok(shared) = share.agree(ke_data) else {
            if let Some(d) = stateless(notify::INVALID_SYNTAX, Vec::new()) {
                self.send(d);
            }
            return Ok(());
        };
        let skeyseed = prf(&[ni, nr.as_slice()].concat(), &[shared.expose()]);
        let keys = derive_sa_keys(&skeyseed, ni, &nr, h.spi_i, spi_r, false)
            .map_err(|_| Error::Unexpected)?;
        let (nat_local, nat_remote) = Self::nat_detect(p, h.spi_i, 0, local, remote);
        let mut out = vec![
            Payload::Sa(vec![reply]),
            Payload::Ke {
                group: g.id(),
                data: public,
            },
            Payload::Nonce(nr.clone()),
        ];
        out.extend(self.nat_notifies(h.spi_i, spi_r, local, remote));
        let resp = Message {
            header: Header {
                spi_i: h.spi_i,
                spi_r,
                next_payload: 0,
                exchange: exchange::IKE_SA_INIT,
                flags: flags::RESPONSE,
                message_id: 0,
                length: 0,
            },
            payloads: out,
        }
        .emit()?;
        // Bounded: the oldest half-open SA makes room.
        if half_open >= self.cfg.max_half_open {
            if let Some(oldest) = self
                .sas
                .iter()
                .enumerate()
                .filter(|(_, s)| s.phase == Phase::HalfOpen)
                .min_by_key(|(_, s)| s.created)
                .map(|(i, _)| i)
            {
                self.sas.remove(oldest);
            }
        }
        let sa = Sa {
            spi_i: h.spi_i,
            spi_r,
            we_initiated: false,
            phase: Phase::HalfOpen,
            keys: Some(keys),
            hs: Some(Box::new(Handshake {
                ni: ni.to_vec(),
                nr: nr.clone(),
                msg1: msg.to_vec(),
                msg2: resp.clone(),
                share: None,
                cookie: None,
                retries: 0,
                child_spi: 0,
                last_retry: None,
                error: None,
            })),
            local,
            remote,
            my_next_id: 0,
            peer_next_id: 1,
            last_reply: Some((msg.to_vec(), resp.clone())),
            pending: None,
            intents: VecDeque::new(),
            created: now,
            established: None,
            last_rx: now,
            rekey_at: None,
            expire_at: None,
            nonces: (ni.to_vec(), nr),
            group: g,
            iv: 0,
            nat_local,
            nat_remote,
        };
        self.sas.push(sa);
        self.send(Datagram {
            local,
            remote,
            nat_t: local.port() != IKE_PORT,
            data: resp,
        });
        Ok(())
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
