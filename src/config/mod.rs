//! The device config: JSON text in, a validated [`Config`] out, or errors that each
//! name the JSON path of the problem.

pub mod decode;
pub mod json;
pub mod model;
pub mod raw;
pub mod validate;

pub use model::*;

use json::Path;
use std::fmt;

/// One reason a config was rejected: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub msg: String,
}

impl ConfigError {
    pub fn new(path: Path, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.to_string(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.msg)
    }
}

/// Parses and validates a config document.
pub fn parse(doc: &[u8]) -> Result<Config, Vec<ConfigError>> {
    if doc.len() > raw::MAX_DOC {
        return Err(vec![ConfigError::new(
            Path::root(),
            format!(
                "the config is {} bytes; at most {} are accepted",
                doc.len(),
                raw::MAX_DOC
            ),
        )]);
    }
    if let Err(e) = json::check_syntax(doc) {
        return Err(vec![ConfigError {
            path: e.path.to_string(),
            msg: format!(
                "invalid JSON at line {}, column {}: {}",
                e.line, e.col, e.msg
            ),
        }]);
    }
    let raw = decode::decode(doc)?;
    validate::validate(&raw)
}

/// Reads and parses a config file.
pub fn load(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    let doc = read_bounded(path).map_err(|e| {
        vec![ConfigError {
            path: path.display().to_string(),
            msg: e,
        }]
    })?;
    parse(&doc)
}

/// Reads a file of at most `MAX_DOC` bytes (plus one, so oversize is detected).
pub fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut buf = Vec::new();
    f.take(raw::MAX_DOC as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests;
