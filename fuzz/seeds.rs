//! Seed corpora for the fuzz targets in `fuzz/fuzz_targets/`, made from what the unit
//! tests already hold: the packets captured from real peers (udhcpc, dhclient, dhcpcd,
//! dnsmasq, dig, kdig, charon, radvd, Linux neighbour discovery; `src/wire/testdata.rs`,
//! `src/wire/*/captures.rs`, `wire::icmpv6::captures`); the
//! spec's example config, the board profiles and the demo's map server config; and for
//! LISP, which has no foreign peer here, the datagrams of an in-memory exchange between
//! econet's xTRs and map server (the ones Wireshark decodes in
//! `lisp::tests::wireshark_decodes_our_packets`).
//!
//! This file is part of econet's unit tests (`src/lib.rs` includes it under
//! `cfg(test)`, so it reaches the captures). `cargo test` checks that every target in
//! `fuzz/Cargo.toml` has seeds and that each seed gets past its target's first parser.
//! With `ECONET_FUZZ_SEEDS=DIR` it also writes them, one file a seed, to
//! `DIR/<target>/` (that is what `.ci/fuzz` runs).

use crate::dhcp::{frame, Config, Endpoint, EndpointKey, Rx, Server};
use crate::esp::{EspKeys, Inbound, KeyMaterial, Lifetime, HEADER_LEN, ICV_LEN};
use crate::lisp::tests::wire_samples;
use crate::wire::dhcpv6::{self as dhcpv6_wire, captures as dhcpv6_cap};
use crate::wire::dns::captures as dns;
use crate::wire::dns::tcp;
use crate::wire::icmpv6::captures as icmpv6_cap;
use crate::wire::ike::captures as ike;
use crate::wire::lisp::{CONTROL_PORT, DATA_PORT};
use crate::wire::{dhcp as dhcp_wire, esp as esp_wire, testdata as dhcp_cap, udp};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Target name → (seed name, bytes).
type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// The fuzz targets `fuzz/Cargo.toml` declares.
fn targets() -> Vec<String> {
    include_str!("Cargo.toml")
        .split("[[bin]]")
        .skip(1)
        .filter_map(|b| {
            let line = b.lines().find(|l| l.starts_with("name = "))?;
            Some(
                line.trim_start_matches("name = ")
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .collect()
}

/// The frames captured from udhcpc, dhclient and dhcpcd: their DHCP requests, and the
/// ARP around udhcpc's (its request for the gateway, its conflict probe, and the
/// kernel's replies).
fn dhcp_frames() -> Vec<(&'static str, &'static [u8])> {
    let mut f = dhcp_request_frames().to_vec();
    f.extend([
        ("udhcpc_arp_request", &dhcp_cap::UDHCPC_ARP_REQUEST[..]),
        ("kernel_arp_reply", &dhcp_cap::KERNEL_ARP_REPLY[..]),
        ("udhcpc_arp_probe", &dhcp_cap::UDHCPC_ARP_PROBE[..]),
        (
            "kernel_arp_probe_reply",
            &dhcp_cap::KERNEL_ARP_PROBE_REPLY[..],
        ),
    ]);
    f
}

/// The DHCP client messages captured from udhcpc, dhclient and dhcpcd (UDP payloads).
fn dhcp_requests() -> Vec<(&'static str, &'static [u8])> {
    dhcp_request_frames()
        .into_iter()
        .map(|(n, f)| (n, frame::parse_request(f, udp::Checksum::Ignore).unwrap().2))
        .collect()
}

fn dhcp_request_frames() -> [(&'static str, &'static [u8]); 15] {
    [
        ("udhcpc_discover", &dhcp_cap::UDHCPC_DISCOVER),
        ("udhcpc_request", &dhcp_cap::UDHCPC_REQUEST),
        ("udhcpc_renew", &dhcp_cap::UDHCPC_RENEW),
        ("udhcpc_release", &dhcp_cap::UDHCPC_RELEASE),
        ("udhcpc_decline", &dhcp_cap::UDHCPC_DECLINE),
        ("dhclient_discover", &dhcp_cap::DHCLIENT_DISCOVER),
        ("dhclient_request", &dhcp_cap::DHCLIENT_REQUEST),
        ("dhclient_init_reboot", &dhcp_cap::DHCLIENT_INIT_REBOOT),
        ("dhclient_release", &dhcp_cap::DHCLIENT_RELEASE),
        ("dhcpcd_discover", &dhcp_cap::DHCPCD_DISCOVER),
        ("dhcpcd_request", &dhcp_cap::DHCPCD_REQUEST),
        ("dhcpcd_renew", &dhcp_cap::DHCPCD_RENEW),
        ("dhcpcd_init_reboot", &dhcp_cap::DHCPCD_INIT_REBOOT),
        ("dhcpcd_release", &dhcp_cap::DHCPCD_RELEASE),
        ("dhcpcd_inform", &dhcp_cap::DHCPCD_INFORM),
    ]
}

/// A lease file as the server writes it, after the captured clients' exchanges.
fn lease_file() -> Vec<u8> {
    let key = EndpointKey {
        app_id: "a".into(),
        ifname: "eth0".into(),
    };
    let mut cfg = Config::new("10.9.0.0/24".parse().unwrap(), "10.9.0.1".parse().unwrap());
    cfg.endpoints = vec![Endpoint {
        key: key.clone(),
        mac: "72:1e:a0:80:59:50".parse().unwrap(),
        static_ip: None,
        hostname: "web".into(),
    }];
    let mut s = Server::new(cfg);
    let now = Instant::now();
    let mut buf = [0u8; 1500];
    // The ECO itself (udhcpc, from the configured MAC), then dhclient and dhcpcd as
    // guests behind it (from MACs of their own).
    for (i, (_, p)) in dhcp_requests().into_iter().enumerate() {
        let src_mac = match i {
            0..5 => crate::addr::MacAddr([0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50]),
            _ => crate::addr::MacAddr([2, 0, 0, 0, 0, i as u8]),
        };
        let rx = Rx {
            endpoint: Some(&key),
            src_mac,
            src_ip: "0.0.0.0".parse().unwrap(),
            payload: p,
        };
        let t = now + Duration::from_secs(i as u64);
        let _ = s.handle(t, 1_800_000_000 + i as u64, rx, &mut buf);
        while s
            .poll(t + Duration::from_secs(1), 1_800_000_000, &mut buf)
            .is_some()
        {}
    }
    s.snapshot()
}

/// The plaintext of a captured ESP packet, opened with its captured key, as the second
/// half of `esp_packet` takes it: sequence number, then payload and trailer.
fn esp_plaintext(pkt: &[u8], keymat: &[u8]) -> Vec<u8> {
    let k = EspKeys {
        spi: u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]),
        keymat: KeyMaterial::from_slice(keymat).unwrap(),
    };
    let mut m = pkt.to_vec();
    Inbound::new(&k, Lifetime::default(), Instant::now())
        .open_in_place(&mut m)
        .unwrap();
    [&pkt[4..8], &m[HEADER_LEN..m.len() - ICV_LEN]].concat()
}

fn seeds() -> Seeds {
    let mut s = Seeds::new();
    let mut add = |t: &'static str, name: &str, b: &[u8]| {
        s.entry(t).or_default().push((name.to_string(), b.to_vec()));
    };

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "board/examples/spec-device.json",
        "board/examples/acl-device.json",
        "board/generic-x86_64.json",
        "board/rpi4-aarch64.json",
        "board/imx6-armv7.json",
        "board/map-server-x86_64.json",
        "board/examples/map-server.json",
    ] {
        let name = f.rsplit('/').next().unwrap().trim_end_matches(".json");
        add("config", name, &std::fs::read(root.join(f)).unwrap());
    }
    add(
        "config",
        "demo_map_server",
        crate::demo::map_server_config().as_bytes(),
    );

    for (n, p) in dhcp_requests() {
        add("dhcp_server", n, p);
    }
    // Whole frames, as the shell's packet socket reads them: DHCP and ARP.
    for (n, f) in dhcp_frames() {
        add("dhcp_server", &format!("frame_{n}"), f);
    }
    add("dhcp_server", "lease_file", &lease_file());

    // DHCPv6: the captured dhclient and dhcpcd messages (UDP payloads), and a lease file.
    for (n, m) in dhcp6_requests() {
        add("dhcp6_server", n, &dhcpv6_cap::hex(m));
    }
    add(
        "dhcp6_server",
        "lease_file",
        b"econet-dhcp6-leases 1\nfd00:1::db 1799999000 72:1e:a0:80:59:50 eco a eth0 web\n",
    );

    let dns_msgs: [(&str, &[u8]); 21] = [
        ("dig_a_edns_query", dns::DIG_A_EDNS_QUERY),
        ("dnsmasq_refused_edns", dns::DNSMASQ_REFUSED_EDNS),
        ("dig_upstream_query", dns::DIG_UPSTREAM_QUERY),
        ("dnsmasq_upstream_reply", dns::DNSMASQ_UPSTREAM_REPLY),
        ("dig_noedns_query", dns::DIG_NOEDNS_QUERY),
        ("dnsmasq_noedns_reply", dns::DNSMASQ_NOEDNS_REPLY),
        ("kdig_query", dns::KDIG_QUERY),
        ("dig_ptr_query", dns::DIG_PTR_QUERY),
        ("dnsmasq_ptr_reply", dns::DNSMASQ_PTR_REPLY),
        ("dig_host_query", dns::DIG_HOST_QUERY),
        ("dnsmasq_two_a_reply", dns::DNSMASQ_TWO_A_REPLY),
        ("dig_aaaa_query", dns::DIG_AAAA_QUERY),
        ("dig_big_noedns_query", dns::DIG_BIG_NOEDNS_QUERY),
        ("dnsmasq_tc_reply", dns::DNSMASQ_TC_REPLY),
        ("dig_nx_query", dns::DIG_NX_QUERY),
        ("dnsmasq_nx_reply", dns::DNSMASQ_NX_REPLY),
        ("dig_auth_nx_query", dns::DIG_AUTH_NX_QUERY),
        ("dnsmasq_auth_nx_reply", dns::DNSMASQ_AUTH_NX_REPLY),
        ("dnsmasq_auth_nodata_reply", dns::DNSMASQ_AUTH_NODATA_REPLY),
        ("dig_auth_a_query", dns::DIG_AUTH_A_QUERY),
        ("dnsmasq_auth_a_reply", dns::DNSMASQ_AUTH_A_REPLY),
    ];
    let tcp_msgs: [(&str, &[u8]); 2] = [
        ("dig_tcp_query", dns::DIG_TCP_QUERY),
        ("dnsmasq_tcp_reply", dns::DNSMASQ_TCP_REPLY),
    ];
    for (n, m) in dns_msgs {
        add("dns_query", n, m);
    }
    for (n, m) in tcp_msgs {
        add("dns_query", n, &m[tcp::PREFIX_LEN..]);
        add("dns_tcp", n, m);
    }
    // Pipelined (RFC 7766 §6.2.1.1): every captured query on one connection.
    let mut stream = Vec::new();
    for (n, m) in dns_msgs.into_iter().filter(|(n, _)| n.ends_with("_query")) {
        let mut one = Vec::new();
        assert!(tcp::write_message(&mut one, m));
        add("dns_tcp", n, &one);
        stream.extend_from_slice(&one);
    }
    add("dns_tcp", "all_queries_pipelined", &stream);

    let ike_msgs: [(&str, &[u8]); 5] = [
        (
            "charon_ike_sa_init_request",
            &ike::CHARON_IKE_SA_INIT_REQUEST,
        ),
        (
            "econet_ike_sa_init_response",
            &ike::ECONET_IKE_SA_INIT_RESPONSE,
        ),
        ("charon_ike_auth_request", &ike::CHARON_IKE_AUTH_REQUEST),
        (
            "charon_create_child_sa_request",
            &ike::CHARON_CREATE_CHILD_SA_REQUEST,
        ),
        (
            "charon_ike_sa_init_response",
            &ike::CHARON_IKE_SA_INIT_RESPONSE,
        ),
    ];
    for (n, m) in ike_msgs {
        add("ike_message", n, m);
        add(
            "esp_packet",
            n,
            &[&esp_wire::NON_ESP_MARKER[..], m].concat(),
        );
    }
    add("esp_packet", "econet_esp", &ike::ECONET_ESP);
    add("esp_packet", "charon_esp", &ike::CHARON_ESP);
    add("esp_packet", "nat_keepalive", &esp_wire::NAT_KEEPALIVE);
    add(
        "esp_packet",
        "econet_esp_plaintext",
        &esp_plaintext(&ike::ECONET_ESP, &ike::ECONET_ESP_KEYMAT),
    );
    add(
        "esp_packet",
        "charon_esp_plaintext",
        &esp_plaintext(&ike::CHARON_ESP, &ike::CHARON_ESP_KEYMAT),
    );

    // The ICMPv6 messages of the neighbour-discovery captures (after Ethernet and IPv6).
    for (n, f) in [
        ("kernel_dad_ns", &icmpv6_cap::KERNEL_DAD_NS[..]),
        ("kernel_rs", &icmpv6_cap::KERNEL_RS),
        ("kernel_ns", &icmpv6_cap::KERNEL_NS),
        ("kernel_na_tlla", &icmpv6_cap::KERNEL_NA_TLLA),
        ("kernel_na", &icmpv6_cap::KERNEL_NA),
        ("dnsmasq_ra_unicast", &icmpv6_cap::DNSMASQ_RA_UNICAST),
        ("dnsmasq_ra", &icmpv6_cap::DNSMASQ_RA),
        ("radvd_ra", &icmpv6_cap::RADVD_RA),
        ("radvd_stop_ra", &icmpv6_cap::RADVD_STOP_RA),
    ] {
        add("ra", n, &f[14 + crate::wire::ipv6::HEADER_LEN..]);
    }

    let (clear, encrypted) = wire_samples();
    for (kind, trace) in [("clear", clear), ("crypto", encrypted)] {
        for (i, (from, to, b)) in trace.into_iter().enumerate() {
            let t = match (from.port(), to.port()) {
                (DATA_PORT, _) | (_, DATA_PORT) => "lisp_data",
                (CONTROL_PORT, _) | (_, CONTROL_PORT) => "lisp_control",
                _ => continue,
            };
            add(t, &format!("{kind}_{i:02}"), &b);
        }
    }
    s
}

