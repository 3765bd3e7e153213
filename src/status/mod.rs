//! The status document (`econet status --json`, and what the controller receives):
//! its model, and renderings as JSON, as text for people, and as a Graphviz graph.

pub mod writer;

use writer::JsonWriter;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStatus {
    pub app: String,
    /// The app's name (an econet addition to the status document).
    pub app_name: String,
    pub interface: String,
    pub mac: String,
    pub ip: Option<String>,
    /// Its IPv6 address on a dual-stack network (static or by DHCPv6).
    pub ip6: Option<String>,
    pub hostname: Option<String>,
    pub lease_expires: Option<u64>,
    /// The host-side interface (veth host end or tap).
    pub host_ifname: String,
    /// Up, or waiting with `error` saying what for.
    pub state: EndpointState,
    pub error: Option<String>,
    /// With ACLs: per ACE (by id, 0 the implicit drop) the packets and bytes
    /// matched.
    pub acl: Option<Vec<crate::acl::AceCount>>,
}

/// Declares a status enum and the word each value is written as, in JSON and text.
macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub enum $name {
            #[default]
            $($(#[$vm])* $v),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum!(
    /// A network's state: being applied, working, or not (with its errors).
    NetState {
        Init => "init",
        Online => "online",
        Error => "error",
    }
);

status_enum!(
    /// An endpoint's state.
    EndpointState {
        Waiting => "waiting",
        Up => "up",
    }
);

status_enum!(
    /// A cloud network's tunnel.
    VpnState {
        /// No port is up to carry it.
        Down => "down",
        /// A port is up; no IKE SA is being negotiated.
        Idle => "idle",
        Connecting => "connecting",
        /// The IKE SA is up but no CHILD SA carries traffic yet.
        IkeOnly => "ike-only",
        Established => "established",
        Closing => "closing",
    }
);

/// A cloud network's tunnel, as the VPN service reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpnStatus {
    pub state: VpnState,
    /// The port carrying the tunnel, and the others that could.
    pub port: Option<String>,
    pub standby: Vec<String>,
    pub remote: String,
    /// Wall-clock unix seconds since the tunnel has been up.
    pub since: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The CHILD SA carrying traffic.
    pub spi_in: Option<u32>,
    pub spi_out: Option<u32>,
    pub child_age_secs: Option<u64>,
    pub ike_age_secs: Option<u64>,
    pub ike_rekeys: u32,
    pub child_rekeys: u32,
    /// Why the tunnel last went down.
    pub last_down: Option<String>,
    /// Packets dropped (no SA, not allowed by the traffic selectors, …).
    pub dropped: u64,
}

/// A network's DNS service: what it turned away to stay fair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsStatus {
    /// TCP clients refused, or cut for a client holding fewer connections.
    pub tcp_refused: u64,
    /// Queries refused for being over their client's forwarding budget.
    pub forwards_limited: u64,
    /// Addresses answers gave for `host` ACEs: admitted (or renewed), refused by a
    /// full set, not admitted for another reason (the set not there yet, …).
    pub acl_hosts_learned: u64,
    pub acl_hosts_full: u64,
    pub acl_hosts_failed: u64,
}

/// A network's DHCP service: how its lease file fares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhcpStatus {
    /// Lease file writes that failed (each is retried until one succeeds).
    pub lease_write_failures: u64,
}

/// A mesh network's xTR, as the mesh service reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshStatus {
    pub registered: bool,
    pub map_cache: u64,
    pub rloc: Option<String>,
    pub encap: u64,
    pub decap: u64,
    pub dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkStatus {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub state: NetState,
    pub errors: Vec<String>,
    /// What works but needs a look (a state file set aside, a write that failed and
    /// is being retried); the network is not in error for them.
    pub warnings: Vec<String>,
    pub bridge: String,
    pub active_port: Option<String>,
    pub standby_ports: Vec<String>,
    pub endpoints: Vec<EndpointStatus>,
    pub vpn: Option<VpnStatus>,
    pub mesh: Option<MeshStatus>,
    pub dns: Option<DnsStatus>,
    pub dhcp: Option<DhcpStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub device_id: String,
    pub config_version: String,
    /// The accepted config has been applied (a full reconcile pass ran for it).
    pub applied: bool,
    pub networks: Vec<NetworkStatus>,
    /// The errors of the last config that was rejected, if it came after the one running.
    pub rejected: Vec<String>,
    /// The device's own warnings (a last good config set aside, …).
    pub warnings: Vec<String>,
    /// Where the running config came from ("file /etc/econet/config.json", …).
    pub source: String,
    /// Kernel changes made by the last reconcile pass and since start.
    pub last_changes: u64,
    pub total_changes: u64,
    /// How long the last pass that changed something took, in milliseconds.
    pub last_apply_ms: u64,
    /// Why the last controller poll failed, if it did.
    pub controller_error: Option<String>,
    /// How long the last controller poll that found nothing new took.
    pub poll_ms: Option<u64>,
    /// The longest the event loop went without waiting, in milliseconds.
    pub loop_worst_ms: u64,
    /// The same over the last 10 to 20 seconds.
    pub loop_recent_ms: u64,
}

