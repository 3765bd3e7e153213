//! SA proposals (RFC 7296 §3.3): what econet offers, how a responder chooses from an
//! offer, and how an initiator checks the choice. econet speaks one suite: IKE
//! ENCR_AES_GCM_16/256 + PRF_HMAC_SHA2_256 + x25519/ecp256, ESP ENCR_AES_GCM_16/256
//! without ESN, optionally with a PFS group on CHILD SA rekeys.

use super::crypto::Group;
use crate::wire::ike::{protocol, transform as t, Proposal, Transform};

const ENCR: Transform = Transform::with_key_len(t::ENCR, t::ENCR_AES_GCM_16, 256);
const PRF: Transform = Transform::new(t::PRF, t::PRF_HMAC_SHA2_256);
const ESN_NONE: Transform = Transform::new(t::ESN, t::ESN_NONE);

fn encr_ok(x: &Transform) -> bool {
    x.kind == t::ENCR && x.id == t::ENCR_AES_GCM_16 && x.key_len == Some(256) && !x.unknown_attr()
}

fn prf_ok(x: &Transform) -> bool {
    x.kind == t::PRF && x.id == t::PRF_HMAC_SHA2_256 && !x.unknown_attr()
}

/// With an AEAD cipher there is no integrity transform, or only INTEG_NONE.
fn integ_ok(p: &Proposal) -> bool {
    let mut integ = p.of(t::INTEG).peekable();
    integ.peek().is_none() || p.of(t::INTEG).any(|x| x.id == t::INTEG_NONE)
}

/// Our IKE offer: one proposal listing every group; `spi` for an IKE SA rekey.
pub fn ike_offer(groups: &[Group], spi: Option<u64>) -> Proposal {
    let mut transforms = vec![ENCR, PRF];
    transforms.extend(groups.iter().map(|g| Transform::new(t::DH, g.id())));
    Proposal {
        num: 1,
        protocol: protocol::IKE,
        spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
        transforms,
    }
}

/// Our ESP offer with our inbound SPI; `pfs` lists key exchange groups, the one of
/// our KE payload first (CREATE_CHILD_SA only), so a peer that wants another can say so
/// with INVALID_KE_PAYLOAD.
pub fn esp_offer(spi: u32, pfs: &[Group]) -> Proposal {
    let mut transforms = vec![ENCR];
    for g in pfs {
        transforms.push(Transform::new(t::DH, g.id()));
    }
    transforms.push(ESN_NONE);
    Proposal {
        num: 1,
        protocol: protocol::ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms,
    }
}

/// A responder's decision on an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The reply proposal, the peer's SPI from its proposal (IKE rekey: 8 bytes; ESP: 4;
    /// IKE_SA_INIT: none) and the key exchange group (if any).
    Accept {
        reply: Proposal,
        peer_spi: Vec<u8>,
        group: Option<Group>,
    },
    /// Acceptable, but the KE payload is for another group: ask for this one.
    InvalidKe(Group),
    NoProposal,
}

/// Chooses an IKE proposal. `ke` is the KE payload's group; `rekey_spi` is our new SPI
/// when this is an IKE SA rekey (the offer must then carry 8-byte SPIs).
pub fn choose_ike(
    offer: &[Proposal],
    groups: &[Group],
    ke: Option<u16>,
    rekey_spi: Option<u64>,
) -> Choice {
    let spi_len = if rekey_spi.is_some() { 8 } else { 0 };
    let mut invalid_ke = None;
    for p in offer {
        if p.protocol != protocol::IKE
            || p.spi.len() != spi_len
            || !p.transforms.iter().any(encr_ok)
            || !p.transforms.iter().any(prf_ok)
            || !integ_ok(p)
        {
            continue;
        }
        let candidates: Vec<Group> = groups
            .iter()
            .copied()
            .filter(|g| p.of(t::DH).any(|x| x.id == g.id() && !x.unknown_attr()))
            .collect();
        let Some(&first) = candidates.first() else {
            continue;
        };
        match ke.and_then(Group::from_id) {
            Some(g) if candidates.contains(&g) => {
                let mut reply = ike_offer(&[g], rekey_spi);
                reply.num = p.num;
                return Choice::Accept {
                    reply,
                    peer_spi: p.spi.clone(),
                    group: Some(g),
                };
            }
            _ => {
                invalid_ke.get_or_insert(first);
            }
        }
    }
    invalid_ke.map_or(Choice::NoProposal, Choice::InvalidKe)
}

