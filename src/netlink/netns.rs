//! Network namespaces given by path (`/run/netns/NAME`, `/proc/PID/ns/net`): open
//! them, recognise them again (device and inode), and make sockets inside them.
//!
//! A socket stays in the namespace it was created in, so econet enters a namespace
//! only for the instant it takes to create a socket there, then returns.

use super::Rtnl;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;

/// An open network namespace.
pub struct Netns {
    pub file: File,
    /// (device, inode) of the namespace: equal ids mean the same namespace.
    pub id: (u64, u64),
}

impl Netns {
    /// Opens the namespace at `path`; fails if it is missing or not a namespace.
    pub fn open(path: &str) -> io::Result<Netns> {
        let file = File::open(path)?;
        let md = file.metadata()?;
        let me = File::open("/proc/thread-self/ns/net")?.metadata()?;
        // An nsfs file lives on the nsfs pseudo filesystem, like our own namespace file.
        if md.dev() != me.dev() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is not a network namespace"),
            ));
        }
        Ok(Netns {
            id: (md.dev(), md.ino()),
            file,
        })
    }

    /// The id of the namespace at `path` without keeping it open.
    pub fn id_of(path: &str) -> Option<(u64, u64)> {
        Netns::open(path).ok().map(|n| n.id)
    }

    /// Whether this is the caller's own namespace.
    pub fn is_current(&self) -> bool {
        File::open("/proc/thread-self/ns/net")
            .and_then(|f| f.metadata())
            .map(|m| (m.dev(), m.ino()) == self.id)
            .unwrap_or(false)
    }

    /// Runs `f` with this thread inside the namespace, then returns to the original.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        use nix::sched::{setns, CloneFlags};
        let home = File::open("/proc/thread-self/ns/net")?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let out = f();
        if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Carrying on in the wrong namespace would change the wrong kernel state.
            log::error!("cannot return to econet's own network namespace: {e}; exiting");
            std::process::abort();
        }
        Ok(out)
    }

    /// A route-netlink socket inside this namespace.
    pub fn rtnl(&self) -> io::Result<Rtnl> {
        self.enter(Rtnl::open)?
    }

    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}
