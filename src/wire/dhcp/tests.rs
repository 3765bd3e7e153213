use super::*;
use crate::wire::testdata::*;
use crate::wire::{ethernet, ipv4, udp};

/// The DHCP message inside a captured frame.
fn dhcp(frame: &[u8]) -> &[u8] {
    let eth = ethernet::Packet::new_checked(frame).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    let total = ip.total_len() as usize;
    let start = 14 + ip.header_len() as usize + udp::HEADER_LEN;
    &frame[start..14 + total]
}

fn parse(b: &[u8]) -> Result<Repr<'_>> {
    Repr::parse(&Packet::new_checked(b)?)
}

const CLIENT: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const LEASED: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 49);

#[test]
fn udhcpc_messages() {
    let d = parse(dhcp(&UDHCPC_DISCOVER)).unwrap();
    assert_eq!(d.message_type, MessageType::Discover);
    assert_eq!(d.client_hardware_addr, CLIENT);
    assert!(!d.broadcast);
    assert_eq!(d.host_name, Some(&b"web"[..]));
    assert_eq!(d.max_message_size, Some(576));
    assert_eq!(
        d.parameter_request_list,
        Some(&[1u8, 3, 6, 12, 15, 28, 42][..])
    );
    let mut id = vec![1u8];
    id.extend_from_slice(&CLIENT.0);
    assert_eq!(d.client_id, Some(&id[..]));

    let r = parse(dhcp(&UDHCPC_REQUEST)).unwrap();
    assert_eq!(r.message_type, MessageType::Request);
    assert_eq!(r.transaction_id, d.transaction_id);
    assert_eq!(r.requested_ip, Some(LEASED));
    assert_eq!(r.server_id, Some(SERVER));
    assert_eq!(r.client_ip, Ipv4Addr::UNSPECIFIED);

    let n = parse(dhcp(&UDHCPC_RENEW)).unwrap();
    assert_eq!(n.message_type, MessageType::Request);
    assert_eq!(n.client_ip, LEASED);
    assert_eq!((n.requested_ip, n.server_id), (None, None));

    let l = parse(dhcp(&UDHCPC_RELEASE)).unwrap();
    assert_eq!(l.message_type, MessageType::Release);
    assert_eq!(l.client_ip, LEASED);
    assert_eq!(l.server_id, Some(SERVER));

    let x = parse(dhcp(&UDHCPC_DECLINE)).unwrap();
    assert_eq!(x.message_type, MessageType::Decline);
    assert_eq!(x.requested_ip, Some(Ipv4Addr::new(10, 9, 0, 77)));
    assert_eq!(x.server_id, Some(SERVER));
}

#[test]
fn dhclient_messages() {
    let d = parse(dhcp(&DHCLIENT_DISCOVER)).unwrap();
    assert_eq!(d.message_type, MessageType::Discover);
    assert_eq!(d.client_id, None);
    assert_eq!(d.host_name, Some(&b"plc"[..]));
    let prl = d.parameter_request_list.unwrap();
    assert!(prl.contains(&opt::CLASSLESS_STATIC_ROUTES) && prl.contains(&opt::INTERFACE_MTU));

    let ir = parse(dhcp(&DHCLIENT_INIT_REBOOT)).unwrap();
    assert_eq!(ir.message_type, MessageType::Request);
    assert_eq!(ir.requested_ip, Some(LEASED));
    assert_eq!(ir.server_id, None);
    assert_eq!(ir.client_ip, Ipv4Addr::UNSPECIFIED);

    let l = parse(dhcp(&DHCLIENT_RELEASE)).unwrap();
    assert_eq!(l.message_type, MessageType::Release);
    assert_eq!(l.client_ip, LEASED);
}