/// Chooses an ESP proposal. `ke` is the KE payload's group (CREATE_CHILD_SA with PFS);
/// `in_auth` ignores key exchange transforms (IKE_AUTH carries no KE).
pub fn choose_esp(
    offer: &[Proposal],
    groups: &[Group],
    ke: Option<u16>,
    our_spi: u32,
    in_auth: bool,
) -> Choice {
    let mut invalid_ke = None;
    for p in offer {
        if p.protocol != protocol::ESP
            || p.spi.len() != 4
            || !p.transforms.iter().any(encr_ok)
            || !integ_ok(p)
        {
            continue;
        }
        let has_esn = p.of(t::ESN).next().is_some();
        if has_esn && !p.of(t::ESN).any(|x| x.id == t::ESN_NONE) {
            continue;
        }
        let dh: Vec<u16> = p.of(t::DH).map(|x| x.id).collect();
        let wants_dh = dh.iter().any(|&d| d != t::DH_NONE);
        let group = if in_auth || !wants_dh {
            if !in_auth && ke.is_some() {
                // A KE payload without a group in the proposal.
                continue;
            }
            None
        } else {
            let candidates: Vec<Group> = groups
                .iter()
                .copied()
                .filter(|g| dh.contains(&g.id()))
                .collect();
            match ke.and_then(Group::from_id) {
                Some(g) if candidates.contains(&g) => Some(g),
                None if dh.contains(&t::DH_NONE) => None,
                _ => {
                    if let Some(&g) = candidates.first() {
                        invalid_ke.get_or_insert(g);
                    }
                    continue;
                }
            }
        };
        let mut transforms = vec![ENCR];
        if let Some(g) = group {
            transforms.push(Transform::new(t::DH, g.id()));
        }
        if has_esn {
            transforms.push(ESN_NONE);
        }
        return Choice::Accept {
            reply: Proposal {
                num: p.num,
                protocol: protocol::ESP,
                spi: our_spi.to_be_bytes().to_vec(),
                transforms,
            },
            peer_spi: p.spi.clone(),
            group,
        };
    }
    invalid_ke.map_or(Choice::NoProposal, Choice::InvalidKe)
}

/// Checks a responder's IKE choice against our offer: one proposal, one transform of
/// each kind, from what we offered, with the group we sent a KE for. Returns the
/// responder's SPI (IKE rekey) or an empty one.
pub fn check_ike_reply(reply: &[Proposal], ke: Group, rekey: bool) -> Option<Vec<u8>> {
    let [p] = reply else { return None };
    let spi_len = if rekey { 8 } else { 0 };
    if p.protocol != protocol::IKE || p.spi.len() != spi_len {
        return None;
    }
    let mut seen = (0, 0, 0);
    for x in &p.transforms {
        match x.kind {
            t::ENCR if encr_ok(x) => seen.0 += 1,
            t::PRF if prf_ok(x) => seen.1 += 1,
            t::DH if x.id == ke.id() => seen.2 += 1,
            t::INTEG if x.id == t::INTEG_NONE => {}
            _ => return None,
        }
    }
    (seen == (1, 1, 1)).then(|| p.spi.clone())
}

