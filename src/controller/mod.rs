//! The controller client. ureq blocks (DNS lookup, connect, TLS handshake, a slow
//! reply), so the HTTPS exchange runs on one helper thread. The event loop sends it
//! requests over a channel, and it answers over another channel, waking the loop
//! through a pipe. DHCP, DNS and tunnels never wait on the controller.
//!
//! The thread polls `GET <url>/config` with `If-None-Match`. It backs off with jitter
//! while the controller is unreachable, and posts the status (`POST <url>/info`) when
//! asked. TLS is rustls with the ring provider: the controller's CA is pinned from a
//! file, and the device is authenticated by its client certificate.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest config body accepted (the same bound as a config file).
pub const MAX_BODY: usize = crate::config::raw::MAX_DOC;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Base URL, e.g. `https://controller.example:8443`.
    pub url: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub poll_interval: Duration,
}

/// Why an exchange with the controller failed.
#[derive(Debug)]
pub enum Error {
    /// A credential file (`file`: "CA", "certificate" or "key") cannot be used.
    Credential {
        file: &'static str,
        path: PathBuf,
        problem: CredentialProblem,
    },
    /// No reply to `request` ("GET <url>"): DNS, connect, TLS or a timeout.
    Transport { request: String, err: ureq::Error },
    /// A reply to `request` that econet does not accept.
    Reply { request: String, problem: BadReply },
}

#[derive(Debug)]
pub enum CredentialProblem {
    Read(std::io::Error),
    NoCertificate,
    Key(String),
}

#[derive(Debug)]
pub enum BadReply {
    Status(u16),
    ContentType(String),
    Body(std::io::Error),
    TooLarge,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Credential {
                file,
                path,
                problem,
            } => {
                write!(f, "{file} {}: ", path.display())?;
                match problem {
                    CredentialProblem::Read(e) => write!(f, "{e}"),
                    CredentialProblem::NoCertificate => f.write_str("no certificate in it"),
                    CredentialProblem::Key(e) => f.write_str(e),
                }
            }
            Error::Transport { request, err } => write!(f, "{request}: {err}"),
            Error::Reply { request, problem } => {
                write!(f, "{request}: ")?;
                match problem {
                    BadReply::Status(s) => write!(f, "HTTP {s}"),
                    BadReply::ContentType(t) => {
                        write!(f, "content type {t:?}, not application/json")
                    }
                    BadReply::Body(e) => write!(f, "reading the body: {e}"),
                    BadReply::TooLarge => {
                        write!(f, "the config is larger than {MAX_BODY} bytes")
                    }
                }
            }
        }
    }
}

impl std::error::Error for Error {}

/// What the loop asks of the thread.
#[derive(Debug)]
pub enum Request {
    /// Poll at once (SIGHUP).
    PollNow,
    /// Post this status document.
    Post(String),
}

/// What the thread reports.
#[derive(Debug)]
pub enum Report {
    /// A new config (200), with its ETag.
    Config {
        body: Vec<u8>,
        etag: Option<String>,
    },
    /// 304: the config has not changed.
    NotModified {
        took: Duration,
    },
    /// The poll failed; the next try is in `retry_in`.
    Failed {
        why: Error,
        retry_in: Duration,
    },
    Posted,
    PostFailed(Error),
}

