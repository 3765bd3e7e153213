//! DHCPv6 messages (RFC 8415): the client/server format (message type, 24-bit
//! transaction id, options) and the options a server needs, plus the relay format
//! read far enough to be refused.
//!
//! Options are read with [`OptionsIter`], which never panics: it yields
//! `Err(Truncated)` once for an option running past its region, then stops. The same
//! iterator walks the options nested in IA_NA, IA_TA, IA_PD and IA Address.
//! [`Repr::parse`] validates every option it knows (so the views it returns, such as
//! [`DomainList`], iterate without failing) and skips the rest; for a singleton option
//! sent twice the first wins, as in [`super::dhcp`].
//!
//! [`Repr::emit`] writes options in one fixed order (client id, server id, rapid
//! commit, the IAs, status, preference, elapsed time, reconfigure accept, ORO,
//! information refresh time, domain list, DNS servers, client FQDN), which is the
//! order dnsmasq writes its replies in: parse then emit gives its bytes back. Client
//! messages come in each client's own order, and with options this module does not
//! know (vendor class), so for them only the meaning survives.
//!
//! Checked by hand with Wireshark's dissector (tshark 4.0.17): the 41 distinct
//! replies the server core emits in its tests (Advertise, Reply, rapid commit,
//! several IA_NA with IA_TA and IA_PD, zero lifetimes, every status code it sends),
//! as a pcap, show no malformed packet and no expert item at all:
//!
//! ```text
//! ECONET_DHCP6_HEX=1 cargo test --lib dhcp6::tests -- --nocapture --test-threads=1 \
//!     | grep -oE '0[0-9a-d][0-9a-f]{7,}$' | sort -u > msgs.hex
//! sed 's/../& /g;s/^/000000 /' msgs.hex | text2pcap -6 fe80::1,fe80::2 -u 547,546 - x.pcap
//! tshark -r x.pcap -q -z expert                              # no Errors/Warnings
//! tshark -r x.pcap -Y '_ws.malformed || _ws.expert' | wc -l  # 0
//! ```
//!
//! (The same pipeline flags a status option one byte short, or a one-byte DUID.)

use super::{Error, Result};
use std::net::Ipv6Addr;

pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// Where clients send: All_DHCP_Relay_Agents_and_Servers.
pub const ALL_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// RFC 8415 §11.1: a DUID is at most 128 octets, not counting its type code.
pub const MAX_DUID_LEN: usize = 130;

/// Option codes.
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const AUTH: u16 = 11;
    pub const UNICAST: u16 = 12;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const RECONF_MSG: u16 = 19;
    pub const RECONF_ACCEPT: u16 = 20;
    /// RFC 3646.
    pub const DNS_SERVERS: u16 = 23;
    /// RFC 3646.
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
    /// RFC 4704.
    pub const CLIENT_FQDN: u16 = 39;
    pub const SOL_MAX_RT: u16 = 82;
    pub const INF_MAX_RT: u16 = 83;
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const MSG_TYPE: usize = 0;
    pub const TRANSACTION_ID: Range<usize> = 1..4;
    pub const OPTIONS: RangeFrom<usize> = 4..;
    // Relay-forward and relay-reply.
    pub const HOP_COUNT: usize = 1;
    pub const LINK_ADDRESS: Range<usize> = 2..18;
    pub const PEER_ADDRESS: Range<usize> = 18..34;
    pub const RELAY_OPTIONS: RangeFrom<usize> = 34..;
}

/// Length of the client/server header.
pub const HEADER_LEN: usize = field::OPTIONS.start;
/// Length of the relay header.
pub const RELAY_HEADER_LEN: usize = field::RELAY_OPTIONS.start;
/// Bound on the IA options (of each kind) [`Repr::parse`] accepts in one message.
pub const MAX_IAS: usize = 16;
/// Bound on the addresses [`Repr::parse`] accepts in one IA.
pub const MAX_IA_ADDRS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> MessageType {
        match v {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            10 => MessageType::Reconfigure,
            11 => MessageType::InformationRequest,
            12 => MessageType::RelayForw,
            13 => MessageType::RelayRepl,
            o => MessageType::Unknown(o),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Confirm => 4,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Decline => 9,
            MessageType::Reconfigure => 10,
            MessageType::InformationRequest => 11,
            MessageType::RelayForw => 12,
            MessageType::RelayRepl => 13,
            MessageType::Unknown(o) => o,
        }
    }
}

impl MessageType {
    pub fn is_relay(self) -> bool {
        matches!(self, MessageType::RelayForw | MessageType::RelayRepl)
    }
}

/// Status codes (option 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Success,
    UnspecFail,
    NoAddrsAvail,
    NoBinding,
    NotOnLink,
    UseMulticast,
    NoPrefixAvail,
    Unknown(u16),
}

impl From<u16> for StatusCode {
    fn from(v: u16) -> StatusCode {
        match v {
            0 => StatusCode::Success,
            1 => StatusCode::UnspecFail,
            2 => StatusCode::NoAddrsAvail,
            3 => StatusCode::NoBinding,
            4 => StatusCode::NotOnLink,
            5 => StatusCode::UseMulticast,
            6 => StatusCode::NoPrefixAvail,
            o => StatusCode::Unknown(o),
        }
    }
}

impl From<StatusCode> for u16 {
    fn from(v: StatusCode) -> u16 {
        match v {
            StatusCode::Success => 0,
            StatusCode::UnspecFail => 1,
            StatusCode::NoAddrsAvail => 2,
            StatusCode::NoBinding => 3,
            StatusCode::NotOnLink => 4,
            StatusCode::UseMulticast => 5,
            StatusCode::NoPrefixAvail => 6,
            StatusCode::Unknown(o) => o,
        }
    }
}

/// One option as found in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    pub kind: u16,
    pub data: &'a [u8],
}

/// Walks a region of options (a message's, or those nested in an IA). Yields
/// `Err(Truncated)` once for an option running past the region, then stops.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> OptionsIter<'a> {
    pub fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter {
            buf: options,
            pos: 0,
        }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<DhcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let head = rest.get(..4)?;
            let kind = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let data = rest.get(4..4 + len)?;
            Some(DhcpOption { kind, data })
        })();
        match parsed {
            Some(o) => {
                self.pos += 4 + o.data.len();
                Some(Ok(o))
            }
            None => {
                // Stop for good: nothing after a broken option can be trusted.
                self.pos = self.buf.len();
                Some(Err(Error::Truncated))
            }
        }
    }
}

/// A read/write view of a DHCPv6 message (client/server or relay format).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(..16) {
        a.copy_from_slice(s);
    }
    Ipv6Addr::from(a)
}

