//! IKE wire tests: messages captured from strongSwan (and econet's own, as strongSwan
//! accepted them) parse into the expected payloads and re-emit byte for byte; damaged
//! copies never panic.

use super::captures::*;
use super::*;

fn kinds(m: &Message) -> Vec<u8> {
    m.payloads.iter().map(Payload::kind).collect()
}

fn notifies(m: &Message) -> Vec<u16> {
    m.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.kind),
            _ => None,
        })
        .collect()
}

const ALL: [&[u8]; 5] = [
    &CHARON_IKE_SA_INIT_REQUEST,
    &ECONET_IKE_SA_INIT_RESPONSE,
    &CHARON_IKE_AUTH_REQUEST,
    &CHARON_CREATE_CHILD_SA_REQUEST,
    &CHARON_IKE_SA_INIT_RESPONSE,
];

#[test]
fn charon_ike_sa_init_request() {
    let m = Message::parse(&CHARON_IKE_SA_INIT_REQUEST).unwrap();
    let h = m.header;
    assert_eq!(h.exchange, exchange::IKE_SA_INIT);
    assert_eq!(h.flags, flags::INITIATOR);
    assert!(!h.is_response() && h.from_initiator());
    assert_eq!((h.spi_r, h.message_id), (0, 0));
    assert_eq!(h.length as usize, CHARON_IKE_SA_INIT_REQUEST.len());
    use payload_type::*;
    assert_eq!(
        kinds(&m),
        [SA, KE, NONCE, NOTIFY, NOTIFY, NOTIFY, NOTIFY, NOTIFY]
    );
    assert_eq!(
        notifies(&m),
        [
            notify::NAT_DETECTION_SOURCE_IP,
            notify::NAT_DETECTION_DESTINATION_IP,
            notify::IKEV2_FRAGMENTATION_SUPPORTED,
            notify::SIGNATURE_HASH_ALGORITHMS,
            16406, // REDIRECT_SUPPORTED
        ]
    );
    let Payload::Sa(props) = &m.payloads[0] else {
        panic!()
    };
    assert_eq!(props.len(), 1);
    let p = &props[0];
    assert_eq!((p.num, p.protocol, p.spi.len()), (1, protocol::IKE, 0));
    assert_eq!(
        p.transforms,
        [
            Transform::with_key_len(transform::ENCR, transform::ENCR_AES_GCM_16, 256),
            Transform::new(transform::PRF, transform::PRF_HMAC_SHA2_256),
            Transform::new(transform::DH, transform::DH_CURVE25519),
            Transform::new(transform::DH, transform::DH_ECP256),
        ]
    );
    assert!(matches!(&m.payloads[1], Payload::Ke { group: 31, data } if data.len() == 32));
    assert!(matches!(&m.payloads[2], Payload::Nonce(n) if n.len() == 32));
    let Payload::Notify(nat) = &m.payloads[3] else {
        panic!()
    };
    assert_eq!((nat.protocol, nat.spi.len(), nat.data.len()), (0, 0, 20));
}

#[test]
fn charon_ike_sa_init_response_and_ours() {
    for b in [
        &CHARON_IKE_SA_INIT_RESPONSE[..],
        &ECONET_IKE_SA_INIT_RESPONSE,
    ] {
        let m = Message::parse(b).unwrap();
        assert!(m.header.is_response() && !m.header.from_initiator());
        assert_ne!(m.header.spi_r, 0);
        use payload_type::*;
        assert_eq!(&kinds(&m)[..5], [SA, KE, NONCE, NOTIFY, NOTIFY]);
        let Payload::Sa(props) = &m.payloads[0] else {
            panic!()
        };
        // One transform of each kind: the choice.
        assert_eq!(props[0].transforms.len(), 3);
    }
    // The two SPIs of the request/response pair match.
    let (q, r) = (
        Message::parse(&CHARON_IKE_SA_INIT_REQUEST).unwrap(),
        Message::parse(&ECONET_IKE_SA_INIT_RESPONSE).unwrap(),
    );
    assert_eq!(q.header.spi_i, r.header.spi_i);
}

