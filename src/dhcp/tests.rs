//! Server tests, driven by messages captured from udhcpc, dhclient and dhcpcd (see
//! `wire::testdata`); variants are made by editing a captured message's fields.

use super::*;
use crate::wire::dhcp::{self as wire, MessageType};
use crate::wire::testdata::*;
use crate::wire::udp::Checksum;
use std::time::{Duration, Instant};

/// The MAC of the captured client.
const CLIENT: MacAddr = MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]);
const GW: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const WALL0: u64 = 1_767_222_000;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 0, last)
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

fn endpoint(app: &str, m: MacAddr, static_ip: Option<Ipv4Addr>) -> Endpoint {
    Endpoint {
        key: key(app),
        mac: m,
        static_ip,
        hostname: app.into(),
    }
}

/// 10.9.0.0/24, the range starting at .49 (the address dnsmasq gave in the captures,
/// so captured REQUESTs fit), `web` is the captured client itself.
fn config() -> Config {
    let mut c = Config::new("10.9.0.0/24".parse().unwrap(), GW);
    c.range_start = ip(49);
    c.range_end = ip(60);
    c.domain = Some("eco.internal".into());
    c.ntp = vec![GW];
    c.mtu = Some(1400);
    c.routes = vec![Route {
        dest: "192.168.5.0/24".parse().unwrap(),
        gateway: GW,
    }];
    c.endpoints = vec![
        endpoint("web", CLIENT, None),
        endpoint("plc", CLIENT, Some(ip(5))),
        endpoint("vm", mac(3), None),
    ];
    c
}

/// The UDP payload of a captured client frame.
fn payload(frame: &[u8]) -> &[u8] {
    frame::parse_request(frame, Checksum::Ignore).unwrap().2
}

/// A captured message with some fields changed.
fn edit<'a>(frame: &'a [u8], f: impl FnOnce(&mut wire::Repr<'a>)) -> Vec<u8> {
    let p = payload(frame);
    let pkt = wire::Packet::new_checked(p).unwrap();
    let mut r = wire::Repr::parse(&pkt).unwrap();
    f(&mut r);
    let mut out = vec![0; r.buffer_len()];
    r.emit(&mut wire::Packet::new_unchecked(&mut out[..]))
        .unwrap();
    out
}

struct H {
    s: Server,

    now: Instant,
    wall: u64,
    buf: Vec<u8>,
}

impl H {
    fn new(cfg: Config) -> H {
        let t0 = Instant::now();
        H {
            s: Server::new(cfg),

            now: t0,
            wall: WALL0,
            buf: vec![0; 1472],
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.wall += d.as_secs();
    }

    fn rx(&mut self, ep: &str, src: MacAddr, msg: &[u8]) -> Option<Output> {
        let k = key(ep);
        let rx = Rx {
            endpoint: Some(&k),
            src_mac: src,
            src_ip: Ipv4Addr::UNSPECIFIED,
            payload: msg,
        };
        self.s.handle(self.now, self.wall, rx, &mut self.buf)
    }

    /// Sends and expects a reply; returns it with its parsed message.
    fn reply(&mut self, ep: &str, src: MacAddr, msg: &[u8]) -> (Reply, Msg) {
        match self.rx(ep, src, msg) {
            Some(Output::Reply(r)) => (r, Msg::new(&self.buf[..r.payload_len])),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn poll_all(&mut self) -> Vec<(Output, Option<Msg>)> {
        let mut out = Vec::new();
        while let Some(o) = self.s.poll(self.now, self.wall, &mut self.buf) {
            let m = match o {
                Output::Reply(r) => Some(Msg::new(&self.buf[..r.payload_len])),
                Output::Probe(_) => None,
            };
            out.push((o, m));
            assert!(out.len() < 10_000);
        }
        out
    }

    /// DISCOVER through probe and window: the OFFER (or rapid ACK).
    fn discover_probed(&mut self, ep: &str, src: MacAddr, msg: &[u8]) -> (Ipv4Addr, Reply, Msg) {
        let probed = match self.rx(ep, src, msg) {
            Some(Output::Probe(a)) => a,
            other => panic!("expected a probe, got {other:?}"),
        };
        // Nothing before the window ends.
        assert!(self.s.poll(self.now, self.wall, &mut self.buf).is_none());
        let t = self.s.poll_timeout().unwrap();
        assert!(t > self.now && t <= self.now + Duration::from_millis(50));
        self.now = t;
        let out = self.poll_all();
        assert_eq!(out.len(), 1, "{out:?}");
        match &out[0] {
            (Output::Reply(r), Some(m)) => (probed, *r, m.clone()),
            other => panic!("expected the offer, got {other:?}"),
        }
    }

    fn leases(&self) -> Vec<(EndpointKey, Option<ClientKey>, Ipv4Addr, String)> {
        let mut v: Vec<_> = self
            .s
            .leases()
            .map(|l| {
                (
                    l.endpoint.clone(),
                    l.client.cloned(),
                    l.ip,
                    l.hostname.to_string(),
                )
            })
            .collect();
        v.sort_by_key(|x| x.2);
        v
    }
}

/// A parsed reply, owned.
#[derive(Debug, Clone)]
struct Msg {
    kind: MessageType,
    xid: u32,
    yiaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    server_id: Option<Ipv4Addr>,
    lease: Option<u32>,
    t1: Option<u32>,
    t2: Option<u32>,
    mask: Option<Ipv4Addr>,
    router: Option<Ipv4Addr>,
    dns: Option<Ipv4Addr>,
    domain: Option<Vec<u8>>,
    mtu: Option<u16>,
    ntp: bool,
    routes: Vec<Route>,
    client_id: Option<Vec<u8>>,
    rapid: bool,
    len: usize,
}

impl Msg {
    fn new(b: &[u8]) -> Msg {
        let r = wire::Repr::parse(&wire::Packet::new_checked(b).unwrap()).unwrap();
        Msg {
            kind: r.message_type,
            xid: r.transaction_id,
            yiaddr: r.your_ip,
            ciaddr: r.client_ip,
            server_id: r.server_id,
            lease: r.lease_time,
            t1: r.renewal_time,
            t2: r.rebinding_time,
            mask: r.subnet_mask,
            router: r.router.and_then(|a| a.first()),
            dns: r.dns_servers.and_then(|a| a.first()),
            domain: r.domain_name.map(|d| d.to_vec()),
            mtu: r.interface_mtu,
            ntp: r.ntp_servers.is_some(),
            routes: r
                .classless_routes
                .map(|x| x.iter().collect())
                .unwrap_or_default(),
            client_id: r.client_id.map(|c| c.to_vec()),
            rapid: r.rapid_commit,
            len: b.len(),
        }
    }
}

fn xid(frame: &[u8]) -> u32 {
    wire::Packet::new_checked(payload(frame))
        .unwrap()
        .transaction_id()
}

#[test]
fn udhcpc_exchange() {
    let mut h = H::new(config());
    let (probed, r, offer) = h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(probed, ip(49));
    assert_eq!(offer.kind, MessageType::Offer);
    assert_eq!(offer.xid, xid(&UDHCPC_DISCOVER));
    assert_eq!(offer.yiaddr, ip(49));
    // No broadcast flag, no ciaddr: unicast to yiaddr and chaddr.
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
    assert_eq!(offer.server_id, Some(GW));
    assert_eq!(
        (offer.lease, offer.t1, offer.t2),
        (Some(3600), Some(1800), Some(3150))
    );
    assert_eq!(offer.mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!((offer.router, offer.dns), (Some(GW), Some(GW)));
    // udhcpc asks 1,3,6,12,15,28,42: domain and NTP, not MTU or routes.
    assert_eq!(offer.domain.as_deref(), Some(&b"eco.internal"[..]));
    assert!(offer.ntp);
    assert_eq!((offer.mtu, offer.routes.len()), (None, 0));
    // RFC 6842: the client id comes back.
    assert_eq!(offer.client_id.as_ref().map(|c| c.len()), Some(7));
    assert!(offer.len >= 300 && offer.len <= 548);

    let (r, ack) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
    assert!(h.s.take_dirty(h.wall), "a new allocation is persisted");
    assert_eq!(h.leases(), [(key("web"), None, ip(49), "web".to_string())]);
    let l = h.s.leases().next().unwrap();
    assert_eq!((l.mac, l.expires), (CLIENT, WALL0 + 3600));

    // Renewal: unicast to ciaddr; no write.
    h.advance(Duration::from_secs(1800));
    let (r, ack) = h.reply("web", CLIENT, payload(&UDHCPC_RENEW));
    assert_eq!(
        (ack.kind, ack.yiaddr, ack.ciaddr),
        (MessageType::Ack, ip(49), ip(49))
    );
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
    assert!(!h.s.take_dirty(h.wall), "renewals do not write");
    assert_eq!(h.s.leases().next().unwrap().expires, h.wall + 3600);

    // Release: the lease ends, the allocation stays; the next DISCOVER is offered the
    // same address at once, without a probe.
    assert_eq!(h.rx("web", CLIENT, payload(&UDHCPC_RELEASE)), None);
    assert!(h.leases().is_empty());
    assert_eq!(h.s.eco_address(&key("web")), Some(ip(49)));
    let (_, offer) = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(offer.yiaddr, ip(49));
    assert!(!h.s.take_dirty(h.wall));
}

/// The server itself says which leases it granted or ended: every ACK with an
/// address (renewals too), a valid RELEASE; not an OFFER, an INFORM, or a RELEASE
/// meant for another server or of an address the client does not hold.
#[test]
fn lease_changes_come_from_the_server() {
    use crate::dhcp::LeaseChange;
    let mut h = H::new(config());
    let granted = LeaseChange::Granted {
        endpoint: key("web"),
        mac: CLIENT,
        ip: ip(49),
    };
    let _ = h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(h.s.take_changes(), []);
    h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!(h.s.take_changes(), std::slice::from_ref(&granted));
    assert_eq!(h.s.take_changes(), [], "taken once");
    h.advance(Duration::from_secs(1800));
    h.reply("web", CLIENT, payload(&UDHCPC_RENEW));
    assert_eq!(h.s.take_changes(), [granted]);
    let elsewhere = edit(&UDHCPC_RELEASE, |r| {
        r.server_id = Some(Ipv4Addr::new(192, 0, 2, 99))
    });
    assert_eq!(h.rx("web", CLIENT, &elsewhere), None);
    let not_held = edit(&UDHCPC_RELEASE, |r| r.client_ip = ip(50));
    assert_eq!(h.rx("web", CLIENT, &not_held), None);
    assert_eq!(h.s.take_changes(), []);
    assert_eq!(h.rx("web", CLIENT, payload(&UDHCPC_RELEASE)), None);
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Ended {
            endpoint: key("web"),
            mac: CLIENT,
            ip: ip(49),
        }]
    );
}

#[test]
fn dhclient_exchange() {
    let mut h = H::new(config());
    let (_, _, offer) = h.discover_probed("web", CLIENT, payload(&DHCLIENT_DISCOVER));
    assert_eq!(offer.yiaddr, ip(49));
    // dhclient asks for 26 and 121: the routes carry a default route via the router
    // (a client taking 121 ignores option 3).
    assert_eq!(offer.mtu, Some(1400));
    assert_eq!(
        offer.routes,
        [
            Route {
                dest: "192.168.5.0/24".parse().unwrap(),
                gateway: GW
            },
            Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: GW
            }
        ]
    );
    assert_eq!(offer.client_id, None);
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCLIENT_REQUEST));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    // dhclient restarted with its lease file: INIT-REBOOT for the same address.
    let (r, ack) = h.reply("web", CLIENT, payload(&DHCLIENT_INIT_REBOOT));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
    assert_eq!(h.leases()[0].3, "plc", "dhclient sent host name plc");
    assert_eq!(h.rx("web", CLIENT, payload(&DHCLIENT_RELEASE)), None);
    assert!(h.leases().is_empty());
}

