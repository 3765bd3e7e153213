//! The `econet map-server` config:
//!
//! ```json
//! {"listen": "198.51.100.1",
//!  "sites": [{"name": "fleet", "key": "ms-secret", "instance_id": 1000,
//!             "eid_prefixes": ["10.200.0.0/16"]}]}
//! ```
//!
//! Optional: `registration_timeout_secs` (how long a registration lives without a
//! refresh; default: three times the interval the xTR is seen registering at, within
//! the record TTL). A site is a key and the EID prefixes its holder may register: a
//! site per device, each with its own key and its own prefixes, keeps one device from
//! claiming another's EIDs. Read with serde-json-core one value at a time, so every
//! error names its JSON path.

use crate::addr::Ipv4Net;
use crate::config::json::{self, Kind, Path};
use crate::config::{ConfigError, Secret};
use serde::de::DeserializeOwned;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

/// Largest config accepted.
pub const MAX_DOC: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub key: Secret,
    pub instance_id: u32,
    pub eid_prefixes: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapServerConfig {
    pub listen: Ipv4Addr,
    pub sites: Vec<Site>,
    pub registration_timeout: Option<Duration>,
}

fn read<T: DeserializeOwned>(doc: &[u8], span: &Range<usize>) -> Option<T> {
    let text = doc.get(span.clone())?;
    let mut scratch = vec![0u8; text.len().max(16)];
    serde_json_core::from_slice_escaped::<T>(text, &mut scratch)
        .ok()
        .map(|(v, _)| v)
}

fn string(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<String> {
    if json::kind(doc, span) != Kind::String {
        errs.push(ConfigError::new(path.clone(), "must be a string"));
        return None;
    }
    match read::<heapless::String<1024>>(doc, span) {
        Some(s) => Some(s.as_str().to_string()),
        None => {
            errs.push(ConfigError::new(
                path.clone(),
                "too long (at most 1024 bytes)",
            ));
            None
        }
    }
}

fn number(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<u32> {
    let v = (json::kind(doc, span) == Kind::Number)
        .then(|| read::<u32>(doc, span))
        .flatten();
    if v.is_none() {
        errs.push(ConfigError::new(
            path.clone(),
            "must be a whole number from 0 to 4294967295",
        ));
    }
    v
}

fn trim(doc: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && doc[r.start].is_ascii_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && doc[r.end - 1].is_ascii_whitespace() {
        r.end -= 1;
    }
    r
}

/// Parses and checks a config document; every error names its JSON path.
pub fn parse(doc: &[u8]) -> Result<MapServerConfig, Vec<ConfigError>> {
    if doc.len() > MAX_DOC {
        return Err(vec![ConfigError::new(
            Path::root(),
            format!("the config is over {MAX_DOC} bytes"),
        )]);
    }
    json::check_syntax(doc).map_err(|e| {
        vec![ConfigError::new(
            e.path.clone(),
            format!(
                "invalid JSON at line {}, column {}: {}",
                e.line, e.col, e.msg
            ),
        )]
    })?;
    let doc: &[u8] = &json::join_surrogate_escapes(doc);
    let root = trim(doc, 0..doc.len());
    if json::kind(doc, &root) != Kind::Object {
        return Err(vec![ConfigError::new(
            Path::root(),
            "must be a JSON object",
        )]);
    }
    let mut errs = Vec::new();
    let (mut listen, mut sites, mut timeout) = (None, None, None);
    for (key, span) in json::members(doc, &root) {
        let path = Path::root().key(&key);
        match key.as_str() {
            "listen" => {
                listen = string(doc, &span, &path, &mut errs).and_then(|s| match s.parse() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        errs.push(ConfigError::new(
                            path.clone(),
                            format!("{s:?} is not an IPv4 address"),
                        ));
                        None
                    }
                })
            }
            "registration_timeout_secs" => {
                timeout = number(doc, &span, &path, &mut errs).and_then(|n| {
                    if n == 0 {
                        errs.push(ConfigError::new(path.clone(), "must be at least 1"));
                        None
                    } else {
                        Some(Duration::from_secs(u64::from(n)))
                    }
                })
            }
            "sites" => sites = Some(parse_sites(doc, &span, &path, &mut errs)),
            _ => {} // Unknown fields are skipped, as in the device config.
        }
    }
    if listen.is_none() && !errs.iter().any(|e| e.path.starts_with("listen")) {
        errs.push(ConfigError::new(Path::root().key("listen"), "is required"));
    }
    let sites = sites.unwrap_or_default();
    if sites.is_empty() && !errs.iter().any(|e| e.path.starts_with("sites")) {
        errs.push(ConfigError::new(
            Path::root().key("sites"),
            "at least one site is required",
        ));
    }
    match (listen, errs.is_empty()) {
        (Some(listen), true) => Ok(MapServerConfig {
            listen,
            sites,
            registration_timeout: timeout,
        }),
        _ => Err(errs),
    }
}

