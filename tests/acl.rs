//! Per-endpoint access control lists and port maps (`acls`, the EVE ACE model) against
//! real peers: ECOs in their own namespaces with busybox udhcpc leases, an upstream
//! host behind the device's preferred port (with "the internet", 203.0.113.0/24, on
//! its loopback, and a real dnsmasq as the networks' upstream resolver), another host
//! behind the standby port, and econet in the device namespace.
//!
//! What a refusal looks like here: a TCP connect or a UDP question that gets no answer
//! within a second, to a server that is listening (so only the filter can refuse).

mod common;

use common::acl::*;
use common::clients::*;
use common::nat::PingLog;
use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;

/// App ids: `web` and `api` on the local network `lan`, `cam` on `lan2`.
const WEB: &str = "a1";
const API: &str = "a2";
const CAM: &str = "a3";

/// The device's ports: eth0 (label "uplink", cost 0) to `up` (192.0.2.0/24), eth1
/// (label "uplink", cost 10) to `other` (198.18.0.0/24). Networks `lan` (10.1.0.0/24)
/// and `lan2` (10.2.0.0/24), both local with NAT out of "uplink" and `up` as their
/// upstream resolver.
struct Bed {
    dev: Netns,
    up: Netns,
    other: Netns,
    web: Netns,
    api: Netns,
    cam: Netns,
    dir: TempDir,
    _resolv: NetnsResolvConf,
}

fn setup() -> Bed {
    require_root();
    let dev = Netns::new("dev");
    let resolv = NetnsResolvConf::new(&dev, "192.0.2.1");
    let b = Bed {
        dev,
        up: Netns::new("up"),
        other: Netns::new("other"),
        web: Netns::new("web"),
        api: Netns::new("api"),
        cam: Netns::new("cam"),
        dir: TempDir::new("acl"),
        _resolv: resolv,
    };
    veth(&b.dev, "eth0", &b.up, "eth0");
    veth(&b.dev, "eth1", &b.other, "eth0");
    b.dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    b.dev.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth1"]);
    b.dev.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    b.up.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.other.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    // "The internet": every address of 203.0.113.0/24 is the upstream host's own.
    b.up.ip(&["route", "add", "local", "203.0.113.0/24", "dev", "lo"]);
    // Hosts that try to reach into the device's networks directly.
    b.up.ip(&["route", "add", "10.0.0.0/8", "via", "192.0.2.2"]);
    b.other
        .ip(&["route", "add", "10.0.0.0/8", "via", "198.18.0.2"]);
    b
}

/// The `acls` of each app's one endpoint (`None`: the field is absent).
#[derive(Clone, Copy, Default)]
struct Acls<'a> {
    web: Option<&'a str>,
    api: Option<&'a str>,
    cam: Option<&'a str>,
}

fn web(acls: &str) -> Acls<'_> {
    Acls {
        web: Some(acls),
        ..Acls::default()
    }
}

fn config(b: &Bed, version: &str, acls: Acls) -> String {
    config_with(b, version, acls, "", "")
}

/// The config, with `extra_networks` and `extra_apps` (each starting with a comma)
/// after the bed's own.
fn config_with(
    b: &Bed,
    version: &str,
    acls: Acls,
    extra_networks: &str,
    extra_apps: &str,
) -> String {
    let field = |a: Option<&str>| a.map(|a| format!(r#", "acls": {a}"#)).unwrap_or_default();
    let app = |id: &str, name: &str, net: &str, ns: &Netns, a: Option<&str>| {
        format!(
            r#"{{"id": "{id}", "name": "{name}", "interfaces": [{{"name": "eth0", "network": "{net}", "attach": {{"netns": "{}"}}{}}}]}}"#,
            ns.path(),
            field(a)
        )
    };
    format!(
        r#"{{
  "device_id": "dev-acl", "config_version": "{version}",
  "ports": [
    {{"name": "eth0", "ifname": "eth0", "labels": ["uplink"], "cost": 0}},
    {{"name": "eth1", "ifname": "eth1", "labels": ["uplink"], "cost": 10}}
  ],
  "networks": [
    {{"id": "lan", "name": "lan", "type": "local", "port": "uplink",
      "ip": {{"subnet": "10.1.0.0/24", "dhcp_range": {{"start": "10.1.0.100", "end": "10.1.0.200"}},
             "dns": ["192.0.2.1"], "domain": "eco.internal", "lease_secs": 600}},
      "static_dns": [{{"host": "db", "addrs": ["10.1.0.77"]}}]}},
    {{"id": "lan2", "name": "lan2", "type": "local", "port": "uplink",
      "ip": {{"subnet": "10.2.0.0/24", "dns": ["192.0.2.1"]}}}}{extra_networks}
  ],
  "apps": [
    {},
    {},
    {}{extra_apps}
  ]
}}"#,
        app(WEB, "web", "lan", &b.web, acls.web),
        app(API, "api", "lan", &b.api, acls.api),
        app(CAM, "cam", "lan2", &b.cam, acls.cam),
    )
}

/// econet running the bed's config, and the ECOs' leased addresses.
struct Run {
    e: Econet,
    web: String,
    api: String,
    cam: String,
}

fn start(b: &Bed, acls: Acls) -> Run {
    let e = Econet::start(&b.dev, &config(b, "1", acls));
    let lease = |ns: &Netns, name: &str, net: &str| {
        let a = udhcpc(ns, &ClientDir::new(), name)
            .unwrap_or_else(|| panic!("{name} got no lease; log:\n{}", e.log()));
        assert!(a.to_string().starts_with(net), "{name}: {a}");
        a.to_string()
    };
    let web = lease(&b.web, "web", "10.1.0.");
    let api = lease(&b.api, "api", "10.1.0.");
    let cam = lease(&b.cam, "cam", "10.2.0.");
    Run { e, web, api, cam }
}

/// TCP servers saying who they see, on port 7000 of the upstream host (every address
/// of it) and of each ECO.
fn servers(b: &Bed) -> Vec<Proc> {
    [&b.up, &b.web, &b.api, &b.cam]
        .into_iter()
        .map(|ns| tcp_whoami(ns, "0.0.0.0", 7000, 300))
        .collect()
}

/// The per-ACE counters of an app's endpoint, waiting (up to 3 s) until `ok` holds.
fn counters_until(e: &Econet, app: &str, ok: impl Fn(&[AceCount]) -> bool) -> Vec<AceCount> {
    let mut last = None;
    wait_until(Duration::from_secs(3), || {
        last = ace_counters(&e.status_json(), app, "eth0");
        last.as_deref().is_some_and(&ok)
    });
    last.unwrap_or_else(|| panic!("no per-ACE counters for app {app}: {}", e.status_json()))
}

