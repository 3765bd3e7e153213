//! Control messages written byte for byte as RFC 9301 lays them out, the way another
//! LISP implementation sends them (Instance-ID LCAFs with the IID mask-length set to
//! 32, records with two locators, an xTR-ID trailer), fed to econet's map server and
//! xTR; and econet's own SMRs checked byte for byte.

use super::ms_config::{MapServerConfig, Site};
use super::server::MapServer;
use super::xtr::{Action, Encap, MapServerPeer, Xtr, XtrConfig};
use crate::config::Secret;
use crate::wire::ipv4;
use crate::wire::lisp::{AuthAlg, Ecm, Eid, MapRequest, CONTROL_PORT, DATA_PORT};
use ring::hmac;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

const IID: u32 = 1000;
const MS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The peer xTR: EID-prefix 10.200.9.0/24 behind two RLOCs.
const PEER_RLOC1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 21);
const PEER_RLOC2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 22);
/// econet's xTR: EID 10.200.4.10 at RLOC 198.51.100.7.
const OUR_RLOC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const OUR_EID: Ipv4Addr = Ipv4Addr::new(10, 200, 4, 10);
const KEY: &[u8] = b"peer-secret";

/// Offset of the Authentication Data, and its length for HMAC-SHA-256.
const AUTH: usize = 16;
const MAC_LEN: usize = 32;

/// An Instance-ID LCAF (RFC 8060 §4.1) around an IPv4 address, as a peer sends it:
/// the IID mask-length is `iid_mask_len`.
#[rustfmt::skip]
fn iid_lcaf(iid_mask_len: u8, a: [u8; 4]) -> Vec<u8> {
    let iid = IID.to_be_bytes();
    vec![
        0x40, 0x03,                     // AFI 16387: LCAF
        0x00,                           // Rsvd1
        0x00,                           // Flags
        0x02,                           // Type 2: Instance ID
        iid_mask_len,                   // Rsvd2: IID mask-len
        0x00, 0x0a,                     // Length: IID (4) + AFI (2) + IPv4 (4)
        iid[0], iid[1], iid[2], iid[3], // Instance ID 1000
        0x00, 0x01,                     // AFI 1: IPv4
        a[0], a[1], a[2], a[3],         // Address
    ]
}

/// A locator (RFC 9301 §5.4): priority 1, weight `weight`, multicast unused, flags
/// L (local) and R (reachable) as given, IPv4.
#[rustfmt::skip]
fn locator(weight: u8, local: bool, a: Ipv4Addr) -> Vec<u8> {
    let o = a.octets();
    vec![
        1,                               // Priority
        weight,                          // Weight
        255,                             // M Priority: not for multicast
        0,                               // M Weight
        0x00,                            // Unused Flags
        if local { 0x05 } else { 0x01 }, // Unused Flags | L | p | R
        0x00, 0x01,                      // Loc-AFI: IPv4
        o[0], o[1], o[2], o[3],          // Locator
    ]
}

/// The peer's EID-record (RFC 9301 §5.4): 10.200.9.0/24 in instance 1000 with the
/// IID mask-length 32, two locators.
fn peer_record(ttl_mins: u32, rlocs: &[Ipv4Addr]) -> Vec<u8> {
    let mut r = ttl_mins.to_be_bytes().to_vec(); // Record TTL
    r.extend_from_slice(&[
        rlocs.len() as u8, // Locator Count
        24,                // EID mask-len
        0x10,              // ACT 0 (No-Action) | A (authoritative) | Reserved
        0x00,              // Reserved
        0x00,              // Rsvd | Map-Version Number (high bits)
        0x00,              // Map-Version Number
    ]);
    r.extend(iid_lcaf(0x20, [10, 200, 9, 0]));
    for (i, a) in rlocs.iter().enumerate() {
        r.extend(locator(50 + i as u8, true, *a));
    }
    r
}

/// HMAC-SHA-256 over the message with the Authentication Data zeroed, written into
/// it (RFC 9301 §5.6), computed here without econet's own code.
fn sign(msg: &mut [u8], key: &[u8]) {
    msg[AUTH..AUTH + MAC_LEN].fill(0);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg);
    msg[AUTH..AUTH + MAC_LEN].copy_from_slice(tag.as_ref());
}

fn mac_ok(msg: &[u8], key: &[u8]) -> bool {
    let mut m = msg.to_vec();
    sign(&mut m, key);
    m[AUTH..AUTH + MAC_LEN] == msg[AUTH..AUTH + MAC_LEN]
}

/// A Map-Register (RFC 9301 §5.6) of the peer: I and M set, one record, an xTR-ID.
fn peer_register(nonce: u64, want_notify: bool, record: &[u8]) -> Vec<u8> {
    let mut m = vec![
        0x32,                  // Type 3 | P=0 S=0 I=1 | Reserved
        0x00,                  // Reserved
        u8::from(want_notify), // Reserved | E=0 T=0 a=0 R=0 | M (want-map-notify)
        0x01,                  // Record Count
    ];
    m.extend_from_slice(&nonce.to_be_bytes()); // Nonce
    m.extend_from_slice(&[
        0x00, // Key ID
        0x02, // Algorithm ID 2: HMAC-SHA-256-128
        0x00,
        MAC_LEN as u8, // Authentication Data Length
    ]);
    m.extend_from_slice(&[0; MAC_LEN]); // Authentication Data
    m.extend_from_slice(record);
    m.extend_from_slice(&[0xa5; 16]); // xTR-ID
    m.extend_from_slice(&42u64.to_be_bytes()); // site-ID
    sign(&mut m, KEY);
    m
}

fn map_server() -> MapServer {
    MapServer::new(MapServerConfig {
        listen: MS,
        sites: vec![Site {
            name: "peer".into(),
            key: Secret(String::from_utf8_lossy(KEY).into_owned()),
            instance_id: IID,
            eid_prefixes: vec!["10.200.0.0/16".parse().unwrap()],
        }],
        registration_timeout: None,
    })
}

