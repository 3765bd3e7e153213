//! The persisted allocation table: a small versioned text file the shell writes
//! atomically when [`Server::take_dirty`](super::Server::take_dirty) says so.
//!
//! ```text
//! econet-dhcp-leases 1
//! <ip> <last-used> <mac> eco <app-id> <ifname> <hostname>
//! <ip> <last-used> <mac> guest <app-id> <ifname> <client> <hostname>
//! ```
//!
//! One allocation a line, fields separated by single spaces. `last-used` is unix
//! seconds; `mac` is the MAC of the last lease; `client` is `id:<hex>` (option 61) or
//! `mac:<mac>` (chaddr). Text fields are percent-encoded (bytes outside
//! `[A-Za-z0-9._~:@+=-]` become `%XX`), an empty field is `-` (and a lone dash `%2D`).
//! Reading skips any line that does not parse, and an unknown header reads as empty,
//! so a damaged file costs allocations, never a crash.

use super::{ClientKey, EndpointKey};
use crate::addr::MacAddr;
use crate::persist::field;
use std::net::Ipv4Addr;

pub const HEADER: &str = "econet-dhcp-leases 1";

/// One persisted allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ip: Ipv4Addr,
    pub last_used: u64,
    pub mac: MacAddr,
    pub endpoint: EndpointKey,
    /// `None`: the ECO itself.
    pub client: Option<ClientKey>,
    pub hostname: String,
}

/// Appends one record's line (with its newline).
pub fn encode_record(r: &Record, out: &mut String) {
    encode_line(
        r.ip,
        r.last_used,
        r.mac,
        &r.endpoint,
        r.client.as_ref(),
        &r.hostname,
        out,
    );
}

/// Appends the line of a record given by its parts (no `Record` needed).
pub fn encode_line(
    ip: Ipv4Addr,
    last_used: u64,
    mac: MacAddr,
    endpoint: &EndpointKey,
    client: Option<&ClientKey>,
    hostname: &str,
    out: &mut String,
) {
    use std::fmt::Write;
    let _ = write!(out, "{ip} {last_used} {mac} ");
    out.push_str(if client.is_some() { "guest " } else { "eco " });
    field::encode(endpoint.app_id.as_bytes(), out);
    out.push(' ');
    field::encode(endpoint.ifname.as_bytes(), out);
    out.push(' ');
    match client {
        Some(ClientKey::Id(id)) => {
            out.push_str("id:");
            field::hex(id, out);
            out.push(' ');
        }
        Some(ClientKey::Mac(m)) => {
            let _ = write!(out, "mac:{m} ");
        }
        None => {}
    }
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
    let ip: Ipv4Addr = f.next()?.parse().ok()?;
    let last_used: u64 = f.next()?.parse().ok()?;
    let mac: MacAddr = f.next()?.parse().ok()?;
    let kind = f.next()?;
    let app_id = field::decode_string(f.next()?)?;
    let ifname = field::decode_string(f.next()?)?;
    let client = match kind {
        "eco" => None,
        "guest" => {
            let c = f.next()?;
            Some(if let Some(h) = c.strip_prefix("id:") {
                ClientKey::Id(
                    field::unhex(h, 255)
                        .filter(|v| !v.is_empty())?
                        .into_boxed_slice(),
                )
            } else {
                ClientKey::Mac(c.strip_prefix("mac:")?.parse().ok()?)
            })
        }
        _ => return None,
    };
    let hostname = field::decode_string(f.next()?)?;
    if f.next().is_some() || app_id.is_empty() {
        return None;
    }
    Some(Record {
        ip,
        last_used,
        mac,
        endpoint: EndpointKey { app_id, ifname },
        client,
        hostname,
    })
}

/// Every valid record of a file, and how many lines were skipped. A file without the
/// expected header yields nothing.
pub fn decode(bytes: &[u8]) -> (Vec<Record>, usize) {
    crate::persist::decode_lines(bytes, HEADER, decode_record)
}

