//! Any bytes as a DHCPv6 message an ECO endpoint sends the server, into a server that
//! already holds leases: from the ECO's own MAC and from another MAC behind it, sent
//! to ff02::1:2 and unicast. Every reply must read back as a DHCPv6 message; the
//! lease file must read back as written, and the file as the shell keeps it (a
//! snapshot, then each message's journal) must hold every allocation made. Then the
//! bytes as a lease file.
#![no_main]
use econet::addr::MacAddr;
use econet::dhcp6::{Config, Endpoint, EndpointKey, Rx, Server};
use econet::wire::dhcpv6;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// The ECO's MAC is dhclient's and dhcpcd's in the captures the seeds come from
/// (fuzz/seeds.rs), and the server's DUID is the captured dnsmasq's, so captured
/// Requests, Renews and Releases are for this server.
const ECO: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const GUEST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const DUID: [u8; 14] = [
    0, 1, 0, 1, 0x32, 0xa6, 0x57, 0x58, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12,
];
const WALL: u64 = 1_800_000_000;
const LEASES: &str = "econet-dhcp6-leases 1\n\
    fd00:1::db 1799999000 72:1e:a0:80:59:50 eco a eth0 web\n\
    fd00:1::fc 1799999000 72:1e:a0:80:59:50 eco:1 a eth0 web\n";

fn config(key: &EndpointKey) -> Config {
    let mut cfg = Config::new("fd00:1::".parse().unwrap(), MacAddr([2, 0, 0, 0, 0, 1]));
    cfg.server_duid = DUID.to_vec();
    cfg.range_start = "fd00:1::10".parse().unwrap();
    cfg.range_end = "fd00:1::ff".parse().unwrap();
    cfg.domains = vec!["eco.internal".into()];
    cfg.info_refresh_secs = Some(3600);
    cfg.endpoints = vec![Endpoint {
        key: key.clone(),
        mac: ECO,
        static_ip6: None,
        hostname: "web".into(),
    }];
    cfg
}

/// A lease file's allocations as (address, slot, endpoint), the rest left out.
fn allocations(file: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(file);
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            [f.first(), f.get(3), f.get(4), f.get(5)]
                .into_iter()
                .flatten()
                .map(|s| s.to_string())
                .collect()
        })
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = EndpointKey {
        app_id: "a".into(),
        ifname: "eth0".into(),
    };
    let now = Instant::now();
    let mut s = Server::new(config(&key));
    assert_eq!(s.restore(LEASES.as_bytes(), now, WALL), 2);
    let mut file = s.snapshot();
    let mut tx = [0u8; 1232];
    let src_ip: Ipv6Addr = "fe80::701e:a0ff:fe80:5950".parse().unwrap();
    for (i, (src_mac, unicast)) in [(ECO, false), (GUEST, false), (ECO, true)]
        .into_iter()
        .enumerate()
    {
        let t = now + Duration::from_secs(1 + i as u64);
        let rx = Rx {
            endpoint: Some(&key),
            src_mac,
            src_ip,
            unicast,
            payload: data,
        };
        let out = s.handle(t, WALL + 1 + i as u64, rx, &mut tx);
        file.extend(s.take_journal());
        if let Some(r) = out {
            assert_eq!((r.dst_mac, r.dst_ip, r.dst_port), (src_mac, src_ip, 546));
            let p = dhcpv6::Packet::new_checked(&tx[..r.payload_len]).expect("reply: header");
            dhcpv6::Repr::parse(&p).expect("reply: options");
        }
        s.poll(t + Duration::from_secs(7200));
    }
    let _ = s.take_changes();
    let snap = s.snapshot();
    let mut again = Server::new(config(&key));
    again.restore(&snap, now, WALL + 3);
    assert_eq!(
        again.snapshot(),
        snap,
        "the lease file does not read back as written"
    );
    let mut crashed = Server::new(config(&key));
    crashed.restore(&file, now, WALL + 3);
    let on_disk = allocations(&crashed.snapshot());
    for a in allocations(&snap) {
        assert!(
            on_disk.contains(&a),
            "allocation {a:?} is not in the journaled lease file"
        );
    }

    let _ = Server::new(config(&key)).restore(data, now, 0);
});
