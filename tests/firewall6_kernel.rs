//! The IPv6 firewall against the real kernel, without links: the board's dual-stack
//! example installed in a private network namespace, listed by `nft`, read back with
//! nothing to change, and DHCPv6 senders admitted and dismissed element by element.

mod common;

use econet::addr::MacAddr;
use econet::config;
use econet::firewall::Allowed6;
use econet::netlink::nft::Nft;
use econet::reconcile::current::{read_firewall, Current};
use econet::reconcile::desired::desired;
use econet::reconcile::facts::{Facts, PortFact};
use econet::reconcile::plan::{plan, Op};
use econet::reconcile::Reconciler;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

fn config() -> config::Config {
    config::parse(include_bytes!("../board/examples/dual-stack-device.json"))
        .expect("example config")
}

/// eth0 (lan's port) up with a global IPv6 address; eth1 (legacy's) up, IPv4 only.
fn facts(cfg: &config::Config) -> Facts {
    let port = |last: u8, v6: bool| PortFact {
        present: true,
        carrier: true,
        addrs: vec![(Ipv4Addr::new(192, 0, 2, last), 24)],
        addrs6: match v6 {
            true => vec![("2001:db8::7".parse().expect("v6"), 64)],
            false => Vec::new(),
        },
        mtu: 1500,
        accept_ra: None,
    };
    let mut f = Facts {
        ports: vec![PortFact::default(); cfg.ports.len()],
        ..Default::default()
    };
    f.ports[0] = port(7, true);
    f.ports[1] = port(8, false);
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
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={ns}")).arg("nft");
            for a in args.split_whitespace() {
                c.arg(a);
            }
            let o = c.output().expect("nft");
            format!("{:?}", o.status)
                + &String::from_utf8_lossy(&o.stdout)
                + &String::from_utf8_lossy(&o.stderr)
        };
        f(&nft)
    })
    .join()
    .expect("thread")
}

fn firewall_ops(d: &econet::reconcile::desired::Desired, nft: &mut Nft) -> Vec<Op> {
    let cur = Current {
        firewall: read_firewall(nft),
        ..Default::default()
    };
    plan(d, &cur)
        .steps
        .into_iter()
        .map(|s| s.op)
        .filter(|op| {
            matches!(
                op,
                Op::FirewallBuild { .. } | Op::FirewallElems { .. } | Op::FirewallDelete { .. }
            )
        })
        .collect()
}