#[test]
fn map_notify_carries_the_registers_records_verbatim() {
    let mut ms = map_server();
    let now = Instant::now();
    let from = SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT);
    let record = peer_record(1440, &[PEER_RLOC1, PEER_RLOC2]);
    let reg = peer_register(0x1122_3344_5566_7788, true, &record);
    let out = ms.handle(now, from, &reg);
    assert_eq!(out.len(), 1, "one Map-Notify");
    assert_eq!(out[0].to, from, "back to where the Map-Register came from");
    let n = &out[0].bytes;
    assert_eq!(n.len(), reg.len());
    // Type 4 | I (the xTR-ID is echoed) | R=0, Reserved, Record Count 1.
    assert_eq!(&n[..4], &[0x48, 0x00, 0x00, 0x01]);
    assert_eq!(&n[4..12], &reg[4..12], "the Map-Register's nonce");
    assert_eq!(&n[12..16], &reg[12..16], "Key ID, Algorithm ID, length");
    let rec = AUTH + MAC_LEN..AUTH + MAC_LEN + record.len();
    assert_eq!(&n[rec.clone()], record.as_slice(), "the record as received");
    assert_eq!(n[rec.start + 15], 0x20, "IID mask-length kept");
    assert_eq!(&n[rec.end..], &reg[rec.end..], "xTR-ID and site-ID");
    assert!(mac_ok(n, KEY), "HMAC recomputed with the site key");
    assert!(!mac_ok(n, b"another key"));
    // The registration: the EID prefix and both locators.
    let eid = Eid::new(IID, "10.200.9.0/24".parse().unwrap());
    assert_eq!(
        ms.registration(&eid).map(|r| r.rlocs()),
        Some(vec![PEER_RLOC1, PEER_RLOC2])
    );

    // Another nonce is echoed as well.
    let reg = peer_register(0x0bad_cafe_0000_0002, true, &record);
    let out = ms.handle(now, from, &reg);
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0].bytes[4..12],
        &0x0bad_cafe_0000_0002u64.to_be_bytes()
    );

    // Without want-map-notify: registered, and no Map-Notify.
    let record = peer_record(1440, &[PEER_RLOC2]);
    let reg = peer_register(0, false, &record);
    assert!(ms.handle(now, from, &reg).is_empty());
    assert_eq!(
        ms.registration(&eid).map(|r| r.rlocs()),
        Some(vec![PEER_RLOC2])
    );
    assert_eq!(ms.counters().notifies, 2);

    // A Map-Register with a bad MAC gets nothing.
    let mut bad = peer_register(7, true, &record);
    bad[AUTH] ^= 1;
    assert!(ms.handle(now, from, &bad).is_empty());
    assert_eq!(ms.counters().auth_failures, 1);
}

fn xtr_cfg() -> XtrConfig {
    let mut c = XtrConfig::new(IID);
    c.map_servers = vec![MapServerPeer {
        addr: MS,
        key: KEY.to_vec(),
        auth: AuthAlg::HmacSha256,
    }];
    c.map_resolvers = vec![MS];
    c.encrypt = false;
    c.probe_interval = Duration::ZERO;
    c
}

fn drain(x: &mut Xtr, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| x.poll(now)).collect()
}

fn controls(actions: &[Action]) -> Vec<(SocketAddrV4, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendControl { to, bytes } => Some((*to, bytes.clone())),
            _ => None,
        })
        .collect()
}

/// A Map-Notify (RFC 9301 §5.7) for `nonce`, with `eid`'s record re-encoded the way
/// a peer map server does: IID mask-length 32, our locator.
fn notify(nonce: u64, eid: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0x40, 0x00, 0x00, 0x01]; // Type 4 | I=0 R=0, Record Count 1
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend_from_slice(&[0x00, 0x02, 0x00, MAC_LEN as u8]);
    m.extend_from_slice(&[0; MAC_LEN]);
    m.extend_from_slice(&1440u32.to_be_bytes()); // Record TTL
    m.extend_from_slice(&[1, 32, 0x10, 0x00, 0x00, 0x00]);
    m.extend(iid_lcaf(0x20, eid));
    m.extend(locator(100, true, OUR_RLOC));
    sign(&mut m, KEY);
    m
}

/// An xTR registered with the map server at `MS`; returns it and the nonce of its
/// Map-Register.
fn xtr(now: Instant) -> (Xtr, u64) {
    let mut x = Xtr::new(xtr_cfg(), now);
    x.set_local_rloc(now, Some(OUR_RLOC));
    x.set_local_eids(now, &[OUR_EID]);
    let sent = controls(&drain(&mut x, now));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, SocketAddrV4::new(MS, CONTROL_PORT));
    let nonce = u64::from_be_bytes(sent[0].1[4..12].try_into().unwrap());
    (x, nonce)
}

#[test]
fn xtr_takes_map_notify_records_whatever_their_iid_mask_len() {
    let now = Instant::now();
    let (mut x, nonce) = xtr(now);
    let ms = SocketAddrV4::new(MS, CONTROL_PORT);
    // The right nonce and MAC, but a record that is not ours: no acknowledgement.
    x.handle_control(now, ms, &notify(nonce, [10, 200, 9, 9]));
    assert!(drain(&mut x, now).is_empty());
    assert!(!x.registered());
    assert_eq!(x.status().counters.bad_notifies, 1);
    // Our record, with IID mask-length 32 where econet sent 0: registered.
    x.handle_control(now, ms, &notify(nonce, OUR_EID.octets()));
    assert_eq!(
        drain(&mut x, now),
        vec![Action::Registered { map_server: MS }]
    );
    assert!(x.registered());
    assert_eq!(x.status().counters.notifies, 1);
    // The same again (another part of the registration, or a copy): nothing.
    x.handle_control(now, ms, &notify(nonce, OUR_EID.octets()));
    assert!(drain(&mut x, now).is_empty());
    assert_eq!(x.status().counters.bad_notifies, 1);
    // An unsolicited Map-Notify (another nonce) is acknowledged: a Map-Notify-Ack
    // with its nonce and records, authenticated.
    let unsolicited = notify(0x5555_6666_7777_8888, OUR_EID.octets());
    x.handle_control(now, ms, &unsolicited);
    let sent = controls(&drain(&mut x, now));
    assert_eq!(sent.len(), 1);
    let (to, ack) = &sent[0];
    assert_eq!(*to, ms);
    assert_eq!(&ack[..4], &[0x50, 0x00, 0x00, 0x01], "Type 5, one record");
    assert_eq!(
        &ack[4..AUTH],
        &unsolicited[4..AUTH],
        "nonce, key and length"
    );
    assert_eq!(&ack[AUTH + MAC_LEN..], &unsolicited[AUTH + MAC_LEN..]);
    assert!(mac_ok(ack, KEY));
    // One with a wrong MAC gets nothing.
    let mut forged = notify(0x5555_6666_7777_8889, OUR_EID.octets());
    forged[AUTH] ^= 1;
    x.handle_control(now, ms, &forged);
    assert!(drain(&mut x, now).is_empty());
}

/// A Map-Reply (RFC 9301 §5.4) from the peer's ETR for its prefix.
fn peer_reply(nonce: u64, rlocs: &[Ipv4Addr]) -> Vec<u8> {
    let mut m = vec![0x20, 0x00, 0x00, 0x01]; // Type 2 | P=0 E=0 S=0, Record Count 1
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend(peer_record(1440, rlocs));
    m
}

