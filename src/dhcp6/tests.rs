//! Server tests, driven by the messages captured from dhclient and dhcpcd (see
//! `wire::dhcpv6::captures`); variants are made by editing a captured message.
//! The server's DUID is set to the captured dnsmasq's, so the captured Requests,
//! Renews and Releases are addressed to it.

use super::*;
use crate::wire::dhcpv6::captures::*;
use crate::wire::dhcpv6::{self as wire, Ia, IaAddress, IaKind, MessageType, StatusCode};
use std::time::{Duration, Instant};

/// The captured clients' MAC and link-local address.
const CLIENT: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const WALL0: u64 = 1_767_222_000;
/// dnsmasq's DUID in the captures.
const SERVER_DUID: &str = "0001000132a6575882658d5f8512";

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn client_ll() -> Ipv6Addr {
    a6("fe80::701e:a0ff:fe80:5950")
}

fn key(app: &str) -> EndpointKey {
    EndpointKey {
        app_id: format!("app-{app}"),
        ifname: "eth0".into(),
    }
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn endpoint(app: &str, m: MacAddr, static_ip6: Option<Ipv6Addr>) -> Endpoint {
    Endpoint {
        key: key(app),
        mac: m,
        static_ip6,
        hostname: app.into(),
    }
}

/// fd00:1::/64 as in the captures, the default range, dnsmasq's DUID; `web` is the
/// captured client, `plc` the same MAC with a static address, `vm` another ECO.
fn config() -> Config {
    let mut c = Config::new(
        a6("fd00:1::"),
        MacAddr([0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12]),
    );
    c.server_duid = hex(SERVER_DUID);
    c.domains = vec!["eco.internal".into()];
    c.info_refresh_secs = Some(3600);
    c.endpoints = vec![
        endpoint("web", CLIENT, None),
        endpoint("plc", CLIENT, Some(a6("fd00:1::db"))),
        endpoint("vm", mac(3), None),
    ];
    c
}

/// An IA of a reply: kind, IAID, T1, T2, (address, preferred, valid), status.
type IaOut = (
    IaKind,
    u32,
    u32,
    u32,
    Vec<(Ipv6Addr, u32, u32)>,
    Option<StatusCode>,
);

/// A parsed reply, owned.
#[derive(Debug, Clone)]
struct Msg {
    kind: MessageType,
    xid: u32,
    client_id: Option<Vec<u8>>,
    server_id: Option<Vec<u8>>,
    rapid: bool,
    status: Option<StatusCode>,
    ias: Vec<IaOut>,
    dns: Vec<Ipv6Addr>,
    domains: Vec<String>,
    refresh: Option<u32>,
    bytes: Vec<u8>,
}

impl Msg {
    fn new(b: &[u8]) -> Msg {
        let r = wire::Repr::parse(&wire::Packet::new_checked(b).unwrap()).unwrap();
        Msg {
            kind: r.message_type,
            xid: r.transaction_id,
            client_id: r.client_id.map(|d| d.as_bytes().to_vec()),
            server_id: r.server_id.map(|d| d.as_bytes().to_vec()),
            rapid: r.rapid_commit,
            status: r.status.map(|s| s.code),
            ias: r
                .ias
                .iter()
                .map(|i| {
                    (
                        i.kind,
                        i.iaid,
                        i.t1,
                        i.t2,
                        i.addresses
                            .iter()
                            .map(|a| (a.addr, a.preferred, a.valid))
                            .collect(),
                        i.status.map(|s| s.code),
                    )
                })
                .collect(),
            dns: r
                .dns_servers
                .map(|d| d.iter().collect())
                .unwrap_or_default(),
            domains: r
                .domain_list
                .map(|d| d.names().collect())
                .unwrap_or_default(),
            refresh: r.information_refresh_time,
            bytes: b.to_vec(),
        }
    }

    /// The one address of the one IA, with non-zero lifetimes.
    fn addr(&self) -> Ipv6Addr {
        assert_eq!(self.ias.len(), 1, "{self:?}");
        let live: Vec<_> = self.ias[0].4.iter().filter(|a| a.2 > 0).collect();
        assert_eq!(live.len(), 1, "{self:?}");
        live[0].0
    }
}

fn print_hex(m: &Msg) {
    if std::env::var_os("ECONET_DHCP6_HEX").is_some() {
        let h: String = m.bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("{h}");
    }
}

struct H {
    s: Server,
    now: Instant,
    wall: u64,
    buf: Vec<u8>,
}

impl H {
    fn new(cfg: Config) -> H {
        H {
            s: Server::new(cfg),
            now: Instant::now(),
            wall: WALL0,
            buf: vec![0; 1232],
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.wall += d.as_secs();
        self.s.poll(self.now);
    }

    fn rx_full(&mut self, ep: &str, src: MacAddr, unicast: bool, msg: &[u8]) -> Option<Msg> {
        let k = key(ep);
        let rx = Rx {
            endpoint: Some(&k),
            src_mac: src,
            src_ip: client_ll(),
            unicast,
            payload: msg,
        };
        let r = self.s.handle(self.now, self.wall, rx, &mut self.buf)?;
        assert_eq!(r.dst_mac, src);
        assert_eq!(r.dst_ip, client_ll());
        assert_eq!(r.dst_port, 546);
        let m = Msg::new(&self.buf[..r.payload_len]);
        print_hex(&m);
        self.s.check_invariants();
        Some(m)
    }

    fn rx(&mut self, ep: &str, src: MacAddr, msg: &[u8]) -> Option<Msg> {
        self.rx_full(ep, src, false, msg)
    }

    fn reply(&mut self, ep: &str, src: MacAddr, msg: &[u8]) -> Msg {
        self.rx(ep, src, msg)
            .unwrap_or_else(|| panic!("no reply to {:?}", Msg::new(msg).kind))
    }

    fn leases(&self) -> Vec<(EndpointKey, Ipv6Addr)> {
        let mut v: Vec<_> = self
            .s
            .leases()
            .map(|l| (l.endpoint.clone(), l.ip))
            .collect();
        v.sort();
        v
    }
}

/// A captured message with some fields changed (its bytes leak, so the edit may
/// borrow from anything).
fn edit<'a>(msg: &str, f: impl FnOnce(&mut wire::Repr<'a>)) -> Vec<u8> {
    let b: &'static [u8] = Box::leak(hex(msg).into_boxed_slice());
    let mut r: wire::Repr<'a> = wire::Repr::parse(&wire::Packet::new_checked(b).unwrap()).unwrap();
    f(&mut r);
    let mut out = vec![0; r.buffer_len()];
    r.emit(&mut wire::Packet::new_unchecked(&mut out[..]))
        .unwrap();
    out
}

