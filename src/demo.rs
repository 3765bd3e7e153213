//! `econet demo`: a guided run on a scratch sandbox. It builds network namespaces
//! (a device, its ECOs, a host on the plant floor, an upstream
//! router that is also a head office's VPN gateway run by a second econet, a map server
//! and a second device), runs econet on both devices with example configs, shows the
//! ECOs at work on a switch, a local, a cloud and a mesh network, prints the status, and
//! removes everything it made. The demo is a test harness, not the agent: it uses
//! `ip netns` and busybox (installing them with apt-get when they are missing); econet
//! itself never does.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the demo stopped.
#[derive(Debug)]
enum DemoError {
    /// A command could not be started.
    Spawn {
        program: String,
        err: std::io::Error,
    },
    /// A command exited with an error.
    Failed { cmd: String, stderr: String },
    /// Tools it needs are missing and apt-get could not install them.
    MissingTools {
        tools: Vec<&'static str>,
        packages: Vec<&'static str>,
    },
    /// A file of the sandbox could not be written.
    File { path: PathBuf, err: std::io::Error },
    /// udhcpc in this namespace got no lease.
    NoLease { ns: String },
    /// A promise the demo shows was broken: how.
    Broken(&'static str),
    /// econet did not report this within 15 s.
    Timeout { what: String },
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Spawn { program, err } => write!(f, "cannot run {program}: {err}"),
            DemoError::Failed { cmd, stderr } => write!(f, "{cmd} failed: {stderr}"),
            DemoError::MissingTools { tools, packages } => {
                let tools: Vec<String> = tools.iter().map(|t| format!("`{t}`")).collect();
                write!(
                    f,
                    "econet demo needs {}: install {} (apt-get install {}) and run it again",
                    tools.join(" and "),
                    packages.join(" and "),
                    packages.join(" ")
                )
            }
            DemoError::File { path, err } => write!(f, "{}: {err}", path.display()),
            DemoError::NoLease { ns } => write!(f, "udhcpc in {ns} printed no lease"),
            DemoError::Broken(what) => f.write_str(what),
            DemoError::Timeout { what } => write!(f, "waited 15 s for {what}"),
        }
    }
}

/// Writes a sandbox file.
fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<(), DemoError> {
    let path = path.as_ref();
    std::fs::write(path, contents).map_err(|err| DemoError::File {
        path: path.to_path_buf(),
        err,
    })
}

struct Sandbox {
    prefix: String,
    namespaces: Vec<String>,
    dir: PathBuf,
    /// The econet processes started, each stopped with SIGTERM at the end.
    econet: Vec<Child>,
}

impl Sandbox {
    fn ns(&self, tag: &str) -> String {
        format!("{}-{tag}", self.prefix)
    }

