//! Files econet keeps in its state directory, written atomically (temporary file,
//! fsync, rename, fsync of the directory) so a power cut leaves the old or the new
//! version, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates the state directory (mode 0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Replaces `path` with `data`, atomically, with file mode `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The mode of an existing temporary file is not changed by open.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A full disk leaves the old file as it was, and no temporary file behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Appends `lines` to `path` and syncs them to disk before returning (a new file
/// starts with `header`). A torn last line, if the power goes mid-write, is what
/// readers skip.
pub fn append_synced(path: &Path, header: &[u8], lines: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        f.write_all(header)?;
    } else {
        // After a torn write, start on a line of our own.
        let mut last = [0u8];
        if f.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n' {
            f.write_all(b"\n")?;
        }
    }
    f.write_all(lines)?;
    f.sync_data()?;
    if len == 0 {
        // A new file's name must survive a power cut too.
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Why a state file is not trusted.
#[derive(Debug)]
pub enum StateFileError {
    /// Not a regular file: a symbolic link (never followed), a FIFO, a device, a
    /// directory.
    NotRegular(&'static str),
    /// Larger than any file econet writes there.
    TooLarge {
        size: u64,
        cap: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for StateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateFileError::NotRegular(kind) => write!(f, "not a regular file but {kind}"),
            StateFileError::TooLarge { size, cap } => {
                write!(f, "{size} bytes, more than the {cap} econet ever writes")
            }
            StateFileError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StateFileError {}

/// Reads a file econet keeps in its state directory, trusting nothing about it: a
/// symbolic link is not followed, only a regular file is read, and at most `cap`
/// bytes (a file that says more is refused). `Ok(None)`: there is no such file.
pub fn read_state(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, StateFileError> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(StateFileError::NotRegular("a symbolic link"))
        }
        Err(e) => return Err(StateFileError::Io(e)),
    };
    let meta = f.metadata().map_err(StateFileError::Io)?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "a socket"
        };
        return Err(StateFileError::NotRegular(kind));
    }
    if meta.len() > cap {
        return Err(StateFileError::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(StateFileError::Io)?;
    if buf.len() as u64 > cap {
        return Err(StateFileError::TooLarge {
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(Some(buf))
}

/// Moves a state file econet does not trust out of the way, to `<name>.bad` beside
/// it (replacing an older one), so it is kept for a look but never read again.
/// Returns what to tell the operator.
pub fn set_aside(path: &Path, why: &dyn std::fmt::Display) -> String {
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    let bad = std::path::PathBuf::from(bad);
    let msg = match fs::rename(path, &bad) {
        Ok(()) => format!(
            "{}: {why}; set aside as {} and not used",
            path.display(),
            bad.display()
        ),
        Err(e) => format!(
            "{}: {why}; not used (and cannot be set aside: {e})",
            path.display()
        ),
    };
    log::warn!("{msg}");
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_atomically_with_mode() {
        let dir = std::env::temp_dir().join(format!("econet-persist-{}", std::process::id()));
        ensure_dir(&dir).unwrap();
        let p = dir.join("config.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(!dir.join(".config.json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_files_are_read_only_when_regular_and_small() {
        let dir = std::env::temp_dir().join(format!("econet-state-{}", std::process::id()));
        ensure_dir(&dir).unwrap();
        let ok = dir.join("ok.txt");
        fs::write(&ok, b"abc").unwrap();
        assert_eq!(read_state(&ok, 3).unwrap().as_deref(), Some(&b"abc"[..]));
        assert!(matches!(
            read_state(&ok, 2),
            Err(StateFileError::TooLarge { size: 3, cap: 2 })
        ));
        assert!(read_state(&dir.join("none"), 9).unwrap().is_none());
        // What a hostile or broken state directory may hold instead.
        let zero = dir.join("zero.txt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_state(&zero, 1 << 20),
            Err(StateFileError::NotRegular("a symbolic link"))
        ));
        assert!(matches!(
            read_state(&dir, 1 << 20),
            Err(StateFileError::NotRegular("a directory"))
        ));
        let fifo = dir.join("fifo.txt");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_state(&fifo, 1 << 20),
            Err(StateFileError::NotRegular("a FIFO"))
        ));
        let msg = set_aside(&zero, &"bad");
        assert!(msg.contains("zero.txt.bad"), "{msg}");
        assert!(fs::symlink_metadata(&zero).is_err());
        assert!(fs::symlink_metadata(dir.join("zero.txt.bad")).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_start_a_file_with_its_header_and_mend_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("econet-append-{}", std::process::id()));
        ensure_dir(&dir).unwrap();
        let p = dir.join("j.txt");
        append_synced(&p, b"h\n", b"a\n", 0o600).unwrap();
        append_synced(&p, b"h\n", b"b\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"h\na\nb\n");
        fs::write(&p, b"h\na\ntor").unwrap();
        append_synced(&p, b"h\n", b"c\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"h\na\ntor\nc\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// Text fields of econet's line-oriented state files (lease files, the map
/// server's registrations): a field is `-` when empty, bytes outside a safe set are
/// `%XX`, so a field never holds a space or a newline.
/// The records of a line-oriented state file whose first line is `header`: each
/// other line through `record` (blank lines and `#` comments skipped); returns the
/// records and how many lines did not parse. A file without the header yields
/// nothing (and counts as one skipped line unless it is empty).
pub fn decode_lines<R>(
    bytes: &[u8],
    header: &str,
    record: impl Fn(&str) -> Option<R>,
) -> (Vec<R>, usize) {
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next().map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    if first != Some(header.as_bytes()) {
        return (Vec::new(), usize::from(!bytes.is_empty()));
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    for l in lines {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.is_empty() || l.first() == Some(&b'#') {
            continue;
        }
        match std::str::from_utf8(l).ok().and_then(&record) {
            Some(r) => out.push(r),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

/// Of `records` in file order, for each identity and each address only the last one
/// that names it (a later line supersedes); and how many that dropped.
pub fn last_wins<R, I: Eq + std::hash::Hash, A: Eq + std::hash::Hash>(
    records: Vec<R>,
    ident: impl Fn(&R) -> I,
    addr: impl Fn(&R) -> A,
) -> (Vec<R>, usize) {
    use std::collections::HashSet;
    let total = records.len();
    let (mut idents, mut addrs) = (HashSet::new(), HashSet::new());
    let mut keep: Vec<R> = Vec::with_capacity(total);
    for r in records.into_iter().rev() {
        let (i, a) = (ident(&r), addr(&r));
        if addrs.contains(&a) || idents.contains(&i) {
            continue;
        }
        addrs.insert(a);
        idents.insert(i);
        keep.push(r);
    }
    keep.reverse();
    let dropped = total - keep.len();
    (keep, dropped)
}

pub mod field {
    use std::fmt::Write;

    fn safe(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"._~:@+=-".contains(&b)
    }

    pub fn encode(s: &[u8], out: &mut String) {
        if s.is_empty() {
            out.push('-');
            return;
        }
        if s == b"-" {
            out.push_str("%2D");
            return;
        }
        for &b in s {
            if safe(b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }

    /// What [`encode`] wrote; `None` for anything it could not have written.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        if s == "-" {
            return Some(Vec::new());
        }
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        // Each turn consumes at least one byte.
        while let Some(&c) = b.get(i) {
            if c == b'%' {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else if safe(c) {
                out.push(c);
                i += 1;
            } else {
                return None;
            }
        }
        Some(out)
    }

    pub fn decode_string(s: &str) -> Option<String> {
        String::from_utf8(decode(s)?).ok()
    }

    pub fn hex(bytes: &[u8], out: &mut String) {
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
    }

    /// Lowercase or uppercase hex back to at most `max` bytes.
    pub fn unhex(s: &str, max: usize) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) || !s.is_ascii() || s.len() / 2 > max {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }
}