/// The Map-Request inside an ECM sent to the map resolver.
fn ecm_request(to: SocketAddrV4, bytes: &[u8]) -> (Vec<u8>, MapRequest) {
    assert_eq!(
        to,
        SocketAddrV4::new(MS, CONTROL_PORT),
        "to the map resolver"
    );
    let e = Ecm::parse(bytes).unwrap();
    (e.message.to_vec(), MapRequest::parse(e.message).unwrap())
}

/// An IPv4 packet (UDP, no payload) from our ECO to `dst`, as the TUN gives it.
fn from_our_eco(dst: Ipv4Addr) -> Vec<u8> {
    let mut ip = vec![0u8; 28];
    ipv4::Repr {
        src_addr: OUR_EID,
        dst_addr: dst,
        protocol: ipv4::Protocol::Udp,
        payload_len: 8,
        ttl: 64,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]))
    .unwrap();
    ip
}

/// An xTR whose map-cache holds the peer's 10.200.9.0/24 at both its RLOCs.
fn xtr_with_peer(now: Instant) -> Xtr {
    let (mut x, nonce) = xtr(now);
    x.handle_control(
        now,
        SocketAddrV4::new(MS, CONTROL_PORT),
        &notify(nonce, OUR_EID.octets()),
    );
    drain(&mut x, now);
    let ip = from_our_eco(Ipv4Addr::new(10, 200, 9, 10));
    let mut out = vec![0u8; 256];
    assert!(matches!(x.encap(now, &ip, &mut out), Encap::Miss { .. }));
    let sent = controls(&drain(&mut x, now));
    let (_, req) = ecm_request(sent[0].0, &sent[0].1);
    x.handle_control(
        now,
        SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT),
        &peer_reply(req.nonce, &[PEER_RLOC1, PEER_RLOC2]),
    );
    drain(&mut x, now);
    let e = x.cache().iter().next().unwrap();
    assert_eq!(e.eid, Eid::new(IID, "10.200.9.0/24".parse().unwrap()));
    x
}

/// A Solicit-Map-Request (RFC 9301 §5.3, §6.1) as a peer whose mapping changed
/// sends it: Source-EID its changed prefix, EID-record the receiver's EID.
fn peer_smr(source_eid: [u8; 4], itr_rloc: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![
        0x11, // Type 1 | A=0 M=0 P=0 S=1
        0x00, // p=0 s=0 R R | Rsvd
        0x00, // Rsvd | L=0 D=0 | IRC 0 (one ITR-RLOC)
        0x01, // Record Count
    ];
    m.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes()); // Nonce
    m.extend(iid_lcaf(0x20, source_eid)); // Source-EID
    m.extend_from_slice(&[0x00, 0x01]); // ITR-RLOC-AFI 1
    m.extend_from_slice(&itr_rloc.octets());
    m.extend_from_slice(&[0x00, 32]); // Reserved | EID mask-len
    m.extend(iid_lcaf(0x20, OUR_EID.octets())); // EID-Prefix: ours
    m
}

#[test]
fn a_standard_smr_gets_an_smr_invoked_request_through_the_resolver() {
    let now = Instant::now();
    let mut x = xtr_with_peer(now);
    let new_rloc = Ipv4Addr::new(198, 51, 100, 23);
    let from = SocketAddrV4::new(new_rloc, CONTROL_PORT);
    // An SMR for a prefix we do not cache asks for nothing.
    x.handle_control(now, from, &peer_smr([10, 200, 77, 1], new_rloc));
    assert!(drain(&mut x, now).is_empty());
    // The peer's SMR names one EID of its prefix: the map-cache entry covering it,
    // 10.200.9.0/24, is asked for again (RFC 9301 §6.1), not the /32.
    x.handle_control(now, from, &peer_smr([10, 200, 9, 10], new_rloc));
    let sent = controls(&drain(&mut x, now));
    assert_eq!(sent.len(), 1, "one Map-Request");
    let (m, req) = ecm_request(sent[0].0, &sent[0].1);
    let mut want = vec![
        0x10, // Type 1 | A=0 M=0 P=0 S=0
        0x40, // p=0 s=1 (SMR-invoked)
        0x00, // IRC 0
        0x01, // Record Count
    ];
    want.extend_from_slice(&req.nonce.to_be_bytes());
    want.extend(iid_lcaf(0, OUR_EID.octets())); // Source-EID: the SMR's EID-record
    want.extend_from_slice(&[0x00, 0x01]); // ITR-RLOC: ours
    want.extend_from_slice(&OUR_RLOC.octets());
    want.extend_from_slice(&[0x00, 24]); // Reserved | EID mask-len: the entry's
    want.extend(iid_lcaf(0, [10, 200, 9, 0])); // EID-Prefix: the cache entry's
    assert_eq!(m, want);
    assert!(req.smr_invoked && !req.smr);
    // The answer moves the peer to its new RLOC.
    x.handle_control(
        now,
        SocketAddrV4::new(new_rloc, CONTROL_PORT),
        &peer_reply(req.nonce, &[new_rloc]),
    );
    drain(&mut x, now);
    let e = x.cache().iter().next().unwrap();
    assert_eq!(e.select(0), Some(new_rloc));
    assert_eq!(x.status().counters.smrs_received, 2);
}

