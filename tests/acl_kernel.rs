//! The ACL objects against the real kernel, without links: the firewall and every
//! endpoint's unit installed in a private network namespace, read back, adopted as
//! they are, and one endpoint's change touching only its own objects.

mod common;

use econet::acl::{self, AclChanges};
use econet::config::{self, Ace, AceAction, AceDir, AceMatches, AceProto, PortRange};
use econet::firewall::Allowed;
use econet::netlink::nft::Nft;
use econet::reconcile::desired::desired;
use econet::reconcile::facts::{Facts, PortFact};
use std::net::Ipv4Addr;
use std::process::Command;

fn ace(id: u32, matches: AceMatches, action: AceAction, dir: AceDir) -> Ace {
    Ace {
        id,
        name: None,
        matches,
        action,
        dir,
    }
}

fn tcp(lport: Option<u16>, fport: Option<u16>) -> AceMatches {
    AceMatches {
        protocol: Some(AceProto::TCP),
        lport: lport.map(|p| PortRange { lo: p, hi: p }),
        fport: fport.map(|p| PortRange { lo: p, hi: p }),
        ..Default::default()
    }
}

/// The board's example device with ACLs on three endpoints: a local one (port map,
/// host, eidset, limit, drop), a switch one, a cloud one.
fn config() -> config::Config {
    let mut cfg = config::parse(include_bytes!("../board/examples/spec-device.json"))
        .expect("example config");
    let web = &mut cfg.apps[0].interfaces[0];
    web.acls = Some(vec![
        ace(
            1,
            tcp(Some(8443), None),
            AceAction::Portmap { app_port: 443 },
            AceDir::Both,
        ),
        ace(
            2,
            AceMatches {
                host: Some("updates.example.com".into()),
                ..Default::default()
            },
            AceAction::Allow,
            AceDir::Both,
        ),
        ace(
            3,
            AceMatches {
                eidset: true,
                ..Default::default()
            },
            AceAction::Limit {
                rate: 10,
                per_secs: 1,
                burst: 5,
            },
            AceDir::Both,
        ),
        ace(
            4,
            AceMatches {
                ip: Some("10.9.0.0/16".parse().expect("prefix")),
                ..Default::default()
            },
            AceAction::Drop,
            AceDir::Egress,
        ),
        ace(
            5,
            AceMatches {
                host: Some("db".into()),
                ..Default::default()
            },
            AceAction::Allow,
            AceDir::Both,
        ),
    ]);
    cfg.apps[1].interfaces[0].acls = Some(vec![ace(
        7,
        AceMatches {
            protocol: Some(AceProto::UDP),
            fport: Some(PortRange { lo: 502, hi: 510 }),
            ip: Some("192.168.7.0/24".parse().expect("prefix")),
            ..Default::default()
        },
        AceAction::Allow,
        AceDir::Ingress,
    )]);
    cfg.apps[1].interfaces[1].acls = Some(vec![ace(
        9,
        tcp(None, Some(22)),
        AceAction::Allow,
        AceDir::Egress,
    )]);
    cfg
}

fn facts(cfg: &config::Config) -> Facts {
    let mut f = Facts {
        ports: vec![PortFact::default(); cfg.ports.len()],
        ..Default::default()
    };
    f.ports[0] = PortFact {
        present: true,
        carrier: true,
        addrs: vec![(Ipv4Addr::new(192, 0, 2, 7), 24)],
        addrs6: Vec::new(),
        mtu: 1500,
        accept_ra: None,
    };
    f
}

/// Runs `f` on a thread of its own in a new network namespace; `nft` there through
/// `nsenter` on that thread's namespace.
fn in_private_netns<T: Send + 'static>(
    f: impl FnOnce(&dyn Fn(&str) -> String) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let tid = nix::unistd::gettid();
        let ns = format!("/proc/{}/task/{tid}/ns/net", std::process::id());
        let nft = move |args: &str| -> String {
            let o = Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .arg("nft")
                .arg(args)
                .output()
                .expect("nft");
            format!("{:?}", o.status)
                + &String::from_utf8_lossy(&o.stdout)
                + &String::from_utf8_lossy(&o.stderr)
        };
        f(&nft)
    })
    .join()
    .expect("thread")
}

fn apply(nft: &mut Nft, changes: &AclChanges) {
    let mut b = nft.batch();
    changes.write(&mut b);
    nft.commit(b).expect("ACL changes accepted");
}