    fn add_ns(&mut self, tag: &str) -> Result<String, DemoError> {
        let name = self.ns(tag);
        sh(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for mut c in self.econet.drain(..) {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: kill has no memory preconditions; the pid is our own child,
                // not yet reaped, so it cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        println!(
            "\nsandbox removed (namespaces {}-*, {})",
            self.prefix,
            self.dir.display()
        );
    }
}

fn sh(cmd: &[&str]) -> Result<String, DemoError> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|err| DemoError::Spawn {
            program: cmd[0].to_string(),
            err,
        })?;
    if !out.status.success() {
        return Err(DemoError::Failed {
            cmd: cmd.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NS ARGS…`
fn ip(ns: &str, args: &str) -> Result<String, DemoError> {
    let mut cmd = vec!["ip", "-n", ns];
    cmd.extend(args.split_whitespace());
    sh(&cmd)
}

/// `ip netns exec NS busybox ARGS…`, echoed and its output shown.
fn busybox(ns: &str, args: &str) -> Result<String, DemoError> {
    let mut cmd = vec!["ip", "netns", "exec", ns, "busybox"];
    cmd.extend(args.split_whitespace());
    show(&cmd)
}

/// A veth pair between two namespaces, both ends up, with optional addresses.
fn link(a: (&str, &str, &str), b: (&str, &str, &str)) -> Result<(), DemoError> {
    let (ns_a, if_a, addr_a) = a;
    let (ns_b, if_b, addr_b) = b;
    ip(
        ns_a,
        &format!("link add {if_a} type veth peer name {if_b} netns {ns_b}"),
    )?;
    for (ns, ifname, addr) in [(ns_a, if_a, addr_a), (ns_b, if_b, addr_b)] {
        ip(ns, &format!("link set {ifname} up"))?;
        if !addr.is_empty() {
            ip(ns, &format!("addr add {addr} dev {ifname}"))?;
        }
    }
    Ok(())
}

fn step(s: &str) {
    println!("\n== {s}");
}

fn show(cmd: &[&str]) -> Result<String, DemoError> {
    println!("$ {}", cmd.join(" "));
    let out = sh(cmd)?;
    print!("{out}");
    Ok(out)
}

/// The tools the demo drives, the Debian package of each, and why.
const TOOLS: [(&str, &str, &str); 2] = [
    (
        "ip",
        "iproute2",
        "to build the sandbox's namespaces and links",
    ),
    (
        "busybox",
        "busybox",
        "the ECOs' DHCP client (udhcpc), nslookup and ping",
    ),
];

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// Installs the demo's missing tools with apt-get, saying what and why; or says in one
/// line what to do.
fn ensure_tools() -> Result<(), DemoError> {
    let missing: Vec<_> = TOOLS.iter().filter(|(t, _, _)| !on_path(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let pkgs: Vec<&'static str> = missing.iter().map(|(_, p, _)| *p).collect();
    let by_hand = || DemoError::MissingTools {
        tools: missing.iter().map(|(t, _, _)| *t).collect(),
        packages: pkgs.clone(),
    };
    if !on_path("apt-get") {
        return Err(by_hand());
    }
    for (tool, pkg, why) in &missing {
        println!("econet demo: `{tool}` is missing: installing {pkg} with apt-get ({why})");
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&pkgs);
    if !(apt(&["update", "-q"]) && apt(&install)) {
        return Err(by_hand());
    }
    match TOOLS.iter().find(|(t, _, _)| !on_path(t)) {
        Some(_) => Err(by_hand()),
        None => Ok(()),
    }
}

fn config(sb: &Sandbox) -> String {
    format!(
        r#"{{
  "device_id": "demo-device",
  "config_version": "1",
  "ports": [
    {{"name": "eth0", "ifname": "eth0", "labels": ["uplink"]}},
    {{"name": "eth1", "ifname": "eth1", "labels": ["plant-floor"]}}
  ],
  "networks": [
    {{"id": "11111111-0000-4000-8000-00000000d001", "name": "plant", "type": "switch", "port": "plant-floor"}},
    {{"id": "11111111-0000-4000-8000-00000000d003", "name": "to-hq", "type": "cloud", "port": "uplink",
      "ip": {{"subnet": "10.3.0.0/24", "dhcp_range": {{"start": "10.3.0.100", "end": "10.3.0.200"}}}},
      "vpn": {{"remote": "192.0.2.1", "local_id": "demo-device", "remote_id": "hq-gateway",
              "auth": {{"psk": "{psk}"}}, "remote_subnets": ["172.31.0.0/24"]}}}},
    {{"id": "11111111-0000-4000-8000-00000000d002", "name": "lan", "type": "local", "port": "uplink",
      "ip": {{"subnet": "10.1.0.0/24", "dhcp_range": {{"start": "10.1.0.100", "end": "10.1.0.200"}},
             "domain": "eco.internal"}},
      "static_dns": [{{"host": "historian-db", "addrs": ["10.1.0.5"]}}]}},
    {mesh}
  ],
  "apps": [
    {{"id": "22222222-0000-4000-8000-00000000d001", "name": "scada",
      "interfaces": [
        {{"name": "eth0", "network": "11111111-0000-4000-8000-00000000d001", "attach": {{"netns": "/run/netns/{eco1}"}}}},
        {{"name": "eth1", "network": "11111111-0000-4000-8000-00000000d002", "attach": {{"netns": "/run/netns/{eco1}"}}}},
        {{"name": "eth2", "network": "11111111-0000-4000-8000-00000000d004", "attach": {{"netns": "/run/netns/{eco1}"}}}}
      ]}},
    {{"id": "22222222-0000-4000-8000-00000000d002", "name": "historian",
      "interfaces": [
        {{"name": "eth0", "network": "11111111-0000-4000-8000-00000000d002", "attach": {{"netns": "/run/netns/{eco2}"}}}},
        {{"name": "eth1", "network": "11111111-0000-4000-8000-00000000d003", "ip": "10.3.0.5", "attach": {{"netns": "/run/netns/{eco2}"}}}}
      ]}}
  ]
}}
"#,
        eco1 = sb.ns("eco1"),
        eco2 = sb.ns("eco2"),
        psk = PSK,
        mesh = mesh_network("uplink", 1),
    )
}

/// The fleet's mesh network as device `n` has it: the same subnet, instance and map
/// server everywhere, a DHCP range of the device's own.
fn mesh_network(port: &str, n: u8) -> String {
    format!(
        r#"{{"id": "11111111-0000-4000-8000-00000000d004", "name": "fleet", "type": "mesh", "port": "{port}",
      "ip": {{"subnet": "10.200.0.0/16", "dhcp_range": {{"start": "10.200.{n}.10", "end": "10.200.{n}.250"}}}},
      "mesh": {{"instance_id": 1000, "map_servers": [{{"address": "{MAP_SERVER}", "key": "{MS_KEY}"}}]}}}}"#
    )
}

/// The PSK of the demo's VPN (a real one comes from the controller and never shows).
const PSK: &str = "demo shared secret, not for production";
/// The map server's underlay address, and the fleet's registration key.
const MAP_SERVER: &str = "203.0.113.2";
const MS_KEY: &str = "demo fleet key, not for production";

/// The head office's side of the VPN: another econet, the responder, with the ERP
/// server as its ECO.
fn hq_config(sb: &Sandbox) -> String {
    format!(
        r#"{{
  "device_id": "hq-gateway",
  "ports": [{{"name": "eth0", "ifname": "eth0"}}],
  "networks": [
    {{"id": "11111111-0000-4000-8000-0000000000b1", "name": "branches", "type": "cloud", "port": "eth0",
      "ip": {{"subnet": "172.31.0.0/24", "dhcp_range": {{"start": "172.31.0.100", "end": "172.31.0.200"}}}},
      "vpn": {{"remote": "192.0.2.2", "local_id": "hq-gateway", "remote_id": "demo-device",
              "auth": {{"psk": "{PSK}"}}, "remote_subnets": ["10.3.0.0/24"], "initiator": false}}}}
  ],
  "apps": [
    {{"id": "22222222-0000-4000-8000-0000000000b1", "name": "erp",
      "interfaces": [{{"name": "eth0", "network": "11111111-0000-4000-8000-0000000000b1", "ip": "172.31.0.5",
                      "attach": {{"netns": "/run/netns/{erp}"}}}}]}}
  ]
}}
"#,
        erp = sb.ns("erp"),
    )
}

/// A second device of the fleet, with one ECO on the mesh network.
fn device2_config(sb: &Sandbox) -> String {
    format!(
        r#"{{
  "device_id": "demo-device-2",
  "ports": [{{"name": "eth0", "ifname": "eth0"}}],
  "networks": [
    {mesh}
  ],
  "apps": [
    {{"id": "22222222-0000-4000-8000-00000000d003", "name": "dashboard",
      "interfaces": [{{"name": "eth0", "network": "11111111-0000-4000-8000-00000000d004",
                      "attach": {{"netns": "/run/netns/{eco3}"}}}}]}}
  ]
}}
"#,
        mesh = mesh_network("eth0", 2),
        eco3 = sb.ns("eco3"),
    )
}

/// The map server's sites: one, the fleet's mesh subnet.
pub(crate) fn map_server_config() -> String {
    format!(
        r#"{{"listen": "{MAP_SERVER}",
 "sites": [{{"name": "fleet", "key": "{MS_KEY}", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}}]}}
"#
    )
}

/// Starts `econet CMD --config NAME.json --state-dir NAME-state` inside namespace
/// `ns`, its log going to NAME.log; returns the state directory.
fn start(
    sb: &mut Sandbox,
    me: &Path,
    ns: &str,
    cmd: &str,
    name: &str,
    config: &str,
) -> Result<String, DemoError> {
    let (cfg, state) = (
        sb.path(&format!("{name}.json")),
        sb.path(&format!("{name}-state")),
    );
    write(&cfg, config)?;
    let args = [cmd, "--config", &cfg, "--state-dir", &state];
    println!("$ ip netns exec {ns} econet {}", args.join(" "));
    let log_path = sb.dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|err| DemoError::File {
        path: log_path,
        err,
    })?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(me)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|err| DemoError::Spawn {
            program: "econet".into(),
            err,
        })?;
    sb.econet.push(child);
    Ok(state)
}

/// A udhcpc hook that applies the lease like a network manager would. The first lease
/// gives the default route; later ones (other networks of the same ECO) do not take it.
const HOOK: &str = "#!/bin/sh\n\
case \"$1\" in\n\
  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\"\n\
    [ -n \"$router\" ] && ip route add default via \"$router\" 2>/dev/null\n\
    echo \"  $interface: leased $ip/$mask, router $router, DNS $dns, domain $domain\" ;;\n\
  deconfig) ip addr flush dev \"$interface\" ;;\n\
esac\n\
exit 0\n";

pub fn main() -> i32 {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("econet demo needs root (it creates network namespaces): run it with sudo");
        return 1;
    }
    let started = Instant::now();
    let result = ensure_tools().and_then(|()| demo());
    match result {
        Ok(()) => {
            println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            1
        }
    }
}

/// `udhcpc` on `ifname` inside `ns`, sending `name` as its host name; prints the lease
/// and returns the address.
fn lease(sb: &Sandbox, ns: &str, ifname: &str, name: &str) -> Result<String, DemoError> {
    let started = Instant::now();
    println!("$ ip netns exec {ns} busybox udhcpc -q -i {ifname} -x hostname:{name} …");
    let hook = sb.path("udhcpc-hook");
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-n",
        "-i",
        ifname,
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        &hook,
        "-x",
        &format!("hostname:{name}"),
    ])?;
    print!("{out}");
    println!(
        "  ({} ms from udhcpc start to address applied)",
        started.elapsed().as_millis()
    );
    out.split_whitespace()
        .skip_while(|w| *w != "leased")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .ok_or_else(|| DemoError::NoLease { ns: ns.to_string() })
}

fn demo() -> Result<(), DemoError> {
    let pid = std::process::id();
    let mut sb = Sandbox {
        prefix: format!("econet-demo-{pid}"),
        namespaces: Vec::new(),
        dir: std::env::temp_dir().join(format!("econet-demo-{pid}")),
        econet: Vec::new(),
    };
    std::fs::create_dir_all(&sb.dir).map_err(|err| DemoError::File {
        path: sb.dir.clone(),
        err,
    })?;

    step("1. A sandbox: a device with two ECOs (containers), a host on the plant floor, an upstream router that is also a head office's VPN gateway, a map server, and a second device with one ECO");
    let dev = sb.add_ns("dev")?;
    let eco1 = sb.add_ns("eco1")?;
    let eco2 = sb.add_ns("eco2")?;
    let floor = sb.add_ns("floor")?;
    let up = sb.add_ns("upstream")?;
    let erp = sb.add_ns("erp")?;
    let ms = sb.add_ns("mapserver")?;
    let dev2 = sb.add_ns("dev2")?;
    let eco3 = sb.add_ns("eco3")?;
    link(
        (&dev, "eth0", "192.0.2.2/24"),
        (&up, "eth0", "192.0.2.1/24"),
    )?;
    link((&dev, "eth1", ""), (&floor, "eth0", "192.168.60.1/24"))?;
    link(
        (&up, "dev2", "198.51.100.1/24"),
        (&dev2, "eth0", "198.51.100.2/24"),
    )?;
    link(
        (&up, "ms", "203.0.113.1/24"),
        (&ms, "eth0", "203.0.113.2/24"),
    )?;
    // The devices' uplinks, as their own network managers would have set them up.
    ip(&dev, "route add default via 192.0.2.1")?;
    ip(&dev2, "route add default via 198.51.100.1")?;
    ip(&ms, "route add default via 203.0.113.1")?;
    sh(&[
        "ip",
        "netns",
        "exec",
        &up,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ])?;
    println!("{dev}: the device; port eth0 (uplink, 192.0.2.2) to {up} (192.0.2.1),");
    println!("    port eth1 (plant floor, no address) to {floor} (192.168.60.1)");
    println!("{eco1}: the ECO \"scada\"; {eco2}: the ECO \"historian\"");
    println!("{up}: routes between the device (192.0.2.2), {dev2} (198.51.100.2)");
    println!("    and {ms} (the fleet's LISP map server, {MAP_SERVER})");
    println!("{erp}: the ERP server at the head office, behind {up}'s VPN gateway");
    println!("{eco3}: the ECO \"dashboard\" on the second device");

    step("2. The device config: a switch network on the plant floor, a local network with NAT to the uplink, a cloud network to the head office, a mesh network across the fleet");
    let cfg_path = sb.path("device.json");
    let cfg = config(&sb);
    write(&cfg_path, &cfg)?;
    print!("{cfg}");
    let me = std::env::current_exe().map_err(|err| DemoError::File {
        path: "/proc/self/exe".into(),
        err,
    })?;
    let me_s = me.to_string_lossy().into_owned();
    show(&[&me_s, "check", &cfg_path])?;

    step("3. econet run, inside the device namespace (and at the head office as the VPN responder, on the second device, and as the map server)");
    let ms_state = start(
        &mut sb,
        &me,
        &ms,
        "map-server",
        "map-server",
        &map_server_config(),
    )?;
    let (hq, device2) = (hq_config(&sb), device2_config(&sb));
    start(&mut sb, &me, &up, "run", "hq", &hq)?;
    let dev2_state = start(&mut sb, &me, &dev2, "run", "device2", &device2)?;
    let state = start(&mut sb, &me, &dev, "run", "device", &cfg)?;
    wait_applied(&me, &state)?;
    wait_applied(&me, &dev2_state)?;
    print!(
        "{}",
        std::fs::read_to_string(sb.dir.join("device.log")).unwrap_or_default()
    );
    show(&[
        "ip", "-n", &dev, "-br", "link", "show", "master", "ec-plant",
    ])?;
    show(&["ip", "-n", &dev, "-br", "addr", "show", "ec-lan"])?;
    show(&["ip", "-n", &eco1, "-br", "link"])?;

    step("4. The switch network: L2 frames pass unchanged between scada and the plant floor");
    ip(&eco1, "addr add 192.168.60.11/24 dev eth0")?;
    println!("(a switch network has no DHCP or DNS: scada's eth0 gets 192.168.60.11 by hand)");
    busybox(&eco1, "ping -c 2 -W 2 192.168.60.1")?;

    step("5. The local network: leases by DHCP (busybox udhcpc), names by DNS, NAT to the uplink");
    let hook = sb.dir.join("udhcpc-hook");
    write(&hook, HOOK)?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).map_err(|err| {
        DemoError::File {
            path: hook.clone(),
            err,
        }
    })?;
    lease(&sb, &eco1, "eth1", "scada")?;
    lease(&sb, &eco2, "eth0", "historian")?;
    busybox(&eco2, "nslookup scada.eco.internal 10.1.0.1")?;
    busybox(&eco2, "nslookup historian-db.eco.internal 10.1.0.1")?;
    busybox(&eco2, "ping -c 2 -W 2 192.0.2.1")?;
    println!("(the upstream host sees the device's address: the ECOs are behind NAT)");
    println!("$ ip netns exec {eco2} busybox ping -c 1 -W 1 10.1.0.1   # the device itself");
    match sh(&[
        "ip", "netns", "exec", &eco2, "busybox", "ping", "-c", "1", "-W", "1", "10.1.0.1",
    ]) {
        Ok(_) => {
            return Err(DemoError::Broken(
                "an ECO reached the device beyond DHCP and DNS",
            ))
        }
        Err(_) => println!("  no answer: ECOs reach the device only for DHCP and DNS"),
    }

    step("6. The cloud network: historian reaches the ERP server at the head office, only through IPsec");
    println!("(static addresses: historian's eth1 is 10.3.0.5, the ERP server 172.31.0.5)");
    ip(&eco2, "addr add 10.3.0.5/24 dev eth1")?;
    ip(&eco2, "route add 172.31.0.0/24 via 10.3.0.1")?;
    ip(&erp, "addr add 172.31.0.5/24 dev eth0")?;
    ip(&erp, "route add default via 172.31.0.1")?;
    wait_status(
        &me,
        &state,
        "\"state\":\"established\"",
        "the VPN to come up",
    )?;
    println!("IKEv2 tunnel from 192.0.2.2 to the head office's gateway 192.0.2.1: established");
    busybox(&eco2, "ping -c 2 -W 2 172.31.0.5")?;
    show(&["ip", "-n", &dev, "route", "show", "172.31.0.0/24"])?;
    println!("(on the uplink these pings are ESP in UDP 4500; nothing leaves the cloud network in the clear)");

    step("7. The mesh network: scada and dashboard, on two devices, share 10.200.0.0/16 through LISP");
    println!("(each device leases from its own range of the shared subnet and registers its ECOs with the map server)");
    let scada = lease(&sb, &eco1, "eth2", "scada")?;
    let dashboard = lease(&sb, &eco3, "eth0", "dashboard")?;
    for st in [&state, &dev2_state] {
        wait_status(&me, st, "\"registered\":true", "the mesh registration")?;
    }
    for eid in [&scada, &dashboard] {
        wait_status(&me, &ms_state, &format!("]{eid}/32\""), "the map server")?;
    }
    show(&[&me_s, "status", "--state-dir", &ms_state])?;
    busybox(&eco1, &format!("ping -c 2 -W 2 {dashboard}"))?;
    busybox(&eco3, &format!("ping -c 2 -W 2 {scada}"))?;
    println!("(between the devices these pings are LISP in UDP 4341, encrypted with LISP-crypto;");
    println!(" the first one waits for a Map-Request to the map server, then the path is cached)");

    step("8. econet status, on both devices");
    show(&[&me_s, "status", "--state-dir", &state])?;
    show(&[&me_s, "status", "--state-dir", &dev2_state])?;
    Ok(())
}

fn wait_applied(me: &Path, state: &str) -> Result<(), DemoError> {
    wait_status(me, state, "\"applied\":true", "the config to be applied")
}

/// Waits (at most 15 s) until `econet status --json` contains `needle`.
fn wait_status(me: &Path, state: &str, needle: &str, what: &str) -> Result<(), DemoError> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let out = Command::new(me)
            .args(["status", "--json", "--state-dir", state])
            .output();
        if let Ok(o) = out {
            if String::from_utf8_lossy(&o.stdout).contains(needle) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(DemoError::Timeout {
        what: what.to_string(),
    })
}
