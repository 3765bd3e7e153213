//! The running econet: the config it holds, the reconciler that makes the kernel
//! match it, the kernel events and timers that trigger reconciling, and the status it
//! reports. Driven by `event_loop`.

use crate::config::{self, validate, Config, ConfigError, NetKind};
use crate::control::{ControlServer, Request};
use crate::event_loop::{earliest, Handler, Poller};
use crate::firewall::{Allowed, Allowed6};
use crate::netlink::monitor::{Event, Monitor};
use crate::persist;
use crate::reconcile::facts::Facts;
use crate::reconcile::{Outcome, Reconciler};
use crate::services::{LeaseEvent, ServiceEvent, Services};
use crate::status::{EndpointState, EndpointStatus, NetState, NetworkStatus, Status};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the config comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    Controller(crate::controller::Settings),
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub source: Source,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Configs for another device are rejected; `None`: the running config's id.
    pub device_id: Option<String>,
}

/// Name of the last good config in the state directory.
pub const LAST_GOOD: &str = "config.json";
/// Name of the control socket in the state directory.
pub const SOCKET: &str = "control.sock";

/// Kernel events arrive in bursts (and econet's own changes echo back): wait this
/// long after the first before reconciling.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A full reconcile at least this often, whatever happens.
const RESYNC: Duration = Duration::from_secs(60);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

const T_MONITOR: u64 = 1;
const T_INOTIFY: u64 = 2;
const T_CONTROL: u64 = 3;
const T_CONTROLLER: u64 = 4;
const T_CONN: u64 = 0x100;
/// Service `i` owns the tokens from `T_SERVICES + i * services::TOKEN_SPAN`.
const T_SERVICES: u64 = 0x10000;
/// Status goes to the controller when it changes in substance, and this often anyway
/// (with counters).
const STATUS_EVERY: Duration = Duration::from_secs(300);

/// Per network: what the last reconcile pass found.
#[derive(Clone, Debug, Default)]
struct NetRuntime {
    errors: Vec<String>,
    /// (app id, interface) → why the endpoint is not up.
    endpoint_issues: HashMap<(String, String), String>,
}

pub struct Daemon {
    settings: Settings,
    config: Option<Config>,
    rejected: Vec<String>,
    /// The device's own warnings, for status (a last good config set aside).
    warnings: Vec<String>,
    recon: Reconciler,
    monitor: Monitor,
    control: ControlServer,
    inotify: Option<Inotify>,
    watched_dirs: Vec<PathBuf>,
    applied: bool,
    runtime: Vec<NetRuntime>,
    fatal: Option<String>,
    reconcile_at: Option<Instant>,
    retry: Duration,
    resync_at: Instant,
    total_changes: u64,
    last_changes: u64,
    last_apply_ms: u64,
    facts: Facts,
    services: Services,
    /// Networks whose DNS names must follow their leases before DNS next reads.
    hosts_stale: Vec<String>,
    /// Scratch: the events of one service call, routed at once.
    events: Vec<ServiceEvent>,
    /// The links as the last reconcile pass left them.
    links: Vec<crate::netlink::link::Link>,
    /// Service errors per network id (sockets that could not be opened, …).
    service_errors: BTreeMap<String, Vec<String>>,
    controller: Option<crate::controller::Controller>,
    /// Why the last controller poll failed, if it did.
    controller_error: Option<String>,
    /// How long the last poll that found nothing new took.
    poll_ms: Option<u64>,
    /// Something of substance may have changed: compare and post.
    status_dirty: bool,
    /// The status last posted, without counters.
    posted: String,
    next_post: Instant,
    /// The longest the loop spent between two waits.
    loop_worst: Duration,
    /// The same over 10-second windows: (this window's worst, the last one's, start).
    loop_window: (Duration, Duration, Instant),
}

/// Why a daemon (`econet run`, `econet map-server`) could not start.
#[derive(Debug)]
pub enum StartError {
    /// Something it needs (a directory, a socket): what, and the error.
    Io { what: String, err: std::io::Error },
    /// Its config file is unreadable or invalid.
    Config(crate::config::FileError),
}

