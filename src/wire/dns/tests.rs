use super::captures::*;
use super::*;

/// Reads everything a message holds, as the resolver would; any error ends it.
fn walk(msg: &[u8]) -> Result<usize> {
    let p = Packet::new_checked(msg)?;
    let mut n = 0;
    for q in p.questions() {
        let q = q?;
        let _ = NameBuf::from_name(&q.name, true);
        let _ = q.name.to_string();
        n += 1;
    }
    for r in p.records()? {
        let (_, r) = r?;
        let _ = r.name.to_string();
        let _ = r.edns();
        if let RData::Soa(s) = r.rdata()? {
            let _ = NameBuf::from_name(&s.rname, false);
        }
        n += 1;
    }
    Ok(n)
}

const ALL: &[&[u8]] = &[
    DIG_A_EDNS_QUERY,
    DNSMASQ_REFUSED_EDNS,
    DIG_UPSTREAM_QUERY,
    DNSMASQ_UPSTREAM_REPLY,
    DIG_NOEDNS_QUERY,
    DNSMASQ_NOEDNS_REPLY,
    KDIG_QUERY,
    DIG_PTR_QUERY,
    DNSMASQ_PTR_REPLY,
    DIG_HOST_QUERY,
    DNSMASQ_TWO_A_REPLY,
    DIG_AAAA_QUERY,
    DIG_BIG_NOEDNS_QUERY,
    DNSMASQ_TC_REPLY,
    DIG_NX_QUERY,
    DNSMASQ_NX_REPLY,
    DIG_AUTH_NX_QUERY,
    DNSMASQ_AUTH_NX_REPLY,
    DNSMASQ_AUTH_NODATA_REPLY,
    DIG_AUTH_A_QUERY,
    DNSMASQ_AUTH_A_REPLY,
];

#[test]
fn dig_query_with_edns_and_cookie() {
    let p = Packet::new_checked(DIG_A_EDNS_QUERY).unwrap();
    assert_eq!(p.id(), 0xdf63);
    assert!(!p.qr() && p.rd() && p.ad() && !p.tc());
    assert_eq!(p.opcode(), Opcode::Query);
    assert_eq!(
        (p.qdcount(), p.ancount(), p.nscount(), p.arcount()),
        (1, 0, 0, 1)
    );
    let q = p.questions().next().unwrap().unwrap();
    assert_eq!(q.name.to_string(), "web.eco.internal.");
    assert_eq!((q.qtype, q.qclass), (Type::A, Class::IN));
    let (sec, opt) = p.records().unwrap().next().unwrap().unwrap();
    assert_eq!(sec, Section::Additional);
    let e = opt.edns().unwrap();
    assert_eq!((e.udp_size, e.version, e.dnssec_ok), (1232, 0, false));
    assert_eq!(opt.data.len(), 12, "the cookie option");
}

#[test]
fn dnsmasq_compressed_answers() {
    let p = Packet::new_checked(DNSMASQ_TWO_A_REPLY).unwrap();
    assert!(p.qr() && p.aa() && p.ra());
    assert_eq!(p.rcode(), Rcode::NoError);
    let q = p.questions().next().unwrap().unwrap();
    let addrs: Vec<_> = p
        .records()
        .unwrap()
        .map(|r| r.unwrap().1)
        .filter(|r| r.rtype == Type::A)
        .map(|r| {
            assert!(
                r.name.eq_ignore_case(&q.name),
                "owner is a pointer to the question"
            );
            match r.rdata().unwrap() {
                RData::A(a) => a,
                _ => unreachable!(),
            }
        })
        .collect();
    assert_eq!(
        addrs,
        [Ipv4Addr::new(192, 0, 2, 9), Ipv4Addr::new(192, 0, 2, 10)]
    );
}