/// dnsmasq's DUID in the captures, as bytes.
const SID: [u8; 14] = [
    0, 1, 0, 1, 0x32, 0xa6, 0x57, 0x58, 0x82, 0x65, 0x8d, 0x5f, 0x85, 0x12,
];

/// A captured message addressed to this server (`SERVER_DUID`).
fn for_us(msg: &str) -> Vec<u8> {
    edit(msg, |r| r.server_id = wire::Duid::from_bytes(&SID).ok())
}

/// A captured message with its IA_NA listing `addr` instead.
fn with_addr(msg: &str, addr: Ipv6Addr) -> Vec<u8> {
    edit(msg, |r| {
        let ia = r.ias.iter_mut().find(|i| i.kind == IaKind::Na).unwrap();
        ia.addresses = vec![IaAddress::new(addr, 0, 0)];
    })
}

fn in_range(a: Ipv6Addr) -> bool {
    (a6("fd00:1::1000")..=a6("fd00:1::ffff")).contains(&a)
}

#[test]
fn dhclient_exchange() {
    let mut h = H::new(config());
    let adv = h.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT));
    assert_eq!(adv.kind, MessageType::Advertise);
    assert_eq!(adv.xid, 0xff27f7);
    assert!(!adv.rapid);
    assert_eq!(adv.server_id, Some(hex(SERVER_DUID)));
    let solicit = Msg::new(&hex(DHCLIENT_SOLICIT));
    assert_eq!(adv.client_id, solicit.client_id);
    let x = adv.addr();
    assert!(in_range(x), "{x}");
    let ia = &adv.ias[0];
    assert_eq!((ia.1, ia.2, ia.3), (0xa0805950, 1800, 2880));
    assert_eq!(ia.4, [(x, 3600, 3600)]);
    assert_eq!(adv.dns, [a6("fd00:1::1")]);
    assert_eq!(adv.domains, ["eco.internal"]);
    assert_eq!(adv.refresh, None);
    // An Advertise commits nothing, but the allocation is made (and journaled).
    assert!(h.leases().is_empty());
    assert!(h.s.take_dirty(h.wall));
    assert!(String::from_utf8(h.s.take_journal())
        .unwrap()
        .starts_with(&format!(
            "{x} {WALL0} 72:1e:a0:80:59:50 eco app-web eth0 web"
        )));

    // The captured Request asks for dnsmasq's fd00:1::db: it gets its own address.
    let rep = h.reply("web", CLIENT, &hex(DHCLIENT_REQUEST));
    assert_eq!(rep.kind, MessageType::Reply);
    assert_eq!(rep.ias.len(), 1);
    assert_eq!(rep.ias[0].4, [(x, 3600, 3600)]);
    assert_eq!(h.leases(), [(key("web"), x)]);
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Granted {
            endpoint: key("web"),
            mac: CLIENT,
            ip: x
        }]
    );
    // The FQDN's host label names the lease.
    assert_eq!(h.s.leases().next().unwrap().hostname, "plc");

    // The captured Renew still lists fd00:1::db: zero lifetimes for it.
    h.advance(Duration::from_secs(1800));
    let ren = h.reply("web", CLIENT, &hex(DHCLIENT_RENEW));
    assert_eq!(ren.ias[0].4, [(x, 3600, 3600), (a6("fd00:1::db"), 0, 0)]);
    let ren = h.reply("web", CLIENT, &with_addr(DHCLIENT_RENEW, x));
    assert_eq!(ren.ias[0].4, [(x, 3600, 3600)]);
    // A renewal writes nothing at once.
    assert!(!h.s.take_dirty(h.wall));
    assert!(h.s.take_journal().is_empty());

    let reb = h.reply("web", CLIENT, &with_addr(DHCLIENT_REBIND, x));
    assert_eq!(reb.ias[0].4, [(x, 3600, 3600)]);
    // Rebind with an address of another link: zero lifetimes for it.
    let reb = h.reply(
        "web",
        CLIENT,
        &with_addr(DHCLIENT_REBIND, a6("2001:db8::5")),
    );
    assert_eq!(reb.ias[0].4, [(x, 3600, 3600), (a6("2001:db8::5"), 0, 0)]);
    h.s.take_changes();

    let rel = h.reply("web", CLIENT, &with_addr(DHCLIENT_RELEASE, x));
    assert_eq!(rel.status, Some(StatusCode::Success));
    assert!(rel.ias.is_empty());
    assert!(h.leases().is_empty());
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Ended {
            endpoint: key("web"),
            mac: CLIENT,
            ip: x
        }]
    );
    // The allocation stays the ECO's.
    assert_eq!(h.s.eco_address(&key("web")), Some(x));
    // The captured Release names fd00:1::db, which the ECO does not hold.
    let rel = h.reply("web", CLIENT, &hex(DHCLIENT_RELEASE));
    assert_eq!(rel.status, Some(StatusCode::Success));
    assert_eq!(rel.ias[0].5, Some(StatusCode::NoBinding));

    let again = h.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT));
    assert_eq!(again.addr(), x);

    let info = h.reply("web", CLIENT, &hex(DHCLIENT_INFORMATION_REQUEST));
    assert_eq!(info.kind, MessageType::Reply);
    assert!(info.ias.is_empty());
    assert_eq!(info.dns, [a6("fd00:1::1")]);
    assert_eq!(info.domains, ["eco.internal"]);
    assert_eq!(info.refresh, Some(3600));
}

