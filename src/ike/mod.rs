//! IKEv2 (RFC 7296) for one peer: one IKE SA and its CHILD SAs, as a sans-I/O state
//! machine in the style of boringtun's `noise::Tunn`. The shell owns the UDP sockets,
//! the clock and the ESP data path; [`Ike`] owns the protocol.
//!
//! Driving it:
//! - IKE messages received on UDP 500, or on 4500 after the non-ESP marker is
//!   stripped (see [`crate::wire::esp::classify`]), go to [`Ike::handle`] with the local
//!   and remote socket addresses they travelled between.
//! - After every call, and when [`Ike::poll_timeout`] passes, drain [`Ike::poll`] until
//!   it returns `None` and act on each [`Event`].
//! - [`Event::Send`] carries an IKE message: send it from `local` to `remote`, behind
//!   the non-ESP marker when `nat_t` is set (any port but 500).
//! - [`Event::ChildUp`], [`Event::ChildRekeyed`], [`Event::ChildSend`] and
//!   [`Event::ChildDown`] install, switch and remove ESP SAs ([`crate::esp`]); the ESP
//!   SAs' soft and hard expiries come back through [`Ike::esp_expired`]. ESP goes
//!   UDP-encapsulated from the NAT-T socket to [`ChildSa::peer`]; inbound ESP is found
//!   by SPI among all installed inbound SAs (old ones stay until their `ChildDown`).
//! - [`Event::Keepalive`]: send the one byte 0xFF from the NAT-T socket.
//! - [`Event::PeerMoved`]: send ESP to the new address from now on.
//! - The shell reports the ESP it moves, once per batch: [`Ike::esp_sent`] after
//!   sealing and sending, [`Ike::esp_received`] after an inbound packet opened (it
//!   authenticated and was not a replay). ESP that keeps going out with none coming
//!   back for `esp_silence` makes the core check liveness at once (a NAT that changed its
//!   mapping shows this way).
//! - The core never reads a clock: every call takes `now` (monotonic).
//!
//! What it does: IKE_SA_INIT (x25519 or ecp256, INVALID_KE_PAYLOAD retry, COOKIE as
//! both roles, NAT detection), IKE_AUTH with a pre-shared key and the first CHILD SA,
//! CREATE_CHILD_SA for CHILD SA rekeys (optional PFS), new CHILD SAs and IKE SA
//! rekeys, with simultaneous rekeys resolved per §2.8.1/§2.8.2, INFORMATIONAL for DPD
//! and deletes (and when ESP goes unanswered), retransmission with exponential backoff, replies to retransmitted
//! requests from a cache, a window of one. Everything is on UDP 4500 from the first
//! message (§2.23 allows it), and ESP is always UDP-encapsulated: as responder econet
//! claims to be behind a NAT (as strongSwan's `encap = yes` does) so the peer
//! encapsulates too.
//!
//! Not done: certificates, EAP, MOBIKE (a port failover means a new IKE SA), IKE
//! fragmentation, IPv6, more than one message in flight, CP (no virtual addresses).

mod crypto;
pub mod failover;
mod machine;
mod message;
mod proposal;
mod ts;

#[cfg(test)]
mod tests;

pub use crypto::{Group, SecretBytes};
pub use machine::Ike;

use crate::addr::Ipv4Net;
use crate::config::model::Vpn;
use crate::esp::{EspKeys, Lifetime};
use crate::wire::ike::{id_type, Id};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// An IKE identity: ID_IPV4_ADDR when the text is an IPv4 address, ID_RFC822_ADDR when
/// it holds an `@` (as strongSwan reads such text), ID_FQDN otherwise.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity(Id);

impl Identity {
    pub fn parse(text: &str) -> Identity {
        Identity(if let Ok(a) = text.parse::<Ipv4Addr>() {
            Id {
                id_type: id_type::IPV4_ADDR,
                data: a.octets().to_vec(),
            }
        } else if text.contains('@') {
            Id {
                id_type: id_type::RFC822_ADDR,
                data: text.as_bytes().to_vec(),
            }
        } else {
            Id {
                id_type: id_type::FQDN,
                data: text.as_bytes().to_vec(),
            }
        })
    }

