//! `econet map-server`: the LISP Map-Server/Map-Resolver of a mesh fleet, on the same
//! event loop as the device daemon. One UDP socket on `listen`:4342 feeds the
//! sans-I/O [`crate::lisp::server::MapServer`]; the control socket answers `econet
//! map-server status` (and `econet status`) with the registered EIDs and, per site, the
//! registrations accepted, auth failures and churn. SIGHUP rereads the config
//! (registrations and counts of the sites kept stay).
//!
//! The registrations are kept in the state directory ([`crate::lisp::ms_store`] has
//! the format and why they are persisted rather than rebuilt): a snapshot at most
//! every [`SAVE_EVERY`] while they change, and one on SIGTERM; loaded at start, so a
//! restarted map server answers Map-Requests at once instead of sending negative
//! Map-Replies until every xTR has registered again.

use crate::config::FileError;
use crate::control::{ControlServer, Request};
use crate::daemon::StartError;
use crate::event_loop::{earliest, Handler, Poller};
use crate::lisp::server::{Churn, MapServer};
use crate::lisp::{ms_config, ms_store};
use crate::status::writer::JsonWriter;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T_UDP: u64 = 1;
const T_CONTROL: u64 = 2;
const T_CONN: u64 = 0x100;

/// The longest the registrations on disk lag behind the running ones. A snapshot is
/// the whole table (about 120 bytes an EID), so this bounds the write load; an entry
/// on disk is at most this much older than the live one.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The most a registrations file may hold: far more than 100,000 EIDs' lines.
const STORE_CAP: u64 = 256 << 20;

pub struct MapServerDaemon {
    config: PathBuf,
    ms: MapServer,
    sock: UdpSocket,
    control: ControlServer,
    buf: Vec<u8>,
    rejected: Vec<String>,
    /// The registrations file.
    store: PathBuf,
    /// When the next snapshot is due (something changed).
    save_at: Option<Instant>,
    /// Registrations loaded from the file at start.
    restored: usize,
    /// Why the last snapshot failed, until one succeeds.
    save_error: Option<String>,
    /// About the registrations file at start (set aside, unreadable).
    warnings: Vec<String>,
}

impl MapServerDaemon {
    pub fn new(config: PathBuf, state_dir: PathBuf) -> Result<MapServerDaemon, StartError> {
        let cfg = load(&config).map_err(StartError::Config)?;
        crate::persist::ensure_dir(&state_dir).map_err(StartError::io(format!(
            "state directory {}",
            state_dir.display()
        )))?;
        let addr = SocketAddrV4::new(cfg.listen, crate::wire::lisp::CONTROL_PORT);
        let sock = crate::services::sock::udp_bound(addr, None)
            .map_err(StartError::io(format!("listen on {addr}")))?;
        fit_recv_buffer(&sock, cfg.sites.len());
        let control = ControlServer::bind(&state_dir.join(crate::daemon::SOCKET))
            .map_err(StartError::io("control socket"))?;
        log::info!("map server on {addr}: {} sites", cfg.sites.len());
        let mut ms = MapServer::new(cfg);
        let store = state_dir.join(ms_store::FILE);
        let (restored, warnings) = restore(&mut ms, &store);
        // What could be read of a file set aside goes back to disk soon.
        let save_at = (!warnings.is_empty()).then(|| Instant::now() + SAVE_EVERY);
        Ok(MapServerDaemon {
            config,
            ms,
            sock,
            control,
            buf: vec![0; 65536],
            rejected: Vec::new(),
            store,
            save_at,
            restored,
            save_error: None,
            warnings,
        })
    }

    /// Writes the registrations file now; a failure is logged once and retried
    /// [`SAVE_EVERY`] later, and until then the old file stays as it was.
    fn save(&mut self, now: Instant) {
        let bytes = self.ms.snapshot(now, wall_ms());
        match crate::persist::write_atomic(&self.store, &bytes, 0o600) {
            Ok(()) => {
                if self.save_error.take().is_some() {
                    log::info!("{} written again", self.store.display());
                }
            }
            Err(e) => {
                let msg = format!("{}: cannot write registrations: {e}", self.store.display());
                if self.save_error.as_deref() != Some(msg.as_str()) {
                    log::error!("{msg}");
                }
                self.save_error = Some(msg);
                self.save_at = Some(now + SAVE_EVERY);
            }
        }
    }

