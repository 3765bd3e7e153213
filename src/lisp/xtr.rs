//! The xTR of one mesh network: ITR (encapsulates ECO traffic to remote EIDs) and ETR
//! (decapsulates traffic for this device's ECOs, answers Map-Requests), registering
//! the device's ECO addresses with the map servers. Sans-I/O: see the module doc of
//! [`crate::lisp`] for how the shell drives it.

use super::cache::{self, Entry, MapCache, Mapping, Rloc};
use super::crypto::{self, KeyPair, SessionKey, SUITE_X25519_AES128_GCM};
use crate::config::{MapAuth, Mesh};
use crate::wire::lisp::control::{self, action, message_type, msg_type, ECM_OVERHEAD};
use crate::wire::lisp::{
    auth, data, Address, AuthAlg, Ecm, Eid, Locator, MapRegister, MapReply, MapRequest, Record,
    SecurityKey, CONTROL_PORT, DATA_PORT,
};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::time::{Duration, Instant};

/// A map server the xTR registers with.
#[derive(Clone, PartialEq, Eq)]
pub struct MapServerPeer {
    pub addr: Ipv4Addr,
    pub key: Vec<u8>,
    pub auth: AuthAlg,
}

impl std::fmt::Debug for MapServerPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MapServerPeer({}, {:?}, <key>)", self.addr, self.auth)
    }
}

/// The xTR's settings.
#[derive(Debug, Clone)]
pub struct XtrConfig {
    pub instance_id: u32,
    pub map_servers: Vec<MapServerPeer>,
    pub map_resolvers: Vec<Ipv4Addr>,
    /// LISP-crypto on: data is sent encrypted, clear data is refused.
    pub encrypt: bool,
    /// Map-Register period.
    pub register_interval: Duration,
    /// TTL (minutes) of the mappings this xTR registers and answers with.
    pub ttl_mins: u32,
    /// Ask the map server to answer for us (it never does when keys are asked for).
    pub proxy_reply: bool,
    /// Our locator's priority and weight.
    pub priority: u8,
    pub weight: u8,
    pub cache_capacity: usize,
    /// Negative answers are kept at most this long, so a device that comes back is
    /// found soon.
    pub max_negative_ttl: Duration,
    /// First Map-Request retransmission; doubles each time.
    pub request_timeout: Duration,
    /// Map-Requests sent per lookup before giving up.
    pub request_attempts: u32,
    /// How long to wait for a Map-Notify before sending the Map-Register again.
    pub notify_timeout: Duration,
    /// Map-Registers without a Map-Notify before `RegistrationFailed`.
    pub register_attempts: u32,
    /// RLOC-probe period (zero: off) and how long a probe may go unanswered.
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// Data keys older than this are replaced by a new exchange.
    pub rekey_interval: Duration,
    /// Packets held per unresolved destination, and destinations held at once.
    pub queue_per_eid: usize,
    pub max_pending: usize,
}

impl XtrConfig {
    /// Defaults for `instance_id` with no map servers.
    pub fn new(instance_id: u32) -> XtrConfig {
        XtrConfig {
            instance_id,
            map_servers: Vec::new(),
            map_resolvers: Vec::new(),
            encrypt: true,
            register_interval: Duration::from_secs(60),
            ttl_mins: 1440,
            proxy_reply: false,
            priority: 1,
            weight: 100,
            cache_capacity: 4096,
            max_negative_ttl: Duration::from_secs(60),
            request_timeout: Duration::from_secs(1),
            request_attempts: 3,
            notify_timeout: Duration::from_secs(1),
            register_attempts: 3,
            probe_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
            rekey_interval: Duration::from_secs(3600),
            queue_per_eid: 4,
            max_pending: 256,
        }
    }

    /// From a mesh network's config; timers scale with `register_secs` so a test
    /// config with one-second registration runs in seconds.
    pub fn from_mesh(m: &Mesh) -> XtrConfig {
        let mut c = XtrConfig::new(m.instance_id);
        let reg = Duration::from_secs(u64::from(m.register_secs.max(1)));
        c.map_servers = m
            .map_servers
            .iter()
            .map(|s| MapServerPeer {
                addr: s.address,
                key: s.key.expose().as_bytes().to_vec(),
                auth: match s.auth {
                    MapAuth::HmacSha1 => AuthAlg::HmacSha1,
                    MapAuth::HmacSha256 => AuthAlg::HmacSha256,
                },
            })
            .collect();
        c.map_resolvers = m.map_resolvers.clone();
        c.encrypt = m.encrypt;
        c.register_interval = reg;
        c.ttl_mins = m.ttl_mins.max(1);
        c.max_negative_ttl = reg.min(Duration::from_secs(60));
        // A Map-Register unanswered for a second is sent again (RFC 9301 §5.7).
        c.notify_timeout = (reg / 2).clamp(Duration::from_millis(200), Duration::from_secs(1));
        c.request_timeout = c.notify_timeout.min(Duration::from_secs(1));
        c.probe_interval = reg.min(Duration::from_secs(30));
        c.probe_timeout = c.probe_interval;
        c
    }
}

/// What the shell should do, or what it should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` from the control socket (UDP 4342) to `to`.
    SendControl { to: SocketAddrV4, bytes: Vec<u8> },
    /// Send an encapsulated packet (UDP payload) from the data socket to `to` (4341).
    SendData { to: SocketAddrV4, bytes: Vec<u8> },
    /// A map server acknowledged a new registration (Map-Notify): the first, one
    /// after an RLOC or EID change, or one after a failure.
    Registered { map_server: Ipv4Addr },
    /// A map server did not acknowledge after `register_attempts` tries (wrong key,
    /// unreachable, EIDs outside its site); retried every `register_interval`.
    RegistrationFailed { map_server: Ipv4Addr },
    /// The map-cache now holds this many entries.
    MapCache { entries: usize },
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Bad LISP header or inner packet.
    Malformed,
    WrongInstance,
    /// Clear data while encryption is on.
    Unencrypted,
    /// No decryption key for that RLOC and key id.
    NoKey,
    /// Integrity check or decryption failed.
    BadIcv,
    /// The inner packet is not for an ECO of this device.
    NotLocalEid,
    NotIpv4,
    /// The device has no RLOC (port down).
    NoLocalRloc,
    /// The mapping's locators are all down or unusable.
    NoUsableLocator,
    BufferTooSmall,
}

