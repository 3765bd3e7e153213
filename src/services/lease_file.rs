//! A network's lease file as the DHCP and DHCPv6 shells keep it, and the replies
//! they hold back for the firewall.
//!
//! New allocations are appended and synced before the replies that grant them leave
//! (one append and one sync per network per event-loop batch: group commit); the
//! whole file is rewritten atomically at most once a second after a change, which
//! compacts it; a renewal writes nothing, to spare flash. A write that fails is
//! retried every second, shown in the network's status and counted, and the file
//! on disk stays whole meanwhile.

use super::sock;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lease files are written at most this often.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);
/// The most unwritten journal kept while writes fail (the snapshot has it all).
const JOURNAL_MAX: usize = 1 << 20;

pub struct LeaseFile {
    net_id: String,
    path: PathBuf,
    /// The first line of the file, which appends start a new file with.
    header: &'static str,
    write_at: Option<Instant>,
    /// New allocations not yet on disk (their lines).
    journal: Vec<u8>,
    /// The file that was set aside at start, if one was.
    pub warnings: Vec<String>,
    pub write_failures: u64,
    write_error: Option<String>,
}

/// `<dir>/<prefix>-<network id, made safe>.txt`.
fn path_for(dir: &Path, prefix: &str, net_id: &str) -> PathBuf {
    let safe: String = net_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{prefix}-{safe}.txt"))
}

impl LeaseFile {
    /// A network's lease file `<dir>/<prefix>-<network>.txt`, and what it holds (at
    /// most `cap` bytes); a file that cannot be read is set aside, with a warning.
    pub fn open(
        dir: &Path,
        prefix: &str,
        header: &'static str,
        net_id: &str,
        cap: u64,
    ) -> (LeaseFile, Option<Vec<u8>>) {
        let path = path_for(dir, prefix, net_id);
        let mut warnings = Vec::new();
        let bytes = match crate::persist::read_state(&path, cap) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(crate::persist::set_aside(&path, &e));
                None
            }
        };
        let f = LeaseFile {
            net_id: net_id.to_string(),
            path,
            header,
            write_at: None,
            journal: Vec::new(),
            warnings,
            write_failures: 0,
            write_error: None,
        };
        (f, bytes)
    }

    /// Appends the batch's new allocation lines and syncs them.
    pub fn commit(&mut self, lines: &[u8], now: Instant) {
        self.journal.extend_from_slice(lines);
        if self.journal.is_empty() {
            return;
        }
        let header = format!("{}\n", self.header);
        match crate::persist::append_synced(&self.path, header.as_bytes(), &self.journal, 0o600) {
            Ok(()) => self.journal.clear(),
            Err(e) => {
                // The replies still go (the service keeps working on a full disk); the
                // snapshot is retried until it succeeds, and it carries these.
                self.failed(&e, now);
                if self.journal.len() > JOURNAL_MAX {
                    self.journal.clear();
                }
            }
        }
    }

    /// The allocations changed: a snapshot within [`WRITE_EVERY`].
    pub fn changed(&mut self, now: Instant) {
        if self.write_at.is_none() {
            self.write_at = Some(now + WRITE_EVERY);
        }
    }

    /// When a snapshot is due.
    pub fn due(&self) -> Option<Instant> {
        self.write_at
    }

    /// Whether something is not on disk as it is now.
    pub fn unsaved(&self) -> bool {
        self.write_at.is_some() || !self.journal.is_empty()
    }

    /// Writes the snapshot if one is due at `now` (`snapshot` runs only then).
    pub fn save_due(&mut self, now: Instant, snapshot: impl FnOnce() -> Vec<u8>) {
        if self.write_at.is_some_and(|t| t <= now) {
            self.write_at = None;
            self.save(&snapshot(), now);
        }
    }

    /// Writes the whole file; a failure is retried a second later, and until then
    /// the old file stays as it was.
    pub fn save(&mut self, bytes: &[u8], now: Instant) {
        match crate::persist::write_atomic(&self.path, bytes, 0o600) {
            Ok(()) => {
                self.journal.clear();
                if self.write_error.take().is_some() {
                    log::info!(
                        "network {}: {} written again",
                        self.net_id,
                        self.path.display()
                    );
                }
            }
            Err(e) => self.failed(&e, now),
        }
    }

    fn failed(&mut self, e: &std::io::Error, now: Instant) {
        self.write_failures += 1;
        if self.write_error.is_none() {
            log::warn!(
                "network {}: cannot write {}: {e}; retrying every second",
                self.net_id,
                self.path.display()
            );
        }
        self.write_error = Some(e.to_string());
        self.write_at = Some(
            self.write_at
                .map_or(now + WRITE_EVERY, |t| t.min(now + WRITE_EVERY)),
        );
    }

    /// Its warnings for the network's status: a file set aside, a write failing.
    pub fn status_warnings(&self, out: &mut Vec<String>) {
        out.extend(self.warnings.iter().cloned());
        if let Some(e) = &self.write_error {
            out.push(format!(
                "lease file {}: cannot write ({e}); retrying every second",
                self.path.display()
            ));
        }
    }
}

/// Replies granting an address, held until the batch's lease events have been
/// routed (the firewall admits the clients before they see the replies).
#[derive(Default)]
pub struct HeldFrames {
    held: Vec<(i32, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl HeldFrames {
    /// Keeps frame `f`, to go out of interface `ifindex`.
    pub fn hold(&mut self, ifindex: i32, f: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(f);
        self.held.push((ifindex, start..start + f.len()));
    }

    /// Sends every held frame on packet socket `fd` (drops them without one).
    pub fn release(&mut self, fd: Option<i32>) {
        if let Some(fd) = fd {
            for (ifindex, r) in self.held.drain(..) {
                if let Some(f) = self.bytes.get(r) {
                    let _ = sock::send_frame(fd, ifindex, f);
                }
            }
        }
        self.held.clear();
        self.bytes.clear();
    }
}

/// Endpoint key → its index in a network's endpoint list.
pub fn index_endpoints<K: Clone + Eq + std::hash::Hash>(
    endpoints: &[(K, String)],
) -> std::collections::HashMap<K, usize> {
    endpoints
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect()
}
