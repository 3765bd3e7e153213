//! Addresses learned for `host` matches: what econet's DNS told ECOs of a network.
//!
//! One set per network in the `inet econet` table, named by [`set_name`], with
//! elements `name id . IPv4 address` ([`key`]), each with a timeout. An ACE's
//! `host` match looks its remote address up under the host name's id.
//!
//! The DNS shell passes every answer for a network with `host` matches through
//! [`admitted_by_response`] (pure: which elements the answer earns) and a
//! [`Learner`] (writes them into the set) before the answer leaves, so the first
//! packet after the lookup already matches. The firewall builder adds the
//! `static_dns` addresses under a host name, without a timeout ([`static_elems`]).

use crate::config::HostEntry;
use crate::netlink::nft::{Nft, TimedKey, NFPROTO_INET};
use crate::wire::dns::{Class, Packet, RData, Rcode, Section, Type};
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Most learned addresses per network (the set's size).
pub const MAX_PER_NET: u32 = 4096;
/// A learned address is kept at least this long, and at most `MAX_TTL_SECS`.
pub const MIN_TTL_SECS: u32 = 60;
pub const MAX_TTL_SECS: u32 = 24 * 3600;
/// Most elements one answer may add (an answer rarely holds more than a few A
/// records; this bounds the batch an answer costs).
pub const MAX_PER_ANSWER: usize = 256;

/// The names of the learned-address sets begin so.
pub const SET_PREFIX: &str = "hosts4_";

/// The set of learned addresses on the network with bridge `bridge`.
pub fn set_name(bridge: &str) -> String {
    format!("{SET_PREFIX}{bridge}")
}

/// A network's `static_dns` entries under the names DNS answers them by: as
/// written, and in the network's `domain`.
pub fn static_names(static_dns: &[HostEntry], domain: Option<&str>) -> Vec<HostEntry> {
    let mut v = static_dns.to_vec();
    if let Some(dom) = domain {
        for e in static_dns {
            v.push(HostEntry {
                host: format!(
                    "{}.{}",
                    e.host.trim_end_matches('.'),
                    dom.trim_end_matches('.')
                ),
                addrs: e.addrs.clone(),
                addrs6: e.addrs6.clone(),
            });
        }
    }
    v
}

/// The id of a host name (lowercase, no trailing dot) in its network's set.
pub fn name_id(host: &str) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, host.as_bytes());
    let h = d.as_ref();
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// The set key: the name id (big-endian) then the address.
pub fn key(id: u32, addr: Ipv4Addr) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&id.to_be_bytes());
    k[4..].copy_from_slice(&addr.octets());
    k
}

/// A record's TTL as the set keeps it: at least [`MIN_TTL_SECS`], at most
/// [`MAX_TTL_SECS`]. A TTL with the top bit set counts as 0 (RFC 2181 §8).
pub fn clamp_ttl(ttl: u32) -> u32 {
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    ttl.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
}

/// One element to admit: its key and its timeout in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admit {
    pub key: [u8; 8],
    pub timeout_secs: u32,
}

/// A host name as [`name_id`] takes it: lowercase, without a trailing dot.
fn normal(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the name made of `labels` (root excluded) is `host` or a subdomain of
/// it, label by label and ignoring ASCII case. An empty host matches nothing.
fn is_under(labels: &[&[u8]], host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return false;
    }
    let mut q = labels.iter().rev();
    host.rsplit('.').all(|h| {
        q.next()
            .is_some_and(|l| l.eq_ignore_ascii_case(h.as_bytes()))
    })
}

/// The labels of a name in text form (a trailing dot or none).
fn text_labels(name: &str) -> Vec<&[u8]> {
    let n = name.trim_end_matches('.');
    if n.is_empty() {
        return Vec::new();
    }
    n.split('.').map(str::as_bytes).collect()
}