fn ace(c: &[AceCount], id: u32) -> AceCount {
    *c.iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no counters for ACE {id}: {c:?}"))
}

#[test]
fn without_acls_an_endpoint_behaves_as_before() {
    let b = setup();
    let mut hosts = HostsResolver::start(
        &b.up,
        "192.0.2.1",
        &b.dir.path,
        &[("svc.allowed.test", "203.0.113.10")],
        1,
    );
    let r = start(&b, Acls::default());
    let _s = servers(&b);
    // Out through NAT (the upstream sees the active port's address), to any address.
    for to in ["192.0.2.1", "203.0.113.10", "203.0.113.40"] {
        assert_eq!(
            tcp_ask(&b.web, to, 7000).as_deref(),
            Some("192.0.2.2"),
            "web to {to}"
        );
    }
    assert_eq!(
        tcp_ask(&b.cam, "203.0.113.10", 7000).as_deref(),
        Some("192.0.2.2")
    );
    assert!(b.web.ping("203.0.113.10"));
    // ECO to ECO on one network, both ways, not translated.
    assert_eq!(tcp_ask(&b.web, &r.api, 7000), Some(r.web.clone()));
    assert_eq!(tcp_ask(&b.api, &r.web, 7000), Some(r.api.clone()));
    assert!(b.web.ping(&r.api) && b.api.ping(&r.web));
    // The network's broadcasts reach it.
    let heard = UdpCounter::start(&b.web, "0.0.0.0", 5353, 2);
    udp_broadcast(&b.api, &["10.1.0.255", "255.255.255.255"], 5353, 20);
    assert_eq!(heard.count(), 40, "broadcasts to an ECO without ACLs");
    // UDP out, and no rate limit: a flood of 500 in 2 s arrives whole.
    let c = UdpCounter::start(&b.up, "192.0.2.1", 9999, 4);
    udp_flood(&b.web, "192.0.2.1", 9999, 500, 2.0);
    let n = c.count();
    assert!(n >= 495, "{n} of 500 datagrams arrived");
    // DNS forwarded to the upstream, and a connect right after the answer works; a
    // changed upstream record is seen once its TTL (1 s) has passed.
    let lc = lookup_then_connect(&b.web, "10.1.0.1", "svc.allowed.test", 7000, 800);
    assert_eq!(lc.addr.as_deref(), Some("203.0.113.10"), "{lc:?}");
    assert_eq!(lc.answer.as_deref(), Some("192.0.2.2"), "{lc:?}");
    hosts.set(&[("svc.allowed.test", "203.0.113.20")]);
    assert!(
        wait_until(Duration::from_secs(10), || lookup_then_connect(
            &b.web,
            "10.1.0.1",
            "svc.allowed.test",
            7000,
            800
        )
        .addr
        .as_deref()
            == Some("203.0.113.20")),
        "the new upstream address never came through econet's DNS"
    );
    // The refusal probes see an open path as open.
    assert!(!tcp_blocked(&b.web, "192.0.2.1", 7000));
    let _echo = udp_whoami(&b.up, "0.0.0.0", 5353, 60);
    assert!(!udp_blocked(&b.web, "192.0.2.1", 5353));
    assert_eq!(
        udp_ask(&b.web, "192.0.2.1", 5353).as_deref(),
        Some("192.0.2.2")
    );
    // The network's own policy still holds: nothing in from a port, nothing between
    // networks, nothing to the device but DHCP and DNS.
    assert!(tcp_blocked(&b.up, &r.web, 7000), "port into a network");
    assert!(tcp_blocked(&b.web, &r.cam, 7000), "lan to lan2");
    assert!(tcp_blocked(&b.cam, &r.web, 7000), "lan2 to lan");
    let _dev = tcp_whoami(&b.dev, "0.0.0.0", 7001, 60);
    assert!(tcp_blocked(&b.web, "10.1.0.1", 7001), "ECO to the device");
    // An endpoint without `acls` has no ACEs to count.
    let s = r.e.status_json();
    for app in [WEB, API, CAM] {
        assert!(endpoint_path(&s, app, "eth0").is_some(), "{s}");
        assert_eq!(ace_counters(&s, app, "eth0"), None, "{s}");
    }
}

