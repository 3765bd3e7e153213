//! Real DHCP clients (busybox udhcpc, ISC dhclient, dhcpcd) and small TCP peers
//! inside test namespaces. One hook script serves all three clients: it applies the
//! address, default route and MTU the way a network manager would, and logs each
//! event so tests can count renewals and releases.
#![allow(dead_code)]

use super::{stdout, wait_until, Netns, Proc, TempDir};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const HOOK: &str = r#"#!/bin/sh
# $1 is udhcpc's event; $reason is dhclient's and dhcpcd's.
ev="${1:-}${reason:-}"
ip_addr="${ip:-${new_ip_address:-}}"
bits="${new_subnet_cidr:-}"
[ -z "$bits" ] && [ -n "${mask:-}" ] && bits="$mask"
if [ -z "$bits" ] && [ -n "${new_subnet_mask:-}" ]; then
  bits=0; for o in $(echo "$new_subnet_mask" | tr . ' '); do
    while [ "$o" -gt 0 ]; do bits=$((bits + (o & 1))); o=$((o >> 1)); done
  done
fi
gw="${router:-${new_routers:-}}"
m="${mtu:-${new_interface_mtu:-}}"
echo "$ev $ip_addr/$bits gw=$gw mtu=$m" >> "$(dirname "$0")/events.log"
case "$ev" in
  bound|renew|BOUND|RENEW|REBOOT|REBIND|STATIC)
    [ -n "$m" ] && ip link set dev eth0 mtu "$m"
    ip addr flush dev eth0
    ip addr add "$ip_addr/${bits:-24}" dev eth0
    [ -n "$gw" ] && ip route replace default via "${gw%% *}" ;;
  deconfig|RELEASE|EXPIRE|STOP|STOPPED)
    ip addr flush dev eth0 ;;
esac
exit 0
"#;

/// A directory with the hook, per client run.
pub struct ClientDir {
    pub dir: TempDir,
}

impl ClientDir {
    pub fn new() -> ClientDir {
        let dir = TempDir::new("dhcpc");
        let hook = dir.path.join("hook");
        std::fs::write(&hook, HOOK).unwrap();
        super::run(&["chmod", "+x", hook.to_str().unwrap()]);
        ClientDir { dir }
    }

    pub fn hook(&self) -> String {
        self.dir.path.join("hook").to_string_lossy().into_owned()
    }

    pub fn path(&self, f: &str) -> String {
        self.dir.path.join(f).to_string_lossy().into_owned()
    }

    /// The hook's event log.
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("events.log")).unwrap_or_default()
    }
}

impl Default for ClientDir {
    fn default() -> Self {
        Self::new()
    }
}

