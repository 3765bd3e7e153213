//! Any bytes as what a DNS client sends on a TCP connection: cut into messages by the
//! shell's framing (RFC 1035 §4.2.2) whether it arrives in one read or byte by byte,
//! each message through the core as a TCP query and as the upstream's TCP reply, and
//! every reply framed back onto the connection (see dns_common.rs).
#![no_main]
use econet::dns::Transport;
use econet::wire::dns::tcp::{write_message, Reader};

mod dns_common;

/// The messages of `stream` read in `chunk`-byte reads, as the shell takes them after
/// each read, and whether the connection stays open.
fn frame(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut r = Reader::default();
    let mut msgs = Vec::new();
    for part in stream.chunks(chunk) {
        if !r.push(part) {
            return (msgs, false);
        }
        while let Some(m) = r.next_message() {
            msgs.push(m);
        }
    }
    // What is left is the start of one message.
    let rest = &stream[stream.len() - r.buffered()..];
    if let Some(p) = rest.first_chunk::<2>() {
        assert!(rest.len() < 2 + usize::from(u16::from_be_bytes(*p)));
    }
    (msgs, true)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (msgs, open) = frame(data, data.len().max(1));
    if data.len() <= Reader::MAX_BUFFERED {
        assert!(open);
        assert_eq!(msgs, frame(data, 1).0, "framing depends on read sizes");
    }
    assert!(msgs.iter().map(|m| m.len() + 2).sum::<usize>() <= data.len());

    let mut d = dns_common::dns();
    let mut out = vec![0u8; 65535];
    let mut sent = Vec::new();
    let mut replies = Vec::new();
    for m in &msgs {
        for r in dns_common::exchange(&mut d, Transport::Tcp, m, &mut out) {
            assert!(
                write_message(&mut sent, &r),
                "a TCP reply the framing cannot carry"
            );
            replies.push(r);
        }
    }
    // What the client reads back is exactly the replies, in order.
    let (back, open) = frame(&sent, 4096);
    assert!(open);
    assert_eq!(back, replies);
});
