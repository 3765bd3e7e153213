//! A tunnel device's queue: econet attaches to the persistent TUN the reconciler
//! made for a cloud or mesh network, reads the IPv4 packets the kernel routes into it
//! and writes back the packets that come out of the tunnel.
//!
//! With offloads (`IFF_VNET_HDR`, `TUNSETOFFLOAD` for checksums and TCPv4
//! segmentation) one read can bring a 64 KiB TCP segment, which [`offload`] cuts to
//! wire size; without them (an older kernel) it is one packet per read. The other
//! way, [`gro`] joins a flow's segments into one large write, so call [`Tun::flush`]
//! after each batch of [`Tun::send`]s.

use super::gro::Gro;
use super::offload::{self, VnetHdr, VNET_HDR_LEN};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};

pub struct Tun {
    pub name: String,
    file: File,
    /// Packets carry a virtio-net header (offloads on).
    vnet: bool,
    scratch: Vec<u8>,
    gro: Gro,
}

fn nonblocking(f: &File) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

impl Tun {
    /// Attaches to the tun device `name` (creating it if the reconciler has not
    /// yet), non-blocking, with offloads when the kernel allows them.
    pub fn attach(name: &str) -> io::Result<Tun> {
        if let Ok(file) = crate::netlink::tuntap::open(name, false, libc::IFF_VNET_HDR) {
            let flags = (libc::TUN_F_CSUM | libc::TUN_F_TSO4) as libc::c_ulong;
            // SAFETY: TUNSETOFFLOAD takes an integer argument.
            if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETOFFLOAD as _, flags) } == 0 {
                nonblocking(&file);
                return Ok(Tun {
                    name: name.to_string(),
                    file,
                    vnet: true,
                    scratch: vec![0; 65536],
                    gro: Gro::default(),
                });
            }
        }
        let file = crate::netlink::tuntap::open(name, false, 0)?;
        nonblocking(&file);
        Ok(Tun {
            name: name.to_string(),
            file,
            vnet: false,
            scratch: Vec::new(),
            gro: Gro::default(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub fn offloads(&self) -> bool {
        self.vnet
    }

    /// Reads one packet (or one large segment) and calls `f` with each wire-sized
    /// IPv4 packet in it; `false` when nothing was waiting.
    pub fn recv(&mut self, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> bool {
        let n = match self.file.read(buf) {
            Ok(n) if n > 0 => n,
            _ => return false,
        };
        if !self.vnet {
            f(&buf[..n]);
            return true;
        }
        let Some(hdr) = VnetHdr::parse(&buf[..n]) else {
            return true;
        };
        let Some(pkt) = buf.get_mut(VNET_HDR_LEN..n) else {
            return true;
        };
        // A packet that cannot be segmented is dropped, as a bad frame would be.
        let _ = offload::segments(&hdr, pkt, &mut self.scratch, &mut f);
        true
    }

    /// Hands a packet to the kernel, perhaps held to join the next ones of its flow
    /// until [`Tun::flush`]; a full queue drops it, as a link would.
    pub fn send(&mut self, pkt: &[u8]) {
        let fd = self.file.as_raw_fd();
        if !self.vnet {
            // SAFETY: writing an initialised buffer to an fd we own.
            unsafe { libc::write(fd, pkt.as_ptr() as *const libc::c_void, pkt.len()) };
            return;
        }
        self.gro.push(pkt, &mut |h, p| write_vnet(fd, h, p));
    }

    /// Writes whatever `send` holds: call after each batch.
    pub fn flush(&mut self) {
        let fd = self.file.as_raw_fd();
        self.gro.flush(&mut |h, p| write_vnet(fd, h, p));
    }
}

fn write_vnet(fd: RawFd, hdr: &VnetHdr, pkt: &[u8]) {
    let hdr = hdr.to_bytes();
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        },
    ];
    // SAFETY: both iovecs point to live, initialised buffers.
    unsafe { libc::writev(fd, iov.as_ptr(), 2) };
}
