//! JSON text to raw config values, one array element at a time, with paths.
//!
//! serde-json-core reads each element into bounded types. When it refuses one, it
//! does not say where; we then probe the element by re-reading documents that keep
//! only one member (or one array entry) on the way down, until the smallest value
//! that still fails on its own is found, and name that path.

use super::json::{self, Kind, Path, Seg};
use super::raw::{self, AceIn, RawAce, RawApp, RawNetwork, RawPort, RawTop};
use super::ConfigError;
use serde::de::DeserializeOwned;
use std::ops::Range;

/// The raw document: top-level scalars and each array's elements, each already read
/// or carrying the error that names it.
#[derive(Default)]
pub struct RawDoc {
    pub top: RawTop,
    pub ports: Vec<RawPort>,
    pub networks: Vec<RawNetwork>,
    pub apps: Vec<RawApp>,
}

fn read<T: DeserializeOwned>(text: &[u8]) -> Result<T, serde_json_core::de::Error> {
    // Escaped strings are unescaped into this buffer; it never needs to be longer
    // than the text itself.
    let mut scratch = vec![0u8; text.len().max(16)];
    serde_json_core::from_slice_escaped::<T>(text, &mut scratch).map(|(v, _)| v)
}

/// Reads `doc` (already syntax-checked) into raw values; errors name their path.
pub fn decode(doc: &[u8]) -> Result<RawDoc, Vec<ConfigError>> {
    let root = 0..doc.len();
    let root = trim(doc, root);
    if json::kind(doc, &root) != Kind::Object {
        return Err(vec![ConfigError::new(
            Path::root(),
            "the config must be a JSON object",
        )]);
    }
    let mut out = RawDoc::default();
    let mut errors = Vec::new();
    let mut seen_keys = Vec::new();
    for (key, span) in json::members(doc, &root) {
        let path = Path::root().key(&key);
        if seen_keys.contains(&key) {
            errors.push(ConfigError::new(path, "appears twice"));
            continue;
        }
        seen_keys.push(key.clone());
        match key.as_str() {
            "device_id" => match read_value(doc, &span, &path) {
                Ok(v) => out.top.device_id = v,
                Err(e) => errors.push(e),
            },
            "config_version" => match read_value(doc, &span, &path) {
                Ok(v) => out.top.config_version = v,
                Err(e) => errors.push(e),
            },
            "ports" => read_array(
                doc,
                &span,
                &path,
                raw::MAX_PORTS,
                &mut out.ports,
                &mut errors,
            ),
            "networks" => {
                read_array(
                    doc,
                    &span,
                    &path,
                    raw::MAX_NETWORKS,
                    &mut out.networks,
                    &mut errors,
                );
                // static_dns lists are read on their own (see RawNetwork).
                for (i, el) in json::elements(doc, &span).iter().enumerate() {
                    let Some(net) = out.networks.get_mut(i) else {
                        break;
                    };
                    for (k, v) in json::members(doc, el) {
                        if k == "static_dns" && json::kind(doc, &v) != Kind::Null {
                            let mut hosts = Vec::new();
                            let p = path.index(i).key("static_dns");
                            read_array(doc, &v, &p, raw::MAX_STATIC_DNS, &mut hosts, &mut errors);
                            net.static_dns = Some(hosts);
                        }
                    }
                }
            }
            "apps" => {
                read_array(doc, &span, &path, raw::MAX_APPS, &mut out.apps, &mut errors);
                // ACLs are read on their own (see RawAce).
                read_acls(doc, &span, &path, &mut out.apps, &mut errors);
            }
            // Fields econet does not know are ignored, as the API allows additions.
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
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

fn read_value<T: DeserializeOwned>(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
) -> Result<T, ConfigError> {
    read::<T>(&doc[span.clone()]).map_err(|_| {
        let kind = json::kind(doc, span);
        ConfigError::new(path.clone(), describe(path, kind))
    })
}

fn read_array<T: DeserializeOwned + Default>(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    max: usize,
    out: &mut Vec<T>,
    errors: &mut Vec<ConfigError>,
) {
    read_elements::<T>(doc, span, path, max, errors, |_, _, v, _| out.push(v));
}

/// Reads the array at `span` one element at a time, handing each to `each` with its
/// index and span (a default value for one that failed, whose error is recorded).
fn read_elements<T: DeserializeOwned + Default>(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    max: usize,
    errors: &mut Vec<ConfigError>,
    mut each: impl FnMut(usize, &Range<usize>, T, &mut Vec<ConfigError>),
) {
    match json::kind(doc, span) {
        Kind::Array => {}
        Kind::Null => return,
        k => {
            errors.push(ConfigError::new(
                path.clone(),
                format!("expected an array, found {}", k.name()),
            ));
            return;
        }
    }
    let els = json::elements(doc, span);
    if els.len() > max {
        errors.push(ConfigError::new(
            path.clone(),
            format!("too many entries: {} (at most {max})", els.len()),
        ));
        return;
    }
    for (i, el) in els.iter().enumerate() {
        let p = path.index(i);
        if json::kind(doc, el) != Kind::Object {
            errors.push(ConfigError::new(
                p,
                format!("expected an object, found {}", json::kind(doc, el).name()),
            ));
            each(i, el, T::default(), errors);
            continue;
        }
        match read::<T>(&doc[el.clone()]) {
            Ok(v) => each(i, el, v, errors),
            Err(_) => {
                errors.push(culprit::<T>(doc, el, p));
                each(i, el, T::default(), errors);
            }
        }
    }
}

/// Reads every endpoint's `acls` (`apps[].interfaces[].acls`) on its own, one ACE at
/// a time, into the apps already read. Stops reading at the device's limit.
fn read_acls(
    doc: &[u8],
    apps_span: &Range<usize>,
    path: &Path,
    apps: &mut [RawApp],
    errors: &mut Vec<ConfigError>,
) {
    let mut total = 0usize;
    let mut over = false;
    for (i, app_el) in json::elements(doc, apps_span).iter().enumerate() {
        // An app that failed to read has no interfaces: its error is already named.
        let Some(ifaces) = apps.get_mut(i).and_then(|a| a.interfaces.as_mut()) else {
            continue;
        };
        let Some((_, list)) = json::members(doc, app_el)
            .into_iter()
            .find(|(k, _)| k == "interfaces")
        else {
            continue;
        };
        for (n, if_el) in json::elements(doc, &list).iter().enumerate() {
            let Some(iface) = ifaces.get_mut(n) else {
                break;
            };
            let p = path.index(i).key("interfaces").index(n).key("acls");
            let mut seen = false;
            for (key, span) in json::members(doc, if_el) {
                if key != "acls" {
                    continue;
                }
                if seen {
                    errors.push(ConfigError::new(p.clone(), "appears twice"));
                    continue;
                }
                seen = true;
                if json::kind(doc, &span) == Kind::Null {
                    continue;
                }
                let count = json::elements(doc, &span).len();
                if count <= raw::MAX_ACES {
                    total += count;
                }
                if total > raw::MAX_ACES_TOTAL {
                    if !over {
                        errors.push(ConfigError::new(
                            p.clone(),
                            format!(
                                "too many ACEs on the device: more than {} in all",
                                raw::MAX_ACES_TOTAL
                            ),
                        ));
                        over = true;
                    }
                    continue;
                }
                let mut aces = Vec::new();
                read_elements::<RawAce>(
                    doc,
                    &span,
                    &p,
                    raw::MAX_ACES,
                    errors,
                    |k, el, ace, errors| aces.push(ace_in(doc, el, &p.index(k), ace, errors)),
                );
                iface.acls = Some(aces);
            }
        }
    }
}

/// Completes an ACE read by serde: its `dir`, and the action fields econet does not
/// know (serde-json-core skips unknown fields, but an unknown action must not pass).
fn ace_in(
    doc: &[u8],
    span: &Range<usize>,
    path: &Path,
    ace: RawAce,
    errors: &mut Vec<ConfigError>,
) -> AceIn {
    let mut out = AceIn::from_raw(ace);
    let mut dir_seen = false;
    for (key, v) in json::members(doc, span) {
        match key.as_str() {
            "dir" => {
                let p = path.key("dir");
                if dir_seen {
                    errors.push(ConfigError::new(p, "appears twice"));
                    continue;
                }
                dir_seen = true;
                match json::kind(doc, &v) {
                    Kind::Null => {}
                    Kind::String => match read_value::<raw::Name>(doc, &v, &p) {
                        Ok(s) => out.dir = Some(s.as_str().to_string()),
                        Err(e) => errors.push(e),
                    },
                    // The enum's number, as protobuf's JSON mapping allows.
                    Kind::Number => out.dir = Some(text(doc, &v)),
                    k => errors.push(ConfigError::new(
                        p,
                        format!(
                            "expected \"BOTH\", \"INGRESS\" or \"EGRESS\", found {}",
                            k.name()
                        ),
                    )),
                }
            }
            "actions" => {
                for (i, a) in json::elements(doc, &v).iter().enumerate() {
                    for (field, _) in json::members(doc, a) {
                        if !raw::ACTION_FIELDS.contains(&field.as_str()) {
                            out.unknown_action_fields.push((i, field));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Finds the smallest value inside the element at `span` that fails on its own.
fn culprit<T: DeserializeOwned>(doc: &[u8], span: &Range<usize>, path: Path) -> ConfigError {
    let mut open = String::new();
    let mut close = String::new();
    let mut span = span.clone();
    let mut path = path;
    let fails = |text: &str| read::<T>(text.as_bytes()).is_err();
    // Each step keeps only the one child that still fails; bounded by the depth limit.
    for _ in 0..json::MAX_DEPTH {
        let kind = json::kind(doc, &span);
        if wrong_shape(&path, kind) {
            // Looking inside would blame a member for the container's own shape.
            let msg = describe(&path, kind);
            return ConfigError::new(path, msg);
        }
        let mut next = None;
        match kind {
            Kind::Object => {
                for (k, v) in json::members(doc, &span) {
                    let key = json::quote(&k);
                    let child = text(doc, &v);
                    if fails(&format!("{open}{{{key}:{child}}}{close}")) {
                        next = Some((
                            format!("{open}{{{key}:"),
                            format!("}}{close}"),
                            v,
                            path.key(&k),
                        ));
                        break;
                    }
                }
            }
            Kind::Array => {
                for (i, e) in json::elements(doc, &span).into_iter().enumerate() {
                    let child = text(doc, &e);
                    if fails(&format!("{open}[{child}]{close}")) {
                        next = Some((format!("{open}["), format!("]{close}"), e, path.index(i)));
                        break;
                    }
                }
                if next.is_none() && path.0.len() > 1 {
                    // Each entry is fine alone: there are too many of them.
                    let parent = parent_key(&path);
                    let key = last_key(&path);
                    return ConfigError::new(
                        path.clone(),
                        format!(
                            "too many entries: {} ({})",
                            json::elements(doc, &span).len(),
                            raw::expectation(&parent, &key)
                                .unwrap_or_else(|| "fewer entries".into())
                        ),
                    );
                }
            }
            _ => {}
        }
        match next {
            Some((o, c, s, p)) => {
                open = o;
                close = c;
                span = s;
                path = p;
            }
            None => {
                let msg = describe(&path, kind);
                return ConfigError::new(path, msg);
            }
        }
    }
    ConfigError::new(path, "value not accepted")
}

/// An object where a list is expected, or a list where a single value or an object
/// is expected.
fn wrong_shape(path: &Path, kind: Kind) -> bool {
    let key = last_key(path);
    let Some(exp) = raw::expectation(&parent_key(path), &key) else {
        return false;
    };
    let list = exp.starts_with("an array");
    let at_entry = matches!(path.0.last(), Some(Seg::Index(_)));
    match kind {
        Kind::Object => list && !at_entry,
        Kind::Array => !list || (at_entry && object_list(&key)),
        _ => false,
    }
}

fn text(doc: &[u8], span: &Range<usize>) -> String {
    String::from_utf8_lossy(&doc[span.clone()]).into_owned()
}

/// The key that names the value at `path`: for `dns[3]`, "dns"; for `ip.subnet`, "subnet".
fn last_key(path: &Path) -> String {
    path.0
        .iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.clone()),
            Seg::Index(_) => None,
        })
        .unwrap_or_default()
}

/// The key of the object that holds the value at `path` (for `vpn.auth`, "vpn").
fn parent_key(path: &Path) -> String {
    let mut keys = path.0.iter().rev().filter_map(|s| match s {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(_) => None,
    });
    keys.next();
    keys.next().unwrap_or_default()
}

/// Lists whose entries are objects.
fn object_list(key: &str) -> bool {
    matches!(
        key,
        "ports"
            | "networks"
            | "apps"
            | "interfaces"
            | "static_dns"
            | "map_servers"
            | "acls"
            | "matches"
            | "actions"
    )
}

fn describe(path: &Path, kind: Kind) -> String {
    let parent = parent_key(path);
    let key = last_key(path);
    let (parent, key) = (parent.as_str(), key.as_str());
    let at_entry = matches!(path.0.last(), Some(Seg::Index(_)));
    match raw::expectation(parent, key) {
        Some(_) if object_list(key) && at_entry && kind == Kind::Object => {
            "value not accepted (an object)".to_string()
        }
        Some(_) if object_list(key) && at_entry => {
            format!("expected an object, found {}", kind.name())
        }
        Some(exp) if exp.starts_with("an array") && kind != Kind::Array && !object_list(key) => {
            // A single entry of a list of strings: say what each entry must be.
            format!(
                "expected {exp} of strings of at most {} characters, found {}",
                entry_len(key),
                kind.name()
            )
        }
        Some(exp) if exp.starts_with("a string") && kind == Kind::String => {
            format!("too long: expected {exp}")
        }
        Some(exp) => format!("expected {exp}, found {}", kind.name()),
        None => format!("value not accepted ({})", kind.name()),
    }
}

fn entry_len(key: &str) -> usize {
    match key {
        "labels" => raw::NAME_LEN,
        _ => raw::ADDR_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(doc: &str) -> Vec<String> {
        json::check_syntax(doc.as_bytes()).unwrap();
        match decode(doc.as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn names_the_field_of_a_type_error() {
        let e = errs(
            r#"{"networks": [{"id": "a"}, {"id": "b", "ip": {"subnet": "x", "lease_secs": "long"}}]}"#,
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("networks[1].ip.lease_secs: expected a whole number"),
            "{e:?}"
        );
    }

    #[test]
    fn names_a_string_that_is_too_long() {
        let long = "x".repeat(300);
        let doc = format!(
            r#"{{"apps": [{{"id": "a", "interfaces": [{{"name": "eth0"}}, {{"name": "{long}"}}]}}]}}"#
        );
        let e = errs(&doc);
        assert!(
            e[0].starts_with("apps[0].interfaces[1].name: too long"),
            "{e:?}"
        );
    }

    #[test]
    fn names_a_list_with_too_many_entries() {
        let e = errs(
            r#"{"networks": [{"ip": {"dns": ["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4","1.1.1.5"]}}]}"#,
        );
        assert!(
            e[0].starts_with("networks[0].ip.dns: too many entries: 5"),
            "{e:?}"
        );
        let e = errs(r#"{"ports": [{"labels": "uplink"}]}"#);
        assert!(
            e[0].starts_with("ports[0].labels: expected an array"),
            "{e:?}"
        );
    }

    #[test]
    fn wrong_shapes() {
        let e = errs(r#"{"networks": {"id": "a"}}"#);
        assert_eq!(e, vec!["networks: expected an array, found an object"]);
        let e = errs(r#"{"networks": [1]}"#);
        assert_eq!(e, vec!["networks[0]: expected an object, found a number"]);
        let e = errs(r#"[1]"#);
        assert_eq!(e, vec!["(document): the config must be a JSON object"]);
        let e = errs(r#"{"device_id": 5}"#);
        assert!(e[0].starts_with("device_id: expected a string"), "{e:?}");
        let e = errs(r#"{"networks": [{"vpn": {"auth": "x"}}]}"#);
        assert!(
            e[0].starts_with("networks[0].vpn.auth: expected an object"),
            "{e:?}"
        );
        let e = errs(r#"{"device_id": "a", "device_id": "b"}"#);
        assert_eq!(e, vec!["device_id: appears twice"]);
    }

    #[test]
    fn unknown_fields_are_ignored_and_escapes_decoded() {
        let doc = r#"{"x-vendor": {"a": [1]}, "networks": [{"id": "a\u0041", "extra": true}]}"#;
        json::check_syntax(doc.as_bytes()).unwrap();
        let d = decode(doc.as_bytes()).ok().unwrap();
        assert_eq!(d.networks[0].id.as_deref(), Some("aA"));
    }
}
