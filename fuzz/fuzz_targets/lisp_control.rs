//! Any bytes as LISP control and data messages, into an xTR and a map server.
#![no_main]
use std::time::Instant;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut x = econet::lisp::xtr::Xtr::new(econet::lisp::xtr::XtrConfig::new(1000), now);
    x.set_local_rloc(now, Some("203.0.113.1".parse().unwrap()));
    x.set_local_eids(now, &["10.200.1.10".parse().unwrap()]);
    let from = "198.51.100.1:4342".parse().unwrap();
    x.handle_control(now, from, data);
    let mut copy = data.to_vec();
    let _ = x.handle_data(now, from, &mut copy);
    while x.poll(now).is_some() {}
    if let Ok(cfg) = econet::lisp::ms_config::parse(br#"{"listen": "198.51.100.1", "sites": [{"name": "s", "key": "k", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}"#) {
        let mut ms = econet::lisp::server::MapServer::new(cfg);
        let _ = ms.handle(now, "203.0.113.1:4342".parse().unwrap(), data);
    }
});
