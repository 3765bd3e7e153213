//! The kernel's change notifications (links, IPv4 and IPv6 addresses, IPv4 routes;
//! a port's global IPv6 address decides NAT66) on a non-blocking socket the event
//! loop polls. Events are parsed only as far as the loop needs them: what changed,
//! and on which interface.

use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::link::{raw_attrs, IFLA_IFNAME};

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Link {
        index: i32,
        name: String,
        deleted: bool,
    },
    Addr {
        index: i32,
    },
    Route,
    /// The kernel dropped events (receive buffer full): everything must be reread.
    Overrun,
}

pub struct Monitor {
    sock: NlSocket,
    buf: Vec<u8>,
}

impl Monitor {
    pub fn open() -> io::Result<Monitor> {
        let sock = NlSocket::connect(
            NlFamily::Route,
            None,
            Groups::new_groups(&[
                RTNLGRP_LINK,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_IFADDR,
            ]),
        )?;
        sock.nonblock()?;
        let _ = sock.set_recv_buffer_size(1 << 20);
        Ok(Monitor {
            sock,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Reads every pending event (never blocks).
    pub fn read(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        // Bounded: at most 256 datagrams per call, the loop comes back for the rest.
        for _ in 0..256 {
            match self
                .sock
                .recv(&mut self.buf[..], neli::consts::socket::Msg::empty())
            {
                Ok((n, _)) => parse(&self.buf[..n.min(self.buf.len())], &mut out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(Event::Overrun),
                Err(e) => {
                    log::warn!("netlink monitor: {e}");
                    out.push(Event::Overrun);
                    break;
                }
            }
        }
        out
    }
}

impl AsRawFd for Monitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// Parses one datagram of netlink messages; anything malformed ends the datagram.
pub fn parse(mut b: &[u8], out: &mut Vec<Event>) {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            return;
        }
        let body = &b[16..len];
        match ty {
            libc::RTM_NEWLINK | libc::RTM_DELLINK if body.len() >= 16 => {
                let index = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
                let name = raw_attrs(&body[16..])
                    .find(|(t, _)| *t == IFLA_IFNAME)
                    .map(|(_, p)| {
                        let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
                        String::from_utf8_lossy(&p[..end]).into_owned()
                    })
                    .unwrap_or_default();
                out.push(Event::Link {
                    index,
                    name,
                    deleted: ty == libc::RTM_DELLINK,
                });
            }
            libc::RTM_NEWADDR | libc::RTM_DELADDR if body.len() >= 8 => {
                let index = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
                out.push(Event::Addr { index });
            }
            libc::RTM_NEWROUTE | libc::RTM_DELROUTE => out.push(Event::Route),
            _ => {}
        }
        let step = (len + 3) & !3;
        b = b.get(step..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_link_event_and_survives_garbage() {
        let mut m = Vec::new();
        let name = b"eth0\0\0\0\0";
        let len = 16 + 16 + 4 + name.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&7i32.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&((4 + 5) as u16).to_ne_bytes());
        m.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        m.extend_from_slice(name);
        let mut out = Vec::new();
        parse(&m, &mut out);
        assert_eq!(
            out,
            vec![Event::Link {
                index: 7,
                name: "eth0".into(),
                deleted: false
            }]
        );
        for cut in 0..m.len() {
            let mut o = Vec::new();
            parse(&m[..cut], &mut o);
        }
        let mut o = Vec::new();
        parse(&[0xff; 64], &mut o);
        assert!(o.is_empty());
    }
}
