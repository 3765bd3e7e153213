//! What the kernel holds now, read back each time rather than remembered, so a
//! restart (even after `kill -9`) sees exactly what exists.

use crate::firewall::{SET_ALLOWED4, SET_ALLOWED6, SET_ALLOWED6_IP, SET_ALLOWED_MAC, TABLE};
use crate::netlink::addr::Addr;
use crate::netlink::link::Link;
use crate::netlink::netns::Netns;
use crate::netlink::nft::{Nft, NFPROTO_BRIDGE, NFPROTO_INET};
use crate::netlink::{self, Rtnl};
use std::collections::HashMap;

/// Why an ECO namespace could not be read (the map key says which one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsError {
    /// The namespace file cannot be opened: usually the container is not started yet.
    Open(String),
    /// The path names econet's own namespace, which no ECO may have.
    OwnNamespace,
    /// No netlink socket could be opened inside it.
    Socket(String),
    /// Its links could not be dumped.
    Read(String),
}

impl std::fmt::Display for NsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NsError::Open(e) => f.write_str(e),
            NsError::OwnNamespace => f.write_str("it is econet's own namespace"),
            NsError::Socket(e) => write!(f, "cannot open a socket in it: {e}"),
            NsError::Read(e) => f.write_str(e),
        }
    }
}

/// The links inside one ECO namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NsView {
    pub id: (u64, u64),
    pub links: Vec<Link>,
}

/// econet's nftables tables as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FwState {
    /// Fingerprints in the userdata of the inet and bridge tables (`None`: no table).
    pub inet: Option<Vec<u8>>,
    pub bridge: Option<Vec<u8>>,
    pub allowed4: Vec<Vec<u8>>,
    pub allowed_mac: Vec<Vec<u8>>,
    pub allowed6: Vec<Vec<u8>>,
    pub allowed6_ip: Vec<Vec<u8>>,
    /// The ACL objects (units, map elements, sets) in the tables.
    pub acl: crate::acl::AclState,
    /// Why the tables could not be read (no nf_tables in this kernel, …).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// Every link in econet's own namespace.
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    /// Each ECO namespace the desired state names: its links, or why it can't be read.
    pub netns: HashMap<String, Result<NsView, NsError>>,
    /// Current values of the sysctls econet sets (`None`: the file does not exist).
    pub sysctls: HashMap<String, Option<String>>,
    pub firewall: FwState,
    /// The routes econet added (its protocol number), in every table.
    pub routes: Vec<crate::netlink::route::Route>,
}

/// Reads the links of the namespace at `path`.
pub fn read_netns(path: &str) -> Result<NsView, NsError> {
    let ns = Netns::open(path).map_err(|e| NsError::Open(e.to_string()))?;
    if ns.is_current() {
        return Err(NsError::OwnNamespace);
    }
    let mut r = ns.rtnl().map_err(|e| NsError::Socket(e.to_string()))?;
    let links = r.links().map_err(|e| NsError::Read(e.to_string()))?;
    Ok(NsView { id: ns.id, links })
}

pub fn read_firewall(nft: &mut Nft) -> FwState {
    let mut fw = FwState::default();
    let r = (|| -> std::io::Result<()> {
        fw.inet = nft.table_userdata(NFPROTO_INET, TABLE)?;
        fw.bridge = nft.table_userdata(NFPROTO_BRIDGE, TABLE)?;
        if fw.bridge.is_some() {
            fw.allowed4 = nft
                .set_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED4)
                .unwrap_or_default();
            fw.allowed_mac = nft
                .set_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED_MAC)
                .unwrap_or_default();
            fw.allowed6 = nft
                .set_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6)
                .unwrap_or_default();
            fw.allowed6_ip = nft
                .set_elems(NFPROTO_BRIDGE, TABLE, SET_ALLOWED6_IP)
                .unwrap_or_default();
        }
        if fw.inet.is_some() && fw.bridge.is_some() {
            // Tables of an older layout have no ACL maps: they are rebuilt anyway.
            fw.acl = crate::acl::read(nft).unwrap_or_else(|e| {
                log::debug!("ACL objects not readable ({e}): taken as none");
                Default::default()
            });
        }
        Ok(())
    })();
    if let Err(e) = r {
        fw.error = Some(format!("nftables: {e}"));
    }
    fw
}

/// Reads links, addresses, the named ECO namespaces, sysctls and the firewall.
pub fn read<'a>(
    rtnl: &mut Rtnl,
    nft: Option<&mut Nft>,
    netns_paths: impl Iterator<Item = &'a str>,
    sysctl_paths: impl Iterator<Item = &'a str>,
) -> netlink::Result<Current> {
    let links = rtnl.links()?;
    let addrs = rtnl.addrs()?;
    let routes = rtnl
        .routes()?
        .into_iter()
        .filter(|r| r.protocol == crate::netlink::route::RTPROT_ECONET)
        .collect();
    let mut netns = HashMap::new();
    for path in netns_paths {
        if !netns.contains_key(path) {
            netns.insert(path.to_string(), read_netns(path));
        }
    }
    let sysctls = sysctl_paths
        .map(|p| {
            let v = std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string());
            (p.to_string(), v)
        })
        .collect();
    let firewall = match nft {
        Some(n) => read_firewall(n),
        None => FwState {
            error: Some("nftables: no netfilter netlink socket".into()),
            ..Default::default()
        },
    };
    Ok(Current {
        links,
        addrs,
        netns,
        sysctls,
        firewall,
        routes,
    })
}
