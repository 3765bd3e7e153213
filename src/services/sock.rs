//! Sockets with the options the services need and std does not expose: bound to a
//! device, bindable before the address exists, non-blocking from the start.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd; the value points to a live c_int of the given size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(|_| ())
}

/// Sets a socket's receive buffer to `bytes`: past `net.core.rmem_max` when the process
/// may (SO_RCVBUFFORCE), else as far as the limit allows. Whether either worked.
pub fn set_recv_buffer(fd: RawFd, bytes: usize) -> bool {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v).is_ok()
        || setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v).is_ok()
}

/// Restricts a socket to one interface (SO_BINDTODEVICE).
pub fn bind_to_device(fd: RawFd, dev: &str) -> io::Result<()> {
    let mut name = dev.as_bytes().to_vec();
    name.push(0);
    // SAFETY: valid fd; the value is a NUL-terminated name of the given length.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.len() as u32,
        )
    })
    .map(|_| ())
}

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

fn bind(fd: RawFd, a: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(a);
    // SAFETY: valid fd; `sa` is a sockaddr_in of the given size.
    check(unsafe {
        libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    })
    .map(|_| ())
}

fn new_socket(ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn prepare(fd: RawFd, addr: SocketAddrV4, dev: Option<&str>) -> io::Result<()> {
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    // The gateway address may not be on the bridge yet (or may be withdrawn for a
    // while); bind anyway.
    setopt(fd, libc::SOL_IP, libc::IP_FREEBIND, 1)?;
    if let Some(d) = dev {
        bind_to_device(fd, d)?;
    }
    bind(fd, addr)
}

/// A non-blocking UDP socket bound to `addr`, optionally only on device `dev`.
pub fn udp_bound(addr: SocketAddrV4, dev: Option<&str>) -> io::Result<UdpSocket> {
    let fd = new_socket(libc::SOCK_DGRAM)?;
    prepare(fd.as_raw_fd(), addr, dev)?;
    Ok(UdpSocket::from(fd))
}

/// A non-blocking TCP listener on `addr`, optionally only on device `dev`.
pub fn tcp_listener(addr: SocketAddrV4, dev: Option<&str>) -> io::Result<TcpListener> {
    let fd = new_socket(libc::SOCK_STREAM)?;
    prepare(fd.as_raw_fd(), addr, dev)?;
    // SAFETY: valid, bound stream socket.
    check(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(TcpListener::from(fd))
}

/// Starts a non-blocking TCP connection to `to`, from `src` if given.
pub fn tcp_connect_nonblocking(
    to: SocketAddr,
    src: Option<std::net::Ipv4Addr>,
) -> io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv6 upstream"));
    };
    let fd = new_socket(libc::SOCK_STREAM)?;
    if let Some(s) = src {
        setopt(fd.as_raw_fd(), libc::SOL_IP, libc::IP_FREEBIND, 1)?;
        bind(fd.as_raw_fd(), SocketAddrV4::new(s, 0))?;
    }
    let sa = sockaddr(to);
    // SAFETY: valid fd; `sa` is a sockaddr_in of the given size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

/// A packet socket on every interface, receiving only ARP and IPv4 UDP to port 67
/// (a classic BPF filter in the kernel), non-blocking.
pub fn dhcp_packet_socket() -> io::Result<OwnedFd> {
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    packet_socket(&[
        f(0x28, 0, 0, 12),     // ldh [12]               ethertype
        f(0x15, 8, 0, 0x0806), // jeq ARP                → accept
        f(0x15, 0, 8, 0x0800), // jeq IPv4               else drop
        f(0x30, 0, 0, 23),     // ldb [23]               IP protocol
        f(0x15, 0, 6, 17),     // jeq UDP                else drop
        f(0x28, 0, 0, 20),     // ldh [20]               fragment offset
        f(0x45, 4, 0, 0x1fff), // jset 0x1fff            a fragment: drop
        f(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf)      IP header length
        f(0x48, 0, 0, 16),     // ldh [x+16]             UDP destination port
        f(0x15, 0, 1, 67),     // jeq 67                 else drop
        f(0x06, 0, 0, 0x40000),
        f(0x06, 0, 0, 0),
    ])
}

/// A packet socket on every interface, receiving only IPv6 router solicitations and
/// UDP to port 547 (DHCPv6), with no extension headers before them, non-blocking.
pub fn ipv6_packet_socket() -> io::Result<OwnedFd> {
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    packet_socket(&[
        f(0x28, 0, 0, 12),     // ldh [12]               ethertype
        f(0x15, 0, 8, 0x86dd), // jeq IPv6               else drop
        f(0x30, 0, 0, 20),     // ldb [20]               next header
        f(0x15, 0, 2, 58),     // jeq ICMPv6             else try UDP
        f(0x30, 0, 0, 54),     // ldb [54]               ICMPv6 type
        f(0x15, 3, 4, 133),    // jeq RS                 → accept, else drop
        f(0x15, 0, 3, 17),     // jeq UDP                else drop
        f(0x28, 0, 0, 56),     // ldh [56]               UDP destination port
        f(0x15, 0, 1, 547),    // jeq 547                else drop
        f(0x06, 0, 0, 0x40000),
        f(0x06, 0, 0, 0),
    ])
}

/// A non-blocking packet socket on every interface behind the classic BPF `prog`,
/// not receiving what it sends itself.
fn packet_socket(prog: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    const ETH_P_ALL: u16 = 0x0003;
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL.to_be()),
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: valid fd; fprog points to `prog`, alive for the call.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    })?;
    let _ = setopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
    // Our own frames (replies, ARP probes) need not come back to us; older kernels
    // (before 4.20) refuse the option, and the shell skips them anyway.
    let _ = setopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_IGNORE_OUTGOING,
        1,
    );
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_ALL.to_be(),
        sll_ifindex: 0,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: valid fd; `sll` is a sockaddr_ll of the given size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    })?;
    Ok(fd)
}

