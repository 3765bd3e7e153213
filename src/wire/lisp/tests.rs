use super::addr::*;
use super::control::*;
use super::*;
use crate::wire::Error;
use std::net::Ipv4Addr;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn eid(s: &str) -> Eid {
    Eid::new(1000, s.parse().unwrap())
}

fn key() -> SecurityKey {
    SecurityKey {
        cipher_suite: 5,
        rekey: false,
        public_key: (0..32).collect(),
    }
}

fn locator(rloc: &str, k: Option<SecurityKey>) -> Locator {
    Locator {
        priority: 1,
        weight: 100,
        m_priority: 255,
        m_weight: 0,
        local: true,
        probed: false,
        reachable: true,
        address: match k {
            Some(key) => Address::SecurityKey {
                key,
                addr: Some(ip(rloc)),
            },
            None => Address::Ipv4(ip(rloc)),
        },
    }
}

fn record(k: Option<SecurityKey>) -> Record {
    Record {
        ttl: 1440,
        eid: eid("10.200.4.10/32"),
        action: action::NO_ACTION,
        authoritative: true,
        map_version: 0,
        locators: vec![locator("198.51.100.7", k)],
    }
}

fn request(k: Option<SecurityKey>) -> MapRequest {
    MapRequest {
        authoritative: false,
        probe: false,
        smr: false,
        pitr: false,
        smr_invoked: false,
        local_xtr: false,
        dont_reply: false,
        nonce: 0x0102_0304_0506_0708,
        source_eid: Address::InstanceId {
            iid: 1000,
            mask_len: 0,
            addr: Some(ip("10.200.4.11")),
        },
        itr_rlocs: vec![match k {
            Some(key) => Address::SecurityKey {
                key,
                addr: Some(ip("198.51.100.8")),
            },
            None => Address::Ipv4(ip("198.51.100.8")),
        }],
        eids: vec![eid("10.200.4.10/32")],
        map_reply: None,
    }
}

fn register() -> MapRegister {
    MapRegister {
        proxy_reply: false,
        want_notify: true,
        use_ttl: false,
        nonce: 0xdead_beef_0000_0001,
        key_id: 0,
        alg: AuthAlg::HmacSha256,
        records: vec![record(None)],
        xtr_id: None,
    }
}

fn emit<F: Fn(&mut [u8]) -> crate::wire::Result<usize>>(f: F) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let n = f(&mut b).unwrap();
    b.truncate(n);
    b
}

#[test]
fn data_header_layout_and_roundtrip() {
    let r = data::Repr {
        nonce: Some(0xabcdef),
        instance_id: Some(1000),
        lsb: Some(1),
        key_id: 1,
        ..Default::default()
    };
    let mut b = [0u8; 8];
    r.emit(&mut data::Packet::new_unchecked(&mut b[..]))
        .unwrap();
    // N|L|I and key id 1; nonce; IID 1000 = 0x0003e8, LSB 0x01.
    assert_eq!(b, [0xc9, 0xab, 0xcd, 0xef, 0x00, 0x03, 0xe8, 0x01]);
    let p = data::Packet::new_checked(&b[..]).unwrap();
    assert_eq!(data::Repr::parse(&p).unwrap(), r);
    assert_eq!(
        data::Packet::new_checked(&b[..7]).err(),
        Some(Error::Truncated)
    );
    // RFC 9300 §5.3: N and V together read as a nonce; E without N, and R, are
    // ignored; I without L leaves the low byte alone.
    let parse = |f: u8| {
        let mut m = b;
        m[0] = f;
        data::Repr::parse(&data::Packet::new_checked(&m[..]).unwrap()).unwrap()
    };
    let nv = parse(0x90);
    assert_eq!((nv.nonce, nv.map_version), (Some(0xabcdef), None));
    let e = parse(0x20);
    assert_eq!((e.nonce, e.echo_nonce, e.map_version), (None, false, None));
    let v = parse(0x10);
    assert_eq!((v.nonce, v.map_version), (None, Some(0xabcdef)));
    assert_eq!(parse(0xcd), data::Repr { key_id: 1, ..r });
    let i = parse(0x08);
    assert_eq!((i.instance_id, i.lsb), (Some(1000), None));
}