impl Status {
    /// The status document. `counters` adds the byte counters and the econet-specific
    /// fields; without it the document changes only when something of substance does.
    pub fn to_json(&self, counters: bool) -> String {
        let mut w = JsonWriter::new();
        w.begin_obj();
        w.key("device_id").str(&self.device_id);
        w.key("config_version").str(&self.config_version);
        w.key("applied").bool(self.applied);
        w.key("networks").begin_arr();
        for n in &self.networks {
            network_json(&mut w, n, counters);
        }
        w.end_arr();
        w.key("rejected").begin_arr();
        for e in &self.rejected {
            w.str(e);
        }
        w.end_arr();
        warnings_json(&mut w, &self.warnings);
        if let Some(e) = &self.controller_error {
            w.key("controller_error").str(e);
        }
        if counters {
            w.key("source").str(&self.source);
            w.key("last_changes").num(self.last_changes);
            w.key("total_changes").num(self.total_changes);
            w.key("last_apply_ms").num(self.last_apply_ms);
            if let Some(p) = self.poll_ms {
                w.key("poll_ms").num(p);
            }
            w.key("loop_worst_ms").num(self.loop_worst_ms);
            w.key("loop_recent_ms").num(self.loop_recent_ms);
        }
        w.end_obj();
        w.finish()
    }

