use super::*;
use crate::wire::dns::captures::*;
use crate::wire::dns::{RData, Records};

const NET: NetId = 1;
const BARE: NetId = 2;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn up1() -> SocketAddr {
    sa("127.0.0.1:5301")
}
fn up2() -> SocketAddr {
    sa("127.0.0.1:5302")
}
fn client() -> SocketAddr {
    sa("10.1.0.23:40000")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn setup(limits: Limits) -> Dns {
    let mut d = Dns::new(limits);
    let many: Vec<Ipv4Addr> = (1..=40).map(|i| Ipv4Addr::new(10, 1, 1, i)).collect();
    d.set_network(
        NET,
        NetParams {
            domain: Some("eco.internal".into()),
            upstreams: vec![up1(), up2()],
            static_dns: vec![
                HostEntry {
                    host: "db".into(),
                    addrs: vec![ip("10.1.0.5"), ip("10.1.0.6")],
                    addrs6: Vec::new(),
                },
                HostEntry {
                    host: "printer".into(),
                    addrs: vec![ip("192.0.2.9")],
                    addrs6: Vec::new(),
                },
                HostEntry {
                    host: "many".into(),
                    addrs: many,
                    addrs6: Vec::new(),
                },
            ],
            subnet: Some("10.1.0.0/24".parse().unwrap()),
            subnet6: None,
            app_names: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        d.set_hosts(
            NET,
            vec![
                ("web".into(), ip("10.1.0.23")),
                ("bad host".into(), ip("10.1.0.24"))
            ]
        ),
        Some(1)
    );
    d.set_network(BARE, NetParams::default()).unwrap();
    d.set_hosts(BARE, vec![("plc".into(), ip("10.3.0.20"))]);
    d
}

fn dns() -> Dns {
    setup(Limits::default())
}

/// A query as a stub resolver sends it (RD set).
fn query(id: u16, name: &str, qtype: Type, edns: Option<u16>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = Builder::new(&mut buf, id, flags::RD).unwrap();
    let n = NameBuf::from_text(name).unwrap();
    b.question(n.as_wire(), qtype, Class::IN).unwrap();
    if let Some(size) = edns {
        b.opt(size, 0, false).unwrap();
    }
    let len = b.finish();
    buf[..len].to_vec()
}

#[derive(Debug)]
struct Reply {
    id: u16,
    rcode: Rcode,
    aa: bool,
    tc: bool,
    rd: bool,
    question: String,
    answers: Vec<(String, Type, u32, String)>,
    authority: Vec<(String, Type, u32, String)>,
    opt: Option<Edns>,
}

fn read(msg: &[u8]) -> Reply {
    let p = Packet::new_checked(msg).unwrap();
    let question = p
        .questions()
        .next()
        .map(|q| q.unwrap().name.to_string())
        .unwrap_or_default();
    let mut r = Reply {
        id: p.id(),
        rcode: p.rcode(),
        aa: p.aa(),
        tc: p.tc(),
        rd: p.rd(),
        question,
        answers: vec![],
        authority: vec![],
        opt: None,
    };
    for rec in p.records().unwrap() {
        let (s, rec) = rec.unwrap();
        if let Some(e) = rec.edns() {
            r.opt = Some(e);
            continue;
        }
        let data = match rec.rdata().unwrap() {
            RData::A(a) => a.to_string(),
            RData::Aaaa(a) => a.to_string(),
            RData::Ptr(n) => n.to_string(),
            RData::Soa(s) => format!("{} {}", s.mname, s.minimum),
            x => format!("{x:?}"),
        };
        let row = (rec.name.to_string(), rec.rtype, rec.ttl, data);
        match s {
            Section::Answer => r.answers.push(row),
            _ => r.authority.push(row),
        }
    }
    r
}

fn expect_reply(a: Action, to: SocketAddr, transport: Transport) -> usize {
    match a {
        Action::Reply {
            to: t,
            transport: tr,
            len,
            ..
        } if t == to && tr == transport => len,
        a => panic!("expected a reply to {to}, got {a:?}"),
    }
}

fn expect_forward(a: Action, upstream: SocketAddr, transport: Transport) -> usize {
    match a {
        Action::Forward {
            upstream: u,
            transport: t,
            len,
            net,
        } if u == upstream && t == transport && net == NET => len,
        a => panic!("expected a forward to {upstream}, got {a:?}"),
    }
}

/// Asks `name` on the main network over UDP; returns the reply.
fn ask(d: &mut Dns, now: Instant, q: &[u8]) -> Reply {
    let mut out = [0u8; 65535];
    let a = d.handle_query(now, NET, client(), Transport::Udp, q, &mut out);
    let len = expect_reply(a, client(), Transport::Udp);
    read(&out[..len])
}

/// Sends a reply from `from`, with its id set to `id`; the result lands in `out`.
fn answer_into(
    d: &mut Dns,
    now: Instant,
    from: SocketAddr,
    id: u16,
    reply: &[u8],
    t: Transport,
    out: &mut [u8],
) -> Action {
    let mut m = reply.to_vec();
    Packet::new_unchecked(&mut m[..]).set_id(id);
    d.handle_upstream(now, from, t, &m, out)
}

/// Like [`answer_into`], for when only the action matters.
fn answer(
    d: &mut Dns,
    now: Instant,
    from: SocketAddr,
    id: u16,
    reply: &[u8],
    t: Transport,
) -> Action {
    let mut out = [0u8; 65535];
    answer_into(d, now, from, id, reply, t, &mut out)
}

fn id_of(out: &[u8]) -> u16 {
    Packet::new_unchecked(out).id()
}

#[test]
fn local_a_from_real_dig_query() {
    let mut d = dns();
    let r = ask(&mut d, Instant::now(), DIG_A_EDNS_QUERY);
    assert_eq!(
        (r.id, r.rcode, r.aa, r.tc, r.rd),
        (0xdf63, Rcode::NoError, true, false, true)
    );
    assert_eq!(
        r.answers,
        [("web.eco.internal.".into(), Type::A, 60, "10.1.0.23".into())]
    );
    assert_eq!(r.opt.unwrap().udp_size, 1232);
    assert_eq!(d.counters().local, 1);
}

#[test]
fn local_names_bare_fqdn_and_case() {
    let mut d = dns();
    let now = Instant::now();
    let r = ask(&mut d, now, &query(1, "WEB.Eco.Internal", Type::A, None));
    assert_eq!(r.answers[0].0, "WEB.Eco.Internal.", "the query's spelling");
    assert!(r.opt.is_none());
    let r = ask(&mut d, now, &query(2, "Web", Type::A, None));
    assert_eq!(
        r.answers,
        [("Web.".into(), Type::A, 60, "10.1.0.23".into())]
    );
    let r = ask(
        &mut d,
        now,
        &query(3, "db.eco.internal", Type::A, Some(4096)),
    );
    let addrs: Vec<_> = r.answers.iter().map(|a| a.3.as_str()).collect();
    assert_eq!(addrs, ["10.1.0.5", "10.1.0.6"]);
    // The other network has no domain: bare names only, and no upstreams.
    let mut out = [0u8; 512];
    let q = query(4, "PLC", Type::A, None);
    let len = expect_reply(
        d.handle_query(now, BARE, client(), Transport::Udp, &q, &mut out),
        client(),
        Transport::Udp,
    );
    let r = read(&out[..len]);
    assert_eq!((r.rcode, r.aa), (Rcode::NoError, true));
    assert_eq!(r.answers[0].3, "10.3.0.20");
}

#[test]
fn local_ptr_aaaa_nodata_and_nxdomain() {
    let mut d = dns();
    let now = Instant::now();
    let r = ask(&mut d, now, DIG_PTR_QUERY);
    assert_eq!(
        r.answers,
        [(
            "9.2.0.192.in-addr.arpa.".into(),
            Type::PTR,
            60,
            "printer.eco.internal.".into()
        )]
    );
    let r = ask(
        &mut d,
        now,
        &query(1, "23.0.1.10.in-addr.arpa", Type::PTR, None),
    );
    assert_eq!(r.answers[0].3, "web.eco.internal.");
    // An address of the local subnet nobody has: NXDOMAIN, not forwarded.
    let r = ask(
        &mut d,
        now,
        &query(1, "99.0.1.10.in-addr.arpa", Type::PTR, None),
    );
    assert_eq!((r.rcode, r.aa), (Rcode::NxDomain, true));
    let r = ask(&mut d, now, &query(1, "web.eco.internal", Type::AAAA, None));
    assert_eq!((r.rcode, r.aa, r.answers.len()), (Rcode::NoError, true, 0));
    let r = ask(&mut d, now, &query(1, "web", Type::AAAA, Some(1232)));
    assert_eq!((r.rcode, r.answers.len()), (Rcode::NoError, 0));
    let r = ask(&mut d, now, &query(1, "nope.eco.internal", Type::A, None));
    assert_eq!((r.rcode, r.aa, r.answers.len()), (Rcode::NxDomain, true, 0));
    let r = ask(&mut d, now, &query(1, "eco.internal", Type::A, None));
    assert_eq!((r.rcode, r.answers.len()), (Rcode::NoError, 0));
    assert_eq!(d.counters().forwarded, 0);
}

#[test]
fn set_hosts_replaces_names() {
    let mut d = dns();
    let now = Instant::now();
    d.set_hosts(NET, vec![("api".into(), ip("10.1.0.30"))]);
    assert_eq!(
        ask(&mut d, now, &query(1, "web.eco.internal", Type::A, None)).rcode,
        Rcode::NxDomain
    );
    assert_eq!(
        ask(&mut d, now, &query(1, "api.eco.internal", Type::A, None))
            .answers
            .len(),
        1
    );
    // Static entries survive a host update; a network update keeps the hosts.
    assert_eq!(
        ask(&mut d, now, &query(1, "db", Type::A, None))
            .answers
            .len(),
        2
    );
    d.set_network(
        NET,
        NetParams {
            domain: Some("lan.example".into()),
            upstreams: vec![up1()],
            ..NetParams::default()
        },
    )
    .unwrap();
    assert_eq!(
        ask(&mut d, now, &query(1, "api.lan.example", Type::A, None))
            .answers
            .len(),
        1
    );
    assert!(d
        .set_network(
            7,
            NetParams {
                domain: Some("a..b".into()),
                ..Default::default()
            }
        )
        .is_err());
    assert_eq!(d.set_hosts(99, vec![]), None);
}

#[test]
fn forwarding_rewrites_and_restores_the_id() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    let len = expect_forward(a, up1(), Transport::Udp);
    let fid = id_of(&out);
    assert_eq!(
        &out[2..len],
        &DIG_UPSTREAM_QUERY[2..],
        "only the id changes"
    );
    assert_eq!(d.counters().pending, 1);
    let a = answer(
        &mut d,
        now,
        up1(),
        fid,
        DNSMASQ_UPSTREAM_REPLY,
        Transport::Udp,
    );
    assert_eq!(
        a,
        Action::Reply {
            net: NET,
            to: client(),
            transport: Transport::Udp,
            len: DNSMASQ_UPSTREAM_REPLY.len()
        }
    );
    assert_eq!(d.counters().pending, 0);
    // A second reply with the same id is late: ignored.
    let a = answer(
        &mut d,
        now,
        up1(),
        fid,
        DNSMASQ_UPSTREAM_REPLY,
        Transport::Udp,
    );
    assert_eq!(a, Action::None);
    // dnsmasq's TTL-0 answer is not cached: the next query goes upstream again.
    let a = d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    assert_ne!(id_of(&out), fid, "a new random id");
    assert_eq!(d.counters().cache_inserts, 0);
}

#[test]
fn forwarded_edns_size_is_clamped() {
    let mut d = dns();
    let mut out = [0u8; 65535];
    let q = query(5, "example.com", Type::A, Some(4096));
    let a = d.handle_query(Instant::now(), NET, client(), Transport::Udp, &q, &mut out);
    let len = expect_forward(a, up1(), Transport::Udp);
    assert_eq!(read(&out[..len]).opt.unwrap().udp_size, 1232);
    assert_eq!(&out[2..len - 8], &q[2..q.len() - 8]);
}

/// Counts this thread's heap allocations, to hold the hot paths to zero.
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            unsafe { System.dealloc(p, l) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    pub fn count() -> usize {
        ALLOCS.with(|c| c.get())
    }
}

#[test]
fn local_and_cached_answers_do_not_allocate() {
    let mut d = dns();
    let t0 = Instant::now();
    resolve(&mut d, t0, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    let mut out = vec![0u8; 65535];
    let queries = [
        DIG_A_EDNS_QUERY,
        DIG_AUTH_A_QUERY,
        DIG_PTR_QUERY,
        KDIG_QUERY,
    ];
    // KDIG_QUERY (upstream.test) is forwarded: that path may allocate.
    let before = alloc_count::count();
    for _ in 0..1000 {
        for q in &queries[..3] {
            let a = d.handle_query(t0, NET, client(), Transport::Udp, q, &mut out);
            assert!(matches!(a, Action::Reply { .. }));
        }
    }
    assert_eq!(alloc_count::count() - before, 0);
    let a = d.handle_query(t0, NET, client(), Transport::Udp, queries[3], &mut out);
    assert!(matches!(a, Action::Forward { .. }));
    assert!(alloc_count::count() > before, "the counter counts");
}

#[test]
fn forwarded_reply_carries_the_client_id() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(now, NET, client(), Transport::Udp, KDIG_QUERY, &mut out);
    expect_forward(a, up1(), Transport::Udp);
    let fid = id_of(&out);
    let mut m = DNSMASQ_NOEDNS_REPLY.to_vec();
    Packet::new_unchecked(&mut m[..]).set_id(fid);
    let len = expect_reply(
        d.handle_upstream(now, up1(), Transport::Udp, &m, &mut out),
        client(),
        Transport::Udp,
    );
    assert_eq!(id_of(&out), Packet::new_unchecked(KDIG_QUERY).id());
    assert_eq!(&out[2..len], &DNSMASQ_NOEDNS_REPLY[2..]);
}

#[test]
fn spoofed_or_mismatched_replies_are_ignored() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    let fid = id_of(&out);
    let r = DNSMASQ_UPSTREAM_REPLY;
    // Wrong source, wrong port, wrong transport, wrong id.
    assert_eq!(
        answer(&mut d, now, sa("127.0.0.9:5301"), fid, r, Transport::Udp),
        Action::None
    );
    assert_eq!(
        answer(&mut d, now, sa("127.0.0.1:5399"), fid, r, Transport::Udp),
        Action::None
    );
    assert_eq!(
        answer(&mut d, now, up1(), fid, r, Transport::Tcp),
        Action::None
    );
    assert_eq!(
        answer(&mut d, now, up1(), fid.wrapping_add(1), r, Transport::Udp),
        Action::None
    );
    // Right id and source, other question.
    assert_eq!(
        answer(&mut d, now, up1(), fid, DNSMASQ_TWO_A_REPLY, Transport::Udp),
        Action::None
    );
    // A query (QR=0) with the right id, and a cut-off reply.
    assert_eq!(
        answer(&mut d, now, up1(), fid, DIG_UPSTREAM_QUERY, Transport::Udp),
        Action::None
    );
    assert_eq!(
        answer(&mut d, now, up1(), fid, &r[..r.len() - 3], Transport::Udp),
        Action::None
    );
    assert_eq!(d.counters().upstream_ignored, 7);
    // The real one still gets through.
    let a = answer(&mut d, now, up1(), fid, r, Transport::Udp);
    expect_reply(a, client(), Transport::Udp);
}