/// Checks a responder's ESP choice; returns the peer's SPI.
pub fn check_esp_reply(reply: &[Proposal], pfs: Option<Group>) -> Option<u32> {
    let [p] = reply else { return None };
    if p.protocol != protocol::ESP {
        return None;
    }
    let mut encr = 0;
    let mut dh = None;
    for x in &p.transforms {
        match x.kind {
            t::ENCR if encr_ok(x) => encr += 1,
            t::ESN if x.id == t::ESN_NONE => {}
            t::INTEG if x.id == t::INTEG_NONE => {}
            t::DH if x.id == t::DH_NONE => {}
            t::DH if dh.is_none() => dh = Some(x.id),
            _ => return None,
        }
    }
    if encr != 1 || dh != pfs.map(Group::id) {
        return None;
    }
    p.spi_u32().filter(|&s| s >= 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Group; 2] = [Group::X25519, Group::Ecp256];

    #[test]
    fn ike_choice() {
        let offer = [ike_offer(&ALL, None)];
        match choose_ike(&offer, &ALL, Some(31), None) {
            Choice::Accept { reply, group, .. } => {
                assert_eq!(group, Some(Group::X25519));
                assert_eq!(
                    check_ike_reply(&[reply], Group::X25519, false),
                    Some(vec![])
                );
            }
            c => panic!("{c:?}"),
        }
        // A KE for a group we accept but do not prefer is still taken.
        assert!(matches!(
            choose_ike(&offer, &ALL, Some(19), None),
            Choice::Accept {
                group: Some(Group::Ecp256),
                ..
            }
        ));
        // Only ecp256 configured here: the initiator's x25519 KE is refused.
        assert_eq!(
            choose_ike(&offer, &[Group::Ecp256], Some(31), None),
            Choice::InvalidKe(Group::Ecp256)
        );
        // AES-CBC offers are not chosen.
        let mut cbc = ike_offer(&ALL, None);
        cbc.transforms[0] = Transform::with_key_len(t::ENCR, t::ENCR_AES_CBC, 256);
        assert_eq!(choose_ike(&[cbc], &ALL, Some(31), None), Choice::NoProposal);
        // Wrong key length.
        let mut k128 = ike_offer(&ALL, None);
        k128.transforms[0].key_len = Some(128);
        assert_eq!(
            choose_ike(&[k128], &ALL, Some(31), None),
            Choice::NoProposal
        );
    }

    #[test]
    fn ike_reply_check_is_strict() {
        let two_dh = ike_offer(&ALL, None);
        assert_eq!(check_ike_reply(&[two_dh], Group::X25519, false), None);
        let ok = ike_offer(&[Group::X25519], None);
        assert_eq!(
            check_ike_reply(std::slice::from_ref(&ok), Group::Ecp256, false),
            None
        );
        assert_eq!(
            check_ike_reply(&[ok.clone(), ok], Group::X25519, false),
            None
        );
        let rekey = ike_offer(&[Group::X25519], Some(42));
        assert_eq!(
            check_ike_reply(&[rekey], Group::X25519, true),
            Some(42u64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn charons_offer_and_choice() {
        use crate::wire::ike::captures::*;
        use crate::wire::ike::{Message, Payload};
        let sa = |b: &[u8]| match Message::parse(b).unwrap().payloads.remove(0) {
            Payload::Sa(p) => p,
            p => panic!("{p:?}"),
        };
        match choose_ike(&sa(&CHARON_IKE_SA_INIT_REQUEST), &ALL, Some(31), None) {
            Choice::Accept { reply, group, .. } => {
                assert_eq!(group, Some(Group::X25519));
                // What econet answered charon is what it chooses.
                assert_eq!(vec![reply], sa(&ECONET_IKE_SA_INIT_RESPONSE));
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            check_ike_reply(&sa(&CHARON_IKE_SA_INIT_RESPONSE), Group::X25519, false),
            Some(vec![])
        );
    }

    #[test]
    fn esp_choice() {
        let offer = [esp_offer(0x1234_5678, &[])];
        match choose_esp(&offer, &ALL, None, 0xabcd_0001, true) {
            Choice::Accept {
                reply,
                peer_spi,
                group,
            } => {
                assert_eq!(peer_spi, 0x1234_5678u32.to_be_bytes());
                assert_eq!(group, None);
                assert_eq!(check_esp_reply(&[reply], None), Some(0xabcd_0001));
            }
            c => panic!("{c:?}"),
        }
        // PFS in a rekey.
        let pfs = [esp_offer(0x1234_5678, &[Group::Ecp256])];
        match choose_esp(&pfs, &ALL, Some(19), 0xabcd_0002, false) {
            Choice::Accept { reply, group, .. } => {
                assert_eq!(group, Some(Group::Ecp256));
                assert_eq!(
                    check_esp_reply(&[reply], Some(Group::Ecp256)),
                    Some(0xabcd_0002)
                );
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            choose_esp(&pfs, &ALL, Some(31), 1000, false),
            Choice::InvalidKe(Group::Ecp256)
        );
        // In IKE_AUTH the group is ignored.
        assert!(matches!(
            choose_esp(&pfs, &ALL, None, 1000, true),
            Choice::Accept { group: None, .. }
        ));
        // ESN only: refused.
        let mut esn = esp_offer(0x1234_5678, &[]);
        esn.transforms[1] = Transform::new(t::ESN, t::ESN_YES);
        assert_eq!(
            choose_esp(&[esn], &ALL, None, 1000, true),
            Choice::NoProposal
        );
        // A reply SPI in the reserved range is refused.
        assert_eq!(check_esp_reply(&[esp_offer(255, &[])], None), None);
    }
}