#[test]
fn dhcpcd_messages() {
    let d = parse(dhcp(&DHCPCD_DISCOVER)).unwrap();
    assert!(d.rapid_commit);
    assert_eq!(d.client_id.map(|c| c.len()), Some(19));
    assert_eq!(d.client_id.map(|c| c[0]), Some(0xff)); // RFC 4361 IAID + DUID
    let r = parse(dhcp(&DHCPCD_REQUEST)).unwrap();
    assert_eq!(r.server_id, Some(SERVER));
    assert_eq!(r.requested_ip, Some(LEASED));
    assert_eq!(r.client_id, d.client_id);
    let n = parse(dhcp(&DHCPCD_RENEW)).unwrap();
    assert_eq!(n.client_ip, LEASED);
    let ir = parse(dhcp(&DHCPCD_INIT_REBOOT)).unwrap();
    assert_eq!((ir.requested_ip, ir.server_id), (Some(LEASED), None));
    assert_eq!(ir.client_ip, Ipv4Addr::UNSPECIFIED);
    let i = parse(dhcp(&DHCPCD_INFORM)).unwrap();
    assert_eq!(i.message_type, MessageType::Inform);
    assert_eq!(i.client_ip, Ipv4Addr::new(10, 9, 0, 60));
    let l = parse(dhcp(&DHCPCD_RELEASE)).unwrap();
    assert_eq!(l.message_type, MessageType::Release);
}

#[test]
fn dnsmasq_replies() {
    let o = parse(dhcp(&DNSMASQ_OFFER)).unwrap();
    assert_eq!(o.message_type, MessageType::Offer);
    assert_eq!(o.your_ip, LEASED);
    assert_eq!(o.server_id, Some(SERVER));
    assert_eq!(o.lease_time, Some(120));
    assert_eq!(o.renewal_time, Some(60));
    assert_eq!(o.rebinding_time, Some(105));
    assert_eq!(o.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(o.router.and_then(|r| r.first()), Some(SERVER));
    assert_eq!(o.domain_name, Some(&b"eco.internal"[..]));
    assert_eq!(o.ntp_servers.unwrap().iter().collect::<Vec<_>>(), [SERVER]);

    let a = parse(dhcp(&DNSMASQ_ACK_DHCLIENT)).unwrap();
    assert_eq!(a.message_type, MessageType::Ack);
    assert_eq!(a.interface_mtu, Some(1400));
    let routes: Vec<Route> = a.classless_routes.unwrap().iter().collect();
    assert_eq!(
        routes,
        [
            Route {
                dest: "192.168.5.0/24".parse().unwrap(),
                gateway: SERVER
            },
            Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: SERVER
            },
        ]
    );
    let mut enc = Vec::new();
    Routes::encode(&routes, &mut enc);
    assert_eq!(enc, a.classless_routes.unwrap().as_bytes());

    let ia = parse(dhcp(&DNSMASQ_INFORM_ACK)).unwrap();
    assert_eq!(ia.message_type, MessageType::Ack);
    assert_eq!(ia.your_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ia.lease_time, None);
}

#[test]
fn emit_then_parse_is_identity() {
    for f in [
        &UDHCPC_DISCOVER[..],
        &UDHCPC_REQUEST,
        &UDHCPC_DECLINE,
        &DNSMASQ_OFFER,
        &DNSMASQ_ACK_DHCLIENT,
        &DHCLIENT_INIT_REBOOT,
        &DHCPCD_DISCOVER,
        &DHCPCD_INFORM,
        &DNSMASQ_INFORM_ACK,
    ] {
        let r = parse(dhcp(f)).unwrap();
        let mut buf = vec![0xaau8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert!(buf.len() >= MIN_MESSAGE_LEN);
        assert_eq!(parse(&buf).unwrap(), r);
        // Too small a buffer is an error, not a panic.
        let mut small = vec![0u8; r.buffer_len() - 1];
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut small[..])),
            Err(Error::Truncated)
        );
    }
}

#[test]
fn emitted_header_matches_capture() {
    // Re-emitting udhcpc's DISCOVER gives its fixed part byte for byte.
    let b = dhcp(&UDHCPC_DISCOVER);
    let r = parse(b).unwrap();
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
    assert_eq!(&buf[..HEADER_LEN], &b[..HEADER_LEN]);
}

#[test]
fn long_options_are_split() {
    let name = [b'a'; 300];
    let mut r = Repr::new(MessageType::Ack, 7, CLIENT);
    r.host_name = Some(&name);
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
    let p = Packet::new_checked(&buf[..]).unwrap();
    let parts: Vec<usize> = p
        .options()
        .map(|o| o.unwrap())
        .filter(|o| o.kind == opt::HOST_NAME)
        .map(|o| o.data.len())
        .collect();
    assert_eq!(parts, [255, 45]);
    assert_eq!(buf.len(), HEADER_LEN + 3 + 2 + 255 + 2 + 45 + 1);
}