fn be32(b: &[u8]) -> u32 {
    match b.get(..4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn be16(b: &[u8]) -> u16 {
    match b.get(..2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header of the message's format is there (options may be empty).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let need = match b.first() {
            None => return Err(Error::Truncated),
            Some(&t) if MessageType::from(t).is_relay() => RELAY_HEADER_LEN,
            Some(_) => HEADER_LEN,
        };
        if b.len() < need {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.b().get(field::MSG_TYPE).copied().unwrap_or(0))
    }
    /// The 24-bit transaction id (client/server format).
    pub fn transaction_id(&self) -> u32 {
        match self.b().get(field::TRANSACTION_ID) {
            Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
            _ => 0,
        }
    }
    /// The options of a client/server message.
    pub fn options(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.b().get(field::OPTIONS).unwrap_or(&[]))
    }
    /// Relay format: hop count.
    pub fn hop_count(&self) -> u8 {
        self.b().get(field::HOP_COUNT).copied().unwrap_or(0)
    }
    /// Relay format: link address.
    pub fn link_address(&self) -> Ipv6Addr {
        ip6(self.b().get(field::LINK_ADDRESS).unwrap_or(&[]))
    }
    /// Relay format: peer address.
    pub fn peer_address(&self) -> Ipv6Addr {
        ip6(self.b().get(field::PEER_ADDRESS).unwrap_or(&[]))
    }
    /// Relay format: its options.
    pub fn relay_options(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.b().get(field::RELAY_OPTIONS).unwrap_or(&[]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_msg_type(&mut self, v: MessageType) {
        if let Some(b) = self.bm().get_mut(field::MSG_TYPE) {
            *b = u8::from(v);
        }
    }
    /// Sets the 24-bit transaction id (higher bits are dropped).
    pub fn set_transaction_id(&mut self, v: u32) {
        if let Some(b) = self.bm().get_mut(field::TRANSACTION_ID) {
            b.copy_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        self.bm().get_mut(field::OPTIONS).unwrap_or(&mut [])
    }
}

/// The kinds of DUID (RFC 8415 §11, RFC 6355), as a view of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuidKind<'a> {
    /// Type 1: hardware type, time (seconds since 2000-01-01 UTC), link-layer address.
    Llt {
        hw_type: u16,
        time: u32,
        ll_addr: &'a [u8],
    },
    /// Type 2: enterprise number and identifier.
    En { enterprise: u32, id: &'a [u8] },
    /// Type 3: hardware type and link-layer address.
    Ll { hw_type: u16, ll_addr: &'a [u8] },
    /// Type 4 (RFC 6355).
    Uuid([u8; 16]),
    /// Another type, or a known type whose body has the wrong size.
    Other { kind: u16, body: &'a [u8] },
}

pub const DUID_LLT: u16 = 1;
pub const DUID_EN: u16 = 2;
pub const DUID_LL: u16 = 3;
pub const DUID_UUID: u16 = 4;
pub const HW_ETHERNET: u16 = 1;

/// A DUID: opaque bytes (identity compares bytes), with a parsed view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duid<'a>(&'a [u8]);

impl<'a> Duid<'a> {
    /// A type code and at least one byte, at most [`MAX_DUID_LEN`].
    pub fn from_bytes(b: &'a [u8]) -> Result<Duid<'a>> {
        if b.len() < 3 || b.len() > MAX_DUID_LEN {
            return Err(Error::Malformed);
        }
        Ok(Duid(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn kind(&self) -> DuidKind<'a> {
        let kind = be16(self.0);
        let body = self.0.get(2..).unwrap_or(&[]);
        match (kind, body.len()) {
            (DUID_LLT, 7..) => DuidKind::Llt {
                hw_type: be16(body),
                time: be32(body.get(2..).unwrap_or(&[])),
                ll_addr: body.get(6..).unwrap_or(&[]),
            },
            (DUID_EN, 5..) => DuidKind::En {
                enterprise: be32(body),
                id: body.get(4..).unwrap_or(&[]),
            },
            (DUID_LL, 3..) => DuidKind::Ll {
                hw_type: be16(body),
                ll_addr: body.get(2..).unwrap_or(&[]),
            },
            (DUID_UUID, 16) => {
                let mut u = [0u8; 16];
                u.copy_from_slice(body);
                DuidKind::Uuid(u)
            }
            _ => DuidKind::Other { kind, body },
        }
    }

    /// The bytes of a DUID-LL for an Ethernet MAC.
    pub fn ll_ethernet(mac: [u8; 6]) -> [u8; 10] {
        let mut d = [0u8; 10];
        d[..2].copy_from_slice(&DUID_LL.to_be_bytes());
        d[2..4].copy_from_slice(&HW_ETHERNET.to_be_bytes());
        d[4..].copy_from_slice(&mac);
        d
    }

    /// The bytes of a DUID-UUID (RFC 6355).
    pub fn uuid(uuid: [u8; 16]) -> [u8; 18] {
        let mut d = [0u8; 18];
        d[..2].copy_from_slice(&DUID_UUID.to_be_bytes());
        d[2..].copy_from_slice(&uuid);
        d
    }
}

/// Option 13: a code and a UTF-8 message (bytes as sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: StatusCode,
    pub message: &'a [u8],
}

impl<'a> Status<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Status<'a>> {
        if data.len() < 2 {
            return Err(Error::Malformed);
        }
        Ok(Status {
            code: StatusCode::from(be16(data)),
            message: data.get(2..).unwrap_or(&[]),
        })
    }

    pub fn new(code: StatusCode, message: &'a [u8]) -> Status<'a> {
        Status { code, message }
    }

    fn encoded_len(&self) -> usize {
        4 + 2 + self.message.len()
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.head(opt::STATUS_CODE, 2 + self.message.len());
        w.put(&u16::from(self.code).to_be_bytes());
        w.put(self.message);
    }
}

/// The nested options of an IA or IA Address that matter here: the first status code
/// (a broken nested option is `Malformed`).
fn nested_status(options: &[u8]) -> Result<Option<Status<'_>>> {
    let mut status = None;
    for o in OptionsIter::new(options) {
        let o = o?;
        if o.kind == opt::STATUS_CODE && status.is_none() {
            status = Some(Status::parse(o.data)?);
        }
    }
    Ok(status)
}

/// Option 5, IA Address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddress<'a> {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
    pub status: Option<Status<'a>>,
}

impl<'a> IaAddress<'a> {
    pub fn parse(data: &'a [u8]) -> Result<IaAddress<'a>> {
        let fixed = data.get(..24).ok_or(Error::Malformed)?;
        let status = nested_status(data.get(24..).unwrap_or(&[])).map_err(|_| Error::Malformed)?;
        Ok(IaAddress {
            addr: ip6(fixed),
            preferred: be32(fixed.get(16..).unwrap_or(&[])),
            valid: be32(fixed.get(20..).unwrap_or(&[])),
            status,
        })
    }

    pub fn new(addr: Ipv6Addr, preferred: u32, valid: u32) -> IaAddress<'a> {
        IaAddress {
            addr,
            preferred,
            valid,
            status: None,
        }
    }

    fn body_len(&self) -> usize {
        24 + self.status.map_or(0, |s| s.encoded_len())
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.head(opt::IAADDR, self.body_len());
        w.put(&self.addr.octets());
        w.put(&self.preferred.to_be_bytes());
        w.put(&self.valid.to_be_bytes());
        if let Some(s) = &self.status {
            s.write(w);
        }
    }
}

/// Which identity association an [`Ia`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IaKind {
    /// Option 3: non-temporary addresses, with T1 and T2.
    Na,
    /// Option 4: temporary addresses (no T1, T2).
    Ta,
    /// Option 25: delegated prefixes, with T1 and T2. Prefixes are not read.
    Pd,
}

impl IaKind {
    pub fn code(self) -> u16 {
        match self {
            IaKind::Na => opt::IA_NA,
            IaKind::Ta => opt::IA_TA,
            IaKind::Pd => opt::IA_PD,
        }
    }
}

/// An identity association (IA_NA, IA_TA or IA_PD). On parse, `addresses` holds the
/// IA Address options of an IA_NA or IA_TA (up to [`MAX_IA_ADDRS`]; an IA_PD's
/// prefixes are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ia<'a> {
    pub kind: IaKind,
    pub iaid: u32,
    /// Zero for IA_TA (which has no such field).
    pub t1: u32,
    pub t2: u32,
    pub addresses: Vec<IaAddress<'a>>,
    pub status: Option<Status<'a>>,
}

impl<'a> Ia<'a> {
    pub fn new(kind: IaKind, iaid: u32) -> Ia<'a> {
        Ia {
            kind,
            iaid,
            t1: 0,
            t2: 0,
            addresses: Vec::new(),
            status: None,
        }
    }

    pub fn parse(kind: IaKind, data: &'a [u8]) -> Result<Ia<'a>> {
        let fixed = if kind == IaKind::Ta { 4 } else { 12 };
        let head = data.get(..fixed).ok_or(Error::Malformed)?;
        let mut ia = Ia::new(kind, be32(head));
        if kind != IaKind::Ta {
            ia.t1 = be32(head.get(4..).unwrap_or(&[]));
            ia.t2 = be32(head.get(8..).unwrap_or(&[]));
        }
        for o in OptionsIter::new(data.get(fixed..).unwrap_or(&[])) {
            let o = o.map_err(|_| Error::Malformed)?;
            match o.kind {
                opt::STATUS_CODE if ia.status.is_none() => ia.status = Some(Status::parse(o.data)?),
                opt::IAADDR if kind != IaKind::Pd => {
                    if ia.addresses.len() >= MAX_IA_ADDRS {
                        return Err(Error::Unsupported);
                    }
                    ia.addresses.push(IaAddress::parse(o.data)?);
                }
                _ => {}
            }
        }
        Ok(ia)
    }

    fn body_len(&self) -> usize {
        let fixed = if self.kind == IaKind::Ta { 4 } else { 12 };
        let addrs: usize = self.addresses.iter().map(|a| 4 + a.body_len()).sum();
        fixed + addrs + self.status.map_or(0, |s| s.encoded_len())
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.head(self.kind.code(), self.body_len());
        w.put(&self.iaid.to_be_bytes());
        if self.kind != IaKind::Ta {
            w.put(&self.t1.to_be_bytes());
            w.put(&self.t2.to_be_bytes());
        }
        // IA_PD: prefixes are never written; only a status.
        if self.kind != IaKind::Pd {
            for a in &self.addresses {
                a.write(w);
            }
        }
        if let Some(s) = &self.status {
            s.write(w);
        }
    }
}

/// Option 6: the requested option codes (validated: an even length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oro<'a>(&'a [u8]);

impl<'a> Oro<'a> {
    pub fn from_bytes(b: &'a [u8]) -> Result<Oro<'a>> {
        if !b.len().is_multiple_of(2) {
            return Err(Error::Malformed);
        }
        Ok(Oro(b))
    }
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(be16)
    }
    pub fn contains(&self, code: u16) -> bool {
        self.iter().any(|c| c == code)
    }
}

/// Option 23: IPv6 addresses (validated: a non-zero multiple of 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs<'a>(&'a [u8]);

impl<'a> Addrs<'a> {
    pub fn from_bytes(b: &'a [u8]) -> Result<Addrs<'a>> {
        if b.is_empty() || !b.len().is_multiple_of(16) {
            return Err(Error::Malformed);
        }
        Ok(Addrs(b))
    }
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
    pub fn iter(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        self.0.chunks_exact(16).map(ip6)
    }
}

/// Option 24: domain names in uncompressed DNS wire format (RFC 8415 §10),
/// validated: every name ends in the root label, labels are 1 to 63 bytes, names at
/// most 255 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainList<'a>(&'a [u8]);

/// The length of one complete wire-format name at the start of `b`.
fn wire_name_len(b: &[u8]) -> Result<usize> {
    let mut pos = 0;
    loop {
        let &len = b.get(pos).ok_or(Error::Malformed)?;
        if len == 0 {
            pos += 1;
            break;
        }
        // Compression pointers (and the reserved label types) are not allowed here.
        if len > 63 {
            return Err(Error::Malformed);
        }
        pos += 1 + usize::from(len);
        if pos > 255 {
            return Err(Error::Malformed);
        }
    }
    if pos > 255 || pos > b.len() {
        return Err(Error::Malformed);
    }
    Ok(pos)
}

/// A wire-format name as dotted text (no trailing dot); bytes outside printable
/// ASCII, and dots inside labels, become `\DDD` escapes.
fn name_to_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len > 63 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len)).unwrap_or(&[]);
        if !s.is_empty() {
            s.push('.');
        }
        for &c in label {
            if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                s.push(c as char);
            } else {
                s.push_str(&format!("\\{c:03}"));
            }
        }
        pos += 1 + usize::from(len);
    }
    s
}