#[test]
fn dhcpcd_exchange_with_rapid_commit() {
    let mut h = H::new(config());
    // dhcpcd sends rapid commit: after the probe window, an ACK straight away.
    let (_, r, ack) = h.discover_probed("web", CLIENT, payload(&DHCPCD_DISCOVER));
    assert_eq!(
        (ack.kind, ack.yiaddr, ack.rapid),
        (MessageType::Ack, ip(49), true)
    );
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
    assert_eq!(ack.client_id.as_ref().map(|c| c.len()), Some(19));
    assert_eq!(h.leases().len(), 1);
    assert!(h.s.take_dirty(h.wall));
    // Its REQUEST (from the capture, where dnsmasq offered) is ACKed too.
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCPCD_REQUEST));
    assert_eq!(
        (ack.kind, ack.yiaddr, ack.rapid),
        (MessageType::Ack, ip(49), false)
    );
    let (r, ack) = h.reply("web", CLIENT, payload(&DHCPCD_RENEW));
    assert_eq!((ack.kind, r.dst_ip), (MessageType::Ack, ip(49)));
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCPCD_INIT_REBOOT));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    assert_eq!(h.leases()[0].3, "db");
    assert_eq!(h.rx("web", CLIENT, payload(&DHCPCD_RELEASE)), None);
    assert!(h.leases().is_empty());
    assert!(!h.s.take_dirty(h.wall));
    // Known identity, rapid commit: ACK at once, no probe.
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCPCD_DISCOVER));
    assert_eq!(
        (ack.kind, ack.yiaddr, ack.rapid),
        (MessageType::Ack, ip(49), true)
    );
}

#[test]
fn inform_gets_config_without_lease() {
    let mut h = H::new(config());
    let (r, ack) = h.reply("web", CLIENT, payload(&DHCPCD_INFORM));
    assert_eq!(ack.kind, MessageType::Ack);
    assert_eq!((ack.yiaddr, ack.ciaddr), (Ipv4Addr::UNSPECIFIED, ip(60)));
    assert_eq!((ack.lease, ack.t1, ack.t2), (None, None, None));
    assert_eq!((ack.router, ack.dns), (Some(GW), Some(GW)));
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(60)));
    assert!(h.leases().is_empty());
    assert_eq!(h.s.allocations(), 1, "only plc's static");
    // Not our subnet: silence.
    let other = edit(&DHCPCD_INFORM, |r| {
        r.client_ip = Ipv4Addr::new(192, 168, 1, 2)
    });
    assert_eq!(h.rx("web", CLIENT, &other), None);
}

#[test]
fn static_ip_wins_and_is_offered_at_once() {
    let mut h = H::new(config());
    // The same client MAC is plc's ECO MAC on plc's endpoint.
    let (_, offer) = h.reply("plc", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!((offer.kind, offer.yiaddr), (MessageType::Offer, ip(5)));
    // A REQUEST for another address is NAKed, broadcast.
    let (r, nak) = h.reply("plc", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!(nak.kind, MessageType::Nak);
    assert_eq!(
        (r.dst_mac, r.dst_ip),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    );
    assert_eq!((nak.lease, nak.yiaddr), (None, Ipv4Addr::UNSPECIFIED));
    let req = edit(&UDHCPC_REQUEST, |r| r.requested_ip = Some(ip(5)));
    let (_, ack) = h.reply("plc", CLIENT, &req);
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(5)));
    assert_eq!(h.leases(), [(key("plc"), None, ip(5), "web".to_string())]);
    assert!(!h.s.take_dirty(h.wall), "statics are config, not state");
    assert!(!String::from_utf8(h.s.snapshot())
        .unwrap()
        .contains("10.9.0.5 "));
    // A DECLINE of a static changes nothing.
    let dec = edit(&UDHCPC_DECLINE, |r| r.requested_ip = Some(ip(5)));
    assert_eq!(h.rx("plc", CLIENT, &dec), None);
    assert_eq!(h.s.eco_address(&key("plc")), Some(ip(5)));
}

#[test]
fn broadcast_flag_gets_broadcast_replies() {
    let mut h = H::new(config());
    let d = edit(&UDHCPC_DISCOVER, |r| r.broadcast = true);
    let (_, r, _) = h.discover_probed("web", CLIENT, &d);
    assert_eq!(
        (r.dst_mac, r.dst_ip),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    );
    // ciaddr beats the flag (RFC 2131 §4.1).
    let (_, _) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    let n = edit(&UDHCPC_RENEW, |r| r.broadcast = true);
    let (r, _) = h.reply("web", CLIENT, &n);
    assert_eq!((r.dst_mac, r.dst_ip), (CLIENT, ip(49)));
}

#[test]
fn init_reboot_cases() {
    let mut h = H::new(config());
    // No record of this client: silence (RFC 2131 §4.3.2).
    assert_eq!(h.rx("web", CLIENT, payload(&DHCLIENT_INIT_REBOOT)), None);
    // Wrong subnet: NAK even without a record.
    let wrong = edit(&DHCLIENT_INIT_REBOOT, |r| {
        r.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 9))
    });
    let (_, nak) = h.reply("web", CLIENT, &wrong);
    assert_eq!(nak.kind, MessageType::Nak);
    // Known client asking for an address that is not its own: NAK.
    h.discover_probed("web", CLIENT, payload(&DHCLIENT_DISCOVER));
    h.reply("web", CLIENT, payload(&DHCLIENT_REQUEST));
    let other = edit(&DHCLIENT_INIT_REBOOT, |r| r.requested_ip = Some(ip(50)));
    let (_, nak) = h.reply("web", CLIENT, &other);
    assert_eq!(nak.kind, MessageType::Nak);
    // Its own: ACK.
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCLIENT_INIT_REBOOT));
    assert_eq!(ack.kind, MessageType::Ack);
}