#[test]
fn a_port_map_is_reached_from_outside_hairpin_and_another_network_through_failover_and_kill_9() {
    let b = setup();
    let acls = r#"[
      {"id": 1, "name": "https in", "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8443"}],
       "actions": [{"portmap": true, "appPort": 443}]},
      {"id": 2, "matches": [{"type": "protocol", "value": "udp"}, {"type": "lport", "value": "8443"}],
       "actions": [{"portmap": true, "appPort": 5353}]}
    ]"#;
    let mut r = start(&b, web(acls));
    let _s = servers(&b);
    let _https = tcp_whoami(&b.web, "0.0.0.0", 443, 300);
    let _dns = udp_whoami(&b.web, "0.0.0.0", 5353, 300);

    // From outside, through the active port: the ECO sees the real client.
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
        Some("192.0.2.1"),
        "TCP map"
    );
    assert_eq!(
        udp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
        Some("192.0.2.1"),
        "UDP map"
    );
    // Only what is mapped: not another port, not the ECO directly, not lport itself on
    // the ECO (nothing listens there: the map goes to appPort).
    assert!(tcp_blocked(&b.up, "192.0.2.2", 8444));
    assert!(
        tcp_blocked(&b.up, &r.web, 443),
        "direct from a port into the network"
    );
    // Hairpin: another ECO of the network, through the port's address. Who the ECO
    // sees is the implementation's choice (a translated source), but it is an
    // address, and the reply comes back from the port's address (connected sockets).
    for (who, ns) in [("hairpin", &b.api), ("from lan2", &b.cam)] {
        let t = tcp_ask(ns, "192.0.2.2", 8443);
        assert!(
            t.as_deref().is_some_and(|a| a.parse::<Ipv4Addr>().is_ok()),
            "{who} TCP: {t:?}"
        );
        let u = udp_ask(ns, "192.0.2.2", 8443);
        assert!(
            u.as_deref().is_some_and(|a| a.parse::<Ipv4Addr>().is_ok()),
            "{who} UDP: {u:?}"
        );
    }
    // The ACL is the endpoint's whole policy: the map does not open the ECO directly
    // to its network, and the ECO itself reaches nothing (no ACE allows it).
    assert!(tcp_blocked(&b.api, &r.web, 443), "api to web:443 directly");
    assert!(tcp_blocked(&b.web, "192.0.2.1", 7000), "web out");
    assert!(tcp_blocked(&b.web, &r.api, 7000), "web to api");

    // kill -9: the map is kernel state, working while econet is down and right after
    // it is back.
    r.e.stop("KILL");
    let mapped = |what: &str| {
        assert_eq!(
            tcp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
            Some("192.0.2.1"),
            "TCP, {what}"
        );
        assert_eq!(
            udp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
            Some("192.0.2.1"),
            "UDP, {what}"
        );
    };
    mapped("econet down");
    r.e.spawn();
    mapped("at once after the restart");
    // As after a reboot, econet's firewall is gone when it starts: the map is rebuilt
    // from the config, and is there as soon as the network passes traffic again (the
    // other ECO reaches out; that takes econet about 2 s, a wait that is not the map's).
    r.e.stop("KILL");
    let tables = stdout(&b.dev.exec(&["nft", "list", "tables"]));
    for t in tables.lines().filter(|l| l.contains("econet")) {
        // "table inet econet" -> nft delete table inet econet
        b.dev
            .exec(&["sh", "-c", &format!("nft delete {}", t.trim())]);
    }
    r.e.spawn();
    assert!(
        wait_until(Duration::from_secs(5), || tcp_ask(
            &b.api,
            "192.0.2.1",
            7000
        )
        .as_deref()
            == Some("192.0.2.2")),
        "the network never passed traffic again"
    );
    mapped("with the firewall rebuilt");

    // Failover: eth0 loses its carrier, the network moves to eth1, and the map with it.
    b.up.ip(&["link", "set", "eth0", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || json_str(
            &r.e.status_json(),
            "networks.0.ports.active"
        )
        .as_deref()
            == Some("eth1")),
        "{}",
        r.e.status_json()
    );
    assert!(
        wait_until(Duration::from_secs(3), || tcp_ask(
            &b.other,
            "198.18.0.2",
            8443
        )
        .as_deref()
            == Some("198.18.0.1")),
        "TCP map on the new port"
    );
    assert_eq!(
        udp_ask(&b.other, "198.18.0.2", 8443).as_deref(),
        Some("198.18.0.1")
    );
    let t = tcp_ask(&b.api, "198.18.0.2", 8443);
    assert!(
        t.is_some_and(|a| a.parse::<Ipv4Addr>().is_ok()),
        "hairpin after failover"
    );
    // And back when eth0 returns.
    b.up.ip(&["link", "set", "eth0", "up"]);
    assert!(wait_until(Duration::from_secs(5), || json_str(
        &r.e.status_json(),
        "networks.0.ports.active"
    )
    .as_deref()
        == Some("eth0")));
    assert!(
        wait_until(Duration::from_secs(3), || tcp_ask(&b.up, "192.0.2.2", 8443)
            .as_deref()
            == Some("192.0.2.1")),
        "TCP map back on eth0"
    );
}

#[test]
fn a_host_acl_admits_what_dns_answered_before_the_answer_and_follows_a_changed_address() {
    let b = setup();
    let mut hosts = HostsResolver::start(
        &b.up,
        "192.0.2.1",
        &b.dir.path,
        &[
            ("svc.allowed.test", "203.0.113.10"),
            ("allowed.test", "203.0.113.11"),
            ("other.denied.test", "203.0.113.30"),
            ("evilallowed.test", "203.0.113.50"),
        ],
        1,
    );
    let only = r#"[{"id": 1, "matches": [{"type": "host", "value": "allowed.test"}]}]"#;
    let _r = start(
        &b,
        Acls {
            web: Some(only),
            cam: Some(only),
            ..Acls::default()
        },
    );
    let _s = servers(&b);
    // Nothing is admitted before a lookup.
    assert!(
        tcp_blocked(&b.web, "203.0.113.10", 7000),
        "before any lookup"
    );
    // A subdomain and the name itself: the first SYN after the answer already passes.
    for (name, addr) in [
        ("svc.allowed.test", "203.0.113.10"),
        ("allowed.test", "203.0.113.11"),
    ] {
        let lc = lookup_then_connect(&b.web, "10.1.0.1", name, 7000, 800);
        assert_eq!(lc.addr.as_deref(), Some(addr), "{name}: {lc:?}");
        assert_eq!(
            lc.answer.as_deref(),
            Some("192.0.2.2"),
            "{name}: first connect after the answer: {lc:?}"
        );
    }
    // Another name (answered, since DNS is always allowed, but not admitted), a name
    // that merely ends the same, and a raw address.
    for (name, addr) in [
        ("other.denied.test", "203.0.113.30"),
        ("evilallowed.test", "203.0.113.50"),
    ] {
        let lc = lookup_then_connect(&b.web, "10.1.0.1", name, 7000, 800);
        assert_eq!(lc.addr.as_deref(), Some(addr), "{name} resolves: {lc:?}");
        assert_eq!(lc.answer, None, "{name} is not under allowed.test: {lc:?}");
    }
    assert!(tcp_blocked(&b.web, "203.0.113.40", 7000), "a raw address");
    assert!(
        tcp_blocked(&b.web, "192.0.2.1", 7000),
        "the upstream host itself"
    );
    // Learned per network: cam (lan2, same ACL) has not looked the name up.
    assert!(
        tcp_blocked(&b.cam, "203.0.113.10", 7000),
        "learned on lan, used from lan2"
    );
    let lc = lookup_then_connect(&b.cam, "10.2.0.1", "svc.allowed.test", 7000, 800);
    assert_eq!(
        lc.answer.as_deref(),
        Some("192.0.2.2"),
        "cam after its own lookup: {lc:?}"
    );
    // The name moves upstream; once the TTL has passed econet's DNS gives the new
    // address, and the first connect to it works.
    hosts.set(&[("svc.allowed.test", "203.0.113.20")]);
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let lc = lookup_then_connect(&b.web, "10.1.0.1", "svc.allowed.test", 7000, 800);
            let new = lc.addr.as_deref() == Some("203.0.113.20");
            seen = Some(lc);
            new
        }),
        "the new address never came: {seen:?}"
    );
    assert_eq!(
        seen.unwrap().answer.as_deref(),
        Some("192.0.2.2"),
        "first connect to the new address"
    );
    // The old address stays admitted for at least 60 s after its answer.
    assert_eq!(
        tcp_ask(&b.web, "203.0.113.10", 7000).as_deref(),
        Some("192.0.2.2"),
        "old address within 60 s"
    );
    // The other ECO of lan has no ACL and reaches everything as before.
    assert_eq!(
        tcp_ask(&b.api, "203.0.113.40", 7000).as_deref(),
        Some("192.0.2.2")
    );
}

