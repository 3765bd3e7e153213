//! The kernel interface: rtnetlink over `neli` for links, addresses and routes, an
//! event monitor, network namespaces, and tun/tap by ioctl. No shelling out.
//!
//! [`Rtnl`] is a blocking request socket (the kernel answers at once; a receive
//! timeout guards the event loop anyway). It counts the changes it makes, which is how
//! tests and status show that reapplying a config changes nothing.

pub mod addr;
pub mod link;
pub mod monitor;
pub mod netns;
pub mod nft;
pub mod route;
pub mod tuntap;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifla, Rtm};
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::rtnl::{Rtattr, RtattrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::types::{Buffer, RtBuffer};
use neli::utils::Groups;
use neli::{FromBytesWithInput, Size, ToBytes};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A failed kernel request: what was being done, and the error.
#[derive(Debug)]
pub struct Error {
    pub what: String,
    pub err: io::Error,
}

impl Error {
    pub fn new(what: impl Into<String>, err: io::Error) -> Error {
        Error {
            what: what.into(),
            err,
        }
    }
    /// The errno, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.err)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn other(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Builds a route attribute with a raw type number (neli lacks many of the constants
/// econet needs, e.g. bridge and veth attributes).
pub(crate) fn attr<P: Size + ToBytes>(ty: u16, payload: P) -> io::Result<Rtattr<Ifla, Buffer>> {
    RtattrBuilder::default()
        .rta_type(Ifla::from(ty))
        .rta_payload(payload)
        .build()
        .map_err(other)
}

/// Builds a nested attribute holding `inner`.
pub(crate) fn nested(
    ty: u16,
    inner: Vec<Rtattr<Ifla, Buffer>>,
) -> io::Result<Rtattr<Ifla, Buffer>> {
    let mut a = attr(ty, Buffer::new())?;
    for i in &inner {
        a = a.nest(i).map_err(other)?;
    }
    Ok(a)
}

pub(crate) fn attrs(list: Vec<Rtattr<Ifla, Buffer>>) -> RtBuffer<Ifla, Buffer> {
    let mut b = RtBuffer::new();
    for a in list {
        b.push(a);
    }
    b
}

/// A route-netlink request socket, in this or another network namespace.
pub struct Rtnl {
    sock: NlSocketHandle,
    seq: u32,
    /// Successful create/modify/delete requests made through this socket.
    pub changes: u64,
}

impl Rtnl {
    /// A socket in the caller's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        let sock =
            NlSocketHandle::connect(NlFamily::Route, None, Groups::empty()).map_err(other)?;
        set_timeouts(sock.as_raw_fd())?;
        let _ = sock.enable_ext_ack(true);
        Ok(Rtnl {
            sock,
            seq: 0,
            changes: 0,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends a change request and waits for its acknowledgement.
    pub(crate) fn change<P>(
        &mut self,
        ty: Rtm,
        flags: NlmF,
        payload: P,
        what: &dyn Fn() -> String,
    ) -> Result<()>
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + fmt::Debug,
    {
        let seq = self.next_seq();
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags | NlmF::REQUEST | NlmF::ACK)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(|e| Error::new(what(), other(e)))?;
        self.sock
            .send(&msg)
            .map_err(|e| Error::new(what(), other(e)))?;
        loop {
            let (iter, _) = self
                .sock
                .recv::<Rtm, P>()
                .map_err(|e| Error::new(what(), sock_err(e)))?;
            for m in iter {
                let m: Nlmsghdr<Rtm, P> = m.map_err(|e| Error::new(what(), other(e)))?;
                if *m.nl_seq() != seq {
                    continue;
                }
                match m.nl_payload() {
                    NlPayload::Ack(_) => {
                        self.changes += 1;
                        return Ok(());
                    }
                    NlPayload::Err(e) => {
                        let os = io::Error::from_raw_os_error(-*e.error());
                        let err = match e
                            .ext_ack()
                            .get_attr_handle()
                            .get_attr_payload_as_with_len::<String>(
                                neli::consts::nl::NlmsgerrAttr::Msg,
                            ) {
                            // The kernel's own explanation, when it gives one.
                            Ok(m) if !m.is_empty() => {
                                io::Error::new(os.kind(), format!("{os} ({m})"))
                            }
                            _ => os,
                        };
                        return Err(Error::new(what(), err));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends a dump request and maps every reply payload through `f`.
    pub(crate) fn dump<P, R>(
        &mut self,
        ty: Rtm,
        payload: P,
        what: &str,
        mut f: impl FnMut(&P) -> Option<R>,
    ) -> Result<Vec<R>>
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + fmt::Debug,
    {
        let seq = self.next_seq();
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(NlmF::REQUEST | NlmF::DUMP)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(|e| Error::new(what, other(e)))?;
        self.sock
            .send(&msg)
            .map_err(|e| Error::new(what, other(e)))?;
        let mut out = Vec::new();
        loop {
            let (iter, _) = self
                .sock
                .recv::<Rtm, P>()
                .map_err(|e| Error::new(what, sock_err(e)))?;
            for m in iter {
                let mut m: Nlmsghdr<Rtm, P> = m.map_err(|e| Error::new(what, other(e)))?;
                if *m.nl_seq() != seq {
                    continue;
                }
                if u16::from(m.nl_type()) == libc::NLMSG_DONE as u16 {
                    return Ok(out);
                }
                if let Some(e) = m.get_err() {
                    return Err(Error::new(what, io::Error::from_raw_os_error(-*e.error())));
                }
                if let Some(r) = m.get_payload().and_then(&mut f) {
                    out.push(r);
                }
            }
        }
    }
}

fn sock_err(e: neli::err::SocketError) -> io::Error {
    match e {
        neli::err::SocketError::Io(e) => io::Error::new(e.kind(), e.to_string()),
        e => other(e),
    }
}

/// A receive timeout, so a kernel that never answers cannot hang the event loop.
fn set_timeouts(fd: RawFd) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: valid fd and a live timeval of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
