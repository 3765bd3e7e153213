//! A tunnel device's queue: econet attaches to the persistent TUN the reconciler
//! made for a cloud or mesh network, reads the IPv4 packets the kernel routes into it
//! and writes back the packets that come out of the tunnel.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

pub struct Tun {
    pub name: String,
    file: File,
}

impl Tun {
    /// Attaches to the tun device `name` (creating it if the reconciler has not yet),
    /// non-blocking.
    pub fn attach(name: &str) -> io::Result<Tun> {
        let file = crate::netlink::tuntap::open(name, false, 0)?;
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Ok(Tun {
            name: name.to_string(),
            file,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// One packet, or `None` when nothing is waiting.
    pub fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self.file.read(buf) {
            Ok(n) if n > 0 => Some(n),
            _ => None,
        }
    }

    /// Hands a packet to the kernel; a full queue drops it, as a link would.
    pub fn send(&mut self, pkt: &[u8]) {
        let _ = self.file.write(pkt);
    }
}