#[test]
fn eidset_allows_the_ecos_of_the_network_and_nothing_beyond() {
    let b = setup();
    let r = start(&b, web(r#"[{"id": 1, "matches": [{"type": "eidset"}]}]"#));
    let _s = servers(&b);
    assert_eq!(
        tcp_ask(&b.web, &r.api, 7000),
        Some(r.web.clone()),
        "web to api"
    );
    assert_eq!(
        tcp_ask(&b.api, &r.web, 7000),
        Some(r.api.clone()),
        "api to web"
    );
    assert!(b.web.ping(&r.api), "any protocol within the set");
    assert!(tcp_blocked(&b.web, "192.0.2.1", 7000), "the upstream host");
    assert!(tcp_blocked(&b.web, "203.0.113.10", 7000), "the internet");
    assert!(!b.web.ping("192.0.2.1"));
    // The other ECO, without an ACL, still goes out.
    assert_eq!(
        tcp_ask(&b.api, "192.0.2.1", 7000).as_deref(),
        Some("192.0.2.2")
    );
}

#[test]
fn a_drop_ace_before_an_allow_all_drops_that_prefix_only() {
    let b = setup();
    let acls = r#"[
      {"id": 1, "matches": [{"type": "ip", "value": "203.0.113.0/24"}], "actions": [{"drop": true}]},
      {"id": 2, "matches": [{"type": "ip", "value": "0.0.0.0/0"}]}
    ]"#;
    let r = start(&b, web(acls));
    let _s = servers(&b);
    assert_eq!(
        tcp_ask(&b.web, "192.0.2.1", 7000).as_deref(),
        Some("192.0.2.2")
    );
    assert_eq!(tcp_ask(&b.web, &r.api, 7000), Some(r.web.clone()));
    assert!(b.web.ping("192.0.2.1"));
    assert!(tcp_blocked(&b.web, "203.0.113.10", 7000));
    assert!(tcp_blocked(&b.web, "203.0.113.254", 7000));
    assert!(tcp_blocked(&b.web, "203.0.113.99", 7000));
    assert!(!b.web.ping("203.0.113.10"));
    // Per endpoint: api has no ACL.
    assert_eq!(
        tcp_ask(&b.api, "203.0.113.10", 7000).as_deref(),
        Some("192.0.2.2")
    );
    // Both ACEs counted what they decided.
    let c = counters_until(&r.e, WEB, |c| c.iter().any(|a| a.id == 1 && a.packets >= 3));
    assert!(ace(&c, 1).packets >= 3, "the drop ACE: {c:?}");
    assert!(ace(&c, 2).packets >= 3, "the allow-all ACE: {c:?}");
}

#[test]
fn dir_egress_and_ingress_decide_who_may_start_a_flow() {
    let b = setup();
    let egress =
        r#"[{"id": 1, "matches": [{"type": "ip", "value": "10.1.0.0/24"}], "dir": "EGRESS"}]"#;
    let ingress =
        r#"[{"id": 1, "matches": [{"type": "ip", "value": "10.1.0.0/24"}], "dir": "INGRESS"}]"#;
    let r = start(&b, web(egress));
    let _s = servers(&b);
    let _u = udp_whoami(&b.api, "0.0.0.0", 5353, 300);
    let _u2 = udp_whoami(&b.web, "0.0.0.0", 5353, 300);
    // EGRESS: web starts flows (their replies pass), api cannot start one to web.
    assert_eq!(
        tcp_ask(&b.web, &r.api, 7000),
        Some(r.web.clone()),
        "egress TCP"
    );
    assert_eq!(
        udp_ask(&b.web, &r.api, 5353),
        Some(r.web.clone()),
        "egress UDP and its reply"
    );
    assert!(
        tcp_blocked(&b.api, &r.web, 7000),
        "ingress TCP under EGRESS"
    );
    assert!(
        udp_blocked(&b.api, &r.web, 5353),
        "ingress UDP under EGRESS"
    );
    // INGRESS: the other way round.
    r.e.reload(&config(&b, "2", web(ingress)));
    assert_eq!(
        tcp_ask(&b.api, &r.web, 7000),
        Some(r.api.clone()),
        "ingress TCP"
    );
    assert_eq!(
        udp_ask(&b.api, &r.web, 5353),
        Some(r.api.clone()),
        "ingress UDP and its reply"
    );
    assert!(
        tcp_blocked(&b.web, &r.api, 7000),
        "egress TCP under INGRESS"
    );
    assert!(
        udp_blocked(&b.web, &r.api, 5353),
        "egress UDP under INGRESS"
    );
    // INGRESS through a port map: reached from outside, while the ECO reaches nothing.
    let mapped = r#"[{"id": 1, "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8080"}],
                      "actions": [{"portmap": true, "appPort": 7000}], "dir": "INGRESS"}]"#;
    r.e.reload(&config(&b, "3", web(mapped)));
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 8080).as_deref(),
        Some("192.0.2.1"),
        "map, INGRESS"
    );
    assert!(tcp_blocked(&b.web, "192.0.2.1", 7000));
}

#[test]
fn a_limit_ace_holds_a_flood_to_its_rate_and_burst() {
    let b = setup();
    let limit = |rate: u32, unit: &str| {
        format!(
            r#"[{{"id": 1, "matches": [{{"type": "ip", "value": "192.0.2.1/32"}}, {{"type": "protocol", "value": "udp"}}, {{"type": "fport", "value": "9999"}}],
                 "actions": [{{"limit": true, "limitrate": {rate}, "limitunit": "{unit}", "limitburst": 5}}]}}]"#
        )
    };
    let per_sec = limit(10, "s");
    let r = start(&b, web(&per_sec));
    // 10 packets a second for the flood's duration, plus the burst of 5.
    let flood = |ns: &Netns| {
        let c = UdpCounter::start(&b.up, "192.0.2.1", 9999, 4);
        let secs = udp_flood(ns, "192.0.2.1", 9999, 500, 2.0);
        (c.count(), secs)
    };
    let check = |what: &str, (got, secs): (u64, f64)| {
        let expected = 10.0 * secs + 5.0;
        assert!(
            (got as f64) >= expected * 0.5 && (got as f64) <= expected * 2.0 && got < 100,
            "{what}: {got} of 500 datagrams in {secs:.2} s passed; expected about {expected:.0}"
        );
    };
    check("10/s", flood(&b.web));
    // The ECO without an ACL is not limited.
    let (got, _) = flood(&b.api);
    assert!(got >= 495, "api (no ACL): {got} of 500");
    // The same rate per minute.
    r.e.reload(&config(&b, "2", web(&limit(600, "m"))));
    std::thread::sleep(Duration::from_secs(1));
    check("600/m", flood(&b.web));
    // The limited flow's packets were counted, the dropped excess included or not,
    // but the ACE saw them.
    let c = counters_until(&r.e, WEB, |c| c.iter().any(|a| a.id == 1 && a.packets > 0));
    assert!(ace(&c, 1).packets >= 10, "{c:?}");
}