/// The DHCPv6 client messages captured from dhclient and dhcpcd (hex).
fn dhcp6_requests() -> [(&'static str, &'static str); 13] {
    [
        ("dhclient_solicit", dhcpv6_cap::DHCLIENT_SOLICIT),
        ("dhclient_request", dhcpv6_cap::DHCLIENT_REQUEST),
        ("dhclient_renew", dhcpv6_cap::DHCLIENT_RENEW),
        ("dhclient_rebind", dhcpv6_cap::DHCLIENT_REBIND),
        ("dhclient_release", dhcpv6_cap::DHCLIENT_RELEASE),
        (
            "dhclient_information_request",
            dhcpv6_cap::DHCLIENT_INFORMATION_REQUEST,
        ),
        ("dhcpcd_solicit_rapid", dhcpv6_cap::DHCPCD_SOLICIT_RAPID),
        ("dhcpcd_renew", dhcpv6_cap::DHCPCD_RENEW),
        ("dhcpcd_rebind", dhcpv6_cap::DHCPCD_REBIND),
        ("dhcpcd_confirm", dhcpv6_cap::DHCPCD_CONFIRM),
        ("dhcpcd_solicit", dhcpv6_cap::DHCPCD_SOLICIT),
        ("dhcpcd_request", dhcpv6_cap::DHCPCD_REQUEST),
        ("dhcpcd_release", dhcpv6_cap::DHCPCD_RELEASE),
    ]
}