#[test]
fn an_rloc_change_sends_smrs_naming_our_eid_and_theirs() {
    let now = Instant::now();
    let mut x = xtr_with_peer(now);
    // A third xTR sent us traffic (no map-cache entry for it): LISP data header
    // N | L | I, nonce, IID 1000, LSB 1 (RFC 9300 §5.3), then the inner packet.
    let other = Ipv4Addr::new(198, 51, 100, 30);
    let mut pkt = vec![0xc8, 0x12, 0x34, 0x56, 0x00, 0x03, 0xe8, 0x01];
    let mut ip = vec![0u8; 28];
    ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 200, 12, 5),
        dst_addr: OUR_EID,
        protocol: ipv4::Protocol::Udp,
        payload_len: 8,
        ttl: 64,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]))
    .unwrap();
    pkt.extend(ip);
    assert!(x
        .handle_data(now, SocketAddrV4::new(other, DATA_PORT), &mut pkt)
        .is_ok());
    let new_rloc = Ipv4Addr::new(198, 51, 100, 70);
    x.set_local_rloc(now, Some(new_rloc));
    // The map server hears of the new RLOC first: a Map-Register (type 3), alone.
    let nonce = registered_anew(&mut x, now);
    // Its Map-Notify: now the SMRs, whose Map-Requests will find the new RLOC.
    x.handle_control(
        now,
        SocketAddrV4::new(MS, CONTROL_PORT),
        &notify(nonce, OUR_EID.octets()),
    );
    let sent: Vec<_> = controls(&drain(&mut x, now))
        .into_iter()
        .filter(|(to, _)| *to.ip() != MS)
        .collect();
    let to: Vec<Ipv4Addr> = sent.iter().map(|(t, _)| *t.ip()).collect();
    assert_eq!(to, vec![PEER_RLOC1, PEER_RLOC2, other], "every ITR");
    for (t, m) in &sent {
        assert_eq!(t.port(), CONTROL_PORT);
        let (remote, mask_len) = if *t.ip() == other {
            ([10, 200, 12, 5], 32)
        } else {
            ([10, 200, 9, 0], 24)
        };
        let mut want = vec![
            0x11, // Type 1 | S
            0x00, // p=0 s=0
            0x20, // D (dont-map-reply) | IRC 0
            0x01, // Record Count
        ];
        want.extend_from_slice(&m[4..12]); // Nonce (random)
        want.extend(iid_lcaf(0, OUR_EID.octets())); // Source-EID: our changed EID
        want.extend_from_slice(&[0x00, 0x01]); // ITR-RLOC: the new one
        want.extend_from_slice(&new_rloc.octets());
        want.extend_from_slice(&[0x00, mask_len]); // EID-record: theirs
        want.extend(iid_lcaf(0, remote));
        assert_eq!(m, &want, "SMR to {t}");
    }
    assert_eq!(x.status().counters.smrs_sent, 3);
}

/// After an RLOC change, what the xTR sends at once: only the Map-Register for the
/// new RLOC (no SMR yet); returns its nonce.
fn registered_anew(x: &mut Xtr, now: Instant) -> u64 {
    let sent = controls(&drain(x, now));
    assert_eq!(sent.len(), 1, "the Map-Register alone");
    assert_eq!(sent[0].0, SocketAddrV4::new(MS, CONTROL_PORT));
    assert_eq!(sent[0].1[0] >> 4, 3, "a Map-Register");
    assert_eq!(x.status().counters.smrs_sent, 0);
    u64::from_be_bytes(sent[0].1[4..12].try_into().unwrap())
}

/// The SMRs of an RLOC change wait for the map server to acknowledge the new RLOC:
/// sent first, the SMR-invoked Map-Requests they cause could reach the map resolver
/// before the Map-Register and be forwarded to the old RLOC, and the peer would wait
/// for a retransmission. A map server that does not answer holds them back at most
/// `notify_timeout`. And a new address after none (a DHCP client's way) is a change.
#[test]
fn rloc_change_smrs_follow_the_map_notify_or_its_timeout() {
    let now = Instant::now();
    let mut x = xtr_with_peer(now);
    let smr_targets = |x: &mut Xtr, at: Instant| -> Vec<Ipv4Addr> {
        controls(&drain(x, at))
            .iter()
            .filter(|(to, m)| *to.ip() != MS && m[0] == 0x11)
            .map(|(to, _)| *to.ip())
            .collect()
    };
    // No Map-Notify: the SMRs go when it is overdue, not before.
    x.set_local_rloc(now, Some(Ipv4Addr::new(198, 51, 100, 70)));
    registered_anew(&mut x, now);
    let timeout = xtr_cfg().notify_timeout;
    let due = x.poll_timeout().unwrap();
    assert!(due <= now + timeout, "woken by the deadline");
    let before = now + timeout - Duration::from_millis(1);
    assert!(
        smr_targets(&mut x, before).is_empty(),
        "not before the deadline"
    );
    assert_eq!(
        smr_targets(&mut x, now + timeout),
        vec![PEER_RLOC1, PEER_RLOC2]
    );
    assert_eq!(x.status().counters.smrs_sent, 2);
    // The port loses its address, then gets another: SMRs again, after the notify.
    let later = now + Duration::from_secs(5);
    drain(&mut x, later);
    x.set_local_rloc(later, None);
    assert!(drain(&mut x, later).is_empty());
    x.set_local_rloc(later, Some(Ipv4Addr::new(198, 51, 100, 71)));
    let nonce = u64::from_be_bytes(
        controls(&drain(&mut x, later))
            .iter()
            .find(|(to, m)| *to.ip() == MS && m[0] >> 4 == 3)
            .expect("a Map-Register")
            .1[4..12]
            .try_into()
            .unwrap(),
    );
    assert_eq!(x.status().counters.smrs_sent, 2, "none before the notify");
    x.handle_control(
        later,
        SocketAddrV4::new(MS, CONTROL_PORT),
        &notify(nonce, OUR_EID.octets()),
    );
    assert_eq!(smr_targets(&mut x, later), vec![PEER_RLOC1, PEER_RLOC2]);
    // The same address back after none is no change: no SMRs.
    x.set_local_rloc(later, None);
    x.set_local_rloc(later, Some(Ipv4Addr::new(198, 51, 100, 71)));
    assert!(smr_targets(&mut x, later + timeout * 2).is_empty());
    assert_eq!(x.status().counters.smrs_sent, 4);
}

// ---- the field review (RFC 9300, 9301, 8060, 8061): one vector per rule ----------

/// A third xTR that asks the map resolver; its Map-Requests come from this port.
const REQ_RLOC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 40);
const REQ_PORT: u16 = 61000;

/// A Map-Register with the header bytes given: `b0` = Type | P S I | Reserved,
/// `b2` = Reserved | E T a R M. Records as given, an xTR-ID when I is set.
fn register_bits(b0: u8, b2: u8, nonce: u64, records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![b0, 0xff, b2, records.len() as u8]; // Reserved bits all set
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend_from_slice(&[0x00, 0x02, 0x00, MAC_LEN as u8]);
    m.extend_from_slice(&[0; MAC_LEN]);
    records.iter().for_each(|r| m.extend_from_slice(r));
    if b0 & 0x02 != 0 {
        m.extend_from_slice(&[0xa5; 16]);
        m.extend_from_slice(&42u64.to_be_bytes());
    }
    sign(&mut m, KEY);
    m
}

/// A Map-Request with the header bytes given (`b0` = Type | A M P S, `b1` = p s R R
/// Rsvd, `b2` = Rsvd L D IRC), Source-EID AFI 0 (RFC 9301 §5.2: a refresh), two
/// ITR-RLOCs (IPv6 first, then the requester's IPv4), and one EID-record per
/// `eids` entry with its Reserved byte set.
fn request_bits(b0: u8, b1: u8, b2: u8, eids: &[([u8; 4], u8)]) -> Vec<u8> {
    let mut m = vec![b0, b1, b2, eids.len() as u8];
    m.extend_from_slice(&0x0a0b_0c0d_0e0f_1011u64.to_be_bytes()); // Nonce
    m.extend_from_slice(&[0x00, 0x00]); // Source-EID-AFI 0: none
    m.extend_from_slice(&[0x00, 0x02]); // ITR-RLOC-AFI 2: IPv6
    m.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40,
    ]);
    m.extend_from_slice(&[0x00, 0x01]); // ITR-RLOC-AFI 1: IPv4
    m.extend_from_slice(&REQ_RLOC.octets());
    for (a, len) in eids {
        m.extend_from_slice(&[0xff, *len]); // Reserved (ignored) | EID mask-len
        m.extend(iid_lcaf(0x20, *a));
    }
    m
}

