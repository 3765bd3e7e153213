//! What the kernel holds now, read back each time rather than remembered, so a
//! restart (even after `kill -9`) sees exactly what exists.

use super::desired::{Desired, EndpointKind};
use crate::netlink::link::Link;
use crate::netlink::netns::Netns;
use crate::netlink::{self, Rtnl};
use std::collections::HashMap;

/// The links inside one ECO namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NsView {
    pub id: (u64, u64),
    pub links: Vec<Link>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// Every link in econet's own namespace.
    pub links: Vec<Link>,
    /// Each ECO namespace the desired state names: its links, or why it can't be read.
    pub netns: HashMap<String, Result<NsView, String>>,
}

/// Reads the links of the namespace at `path`.
pub fn read_netns(path: &str) -> Result<NsView, String> {
    let ns = Netns::open(path).map_err(|e| e.to_string())?;
    if ns.is_current() {
        return Err("it is econet's own namespace".into());
    }
    let mut r = ns
        .rtnl()
        .map_err(|e| format!("cannot open a socket in it: {e}"))?;
    let links = r.links().map_err(|e| e.to_string())?;
    Ok(NsView { id: ns.id, links })
}

pub fn read(rtnl: &mut Rtnl, d: &Desired) -> netlink::Result<Current> {
    let links = rtnl.links()?;
    let mut netns = HashMap::new();
    for e in &d.endpoints {
        if let EndpointKind::Veth { netns: path, .. } = &e.kind {
            if !netns.contains_key(path) {
                netns.insert(path.clone(), read_netns(path));
            }
        }
    }
    Ok(Current { links, netns })
}