/// Whether `seed` gets past the first parser of `target`.
fn reaches(target: &str, seed: &[u8]) -> bool {
    match target {
        "config" => {
            crate::config::parse(seed).is_ok()
                || crate::lisp::ms_config::parse(seed).is_ok()
                || crate::board::parse(seed).is_ok()
        }
        "dhcp_server" => {
            seed.starts_with(crate::dhcp::store::HEADER.as_bytes())
                || frame::parse_request(seed, udp::Checksum::Ignore).is_some()
                || frame::parse_arp(seed).is_some()
                || dhcp_wire::Packet::new_checked(seed)
                    .is_ok_and(|p| dhcp_wire::Repr::parse(&p).is_ok())
        }
        "dhcp6_server" => {
            seed.starts_with(crate::dhcp6::store::HEADER.as_bytes())
                || dhcpv6_wire::Packet::new_checked(seed)
                    .is_ok_and(|p| dhcpv6_wire::Repr::parse(&p).is_ok())
        }
        "dns_query" => crate::wire::dns::Packet::new_checked(seed)
            .is_ok_and(|p| p.questions().all(|q| q.is_ok())),
        "dns_tcp" => {
            let mut r = tcp::Reader::default();
            let mut n = 0;
            assert!(r.push(seed));
            while let Some(m) = r.next_message() {
                assert!(reaches("dns_query", &m));
                n += 1;
            }
            n > 0 && r.buffered() == 0
        }
        "ike_message" => crate::wire::ike::Message::parse(seed).is_ok(),
        "esp_packet" => esp_wire::classify(seed).is_ok(),
        "lisp_control" | "lisp_data" => !seed.is_empty(),
        "ra" => crate::wire::icmpv6::Packet::new_checked(seed)
            .is_ok_and(|p| crate::wire::icmpv6::NdOptions::from_bytes(p.options()).is_ok()),
        _ => false,
    }
}

#[test]
fn fuzz_seeds() {
    let seeds = seeds();
    for t in targets() {
        let Some(list) = seeds.get(t.as_str()) else {
            panic!("fuzz target {t} has no seeds: add them in fuzz/seeds.rs");
        };
        for (n, b) in list {
            assert!(
                reaches(&t, b),
                "seed {t}/{n} does not get past the first parser"
            );
        }
    }
    for t in seeds.keys() {
        assert!(
            targets().iter().any(|x| x == t),
            "seeds for an unknown target {t}"
        );
    }
    let lisp = |t| seeds.get(t).map_or(0, Vec::len);
    assert!(lisp("lisp_control") >= 8 && lisp("lisp_data") >= 2);

    let Some(dir) = std::env::var_os("ECONET_FUZZ_SEEDS") else {
        return;
    };
    for (t, list) in &seeds {
        let d = Path::new(&dir).join(t);
        std::fs::create_dir_all(&d).unwrap();
        for (n, b) in list {
            std::fs::write(d.join(n), b).unwrap();
        }
    }
}
