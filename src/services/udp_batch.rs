//! UDP segmentation offloads: many equal-sized datagrams to one peer leave in one
//! `sendmsg` (UDP GSO, `UDP_SEGMENT`), and a burst from one peer arrives in one
//! `recvmsg` (UDP GRO). Both fall back to one datagram per call where the kernel does
//! not support them.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Most datagrams in one GSO send (the kernel's limit is 64).
const MAX_SEGS: usize = 64;
/// Largest UDP payload in one send.
const MAX_BYTES: usize = 65507;

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Collects datagrams for one destination and sends them together.
pub struct GsoSender {
    buf: Vec<u8>,
    seg: usize,
    count: usize,
    dst: Option<SocketAddrV4>,
    /// Cleared when the kernel refuses GSO: then one datagram per send.
    gso: bool,
    /// The last datagram was shorter than `seg`: nothing more may follow it.
    closed: bool,
    pub sends: u64,
}

impl Default for GsoSender {
    fn default() -> Self {
        Self::new()
    }
}

impl GsoSender {
    pub fn new() -> GsoSender {
        GsoSender {
            buf: Vec::with_capacity(MAX_BYTES),
            seg: 0,
            count: 0,
            dst: None,
            gso: true,
            closed: false,
            sends: 0,
        }
    }

    /// Queues `d` for `dst`, sending what was queued first if it cannot join it.
    pub fn push(&mut self, sock: &UdpSocket, dst: SocketAddrV4, d: &[u8]) {
        let fits = self.dst == Some(dst)
            && !self.closed
            && d.len() <= self.seg
            && self.count < MAX_SEGS
            && self.buf.len() + d.len() <= MAX_BYTES;
        if !fits {
            self.flush(sock);
            self.dst = Some(dst);
            self.seg = d.len();
        }
        self.buf.extend_from_slice(d);
        self.count += 1;
        if d.len() < self.seg {
            self.closed = true;
        }
        if !self.gso {
            self.flush(sock);
        }
    }

    /// Sends everything queued.
    pub fn flush(&mut self, sock: &UdpSocket) {
        let Some(dst) = self.dst else { return };
        if self.count > 1 && self.gso {
            if send_gso(sock.as_raw_fd(), dst, &self.buf, self.seg as u16).is_ok() {
                self.sends += 1;
                self.reset();
                return;
            }
            // EIO/EINVAL: no GSO here (or not on this route); send them one by one.
            self.gso = false;
        }
        for d in self.buf.chunks(self.seg.max(1)) {
            let _ = sock.send_to(d, dst);
            self.sends += 1;
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.dst = None;
        self.closed = false;
    }
}

fn send_gso(fd: RawFd, dst: SocketAddrV4, buf: &[u8], seg: u16) -> std::io::Result<()> {
    let sa = sockaddr(dst);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: zeroed msghdr is valid; every pointer below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &sa as *const _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control has room for one cmsg carrying a u16.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg);
    }
    // SAFETY: valid fd and a fully initialised msghdr.
    let n = unsafe { libc::sendmsg(fd, &msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to coalesce bursts of datagrams (UDP GRO); harmless if it cannot.
pub fn enable_gro(sock: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: valid fd; the value points to a live c_int of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
}

/// Receives one (possibly coalesced) read: (bytes, sender, segment size). The bytes
/// are `len / seg` datagrams of `seg` bytes and one shorter one at the end.
pub fn recv_gro(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddrV4, usize)> {
    // SAFETY: zeroed sockaddr_in is valid; recvmsg writes at most namelen bytes.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; every pointer below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut sa as *mut _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: valid fd and msghdr.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n <= 0 {
        return None;
    }
    let n = (n as usize).min(buf.len());
    let mut seg = n;
    // SAFETY: iterating the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                if v > 0 {
                    seg = v as usize;
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let from = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    );
    Some((n, from, seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_datagrams_in_few_sends_arrive_whole() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let std::net::SocketAddr::V4(to) = rx.local_addr().unwrap() else {
            panic!()
        };
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut g = GsoSender::new();
        let mut sent = Vec::new();
        for i in 0..100u32 {
            let len = if i == 99 { 300 } else { 1200 };
            let d: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            g.push(&tx, to, &d);
            sent.push(d);
        }
        g.flush(&tx);
        assert!(g.sends < 10, "{} sends", g.sends);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        for _ in 0..1000 {
            match rx.recv_from(&mut buf) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(_) if got.len() == sent.len() => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(got, sent);
    }
}
