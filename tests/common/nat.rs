//! A masquerading router in a namespace, as a home or cellular router puts a device
//! behind one, with the ways its mapping changes (a conntrack flush, a new outside
//! address), and both-way pings timed to the reply, to measure an outage.
#![allow(dead_code)]

use super::{wait_until, Netns, Proc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Makes `router` a masquerading router out of `outside`: forwarding on, and an
/// nftables `masquerade fully-random` rule, so every new mapping gets a random port.
pub fn masquerade(router: &Netns, outside: &str, dir: &Path) {
    router.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    let rules = format!(
        "table ip ectnat {{\n  chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{outside}\" masquerade fully-random\n  }}\n}}\n"
    );
    let file = dir.join(format!("{}-nat.nft", router.name));
    std::fs::write(&file, rules).unwrap();
    router.exec(&["nft", "-f", file.to_str().unwrap()]);
}

/// Deletes every IPv4 conntrack entry in `router` (what `conntrack -F` does, over
/// NETLINK_NETFILTER: IPCTNL_MSG_CT_DELETE without attributes): each flow gets a new
/// mapping with its next packet.
pub fn conntrack_flush(router: &Netns) {
    const SCRIPT: &str = "import socket, struct\n\
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)\n\
s.send(struct.pack('=IHHII', 20, (1 << 8) | 2, 1 | 4, 1, 0) + struct.pack('=BBH', 2, 0, 0))\n\
r = s.recv(4096)\n\
err = struct.unpack('=i', r[16:20])[0]\n\
assert err in (0, -2), err\n";
    router.exec(&["/usr/bin/python3", "-c", SCRIPT]);
}

/// Seconds since the epoch, as `ping -D` prints them.
pub fn wall_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `ping -D` every 0.1 s from a namespace, its replies in a file as they come.
pub struct PingLog {
    pub what: String,
    path: PathBuf,
    _proc: Proc,
}

impl PingLog {
    /// Pings `addr` from `ns` for at most `secs` seconds.
    pub fn start(ns: &Netns, addr: &str, dir: &Path, secs: u64) -> PingLog {
        let path = dir.join(format!("ping-{}-{addr}.log", ns.name));
        let out = std::fs::File::create(&path).unwrap();
        let deadline = secs.to_string();
        let p = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "stdbuf", "-oL", "ping", "-D", "-n",
            ])
            .args(["-i", "0.1", "-W", "1", "-w", &deadline, addr])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("ping");
        PingLog {
            what: format!("{} -> {addr}", ns.name),
            path,
            _proc: Proc(p),
        }
    }

    /// When the replies so far arrived (seconds since the epoch).
    pub fn replies(&self) -> Vec<f64> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect()
    }

    /// A reply came within the last half second.
    pub fn flowing(&self) -> bool {
        self.replies().last().is_some_and(|t| wall_secs() - t < 0.5)
    }
}

/// The longest time without a reply from the last reply before `at` on; `None` if
/// no reply came before `at` or none after it.
pub fn outage(replies: &[f64], at: f64) -> Option<f64> {
    let first = replies.iter().rposition(|&t| t <= at)?;
    let after = &replies[first..];
    if after.len() < 2 {
        return None;
    }
    after
        .windows(2)
        .map(|w| w[1] - w[0])
        .max_by(|a, b| a.total_cmp(b))
}

/// Both-way pings across a change made by `change`: waits until both directions
/// flow, makes the change, waits (at most `limit`) until both flow again for a
/// second, and returns each direction's outage in seconds (`None`: not back within
/// `limit`), with the ping's description.
pub fn outage_across(
    pings: &[PingLog],
    limit: Duration,
    change: impl FnOnce(),
) -> Vec<(String, Option<f64>)> {
    assert!(
        wait_until(Duration::from_secs(10), || pings
            .iter()
            .all(|p| p.flowing())),
        "pings do not flow before the change: {:?}",
        pings.iter().map(|p| p.replies().len()).collect::<Vec<_>>()
    );
    let at = wall_secs();
    change();
    // Back when every direction had a reply over a second after the change, and
    // has them again now.
    let _ = wait_until(limit, || {
        pings
            .iter()
            .all(|p| p.flowing() && p.replies().last().is_some_and(|t| *t > at + 1.0))
    });
    std::thread::sleep(Duration::from_millis(500));
    pings
        .iter()
        .map(|p| (p.what.clone(), outage(&p.replies(), at)))
        .collect()
}
