//! The one place econet blocks: a `poll` over every file descriptor the daemon
//! registers (netlink monitor, signals, control socket, service sockets, …) with a
//! timeout that is the nearest of the daemon's deadlines.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// The fds to wait on in one iteration, each with the daemon's token for it.
#[derive(Default)]
pub struct Poller {
    fds: Vec<(RawFd, PollFlags, u64)>,
}

impl Poller {
    pub fn add(&mut self, fd: RawFd, write: bool, token: u64) {
        let mut f = PollFlags::POLLIN;
        if write {
            f |= PollFlags::POLLOUT;
        }
        self.fds.push((fd, f, token));
    }
}

/// What the daemon must provide to be driven by the loop.
pub trait Handler {
    /// Registers the fds to wait on, with tokens.
    fn register(&self, p: &mut Poller);
    /// An fd registered with `token` is ready.
    fn ready(&mut self, token: u64, now: Instant);
    /// The nearest time `tick` must run.
    fn next_deadline(&self) -> Option<Instant>;
    /// Runs whatever is due at `now`.
    fn tick(&mut self, now: Instant);
    /// SIGHUP: reread the config (or poll the controller at once).
    fn reload(&mut self);
    /// SIGTERM/SIGINT: save what must survive; kernel objects stay.
    fn shutdown(&mut self);
    /// How long one turn of the loop kept it from waiting (for the worst-stall figure).
    fn busy(&mut self, d: Duration);
}

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Signal(i32),
    Error(String),
}

/// Blocks SIGHUP, SIGTERM and SIGINT so they arrive on a signalfd. Call before any
/// thread is spawned, so threads inherit the mask.
pub fn block_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGHUP);
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block()?;
    // A closed status client must not kill the daemon.
    // SAFETY: setting SIGPIPE to ignore has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

const SIGNAL_TOKEN: u64 = u64::MAX;

/// Runs until SIGTERM or SIGINT.
pub fn run<H: Handler>(h: &mut H, sigfd: SignalFd) -> Exit {
    let mut woke = Instant::now();
    loop {
        let now = Instant::now();
        h.tick(now);
        let mut p = Poller::default();
        p.add(sigfd.as_raw_fd(), false, SIGNAL_TOKEN);
        h.register(&mut p);
        let timeout = match h.next_deadline() {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                // Round up so a deadline 0.3 ms away does not spin.
                let ms = if d > Instant::now() { ms.max(1) } else { 0 };
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        h.busy(woke.elapsed());
        let mut pfds: Vec<PollFd> = p
            .fds
            .iter()
            // SAFETY: every registered fd is owned by the handler or by this function
            // and stays open until poll returns.
            .map(|(fd, f, _)| PollFd::new(unsafe { BorrowedFd::borrow_raw(*fd) }, *f))
            .collect();
        let polled = poll(&mut pfds, timeout);
        woke = Instant::now();
        match polled {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Exit::Error(format!("poll: {e}")),
        }
        let ready: Vec<u64> = pfds
            .iter()
            .zip(p.fds.iter())
            .filter(|(pf, _)| pf.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, (_, _, t))| *t)
            .collect();
        let now = Instant::now();
        for t in ready {
            if t == SIGNAL_TOKEN {
                while let Ok(Some(si)) = sigfd.read_signal() {
                    match Signal::try_from(si.ssi_signo as i32) {
                        Ok(Signal::SIGHUP) => {
                            log::info!("SIGHUP: reloading");
                            h.reload();
                        }
                        Ok(s) => {
                            h.shutdown();
                            return Exit::Signal(s as i32);
                        }
                        Err(_) => {}
                    }
                }
            } else {
                h.ready(t, now);
            }
        }
    }
}

/// Convenience for deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
