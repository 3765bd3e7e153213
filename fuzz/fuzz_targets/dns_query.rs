//! Any bytes as a DNS query over UDP to a network with local names, and as the
//! upstream's reply to the same question (see dns_common.rs).
#![no_main]
use econet::dns::Transport;

mod dns_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut d = dns_common::dns();
    let mut out = vec![0u8; 65535];
    let _ = dns_common::exchange(&mut d, Transport::Udp, data, &mut out);
    // An unsolicited reply is ignored, whatever it holds.
    let from = "192.0.2.53:53".parse().unwrap();
    let a = d.handle_upstream(
        std::time::Instant::now(),
        from,
        Transport::Udp,
        data,
        &mut out,
    );
    assert_eq!(a, econet::dns::Action::None);
});