#[test]
fn the_ipv6_rules_install_read_back_and_admit_dhcpv6_senders() {
    common::require_root();
    in_private_netns(|nft_cli| {
        let cfg = config();
        let plant = &cfg.apps[0].interfaces[1];
        let lease = Allowed6::new(
            &plant.host_ifname,
            plant.eco_mac(&cfg.apps[0].id),
            "fd00:1:2:4::1234".parse().expect("v6"),
        );
        let d = desired(&cfg, &facts(&cfg), &[], &[lease]);
        let lan = &d.firewall.nets[0];
        assert_eq!(lan.nat6_port.as_deref(), Some("eth0"));
        assert_eq!(d.firewall.nets[1].nat6_port, None, "plant has no port");
        assert_eq!(d.firewall.nets[2].nat_port.as_deref(), Some("eth1"));
        assert_eq!(d.allowed6.len(), 3, "two static, one leased");

        let mut nft = Nft::open().expect("nft socket");
        let mut b = nft.batch();
        d.firewall.build(
            &mut b,
            (false, false),
            (&d.allowed, &d.allowed6),
            &Default::default(),
        );
        nft.commit(b).expect("firewall accepted");
        let ruleset = nft_cli("list ruleset");
        assert!(
            ruleset.starts_with("ExitStatus(unix_wait_status(0))"),
            "{ruleset}"
        );
        if std::env::var_os("ECONET_SHOW_RULESET").is_some() {
            eprintln!("{ruleset}");
        }
        for want in [
            // inet: NAT66, forwarding by family, input from dual-stack bridges.
            "ip6 saddr fd00:1:2:3::/64 oifname \"eth0\" masquerade",
            "iifname \"ec-lan\" oifname \"eth0\" accept",
            "iifname \"eth0\" oifname \"ec-lan\" ct state established,related accept",
            "iifname \"ec-legacy\" oifname \"eth1\" accept",
            "iifname @v6_bridges icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 accept",
            "iifname @v6_bridges icmpv6 type nd-neighbor-advert ip6 hoplimit 255 accept",
            "iifname @v6_bridges icmpv6 type nd-router-solicit ip6 hoplimit 255 accept",
            "iifname @v6_bridges meta nfproto ipv6 udp dport 547 accept",
            "icmpv6 type nd-redirect drop",
            // bridge: admitted senders, the subnets, DHCPv6 servers.
            "fd00:1:2:3::20",
            "fd00:1:2:4::1:7",
            "fd00:1:2:4::1234",
            "ip6 saddr != fd00:1:2:3::/64 drop",
            "udp sport 547 drop",
            "udp dport 546 drop",
            "ip6 saddr fd00:1:2:4::/64 iifname . ether saddr . ip6 saddr != @allowed6 ip6 saddr @allowed6_ip drop",
            "ip6 saddr fd00:1:2:3::/64 iifname . ether saddr . ip6 saddr != @allowed6 drop",
            "iifname vmap @acl_out_port",
        ] {
            assert!(ruleset.contains(want), "{want:?} missing in:\n{ruleset}");
        }
        // lan has no slaac: no claims of its subnet.
        assert!(
            !ruleset.contains("ip6 saddr fd00:1:2:3::/64 iifname . ether saddr . ip6 saddr != @allowed6 ip6 saddr @allowed6_ip drop"),
            "{ruleset}"
        );

        // Read back: nothing to do.
        assert_eq!(firewall_ops(&d, &mut nft), []);

        // DHCPv6 admits another sender and dismisses the first, at once.
        let other = Allowed6::new(
            &plant.host_ifname,
            MacAddr([2, 0, 0, 0, 0, 9]),
            "fd00:1:2:4::1235".parse().expect("v6"),
        );
        let mut r = Reconciler::new().expect("reconciler");
        assert!(r.admit6(&[(true, other), (false, lease)]).is_empty());
        let set = nft_cli("list set bridge econet allowed6");
        assert!(
            set.contains("fd00:1:2:4::1235") && set.contains("02:00:00:00:00:09"),
            "{set}"
        );
        assert!(!set.contains("fd00:1:2:4::1234"), "{set}");
        let ips = nft_cli("list set bridge econet allowed6_ip");
        assert!(
            !ips.contains("fd00:1:2:4::1234") && ips.contains("fd00:1:2:4::1235"),
            "{ips}"
        );
        // A stale dismissal does not keep the others out.
        let stale = Allowed6::new("nothere", MacAddr([2, 0, 0, 0, 0, 8]), Ipv6Addr::LOCALHOST);
        let third = Allowed6::new(
            &plant.host_ifname,
            MacAddr([2, 0, 0, 0, 0, 7]),
            "fd00:1:2:4::1236".parse().expect("v6"),
        );
        assert_eq!(r.admit6(&[(false, stale), (true, third)]).len(), 1);
        assert!(nft_cli("list set bridge econet allowed6").contains("fd00:1:2:4::1236"));

        // A pass with the leases as they now are changes nothing; one without
        // them dismisses them, the static ones stay.
        let d2 = desired(&cfg, &facts(&cfg), &[], &[other, third]);
        assert_eq!(firewall_ops(&d2, &mut nft), []);
        let d3 = desired(&cfg, &facts(&cfg), &[], &[]);
        let ops = firewall_ops(&d3, &mut nft);
        let [Op::FirewallElems { v6, .. }] = &ops[..] else {
            panic!("{ops:?}")
        };
        assert_eq!((v6.add.len(), v6.del.len(), v6.del_ip.len()), (0, 2, 2));
    });
}
