//! IPv4 addresses on links.

use super::{Error, Result, Rtnl};
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, RtattrBuilder};
use neli::types::RtBuffer;
use std::net::Ipv4Addr;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// An IPv4 address assigned to a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
    pub index: i32,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
}

fn ip_of(p: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = p.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn build(a: &Addr) -> std::io::Result<Ifaddrmsg> {
    let mut attrs = RtBuffer::new();
    for ty in [Ifa::Local, Ifa::Address] {
        attrs.push(
            RtattrBuilder::default()
                .rta_type(ty)
                .rta_payload(a.ip.octets())
                .build()
                .map_err(super::other)?,
        );
    }
    IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Inet)
        .ifa_prefixlen(a.prefix_len)
        .ifa_flags(IfaF::empty())
        .ifa_scope(RtScope::Universe)
        .ifa_index(a.index as u32)
        .rtattrs(attrs)
        .build()
        .map_err(super::other)
}

impl Rtnl {
    /// Every IPv4 address in this namespace.
    pub fn addrs(&mut self) -> Result<Vec<Addr>> {
        let req = IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Inet)
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