#[test]
fn renewing_without_record_adopts_a_free_address() {
    let mut h = H::new(config());
    // A client renewing an address we have no record of (lost state): free, so ours.
    let (_, ack) = h.reply("web", CLIENT, payload(&DHCPCD_RENEW));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    assert!(h.s.take_dirty(h.wall));
    // Another ECO renewing the same address: taken, NAK.
    let mut c = config();
    c.endpoints.push(endpoint("db", mac(4), None));
    h.s.update_config(c);
    let (_, nak) = h.reply("db", mac(4), payload(&DHCPCD_RENEW));
    assert_eq!(nak.kind, MessageType::Nak);
    // Renewing from outside the range: NAK.
    let out = edit(&DHCPCD_RENEW, |r| r.client_ip = ip(20));
    let (_, nak) = h.reply("db", mac(4), &out);
    assert_eq!(nak.kind, MessageType::Nak);
}

#[test]
fn request_for_another_server_is_ignored_and_ends_the_offer() {
    let mut h = H::new(config());
    h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    let elsewhere = edit(&UDHCPC_REQUEST, |r| {
        r.server_id = Some(Ipv4Addr::new(10, 9, 0, 2))
    });
    assert_eq!(h.rx("web", CLIENT, &elsewhere), None);
    // The offered address is free again: another ECO gets it.
    let mut c = config();
    c.endpoints.push(endpoint("db", mac(4), None));
    h.s.update_config(c);
    let d = edit(&UDHCPC_DISCOVER, |r| r.client_hardware_addr = mac(4));
    let (probed, _, _) = h.discover_probed("db", mac(4), &d);
    assert_eq!(probed, ip(49));
}

#[test]
fn ignored_messages() {
    let mut h = H::new(config());
    let p = payload(&UDHCPC_DISCOVER);
    // Not from an ECO endpoint, or from an unknown one.
    let rx = Rx {
        endpoint: None,
        src_mac: CLIENT,
        src_ip: Ipv4Addr::UNSPECIFIED,
        payload: p,
    };
    assert_eq!(h.s.handle(h.now, h.wall, rx, &mut h.buf), None);
    assert_eq!(h.rx("nobody", CLIENT, p), None);
    // Relayed, server messages, multicast sources.
    let relayed = edit(&UDHCPC_DISCOVER, |r| r.relay_agent_ip = ip(2));
    assert_eq!(h.rx("web", CLIENT, &relayed), None);
    assert_eq!(h.rx("web", CLIENT, payload_of_reply(&DNSMASQ_OFFER)), None);
    assert_eq!(h.rx("web", MacAddr::BROADCAST, p), None);
    assert_eq!(h.s.poll_timeout(), None, "nothing was started");
}

fn payload_of_reply(frame: &[u8]) -> &[u8] {
    &frame[frame::PAYLOAD_OFFSET..]
}

#[test]
fn small_buffer_changes_nothing() {
    let mut h = H::new(config());
    h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    let k = key("web");
    let rx = Rx {
        endpoint: Some(&k),
        src_mac: CLIENT,
        src_ip: Ipv4Addr::UNSPECIFIED,
        payload: payload(&UDHCPC_REQUEST),
    };
    let mut small = [0u8; 200];
    assert_eq!(h.s.handle(h.now, h.wall, rx, &mut small), None);
    assert!(h.leases().is_empty());
    assert!(!h.s.take_dirty(h.wall));
    let (_, ack) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!(ack.kind, MessageType::Ack);
}

#[test]
fn max_message_size_sheds_optional_options() {
    let mut c = config();
    // 30 routes: 270 bytes of option 121, too much for 576.
    c.routes = (0..30)
        .map(|i| Route {
            dest: Ipv4Net::new(Ipv4Addr::new(172, 16, i, 0), 24).unwrap(),
            gateway: GW,
        })
        .collect();
    let mut h = H::new(c);
    let (_, _, offer) = h.discover_probed("web", CLIENT, payload(&DHCLIENT_DISCOVER));
    assert!(offer.routes.is_empty());
    assert!(offer.len <= 548);
    let big = edit(&DHCLIENT_DISCOVER, |r| r.max_message_size = Some(1500));
    let (_, offer) = h.reply("web", CLIENT, &big);
    assert_eq!(offer.routes.len(), 31);
}

/// `n` ECO endpoints named e0.. with MACs 02:..:(10+i).
fn with_ecos(mut c: Config, n: u8) -> Config {
    for i in 0..n {
        c.endpoints
            .push(endpoint(&format!("e{i}"), mac(10 + i), None));
    }
    c
}

/// DISCOVER + REQUEST for ECO `e{i}` with probes off; returns the address.
fn lease_eco(h: &mut H, i: u8) -> Option<Ipv4Addr> {
    let ep = format!("e{i}");
    let d = edit(&UDHCPC_DISCOVER, |r| {
        r.client_hardware_addr = mac(10 + i);
        r.client_id = None;
    });
    let offer = match h.rx(&ep, mac(10 + i), &d)? {
        Output::Reply(r) => Msg::new(&h.buf[..r.payload_len]),
        Output::Probe(_) => panic!("probes are off"),
    };
    let q = edit(&UDHCPC_REQUEST, |r| {
        r.client_hardware_addr = mac(10 + i);
        r.client_id = None;
        r.requested_ip = Some(offer.yiaddr);
    });
    let (_, ack) = h.reply(&ep, mac(10 + i), &q);
    assert_eq!(ack.kind, MessageType::Ack);
    Some(ack.yiaddr)
}

fn release_eco(h: &mut H, i: u8, a: Ipv4Addr) {
    let rel = edit(&UDHCPC_RELEASE, |r| {
        r.client_hardware_addr = mac(10 + i);
        r.client_id = None;
        r.client_ip = a;
    });
    assert_eq!(h.rx(&format!("e{i}"), mac(10 + i), &rel), None);
}

fn small_pool(n: u8) -> Config {
    let mut c = config();
    c.range_start = ip(49);
    c.range_end = ip(48 + n);
    c.probe_window = Duration::ZERO;
    c
}

#[test]
fn exhaustion_means_no_offer_and_nak() {
    let mut h = H::new(with_ecos(small_pool(3), 4));
    let got: Vec<_> = (0..3).map(|i| lease_eco(&mut h, i).unwrap()).collect();
    assert_eq!(got, [ip(49), ip(50), ip(51)]);
    // All leased: nothing for the fourth.
    assert_eq!(lease_eco(&mut h, 3), None);
    let q = edit(&UDHCPC_REQUEST, |r| {
        r.client_hardware_addr = mac(13);
        r.client_id = None;
        r.requested_ip = Some(ip(50));
    });
    let (_, nak) = h.reply("e3", mac(13), &q);
    assert_eq!(nak.kind, MessageType::Nak);
    // Never the gateway, network, broadcast or a static, even with a range over all.
    let mut c = with_ecos(config(), 4);
    c.range_start = ip(0);
    c.range_end = ip(255);
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c);
    let got: Vec<_> = (0..4).map(|i| lease_eco(&mut h, i).unwrap()).collect();
    assert_eq!(got, [ip(2), ip(3), ip(4), ip(6)]);
}

#[test]
fn lru_reuse_prefers_identities_gone_from_the_config() {
    let mut h = H::new(with_ecos(small_pool(2), 3));
    let a0 = lease_eco(&mut h, 0).unwrap();
    h.advance(Duration::from_secs(10));
    let a1 = lease_eco(&mut h, 1).unwrap();
    // Active leases are never reused.
    assert_eq!(lease_eco(&mut h, 2), None);
    release_eco(&mut h, 0, a0);
    h.advance(Duration::from_secs(10));
    release_eco(&mut h, 1, a1);
    // Both idle, both in the config: the least recently used (e0) goes.
    assert_eq!(lease_eco(&mut h, 2), Some(a0));
    assert!(h.s.take_dirty(h.wall), "a reassignment is persisted");
    assert_eq!(h.s.eco_address(&key("e0")), None);
    assert_eq!(h.s.eco_address(&key("e1")), Some(a1));

    // Now e0 is back, e1 leaves the config though it was used more recently than e2's
    // lease; e2 releases. e1's allocation is reused first.
    let mut h = H::new(with_ecos(small_pool(2), 3));
    let a0 = lease_eco(&mut h, 0).unwrap();
    let a1 = lease_eco(&mut h, 1).unwrap();
    h.advance(Duration::from_secs(10));
    release_eco(&mut h, 0, a0);
    h.advance(Duration::from_secs(10));
    release_eco(&mut h, 1, a1);
    let mut c = with_ecos(small_pool(2), 3);
    c.endpoints.retain(|e| e.key != key("e1"));
    h.s.update_config(c);
    assert_eq!(lease_eco(&mut h, 2), Some(a1));
    assert_eq!(h.s.eco_address(&key("e0")), Some(a0));
}