#[test]
fn ptr_and_soa_rdata() {
    let p = Packet::new_checked(DNSMASQ_PTR_REPLY).unwrap();
    let (_, r) = p.records().unwrap().next().unwrap().unwrap();
    match r.rdata().unwrap() {
        RData::Ptr(n) => assert_eq!(n.to_string(), "host.test."),
        x => panic!("{x:?}"),
    }
    let p = Packet::new_checked(DNSMASQ_AUTH_NX_REPLY).unwrap();
    assert_eq!(p.rcode(), Rcode::NxDomain);
    let (sec, r) = p.records().unwrap().next().unwrap().unwrap();
    assert_eq!(sec, Section::Authority);
    assert_eq!(r.ttl, 300);
    match r.rdata().unwrap() {
        RData::Soa(s) => {
            assert_eq!(s.mname.to_string(), "ns.zone.test.");
            assert_eq!(s.rname.to_string(), "hostmaster.ns.zone.test.");
            assert_eq!(
                (s.refresh, s.retry, s.expire, s.minimum),
                (1200, 180, 1209600, 300)
            );
        }
        x => panic!("{x:?}"),
    }
}

#[test]
fn truncated_reply_and_tcp_reply() {
    let p = Packet::new_checked(DNSMASQ_TC_REPLY).unwrap();
    assert!(p.tc());
    assert_eq!(walk(DNSMASQ_TC_REPLY), Ok(31));
    assert_eq!(
        be16(DNSMASQ_TCP_REPLY, 0).unwrap() as usize,
        DNSMASQ_TCP_REPLY.len() - 2
    );
    assert_eq!(walk(&DNSMASQ_TCP_REPLY[2..]), Ok(42));
    assert_eq!(walk(&DIG_TCP_QUERY[2..]), Ok(2));
}

#[test]
fn every_capture_parses_and_no_prefix_does() {
    for msg in ALL {
        walk(msg).unwrap();
        for cut in 0..msg.len() {
            assert!(walk(&msg[..cut]).is_err(), "prefix {cut} of {msg:02x?}");
        }
    }
}

fn with_header(body: &[u8], qd: u16, an: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, qd as u8, 0, an as u8, 0, 0, 0, 0];
    m.extend_from_slice(body);
    m
}