    /// The registrations, as JSON (`status --json`) or text.
    fn status(&self, json: bool) -> String {
        let now = Instant::now();
        let regs = self.ms.status(now);
        let sites = self.ms.sites(now);
        let c = self.ms.counters();
        if json {
            let mut w = JsonWriter::new();
            w.begin_obj();
            w.key("role").str("map-server");
            w.key("listen").str(&self.ms.config().listen.to_string());
            w.key("registered").begin_arr();
            for r in &regs {
                w.begin_obj();
                w.key("site").str(&r.site);
                w.key("eid").str(&r.eid.to_string());
                w.key("rlocs").begin_arr();
                for l in &r.rlocs {
                    w.str(&l.to_string());
                }
                w.end_arr();
                w.key("expires_in").num(r.expires_in.as_secs());
                w.key("age").num(r.age.as_secs());
                w.end_obj();
            }
            w.end_arr();
            w.key("sites").begin_arr();
            for s in &sites {
                w.begin_obj();
                w.key("name").str(&s.name);
                w.key("registered").num(s.registered as u64);
                w.key("registers").num(s.counters.registers);
                w.key("refused").num(s.counters.refused);
                w.key("auth_failures").begin_obj();
                w.key("total").num(s.counters.auth_failures());
                w.key("bad_mac").num(s.counters.bad_mac);
                w.key("unknown_algorithm").num(s.counters.unknown_alg);
                w.end_obj();
                w.key("churn").begin_obj();
                w.key("window_secs").num(s.window.as_secs());
                w.key("per_min").decimal1(s.churn_per_min);
                w.key("expired_per_min").decimal1(s.expired_per_min);
                w.key("recent");
                churn(&mut w, &s.recent);
                w.key("total");
                churn(&mut w, &s.counters.churn);
                w.end_obj();
                w.end_obj();
            }
            w.end_arr();
            w.key("counters").begin_obj();
            for (k, v) in [
                ("registers", c.registers),
                ("auth_failures", c.auth_failures),
                ("auth_failures_no_site", c.auth_failures_no_site),
                ("refused", c.refused),
                ("notifies", c.notifies),
                ("forwarded", c.forwarded),
                ("proxy_replies", c.proxy_replies),
                ("negative_replies", c.negative_replies),
                ("malformed", c.malformed),
                ("expired", c.expired),
            ] {
                w.key(k).num(v);
            }
            w.end_obj();
            w.key("rejected").begin_arr();
            for e in &self.rejected {
                w.str(e);
            }
            w.end_arr();
            w.key("store").begin_obj();
            w.key("file").str(&self.store.display().to_string());
            w.key("restored").num(self.restored as u64);
            w.key("warnings").begin_arr();
            for e in self.warnings.iter().chain(&self.save_error) {
                w.str(e);
            }
            w.end_arr();
            w.end_obj();
            w.end_obj();
            w.finish() + "\n"
        } else {
            let mut s = format!(
                "map server on {}:4342, {} registered EIDs (auth failures {}, refused {})\n",
                self.ms.config().listen,
                regs.len(),
                c.auth_failures,
                c.refused
            );
            for st in &sites {
                s += &format!(
                    "  site {}: {} EIDs, {} registers accepted, {} refused, {} auth failures \
                     ({} bad MAC, {} unknown algorithm)\n    churn {:.1}/min, {:.1} expired/min \
                     over the last {} s (new {}, changed {}, withdrawn {}, expired {})\n",
                    st.name,
                    st.registered,
                    st.counters.registers,
                    st.counters.refused,
                    st.counters.auth_failures(),
                    st.counters.bad_mac,
                    st.counters.unknown_alg,
                    st.churn_per_min,
                    st.expired_per_min,
                    st.window.as_secs(),
                    st.recent.new,
                    st.recent.changed,
                    st.recent.withdrawn,
                    st.recent.expired,
                );
            }
            s += &format!(
                "  {} registrations restored from {}\n",
                self.restored,
                self.store.display()
            );
            for e in self.warnings.iter().chain(&self.save_error) {
                s += &format!("  warning: {e}\n");
            }
            if c.auth_failures_no_site > 0 {
                s += &format!(
                    "  {} auth failures for EIDs in no site\n",
                    c.auth_failures_no_site
                );
            }
            for r in &regs {
                let rlocs: Vec<String> = r.rlocs.iter().map(|l| l.to_string()).collect();
                s += &format!(
                    "  {:<10} {:<22} via {:<16} registered {} s ago, expires in {} s\n",
                    r.site,
                    r.eid.to_string(),
                    rlocs.join(","),
                    r.age.as_secs(),
                    r.expires_in.as_secs()
                );
            }
            s
        }
    }
}

/// A churn count as a JSON object.
fn churn(w: &mut JsonWriter, c: &Churn) {
    w.begin_obj();
    w.key("new").num(c.new);
    w.key("changed").num(c.changed);
    w.key("withdrawn").num(c.withdrawn);
    w.key("expired").num(c.expired);
    w.end_obj();
}