impl StartError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
        let what = what.into();
        move |err| StartError::Io { what, err }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io { what, err } => write!(f, "{what}: {err}"),
            StartError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl Daemon {
    pub fn new(settings: Settings) -> Result<Daemon, StartError> {
        let dir = &settings.state_dir;
        persist::ensure_dir(dir)
            .map_err(StartError::io(format!("state directory {}", dir.display())))?;
        let recon = Reconciler::new().map_err(StartError::io("netlink"))?;
        let monitor = Monitor::open().map_err(StartError::io("netlink monitor"))?;
        let control = ControlServer::bind(&settings.socket).map_err(StartError::io(format!(
            "control socket {}",
            settings.socket.display()
        )))?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
        let settings_state_dir = settings.state_dir.clone();
        let mut d = Daemon {
            settings,
            config: None,
            rejected: Vec::new(),
            warnings: Vec::new(),
            recon,
            monitor,
            control,
            inotify,
            watched_dirs: Vec::new(),
            applied: false,
            runtime: Vec::new(),
            fatal: None,
            reconcile_at: None,
            retry: RETRY_MIN,
            resync_at: Instant::now() + RESYNC,
            total_changes: 0,
            last_changes: 0,
            last_apply_ms: 0,
            facts: Facts::default(),
            services: Services::new(&settings_state_dir),
            hosts_stale: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            service_errors: Default::default(),
            controller: None,
            controller_error: None,
            poll_ms: None,
            status_dirty: true,
            posted: String::new(),
            next_post: Instant::now(),
            loop_worst: Duration::ZERO,
            loop_window: (Duration::ZERO, Duration::ZERO, Instant::now()),
        };
        d.boot();
        Ok(d)
    }

    fn last_good_path(&self) -> PathBuf {
        self.settings.state_dir.join(LAST_GOOD)
    }

    /// At start: the last good config at once (so a device whose controller is
    /// unreachable runs what it ran), then the source.
    fn boot(&mut self) {
        let path = self.last_good_path();
        match persist::read_state(&path, config::raw::MAX_DOC as u64) {
            Ok(None) => {}
            Ok(Some(bytes)) => match config::parse(&bytes) {
                Ok(cfg) => {
                    log::info!("last good config from {}", path.display());
                    self.install(cfg);
                }
                Err(errs) => {
                    let why = format!(
                        "the last good config is not valid ({}{})",
                        errs[0],
                        match errs.len() {
                            1 => String::new(),
                            n => format!(", and {} more", n - 1),
                        }
                    );
                    self.warnings.push(persist::set_aside(&path, &why));
                }
            },
            Err(e) => self.warnings.push(persist::set_aside(&path, &e)),
        }
        match self.settings.source.clone() {
            Source::File(_) => self.reload(),
            Source::Controller(c) => match crate::controller::Controller::start(c.clone()) {
                Ok(ctl) => {
                    log::info!("polling controller {}", c.url);
                    self.controller = Some(ctl);
                }
                Err(e) => log::error!("cannot start the controller thread: {e}"),
            },
        }
        if self.config.is_none() {
            log::warn!("no valid config yet: nothing to apply until one arrives");
        }
    }

    /// A config document arrived (a file read, a controller reply): accept it whole
    /// or reject it whole; a rejection changes nothing that runs.
    fn intake(&mut self, bytes: Vec<u8>) {
        match config::parse(&bytes) {
            Err(errs) => self.reject(&errs),
            Ok(cfg) => {
                let mut errs = Vec::new();
                if let Some(id) = self.expected_device_id() {
                    if cfg.device_id != id {
                        errs.push(ConfigError {
                            path: "device_id".into(),
                            msg: format!("{:?} is not this device ({id:?})", cfg.device_id),
                        });
                    }
                }
                if let Some(prev) = &self.config {
                    errs.extend(validate::check_transition(prev, &cfg));
                }
                if !errs.is_empty() {
                    return self.reject(&errs);
                }
                self.rejected.clear();
                self.persist_last_good(&bytes);
                self.install(cfg);
            }
        }
    }

    fn reject(&mut self, errs: &[ConfigError]) {
        log::error!("config rejected; the running config stays:");
        for e in errs {
            log::error!("  {e}");
        }
        self.rejected = errs.iter().map(ToString::to_string).collect();
        self.status_dirty = true;
    }

    /// The device id configs must carry: given on the command line, else the one of
    /// the config this device runs (the first config accepted pins it).
    fn expected_device_id(&self) -> Option<String> {
        self.settings
            .device_id
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.device_id.clone()))
    }

    fn install(&mut self, cfg: Config) {
        let same = self.config.as_ref() == Some(&cfg);
        if !same {
            log::info!(
                "config {} accepted: {} networks, {} apps",
                if cfg.version.is_empty() {
                    "(no version)"
                } else {
                    &cfg.version
                },
                cfg.networks.len(),
                cfg.apps.len()
            );
            self.runtime = vec![NetRuntime::default(); cfg.networks.len()];
            self.applied = false;
        }
        self.config = Some(cfg);
        self.watch_netns_dirs();
        self.reconcile_at = Some(Instant::now());
        self.status_dirty = true;
    }

    /// Keeps the accepted document as the last good config (mode 0600: it holds
    /// secrets), unless it is already what is there.
    fn persist_last_good(&self, bytes: &[u8]) {
        let cap = config::raw::MAX_DOC as u64;
        if let Ok(Some(old)) = persist::read_state(&self.last_good_path(), cap) {
            if old == bytes {
                return;
            }
        }
        if let Err(e) = persist::write_atomic(&self.last_good_path(), bytes, 0o600) {
            log::warn!("cannot persist the last good config: {e}");
        }
    }

    /// Watches the directories of the ECO namespaces (e.g. /run/netns) so a namespace
    /// that appears is plumbed at once.
    fn watch_netns_dirs(&mut self) {
        let Some(ino) = &self.inotify else { return };
        let Some(cfg) = &self.config else { return };
        for (_, itf) in cfg.endpoints() {
            if let config::Attach::Netns(p) = &itf.attach {
                let Some(dir) = Path::new(p).parent() else {
                    continue;
                };
                if dir.starts_with("/proc") || self.watched_dirs.iter().any(|d| d == dir) {
                    continue;
                }
                let flags = AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_MOVED_TO;
                if ino.add_watch(dir, flags).is_ok() {
                    self.watched_dirs.push(dir.to_path_buf());
                }
            }
        }
    }

    fn schedule(&mut self, after: Duration) {
        let at = Instant::now() + after;
        self.reconcile_at = Some(match self.reconcile_at {
            Some(t) if t < at => t,
            _ => at,
        });
    }

    /// Who DHCPv6 has admitted to send from what, sorted.
    fn leased6(&self) -> Vec<Allowed6> {
        let mut v: Vec<Allowed6> = self
            .services
            .ipv6
            .admitted()
            .into_iter()
            .map(|(ifname, mac, ip)| Allowed6::new(&ifname, mac, ip))
            .collect();
        v.sort();
        v
    }

    /// One reconcile pass over the whole config.
    fn reconcile(&mut self, now: Instant) {
        self.reconcile_at = None;
        self.resync_at = now + RESYNC;
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let started = Instant::now();
        let mut leased = self.services.dhcp.admitted();
        leased.sort();
        let mut leased6 = self.leased6();
        let mut out = self.recon.run(&cfg, &leased, &leased6);
        // The services start on the links this pass made; DHCP then restores the
        // allocations it persisted (after a restart or a reboot). What depends on
        // them (anti-spoofing, ACL map elements, port maps) goes in at once, in a
        // second pass, before the config counts as applied.
        self.facts = out.facts.clone();
        self.links = out.links.clone();
        self.refresh_services(&cfg);
        let mut now_leased = self.services.dhcp.admitted();
        now_leased.sort();
        let now_leased6 = self.leased6();
        if now_leased != leased || now_leased6 != leased6 || out.held_back {
            leased6 = now_leased6;
            let again = self.recon.run(&cfg, &now_leased, &leased6);
            let changes = out.changes + again.changes;
            out = again;
            out.changes = changes;
        }
        let took = started.elapsed();
        if out.changes > 0 {
            log::info!(
                "reconciled: {} kernel changes in {} ms",
                out.changes,
                took.as_millis()
            );
            self.last_apply_ms = took.as_millis() as u64;
        }
        self.last_changes = out.changes;
        self.total_changes += out.changes;
        if self.links != out.links || self.facts != out.facts {
            self.facts = out.facts.clone();
            self.links = out.links.clone();
            self.refresh_services(&cfg);
        }
        self.record(&cfg, &out);
        self.applied = true;
        let trouble = out.fatal.is_some() || !out.errors.is_empty() || !out.issues.is_empty();
        if trouble {
            self.schedule(self.retry);
            self.retry = (self.retry * 2).min(RETRY_MAX);
        } else {
            self.retry = RETRY_MIN;
        }
    }

    /// Points the services at the networks as they now are.
    fn refresh_services(&mut self, cfg: &Config) {
        self.service_errors =
            self.services
                .configure(cfg, &self.facts, &self.links, Instant::now());
        for n in cfg.networks.iter().filter(|n| n.ip.is_some()) {
            self.mark_hosts_stale(&n.id);
        }
        self.refresh_hosts();
    }

    fn mark_hosts_stale(&mut self, net_id: &str) {
        if !self.hosts_stale.iter().any(|n| n == net_id) {
            self.hosts_stale.push(net_id.to_string());
        }
    }

    /// Sends the events of the last service call where they belong: leases to the
    /// firewall (at once, before the replies that granted them leave), to DNS (its
    /// names follow lazily) and to the mesh's EIDs (through a reconcile soon);
    /// everything to status.
    fn route(&mut self) {
        if self.events.is_empty() {
            return;
        }
        // Drained, then put back: the buffer keeps its capacity across batches.
        let mut events = std::mem::take(&mut self.events);
        self.status_dirty = true;
        let mut admit: Vec<(bool, Allowed)> = Vec::new();
        let mut admit6: Vec<(bool, Allowed6)> = Vec::new();
        for ev in events.drain(..) {
            let ServiceEvent::Lease(l) = ev else {
                continue; // a state change: status, above
            };
            let (granted, net_id, ifname, mac, ip) = match &l {
                LeaseEvent::Granted {
                    net_id,
                    ifname,
                    mac,
                    ip,
                } => (true, net_id, ifname, mac, ip),
                LeaseEvent::Ended {
                    net_id,
                    ifname,
                    mac,
                    ip,
                } => (false, net_id, ifname, mac, ip),
                LeaseEvent::Granted6 {
                    net_id,
                    ifname,
                    mac,
                    ip,
                } => {
                    self.mark_hosts_stale(net_id);
                    admit6.push((true, Allowed6::new(ifname, *mac, *ip)));
                    continue;
                }
                LeaseEvent::Ended6 {
                    net_id,
                    ifname,
                    mac,
                    ip,
                } => {
                    self.mark_hosts_stale(net_id);
                    admit6.push((false, Allowed6::new(ifname, *mac, *ip)));
                    continue;
                }
            };
            self.mark_hosts_stale(net_id);
            let net = self.config.as_ref().and_then(|c| c.network(net_id));
            // A mesh's EIDs, and the port maps and ACL map elements of an endpoint
            // with ACLs, follow its leases.
            let has_acls = self.config.as_ref().is_some_and(|c| {
                c.endpoints()
                    .any(|(_, i)| i.host_ifname == *ifname && i.acls.is_some())
            });
            if has_acls || net.is_some_and(|n| n.kind == NetKind::Mesh) {
                self.schedule(DEBOUNCE);
            }
            admit.push((granted, Allowed::new(ifname, *mac, Some(*ip))));
        }
        self.events = events;
        // The senders of the batch in (or out) of the anti-spoofing sets at once.
        for e in self.recon.admit(&admit) {
            log::warn!("{e}");
        }
        if !admit6.is_empty() {
            for e in self.recon.admit6(&admit6) {
                log::warn!("{e}");
            }
        }
    }

    /// DNS names of the networks whose leases changed: static ECOs by app name,
    /// DHCP clients by the name their lease carries.
    fn refresh_hosts(&mut self) {
        let Some(cfg) = self.config.as_ref() else {
            return;
        };
        for net_id in std::mem::take(&mut self.hosts_stale) {
            let Some(i) = cfg.networks.iter().position(|n| n.id == net_id) else {
                continue;
            };
            let hosts = crate::services::static_hosts(cfg, i);
            let mut claims = self.services.dhcp.hosts(&net_id);
            claims.extend(
                self.services
                    .ipv6
                    .hosts(&net_id)
                    .into_iter()
                    .map(|(name, ip, app)| crate::dns::HostClaim {
                        name,
                        addr: ip.into(),
                        app,
                    }),
            );
            self.services.dns.set_names(&net_id, hosts, claims);
        }
    }

    fn record(&mut self, cfg: &Config, out: &Outcome) {
        self.fatal = out.fatal.as_ref().map(ToString::to_string);
        let mut rt = vec![NetRuntime::default(); cfg.networks.len()];
        for iss in &out.issues {
            let Some(r) = rt.get_mut(iss.net) else {
                continue;
            };
            match &iss.endpoint {
                Some(ep) => {
                    r.endpoint_issues.insert(ep.clone(), iss.msg.clone());
                }
                None => r.errors.push(iss.msg.clone()),
            }
        }
        for (net, e) in &out.errors {
            match net.and_then(|n| rt.get_mut(n)) {
                Some(r) => r.errors.push(e.to_string()),
                None => log::warn!("clean-up: {e}"),
            }
        }
        for (i, n) in cfg.networks.iter().enumerate() {
            if let Some(errs) = self.service_errors.get(&n.id) {
                rt[i].errors.extend(errs.iter().cloned());
            }
            if let Some(why) = out.facts.overlap(cfg, i) {
                rt[i].errors.push(why);
            }
            if n.kind != NetKind::Switch
                && !n.ports.is_empty()
                && out.facts.active_port(cfg, i).is_none()
            {
                let names: Vec<&str> = n
                    .ports
                    .iter()
                    .map(|&p| cfg.ports[p].name.as_str())
                    .collect();
                let what = match n.kind {
                    NetKind::Cloud => "for the VPN",
                    NetKind::Mesh => "for the mesh (no RLOC)",
                    _ => "for NAT",
                };
                rt[i].errors.push(format!(
                    "no port is up {what} ({} down or without an address)",
                    names.join(", ")
                ));
            }
        }
        for (i, r) in rt.iter().enumerate() {
            let old = self.runtime.get(i).map(|o| &o.errors);
            if old != Some(&r.errors) && !r.errors.is_empty() {
                log::warn!("network {}: {}", cfg.networks[i].name, r.errors.join("; "));
            }
        }
        self.runtime = rt;
        self.status_dirty = true;
    }

    pub fn status(&self) -> Status {
        let mut s = Status {
            rejected: self.rejected.clone(),
            warnings: self.warnings.clone(),
            source: match &self.settings.source {
                Source::File(p) => format!("file {}", p.display()),
                Source::Controller(c) => format!("controller {}", c.url),
            },
            last_changes: self.last_changes,
            total_changes: self.total_changes,
            last_apply_ms: self.last_apply_ms,
            controller_error: self.controller_error.clone(),
            poll_ms: self.poll_ms,
            loop_worst_ms: self.loop_worst.as_millis() as u64,
            loop_recent_ms: self.loop_window.0.max(self.loop_window.1).as_millis() as u64,
            ..Default::default()
        };
        let Some(cfg) = &self.config else { return s };
        s.device_id = cfg.device_id.clone();
        s.config_version = cfg.version.clone();
        s.applied = self.applied;
        let now = Instant::now();
        let mut acl = self.recon.acl_counters();
        for (i, n) in cfg.networks.iter().enumerate() {
            let rt = self.runtime.get(i).cloned().unwrap_or_default();
            let mut errors = rt.errors.clone();
            if let Some(f) = &self.fatal {
                errors.push(f.clone());
            }
            let mut ns = NetworkStatus {
                id: n.id.clone(),
                name: n.name.clone(),
                kind: n.kind.as_str().into(),
                errors,
                bridge: n.bridge.clone(),
                active_port: match n.kind {
                    NetKind::Switch => n.ports.first().map(|&p| cfg.ports[p].name.clone()),
                    _ => self
                        .facts
                        .active_port(cfg, i)
                        .map(|p| cfg.ports[p].name.clone()),
                },
                standby_ports: match n.kind {
                    NetKind::Cloud => {
                        let active = self.facts.active_port(cfg, i);
                        n.ports
                            .iter()
                            .filter(|&&p| Some(p) != active)
                            .map(|&p| cfg.ports[p].name.clone())
                            .collect()
                    }
                    _ => Vec::new(),
                },
                ..Default::default()
            };
            for app in &cfg.apps {
                for itf in app.interfaces.iter().filter(|x| x.network == i) {
                    let issue = rt.endpoint_issues.get(&(app.id.clone(), itf.name.clone()));
                    // DHCP adds the leases below.
                    ns.endpoints.push(EndpointStatus {
                        app: app.id.clone(),
                        app_name: app.name.clone(),
                        interface: itf.name.clone(),
                        mac: itf.eco_mac(&app.id).to_string(),
                        ip: itf.ip.map(|ip| ip.to_string()),
                        ip6: itf.ip6.map(|ip| ip.to_string()),
                        hostname: match (itf.ip, n.kind.is_l3()) {
                            (Some(_), true) => crate::services::host_label(&app.name),
                            _ => None,
                        },
                        lease_expires: None,
                        host_ifname: itf.host_ifname.clone(),
                        state: if issue.is_some() || !self.applied {
                            EndpointState::Waiting
                        } else {
                            EndpointState::Up
                        },
                        error: issue.cloned(),
                        // Counted from the unit's making; zero until it is made.
                        acl: itf.acls.as_ref().map(|aces| {
                            acl.remove(&(app.id.clone(), itf.name.clone()))
                                .unwrap_or_else(|| {
                                    aces.iter()
                                        .map(|a| a.id)
                                        .chain([0])
                                        .map(|id| crate::acl::AceCount {
                                            id,
                                            ..Default::default()
                                        })
                                        .collect()
                                })
                        }),
                    });
                }
            }
            self.services.status(n, now, &mut ns);
            ns.state = if !self.applied {
                NetState::Init
            } else if ns.errors.is_empty() {
                NetState::Online
            } else {
                NetState::Error
            };
            s.networks.push(ns);
        }
        s
    }

    fn on_kernel_events(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // Any link or address change may concern a port, an endpoint or econet's own
        // objects; the reconciler reads everything back anyway.
        if events.iter().any(|e| !matches!(e, Event::Route)) {
            self.schedule(DEBOUNCE);
        }
    }
}