#[test]
fn hostile_names() {
    // Pointer to itself.
    let m = with_header(&[0xc0, 12, 0, 1, 0, 1], 1, 0);
    assert_eq!(walk(&m), Err(Error::Malformed));
    // A label then a pointer back to the name's own start: a loop.
    let m = with_header(&[3, b'w', b'e', b'b', 0xc0, 12, 0, 1, 0, 1], 1, 0);
    assert_eq!(walk(&m), Err(Error::Malformed));
    // Forward pointer.
    let m = with_header(&[0xc0, 14, 0, 0, 1, 0, 1], 1, 0);
    assert_eq!(walk(&m), Err(Error::Malformed));
    // Pointer into the header.
    let m = with_header(&[0xc0, 2, 0, 1, 0, 1], 1, 0);
    assert_eq!(walk(&m), Err(Error::Malformed));
    // Label types 0x40 and 0x80 (a "length" over 63).
    for b in [0x40u8, 0x80] {
        let m = with_header(&[b, b'a', 0, 0, 1, 0, 1], 1, 0);
        assert_eq!(walk(&m), Err(Error::Malformed));
    }
    // Two records whose owners point at each other (the second one forward).
    let mut body = vec![1, b'a', 0, 0, 1, 0, 1];
    body.extend_from_slice(&[0xc0, 31, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[0xc0, 19, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(walk(&with_header(&body, 1, 2)), Err(Error::Malformed));
    // Over 255 bytes only once decompressed: 4 × 63-byte labels = 256 + root.
    let mut body = Vec::new();
    for _ in 0..3 {
        body.push(63);
        body.extend_from_slice(&[b'x'; 63]);
    }
    body.extend_from_slice(&[0, 0, 1, 0, 1]);
    body.push(63);
    body.extend_from_slice(&[b'y'; 63]);
    body.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let m = with_header(&body, 2, 0);
    let mut q = Packet::new_checked(&m[..]).unwrap().questions();
    assert_eq!(q.next().unwrap().unwrap().name.wire_len(), 193);
    assert_eq!(q.next().unwrap().unwrap_err(), Error::Malformed);
    // Record data running past the end.
    let mut m = DNSMASQ_PTR_REPLY.to_vec();
    m[50] = 0xff;
    assert!(walk(&m).is_err());
}

/// Small deterministic PRNG for mutation tests (no crates).
pub(crate) struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..40_000 {
        let base = ALL[round % ALL.len()];
        let mut m = base.to_vec();
        let edits = 1 + rng.next() % 4;
        for _ in 0..edits {
            let i = (rng.next() as usize) % m.len();
            match rng.next() % 4 {
                0 => m[i] = rng.next() as u8,
                1 => m[i] ^= 1 << (rng.next() % 8),
                2 => m[i] = 0xc0 | (rng.next() as u8 & 1),
                _ => m.truncate(i.max(1)),
            }
            if m.is_empty() {
                break;
            }
        }
        let _ = walk(&m);
    }
}

#[test]
fn builder_reproduces_dnsmasq_bytes() {
    let mut buf = [0u8; 512];
    let host = NameBuf::from_text("host.test").unwrap();
    let mut b = Builder::new(&mut buf, 0x653f, 0x8580).unwrap();
    b.question(host.as_wire(), Type::A, Class::IN).unwrap();
    for last in [9, 10] {
        let a = Data::A(Ipv4Addr::new(192, 0, 2, last));
        b.record(Section::Answer, host.as_wire(), Type::A, Class::IN, 0, a)
            .unwrap();
    }
    b.opt(1232, 0, false).unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], DNSMASQ_TWO_A_REPLY);

    let q = NameBuf::from_text("9.2.0.192.in-addr.arpa.").unwrap();
    let mut b = Builder::new(&mut buf, 0x3d5e, 0x8580).unwrap();
    b.question(q.as_wire(), Type::PTR, Class::IN).unwrap();
    let d = Data::Name(host.as_wire());
    b.record(Section::Answer, q.as_wire(), Type::PTR, Class::IN, 0, d)
        .unwrap();
    b.opt(1232, 0, false).unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], DNSMASQ_PTR_REPLY);
}

#[test]
fn builder_compresses_suffixes_ignoring_case() {
    let mut buf = [0u8; 512];
    let mut b = Builder::new(&mut buf, 1, flags::QR).unwrap();
    let q = NameBuf::from_text("Web.ECO.internal").unwrap();
    let other = NameBuf::from_text("db.eco.INTERNAL").unwrap();
    b.question(q.as_wire(), Type::A, Class::IN).unwrap();
    b.record(
        Section::Answer,
        other.as_wire(),
        Type::CNAME,
        Class::IN,
        5,
        Data::Name(q.as_wire()),
    )
    .unwrap();
    let n = b.finish();
    // header 12 + question 18+4 + "db" 3 + pointer 2 + 10 fixed + pointer 2.
    assert_eq!(n, 12 + 22 + 3 + 2 + 10 + 2);
    let p = Packet::new_checked(&buf[..n]).unwrap();
    let (_, r) = p.records().unwrap().next().unwrap().unwrap();
    assert_eq!(r.name.to_string(), "db.ECO.internal.");
    match r.rdata().unwrap() {
        RData::Cname(c) => assert_eq!(c.to_string(), "Web.ECO.internal."),
        x => panic!("{x:?}"),
    }
}