/// The records with, for each identity (endpoint and client) and each address,
/// only the last line that names it; and how many lines that dropped.
pub fn last_wins(records: Vec<Record>) -> (Vec<Record>, usize) {
    crate::persist::last_wins(
        records,
        |r| (r.endpoint.clone(), r.client.clone()),
        |r| r.ip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: Option<ClientKey>, host: &str) -> Record {
        Record {
            ip: Ipv4Addr::new(10, 1, 0, 23),
            last_used: 1_767_222_000,
            mac: MacAddr([2, 0x5e, 0, 0x1a, 0x2b, 0x3c]),
            endpoint: EndpointKey {
                app_id: "22222222-0000-4000-8000-000000000001".into(),
                ifname: "eth0".into(),
            },
            client,
            hostname: host.into(),
        }
    }

    #[test]
    fn format_is_stable() {
        let rs = [
            rec(None, "web"),
            rec(Some(ClientKey::Id(vec![1, 2, 0xab].into())), ""),
            rec(Some(ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 9]))), "a b%c"),
        ];
        let text = String::from_utf8(encode(&rs)).unwrap();
        assert_eq!(
            text,
            "econet-dhcp-leases 1\n\
             10.1.0.23 1767222000 02:5e:00:1a:2b:3c eco 22222222-0000-4000-8000-000000000001 eth0 web\n\
             10.1.0.23 1767222000 02:5e:00:1a:2b:3c guest 22222222-0000-4000-8000-000000000001 eth0 id:0102ab -\n\
             10.1.0.23 1767222000 02:5e:00:1a:2b:3c guest 22222222-0000-4000-8000-000000000001 eth0 mac:02:00:00:00:00:09 a%20b%25c\n"
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
                ..rec(None, s)
            };
            let mut line = String::new();
            encode_record(&r, &mut line);
            assert_eq!(line.matches('\n').count(), 1);
            assert_eq!(decode_record(line.trim_end_matches('\n')), Some(r), "{s:?}");
        }
    }

    #[test]
    fn garbage_is_skipped() {
        let good = String::from_utf8(encode(&[rec(None, "web")])).unwrap();
        let body = good.lines().nth(1).unwrap();
        let mut text = String::from(HEADER);
        text.push('\n');
        for bad in [
            "",
            "# comment",
            "garbage",
            "10.1.0.300 1 02:00:00:00:00:01 eco a b c",
            "10.1.0.3 -1 02:00:00:00:00:01 eco a b c",
            "10.1.0.3 1 02:00:00:00:00:01 vm a b c",
            "10.1.0.3 1 02:00:00:00:00:01 eco a b c d",
            "10.1.0.3 1 02:00:00:00:00:01 eco a b",
            "10.1.0.3 1 02:00:00:00:00:01 eco - b c",
            "10.1.0.3 1 02:00:00:00:00:01 guest a b id:0 c",
            "10.1.0.3 1 02:00:00:00:00:01 guest a b id:zz c",
            "10.1.0.3 1 02:00:00:00:00:01 guest a b mac:1 c",
            "10.1.0.3 1 02:00:00:00:00:01 guest a b c",
            "10.1.0.3 1 02:00:00:00:00:01 eco a%4 b c",
            "10.1.0.3 1 02:00:00:00:00:01 eco a%FF b c",
            "10.1.0.3 1 02:00:00:00:00:01 eco a\tb c",
            "10.1.0.3 1  02:00:00:00:00:01 eco a b c",
        ] {
            text.push_str(bad);
            text.push('\n');
        }
        text.push_str(body);
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let (rs, skipped) = decode(&bytes);
        assert_eq!(rs, [rec(None, "web")]);
        assert_eq!(skipped, 16);
        // Wrong or missing header: nothing.
        assert_eq!(decode(b"econet-dhcp-leases 2\n").0, []);
        assert_eq!(decode(body.as_bytes()).0, []);
        assert_eq!(decode(b""), (vec![], 0));
    }

    #[test]
    fn truncated_files_never_panic() {
        let rs = [
            rec(None, "web"),
            rec(Some(ClientKey::Id(vec![1, 2, 0xab].into())), "x"),
        ];
        let bytes = encode(&rs);
        for n in 0..=bytes.len() {
            let (got, _) = decode(&bytes[..n]);
            assert!(got.len() <= 2);
        }
        let mut b = bytes.clone();
        for i in 0..b.len() {
            let keep = b[i];
            for v in [b' ', b'%', b'\n', 0, 0xff, b'-'] {
                b[i] = v;
                let _ = decode(&b);
            }
            b[i] = keep;
        }
    }
}
