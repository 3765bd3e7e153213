//! IPv4 and IPv6 addresses on links.

use super::{Error, Result, Rtnl};
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, RtattrBuilder};
use neli::types::RtBuffer;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// An address assigned to a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
    pub index: i32,
    pub ip: IpAddr,
    pub prefix_len: u8,
}

fn ip_of(p: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 16]>::try_from(p) {
        return Some(IpAddr::V6(Ipv6Addr::from(b)));
    }
    let b: [u8; 4] = p.get(..4)?.try_into().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(b)))
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn build(a: &Addr) -> std::io::Result<Ifaddrmsg> {
    let mut attrs = RtBuffer::new();
    // IPv6 takes IFA_ADDRESS alone (IFA_LOCAL is for point-to-point peers there).
    let (family, types, flags) = match a.ip {
        IpAddr::V4(_) => (
            RtAddrFamily::Inet,
            &[Ifa::Local, Ifa::Address][..],
            IfaF::empty(),
        ),
        // No duplicate address detection: the gateway's address is econet's to give.
        IpAddr::V6(_) => (RtAddrFamily::Inet6, &[Ifa::Address][..], IfaF::NODAD),
    };
    for ty in types {
        attrs.push(
            RtattrBuilder::default()
                .rta_type(*ty)
                .rta_payload(octets(&a.ip))
                .build()
                .map_err(super::other)?,
        );
    }
    IfaddrmsgBuilder::default()
        .ifa_family(family)
        .ifa_prefixlen(a.prefix_len)
        .ifa_flags(flags)
        .ifa_scope(RtScope::Universe)
        .ifa_index(a.index as u32)
        .rtattrs(attrs)
        .build()
        .map_err(super::other)
}

impl Rtnl {
    /// Every IPv4 and IPv6 address in this namespace.
    pub fn addrs(&mut self) -> Result<Vec<Addr>> {
        let mut v = self.addrs_of(RtAddrFamily::Inet)?;
        v.extend(self.addrs_of(RtAddrFamily::Inet6)?);
        Ok(v)
    }

    fn addrs_of(&mut self, family: RtAddrFamily) -> Result<Vec<Addr>> {
        let req = IfaddrmsgBuilder::default()
            .ifa_family(family)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(0)
            .build()
            .map_err(|e| Error::new("dump addresses", super::other(e)))?;
        self.dump(Rtm::Getaddr, req, "dump addresses", |m: &Ifaddrmsg| {
            let mut local = None;
            let mut address = None;
            for a in m.rtattrs().iter() {
                let p = a.rta_payload().as_ref();
                match u16::from(a.rta_type()) {
                    IFA_LOCAL => local = ip_of(p),
                    IFA_ADDRESS => address = ip_of(p),
                    _ => {}
                }
            }
            Some(Addr {
                index: *m.ifa_index() as i32,
                ip: local.or(address)?,
                prefix_len: *m.ifa_prefixlen(),
            })
        })
    }

    pub fn add_addr(&mut self, a: &Addr, label: &str) -> Result<()> {
        let what = || format!("add address {}/{} to {label}", a.ip, a.prefix_len);
        let m = build(a).map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newaddr, NlmF::CREATE | NlmF::EXCL, m, &what)
    }

    pub fn del_addr(&mut self, a: &Addr, label: &str) -> Result<()> {
        let what = || format!("delete address {}/{} from {label}", a.ip, a.prefix_len);
        let m = build(a).map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Deladdr, NlmF::empty(), m, &what)
    }
}