#[test]
fn map_request_layout() {
    let m = request(None);
    let b = emit(|buf| m.emit(buf));
    // Type 1, no flags, IRC 0, one record.
    assert_eq!(&b[..4], &[0x10, 0x00, 0x00, 0x01]);
    assert_eq!(&b[4..12], &0x0102_0304_0506_0708u64.to_be_bytes());
    // Source EID: LCAF IID 1000 around 10.200.4.11.
    assert_eq!(
        &b[12..30],
        &[0x40, 0x03, 0, 0, 2, 0, 0, 10, 0, 0, 0x03, 0xe8, 0, 1, 10, 200, 4, 11]
    );
    // ITR-RLOC: AFI 1.
    assert_eq!(&b[30..36], &[0, 1, 198, 51, 100, 8]);
    // EID record: reserved, mask 32, LCAF.
    assert_eq!(&b[36..40], &[0, 32, 0x40, 0x03]);
    assert_eq!(b.len(), 36 + 4 + 16);
    assert_eq!(MapRequest::parse(&b).unwrap(), m);
}

#[test]
fn map_request_roundtrips() {
    let mut m = request(Some(key()));
    m.smr = true;
    m.map_reply = Some(record(None));
    let b = emit(|buf| m.emit(buf));
    assert_eq!(b[0], 0x15, "type 1 with M and S");
    let p = MapRequest::parse(&b).unwrap();
    assert_eq!(p, m);
    assert_eq!(p.reply_rloc(), Some(ip("198.51.100.8")));
    assert_eq!(p.itr_key(), Some(&key()));
    let mut m = request(None);
    m.probe = true;
    m.smr_invoked = true;
    m.itr_rlocs
        .push(Address::Ipv6("2001:db8::1".parse().unwrap()));
    let b = emit(|buf| m.emit(buf));
    assert_eq!(&b[..3], &[0x12, 0x40, 0x01]);
    assert_eq!(MapRequest::parse(&b).unwrap(), m);
}

#[test]
fn map_reply_roundtrips_with_and_without_key() {
    for k in [None, Some(key())] {
        let m = MapReply {
            probe: k.is_none(),
            echo_nonce: false,
            security: false,
            nonce: 7,
            records: vec![record(k.clone())],
        };
        let b = emit(|buf| m.emit(buf));
        assert_eq!(MapReply::parse(&b).unwrap(), m);
    }
    // A negative reply: no locators, an action.
    let m = MapReply {
        probe: false,
        echo_nonce: false,
        security: false,
        nonce: 9,
        records: vec![Record {
            ttl: 1,
            eid: eid("10.200.8.0/21"),
            action: action::NATIVELY_FORWARD,
            authoritative: true,
            map_version: 0,
            locators: vec![],
        }],
    };
    let b = emit(|buf| m.emit(buf));
    // TTL 1, 0 locators, mask 21, ACT=1 with A.
    assert_eq!(&b[12..20], &[0, 0, 0, 1, 0, 21, 0x30, 0]);
    assert_eq!(MapReply::parse(&b).unwrap(), m);
}

#[test]
fn security_key_lcaf_layout() {
    let a = Address::SecurityKey {
        key: key(),
        addr: Some(ip("198.51.100.8")),
    };
    let mut b = [0u8; 64];
    let n = {
        let mut w = rw::Writer::new(&mut b);
        a.emit(&mut w).unwrap();
        w.pos()
    };
    assert_eq!(n, a.buffer_len());
    // AFI 16387, type 11, length 6 + 32 + 6, key count 1, suite 5, key length 32.
    assert_eq!(
        &b[..14],
        &[0x40, 0x03, 0, 0, 11, 0, 0, 44, 1, 0, 5, 0, 0, 32]
    );
    assert_eq!(&b[46..52], &[0, 1, 198, 51, 100, 8]);
    let mut r = rw::Reader::new(&b[..n]);
    assert_eq!(Address::parse(&mut r).unwrap(), a);
}