#[test]
fn dhcpcd_exchange_with_rapid_commit() {
    let mut h = H::new(config());
    let rep = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID));
    assert_eq!(rep.kind, MessageType::Reply);
    assert!(rep.rapid);
    let x = rep.addr();
    assert_eq!(rep.ias[0].1, 1); // dhcpcd's IAID
    assert_eq!(h.leases(), [(key("web"), x)]);
    assert_eq!(h.s.leases().next().unwrap().hostname, "web");

    let ren = h.reply("web", CLIENT, &hex(DHCPCD_RENEW));
    assert_eq!(ren.ias[0].4, [(x, 3600, 3600), (a6("fd00:1::fc"), 0, 0)]);
    let reb = h.reply("web", CLIENT, &with_addr(DHCPCD_REBIND, x));
    assert_eq!(reb.ias[0].4, [(x, 3600, 3600)]);

    // Confirm: its own address is fine; another one, on link or not, is not.
    let c = h.reply("web", CLIENT, &with_addr(DHCPCD_CONFIRM, x));
    assert_eq!((c.status, c.ias.len()), (Some(StatusCode::Success), 0));
    let c = h.reply("web", CLIENT, &hex(DHCPCD_CONFIRM));
    assert_eq!(c.status, Some(StatusCode::NotOnLink));
    let c = h.reply("web", CLIENT, &with_addr(DHCPCD_CONFIRM, a6("2001:db8::1")));
    assert_eq!(c.status, Some(StatusCode::NotOnLink));
    // No address to confirm: no reply.
    let none = edit(DHCPCD_CONFIRM, |r| r.ias[0].addresses.clear());
    assert!(h.rx("web", CLIENT, &none).is_none());

    // The Solicit, Request and Release of a dhcpcd with a fresh DUID.
    let adv = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT));
    assert_eq!(adv.kind, MessageType::Advertise);
    assert_eq!(adv.addr(), x);
    // (Captured against another dnsmasq run, with another DUID.)
    assert!(h.rx("web", CLIENT, &hex(DHCPCD_REQUEST)).is_none());
    let rep = h.reply("web", CLIENT, &for_us(DHCPCD_REQUEST));
    assert_eq!(rep.ias[0].4, [(x, 3600, 3600)]);
    let rel = edit(DHCPCD_RELEASE, |r| {
        r.server_id = wire::Duid::from_bytes(&SID).ok();
        r.ias[0].addresses = vec![IaAddress::new(x, 0, 0)];
    });
    let rel = h.reply("web", CLIENT, &rel);
    assert_eq!(rel.status, Some(StatusCode::Success));
    assert!(h.leases().is_empty());
}

