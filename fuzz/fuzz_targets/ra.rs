//! Any bytes as an ICMPv6 message the router advertiser reads on a bridge: as they
//! are, then with the checksum made right (so the bytes reach the option walk and the
//! validation after it), from a link-local host and from `::`. The ND parser must
//! round-trip what it accepts; every RA the advertiser then sends, and its final RA,
//! must read back as an RA with a good checksum. Seeds: the RS, NS, NA and RAs
//! captured from Linux, dnsmasq and radvd (fuzz/seeds.rs).
#![no_main]
use econet::addr::MacAddr;
use econet::ra::{Advertiser, Config, Rx, HOP_LIMIT, MAX_RA_LEN};
use econet::wire::icmpv6::{Packet, Repr};
use econet::wire::ipv6::{ALL_NODES, ALL_ROUTERS};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// The router and client of the captures.
const MAC: MacAddr = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);

fn router() -> Ipv6Addr {
    "fe80::8065:8dff:fe5f:8512".parse().unwrap()
}

fn client() -> Ipv6Addr {
    "fe80::701e:a0ff:fe80:5950".parse().unwrap()
}

fn check_ra(buf: &[u8], last: bool) {
    let p = Packet::new_checked(buf).expect("RA: too short");
    match Repr::parse(&p, router(), ALL_NODES).expect("RA: does not parse") {
        Repr::RouterAdvert {
            router_lifetime, ..
        } => assert_eq!(router_lifetime == 0, last),
        other => panic!("not an RA: {other:?}"),
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::new("fd00:1:2:3::".parse().unwrap(), router(), MAC);
    cfg.mtu = Some(1400);
    cfg.rdnss = vec!["fd00:1:2:3::1".parse().unwrap()];
    cfg.dnssl = vec!["eco.internal".into()];
    let now = Instant::now();
    let mut a = Advertiser::new(cfg, now, 1);
    let mut buf = vec![0u8; MAX_RA_LEN];
    while let Some(o) = a.poll(now, &mut buf) {
        check_ra(&buf[..o.len], false);
    }

    for (i, src) in [client(), Ipv6Addr::UNSPECIFIED].into_iter().enumerate() {
        let mut fixed = data.to_vec();
        if fixed.len() >= 4 {
            Packet::new_unchecked(&mut fixed[..]).fill_checksum(src, ALL_ROUTERS);
        }
        for msg in [data, &fixed[..]] {
            if let Ok(p) = Packet::new_checked(msg) {
                if let Ok(r) = Repr::parse(&p, src, ALL_ROUTERS) {
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut Packet::new_unchecked(&mut out[..]), src, ALL_ROUTERS)
                        .expect("emit of a parsed message");
                    let again = Packet::new_checked(&out[..]).expect("emitted: too short");
                    assert_eq!(Repr::parse(&again, src, ALL_ROUTERS), Ok(r));
                }
            }
            let t = now + Duration::from_secs(5 * (i as u64 + 1));
            let rx = Rx {
                src,
                dst: ALL_ROUTERS,
                hop_limit: HOP_LIMIT,
                payload: msg,
            };
            a.handle(t, rx);
            while let Some(due) = a
                .poll_timeout()
                .filter(|&d| d <= t + Duration::from_secs(1))
            {
                let o = a
                    .poll(due.max(t), &mut buf)
                    .expect("nothing at poll_timeout");
                check_ra(&buf[..o.len], false);
            }
        }
    }
    let o = a
        .shutdown(now + Duration::from_secs(20), &mut buf, true)
        .expect("final RA");
    check_ra(&buf[..o.len], true);
});