#[test]
fn empty_acls_leave_dhcp_and_dns_and_drop_everything_else() {
    let b = setup();
    let dns_dir = TempDir::new("dns");
    let _upstream = upstream_resolver(&b.up, "192.0.2.1", &dns_dir.path);
    let r = start(&b, web("[]"));
    let _s = servers(&b);
    // DHCP: the lease came (in start) and comes again.
    b.web.ip(&["addr", "flush", "dev", "eth0"]);
    assert_eq!(
        udhcpc(&b.web, &ClientDir::new(), "web").map(|a| a.to_string()),
        Some(r.web.clone())
    );
    // DNS to the gateway, UDP and TCP, local and forwarded names.
    let q = |args: &[&str]| dig(&b.web, "10.1.0.1", args).unwrap_or_default();
    assert_eq!(q(&["+short", "upstream.test"]).trim(), "192.0.2.99");
    assert_eq!(q(&["+short", "+tcp", "upstream.test"]).trim(), "192.0.2.99");
    assert_eq!(q(&["+short", "db.eco.internal"]).trim(), "10.1.0.77");
    assert_eq!(q(&["+short", "api.eco.internal"]).trim(), r.api);
    // Nothing else: not another resolver, not the upstream, not the other ECO, not in.
    assert!(
        dig(&b.web, "192.0.2.1", &["+short", "upstream.test"]).is_none(),
        "DNS elsewhere"
    );
    assert!(tcp_blocked(&b.web, "192.0.2.1", 7000));
    assert!(!b.web.ping("192.0.2.1"));
    assert!(tcp_blocked(&b.web, &r.api, 7000), "web to api");
    assert!(tcp_blocked(&b.api, &r.web, 7000), "api to web");
    assert!(!b.api.ping(&r.web));
    // Broadcasts of the network do not reach it either (they carry no address of
    // the ECO to find its ACL by).
    let heard = UdpCounter::start(&b.web, "0.0.0.0", 5353, 2);
    udp_broadcast(&b.api, &["10.1.0.255", "255.255.255.255"], 5353, 20);
    assert_eq!(
        heard.count(),
        0,
        "broadcasts reached an ECO with empty ACLs"
    );
    // The other ECO, without an ACL, is untouched.
    assert_eq!(
        tcp_ask(&b.api, "192.0.2.1", 7000).as_deref(),
        Some("192.0.2.2")
    );
    // The implicit drop counted the refusals.
    let c = counters_until(&r.e, WEB, |c| c.iter().any(|a| a.id == 0 && a.packets > 0));
    assert_eq!(c.iter().map(|a| a.id).collect::<Vec<_>>(), vec![0], "{c:?}");
    assert!(ace(&c, 0).packets >= 4, "{c:?}");
}

#[test]
fn status_counts_packets_per_ace_and_the_implicit_drop() {
    let b = setup();
    let acls = r#"[
      {"id": 7, "matches": [{"type": "ip", "value": "192.0.2.1/32"}, {"type": "protocol", "value": "tcp"}, {"type": "fport", "value": "7000"}]},
      {"id": 9, "matches": [{"type": "protocol", "value": "icmp"}, {"type": "ip", "value": "198.51.100.0/24"}]}
    ]"#;
    let r = start(&b, web(acls));
    let _s = servers(&b);
    let s = r.e.status_json();
    let c0 = ace_counters(&s, WEB, "eth0").unwrap_or_else(|| panic!("no counters: {s}"));
    let mut ids: Vec<u32> = c0.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![0, 7, 9],
        "one entry per ACE and the implicit drop: {c0:?}"
    );
    // Three allowed connections.
    for _ in 0..3 {
        assert_eq!(
            tcp_ask(&b.web, "192.0.2.1", 7000).as_deref(),
            Some("192.0.2.2")
        );
    }
    // The connections' last packets (FIN, ACK) are through before counting.
    std::thread::sleep(Duration::from_millis(500));
    let c1 = counters_until(&r.e, WEB, |c| c.iter().any(|a| a.id == 7 && a.packets >= 3));
    let a7 = ace(&c1, 7);
    assert!(a7.packets >= ace(&c0, 7).packets + 3, "{c0:?} then {c1:?}");
    assert!(
        a7.bytes >= a7.packets * 40,
        "IPv4 and TCP headers at least: {a7:?}"
    );
    assert_eq!(ace(&c1, 9).packets, 0, "no traffic matched ACE 9: {c1:?}");
    // Four refused pings: the implicit drop, not ACE 7 (TCP only) nor 9 (elsewhere).
    for _ in 0..4 {
        assert!(!b.web.ping("192.0.2.1"));
    }
    let before0 = ace(&c1, 0).packets;
    let c2 = counters_until(&r.e, WEB, |c| {
        c.iter().any(|a| a.id == 0 && a.packets >= before0 + 4)
    });
    assert!(ace(&c2, 0).packets >= before0 + 4, "{c1:?} then {c2:?}");
    assert!(ace(&c2, 0).bytes >= ace(&c2, 0).packets * 28, "{c2:?}");
    assert_eq!(
        ace(&c2, 7).packets,
        a7.packets,
        "pings counted on the TCP ACE: {c2:?}"
    );
    assert_eq!(ace(&c2, 9).packets, 0, "{c2:?}");
    // Reapplying the same ACL (a new version string) keeps the counters.
    r.e.reload(&config(&b, "2", web(acls)));
    let c3 = ace_counters(&r.e.status_json(), WEB, "eth0").unwrap();
    for a in &c2 {
        assert!(
            ace(&c3, a.id).packets >= a.packets,
            "counters went back: {c2:?} then {c3:?}"
        );
    }
}