/// Milliseconds since the epoch, by the wall clock.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Loads the registrations file into `ms`; a file that is not ours, damaged or
/// unreadable is set aside (what can be read of a damaged one is still loaded).
/// Returns how many registrations were loaded, and the warnings for status.
fn restore(ms: &mut MapServer, path: &std::path::Path) -> (usize, Vec<String>) {
    let mut warnings = Vec::new();
    let bytes = match crate::persist::read_state(path, STORE_CAP) {
        Ok(Some(b)) => b,
        Ok(None) => return (0, warnings),
        Err(e) => {
            warnings.push(crate::persist::set_aside(path, &e));
            return (0, warnings);
        }
    };
    let d = ms_store::decode(&bytes);
    if d.foreign {
        let why = format!(
            "not a registrations file (no {:?} header)",
            ms_store::HEADER
        );
        warnings.push(crate::persist::set_aside(path, &why));
        return (0, warnings);
    }
    let now = Instant::now();
    let r = ms.restore(d.entries, now, wall_ms());
    if d.bad > 0 {
        let why = format!("{} damaged lines skipped", d.bad);
        warnings.push(crate::persist::set_aside(path, &why));
    }
    log::info!(
        "{} registrations restored from {} ({} expired meanwhile, {} of sites no longer configured)",
        r.loaded,
        path.display(),
        r.expired,
        r.dropped
    );
    (r.loaded, warnings)
}

/// Bytes of receive buffer per site: a fleet's devices re-register all at once after
/// an outage, one Map-Register each (about 1 KiB in the kernel's accounting with 10
/// EIDs, up to 2 with 32), and the socket must hold the burst while the core works
/// through it.
const RECV_BUFFER_PER_SITE: usize = 2048;
const RECV_BUFFER_MIN: usize = 4 << 20;
const RECV_BUFFER_MAX: usize = 64 << 20;

/// The receive buffer `sites` need: room for one Map-Register from each.
fn recv_buffer(sites: usize) -> usize {
    sites
        .saturating_mul(RECV_BUFFER_PER_SITE)
        .clamp(RECV_BUFFER_MIN, RECV_BUFFER_MAX)
}

fn fit_recv_buffer(sock: &UdpSocket, sites: usize) {
    let bytes = recv_buffer(sites);
    if !crate::services::sock::set_recv_buffer(sock.as_raw_fd(), bytes) {
        log::warn!(
            "could not set a {bytes}-byte receive buffer; a burst of registrations may be lost"
        );
    }
}

/// The map server's config, or why it cannot be used.
pub fn load(path: &std::path::Path) -> Result<ms_config::MapServerConfig, FileError> {
    let file = path.to_path_buf();
    let doc = crate::config::read_bounded(path).map_err(|err| FileError::Read {
        file: file.clone(),
        err,
    })?;
    ms_config::parse(&doc).map_err(|errors| FileError::Invalid { file, errors })
}

impl Handler for MapServerDaemon {
    fn register(&self, p: &mut Poller) {
        p.add(self.sock.as_raw_fd(), false, T_UDP);
        p.add(self.control.listener_fd(), false, T_CONTROL);
        for (i, (fd, w)) in self.control.conn_fds().enumerate() {
            p.add(fd, w, T_CONN + i as u64);
        }
    }