#[test]
fn allocations_outlive_apps_until_needed() {
    let mut h = H::new(with_ecos(small_pool(4), 2));
    let a0 = lease_eco(&mut h, 0).unwrap();
    release_eco(&mut h, 0, a0);
    // e0 leaves the config and comes back (a redeploy): same address.
    let mut c = with_ecos(small_pool(4), 2);
    c.endpoints.retain(|e| e.key != key("e0"));
    h.s.update_config(c);
    assert_eq!(
        lease_eco(&mut h, 1),
        Some(ip(50)),
        "free addresses go first"
    );
    h.s.update_config(with_ecos(small_pool(4), 2));
    assert_eq!(lease_eco(&mut h, 0), Some(a0));
}

#[test]
fn victim_owner_returning_wins() {
    let mut h = H::new(with_ecos(small_pool(1), 2));
    let a0 = lease_eco(&mut h, 0).unwrap();
    release_eco(&mut h, 0, a0);
    // e1 is offered e0's idle allocation...
    let d = edit(&UDHCPC_DISCOVER, |r| {
        r.client_hardware_addr = mac(11);
        r.client_id = None;
    });
    h.s.take_dirty(h.wall);
    let (_, offer) = h.reply("e1", mac(11), &d);
    assert_eq!(offer.yiaddr, a0);
    assert!(!h.s.take_dirty(h.wall), "an offer takes nothing yet");
    // ...but e0 comes back first and keeps it.
    assert_eq!(lease_eco(&mut h, 0), Some(a0));
    let q = edit(&UDHCPC_REQUEST, |r| {
        r.client_hardware_addr = mac(11);
        r.client_id = None;
        r.requested_ip = Some(a0);
    });
    let (_, nak) = h.reply("e1", mac(11), &q);
    assert_eq!(nak.kind, MessageType::Nak);
    assert_eq!(h.s.eco_address(&key("e0")), Some(a0));
    // An offer that is never taken leaves the victim in place.
    release_eco(&mut h, 0, a0);
    let (_, offer) = h.reply("e1", mac(11), &d);
    assert_eq!(offer.yiaddr, a0);
    h.advance(Duration::from_secs(31));
    h.poll_all();
    assert_eq!(h.s.eco_address(&key("e0")), Some(a0));
    assert_eq!(lease_eco(&mut h, 0), Some(a0));
}

/// A guest behind `vm`: its own MAC, client id `id`.
fn guest_discover(m: MacAddr, id: Option<u8>) -> Vec<u8> {
    let cid = id.map(|i| vec![0xff, 0, 0, 0, i, 0, 1]);
    let mut v = payload(&DHCPCD_DISCOVER).to_vec();
    v = edit_bytes(&v, |r| {
        r.client_hardware_addr = m;
        r.rapid_commit = false;
    });
    if let Some(c) = cid {
        v = set_client_id(&v, &c);
    } else {
        v = edit_bytes(&v, |r| r.client_id = None);
    }
    v
}

fn edit_bytes<'a>(b: &'a [u8], f: impl FnOnce(&mut wire::Repr<'a>)) -> Vec<u8> {
    let pkt = wire::Packet::new_checked(b).unwrap();
    let mut r = wire::Repr::parse(&pkt).unwrap();
    f(&mut r);
    let mut out = vec![0; r.buffer_len()];
    r.emit(&mut wire::Packet::new_unchecked(&mut out[..]))
        .unwrap();
    out
}

fn set_client_id<'a>(b: &'a [u8], id: &'a [u8]) -> Vec<u8> {
    edit_bytes(b, |r| r.client_id = Some(id))
}

fn to_request(discover: &[u8], offered: Ipv4Addr) -> Vec<u8> {
    edit_bytes(discover, |r| {
        r.message_type = MessageType::Request;
        r.requested_ip = Some(offered);
        r.server_id = Some(GW);
    })
}

#[test]
fn guests_are_keyed_by_client_id_and_limited_per_endpoint() {
    let mut c = config();
    c.max_leases_per_endpoint = 2;
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c);
    let mut got = Vec::new();
    for i in 1..=2u8 {
        let d = guest_discover(mac(100 + i), Some(i));
        let (_, offer) = h.reply("vm", mac(100 + i), &d);
        let (_, ack) = h.reply("vm", mac(100 + i), &to_request(&d, offer.yiaddr));
        assert_eq!(ack.kind, MessageType::Ack);
        got.push(ack.yiaddr);
    }
    assert_ne!(got[0], got[1]);
    // A third guest: no offer (starvation guard), not even with a requested address.
    let d3 = guest_discover(mac(103), Some(3));
    assert_eq!(h.rx("vm", mac(103), &d3), None);
    let (_, nak) = h.reply("vm", mac(103), &to_request(&d3, ip(55)));
    assert_eq!(nak.kind, MessageType::Nak);
    // The ECO behind the same endpoint is not a guest and not limited.
    let eco = guest_discover(mac(3), Some(9));
    let (_, offer) = h.reply("vm", mac(3), &eco);
    assert_eq!(offer.kind, MessageType::Offer);
    // Same client id from another MAC: same identity, same address.
    let moved = guest_discover(mac(110), Some(1));
    let (_, offer) = h.reply("vm", mac(110), &moved);
    assert_eq!(offer.yiaddr, got[0]);
    // Without client ids, chaddr is the key.
    let mut h2 = H::new(config());
    h2.s.update_config({
        let mut c = config();
        c.probe_window = Duration::ZERO;
        c
    });
    let a = guest_discover(mac(120), None);
    let (_, o1) = h2.reply("vm", mac(120), &a);
    let (_, _) = h2.reply("vm", mac(120), &to_request(&a, o1.yiaddr));
    let (_, o2) = h2.reply("vm", mac(120), &a);
    assert_eq!(o1.yiaddr, o2.yiaddr);
    let lease = h2.leases();
    assert_eq!(lease[0].1, Some(ClientKey::Mac(mac(120))));
    assert_eq!(lease[0].3, "db", "option 12 from the guest");
    // A guest's lease ending makes room.
    h.advance(Duration::from_secs(3601));
    h.poll_all();
    assert!(h.leases().is_empty());
    assert!(matches!(h.rx("vm", mac(103), &d3), Some(Output::Reply(_))));
}

#[test]
fn guest_offers_count_against_the_limit() {
    let mut c = config();
    c.max_leases_per_endpoint = 1;
    let mut h = H::new(c);
    let d1 = guest_discover(mac(101), Some(1));
    assert!(matches!(h.rx("vm", mac(101), &d1), Some(Output::Probe(_))));
    let d2 = guest_discover(mac(102), Some(2));
    assert_eq!(h.rx("vm", mac(102), &d2), None);
    // Once the first probe and offer have lapsed, the second gets its turn.
    h.now += Duration::from_millis(50);
    assert_eq!(h.poll_all().len(), 1, "the first guest's offer");
    h.advance(Duration::from_secs(31));
    h.poll_all();
    assert!(matches!(h.rx("vm", mac(102), &d2), Some(Output::Probe(_))));
}

