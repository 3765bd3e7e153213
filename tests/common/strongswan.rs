//! strongSwan's charon (kernel-libipsec) as a test peer, per namespace as
//! ../shared/notes/toolchain.md describes: its own strongswan.conf, plugins listed with
//! kernel-libipsec before kernel-netlink, a private /run, its own vici socket.
#![allow(dead_code)]

use super::{wait_until, Netns, Proc};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// charon with kernel-libipsec in the gateway namespace: its own strongswan.conf, a
/// private /run (the pid file path is fixed), its own vici socket.
pub struct Charon {
    ns: String,
    pub dir: String,
    proc: Option<Proc>,
}

impl Charon {
    /// Starts charon in `ns` with its files under `base`.
    pub fn start(ns: &Netns, base: &Path, swanctl_conf: &str) -> Charon {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = base
            .join(format!("charon{n}"))
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(format!("{dir}/run")).unwrap();
        let conf = format!(
            r#"charon {{
  load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici updown
  retransmit_timeout = 1
  retransmit_base = 1.4
  retransmit_tries = 3
  filelog {{
    log {{
      path = {dir}/charon.log
      default = 1
      ike = 2
      cfg = 2
      chd = 2
      time_format = %T
      flush_line = yes
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{dir}/charon.vici
    }}
  }}
}}
swanctl {{
  load = pem pkcs1 x509 pubkey random nonce openssl
}}
"#
        );
        std::fs::write(format!("{dir}/strongswan.conf"), conf).unwrap();
        std::fs::write(format!("{dir}/swanctl.conf"), swanctl_conf).unwrap();
        let script = format!("mount --bind {dir}/run /run && exec /usr/lib/ipsec/charon");
        let p = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sh", "-c", &script])
            .env("STRONGSWAN_CONF", format!("{dir}/strongswan.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("charon");
        let c = Charon {
            ns: ns.name.clone(),
            dir,
            proc: Some(Proc(p)),
        };
        assert!(
            wait_until(Duration::from_secs(10), || Path::new(&format!(
                "{}/charon.vici",
                c.dir
            ))
            .exists()),
            "charon did not start:\n{}",
            c.log()
        );
        let out = c.swanctl(&["--load-all", "--file", &format!("{}/swanctl.conf", c.dir)]);
        assert!(out.contains("successfully loaded 1 connections"), "{out}");
        c
    }

    pub fn swanctl(&self, args: &[&str]) -> String {
        let out = Command::new("swanctl")
            .args(args)
            .args(["--uri", &format!("unix://{}/charon.vici", self.dir)])
            .env("STRONGSWAN_CONF", format!("{}/strongswan.conf", self.dir))
            .output()
            .expect("swanctl");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `swanctl --initiate` in the background (it waits for the outcome, and the
    /// outcome needs our shell running).
    pub fn initiate(&self) -> Proc {
        let p = Command::new("swanctl")
            .args(["--initiate", "--child", "net", "--timeout", "10"])
            .args(["--uri", &format!("unix://{}/charon.vici", self.dir)])
            .env("STRONGSWAN_CONF", format!("{}/strongswan.conf", self.dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swanctl");
        Proc(p)
    }

    pub fn list_sas(&self) -> String {
        self.swanctl(&["--list-sas"])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(format!("{}/charon.log", self.dir)).unwrap_or_default()
    }

    /// SIGKILL: the peer dies without a word.
    pub fn kill(&mut self) {
        self.proc.take();
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
    }
}

/// A swanctl.conf for one connection `econet` with one child `net`.
pub struct SwanConf<'a> {
    pub local_addrs: &'a str,
    pub remote_addrs: &'a str,
    pub local_id: &'a str,
    pub remote_id: &'a str,
    pub psk: &'a str,
    pub local_ts: &'a str,
    pub remote_ts: &'a str,
    pub ike_extra: &'a str,
    pub child_extra: &'a str,
}

impl SwanConf<'_> {
    pub fn render(&self) -> String {
        let SwanConf {
            local_addrs,
            remote_addrs,
            local_id,
            remote_id,
            psk,
            local_ts,
            remote_ts,
            ike_extra,
            child_extra,
        } = self;
        format!(
            r#"connections {{
  econet {{
    version = 2
    local_addrs = {local_addrs}
    remote_addrs = {remote_addrs}
    proposals = aes256gcm16-prfsha256-x25519-ecp256
    encap = yes
    dpd_delay = 2s
    {ike_extra}
    local {{
      auth = psk
      id = {local_id}
    }}
    remote {{
      auth = psk
      id = {remote_id}
    }}
    children {{
      net {{
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = aes256gcm16
        {child_extra}
      }}
    }}
  }}
}}
secrets {{
  ike-econet {{
    id-1 = {remote_id}
    id-2 = {local_id}
    secret = "{psk}"
  }}
}}
"#
        )
    }
}