    /// A summary for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "device {}  config {}  {}",
            self.device_id,
            if self.config_version.is_empty() {
                "-"
            } else {
                &self.config_version
            },
            if self.applied {
                "applied"
            } else {
                "not applied yet"
            }
        );
        if !self.rejected.is_empty() {
            let _ = writeln!(s, "last config REJECTED (still running the previous one):");
            for e in &self.rejected {
                let _ = writeln!(s, "  {e}");
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        for n in &self.networks {
            let _ = writeln!(
                s,
                "\nnetwork {} ({}, {})  bridge {}  {}",
                n.name,
                n.kind,
                n.id,
                n.bridge,
                n.state.as_str().to_uppercase()
            );
            for e in &n.errors {
                let _ = writeln!(s, "  error: {e}");
            }
            for w in &n.warnings {
                let _ = writeln!(s, "  warning: {w}");
            }
            if let Some(p) = &n.active_port {
                let _ = write!(s, "  port {p}");
                if !n.standby_ports.is_empty() {
                    let _ = write!(s, " (standby {})", n.standby_ports.join(", "));
                }
                let _ = writeln!(s);
            }
            if let Some(v) = &n.vpn {
                let _ = writeln!(
                    s,
                    "  vpn {} to {} via {}  rx {} tx {} bytes",
                    v.state,
                    v.remote,
                    v.port.as_deref().unwrap_or("-"),
                    v.rx_bytes,
                    v.tx_bytes
                );
            }
            if let Some(m) = &n.mesh {
                let _ = writeln!(
                    s,
                    "  mesh {}  rloc {}  map-cache {}",
                    if m.registered {
                        "registered"
                    } else {
                        "not registered"
                    },
                    m.rloc.as_deref().unwrap_or("-"),
                    m.map_cache
                );
            }
            if let Some(d) = n
                .dns
                .as_ref()
                .filter(|d| d.tcp_refused + d.forwards_limited > 0)
            {
                let _ = writeln!(
                    s,
                    "  dns turned away {} TCP clients and {} queries over their forwarding budget",
                    d.tcp_refused, d.forwards_limited
                );
            }
            if let Some(d) = n
                .dns
                .as_ref()
                .filter(|d| d.acl_hosts_full + d.acl_hosts_failed > 0)
            {
                let _ = writeln!(
                    s,
                    "  dns could not admit {} addresses for host ACEs (set full), {} for other reasons",
                    d.acl_hosts_full, d.acl_hosts_failed
                );
            }
            for e in &n.endpoints {
                let _ = write!(
                    s,
                    "  {:<12} {:<6} {} {:<15}",
                    e.app_name,
                    e.interface,
                    e.mac,
                    e.ip.as_deref().unwrap_or("-")
                );
                if let Some(ip6) = &e.ip6 {
                    let _ = write!(s, " {ip6}");
                }
                if let Some(h) = &e.hostname {
                    let _ = write!(s, " {h}");
                }
                let _ = write!(s, "  [{}] {}", e.host_ifname, e.state);
                if let Some(err) = &e.error {
                    let _ = write!(s, ": {err}");
                }
                let _ = writeln!(s);
                if let Some(acl) = &e.acl {
                    let _ = write!(s, "    acl");
                    for c in acl {
                        let what = match c.id {
                            0 => "implicit drop".to_string(),
                            id => format!("ace {id}"),
                        };
                        let _ = write!(s, "  {what}: {} pkts {} B", c.packets, c.bytes);
                    }
                    let _ = writeln!(s);
                }
            }
        }
        s
    }

    /// The device as a Graphviz graph: ports, networks (bridges) and ECOs.
    pub fn to_dot(&self) -> String {
        use std::fmt::Write;
        let q = crate::config::json::quote;
        let mut s = String::from("graph econet {\n  rankdir=LR;\n  node [fontname=\"sans\"];\n");
        let mut apps: Vec<&str> = Vec::new();
        for (i, n) in self.networks.iter().enumerate() {
            let color = match n.state {
                NetState::Online => "darkgreen",
                NetState::Error => "red",
                NetState::Init => "orange",
            };
            let _ = writeln!(
                s,
                "  net{i} [shape=box, color={color}, label={}];",
                q(&format!("{} ({})\\n{}", n.name, n.kind, n.bridge))
            );
            if let Some(p) = &n.active_port {
                let _ = writeln!(
                    s,
                    "  {} [shape=diamond];\n  {} -- net{i};",
                    q(&format!("port {p}")),
                    q(&format!("port {p}"))
                );
            }
            for p in &n.standby_ports {
                let _ = writeln!(
                    s,
                    "  {} [shape=diamond];\n  {} -- net{i} [style=dashed];",
                    q(&format!("port {p}")),
                    q(&format!("port {p}"))
                );
            }
            for e in &n.endpoints {
                if !apps.contains(&e.app.as_str()) {
                    apps.push(&e.app);
                    let _ = writeln!(
                        s,
                        "  {} [shape=ellipse, label={}];",
                        q(&format!("app {}", e.app)),
                        q(&format!("ECO {}", e.app_name))
                    );
                }
                let label = format!("{} {}", e.interface, e.ip.as_deref().unwrap_or(""));
                let _ = writeln!(
                    s,
                    "  {} -- net{i} [label={}];",
                    q(&format!("app {}", e.app)),
                    q(label.trim())
                );
            }
        }
        s.push_str("}\n");
        s
    }
}

/// `"warnings": [...]`, only when there are some (an econet addition).
fn warnings_json(w: &mut JsonWriter, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    w.key("warnings").begin_arr();
    for x in warnings {
        w.str(x);
    }
    w.end_arr();
}