impl<'a> DomainList<'a> {
    pub fn from_bytes(b: &'a [u8]) -> Result<DomainList<'a>> {
        if b.is_empty() {
            return Err(Error::Malformed);
        }
        let mut rest = b;
        while !rest.is_empty() {
            let n = wire_name_len(rest)?;
            rest = rest.get(n..).ok_or(Error::Malformed)?;
        }
        Ok(DomainList(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The names as dotted text.
    pub fn names(&self) -> impl Iterator<Item = String> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let n = wire_name_len(rest).ok()?;
            let name = rest.get(..n)?;
            rest = rest.get(n..)?;
            Some(name_to_text(name))
        })
    }

    /// Appends the wire encoding of a dotted name (a trailing dot is allowed). A name
    /// with an empty or over-long label, or over 255 bytes encoded, is `Malformed`
    /// and nothing is appended.
    pub fn encode(name: &str, out: &mut Vec<u8>) -> Result<()> {
        crate::wire::dns::encode_dotted(name, out)
    }
}

/// Option 39 (RFC 4704): flags and a domain name, fully qualified or partial (no
/// root label). Read only: the client's host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fqdn<'a> {
    pub flags: u8,
    /// The name in DNS wire format as sent.
    pub name: &'a [u8],
}

impl<'a> Fqdn<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Fqdn<'a>> {
        let (&flags, name) = data.split_first().ok_or(Error::Malformed)?;
        // Labels must be well-formed; a partial name just stops without a root label.
        let mut pos = 0;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                if pos + 1 != name.len() {
                    return Err(Error::Malformed);
                }
                break;
            }
            if len > 63 || name.len() < pos + 1 + usize::from(len) {
                return Err(Error::Malformed);
            }
            pos += 1 + usize::from(len);
        }
        if name.len() > 255 {
            return Err(Error::Malformed);
        }
        Ok(Fqdn { flags, name })
    }

    /// The first label: the client's host name (may be empty).
    pub fn host_label(&self) -> &'a [u8] {
        match self.name.split_first() {
            Some((&len, rest)) if len > 0 => rest.get(..usize::from(len)).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// The meaning of a client/server message. Variable options borrow from the packet
/// (parse) or from the caller (emit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    pub message_type: MessageType,
    /// 24 bits.
    pub transaction_id: u32,
    pub client_id: Option<Duid<'a>>,
    pub server_id: Option<Duid<'a>>,
    /// IA_NA, IA_TA and IA_PD options in the order found (each kind bounded by
    /// [`MAX_IAS`]); emitted in this order.
    pub ias: Vec<Ia<'a>>,
    /// The message-level status.
    pub status: Option<Status<'a>>,
    pub preference: Option<u8>,
    /// Hundredths of a second.
    pub elapsed_time: Option<u16>,
    pub rapid_commit: bool,
    pub reconfigure_accept: bool,
    pub oro: Option<Oro<'a>>,
    pub dns_servers: Option<Addrs<'a>>,
    pub domain_list: Option<DomainList<'a>>,
    pub information_refresh_time: Option<u32>,
    pub client_fqdn: Option<Fqdn<'a>>,
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N]> {
    data.try_into().map_err(|_| Error::Malformed)
}