impl Daemon {
    fn on_controller(&mut self) {
        let Some(c) = self.controller.as_mut() else {
            return;
        };
        for r in c.drain() {
            match r {
                crate::controller::Report::Config { body, etag } => {
                    log::info!(
                        "controller: new config ({} bytes, etag {})",
                        body.len(),
                        etag.as_deref().unwrap_or("-")
                    );
                    self.set_controller_error(None);
                    self.intake(body);
                }
                crate::controller::Report::NotModified { took } => {
                    self.poll_ms = Some(took.as_millis() as u64);
                    self.set_controller_error(None);
                }
                crate::controller::Report::Failed { why, retry_in } => {
                    let why = why.to_string();
                    if self.controller_error.as_deref() != Some(why.as_str()) {
                        log::warn!("controller: {why}; retrying in {} s", retry_in.as_secs());
                    }
                    self.set_controller_error(Some(why));
                }
                crate::controller::Report::Posted => {}
                crate::controller::Report::PostFailed(e) => log::warn!("controller: {e}"),
            }
        }
    }

    fn set_controller_error(&mut self, e: Option<String>) {
        if self.controller_error != e {
            self.controller_error = e;
            self.status_dirty = true;
        }
    }

    /// Posts the status when it changed in substance (state, errors, endpoints,
    /// addresses; not counters), and every few minutes with counters.
    fn post_status(&mut self, now: Instant) {
        if self.controller.is_none() || (!self.status_dirty && now < self.next_post) {
            return;
        }
        self.status_dirty = false;
        // Names follow leases lazily; the status names their conflicts.
        self.refresh_hosts();
        let s = self.status();
        let Some(c) = &self.controller else { return };
        let substance = s.to_json(false);
        if substance != self.posted || now >= self.next_post {
            c.request(crate::controller::Request::Post(s.to_json(true)));
            self.posted = substance;
            self.next_post = now + STATUS_EVERY;
        }
    }
}