    pub fn id(&self) -> &Id {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.id_type, self.0.data.as_slice()) {
            (id_type::IPV4_ADDR, &[a, b, c, d]) => write!(f, "{}", Ipv4Addr::new(a, b, c, d)),
            (_, data) => f.write_str(&String::from_utf8_lossy(data)),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Everything one peer's IKE needs. Times are durations so tests can use short ones.
#[derive(Debug, Clone)]
pub struct IkeConfig {
    /// Start the IKE SA ([`Ike::connect`]) and reconnect after failures; otherwise
    /// wait for the peer.
    pub initiator: bool,
    pub local_id: Identity,
    pub remote_id: Identity,
    pub psk: SecretBytes,
    /// Our side of the tunnel (the network's subnet).
    pub local_ts: Vec<Ipv4Net>,
    /// The far side (`remote_subnets`).
    pub remote_ts: Vec<Ipv4Net>,
    /// Where we send from as initiator (the active port's address, port 4500).
    pub local: SocketAddrV4,
    /// The VPN gateway (port 4500).
    pub remote: SocketAddrV4,
    /// When the IKE SA is rekeyed; it is dropped at 110% if rekeying fails. The
    /// original responder waits 5% longer so the two ends rarely collide.
    pub ike_lifetime: Duration,
    /// Likewise for CHILD SAs.
    pub child_lifetime: Duration,
    /// A byte limit for CHILD SAs (rekey at 90%), enforced by the ESP SAs.
    pub child_lifetime_bytes: Option<u64>,
    /// Idle time after which a liveness check (an empty INFORMATIONAL) is sent.
    pub dpd: Duration,
    /// ESP that keeps going out with none received for this long: a liveness check at
    /// once, whatever `dpd` says. A NAT in front of us that changed its mapping shows this way (the
    /// peer keeps sending to the old one), and the check, sent from the new mapping,
    /// moves the peer there (§2.23). While the peer answers and ESP stays one-way,
    /// the wait doubles, up to `dpd`. Zero disables.
    pub esp_silence: Duration,
    /// NAT keepalive interval when a NAT is detected on either side; zero disables.
    pub keepalive: Duration,
    /// Key exchange groups in preference order; the first is used in the first KE.
    pub groups: Vec<Group>,
    /// Perfect forward secrecy for CHILD SA rekeys and new CHILD SAs.
    pub child_pfs: Option<Group>,
    /// First retransmission after this; each further one waits twice as long.
    pub retransmit_base: Duration,
    /// Retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// Initiator: first wait before reconnecting after the IKE SA went down (doubles
    /// up to `reconnect_max`); `None` leaves reconnecting to the shell.
    pub reconnect: Option<Duration>,
    pub reconnect_max: Duration,
    /// How long a rekeyed CHILD SA's inbound SA stays installed after it was deleted,
    /// for packets still in flight (make-before-break).
    pub rekey_linger: Duration,
    /// Half-open IKE SAs (responder) beyond which a COOKIE is demanded.
    pub cookie_threshold: usize,
    /// Half-open IKE SAs kept at most (the oldest is dropped).
    pub max_half_open: usize,
    /// Claim to be behind a NAT so the peer always UDP-encapsulates ESP (econet's
    /// data path only speaks UDP-encapsulated ESP).
    pub force_encap: bool,
}

impl IkeConfig {
    /// Defaults: IKE SA 4 h, CHILD SA 1 h, DPD 30 s, a liveness check after 2 s of
    /// unanswered ESP, keepalives 20 s, groups x25519 then ecp256, no PFS, retransmits
    /// after 2, 4, … 64 s (about 2 min in all).
    pub fn new(
        initiator: bool,
        local_id: &str,
        remote_id: &str,
        psk: &[u8],
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> IkeConfig {
        IkeConfig {
            initiator,
            local_id: Identity::parse(local_id),
            remote_id: Identity::parse(remote_id),
            psk: SecretBytes::from(psk),
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            local,
            remote,
            ike_lifetime: Duration::from_secs(14_400),
            child_lifetime: Duration::from_secs(3_600),
            child_lifetime_bytes: None,
            dpd: Duration::from_secs(30),
            esp_silence: Duration::from_secs(2),
            keepalive: Duration::from_secs(20),
            groups: vec![Group::X25519, Group::Ecp256],
            child_pfs: None,
            retransmit_base: Duration::from_secs(2),
            retransmit_tries: 5,
            reconnect: Some(Duration::from_secs(2)),
            reconnect_max: Duration::from_secs(120),
            rekey_linger: Duration::from_secs(5),
            cookie_threshold: 8,
            max_half_open: 32,
            force_encap: true,
        }
    }

    /// From a cloud network's `vpn` block: `local` is the active port's address,
    /// `local_subnet` the network's subnet.
    pub fn from_vpn(vpn: &Vpn, local: Ipv4Addr, local_subnet: Ipv4Net) -> IkeConfig {
        let port = crate::wire::esp::NAT_T_PORT;
        let mut c = IkeConfig::new(
            vpn.initiator,
            &vpn.local_id,
            &vpn.remote_id,
            vpn.psk.expose().as_bytes(),
            SocketAddrV4::new(local, port),
            SocketAddrV4::new(vpn.remote, port),
        );
        c.local_ts = vec![local_subnet];
        c.remote_ts = vpn.remote_subnets.clone();
        c.ike_lifetime = Duration::from_secs(vpn.ike_lifetime_secs.into());
        c.child_lifetime = Duration::from_secs(vpn.child_lifetime_secs.into());
        c.dpd = Duration::from_secs(vpn.dpd_secs.into());
        c.esp_silence = c.esp_silence.min(c.dpd);
        // A dead peer is declared after the retransmits of a DPD probe run out; a short
        // DPD interval asks for quick detection, so the retransmits scale with it.
        c.retransmit_base = (c.dpd / 8).clamp(Duration::from_millis(250), Duration::from_secs(2));
        c
    }
}

/// An IKE message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Prefix the non-ESP marker (four zero bytes): the message goes over the NAT-T
    /// socket (any local port but 500).
    pub nat_t: bool,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// The SPIs of a CHILD SA: `inbound` is ours (in ESP packets we receive), `outbound`
/// the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildSpis {
    pub inbound: u32,
    pub outbound: u32,
}

/// A CHILD SA for the data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    pub inbound: EspKeys,
    pub outbound: EspKeys,
    /// Our side's prefixes (sources of outbound traffic).
    pub ts_local: Vec<Ipv4Net>,
    /// The far side's prefixes (destinations of outbound traffic).
    pub ts_remote: Vec<Ipv4Net>,
    /// Where ESP goes (UDP-encapsulated, from our NAT-T port).
    pub peer: SocketAddrV4,
    /// Limits for both ESP SAs; time limits are the core's own backstop (it rekeys on
    /// time itself), byte limits are only enforced by the ESP SAs.
    pub lifetime: Lifetime,
}

impl ChildSa {
    pub fn spis(&self) -> ChildSpis {
        ChildSpis {
            inbound: self.inbound.spi,
            outbound: self.outbound.spi,
        }
    }
}

/// Why a CHILD SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildDownReason {
    /// Replaced by a rekey (the new SA is already installed).
    Rekeyed,
    /// The peer deleted it.
    PeerDeleted,
    /// Its hard lifetime passed.
    Expired,
    /// We closed it, or a redundant SA from a rekey collision was removed.
    Closed,
    /// The IKE SA went down with it.
    IkeDown,
}