fn parse_sites(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> Vec<Site> {
    if json::kind(doc, span) != Kind::Array {
        errs.push(ConfigError::new(path.clone(), "must be an array"));
        return Vec::new();
    }
    let mut out: Vec<Site> = Vec::new();
    for (i, el) in json::elements(doc, span).iter().enumerate() {
        let sp = path.index(i);
        if json::kind(doc, el) != Kind::Object {
            errs.push(ConfigError::new(sp.clone(), "must be an object"));
            continue;
        }
        let (mut name, mut key, mut iid, mut prefixes) = (None, None, None, None);
        for (k, v) in json::members(doc, el) {
            let fp = sp.key(&k);
            match k.as_str() {
                "name" => name = string(doc, &v, &fp, errs),
                "key" => {
                    key = string(doc, &v, &fp, errs).and_then(|s| {
                        if s.is_empty() {
                            errs.push(ConfigError::new(fp.clone(), "must not be empty"));
                            None
                        } else {
                            Some(Secret(s))
                        }
                    })
                }
                "instance_id" => {
                    iid = number(doc, &v, &fp, errs).and_then(|n| {
                        if n > 0xff_ffff {
                            errs.push(ConfigError::new(
                                fp.clone(),
                                format!("{n} does not fit in 24 bits"),
                            ));
                            None
                        } else {
                            Some(n)
                        }
                    })
                }
                "eid_prefixes" => {
                    if json::kind(doc, &v) != Kind::Array {
                        errs.push(ConfigError::new(fp.clone(), "must be an array"));
                        continue;
                    }
                    let mut ps = Vec::new();
                    for (j, e) in json::elements(doc, &v).iter().enumerate() {
                        let ep = fp.index(j);
                        if let Some(s) = string(doc, e, &ep, errs) {
                            match s.parse::<Ipv4Net>() {
                                Ok(n) => ps.push(n),
                                Err(e) => {
                                    errs.push(ConfigError::new(ep.clone(), format!("{s:?}: {e}")))
                                }
                            }
                        }
                    }
                    if ps.is_empty() && !errs.iter().any(|e| e.path.starts_with(&fp.to_string())) {
                        errs.push(ConfigError::new(fp.clone(), "must not be empty"));
                    }
                    prefixes = Some(ps);
                }
                _ => {}
            }
        }
        for (field, missing) in [
            ("name", name.is_none()),
            ("key", key.is_none()),
            ("instance_id", iid.is_none()),
            ("eid_prefixes", prefixes.is_none()),
        ] {
            let fp = sp.key(field);
            if missing && !errs.iter().any(|e| e.path.starts_with(&fp.to_string())) {
                errs.push(ConfigError::new(fp, "is required"));
            }
        }
        if let (Some(name), Some(key), Some(instance_id), Some(eid_prefixes)) =
            (name, key, iid, prefixes)
        {
            if out.iter().any(|s| s.name == name) {
                errs.push(ConfigError::new(
                    sp.key("name"),
                    format!("duplicate site name {name:?}"),
                ));
                continue;
            }
            out.push(Site {
                name,
                key,
                instance_id,
                eid_prefixes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"listen": "198.51.100.1", "sites": [{"name": "fleet", "key": "ms-secret", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}"#;

    #[test]
    fn spec_example_parses() {
        let c = parse(SPEC.as_bytes()).unwrap();
        assert_eq!(c.listen, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(c.sites[0].name, "fleet");
        assert_eq!(c.sites[0].key.expose(), "ms-secret");
        assert_eq!(c.sites[0].instance_id, 1000);
        assert_eq!(c.sites[0].eid_prefixes[0].to_string(), "10.200.0.0/16");
        assert_eq!(c.registration_timeout, None);
        assert!(
            !format!("{c:?}").contains("ms-secret"),
            "the key never prints"
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (from, to, want) in [
            (
                "\"198.51.100.1\"",
                "\"nope\"",
                "listen: \"nope\" is not an IPv4 address",
            ),
            (
                "1000",
                "16777216",
                "sites[0].instance_id: 16777216 does not fit in 24 bits",
            ),
            (
                "1000",
                "\"1000\"",
                "sites[0].instance_id: must be a whole number",
            ),
            (
                "\"10.200.0.0/16\"",
                "\"10.200.0.1/16\"",
                "sites[0].eid_prefixes[0]: \"10.200.0.1/16\": has host bits set",
            ),
            ("\"ms-secret\"", "\"\"", "sites[0].key: must not be empty"),
            ("\"key\": \"ms-secret\", ", "", "sites[0].key: is required"),
            (
                "[\"10.200.0.0/16\"]",
                "[]",
                "sites[0].eid_prefixes: must not be empty",
            ),
            ("\"listen\": \"198.51.100.1\", ", "", "listen: is required"),
        ] {
            let doc = SPEC.replace(from, to);
            let e = parse(doc.as_bytes()).unwrap_err();
            assert!(
                e.iter().any(|m| m.to_string().starts_with(want)),
                "{doc}: {e:?}"
            );
        }
        assert!(parse(b"{\"listen\": ").unwrap_err()[0]
            .to_string()
            .contains("invalid JSON"));
        assert!(parse(b"[]").is_err());
        let two = SPEC.replace("}]}", "}, {\"name\": \"fleet\", \"key\": \"k\", \"instance_id\": 1, \"eid_prefixes\": [\"10.0.0.0/8\"]}]}");
        assert!(parse(two.as_bytes()).unwrap_err()[0]
            .to_string()
            .starts_with("sites[1].name: duplicate"));
        let t = SPEC.replace(
            "{\"listen\"",
            "{\"registration_timeout_secs\": 3, \"listen\"",
        );
        assert_eq!(
            parse(t.as_bytes()).unwrap().registration_timeout,
            Some(Duration::from_secs(3))
        );
    }
}
