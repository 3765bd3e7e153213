//! tun/tap devices, which rtnetlink cannot create: `TUNSETIFF` on /dev/net/tun.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens (creating if needed) the tun or tap device `name`; the returned file is its
/// queue. `extra` adds flags such as `IFF_VNET_HDR`.
pub fn open(name: &str, tap: bool, extra: libc::c_int) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: ((if tap { libc::IFF_TAP } else { libc::IFF_TUN }) | libc::IFF_NO_PI | extra)
            as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq; IfReq has its layout and size.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF as _, &mut req as *mut IfReq) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Creates a persistent tap device for a hypervisor to open later.
pub fn create_persistent_tap(name: &str) -> io::Result<()> {
    create_persistent(name, true)
}

/// Creates a persistent tun device (a tunnel's; econet attaches to it), so routes
/// through it survive an econet restart.
pub fn create_persistent_tun(name: &str) -> io::Result<()> {
    create_persistent(name, false)
}

fn create_persistent(name: &str, tap: bool) -> io::Result<()> {
    let f = open(name, tap, 0)?;
    // SAFETY: TUNSETPERSIST takes an integer argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETPERSIST as _, 1 as libc::c_ulong) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