/// A switch network (no DHCP, DNS or NAT) on eth1 to a host, two ECOs with static
/// addresses; web has an ACL of `ip`, `protocol` and port ACEs.
#[test]
fn acls_on_a_switch_network_match_address_protocol_and_ports_and_drop_the_rest() {
    require_root();
    let dev = Netns::new("dev");
    let host = Netns::new("host");
    let web_ns = Netns::new("web");
    let db_ns = Netns::new("db");
    veth(&dev, "eth1", &host, "eth0");
    host.ip(&["addr", "add", "192.168.50.1/24", "dev", "eth0"]);
    let acls = r#"[
      {"id": 1, "matches": [{"type": "ip", "value": "192.168.50.12/32"}, {"type": "protocol", "value": "tcp"}, {"type": "fport", "value": "7000"}]},
      {"id": 2, "matches": [{"type": "ip", "value": "192.168.50.1/32"}, {"type": "protocol", "value": "icmp"}]},
      {"id": 3, "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8000-8010"}]}
    ]"#;
    let cfg = format!(
        r#"{{"device_id": "dev-acl-sw", "config_version": "1",
  "ports": [{{"name": "eth1", "ifname": "eth1"}}],
  "networks": [{{"id": "n1", "name": "fieldbus", "type": "switch", "port": "eth1"}}],
  "apps": [
    {{"id": "{WEB}", "name": "web", "interfaces": [{{"name": "eth0", "network": "n1", "attach": {{"netns": "{}"}}, "acls": {acls}}}]}},
    {{"id": "{API}", "name": "db", "interfaces": [{{"name": "eth0", "network": "n1", "attach": {{"netns": "{}"}}}}]}}
  ]}}"#,
        web_ns.path(),
        db_ns.path()
    );
    let e = Econet::start(&dev, &cfg);
    web_ns.ip(&["addr", "add", "192.168.50.11/24", "dev", "eth0"]);
    db_ns.ip(&["addr", "add", "192.168.50.12/24", "dev", "eth0"]);
    let _srv: Vec<Proc> = vec![
        tcp_whoami(&db_ns, "0.0.0.0", 7000, 120),
        tcp_whoami(&db_ns, "0.0.0.0", 7001, 120),
        tcp_whoami(&host, "0.0.0.0", 7000, 120),
        tcp_whoami(&web_ns, "0.0.0.0", 8005, 120),
        tcp_whoami(&web_ns, "0.0.0.0", 8020, 120),
    ];
    // The network itself works (db has no ACL).
    assert!(db_ns.ping_within("192.168.50.1", 5), "db to the host");
    // ACE 1: web to db on TCP 7000 (fport is the remote port) and nothing else to db.
    assert_eq!(
        tcp_ask(&web_ns, "192.168.50.12", 7000).as_deref(),
        Some("192.168.50.11")
    );
    assert!(
        tcp_blocked(&web_ns, "192.168.50.12", 7001),
        "another remote port"
    );
    assert!(!web_ns.ping("192.168.50.12"), "ICMP to db");
    assert!(
        tcp_blocked(&db_ns, "192.168.50.11", 7000),
        "db to web: fport 7000 is not web's port"
    );
    // ACE 2: ICMP with the host, both ways.
    assert!(web_ns.ping("192.168.50.1"), "web pings the host");
    assert!(host.ping("192.168.50.11"), "the host pings web");
    assert!(
        tcp_blocked(&web_ns, "192.168.50.1", 7000),
        "TCP to the host"
    );
    // ACE 3: web's own ports 8000-8010, reached by anyone.
    assert_eq!(
        tcp_ask(&host, "192.168.50.11", 8005).as_deref(),
        Some("192.168.50.1")
    );
    assert_eq!(
        tcp_ask(&db_ns, "192.168.50.11", 8005).as_deref(),
        Some("192.168.50.12")
    );
    assert!(
        tcp_blocked(&host, "192.168.50.11", 8020),
        "outside the lport range"
    );
    // db, without an ACL, is untouched.
    assert!(db_ns.ping("192.168.50.1"));
    assert_eq!(
        tcp_ask(&db_ns, "192.168.50.1", 7000).as_deref(),
        Some("192.168.50.12")
    );
    // Counted: each ACE that allowed, and the implicit drop.
    let c = counters_until(&e, WEB, |c| c.iter().all(|a| a.packets > 0));
    for id in [0, 1, 2, 3] {
        assert!(ace(&c, id).packets > 0, "ACE {id}: {c:?}");
    }
}