#[test]
fn units_install_read_back_and_change_one_at_a_time() {
    common::require_root();
    in_private_netns(|nft_cli| {
        let cfg = config();
        let lease = Allowed::new(
            &cfg.apps[0].interfaces[0].host_ifname,
            cfg.apps[0].interfaces[0].eco_mac(&cfg.apps[0].id),
            Some(Ipv4Addr::new(10, 1, 0, 10)),
        );
        let d = desired(&cfg, &facts(&cfg), &[lease], &[]);
        assert_eq!(d.acl.units.len(), 3);
        let mut nft = Nft::open().expect("nft socket");
        let mut b = nft.batch();
        d.firewall.build(
            &mut b,
            (false, false),
            (&d.allowed, &d.allowed6),
            &Default::default(),
        );
        nft.commit(b).expect("firewall accepted");
        let all = acl::changes(&d.acl, &Default::default());
        let mut b = nft.batch();
        all.write(&mut b);
        nft.commit(b).expect("ACLs accepted");

        // Read back: nothing to change, the units are adopted.
        let cur = acl::read(&mut nft).expect("read back");
        let again = acl::changes(&d.acl, &cur);
        assert!(again.is_empty(), "{again:#?}");
        assert_eq!(cur.chains.len(), 6, "{:?}", cur.chains);
        let ruleset = nft_cli("list ruleset");
        assert!(
            ruleset.starts_with("ExitStatus(unix_wait_status(0))"),
            "{ruleset}"
        );
        for want in [
            "portmap_out",
            "tcp . 8443",
            "10.1.0.10 . 443",
            "acl_out4",
            "rate over 10/second",
            "limit name",
            "ct original proto-dst 8443",
            "& 0xffff0000 == 0xa090000 counter",
            "udp sport 502-510 counter",
            "eids_",
            "hosts4_ec-lan",
        ] {
            assert!(ruleset.contains(want), "{want:?} missing in:\n{ruleset}");
        }

        // One endpoint's ACL changes: only its unit is re-made.
        let mut cfg2 = cfg.clone();
        if let Some(a) = cfg2.apps[1].interfaces[1].acls.as_mut() {
            a[0].matches.fport = Some(PortRange { lo: 2222, hi: 2222 });
        }
        let d2 = desired(&cfg2, &facts(&cfg2), &[lease], &[]);
        let c = acl::changes(&d2.acl, &cur);
        assert_eq!(c.new_units.len(), 1, "{c:#?}");
        assert_eq!(c.del_chains.len(), 2, "{c:#?}");
        assert!(c.new_sets.is_empty() && c.del_sets.is_empty(), "{c:#?}");
        assert_eq!(c.del_pm, vec![]);
        apply(&mut nft, &c);
        let cur2 = acl::read(&mut nft).expect("read back");
        assert!(acl::changes(&d2.acl, &cur2).is_empty());

        // The port moves: only the port map elements change.
        let mut f3 = facts(&cfg2);
        f3.ports[0].addrs = vec![(Ipv4Addr::new(198, 51, 100, 9), 24)];
        let d3 = desired(&cfg2, &f3, &[lease], &[]);
        let c = acl::changes(&d3.acl, &cur2);
        assert!(c.new_units.is_empty() && c.del_chains.is_empty(), "{c:#?}");
        assert_eq!((c.add_pm.len(), c.del_pm.len()), (2, 2), "{c:#?}");
        apply(&mut nft, &c);

        // ACLs removed: everything of theirs goes.
        let mut cfg4 = cfg2.clone();
        for a in &mut cfg4.apps {
            for i in &mut a.interfaces {
                i.acls = None;
            }
        }
        let d4 = desired(&cfg4, &f3, &[lease], &[]);
        let cur3 = acl::read(&mut nft).expect("read back");
        let c = acl::changes(&d4.acl, &cur3);
        apply(&mut nft, &c);
        let cur4 = acl::read(&mut nft).expect("read back");
        assert_eq!(cur4, Default::default(), "{cur4:#?}");
    });
}

/// The dual-stack example with IPv6 ACEs on web's lan endpoint (static ip6) and
/// plc's lan endpoint, and an IPv4 one on plc's legacy (IPv4-only) endpoint.
fn config6() -> config::Config {
    let mut cfg = config::parse(include_bytes!("../board/examples/dual-stack-device.json"))
        .expect("example config");
    let six = |s: &str| s.parse::<econet::addr::Ipv6Net>().expect("prefix");
    cfg.apps[0].interfaces[0].acls = Some(vec![
        ace(
            1,
            AceMatches {
                ip6: Some(six("2001:db8:1::/48")),
                ..tcp(None, Some(443))
            },
            AceAction::Allow,
            AceDir::Egress,
        ),
        ace(
            2,
            AceMatches {
                protocol: Some(AceProto::Number(1)),
                ..Default::default()
            },
            AceAction::Limit {
                rate: 5,
                per_secs: 1,
                burst: 5,
            },
            AceDir::Both,
        ),
        ace(
            3,
            AceMatches {
                eidset: true,
                ..Default::default()
            },
            AceAction::Allow,
            AceDir::Both,
        ),
    ]);
    cfg.apps[1].interfaces[1].acls = Some(vec![ace(
        4,
        AceMatches {
            ip6: Some(six("2001:db8:2::1/128")),
            ..Default::default()
        },
        AceAction::Drop,
        AceDir::Both,
    )]);
    cfg.apps[1].interfaces[2].acls = Some(vec![ace(
        5,
        tcp(None, Some(22)),
        AceAction::Allow,
        AceDir::Egress,
    )]);
    cfg
}