#[test]
fn decline_marks_the_address_bad_for_a_while() {
    let mut c = config();
    c.range_start = ip(77);
    c.range_end = ip(80);
    let mut h = H::new(c);
    let (probed, _, _) = h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(probed, ip(77));
    let q = edit(&UDHCPC_REQUEST, |r| r.requested_ip = Some(ip(77)));
    let (_, ack) = h.reply("web", CLIENT, &q);
    assert_eq!(ack.yiaddr, ip(77));
    assert!(h.s.take_dirty(h.wall));
    // udhcpc found 10.9.0.77 in use (the captured DECLINE).
    assert_eq!(h.rx("web", CLIENT, payload(&UDHCPC_DECLINE)), None);
    assert!(h.s.take_dirty(h.wall), "a DECLINE is persisted");
    assert!(h.leases().is_empty());
    assert_eq!(h.s.eco_address(&key("web")), None);
    // A new address next time, after a probe.
    let (probed, _, offer) = h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!((probed, offer.yiaddr), (ip(78), ip(78)));
    // A REQUEST for the bad one is refused; the new one is taken.
    let (_, nak) = h.reply("web", CLIENT, &q);
    assert_eq!(nak.kind, MessageType::Nak);
    let q78 = edit(&UDHCPC_REQUEST, |r| r.requested_ip = Some(ip(78)));
    let (_, ack) = h.reply("web", CLIENT, &q78);
    assert_eq!(ack.yiaddr, ip(78));
    // The hold ends: 77 is back in the pool.
    h.advance(Duration::from_secs(601));
    h.poll_all();
    let mut c = h.s.config().clone();
    c.endpoints.push(endpoint("db", mac(4), None));
    h.s.update_config(c);
    let d = edit(&UDHCPC_DISCOVER, |r| r.client_hardware_addr = mac(4));
    let (probed, _, _) = h.discover_probed("db", mac(4), &d);
    assert_eq!(probed, ip(77));
    // A DECLINE from someone else's identity or for another server is ignored.
    let mut h = H::new(config());
    h.discover_probed("web", CLIENT, payload(&UDHCPC_DISCOVER));
    h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    let other_server = edit(&UDHCPC_DECLINE, |r| {
        r.requested_ip = Some(ip(49));
        r.server_id = Some(ip(2));
    });
    assert_eq!(h.rx("web", CLIENT, &other_server), None);
    let dec = edit(&UDHCPC_DECLINE, |r| r.requested_ip = Some(ip(49)));
    assert_eq!(h.rx("vm", mac(77), &dec), None);
    assert_eq!(h.s.eco_address(&key("web")), Some(ip(49)));
}

#[test]
fn arp_conflict_during_probe_picks_another() {
    let mut h = H::new(config());
    let probed = match h.rx("web", CLIENT, payload(&UDHCPC_DISCOVER)) {
        Some(Output::Probe(a)) => a,
        o => panic!("{o:?}"),
    };
    assert_eq!(probed, ip(49));
    // The client's own ARP does not count.
    assert_eq!(h.s.handle_arp(h.now, CLIENT, ip(49)), None);
    // Someone else answers: another address is probed.
    let next =
        h.s.handle_arp(h.now + Duration::from_millis(5), mac(200), ip(49));
    assert_eq!(next, Some(Output::Probe(ip(50))));
    h.now += Duration::from_millis(60);
    let out = h.poll_all();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.as_ref().unwrap().yiaddr, ip(50));
    let q = edit(&UDHCPC_REQUEST, |r| r.requested_ip = Some(ip(50)));
    let (_, ack) = h.reply("web", CLIENT, &q);
    assert_eq!(ack.yiaddr, ip(50));
    // A claim on a free pool address keeps it out of offers; not on the gateway.
    assert_eq!(h.s.handle_arp(h.now, mac(201), ip(51)), None);
    assert_eq!(h.s.handle_arp(h.now, mac(201), GW), None);
    let mut c = h.s.config().clone();
    c.endpoints.push(endpoint("db", mac(4), None));
    h.s.update_config(c);
    let d = edit(&UDHCPC_DISCOVER, |r| r.client_hardware_addr = mac(4));
    let (probed, _, _) = h.discover_probed("db", mac(4), &d);
    assert_eq!(probed, ip(52), "49 held (conflict), 50 taken, 51 claimed");
}

#[test]
fn arp_conflict_after_offer_ends_it() {
    let mut c = config();
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c);
    let (_, offer) = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(h.s.handle_arp(h.now, mac(200), offer.yiaddr), None);
    let (_, nak) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!(nak.kind, MessageType::Nak);
    let (_, offer2) = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_ne!(offer2.yiaddr, offer.yiaddr);
}

#[test]
fn probing_gives_up_after_a_few_conflicts() {
    let mut h = H::new(config());
    let mut cur = match h.rx("web", CLIENT, payload(&UDHCPC_DISCOVER)) {
        Some(Output::Probe(a)) => a,
        o => panic!("{o:?}"),
    };
    let mut probes = 1;
    while let Some(Output::Probe(a)) = h.s.handle_arp(h.now, mac(200), cur) {
        cur = a;
        probes += 1;
        assert!(probes < 10);
    }
    assert_eq!(probes, 4);
    h.now += Duration::from_secs(1);
    assert!(h.poll_all().is_empty());
    // The client retries: a fresh DISCOVER probes again.
    assert!(matches!(
        h.rx("web", CLIENT, payload(&UDHCPC_DISCOVER)),
        Some(Output::Probe(_))
    ));
}

#[test]
fn retransmitted_discover_while_probing_is_quiet() {
    let mut h = H::new(config());
    assert!(matches!(
        h.rx("web", CLIENT, payload(&UDHCPC_DISCOVER)),
        Some(Output::Probe(_))
    ));
    assert_eq!(h.rx("web", CLIENT, payload(&UDHCPC_DISCOVER)), None);
    h.now += Duration::from_millis(50);
    assert_eq!(h.poll_all().len(), 1);
    // Offered: a retransmission is answered with the same offer at once.
    let (_, offer) = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    assert_eq!(offer.yiaddr, ip(49));
}

/// A DISCOVER without a requested address.
fn fresh_discover() -> Vec<u8> {
    edit(&UDHCPC_DISCOVER, |r| r.requested_ip = None)
}

#[test]
fn prepared_eco_is_offered_at_once() {
    let mut h = H::new(config());
    assert_eq!(h.s.prepare(h.now, &key("web")), Some(Output::Probe(ip(49))));
    // Once per endpoint; never for a static ECO or an unknown endpoint.
    assert_eq!(h.s.prepare(h.now, &key("web")), None);
    assert_eq!(h.s.prepare(h.now, &key("plc")), None);
    assert_eq!(h.s.prepare(h.now, &key("nope")), None);
    h.s.check_invariants();
    // The window passes unanswered: nothing is sent.
    h.now += Duration::from_millis(50);
    assert!(h.poll_all().is_empty());
    h.s.check_invariants();
    // Someone else must not get it meanwhile.
    let d = edit(&UDHCPC_DISCOVER, |r| {
        r.client_hardware_addr = mac(3);
        r.requested_ip = Some(ip(49));
    });
    let (p, _, _) = h.discover_probed("vm", mac(3), &d);
    assert_eq!(p, ip(50));
    // The ECO's first DISCOVER is offered the probed address at once.
    let (_, offer) = h.reply("web", CLIENT, &fresh_discover());
    assert_eq!((offer.kind, offer.yiaddr), (MessageType::Offer, ip(49)));
    let (_, ack) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ip(49)));
    h.s.check_invariants();
    // With an address, nothing more to prepare.
    let mut c = h.s.config().clone();
    c.endpoints.push(endpoint("db", mac(4), None));
    h.s.update_config(c);
    assert_eq!(h.s.prepare(h.now, &key("web")), None);
    // (The guest's offer of .50 ended with the config change.)
    assert_eq!(h.s.prepare(h.now, &key("db")), Some(Output::Probe(ip(50))));
}

#[test]
fn prepared_eco_discovering_during_the_window_gets_the_offer_after_it() {
    let mut h = H::new(config());
    assert!(h.s.prepare(h.now, &key("web")).is_some());
    h.now += Duration::from_millis(20);
    assert_eq!(h.rx("web", CLIENT, &fresh_discover()), None);
    h.s.check_invariants();
    h.now += Duration::from_millis(30);
    let out = h.poll_all();
    assert_eq!(out.len(), 1, "{out:?}");
    let m = out[0].1.as_ref().unwrap();
    assert_eq!((m.kind, m.yiaddr), (MessageType::Offer, ip(49)));
    h.s.check_invariants();
}

#[test]
fn prepared_address_claimed_by_another_host_is_not_offered() {
    let mut h = H::new(config());
    assert_eq!(h.s.prepare(h.now, &key("web")), Some(Output::Probe(ip(49))));
    // The ECO's own ARP does not count; another host's answer moves on.
    assert_eq!(h.s.handle_arp(h.now, CLIENT, ip(49)), None);
    assert_eq!(
        h.s.handle_arp(h.now, mac(200), ip(49)),
        Some(Output::Probe(ip(50)))
    );
    h.s.check_invariants();
    h.now += Duration::from_millis(50);
    assert!(h.poll_all().is_empty());
    let (_, offer) = h.reply("web", CLIENT, &fresh_discover());
    assert_eq!(offer.yiaddr, ip(50));
    // A claim after the window ends the preparation, as it ends an offer.
    let mut h = H::new(config());
    assert!(h.s.prepare(h.now, &key("web")).is_some());
    h.now += Duration::from_millis(50);
    h.poll_all();
    assert_eq!(h.s.handle_arp(h.now, mac(200), ip(49)), None);
    h.s.check_invariants();
    let (p, _, offer) = h.discover_probed("web", CLIENT, &fresh_discover());
    assert_eq!((p, offer.yiaddr), (ip(50), ip(50)));
}