impl<'a> Repr<'a> {
    /// A message with every option absent.
    pub fn new(message_type: MessageType, transaction_id: u32) -> Repr<'a> {
        Repr {
            message_type,
            transaction_id: transaction_id & 0x00ff_ffff,
            client_id: None,
            server_id: None,
            ias: Vec::new(),
            status: None,
            preference: None,
            elapsed_time: None,
            rapid_commit: false,
            reconfigure_accept: false,
            oro: None,
            dns_servers: None,
            domain_list: None,
            information_refresh_time: None,
            client_fqdn: None,
        }
    }

    /// The IA_NA options.
    pub fn ia_nas(&self) -> impl Iterator<Item = &Ia<'a>> + '_ {
        self.ias.iter().filter(|i| i.kind == IaKind::Na)
    }

    /// Parses a client/server message. Relay messages are `Unsupported` (see
    /// [`RelayRepr`]); a known option of the wrong size, a broken option or a broken
    /// nested option is `Malformed`; more than [`MAX_IAS`] IAs of a kind, or more than
    /// [`MAX_IA_ADDRS`] addresses in one, is `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buf: &'a T = packet.buffer;
        let inner: &'a [u8] = buf.as_ref();
        let packet: Packet<&'a [u8]> = Packet::new_unchecked(inner);
        let message_type = packet.msg_type();
        if message_type.is_relay() {
            return Err(Error::Unsupported);
        }
        let mut r = Repr::new(message_type, packet.transaction_id());
        let mut counts = [0usize; 3];
        // Every singleton option known here has a code below 40.
        let mut seen = [false; 40];
        let options = inner.get(field::OPTIONS).unwrap_or(&[]);
        for o in OptionsIter::new(options) {
            let DhcpOption { kind, data } = o.map_err(|_| Error::Malformed)?;
            let ia_kind = match kind {
                opt::IA_NA => Some(IaKind::Na),
                opt::IA_TA => Some(IaKind::Ta),
                opt::IA_PD => Some(IaKind::Pd),
                _ => None,
            };
            if let Some(k) = ia_kind {
                let i = match k {
                    IaKind::Na => 0,
                    IaKind::Ta => 1,
                    IaKind::Pd => 2,
                };
                if let Some(c) = counts.get_mut(i) {
                    *c += 1;
                    if *c > MAX_IAS {
                        return Err(Error::Unsupported);
                    }
                }
                r.ias.push(Ia::parse(k, data)?);
                continue;
            }
            match seen.get_mut(usize::from(kind)) {
                Some(s) if *s => continue,
                Some(s) => *s = true,
                None => continue,
            }
            match kind {
                opt::CLIENTID => r.client_id = Some(Duid::from_bytes(data)?),
                opt::SERVERID => r.server_id = Some(Duid::from_bytes(data)?),
                opt::STATUS_CODE => r.status = Some(Status::parse(data)?),
                opt::PREFERENCE => r.preference = Some(fixed::<1>(data)?[0]),
                opt::ELAPSED_TIME => r.elapsed_time = Some(u16::from_be_bytes(fixed(data)?)),
                opt::RAPID_COMMIT => {
                    if !data.is_empty() {
                        return Err(Error::Malformed);
                    }
                    r.rapid_commit = true
                }
                opt::RECONF_ACCEPT => {
                    if !data.is_empty() {
                        return Err(Error::Malformed);
                    }
                    r.reconfigure_accept = true
                }
                opt::ORO => r.oro = Some(Oro::from_bytes(data)?),
                opt::DNS_SERVERS => r.dns_servers = Some(Addrs::from_bytes(data)?),
                opt::DOMAIN_LIST => r.domain_list = Some(DomainList::from_bytes(data)?),
                opt::INFORMATION_REFRESH_TIME => {
                    r.information_refresh_time = Some(u32::from_be_bytes(fixed(data)?))
                }
                opt::CLIENT_FQDN => r.client_fqdn = Some(Fqdn::parse(data)?),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Calls `f` for every option `emit` writes, in order, with its body length.
    fn for_each_option(&self, mut f: impl FnMut(&Opt<'_, 'a>)) {
        if let Some(d) = self.client_id {
            f(&Opt::Raw(opt::CLIENTID, d.as_bytes()));
        }
        if let Some(d) = self.server_id {
            f(&Opt::Raw(opt::SERVERID, d.as_bytes()));
        }
        if self.rapid_commit {
            f(&Opt::Raw(opt::RAPID_COMMIT, &[]));
        }
        for ia in &self.ias {
            f(&Opt::Ia(ia));
        }
        if let Some(s) = self.status {
            f(&Opt::Status(s));
        }
        if let Some(p) = self.preference {
            f(&Opt::Bytes(opt::PREFERENCE, [p, 0, 0, 0], 1));
        }
        if let Some(t) = self.elapsed_time {
            let b = t.to_be_bytes();
            f(&Opt::Bytes(opt::ELAPSED_TIME, [b[0], b[1], 0, 0], 2));
        }
        if self.reconfigure_accept {
            f(&Opt::Raw(opt::RECONF_ACCEPT, &[]));
        }
        if let Some(o) = self.oro {
            f(&Opt::Raw(opt::ORO, o.as_bytes()));
        }
        if let Some(t) = self.information_refresh_time {
            f(&Opt::Bytes(
                opt::INFORMATION_REFRESH_TIME,
                t.to_be_bytes(),
                4,
            ));
        }
        if let Some(d) = self.domain_list {
            f(&Opt::Raw(opt::DOMAIN_LIST, d.as_bytes()));
        }
        if let Some(a) = self.dns_servers {
            f(&Opt::Raw(opt::DNS_SERVERS, a.as_bytes()));
        }
        if let Some(q) = self.client_fqdn {
            f(&Opt::Fqdn(q));
        }
    }

    /// The message length `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let mut n = HEADER_LEN;
        self.for_each_option(|o| n += 4 + o.body_len());
        n
    }

    /// Writes the message into the first `buffer_len()` bytes of the packet's buffer;
    /// a shorter buffer is `Truncated` and nothing is written. An option longer than
    /// 65535 bytes is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let len = self.buffer_len();
        let mut too_long = false;
        self.for_each_option(|o| too_long |= o.body_len() > usize::from(u16::MAX));
        if too_long {
            return Err(Error::Malformed);
        }
        let buf = packet.buffer.as_mut();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        buf.fill(0);
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_msg_type(self.message_type);
        p.set_transaction_id(self.transaction_id);
        let mut w = Writer {
            out: p.options_mut(),
            pos: 0,
        };
        self.for_each_option(|o| o.write(&mut w));
        Ok(())
    }
}