/// The result of [`Xtr::encap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// `out[..len]` is the UDP payload to send to `to` (port 4341); `src_port` is a
    /// flow hash for a sender that can pick its source port (RFC 9300 §5.3).
    Send {
        to: SocketAddrV4,
        len: usize,
        src_port: u16,
    },
    /// No mapping yet: a Map-Request is out and the packet was held (or not, when the
    /// queue is full); it leaves as `SendData` when the mapping arrives.
    Miss {
        queued: bool,
    },
    /// The mapping system says no ETR has this EID.
    Negative,
    Drop(DropReason),
}

/// A decapsulated packet: `payload[inner]` is the inner IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decap {
    pub inner: Range<usize>,
    pub src_rloc: Ipv4Addr,
    pub inner_src: Ipv4Addr,
    pub inner_dst: Ipv4Addr,
    pub encrypted: bool,
}

/// Counters for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub encap: u64,
    pub decap: u64,
    pub dropped: u64,
    pub map_requests: u64,
    pub map_replies: u64,
    pub negative_replies: u64,
    pub registers: u64,
    pub notifies: u64,
    pub bad_notifies: u64,
    /// Map-Notify-Acks sent for unsolicited Map-Notifies.
    pub notify_acks: u64,
    pub smrs_sent: u64,
    pub smrs_received: u64,
    pub probes_sent: u64,
    pub probes_lost: u64,
    pub key_exchanges: u64,
    pub ignored_control: u64,
}

/// For status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XtrStatus {
    pub registered: bool,
    pub map_cache: usize,
    pub rloc: Option<Ipv4Addr>,
    pub counters: Counters,
}

struct RegState {
    next: Instant,
    nonce: Option<u64>,
    /// The EIDs the Map-Registers with `nonce` carried.
    sent: BTreeSet<Eid>,
    /// The nonce of the last Map-Register acknowledged (its other parts, when the
    /// EIDs took several, are acknowledged by more Map-Notifies).
    acked_nonce: Option<u64>,
    generation: u64,
    attempts: u32,
    acked: Option<(u64, Instant)>,
    failed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Miss,
    Refresh,
    SmrInvoked,
}

struct Pending {
    target: (u32, Ipv4Addr),
    attempts: u32,
    next: Instant,
    wait: Duration,
    bytes: Vec<u8>,
    /// The map resolver of the first attempt; each retransmission takes the next.
    resolver: usize,
    /// Our key pair for this exchange and whether it is a rekey.
    keys: Option<(KeyPair, bool)>,
    why: Why,
}

struct EncapKey {
    id: u8,
    key: SessionKey,
    since: Instant,
}

struct DecapSlot {
    key: SessionKey,
    itr_public: Vec<u8>,
    etr_public: [u8; crypto::PUBLIC_KEY_LEN],
}

#[derive(Default)]
struct DecapKeys {
    slots: [Option<DecapSlot>; 4],
    last: Option<Instant>,
}

struct Probe {
    rloc: Ipv4Addr,
    deadline: Instant,
}

const MAX_DECAP_PEERS: usize = 1024;
const MAX_RECENT: usize = 1024;
const RECENT_FOR: Duration = Duration::from_secs(600);
/// Records per Map-Register (keeps it under 1400 bytes).
const RECORDS_PER_REGISTER: usize = 32;
/// After a Map-Request is given up, or answered with nothing usable, the next for the
/// same destination waits this long (RFC 9301 §5.3: one a second).
const HOLD_DOWN: Duration = Duration::from_secs(1);
/// The longest wait between retransmissions of a Map-Register (RFC 9301 §5.7).
const MAX_REGISTER_BACKOFF: Duration = Duration::from_secs(60);

/// The xTR core.
pub struct Xtr {
    cfg: XtrConfig,
    rng: SystemRandom,
    prng: u64,
    rloc: Option<Ipv4Addr>,
    /// The last RLOC we had: peers may still send to it after the port lost its
    /// address, so the next one, if different, is a change they must hear of.
    last_rloc: Option<Ipv4Addr>,
    /// Solicit-Map-Requests owed for an RLOC change: sent once the map servers have
    /// acknowledged the new RLOC (so the SMR-invoked Map-Requests they cause find it
    /// there, not the old one), or at this deadline when one does not answer.
    smr_due: Option<Instant>,
    eids: BTreeSet<Ipv4Addr>,
    generation: u64,
    cache: MapCache,
    cache_reported: usize,
    actions: VecDeque<Action>,
    regs: Vec<RegState>,
    pending: HashMap<u64, Pending>,
    /// The map resolver that answered last: new requests go there first, so while
    /// one is down only the first request after it failed waits for a timeout.
    resolver: usize,
    pending_by_target: HashMap<(u32, Ipv4Addr), u64>,
    hold_down: HashMap<(u32, Ipv4Addr), Instant>,
    queue: HashMap<(u32, Ipv4Addr), Vec<Vec<u8>>>,
    probes: HashMap<u64, Probe>,
    next_probe: Instant,
    next_scan: Instant,
    encap_keys: HashMap<Ipv4Addr, EncapKey>,
    decap_keys: HashMap<Ipv4Addr, DecapKeys>,
    /// RLOCs we decapsulated from lately: when, and the inner source (an EID behind
    /// that ITR, named in the SMRs it gets).
    recent: HashMap<Ipv4Addr, (Instant, Ipv4Addr)>,
    last_now: Instant,
    counters: Counters,
}