#[test]
fn rapid_commit_only_when_configured() {
    let mut c = config();
    c.rapid_commit = false;
    let mut h = H::new(c);
    let adv = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID));
    assert_eq!(adv.kind, MessageType::Advertise);
    assert!(!adv.rapid);
    assert!(h.leases().is_empty());
}

#[test]
fn same_address_after_restart_and_without_the_lease_file() {
    let mut h = H::new(config());
    let x = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    let y = h.reply("vm", mac(3), &hex(DHCPCD_SOLICIT_RAPID)).addr();
    assert_ne!(x, y);
    let snap = h.s.snapshot();

    let mut r = H::new(config());
    assert_eq!(r.s.restore(&snap, r.now, r.wall + 10), 2);
    assert_eq!(r.s.snapshot(), snap);
    // Presumed leased after the restart, not shown as active.
    assert!(r.leases().is_empty());
    assert_eq!(r.s.held().count(), 2);
    let ren = r.reply("web", CLIENT, &with_addr(DHCPCD_RENEW, x));
    assert_eq!(ren.ias[0].4, [(x, 3600, 3600)]);

    // No lease file at all: the derived position gives the same addresses.
    let mut fresh = H::new(config());
    assert_eq!(fresh.reply("vm", mac(3), &hex(DHCLIENT_SOLICIT)).addr(), y);
    assert_eq!(fresh.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT)).addr(), x);
    // A Renew to a server that lost everything: the ECO keeps its address.
    let mut lost = H::new(config());
    let ren = lost.reply("web", CLIENT, &with_addr(DHCPCD_RENEW, x));
    assert_eq!(ren.ias[0].4, [(x, 3600, 3600)]);
}

#[test]
fn new_duid_and_iaid_keep_the_address() {
    let mut h = H::new(config());
    let x = h.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT)).addr();
    // dhcpcd on the redeployed app: another DUID, another IAID.
    let d = Msg::new(&hex(DHCPCD_SOLICIT));
    assert_ne!(d.client_id, Msg::new(&hex(DHCLIENT_SOLICIT)).client_id);
    assert_eq!(h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT)).addr(), x);
    let uuid = wire::Duid::uuid([9; 16]);
    let other = edit(DHCPCD_SOLICIT_RAPID, |r| {
        r.client_id = wire::Duid::from_bytes(&uuid[..]).ok();
        r.ias[0].iaid = 77;
    });
    assert_eq!(h.reply("web", CLIENT, &other).addr(), x);
}

#[test]
fn static_ip6_is_given_as_is() {
    let mut h = H::new(config());
    let db = a6("fd00:1::db");
    let rep = h.reply("plc", CLIENT, &hex(DHCLIENT_REQUEST));
    assert_eq!(rep.ias[0].4, [(db, 3600, 3600)]);
    let ren = h.reply("plc", CLIENT, &hex(DHCLIENT_RENEW));
    assert_eq!(ren.ias[0].4, [(db, 3600, 3600)]);
    assert_eq!(h.leases(), [(key("plc"), db)]);
    assert_eq!(h.s.eco_address(&key("plc")), Some(db));
    // Statics are not persisted.
    assert_eq!(h.s.snapshot(), b"econet-dhcp6-leases 1\n");
    // A static given later replaces the dynamic allocation.
    let x = h.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT)).addr();
    let mut c = config();
    c.endpoints[0].static_ip6 = Some(a6("fd00:1::77"));
    h.s.update_config(c);
    assert!(h.s.take_dirty(h.wall));
    assert_ne!(h.s.eco_address(&key("web")), Some(x));
    let adv = h.reply("web", CLIENT, &hex(DHCLIENT_SOLICIT));
    assert_eq!(adv.addr(), a6("fd00:1::77"));
}

