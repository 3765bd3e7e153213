//! DHCPv4 messages: the BOOTP header (RFC 951/2131) and the RFC 2132 options econet
//! uses, plus rapid commit (RFC 4039) and classless static routes (RFC 3442).
//!
//! Options are read with [`OptionsIter`], which never panics: it walks the options
//! field, then `file` and `sname` when option 52 (overload) in the options field says
//! so. Overload is honoured only there, so an overload option inside `file` or `sname`
//! cannot make the walk loop. Long options split over several instances (RFC 3396) are
//! written split by `emit`; on reading, the first instance of an option wins.

use super::{Error, Result};
use crate::addr::{Ipv4Net, MacAddr};
use std::net::Ipv4Addr;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// BOOTP's minimum message size; some old clients drop shorter replies, so `emit`
/// pads to it.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The smallest maximum message size a client may announce (RFC 2132 §9.10), and the
/// size every client must accept: 576 minus IP and UDP headers.
pub const MIN_MAX_MESSAGE_SIZE: u16 = 576;

/// Option codes.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const NTP_SERVERS: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const RAPID_COMMIT: u8 = 80;
    pub const CLASSLESS_STATIC_ROUTES: u8 = 121;
    pub const END: u8 = 255;
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const SNAME: Range<usize> = 44..108;
    pub const FILE: Range<usize> = 108..236;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: RangeFrom<usize> = 240..;
}

/// Length of the fixed part, magic cookie included.
pub const HEADER_LEN: usize = field::OPTIONS.start;

const FLAG_BROADCAST: u16 = 0x8000;
const HTYPE_ETHERNET: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Request,
    Reply,
    Unknown(u8),
}

impl From<u8> for OpCode {
    fn from(v: u8) -> OpCode {
        match v {
            1 => OpCode::Request,
            2 => OpCode::Reply,
            o => OpCode::Unknown(o),
        }
    }
}

impl From<OpCode> for u8 {
    fn from(v: OpCode) -> u8 {
        match v {
            OpCode::Request => 1,
            OpCode::Reply => 2,
            OpCode::Unknown(o) => o,
        }
    }
}

/// Option 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> MessageType {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            o => MessageType::Unknown(o),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(o) => o,
        }
    }
}

impl MessageType {
    /// The BOOTP op a message of this type travels in.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageType::Offer | MessageType::Ack | MessageType::Nak => OpCode::Reply,
            _ => OpCode::Request,
        }
    }
}

/// One option as found in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Walks the options of a message: the options field, then `file` and `sname` as the
/// overload option directs. Yields `Err(Truncated)` once for an option running past
/// its region, then stops.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    regions: [&'a [u8]; 3],
    region: usize,
    pos: usize,
}

impl<'a> OptionsIter<'a> {
    /// Walks a single region (an options field on its own).
    pub fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter {
            regions: [options, &[], &[]],
            region: 0,
            pos: 0,
        }
    }

    fn next_region(&mut self) {
        self.region += 1;
        self.pos = 0;
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<DhcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let buf = *self.regions.get(self.region)?;
            let Some(&kind) = buf.get(self.pos) else {
                self.next_region();
                continue;
            };
            match kind {
                opt::PAD => {
                    self.pos += 1;
                    continue;
                }
                opt::END => {
                    self.next_region();
                    continue;
                }
                _ => {}
            }
            let start = self.pos + 2;
            let data = buf
                .get(self.pos + 1)
                .and_then(|&len| buf.get(start..start + len as usize));
            let Some(data) = data else {
                // Stop for good: nothing after a broken option can be trusted.
                self.region = self.regions.len();
                return Some(Err(Error::Truncated));
            };
            self.pos = start + data.len();
            return Some(Ok(DhcpOption { kind, data }));
        }
    }
}