#[test]
fn preparation_expires_and_yields_to_a_requested_address() {
    let mut h = H::new(config());
    assert!(h.s.prepare(h.now, &key("web")).is_some());
    h.now += Duration::from_millis(50);
    h.poll_all();
    // Asking for another free address: as if nothing had been prepared.
    let d = edit(&UDHCPC_DISCOVER, |r| r.requested_ip = Some(ip(55)));
    let (p, _, offer) = h.discover_probed("web", CLIENT, &d);
    assert_eq!((p, offer.yiaddr), (ip(55), ip(55)));
    h.s.check_invariants();
    // Not asked within the hold: the address goes back, the next DISCOVER probes.
    let mut h = H::new(config());
    assert!(h.s.prepare(h.now, &key("web")).is_some());
    h.now += Duration::from_millis(50);
    h.poll_all();
    h.now += server::PREPARED_HOLD;
    assert!(h.poll_all().is_empty());
    h.s.check_invariants();
    let (p, _, _) = h.discover_probed("web", CLIENT, &fresh_discover());
    assert_eq!(p, ip(49));
    // No probe window: nothing to prepare.
    let mut c = config();
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c);
    assert_eq!(h.s.prepare(h.now, &key("web")), None);
}

#[test]
fn update_config_keeps_allocations_and_statics_win() {
    let mut c = with_ecos(small_pool(6), 3);
    c.range_end = ip(60);
    let mut h = H::new(c.clone());
    let a: Vec<_> = (0..3).map(|i| lease_eco(&mut h, i).unwrap()).collect();
    assert_eq!(a, [ip(49), ip(50), ip(51)]);
    h.s.take_dirty(h.wall);
    // Same config: nothing changes.
    h.s.update_config(c.clone());
    assert!(!h.s.take_dirty(h.wall));
    assert_eq!(h.leases().len(), 3);
    // e1 gets a static (its dynamic allocation goes); another static lands on e2's
    // address (e2's allocation goes); the range shrinks past e0? No: to 49..=55.
    let mut c2 = c.clone();
    c2.range_end = ip(55);
    for e in c2.endpoints.iter_mut() {
        if e.key == key("e1") {
            e.static_ip = Some(ip(7));
        }
        if e.key == key("vm") {
            e.static_ip = Some(ip(51));
        }
    }
    h.s.update_config(c2.clone());
    assert!(h.s.take_dirty(h.wall));
    assert_eq!(h.s.eco_address(&key("e0")), Some(ip(49)));
    assert_eq!(h.s.eco_address(&key("e1")), Some(ip(7)));
    assert_eq!(h.s.eco_address(&key("e2")), None);
    assert_eq!(h.s.eco_address(&key("vm")), Some(ip(51)));
    // The range moves away from e0's address: dropped.
    let mut c3 = c2.clone();
    c3.range_start = ip(52);
    h.s.update_config(c3);
    assert_eq!(h.s.eco_address(&key("e0")), None);
    // e0's renewal is now NAKed.
    let n = edit(&UDHCPC_RENEW, |r| {
        r.client_hardware_addr = mac(10);
        r.client_id = None;
        r.client_ip = ip(49);
    });
    let (_, nak) = h.reply("e0", mac(10), &n);
    assert_eq!(nak.kind, MessageType::Nak);
}

#[test]
fn restore_after_restart_gives_the_same_address() {
    let mut h = H::new(with_ecos(small_pool(8), 3));
    let a: Vec<_> = (0..3).map(|i| lease_eco(&mut h, i).unwrap()).collect();
    // Guests too.
    let g = guest_discover(mac(150), Some(7));
    let (_, o) = h.reply("vm", mac(150), &g);
    let (_, _) = h.reply("vm", mac(150), &to_request(&g, o.yiaddr));
    let snap = h.s.snapshot();
    // Restart (a reboot): a new server, same config, later.
    let mut h2 = H::new(with_ecos(small_pool(8), 3));
    h2.wall = h.wall + 600;
    assert_eq!(h2.s.restore(&snap, h2.now, h2.wall), 4);
    assert!(!h2.s.take_dirty(h2.wall));
    for (i, want) in a.iter().enumerate() {
        assert_eq!(h2.s.eco_address(&key(&format!("e{i}"))), Some(*want));
        // Known: offered at once (no probe), the same address.
        assert_eq!(lease_eco(&mut h2, i as u8), Some(*want));
    }
    let (_, o2) = h2.reply("vm", mac(150), &g);
    assert_eq!(o2.yiaddr, o.yiaddr);
    // Presumed leases are not shown but hold their addresses until they surely ended.
    assert_eq!(h2.leases().len(), 3);
    let mut c = with_ecos(small_pool(4), 5);
    c.probe_window = Duration::ZERO;
    let mut h3 = H::new(c);
    h3.s.restore(&snap, h3.now, h.wall + 60);
    assert_eq!(lease_eco(&mut h3, 3), None, "all four held");
    h3.advance(Duration::from_secs(3600 + 3600 + 1));
    h3.poll_all();
    assert!(lease_eco(&mut h3, 3).is_some(), "holds ended: reuse");
}

#[test]
fn restore_drops_what_no_longer_fits() {
    let mut h = H::new(with_ecos(small_pool(8), 3));
    for i in 0..3 {
        lease_eco(&mut h, i);
    }
    let mut text = String::from_utf8(h.s.snapshot()).unwrap();
    text.push_str("garbage line\n10.99.0.5 1 02:00:00:00:00:01 eco app-x eth0 x\n");
    text.push_str("10.9.0.1 1 02:00:00:00:00:01 eco app-y eth0 y\n");
    text.push_str("10.9.0.49 1 02:00:00:00:00:01 eco app-z eth0 dup\n");
    // Subnet moved: everything is out.
    let mut c = with_ecos(small_pool(8), 3);
    c.subnet = "10.8.0.0/24".parse().unwrap();
    c.gateway = Ipv4Addr::new(10, 8, 0, 1);
    c.range_start = Ipv4Addr::new(10, 8, 0, 10);
    c.range_end = Ipv4Addr::new(10, 8, 0, 20);
    let mut h2 = H::new(c);
    assert_eq!(h2.s.restore(text.as_bytes(), h2.now, h2.wall), 0);
    assert!(h2.s.take_dirty(h2.wall), "the file should be rewritten");
    // Same subnet: the three good lines only.
    let mut h3 = H::new(with_ecos(small_pool(8), 3));
    assert_eq!(h3.s.restore(text.as_bytes(), h3.now, h3.wall), 3);
    // An ECO that now has a static drops its allocation.
    let mut c = with_ecos(small_pool(8), 3);
    c.endpoints[3].static_ip = Some(ip(8)); // e0
    let mut h4 = H::new(c);
    // (and the duplicate line for .49 then finds the address free)
    assert_eq!(h4.s.restore(text.as_bytes(), h4.now, h4.wall), 3);
    assert_eq!(h4.s.eco_address(&key("e0")), Some(ip(8)));
    // Garbage files never panic.
    for junk in [
        &b""[..],
        b"\n\n\n",
        b"econet-dhcp-leases 1",
        b"\xff\x00\xfe",
        &[b'\n'; 10],
    ] {
        let mut h5 = H::new(config());
        assert_eq!(h5.s.restore(junk, h5.now, h5.wall), 0);
    }
}

#[test]
fn last_used_times_are_flushed_at_most_hourly() {
    let mut h = H::new(with_ecos(small_pool(4), 1));
    let a = lease_eco(&mut h, 0).unwrap();
    assert!(h.s.take_dirty(h.wall));
    let renew = edit(&UDHCPC_RENEW, |r| {
        r.client_hardware_addr = mac(10);
        r.client_id = None;
        r.client_ip = a;
    });
    for _ in 0..5 {
        h.advance(Duration::from_secs(600));
        h.reply("e0", mac(10), &renew);
        assert!(!h.s.take_dirty(h.wall), "renewal at {}", h.wall - WALL0);
    }
    h.advance(Duration::from_secs(601));
    h.reply("e0", mac(10), &renew);
    assert!(h.s.take_dirty(h.wall), "an hour after the last write");
    assert!(!h.s.take_dirty(h.wall));
    assert!(!h.s.has_unsaved());
    h.reply("e0", mac(10), &renew);
    h.advance(Duration::from_secs(1));
    h.reply("e0", mac(10), &renew);
    assert!(h.s.has_unsaved());
    let snap = String::from_utf8(h.s.snapshot()).unwrap();
    assert!(snap.contains(&format!(" {} ", h.wall)), "{snap}");
}

