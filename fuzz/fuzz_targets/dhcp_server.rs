//! Any bytes as what an ECO endpoint sends the DHCP server, into a server that already
//! holds leases: as a whole frame off the endpoint's packet socket (an ARP frame, which
//! may answer a conflict probe, or a DHCP request), and as a UDP payload from the
//! ECO's own MAC and from a guest behind it (the message's chaddr). Every reply is
//! framed as the shell sends it and must read back as Ethernet/IPv4/UDP with a good
//! checksum; the lease file must read back as written, and the file as the shell
//! keeps it (a snapshot, then each batch's journal) must hold every allocation made.
//! Then the bytes as a lease file.
#![no_main]
use econet::addr::MacAddr;
use econet::dhcp::{frame, Config, Endpoint, EndpointKey, Output, Rx, Server};
use econet::wire::udp::Checksum;
use econet::wire::{ethernet, ipv4, udp};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The ECO's MAC and address are udhcpc's in the captures the seeds come from
/// (fuzz/seeds.rs): client 72:1e:a0:80:59:50 on 10.9.0.0/24, dnsmasq at 10.9.0.1.
const ECO: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const GUEST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const BRIDGE: MacAddr = MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const WALL: u64 = 1_800_000_000;
const LEASES: &str = "econet-dhcp-leases 1\n\
    10.9.0.49 1799999000 72:1e:a0:80:59:50 eco a eth0 web\n\
    10.9.0.60 1799999000 02:00:00:00:00:02 guest a eth0 mac:02:00:00:00:00:02 vm\n";

fn config(key: &EndpointKey) -> Config {
    let mut cfg = Config::new("10.9.0.0/24".parse().unwrap(), GATEWAY);
    cfg.endpoints = vec![Endpoint {
        key: key.clone(),
        mac: ECO,
        static_ip: None,
        hostname: "web".into(),
    }];
    cfg
}

/// Frames a server output as the shell does; a reply must read back.
fn send(out: Option<Output>, tx: &mut [u8]) {
    match out {
        Some(Output::Reply(r)) => {
            let len = frame::emit_reply(tx, BRIDGE, GATEWAY, &r)
                .expect("a reply that does not fit a frame");
            let f = &tx[..len];
            let eth = ethernet::Packet::new_checked(f).expect("reply: Ethernet");
            assert_eq!(eth.dst_addr(), r.dst_mac);
            let ip = ipv4::Packet::new_checked(&f[ethernet::HEADER_LEN..]).expect("reply: IPv4");
            let ip = ipv4::Repr::parse(&ip).expect("reply: IPv4 header");
            let seg = &f[ethernet::HEADER_LEN + ipv4::HEADER_LEN..];
            let u = udp::Packet::new_checked(seg).expect("reply: UDP");
            udp::Repr::parse(&u, ip.src_addr, ip.dst_addr, Checksum::Verify)
                .expect("reply: UDP checksum");
        }
        Some(Output::Probe(ip)) => {
            let len = frame::emit_probe(tx, BRIDGE, ip).expect("a probe that does not fit a frame");
            assert_eq!(
                frame::parse_arp(&tx[..len]),
                Some((BRIDGE, Ipv4Addr::UNSPECIFIED))
            );
        }
        None => {}
    }
}

/// A lease file's allocations as (address, endpoint, client), the rest left out
/// (renewals change it without a write).
fn allocations(file: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(file);
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let client = if f.get(3) == Some(&"guest") {
                f.get(6)
            } else {
                None
            };
            [f.first(), f.get(4), f.get(5), client]
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
    let mut tx = [0u8; 1514];
    // The lease file as the shell keeps it: a snapshot, then each batch's journal.
    let mut file = s.snapshot();

    // A frame, handled as the shell handles what its packet socket reads.
    if let Some((mac, ip)) = frame::parse_arp(data) {
        let out = s.handle_arp(now, mac, ip);
        file.extend(s.take_journal());
        send(out, &mut tx);
    } else if let Some((src_mac, src_ip, payload)) = frame::parse_request(data, Checksum::Ignore) {
        let rx = Rx {
            endpoint: Some(&key),
            src_mac,
            src_ip,
            payload,
        };
        let out = s.handle(now, WALL, rx, &mut tx[frame::PAYLOAD_OFFSET..]);
        file.extend(s.take_journal());
        send(out, &mut tx);
    }

    // A UDP payload, from the ECO and from a guest.
    let chaddr = data
        .get(28..34)
        .and_then(MacAddr::from_slice)
        .filter(|m| *m != ECO && !m.is_multicast() && !m.is_zero())
        .unwrap_or(GUEST);
    for (i, src_mac) in [ECO, chaddr].into_iter().enumerate() {
        let t = now + Duration::from_secs(1 + i as u64);
        let wall = WALL + 1 + i as u64;
        let rx = Rx {
            endpoint: Some(&key),
            src_mac,
            src_ip: Ipv4Addr::UNSPECIFIED,
            payload: data,
        };
        let out = s.handle(t, wall, rx, &mut tx[frame::PAYLOAD_OFFSET..]);
        file.extend(s.take_journal());
        send(out, &mut tx);
        // Past the conflict probe's window, with no answer to it.
        while let Some(out) = s.poll(
            t + Duration::from_millis(500),
            wall,
            &mut tx[frame::PAYLOAD_OFFSET..],
        ) {
            file.extend(s.take_journal());
            send(Some(out), &mut tx);
        }
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
    // Every allocation made is on disk before its ACK leaves: the journaled file, read
    // back after a crash, still holds each one (for the same identity).
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