/// An ECM (RFC 9301 §5.8) around `inner` from the requester: the LISP header with
/// both R bits and the Reserved field set (to be ignored); inner IPv4 and UDP
/// headers (checksummed) from econet's own IPv4/UDP writers.
fn ecm_bits(inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; crate::wire::lisp::control::ECM_OVERHEAD + inner.len()];
    let n = Ecm {
        security: false,
        ddt: false,
        src: REQ_RLOC,
        dst: Ipv4Addr::new(10, 200, 9, 77),
        src_port: REQ_PORT,
        dst_port: CONTROL_PORT,
        message: inner,
    }
    .emit(&mut buf)
    .unwrap();
    buf.truncate(n);
    assert_eq!(&buf[..4], &[0x80, 0, 0, 0]);
    buf[..4].copy_from_slice(&[0x83, 0xff, 0xff, 0xff]); // Type 8 | S=0 D=0 R R | Reserved
    buf
}

/// The peer registered with proxy-reply (P), its locators given in descending
/// address order, each flagged L; every reserved or unused header bit set.
fn ms_with_proxy_peer(now: Instant) -> MapServer {
    let mut ms = map_server();
    let from = SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT);
    let rec = peer_record(1440, &[PEER_RLOC2, PEER_RLOC1]);
    // Type 3 | P=1 S=1 I=0 | Reserved 1; Reserved 1 | E=1 T=0 a=1 R=1 M=0.
    let reg = register_bits(0x3d, 0xf6, 9, &[rec]);
    assert!(ms.handle(now, from, &reg).is_empty(), "no M: no Map-Notify");
    assert_eq!(ms.counters().registers, 1);
    ms
}

/// Map-Request fields (RFC 9301 §5.2) read as the RFC says, and the proxy Map-Reply
/// (§5.4) written as it says: R, Rsvd and the record's Reserved byte ignored; the
/// reply goes to the first IPv4 ITR-RLOC at the inner UDP source port; A clear (a
/// proxy), no locator flagged local or probed, locators in ascending order.
#[test]
fn map_resolver_reads_requests_and_writes_proxy_replies_by_the_rfc() {
    let now = Instant::now();
    let mut ms = ms_with_proxy_peer(now);
    // Type 1 | A=0 M=0 P=0 S=0; p=0 s=0 R=1 R=1 Rsvd 1111; Rsvd 1 | L=1 D=0 | IRC 1.
    let req = request_bits(0x10, 0x3f, 0xc1, &[([10, 200, 9, 77], 32)]);
    let out = ms.handle(now, SocketAddrV4::new(REQ_RLOC, REQ_PORT), &ecm_bits(&req));
    assert_eq!(out.len(), 1, "one Map-Reply");
    assert_eq!(out[0].to, SocketAddrV4::new(REQ_RLOC, REQ_PORT));
    let mut want = vec![0x20, 0x00, 0x00, 0x01]; // Type 2 | P=0 E=0 S=0 | Count 1
    want.extend_from_slice(&req[4..12]); // the Map-Request's nonce
    want.extend_from_slice(&1440u32.to_be_bytes()); // Record TTL as registered
    want.extend_from_slice(&[
        2,    // Locator Count
        24,   // EID mask-len: the registered prefix
        0x00, // ACT 0 | A=0: a proxy is not authoritative
        0x00, // Reserved
        0x00, // Rsvd | Map-Version
        0x00,
    ]);
    want.extend(iid_lcaf(0, [10, 200, 9, 0]));
    // Ascending order; L (local to the ETR) cleared, R kept; weights as registered.
    want.extend(locator(51, false, PEER_RLOC1));
    want.extend(locator(50, false, PEER_RLOC2));
    assert_eq!(out[0].bytes, want);
    assert_eq!(ms.counters().proxy_replies, 1);
}

/// A map resolver drops RLOC-probes (P) and Map-Requests that want no reply (D)
/// (RFC 9301 §5.2), and answers every EID-record of one that has several: here a
/// registered one (by proxy) and one outside every site (a negative Map-Reply,
/// Natively-Forward, 15 minutes, A set: §8.3/§8.4), in one Map-Reply.
#[test]
fn map_resolver_drops_probes_and_dont_reply_and_answers_every_record() {
    let now = Instant::now();
    let mut ms = ms_with_proxy_peer(now);
    let from = SocketAddrV4::new(REQ_RLOC, REQ_PORT);
    let probe = request_bits(0x12, 0, 0x01, &[([10, 200, 9, 77], 32)]);
    let dont = request_bits(0x10, 0, 0x21, &[([10, 200, 9, 77], 32)]);
    let none = request_bits(0x10, 0, 0x01, &[]);
    for m in [probe, dont, none] {
        assert!(ms.handle(now, from, &ecm_bits(&m)).is_empty());
    }
    assert_eq!(ms.counters().malformed, 3);
    assert_eq!(ms.counters().proxy_replies, 0);

    let two = request_bits(
        0x10,
        0,
        0x01,
        &[([10, 200, 9, 77], 32), ([10, 9, 1, 1], 32)],
    );
    let out = ms.handle(now, from, &ecm_bits(&two));
    assert_eq!(out.len(), 1, "one Map-Reply for both");
    let b = &out[0].bytes;
    assert_eq!(&b[..4], &[0x20, 0x00, 0x00, 0x02], "two records");
    let rep = crate::wire::lisp::MapReply::parse(b).unwrap();
    assert_eq!(rep.records[0].eid.prefix.to_string(), "10.200.9.0/24");
    let neg = &rep.records[1];
    assert!(neg.locators.is_empty() && neg.authoritative);
    assert_eq!(
        neg.action,
        crate::wire::lisp::control::action::NATIVELY_FORWARD
    );
    assert_eq!(neg.ttl, super::server::NEGATIVE_TTL_OUTSIDE);
    assert!(neg.eid.prefix.contains(Ipv4Addr::new(10, 9, 1, 1)));
    // Its bytes: TTL 15, no locators, mask-len, ACT 1 | A.
    let at = b.len() - 10 - 18; // record header, then the IID LCAF
    assert_eq!(&b[at..at + 4], &15u32.to_be_bytes());
    assert_eq!(b[at + 4], 0, "Locator Count 0");
    assert_eq!(b[at + 5], neg.eid.prefix.len());
    assert_eq!(b[at + 6], 0x30, "ACT 1 (Natively-Forward) | A");
}

