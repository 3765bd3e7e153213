//! The window of one, in both directions, on every IKE SA: our requests (the intent
//! queue, sending, the retransmission state) and the responses matched to them, the
//! peer's requests (message IDs, answers to retransmissions from a cache) and the
//! answers to them. Each exchange's own work is in its file.

use super::payloads::{delete_ike, has_unknown_critical, n};
use super::{datagram, Ike, Intent, Pending, Phase, Req, Sa};
use crate::ike::message::OpenError;
use crate::ike::{message, DownReason, Error, Event};
use crate::wire::ike::{exchange, notify, Header, Payload};
use std::net::SocketAddrV4;
use std::time::Instant;

/// What happens to the SA after a request's response is sent.
pub(super) enum After {
    Nothing,
    /// Drop this (non-current) SA.
    Remove,
    /// Everything goes down.
    Down(DownReason),
}

fn exchange_of(r: &Req) -> u8 {
    match r {
        Req::Init => exchange::IKE_SA_INIT,
        Req::Auth => exchange::IKE_AUTH,
        Req::Child(_) | Req::RekeyIke(_) => exchange::CREATE_CHILD_SA,
        Req::Dpd | Req::DeleteChildren(_) | Req::DeleteIke => exchange::INFORMATIONAL,
    }
}

impl Ike {
    pub(super) fn send_request(
        &mut self,
        idx: usize,
        now: Instant,
        exch: u8,
        p: &[Payload],
        req: Req,
    ) {
        let base = self.cfg.retransmit_base;
        let sa = &mut self.sas[idx];
        let id = sa.my_next_id;
        let Some(data) = sa.seal(exch, false, id, p) else {
            return;
        };
        sa.my_next_id = sa.my_next_id.wrapping_add(1);
        let d = sa.datagram(data.clone());
        let p = Pending {
            msg_id: id,
            data,
            req,
            sent: 1,
        };
        self.set_pending(idx, p, now + base);
        self.send(d);
    }