#[test]
fn retry_on_the_next_upstream_after_a_timeout() {
    let mut d = dns();
    let t0 = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        t0,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    let id1 = id_of(&out);
    assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(d.poll(t0 + Duration::from_millis(999), &mut out), None);
    let a = d.poll(t0 + Duration::from_secs(1), &mut out).unwrap();
    expect_forward(a, up2(), Transport::Udp);
    let id2 = id_of(&out);
    assert_ne!(id1, id2);
    assert_eq!(d.poll(t0 + Duration::from_secs(1), &mut out), None);
    assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    // The first upstream's late reply no longer matches; the second one's does.
    let t = t0 + Duration::from_millis(1500);
    assert_eq!(
        answer(
            &mut d,
            t,
            up1(),
            id1,
            DNSMASQ_UPSTREAM_REPLY,
            Transport::Udp
        ),
        Action::None
    );
    let a = answer(
        &mut d,
        t,
        up2(),
        id2,
        DNSMASQ_UPSTREAM_REPLY,
        Transport::Udp,
    );
    expect_reply(a, client(), Transport::Udp);
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(d.counters().retries, 1);
}

#[test]
fn servfail_after_all_upstreams_time_out() {
    let mut d = dns();
    let t0 = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        t0,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    let mut sent = vec![];
    let mut t;
    let reply = loop {
        t = d.poll_timeout().expect("a timer while pending");
        assert!(t <= t0 + Duration::from_secs(5));
        match d.poll(t, &mut out) {
            Some(Action::Forward { upstream, .. }) => sent.push(upstream),
            Some(a) => break a,
            None => panic!("no work at the timeout"),
        }
    };
    assert_eq!(sent, [up2(), up1(), up2()]);
    assert_eq!(t, t0 + Duration::from_secs(4));
    let len = expect_reply(reply, client(), Transport::Udp);
    let r = read(&out[..len]);
    assert_eq!((r.id, r.rcode), (0x11ca, Rcode::ServFail));
    assert_eq!(r.question, "upstream.test.");
    assert!(r.opt.is_some(), "the client used EDNS0");
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(d.counters().timeouts, 1);
}