/// Why the IKE SA went down (or never came up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Wrong PSK or identity, either side.
    AuthFailed,
    /// No acceptable proposal, or an unworkable key exchange.
    NoProposal,
    /// The peer refused our CHILD SA in IKE_AUTH (the notify type).
    ChildRejected(u16),
    /// The peer refused IKE_SA_INIT or IKE_AUTH with this error notify.
    Rejected(u16),
    PeerDeleted,
    /// A liveness check went unanswered.
    DpdTimeout,
    /// Another request went unanswered.
    RetransmitExhausted,
    /// The IKE SA's hard lifetime passed without a successful rekey.
    Expired,
    /// [`Ike::close`].
    Closed,
    /// The peer authenticated a new IKE SA, replacing this one (it restarted).
    Replaced,
    /// The system's random number generator failed.
    Crypto,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Send(Datagram),
    /// Send a NAT keepalive (the single byte 0xFF) from `local` to `remote`.
    Keepalive {
        local: SocketAddrV4,
        remote: SocketAddrV4,
    },
    /// The IKE SA is established (first time or after a reconnect).
    IkeUp {
        remote: SocketAddrV4,
        /// NAT detected in front of us / in front of the peer (a claimed NAT counts).
        nat_local: bool,
        nat_remote: bool,
    },
    /// A new CHILD SA: install both ESP SAs and send matching traffic on its outbound.
    ChildUp(ChildSa),
    /// A rekey made `new` to replace `old` (make-before-break): install both of `new`'s
    /// ESP SAs now. `send`: send on `new`'s outbound SA from now on (we started the
    /// rekey). Otherwise keep sending on `old` until [`Event::ChildSend`] names `new`:
    /// the peer started the rekey and may not have installed its inbound SA yet, so we
    /// switch when it deletes `old` (as strongSwan does). A `new` from a rekey collision
    /// that lost (§2.8.1) never gets a `ChildSend`, only its `ChildDown`. `old`'s
    /// inbound SA stays until its own `ChildDown` (after its DELETE plus
    /// `rekey_linger`).
    ChildRekeyed {
        old: ChildSpis,
        new: ChildSa,
        send: bool,
    },
    /// Send on this installed CHILD SA's outbound SA from now on.
    ChildSend {
        spis: ChildSpis,
    },
    /// An authenticated request came from a new address (a NAT in front of the peer
    /// changed its mapping, §2.23): IKE answers there from now on, and ESP must go
    /// there too.
    PeerMoved {
        remote: SocketAddrV4,
    },
    /// Remove both ESP SAs of this CHILD SA.
    ChildDown {
        spis: ChildSpis,
        reason: ChildDownReason,
    },
    /// The IKE SA is gone (all CHILD SAs went down just before), or a connection
    /// attempt failed. An initiator reconnects by itself when `reconnect` is set.
    IkeDown {
        reason: DownReason,
    },
}

