//! The persisted allocation table: a small versioned text file the shell writes
//! atomically when [`Server::take_dirty`](super::Server::take_dirty) says so, and
//! appends journal lines to ([`Server::take_journal`](super::Server::take_journal)),
//! exactly as for DHCPv4 ([`crate::dhcp::store`]).
//!
//! ```text
//! econet-dhcp6-leases 1
//! <ip6> <last-used> <mac> eco <app-id> <ifname> <hostname>
//! <ip6> <last-used> <mac> eco:<slot> <app-id> <ifname> <hostname>
//! ```
//!
//! One allocation a line, fields separated by single spaces. `last-used` is unix
//! seconds; `mac` is the MAC of the last lease; `eco` is the ECO's first IA_NA and
//! `eco:<slot>` (1 to 255) a further one. Text fields are percent-encoded by
//! [`crate::persist::field`], an empty field is `-`. Reading skips any line that
//! does not parse, and an unknown header reads as empty, so a damaged file costs
//! allocations (and the stable address derivation gives most of them back anyway),
//! never a crash.

use super::EndpointKey;
use crate::addr::MacAddr;
use crate::persist::field;
use std::net::Ipv6Addr;

pub const HEADER: &str = "econet-dhcp6-leases 1";

/// One persisted allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ip: Ipv6Addr,
    pub last_used: u64,
    pub mac: MacAddr,
    pub endpoint: EndpointKey,
    pub slot: u8,
    pub hostname: String,
}

/// Appends one record's line (with its newline).
pub fn encode_record(r: &Record, out: &mut String) {
    encode_line(
        r.ip,
        r.last_used,
        r.mac,
        &r.endpoint,
        r.slot,
        &r.hostname,
        out,
    );
}

/// Appends the line of a record given by its parts.
pub fn encode_line(
    ip: Ipv6Addr,
    last_used: u64,
    mac: MacAddr,
    endpoint: &EndpointKey,
    slot: u8,
    hostname: &str,
    out: &mut String,
) {
    use std::fmt::Write;
    let _ = write!(out, "{ip} {last_used} {mac} ");
    if slot == 0 {
        out.push_str("eco ");
    } else {
        let _ = write!(out, "eco:{slot} ");
    }
    field::encode(endpoint.app_id.as_bytes(), out);
    out.push(' ');
    field::encode(endpoint.ifname.as_bytes(), out);
    out.push(' ');
    field::encode(hostname.as_bytes(), out);
    out.push('\n');
}

/// The whole file for these records.
pub fn encode<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut s = String::with_capacity(4096);
    s.push_str(HEADER);
    s.push('\n');
    for r in records {
        encode_record(r, &mut s);
    }
    s.into_bytes()
}

/// Parses one line; `None` if it is not a valid record.
pub fn decode_record(line: &str) -> Option<Record> {
    let mut f = line.split(' ');
    let ip: Ipv6Addr = f.next()?.parse().ok()?;
    let last_used: u64 = f.next()?.parse().ok()?;
    let mac: MacAddr = f.next()?.parse().ok()?;
    let slot = match f.next()? {
        "eco" => 0,
        k => {
            let n = k.strip_prefix("eco:")?;
            // Canonical digits only, so a line reads back as written.
            if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n.parse::<u8>().ok()?
        }
    };
    let app_id = field::decode_string(f.next()?)?;
    let ifname = field::decode_string(f.next()?)?;
    let hostname = field::decode_string(f.next()?)?;
    if f.next().is_some() || app_id.is_empty() {
        return None;
    }
    Some(Record {
        ip,
        last_used,
        mac,
        endpoint: EndpointKey { app_id, ifname },
        slot,
        hostname,
    })
}

/// Every valid record of a file, and how many lines were skipped. A file without the
/// expected header yields nothing.
pub fn decode(bytes: &[u8]) -> (Vec<Record>, usize) {
    crate::persist::decode_lines(bytes, HEADER, decode_record)
}

