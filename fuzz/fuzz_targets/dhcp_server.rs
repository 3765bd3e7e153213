//! Any bytes as a DHCP message from an ECO endpoint, into a server with one ECO.
#![no_main]
use econet::dhcp::{Config, Endpoint, EndpointKey, Rx, Server};
use std::time::Instant;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = EndpointKey { app_id: "a".into(), ifname: "eth0".into() };
    let mut cfg = Config::new("10.1.0.0/24".parse().unwrap(), "10.1.0.1".parse().unwrap());
    cfg.endpoints = vec![Endpoint { key: key.clone(), mac: "02:00:00:00:00:01".parse().unwrap(), static_ip: None, hostname: "a".into() }];
    let mut s = Server::new(cfg);
    let mut buf = [0u8; 1500];
    let now = Instant::now();
    let mac = data.get(..6).and_then(econet::addr::MacAddr::from_slice).unwrap_or_default();
    let rx = Rx { endpoint: Some(&key), src_mac: mac, src_ip: "0.0.0.0".parse().unwrap(), payload: data };
    let _ = s.handle(now, 1_800_000_000, rx, &mut buf);
    while s.poll(now + std::time::Duration::from_secs(1), 1_800_000_001, &mut buf).is_some() {}
    let _ = s.snapshot();
    let _ = Server::new(Config::new("10.1.0.0/24".parse().unwrap(), "10.1.0.1".parse().unwrap())).restore(data, now, 0);
});