/// The IKE SA's state as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No IKE SA and no attempt under way.
    Idle,
    /// IKE_SA_INIT / IKE_AUTH under way (as initiator).
    Connecting,
    Established,
    /// A DELETE was sent ([`Ike::close`]).
    Closing,
}

/// One CHILD SA as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    pub spis: ChildSpis,
    pub ts_local: Vec<Ipv4Net>,
    pub ts_remote: Vec<Ipv4Net>,
    pub age: Duration,
    /// Still in use (not replaced or being deleted).
    pub active: bool,
}

/// A snapshot for status reports; no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub spi_i: u64,
    pub spi_r: u64,
    pub remote: SocketAddrV4,
    /// Since the current IKE SA was established (rekeys restart it).
    pub ike_age: Option<Duration>,
    /// Since the first IKE SA of this connection was established.
    pub up_for: Option<Duration>,
    pub ike_rekeys: u32,
    pub child_rekeys: u32,
    pub nat_local: bool,
    pub nat_remote: bool,
    pub children: Vec<ChildStatus>,
    pub last_down: Option<DownReason>,
}

/// Why [`Ike::handle`] ignored a message (for logs and counters; the message is simply
/// dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not a well-formed IKEv2 message.
    Malformed(crate::wire::Error),
    /// No IKE SA with these SPIs.
    UnknownSa,
    /// A response to nothing we sent, a stale message ID, or a message the SA's state
    /// does not allow.
    Unexpected,
    /// The SK payload did not verify.
    Integrity,
}

impl From<crate::wire::Error> for Error {
    fn from(e: crate::wire::Error) -> Error {
        Error::Malformed(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(e) => write!(f, "malformed IKE message: {e}"),
            Error::UnknownSa => f.write_str("unknown IKE SA"),
            Error::Unexpected => f.write_str("unexpected IKE message"),
            Error::Integrity => f.write_str("IKE message failed its integrity check"),
        }
    }
}

impl std::error::Error for Error {}