#[test]
fn upstream_failure_moves_on_at_once() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    let mut servfail = DNSMASQ_UPSTREAM_REPLY.to_vec();
    Packet::new_unchecked(&mut servfail[..]).set_rcode(Rcode::ServFail);
    let a = answer_into(
        &mut d,
        now,
        up1(),
        id_of(&out),
        &servfail,
        Transport::Udp,
        &mut out,
    );
    expect_forward(a, up2(), Transport::Udp);
    // Every upstream failed: the client hears it.
    let id = id_of(&out);
    let a = answer_into(&mut d, now, up2(), id, &servfail, Transport::Udp, &mut out);
    let len = expect_reply(a, client(), Transport::Udp);
    assert_eq!(read(&out[..len]).rcode, Rcode::ServFail);
}

/// Forwards `q` and answers it with `reply` at `now`; returns the client's reply.
fn resolve(d: &mut Dns, now: Instant, q: &[u8], reply: &[u8]) -> Reply {
    let mut out = [0u8; 65535];
    let a = d.handle_query(now, NET, client(), Transport::Udp, q, &mut out);
    expect_forward(a, up1(), Transport::Udp);
    let id = id_of(&out);
    let a = answer_into(d, now, up1(), id, reply, Transport::Udp, &mut out);
    let len = expect_reply(a, client(), Transport::Udp);
    read(&out[..len])
}

