//! The map server's registrations on disk: a small versioned text file in its state
//! directory, written whole and atomically ([`crate::persist::write_atomic`]) at most
//! every few seconds while something changed, and on SIGTERM.
//!
//! ```text
//! econet-map-server-registrations 1
//! <site> <expires> <registered> <from> <proxy> <record>
//! ```
//!
//! One registration a line, fields separated by single spaces: `site` the site's name
//! (percent-encoded: bytes outside `[A-Za-z0-9._~:@+=-]` become `%XX`), `expires` and
//! `registered` wall-clock times in milliseconds since the epoch (an `Instant` means
//! nothing to the next process), `from` the address:port the Map-Register came from,
//! `proxy` 1 if the ETR asked for proxy replies, and `record` the EID-record (EID,
//! RLOCs, TTL, flags) in its RFC 9301 §5.4 wire layout, in hex: the record the map
//! server accepted, as it answers from it.
//!
//! **Why persist rather than rebuild.** A restarted map server that starts empty
//! answers every Map-Request with a negative Map-Reply until each xTR registers
//! again, up to a whole registration interval (60 s by default) later; ITRs cache
//! those negative answers (a minute inside a site), so a flow that starts then is
//! black-holed for longer still. Nothing else can rebuild the table sooner: map
//! servers share no state (RFC 9301's replica model), and asking every xTR is what
//! registration already is. Loading the last snapshot lets it answer at once; an entry
//! is only as old as the snapshot interval, and entries that expired while it was down
//! are dropped.
//!
//! Reading trusts nothing: a line that does not parse is skipped (and counted, so the
//! caller sets the file aside), as is an unknown header (a foreign file), so a damaged
//! file costs registrations, never a crash.

use crate::persist::field;
use crate::wire::lisp::Record;
use std::net::SocketAddrV4;

pub const HEADER: &str = "econet-map-server-registrations 1";

/// The file's name in the state directory.
pub const FILE: &str = "registrations";

/// One stored registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub site: String,
    /// Milliseconds since the epoch.
    pub expires: u64,
    pub registered: u64,
    pub from: SocketAddrV4,
    pub proxy_reply: bool,
    pub record: Record,
}

/// What a file held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub entries: Vec<Stored>,
    /// Lines that did not parse.
    pub bad: usize,
    /// The header is not ours: nothing was read.
    pub foreign: bool,
}

/// Appends `e`'s line to `out`; false (nothing appended) if its record cannot be
/// written (a locator address econet only passes through).
pub fn encode(e: &Stored, out: &mut String) -> bool {
    let Ok(rec) = e.record.to_bytes() else {
        return false;
    };
    field::encode(e.site.as_bytes(), out);
    out.push_str(&format!(
        " {} {} {} {} ",
        e.expires,
        e.registered,
        e.from,
        u8::from(e.proxy_reply)
    ));
    field::hex(&rec, out);
    out.push('\n');
    true
}

fn decode_line(line: &str) -> Option<Stored> {
    let mut f = line.split(' ');
    let site = field::decode_string(f.next()?)?;
    let expires = f.next()?.parse().ok()?;
    let registered = f.next()?.parse().ok()?;
    let from = f.next()?.parse().ok()?;
    let proxy_reply = match f.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let record = Record::from_bytes(&field::unhex(f.next()?, usize::MAX)?).ok()?;
    if f.next().is_some() {
        return None;
    }
    Some(Stored {
        site,
        expires,
        registered,
        from,
        proxy_reply,
        record,
    })
}

/// Reads a file's bytes. An empty file reads as empty (not foreign): a write that
/// never got its first line in.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    if bytes.is_empty() {
        return d;
    }
    // Lines are ASCII; anything else is a bad line, not a reason to drop the rest.
    let mut lines = bytes.split(|&b| b == b'\n');
    if lines.next() != Some(HEADER.as_bytes()) {
        d.foreign = true;
        return d;
    }
    for line in lines {
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line).ok().and_then(decode_line) {
            Some(e) => d.entries.push(e),
            None => d.bad += 1,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::lisp::control::action;
    use crate::wire::lisp::{Address, Eid, Locator};
    use std::net::Ipv4Addr;

    fn stored(site: &str, eid: &str) -> Stored {
        Stored {
            site: site.into(),
            expires: 1_700_000_012_345,
            registered: 1_700_000_000_345,
            from: "203.0.113.1:4342".parse().unwrap(),
            proxy_reply: true,
            record: Record {
                ttl: 1440,
                eid: Eid::new(1000, eid.parse().unwrap()),
                action: action::NO_ACTION,
                authoritative: true,
                map_version: 7,
                locators: vec![Locator {
                    priority: 1,
                    weight: 100,
                    m_priority: 255,
                    m_weight: 0,
                    local: true,
                    probed: false,
                    reachable: true,
                    address: Address::Ipv4(Ipv4Addr::new(203, 0, 113, 1)),
                }],
            },
        }
    }

    #[test]
    fn round_trip() {
        let a = stored("fleet", "10.200.1.10/32");
        let mut b = stored("odd name %-", "10.200.0.0/24");
        b.proxy_reply = false;
        let dash = stored("-", "10.200.2.10/32");
        let mut text = format!("{HEADER}\n");
        for e in [&a, &b, &dash] {
            assert!(encode(e, &mut text));
        }
        let d = decode(text.as_bytes());
        assert_eq!(d.entries, vec![a, b, dash]);
        assert_eq!((d.bad, d.foreign), (0, false));
    }

    #[test]
    fn foreign_and_damaged_files() {
        assert!(decode(b"econet-dhcp-leases 1\nx\n").foreign);
        assert!(decode(b"\x00\xff").foreign);
        assert_eq!(decode(b""), Decoded::default());
        let mut text = format!("{HEADER}\n");
        assert!(encode(&stored("fleet", "10.200.1.10/32"), &mut text));
        let good = text.clone();
        // A torn last line, a bad hex record, a record with bytes after it, a bad site.
        text += "fleet 1 2 203.0.113.1:4342 0 0000\n";
        text += "fleet 1 2 203.0.113.1:4342 0 zz\n";
        let line = good.lines().nth(1).unwrap();
        text += &format!("{line}00\n");
        text += &format!("%G1{}\n", line.trim_start_matches("fleet"));
        text += &line[..line.len() / 2];
        let d = decode(text.as_bytes());
        assert_eq!(d.entries.len(), 1);
        assert_eq!(d.bad, 5);
        assert!(!d.foreign);
    }

    #[test]
    fn any_bytes_decode_without_panic() {
        // Every prefix of a good file, and a good file with each byte changed.
        let mut text = format!("{HEADER}\n");
        assert!(encode(&stored("fleet", "10.200.1.10/32"), &mut text));
        let b = text.as_bytes();
        for n in 0..=b.len() {
            let _ = decode(&b[..n]);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..b.len() {
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut m = b.to_vec();
                m[i] = seed as u8;
                let d = decode(&m);
                // A byte turned newline splits the line in two.
                assert!(d.entries.len() + d.bad <= 2);
            }
        }
    }
}