fn network_json(w: &mut JsonWriter, n: &NetworkStatus, counters: bool) {
    w.begin_obj();
    w.key("id").str(&n.id);
    w.key("name").str(&n.name);
    w.key("type").str(&n.kind);
    w.key("state").str(n.state.as_str());
    w.key("errors").begin_arr();
    for e in &n.errors {
        w.str(e);
    }
    w.end_arr();
    warnings_json(w, &n.warnings);
    w.key("bridge").str(&n.bridge);
    w.key("ports").begin_obj();
    w.key("active").opt_str(n.active_port.as_deref());
    w.key("standby").begin_arr();
    for p in &n.standby_ports {
        w.str(p);
    }
    w.end_arr();
    w.end_obj();
    w.key("endpoints").begin_arr();
    for e in &n.endpoints {
        w.begin_obj();
        w.key("app").str(&e.app);
        w.key("app_name").str(&e.app_name);
        w.key("interface").str(&e.interface);
        w.key("mac").str(&e.mac);
        if let Some(ip) = &e.ip {
            w.key("ip").str(ip);
        }
        if let Some(ip) = &e.ip6 {
            w.key("ip6").str(ip);
        }
        if let Some(h) = &e.hostname {
            w.key("hostname").str(h);
        }
        if let Some(x) = e.lease_expires {
            w.key("lease_expires").num(x);
        }
        w.key("host_ifname").str(&e.host_ifname);
        w.key("state").str(e.state.as_str());
        if let Some(err) = &e.error {
            w.key("error").str(err);
        }
        if let (true, Some(acl)) = (counters, &e.acl) {
            w.key("acls").begin_arr();
            for c in acl {
                w.begin_obj();
                w.key("id").num(u64::from(c.id));
                w.key("packets").num(c.packets);
                w.key("bytes").num(c.bytes);
                w.end_obj();
            }
            w.end_arr();
        }
        w.end_obj();
    }
    w.end_arr();
    if let Some(v) = &n.vpn {
        w.key("vpn").begin_obj();
        w.key("state").str(v.state.as_str());
        w.key("port").opt_str(v.port.as_deref());
        w.key("remote").str(&v.remote);
        w.key("since").opt_num(v.since);
        if counters {
            w.key("rx_bytes").num(v.rx_bytes);
            w.key("tx_bytes").num(v.tx_bytes);
            let hex = |spi: Option<u32>| spi.map(|s| format!("{s:08x}"));
            w.key("spi_in").opt_str(hex(v.spi_in).as_deref());
            w.key("spi_out").opt_str(hex(v.spi_out).as_deref());
            w.key("child_sa_age_secs").opt_num(v.child_age_secs);
            w.key("ike_sa_age_secs").opt_num(v.ike_age_secs);
            w.key("ike_rekeys").num(u64::from(v.ike_rekeys));
            w.key("child_rekeys").num(u64::from(v.child_rekeys));
            w.key("last_down").opt_str(v.last_down.as_deref());
            w.key("dropped").num(v.dropped);
        }
        w.end_obj();
    }
    if let Some(m) = &n.mesh {
        w.key("mesh").begin_obj();
        w.key("registered").bool(m.registered);
        w.key("map_cache").num(m.map_cache);
        w.key("rloc").opt_str(m.rloc.as_deref());
        if counters {
            w.key("encap").num(m.encap);
            w.key("decap").num(m.decap);
            w.key("dropped").num(m.dropped);
        }
        w.end_obj();
    }
    if let (Some(d), true) = (&n.dhcp, counters) {
        w.key("dhcp").begin_obj();
        w.key("lease_write_failures").num(d.lease_write_failures);
        w.end_obj();
    }
    if let (Some(d), true) = (&n.dns, counters) {
        w.key("dns").begin_obj();
        w.key("tcp_refused").num(d.tcp_refused);
        w.key("forwards_limited").num(d.forwards_limited);
        w.key("acl_hosts_learned").num(d.acl_hosts_learned);
        w.key("acl_hosts_full").num(d.acl_hosts_full);
        w.key("acl_hosts_failed").num(d.acl_hosts_failed);
        w.end_obj();
    }
    w.end_obj();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_valid_and_counters_are_optional() {
        let s = Status {
            device_id: "d\"1".into(),
            config_version: "17".into(),
            applied: true,
            networks: vec![NetworkStatus {
                id: "n".into(),
                name: "lan".into(),
                kind: "local".into(),
                state: NetState::Online,
                bridge: "ec-lan".into(),
                active_port: Some("eth0".into()),
                endpoints: vec![EndpointStatus {
                    app: "a".into(),
                    interface: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    ip: Some("10.1.0.23".into()),
                    state: EndpointState::Up,
                    ..Default::default()
                }],
                vpn: Some(VpnStatus {
                    state: VpnState::Established,
                    rx_bytes: 5,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            total_changes: 3,
            ..Default::default()
        };
        for counters in [false, true] {
            let j = s.to_json(counters);
            crate::config::json::check_syntax(j.as_bytes()).unwrap();
            assert_eq!(j.contains("rx_bytes"), counters);
            assert_eq!(j.contains("total_changes"), counters);
        }
        assert!(s.to_json(false).contains(r#""device_id":"d\"1""#));
        assert!(s
            .to_text()
            .contains("network lan (local, n)  bridge ec-lan  ONLINE"));
        assert!(s.to_dot().starts_with("graph econet {"));
    }
}