/// An option as `emit` writes it.
enum Opt<'r, 'a> {
    Raw(u16, &'a [u8]),
    /// A fixed-size value: code, bytes, how many of them.
    Bytes(u16, [u8; 4], usize),
    Ia(&'r Ia<'a>),
    Status(Status<'a>),
    Fqdn(Fqdn<'a>),
}

impl Opt<'_, '_> {
    fn body_len(&self) -> usize {
        match self {
            Opt::Raw(_, d) => d.len(),
            Opt::Bytes(_, _, n) => *n,
            Opt::Ia(ia) => ia.body_len(),
            Opt::Status(s) => s.encoded_len() - 4,
            Opt::Fqdn(q) => 1 + q.name.len(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        match self {
            Opt::Raw(code, d) => {
                w.head(*code, d.len());
                w.put(d);
            }
            Opt::Bytes(code, b, n) => {
                w.head(*code, *n);
                w.put(b.get(..*n).unwrap_or(&[]));
            }
            Opt::Ia(ia) => ia.write(w),
            Opt::Status(s) => s.write(w),
            Opt::Fqdn(q) => {
                w.head(opt::CLIENT_FQDN, 1 + q.name.len());
                w.put(&[q.flags]);
                w.put(q.name);
            }
        }
    }
}

/// Writes into a buffer `buffer_len` sized for exactly these bytes; never panics
/// (a write past the end is dropped).
struct Writer<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }
    fn head(&mut self, code: u16, len: usize) {
        self.put(&code.to_be_bytes());
        self.put(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    }
}

/// A relay-forward or relay-reply message, read far enough to be refused: econet
/// serves its own links only and never acts on relayed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRepr<'a> {
    pub message_type: MessageType,
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    /// Option 9, the relayed message (not parsed).
    pub relay_message: Option<&'a [u8]>,
    /// Option 18.
    pub interface_id: Option<&'a [u8]>,
}

impl<'a> RelayRepr<'a> {
    /// Parses a relay message; a client/server message is `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<RelayRepr<'a>> {
        packet.check_len()?;
        let buf: &'a T = packet.buffer;
        let inner: &'a [u8] = buf.as_ref();
        let p: Packet<&'a [u8]> = Packet::new_unchecked(inner);
        let message_type = p.msg_type();
        if !message_type.is_relay() {
            return Err(Error::Unsupported);
        }
        let mut r = RelayRepr {
            message_type,
            hop_count: p.hop_count(),
            link_address: p.link_address(),
            peer_address: p.peer_address(),
            relay_message: None,
            interface_id: None,
        };
        for o in OptionsIter::new(inner.get(field::RELAY_OPTIONS).unwrap_or(&[])) {
            let o = o.map_err(|_| Error::Malformed)?;
            match o.kind {
                opt::RELAY_MSG if r.relay_message.is_none() => r.relay_message = Some(o.data),
                opt::INTERFACE_ID if r.interface_id.is_none() => r.interface_id = Some(o.data),
                _ => {}
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
pub(crate) mod captures {
    //! DHCPv6 messages captured from real clients and dnsmasq (UDP payloads): isc-dhclient
    //! 4.4.3-P1 (`dhclient -6 -d -v`) and dhcpcd 9.4.1 (`dhcpcd -6 -B -d`, DUID-LLT, `ia_na 1`,
    //! `hostname web`, `fqdn both`, with and without `option rapid_commit`) against
    //! dnsmasq 2.90 (`--dhcp-range=fd00:1::10,fd00:1::ff,64,2m --enable-ra` with
    //! `option6:dns-server,[fd00:1::1]`, `option6:domain-search,eco.internal` and, for
    //! dhclient, `option6:information-refresh-time,1h`), in two network namespaces joined
    //! by a veth pair: client 72:1e:a0:80:59:50 (fe80::701e:a0ff:fe80:5950), server
    //! 82:65:8d:5f:85:12 (fe80::8065:8dff:fe5f:8512, fd00:1::1). tcpdump on the server's
    //! end; payloads via `tshark -T fields -e udp.payload`. Renew and Rebind came from
    //! 2-minute leases, with dnsmasq stopped between T1 and T2 for the Rebind.
    #![allow(dead_code)] // a library of captures; not every test uses every message

    /// Hex to bytes (test data only).
    pub fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// dhclient Solicit: client id (DUID-LLT), elapsed time, ORO (23 24 32), IA_NA (IAID = the
    /// MAC's last four bytes), client FQDN `plc`.
    pub const DHCLIENT_SOLICIT: &str = concat!(
        "01ff27f70001000e0001000132a65759721ea080595000060006001700180020",
        "000800020000002700060003706c63000003000ca080595000000e1000001518",
    );

    /// dnsmasq Advertise to dhclient: IA_NA with fd00:1::db (T1 60, T2 105, lifetimes 120),
    /// status Success, preference 0, DNS, domain list.
    pub const DNSMASQ_ADVERTISE: &str = concat!(
        "02ff27f70001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200030028a08059500000003c0000006900050018fd000001",
        "0000000000000000000000db0000007800000078000d00090000737563636573",
        "7300070001000020000400000e100018000e0365636f08696e7465726e616c00",
        "00170010fd000001000000000000000000000001002700050303706c63",
    );

    /// dhclient Request for the advertised address, with dnsmasq's server id.
    pub const DHCLIENT_REQUEST: &str = concat!(
        "03fb0a640001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200060006001700180020000800020000002700060003706c",
        "630000030028a080595000000e100000151800050018fd000001000000000000",
        "0000000000db00001c2000001d4c",
    );

    /// dnsmasq Reply to dhclient's Request.
    pub const DNSMASQ_REPLY: &str = concat!(
        "07fb0a640001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200030028a08059500000003c0000006900050018fd000001",
        "0000000000000000000000db0000007800000078000d00090000737563636573",
        "730020000400000e100018000e0365636f08696e7465726e616c0000170010fd",
        "000001000000000000000000000001002700050303706c63",
    );

    /// dhclient Renew at T1.
    pub const DHCLIENT_RENEW: &str = concat!(
        "0582fc8a0001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200060006001700180020000800020000002700060003706c",
        "630000030028a080595000000e100000151800050018fd000001000000000000",
        "0000000000db00001c2000001d4c",
    );

    /// dnsmasq Reply to dhclient's Renew.
    pub const DNSMASQ_RENEW_REPLY: &str = concat!(
        "0782fc8a0001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200030028a0805950000000360000006300050018fd000001",
        "0000000000000000000000db00000078000000780020000400000e100018000e",
        "0365636f08696e7465726e616c0000170010fd00000100000000000000000000",
        "0001002700050303706c63",
    );

    /// dhclient Rebind at T2 (dnsmasq was stopped for the Renews): no server id.
    pub const DHCLIENT_REBIND: &str = concat!(
        "066a032f0001000e0001000132a65759721ea080595000060006001700180020",
        "000800020000002700060003706c630000030028a080595000000e1000001518",
        "00050018fd0000010000000000000000000000db00001c2000001d4c",
    );

    /// dnsmasq Reply to dhclient's Rebind.
    pub const DNSMASQ_REBIND_REPLY: &str = concat!(
        "076a032f0001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200030028a0805950000000380000006500050018fd000001",
        "0000000000000000000000db00000078000000780020000400000e100018000e",
        "0365636f08696e7465726e616c0000170010fd00000100000000000000000000",
        "0001002700050303706c63",
    );

    /// dhclient Release (`dhclient -6 -r`).
    pub const DHCLIENT_RELEASE: &str = concat!(
        "08f7bdd00001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f851200060006001700180020000800020000002700060003706c",
        "630000030028a0805950000000000000000000050018fd000001000000000000",
        "0000000000db0000000000000000",
    );

    /// dnsmasq Reply to the Release: status Success.
    pub const DNSMASQ_RELEASE_REPLY: &str = concat!(
        "07f7bdd00001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f8512000d0012000072656c65617365207265636569766564",
    );

    /// dhclient Information-request (`dhclient -6 -S`).
    pub const DHCLIENT_INFORMATION_REQUEST: &str = concat!(
        "0b7b23c60001000e0001000132a65759721ea080595000060006001700180020",
        "000800020000002700060003706c6300",
    );

    /// dnsmasq Reply to the Information-request: DNS, domain list, refresh time.
    pub const DNSMASQ_INFORMATION_REPLY: &str = concat!(
        "077b23c60001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f85120020000400000e100018000e0365636f08696e7465726e61",
        "6c0000170010fd000001000000000000000000000001002700050303706c63",
    );

    /// dhcpcd Solicit with Rapid Commit: client id (DUID-LLT), IA_NA IAID 1, FQDN `web`,
    /// reconfigure accept among others.
    pub const DHCPCD_SOLICIT_RAPID: &str = concat!(
        "01ba16530001000e0001000132a65759721ea08059500003000c000000010000",
        "0000000000000006000a00170018002700520053000800020000000e00000010",
        "003d00009f0800376468637063642d392e342e313a4c696e75782d362e31382e",
        "34342d66632d76313237323a7838365f36343a41757468656e746963414d4400",
        "2700050103776562",
    );

    /// dnsmasq Reply with Rapid Commit to dhcpcd: fd00:1::fc.
    pub const DNSMASQ_RAPID_REPLY: &str = concat!(
        "07ba16530001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f8512000e000000030028000000010000003c0000006900050018",
        "fd0000010000000000000000000000fc0000007800000078000d000900007375",
        "636365737300070001000018000e0365636f08696e7465726e616c0000170010",
        "fd000001000000000000000000000001002700050103776562",
    );

    /// dhcpcd Renew at T1.
    pub const DHCPCD_RENEW: &str = concat!(
        "057cb47f0001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f85120003002800000001000000000000000000050018fd000001",
        "0000000000000000000000fc00000078000000780006000a0017001800270052",
        "00530008000200000010003d00009f0800376468637063642d392e342e313a4c",
        "696e75782d362e31382e34342d66632d76313237323a7838365f36343a417574",
        "68656e746963414d44002700050103776562",
    );

    /// dnsmasq Reply to dhcpcd's Renew.
    pub const DNSMASQ_DHCPCD_RENEW_REPLY: &str = concat!(
        "077cb47f0001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f85120003002800000001000000380000006500050018fd000001",
        "0000000000000000000000fc00000078000000780018000e0365636f08696e74",
        "65726e616c0000170010fd000001000000000000000000000001002700050103",
        "776562",
    );

    /// dhcpcd Rebind at T2 (dnsmasq stopped).
    pub const DHCPCD_REBIND: &str = concat!(
        "06cd9a240001000e0001000132a65759721ea080595000030028000000010000",
        "00000000000000050018fd0000010000000000000000000000fc000000780000",
        "00780006000a001700180027005200530008000200000010003d00009f080037",
        "6468637063642d392e342e313a4c696e75782d362e31382e34342d66632d7631",
        "3237323a7838365f36343a41757468656e746963414d44002700050103776562",
    );

    /// dhcpcd Confirm on restart with a stored lease.
    pub const DHCPCD_CONFIRM: &str = concat!(
        "04ef22860001000e0001000132a65759721ea080595000030028000000010000",
        "00000000000000050018fd0000010000000000000000000000fc000000780000",
        "00780006000a001700180027005200530008000200000010003d00009f080037",
        "6468637063642d392e342e313a4c696e75782d362e31382e34342d66632d7631",
        "3237323a7838365f36343a41757468656e746963414d44002700050103776562",
    );

    /// dnsmasq Reply to the Confirm: status Success, no IA.
    pub const DNSMASQ_CONFIRM_REPLY: &str = concat!(
        "07ef22860001000e0001000132a65759721ea08059500002000e0001000132a6",
        "575882658d5f8512000d001d0000616c6c20616464726573736573207374696c",
        "6c206f6e206c696e6b",
    );

    /// dhcpcd Solicit without rapid commit, from a fresh state directory: a new DUID-LLT.
    pub const DHCPCD_SOLICIT: &str = concat!(
        "01743c740001000e0001000132a65863721ea08059500003000c000000010000",
        "0000000000000006000a001700180027005200530008000200000010003d0000",
        "9f0800376468637063642d392e342e313a4c696e75782d362e31382e34342d66",
        "632d76313237323a7838365f36343a41757468656e746963414d440027000501",
        "03776562",
    );

    /// dnsmasq Advertise to that Solicit.
    pub const DNSMASQ_DHCPCD_ADVERTISE: &str = concat!(
        "02743c740001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f851200030028000000010000003c0000006900050018fd000001",
        "0000000000000000000000850000007800000078000d00090000737563636573",
        "7300070001000018000e0365636f08696e7465726e616c0000170010fd000001",
        "000000000000000000000001002700050103776562",
    );

    /// dhcpcd Request.
    pub const DHCPCD_REQUEST: &str = concat!(
        "03aac5950001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f85120003002800000001000000000000000000050018fd000001",
        "00000000000000000000008500000078000000780006000a0017001800270052",
        "00530008000200000010003d00009f0800376468637063642d392e342e313a4c",
        "696e75782d362e31382e34342d66632d76313237323a7838365f36343a417574",
        "68656e746963414d44002700050103776562",
    );

    /// dnsmasq Reply to dhcpcd's Request.
    pub const DNSMASQ_DHCPCD_REPLY: &str = concat!(
        "07aac5950001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f851200030028000000010000003c0000006900050018fd000001",
        "0000000000000000000000850000007800000078000d00090000737563636573",
        "730018000e0365636f08696e7465726e616c0000170010fd0000010000000000",
        "00000000000001002700050103776562",
    );

    /// dhcpcd Release (`dhcpcd -6 -k`).
    pub const DHCPCD_RELEASE: &str = concat!(
        "0836fb2e0001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f85120003002800000001000000000000000000050018fd000001",
        "00000000000000000000008500000078000000780008000200000010003d0000",
        "9f0800376468637063642d392e342e313a4c696e75782d362e31382e34342d66",
        "632d76313237323a7838365f36343a41757468656e746963414d44",
    );

    /// dnsmasq Reply to dhcpcd's Release.
    pub const DNSMASQ_DHCPCD_RELEASE_REPLY: &str = concat!(
        "0736fb2e0001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f8512000d0012000072656c65617365207265636569766564",
    );

    /// dnsmasq Advertise when its only range address is its own: no IA, status NoAddrsAvail.
    pub const DNSMASQ_NOADDRS_ADVERTISE: &str = concat!(
        "02d38f600001000e0001000132a65863721ea08059500002000e0001000132a6",
        "586282658d5f8512000d001800026e6f2061646472657373657320617661696c",
        "61626c65",
    );
}

#[cfg(test)]
mod tests {
    use super::captures::*;
    use super::*;

    fn parse(b: &[u8]) -> Result<Repr<'_>> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    fn emit(r: &Repr<'_>) -> Vec<u8> {
        let mut out = vec![0; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        out
    }

    const CLIENT_MAC: [u8; 6] = [0x72, 0x1e, 0xa0, 0x80, 0x59, 0x50];
    const SERVER_DUID: &str = "0001000132a6575882658d5f8512";

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The top-level options of a message, sorted, those `Repr` does not know left
    /// out: what must survive parse and emit whatever the order.
    fn known_options(b: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let p = Packet::new_checked(b).unwrap();
        let known = [1, 2, 3, 4, 6, 7, 8, 13, 14, 20, 23, 24, 25, 32, 39];
        let mut v: Vec<(u16, Vec<u8>)> = p
            .options()
            .map(|o| o.unwrap())
            .filter(|o| known.contains(&o.kind))
            .map(|o| (o.kind, o.data.to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dhclient_messages() {
        let b = hex(DHCLIENT_SOLICIT);
        let s = parse(&b).unwrap();
        assert_eq!(s.message_type, MessageType::Solicit);
        assert_eq!(s.transaction_id, 0xff27f7);
        let cid = s.client_id.unwrap();
        match cid.kind() {
            DuidKind::Llt {
                hw_type, ll_addr, ..
            } => {
                assert_eq!(hw_type, HW_ETHERNET);
                assert_eq!(ll_addr, CLIENT_MAC);
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(s.server_id, None);
        assert_eq!(s.elapsed_time, Some(0));
        assert_eq!(s.oro.unwrap().iter().collect::<Vec<_>>(), [23, 24, 32]);
        assert_eq!(s.client_fqdn.unwrap().host_label(), b"plc");
        let ias: Vec<_> = s.ia_nas().collect();
        assert_eq!(ias.len(), 1);
        assert_eq!(ias[0].iaid, 0xa0805950);
        assert_eq!((ias[0].t1, ias[0].t2), (3600, 5400));
        assert!(ias[0].addresses.is_empty());
        assert!(!s.rapid_commit);

        let b = hex(DHCLIENT_REQUEST);
        let r2 = parse(&b).unwrap();
        assert_eq!(r2.message_type, MessageType::Request);
        assert_eq!(r2.server_id.unwrap().as_bytes(), &hex(SERVER_DUID)[..]);
        let a = r2.ia_nas().next().unwrap().addresses[0];
        assert_eq!(a.addr, addr("fd00:1::db"));
        assert_eq!((a.preferred, a.valid), (7200, 7500));

        for (m, t, sid) in [
            (DHCLIENT_RENEW, MessageType::Renew, true),
            (DHCLIENT_REBIND, MessageType::Rebind, false),
            (DHCLIENT_RELEASE, MessageType::Release, true),
        ] {
            let b = hex(m);
            let r = parse(&b).unwrap();
            assert_eq!(r.message_type, t);
            assert_eq!(r.server_id.is_some(), sid, "{t:?}");
            assert_eq!(r.client_id, s.client_id);
            let ia = r.ia_nas().next().unwrap();
            assert_eq!(ia.addresses[0].addr, addr("fd00:1::db"), "{t:?}");
        }
        let b = hex(DHCLIENT_INFORMATION_REQUEST);
        let i = parse(&b).unwrap();
        assert_eq!(i.message_type, MessageType::InformationRequest);
        assert!(i.ias.is_empty());
        assert!(i.oro.unwrap().contains(opt::INFORMATION_REFRESH_TIME));
    }

    #[test]
    fn dhcpcd_messages() {
        let b = hex(DHCPCD_SOLICIT_RAPID);
        let s = parse(&b).unwrap();
        assert_eq!(s.message_type, MessageType::Solicit);
        assert!(s.rapid_commit);
        assert_eq!(s.client_fqdn.unwrap().host_label(), b"web");
        assert_eq!(s.client_fqdn.unwrap().flags, 1);
        let ia = s.ia_nas().next().unwrap();
        assert_eq!(ia.iaid, 1);
        assert_eq!((ia.t1, ia.t2), (0, 0));
        assert!(s.oro.unwrap().contains(opt::DNS_SERVERS));

        for (m, t) in [
            (DHCPCD_RENEW, MessageType::Renew),
            (DHCPCD_REBIND, MessageType::Rebind),
            (DHCPCD_CONFIRM, MessageType::Confirm),
        ] {
            let b = hex(m);
            let r = parse(&b).unwrap();
            assert_eq!(r.message_type, t);
            assert_eq!(r.client_id, s.client_id);
            let ia = r.ia_nas().next().unwrap();
            assert_eq!(ia.addresses[0].addr, addr("fd00:1::fc"), "{t:?}");
        }

        // A fresh state directory: another DUID-LLT for the same MAC.
        let b = hex(DHCPCD_SOLICIT);
        let fresh = parse(&b).unwrap();
        assert!(!fresh.rapid_commit);
        assert_ne!(fresh.client_id, s.client_id);
        match fresh.client_id.unwrap().kind() {
            DuidKind::Llt { ll_addr, .. } => assert_eq!(ll_addr, CLIENT_MAC),
            k => panic!("{k:?}"),
        }
        let b = hex(DHCPCD_REQUEST);
        let r = parse(&b).unwrap();
        assert_eq!(r.message_type, MessageType::Request);
        assert_eq!(r.client_id, fresh.client_id);
        let b = hex(DHCPCD_RELEASE);
        let l = parse(&b).unwrap();
        assert_eq!(l.message_type, MessageType::Release);
        assert!(l.server_id.is_some());
    }

    #[test]
    fn dnsmasq_replies() {
        let b = hex(DNSMASQ_ADVERTISE);
        let a = parse(&b).unwrap();
        assert_eq!(a.message_type, MessageType::Advertise);
        assert_eq!(a.server_id.unwrap().as_bytes(), &hex(SERVER_DUID)[..]);
        assert_eq!(a.preference, Some(0));
        assert_eq!(a.status.unwrap().code, StatusCode::Success);
        assert_eq!(a.status.unwrap().message, b"success");
        assert_eq!(
            a.dns_servers.unwrap().iter().collect::<Vec<_>>(),
            [addr("fd00:1::1")]
        );
        assert_eq!(
            a.domain_list.unwrap().names().collect::<Vec<_>>(),
            ["eco.internal"]
        );
        assert_eq!(a.information_refresh_time, Some(3600));
        let ia = a.ia_nas().next().unwrap();
        assert_eq!((ia.iaid, ia.t1, ia.t2), (0xa0805950, 60, 105));
        assert_eq!(ia.addresses, [IaAddress::new(addr("fd00:1::db"), 120, 120)]);

        let b = hex(DNSMASQ_RAPID_REPLY);
        let r = parse(&b).unwrap();
        assert_eq!(r.message_type, MessageType::Reply);
        assert!(r.rapid_commit);
        assert_eq!(
            r.ia_nas().next().unwrap().addresses[0].addr,
            addr("fd00:1::fc")
        );

        let b = hex(DNSMASQ_CONFIRM_REPLY);
        let c = parse(&b).unwrap();
        assert_eq!(c.status.unwrap().code, StatusCode::Success);
        assert!(c.ias.is_empty());

        let b = hex(DNSMASQ_NOADDRS_ADVERTISE);
        let n = parse(&b).unwrap();
        assert_eq!(n.status.unwrap().code, StatusCode::NoAddrsAvail);
        assert!(n.ias.is_empty());
    }

    const DNSMASQ: [&str; 12] = [
        DNSMASQ_ADVERTISE,
        DNSMASQ_REPLY,
        DNSMASQ_RENEW_REPLY,
        DNSMASQ_REBIND_REPLY,
        DNSMASQ_RELEASE_REPLY,
        DNSMASQ_INFORMATION_REPLY,
        DNSMASQ_RAPID_REPLY,
        DNSMASQ_DHCPCD_RENEW_REPLY,
        DNSMASQ_CONFIRM_REPLY,
        DNSMASQ_DHCPCD_ADVERTISE,
        DNSMASQ_DHCPCD_REPLY,
        DNSMASQ_NOADDRS_ADVERTISE,
    ];

    const CLIENTS: [&str; 13] = [
        DHCLIENT_SOLICIT,
        DHCLIENT_REQUEST,
        DHCLIENT_RENEW,
        DHCLIENT_REBIND,
        DHCLIENT_RELEASE,
        DHCLIENT_INFORMATION_REQUEST,
        DHCPCD_SOLICIT_RAPID,
        DHCPCD_RENEW,
        DHCPCD_REBIND,
        DHCPCD_CONFIRM,
        DHCPCD_SOLICIT,
        DHCPCD_REQUEST,
        DHCPCD_RELEASE,
    ];

    #[test]
    fn dnsmasq_replies_emit_to_the_same_bytes() {
        for m in DNSMASQ {
            let b = hex(m);
            let r = parse(&b).unwrap();
            assert_eq!(r.buffer_len(), b.len());
            assert_eq!(emit(&r), b, "{:?}", r.message_type);
        }
    }

    #[test]
    fn client_messages_keep_their_meaning() {
        for m in CLIENTS {
            let b = hex(m);
            let r = parse(&b).unwrap();
            let out = emit(&r);
            assert_eq!(parse(&out).unwrap(), r);
            assert_eq!(
                known_options(&out),
                known_options(&b),
                "{:?}",
                r.message_type
            );
        }
    }

    #[test]
    fn transaction_id_is_24_bits() {
        let r = Repr::new(MessageType::Reply, 0xabcdef12);
        assert_eq!(r.transaction_id, 0xcdef12);
        let b = emit(&r);
        assert_eq!(b, [7, 0xcd, 0xef, 0x12]);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().transaction_id(),
            0xcdef12
        );
    }

    #[test]
    fn duids() {
        let ll = Duid::ll_ethernet(CLIENT_MAC);
        assert_eq!(
            Duid::from_bytes(&ll).unwrap().kind(),
            DuidKind::Ll {
                hw_type: 1,
                ll_addr: &CLIENT_MAC
            }
        );
        let u = Duid::uuid([7; 16]);
        assert_eq!(
            Duid::from_bytes(&u).unwrap().kind(),
            DuidKind::Uuid([7; 16])
        );
        let en = [0, 2, 0, 0, 0x7f, 0x3b, 1, 2];
        assert_eq!(
            Duid::from_bytes(&en).unwrap().kind(),
            DuidKind::En {
                enterprise: 0x7f3b,
                id: &[1, 2]
            }
        );
        // Short bodies and unknown types stay opaque.
        assert!(matches!(
            Duid::from_bytes(&[0, 4, 1]).unwrap().kind(),
            DuidKind::Other { kind: 4, .. }
        ));
        assert!(matches!(
            Duid::from_bytes(&[0, 9, 1, 2]).unwrap().kind(),
            DuidKind::Other { kind: 9, .. }
        ));
        assert_eq!(Duid::from_bytes(&[0, 1]), Err(Error::Malformed));
        assert_eq!(Duid::from_bytes(&[1; 131]), Err(Error::Malformed));
    }

    #[test]
    fn domain_names() {
        let mut w = Vec::new();
        DomainList::encode("eco.internal.", &mut w).unwrap();
        DomainList::encode("a.b", &mut w).unwrap();
        let d = DomainList::from_bytes(&w).unwrap();
        assert_eq!(d.names().collect::<Vec<_>>(), ["eco.internal", "a.b"]);
        let mut bad = Vec::new();
        assert!(DomainList::encode("a..b", &mut bad).is_err());
        assert!(DomainList::encode(&"x".repeat(64), &mut bad).is_err());
        assert!(DomainList::encode(&"abc.".repeat(70), &mut bad).is_err());
        assert!(bad.is_empty());
        // Compression pointers, a missing root label, over-long names.
        for b in [
            &[0xc0, 0x0c][..],
            &[3, b'a', b'b', b'c'],
            &[3, b'a', b'b'],
            &[],
        ] {
            assert_eq!(DomainList::from_bytes(b), Err(Error::Malformed), "{b:?}");
        }
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert!(DomainList::from_bytes(&long).is_err());
        // Odd bytes print escaped.
        let odd = [3, b'a', b'.', 0xff, 0];
        let d = DomainList::from_bytes(&odd).unwrap();
        assert_eq!(d.names().collect::<Vec<_>>(), ["a\\046\\255"]);
    }

    #[test]
    fn fqdn() {
        let f = Fqdn::parse(&[0, 3, b'w', b'e', b'b', 3, b'e', b'c', b'o', 0]).unwrap();
        assert_eq!(f.host_label(), b"web");
        assert_eq!(Fqdn::parse(&[1]).unwrap().host_label(), b"");
        assert!(Fqdn::parse(&[]).is_err());
        assert!(Fqdn::parse(&[0, 5, b'a']).is_err());
        assert!(Fqdn::parse(&[0, 0, 1]).is_err());
        assert!(Fqdn::parse(&[0, 64]).is_err());
    }

    /// A Solicit with these options after the header.
    fn with_options(opts: &[u8]) -> Vec<u8> {
        let mut m = vec![1, 0, 0, 1];
        m.extend_from_slice(opts);
        m
    }

    #[test]
    fn bad_options() {
        for (opts, e) in [
            (&[0, 1, 0, 5, 1][..], Error::Malformed), // truncated option
            (&[0, 1], Error::Malformed),              // truncated header
            (&[0, 1, 0, 1, 0], Error::Malformed),     // DUID too short
            (&[0, 7, 0, 2, 0, 0], Error::Malformed),  // preference size
            (&[0, 8, 0, 1, 0], Error::Malformed),     // elapsed time size
            (&[0, 14, 0, 1, 0], Error::Malformed),    // rapid commit with data
            (&[0, 20, 0, 1, 0], Error::Malformed),    // reconfigure accept with data
            (&[0, 6, 0, 3, 0, 23, 0], Error::Malformed), // odd ORO
            (&[0, 23, 0, 4, 0, 0, 0, 0], Error::Malformed), // DNS not 16-byte
            (&[0, 13, 0, 1, 0], Error::Malformed),    // status too short
            (&[0, 32, 0, 2, 0, 0], Error::Malformed), // refresh time size
            (&[0, 3, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0], Error::Malformed), // short IA_NA
            (&[0, 4, 0, 2, 0, 0], Error::Malformed),  // short IA_TA
            (
                // IA_NA holding a truncated IA Address
                &[0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24],
                Error::Malformed,
            ),
        ] {
            assert_eq!(parse(&with_options(opts)), Err(e), "{opts:?}");
        }
        // Too many IAs of one kind.
        let mut many = Vec::new();
        for i in 0..=MAX_IAS as u8 {
            many.extend_from_slice(&[0, 4, 0, 4, 0, 0, 0, i]);
        }
        assert_eq!(parse(&with_options(&many)), Err(Error::Unsupported));
        // Unknown options are skipped; a repeated singleton: the first wins.
        let m = with_options(&[0, 99, 0, 1, 7, 0, 7, 0, 1, 5, 0, 7, 0, 1, 9]);
        let r = parse(&m).unwrap();
        assert_eq!(r.preference, Some(5));
        assert_eq!(parse(&[1, 0, 0]), Err(Error::Truncated));
    }

    #[test]
    fn ia_ta_and_pd_are_read_and_written() {
        let mut r = Repr::new(MessageType::Reply, 1);
        let mut ta = Ia::new(IaKind::Ta, 7);
        ta.status = Some(Status::new(StatusCode::NoAddrsAvail, b""));
        let mut pd = Ia::new(IaKind::Pd, 8);
        pd.t1 = 1;
        pd.t2 = 2;
        pd.status = Some(Status::new(StatusCode::NoPrefixAvail, b"no"));
        r.ias = vec![ta, pd];
        let b = emit(&r);
        assert_eq!(parse(&b).unwrap(), r);
        // A client's IA_PD with a prefix: the prefix is not kept.
        let mut m = with_options(&[0, 25, 0, 41, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[0, 26, 0, 25]);
        m.extend_from_slice(&[0; 25]);
        let r = parse(&m).unwrap();
        assert_eq!(r.ias.len(), 1);
        assert_eq!((r.ias[0].kind, r.ias[0].iaid), (IaKind::Pd, 9));
        assert!(r.ias[0].addresses.is_empty());
    }

    #[test]
    fn relay_messages() {
        let mut m = vec![12, 1];
        m.extend_from_slice(&addr("fd00:1::1").octets());
        m.extend_from_slice(&addr("fe80::1").octets());
        let inner = hex(DHCLIENT_SOLICIT);
        m.extend_from_slice(&[0, 9]);
        m.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        m.extend_from_slice(&inner);
        m.extend_from_slice(&[0, 18, 0, 2, b'i', b'f']);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
        let r = RelayRepr::parse(&p).unwrap();
        assert_eq!(r.message_type, MessageType::RelayForw);
        assert_eq!(r.hop_count, 1);
        assert_eq!(r.link_address, addr("fd00:1::1"));
        assert_eq!(r.peer_address, addr("fe80::1"));
        assert_eq!(r.relay_message, Some(&inner[..]));
        assert_eq!(r.interface_id, Some(&b"if"[..]));
        // The relay header is longer than a client's.
        assert_eq!(Packet::new_checked(&m[..20]).err(), Some(Error::Truncated));
        let b = hex(DHCLIENT_SOLICIT);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(RelayRepr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn short_buffer_is_truncated_and_untouched() {
        let b = hex(DNSMASQ_REPLY);
        let r = parse(&b).unwrap();
        let mut out = vec![0xaa; b.len() - 1];
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut out[..])),
            Err(Error::Truncated)
        );
        assert!(out.iter().all(|&x| x == 0xaa));
    }

    /// xorshift64*: deterministic, no dependency.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Everything a reader may call on a parse result.
    fn exercise(b: &[u8]) {
        let Ok(p) = Packet::new_checked(b) else {
            return;
        };
        let _ = (p.msg_type(), p.transaction_id(), p.hop_count());
        let _ = (p.link_address(), p.peer_address());
        for o in p.options().chain(p.relay_options()) {
            let _ = o;
        }
        let _ = RelayRepr::parse(&p);
        if let Ok(r) = Repr::parse(&p) {
            if let Some(d) = r.client_id {
                let _ = d.kind();
            }
            if let Some(d) = r.domain_list {
                let _ = d.names().count();
            }
            if let Some(f) = r.client_fqdn {
                let _ = f.host_label();
            }
            let out = emit(&r);
            assert_eq!(parse(&out).unwrap(), r);
        }
    }

    #[test]
    fn mutated_and_random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds: Vec<Vec<u8>> = CLIENTS
            .iter()
            .chain(DNSMASQ.iter())
            .map(|m| hex(m))
            .collect();
        for s in &seeds {
            for n in 0..=s.len() {
                exercise(&s[..n]);
            }
        }
        for _ in 0..20_000 {
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                match rng.below(3) {
                    0 => b[i] = rng.next() as u8,
                    1 => b.truncate(i),
                    _ => b.insert(i, rng.next() as u8),
                }
                if b.is_empty() {
                    break;
                }
            }
            exercise(&b);
        }
        for _ in 0..5_000 {
            let n = rng.below(200);
            let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            exercise(&b);
        }
    }
}
