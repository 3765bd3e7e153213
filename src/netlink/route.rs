//! IPv4 routes. Routes econet adds carry its own protocol number, so they can be
//! found again and told apart from everyone else's.

use super::{Error, Result, Rtnl};
use crate::addr::Ipv4Net;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{RtAddrFamily, RtScope, RtTable, Rta, Rtm, RtmF, Rtn, Rtprot};
use neli::rtnl::{RtattrBuilder, Rtmsg, RtmsgBuilder};
use neli::types::RtBuffer;
use neli::{Size, ToBytes};
use std::net::Ipv4Addr;

/// `rtm_protocol` of econet's routes (unassigned in iproute2's rt_protos).
pub const RTPROT_ECONET: u8 = 0xec;
pub const TABLE_MAIN: u32 = 254;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub dst: Ipv4Net,
    pub oif: Option<i32>,
    pub gateway: Option<Ipv4Addr>,
    pub prefsrc: Option<Ipv4Addr>,
    pub table: u32,
    pub metric: u32,
    pub protocol: u8,
    /// RT_SCOPE_LINK (253) for on-link routes, RT_SCOPE_UNIVERSE (0) otherwise.
    pub scope: u8,
}

fn ip_of(p: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = p.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn u32_of(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

fn push<P: Size + ToBytes>(
    b: &mut RtBuffer<Rta, neli::types::Buffer>,
    ty: u16,
    p: P,
) -> std::io::Result<()> {
    b.push(
        RtattrBuilder::default()
            .rta_type(Rta::from(ty))
            .rta_payload(p)
            .build()
            .map_err(super::other)?,
    );
    Ok(())
}

fn build(r: &Route) -> std::io::Result<Rtmsg> {
    let mut a = RtBuffer::new();
    push(&mut a, RTA_DST, r.dst.addr().octets())?;
    if let Some(o) = r.oif {
        push(&mut a, RTA_OIF, o as u32)?;
    }
    if let Some(g) = r.gateway {
        push(&mut a, RTA_GATEWAY, g.octets())?;
    }
    if let Some(s) = r.prefsrc {
        push(&mut a, RTA_PREFSRC, s.octets())?;
    }
    push(&mut a, RTA_PRIORITY, r.metric)?;
    push(&mut a, RTA_TABLE, r.table)?;
    RtmsgBuilder::default()
        .rtm_family(RtAddrFamily::Inet)
        .rtm_dst_len(r.dst.len())
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::from(if r.table < 256 {
            r.table as u8
        } else {
            252
        }))
        .rtm_protocol(Rtprot::from(r.protocol))
        .rtm_scope(RtScope::from(r.scope))
        .rtm_type(Rtn::Unicast)
        .rtm_flags(RtmF::empty())
        .rtattrs(a)
        .build()
        .map_err(super::other)
}

impl Rtnl {
    /// Every IPv4 unicast route in every table.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let req = RtmsgBuilder::default()
            .rtm_family(RtAddrFamily::Inet)
            .rtm_dst_len(0)
            .rtm_src_len(0)
            .rtm_tos(0)
            .rtm_table(RtTable::Unspec)
            .rtm_protocol(Rtprot::Unspec)
            .rtm_scope(RtScope::Universe)
            .rtm_type(Rtn::Unspec)
            .build()
            .map_err(|e| Error::new("dump routes", super::other(e)))?;
        self.dump(Rtm::Getroute, req, "dump routes", |m: &Rtmsg| {
            if u8::from(*m.rtm_type()) != libc::RTN_UNICAST {
                return None;
            }
            let mut dst = std::net::Ipv4Addr::UNSPECIFIED;
            let mut r = Route {
                dst: Ipv4Net::containing(dst, 0),
                oif: None,
                gateway: None,
                prefsrc: None,
                table: u8::from(*m.rtm_table()) as u32,
                metric: 0,
                protocol: u8::from(*m.rtm_protocol()),
                scope: u8::from(*m.rtm_scope()),
            };
            for a in m.rtattrs().iter() {
                let p = a.rta_payload().as_ref();
                match u16::from(a.rta_type()) {
                    RTA_DST => dst = ip_of(p)?,
                    RTA_OIF => r.oif = u32_of(p).map(|v| v as i32),
                    RTA_GATEWAY => r.gateway = ip_of(p),
                    RTA_PREFSRC => r.prefsrc = ip_of(p),
                    RTA_PRIORITY => r.metric = u32_of(p).unwrap_or(0),
                    RTA_TABLE => r.table = u32_of(p).unwrap_or(r.table),
                    _ => {}
                }
            }
            r.dst = Ipv4Net::containing(dst, *m.rtm_dst_len());
            Some(r)
        })
    }

    pub fn add_route(&mut self, r: &Route) -> Result<()> {
        let what = || format!("add route {}", show(r));
        let m = build(r).map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Newroute, NlmF::CREATE | NlmF::EXCL, m, &what)
    }

    pub fn del_route(&mut self, r: &Route) -> Result<()> {
        let what = || format!("delete route {}", show(r));
        let m = build(r).map_err(|e| Error::new(what(), e))?;
        self.change(Rtm::Delroute, NlmF::empty(), m, &what)
    }
}

pub fn show(r: &Route) -> String {
    let mut s = r.dst.to_string();
    if let Some(g) = r.gateway {
        s += &format!(" via {g}");
    }
    if let Some(o) = r.oif {
        s += &format!(" dev #{o}");
    }
    if r.table != TABLE_MAIN {
        s += &format!(" table {}", r.table);
    }
    s
}