/// A DISCOVER with the given options field (and file/sname contents).
fn message(options: &[u8], file: &[u8], sname: &[u8]) -> Vec<u8> {
    let mut b = dhcp(&DHCLIENT_DISCOVER)[..HEADER_LEN].to_vec();
    b[108..108 + file.len()].copy_from_slice(file);
    b[44..44 + sname.len()].copy_from_slice(sname);
    b.extend_from_slice(options);
    b
}

#[test]
fn overload_reads_file_then_sname() {
    let b = message(
        &[53, 1, 1, 52, 1, 3, 255],
        &[12, 3, b'f', b'o', b'o', 255],
        &[15, 3, b'b', b'a', b'r', 255],
    );
    let r = parse(&b).unwrap();
    assert_eq!(r.host_name, Some(&b"foo"[..]));
    assert_eq!(r.domain_name, Some(&b"bar"[..]));
    // Without option 52 the same fields are just names, not options.
    let b = message(&[53, 1, 1, 255], &[12, 3, b'f', b'o', b'o'], &[]);
    assert_eq!(parse(&b).unwrap().host_name, None);
}

#[test]
fn overload_inside_file_does_not_loop() {
    // file says "overload sname too", and then repeats itself; only the options
    // field's option 52 counts, and each region is walked once.
    let b = message(
        &[53, 1, 1, 52, 1, 1, 255],
        &[52, 1, 3, 52, 1, 2, 12, 1, b'x'],
        &[12, 1, b'y', 255],
    );
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.overload(), 1);
    assert_eq!(p.options().count(), 5); // 53 52 | 52 52 12; sname not walked
    assert_eq!(parse(&b).unwrap().host_name, Some(&b"x"[..]));
    // A bad overload value is ignored.
    let b = message(&[53, 1, 1, 52, 1, 9, 255], &[12, 1, b'x'], &[]);
    assert_eq!(Packet::new_checked(&b[..]).unwrap().overload(), 0);
    assert_eq!(parse(&b).unwrap().host_name, None);
    // A wrongly sized overload option is malformed.
    let b = message(&[53, 1, 1, 52, 2, 1, 1, 255], &[], &[]);
    assert_eq!(parse(&b), Err(Error::Malformed));
}

#[test]
fn bad_options() {
    // Length byte missing, data running past the end, in each region.
    assert_eq!(
        parse(&message(&[53, 1, 1, 12], &[], &[])),
        Err(Error::Truncated)
    );
    assert_eq!(
        parse(&message(&[53, 1, 1, 12, 200, 1, 2], &[], &[])),
        Err(Error::Truncated)
    );
    assert_eq!(
        parse(&message(&[53, 1, 1, 52, 1, 1, 255], &[12, 250], &[])),
        Err(Error::Truncated)
    );
    // The iterator reports the error once and stops.
    let b = message(&[53, 1, 1, 12, 200], &[], &[]);
    let p = Packet::new_checked(&b[..]).unwrap();
    let items: Vec<_> = p.options().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], Err(Error::Truncated));
    // Wrong sizes for known options.
    for o in [
        &[53u8, 0][..],
        &[53, 2, 1, 1],
        &[50, 3, 10, 0, 0],
        &[54, 5, 1, 2, 3, 4, 5],
        &[51, 2, 0, 0],
        &[57, 1, 2],
        &[3, 5, 1, 2, 3, 4, 5],
        &[6, 0],
        &[12, 0],
        &[61, 1, 1],
        &[80, 1, 0],
        &[121, 2, 33, 0],
        &[121, 5, 24, 10, 1, 0, 10],
    ] {
        let mut opts = vec![53, 1, 1];
        // A wrong option 53 goes first so it is the one seen.
        if o[0] == 53 {
            opts.clear();
        }
        opts.extend_from_slice(o);
        opts.push(255);
        assert!(parse(&message(&opts, &[], &[])).is_err(), "{o:?}");
    }
    // No message type: plain BOOTP.
    assert_eq!(parse(&message(&[255], &[], &[])), Err(Error::Unsupported));
    assert_eq!(parse(&message(&[], &[], &[])), Err(Error::Unsupported));
    // Op that does not fit: an OFFER in a BOOTREQUEST.
    assert_eq!(
        parse(&message(&[53, 1, 2, 255], &[], &[])),
        Err(Error::Malformed)
    );
    // Wrong cookie, short header.
    let mut b = message(&[53, 1, 1, 255], &[], &[]);
    b[236] = 0;
    assert_eq!(parse(&b), Err(Error::Malformed));
    for n in 0..HEADER_LEN {
        assert_eq!(parse(&b[..n]), Err(Error::Truncated));
    }
    // Only padding after the type, no end option: fine.
    assert!(parse(&message(&[53, 1, 1, 0, 0, 0], &[], &[])).is_ok());
    // Duplicates: the first wins.
    let b = message(&[53, 1, 1, 12, 1, b'a', 12, 1, b'b', 255], &[], &[]);
    let r = parse(&b).unwrap();
    assert_eq!(r.host_name, Some(&b"a"[..]));
}

