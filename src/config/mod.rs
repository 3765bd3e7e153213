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
    let doc: &[u8] = &json::join_surrogate_escapes(doc);
    let raw = decode::decode(doc)?;
    validate::validate(&raw)
}

/// Reads and parses a config file.
pub fn load(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    let doc = read_bounded(path).map_err(|e| {
        vec![ConfigError {
            path: path.display().to_string(),
            msg: e.to_string(),
        }]
    })?;
    parse(&doc)
}

/// Why a config file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Open(std::io::Error),
    Read(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Open(e) => write!(f, "cannot open: {e}"),
            ReadError::Read(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A config file that cannot be used: unreadable, or invalid.
#[derive(Debug)]
pub enum FileError {
    Read {
        file: std::path::PathBuf,
        err: ReadError,
    },
    /// Every error, each naming its JSON path.
    Invalid {
        file: std::path::PathBuf,
        errors: Vec<ConfigError>,
    },
}

impl FileError {
    /// One line per error, each starting with the file.
    pub fn messages(&self) -> Vec<String> {
        match self {
            FileError::Read { file, err } => vec![format!("{}: {err}", file.display())],
            FileError::Invalid { file, errors } => errors
                .iter()
                .map(|e| format!("{}: {e}", file.display()))
                .collect(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join("\n"))
    }
}

impl std::error::Error for FileError {}

/// Reads a file of at most `MAX_DOC` bytes (plus one, so oversize is detected).
pub fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(ReadError::Open)?;
    let mut buf = Vec::new();
    f.take(raw::MAX_DOC as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Read)?;
    Ok(buf)
}

#[cfg(test)]
mod acl_tests;
#[cfg(test)]
mod ipv6_tests;
#[cfg(test)]
mod tests;