/// Map-Register bits (RFC 9301 §5.6): T asks for the records' TTL as the timeout;
/// S, E, a, R and the Reserved field are ignored; the Map-Notify goes to port 4342
/// whatever the source port (§8.2), with none of the Map-Register's flags but I.
#[test]
fn map_register_t_bit_and_the_map_notify_port() {
    let now = Instant::now();
    let mut ms = map_server();
    let from = SocketAddrV4::new(PEER_RLOC1, 50123);
    // Type 3 | P=0 S=1 I=1 | Reserved 1; Reserved 1 | E=1 T=1 a=1 R=1 M=1.
    let reg = register_bits(0x37, 0xff, 11, &[peer_record(2, &[PEER_RLOC1])]);
    let out = ms.handle(now, from, &reg);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT));
    let n = &out[0].bytes;
    assert_eq!(&n[..4], &[0x48, 0x00, 0x00, 0x01], "Type 4 | I only");
    assert_eq!(&n[4..16], &reg[4..16]);
    assert_eq!(&n[AUTH + MAC_LEN..], &reg[AUTH + MAC_LEN..]);
    assert!(mac_ok(n, KEY));
    let eid = Eid::new(IID, "10.200.9.0/24".parse().unwrap());
    let r = ms.registration(&eid).unwrap();
    assert_eq!(r.lifetime_ms, 120_000, "two minutes: the record TTL");
    assert!(!r.proxy_reply);
    // Without T, a TTL of two minutes is only an upper bound of the default.
    let reg = register_bits(0x30, 0x01, 12, &[peer_record(2, &[PEER_RLOC1])]);
    assert_eq!(ms.handle(now + Duration::from_secs(1), from, &reg).len(), 1);
    assert_eq!(ms.registration(&eid).unwrap().lifetime_ms, 3_000);
}

/// An RLOC-probe (RFC 9301 §5.2, §7.1) written as a peer sends it, to econet's xTR:
/// the Map-Reply has P, the probe's nonce, A in the record, and p on the probed
/// locator. With D set there is no Map-Reply; and a probe reply whose record lacks
/// A is discarded (§5.4).
#[test]
fn xtr_answers_rloc_probes_by_the_rfc() {
    let now = Instant::now();
    let (mut x, _) = xtr(now);
    let from = SocketAddrV4::new(PEER_RLOC1, 61001);
    let mut probe = vec![
        0x12, // Type 1 | P
        0x00, // p=0 s=0
        0x00, // IRC 0
        0x01, // Record Count
    ];
    probe.extend_from_slice(&0x7777_0000_0000_0001u64.to_be_bytes());
    probe.extend_from_slice(&[0x00, 0x00]); // Source-EID-AFI 0
    probe.extend_from_slice(&[0x00, 0x01]);
    probe.extend_from_slice(&PEER_RLOC1.octets());
    probe.extend_from_slice(&[0x00, 32]);
    probe.extend(iid_lcaf(0x20, OUR_EID.octets()));
    x.handle_control(now, from, &probe);
    let sent = controls(&drain(&mut x, now));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, from, "to the probe's source port");
    let mut want = vec![0x28, 0x00, 0x00, 0x01]; // Type 2 | P | Count 1
    want.extend_from_slice(&probe[4..12]);
    want.extend_from_slice(&1440u32.to_be_bytes());
    want.extend_from_slice(&[1, 32, 0x10, 0x00, 0x00, 0x00]); // A
    want.extend(iid_lcaf(0, OUR_EID.octets()));
    want.extend_from_slice(&[1, 100, 255, 0, 0x00, 0x07]); // L | p | R
    want.extend_from_slice(&[0x00, 0x01]);
    want.extend_from_slice(&OUR_RLOC.octets());
    assert_eq!(sent[0].1, want);

    probe[2] = 0x20; // D
    x.handle_control(now, from, &probe);
    assert!(controls(&drain(&mut x, now)).is_empty(), "D: no Map-Reply");

    let ignored = x.status().counters.ignored_control;
    let mut rep = vec![0x28, 0x00, 0x00, 0x01];
    rep.extend_from_slice(&1u64.to_be_bytes());
    let mut rec = peer_record(1440, &[PEER_RLOC1]);
    rec[6] = 0x00; // A clear
    rep.extend(rec);
    x.handle_control(now, from, &rep);
    assert_eq!(x.status().counters.ignored_control, ignored + 1);
}

/// LCAF fields (RFC 8060 §3, §4.1, §4.7; RFC 8061 §4): Rsvd1, Flags and Rsvd3/4
/// ignored; an Instance ID uses all 32 bits; a Security Key LCAF may carry up to
/// three keys (key ids 1–3) and econet takes the first.
#[test]
fn lcaf_fields_as_rfc_8060_and_8061_have_them() {
    // A Map-Request whose ITR-RLOC is a Security Key LCAF with three keys, and whose
    // EID-record is in instance 0x01000000 with every reserved LCAF byte set.
    let mut m = vec![0x10, 0x00, 0x00, 0x01];
    m.extend_from_slice(&5u64.to_be_bytes());
    m.extend_from_slice(&[0x00, 0x00]);
    let keys: [Vec<u8>; 3] = [vec![0x11; 32], vec![0x22; 32], vec![0x33; 32]];
    let body_len = 4 + keys.iter().map(|k| 2 + k.len()).sum::<usize>() + 6;
    m.extend_from_slice(&[0x40, 0x03, 0xff, 0xff, 11, 0xff]); // LCAF, Rsvd1/Flags set
    m.extend_from_slice(&(body_len as u16).to_be_bytes());
    m.extend_from_slice(&[3, 0xff, 5, 0xfe]); // Count 3 | Rsvd3 | suite 5 | Rsvd4 R=0
    for k in &keys {
        m.extend_from_slice(&(k.len() as u16).to_be_bytes());
        m.extend_from_slice(k);
    }
    m.extend_from_slice(&[0x00, 0x01]);
    m.extend_from_slice(&REQ_RLOC.octets());
    m.extend_from_slice(&[0x00, 32]);
    m.extend_from_slice(&[0x40, 0x03, 0xff, 0xff, 0x02, 0x20, 0x00, 0x0a]);
    m.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // Instance ID > 24 bits
    m.extend_from_slice(&[0x00, 0x01, 10, 1, 2, 3]);
    let req = MapRequest::parse(&m).unwrap();
    let k = req.itr_key().unwrap();
    assert_eq!((k.cipher_suite, k.rekey), (5, false));
    assert_eq!(k.public_key, keys[0]);
    assert_eq!(req.reply_rloc(), Some(REQ_RLOC));
    assert_eq!(req.eids[0].iid, 0x0100_0000);
    // Zero keys, or four, are refused.
    for count in [0u8, 4] {
        let mut bad = m.clone();
        bad[22] = count;
        assert!(MapRequest::parse(&bad).is_err(), "key count {count}");
    }
    // A 32-bit instance registers nowhere: the map server's sites are 24-bit, and
    // the record is refused as outside the site (not as malformed).
    let now = Instant::now();
    let mut ms = map_server();
    let mut rec = peer_record(1440, &[PEER_RLOC1]);
    rec[18..22].copy_from_slice(&0x0100_03e8u32.to_be_bytes()); // Instance ID
    let reg = register_bits(0x30, 0x01, 1, &[rec]);
    assert!(ms
        .handle(now, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT), &reg)
        .is_empty());
    assert_eq!(ms.counters().malformed, 0);
    assert_eq!(ms.counters().refused, 1);
}