/// A received frame's interface and packet type (PACKET_HOST, PACKET_OUTGOING, …).
pub struct FrameFrom {
    pub len: usize,
    pub ifindex: i32,
    pub pkttype: u8,
}

/// Receives one frame; `None` when nothing is waiting.
pub fn recv_frame(fd: RawFd, buf: &mut [u8]) -> Option<FrameFrom> {
    // SAFETY: zeroed sockaddr_ll is a valid value; recvfrom writes at most `alen`.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    // SAFETY: buf and sll are valid for writes of the given lengths.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
            &mut sll as *mut _ as *mut libc::sockaddr,
            &mut alen,
        )
    };
    if n < 0 {
        return None;
    }
    Some(FrameFrom {
        len: (n as usize).min(buf.len()),
        ifindex: sll.sll_ifindex,
        pkttype: sll.sll_pkttype,
    })
}

/// Sends a whole Ethernet frame out of interface `ifindex`.
pub fn send_frame(fd: RawFd, ifindex: i32, frame: &[u8]) -> io::Result<()> {
    let mut addr = [0u8; 8];
    if let Some(dst) = frame.get(..6) {
        addr[..6].copy_from_slice(dst);
    }
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: 0,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    };
    // SAFETY: valid fd; frame and sll are valid for the given lengths.
    let n = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Datagrams in a batch on one UDP socket: up to [`UdpBatch::SIZE`] received with
/// one `recvmmsg` and the replies sent with one `sendmmsg`, so a busy DNS server
/// pays two system calls per batch instead of two per query.
pub struct UdpBatch {
    rx: Vec<u8>,
    rx_len: [usize; UdpBatch::SIZE],
    rx_from: [libc::sockaddr_in; UdpBatch::SIZE],
    received: usize,
    tx: Vec<u8>,
    tx_len: [usize; UdpBatch::SIZE],
    tx_to: [libc::sockaddr_in; UdpBatch::SIZE],
    queued: usize,
}

impl Default for UdpBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl UdpBatch {
    /// Datagrams per batch.
    pub const SIZE: usize = 32;
    /// Largest datagram received whole (longer ones are cut, as with a 4 KiB buffer).
    pub const RX_SLOT: usize = 4096;
    /// Largest reply queued; longer ones are for the caller to send on its own.
    pub const TX_SLOT: usize = 1280;