#[test]
fn builder_rolls_back_what_does_not_fit() {
    let mut buf = [0u8; 512];
    let name = NameBuf::from_text("big.test").unwrap();
    let mut b = Builder::new(&mut buf, 7, flags::QR).unwrap();
    b.question(name.as_wire(), Type::A, Class::IN).unwrap();
    b.set_limit(12 + 14 + 16 * 3 + 5);
    let mut n = 0;
    while b
        .record(
            Section::Answer,
            name.as_wire(),
            Type::A,
            Class::IN,
            60,
            Data::A(Ipv4Addr::new(192, 0, 2, n)),
        )
        .is_ok()
    {
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(b.opt(1232, 0, false), Err(Error::Truncated));
    let len = b.finish();
    assert_eq!(len, 12 + 14 + 16 * 3);
    assert_eq!(walk(&buf[..len]), Ok(4));
    // Sections go in order.
    let mut b = Builder::new(&mut buf, 7, 0).unwrap();
    b.opt(512, 0, false).unwrap();
    let r = b.question(name.as_wire(), Type::A, Class::IN);
    assert_eq!(r, Err(Error::Malformed));
}

#[test]
fn names_from_text() {
    let n = NameBuf::from_text("web.eco.internal.").unwrap();
    assert_eq!(n.as_wire(), b"\x03web\x03eco\x08internal\x00");
    assert_eq!(n.label_count(), 3);
    assert_eq!(n.to_string(), "web.eco.internal.");
    assert_eq!(NameBuf::from_text("").unwrap().as_wire(), b"\x00");
    assert!(NameBuf::from_text("a..b").is_err());
    assert!(NameBuf::from_text("a b").is_err());
    assert!(NameBuf::from_text(&"x".repeat(64)).is_err());
    let long = vec!["y".repeat(63); 4].join(".");
    assert!(NameBuf::from_text(&long).is_err());
    assert!(NameBuf::from_text(&long[..250]).is_ok());
    assert!(NameBuf::from_wire(b"\x03web\x00\x00").is_err());
    assert!(NameBuf::from_wire(b"\x03web").is_err());
    assert!(NameBuf::from_wire(b"\x03web\x00").is_ok());
}

#[test]
fn header_setters() {
    let mut m = DIG_A_EDNS_QUERY.to_vec();
    let mut p = Packet::new_checked(&mut m[..]).unwrap();
    p.set_qr(true);
    p.set_opcode(Opcode::Notify);
    p.set_rcode(Rcode::Refused);
    p.set_tc(true);
    p.set_id(0xbeef);
    assert!(p.qr() && p.tc() && p.rd());
    assert_eq!(p.opcode(), Opcode::Notify);
    assert_eq!(p.rcode(), Rcode::Refused);
    assert_eq!(p.id(), 0xbeef);
    assert!(Packet::new_checked(&m[..11]).is_err());
}

/// dig's captured TCP stream cut at every byte boundary, and with dnsmasq's reply
/// behind it in the same read: each message comes out whole, once, in order.
#[test]
fn tcp_framing_of_captured_streams() {
    let stream = [DIG_TCP_QUERY, DNSMASQ_TCP_REPLY].concat();
    for cut in 0..=stream.len() {
        let mut r = tcp::Reader::default();
        let mut got = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            assert!(r.push(part));
            while let Some(m) = r.next_message() {
                got.push(m);
            }
        }
        assert_eq!(got, [&DIG_TCP_QUERY[2..], &DNSMASQ_TCP_REPLY[2..]]);
        assert_eq!(r.buffered(), 0);
    }
    let mut out = Vec::new();
    assert!(tcp::write_message(&mut out, &DIG_TCP_QUERY[2..]));
    assert_eq!(out, DIG_TCP_QUERY);
    assert!(!tcp::write_message(&mut out, &[0; tcp::MAX_MESSAGE + 1]));
    assert_eq!(out, DIG_TCP_QUERY);
    // A peer that never completes a message is cut off past two of the largest.
    let mut r = tcp::Reader::default();
    assert!(r.push(&[0xff; tcp::Reader::MAX_BUFFERED]));
    assert!(!r.push(&[0xff]));
}