    fn ready(&mut self, token: u64, now: Instant) {
        match token {
            T_UDP => {
                // Bounded per wakeup.
                for _ in 0..256 {
                    let Ok((n, from)) = self.sock.recv_from(&mut self.buf) else {
                        break;
                    };
                    let SocketAddr::V4(from) = from else { continue };
                    let msg = self.buf[..n].to_vec();
                    for s in self.ms.handle(now, from, &msg) {
                        let _ = self.sock.send_to(&s.bytes, s.to);
                    }
                }
            }
            T_CONTROL => self.control.accept(now),
            t if t >= T_CONN => {
                let text = self.status(false);
                let json = self.status(true);
                self.control
                    .service((t - T_CONN) as usize, &mut |r| match r {
                        Request::StatusJson => json.clone(),
                        _ => text.clone(),
                    });
            }
            _ => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        earliest(
            earliest(self.ms.poll_timeout(), self.control.next_deadline()),
            self.save_at,
        )
    }

    fn tick(&mut self, now: Instant) {
        self.control.reap(now);
        for eid in self.ms.poll(now) {
            log::info!("registration of {eid} expired");
        }
        // Changes are written within SAVE_EVERY, mere refreshes within a minute.
        let due = if self.ms.take_dirty() {
            Some(now + SAVE_EVERY)
        } else if self.ms.take_refreshed() {
            Some(now + crate::lisp::server::REFRESH_SAVE_EVERY)
        } else {
            None
        };
        if let Some(d) = due {
            self.save_at = Some(self.save_at.map_or(d, |t| t.min(d)));
        }
        if self.save_at.is_some_and(|t| t <= now) {
            self.save_at = None;
            self.save(now);
        }
    }

    fn reload(&mut self) {
        match load(&self.config) {
            Ok(cfg) => {
                if cfg.listen != self.ms.config().listen {
                    log::warn!(
                        "a new listen address needs a restart; keeping {}",
                        self.ms.config().listen
                    );
                }
                fit_recv_buffer(&self.sock, cfg.sites.len());
                log::info!("map server config reloaded: {} sites", cfg.sites.len());
                self.ms.set_config(cfg);
                self.rejected.clear();
            }
            Err(e) => {
                log::error!("map server config rejected; keeping the running one:\n{e}");
                self.rejected = e.messages();
            }
        }
    }

    /// SIGTERM: the registrations as they are now, on disk.
    fn shutdown(&mut self) {
        let now = Instant::now();
        self.ms.poll(now);
        if self.ms.take_dirty() | self.ms.take_refreshed() || self.save_at.is_some() {
            self.save(now);
        }
    }

    fn busy(&mut self, _d: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::lisp::{AuthAlg, Eid, MapRegister, Record};
    use std::net::Ipv4Addr;

    const SPEC: &str = r#"{"listen": "198.51.100.1", "sites": [{"name": "fleet", "key": "k", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}"#;

    fn server() -> MapServer {
        MapServer::new(ms_config::parse(SPEC.as_bytes()).unwrap())
    }

    fn registered(eid: [u8; 4]) -> MapServer {
        let mut ms = server();
        let reg = MapRegister {
            proxy_reply: false,
            want_notify: false,
            use_ttl: false,
            nonce: 1,
            key_id: 0,
            alg: AuthAlg::HmacSha256,
            records: vec![Record {
                ttl: 10,
                eid: Eid::host(1000, Ipv4Addr::from(eid)),
                action: 0,
                authoritative: true,
                map_version: 0,
                locators: Vec::new(),
            }],
            xtr_id: None,
        };
        let mut buf = vec![0u8; 512];
        let n = reg.emit_register(&mut buf, b"k").unwrap();
        let from = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 4342);
        ms.handle(Instant::now(), from, &buf[..n]);
        ms
    }

    #[test]
    fn the_registrations_file_is_loaded_or_set_aside() {
        let dir = std::env::temp_dir().join(format!("econet-ms-store-{}", std::process::id()));
        crate::persist::ensure_dir(&dir).unwrap();
        let path = dir.join(ms_store::FILE);
        let bad = dir.join(format!("{}.bad", ms_store::FILE));
        // None yet.
        assert_eq!(restore(&mut server(), &path), (0, Vec::new()));
        // A good one.
        let good = registered([10, 200, 1, 1]).snapshot(Instant::now(), wall_ms());
        std::fs::write(&path, &good).unwrap();
        let mut ms = server();
        assert_eq!(restore(&mut ms, &path), (1, Vec::new()));
        assert_eq!(ms.status(Instant::now()).len(), 1);
        // Damaged: what parses is loaded, the file set aside.
        let mut torn = good.clone();
        torn.extend_from_slice(b"fleet 1 2 nonsense\n");
        std::fs::write(&path, &torn).unwrap();
        let mut ms = server();
        let (n, w) = restore(&mut ms, &path);
        assert_eq!(n, 1);
        assert!(w[0].contains("1 damaged lines"), "{w:?}");
        assert!(!path.exists() && bad.exists());
        // Someone else's file, and one that is not a file.
        std::fs::write(&path, b"econet-dhcp-leases 1\n").unwrap();
        let (n, w) = restore(&mut server(), &path);
        assert_eq!(n, 0);
        assert!(w[0].contains("not a registrations file"), "{w:?}");
        std::fs::remove_file(&bad).unwrap();
        std::fs::create_dir(&path).unwrap();
        let (n, w) = restore(&mut server(), &path);
        assert_eq!(n, 0);
        assert!(w[0].contains("a directory"), "{w:?}");
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn receive_buffer_holds_a_register_from_every_site() {
        assert_eq!(recv_buffer(1), RECV_BUFFER_MIN);
        assert_eq!(recv_buffer(10_000), 10_000 * RECV_BUFFER_PER_SITE);
        assert_eq!(recv_buffer(usize::MAX), RECV_BUFFER_MAX);
    }
}