#[test]
fn cache_hit_ages_ttls_and_keeps_the_clients_spelling() {
    let mut d = dns();
    let t0 = Instant::now();
    let r = resolve(&mut d, t0, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    assert_eq!(r.answers[0].2, 300);
    assert_eq!(d.counters().cache_inserts, 1);
    let t = t0 + Duration::from_secs(100);
    let r = ask(&mut d, t, &query(0x4242, "A.Zone.TEST", Type::A, None));
    assert_eq!((r.id, r.rcode, r.rd), (0x4242, Rcode::NoError, true));
    assert_eq!(r.question, "A.Zone.TEST.");
    assert_eq!(
        r.answers,
        [("A.Zone.TEST.".into(), Type::A, 200, "192.0.2.1".into())]
    );
    assert_eq!(r.authority[0].2, 200, "every TTL ages");
    assert!(r.opt.is_none(), "no EDNS0 in the query, none in the reply");
    let r = ask(&mut d, t, &query(7, "a.zone.test", Type::A, Some(1400)));
    assert_eq!(r.opt.unwrap().udp_size, 1232);
    let c = d.counters();
    assert_eq!((c.cache_hits, c.forwarded, c.cache_entries), (2, 1, 1));
    // Another type, another network: misses.
    let mut out = [0u8; 65535];
    let q = query(8, "a.zone.test", Type::AAAA, None);
    expect_forward(
        d.handle_query(t, NET, client(), Transport::Udp, &q, &mut out),
        up1(),
        Transport::Udp,
    );
    let q = query(8, "a.zone.test", Type::A, None);
    let a = d.handle_query(t, BARE, client(), Transport::Udp, &q, &mut out);
    let len = expect_reply(a, client(), Transport::Udp);
    assert_eq!(read(&out[..len]).rcode, Rcode::Refused);
}

#[test]
fn cached_entries_expire() {
    let mut d = dns();
    let t0 = Instant::now();
    resolve(&mut d, t0, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    let r = ask(
        &mut d,
        t0 + Duration::from_millis(299_999),
        DIG_AUTH_A_QUERY,
    );
    assert_eq!(r.answers[0].2, 1);
    let mut out = [0u8; 65535];
    let t = t0 + Duration::from_secs(300);
    let a = d.handle_query(t, NET, client(), Transport::Udp, DIG_AUTH_A_QUERY, &mut out);
    expect_forward(a, up1(), Transport::Udp);
    assert_eq!(d.counters().cache_entries, 0);
}

#[test]
fn negative_answers_cached_by_soa_minimum_with_a_cap() {
    let mut d = dns();
    let t0 = Instant::now();
    let r = resolve(&mut d, t0, DIG_AUTH_NX_QUERY, DNSMASQ_AUTH_NX_REPLY);
    assert_eq!(r.rcode, Rcode::NxDomain);
    let r = ask(&mut d, t0 + Duration::from_secs(10), DIG_AUTH_NX_QUERY);
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(r.authority[0].1, Type::SOA);
    assert_eq!(r.authority[0].2, 290);
    // NODATA with an SOA is negative too.
    let q = query(9, "a.zone.test", Type::AAAA, None);
    resolve(&mut d, t0, &q, DNSMASQ_AUTH_NODATA_REPLY);
    assert_eq!(ask(&mut d, t0, &q).answers.len(), 0);
    // Without an SOA (dnsmasq's --address NXDOMAIN) nothing is cached.
    resolve(&mut d, t0, DIG_NX_QUERY, DNSMASQ_NX_REPLY);
    assert_eq!(d.counters().cache_inserts, 2);

    let mut d = setup(Limits {
        max_negative_ttl: 60,
        ..Limits::default()
    });
    resolve(&mut d, t0, DIG_AUTH_NX_QUERY, DNSMASQ_AUTH_NX_REPLY);
    let r = ask(&mut d, t0 + Duration::from_secs(1), DIG_AUTH_NX_QUERY);
    assert_eq!(r.authority[0].2, 59);
    let mut out = [0u8; 65535];
    let t = t0 + Duration::from_secs(60);
    let a = d.handle_query(
        t,
        NET,
        client(),
        Transport::Udp,
        DIG_AUTH_NX_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
}

#[test]
fn long_ttls_are_capped() {
    let mut d = dns();
    let t0 = Instant::now();
    let mut reply = DNSMASQ_AUTH_A_REPLY.to_vec();
    // The A record's TTL (after the 27-byte question and its owner pointer + type/class).
    let ttl_at = 12 + 15 + 2 + 4;
    reply[ttl_at..ttl_at + 4].copy_from_slice(&1_000_000u32.to_be_bytes());
    resolve(&mut d, t0, DIG_AUTH_A_QUERY, &reply);
    let r = ask(&mut d, t0, DIG_AUTH_A_QUERY);
    assert_eq!(r.answers[0].2, 86_400);
}

#[test]
fn local_answers_truncate_at_a_record_boundary() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    let q = query(1, "many.eco.internal", Type::A, None);
    let len = expect_reply(
        d.handle_query(now, NET, client(), Transport::Udp, &q, &mut out),
        client(),
        Transport::Udp,
    );
    assert!(len <= 512);
    let r = read(&out[..len]);
    assert!(r.tc && r.answers.len() < 40 && !r.answers.is_empty());
    // With EDNS0 there is room, and the OPT record is kept.
    let q = query(2, "many.eco.internal", Type::A, Some(1232));
    let r = ask(&mut d, now, &q);
    assert!(!r.tc && r.answers.len() == 40 && r.opt.is_some());
    // A client with a tiny EDNS0 size still gets 512.
    let q = query(3, "many.eco.internal", Type::A, Some(100));
    let len = expect_reply(
        d.handle_query(now, NET, client(), Transport::Udp, &q, &mut out),
        client(),
        Transport::Udp,
    );
    assert!(len <= 512 && read(&out[..len]).tc && read(&out[..len]).opt.is_some());
    // TCP: everything.
    let q = query(4, "many.eco.internal", Type::A, None);
    let len = expect_reply(
        d.handle_query(now, NET, client(), Transport::Tcp, &q, &mut out),
        client(),
        Transport::Tcp,
    );
    assert_eq!(read(&out[..len]).answers.len(), 40);
    assert_eq!(d.counters().truncated, 2);
}

#[test]
fn tc_from_upstream_reaches_the_client_and_tcp_is_forwarded_over_tcp() {
    let mut d = dns();
    let now = Instant::now();
    let r = resolve(&mut d, now, DIG_BIG_NOEDNS_QUERY, DNSMASQ_TC_REPLY);
    assert!(r.tc);
    assert_eq!(
        d.counters().cache_inserts,
        0,
        "truncated replies are not cached"
    );
    // The client retries over TCP; so does the core.
    let mut out = [0u8; 65535];
    let q = &DIG_TCP_QUERY[2..];
    let a = d.handle_query(now, NET, client(), Transport::Tcp, q, &mut out);
    expect_forward(a, up1(), Transport::Tcp);
    let fid = id_of(&out);
    // The answer must come back on TCP.
    let full = &DNSMASQ_TCP_REPLY[2..];
    assert_eq!(
        answer(&mut d, now, up1(), fid, full, Transport::Udp),
        Action::None
    );
    let a = answer(&mut d, now, up1(), fid, full, Transport::Tcp);
    let len = expect_reply(a, client(), Transport::Tcp);
    assert_eq!(len, full.len());
    // dnsmasq's answer had TTL 0: fake a cacheable one and serve it to a UDP client.
    let mut cacheable = full.to_vec();
    let (_, recs) = super::cache::shape(&cacheable).unwrap();
    for r in recs.iter().filter(|r| r.rtype == Type::A) {
        cacheable[r.ttl_offset..r.ttl_offset + 4].copy_from_slice(&600u32.to_be_bytes());
    }
    let a = d.handle_query(now, NET, client(), Transport::Tcp, q, &mut out);
    expect_forward(a, up1(), Transport::Tcp);
    let a = answer(&mut d, now, up1(), id_of(&out), &cacheable, Transport::Tcp);
    expect_reply(a, client(), Transport::Tcp);
    let len = expect_reply(
        d.handle_query(
            now,
            NET,
            client(),
            Transport::Udp,
            DIG_BIG_NOEDNS_QUERY,
            &mut out,
        ),
        client(),
        Transport::Udp,
    );
    assert!(len <= 512);
    let r = read(&out[..len]);
    assert!(r.tc && r.answers.len() == 30 && r.opt.is_none());
    assert_eq!(d.counters().cache_hits, 1);
}

#[test]
fn oversized_upstream_reply_is_cut_for_the_client() {
    let mut d = dns();
    let now = Instant::now();
    // The client asks without EDNS0 but the upstream answers big anyway.
    let r = resolve(&mut d, now, DIG_BIG_NOEDNS_QUERY, &DNSMASQ_TCP_REPLY[2..]);
    assert!(r.tc && r.answers.len() < 40);
}

#[test]
fn refused_without_upstreams_or_network() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 512];
    for net in [BARE, 77] {
        let a = d.handle_query(
            now,
            net,
            client(),
            Transport::Udp,
            DIG_UPSTREAM_QUERY,
            &mut out,
        );
        let len = expect_reply(a, client(), Transport::Udp);
        let r = read(&out[..len]);
        assert_eq!(
            (r.id, r.rcode, r.question.as_str()),
            (0x11ca, Rcode::Refused, "upstream.test.")
        );
    }
    assert_eq!(d.counters().refused, 2);
}