/// The ECMs (Map-Requests to a map resolver) among what the xTR sends.
fn ecms(x: &mut Xtr, at: Instant) -> Vec<(SocketAddrV4, Vec<u8>)> {
    controls(&drain(x, at))
        .into_iter()
        .filter(|(_, m)| m[0] >> 4 == 8)
        .collect()
}

/// With two map resolvers and the first down, only the first new flow waits for a
/// request timeout: the resolver that answered is asked first from then on.
#[test]
fn new_requests_go_first_to_the_resolver_that_answered() {
    let now = Instant::now();
    let mr2 = Ipv4Addr::new(198, 51, 100, 2);
    let mut c = xtr_cfg();
    c.map_resolvers = vec![MS, mr2];
    let mut x = Xtr::new(c, now);
    x.set_local_rloc(now, Some(OUR_RLOC));
    x.set_local_eids(now, &[OUR_EID]);
    drain(&mut x, now);
    let mut out = vec![0u8; 256];
    let mut lookup = |x: &mut Xtr, at: Instant, dst: Ipv4Addr| {
        let ip = from_our_eco(dst);
        assert!(matches!(x.encap(at, &ip, &mut out), Encap::Miss { .. }));
        ecms(x, at)
    };
    let first = lookup(&mut x, now, Ipv4Addr::new(10, 200, 9, 10));
    assert_eq!(first.len(), 1);
    assert_eq!(*first[0].0.ip(), MS, "the first resolver first");
    let timeout = xtr_cfg().request_timeout;
    let retry = ecms(&mut x, now + timeout);
    assert_eq!(*retry[0].0.ip(), mr2, "then the second");
    let req = MapRequest::parse(Ecm::parse(&retry[0].1).unwrap().message).unwrap();
    let at = now + timeout;
    x.handle_control(
        at,
        SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT),
        &peer_reply(req.nonce, &[PEER_RLOC1]),
    );
    drain(&mut x, at);
    let next = lookup(&mut x, at, Ipv4Addr::new(10, 200, 77, 1));
    assert_eq!(*next[0].0.ip(), mr2, "the one that answered");
}

/// A Map-Register without its Map-Notify is sent again as it was, nonce and all,
/// after 1 s, then 2 s, then 4 s (RFC 9301 §5.7); after three the map server counts
/// as failed, and the next Map-Register (a new nonce) waits for the interval.
#[test]
fn an_unanswered_map_register_is_retransmitted_with_doubling_waits() {
    let now = Instant::now();
    let (mut x, nonce) = xtr(now);
    let registers = |x: &mut Xtr, at: Instant| -> Vec<u64> {
        controls(&drain(x, at))
            .iter()
            .filter(|(_, m)| m[0] >> 4 == 3)
            .map(|(_, m)| u64::from_be_bytes(m[4..12].try_into().unwrap()))
            .collect()
    };
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert!(registers(&mut x, now + s(1) - ms(1)).is_empty());
    assert_eq!(registers(&mut x, now + s(1)), vec![nonce]);
    assert!(registers(&mut x, now + s(3) - ms(1)).is_empty());
    assert_eq!(registers(&mut x, now + s(3)), vec![nonce]);
    assert!(registers(&mut x, now + s(7) - ms(1)).is_empty());
    assert!(
        registers(&mut x, now + s(7)).is_empty(),
        "failed, not resent"
    );
    assert!(!x.registered());
    let next = registers(&mut x, now + s(7) + xtr_cfg().register_interval);
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], nonce, "a new Map-Register, a new nonce");
}

// ---- what a run against lispers.net showed (its bytes, as captured) ----------------

/// lispers.net's locator for `rloc { interface = eth0 }`: an AFI List LCAF (RFC 8060
/// §4.10) of its IPv4 address and a distinguished name (AFI 17) "vm".
#[rustfmt::skip]
fn afi_list_locator(weight: u8, a: Ipv4Addr) -> Vec<u8> {
    let o = a.octets();
    vec![
        1, weight, 255, 0, 0x00, 0x01,          // Priority, Weight, M Priority/Weight, R
        0x40, 0x03, 0x00, 0x00, 0x01, 0x00,     // LCAF: Rsvd1, Flags, Type 1 (AFI List), Rsvd2
        0x00, 0x0b,                             // Length 11
        0x00, 0x01, o[0], o[1], o[2], o[3],     // AFI 1: the RLOC
        0x00, 0x11, b'v', b'm', 0x00,           // AFI 17: "vm", zero-terminated
    ]
}

/// A registration whose locator is an AFI List is stored with its IPv4 address
/// (it was acknowledged and then could not be stored: every Map-Request for it went
/// unanswered), forwarded to, and written to the registrations file.
#[test]
fn a_locator_in_an_afi_list_registers_by_its_ipv4_address() {
    let now = Instant::now();
    let mut ms = map_server();
    let mut rec = 180u32.to_be_bytes().to_vec();
    rec.extend_from_slice(&[1, 24, 0x10, 0x00, 0x00, 0x00]);
    rec.extend(iid_lcaf(0, [10, 200, 9, 0]));
    rec.extend(afi_list_locator(100, PEER_RLOC1));
    let reg = register_bits(0x30, 0x01, 0x01df_dfdf_ddcc_bbaa, &[rec]);
    let out = ms.handle(now, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT), &reg);
    assert_eq!(out.len(), 1, "a Map-Notify");
    let eid = Eid::new(IID, "10.200.9.0/24".parse().unwrap());
    let r = ms.registration(&eid).expect("registered");
    assert_eq!(r.rlocs(), vec![PEER_RLOC1]);
    assert!(r.record.to_bytes().is_ok(), "storable");
    // A Map-Request for it goes to that RLOC.
    let req = request_bits(0x10, 0, 0x01, &[([10, 200, 9, 1], 32)]);
    let out = ms.handle(now, SocketAddrV4::new(REQ_RLOC, REQ_PORT), &ecm_bits(&req));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT));
    assert_eq!(ms.counters().forwarded, 1);
}