#[test]
fn rfc3442_examples() {
    let gw = [192u8, 0, 2, 1];
    let cases: [(&str, &[u8]); 6] = [
        ("0.0.0.0/0", &[0]),
        ("10.0.0.0/8", &[8, 10]),
        ("10.17.0.0/16", &[16, 10, 17]),
        ("10.27.129.0/24", &[24, 10, 27, 129]),
        ("10.229.0.128/25", &[25, 10, 229, 0, 128]),
        ("10.198.122.47/32", &[32, 10, 198, 122, 47]),
    ];
    for (net, enc) in cases {
        let route = Route {
            dest: net.parse().unwrap(),
            gateway: Ipv4Addr::from(gw),
        };
        let mut out = Vec::new();
        Routes::encode(&[route], &mut out);
        let mut want = enc.to_vec();
        want.extend_from_slice(&gw);
        assert_eq!(out, want, "{net}");
        let r = Routes::from_bytes(&out).unwrap();
        assert_eq!(r.iter().collect::<Vec<_>>(), [route]);
    }
    // Stray host bits are cleared.
    let r = Routes::from_bytes(&[8, 10, 1, 2, 3, 4]).unwrap();
    assert_eq!(r.iter().next().unwrap().dest, "10.0.0.0/8".parse().unwrap());
    let r = Routes::from_bytes(&[9, 10, 255, 1, 2, 3, 4]).unwrap();
    assert_eq!(
        r.iter().next().unwrap().dest,
        "10.128.0.0/9".parse().unwrap()
    );
    assert!(Routes::from_bytes(&[]).is_err());
    assert!(Routes::from_bytes(&[0, 1, 2, 3]).is_err());
    assert!(Routes::from_bytes(&[0, 1, 2, 3, 4, 0]).is_err());
}

/// Every captured message, each byte replaced by a few values, and every truncation:
/// parsing must return, never panic.
#[test]
fn mutated_captures_never_panic() {
    let frames: [&[u8]; 12] = [
        &UDHCPC_DISCOVER,
        &UDHCPC_REQUEST,
        &UDHCPC_RENEW,
        &UDHCPC_DECLINE,
        &DNSMASQ_OFFER,
        &DNSMASQ_ACK_DHCLIENT,
        &DHCLIENT_DISCOVER,
        &DHCLIENT_INIT_REBOOT,
        &DHCPCD_DISCOVER,
        &DHCPCD_REQUEST,
        &DHCPCD_INFORM,
        &DNSMASQ_INFORM_ACK,
    ];
    let mut parsed = 0usize;
    for f in frames {
        let orig = dhcp(f);
        for n in 0..=orig.len() {
            let _ = parse(&orig[..n]);
        }
        let mut b = orig.to_vec();
        for i in 0..b.len() {
            let keep = b[i];
            for v in [0u8, 1, 2, 3, 52, 0x7f, 0x80, 0xfe, 0xff, keep ^ 0x01] {
                b[i] = v;
                if let Ok(r) = parse(&b) {
                    parsed += 1;
                    // Whatever parsed re-emits and re-parses the same.
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
                    assert_eq!(parse(&out).unwrap(), r);
                }
            }
            b[i] = keep;
        }
    }
    assert!(parsed > 10_000);
}