impl Handler for Daemon {
    fn register(&self, p: &mut Poller) {
        p.add(self.monitor.as_raw_fd(), false, T_MONITOR);
        if let Some(i) = &self.inotify {
            p.add(i.as_fd_raw(), false, T_INOTIFY);
        }
        p.add(self.control.listener_fd(), false, T_CONTROL);
        for (i, (fd, w)) in self.control.conn_fds().enumerate() {
            p.add(fd, w, T_CONN + i as u64);
        }
        self.services.register(p, T_SERVICES);
        if let Some(c) = &self.controller {
            p.add(c.fd(), false, T_CONTROLLER);
        }
    }

    fn ready(&mut self, token: u64, now: Instant) {
        match token {
            T_MONITOR => {
                let ev = self.monitor.read();
                self.on_kernel_events(ev);
            }
            T_INOTIFY => {
                if let Some(i) = &self.inotify {
                    while let Ok(ev) = i.read_events() {
                        if ev.is_empty() {
                            break;
                        }
                    }
                }
                self.schedule(DEBOUNCE);
            }
            T_CONTROL => self.control.accept(now),
            T_CONTROLLER => self.on_controller(),
            t if t >= T_SERVICES => {
                let Some(at) = self.services.slot(t, T_SERVICES) else {
                    return;
                };
                // Names follow the leases lazily: the zones are brought up to date
                // just before a query can see them, not after every DHCP packet.
                if at.service == Services::DNS && !self.hosts_stale.is_empty() {
                    self.refresh_hosts();
                }
                self.services.ready(at, now, &mut self.events);
                self.route();
                self.services.flush_one(at);
            }
            t if t >= T_CONN => {
                self.refresh_hosts();
                let status = self.status();
                self.control
                    .service((t - T_CONN) as usize, &mut |r| match r {
                        Request::Status => status.to_text(),
                        Request::StatusJson => status.to_json(true) + "\n",
                        Request::StatusDot => status.to_dot(),
                    });
            }
            _ => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let d = earliest(self.reconcile_at, Some(self.resync_at));
        let d = earliest(d, self.control.next_deadline());
        let d = earliest(d, self.controller.as_ref().map(|_| self.next_post));
        earliest(d, self.services.poll_timeout())
    }

    fn tick(&mut self, now: Instant) {
        self.control.reap(now);
        self.services.handle_timeout(now, &mut self.events);
        self.route();
        self.services.flush();
        if self.reconcile_at.is_some_and(|t| t <= now) || self.resync_at <= now {
            self.reconcile(now);
        }
        self.post_status(now);
    }

    fn busy(&mut self, d: Duration) {
        self.loop_worst = self.loop_worst.max(d);
        let w = &mut self.loop_window;
        if w.2.elapsed() >= Duration::from_secs(10) {
            *w = (Duration::ZERO, w.0, Instant::now());
        }
        w.0 = w.0.max(d);
    }

    fn shutdown(&mut self) {
        self.services.shutdown();
    }

    fn reload(&mut self) {
        match &self.settings.source {
            Source::File(p) => match config::read_bounded(p) {
                Ok(bytes) => self.intake(bytes),
                Err(e) => {
                    let err = ConfigError {
                        path: p.display().to_string(),
                        msg: e.to_string(),
                    };
                    self.reject(&[err]);
                }
            },
            Source::Controller(_) => {
                if let Some(c) = &self.controller {
                    c.request(crate::controller::Request::PollNow);
                }
            }
        }
    }
}

/// Raw fd of an inotify instance (nix exposes it through AsFd).
trait InotifyFd {
    fn as_fd_raw(&self) -> i32;
}

impl InotifyFd for Inotify {
    fn as_fd_raw(&self) -> i32 {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}