#[test]
fn server_id_rules() {
    let mut h = H::new(config());
    let x = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    let other = [0u8, 3, 0, 1, 1, 2, 3, 4, 5, 6];
    let wrong = |m: &str| {
        edit(m, |r| {
            r.server_id = wire::Duid::from_bytes(&other[..]).ok();
        })
    };
    let none = |m: &str| edit(m, |r| r.server_id = None);
    // Not for us, or for nobody: discarded.
    for m in [
        DHCLIENT_REQUEST,
        DHCLIENT_RENEW,
        DHCLIENT_RELEASE,
        DHCPCD_RELEASE,
    ] {
        assert!(h.rx("web", CLIENT, &wrong(m)).is_none());
        assert!(h.rx("web", CLIENT, &none(m)).is_none());
    }
    let decline = edit(DHCLIENT_RELEASE, |r| {
        r.message_type = MessageType::Decline;
        r.server_id = wire::Duid::from_bytes(&other[..]).ok();
    });
    assert!(h.rx("web", CLIENT, &decline).is_none());
    // Solicit, Rebind and Confirm must not carry one.
    for m in [DHCLIENT_SOLICIT, DHCLIENT_REBIND, DHCPCD_CONFIRM] {
        assert!(h.rx("web", CLIENT, &wrong(m)).is_none());
        let ours = edit(m, |r| {
            r.server_id = wire::Duid::from_bytes(&[0, 3, 0, 1, 9]).ok()
        });
        assert!(h.rx("web", CLIENT, &ours).is_none());
    }
    // Information-request: another server's id, or an IA, is discarded; ours is fine.
    assert!(h
        .rx("web", CLIENT, &wrong(DHCLIENT_INFORMATION_REQUEST))
        .is_none());
    let ours = edit(DHCLIENT_INFORMATION_REQUEST, |r| {
        r.server_id = wire::Duid::from_bytes(&SID).ok()
    });
    assert!(h.rx("web", CLIENT, &ours).is_some());
    let with_ia = edit(DHCLIENT_INFORMATION_REQUEST, |r| {
        r.ias.push(Ia::new(IaKind::Na, 1))
    });
    assert!(h.rx("web", CLIENT, &with_ia).is_none());
    // No client id: discarded (Information-request may go without).
    for m in [
        DHCLIENT_SOLICIT,
        DHCLIENT_REQUEST,
        DHCLIENT_RENEW,
        DHCPCD_CONFIRM,
    ] {
        assert!(h
            .rx("web", CLIENT, &edit(m, |r| r.client_id = None))
            .is_none());
    }
    let anon = edit(DHCLIENT_INFORMATION_REQUEST, |r| r.client_id = None);
    let info = h.reply("web", CLIENT, &anon);
    assert_eq!(info.client_id, None);
    // Nothing changed the lease.
    assert_eq!(h.leases(), [(key("web"), x)]);
}

#[test]
fn unknown_senders_get_no_address() {
    let mut h = H::new(config());
    let stranger = mac(0x42);
    let adv = h.reply("web", stranger, &hex(DHCPCD_SOLICIT_RAPID));
    assert_eq!(adv.kind, MessageType::Advertise);
    assert!(!adv.rapid);
    assert!(adv.ias.is_empty());
    assert_eq!(adv.status, Some(StatusCode::NoAddrsAvail));
    let rep = h.reply("web", stranger, &hex(DHCLIENT_REQUEST));
    assert_eq!(rep.ias[0].5, Some(StatusCode::NoAddrsAvail));
    assert!(rep.ias[0].4.is_empty());
    let ren = h.reply("web", stranger, &hex(DHCLIENT_RENEW));
    assert_eq!(ren.ias[0].5, Some(StatusCode::NoBinding));
    let reb = h.reply(
        "web",
        stranger,
        &with_addr(DHCLIENT_REBIND, a6("2001:db8::9")),
    );
    assert_eq!(reb.ias[0].4, [(a6("2001:db8::9"), 0, 0)]);
    let c = h.reply("web", stranger, &hex(DHCPCD_CONFIRM));
    assert_eq!(c.status, Some(StatusCode::Success)); // on link
    assert!(h
        .rx("web", stranger, &hex(DHCLIENT_INFORMATION_REQUEST))
        .is_some());
    assert_eq!(h.s.allocations(), 1); // plc's static only
    assert!(h.s.take_changes().is_empty());
    // Not an ECO endpoint at all, or not in the config: silence.
    let k = key("nobody");
    let b = hex(DHCLIENT_SOLICIT);
    for endpoint in [None, Some(&k)] {
        let rx = Rx {
            endpoint,
            src_mac: CLIENT,
            src_ip: client_ll(),
            unicast: false,
            payload: &b,
        };
        assert!(h.s.handle(h.now, h.wall, rx, &mut h.buf).is_none());
    }
}