#[test]
fn charon_encrypted_messages() {
    let m = Message::parse(&CHARON_IKE_AUTH_REQUEST).unwrap();
    assert_eq!(m.header.exchange, exchange::IKE_AUTH);
    assert_eq!(m.header.message_id, 1);
    let [Payload::Sk { first, data }] = &m.payloads[..] else {
        panic!("{:?}", m.payloads)
    };
    assert_eq!(*first, payload_type::IDI);
    // IV, at least the pad length byte, ICV.
    assert!(data.len() > 8 + 1 + 16);
    let m = Message::parse(&CHARON_CREATE_CHILD_SA_REQUEST).unwrap();
    assert_eq!(m.header.exchange, exchange::CREATE_CHILD_SA);
    let [Payload::Sk { first, .. }] = &m.payloads[..] else {
        panic!()
    };
    // charon puts the SA first (its log lists N(REKEY_SA) first, sorted).
    assert_eq!(*first, payload_type::SA);
}

#[test]
fn captures_re_emit_byte_for_byte() {
    for b in ALL {
        let m = Message::parse(b).unwrap();
        assert_eq!(m.emit().unwrap(), b);
    }
}

#[test]
fn packet_view() {
    let p = Packet::new_checked(&CHARON_IKE_AUTH_REQUEST[..]).unwrap();
    assert_eq!(p.version(), 0x20);
    assert_eq!(p.length() as usize, CHARON_IKE_AUTH_REQUEST.len());
    let raws: Vec<_> = p.payloads().collect();
    assert_eq!(raws.len(), 1);
    let raw = raws[0].unwrap();
    assert_eq!(
        (raw.kind, raw.next, raw.critical),
        (payload_type::SK, 35, false)
    );
    let h = Header::parse(&p).unwrap();
    let mut b = [0u8; HEADER_LEN];
    h.emit(&mut Packet::new_unchecked(&mut b[..]));
    assert_eq!(b[..], CHARON_IKE_AUTH_REQUEST[..HEADER_LEN]);
    assert_eq!(h.to_bytes(), b);
}

#[test]
fn lengths_are_checked() {
    for b in ALL {
        for n in 0..b.len() {
            // A cut message is an error, whether the header says more or less.
            assert!(Message::parse(&b[..n]).is_err(), "cut at {n}");
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(Message::parse(&longer).is_err());
    }
    assert_eq!(
        Packet::new_checked(&[0u8; 27][..]).err(),
        Some(Error::Truncated)
    );
    let mut h = CHARON_IKE_SA_INIT_REQUEST;
    h[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert_eq!(Packet::new_checked(&h[..]).err(), Some(Error::Malformed));
    h[24..28].copy_from_slice(&1000u32.to_be_bytes());
    assert_eq!(Packet::new_checked(&h[..]).err(), Some(Error::Truncated));
    // IKEv1 and IKEv3 headers are not ours.
    let mut v = CHARON_IKE_SA_INIT_REQUEST;
    v[17] = 0x10;
    assert!(matches!(Message::parse(&v), Err(Error::Unsupported)));
}

#[test]
fn every_single_byte_change_is_safe() {
    for b in ALL {
        for i in 0..b.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut m = b.to_vec();
                m[i] = v;
                if let Ok(msg) = Message::parse(&m) {
                    // Whatever parses re-emits into something that parses the same.
                    let again = msg.emit().unwrap();
                    assert_eq!(Message::parse(&again).unwrap(), msg);
                }
                let _ = Header::parse(&Packet::new_unchecked(&m[..]));
                for raw in Packet::new_unchecked(&m[..]).payloads().take(64) {
                    let _ = raw.map(|r| Payload::parse(&r));
                }
            }
        }
    }
}