#[test]
fn lease_expiry_runs_from_poll() {
    let mut h = H::new(with_ecos(small_pool(4), 1));
    lease_eco(&mut h, 0);
    assert_eq!(h.leases().len(), 1);
    let t = h.s.poll_timeout().unwrap();
    assert_eq!(t, h.now + Duration::from_secs(3600));
    h.now = t;
    h.poll_all();
    assert!(h.leases().is_empty());
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.s.eco_address(&key("e0")), Some(ip(49)));
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random traffic from ECOs and guests (every message type, ARP claims, config
/// changes, restarts through snapshot/restore, time passing): the server's indexes
/// stay consistent and no address is ever given to two live leases.
#[test]
fn random_operations_keep_the_state_consistent() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let base = {
        let mut c = with_ecos(small_pool(6), 6);
        c.max_leases_per_endpoint = 2;
        c.endpoints[1].static_ip = Some(ip(5)); // plc keeps the captured MAC
        c.probe_window = Duration::from_millis(50);
        c
    };
    let mut h = H::new(base.clone());
    let eps: Vec<String> = (0..6)
        .map(|i| format!("e{i}"))
        .chain(["vm".into()])
        .collect();
    let kinds = [
        MessageType::Discover,
        MessageType::Request,
        MessageType::Release,
        MessageType::Decline,
        MessageType::Inform,
    ];
    let mut stats = std::collections::BTreeMap::<String, u32>::new();
    let mut max_leases = 0;
    for step in 0..20_000u32 {
        let e = rng.below(eps.len() as u64) as usize;
        let ep = eps[e].clone();
        let eco_mac = if e < 6 { mac(10 + e as u8) } else { mac(3) };
        // Mostly the ECO, sometimes one of three guests behind it.
        let g = rng.below(4);
        let src = if g == 0 { eco_mac } else { mac(100 + g as u8) };
        let addr = ip(45 + rng.below(20) as u8);
        if step % 101 == 0 {
            // Now and then an endpoint is (re)plumbed: probe ahead for it.
            if let Some(Output::Probe(_)) = h.s.prepare(h.now, &key(&ep)) {
                *stats.entry("prepare".into()).or_insert(0) += 1;
            }
        }
        match rng.below(20) {
            0 => {
                let _ = h.s.handle_arp(h.now, mac(200), addr);
            }
            1 => {
                let mut c = base.clone();
                c.range_end = ip(48 + 3 + rng.below(6) as u8);
                if rng.below(2) == 0 {
                    c.endpoints
                        .remove(rng.below(c.endpoints.len() as u64) as usize);
                }
                h.s.update_config(c);
            }
            2 => {
                let snap = h.s.snapshot();
                let mut n = H::new(h.s.config().clone());
                n.now = h.now;
                n.wall = h.wall;
                n.s.restore(&snap, n.now, n.wall);
                h.s = n.s;
            }
            3 | 4 => {
                let scale = [100, 100_000, 1_000_000, 4_000_000][rng.below(4) as usize];
                h.advance(Duration::from_millis(rng.below(scale)));
            }
            _ => {
                let kind = kinds[rng.below(kinds.len() as u64) as usize];
                let ciaddr = if rng.below(2) == 0 {
                    addr
                } else {
                    Ipv4Addr::UNSPECIFIED
                };
                let sid = match rng.below(3) {
                    0 => None,
                    1 => Some(GW),
                    _ => Some(ip(2)),
                };
                let cid = [0xff, 0, 0, 0, g as u8, 0, 1];
                let m = edit(&DHCPCD_DISCOVER, |r| {
                    r.message_type = kind;
                    r.client_hardware_addr = src;
                    r.client_ip = ciaddr;
                    r.requested_ip = (rng.below(2) == 0).then_some(addr);
                    r.server_id = sid;
                    r.rapid_commit = rng.below(3) == 0;
                    r.client_id = (g != 3).then_some(&cid[..]);
                });
                match h.rx(&ep, src, &m) {
                    Some(Output::Reply(r)) => {
                        let kind = Msg::new(&h.buf[..r.payload_len]).kind;
                        *stats.entry(format!("{kind:?}")).or_insert(0u32) += 1;
                    }
                    Some(Output::Probe(_)) => *stats.entry("Probe".into()).or_insert(0) += 1,
                    None => *stats.entry("None".into()).or_insert(0) += 1,
                }
            }
        }
        for (o, _) in h.poll_all() {
            *stats
                .entry(format!("poll {}", matches!(o, Output::Reply(_))))
                .or_insert(0) += 1;
        }
        max_leases = max_leases.max(h.s.leases().count());
        h.s.check_invariants();
        // No address under two live leases; leases only in range or static.
        let mut seen = std::collections::HashSet::new();
        for l in h.s.leases() {
            assert!(seen.insert(l.ip), "step {step}: {} leased twice", l.ip);
            let o = l.ip.octets()[3];
            assert!(o == 5 || (49..=56).contains(&o), "step {step}: {}", l.ip);
            assert!(l.expires > h.wall, "step {step}: expired lease shown");
        }
    }
    // The walk covers every kind of answer.
    for k in ["Offer", "Ack", "Nak", "Probe", "poll true"] {
        assert!(stats.get(k).copied().unwrap_or(0) > 50, "{k}: {stats:?}");
    }
    assert!(max_leases >= 6, "{max_leases}");
    eprintln!("{stats:?} max leases {max_leases}");
}

/// Captured messages mutated byte by byte (and truncated) into a server with state:
/// nothing panics, and the state stays consistent.
#[test]
fn mutated_captures_into_the_server_never_panic() {
    let mut c = config();
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c);
    // Some state first: a lease for the captured client.
    let (_, _) = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    let (_, _) = h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    let frames: [&[u8]; 10] = [
        &UDHCPC_DISCOVER,
        &UDHCPC_REQUEST,
        &UDHCPC_RENEW,
        &UDHCPC_RELEASE,
        &UDHCPC_DECLINE,
        &DHCLIENT_INIT_REBOOT,
        &DHCPCD_DISCOVER,
        &DHCPCD_REQUEST,
        &DHCPCD_INFORM,
        &DHCPCD_RELEASE,
    ];
    let mut replies = 0;
    for (fi, f) in frames.iter().enumerate() {
        let orig = payload(f).to_vec();
        for n in 0..=orig.len() {
            let _ = h.rx("web", CLIENT, &orig[..n]);
        }
        let mut b = orig.clone();
        for i in 0..b.len() {
            let keep = b[i];
            for v in [0u8, 1, 3, 5, 8, 52, 0xff, keep ^ 0x80] {
                b[i] = v;
                let ep = if (i + fi) % 3 == 0 { "vm" } else { "web" };
                if h.rx(ep, CLIENT, &b).is_some() {
                    replies += 1;
                }
            }
            b[i] = keep;
        }
        h.advance(Duration::from_secs(100));
        h.poll_all();
        h.s.check_invariants();
    }
    // Frames too: through frame::parse_request first.
    for f in frames {
        let mut b = f.to_vec();
        for i in 0..b.len() {
            let keep = b[i];
            b[i] ^= 0x41;
            if let Some((m, _, p)) = frame::parse_request(&b, Checksum::Ignore) {
                let p = p.to_vec();
                let _ = h.rx("web", m, &p);
            }
            b[i] = keep;
        }
    }
    h.s.check_invariants();
    assert!(replies > 1000);
}

/// Random bytes (after a valid header, so options get exercised) never panic.
#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    let mut h = H::new(config());
    let head = &payload(&UDHCPC_DISCOVER)[..wire::HEADER_LEN];
    for _ in 0..20_000 {
        let len = rng.below(400) as usize;
        let mut b = head.to_vec();
        b.extend((0..len).map(|_| match rng.below(4) {
            0 => [0u8, 52, 53, 255][rng.below(4) as usize],
            _ => rng.next() as u8,
        }));
        let _ = h.rx("web", CLIENT, &b);
        let _ = h.rx("web", mac(77), &b);
        let _ = h.rx("web", CLIENT, &b[wire::HEADER_LEN.min(b.len())..]);
    }
    h.poll_all();
    h.s.check_invariants();
}

fn rx_of<'a>(k: &'a EndpointKey, m: MacAddr, p: &'a [u8]) -> Rx<'a> {
    Rx {
        endpoint: Some(k),
        src_mac: m,
        src_ip: Ipv4Addr::UNSPECIFIED,
        payload: p,
    }
}