#[test]
fn ia_ta_ia_pd_and_several_ia_na() {
    let mut h = H::new(config());
    let first = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    let many = edit(DHCPCD_SOLICIT_RAPID, |r| {
        let na = r.ias[0].clone();
        for iaid in 2..=6 {
            let mut n = na.clone();
            n.iaid = iaid;
            r.ias.push(n);
        }
        r.ias.push(Ia::new(IaKind::Ta, 20));
        r.ias.push(Ia::new(IaKind::Pd, 30));
    });
    let rep = h.reply("web", CLIENT, &many);
    assert_eq!(rep.ias.len(), 8);
    let addrs: Vec<Ipv6Addr> = rep.ias[..4].iter().map(|i| i.4[0].0).collect();
    assert_eq!(addrs[0], first);
    let mut uniq = addrs.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4);
    assert!(addrs.iter().all(|&a| in_range(a)));
    for i in &rep.ias[4..6] {
        assert_eq!((i.0, i.5), (IaKind::Na, Some(StatusCode::NoAddrsAvail)));
    }
    assert_eq!(
        (rep.ias[6].0, rep.ias[6].5),
        (IaKind::Ta, Some(StatusCode::NoAddrsAvail))
    );
    assert_eq!(
        (rep.ias[7].0, rep.ias[7].5),
        (IaKind::Pd, Some(StatusCode::NoPrefixAvail))
    );
    assert_eq!(h.s.leases().count(), 4);
    assert_eq!(h.s.leases().filter(|l| l.slot == 2).count(), 1);

    // Renewing only the third IA, by its address, keeps it in its slot.
    let third = addrs[2];
    let ren = h.reply("web", CLIENT, &with_addr(DHCPCD_RENEW, third));
    assert_eq!(ren.ias[0].4, [(third, 3600, 3600)]);
    // Only IA_PD asked: NoPrefixAvail for the whole Advertise.
    let pd = edit(DHCLIENT_SOLICIT, |r| r.ias = vec![Ia::new(IaKind::Pd, 1)]);
    let adv = h.reply("web", CLIENT, &pd);
    assert_eq!(
        (adv.status, adv.ias.len()),
        (Some(StatusCode::NoPrefixAvail), 0)
    );
    // Persisted with their slots.
    let snap = String::from_utf8(h.s.snapshot()).unwrap();
    assert!(snap.contains(" eco:3 app-web eth0 "), "{snap}");
    let mut r = H::new(config());
    assert_eq!(r.s.restore(snap.as_bytes(), r.now, r.wall), 4);
}

#[test]
fn decline_holds_the_address_and_the_eco_moves() {
    let mut c = config();
    c.decline_hold = Duration::from_secs(60);
    let mut h = H::new(c);
    let x = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    h.s.take_dirty(h.wall);
    h.s.take_changes();
    let decline = edit(DHCLIENT_RELEASE, |r| {
        r.message_type = MessageType::Decline;
        r.ias[0].addresses = vec![IaAddress::new(x, 0, 0)];
    });
    let rep = h.reply("web", CLIENT, &decline);
    assert_eq!(rep.status, Some(StatusCode::Success));
    assert!(rep.ias.is_empty());
    assert!(h.s.take_dirty(h.wall));
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Ended {
            endpoint: key("web"),
            mac: CLIENT,
            ip: x
        }]
    );
    let y = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    assert_ne!(x, y);
    // Held for a while, then free again (for someone else: `web` keeps `y`).
    assert!(h.s.poll_timeout().is_some());
    h.advance(Duration::from_secs(61));
    h.s.check_invariants();
    assert_eq!(h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr(), y);
    // A Decline of an address it does not hold: NoBinding, nothing held.
    let rep = h.reply("web", CLIENT, &decline);
    assert_eq!(rep.ias[0].5, Some(StatusCode::NoBinding));
    // A static address declined stays the ECO's.
    let db = a6("fd00:1::db");
    h.reply("plc", CLIENT, &hex(DHCLIENT_REQUEST));
    let d = edit(DHCLIENT_RELEASE, |r| r.message_type = MessageType::Decline);
    h.reply("plc", CLIENT, &d);
    assert_eq!(h.s.eco_address(&key("plc")), Some(db));
}

#[test]
fn unicast_gets_use_multicast() {
    let mut h = H::new(config());
    let rep = h
        .rx_full("web", CLIENT, true, &hex(DHCLIENT_REQUEST))
        .unwrap();
    assert_eq!(rep.status, Some(StatusCode::UseMulticast));
    assert!(rep.ias.is_empty() && rep.dns.is_empty());
    assert!(h.leases().is_empty());
    // Solicit and Information-request are served either way.
    assert!(h
        .rx_full("web", CLIENT, true, &hex(DHCLIENT_SOLICIT))
        .is_some_and(|m| m.kind == MessageType::Advertise));
}