impl Xtr {
    pub fn new(cfg: XtrConfig, now: Instant) -> Xtr {
        let rng = SystemRandom::new();
        let mut seed = [0u8; 8];
        let _ = rng.fill(&mut seed);
        let regs = cfg
            .map_servers
            .iter()
            .map(|_| RegState {
                next: now,
                nonce: None,
                sent: BTreeSet::new(),
                acked_nonce: None,
                generation: 0,
                attempts: 0,
                acked: None,
                failed: false,
            })
            .collect();
        Xtr {
            cache: MapCache::new(cfg.cache_capacity),
            next_probe: now + cfg.probe_interval,
            cfg,
            rng,
            prng: u64::from_ne_bytes(seed) | 1,
            rloc: None,
            last_rloc: None,
            smr_due: None,
            eids: BTreeSet::new(),
            generation: 0,
            cache_reported: 0,
            actions: VecDeque::new(),
            regs,
            pending: HashMap::new(),
            resolver: 0,
            pending_by_target: HashMap::new(),
            hold_down: HashMap::new(),
            queue: HashMap::new(),
            probes: HashMap::new(),
            next_scan: now,
            encap_keys: HashMap::new(),
            decap_keys: HashMap::new(),
            recent: HashMap::new(),
            last_now: now,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &XtrConfig {
        &self.cfg
    }

    pub fn cache(&self) -> &MapCache {
        &self.cache
    }

    pub fn status(&self) -> XtrStatus {
        XtrStatus {
            registered: self.registered(),
            map_cache: self.cache.len(),
            rloc: self.rloc,
            counters: self.counters,
        }
    }

    /// Whether some map server acknowledged the current RLOC and EIDs recently.
    pub fn registered(&self) -> bool {
        let Some(_) = self.rloc else {
            return false;
        };
        let fresh = self.cfg.register_interval * 3;
        self.eids.is_empty()
            || self.regs.iter().any(|r| {
                r.acked.is_some_and(|(g, at)| {
                    g == self.generation && self.last_now.saturating_duration_since(at) < fresh
                })
            })
    }

    /// A cryptographically random 64-bit nonce (Map-Reply spoofing defence).
    fn nonce(&self) -> u64 {
        let mut b = [0u8; 8];
        let _ = self.rng.fill(&mut b);
        u64::from_ne_bytes(b)
    }

    /// A fast non-cryptographic random number (data-header nonces).
    fn quick(&mut self) -> u32 {
        let mut x = self.prng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.prng = x;
        (x >> 32) as u32
    }

    fn send_control(&mut self, to: Ipv4Addr, port: u16, bytes: Vec<u8>) {
        self.actions.push_back(Action::SendControl {
            to: SocketAddrV4::new(to, port),
            bytes,
        });
    }

    /// The device's RLOC: the address of the mesh network's port (`None` when the
    /// port is down). A change re-registers at once, renews data keys, and sends
    /// Solicit-Map-Requests to the peers this xTR talks with as soon as the map
    /// servers acknowledge the new RLOC (at most `notify_timeout` later). A new
    /// address after none (a DHCP client drops the old lease, then takes the new
    /// one) is a change too when it differs from the last one.
    pub fn set_local_rloc(&mut self, now: Instant, rloc: Option<Ipv4Addr>) {
        self.last_now = now;
        if self.rloc == rloc {
            return;
        }
        self.rloc = rloc;
        self.generation += 1;
        for r in &mut self.regs {
            r.next = now;
            r.attempts = 0;
        }
        // Peers hold decryption keys for the old RLOC: exchange new ones.
        self.encap_keys.clear();
        let Some(new) = rloc else {
            // Nothing can be sent without an RLOC; the next one decides.
            self.smr_due = None;
            return;
        };
        if self.last_rloc.is_some_and(|old| old != new) {
            self.smr_due = Some(now + self.cfg.notify_timeout);
        }
        self.last_rloc = Some(new);
        // The Map-Register goes with the next poll; the SMRs follow its Map-Notify
        // (at once when there is no map server to wait for).
        self.smr_timer(now);
    }

    /// Sends the owed SMRs when every map server still answering has acknowledged
    /// the current RLOC, or when their deadline passed.
    fn smr_timer(&mut self, now: Instant) {
        let Some(due) = self.smr_due else {
            return;
        };
        let gen = self.generation;
        let acked = self
            .regs
            .iter()
            .all(|r| r.failed || r.acked.is_some_and(|(g, _)| g == gen));
        if acked || now >= due {
            self.smr_due = None;
            self.send_smrs(now);
        }
    }

    /// The device's ECO addresses on this network (each registered as a /32). A
    /// change re-registers at once.
    pub fn set_local_eids(&mut self, now: Instant, eids: &[Ipv4Addr]) {
        self.last_now = now;
        let new: BTreeSet<Ipv4Addr> = eids.iter().copied().collect();
        if new == self.eids {
            return;
        }
        self.eids = new;
        self.generation += 1;
        for r in &mut self.regs {
            r.next = now;
            r.attempts = 0;
        }
    }

    fn our_locator(&self, rloc: Ipv4Addr, key: Option<SecurityKey>, probed: bool) -> Locator {
        Locator {
            priority: self.cfg.priority,
            weight: self.cfg.weight,
            m_priority: 255,
            m_weight: 0,
            local: true,
            probed,
            reachable: true,
            address: match key {
                Some(key) => Address::SecurityKey {
                    key,
                    addr: Some(rloc),
                },
                None => Address::Ipv4(rloc),
            },
        }
    }

    fn our_record(&self, ip: Ipv4Addr, loc: Locator) -> Record {
        Record {
            ttl: self.cfg.ttl_mins,
            eid: Eid::host(self.cfg.instance_id, ip),
            action: action::NO_ACTION,
            authoritative: true,
            map_version: 0,
            locators: vec![loc],
        }
    }

    // ---- data plane -------------------------------------------------------------

    /// Encapsulates an inner IPv4 packet (from the TUN) for its destination EID.
    pub fn encap(&mut self, now: Instant, inner: &[u8], out: &mut [u8]) -> Encap {
        self.last_now = now;
        let r = self.encap_inner(now, inner, out, true);
        if let Encap::Drop(_) = r {
            self.counters.dropped += 1;
        }
        r
    }

    fn encap_inner(
        &mut self,
        now: Instant,
        inner: &[u8],
        out: &mut [u8],
        may_queue: bool,
    ) -> Encap {
        if inner.len() < 20 || inner[0] >> 4 != 4 {
            return Encap::Drop(DropReason::NotIpv4);
        }
        let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
        if self.rloc.is_none() {
            return Encap::Drop(DropReason::NoLocalRloc);
        }
        let iid = self.cfg.instance_id;
        let hash = cache::flow_hash(inner);
        let Some(entry) = self.cache.lookup(iid, dst, now) else {
            return self.miss(now, (iid, dst), inner, may_queue);
        };
        let Mapping::Positive(_) = entry.mapping else {
            return Encap::Negative;
        };
        let Some(rloc) = entry.select(hash) else {
            let eid = entry.eid;
            self.refresh(now, eid, dst);
            return Encap::Drop(DropReason::NoUsableLocator);
        };
        let key_id = if self.cfg.encrypt {
            match self.encap_keys.get(&rloc) {
                Some(k) => k.id,
                None => return self.miss(now, (iid, dst), inner, may_queue),
            }
        } else {
            0
        };
        let hdr = data::Repr {
            nonce: Some(self.quick() & 0xff_ffff),
            instance_id: Some(iid),
            lsb: Some(1),
            key_id,
            ..Default::default()
        };
        let body = if self.cfg.encrypt {
            data::HEADER_LEN + crypto::IV_LEN
        } else {
            data::HEADER_LEN
        };
        let need = body
            + inner.len()
            + if self.cfg.encrypt {
                crypto::TAG_LEN + crypto::ICV_LEN
            } else {
                0
            };
        if out.len() < need {
            return Encap::Drop(DropReason::BufferTooSmall);
        }
        if hdr
            .emit(&mut data::Packet::new_unchecked(&mut out[..]))
            .is_err()
        {
            return Encap::Drop(DropReason::Malformed);
        }
        out[body..body + inner.len()].copy_from_slice(inner);
        let len = if self.cfg.encrypt {
            match self
                .encap_keys
                .get_mut(&rloc)
                .and_then(|k| k.key.seal(out, inner.len()))
            {
                Some(n) => n,
                None => return Encap::Drop(DropReason::BufferTooSmall),
            }
        } else {
            need
        };
        self.counters.encap += 1;
        Encap::Send {
            to: SocketAddrV4::new(rloc, DATA_PORT),
            len,
            src_port: 0xc000 | (hash & 0x3fff) as u16,
        }
    }

    fn miss(
        &mut self,
        now: Instant,
        target: (u32, Ipv4Addr),
        inner: &[u8],
        may_queue: bool,
    ) -> Encap {
        if !may_queue {
            return Encap::Miss { queued: false };
        }
        if !self.pending_by_target.contains_key(&target) {
            if self.hold_down.get(&target).is_some_and(|t| *t > now) {
                return Encap::Miss { queued: false };
            }
            if self.pending.len() >= self.cfg.max_pending {
                return Encap::Miss { queued: false };
            }
            self.request(now, target, Why::Miss);
        }
        let q = self.queue.entry(target).or_default();
        let queued = q.len() < self.cfg.queue_per_eid;
        if queued {
            q.push(inner.to_vec());
        }
        Encap::Miss { queued }
    }

    /// Decapsulates a packet received on UDP 4341 (`payload` is the UDP payload, and
    /// is decrypted in place).
    pub fn handle_data(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        payload: &mut [u8],
    ) -> Result<Decap, DropReason> {
        self.last_now = now;
        let r = self.decap(now, *from.ip(), payload);
        match &r {
            Ok(_) => self.counters.decap += 1,
            Err(_) => self.counters.dropped += 1,
        }
        r
    }

    fn decap(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        payload: &mut [u8],
    ) -> Result<Decap, DropReason> {
        let p = data::Packet::new_checked(&payload[..]).map_err(|_| DropReason::Malformed)?;
        let hdr = data::Repr::parse(&p).map_err(|_| DropReason::Malformed)?;
        if hdr.instance_id != Some(self.cfg.instance_id) {
            return Err(DropReason::WrongInstance);
        }
        let (inner, encrypted) = if hdr.key_id == 0 {
            if self.cfg.encrypt {
                return Err(DropReason::Unencrypted);
            }
            (data::HEADER_LEN..payload.len(), false)
        } else {
            let keys = self.decap_keys.get_mut(&src).ok_or(DropReason::NoKey)?;
            let slot = keys.slots[usize::from(hdr.key_id)]
                .as_ref()
                .ok_or(DropReason::NoKey)?;
            let r = slot.key.open(payload).ok_or(DropReason::BadIcv)?;
            keys.last = Some(now);
            (r, true)
        };
        let ip = &payload[inner.clone()];
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 {
            return Err(DropReason::Malformed);
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total < 20 || total > ip.len() {
            return Err(DropReason::Malformed);
        }
        let inner_src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let inner_dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        if !self.eids.contains(&inner_dst) {
            return Err(DropReason::NotLocalEid);
        }
        if let Some(lsb) = hdr.lsb {
            self.apply_lsb(now, src, inner_src, lsb);
        }
        if self.recent.len() < MAX_RECENT || self.recent.contains_key(&src) {
            self.recent.insert(src, (now, inner_src));
        }
        Ok(Decap {
            inner: inner.start..inner.start + total,
            src_rloc: src,
            inner_src,
            inner_dst,
            encrypted,
        })
    }

    /// Locator-status bits: bit i is the i-th locator of the sender's mapping.
    fn apply_lsb(&mut self, now: Instant, src: Ipv4Addr, inner_src: Ipv4Addr, lsb: u32) {
        let Some(e) = self.cache.lookup(self.cfg.instance_id, inner_src, now) else {
            return;
        };
        if let Mapping::Positive(rs) = &mut e.mapping {
            if rs.iter().any(|r| r.addr == src) {
                for (i, r) in rs.iter_mut().enumerate().take(8) {
                    r.up = lsb & (1 << i) != 0;
                }
            }
        }
    }

    // ---- Map-Requests (ITR) -----------------------------------------------------

    fn request(&mut self, now: Instant, target: (u32, Ipv4Addr), why: Why) {
        self.request_from(now, target, why, None, None);
    }

    /// The same, naming `source` (an EID of ours) as Source-EID, the first of ours
    /// otherwise, and asking for the EID-prefix `ask` (which must cover the
    /// target), the target's /32 otherwise.
    fn request_from(
        &mut self,
        now: Instant,
        target: (u32, Ipv4Addr),
        why: Why,
        source: Option<Ipv4Addr>,
        ask: Option<Eid>,
    ) {
        let (Some(rloc), false) = (self.rloc, self.cfg.map_resolvers.is_empty()) else {
            return;
        };
        if self.pending_by_target.contains_key(&target) {
            return;
        }
        // After an answer that gave the destination nowhere to go (no usable locator,
        // or no key when encrypting), or after giving up, the next Map-Request waits
        // a second (RFC 9301 §5.3's pace), so such an answer cannot set off a storm.
        // An SMR's request is the peer's to pace.
        if why != Why::SmrInvoked && self.hold_down.get(&target).is_some_and(|t| *t > now) {
            return;
        }
        let nonce = self.nonce();
        let keys = if self.cfg.encrypt {
            self.new_keypair(target.1, now)
        } else {
            None
        };
        let itr = match &keys {
            Some((kp, rekey)) => Address::SecurityKey {
                key: SecurityKey {
                    cipher_suite: SUITE_X25519_AES128_GCM,
                    rekey: *rekey,
                    public_key: kp.public().to_vec(),
                },
                addr: Some(rloc),
            },
            None => Address::Ipv4(rloc),
        };
        let source_eid = match source.as_ref().or(self.eids.iter().next()) {
            Some(ip) => Eid::host(self.cfg.instance_id, *ip).address(),
            None => Address::None,
        };
        let req = MapRequest {
            authoritative: false,
            probe: false,
            smr: false,
            pitr: false,
            smr_invoked: why == Why::SmrInvoked,
            local_xtr: false,
            dont_reply: false,
            nonce,
            source_eid,
            itr_rlocs: vec![itr],
            eids: vec![ask
                .filter(|e| e.contains(target.0, target.1))
                .unwrap_or_else(|| Eid::host(target.0, target.1))],
            map_reply: None,
        };
        let mut msg = vec![0u8; 512];
        let Ok(n) = req.emit(&mut msg) else {
            return;
        };
        msg.truncate(n);
        self.pending.insert(
            nonce,
            Pending {
                target,
                attempts: 0,
                next: now,
                wait: self.cfg.request_timeout,
                bytes: msg,
                resolver: self.resolver,
                keys,
                why,
            },
        );
        self.pending_by_target.insert(target, nonce);
        self.send_pending(now, nonce);
    }

    /// A key pair for an exchange with whoever owns `dst`: a rekey (R) when a key
    /// to its current locator exists, with a key id other than the current one.
    fn new_keypair(&self, dst: Ipv4Addr, now: Instant) -> Option<(KeyPair, bool)> {
        let current = self
            .cache
            .find(self.cfg.instance_id, dst, now)
            .and_then(|k| self.cache.get(&k))
            .and_then(|e| e.select(0))
            .and_then(|r| self.encap_keys.get(&r))
            .map(|k| k.id);
        for _ in 0..16 {
            let kp = KeyPair::generate(&self.rng)?;
            match current {
                None => return Some((kp, false)),
                Some(id) if crypto::key_id_for(true, kp.public()) != id => return Some((kp, true)),
                Some(_) => {}
            }
        }
        None
    }

    fn send_pending(&mut self, now: Instant, nonce: u64) {
        let Some(rloc) = self.rloc else {
            return;
        };
        let Some(p) = self.pending.get_mut(&nonce) else {
            return;
        };
        let n = self.cfg.map_resolvers.len();
        if n == 0 {
            return;
        }
        let mr = self.cfg.map_resolvers[(p.resolver + p.attempts as usize) % n];
        let ecm = Ecm {
            security: false,
            ddt: false,
            src: rloc,
            dst: p.target.1,
            src_port: CONTROL_PORT,
            dst_port: CONTROL_PORT,
            message: &p.bytes,
        };
        let mut buf = vec![0u8; ECM_OVERHEAD + p.bytes.len()];
        let Ok(len) = ecm.emit(&mut buf) else {
            return;
        };
        buf.truncate(len);
        p.attempts += 1;
        p.next = now + p.wait;
        p.wait *= 2;
        self.counters.map_requests += 1;
        self.send_control(mr, CONTROL_PORT, buf);
    }

    /// Asks again for a mapping in use (TTL ending, locators down, rekey, SMR).
    fn refresh(&mut self, now: Instant, eid: Eid, addr: Ipv4Addr) {
        let target = (eid.iid, addr);
        if self.pending_by_target.contains_key(&target) {
            return;
        }
        if let Some(e) = self.cache.get_mut(&eid) {
            e.refreshing = true;
        }
        self.request(now, target, Why::Refresh);
    }

    fn handle_map_reply(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) {
        let Ok(rep) = MapReply::parse(msg) else {
            self.counters.ignored_control += 1;
            return;
        };
        if rep.probe {
            // A probe reply whose records are not all authoritative is discarded
            // (RFC 9301 §5.4).
            if rep.records.iter().any(|r| !r.authoritative) {
                self.counters.ignored_control += 1;
                return;
            }
            if let Some(p) = self.probes.get(&rep.nonce) {
                if p.rloc == *from.ip() {
                    let rloc = p.rloc;
                    self.probes.remove(&rep.nonce);
                    self.cache.set_rloc_up(rloc, true);
                    return;
                }
            }
        }
        let Some(p) = self.pending.remove(&rep.nonce) else {
            self.counters.ignored_control += 1;
            return;
        };
        self.pending_by_target.remove(&p.target);
        self.counters.map_replies += 1;
        // The resolver of the latest attempt answered (or forwarded to an ETR that did).
        let n = self.cfg.map_resolvers.len().max(1);
        self.resolver = (p.resolver + p.attempts.max(1) as usize - 1) % n;
        let (iid, addr) = p.target;
        let mut keys = p.keys;
        // Whether the answer gives the target somewhere to go (a negative answer
        // counts: it is cached). One that does not holds the next request back.
        let mut usable = false;
        for rec in rep.records.iter().filter(|r| r.eid.contains(iid, addr)) {
            let old = self.cache.get(&rec.eid).map(|e| e.last_used);
            // More specific entries for the target are stale now.
            while let Some(k) = self.cache.find(iid, addr, now) {
                if k.prefix.len() <= rec.eid.prefix.len() {
                    break;
                }
                self.cache.remove(&k);
            }
            if rec.locators.is_empty() {
                usable = true;
                self.counters.negative_replies += 1;
                let ttl = Duration::from_secs(u64::from(rec.ttl.min(u32::MAX / 60)) * 60)
                    .min(self.cfg.max_negative_ttl);
                self.cache.insert(Entry {
                    eid: rec.eid,
                    mapping: Mapping::Negative { action: rec.action },
                    expires: now + ttl,
                    installed: now,
                    last_used: old.unwrap_or(now),
                    refreshing: false,
                });
                continue;
            }
            let rlocs: Vec<Rloc> = rec
                .locators
                .iter()
                .filter_map(|l| {
                    Some(Rloc {
                        addr: l.rloc()?,
                        priority: l.priority,
                        weight: l.weight,
                        up: l.reachable,
                    })
                })
                .collect();
            usable |= !self.cfg.encrypt && rlocs.iter().any(|r| r.up && r.priority != 255);
            if self.cfg.encrypt {
                for l in &rec.locators {
                    let (Some(rloc), Some(k)) = (l.rloc(), l.key()) else {
                        continue;
                    };
                    if k.cipher_suite != SUITE_X25519_AES128_GCM {
                        continue;
                    }
                    let Some((kp, rekey)) = keys.take() else {
                        break;
                    };
                    let id = crypto::key_id_for(rekey, kp.public());
                    if let Some(key) = kp.agree(&k.public_key, &self.rng) {
                        usable = true;
                        self.counters.key_exchanges += 1;
                        self.encap_keys.insert(
                            rloc,
                            EncapKey {
                                id,
                                key,
                                since: now,
                            },
                        );
                    }
                }
            }
            let ttl = if rec.ttl == crate::wire::lisp::control::TTL_UNLIMITED {
                Duration::from_secs(86_400 * 365)
            } else {
                Duration::from_secs(u64::from(rec.ttl) * 60)
            };
            self.cache.insert(Entry {
                eid: rec.eid,
                mapping: Mapping::Positive(rlocs),
                expires: now + ttl,
                installed: now,
                last_used: old.unwrap_or(now),
                refreshing: false,
            });
        }
        if !usable {
            self.hold_down.insert(p.target, now + HOLD_DOWN);
        }
        self.flush_queue(now, p.target);
        self.report_cache();
        self.next_scan = self.next_scan.min(now);
    }

    fn flush_queue(&mut self, now: Instant, target: (u32, Ipv4Addr)) {
        let Some(q) = self.queue.remove(&target) else {
            return;
        };
        for pkt in q {
            let mut out = vec![0u8; pkt.len() + data::HEADER_LEN + crypto::OVERHEAD];
            if let Encap::Send { to, len, .. } = self.encap_inner(now, &pkt, &mut out, false) {
                out.truncate(len);
                self.actions.push_back(Action::SendData { to, bytes: out });
            }
        }
    }

    fn report_cache(&mut self) {
        if self.cache.len() != self.cache_reported {
            self.cache_reported = self.cache.len();
            self.actions.push_back(Action::MapCache {
                entries: self.cache_reported,
            });
        }
    }

    // ---- control messages in ------------------------------------------------------

    /// A message received on the control socket (UDP 4342).
    pub fn handle_control(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) {
        self.last_now = now;
        match message_type(msg) {
            Some(msg_type::MAP_REPLY) => self.handle_map_reply(now, from, msg),
            Some(msg_type::MAP_NOTIFY) => self.handle_notify(now, from, msg),
            Some(msg_type::MAP_REQUEST) => match MapRequest::parse(msg) {
                Ok(req) => self.handle_map_request(now, &req, *from.ip(), from.port(), false),
                Err(_) => self.counters.ignored_control += 1,
            },
            Some(msg_type::ECM) => {
                // Map-Requests forwarded by a map server; from nobody else.
                let trusted = self.cfg.map_servers.iter().any(|m| m.addr == *from.ip())
                    || self.cfg.map_resolvers.contains(from.ip());
                let inner = Ecm::parse(msg)
                    .ok()
                    .filter(|e| trusted && e.dst_port == CONTROL_PORT)
                    .and_then(|e| Some((e, MapRequest::parse(e.message).ok()?)));
                match inner {
                    Some((e, req)) => match req.reply_rloc() {
                        Some(itr) => self.handle_map_request(now, &req, itr, e.src_port, true),
                        None => self.counters.ignored_control += 1,
                    },
                    None => self.counters.ignored_control += 1,
                }
            }
            _ => self.counters.ignored_control += 1,
        }
    }

    /// A Map-Notify (RFC 9301 §5.7). One that acknowledges our Map-Register has its
    /// nonce, the map server's MAC, and records that are ours: matched by instance
    /// and EID prefix only, so a map server that echoes them with another IID
    /// mask-length (or re-encodes them) still acknowledges. An authenticated one with
    /// another nonce is unsolicited (or late): it gets a Map-Notify-Ack, the same
    /// message with its nonce, re-signed, so the map server stops repeating it.
    fn handle_notify(&mut self, now: Instant, from: SocketAddrV4, msg: &[u8]) {
        let Ok(n) = MapRegister::parse(msg) else {
            self.counters.bad_notifies += 1;
            return;
        };
        let gen = self.generation;
        let mut acked = None;
        let mut unsolicited = None;
        let mut duplicate = false;
        for (i, ms) in self.cfg.map_servers.iter().enumerate() {
            let r = &mut self.regs[i];
            if ms.addr != *from.ip() || !auth::verify(msg, &ms.key) {
                continue;
            }
            if r.nonce != Some(n.nonce) {
                if r.acked_nonce != Some(n.nonce) {
                    unsolicited = Some(i);
                } else {
                    duplicate = true;
                }
                continue;
            }
            if !n.records.iter().all(|rec| r.sent.contains(&rec.eid)) {
                continue;
            }
            // Report a change only: a new RLOC or EID set, or a recovery.
            let news = r.failed || r.acked.is_none_or(|(g, _)| g != r.generation);
            r.acked_nonce = r.nonce.take();
            r.attempts = 0;
            r.failed = false;
            if r.generation == gen {
                r.acked = Some((gen, now));
            }
            r.next = now + self.cfg.register_interval;
            acked = Some((ms.addr, news));
        }
        match (acked, unsolicited) {
            (Some((map_server, news)), _) => {
                self.counters.notifies += 1;
                if news {
                    self.actions.push_back(Action::Registered { map_server });
                }
                self.smr_timer(now);
            }
            (None, _) if duplicate => {}
            (None, Some(i)) => {
                let mut buf = vec![0u8; msg.len()];
                let key = &self.cfg.map_servers[i].key;
                match control::acknowledgement(msg, key, &mut buf) {
                    Ok(len) => {
                        buf.truncate(len);
                        self.counters.notify_acks += 1;
                        self.send_control(*from.ip(), from.port(), buf);
                    }
                    Err(_) => self.counters.bad_notifies += 1,
                }
            }
            (None, None) => self.counters.bad_notifies += 1,
        }
    }

    /// Answers a Map-Request as the ETR: probes, SMRs, and lookups for our EIDs
    /// (forwarded by a map server, `via_ms`, which is the only way keys are taken).
    fn handle_map_request(
        &mut self,
        now: Instant,
        req: &MapRequest,
        to: Ipv4Addr,
        port: u16,
        via_ms: bool,
    ) {
        if req.smr && !via_ms {
            self.handle_smr(now, req);
            return;
        }
        if req.dont_reply {
            // D: the sender wants no Map-Reply (RFC 9301 §5.2).
            self.counters.ignored_control += 1;
            return;
        }
        let Some(rloc) = self.rloc else {
            return;
        };
        let iid = self.cfg.instance_id;
        // An RLOC-probe that names no EID we can read (AFI 0) asks about us all.
        let any = req.probe && req.eids.is_empty();
        let ours: Vec<Ipv4Addr> = req
            .eids
            .iter()
            .filter(|e| e.iid == iid)
            .flat_map(|e| {
                self.eids
                    .iter()
                    .filter(move |ip| e.prefix.contains(**ip))
                    .copied()
            })
            .chain(self.eids.iter().filter(|_| any).copied())
            .take(RECORDS_PER_REGISTER)
            .collect();
        if ours.is_empty() {
            self.counters.ignored_control += 1;
            return;
        }
        let key = match (req.itr_key(), self.cfg.encrypt && via_ms && !req.probe) {
            (Some(k), true) if k.cipher_suite == SUITE_X25519_AES128_GCM => {
                self.key_exchange(now, to, k)
            }
            _ => None,
        };
        let records = ours
            .iter()
            .map(|ip| {
                let loc = self.our_locator(rloc, key.clone(), req.probe);
                self.our_record(*ip, loc)
            })
            .collect();
        let rep = MapReply {
            probe: req.probe,
            echo_nonce: false,
            security: false,
            nonce: req.nonce,
            records,
        };
        let mut buf = vec![0u8; 2048];
        if let Ok(n) = rep.emit(&mut buf) {
            buf.truncate(n);
            self.send_control(to, port, buf);
        }
    }

    /// A Solicit-Map-Request (RFC 9301 §6.1): its Source-EID is the sender's EID whose
    /// mapping changed; the map-cache entry that covers it is asked for again, by its
    /// own EID-prefix, with an SMR-invoked Map-Request through the map resolver
    /// (never the SMR's sender: it is not trusted), with the SMR's EID-record (ours)
    /// as Source-EID. An SMR for an EID not in the map-cache asks for nothing: it
    /// cannot fill the cache.
    fn handle_smr(&mut self, now: Instant, req: &MapRequest) {
        self.counters.smrs_received += 1;
        let iid = self.cfg.instance_id;
        let Some(addr) = Eid::from_address(&req.source_eid, 32)
            .ok()
            .filter(|e| e.iid == iid)
            .map(|e| e.prefix.addr())
        else {
            self.counters.ignored_control += 1;
            return;
        };
        let Some(entry) = self.cache.find(iid, addr, now) else {
            self.counters.ignored_control += 1;
            return;
        };
        let target = (iid, addr);
        if self.pending_by_target.contains_key(&target) {
            return;
        }
        let source = req
            .eids
            .iter()
            .filter(|e| e.iid == iid)
            .find_map(|e| self.eids.iter().find(|ip| e.prefix.contains(**ip)))
            .copied();
        if let Some(e) = self.cache.get_mut(&entry) {
            e.refreshing = true;
        }
        self.request_from(now, target, Why::SmrInvoked, source, Some(entry));
    }

    /// The ETR's half of the exchange; the same ITR key gets the same answer, so a
    /// retransmitted Map-Request does not change keys.
    fn key_exchange(
        &mut self,
        now: Instant,
        itr: Ipv4Addr,
        k: &SecurityKey,
    ) -> Option<SecurityKey> {
        let id = usize::from(crypto::key_id_for(k.rekey, &k.public_key));
        if !self.decap_keys.contains_key(&itr) && self.decap_keys.len() >= MAX_DECAP_PEERS {
            let oldest = self
                .decap_keys
                .iter()
                .min_by_key(|(_, d)| d.last)
                .map(|(a, _)| *a)?;
            self.decap_keys.remove(&oldest);
        }
        let slots = self.decap_keys.entry(itr).or_default();
        let public = match &slots.slots[id] {
            Some(s) if s.itr_public == k.public_key => s.etr_public,
            _ => {
                let kp = KeyPair::generate(&self.rng)?;
                let public = *kp.public();
                let key = kp.agree(&k.public_key, &self.rng)?;
                if !k.rekey {
                    slots.slots = Default::default();
                }
                slots.slots[id] = Some(DecapSlot {
                    key,
                    itr_public: k.public_key.clone(),
                    etr_public: public,
                });
                slots.last = Some(now);
                self.counters.key_exchanges += 1;
                public
            }
        };
        Some(SecurityKey {
            cipher_suite: SUITE_X25519_AES128_GCM,
            rekey: k.rekey,
            public_key: public.to_vec(),
        })
    }

    /// Solicit-Map-Requests after our RLOC changed (RFC 9301 §6.1): to each ITR we
    /// know (every locator of our map-cache, every RLOC that sent us traffic lately),
    /// one per EID of ours, with that EID as Source-EID (the mapping that changed) and
    /// as EID-records the remote EIDs behind that ITR (its own, which it can check is
    /// configured there). The ITR looks the Source-EID up again through the mapping
    /// system and finds our new RLOC.
    fn send_smrs(&mut self, now: Instant) {
        let Some(rloc) = self.rloc else {
            return;
        };
        if self.eids.is_empty() {
            return;
        }
        let iid = self.cfg.instance_id;
        let mut peers: BTreeMap<Ipv4Addr, BTreeSet<Eid>> = BTreeMap::new();
        for e in self.cache.iter() {
            if let Mapping::Positive(rs) = &e.mapping {
                for r in rs {
                    peers.entry(r.addr).or_default().insert(e.eid);
                }
            }
        }
        for (addr, (t, src)) in &self.recent {
            if now.saturating_duration_since(*t) >= RECENT_FOR {
                continue;
            }
            let eids = peers.entry(*addr).or_default();
            if !eids.iter().any(|e| e.contains(iid, *src)) {
                eids.insert(Eid::host(iid, *src));
            }
        }
        let ours: Vec<Eid> = self.eids.iter().map(|ip| Eid::host(iid, *ip)).collect();
        for (peer, theirs) in peers {
            let theirs: Vec<Eid> = theirs.into_iter().collect();
            for chunk in theirs.chunks(RECORDS_PER_REGISTER) {
                for our in &ours {
                    let req = MapRequest {
                        authoritative: false,
                        probe: false,
                        smr: true,
                        pitr: false,
                        smr_invoked: false,
                        local_xtr: false,
                        // An SMR wants no Map-Reply (RFC 9301 §5.2).
                        dont_reply: true,
                        nonce: self.nonce(),
                        source_eid: our.address(),
                        itr_rlocs: vec![Address::Ipv4(rloc)],
                        eids: chunk.to_vec(),
                        map_reply: None,
                    };
                    let mut buf = vec![0u8; 1500];
                    if let Ok(n) = req.emit(&mut buf) {
                        buf.truncate(n);
                        self.counters.smrs_sent += 1;
                        self.send_control(peer, CONTROL_PORT, buf);
                    }
                }
            }
        }
    }

    // ---- timers -------------------------------------------------------------------

    /// The next action: queued ones first, then whatever timers are due at `now`.
    /// Call until it returns `None` after every other call and at `poll_timeout`.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        self.last_now = now;
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        self.run_timers(now);
        self.actions.pop_front()
    }

    /// When `poll` next has work (`None`: only on input).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(self.last_now);
        }
        let mut t = Some(self.next_scan);
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if self.rloc.is_some() {
            self.regs.iter().for_each(|r| min(r.next));
        }
        self.pending.values().for_each(|p| min(p.next));
        if let Some(due) = self.smr_due {
            min(due);
        }
        self.probes.values().for_each(|p| min(p.deadline));
        if !self.cfg.probe_interval.is_zero() && !self.cache.is_empty() {
            min(self.next_probe);
        }
        t
    }

