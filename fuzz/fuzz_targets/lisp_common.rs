//! What the LISP targets share: an xTR set up as device 1 of the in-memory fleet the
//! seeds come from (fuzz/seeds.rs, `lisp::tests::wire_samples`): instance 1000, the
//! map server 198.51.100.1 with key "ms-secret", RLOCs 198.51.100.7 and .8, ECOs
//! 10.200.4.10 and 10.200.5.10.
use econet::lisp::xtr::{MapServerPeer, Xtr, XtrConfig};
use econet::wire::lisp::AuthAlg;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

pub const IID: u32 = 1000;
pub const MS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const RLOC0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const RLOC1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);
pub const ECO1: Ipv4Addr = Ipv4Addr::new(10, 200, 5, 10);
pub const KEY: &str = "ms-secret";

pub fn xtr(encrypt: bool, now: Instant) -> Xtr {
    let mut c = XtrConfig::new(IID);
    c.map_servers = vec![MapServerPeer {
        addr: MS,
        key: KEY.as_bytes().to_vec(),
        auth: AuthAlg::HmacSha256,
    }];
    c.map_resolvers = vec![MS];
    c.encrypt = encrypt;
    let mut x = Xtr::new(c, now);
    x.set_local_rloc(now, Some(RLOC1));
    x.set_local_eids(now, &[ECO1]);
    while x.poll(now).is_some() {}
    x
}

pub fn from(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}
