//! Any bytes as a DNS query to a network with local names, and as an upstream reply.
#![no_main]
use econet::dns::{Dns, Limits, NetParams, Transport};
use std::time::Instant;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut d = Dns::new(Limits::default());
    let _ = d.set_network(1, NetParams { domain: Some("eco.internal".into()), upstreams: vec!["192.0.2.53:53".parse().unwrap()], ..Default::default() });
    d.set_hosts(1, vec![("web".into(), "10.1.0.5".parse().unwrap())]);
    let mut out = vec![0u8; 65535];
    let now = Instant::now();
    for t in [Transport::Udp, Transport::Tcp] {
        let _ = d.handle_query(now, 1, "10.1.0.9:5353".parse().unwrap(), t, data, &mut out);
        let _ = d.handle_upstream(now, "192.0.2.53:53".parse().unwrap(), t, data, &mut out);
    }
});