#[test]
fn iterator_stops_at_bad_lengths() {
    // A payload whose length is below the generic header.
    let b = [0u8, 0, 0, 3, 9, 9];
    let v: Vec<_> = Payloads::new(payload_type::NONCE, &b).collect();
    assert_eq!(v, [Err(Error::Malformed)]);
    // One that runs past the end.
    let b = [0u8, 0, 0, 9, 1, 2];
    let v: Vec<_> = Payloads::new(payload_type::NONCE, &b).collect();
    assert_eq!(v, [Err(Error::Truncated)]);
    // Bytes after the last payload.
    let b = [0u8, 0, 0, 5, 1, 0xee];
    let v: Vec<_> = Payloads::new(payload_type::NONCE, &b).collect();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1], Err(Error::Malformed));
    // The chain names a payload but there are no bytes.
    let v: Vec<_> = Payloads::new(payload_type::SA, &[]).collect();
    assert_eq!(v, [Err(Error::Truncated)]);
    // SK must be last.
    let b = [payload_type::IDI, 0, 0, 4, 0, 0, 0, 4];
    let v: Vec<_> = Payloads::new(payload_type::SK, &b).collect();
    assert_eq!(v, [Err(Error::Malformed)]);
}

#[test]
fn every_payload_kind_round_trips() {
    let payloads = vec![
        Payload::Notify(Notify {
            protocol: protocol::ESP,
            spi: vec![1, 2, 3, 4],
            kind: notify::REKEY_SA,
            data: vec![],
        }),
        Payload::Sa(vec![
            Proposal {
                num: 1,
                protocol: protocol::ESP,
                spi: vec![0xca, 0xfe, 0xba, 0xbe],
                transforms: vec![
                    Transform::with_key_len(transform::ENCR, transform::ENCR_AES_GCM_16, 256),
                    Transform::new(transform::ESN, 0),
                ],
            },
            Proposal {
                num: 2,
                protocol: protocol::IKE,
                spi: vec![7; 8],
                transforms: vec![Transform::new(transform::DH, 19)],
            },
        ]),
        Payload::Ke {
            group: 19,
            data: vec![5; 64],
        },
        Payload::Nonce(vec![6; 32]),
        Payload::IdI(Id {
            id_type: id_type::FQDN,
            data: b"device-42.example.com".to_vec(),
        }),
        Payload::IdR(Id {
            id_type: id_type::IPV4_ADDR,
            data: vec![192, 0, 2, 2],
        }),
        Payload::Auth {
            method: auth_method::SHARED_KEY_MIC,
            data: vec![9; 32],
        },
        Payload::TsI(vec![
            Ts::V4(TsV4 {
                proto: 0,
                start_port: 0,
                end_port: 65535,
                start: Ipv4Addr::new(10, 3, 0, 0),
                end: Ipv4Addr::new(10, 3, 0, 255),
            }),
            Ts::Other {
                ts_type: ts_type::IPV6_ADDR_RANGE,
                proto: 6,
                data: vec![0; 36],
            },
        ]),
        Payload::TsR(vec![]),
        Payload::Delete(Delete {
            protocol: protocol::ESP,
            spis: vec![0x1234_5678, 0x9abc_def0],
        }),
        Payload::Delete(Delete {
            protocol: protocol::IKE,
            spis: vec![],
        }),
        Payload::Vendor(b"econet".to_vec()),
        Payload::Cp(vec![1, 0, 0, 0]),
        Payload::Unknown {
            kind: 99,
            critical: true,
            body: vec![1, 2, 3],
        },
    ];
    let m = Message {
        header: Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: 0,
            exchange: exchange::INFORMATIONAL,
            flags: flags::RESPONSE,
            message_id: 9,
            length: 0,
        },
        payloads,
    };
    let b = m.emit().unwrap();
    let back = Message::parse(&b).unwrap();
    assert_eq!(back.payloads, m.payloads);
    assert_eq!(back.header.length as usize, b.len());
    // Malformed bodies are errors.
    for (kind, body) in [
        (payload_type::DELETE, &[3u8, 4, 0, 2, 0, 0, 0, 1][..]),
        (payload_type::DELETE, &[1, 4, 0, 0][..]),
        (payload_type::TSI, &[1, 0, 0, 0, 7, 0, 0, 12][..]),
        (payload_type::TSI, &[2, 0, 0, 0][..]),
        (payload_type::SA, &[0, 0, 0, 8, 1, 1, 0, 1][..]),
        (payload_type::KE, &[0, 19][..]),
        (payload_type::NOTIFY, &[3, 4, 0x40, 0x09, 1][..]),
    ] {
        let raw = RawPayload {
            kind,
            next: 0,
            critical: false,
            body,
        };
        assert!(Payload::parse(&raw).is_err(), "{kind} {body:?}");
    }
}