/// 10,000 ECOs in a /18, each DISCOVER + REQUEST, then a renewal each: all distinct,
/// all kept, no write for renewals, and the cost per lease flat (rates per 1000 are
/// printed: run with --nocapture, and --release for numbers to compare with dnsmasq).
#[test]
fn ten_thousand_leases() {
    const N: usize = 10_000;
    let mut c = Config::new("10.64.0.0/18".parse().unwrap(), Ipv4Addr::new(10, 64, 0, 1));
    c.probe_window = Duration::ZERO;
    let macs: Vec<MacAddr> = (0..N)
        .map(|i| MacAddr([2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
        .collect();
    let keys: Vec<EndpointKey> = (0..N)
        .map(|i| EndpointKey {
            app_id: format!("22222222-0000-4000-8000-{i:012}"),
            ifname: "eth0".into(),
        })
        .collect();
    c.endpoints = (0..N)
        .map(|i| Endpoint {
            key: keys[i].clone(),
            mac: macs[i],
            static_ip: None,
            hostname: format!("app{i}"),
        })
        .collect();
    let mut s = Server::new(c);
    // Messages are built up front, so the timing is mostly the server's.
    let discovers: Vec<Vec<u8>> = macs
        .iter()
        .map(|&m| {
            edit(&UDHCPC_DISCOVER, |r| {
                r.client_hardware_addr = m;
                r.client_id = None;
            })
        })
        .collect();
    // The pool hands out addresses in order from the range start, so the REQUESTs
    // can be prepared too (checked against each OFFER below).
    let first = u32::from(Ipv4Addr::new(10, 64, 0, 2));
    let requests: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            edit_bytes(&discovers[i], |r| {
                r.message_type = MessageType::Request;
                r.requested_ip = Some(Ipv4Addr::from(first + i as u32));
                r.server_id = Some(Ipv4Addr::new(10, 64, 0, 1));
            })
        })
        .collect();
    let now = Instant::now();
    let wall = WALL0;
    let mut buf = [0u8; 1472];
    let mut rates = Vec::new();
    let mut chunk = Instant::now();
    for i in 0..N {
        let Some(Output::Reply(r)) =
            s.handle(now, wall, rx_of(&keys[i], macs[i], &discovers[i]), &mut buf)
        else {
            panic!("no offer for {i}");
        };
        let want = Ipv4Addr::from(first + i as u32);
        assert_eq!(&buf[16..20], &want.octets(), "yiaddr of offer {i}");
        let _ = r;
        let Some(Output::Reply(_)) =
            s.handle(now, wall, rx_of(&keys[i], macs[i], &requests[i]), &mut buf)
        else {
            panic!("no ack for {i}");
        };
        assert_eq!(buf[242], 5, "ACK for {i}"); // option 53 comes first
        if (i + 1) % 1000 == 0 {
            rates.push(1000.0 / chunk.elapsed().as_secs_f64());
            chunk = Instant::now();
        }
    }
    assert_eq!(s.leases().count(), N);
    let distinct: std::collections::HashSet<_> = s.leases().map(|l| l.ip).collect();
    assert_eq!(distinct.len(), N);
    s.check_invariants();
    eprintln!("new leases/s (DISCOVER+REQUEST) per 1000: {rates:.0?}");
    assert!(s.take_dirty(wall));
    // Renewals: nothing to write.
    let renews: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            edit(&UDHCPC_RENEW, |r| {
                r.client_hardware_addr = macs[i];
                r.client_id = None;
                r.client_ip = Ipv4Addr::from(first + i as u32);
            })
        })
        .collect();
    let t = Instant::now();
    for i in 0..N {
        let later = now + Duration::from_secs(1800);
        let out = s.handle(
            later,
            wall + 1800,
            rx_of(&keys[i], macs[i], &renews[i]),
            &mut buf,
        );
        assert!(matches!(out, Some(Output::Reply(_))));
        assert_eq!(buf[242], 5, "ACK for renewal {i}");
    }
    eprintln!("renewals/s: {:.0}", N as f64 / t.elapsed().as_secs_f64());
    assert!(!s.take_dirty(wall + 1800));
    s.check_invariants();
    let t = Instant::now();
    let snap = s.snapshot();
    let mut s2 = Server::new(s.config().clone());
    assert_eq!(s2.restore(&snap, now, wall + 1900), N);
    eprintln!(
        "snapshot + restore of {N}: {:?}, {} bytes",
        t.elapsed(),
        snap.len()
    );
    for k in keys.iter().step_by(97) {
        assert_eq!(s2.eco_address(k), s.eco_address(k));
    }
}

/// The probe's bookkeeping fault: an ECO's REQUEST naming another chaddr moved the
/// ECO's allowed entry to that MAC, cutting its own traffic off and leaving stale
/// entries. Now the sender's MAC is what is admitted, a guest is admitted beside the
/// ECO, and every entry leaves with its lease (expiry included).
#[test]
fn allowed_senders_are_the_frames_own_macs_and_leave_with_their_leases() {
    use crate::dhcp::LeaseChange;
    let mut c = config();
    c.probe_window = Duration::ZERO;
    c.lease_secs = 600;
    let mut h = H::new(c);
    // The ECO behind "vm" (its MAC is mac(3)) asks with chaddr 02:..:77.
    let other = mac(0x77);
    let d = edit_bytes(&guest_discover(other, None), |r| r.client_id = None);
    let (_, offer) = h.reply("vm", mac(3), &d);
    let (_, ack) = h.reply("vm", mac(3), &to_request(&d, offer.yiaddr));
    assert_eq!(ack.kind, MessageType::Ack);
    let eco_ip = ack.yiaddr;
    assert_eq!(
        h.s.take_changes(),
        [LeaseChange::Granted {
            endpoint: key("vm"),
            mac: mac(3),
            ip: eco_ip
        }]
    );
    // A nested guest behind the same ECO, its frames from its own MAC: beside it.
    let g = guest_discover(mac(0x42), Some(7));
    let (_, offer) = h.reply("vm", mac(0x42), &g);
    let (_, ack) = h.reply("vm", mac(0x42), &to_request(&g, offer.yiaddr));
    let guest_ip = ack.yiaddr;
    assert_ne!(guest_ip, eco_ip);
    let held: Vec<(MacAddr, Ipv4Addr)> = h.s.held().map(|l| (l.mac, l.ip)).collect();
    assert!(held.contains(&(mac(3), eco_ip)), "{held:?}");
    assert!(held.contains(&(mac(0x42), guest_ip)), "{held:?}");
    assert!(!held.iter().any(|(m, _)| *m == other), "{held:?}");
    let _ = h.s.take_changes();
    // Both leases expire: both entries leave, with the MACs they were admitted with.
    h.advance(Duration::from_secs(601));
    h.poll_all();
    let mut ended = h.s.take_changes();
    ended.sort_by_key(|c| match c {
        LeaseChange::Ended { ip, .. } | LeaseChange::Granted { ip, .. } => *ip,
    });
    let mut want = vec![
        LeaseChange::Ended {
            endpoint: key("vm"),
            mac: mac(3),
            ip: eco_ip,
        },
        LeaseChange::Ended {
            endpoint: key("vm"),
            mac: mac(0x42),
            ip: guest_ip,
        },
    ];
    want.sort_by_key(|c| match c {
        LeaseChange::Ended { ip, .. } | LeaseChange::Granted { ip, .. } => *ip,
    });
    assert_eq!(ended, want);
    assert_eq!(h.s.held().count(), 0);
}

/// Group commit's input: a new allocation is in the journal once; a renewal of an
/// unchanged allocation writes nothing; a restore lets the journal's later line of
/// an identity win over the snapshot's.
#[test]
fn the_journal_holds_new_allocations_only_and_its_lines_win_on_restore() {
    let mut c = config();
    c.probe_window = Duration::ZERO;
    let mut h = H::new(c.clone());
    let _ = h.reply("web", CLIENT, payload(&UDHCPC_DISCOVER));
    h.reply("web", CLIENT, payload(&UDHCPC_REQUEST));
    let journal = h.s.take_journal();
    let text = String::from_utf8(journal.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("10.9.0.49 "), "{text}");
    assert!(h.s.take_journal().is_empty(), "taken once");
    h.advance(Duration::from_secs(1800));
    h.reply("web", CLIENT, payload(&UDHCPC_RENEW));
    assert!(h.s.take_journal().is_empty(), "a renewal writes nothing");
    // A snapshot naming web at .49, then a journal line moving it to .55.
    let snapshot = h.s.snapshot();
    let moved = text.replacen("10.9.0.49 ", "10.9.0.55 ", 1);
    let mut file = snapshot.clone();
    file.extend_from_slice(moved.as_bytes());
    let mut fresh = H::new(c);
    assert_eq!(fresh.s.restore(&file, fresh.now, fresh.wall), 1);
    let leases: Vec<Ipv4Addr> = fresh.s.held().map(|l| l.ip).collect();
    assert_eq!(leases, [ip(55)]);
}