/// The elements an answer earns: for every host `H` of `hosts` that the question
/// name `qname` is or is under, each answer address (`answers`: address and TTL)
/// under `name_id(H)`, with the TTL clamped ([`clamp_ttl`]). The question name
/// decides, whatever owner names the answer records carry (a CNAME chain counts for
/// the name asked). Case does not matter; a trailing dot on either side neither.
/// No key twice (the longest timeout wins); at most [`MAX_PER_ANSWER`].
pub fn admitted(hosts: &[String], qname: &str, answers: &[(Ipv4Addr, u32)]) -> Vec<Admit> {
    admit_labels(hosts, &text_labels(qname), answers)
}

fn admit_labels(hosts: &[String], qname: &[&[u8]], answers: &[(Ipv4Addr, u32)]) -> Vec<Admit> {
    let mut out: Vec<Admit> = Vec::new();
    for h in hosts.iter().filter(|h| is_under(qname, h)) {
        let id = name_id(&normal(h));
        for &(addr, ttl) in answers {
            let e = Admit {
                key: key(id, addr),
                timeout_secs: clamp_ttl(ttl),
            };
            if let Some(o) = out.iter_mut().find(|o| o.key == e.key) {
                o.timeout_secs = o.timeout_secs.max(e.timeout_secs);
            } else if out.len() < MAX_PER_ANSWER {
                out.push(e);
            } else {
                return out;
            }
        }
    }
    out
}

/// The elements a whole DNS response (`msg`, as sent to the ECO) earns: its one
/// question's name, and every A record (class IN) of its answer section, whatever
/// its owner name; see [`admitted`]. Only a NOERROR response counts. Nothing is
/// parsed beyond the question unless the question is under one of `hosts`; a
/// malformed record ends the walk (the records before it count).
pub fn admitted_by_response(hosts: &[String], msg: &[u8]) -> Vec<Admit> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let Ok(p) = Packet::new_checked(msg) else {
        return Vec::new();
    };
    if !p.qr() || p.rcode() != Rcode::NoError || p.qdcount() != 1 || p.ancount() == 0 {
        return Vec::new();
    }
    let Some(Ok(q)) = p.questions().next() else {
        return Vec::new();
    };
    let labels: Vec<&[u8]> = q.name.labels().collect();
    if !hosts.iter().any(|h| is_under(&labels, h)) {
        return Vec::new();
    }
    let Ok(records) = p.records() else {
        return Vec::new();
    };
    let mut answers = Vec::new();
    for r in records {
        let Ok((Section::Answer, rec)) = r else {
            break;
        };
        if rec.rtype != Type::A || rec.class != Class::IN {
            continue;
        }
        if let Ok(RData::A(a)) = rec.rdata() {
            answers.push((a, rec.ttl));
            if answers.len() >= MAX_PER_ANSWER {
                break;
            }
        }
    }
    admit_labels(hosts, &labels, &answers)
}