/// The loop's handle on the controller thread.
pub struct Controller {
    tx: mpsc::Sender<Request>,
    rx: mpsc::Receiver<Report>,
    wake: OwnedFd,
    _thread: std::thread::JoinHandle<()>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success; checked below.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Controller {
    /// Starts the thread. Certificate and key files are read there; a problem with
    /// them is reported as a failed poll, like any other.
    pub fn start(settings: Settings) -> std::io::Result<Controller> {
        let (wake_r, wake_w) = pipe()?;
        let (tx, thread_rx) = mpsc::channel();
        let (thread_tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("controller".into())
            .spawn(move || Worker::new(settings, thread_rx, thread_tx, wake_w).run())?;
        Ok(Controller {
            tx,
            rx,
            wake: wake_r,
            _thread: thread,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Everything the thread reported since the last call.
    pub fn drain(&mut self) -> Vec<Report> {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer from a non-blocking pipe we own.
        while unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        } > 0
        {}
        self.rx.try_iter().collect()
    }

    pub fn request(&self, r: Request) {
        let _ = self.tx.send(r);
    }
}

struct Worker {
    s: Settings,
    rx: mpsc::Receiver<Request>,
    tx: mpsc::Sender<Report>,
    wake: OwnedFd,
    agent: Option<ureq::Agent>,
    etag: Option<String>,
    backoff: Duration,
}

impl Worker {
    fn new(
        s: Settings,
        rx: mpsc::Receiver<Request>,
        tx: mpsc::Sender<Report>,
        wake: OwnedFd,
    ) -> Worker {
        Worker {
            s,
            rx,
            tx,
            wake,
            agent: None,
            etag: None,
            backoff: BACKOFF_MIN,
        }
    }

    fn report(&self, r: Report) {
        if self.tx.send(r).is_ok() {
            // SAFETY: writing one byte from a local to a pipe we own; a full pipe
            // already wakes the loop.
            unsafe {
                libc::write(
                    self.wake.as_raw_fd(),
                    b"!".as_ptr() as *const libc::c_void,
                    1,
                )
            };
        }
    }

    fn run(mut self) {
        let mut next_poll = Instant::now();
        loop {
            let wait = next_poll.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Request::PollNow) => next_poll = Instant::now(),
                Ok(Request::Post(body)) => {
                    let r = self.post(&body);
                    self.report(r);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The loop is gone: the process is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() < next_poll {
                continue;
            }
            let r = self.poll();
            next_poll = Instant::now()
                + match &r {
                    Report::Failed { retry_in, .. } => *retry_in,
                    _ => self.s.poll_interval,
                };
            self.report(r);
        }
    }

    fn agent(&mut self) -> Result<ureq::Agent, Error> {
        if let Some(a) = &self.agent {
            return Ok(a.clone());
        }
        let a = build_agent(&self.s)?;
        self.agent = Some(a.clone());
        Ok(a)
    }

    fn fail(&mut self, why: Error) -> Report {
        // The agent is rebuilt next time: certificate files may have been fixed.
        self.agent = None;
        let retry_in = jitter(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Report::Failed { why, retry_in }
    }

    fn poll(&mut self) -> Report {
        let started = Instant::now();
        let agent = match self.agent() {
            Ok(a) => a,
            Err(e) => return self.fail(e),
        };
        let url = format!("{}/config", self.s.url.trim_end_matches('/'));
        let mut req = agent.get(&url).header("Accept", "application/json");
        if let Some(e) = &self.etag {
            req = req.header("If-None-Match", e);
        }
        let request = || format!("GET {url}");
        let bad = |problem| Error::Reply {
            request: request(),
            problem,
        };
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(err) => {
                return self.fail(Error::Transport {
                    request: request(),
                    err,
                })
            }
        };
        let status = resp.status().as_u16();
        if status == 304 {
            self.backoff = BACKOFF_MIN;
            return Report::NotModified {
                took: started.elapsed(),
            };
        }
        if status != 200 {
            return self.fail(bad(BadReply::Status(status)));
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !ctype.starts_with("application/json") {
            return self.fail(bad(BadReply::ContentType(ctype)));
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let read = resp
            .body_mut()
            .as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body);
        if let Err(e) = read {
            return self.fail(bad(BadReply::Body(e)));
        }
        if body.len() > MAX_BODY {
            return self.fail(bad(BadReply::TooLarge));
        }
        self.backoff = BACKOFF_MIN;
        self.etag = etag.clone();
        Report::Config { body, etag }
    }

    fn post(&mut self, body: &str) -> Report {
        let agent = match self.agent() {
            Ok(a) => a,
            Err(e) => return Report::PostFailed(e),
        };
        let url = format!("{}/info", self.s.url.trim_end_matches('/'));
        match agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
        {
            Ok(r) if (200..300).contains(&r.status().as_u16()) => Report::Posted,
            Ok(r) => Report::PostFailed(Error::Reply {
                request: format!("POST {url}"),
                problem: BadReply::Status(r.status().as_u16()),
            }),
            Err(err) => {
                self.agent = None;
                Report::PostFailed(Error::Transport {
                    request: format!("POST {url}"),
                    err,
                })
            }
        }
    }
}

/// A delay between half and one and a half times `d`, so a fleet does not retry in
/// step after an outage.
fn jitter(d: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    let r = ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map(|_| u16::from_ne_bytes(b))
        .unwrap_or(32768);
    d.mul_f64(0.5 + f64::from(r) / 65535.0)
}

fn credential(file: &'static str, path: &std::path::Path, problem: CredentialProblem) -> Error {
    Error::Credential {
        file,
        path: path.to_path_buf(),
        problem,
    }
}

fn read_file(file: &'static str, p: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(p).map_err(|e| credential(file, p, CredentialProblem::Read(e)))
}

/// An HTTPS agent that trusts only the pinned CA and presents the device's certificate.
fn build_agent(s: &Settings) -> Result<ureq::Agent, Error> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let ca_pem = read_file("CA", &s.ca)?;
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&ca_pem) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            roots.push(c);
        }
    }
    if roots.is_empty() {
        return Err(credential("CA", &s.ca, CredentialProblem::NoCertificate));
    }
    let cert_pem = read_file("certificate", &s.cert)?;
    let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if chain.is_empty() {
        return Err(credential(
            "certificate",
            &s.cert,
            CredentialProblem::NoCertificate,
        ));
    }
    let key_pem = read_file("key", &s.key)?;
    let key = PrivateKey::from_pem(&key_pem)
        .map_err(|e| credential("key", &s.key, CredentialProblem::Key(e.to_string())))?;
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(Some(ClientCert::new_with_certs(&chain, key)))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .user_agent(format!("econet/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(5) && j <= Duration::from_secs(15),
                "{j:?}"
            );
        }
    }

    #[test]
    fn missing_files_are_a_clear_error() {
        let s = Settings {
            url: "https://127.0.0.1:1".into(),
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/k.pem".into(),
            poll_interval: Duration::from_secs(60),
        };
        let e = build_agent(&s).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Credential {
                    file: "CA",
                    problem: CredentialProblem::Read(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("CA /nonexistent/ca.pem:"), "{e}");
    }
}
