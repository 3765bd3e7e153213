//! Any bytes as a LISP control message into an xTR (from the map server and from the
//! other device) and into the map server (see lisp_common.rs).
#![no_main]
use econet::wire::lisp::CONTROL_PORT;
use std::time::{Duration, Instant};

mod lisp_common;
use lisp_common::*;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut x = xtr(true, now);
    for f in [from(MS, CONTROL_PORT), from(RLOC0, CONTROL_PORT)] {
        x.handle_control(now, f, data);
        let mut copy = data.to_vec();
        let _ = x.handle_data(now, f, &mut copy);
    }
    while x.poll(now).is_some() {}
    while x.poll(now + Duration::from_secs(120)).is_some() {}
    let _ = x.status();

    let ms_config = format!(
        r#"{{"listen": "{MS}", "sites": [{{"name": "fleet", "key": "{KEY}", "instance_id": {IID}, "eid_prefixes": ["10.200.0.0/16"]}}]}}"#
    );
    let cfg =
        econet::lisp::ms_config::parse(ms_config.as_bytes()).expect("the map server's config");
    let mut ms = econet::lisp::server::MapServer::new(cfg);
    for f in [from(RLOC0, CONTROL_PORT), from(RLOC1, CONTROL_PORT)] {
        let _ = ms.handle(now, f, data);
    }
    let _ = ms.status(now);
    let _ = ms.poll(now + Duration::from_secs(3600));
});