/// The IPv4 address on eth0 in `ns`.
pub fn addr_of(ns: &Netns) -> Option<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-4", "-br", "addr", "show", "eth0"])
        .output()
        .ok()?;
    stdout(&out)
        .split_whitespace()
        .nth(2)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn sh_in(ns: &Netns, script: &str, secs: u64) -> (bool, String) {
    let out = Command::new("timeout")
        .args([
            &secs.to_string(),
            "ip",
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let mut s = stdout(&out);
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// busybox udhcpc: obtains a lease and exits; returns the address applied.
pub fn udhcpc(ns: &Netns, c: &ClientDir, hostname: &str) -> Option<Ipv4Addr> {
    let (ok, out) = sh_in(
        ns,
        &format!(
            "busybox udhcpc -f -q -n -i eth0 -s {} -t 5 -T 1 -x hostname:{hostname}",
            c.hook()
        ),
        20,
    );
    if !ok {
        eprintln!("udhcpc failed: {out}");
    }
    addr_of(ns)
}

/// A udhcpc that stays (for renew with SIGUSR1 and release with SIGUSR2).
pub fn udhcpc_daemon(ns: &Netns, c: &ClientDir, hostname: &str) -> Proc {
    let pidf = c.path("udhcpc.pid");
    Proc(
        Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "busybox", "udhcpc", "-f", "-i", "eth0", "-s",
            ])
            .arg(c.hook())
            .args([
                "-t",
                "5",
                "-T",
                "1",
                "-p",
                &pidf,
                "-x",
                &format!("hostname:{hostname}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// ISC dhclient, one shot (it sends the host name of its UTS namespace).
pub fn dhclient(ns: &Netns, c: &ClientDir, hostname: &str) -> Option<Ipv4Addr> {
    let (ok, out) = sh_in(
        ns,
        &format!(
            "unshare --uts sh -c 'hostname {hostname}; exec dhclient -4 -v -1 -sf {} -pf {} -lf {} eth0'",
            c.hook(),
            c.path("dhclient.pid"),
            c.path("dhclient.leases")
        ),
        30,
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kill $(cat {}) 2>/dev/null",
            c.path("dhclient.pid")
        ))
        .status();
    if !ok {
        eprintln!("dhclient failed: {out}");
    }
    addr_of(ns)
}

/// ISC dhclient releasing its lease.
pub fn dhclient_release(ns: &Netns, c: &ClientDir) -> bool {
    sh_in(
        ns,
        &format!(
            "dhclient -4 -r -sf {} -pf {} -lf {} eth0",
            c.hook(),
            c.path("dhclient.pid"),
            c.path("dhclient.leases")
        ),
        20,
    )
    .0
}

/// Runs a dhcpcd command with private /run and /var/lib/dhcpcd (its paths are keyed
/// by interface name and would collide across namespaces), kept in `c`.
fn dhcpcd_cmd(ns: &Netns, c: &ClientDir, args: &str) -> (bool, String) {
    let run = c.path("run");
    let lib = c.path("lib");
    let _ = std::fs::create_dir_all(&run);
    let _ = std::fs::create_dir_all(&lib);
    sh_in(
        ns,
        &format!(
            "unshare --mount sh -c 'mount --bind {run} /run && mkdir -p /var/lib/dhcpcd && mount --bind {lib} /var/lib/dhcpcd && dhcpcd {args}'"
        ),
        45,
    )
}

/// dhcpcd, one shot: obtain a lease and exit.
pub fn dhcpcd(ns: &Netns, c: &ClientDir, hostname: &str) -> Option<Ipv4Addr> {
    let (ok, out) = dhcpcd_cmd(
        ns,
        c,
        &format!(
            "-4 -B -1 -t 30 --nodelay --noarp -h {hostname} -c {} eth0",
            c.hook()
        ),
    );
    if !ok {
        eprintln!("dhcpcd failed: {out}");
    }
    addr_of(ns)
}

/// dhcpcd as a daemon (for renew with `-n` and release with `-k`).
pub fn dhcpcd_daemon(ns: &Netns, c: &ClientDir, hostname: &str) -> bool {
    dhcpcd_cmd(
        ns,
        c,
        &format!(
            "-4 -t 30 --nodelay --noarp -h {hostname} -c {} -w eth0",
            c.hook()
        ),
    )
    .0
}

pub fn dhcpcd_ctl(ns: &Netns, c: &ClientDir, flag: &str) -> bool {
    dhcpcd_cmd(ns, c, &format!("-4 {flag} eth0")).0
}

/// The socket family of `addr` (IPv6 if it has a colon).
pub fn family(addr: &str) -> &'static str {
    if addr.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    }
}

/// A TCP server in `ns` on `addr:port` (IPv4 or IPv6) that answers each connection with the peer's
/// address, for `secs` seconds.
pub fn tcp_whoami(ns: &Netns, addr: &str, port: u16, secs: u64) -> Proc {
    let fam = family(addr);
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.{fam}); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(16); s.settimeout(0.5)\n\
         end = time.time() + {secs}\n\
         while time.time() < end:\n\
         \x20   try:\n\
         \x20       c, a = s.accept()\n\
         \x20   except socket.timeout:\n\
         \x20       continue\n\
         \x20   c.sendall(a[0].encode()); c.close()\n"
    );
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Proc(child)
}

/// Connects from `ns` to `addr:port` (2 s timeout); the server's answer, if any.
pub fn tcp_ask(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket\ns = socket.create_connection(('{addr}', {port}), timeout=2)\nprint(s.recv(100).decode())\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", &script])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

/// `dig +short` from `ns`; `None` when no answer came.
pub fn dig(ns: &Netns, server: &str, args: &[&str]) -> Option<String> {
    let mut v = vec!["netns", "exec", &ns.name, "dig", "+time=2", "+tries=1"];
    let at = format!("@{server}");
    v.push(&at);
    v.extend_from_slice(args);
    let out = Command::new("ip").args(&v).output().ok()?;
    let text = stdout(&out);
    (out.status.success()
        && !text.contains("connection timed out")
        && !text.contains("no servers could be reached"))
    .then_some(text)
}

/// A dnsmasq in `ns` answering `upstream.test` (as an upstream resolver).
pub fn upstream_resolver(ns: &Netns, listen: &str, dir: &Path) -> Proc {
    Proc(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg(format!("--listen-address={listen}"))
            .args([
                "--bind-interfaces",
                "--address=/upstream.test/192.0.2.99",
                "--port=53",
            ])
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits until `ns` has an address on eth0.
pub fn wait_addr(ns: &Netns, secs: u64) -> Option<Ipv4Addr> {
    let mut a = None;
    wait_until(Duration::from_secs(secs), || {
        a = addr_of(ns);
        a.is_some()
    });
    a
}

/// /etc/netns/NAME/resolv.conf, which `ip netns exec` shows as /etc/resolv.conf
/// inside; removed on drop.
pub struct NetnsResolvConf {
    dir: PathBuf,
}

impl NetnsResolvConf {
    pub fn new(ns: &Netns, nameserver: &str) -> NetnsResolvConf {
        let dir = PathBuf::from(format!("/etc/netns/{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .unwrap();
        NetnsResolvConf { dir }
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
