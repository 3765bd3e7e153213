//! Any bytes as a device config: rejected with errors or accepted, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = econet::config::parse(data);
});