    fn run_timers(&mut self, now: Instant) {
        self.registration_timers(now);
        self.smr_timer(now);
        self.request_timers(now);
        self.probe_timers(now);
        if now >= self.next_scan {
            self.scan_cache(now);
        }
    }

    fn registration_timers(&mut self, now: Instant) {
        let Some(rloc) = self.rloc else {
            return;
        };
        for i in 0..self.regs.len() {
            if self.regs[i].next > now {
                continue;
            }
            if self.regs[i].nonce.is_some() && self.regs[i].attempts >= self.cfg.register_attempts {
                let r = &mut self.regs[i];
                r.nonce = None;
                r.attempts = 0;
                r.next = now + self.cfg.register_interval;
                if !r.failed {
                    r.failed = true;
                    self.actions.push_back(Action::RegistrationFailed {
                        map_server: self.cfg.map_servers[i].addr,
                    });
                }
                continue;
            }
            if self.eids.is_empty() {
                self.regs[i].next = now + self.cfg.register_interval;
                continue;
            }
            // A retransmission is the original Map-Register, nonce and all (RFC 9301
            // §5.7), so a late Map-Notify for it still counts; new content gets a
            // new nonce.
            let nonce = match self.regs[i].nonce {
                Some(n) if self.regs[i].generation == self.generation => n,
                _ => self.nonce(),
            };
            let ms = self.cfg.map_servers[i].clone();
            let ips: Vec<Ipv4Addr> = self.eids.iter().copied().collect();
            for chunk in ips.chunks(RECORDS_PER_REGISTER) {
                let records = chunk
                    .iter()
                    .map(|ip| self.our_record(*ip, self.our_locator(rloc, None, false)))
                    .collect();
                let reg = MapRegister {
                    proxy_reply: self.cfg.proxy_reply && !self.cfg.encrypt,
                    want_notify: true,
                    use_ttl: false,
                    nonce,
                    key_id: 0,
                    alg: ms.auth,
                    records,
                    xtr_id: None,
                };
                let mut buf = vec![0u8; 2048];
                if let Ok(n) = reg.emit_register(&mut buf, &ms.key) {
                    buf.truncate(n);
                    self.counters.registers += 1;
                    self.send_control(ms.addr, CONTROL_PORT, buf);
                }
            }
            let iid = self.cfg.instance_id;
            let r = &mut self.regs[i];
            r.nonce = Some(nonce);
            r.sent = ips.iter().map(|ip| Eid::host(iid, *ip)).collect();
            r.generation = self.generation;
            r.attempts += 1;
            // Waits double (RFC 9301 §5.7), within the registration interval.
            let backoff = self
                .cfg
                .notify_timeout
                .saturating_mul(1 << (r.attempts - 1).min(6))
                .min(self.cfg.register_interval)
                .min(MAX_REGISTER_BACKOFF);
            r.next = now + backoff;
        }
    }

