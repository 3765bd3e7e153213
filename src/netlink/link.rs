//! Links: dump, create (bridge, veth), modify and delete.

use super::{attr, attrs, nested, Error, Result, Rtnl};
use crate::addr::MacAddr;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::Ifla;
use neli::consts::rtnl::{Iff, RtAddrFamily, Rtm};
use neli::rtnl::{Ifinfomsg, IfinfomsgBuilder, Rtattr};
use neli::types::Buffer;
use std::io;
use std::os::fd::RawFd;

pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINK: u16 = 5;
pub const IFLA_MASTER: u16 = 10;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_AF_SPEC: u16 = 26;
pub const IFLA_NET_NS_FD: u16 = 28;
pub const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const VETH_INFO_PEER: u16 = 1;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_BR_FORWARD_DELAY: u16 = 1;
const IFLA_BR_STP_STATE: u16 = 5;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// A network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Link {
    pub index: i32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "bridge", "veth", "tun", … (`None` for physical devices).
    pub kind: Option<String>,
    pub slave_kind: Option<String>,
    pub alias: Option<String>,
    pub master: Option<i32>,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier (IFF_LOWER_UP).
    pub lower_up: bool,
    /// For a veth: the peer's index (in `link_netnsid`'s namespace if set).
    pub peer_index: Option<i32>,
    pub link_netnsid: Option<i32>,
    /// For a tun/tap device: 1 = tun, 2 = tap.
    pub tun_type: Option<u8>,
}

/// Iterates the route attributes in `b` as (type, payload), stopping at anything
/// malformed: kernel data, but parsed without trusting lengths.
pub fn raw_attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let hdr = b.get(pos..pos + 4)?;
        let len = u16::from_ne_bytes([hdr[0], hdr[1]]) as usize;
        let ty = u16::from_ne_bytes([hdr[2], hdr[3]]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let payload = b.get(pos + 4..pos + len)?;
        pos += (len + 3) & !3;
        Some((ty, payload))
    })
}