#[test]
fn ipv6_units_install_read_back_and_change_one_at_a_time() {
    common::require_root();
    in_private_netns(|nft_cli| {
        let cfg = config6();
        let web = &cfg.apps[0].interfaces[0];
        let plc = &cfg.apps[1].interfaces[1];
        let lease6 = econet::firewall::Allowed6::new(
            &plc.host_ifname,
            plc.eco_mac(&cfg.apps[1].id),
            "fd00:1:2:3::1:9".parse().expect("address"),
        );
        let lease = Allowed::new(
            &web.host_ifname,
            web.eco_mac(&cfg.apps[0].id),
            Some(Ipv4Addr::new(10, 1, 0, 20)),
        );
        let d = desired(&cfg, &facts(&cfg), &[lease], std::slice::from_ref(&lease6));
        assert_eq!(d.acl.units.len(), 3);
        // A bridge-family IPv6 switch for ACLs on a dual-stack network.
        assert!(d
            .sysctls
            .iter()
            .any(|s| s.path == acl::BR_NF_CALL_IP6TABLES && s.value == "1"));
        let mut nft = Nft::open().expect("nft socket");
        let mut b = nft.batch();
        d.firewall.build(
            &mut b,
            (false, false),
            (&d.allowed, &d.allowed6),
            &Default::default(),
        );
        nft.commit(b).expect("firewall accepted");
        let mut b = nft.batch();
        acl::changes(&d.acl, &Default::default()).write(&mut b);
        nft.commit(b).expect("ACLs accepted");

        let cur = acl::read(&mut nft).expect("read back");
        let again = acl::changes(&d.acl, &cur);
        assert!(again.is_empty(), "{again:#?}");
        let six: Vec<&acl::VElem> = cur
            .velems
            .iter()
            .filter(|e| e.map == acl::MAP_OUT6 || e.map == acl::MAP_IN6)
            .collect();
        // web: its MAC out, its static ip6 in; plc: its MAC out, its lease in.
        assert_eq!(six.len(), 4, "{six:#?}");
        let ruleset = nft_cli("list ruleset");
        assert!(
            ruleset.starts_with("ExitStatus(unix_wait_status(0))"),
            "{ruleset}"
        );
        for want in [
            "map acl_out6",
            "type ifname . ether_addr : verdict",
            "type ifname . ipv6_addr : verdict",
            "iifname . ether saddr vmap @acl_out6",
            "oifname . ip6 daddr vmap @acl_in6",
            "ip6 daddr 2001:db8:1::/48 tcp dport 443 counter",
            "ip6 saddr 2001:db8:2::1 counter",
            "chain acl_l3_in6",
            "chain acl_output",
            "ip6 daddr @allowed6_ip return",
            "meta l4proto ipv6-icmp counter",
            "ip6 daddr fd00:1:2:3::/64 counter",
            "ip6 saddr 2001:db8:42::10 counter",
        ] {
            assert!(ruleset.contains(want), "{want:?} missing in:\n{ruleset}");
        }

        // plc's ACL changes: only its unit is re-made.
        let mut cfg2 = cfg.clone();
        if let Some(a) = cfg2.apps[1].interfaces[1].acls.as_mut() {
            a[0].dir = AceDir::Egress;
        }
        let d2 = desired(
            &cfg2,
            &facts(&cfg2),
            &[lease],
            std::slice::from_ref(&lease6),
        );
        let c = acl::changes(&d2.acl, &cur);
        assert_eq!(c.new_units.len(), 1, "{c:#?}");
        assert_eq!(c.new_units[0].port, plc.host_ifname);
        // Its four chains (IPv4 and IPv6, out and in), nothing of web's.
        assert_eq!(c.del_chains.len(), 4, "{c:#?}");
        assert_eq!(c.del_velems.len(), 2, "{c:#?}"); // its MAC out, its lease in
        apply(&mut nft, &c);
        let cur2 = acl::read(&mut nft).expect("read back");
        assert!(acl::changes(&d2.acl, &cur2).is_empty());

        // A new DHCPv6 lease of web: one element, no unit.
        let lease6b = econet::firewall::Allowed6::new(
            &web.host_ifname,
            web.eco_mac(&cfg.apps[0].id),
            "fd00:1:2:3::1:a".parse().expect("address"),
        );
        let d3 = desired(&cfg2, &facts(&cfg2), &[lease], &[lease6, lease6b]);
        let c = acl::changes(&d3.acl, &cur2);
        assert!(c.new_units.is_empty() && c.del_chains.is_empty(), "{c:#?}");
        assert_eq!(c.add_velems.len(), 1, "{c:#?}");
        assert_eq!(c.add_velems[0].map, acl::MAP_IN6);
        apply(&mut nft, &c);
        let cur3 = acl::read(&mut nft).expect("read back");
        assert!(acl::changes(&d3.acl, &cur3).is_empty());
    });
}
