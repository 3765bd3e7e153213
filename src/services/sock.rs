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