    pub fn new() -> UdpBatch {
        let zero = sockaddr(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));
        UdpBatch {
            rx: Vec::new(),
            rx_len: [0; Self::SIZE],
            rx_from: [zero; Self::SIZE],
            received: 0,
            tx: Vec::new(),
            tx_len: [0; Self::SIZE],
            tx_to: [zero; Self::SIZE],
            queued: 0,
        }
    }

    /// Receives what is waiting (at most `SIZE`); returns how many datagrams.
    pub fn recv(&mut self, fd: RawFd) -> usize {
        if self.rx.is_empty() {
            self.rx = vec![0; Self::SIZE * Self::RX_SLOT];
        }
        // SAFETY: zeroed iovec/mmsghdr are valid values; every pointer set below
        // points into `self.rx` / `self.rx_from`, alive and unaliased for the call.
        let mut iov: [libc::iovec; Self::SIZE] = unsafe { std::mem::zeroed() };
        let mut hdr: [libc::mmsghdr; Self::SIZE] = unsafe { std::mem::zeroed() };
        let base = self.rx.as_mut_ptr();
        for i in 0..Self::SIZE {
            // SAFETY: i * RX_SLOT is within the buffer of SIZE * RX_SLOT bytes.
            iov[i].iov_base = unsafe { base.add(i * Self::RX_SLOT) } as *mut libc::c_void;
            iov[i].iov_len = Self::RX_SLOT;
            hdr[i].msg_hdr.msg_iov = &mut iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
            hdr[i].msg_hdr.msg_name = &mut self.rx_from[i] as *mut _ as *mut libc::c_void;
            hdr[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        // SAFETY: valid fd and SIZE initialised headers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdr.as_mut_ptr(),
                Self::SIZE as u32,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        self.received = if n > 0 { n as usize } else { 0 };
        for (len, h) in self.rx_len.iter_mut().zip(&hdr).take(self.received) {
            *len = (h.msg_len as usize).min(Self::RX_SLOT);
        }
        self.received
    }

    /// Received datagram `i` and its sender (only IPv4 sockets are used).
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.received {
            return None;
        }
        let a = &self.rx_from[i];
        if a.sin_family != libc::AF_INET as libc::sa_family_t {
            return None;
        }
        let from = SocketAddrV4::new(
            std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
            u16::from_be(a.sin_port),
        );
        let start = i * Self::RX_SLOT;
        Some((
            self.rx.get(start..start + self.rx_len[i])?,
            SocketAddr::V4(from),
        ))
    }

    /// Queues a reply; `false` (nothing queued) if it is too long, the batch is full
    /// or `to` is not IPv4: then the caller sends it itself.
    pub fn queue(&mut self, msg: &[u8], to: SocketAddr) -> bool {
        let SocketAddr::V4(to) = to else {
            return false;
        };
        if msg.len() > Self::TX_SLOT || self.queued >= Self::SIZE {
            return false;
        }
        if self.tx.is_empty() {
            self.tx = vec![0; Self::SIZE * Self::TX_SLOT];
        }
        let i = self.queued;
        let start = i * Self::TX_SLOT;
        self.tx[start..start + msg.len()].copy_from_slice(msg);
        self.tx_len[i] = msg.len();
        self.tx_to[i] = sockaddr(to);
        self.queued += 1;
        true
    }

    /// Sends the queued replies (what the socket refuses is dropped, as a lost
    /// datagram would be).
    pub fn flush(&mut self, fd: RawFd) {
        let n = std::mem::take(&mut self.queued);
        if n == 0 {
            return;
        }
        // SAFETY: as in `recv`: pointers into `self.tx` / `self.tx_to`, alive for the
        // call; sendmmsg only reads them.
        let mut iov: [libc::iovec; Self::SIZE] = unsafe { std::mem::zeroed() };
        let mut hdr: [libc::mmsghdr; Self::SIZE] = unsafe { std::mem::zeroed() };
        let base = self.tx.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * TX_SLOT is within the buffer of SIZE * TX_SLOT bytes.
            iov[i].iov_base = unsafe { base.add(i * Self::TX_SLOT) } as *mut libc::c_void;
            iov[i].iov_len = self.tx_len[i];
            hdr[i].msg_hdr.msg_iov = &mut iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
            hdr[i].msg_hdr.msg_name = &mut self.tx_to[i] as *mut _ as *mut libc::c_void;
            hdr[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        let mut sent = 0;
        // Bounded: each round sends at least one or stops.
        while sent < n {
            // SAFETY: valid fd; headers sent..n are initialised.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdr[sent..].as_mut_ptr(),
                    (n - sent) as u32,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if r > 0 {
                sent += r as usize;
            } else if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // Refused (a full buffer, an unreachable client): skip that one.
                sent += 1;
            }
        }
    }
}