#[test]
fn relayed_and_server_messages_are_dropped() {
    let mut h = H::new(config());
    let mut relay = vec![12, 0];
    relay.extend_from_slice(&[0; 32]);
    let inner = hex(DHCLIENT_SOLICIT);
    relay.extend_from_slice(&[0, 9]);
    relay.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    relay.extend_from_slice(&inner);
    assert!(h.rx("web", CLIENT, &relay).is_none());
    for m in [DNSMASQ_ADVERTISE, DNSMASQ_REPLY, DNSMASQ_RAPID_REPLY] {
        assert!(h.rx("web", CLIENT, &hex(m)).is_none());
    }
    // A multicast or zero source MAC, an unspecified source address.
    assert!(h
        .rx("web", MacAddr::BROADCAST, &hex(DHCLIENT_SOLICIT))
        .is_none());
    let k = key("web");
    let b = hex(DHCLIENT_SOLICIT);
    let rx = Rx {
        endpoint: Some(&k),
        src_mac: CLIENT,
        src_ip: Ipv6Addr::UNSPECIFIED,
        unicast: false,
        payload: &b,
    };
    assert!(h.s.handle(h.now, h.wall, rx, &mut h.buf).is_none());
}

#[test]
fn lease_expiry_runs_from_poll() {
    let mut h = H::new(config());
    let x = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    h.s.take_changes();
    let t = h.s.poll_timeout().unwrap();
    assert_eq!(t, h.now + Duration::from_secs(3600));
    h.advance(Duration::from_secs(3599));
    assert_eq!(h.leases().len(), 1);
    h.advance(Duration::from_secs(1));
    assert!(h.leases().is_empty());
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Ended {
            endpoint: key("web"),
            mac: CLIENT,
            ip: x
        }]
    );
    assert_eq!(h.s.eco_address(&key("web")), Some(x));
}

#[test]
fn last_used_times_are_flushed_at_most_hourly() {
    let mut h = H::new(config());
    let x = h.reply("web", CLIENT, &hex(DHCPCD_SOLICIT_RAPID)).addr();
    assert!(h.s.take_dirty(h.wall));
    assert!(!h.s.take_dirty(h.wall));
    h.advance(Duration::from_secs(600));
    h.reply("web", CLIENT, &with_addr(DHCPCD_RENEW, x));
    assert!(h.s.has_unsaved());
    assert!(!h.s.take_dirty(h.wall));
    h.advance(Duration::from_secs(3000));
    assert!(h.s.take_dirty(h.wall));
    assert!(!h.s.has_unsaved());
}

#[test]
fn a_full_range_reuses_idle_allocations_of_gone_apps_first() {
    let mut c = config();
    c.range_start = a6("fd00:1::10");
    c.range_end = a6("fd00:1::12");
    c.endpoints = (1..=4)
        .map(|i| endpoint(&format!("e{i}"), mac(i), None))
        .collect();
    let mut h = H::new(c.clone());
    let mut got = Vec::new();
    for i in 1..=3u8 {
        got.push(
            h.reply(&format!("e{i}"), mac(i), &hex(DHCPCD_SOLICIT))
                .addr(),
        );
    }
    got.sort();
    assert_eq!(got, [a6("fd00:1::10"), a6("fd00:1::11"), a6("fd00:1::12")]);
    // All held by ECOs with leases? No: Advertise made allocations, not leases; the
    // fourth takes the least recently used idle one.
    h.advance(Duration::from_secs(5));
    let e2 = h.s.eco_address(&key("e2")).unwrap();
    c.endpoints.retain(|e| e.key != key("e2"));
    h.s.update_config(c);
    let got4 = h.reply("e4", mac(4), &hex(DHCPCD_SOLICIT)).addr();
    assert_eq!(got4, e2);
    assert_eq!(h.s.eco_address(&key("e2")), None);
}

#[test]
fn exhausted_range_means_no_addrs_avail() {
    let mut c = config();
    c.range_start = a6("fd00:1::10");
    c.range_end = a6("fd00:1::10");
    c.endpoints = vec![endpoint("a", mac(1), None), endpoint("b", mac(2), None)];
    let mut h = H::new(c);
    h.reply("a", mac(1), &hex(DHCPCD_SOLICIT_RAPID)).addr();
    let adv = h.reply("b", mac(2), &hex(DHCPCD_SOLICIT_RAPID));
    assert_eq!(
        (adv.kind, adv.status),
        (MessageType::Advertise, Some(StatusCode::NoAddrsAvail))
    );
    let rep = h.reply("b", mac(2), &for_us(DHCPCD_REQUEST));
    assert_eq!(rep.ias[0].5, Some(StatusCode::NoAddrsAvail));
}