/// The elements (no timeout) for the `static_dns` entries of a network that are
/// one of its ACL `hosts` or under one: each address under that host's id. Sorted,
/// no key twice.
pub fn static_elems(hosts: &[String], static_dns: &[HostEntry]) -> Vec<[u8; 8]> {
    let mut out = Vec::new();
    for e in static_dns {
        let labels = text_labels(&e.host);
        for h in hosts.iter().filter(|h| is_under(&labels, h)) {
            let id = name_id(&normal(h));
            out.extend(e.addrs.iter().map(|a| key(id, *a)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Drops from `elems` the keys in `statics` (sorted, as [`static_elems`] gives
/// them): a `static_dns` address stays in the set without a timeout, and learning
/// it again would give it one.
pub fn drop_static(elems: &mut Vec<Admit>, statics: &[[u8; 8]]) {
    if !statics.is_empty() {
        elems.retain(|e| statics.binary_search(&e.key).is_err());
    }
}

/// The host names of the `host` matches on the endpoints of network `net` (an
/// index into `cfg.networks`): lowercase, no trailing dot, sorted, each once.
pub fn acl_hosts(cfg: &crate::config::Config, net: usize) -> Vec<String> {
    let mut out: Vec<String> = cfg
        .endpoints()
        .filter(|(_, itf)| itf.network == net)
        .flat_map(|(_, itf)| itf.acls.iter().flatten())
        .filter_map(|ace| ace.matches.host.as_deref())
        .map(normal)
        .filter(|h| !h.is_empty())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What one [`Learner::learn`] did, per element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Added, or their timeout renewed.
    pub learned: u64,
    /// Not added: the set is full.
    pub full: u64,
    /// Not added for another reason (the set does not exist yet, …).
    pub failed: u64,
}

/// The kernel's answer to an element added to a set that holds its `size`
/// (checked on Linux 6.18: `ENFILE`, "Too many open files in system").
fn is_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENFILE)
}

/// How often a learner may log the same kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs at most once per [`LOG_EVERY`], saying how many were kept quiet since.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    quiet: u64,
}

impl Throttle {
    /// `Some(how many were not logged since the last)` when one may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            self.quiet += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

/// Writes learned addresses into the networks' sets, on a netfilter socket of its
/// own (in the namespace it was opened in), one batch per answer.
pub struct Learner {
    /// Opened at the first answer to learn from (and again after a failed open).
    nft: Option<Nft>,
    /// Totals over all networks.
    pub learned: u64,
    pub full: u64,
    pub failed: u64,
    /// How long the last batch took to commit (sent and acknowledged).
    pub last_commit: Duration,
    full_log: Throttle,
    fail_log: Throttle,
}

impl Default for Learner {
    fn default() -> Self {
        Self::new()
    }
}

impl Learner {
    /// A learner whose socket is opened when it first has something to write (in
    /// the namespace of the thread calling [`Learner::learn`] then).
    pub fn new() -> Learner {
        Learner {
            nft: None,
            learned: 0,
            full: 0,
            failed: 0,
            last_commit: Duration::ZERO,
            full_log: Throttle::default(),
            fail_log: Throttle::default(),
        }
    }

    /// A learner with its socket open now, in the caller's namespace.
    pub fn open() -> io::Result<Learner> {
        Ok(Learner {
            nft: Some(Nft::open()?),
            ..Learner::new()
        })
    }

    /// Adds `elems` to the set of the network on `bridge`, each with its timeout,
    /// renewing the timeout of those already there, all in one batch: each is added,
    /// deleted and added again (an element added again keeps its old timeout on some
    /// kernels; the first add makes the delete never fail). If the set is full, each
    /// element is tried on its own, so those already there are still renewed. Trouble
    /// is counted and logged now and then, never returned: the answer goes anyway.
    pub fn learn(&mut self, bridge: &str, elems: &[Admit], now: Instant) -> Outcome {
        let mut o = Outcome::default();
        if elems.is_empty() {
            return o;
        }
        let set = set_name(bridge);
        if self.nft.is_none() {
            match Nft::open() {
                Ok(n) => self.nft = Some(n),
                Err(e) => {
                    o.failed = elems.len() as u64;
                    self.failed += o.failed;
                    self.log_failed(&set, &e, now);
                    return o;
                }
            }
        }
        match self.commit(&set, elems) {
            Ok(()) => o.learned = elems.len() as u64,
            Err(e) if is_full(&e) && elems.len() > 1 => {
                for el in elems {
                    match self.commit(&set, std::slice::from_ref(el)) {
                        Ok(()) => o.learned += 1,
                        Err(e) if is_full(&e) => o.full += 1,
                        Err(e) => {
                            o.failed += 1;
                            self.log_failed(&set, &e, now);
                        }
                    }
                }
            }
            Err(e) if is_full(&e) => o.full = 1,
            Err(e) => {
                o.failed = elems.len() as u64;
                self.log_failed(&set, &e, now);
            }
        }
        if o.full > 0 {
            if let Some(quiet) = self.full_log.allow(now) {
                log::warn!(
                    "{set} is full ({MAX_PER_NET} addresses): {} learned for host ACEs not \
                     admitted (and {quiet} times more since the last report)",
                    o.full
                );
            }
        }
        self.learned += o.learned;
        self.full += o.full;
        self.failed += o.failed;
        o
    }

    fn log_failed(&mut self, set: &str, e: &io::Error, now: Instant) {
        if let Some(quiet) = self.fail_log.allow(now) {
            let why = if e.raw_os_error() == Some(libc::ENOENT) {
                "the set does not exist yet".to_string()
            } else {
                e.to_string()
            };
            log::warn!(
                "cannot admit addresses for host ACEs into {set}: {why} \
                 ({quiet} more failures since the last report)"
            );
        }
    }

    fn commit(&mut self, set: &str, elems: &[Admit]) -> io::Result<()> {
        let timed: Vec<TimedKey> = elems
            .iter()
            .map(|e| (e.key.to_vec(), u64::from(e.timeout_secs) * 1000))
            .collect();
        let keys: Vec<Vec<u8>> = elems.iter().map(|e| e.key.to_vec()).collect();
        let table = crate::firewall::TABLE;
        let Some(nft) = self.nft.as_mut() else {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        };
        let mut b = nft.batch();
        b.add_elems_timed(NFPROTO_INET, table, set, &timed);
        b.del_elems(NFPROTO_INET, table, set, &keys);
        b.add_elems_timed(NFPROTO_INET, table, set, &timed);
        let t = Instant::now();
        let r = nft.commit(b);
        self.last_commit = t.elapsed();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dns::{flags, Builder, Data};

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// dnsmasq 2.90 answering `WwW.example.CoM A` (id 0x4a11, no EDNS) with
    /// `--cname=www.Example.com,alias.example.net,300
    /// --cname=alias.example.net,edge.cdn.test,120
    /// --host-record=edge.cdn.test,192.0.2.21,30 (and 192.0.2.22)`: two CNAMEs, then
    /// the A records, owned by `edge.cdn.test`, TTL 30; names compressed.
    const CNAME_CHAIN_REPLY: &[u8] = &[
        0x4a, 0x11, 0x85, 0x80, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x57, 0x77,
        0x57, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x43, 0x6f, 0x4d, 0x00, 0x00,
        0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x13,
        0x05, 0x61, 0x6c, 0x69, 0x61, 0x73, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03,
        0x6e, 0x65, 0x74, 0x00, 0xc0, 0x2d, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x00,
        0x0f, 0x04, 0x65, 0x64, 0x67, 0x65, 0x03, 0x63, 0x64, 0x6e, 0x04, 0x74, 0x65, 0x73, 0x74,
        0x00, 0xc0, 0x4c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x04, 0xc0, 0x00,
        0x02, 0x16, 0xc0, 0x4c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x04, 0xc0,
        0x00, 0x02, 0x15,
    ];

    #[test]
    fn the_name_and_its_subdomains_match_and_nothing_else() {
        let h = hosts(&["example.com"]);
        let ans = [(a("192.0.2.1"), 300)];
        let id = name_id("example.com");
        let want = vec![Admit {
            key: key(id, a("192.0.2.1")),
            timeout_secs: 300,
        }];
        for q in [
            "example.com",
            "www.example.com",
            "a.b.example.com",
            "WWW.Example.COM",
            "www.example.com.",
        ] {
            assert_eq!(admitted(&h, q, &ans), want, "{q}");
        }
        for q in [
            "notexample.com",
            "example.com.evil",
            "com",
            "example.co",
            "wwwexample.com",
            "",
            ".",
        ] {
            assert!(admitted(&h, q, &ans).is_empty(), "{q}");
        }
        // A host written with a trailing dot or capitals is the same host.
        assert_eq!(
            admitted(&hosts(&["Example.com."]), "www.example.com", &ans),
            want
        );
        // An empty host name matches nothing (it is not the root).
        assert!(admitted(&hosts(&["", "."]), "www.example.com", &ans).is_empty());
    }

    #[test]
    fn every_host_the_name_is_under_gets_its_own_elements() {
        let h = hosts(&["example.com", "www.example.com", "other.org"]);
        let ans = [(a("192.0.2.1"), 300), (a("192.0.2.2"), 300)];
        let got = admitted(&h, "www.example.com", &ans);
        assert_eq!(got.len(), 4);
        for host in ["example.com", "www.example.com"] {
            for ip in ["192.0.2.1", "192.0.2.2"] {
                assert!(got.iter().any(|e| e.key == key(name_id(host), a(ip))));
            }
        }
        // The same address twice: once, with the longer timeout.
        let got = admitted(
            &h,
            "x.other.org",
            &[(a("192.0.2.9"), 100), (a("192.0.2.9"), 900)],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timeout_secs, 900);
    }

    #[test]
    fn ttls_are_clamped() {
        assert_eq!(clamp_ttl(0), MIN_TTL_SECS);
        assert_eq!(clamp_ttl(59), 60);
        assert_eq!(clamp_ttl(61), 61);
        assert_eq!(clamp_ttl(86_400), 86_400);
        assert_eq!(clamp_ttl(86_401), MAX_TTL_SECS);
        assert_eq!(clamp_ttl(u32::MAX), MIN_TTL_SECS);
        let h = hosts(&["example.com"]);
        let got = admitted(
            &h,
            "example.com",
            &[(a("192.0.2.1"), 5), (a("192.0.2.2"), 1 << 30)],
        );
        let t: Vec<u32> = got.iter().map(|e| e.timeout_secs).collect();
        assert_eq!(t, vec![60, 86_400]);
    }

    #[test]
    fn a_cname_chain_counts_for_the_name_asked() {
        let got = admitted_by_response(&hosts(&["example.com"]), CNAME_CHAIN_REPLY);
        let id = name_id("example.com");
        assert_eq!(
            got,
            vec![
                Admit {
                    key: key(id, a("192.0.2.22")),
                    timeout_secs: 60
                },
                Admit {
                    key: key(id, a("192.0.2.21")),
                    timeout_secs: 60
                },
            ]
        );
        // The names along the chain are not what was asked: they earn nothing.
        for h in ["example.net", "cdn.test", "edge.cdn.test", "notexample.com"] {
            assert!(admitted_by_response(&hosts(&[h]), CNAME_CHAIN_REPLY).is_empty());
        }
        // No hosts: not even the header is read.
        assert!(admitted_by_response(&[], CNAME_CHAIN_REPLY).is_empty());
    }

    #[test]
    fn only_noerror_responses_count_and_cut_ones_never_panic() {
        let h = hosts(&["example.com"]);
        // The query itself (QR clear) earns nothing.
        let mut m = CNAME_CHAIN_REPLY.to_vec();
        m[2] &= 0x7f;
        assert!(admitted_by_response(&h, &m).is_empty());
        // An error rcode neither.
        let mut m = CNAME_CHAIN_REPLY.to_vec();
        m[3] = (m[3] & 0xf0) | 2;
        assert!(admitted_by_response(&h, &m).is_empty());
        // Cut anywhere: no panic, and the A records whole before the cut count.
        for n in 0..CNAME_CHAIN_REPLY.len() {
            let got = admitted_by_response(&h, &CNAME_CHAIN_REPLY[..n]);
            assert!(got.len() <= 1, "{n}");
        }
    }

    #[test]
    fn a_response_built_by_the_resolver_is_read_back() {
        // What econet's own builder writes (a local or cached answer): AAAA and
        // other classes do not count.
        let mut buf = [0u8; 512];
        let name = crate::wire::dns::NameBuf::from_text("Api.Example.com").unwrap();
        let mut b = Builder::new(&mut buf, 7, flags::QR | flags::RD | flags::RA).unwrap();
        b.question(name.as_wire(), Type::A, Class::IN).unwrap();
        for (t, c, d) in [
            (Type::A, Class::IN, Data::A(a("198.51.100.1"))),
            (
                Type::AAAA,
                Class::IN,
                Data::Aaaa("2001:db8::1".parse().unwrap()),
            ),
            (Type::A, Class::CH, Data::A(a("198.51.100.2"))),
            (Type::A, Class::IN, Data::A(a("198.51.100.3"))),
        ] {
            b.record(Section::Answer, name.as_wire(), t, c, 100_000, d)
                .unwrap();
        }
        let len = b.finish();
        let got = admitted_by_response(&hosts(&["example.com"]), &buf[..len]);
        let id = name_id("example.com");
        assert_eq!(
            got,
            vec![
                Admit {
                    key: key(id, a("198.51.100.1")),
                    timeout_secs: MAX_TTL_SECS
                },
                Admit {
                    key: key(id, a("198.51.100.3")),
                    timeout_secs: MAX_TTL_SECS
                },
            ]
        );
    }

    #[test]
    fn static_entries_under_a_host_are_admitted_without_timeout() {
        let dns = vec![
            HostEntry {
                host: "db.example.com".into(),
                addrs: vec![a("10.1.0.5"), a("10.1.0.6")],
                addrs6: Vec::new(),
            },
            HostEntry {
                host: "Example.com.".into(),
                addrs: vec![a("10.1.0.7")],
                addrs6: Vec::new(),
            },
            HostEntry {
                host: "notexample.com".into(),
                addrs: vec![a("10.1.0.8")],
                addrs6: Vec::new(),
            },
            HostEntry {
                host: "db".into(),
                addrs: vec![a("10.1.0.9")],
                addrs6: Vec::new(),
            },
        ];
        let got = static_elems(&hosts(&["example.com", "db.example.com"]), &dns);
        let (e, d) = (name_id("example.com"), name_id("db.example.com"));
        let mut want = vec![
            key(e, a("10.1.0.5")),
            key(e, a("10.1.0.6")),
            key(e, a("10.1.0.7")),
            key(d, a("10.1.0.5")),
            key(d, a("10.1.0.6")),
        ];
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(static_elems(&[], &dns).is_empty());
        // An answer for a static name learns nothing the set holds for good.
        let mut elems = admitted(
            &hosts(&["example.com"]),
            "db.example.com",
            &[(a("10.1.0.5"), 60), (a("10.1.0.99"), 60)],
        );
        drop_static(&mut elems, &got);
        assert_eq!(
            elems,
            vec![Admit {
                key: key(e, a("10.1.0.99")),
                timeout_secs: 60
            }]
        );
    }

    #[test]
    fn a_networks_hosts_are_those_of_its_endpoints_acls() {
        use crate::config::{Ace, AceAction, AceDir, AceMatches};
        let spec = include_str!("../../board/examples/spec-device.json");
        let mut cfg = crate::config::parse(spec.as_bytes()).unwrap();
        let ace = |id: u32, host: Option<&str>| Ace {
            id,
            name: None,
            matches: AceMatches {
                host: host.map(str::to_string),
                ..AceMatches::default()
            },
            action: AceAction::Allow,
            dir: AceDir::Both,
        };
        assert!(acl_hosts(&cfg, 0).is_empty());
        let lan = cfg.apps[0].interfaces[0].network;
        let other = cfg.apps[1].interfaces[0].network;
        assert_ne!(lan, other);
        cfg.apps[0].interfaces[0].acls = Some(vec![
            ace(1, Some("Updates.Example.com.")),
            ace(2, None),
            ace(3, Some("example.org")),
            ace(4, Some("example.org")),
        ]);
        cfg.apps[1].interfaces[0].acls = Some(vec![ace(1, Some("plc.example"))]);
        assert_eq!(acl_hosts(&cfg, lan), ["example.org", "updates.example.com"]);
        assert_eq!(acl_hosts(&cfg, other), ["plc.example"]);
    }

    #[test]
    fn log_throttle_speaks_once_a_minute() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(59)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(t.allow(t0 + Duration::from_secs(61)), None);
    }
}
