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

/// Drives the DNS shell's sockets (UDP, the TCP listener, upstream UDP, the first
/// TCP clients) until `done`, for at most `limit`; `true` if `done` came.
fn drive(
    shell: &mut econet::services::dns::DnsShell,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    use econet::services::Service;
    let end = Instant::now() + limit;
    let mut events = Vec::new();
    while Instant::now() < end {
        // Slots: 0 UDP, 1 TCP listener, 2 upstream UDP, 0x8000.. TCP clients.
        for slot in [0, 1, 2, 0x8000, 0x8001] {
            shell.ready(slot, Instant::now(), &mut events);
        }
        shell.handle_timeout(Instant::now(), &mut events);
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// What `dig` in `eco` printed (`+short`), run while the shell is driven.
fn ask(shell: &mut econet::services::dns::DnsShell, eco: &Netns, args: &[&str]) -> Option<String> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns", "exec", &eco.name, "dig", "+short", "+tries=1", "+time=3",
    ])
    .args(args)
    .stdout(std::process::Stdio::piped());
    let mut child = Proc(cmd.spawn().ok()?);
    let exited = drive(shell, Duration::from_secs(5), || {
        matches!(child.0.try_wait(), Ok(Some(_)))
    });
    if !exited {
        return None;
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut()?, &mut out).ok()?;
    Some(out)
}