/// The records with, for each identity (endpoint and slot) and each address, only
/// the last line that names it; and how many lines that dropped.
pub fn last_wins(records: Vec<Record>) -> (Vec<Record>, usize) {
    crate::persist::last_wins(records, |r| (r.endpoint.clone(), r.slot), |r| r.ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(slot: u8, host: &str) -> Record {
        Record {
            ip: "fd00:1::1a2b".parse().unwrap(),
            last_used: 1_767_222_000,
            mac: MacAddr([2, 0x5e, 0, 0x1a, 0x2b, 0x3c]),
            endpoint: EndpointKey {
                app_id: "22222222-0000-4000-8000-000000000001".into(),
                ifname: "eth0".into(),
            },
            slot,
            hostname: host.into(),
        }
    }

    #[test]
    fn format_is_stable() {
        let rs = [rec(0, "web"), rec(2, ""), rec(255, "a b%c")];
        let text = String::from_utf8(encode(&rs)).unwrap();
        assert_eq!(
            text,
            "econet-dhcp6-leases 1\n\
             fd00:1::1a2b 1767222000 02:5e:00:1a:2b:3c eco 22222222-0000-4000-8000-000000000001 eth0 web\n\
             fd00:1::1a2b 1767222000 02:5e:00:1a:2b:3c eco:2 22222222-0000-4000-8000-000000000001 eth0 -\n\
             fd00:1::1a2b 1767222000 02:5e:00:1a:2b:3c eco:255 22222222-0000-4000-8000-000000000001 eth0 a%20b%25c\n"
        );
        let (back, skipped) = decode(text.as_bytes());
        assert_eq!(skipped, 0);
        assert_eq!(back, rs);
    }

    #[test]
    fn odd_strings_roundtrip() {
        for s in ["-", "--", "%", " ", "é", "a\nb", "x\0y", "%2D"] {
            let r = Record {
                endpoint: EndpointKey {
                    app_id: s.into(),
                    ifname: s.into(),
                },
                ..rec(0, s)
            };
            let mut line = String::new();
            encode_record(&r, &mut line);
            assert_eq!(line.matches('\n').count(), 1);
            assert_eq!(decode_record(line.trim_end_matches('\n')), Some(r), "{s:?}");
        }
    }

    #[test]
    fn garbage_is_skipped() {
        let good = String::from_utf8(encode(&[rec(0, "web")])).unwrap();
        let body = good.lines().nth(1).unwrap();
        let mut text = String::from(HEADER);
        text.push('\n');
        for bad in [
            "",
            "# comment",
            "garbage",
            "fd00:1::g 1 02:00:00:00:00:01 eco a b c",
            "10.1.0.3 1 02:00:00:00:00:01 eco a b c",
            "fd00:1::3 -1 02:00:00:00:00:01 eco a b c",
            "fd00:1::3 1 02:00:00:00:00:01 guest a b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco:0 a b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco:01 a b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco:256 a b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco:+1 a b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco a b c d",
            "fd00:1::3 1 02:00:00:00:00:01 eco a b",
            "fd00:1::3 1 02:00:00:00:00:01 eco - b c",
            "fd00:1::3 1 02:00:00:00:00:01 eco a%4 b c",
            "fd00:1::3 1  02:00:00:00:00:01 eco a b c",
        ] {
            text.push_str(bad);
            text.push('\n');
        }
        text.push_str(body);
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let (rs, skipped) = decode(&bytes);
        assert_eq!(rs, [rec(0, "web")]);
        assert_eq!(skipped, 15);
        assert_eq!(decode(b"econet-dhcp6-leases 2\n").0, []);
        assert_eq!(decode(b"econet-dhcp-leases 1\n").0, []);
        assert_eq!(decode(body.as_bytes()).0, []);
        assert_eq!(decode(b""), (vec![], 0));
    }

    #[test]
    fn last_line_of_an_identity_or_address_wins() {
        let mut a = rec(0, "old");
        let mut b = rec(0, "new");
        b.ip = "fd00:1::2".parse().unwrap();
        a.last_used = 1;
        let c = rec(1, "other");
        let (keep, dropped) = last_wins(vec![a, c.clone(), b.clone()]);
        // `c` shares `a`'s address but comes later; `b` is `a`'s identity, later.
        assert_eq!(keep, [c, b]);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn truncated_files_never_panic() {
        let rs = [rec(0, "web"), rec(3, "x")];
        let bytes = encode(&rs);
        for n in 0..=bytes.len() {
            let (got, _) = decode(&bytes[..n]);
            assert!(got.len() <= 2);
        }
        let mut b = bytes.clone();
        for i in 0..b.len() {
            let keep = b[i];
            for v in [b' ', b'%', b'\n', 0, 0xff, b'-', b':'] {
                b[i] = v;
                let _ = decode(&b);
            }
            b[i] = keep;
        }
    }
}
