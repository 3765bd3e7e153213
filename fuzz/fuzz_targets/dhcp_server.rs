//! Any bytes as a DHCP message (a UDP payload) from an ECO endpoint, into a server that
//! already holds leases: once from the ECO's own MAC, once from a guest behind it (the
//! message's chaddr); the server's lease file must read back as written. Then the same
//! bytes as a lease file.
#![no_main]
use econet::addr::MacAddr;
use econet::dhcp::{Config, Endpoint, EndpointKey, Rx, Server};
use std::time::{Duration, Instant};

/// The ECO's MAC and address are udhcpc's in the captures the seeds come from
/// (fuzz/seeds.rs): client 72:1e:a0:80:59:50 on 10.9.0.0/24.
const ECO: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const GUEST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const WALL: u64 = 1_800_000_000;
const LEASES: &str = "econet-dhcp-leases 1\n\
    10.9.0.49 1799999000 72:1e:a0:80:59:50 eco a eth0 web\n\
    10.9.0.60 1799999000 02:00:00:00:00:02 guest a eth0 mac:02:00:00:00:00:02 vm\n";

fn config(key: &EndpointKey) -> Config {
    let mut cfg = Config::new("10.9.0.0/24".parse().unwrap(), "10.9.0.1".parse().unwrap());
    cfg.endpoints = vec![Endpoint {
        key: key.clone(),
        mac: ECO,
        static_ip: None,
        hostname: "web".into(),
    }];
    cfg
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = EndpointKey {
        app_id: "a".into(),
        ifname: "eth0".into(),
    };
    let now = Instant::now();
    let mut s = Server::new(config(&key));
    assert_eq!(s.restore(LEASES.as_bytes(), now, WALL), 2);
    let mut buf = [0u8; 1500];
    let chaddr = data
        .get(28..34)
        .and_then(MacAddr::from_slice)
        .filter(|m| *m != ECO && !m.is_multicast() && !m.is_zero())
        .unwrap_or(GUEST);
    for (i, src_mac) in [ECO, chaddr].into_iter().enumerate() {
        let t = now + Duration::from_secs(i as u64);
        let rx = Rx {
            endpoint: Some(&key),
            src_mac,
            src_ip: "0.0.0.0".parse().unwrap(),
            payload: data,
        };
        let _ = s.handle(t, WALL + i as u64, rx, &mut buf);
        // Past the conflict probe's window, with no answer to it.
        while s
            .poll(t + Duration::from_secs(1), WALL + i as u64 + 1, &mut buf)
            .is_some()
        {}
    }
    let _ = s.take_changes();
    let snap = s.snapshot();
    let mut again = Server::new(config(&key));
    again.restore(&snap, now, WALL + 2);
    assert_eq!(
        again.snapshot(),
        snap,
        "the lease file does not read back as written"
    );

    let _ = Server::new(config(&key)).restore(data, now, 0);
});
