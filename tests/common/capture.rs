//! Packet capture with tcpdump inside a namespace, and a reader for the pcap files it
//! writes, so tests can compare frames byte for byte.
#![allow(dead_code)]

use super::{wait_until, Netns, TempDir};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
    _dir: TempDir,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -c COUNT FILTER` in `ns`; returns once it listens.
    pub fn start(ns: &Netns, iface: &str, filter: &str, count: usize) -> Capture {
        let dir = TempDir::new("pcap");
        let file = dir.path.join("cap.pcap");
        let errf = dir.path.join("tcpdump.err");
        let mut args: Vec<String> = [
            "netns", "exec", &ns.name, "tcpdump", "-i", iface, "-U", "-n", "-c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(count.to_string());
        args.push("-w".into());
        args.push(file.to_string_lossy().into_owned());
        args.extend(filter.split_whitespace().map(str::to_string));
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .spawn()
            .expect("tcpdump");
        let ok = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&errf)
                .unwrap_or_default()
                .contains("listening on")
        });
        assert!(
            ok,
            "tcpdump did not start: {}",
            std::fs::read_to_string(&errf).unwrap_or_default()
        );
        Capture {
            child: Some(child),
            file,
            _dir: dir,
        }
    }

    /// Waits (at most `limit`) for tcpdump to have its packets, then returns the
    /// captured frames.
    pub fn finish(mut self, limit: Duration) -> Vec<Vec<u8>> {
        self.stop(limit);
        read_pcap(&self.file)
    }

    /// Waits (at most `limit`) for tcpdump to finish, keeping the file for reading.
    pub fn stop(&mut self, limit: Duration) {
        if let Some(mut c) = self.child.take() {
            let end = Instant::now() + limit;
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() >= end {
                    let _ = Command::new("kill")
                        .args(["-INT", &c.id().to_string()])
                        .status();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The frames of a classic pcap file (either byte order).
pub fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let mut b = Vec::new();
    if std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut b))
        .is_err()
        || b.len() < 24
    {
        return Vec::new();
    }
    let le = b[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || b[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32at = |i: usize| -> Option<u32> {
        let s: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let mut out = Vec::new();
    let mut pos = 24;
    while let Some(incl) = u32at(pos + 8) {
        let start = pos + 16;
        let Some(frame) = b.get(start..start + incl as usize) else {
            break;
        };
        out.push(frame.to_vec());
        pos = start + incl as usize;
    }
    out
}
