//! Finding payloads in a decoded message, and the few small payloads every exchange
//! builds.

use crate::wire::ike::{notify, protocol, Delete, Id, Notify, Payload, Proposal, Ts, TsV4};

/// Nonce lengths accepted (§3.9: 16 to 256 bytes).
const NONCE_MIN: usize = 16;
const NONCE_MAX: usize = 256;

pub(super) fn find_notify(p: &[Payload], kind: u16) -> Option<&Notify> {
    p.iter().find_map(|x| match x {
        Payload::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

/// The first error notify, if any.
pub(super) fn error_notify(p: &[Payload]) -> Option<u16> {
    p.iter().find_map(|x| match x {
        Payload::Notify(n) if notify::is_error(n.kind) => Some(n.kind),
        _ => None,
    })
}

pub(super) fn has_unknown_critical(p: &[Payload]) -> bool {
    p.iter()
        .any(|x| matches!(x, Payload::Unknown { critical: true, .. }))
}

pub(super) fn sa_payload(p: &[Payload]) -> Option<&[Proposal]> {
    p.iter().find_map(|x| match x {
        Payload::Sa(v) => Some(v.as_slice()),
        _ => None,
    })
}

pub(super) fn ke_payload(p: &[Payload]) -> Option<(u16, &[u8])> {
    p.iter().find_map(|x| match x {
        Payload::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

pub(super) fn nonce_payload(p: &[Payload]) -> Option<&[u8]> {
    p.iter()
        .find_map(|x| match x {
            Payload::Nonce(n) => Some(n.as_slice()),
            _ => None,
        })
        .filter(|n| (NONCE_MIN..=NONCE_MAX).contains(&n.len()))
}

pub(super) fn tsi_payload(p: &[Payload]) -> Option<&[Ts]> {
    p.iter().find_map(|x| match x {
        Payload::TsI(v) => Some(v.as_slice()),
        _ => None,
    })
}

pub(super) fn tsr_payload(p: &[Payload]) -> Option<&[Ts]> {
    p.iter().find_map(|x| match x {
        Payload::TsR(v) => Some(v.as_slice()),
        _ => None,
    })
}

pub(super) fn idi_payload(p: &[Payload]) -> Option<&Id> {
    p.iter().find_map(|x| match x {
        Payload::IdI(id) => Some(id),
        _ => None,
    })
}

pub(super) fn idr_payload(p: &[Payload]) -> Option<&Id> {
    p.iter().find_map(|x| match x {
        Payload::IdR(id) => Some(id),
        _ => None,
    })
}

/// (method, data)
pub(super) fn auth_payload(p: &[Payload]) -> Option<(u8, &[u8])> {
    p.iter().find_map(|x| match x {
        Payload::Auth { method, data } => Some((*method, data.as_slice())),
        _ => None,
    })
}

pub(super) fn v4s(t: &[TsV4]) -> Vec<Ts> {
    t.iter().copied().map(Ts::V4).collect()
}

pub(super) fn n(kind: u16) -> Payload {
    Payload::Notify(Notify::new(kind, Vec::new()))
}

pub(super) fn n_esp(kind: u16, spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: protocol::ESP,
        spi: spi.to_be_bytes().to_vec(),
        kind,
        data: Vec::new(),
    })
}

/// The Delete payload for an IKE SA (RFC 7296 §3.11: no SPIs, the SA is the one the
/// message travels in).
pub(super) fn delete_ike() -> Payload {
    Payload::Delete(Delete {
        protocol: protocol::IKE,
        spis: Vec::new(),
    })
}