#[test]
fn map_register_authenticates_whole_message() {
    let m = register();
    let k = b"ms-secret";
    let b = emit(|buf| m.emit_register(buf, k));
    // Type 3 with want-map-notify (M) and one record; key id 0, algorithm 2, 32 bytes.
    assert_eq!(&b[..4], &[0x30, 0, 0x01, 0x01]);
    assert_eq!(&b[12..16], &[0, 2, 0, 32]);
    assert!(auth::verify(&b, k));
    assert!(!auth::verify(&b, b"wrong"));
    let p = MapRegister::parse(&b).unwrap();
    assert_eq!(p, m);
    // The MAC is HMAC-SHA-256 with the raw key over the message with a zero field.
    let mut z = b.clone();
    z[16..48].fill(0);
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k), &z);
    assert_eq!(&b[16..48], tag.as_ref());
    // Any changed byte breaks it.
    for i in 0..b.len() {
        let mut t = b.clone();
        t[i] ^= 0x10;
        assert!(!auth::verify(&t, k), "byte {i}");
    }
    // A truncated HMAC-SHA-256-128 (16 bytes) from a peer is accepted.
    let mut t = b[..16].to_vec();
    t[15] = 16;
    t.extend_from_slice(&[0u8; 16]);
    t.extend_from_slice(&b[48..]);
    let mut z = t.clone();
    z[16..32].fill(0);
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k), &z);
    t[16..32].copy_from_slice(&tag.as_ref()[..16]);
    assert!(auth::verify(&t, k));
    assert_eq!(MapRegister::parse(&t).unwrap().records, m.records);
}

#[test]
fn map_register_sha1_and_xtr_id() {
    let mut m = register();
    m.alg = AuthAlg::HmacSha1;
    m.proxy_reply = true;
    m.xtr_id = Some(XtrId {
        xtr_id: [7; 16],
        site_id: 42,
    });
    let b = emit(|buf| m.emit_register(buf, b"k"));
    assert_eq!(&b[..4], &[0x3a, 0, 0x01, 0x01], "P and I bits");
    assert_eq!(&b[12..16], &[0, 1, 0, 20]);
    assert!(auth::verify(&b, b"k"));
    assert_eq!(MapRegister::parse(&b).unwrap(), m);
    let n = emit(|buf| m.emit_notify(buf, b"k"));
    assert_eq!(&n[..4], &[0x48, 0, 0, 0x01], "Map-Notify with I bit");
    assert!(auth::verify(&n, b"k"));
    let p = MapRegister::parse(&n).unwrap();
    assert_eq!(
        (p.records, p.xtr_id, p.nonce),
        (m.records, m.xtr_id, m.nonce)
    );
}

#[test]
fn ecm_roundtrip() {
    let inner = emit(|buf| request(None).emit(buf));
    let e = Ecm {
        security: false,
        ddt: false,
        src: ip("198.51.100.8"),
        dst: ip("10.200.4.10"),
        src_port: CONTROL_PORT,
        dst_port: CONTROL_PORT,
        message: &inner,
    };
    let b = emit(|buf| e.emit(buf));
    assert_eq!(b[0], 0x80);
    assert_eq!(b.len(), ECM_OVERHEAD + inner.len());
    assert_eq!(Ecm::parse(&b).unwrap(), e);
    // A broken inner checksum is refused.
    let mut t = b.clone();
    t[4 + 20 + 8] ^= 1;
    assert_eq!(Ecm::parse(&t).err(), Some(Error::Checksum));
}

/// Every kind of message econet builds, for the robustness tests.
fn samples() -> Vec<Vec<u8>> {
    let mut v = vec![];
    v.push(emit(|b| request(None).emit(b)));
    let mut m = request(Some(key()));
    m.map_reply = Some(record(Some(key())));
    v.push(emit(|b| m.emit(b)));
    v.push(emit(|b| {
        MapReply {
            probe: true,
            echo_nonce: false,
            security: false,
            nonce: 1,
            records: vec![record(Some(key())), record(None)],
        }
        .emit(b)
    }));
    v.push(emit(|b| register().emit_register(b, b"k")));
    v.push(emit(|b| register().emit_notify(b, b"k")));
    let inner = v[0].clone();
    v.push(emit(|b| {
        Ecm {
            security: false,
            ddt: false,
            src: ip("1.2.3.4"),
            dst: ip("10.0.0.1"),
            src_port: 4342,
            dst_port: 4342,
            message: &inner,
        }
        .emit(b)
    }));
    v
}