/// The DNS shell on a real bridge-side link: answers for an ACL host, local (UDP and
/// TCP) or forwarded through a CNAME chain, reach the ECO with their addresses
/// already in the set; other answers add nothing; status counts them.
#[test]
fn answers_econet_dns_sends_are_learned_before_they_leave() {
    require_root();
    assert!(
        try_run(&["sh", "-c", "command -v dig && command -v dnsmasq"]),
        "dig and dnsmasq are needed (tests/run installs them)"
    );
    let dev = Netns::new("hostsdev");
    let eco = Netns::new("hostseco");
    veth(&dev, "br0", &eco, "eth0");
    dev.ip(&["addr", "add", "10.9.0.1/24", "dev", "br0"]);
    eco.ip(&["addr", "add", "10.9.0.2/24", "dev", "eth0"]);
    make_set(&dev, "br0");
    // The upstream: a CNAME chain ending in two A records with TTL 30.
    let _upstream = Proc(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &dev.name,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
            ])
            .args(["--no-hosts", "--port=5353", "--listen-address=127.0.0.1"])
            .args([
                "--bind-interfaces",
                "--cname=cdn.example.org,edge.cdn.test,300",
            ])
            .args(["--host-record=edge.cdn.test,192.0.2.31,30"])
            .args(["--host-record=edge.cdn.test,192.0.2.32,30"])
            .args(["--host-record=other.test,192.0.2.40,30"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq"),
    );
    assert!(wait_until(Duration::from_secs(5), || dev.try_exec(&[
        "dig",
        "+short",
        "+tries=1",
        "+time=1",
        "-p",
        "5353",
        "@127.0.0.1",
        "other.test"
    ])));

    let spec = econet::services::dns::NetSpec {
        net_id: "n1".into(),
        bridge: "br0".into(),
        gateway: Ipv4Addr::new(10, 9, 0, 1),
        gateway6: None,
        forward_from_gateway: false,
        params: econet::dns::NetParams {
            domain: Some("example.com".into()),
            upstreams: vec!["127.0.0.1:5353".parse().unwrap()],
            static_dns: vec![
                econet::config::HostEntry {
                    host: "www".into(),
                    addrs: vec![Ipv4Addr::new(192, 0, 2, 21)],
                    addrs6: Vec::new(),
                },
                econet::config::HostEntry {
                    host: "api.example.com".into(),
                    addrs: vec![Ipv4Addr::new(192, 0, 2, 50)],
                    addrs6: Vec::new(),
                },
            ],
            subnet: None,
            subnet6: None,
            app_names: Vec::new(),
        },
        acl_hosts: vec!["example.com".into(), "example.org".into()],
    };
    let handle = econet::netlink::netns::Netns::open(&dev.path()).expect("open netns");
    // Inside the device's namespace: the shell's sockets and its learner's.
    let (errors, answers, status) = handle
        .enter(|| {
            // What the firewall builder adds: the static addresses, no timeout.
            let names = hosts::static_names(&spec.params.static_dns, spec.params.domain.as_deref());
            let statics = hosts::static_elems(&spec.acl_hosts, &names);
            let keys: Vec<Vec<u8>> = statics.iter().map(|k| k.to_vec()).collect();
            let mut nft = econet::netlink::nft::Nft::open().expect("nft");
            let mut b = nft.batch();
            b.add_elems(
                econet::netlink::nft::NFPROTO_INET,
                "econet",
                "hosts4_br0",
                &keys,
            );
            nft.commit(b).expect("static elements");
            let mut shell = econet::services::dns::DnsShell::new();
            let errors = shell.set_networks(std::slice::from_ref(&spec)).len();
            let answers = [
                ask(&mut shell, &eco, &["@10.9.0.1", "www.example.com"]),
                ask(&mut shell, &eco, &["+tcp", "@10.9.0.1", "WWW.Example.COM."]),
                ask(&mut shell, &eco, &["@10.9.0.1", "cdn.example.org"]),
                ask(&mut shell, &eco, &["@10.9.0.1", "other.test"]),
                ask(&mut shell, &eco, &["@10.9.0.1", "api.example.com"]),
            ];
            let net = econet::config::Network {
                id: "n1".into(),
                name: "lan".into(),
                kind: econet::config::NetKind::Local,
                port: None,
                ports: Vec::new(),
                mtu: None,
                ip: None,
                static_dns: Vec::new(),
                vpn: None,
                mesh: None,
                bridge: "br0".into(),
            };
            let mut ns = econet::status::NetworkStatus::default();
            econet::services::Service::status(&shell, &net, Instant::now(), &mut ns);
            (errors, answers, ns.dns)
        })
        .expect("enter netns");
    assert_eq!(errors, 0);
    let [www, www_tcp, cdn, other, api] = answers;
    assert_eq!(www.as_deref(), Some("192.0.2.21\n"));
    assert_eq!(www_tcp.as_deref(), Some("192.0.2.21\n"));
    let cdn = cdn.expect("cdn.example.org answered");
    assert!(
        cdn.contains("192.0.2.31") && cdn.contains("192.0.2.32"),
        "{cdn}"
    );
    assert_eq!(other.as_deref(), Some("192.0.2.40\n"));
    assert_eq!(api.as_deref(), Some("192.0.2.50\n"));

    let ls = list_set(&dev, "br0");
    let www_el = shown("example.com", Ipv4Addr::new(192, 0, 2, 21));
    // www is a static_dns name in the domain: static, answered without a timeout.
    assert!(ls.contains(&www_el), "{ls}");
    assert_eq!(timeout_of(&ls, &www_el), None, "{ls}");
    for a in [[192, 0, 2, 31], [192, 0, 2, 32]] {
        let el = shown("example.org", Ipv4Addr::from(a));
        // TTL 30, kept 60 s.
        assert_eq!(timeout_of(&ls, &el).as_deref(), Some("1m"), "{ls}");
    }
    assert!(!ls.contains("192.0.2.40"), "{ls}");
    assert_eq!(ls.matches(" expires ").count(), 2, "{ls}");
    // A static address answered stays without a timeout.
    let api_el = shown("example.com", Ipv4Addr::new(192, 0, 2, 50));
    assert!(ls.contains(&api_el), "{ls}");
    assert_eq!(timeout_of(&ls, &api_el), None, "{ls}");
    let d = status.expect("dns status");
    // The two CDN addresses (www and api are static).
    assert_eq!(
        (d.acl_hosts_learned, d.acl_hosts_full, d.acl_hosts_failed),
        (2, 0, 0)
    );
}