    fn request_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(n, _)| *n)
            .collect();
        for nonce in due {
            let attempts = self.pending.get(&nonce).map_or(0, |p| p.attempts);
            if attempts < self.cfg.request_attempts {
                self.send_pending(now, nonce);
                continue;
            }
            if let Some(p) = self.pending.remove(&nonce) {
                self.pending_by_target.remove(&p.target);
                self.queue.remove(&p.target);
                if p.why == Why::Miss {
                    self.hold_down.insert(p.target, now + HOLD_DOWN);
                }
                if let Some(k) = self.cache.find(p.target.0, p.target.1, now) {
                    if let Some(e) = self.cache.get_mut(&k) {
                        e.refreshing = false;
                    }
                }
            }
        }
    }

    fn probe_timers(&mut self, now: Instant) {
        let lost: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in lost {
            if let Some(p) = self.probes.remove(&n) {
                self.counters.probes_lost += 1;
                self.cache.set_rloc_up(p.rloc, false);
                self.next_scan = now;
            }
        }
        if self.cfg.probe_interval.is_zero() || now < self.next_probe {
            return;
        }
        self.next_probe = now + self.cfg.probe_interval;
        let Some(rloc) = self.rloc else {
            return;
        };
        for (peer, eid) in self.cache.rlocs() {
            if self.probes.values().any(|p| p.rloc == peer) {
                continue;
            }
            let nonce = self.nonce();
            let req = MapRequest {
                authoritative: false,
                probe: true,
                smr: false,
                pitr: false,
                smr_invoked: false,
                local_xtr: false,
                dont_reply: false,
                nonce,
                source_eid: Address::None,
                itr_rlocs: vec![Address::Ipv4(rloc)],
                eids: vec![eid],
                map_reply: None,
            };
            let mut buf = vec![0u8; 256];
            if let Ok(n) = req.emit(&mut buf) {
                buf.truncate(n);
                self.probes.insert(
                    nonce,
                    Probe {
                        rloc: peer,
                        deadline: now + self.cfg.probe_timeout,
                    },
                );
                self.counters.probes_sent += 1;
                self.send_control(peer, CONTROL_PORT, buf);
            }
        }
    }

    /// Expiry, refresh before expiry of mappings in use, rekeying, and re-lookup of
    /// mappings whose locators are all down.
    fn scan_cache(&mut self, now: Instant) {
        self.cache.expire(now);
        self.hold_down.retain(|_, t| *t > now);
        self.recent
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < RECENT_FOR);
        let mut next = now + Duration::from_secs(3600);
        let mut todo = Vec::new();
        for e in self.cache.iter() {
            next = next.min(e.expires);
            let Mapping::Positive(rs) = &e.mapping else {
                continue;
            };
            let life = e.expires.saturating_duration_since(e.installed);
            // Only mappings used in the second half of their life are kept alive.
            if e.refreshing || now.saturating_duration_since(e.last_used) > life / 2 {
                continue;
            }
            let refresh_at = e.installed + life.mul_f32(0.9);
            let all_down = !rs.iter().any(|r| r.up && r.priority != cache::UNUSABLE);
            let stale_key = self.cfg.encrypt
                && rs.iter().any(|r| {
                    self.encap_keys.get(&r.addr).is_some_and(|k| {
                        now.saturating_duration_since(k.since) >= self.cfg.rekey_interval
                    })
                });
            if all_down || stale_key || now >= refresh_at {
                todo.push(e.eid);
            } else {
                next = next.min(refresh_at);
            }
        }
        for eid in todo {
            let addr = if eid.prefix.len() == 32 {
                eid.prefix.addr()
            } else {
                eid.prefix.first_host()
            };
            self.refresh(now, eid, addr);
        }
        if let Some(k) = self
            .encap_keys
            .values()
            .map(|k| k.since + self.cfg.rekey_interval)
            .min()
        {
            next = next.min(k.max(now + Duration::from_secs(1)));
        }
        self.next_scan = next.max(now + Duration::from_millis(100));
        self.report_cache();
    }
}
