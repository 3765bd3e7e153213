//! Any bytes as each JSON document econet reads: a device config (from the file, the
//! controller, or the state dir's last good one), a map server's config and a board
//! profile. Rejected with errors or accepted, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = econet::config::parse(data);
    let _ = econet::lisp::ms_config::parse(data);
    let _ = econet::board::parse(data);
});