#[test]
fn small_buffer_changes_nothing() {
    let mut h = H::new(config());
    let k = key("web");
    let b = hex(DHCPCD_SOLICIT_RAPID);
    let rx = Rx {
        endpoint: Some(&k),
        src_mac: CLIENT,
        src_ip: client_ll(),
        unicast: false,
        payload: &b,
    };
    let mut small = [0u8; 40];
    assert!(h.s.handle(h.now, h.wall, rx, &mut small).is_none());
    assert!(h.leases().is_empty());
    assert!(h.s.take_changes().is_empty());
}

#[test]
fn restore_drops_what_no_longer_fits() {
    let text = format!(
        "econet-dhcp6-leases 1\n\
         fd00:1::2000 {WALL0} 02:00:00:00:00:03 eco app-vm eth0 vm\n\
         fd00:2::2000 {WALL0} 02:00:00:00:00:03 eco app-x eth0 x\n\
         fd00:1::1 {WALL0} 02:00:00:00:00:03 eco app-y eth0 y\n\
         fd00:1::3000 {WALL0} 72:1e:a0:80:59:50 eco app-plc eth0 plc\n\
         fd00:1::4000 {WALL0} 02:00:00:00:00:03 eco:9 app-vm eth0 vm\n\
         garbage\n"
    );
    let mut h = H::new(config());
    assert_eq!(h.s.restore(text.as_bytes(), h.now, h.wall), 1);
    assert!(h.s.take_dirty(h.wall));
    assert_eq!(h.s.eco_address(&key("vm")), Some(a6("fd00:1::2000")));
    assert_eq!(
        h.reply("vm", mac(3), &hex(DHCPCD_SOLICIT)).addr(),
        a6("fd00:1::2000")
    );
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const CAPTURED: [&str; 13] = [
    DHCLIENT_SOLICIT,
    DHCLIENT_REQUEST,
    DHCLIENT_RENEW,
    DHCLIENT_REBIND,
    DHCLIENT_RELEASE,
    DHCLIENT_INFORMATION_REQUEST,
    DHCPCD_SOLICIT_RAPID,
    DHCPCD_RENEW,
    DHCPCD_REBIND,
    DHCPCD_CONFIRM,
    DHCPCD_SOLICIT,
    DHCPCD_REQUEST,
    DHCPCD_RELEASE,
];

#[test]
fn random_and_mutated_messages_never_panic() {
    let mut h = H::new(config());
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut seeds: Vec<Vec<u8>> = CAPTURED.iter().map(|m| hex(m)).collect();
    seeds.push(for_us(DHCPCD_REQUEST));
    seeds.push(for_us(DHCPCD_RELEASE));
    let decline = edit(DHCLIENT_RELEASE, |r| r.message_type = MessageType::Decline);
    seeds.push(decline);
    let macs = [CLIENT, mac(3), mac(0x42)];
    let eps = ["web", "plc", "vm"];
    let send = |h: &mut H, b: &[u8], rng: &mut Rng| {
        let k = key(eps[rng.below(eps.len())]);
        let rx = Rx {
            endpoint: Some(&k),
            src_mac: macs[rng.below(macs.len())],
            src_ip: client_ll(),
            unicast: rng.below(8) == 0,
            payload: b,
        };
        if let Some(r) = h.s.handle(h.now, h.wall, rx, &mut h.buf) {
            // Every reply reads back.
            let p = wire::Packet::new_checked(&h.buf[..r.payload_len]).unwrap();
            wire::Repr::parse(&p).unwrap();
        }
    };
    for s in &seeds {
        for n in 0..=s.len() {
            send(&mut h, &s[..n], &mut rng);
        }
    }
    for i in 0..20_000 {
        let mut b = seeds[rng.below(seeds.len())].clone();
        for _ in 0..rng.below(4) {
            let at = rng.below(b.len());
            match rng.below(3) {
                0 => b[at] = rng.next() as u8,
                1 => b.truncate(at.max(4)),
                _ => b.insert(at, rng.next() as u8),
            }
        }
        send(&mut h, &b, &mut rng);
        if i % 1000 == 0 {
            h.advance(Duration::from_secs(rng.below(4000) as u64));
            h.s.check_invariants();
            let snap = h.s.snapshot();
            let mut r = H::new(config());
            r.s.restore(&snap, r.now, r.wall);
            r.s.check_invariants();
        }
    }
    for _ in 0..5_000 {
        let n = rng.below(300);
        let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        send(&mut h, &b, &mut rng);
        let _ = Server::new(config()).restore(&b, h.now, h.wall);
    }
    h.s.check_invariants();
}
