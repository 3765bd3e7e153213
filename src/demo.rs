//! `econet demo`: a guided run on a scratch sandbox. It builds network namespaces
//! (a device, two ECOs, a host on the plant floor, an upstream host behind the device's
//! port that is also the VPN gateway of a head office, run by a second econet), runs
//! econet in the device with an example config, shows the ECOs talking on a switch, a
//! local and a cloud network, prints the status, and removes everything it made. The demo is a test harness, not the agent: it uses
//! `ip netns` and `ping`; econet itself never does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

    fn add_ns(&mut self, tag: &str) -> Result<String, String> {
        let name = self.ns(tag);
        sh(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for mut c in self.econet.drain(..) {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
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

fn sh(cmd: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(s: &str) {
    println!("\n== {s}");
}

fn show(cmd: &[&str]) -> Result<String, String> {
    println!("$ {}", cmd.join(" "));
    let out = sh(cmd)?;
    print!("{out}");
    Ok(out)
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
      "static_dns": [{{"host": "historian-db", "addrs": ["10.1.0.5"]}}]}}
  ],
  "apps": [
    {{"id": "22222222-0000-4000-8000-00000000d001", "name": "scada",
      "interfaces": [
        {{"name": "eth0", "network": "11111111-0000-4000-8000-00000000d001", "attach": {{"netns": "/run/netns/{eco1}"}}}},
        {{"name": "eth1", "network": "11111111-0000-4000-8000-00000000d002", "attach": {{"netns": "/run/netns/{eco1}"}}}}
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
    )
}

/// The PSK of the demo's VPN (a real one comes from the controller and never shows).
const PSK: &str = "demo shared secret, not for production";

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

/// Starts `econet ARGS` inside namespace `ns`, its log going to `log`.
fn start_econet(
    sb: &mut Sandbox,
    me: &Path,
    ns: &str,
    args: &[&str],
    log: &str,
) -> Result<(), String> {
    let log = std::fs::File::create(sb.dir.join(log)).map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(me)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start econet: {e}"))?;
    sb.econet.push(child);
    Ok(())
}

/// A udhcpc hook that applies the lease like a network manager would.
const HOOK: &str = "#!/bin/sh\n\
case \"$1\" in\n\
  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\"\n\
    [ -n \"$router\" ] && ip route replace default via \"$router\"\n\
    echo \"  $interface: leased $ip/$mask, router $router, DNS $dns, domain $domain\" ;;\n\
  deconfig) ip addr flush dev \"$interface\" ;;\n\
esac\n";

pub fn main(_opts: &crate::cli::Opts) -> i32 {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("econet demo needs root (it creates network namespaces)");
        return 1;
    }
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("busybox", "busybox"),
    ] {
        if sh(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            eprintln!("econet demo needs `{tool}` (apt-get install {pkg})");
            return 1;
        }
    }
    match demo() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("demo failed: {e}");
            1
        }
    }
}