/// A read/write view of a DHCP message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
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

    /// Checks the fixed part and the magic cookie are there (options may be empty).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    pub fn opcode(&self) -> OpCode {
        OpCode::from(self.b()[field::OP])
    }
    pub fn hardware_type(&self) -> u8 {
        self.b()[field::HTYPE]
    }
    pub fn hardware_len(&self) -> u8 {
        self.b()[field::HLEN]
    }
    pub fn hops(&self) -> u8 {
        self.b()[field::HOPS]
    }
    pub fn transaction_id(&self) -> u32 {
        let b = &self.b()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn secs(&self) -> u16 {
        let b = &self.b()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn flags(&self) -> u16 {
        let b = &self.b()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn broadcast_flag(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }
    pub fn client_ip(&self) -> Ipv4Addr {
        ip4(&self.b()[field::CIADDR])
    }
    pub fn your_ip(&self) -> Ipv4Addr {
        ip4(&self.b()[field::YIADDR])
    }
    pub fn server_ip(&self) -> Ipv4Addr {
        ip4(&self.b()[field::SIADDR])
    }
    pub fn relay_agent_ip(&self) -> Ipv4Addr {
        ip4(&self.b()[field::GIADDR])
    }
    /// The first six bytes of `chaddr` (meaningful when htype is Ethernet).
    pub fn client_hardware_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.b()[field::CHADDR][..6]);
        MacAddr(m)
    }
    pub fn sname(&self) -> &[u8] {
        &self.b()[field::SNAME]
    }
    pub fn file(&self) -> &[u8] {
        &self.b()[field::FILE]
    }
    pub fn magic_cookie(&self) -> u32 {
        let b = &self.b()[field::MAGIC];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The options field proper.
    pub fn options_field(&self) -> &[u8] {
        &self.b()[field::OPTIONS]
    }

    /// The value of option 52 in the options field: 1 = `file` holds options, 2 =
    /// `sname`, 3 = both; anything else (or none) is treated as no overload.
    pub fn overload(&self) -> u8 {
        overload_of(self.options_field())
    }

    /// Every option of the message, in RFC 2131 order: options, `file`, `sname`.
    pub fn options(&self) -> OptionsIter<'_> {
        options_of(self.b())
    }
}