fn parse_all(b: &[u8]) {
    let _ = MapRequest::parse(b);
    let _ = MapReply::parse(b);
    let _ = MapRegister::parse(b);
    let _ = auth::verify(b, b"k");
    let _ = Ecm::parse(b);
    for room in [0, 16, b.len(), b.len() + 64] {
        let _ = acknowledgement(b, b"k", &mut vec![0u8; room]);
    }
    if let Ok(p) = data::Packet::new_checked(b) {
        let _ = data::Repr::parse(&p);
    }
    for rec in Records::new(b, 255) {
        let _ = rec;
    }
}

#[test]
fn truncations_are_errors() {
    for s in samples() {
        for n in 0..s.len() {
            parse_all(&s[..n]);
            let t = message_type(&s).unwrap();
            let r = match t {
                msg_type::MAP_REQUEST => MapRequest::parse(&s[..n]).err(),
                msg_type::MAP_REPLY => MapReply::parse(&s[..n]).err(),
                msg_type::ECM => Ecm::parse(&s[..n]).err(),
                _ => MapRegister::parse(&s[..n]).err(),
            };
            assert!(r.is_some(), "type {t} cut at {n} parsed");
        }
    }
}

/// A small deterministic generator for mutation tests.
pub(crate) struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for s in samples() {
        for _ in 0..3000 {
            let mut m = s.clone();
            for _ in 0..=(rng.next() % 4) {
                let i = (rng.next() as usize) % m.len();
                m[i] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(4) {
                m.truncate((rng.next() as usize) % (m.len() + 1));
            }
            parse_all(&m);
        }
    }
    for _ in 0..3000 {
        let n = (rng.next() % 200) as usize;
        let m: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        parse_all(&m);
    }
}

#[test]
fn foreign_itr_rlocs_are_skipped_not_fatal() {
    // A JSON LCAF (type 14) as a second ITR-RLOC, as lispers.net sends telemetry.
    let mut b = emit(|buf| request(None).emit(buf));
    b[2] = 0x01; // IRC: two ITR-RLOCs
    let json_lcaf = [0x40, 0x03, 0, 0, 14, 0, 0, 4, 0, 2, b'{', b'}'];
    let at = 36;
    b.splice(at..at, json_lcaf);
    let p = MapRequest::parse(&b).unwrap();
    assert_eq!(p.itr_rlocs[1], Address::Lcaf { lcaf_type: 14 });
    assert_eq!(p.reply_rloc(), Some(ip("198.51.100.8")));
}

#[test]
fn acknowledgements_copy_and_resign() {
    // A Map-Register with a truncated HMAC-SHA-1 (12 bytes) and an xTR-ID.
    let mut m = register();
    m.alg = AuthAlg::HmacSha1;
    m.xtr_id = Some(XtrId {
        xtr_id: [9; 16],
        site_id: 3,
    });
    let full = emit(|buf| m.emit_register(buf, b"k"));
    let mut reg = full[..16].to_vec();
    reg[15] = 12;
    reg.extend_from_slice(&[0; 12]);
    reg.extend_from_slice(&full[36..]);
    auth::sign_len(&mut reg, AuthAlg::HmacSha1, b"k", 12).unwrap();
    assert!(auth::verify(&reg, b"k"));
    let n = emit(|buf| acknowledgement(&reg, b"k", buf));
    assert_eq!(&n[..4], &[0x48, 0, 0, 1], "Map-Notify, I bit, one record");
    assert_eq!(
        &n[4..16],
        &reg[4..16],
        "nonce, key id, algorithm, length 12"
    );
    assert_eq!(&n[28..], &reg[28..], "records and xTR-ID as received");
    assert!(auth::verify(&n, b"k"));
    // The Map-Notify-Ack of that Map-Notify.
    let a = emit(|buf| acknowledgement(&n, b"k", buf));
    assert_eq!(&a[..4], &[0x58, 0, 0, 1]);
    assert_eq!(&a[4..16], &n[4..16]);
    assert_eq!(&a[28..], &n[28..]);
    assert!(auth::verify(&a, b"k"));
    // Neither a Map-Request nor a message cut short is acknowledged; no room is an
    // error too.
    let req = emit(|buf| request(None).emit(buf));
    assert!(acknowledgement(&req, b"k", &mut [0u8; 256]).is_err());
    assert!(acknowledgement(&reg[..reg.len() - 1], b"k", &mut [0u8; 256]).is_err());
    assert!(acknowledgement(&reg, b"k", &mut [0u8; 40]).is_err());
}