/// A bad `acls` in each way the contract names: rejected as a whole, the error naming
/// the JSON path (in status and from `econet check`), and nothing running touched.
#[test]
fn every_bad_acl_is_rejected_naming_its_path_and_nothing_running_changes() {
    let b = setup();
    let good_web = r#"[
      {"id": 1, "matches": [{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8443"}], "actions": [{"portmap": true, "appPort": 7000}]},
      {"id": 16777215, "matches": [{"type": "ip", "value": "192.0.2.1/32"}, {"type": "protocol", "value": "icmp"}]}
    ]"#;
    let good = config(&b, "1", web(good_web));
    let r = start(&b, web(good_web));
    let _s = servers(&b);
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
        Some("192.0.2.1"),
        "the map runs"
    );
    let flow = PingLog::start(&b.web, "192.0.2.1", &b.dir.path, 120);
    assert!(
        wait_until(Duration::from_secs(5), || flow.flowing()),
        "the ping flow"
    );
    let ruleset = stable_ruleset(&b.dev);
    let links = b.dev.links();

    let ep = "apps[0].interfaces[0].acls";
    let ace1 =
        |matches: &str, rest: &str| format!(r#"[{{"id": 1, "matches": [{matches}]{rest}}}]"#);
    let any = r#"{"type": "ip", "value": "0.0.0.0/0"}"#;
    let map = |proto: &str, lport: &str| {
        format!(
            r#"[{{"id": 1, "matches": [{{"type": "protocol", "value": "{proto}"}}, {{"type": "lport", "value": "{lport}"}}], "actions": [{{"portmap": true, "appPort": 7000}}]}}]"#
        )
    };
    let tap_app = |net: &str, acls: &str| {
        format!(
            r#", {{"id": "a9", "name": "extra", "interfaces": [{{"name": "eth0", "network": "{net}", "attach": {{"tap": "vif-acl9"}}, "acls": {acls}}}]}}"#
        )
    };
    let switch = r#", {"id": "sw", "name": "sw", "type": "switch"}"#;
    let cloud = r#", {"id": "vpc", "name": "vpc", "type": "cloud", "port": "eth0",
        "ip": {"subnet": "10.60.0.0/24"},
        "vpn": {"remote": "192.0.2.1", "local_id": "dev", "remote_id": "gw", "auth": {"psk": "a long shared secret"},
                "remote_subnets": ["172.31.0.0/16"]}}"#;
    let mesh = r#", {"id": "fleet", "name": "fleet", "type": "mesh", "port": "eth0",
        "ip": {"subnet": "10.200.0.0/16", "dhcp_range": {"start": "10.200.4.10", "end": "10.200.4.250"}},
        "mesh": {"instance_id": 1000, "map_servers": [{"address": "192.0.2.1", "key": "ms-secret"}]}}"#;
    let many = |n: usize, base: u32| {
        let aces: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"id": {}, "matches": [{{"type": "ip", "value": "198.51.100.{}/32"}}]}}"#,
                    base + i as u32,
                    i % 250
                )
            })
            .collect();
        format!("[{}]", aces.join(", "))
    };
    let sixty_four = many(64, 1);
    let fleet_of_64: String = (0..64)
        .map(|i| {
            format!(
                r#", {{"id": "t{i}", "name": "t{i}", "interfaces": [{{"name": "eth0", "network": "lan", "attach": {{"tap": "vif-t{i}"}}, "acls": {sixty_four}}}]}}"#
            )
        })
        .collect();

    // (what, web's acls, extra networks, extra apps, every text the error must hold)
    let one_app = |w: &str| config(&b, "9", web(w));
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown match type",
            one_app(&ace1(r#"{"type": "colour", "value": "red"}"#, "")),
            vec![format!("{ep}[0].matches[0]")],
        ),
        (
            "unknown action",
            one_app(&ace1(any, r#", "actions": [{"teleport": true}]"#)),
            vec![format!("{ep}[0].actions[0]")],
        ),
        (
            "duplicate match type",
            one_app(&ace1(
                r#"{"type": "ip", "value": "192.0.2.0/24"}, {"type": "ip", "value": "198.18.0.0/24"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches[1]")],
        ),
        (
            "two actions",
            one_app(&ace1(
                any,
                r#", "actions": [{"drop": true}, {"limit": true, "limitrate": 1, "limitunit": "s", "limitburst": 1}]"#,
            )),
            vec![format!("{ep}[0].actions")],
        ),
        (
            "two actions in one object",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "80"}"#,
                r#", "actions": [{"drop": true, "portmap": true, "appPort": 80}]"#,
            )),
            vec![format!("{ep}[0].actions")],
        ),
        (
            "id zero",
            one_app(&format!(r#"[{{"id": 0, "matches": [{any}]}}]"#)),
            vec![format!("{ep}[0].id")],
        ),
        (
            "id over 2^24-1",
            one_app(&format!(r#"[{{"id": 16777216, "matches": [{any}]}}]"#)),
            vec![format!("{ep}[0].id")],
        ),
        (
            "id repeated",
            one_app(&format!(
                r#"[{{"id": 5, "matches": [{any}]}}, {{"id": 5, "matches": [{any}]}}]"#
            )),
            vec![format!("{ep}[1].id")],
        ),
        (
            "lport without tcp or udp (the contract's example)",
            one_app(&format!(
                r#"[{{"id": 1, "matches": [{any}]}}, {{"id": 2, "matches": [{{"type": "ip", "value": "192.0.2.0/24"}}, {{"type": "lport", "value": "80"}}]}}]"#
            )),
            vec![format!(
                "{ep}[1].matches[1]: lport without protocol tcp or udp"
            )],
        ),
        (
            "fport with icmp",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "icmp"}, {"type": "fport", "value": "80"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches[1]"), "fport".into()],
        ),
        (
            "the same port map on two endpoints",
            config(
                &b,
                "9",
                Acls {
                    web: Some(&map("tcp", "8443")),
                    api: Some(&map("tcp", "8443")),
                    cam: None,
                },
            ),
            vec![
                "apps[0].interfaces[0].acls[0]".into(),
                "apps[1].interfaces[0].acls[0]".into(),
            ],
        ),
        (
            "the same port map from another network on the same ports",
            config(
                &b,
                "9",
                Acls {
                    web: Some(&map("tcp", "8443")),
                    api: None,
                    cam: Some(&map("tcp", "8443")),
                },
            ),
            vec![
                "apps[0].interfaces[0].acls[0]".into(),
                "apps[2].interfaces[0].acls[0]".into(),
            ],
        ),
        (
            "a port map on IKE's port of a cloud network on that port",
            config_with(&b, "9", web(&map("udp", "500")), cloud, ""),
            vec![format!("{ep}[0]")],
        ),
        (
            "a port map on IKE's NAT-T port of a cloud network on that port",
            config_with(&b, "9", web(&map("udp", "4500")), cloud, ""),
            vec![format!("{ep}[0]")],
        ),
        (
            "a port map on LISP's data port of a mesh network on that port",
            config_with(&b, "9", web(&map("udp", "4341")), mesh, ""),
            vec![format!("{ep}[0]")],
        ),
        (
            "a port map on LISP's control port of a mesh network on that port",
            config_with(&b, "9", web(&map("udp", "4342")), mesh, ""),
            vec![format!("{ep}[0]")],
        ),
        (
            "host on a switch network",
            config_with(
                &b,
                "9",
                Acls::default(),
                switch,
                &tap_app(
                    "sw",
                    r#"[{"id": 1, "matches": [{"type": "host", "value": "example.com"}]}]"#,
                ),
            ),
            vec!["apps[3].interfaces[0].acls[0]".into()],
        ),
        (
            "eidset on a switch network",
            config_with(
                &b,
                "9",
                Acls::default(),
                switch,
                &tap_app("sw", r#"[{"id": 1, "matches": [{"type": "eidset"}]}]"#),
            ),
            vec!["apps[3].interfaces[0].acls[0]".into()],
        ),
        (
            "portmap on a switch network",
            config_with(
                &b,
                "9",
                Acls::default(),
                switch,
                &tap_app("sw", &map("tcp", "8080")),
            ),
            vec!["apps[3].interfaces[0].acls[0]".into()],
        ),
        (
            "portmap on a cloud network",
            config_with(
                &b,
                "9",
                Acls::default(),
                cloud,
                &tap_app("vpc", &map("tcp", "8080")),
            ),
            vec!["apps[3].interfaces[0].acls[0]".into()],
        ),
        (
            "portmap on a mesh network",
            config_with(
                &b,
                "9",
                Acls::default(),
                mesh,
                &tap_app("fleet", &map("tcp", "8080")),
            ),
            vec!["apps[3].interfaces[0].acls[0]".into()],
        ),
        (
            "eidset with host",
            one_app(&ace1(
                r#"{"type": "eidset"}, {"type": "host", "value": "allowed.test"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches")],
        ),
        (
            "protocol not a protocol",
            one_app(&ace1(r#"{"type": "protocol", "value": "tcpx"}"#, "")),
            vec![format!("{ep}[0].matches[0]")],
        ),
        (
            "protocol over 255",
            one_app(&ace1(r#"{"type": "protocol", "value": "256"}"#, "")),
            vec![format!("{ep}[0].matches[0]")],
        ),
        (
            "port over 65535",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "70000"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches[1]")],
        ),
        (
            "a range upside down",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "udp"}, {"type": "fport", "value": "9000-8000"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches[1]")],
        ),
        (
            "a prefix over /32",
            one_app(&ace1(r#"{"type": "ip", "value": "10.1.0.0/33"}"#, "")),
            vec![format!("{ep}[0].matches[0]")],
        ),
        (
            "dir not a direction",
            one_app(&format!(
                r#"[{{"id": 1, "matches": [{any}], "dir": "SIDEWAYS"}}]"#
            )),
            vec![format!("{ep}[0].dir")],
        ),
        (
            "limitunit not a unit",
            one_app(&ace1(
                any,
                r#", "actions": [{"limit": true, "limitrate": 10, "limitunit": "w", "limitburst": 5}]"#,
            )),
            vec![format!("{ep}[0].actions[0]")],
        ),
        (
            "portmap without lport",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "tcp"}"#,
                r#", "actions": [{"portmap": true, "appPort": 443}]"#,
            )),
            vec![format!("{ep}[0]")],
        ),
        (
            "portmap with icmp",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "icmp"}"#,
                r#", "actions": [{"portmap": true, "appPort": 443}]"#,
            )),
            vec![format!("{ep}[0]")],
        ),
        (
            "adapter naming no port",
            one_app(&ace1(
                r#"{"type": "protocol", "value": "tcp"}, {"type": "lport", "value": "8443"}, {"type": "adapter", "value": "wwan9"}"#,
                r#", "actions": [{"portmap": true, "appPort": 443}]"#,
            )),
            vec![format!("{ep}[0].matches[2]")],
        ),
        (
            "adapter without a port map",
            one_app(&ace1(
                r#"{"type": "ip", "value": "0.0.0.0/0"}, {"type": "adapter", "value": "eth0"}"#,
                "",
            )),
            vec![format!("{ep}[0].matches[1]")],
        ),
        (
            "65 ACEs on one endpoint",
            one_app(&many(65, 1)),
            vec![ep.to_string()],
        ),
        (
            "over 4,096 ACEs in all",
            config_with(&b, "9", web(good_web), "", &fleet_of_64),
            vec!["].acls".into()],
        ),
    ];

    let check_file = b.dir.path.join("bad.json");
    for (what, cfg, want) in &cases {
        r.e.reload(cfg);
        let s = r.e.status_json();
        assert_eq!(
            json_str(&s, "config_version").as_deref(),
            Some("1"),
            "{what}: taken: {s}"
        );
        let rejected = json_at(&s, "rejected").unwrap_or_default();
        for w in want {
            assert!(
                rejected.contains(w.as_str()),
                "{what}: status does not name {w:?}: {rejected}"
            );
        }
        std::fs::write(&check_file, cfg).unwrap();
        let out = std::process::Command::new(ECONET)
            .arg("check")
            .arg(&check_file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: econet check: {err}");
        for w in want {
            assert!(
                err.contains(w.as_str()),
                "{what}: econet check does not name {w:?}: {err}"
            );
        }
        assert_eq!(
            stable_ruleset(&b.dev),
            ruleset,
            "{what}: the firewall changed"
        );
        assert_eq!(b.dev.links(), links, "{what}: links changed");
    }
    // Nothing running was touched: the ping flowed throughout, the ECO keeps its
    // address, the map still answers.
    let replies = flow.replies();
    let worst = replies.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        replies.len() > 20 && worst < 1.0 && flow.flowing(),
        "the flow stalled for {worst:.2} s ({} replies)",
        replies.len()
    );
    assert_eq!(addr_of(&b.web).map(|a| a.to_string()), Some(r.web.clone()));
    let s = r.e.status_json();
    let p = endpoint_path(&s, WEB, "eth0").unwrap();
    assert_eq!(json_str(&s, &format!("{p}.ip")), Some(r.web.clone()), "{s}");
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
        Some("192.0.2.1"),
        "the map after all that"
    );

    // The limits themselves are accepted: 64 ACEs, id 2^24-1 (in the running config),
    // the same lport on the other protocol, exactly 4,096 ACEs in all.
    let fleet_of_63: String = (0..63)
        .map(|i| {
            format!(
                r#", {{"id": "t{i}", "name": "t{i}", "interfaces": [{{"name": "eth0", "network": "lan", "attach": {{"tap": "vif-t{i}"}}, "acls": {sixty_four}}}]}}"#
            )
        })
        .collect();
    let fine = [
        config(&b, "2", web(&sixty_four)),
        config(
            &b,
            "3",
            Acls {
                web: Some(&map("tcp", "8443")),
                api: Some(&map("udp", "8443")),
                cam: None,
            },
        ),
        config_with(&b, "4", web(&sixty_four), "", &fleet_of_63),
        good.replacen("\"config_version\": \"1\"", "\"config_version\": \"5\"", 1),
    ];
    for (i, cfg) in fine.iter().enumerate() {
        r.e.reload(cfg);
        let s = r.e.status_json();
        assert_eq!(
            json_at(&s, "rejected").as_deref(),
            Some("[]"),
            "fine config {i}: {s}"
        );
        assert_eq!(
            json_str(&s, "config_version"),
            Some((i + 2).to_string()),
            "{s}"
        );
    }
    assert_eq!(
        tcp_ask(&b.up, "192.0.2.2", 8443).as_deref(),
        Some("192.0.2.1"),
        "the map, reapplied"
    );
}