fn overload_of(options: &[u8]) -> u8 {
    for o in OptionsIter::new(options) {
        match o {
            Ok(DhcpOption {
                kind: opt::OVERLOAD,
                data: &[v @ 1..=3],
            }) => return v,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    0
}

/// The options of a whole message buffer (shorter than a header: none).
fn options_of(buf: &[u8]) -> OptionsIter<'_> {
    let region = |r: core::ops::Range<usize>| buf.get(r).unwrap_or(&[]);
    let options = buf.get(field::OPTIONS).unwrap_or(&[]);
    let ov = overload_of(options);
    OptionsIter {
        regions: [
            options,
            if ov & 1 != 0 {
                region(field::FILE)
            } else {
                &[]
            },
            if ov & 2 != 0 {
                region(field::SNAME)
            } else {
                &[]
            },
        ],
        region: 0,
        pos: 0,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_opcode(&mut self, v: OpCode) {
        self.bm()[field::OP] = u8::from(v);
    }
    pub fn set_hardware_type(&mut self, v: u8) {
        self.bm()[field::HTYPE] = v;
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.bm()[field::HLEN] = v;
    }
    pub fn set_hops(&mut self, v: u8) {
        self.bm()[field::HOPS] = v;
    }
    pub fn set_transaction_id(&mut self, v: u32) {
        self.bm()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_secs(&mut self, v: u16) {
        self.bm()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_flags(&mut self, v: u16) {
        self.bm()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_client_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::CIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_your_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::YIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_server_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::SIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_relay_agent_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::GIADDR].copy_from_slice(&a.octets());
    }
    /// Sets `chaddr` to the MAC followed by ten zero bytes.
    pub fn set_client_hardware_addr(&mut self, m: MacAddr) {
        let c = &mut self.bm()[field::CHADDR];
        c.fill(0);
        c[..6].copy_from_slice(&m.0);
    }
    pub fn sname_mut(&mut self) -> &mut [u8] {
        &mut self.bm()[field::SNAME]
    }
    pub fn file_mut(&mut self) -> &mut [u8] {
        &mut self.bm()[field::FILE]
    }
    pub fn set_magic_cookie(&mut self, v: u32) {
        self.bm()[field::MAGIC].copy_from_slice(&v.to_be_bytes());
    }
    pub fn options_field_mut(&mut self) -> &mut [u8] {
        &mut self.bm()[field::OPTIONS]
    }
}

/// A list of IPv4 addresses (options 3, 6, 42): validated bytes, a multiple of four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs<'a>(&'a [u8]);

impl<'a> Addrs<'a> {
    /// Checks the length is a non-zero multiple of four.
    pub fn from_bytes(b: &'a [u8]) -> Result<Addrs<'a>> {
        if b.is_empty() || !b.len().is_multiple_of(4) {
            return Err(Error::Malformed);
        }
        Ok(Addrs(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + 'a {
        self.0.chunks_exact(4).map(ip4)
    }

    pub fn first(&self) -> Option<Ipv4Addr> {
        self.iter().next()
    }
}

/// A classless static route (RFC 3442).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub dest: Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// Option 121's data: validated RFC 3442 encoding (per route: prefix length, the
/// significant octets of the destination, the router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes<'a>(&'a [u8]);

impl<'a> Routes<'a> {
    /// Checks every route decodes and the data holds nothing else.
    pub fn from_bytes(b: &'a [u8]) -> Result<Routes<'a>> {
        if b.is_empty() {
            return Err(Error::Malformed);
        }
        let mut rest = b;
        while !rest.is_empty() {
            let (_, n) = decode_route(rest)?;
            rest = rest.get(n..).ok_or(Error::Truncated)?;
        }
        Ok(Routes(b))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = Route> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (r, n) = decode_route(rest).ok()?;
            rest = rest.get(n..)?;
            Some(r)
        })
    }

    /// Appends the RFC 3442 encoding of `routes` to `out`.
    pub fn encode(routes: &[Route], out: &mut Vec<u8>) {
        for r in routes {
            let len = r.dest.len();
            let sig = (len as usize).div_ceil(8);
            out.push(len);
            out.extend_from_slice(&r.dest.addr().octets()[..sig]);
            out.extend_from_slice(&r.gateway.octets());
        }
    }
}

/// Decodes one route; returns it and the bytes it used. Stray bits beyond the prefix
/// length are cleared rather than rejected (as Linux clients do).
fn decode_route(b: &[u8]) -> Result<(Route, usize)> {
    let &len = b.first().ok_or(Error::Truncated)?;
    if len > 32 {
        return Err(Error::Malformed);
    }
    let sig = (len as usize).div_ceil(8);
    let dest = b.get(1..1 + sig).ok_or(Error::Truncated)?;
    let gw = b.get(1 + sig..5 + sig).ok_or(Error::Truncated)?;
    let mut d = [0u8; 4];
    d[..sig].copy_from_slice(dest);
    Ok((
        Route {
            dest: Ipv4Net::containing(Ipv4Addr::from(d), len),
            gateway: ip4(gw),
        },
        5 + sig,
    ))
}

/// The meaning of a DHCP message: the fixed fields econet uses and the options it
/// knows. Variable options borrow from the packet (parse) or from the caller (emit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    pub message_type: MessageType,
    pub transaction_id: u32,
    pub secs: u16,
    pub broadcast: bool,
    pub client_hardware_addr: MacAddr,
    /// `ciaddr`
    pub client_ip: Ipv4Addr,
    /// `yiaddr`
    pub your_ip: Ipv4Addr,
    /// `siaddr`
    pub server_ip: Ipv4Addr,
    /// `giaddr`
    pub relay_agent_ip: Ipv4Addr,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub lease_time: Option<u32>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub router: Option<Addrs<'a>>,
    pub dns_servers: Option<Addrs<'a>>,
    pub ntp_servers: Option<Addrs<'a>>,
    pub domain_name: Option<&'a [u8]>,
    pub host_name: Option<&'a [u8]>,
    pub interface_mtu: Option<u16>,
    pub classless_routes: Option<Routes<'a>>,
    pub client_id: Option<&'a [u8]>,
    pub parameter_request_list: Option<&'a [u8]>,
    pub max_message_size: Option<u16>,
    pub rapid_commit: bool,
    pub message: Option<&'a [u8]>,
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N]> {
    data.try_into().map_err(|_| Error::Malformed)
}

fn non_empty(data: &[u8]) -> Result<&[u8]> {
    if data.is_empty() {
        Err(Error::Malformed)
    } else {
        Ok(data)
    }
}

impl<'a> Repr<'a> {
    /// A message with every option absent and every address zero.
    pub fn new(message_type: MessageType, transaction_id: u32, client: MacAddr) -> Repr<'a> {
        Repr {
            message_type,
            transaction_id,
            secs: 0,
            broadcast: false,
            client_hardware_addr: client,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            requested_ip: None,
            server_id: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            router: None,
            dns_servers: None,
            ntp_servers: None,
            domain_name: None,
            host_name: None,
            interface_mtu: None,
            classless_routes: None,
            client_id: None,
            parameter_request_list: None,
            max_message_size: None,
            rapid_commit: false,
            message: None,
        }
    }

    /// Parses a message. Plain BOOTP (no option 53) and non-Ethernet hardware are
    /// `Unsupported`; a wrong cookie, an op that does not fit the message type or a
    /// known option of the wrong size is `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if packet.magic_cookie() != MAGIC_COOKIE {
            return Err(Error::Malformed);
        }
        if packet.hardware_type() != HTYPE_ETHERNET || packet.hardware_len() != 6 {
            return Err(Error::Unsupported);
        }
        // Borrow from the underlying buffer so the repr outlives the view.
        let buf: &'a T = packet.buffer;
        let inner: &'a [u8] = buf.as_ref();
        let packet: Packet<&'a [u8]> = Packet::new_unchecked(inner);
        let mut r = Repr::new(
            MessageType::Unknown(0),
            packet.transaction_id(),
            packet.client_hardware_addr(),
        );
        r.secs = packet.secs();
        r.broadcast = packet.broadcast_flag();
        r.client_ip = packet.client_ip();
        r.your_ip = packet.your_ip();
        r.server_ip = packet.server_ip();
        r.relay_agent_ip = packet.relay_agent_ip();
        let mut message_type = None;
        let mut seen = [false; 256];
        for o in options_of(inner) {
            let DhcpOption { kind, data } = o?;
            let first = !std::mem::replace(&mut seen[kind as usize], true);
            if !first {
                continue;
            }
            match kind {
                opt::MESSAGE_TYPE => message_type = Some(fixed::<1>(data)?[0]),
                opt::REQUESTED_IP => r.requested_ip = Some(fixed::<4>(data)?.into()),
                opt::SERVER_ID => r.server_id = Some(fixed::<4>(data)?.into()),
                opt::SUBNET_MASK => r.subnet_mask = Some(fixed::<4>(data)?.into()),
                opt::LEASE_TIME => r.lease_time = Some(u32::from_be_bytes(fixed(data)?)),
                opt::RENEWAL_TIME => r.renewal_time = Some(u32::from_be_bytes(fixed(data)?)),
                opt::REBINDING_TIME => r.rebinding_time = Some(u32::from_be_bytes(fixed(data)?)),
                opt::INTERFACE_MTU => r.interface_mtu = Some(u16::from_be_bytes(fixed(data)?)),
                opt::MAX_MESSAGE_SIZE => {
                    r.max_message_size = Some(u16::from_be_bytes(fixed(data)?))
                }
                opt::ROUTER => r.router = Some(Addrs::from_bytes(data)?),
                opt::DNS_SERVERS => r.dns_servers = Some(Addrs::from_bytes(data)?),
                opt::NTP_SERVERS => r.ntp_servers = Some(Addrs::from_bytes(data)?),
                opt::DOMAIN_NAME => r.domain_name = Some(non_empty(data)?),
                opt::HOST_NAME => r.host_name = Some(non_empty(data)?),
                opt::CLIENT_ID => {
                    // RFC 2132 §9.14: a type byte and at least one byte of identifier.
                    if data.len() < 2 {
                        return Err(Error::Malformed);
                    }
                    r.client_id = Some(data)
                }
                opt::PARAMETER_REQUEST_LIST => r.parameter_request_list = Some(non_empty(data)?),
                opt::CLASSLESS_STATIC_ROUTES => {
                    r.classless_routes = Some(Routes::from_bytes(data)?)
                }
                opt::RAPID_COMMIT => {
                    if !data.is_empty() {
                        return Err(Error::Malformed);
                    }
                    r.rapid_commit = true
                }
                opt::MESSAGE => r.message = Some(data),
                opt::OVERLOAD => {
                    fixed::<1>(data)?;
                }
                _ => {}
            }
        }
        r.message_type = MessageType::from(message_type.ok_or(Error::Unsupported)?);
        if packet.opcode() != r.message_type.opcode() {
            return Err(Error::Malformed);
        }
        Ok(r)
    }

    /// Calls `f(kind, data)` for every option `emit` writes, in order.
    fn for_each_option(&self, mut f: impl FnMut(u8, &[u8])) {
        let be32 = |v: u32| v.to_be_bytes();
        f(opt::MESSAGE_TYPE, &[u8::from(self.message_type)]);
        if let Some(a) = self.server_id {
            f(opt::SERVER_ID, &a.octets());
        }
        if let Some(v) = self.lease_time {
            f(opt::LEASE_TIME, &be32(v));
        }
        if let Some(v) = self.renewal_time {
            f(opt::RENEWAL_TIME, &be32(v));
        }
        if let Some(v) = self.rebinding_time {
            f(opt::REBINDING_TIME, &be32(v));
        }
        if let Some(a) = self.subnet_mask {
            f(opt::SUBNET_MASK, &a.octets());
        }
        if let Some(a) = self.router {
            f(opt::ROUTER, a.as_bytes());
        }
        if let Some(a) = self.dns_servers {
            f(opt::DNS_SERVERS, a.as_bytes());
        }
        if let Some(d) = self.domain_name {
            f(opt::DOMAIN_NAME, d);
        }
        if let Some(d) = self.host_name {
            f(opt::HOST_NAME, d);
        }
        if let Some(v) = self.interface_mtu {
            f(opt::INTERFACE_MTU, &v.to_be_bytes());
        }
        if let Some(a) = self.ntp_servers {
            f(opt::NTP_SERVERS, a.as_bytes());
        }
        if let Some(r) = self.classless_routes {
            f(opt::CLASSLESS_STATIC_ROUTES, r.as_bytes());
        }
        if let Some(a) = self.requested_ip {
            f(opt::REQUESTED_IP, &a.octets());
        }
        if let Some(d) = self.client_id {
            f(opt::CLIENT_ID, d);
        }
        if let Some(d) = self.parameter_request_list {
            f(opt::PARAMETER_REQUEST_LIST, d);
        }
        if let Some(v) = self.max_message_size {
            f(opt::MAX_MESSAGE_SIZE, &v.to_be_bytes());
        }
        if self.rapid_commit {
            f(opt::RAPID_COMMIT, &[]);
        }
        if let Some(d) = self.message {
            f(opt::MESSAGE, d);
        }
    }

    /// Bytes an option takes, split into 255-byte instances (RFC 3396) when longer.
    fn option_len(data_len: usize) -> usize {
        2 * data_len.div_ceil(255).max(1) + data_len
    }

    /// The message length `emit` writes: header, options, end, padding to 300.
    pub fn buffer_len(&self) -> usize {
        let mut n = HEADER_LEN + 1;
        self.for_each_option(|_, d| n += Self::option_len(d.len()));
        n.max(MIN_MESSAGE_LEN)
    }

    /// Writes the message into the first `buffer_len()` bytes of the packet's buffer;
    /// a shorter buffer is `Truncated` and nothing is written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let len = self.buffer_len();
        let buf = packet.buffer.as_mut();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        buf.fill(0);
        let mut p = Packet::new_unchecked(buf);
        p.set_opcode(self.message_type.opcode());
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_hardware_len(6);
        p.set_hops(0);
        p.set_transaction_id(self.transaction_id);
        p.set_secs(self.secs);
        p.set_flags(if self.broadcast { FLAG_BROADCAST } else { 0 });
        p.set_client_ip(self.client_ip);
        p.set_your_ip(self.your_ip);
        p.set_server_ip(self.server_ip);
        p.set_relay_agent_ip(self.relay_agent_ip);
        p.set_client_hardware_addr(self.client_hardware_addr);
        p.set_magic_cookie(MAGIC_COOKIE);
        let out = p.options_field_mut();
        let mut pos = 0;
        self.for_each_option(|kind, data| {
            let mut chunks = data.chunks(255);
            let mut chunk = chunks.next().unwrap_or(&[]);
            loop {
                // buffer_len() sized the buffer for exactly these bytes.
                if let Some(dst) = out.get_mut(pos..pos + 2 + chunk.len()) {
                    dst[0] = kind;
                    dst[1] = chunk.len() as u8;
                    dst[2..].copy_from_slice(chunk);
                }
                pos += 2 + chunk.len();
                match chunks.next() {
                    Some(c) => chunk = c,
                    None => break,
                }
            }
        });
        if let Some(b) = out.get_mut(pos) {
            *b = opt::END;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