/// An encrypting xTR with a request in flight for 10.200.9.10; returns the request.
fn encrypting_xtr(now: Instant) -> (Xtr, MapRequest) {
    let mut c = xtr_cfg();
    c.encrypt = true;
    let mut x = Xtr::new(c, now);
    x.set_local_rloc(now, Some(OUR_RLOC));
    x.set_local_eids(now, &[OUR_EID]);
    drain(&mut x, now);
    let ip = from_our_eco(Ipv4Addr::new(10, 200, 9, 10));
    let mut out = vec![0u8; 256];
    assert!(matches!(
        x.encap(now, &ip, &mut out),
        Encap::Miss { queued: true }
    ));
    let sent = ecms(&mut x, now);
    assert_eq!(sent.len(), 1);
    let req = MapRequest::parse(Ecm::parse(&sent[0].1).unwrap().message).unwrap();
    assert!(req.itr_key().is_some(), "the request carries our key");
    (x, req)
}

/// A Map-Reply whose locator is an AFI List of the RLOC and a Security Key LCAF
/// (cipher suite 5), as lispers.net answers an encrypting ITR, byte for byte.
fn afi_list_keyed_reply(nonce: u64, key: &[u8; 32], rloc: Ipv4Addr) -> Vec<u8> {
    let o = rloc.octets();
    let mut m = vec![0x20, 0x00, 0x00, 0x01];
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend_from_slice(&1440u32.to_be_bytes());
    m.extend_from_slice(&[1, 24, 0x10, 0x00, 0x00, 0x00]);
    m.extend(iid_lcaf(0, [10, 200, 9, 0]));
    m.extend_from_slice(&[1, 100, 255, 0, 0x00, 0x05]); // L | R
    m.extend_from_slice(&[0x40, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x3a]); // AFI List, 58
    m.extend_from_slice(&[0x00, 0x01, o[0], o[1], o[2], o[3]]);
    m.extend_from_slice(&[0x40, 0x03, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x2c]); // Security Key, 44
    m.extend_from_slice(&[0x01, 0x00, 0x05, 0x00, 0x00, 0x20]); // 1 key, suite 5, 32 bytes
    m.extend_from_slice(key);
    m.extend_from_slice(&[0x00, 0x01, o[0], o[1], o[2], o[3]]);
    m
}

/// The key in an AFI List is taken: the queued packet leaves encrypted (key id 1).
#[test]
fn a_key_in_an_afi_list_locator_is_used() {
    let now = Instant::now();
    let (mut x, req) = encrypting_xtr(now);
    let rng = ring::rand::SystemRandom::new();
    let peer = super::crypto::KeyPair::generate(&rng).unwrap();
    let reply = afi_list_keyed_reply(req.nonce, peer.public(), PEER_RLOC1);
    x.handle_control(now, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT), &reply);
    let data: Vec<_> = drain(&mut x, now)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendData { to, bytes } => Some((to, bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(data.len(), 1, "the queued packet goes");
    assert_eq!(data[0].0, SocketAddrV4::new(PEER_RLOC1, DATA_PORT));
    assert_eq!(data[0].1[0] & 0x03, 1, "encrypted with key id 1");
    assert_eq!(x.status().counters.key_exchanges, 1);
}

/// An answer that gives nothing usable (no IPv4 locator) does not set off another
/// Map-Request at once: one a second for a destination (RFC 9301 §5.3). lispers.net
/// got 640 a second before.
#[test]
fn an_unusable_answer_waits_a_second_before_the_next_request() {
    let now = Instant::now();
    let (mut x, req) = encrypting_xtr(now);
    let mut m = vec![0x20, 0x00, 0x00, 0x01];
    m.extend_from_slice(&req.nonce.to_be_bytes());
    m.extend_from_slice(&1440u32.to_be_bytes());
    m.extend_from_slice(&[1, 24, 0x10, 0x00, 0x00, 0x00]);
    m.extend(iid_lcaf(0, [10, 200, 9, 0]));
    m.extend_from_slice(&[1, 100, 255, 0, 0x00, 0x01]);
    m.extend_from_slice(&[0x40, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05]); // AFI List, 5
    m.extend_from_slice(&[0x00, 0x11, b'v', b'm', 0x00]); // a name only
    x.handle_control(now, SocketAddrV4::new(PEER_RLOC1, CONTROL_PORT), &m);
    let ip = from_our_eco(Ipv4Addr::new(10, 200, 9, 10));
    let mut out = vec![0u8; 256];
    let mut requests = 0;
    for ms in 0..1000u64 {
        let at = now + Duration::from_millis(ms);
        let _ = x.encap(at, &ip, &mut out);
        requests += ecms(&mut x, at).len();
    }
    assert_eq!(requests, 0, "none within the second");
    let at = now + Duration::from_secs(1);
    let _ = x.encap(at, &ip, &mut out);
    assert_eq!(ecms(&mut x, at).len(), 1, "then one");
}

/// lispers.net's RLOC-probe names no EID (EID-record AFI 0, mask-len 0): the probe is
/// answered for all our EIDs, P and A set, p on our locator.
#[test]
fn a_probe_without_an_eid_is_answered_for_ours() {
    let now = Instant::now();
    let (mut x, _) = xtr(now);
    let from = SocketAddrV4::new(PEER_RLOC1, 61002);
    let mut probe = vec![0x12, 0x00, 0x00, 0x01];
    probe.extend_from_slice(&0x7777_0000_0000_0002u64.to_be_bytes());
    probe.extend_from_slice(&[0x00, 0x00]); // Source-EID-AFI 0
    probe.extend_from_slice(&[0x00, 0x01]);
    probe.extend_from_slice(&PEER_RLOC1.octets());
    probe.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]); // Reserved, mask-len 0, AFI 0
    x.handle_control(now, from, &probe);
    let sent = controls(&drain(&mut x, now));
    assert_eq!(sent.len(), 1, "a probe reply");
    let rep = crate::wire::lisp::MapReply::parse(&sent[0].1).unwrap();
    assert!(rep.probe && rep.nonce == 0x7777_0000_0000_0002);
    assert_eq!(rep.records.len(), 1);
    assert_eq!(rep.records[0].eid, Eid::host(IID, OUR_EID));
    assert!(rep.records[0].authoritative && rep.records[0].locators[0].probed);
}