    /// A request nobody waits for an answer to (teardown notices).
    pub(super) fn send_oneshot(&mut self, idx: usize, exch: u8, p: &[Payload]) {
        let sa = &mut self.sas[idx];
        let id = sa.my_next_id;
        if let Some(data) = sa.seal(exch, false, id, p) {
            sa.my_next_id = sa.my_next_id.wrapping_add(1);
            let d = sa.datagram(data);
            self.send(d);
        }
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        idx: usize,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Error> {
        let sa = &mut self.sas[idx];
        if h.message_id.wrapping_add(1) == sa.peer_next_id {
            if let Some((req, resp)) = &sa.last_reply {
                if req.as_slice() == msg {
                    let d = datagram(local, remote, resp.clone());
                    self.send(d);
                    return Ok(());
                }
            }
            return Err(Error::Unexpected);
        }
        if h.message_id != sa.peer_next_id {
            return Err(Error::Unexpected);
        }
        let allowed = match sa.phase {
            Phase::HalfOpen => h.exchange == exchange::IKE_AUTH,
            Phase::Established | Phase::Superseded | Phase::Deleting => {
                h.exchange == exchange::INFORMATIONAL || h.exchange == exchange::CREATE_CHILD_SA
            }
            Phase::Connecting => false,
        };
        if !allowed {
            return Err(Error::Unexpected);
        }
        let p = open(sa, msg)?;
        // Answers go back where the request came from (NAT-T port floating, §2.23),
        // and so does everything else: a NAT in front of the peer may have given it a
        // new mapping, and the data path follows the current SA.
        let moved = sa.remote != remote;
        sa.local = local;
        sa.remote = remote;
        let id = sa.id();
        if moved && Some(id) == self.current && sa.phase == Phase::Established {
            log::debug!("IKE: {} moved to {remote}", self.cfg.remote_id);
            self.events.push_back(Event::PeerMoved { remote });
        }
        self.heard(idx, now);
        let (resp, after) = if has_unknown_critical(&p) {
            (
                vec![n(notify::UNSUPPORTED_CRITICAL_PAYLOAD)],
                After::Nothing,
            )
        } else {
            match h.exchange {
                exchange::IKE_AUTH => self.on_auth_request(now, idx, &p),
                exchange::INFORMATIONAL => self.on_informational(now, idx, &p),
                _ => (self.on_create_child(now, idx, &p), After::Nothing),
            }
        };
        // Establishing may have dropped other SAs: find ours again.
        let Some(idx) = self.idx_of(id) else {
            return Ok(());
        };
        let sa = &mut self.sas[idx];
        sa.peer_next_id = sa.peer_next_id.wrapping_add(1);
        if let Some(data) = sa.seal(h.exchange, true, h.message_id, &resp) {
            sa.last_reply = Some((msg.to_vec(), data.clone()));
            let d = sa.datagram(data);
            self.send(d);
        }
        match after {
            After::Nothing => {}
            After::Remove => {
                self.remove_sa(idx);
            }
            After::Down(reason) => self.down(now, reason, false),
        }
        Ok(())
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        idx: usize,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Error> {
        let sa = &mut self.sas[idx];
        let Some(pending) = &sa.pending else {
            return Err(Error::Unexpected);
        };
        if h.message_id != pending.msg_id || h.exchange != exchange_of(&pending.req) {
            return Err(Error::Unexpected);
        }
        if matches!(pending.req, Req::Init) {
            return self.on_init_response(now, idx, h, msg);
        }
        let p = open(sa, msg)?;
        self.heard(idx, now);
        let Some(pending) = self.take_pending(idx) else {
            return Err(Error::Unexpected);
        };
        match pending.req {
            Req::Init => {}
            Req::Auth => self.on_auth_response(now, idx, &p),
            Req::Dpd => {}
            Req::Child(r) => self.on_child_response(now, idx, &p, r),
            Req::RekeyIke(r) => self.on_ike_rekey_response(now, idx, &p, r),
            Req::DeleteChildren(spis) => self.on_children_deleted(now, spis),
            Req::DeleteIke => self.on_ike_deleted(now, idx),
        }
        Ok(())
    }

    pub(super) fn kick_all(&mut self, now: Instant) {
        for i in 0..self.sas.len() {
            self.kick(i, now);
        }
    }

    /// Sends the SA's next queued request if none is outstanding.
    fn kick(&mut self, idx: usize, now: Instant) {
        loop {
            let Some(sa) = self.sas.get_mut(idx) else {
                return;
            };
            let usable = matches!(sa.phase, Phase::Established | Phase::Deleting);
            if sa.pending.is_some() || !usable {
                return;
            }
            let Some(intent) = sa.intents.pop_front() else {
                return;
            };
            if sa.phase == Phase::Deleting && intent != Intent::DeleteIke {
                continue;
            }
            if self.start_request(idx, now, intent) {
                return;
            }
        }
    }

    /// Builds and sends one request; false if the intent turned out moot.
    fn start_request(&mut self, idx: usize, now: Instant, intent: Intent) -> bool {
        match intent {
            Intent::Dpd => {
                self.send_request(idx, now, exchange::INFORMATIONAL, &[], Req::Dpd);
                true
            }
            Intent::DeleteIke => {
                let d = delete_ike();
                self.send_request(idx, now, exchange::INFORMATIONAL, &[d], Req::DeleteIke);
                true
            }
            Intent::DeleteChildren(spis) => self.start_delete_children(idx, now, spis),
            Intent::RekeyIke { retries, group } => self.start_ike_rekey(idx, now, retries, group),
            Intent::RekeyChild {
                spi_in,
                retries,
                group,
            } => self.start_child_rekey(idx, now, spi_in, retries, group),
            Intent::CreateChild { retries, group } => {
                self.start_create_child(idx, now, retries, group)
            }
        }
    }
}

/// Opens an encrypted message with the inbound keys of `sa` (none yet: unexpected).
fn open(sa: &Sa, msg: &[u8]) -> Result<Vec<Payload>, Error> {
    let keys = sa.keys.as_ref().ok_or(Error::Unexpected)?;
    message::open(msg, &keys.enc_in).map_err(|e| match e {
        OpenError::Integrity => Error::Integrity,
        OpenError::Format(e) | OpenError::Inner(e) => Error::Malformed(e),
    })
}