fn cstr(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

fn u32_of(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

impl Link {
    pub(crate) fn from_msg(m: &Ifinfomsg) -> Link {
        let flags = m.ifi_flags();
        let mut l = Link {
            index: *m.ifi_index(),
            up: flags.contains(Iff::UP),
            lower_up: flags.contains(Iff::LOWERUP),
            ..Default::default()
        };
        for a in m.rtattrs().iter() {
            let ty = u16::from(a.rta_type());
            let p = a.rta_payload().as_ref();
            match ty {
                IFLA_IFNAME => l.name = cstr(p),
                IFLA_MTU => l.mtu = u32_of(p).unwrap_or(0),
                IFLA_ADDRESS => l.mac = MacAddr::from_slice(p),
                IFLA_MASTER => l.master = u32_of(p).map(|v| v as i32).filter(|&v| v > 0),
                IFLA_LINK => l.peer_index = u32_of(p).map(|v| v as i32).filter(|&v| v > 0),
                IFLA_LINK_NETNSID => l.link_netnsid = u32_of(p).map(|v| v as i32),
                IFLA_IFALIAS => {
                    let s = cstr(p);
                    l.alias = (!s.is_empty()).then_some(s);
                }
                IFLA_LINKINFO => {
                    for (t, ip) in raw_attrs(p) {
                        match t {
                            IFLA_INFO_KIND => l.kind = Some(cstr(ip)),
                            IFLA_INFO_SLAVE_KIND => l.slave_kind = Some(cstr(ip)),
                            IFLA_INFO_DATA if l.kind.as_deref() == Some("tun") => {
                                for (dt, dp) in raw_attrs(ip) {
                                    if dt == IFLA_TUN_TYPE {
                                        l.tun_type = dp.first().copied();
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

/// Changes to make to an existing link; `None` leaves a property alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// `Some(0)` releases the link from its master.
    pub master: Option<i32>,
    pub up: Option<bool>,
    pub alias: Option<String>,
    /// Turn off IPv6 address generation (no link-local address, no IPv6 chatter).
    pub no_ipv6_addrgen: bool,
}

impl LinkChange {
    pub fn is_empty(&self) -> bool {
        *self == LinkChange::default()
    }
}

fn common_attrs(c: &LinkChange) -> io::Result<Vec<Rtattr<Ifla, Buffer>>> {
    let mut v = Vec::new();
    if let Some(n) = &c.name {
        v.push(attr(IFLA_IFNAME, n.as_str())?);
    }
    if let Some(m) = c.mtu {
        v.push(attr(IFLA_MTU, m)?);
    }
    if let Some(m) = c.mac {
        v.push(attr(IFLA_ADDRESS, m.0)?);
    }
    if let Some(m) = c.master {
        v.push(attr(IFLA_MASTER, m as u32)?);
    }
    if let Some(a) = &c.alias {
        v.push(attr(IFLA_IFALIAS, a.as_str())?);
    }
    if c.no_ipv6_addrgen {
        let gen = nested(
            AF_INET6,
            vec![attr(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE)?],
        )?;
        v.push(nested(IFLA_AF_SPEC, vec![gen])?);
    }
    Ok(v)
}

fn msg(index: i32, up: Option<bool>, list: Vec<Rtattr<Ifla, Buffer>>) -> io::Result<Ifinfomsg> {
    let mut b = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .ifi_index(index)
        .rtattrs(attrs(list));
    b = match up {
        Some(true) => b.up(),
        Some(false) => b.down(),
        None => b,
    };
    b.build().map_err(super::other)
}

/// What a new veth's far end should look like.
pub struct VethPeer<'a> {
    pub name: &'a str,
    pub mac: MacAddr,
    pub mtu: u32,
    /// Network namespace to create the far end in (an open nsfs file); `None` = here.
    pub netns: Option<RawFd>,
}

impl Rtnl {
    /// Every link in this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let req = msg(0, None, Vec::new()).map_err(|e| Error::new("dump links", e))?;
        self.dump(Rtm::Getlink, req, "dump links", |m: &Ifinfomsg| {
            Some(Link::from_msg(m))
        })
    }

    /// One link by index, or `None` if it does not exist.
    pub fn link(&mut self, index: i32) -> Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.index == index))
    }

    /// Creates a bridge (down, STP off, no forward delay, no IPv6 addresses).
    pub fn create_bridge(&mut self, name: &str, mac: MacAddr, mtu: u32) -> Result<()> {
        let what = || format!("create bridge {name}");
        let build = || -> io::Result<Ifinfomsg> {
            let data = nested(
                IFLA_INFO_DATA,
                vec![
                    attr(IFLA_BR_STP_STATE, 0u32)?,
                    attr(IFLA_BR_FORWARD_DELAY, 0u32)?,
                ],
            )?;
            let info = nested(IFLA_LINKINFO, vec![attr(IFLA_INFO_KIND, "bridge")?, data])?;
            let c = LinkChange {
                name: Some(name.into()),
                mtu: Some(mtu),
                mac: Some(mac),
                ..Default::default()
            };
            let mut list = common_attrs(&c)?;
            list.push(info);
            msg(0, None, list)
        };
        let m = build().map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newlink, NlmF::CREATE | NlmF::EXCL, m, &what)
    }

    /// Creates a veth pair: `host` here (with `host` applied, alias aside), `peer`
    /// possibly in another namespace, still down.
    pub fn create_veth(&mut self, host: &LinkChange, peer: &VethPeer) -> Result<()> {
        let hname = host.name.clone().unwrap_or_default();
        let what = || format!("create veth {hname} (peer {})", peer.name);
        let build = || -> io::Result<Ifinfomsg> {
            let mut plist = vec![
                attr(IFLA_IFNAME, peer.name)?,
                attr(IFLA_ADDRESS, peer.mac.0)?,
                attr(IFLA_MTU, peer.mtu)?,
            ];
            if let Some(fd) = peer.netns {
                plist.push(attr(IFLA_NET_NS_FD, fd as u32)?);
            }
            // The far end cannot be set up here: veth refuses to open before both
            // ends exist (ENOTCONN). It is set up from inside its namespace after.
            let pmsg = msg(0, None, plist)?;
            let data = nested(IFLA_INFO_DATA, vec![attr(VETH_INFO_PEER, pmsg)?])?;
            let info = nested(
                IFLA_LINKINFO,
                vec![attr(IFLA_INFO_KIND, &b"veth"[..])?, data],
            )?;
            let mut h = host.clone();
            // The alias and address generation are set once the link exists.
            h.alias = None;
            h.no_ipv6_addrgen = false;
            let mut list = common_attrs(&h)?;
            list.push(info);
            msg(0, h.up, list)
        };
        let m = build().map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newlink, NlmF::CREATE | NlmF::EXCL, m, &what)
    }

    /// Applies `c` to the link at `index`.
    pub fn set_link(&mut self, index: i32, label: &str, c: &LinkChange) -> Result<()> {
        if c.is_empty() {
            return Ok(());
        }
        let what = || format!("set link {label}: {}", describe(c));
        let m = common_attrs(c)
            .and_then(|list| msg(index, c.up, list))
            .map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newlink, NlmF::empty(), m, &what)
    }

    /// Deletes the link at `index` (a veth takes its peer with it).
    pub fn delete_link(&mut self, index: i32, label: &str) -> Result<()> {
        let what = || format!("delete link {label}");
        let m = msg(index, None, Vec::new()).map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Dellink, NlmF::empty(), m, &what)
    }

    /// Moves the link at `index` into the namespace `netns` (an open nsfs file),
    /// renaming it on the way.
    pub fn move_to_netns(
        &mut self,
        index: i32,
        label: &str,
        netns: RawFd,
        new_name: &str,
    ) -> Result<()> {
        let what = || format!("move {label} into a namespace as {new_name}");
        let m = (|| -> io::Result<Ifinfomsg> {
            msg(
                index,
                None,
                vec![
                    attr(IFLA_NET_NS_FD, netns as u32)?,
                    attr(IFLA_IFNAME, new_name)?,
                ],
            )
        })()
        .map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newlink, NlmF::empty(), m, &what)
    }
}

/// A short description of a change, for errors and logs.
pub fn describe(c: &LinkChange) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &c.name {
        parts.push(format!("name {n}"));
    }
    if let Some(m) = c.mtu {
        parts.push(format!("mtu {m}"));
    }
    if let Some(m) = c.mac {
        parts.push(format!("address {m}"));
    }
    match c.master {
        Some(0) => parts.push("nomaster".into()),
        Some(m) => parts.push(format!("master #{m}")),
        None => {}
    }
    match c.up {
        Some(true) => parts.push("up".into()),
        Some(false) => parts.push("down".into()),
        None => {}
    }
    if let Some(a) = &c.alias {
        parts.push(format!("alias {a:?}"));
    }
    if c.no_ipv6_addrgen {
        parts.push("addrgenmode none".into());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_attrs_stop_at_garbage() {
        // len 8 type 3 "eth0", then a truncated header, then nothing.
        let b = [8u8, 0, 3, 0, b'e', b't', b'h', b'0', 9, 0];
        let v: Vec<_> = raw_attrs(&b).collect();
        assert_eq!(v, vec![(3u16, &b"eth0"[..])]);
        assert_eq!(raw_attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(raw_attrs(&[200, 0, 1, 0, 1]).count(), 0);
    }
}