#[test]
fn formerr_notimp_and_drops() {
    let mut d = dns();
    let now = Instant::now();
    let mut out = [0u8; 512];
    let mut run = |d: &mut Dns, q: &[u8]| match d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        q,
        &mut out,
    ) {
        Action::Reply { len, .. } => Some(read(&out[..len])),
        Action::None => None,
        a => panic!("{a:?}"),
    };
    // Too short, or a response: silence.
    assert!(run(&mut d, &DIG_NOEDNS_QUERY[..11]).is_none());
    assert!(run(&mut d, DNSMASQ_NOEDNS_REPLY).is_none());
    // Cut inside the question: FORMERR, header only.
    let r = run(&mut d, &DIG_NOEDNS_QUERY[..20]).unwrap();
    assert_eq!(
        (r.id, r.rcode, r.question.as_str()),
        (0x2b0b, Rcode::FormErr, "")
    );
    // Two questions.
    let mut two = DIG_NOEDNS_QUERY.to_vec();
    two[5] = 2;
    assert_eq!(run(&mut d, &two).unwrap().rcode, Rcode::FormErr);
    // A compression loop in the question.
    let mut looped = DIG_NOEDNS_QUERY[..12].to_vec();
    looped.extend_from_slice(&[3, b'w', b'e', b'b', 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(run(&mut d, &looped).unwrap().rcode, Rcode::FormErr);
    // Two OPT records.
    let mut q = query(5, "web", Type::A, Some(1232));
    let opt = q[q.len() - OPT_LEN..].to_vec();
    q.extend_from_slice(&opt);
    q[11] = 2;
    assert_eq!(run(&mut d, &q).unwrap().rcode, Rcode::FormErr);
    // Opcode STATUS, NOTIFY: not implemented.
    for op in [Opcode::Status, Opcode::Notify, Opcode::Unknown(9)] {
        let mut m = DIG_NOEDNS_QUERY.to_vec();
        Packet::new_unchecked(&mut m[..]).set_opcode(op);
        let r = run(&mut d, &m).unwrap();
        assert_eq!(r.rcode, Rcode::NotImp);
    }
    // EDNS version 1: BADVERS (extended rcode 1).
    let mut q = query(6, "web", Type::A, Some(1232));
    let n = q.len();
    q[n - 5] = 1; // OPT version: name, type, class, ext rcode, then version
    let r = run(&mut d, &q).unwrap();
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(r.opt.unwrap().ext_rcode, 1);
    assert!(r.answers.is_empty());
    let c = d.counters();
    assert_eq!((c.dropped, c.formerr, c.notimp), (2, 5, 3));
}

#[test]
fn remove_network_forgets_its_state() {
    let mut d = dns();
    let now = Instant::now();
    resolve(&mut d, now, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    let mut out = [0u8; 65535];
    let a = d.handle_query(
        now,
        NET,
        client(),
        Transport::Udp,
        DIG_UPSTREAM_QUERY,
        &mut out,
    );
    expect_forward(a, up1(), Transport::Udp);
    let fid = id_of(&out);
    d.remove_network(NET);
    let c = d.counters();
    assert_eq!((c.pending, c.cache_entries), (0, 0));
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(
        answer(
            &mut d,
            now,
            up1(),
            fid,
            DNSMASQ_UPSTREAM_REPLY,
            Transport::Udp
        ),
        Action::None
    );
}

#[test]
fn pending_queries_are_bounded() {
    let mut d = setup(Limits {
        max_pending: 2,
        ..Limits::default()
    });
    let now = Instant::now();
    let mut out = [0u8; 65535];
    for i in 0..3 {
        let q = query(i, &format!("h{i}.example"), Type::A, None);
        let a = d.handle_query(now, NET, client(), Transport::Udp, &q, &mut out);
        if i < 2 {
            expect_forward(a, up1(), Transport::Udp);
        } else {
            assert_eq!(a, Action::None);
        }
    }
    assert_eq!(d.counters().dropped, 1);
}

#[test]
fn cache_is_bounded_lru() {
    let mut d = setup(Limits {
        cache_entries: 2,
        ..Limits::default()
    });
    let t0 = Instant::now();
    let names = ["a.zone.test", "b.zone.test", "c.zone.test"];
    let reply_for = |name: &str| {
        // dnsmasq's auth answer, renamed (same length).
        let mut r = DNSMASQ_AUTH_A_REPLY.to_vec();
        r[13] = name.as_bytes()[0];
        r
    };
    resolve(
        &mut d,
        t0,
        &query(1, names[0], Type::A, None),
        &reply_for(names[0]),
    );
    resolve(
        &mut d,
        t0,
        &query(1, names[1], Type::A, None),
        &reply_for(names[1]),
    );
    // Touch a, then c evicts b (least recently used).
    ask(&mut d, t0, &query(1, names[0], Type::A, None));
    resolve(
        &mut d,
        t0,
        &query(1, names[2], Type::A, None),
        &reply_for(names[2]),
    );
    ask(&mut d, t0, &query(1, names[0], Type::A, None));
    ask(&mut d, t0, &query(1, names[2], Type::A, None));
    let mut out = [0u8; 65535];
    let q = query(1, names[1], Type::A, None);
    expect_forward(
        d.handle_query(t0, NET, client(), Transport::Udp, &q, &mut out),
        up1(),
        Transport::Udp,
    );
    let c = d.counters();
    assert_eq!(
        (c.cache_entries, c.cache_evictions, c.cache_hits),
        (2, 1, 3)
    );
}

#[test]
fn hostile_input_never_panics() {
    use crate::wire::dns::tests::XorShift;
    let queries = [
        DIG_A_EDNS_QUERY,
        DIG_UPSTREAM_QUERY,
        DIG_NOEDNS_QUERY,
        KDIG_QUERY,
        DIG_PTR_QUERY,
        DIG_HOST_QUERY,
        DIG_AAAA_QUERY,
        DIG_AUTH_A_QUERY,
        DIG_AUTH_NX_QUERY,
    ];
    let replies = [
        DNSMASQ_UPSTREAM_REPLY,
        DNSMASQ_AUTH_A_REPLY,
        DNSMASQ_AUTH_NX_REPLY,
        DNSMASQ_AUTH_NODATA_REPLY,
        DNSMASQ_TC_REPLY,
        DNSMASQ_PTR_REPLY,
    ];
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let mut d = dns();
    let t0 = Instant::now();
    let mut out = vec![0u8; 65535];
    let mutate = |m: &mut Vec<u8>, rng: &mut XorShift| {
        for _ in 0..1 + rng.next() % 3 {
            if m.is_empty() {
                return;
            }
            let i = rng.next() as usize % m.len();
            match rng.next() % 4 {
                0 => m[i] = rng.next() as u8,
                1 => m[i] ^= 1 << (rng.next() % 8),
                2 => m[i] = 0xc0,
                _ => m.truncate(i),
            }
        }
    };
    for round in 0..20_000u32 {
        let now = t0 + Duration::from_millis(round as u64 * 3);
        let mut q = queries[round as usize % queries.len()].to_vec();
        mutate(&mut q, &mut rng);
        let tr = if round % 5 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        // Small output buffers must not break anything either.
        let olen = if round % 7 == 0 { 300 } else { out.len() };
        let a = d.handle_query(now, NET, client(), tr, &q, &mut out[..olen]);
        if let Action::Forward {
            upstream,
            transport,
            len,
            ..
        } = a
        {
            assert!(len <= olen);
            let fid = id_of(&out);
            let mut r = replies[round as usize % replies.len()].to_vec();
            if r.len() >= 2 {
                r[..2].copy_from_slice(&fid.to_be_bytes());
            }
            mutate(&mut r, &mut rng);
            let a = d.handle_upstream(now, upstream, transport, &r, &mut out[..olen]);
            if let Action::Reply { len, .. } = a {
                assert!(len <= olen);
            }
        } else if let Action::Reply { len, transport, .. } = a {
            assert!(len <= olen);
            if transport == Transport::Udp {
                assert!(len <= 1232);
            }
            // Whatever we send must itself parse.
            let p = Packet::new_checked(&out[..len]).unwrap();
            for r in p.records().unwrap() {
                r.unwrap();
            }
        }
        while d.poll(now, &mut out).is_some() {}
    }
    assert!(d.counters().queries == 20_000);
    let _ = Records::new(&[], 0, [0; 3]);
}

/// A quick speed check of the hot paths (`cargo test --release bench_ -- --ignored
/// --nocapture`); not a pass/fail test.
#[test]
#[ignore]
fn bench_hot_paths() {
    let mut d = dns();
    let t0 = Instant::now();
    resolve(&mut d, t0, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    let mut out = vec![0u8; 65535];
    let n = 2_000_000u32;
    for (what, q) in [
        ("local A (EDNS0 + cookie)", DIG_A_EDNS_QUERY),
        ("cached A (EDNS0 + cookie)", DIG_AUTH_A_QUERY),
        ("local A (no EDNS0)", KDIG_QUERY),
    ] {
        let q = if what.ends_with("(no EDNS0)") {
            query(1, "web.eco.internal", Type::A, None)
        } else {
            q.to_vec()
        };
        let start = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..n {
            let a = d.handle_query(
                t0,
                NET,
                client(),
                Transport::Udp,
                std::hint::black_box(&q),
                &mut out,
            );
            if let Action::Reply { len, .. } = a {
                bytes += len;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{what}: {ns:.0} ns/query ({} bytes/reply)",
            bytes / n as usize
        );
    }
    println!("{:?}", d.counters());
}

fn a_records(d: &mut Dns, name: &str) -> Vec<String> {
    let r = ask(d, Instant::now(), &query(7, name, Type::A, None));
    r.answers.into_iter().map(|(_, _, _, a)| a).collect()
}

fn claim(name: &str, addr: &str, app: &str) -> HostClaim {
    HostClaim {
        name: name.into(),
        addr: ip(addr).into(),
        app: app.into(),
    }
}

/// The probe's attacks: `udhcpc -x hostname:db`, and an ECO naming itself after
/// another app. Configured names win; the refusals show.
#[test]
fn a_dhcp_client_cannot_take_a_static_dns_name_or_another_apps_name() {
    let mut d = dns();
    let mut p = NetParams {
        domain: Some("eco.internal".into()),
        upstreams: vec![up1()],
        static_dns: vec![HostEntry {
            host: "DB.eco.internal.".into(),
            addrs: vec![ip("10.1.0.5")],
            addrs6: Vec::new(),
        }],
        subnet: Some("10.1.0.0/24".parse().unwrap()),
        subnet6: None,
        app_names: vec![
            ("web4".into(), "app-web4".into()),
            ("api".into(), "app-api".into()),
        ],
    };
    d.set_network(NET, p.clone()).unwrap();
    d.set_names(
        NET,
        vec![],
        vec![
            claim("db", "10.1.0.66", "app-api"),
            claim("Web4", "10.1.0.66", "app-api"),
            claim("api", "10.1.0.66", "app-api"),
            claim("web4", "10.1.0.44", "app-web4"),
        ],
    );
    assert_eq!(a_records(&mut d, "db.eco.internal"), ["10.1.0.5"]);
    assert_eq!(a_records(&mut d, "web4.eco.internal"), ["10.1.0.44"]);
    assert_eq!(a_records(&mut d, "api.eco.internal"), ["10.1.0.66"]);
    let c = d.conflicts(NET).join("\n");
    assert!(
        c.contains("host name db asked by 10.1.0.66 (app app-api) is a static_dns name"),
        "{c}"
    );
    assert!(
        c.contains("host name Web4 asked by 10.1.0.66 (app app-api) is the name of app web4"),
        "{c}"
    );
    assert_eq!(d.conflicts(NET).len(), 2);
    // The conflicts outlive a change of the network's settings.
    p.upstreams = vec![up2()];
    d.set_network(NET, p).unwrap();
    assert_eq!(d.conflicts(NET).len(), 2);
    assert_eq!(a_records(&mut d, "db.eco.internal"), ["10.1.0.5"]);
}

#[test]
fn between_two_dhcp_clients_the_first_holder_keeps_the_name() {
    let mut d = dns();
    let first = claim("cam", "10.1.0.31", "app-a");
    let second = claim("cam", "10.1.0.32", "app-b");
    d.set_names(NET, vec![], vec![first.clone()]);
    // The newcomer is listed first (say, a lower address): the holder still wins.
    d.set_names(NET, vec![], vec![second.clone(), first.clone()]);
    assert_eq!(a_records(&mut d, "cam.eco.internal"), ["10.1.0.31"]);
    assert!(d.conflicts(NET)[0].contains("is held by app app-a"));
    // Once the holder lets it go, the other claimant gets it.
    d.set_names(NET, vec![], vec![second.clone()]);
    assert_eq!(a_records(&mut d, "cam.eco.internal"), ["10.1.0.32"]);
    assert!(d.conflicts(NET).is_empty());
    // The same app may hold a name with several addresses (two endpoints).
    d.set_names(
        NET,
        vec![],
        vec![second, claim("cam", "10.1.0.33", "app-b")],
    );
    assert_eq!(
        a_records(&mut d, "cam.eco.internal"),
        ["10.1.0.32", "10.1.0.33"]
    );
}

/// The probe's flood: 10,000 random-subdomain queries from one ECO, all forwarded.
/// Now one client's forwards are budgeted (a burst, then a rate); the rest get
/// REFUSED at once, counted; another client and cache hits are untouched.
#[test]
fn one_clients_random_subdomain_flood_is_held_to_its_forwarding_budget() {
    let mut d = setup(Limits {
        max_pending: 16_384,
        ..Limits::default()
    });
    let t0 = Instant::now();
    // A name in the cache before the flood (from the same client).
    resolve(&mut d, t0, DIG_AUTH_A_QUERY, DNSMASQ_AUTH_A_REPLY);
    let mut out = [0u8; 4096];
    let (mut forwarded, mut refused) = (0u32, 0u32);
    // 10,000 queries over 2 s.
    for i in 0..10_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 200);
        let q = query(
            (i % 60_000) as u16,
            &format!("x{i}.flood.test"),
            Type::A,
            None,
        );
        match d.handle_query(now, NET, client(), Transport::Udp, &q, &mut out) {
            Action::Forward { .. } => forwarded += 1,
            Action::Reply { len, .. } => {
                assert_eq!(read(&out[..len]).rcode, Rcode::Refused);
                refused += 1;
            }
            a => panic!("{a:?}"),
        }
    }
    // The burst (1000, one spent before) and 2 s at 100 a second.
    assert!((999..=1200).contains(&forwarded), "{forwarded} forwarded");
    // Cache hits and local names still answer the flooder.
    let now = t0 + Duration::from_secs(2);
    assert_eq!(
        ask(&mut d, now, &query(3, "a.zone.test", Type::A, None))
            .answers
            .len(),
        1
    );
    assert_eq!(
        ask(&mut d, now, &query(4, "web.eco.internal", Type::A, None))
            .answers
            .len(),
        1
    );
    assert_eq!(forwarded + refused, 10_000);
    assert_eq!(d.forwards_limited(NET), u64::from(refused));
    assert_eq!(d.counters().forwards_limited, u64::from(refused));
    // Another ECO still gets its queries forwarded.
    let other = sa("10.1.0.24:40000");
    let q = query(1, "fine.example", Type::A, None);
    assert!(matches!(
        d.handle_query(now, NET, other, Transport::Udp, &q, &mut out),
        Action::Forward { .. }
    ));
    // And the flooder's budget refills with time.
    let later = now + Duration::from_secs(1);
    let q = query(2, "again.example", Type::A, None);
    let len = expect_forward(
        d.handle_query(later, NET, client(), Transport::Udp, &q, &mut out),
        up1(),
        Transport::Udp,
    );
    assert!(len > 0);
}

// IPv6: AAAA and ip6.arpa PTR for ECO names and static_dns entries, IPv6 clients
// and upstreams.

use std::net::Ipv6Addr;

const NET6: NetId = 6;

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn up6() -> SocketAddr {
    sa("[2001:db8::53]:53")
}

fn client6() -> SocketAddr {
    sa("[fd00:1:2:3::99]:40000")
}

/// A dual-stack network: `web` (static, both families), `cam` (a DHCPv4 claim and a
/// DHCPv6 claim), static_dns `db` (both), `v6only`, `printer` (IPv4 only), `many6`
/// (40 IPv6 addresses) and `Hex` (an address with letters).
fn dns6() -> Dns {
    let mut d = Dns::new(Limits::default());
    let many6: Vec<Ipv6Addr> = (1..=40u16)
        .map(|i| Ipv6Addr::new(0xfd00, 1, 2, 3, 0, 0, 1, i))
        .collect();
    let entry = |host: &str, addrs: Vec<Ipv4Addr>, addrs6: Vec<Ipv6Addr>| HostEntry {
        host: host.into(),
        addrs,
        addrs6,
    };
    d.set_network(
        NET6,
        NetParams {
            domain: Some("eco.internal".into()),
            upstreams: vec![up6(), up1()],
            static_dns: vec![
                entry("db", vec![ip("10.1.0.5")], vec![ip6("fd00:1:2:3::5")]),
                entry("v6only.eco.internal", vec![], vec![ip6("fd00:1:2:3::6")]),
                entry("printer", vec![ip("192.0.2.9")], vec![]),
                entry("many6", vec![], many6),
                entry("Hex", vec![], vec![ip6("fd00:1:2:3::abcd")]),
            ],
            subnet: Some("10.1.0.0/24".parse().unwrap()),
            subnet6: Some("fd00:1:2:3::/64".parse().unwrap()),
            app_names: vec![("cam".into(), "app-cam".into())],
        },
    )
    .unwrap();
    let claim6 = |name: &str, addr: &str, app: &str| HostClaim {
        name: name.into(),
        addr: IpAddr::V6(ip6(addr)),
        app: app.into(),
    };
    d.set_names(
        NET6,
        vec![
            ("web".into(), IpAddr::V4(ip("10.1.0.23"))),
            ("web".into(), IpAddr::V6(ip6("fd00:1:2:3::23"))),
        ],
        vec![
            claim("cam", "10.1.0.31", "app-cam"),
            claim6("cam", "fd00:1:2:3::1031", "app-cam"),
            // A DHCPv6 client taking a static_dns name: refused, as over IPv4.
            claim6("db", "fd00:1:2:3::1066", "app-cam"),
        ],
    );
    d
}

/// Asks on the dual-stack network from `from` over `t`.
fn ask6_from(d: &mut Dns, from: SocketAddr, t: Transport, q: &[u8]) -> Reply {
    let mut out = [0u8; 65535];
    let a = d.handle_query(Instant::now(), NET6, from, t, q, &mut out);
    let len = expect_reply(a, from, t);
    read(&out[..len])
}

fn ask6(d: &mut Dns, name: &str, qtype: Type) -> Reply {
    ask6_from(d, client6(), Transport::Udp, &query(5, name, qtype, None))
}

fn data(r: &Reply) -> Vec<(Type, &str)> {
    r.answers.iter().map(|a| (a.1, a.3.as_str())).collect()
}

#[test]
fn aaaa_for_eco_and_static_names_bare_and_in_the_domain() {
    let mut d = dns6();
    for name in ["web", "web.eco.internal", "WEB.Eco.Internal."] {
        let r = ask6(&mut d, name, Type::AAAA);
        assert_eq!((r.rcode, r.aa), (Rcode::NoError, true), "{name}");
        assert_eq!(data(&r), [(Type::AAAA, "fd00:1:2:3::23")], "{name}");
        assert_eq!(r.answers[0].2, 60);
    }
    // The query's spelling is the owner name, as for A.
    assert_eq!(ask6(&mut d, "WEB", Type::AAAA).answers[0].0, "WEB.");
    // A is unchanged for a name that has both.
    assert_eq!(
        data(&ask6(&mut d, "web", Type::A)),
        [(Type::A, "10.1.0.23")]
    );
    for name in ["db", "db.eco.internal"] {
        let r = ask6(&mut d, name, Type::AAAA);
        assert_eq!(data(&r), [(Type::AAAA, "fd00:1:2:3::5")], "{name}");
    }
    assert_eq!(
        data(&ask6(&mut d, "v6only", Type::AAAA)),
        [(Type::AAAA, "fd00:1:2:3::6")]
    );
    assert_eq!(
        data(&ask6(&mut d, "v6only.eco.internal", Type::AAAA)),
        [(Type::AAAA, "fd00:1:2:3::6")]
    );
    // DHCP claims of both families under one name.
    assert_eq!(
        data(&ask6(&mut d, "cam", Type::A)),
        [(Type::A, "10.1.0.31")]
    );
    assert_eq!(
        data(&ask6(&mut d, "cam.eco.internal", Type::AAAA)),
        [(Type::AAAA, "fd00:1:2:3::1031")]
    );
    // The DHCPv6 claim on a static_dns name is refused and said so.
    assert_eq!(
        data(&ask6(&mut d, "db", Type::AAAA)),
        [(Type::AAAA, "fd00:1:2:3::5")]
    );
    let c = d.conflicts(NET6).join("\n");
    assert!(
        c.contains("host name db asked by fd00:1:2:3::1066 (app app-cam) is a static_dns name"),
        "{c}"
    );
    assert_eq!(d.counters().forwarded, 0);
}

#[test]
fn nodata_where_a_name_has_only_the_other_family() {
    let mut d = dns6();
    for (name, qtype) in [
        ("v6only", Type::A),
        ("v6only.eco.internal", Type::A),
        ("printer", Type::AAAA),
        ("printer.eco.internal", Type::AAAA),
        ("web", Type::MX),
    ] {
        let r = ask6(&mut d, name, qtype);
        assert_eq!(
            (r.rcode, r.aa, r.answers.len(), r.authority.len()),
            (Rcode::NoError, true, 0, 0),
            "{name} {qtype:?}"
        );
    }
    // Unknown names in the domain stay NXDOMAIN for AAAA.
    let r = ask6(&mut d, "nope.eco.internal", Type::AAAA);
    assert_eq!((r.rcode, r.aa), (Rcode::NxDomain, true));
    assert_eq!(d.counters().forwarded, 0);
}

/// The nibble name of an address (RFC 3596 §2.5).
fn nibbles(a: Ipv6Addr) -> String {
    let hex: String = format!("{:032x}", u128::from(a));
    let mut s: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
    s.push("ip6.arpa".into());
    s.join(".")
}

#[test]
fn ip6_arpa_ptr_for_eco_and_static_addresses() {
    let mut d = dns6();
    for (addr, name) in [
        ("fd00:1:2:3::23", "web.eco.internal."),
        ("fd00:1:2:3::5", "db.eco.internal."),
        ("fd00:1:2:3::6", "v6only.eco.internal."),
        ("fd00:1:2:3::1031", "cam.eco.internal."),
        ("fd00:1:2:3::abcd", "Hex.eco.internal."),
    ] {
        let r = ask6(&mut d, &nibbles(ip6(addr)), Type::PTR);
        assert_eq!((r.rcode, r.aa), (Rcode::NoError, true), "{addr}");
        assert_eq!(data(&r), [(Type::PTR, name)], "{addr}");
        assert_eq!(r.answers[0].0, format!("{}.", nibbles(ip6(addr))));
    }
    // Upper-case nibbles are the same name.
    let upper = nibbles(ip6("fd00:1:2:3::abcd"))
        .to_uppercase()
        .replace("IP6.ARPA", "ip6.arpa");
    assert_eq!(
        data(&ask6(&mut d, &upper, Type::PTR)),
        [(Type::PTR, "Hex.eco.internal.")]
    );
    // ANY on a reverse name gives the PTR; another type no data.
    let r = ask6(&mut d, &nibbles(ip6("fd00:1:2:3::23")), Type::ANY);
    assert_eq!(data(&r), [(Type::PTR, "web.eco.internal.")]);
    let r = ask6(&mut d, &nibbles(ip6("fd00:1:2:3::23")), Type::AAAA);
    assert_eq!((r.rcode, r.answers.len()), (Rcode::NoError, 0));
    // An address of the subnet nobody has: NXDOMAIN, not forwarded.
    let r = ask6(&mut d, &nibbles(ip6("fd00:1:2:3::77")), Type::PTR);
    assert_eq!((r.rcode, r.aa), (Rcode::NxDomain, true));
    assert_eq!(d.counters().forwarded, 0);
    // The IPv4 reverse names are as before.
    assert_eq!(
        data(&ask6(&mut d, "23.0.1.10.in-addr.arpa", Type::PTR)),
        [(Type::PTR, "web.eco.internal.")]
    );
}

#[test]
fn malformed_or_foreign_ip6_arpa_names_are_not_answered_locally() {
    let mut d = dns6();
    let full = nibbles(ip6("fd00:1:2:3::23"));
    let mut bad = vec![
        // Outside the subnet: the upstream's business.
        nibbles(ip6("2001:db8::1")),
        // 31 and 33 nibbles.
        full[2..].to_string(),
        format!("0.{full}"),
        // A two-digit label, a non-hex digit, an empty-ish name.
        full.replacen("3.2", "32", 1),
        full.replacen('3', "g", 1),
        "ip6.arpa".into(),
        // A partial name under the subnet's reverse zone.
        "3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa".into(),
        // Right nibbles, wrong suffix.
        full.replace("ip6.arpa", "ip6.int"),
    ];
    bad.push(full.replace("ip6.arpa", "xip6.arpa"));
    let mut out = [0u8; 65535];
    for (i, name) in bad.iter().enumerate() {
        let q = query(100 + i as u16, name, Type::PTR, None);
        let a = d.handle_query(
            Instant::now(),
            NET6,
            client6(),
            Transport::Udp,
            &q,
            &mut out,
        );
        assert!(
            matches!(a, Action::Forward { upstream, .. } if upstream == up6()),
            "{name}: {a:?}"
        );
    }
    assert_eq!(d.counters().local, 0);
}

#[test]
fn any_gives_a_then_aaaa() {
    let mut d = dns6();
    let r = ask6(&mut d, "web.eco.internal", Type::ANY);
    assert!(!r.tc && r.aa);
    assert_eq!(
        data(&r),
        [(Type::A, "10.1.0.23"), (Type::AAAA, "fd00:1:2:3::23")]
    );
    let r = ask6(&mut d, "db", Type::ANY);
    assert_eq!(
        data(&r),
        [(Type::A, "10.1.0.5"), (Type::AAAA, "fd00:1:2:3::5")]
    );
    assert_eq!(
        data(&ask6(&mut d, "printer", Type::ANY)),
        [(Type::A, "192.0.2.9")]
    );
    assert_eq!(
        data(&ask6(&mut d, "v6only", Type::ANY)),
        [(Type::AAAA, "fd00:1:2:3::6")]
    );
}

#[test]
fn aaaa_over_tcp_and_truncated_over_udp() {
    let mut d = dns6();
    // 40 AAAA records do not fit in 512 bytes: cut at a record boundary, TC set.
    let q = query(1, "many6.eco.internal", Type::AAAA, None);
    let r = ask6_from(&mut d, client6(), Transport::Udp, &q);
    assert!(
        r.tc && !r.answers.is_empty() && r.answers.len() < 40,
        "{r:?}"
    );
    assert!(r.answers.iter().all(|a| a.1 == Type::AAAA));
    let r = ask6_from(&mut d, client6(), Transport::Tcp, &q);
    assert!(!r.tc && r.answers.len() == 40, "{r:?}");
    assert_eq!(r.answers[39].3, "fd00:1:2:3::1:28");
    // With EDNS0 over UDP there is room (40 × 28 bytes + the question).
    let q = query(2, "many6.eco.internal", Type::AAAA, Some(1232));
    let r = ask6_from(&mut d, client6(), Transport::Udp, &q);
    assert!(!r.tc && r.answers.len() == 40 && r.opt.is_some(), "{r:?}");
    // A single AAAA over TCP from an IPv4 client is the same answer.
    let q = query(3, "web", Type::AAAA, None);
    let r = ask6_from(&mut d, client(), Transport::Tcp, &q);
    assert_eq!(data(&r), [(Type::AAAA, "fd00:1:2:3::23")]);
}

#[test]
fn ipv6_clients_and_an_ipv6_upstream() {
    let mut d = dns6();
    let now = Instant::now();
    let mut out = [0u8; 65535];
    // Forwarded to the first upstream, IPv6, with a fresh id.
    let a = d.handle_query(
        now,
        NET6,
        client6(),
        Transport::Udp,
        DIG_AUTH_A_QUERY,
        &mut out,
    );
    let Action::Forward {
        upstream,
        transport,
        net,
        len,
    } = a
    else {
        panic!("{a:?}");
    };
    assert_eq!((upstream, transport, net), (up6(), Transport::Udp, NET6));
    let fid = id_of(&out[..len]);
    // A reply from elsewhere is ignored; from the upstream it reaches the client.
    assert_eq!(
        answer(
            &mut d,
            now,
            sa("[2001:db8::54]:53"),
            fid,
            DNSMASQ_AUTH_A_REPLY,
            Transport::Udp
        ),
        Action::None
    );
    let a = answer_into(
        &mut d,
        now,
        up6(),
        fid,
        DNSMASQ_AUTH_A_REPLY,
        Transport::Udp,
        &mut out,
    );
    let len = expect_reply(a, client6(), Transport::Udp);
    assert_eq!(
        id_of(&out[..len]),
        Packet::new_unchecked(DIG_AUTH_A_QUERY).id()
    );
    // A timeout moves on to the IPv4 upstream.
    let q = query(9, "slow.example", Type::AAAA, None);
    let a = d.handle_query(now, NET6, client6(), Transport::Udp, &q, &mut out);
    assert!(matches!(a, Action::Forward { upstream, .. } if upstream == up6()));
    let later = now + Duration::from_secs(1);
    let a = d.poll(later, &mut out).expect("a retry");
    assert!(
        matches!(a, Action::Forward { upstream, .. } if upstream == up1()),
        "{a:?}"
    );
    // Each IPv6 client has its own forwarding budget, as IPv4 ones do.
    assert_eq!(d.forwards_limited(NET6), 0);
}
