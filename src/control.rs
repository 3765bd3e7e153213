//! The local control socket: `econet status` connects, sends one request line and
//! reads the answer until the daemon closes. The daemon side never blocks: a slow
//! client just waits in the poll set, bounded in size and count.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a client may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    StatusJson,
    StatusDot,
}

impl Request {
    pub fn line(self) -> &'static str {
        match self {
            Request::Status => "status\n",
            Request::StatusJson => "status json\n",
            Request::StatusDot => "status dot\n",
        }
    }

    fn parse(line: &str) -> Option<Request> {
        match line.trim() {
            "status" => Some(Request::Status),
            "status json" => Some(Request::StatusJson),
            "status dot" => Some(Request::StatusDot),
            _ => None,
        }
    }
}

/// Most connections served at once, and how long one may take.
const MAX_CONNS: usize = 16;
const CONN_DEADLINE: Duration = Duration::from_secs(5);

pub struct Conn {
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    answered: bool,
    deadline: Instant,
}

pub struct ControlServer {
    listener: UnixListener,
    pub conns: Vec<Conn>,
}

impl ControlServer {
    /// Listens at `path`, replacing a stale socket file from an earlier run.
    pub fn bind(path: &Path) -> io::Result<ControlServer> {
        if path.exists() {
            // A live econet answers; then this one must not steal its socket.
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another econet is running (it answers on {})",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlServer {
            listener,
            conns: Vec::new(),
        })
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accepts waiting clients.
    pub fn accept(&mut self, now: Instant) {
        while let Ok((sock, _)) = self.listener.accept() {
            if self.conns.len() >= MAX_CONNS || sock.set_nonblocking(true).is_err() {
                continue;
            }
            self.conns.push(Conn {
                sock,
                inbuf: Vec::new(),
                out: Vec::new(),
                written: 0,
                answered: false,
                deadline: now + CONN_DEADLINE,
            });
        }
    }

    /// (fd, wants write) for each connection, for the poll set.
    pub fn conn_fds(&self) -> impl Iterator<Item = (RawFd, bool)> + '_ {
        self.conns.iter().map(|c| (c.sock.as_raw_fd(), c.answered))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Services connection `i`: reads its request and answers it with `answer`.
    pub fn service(&mut self, i: usize, answer: &mut dyn FnMut(Request) -> String) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if !c.answered {
            let mut buf = [0u8; 256];
            match c.sock.read(&mut buf) {
                Ok(0) => c.deadline = Instant::now(),
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => c.deadline = Instant::now(),
            }
            if let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&c.inbuf[..nl]).into_owned();
                c.out = match Request::parse(&line) {
                    Some(r) => answer(r).into_bytes(),
                    None => format!("error: unknown request {line:?}\n").into_bytes(),
                };
                c.answered = true;
            } else if c.inbuf.len() > 1024 {
                c.deadline = Instant::now();
            }
        }
        if c.answered {
            while c.written < c.out.len() {
                match c.sock.write(&c.out[c.written..]) {
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.written = c.out.len();
                    }
                }
            }
        }
    }

    /// Drops finished and overdue connections.
    pub fn reap(&mut self, now: Instant) {
        self.conns
            .retain(|c| !(c.answered && c.written >= c.out.len()) && c.deadline > now);
    }
}

/// Client side: asks the daemon listening at `path`.
pub fn ask(path: &Path, req: Request) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.line().as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