fn demo() -> Result<(), String> {
    let pid = std::process::id();
    let mut sb = Sandbox {
        prefix: format!("econet-demo-{pid}"),
        namespaces: Vec::new(),
        dir: std::env::temp_dir().join(format!("econet-demo-{pid}")),
        econet: Vec::new(),
    };
    std::fs::create_dir_all(&sb.dir).map_err(|e| e.to_string())?;

    step("1. A sandbox: a device, two ECOs (containers), a host on the plant floor, an upstream host that is also a head office's VPN gateway");
    let dev = sb.add_ns("dev")?;
    let eco1 = sb.add_ns("eco1")?;
    let eco2 = sb.add_ns("eco2")?;
    let floor = sb.add_ns("floor")?;
    let up = sb.add_ns("upstream")?;
    let erp = sb.add_ns("erp")?;
    for (port, peer, peer_addr) in [
        ("eth0", &up, "192.0.2.1/24"),
        ("eth1", &floor, "192.168.60.1/24"),
    ] {
        sh(&[
            "ip", "-n", &dev, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
            peer,
        ])?;
        sh(&["ip", "-n", &dev, "link", "set", port, "up"])?;
        sh(&["ip", "-n", peer, "link", "set", "eth0", "up"])?;
        sh(&["ip", "-n", peer, "addr", "add", peer_addr, "dev", "eth0"])?;
    }
    // The device's uplink, as its own network manager would have set it up.
    sh(&[
        "ip",
        "-n",
        &dev,
        "addr",
        "add",
        "192.0.2.2/24",
        "dev",
        "eth0",
    ])?;
    sh(&[
        "ip",
        "-n",
        &dev,
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
    ])?;
    println!("{dev}: the device; port eth0 (uplink, 192.0.2.2) to {up} (192.0.2.1),");
    println!("    port eth1 (plant floor, no address) to {floor} (192.168.60.1)");
    println!("{eco1}: the ECO \"scada\"; {eco2}: the ECO \"historian\"");
    println!("{erp}: the ERP server at the head office, behind {up}'s VPN gateway");

    step("2. The device config: a switch network on the plant floor, a local network with NAT to the uplink, a cloud network to the head office");
    let cfg_path = sb.dir.join("device.json");
    let cfg = config(&sb);
    std::fs::write(&cfg_path, &cfg).map_err(|e| e.to_string())?;
    print!("{cfg}");
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me_s = me.to_str().unwrap_or("econet").to_string();
    show(&[&me_s, "check", cfg_path.to_str().unwrap_or_default()])?;

    step(
        "3. econet run, inside the device namespace (and at the head office, as the VPN responder)",
    );
    let hq_cfg = sb.dir.join("hq.json");
    std::fs::write(&hq_cfg, hq_config(&sb)).map_err(|e| e.to_string())?;
    let hq_state = sb.dir.join("hq-state");
    let hq_args = [
        "run",
        "--config",
        hq_cfg.to_str().unwrap_or_default(),
        "--state-dir",
        hq_state.to_str().unwrap_or_default(),
    ];
    println!("$ ip netns exec {up} econet {}", hq_args.join(" "));
    start_econet(&mut sb, &me, &up, &hq_args, "hq.log")?;
    let state = sb.dir.join("state");
    let args = [
        "run",
        "--config",
        cfg_path.to_str().unwrap_or_default(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ];
    println!("$ ip netns exec {dev} econet {}", args.join(" "));
    start_econet(&mut sb, &me, &dev, &args, "econet.log")?;
    wait_applied(&me, &state)?;
    print!(
        "{}",
        std::fs::read_to_string(sb.dir.join("econet.log")).unwrap_or_default()
    );
    show(&[
        "ip", "-n", &dev, "-br", "link", "show", "master", "ec-plant",
    ])?;
    show(&["ip", "-n", &dev, "-br", "addr", "show", "ec-lan"])?;
    show(&["ip", "-n", &eco1, "-br", "link"])?;

    step("4. The switch network: L2 frames pass unchanged between scada and the plant floor");
    sh(&[
        "ip",
        "-n",
        &eco1,
        "addr",
        "add",
        "192.168.60.11/24",
        "dev",
        "eth0",
    ])?;
    println!("(a switch network has no DHCP or DNS: scada's eth0 gets 192.168.60.11 by hand)");
    show(&[
        "ip",
        "netns",
        "exec",
        &eco1,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "192.168.60.1",
    ])?;

    step("5. The local network: leases by DHCP (busybox udhcpc), names by DNS, NAT to the uplink");
    let hook = sb.dir.join("udhcpc-hook");
    std::fs::write(&hook, HOOK).map_err(|e| e.to_string())?;
    sh(&["chmod", "+x", hook.to_str().unwrap_or_default()])?;
    for (ns, ifname, name) in [(&eco1, "eth1", "scada"), (&eco2, "eth0", "historian")] {
        let started = Instant::now();
        println!("$ ip netns exec {ns} busybox udhcpc -q -i {ifname} -x hostname:{name} …");
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
            hook.to_str().unwrap_or_default(),
            "-x",
            &format!("hostname:{name}"),
        ])?;
        print!("{out}");
        println!(
            "  ({} ms from udhcpc start to address applied)",
            started.elapsed().as_millis()
        );
    }
    show(&[
        "ip",
        "netns",
        "exec",
        &eco2,
        "busybox",
        "nslookup",
        "scada.eco.internal",
        "10.1.0.1",
    ])?;
    show(&[
        "ip",
        "netns",
        "exec",
        &eco2,
        "busybox",
        "nslookup",
        "historian-db.eco.internal",
        "10.1.0.1",
    ])?;
    show(&[
        "ip",
        "netns",
        "exec",
        &eco2,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "192.0.2.1",
    ])?;
    println!("(the upstream host sees the device's address: the ECOs are behind NAT)");
    println!("$ ip netns exec {eco2} ping -c 1 -W 1 10.1.0.1   # the device itself");
    match sh(&[
        "ip", "netns", "exec", &eco2, "ping", "-c", "1", "-W", "1", "10.1.0.1",
    ]) {
        Ok(_) => return Err("an ECO reached the device beyond DHCP and DNS".into()),
        Err(_) => println!("  no answer: ECOs reach the device only for DHCP and DNS"),
    }

    step("6. The cloud network: historian reaches the ERP server at the head office, only through IPsec");
    println!("(static addresses: historian's eth1 is 10.3.0.5, the ERP server 172.31.0.5)");
    sh(&[
        "ip",
        "-n",
        &eco2,
        "addr",
        "add",
        "10.3.0.5/24",
        "dev",
        "eth1",
    ])?;
    sh(&[
        "ip",
        "-n",
        &eco2,
        "route",
        "add",
        "172.31.0.0/24",
        "via",
        "10.3.0.1",
    ])?;
    sh(&[
        "ip",
        "-n",
        &erp,
        "addr",
        "add",
        "172.31.0.5/24",
        "dev",
        "eth0",
    ])?;
    sh(&[
        "ip",
        "-n",
        &erp,
        "route",
        "add",
        "default",
        "via",
        "172.31.0.1",
    ])?;
    wait_status(
        &me,
        &state,
        "\"state\":\"established\"",
        "the VPN to come up",
    )?;
    println!("IKEv2 tunnel from 192.0.2.2 to the head office's gateway 192.0.2.1: established");
    show(&[
        "ip",
        "netns",
        "exec",
        &eco2,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "172.31.0.5",
    ])?;
    show(&["ip", "-n", &dev, "route", "show", "172.31.0.0/24"])?;
    println!("(on the uplink these pings are ESP in UDP 4500; nothing leaves the cloud network in the clear)");

    step("7. econet status");
    show(&[
        &me_s,
        "status",
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ])?;
    Ok(())
}

fn wait_applied(me: &Path, state: &Path) -> Result<(), String> {
    wait_status(me, state, "\"applied\":true", "the config to be applied")
}

/// Waits (at most 15 s) until `econet status --json` contains `needle`.
fn wait_status(me: &Path, state: &Path, needle: &str, what: &str) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let out = Command::new(me)
            .args(["status", "--json", "--state-dir"])
            .arg(state)
            .output();
        if let Ok(o) = out {
            if String::from_utf8_lossy(&o.stdout).contains(needle) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("waited 15 s for {what}"))
}
