//! Traffic selectors (RFC 7296 §2.9): econet's are whole prefixes (any protocol, any
//! port); the peer's are address ranges. A responder narrows what the initiator
//! proposes to its own configuration; an initiator accepts any non-empty subset of what
//! it proposed. The data path routes by prefix, so ranges come back out as prefixes.

use crate::addr::Ipv4Net;
use crate::wire::ike::{Ts, TsV4};
use std::net::Ipv4Addr;

/// Any protocol, any port, over a prefix.
pub fn from_net(n: &Ipv4Net) -> TsV4 {
    TsV4 {
        proto: 0,
        start_port: 0,
        end_port: 0xffff,
        start: n.addr(),
        end: n.broadcast(),
    }
}

pub fn from_nets(nets: &[Ipv4Net]) -> Vec<Ts> {
    nets.iter().map(|n| Ts::V4(from_net(n))).collect()
}

/// Sorted, merged inclusive address ranges.
fn merged(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn range(t: &TsV4) -> (u64, u64) {
    (u64::from(u32::from(t.start)), u64::from(u32::from(t.end)))
}

fn net_range(n: &Ipv4Net) -> (u64, u64) {
    (
        u64::from(u32::from(n.addr())),
        u64::from(u32::from(n.broadcast())),
    )
}

/// The smallest list of prefixes covering exactly these selectors' addresses.
pub fn to_nets(ts: &[TsV4]) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    for (mut s, e) in merged(ts.iter().map(range).collect()) {
        while s <= e {
            // The largest aligned block at `s` that does not pass `e`.
            let mut size: u64 = if s == 0 {
                1 << 32
            } else {
                1 << s.trailing_zeros()
            };
            while size > e - s + 1 {
                size >>= 1;
            }
            let len = 32 - size.trailing_zeros() as u8;
            if let Some(n) = Ipv4Net::new(Ipv4Addr::from(s as u32), len) {
                out.push(n);
            }
            s += size;
        }
    }
    out
}

/// The responder's narrowing: each proposed IPv4 selector intersected with each
/// allowed prefix (protocol and ports kept). Empty when nothing overlaps.
pub fn narrow(proposed: &[Ts], allowed: &[Ipv4Net]) -> Vec<TsV4> {
    let mut out: Vec<TsV4> = Vec::new();
    for t in proposed {
        let Ts::V4(t) = t else { continue };
        if t.start > t.end || t.start_port > t.end_port {
            continue;
        }
        let (ts, te) = range(t);
        for n in allowed {
            let (ns, ne) = net_range(n);
            let (s, e) = (ts.max(ns), te.min(ne));
            if s <= e {
                let r = TsV4 {
                    start: Ipv4Addr::from(s as u32),
                    end: Ipv4Addr::from(e as u32),
                    ..*t
                };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// The initiator's check of the responder's choice: every selector IPv4 and inside
/// what was allowed. `None` if any is not, or none is given.
pub fn within(chosen: &[Ts], allowed: &[Ipv4Net]) -> Option<Vec<TsV4>> {
    let allowed = merged(allowed.iter().map(net_range).collect());
    let mut out = Vec::with_capacity(chosen.len());
    for t in chosen {
        let Ts::V4(t) = t else { return None };
        let (s, e) = range(t);
        if s > e || !allowed.iter().any(|&(as_, ae)| as_ <= s && e <= ae) {
            return None;
        }
        out.push(*t);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn v4(a: &str, b: &str) -> TsV4 {
        TsV4 {
            proto: 0,
            start_port: 0,
            end_port: 0xffff,
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    #[test]
    fn ranges_to_prefixes() {
        assert_eq!(
            to_nets(&[from_net(&net("10.3.0.0/24"))]),
            [net("10.3.0.0/24")]
        );
        assert_eq!(
            to_nets(&[v4("10.0.0.1", "10.0.0.6")]),
            [
                net("10.0.0.1/32"),
                net("10.0.0.2/31"),
                net("10.0.0.4/31"),
                net("10.0.0.6/32")
            ]
        );
        assert_eq!(
            to_nets(&[v4("0.0.0.0", "255.255.255.255")]),
            [net("0.0.0.0/0")]
        );
        // Adjacent prefixes merge.
        assert_eq!(
            to_nets(&[v4("10.0.1.0", "10.0.1.255"), v4("10.0.0.0", "10.0.0.255")]),
            [net("10.0.0.0/23")]
        );
    }

    #[test]
    fn narrowing() {
        let any = [Ts::V4(v4("0.0.0.0", "255.255.255.255"))];
        assert_eq!(
            narrow(&any, &[net("172.31.0.0/16")]),
            [from_net(&net("172.31.0.0/16"))]
        );
        let wide = [Ts::V4(from_net(&net("10.0.0.0/8")))];
        assert_eq!(
            narrow(&wide, &[net("10.3.0.0/24"), net("192.168.0.0/24")]),
            [from_net(&net("10.3.0.0/24"))]
        );
        assert!(narrow(&wide, &[net("192.168.0.0/24")]).is_empty());
        let other = [Ts::Other {
            ts_type: 8,
            proto: 0,
            data: vec![0; 36],
        }];
        assert!(narrow(&other, &[net("0.0.0.0/0")]).is_empty());
    }

    #[test]
    fn subset_check() {
        let allowed = [net("10.3.0.0/24"), net("10.3.1.0/24")];
        assert!(within(&[Ts::V4(from_net(&net("10.3.0.0/23")))], &allowed).is_some());
        assert!(within(&[Ts::V4(from_net(&net("10.3.0.128/25")))], &allowed).is_some());
        assert!(within(&[Ts::V4(from_net(&net("10.3.0.0/22")))], &allowed).is_none());
        assert!(within(&[], &allowed).is_none());
        assert!(within(&[Ts::V4(v4("10.3.0.9", "10.3.0.1"))], &allowed).is_none());
    }
}
