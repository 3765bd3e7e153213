//! Map-server replicas (RFC 9301's model: map servers share no state): three devices
//! register with two map servers and resolve through either. One map server is
//! killed under traffic and restarted; its registrations come back from its state
//! directory. Registration every 3 s so the test runs in well under a minute.

mod common;

use common::clients::*;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Seconds between an xTR's Map-Registers (`register_secs`).
const REGISTER_SECS: u64 = 3;

/// A map server in its own namespace, its config and state kept across restarts.
struct Ms {
    ns: Netns,
    addr: String,
    dir: TempDir,
    proc: Option<Proc>,
}

impl Ms {
    fn new(rtr: &Netns, tag: &str, net: u8) -> Ms {
        let ns = Netns::new(tag);
        let addr = format!("198.51.{net}.1");
        let gw = format!("198.51.{net}.254");
        veth(rtr, tag, &ns, "eth0");
        rtr.ip(&["addr", "add", &format!("{gw}/24"), "dev", tag]);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ns.ip(&["route", "add", "default", "via", &gw]);
        let dir = TempDir::new(tag);
        // The lifetime outlasts a restart of a few seconds plus the snapshot's lag
        // (5 s): in production, 3 intervals of 60 s.
        std::fs::write(
            dir.path.join("ms.json"),
            format!(
                r#"{{"listen": "{addr}", "registration_timeout_secs": 30,
                "sites": [{{"name": "fleet", "key": "ms-secret", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}}]}}"#
            ),
        )
        .unwrap();
        let mut ms = Ms {
            ns,
            addr,
            dir,
            proc: None,
        };
        ms.start();
        ms
    }

    fn state(&self) -> PathBuf {
        self.dir.path.join("state")
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path.join("ms.log"))
            .unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns.name, ECONET, "map-server"])
            .arg("--config")
            .arg(self.dir.path.join("ms.json"))
            .arg("--state-dir")
            .arg(self.state())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
        assert!(
            wait_until(Duration::from_secs(5), || self.status().is_some()),
            "map server {} did not start: {}",
            self.addr,
            self.log()
        );
    }

    /// kill -9 (the `ip netns exec` child execs econet: same pid).
    fn kill(&mut self) {
        drop(self.proc.take());
        assert!(
            self.status().is_none(),
            "map server {} still answers",
            self.addr
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("ms.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<String> {
        let out = std::process::Command::new(ECONET)
            .args(["status", "--json", "--state-dir"])
            .arg(self.state())
            .output()
            .ok()?;
        out.status.success().then(|| stdout(&out))
    }

    fn counter(&self, name: &str) -> u64 {
        self.status()
            .and_then(|s| json_at(&s, &format!("counters.{name}")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn registered(&self, eid: &str) -> bool {
        self.status()
            .is_some_and(|s| s.contains(&format!("]{eid}/32\"")))
    }

    /// Drops Map-Registers (type 3) arriving at the map server, nothing else.
    fn drop_registers(&self, on: bool) {
        if on {
            let rules = "table ip ectms {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    udp dport 4342 @th,64,4 3 drop\n  }\n}\n";
            let file = self.dir.path.join("drop.nft");
            std::fs::write(&file, rules).unwrap();
            self.ns.exec(&["nft", "-f", file.to_str().unwrap()]);
        } else {
            self.ns.exec(&["nft", "delete", "table", "ip", "ectms"]);
        }
    }
}

struct Bed {
    _rtr: Netns,
    ms: Vec<Ms>,
    _devs: Vec<Netns>,
    ecos: Vec<Netns>,
    _econets: Vec<Econet>,
}

fn device_config(d: usize, eco: &Netns, ms: &[Ms]) -> String {
    let servers: Vec<String> = ms
        .iter()
        .map(|m| format!(r#"{{"address": "{}", "key": "ms-secret"}}"#, m.addr))
        .collect();
    let resolvers: Vec<String> = ms.iter().map(|m| format!("\"{}\"", m.addr)).collect();
    format!(
        r#"{{"device_id": "dev{d}", "config_version": "1", "ports": [{{"name": "eth0", "ifname": "eth0"}}],
 "networks": [{{"id": "fleet", "name": "fleet", "type": "mesh", "port": "eth0",
   "ip": {{"subnet": "10.200.0.0/16", "dhcp_range": {{"start": "10.200.{d}.10", "end": "10.200.{d}.100"}}}},
   "mesh": {{"instance_id": 1000, "map_servers": [{}], "map_resolvers": [{}],
            "register_secs": {REGISTER_SECS}, "ttl_mins": 1, "encrypt": true}}}}],
 "apps": [{{"id": "a{d}", "name": "eco{d}", "interfaces": [{{"name": "eth0", "network": "fleet", "attach": {{"netns": "{}"}}}}]}}]}}"#,
        servers.join(", "),
        resolvers.join(", "),
        eco.path()
    )
}

/// Three devices behind a router, two map servers (A first in every device's lists).
fn bed() -> Bed {
    require_root();
    let rtr = Netns::new("rtr");
    rtr.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    let ms = vec![Ms::new(&rtr, "msa", 100), Ms::new(&rtr, "msb", 101)];
    let devs: Vec<Netns> = (0..3).map(|d| Netns::new(&format!("dev{d}"))).collect();
    let ecos: Vec<Netns> = (0..3).map(|d| Netns::new(&format!("eco{d}"))).collect();
    for (d, dev) in devs.iter().enumerate() {
        let net = 113 + d;
        veth(&rtr, &format!("d{d}"), dev, "eth0");
        rtr.ip(&[
            "addr",
            "add",
            &format!("203.0.{net}.254/24"),
            "dev",
            &format!("d{d}"),
        ]);
        dev.ip(&["addr", "add", &format!("203.0.{net}.1/24"), "dev", "eth0"]);
        dev.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("203.0.{net}.254"),
        ]);
    }
    let econets = devs
        .iter()
        .zip(&ecos)
        .enumerate()
        .map(|(d, (dev, eco))| Econet::start(dev, &device_config(d, eco, &ms)))
        .collect();
    Bed {
        _rtr: rtr,
        ms,
        _devs: devs,
        ecos,
        _econets: econets,
    }
}

/// The registrations file holds `n` registrations (the header and a line each).
fn stored(ms: &Ms, n: usize) -> bool {
    std::fs::read_to_string(ms.state().join("registrations"))
        .is_ok_and(|s| s.lines().count() == n + 1)
}

#[test]
fn a_map_server_killed_under_traffic_loses_no_flow_and_comes_back_with_its_registrations() {
    let mut b = bed();
    let a: Vec<String> = b
        .ecos
        .iter()
        .enumerate()
        .map(|(d, eco)| {
            udhcpc(eco, &ClientDir::new(), &format!("eco{d}"))
                .unwrap_or_else(|| panic!("eco{d} got no lease"))
                .to_string()
        })
        .collect();
    for m in &b.ms {
        for eid in &a {
            assert!(
                wait_until(Duration::from_secs(8), || m.registered(eid)),
                "{eid} not registered with {}: {:?}",
                m.addr,
                m.status()
            );
        }
    }
    // Traffic between eco0 and eco1, both ways, a ping every 0.1 s.
    let dir = TempDir::new("pings");
    let pings = [
        nat::PingLog::start(&b.ecos[0], &a[1], &dir.path, 60),
        nat::PingLog::start(&b.ecos[1], &a[0], &dir.path, 60),
    ];
    assert!(
        wait_until(Duration::from_secs(10), || pings
            .iter()
            .all(|p| p.flowing())),
        "pings do not flow"
    );
    // A's snapshot is on disk (at most 5 s after the first registration).
    assert!(
        wait_until(Duration::from_secs(8), || stored(&b.ms[0], 3)),
        "map server A wrote no registrations file"
    );

    // kill -9 map server A.
    let killed = nat::wall_secs();
    b.ms[0].kill();

    // A new flow, eco0 to eco2 (never in touch before), resolves through B: the
    // Map-Request to A goes unanswered, its retransmission goes to B.
    let forwarded_b = b.ms[1].counter("forwarded");
    let t = Instant::now();
    assert!(
        b.ecos[0].ping_within(&a[2], 8),
        "a new flow does not resolve with map server A down"
    );
    eprintln!(
        "new flow eco0 -> eco2 with A down: first reply after {:?}",
        t.elapsed()
    );
    assert!(
        b.ms[1].counter("forwarded") > forwarded_b,
        "map server B forwarded no Map-Request"
    );

    // The established flow, across two registration intervals with A gone.
    std::thread::sleep(Duration::from_secs(2 * REGISTER_SECS).saturating_sub(t.elapsed()));
    assert!(pings.iter().all(|p| p.flowing()), "pings stopped");
    for p in &pings {
        let gap = nat::outage(&p.replies(), killed)
            .unwrap_or_else(|| panic!("{}: no replies around the kill", p.what));
        eprintln!("{}: longest gap after A was killed: {gap:.3} s", p.what);
        assert!(gap < 1.0, "{}: lost replies for {gap:.2} s", p.what);
    }

    // Restart A with Map-Registers kept out: whatever it knows comes from its file.
    b.ms[0].drop_registers(true);
    let t = Instant::now();
    b.ms[0].start();
    let s = b.ms[0].status().unwrap_or_default();
    eprintln!("map server A answers {:?} after its start", t.elapsed());
    assert_eq!(
        json_at(&s, "counters.registers").as_deref(),
        Some("0"),
        "{s}"
    );
    assert_eq!(json_at(&s, "store.restored").as_deref(), Some("3"), "{s}");
    for eid in &a {
        assert!(b.ms[0].registered(eid), "{eid} not restored: {s}");
    }
    // It answers a Map-Request at once: a new flow, eco1 to eco2 (never in touch
    // before), resolves through A. eco1's device asks A, first in its
    // map_resolvers; eco2's device stays with B, which answered it while A was down.
    let t = Instant::now();
    assert!(
        b.ecos[1].ping_within(&a[2], 3),
        "the restarted map server does not resolve from its registrations file"
    );
    eprintln!(
        "new flow eco1 -> eco2 through the restarted A: first reply after {:?}",
        t.elapsed()
    );
    assert!(b.ms[0].counter("forwarded") >= 1, "{:?}", b.ms[0].status());
    assert_eq!(b.ms[0].counter("negative_replies"), 0);
    assert_eq!(b.ms[0].counter("registers"), 0);

    // Map-Registers let through: every device registers with A again within a
    // registration interval, plus a Map-Notify timeout if its xTR had given A up.
    b.ms[0].drop_registers(false);
    let t = Instant::now();
    // Restored, a registration is as old as its last Map-Register before the kill
    // (the downtime is over 6 s); one registered again is younger than `t`.
    let fresh = |m: &Ms| {
        let since = t.elapsed().as_secs();
        m.status().is_some_and(|s| {
            (0..a.len()).all(|i| {
                json_at(&s, &format!("registered.{i}.age"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n <= since)
            }) && json_at(&s, &format!("registered.{}", a.len())).is_none()
        })
    };
    let s = b.ms[0].status().unwrap_or_default();
    assert!(!fresh(&b.ms[0]), "restored registrations look fresh: {s}");
    let back = wait_until(Duration::from_secs(REGISTER_SECS + 3), || fresh(&b.ms[0]));
    eprintln!(
        "map server A re-registered by the devices after {:?}",
        t.elapsed()
    );
    assert!(
        back,
        "devices did not register with A again: {:?}",
        b.ms[0].status()
    );
    let s = b.ms[0].status().unwrap_or_default();
    let rlocs = ["203.0.113.1", "203.0.114.1", "203.0.115.1"];
    assert!(rlocs.iter().all(|r| s.contains(r)), "{s}");
    // The flows kept going throughout.
    assert!(pings.iter().all(|p| p.flowing()), "pings stopped");
}
