//! Addresses learned for `host` ACEs, on a real kernel: the learner writes into a
//! set of the builder's layout (made here with `nft`, in a namespace of its own),
//! `nft list set` shows each element with the answer's (clamped) timeout, a timeout
//! is renewed by a later answer, and a full set or a missing one is counted without
//! breaking the learner's socket for the next answer.

mod common;

use common::*;
use econet::acl::hosts::{self, Admit, Learner, MAX_PER_ANSWER, MAX_PER_NET};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The set as the firewall builder makes it: `mark . ipv4_addr` (8 bytes), with
/// timeouts, `MAX_PER_NET` elements at most.
fn make_set(ns: &Netns, bridge: &str) {
    ns.exec(&["nft", "add", "table", "inet", "econet"]);
    let def = format!("{{ type mark . ipv4_addr; flags timeout; size {MAX_PER_NET}; }}");
    ns.exec(&[
        "nft",
        "add",
        "set",
        "inet",
        "econet",
        &hosts::set_name(bridge),
        &def,
    ]);
}

fn list_set(ns: &Netns, bridge: &str) -> String {
    stdout(&ns.exec(&[
        "nft",
        "list",
        "set",
        "inet",
        "econet",
        &hosts::set_name(bridge),
    ]))
}

/// How `nft` prints an element's key: the id is a `mark`, a host-endian integer.
fn shown(host: &str, addr: Ipv4Addr) -> String {
    let id = u32::from_ne_bytes(hosts::name_id(host).to_be_bytes());
    format!("0x{id:08x} . {addr}")
}

/// The `timeout …` of the element shown as `elem`, if it is in the listing.
fn timeout_of(listing: &str, elem: &str) -> Option<String> {
    let at = listing.find(elem)?;
    let rest = &listing[at + elem.len()..];
    let rest = rest.trim_start().strip_prefix("timeout ")?;
    Some(rest.split_whitespace().next()?.to_string())
}

fn learner_in(ns: &Netns) -> Learner {
    let handle = econet::netlink::netns::Netns::open(&ns.path()).expect("open netns");
    handle
        .enter(Learner::open)
        .expect("enter netns")
        .expect("netfilter socket")
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

#[test]
fn learned_addresses_enter_the_set_with_their_ttl_and_a_full_set_is_counted() {
    require_root();
    let ns = Netns::new("hosts");
    make_set(&ns, "br0");
    let mut l = learner_in(&ns);
    let now = Instant::now();
    let h = vec!["example.com".to_string()];
    let web = Ipv4Addr::new(192, 0, 2, 21);

    // An answer for a subdomain: admitted under the host's id, TTL 300.
    let elems = hosts::admitted(&h, "www.Example.com.", &[(web, 300)]);
    let o = l.learn("br0", &elems, now);
    assert_eq!((o.learned, o.full, o.failed), (1, 0, 0));
    let ls = list_set(&ns, "br0");
    let el = shown("example.com", web);
    assert_eq!(timeout_of(&ls, &el).as_deref(), Some("5m"), "{ls}");

    // A later answer sets the timeout again, longer or shorter (clamped to 60 s).
    for (ttl, want) in [(3600, "1h"), (5, "1m"), (7 * 86_400, "1d")] {
        let elems = hosts::admitted(&h, "example.com", &[(web, ttl)]);
        assert_eq!(l.learn("br0", &elems, now).learned, 1);
        let ls = list_set(&ns, "br0");
        assert_eq!(
            timeout_of(&ls, &el).as_deref(),
            Some(want),
            "ttl {ttl}: {ls}"
        );
    }

    // One learn batch: measured over a few single-address answers.
    let mut times = Vec::new();
    for i in 0..50 {
        let elems = hosts::admitted(&h, "api.example.com", &[(addr(100_000 + i), 120)]);
        assert_eq!(l.learn("br0", &elems, now).learned, 1);
        times.push(l.last_commit);
    }
    times.sort();
    eprintln!(
        "learn batch, one address: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // Fill the set to its size, MAX_PER_ANSWER addresses an answer.
    let have = 51;
    let id = hosts::name_id("example.com");
    let fill: Vec<Admit> = (0..MAX_PER_NET - have)
        .map(|i| Admit {
            key: hosts::key(id, addr(i)),
            timeout_secs: 600,
        })
        .collect();
    let mut big = Duration::ZERO;
    for chunk in fill.chunks(MAX_PER_ANSWER) {
        let o = l.learn("br0", chunk, now);
        assert_eq!((o.learned, o.full, o.failed), (chunk.len() as u64, 0, 0));
        big = big.max(l.last_commit);
    }
    eprintln!("learn batch, {MAX_PER_ANSWER} addresses: at most {big:?}");
    let count = list_set(&ns, "br0").matches(" expires ").count();
    assert_eq!(count, MAX_PER_NET as usize);

    // Full: a new address is counted, not admitted; the answer is not held up.
    let extra = Ipv4Addr::new(198, 51, 100, 1);
    let o = l.learn(
        "br0",
        &hosts::admitted(&h, "example.com", &[(extra, 300)]),
        now,
    );
    assert_eq!((o.learned, o.full, o.failed), (0, 1, 0));
    assert!(!list_set(&ns, "br0").contains(&format!(" . {extra}")));
    // An answer with a new and a known address: the known one is still renewed,
    // and the socket reads this batch's acknowledgements, not the last one's.
    let elems = hosts::admitted(&h, "example.com", &[(extra, 300), (web, 7200)]);
    let o = l.learn("br0", &elems, now);
    assert_eq!((o.learned, o.full, o.failed), (1, 1, 0));
    let ls = list_set(&ns, "br0");
    assert_eq!(timeout_of(&ls, &el).as_deref(), Some("2h"));
    assert_eq!(ls.matches(" expires ").count(), MAX_PER_NET as usize);
    assert_eq!(l.full, 2);

    // A network whose set is not there yet: counted as failed.
    let o = l.learn(
        "br1",
        &hosts::admitted(&h, "example.com", &[(web, 300)]),
        now,
    );
    assert_eq!((o.learned, o.full, o.failed), (0, 0, 1));
    assert_eq!(l.failed, 1);
    // And the learner goes on working.
    let elems = hosts::admitted(&h, "example.com", &[(web, 60)]);
    assert_eq!(l.learn("br0", &elems, now).learned, 1);
    assert_eq!(
        timeout_of(&list_set(&ns, "br0"), &el).as_deref(),
        Some("1m")
    );
    assert_eq!(
        l.learned,
        1 + 3 + 50 + u64::from(MAX_PER_NET - have) + 1 + 1
    );
}
