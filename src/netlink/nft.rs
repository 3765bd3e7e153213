//! nftables by hand: nf_tables netlink messages built byte by byte (neli gives the
//! socket, nothing more), sent as one batch that the kernel applies atomically.
//!
//! The expressions are the ones `nft` itself generates for the same rules (checked
//! with `nft --debug=netlink`), so `nft list ruleset` shows econet's rules readably.

use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::io;

pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;
pub const NFPROTO_BRIDGE: u8 = 7;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;
const NFT_MSG_DELOBJ: u16 = 20;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLA_F_NESTED: u16 = 0x8000;

/// Hook numbers (the same for inet, ip and bridge).
pub const HOOK_PREROUTING: u32 = 0;
pub const HOOK_INPUT: u32 = 1;
pub const HOOK_FORWARD: u32 = 2;
pub const HOOK_OUTPUT: u32 = 3;
pub const HOOK_POSTROUTING: u32 = 4;

/// nft's data type ids, so `nft list` can show set keys.
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_IP6ADDR: u32 = 8;
pub const TYPE_ETHERADDR: u32 = 9;
pub const TYPE_MARK: u32 = 19;
pub const TYPE_INET_PROTO: u32 = 12;
pub const TYPE_INET_SERVICE: u32 = 13;
pub const TYPE_IFNAME: u32 = 41;
/// The data type of a verdict map (`NFT_DATA_VERDICT`).
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// Set flags (`enum nft_set_flags`).
pub const SET_F_INTERVAL: u32 = 0x4;
pub const SET_F_MAP: u32 = 0x8;
pub const SET_F_TIMEOUT: u32 = 0x10;
/// Updated from the packet path (`nft`'s `flags dynamic`).
pub const SET_F_EVAL: u32 = 0x20;

/// Dynset operations (`enum nft_dynset_ops`).
pub const DYNSET_OP_ADD: u32 = 0;
/// Adds the element, or refreshes its timeout if it is there.
pub const DYNSET_OP_UPDATE: u32 = 1;

/// The key type of a concatenation, as nft encodes it.
pub fn concat_type(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | t)
}

/// An interface name as nftables compares it: 16 bytes, zero padded.
pub fn ifname(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

/// Registers: the verdict, four 16-byte registers, and their 4-byte slices.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const REG_2: u32 = 2;
pub const fn reg32(n: u32) -> u32 {
    8 + n
}

pub const REG_3: u32 = 3;

pub const META_PROTOCOL: u32 = 1;
pub const META_MARK: u32 = 3;
pub const META_IIFNAME: u32 = 6;
pub const META_PKTTYPE: u32 = 19;
pub const META_OIFNAME: u32 = 7;
/// The input interface's ARPHRD type (2 bytes, host order).
pub const META_IIFTYPE: u32 = 8;
pub const META_NFPROTO: u32 = 15;
pub const META_L4PROTO: u32 = 16;

pub const BASE_LL: u32 = 0;
pub const BASE_NETWORK: u32 = 1;
pub const BASE_TRANSPORT: u32 = 2;

pub const CT_STATE: u32 = 0;
pub const CT_DIRECTION: u32 = 1;
pub const CT_MARK: u32 = 3;
pub const CT_PROTO_DST: u32 = 12;
/// `IP_CT_DIR_REPLY`, as `ct direction` loads it.
pub const CT_DIR_REPLY: u8 = 1;
pub const CT_STATE_ESTABLISHED: u32 = 2;
pub const CT_STATE_RELATED: u32 = 4;
pub const CT_STATE_NEW: u32 = 8;

/// Stateful object types (`NFT_OBJECT_*`).
pub const OBJ_COUNTER: u32 = 1;
pub const OBJ_LIMIT: u32 = 4;

pub const CMP_EQ: u32 = 0;
pub const CMP_NEQ: u32 = 1;
pub const CMP_LTE: u32 = 3;
pub const CMP_GTE: u32 = 5;

pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;
pub const NFT_GOTO: i32 = -4;
pub const NFT_RETURN: i32 = -5;

/// One nftables expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    /// Set a meta key from a register (`ct mark set`, … use `CtSet`).
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Bitwise {
        reg: u32,
        len: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    CtSet {
        key: u32,
        sreg: u32,
    },
    Lookup {
        set: String,
        sreg: u32,
        invert: bool,
    },
    /// `… vmap @set`: the verdict the key in `sreg` maps to.
    Vmap {
        set: String,
        sreg: u32,
    },
    /// `update @set { key … }` from the packet path: adds the key in `sreg` (with
    /// the set's timeout, or `timeout_ms`), or refreshes its timeout. Breaks the rule
    /// when the set is full. `expr` is a per-element expression (a `limit`).
    Dynset {
        set: String,
        op: u32,
        sreg: u32,
        timeout_ms: Option<u64>,
        expr: Option<Box<Expr>>,
    },
    /// `limit rate [over] RATE/UNIT burst N packets`.
    Limit {
        rate: u64,
        unit_secs: u64,
        burst: u32,
        over: bool,
    },
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    Verdict {
        code: i32,
        chain: Option<String>,
    },
    Counter,
    Masq,
    /// `meta KEY set` from a register.
    MetaSet {
        key: u32,
        sreg: u32,
    },
    /// `ct original KEY` (a key of the connection's original direction).
    CtOrig {
        key: u32,
        dreg: u32,
    },
    /// A map lookup whose data (not a verdict) lands in `dreg`.
    MapLookup {
        set: String,
        sreg: u32,
        dreg: u32,
    },
    /// `dnat ip to` the address in `reg_addr` and the port in `reg_proto`.
    Dnat {
        reg_addr: u32,
        reg_proto: u32,
    },
    /// A named stateful object (`counter name …`, `limit name …`).
    Objref {
        ty: u32,
        name: String,
    },
    /// `rt load tcpmss`
    RtTcpMss {
        dreg: u32,
    },
    Byteorder {
        sreg: u32,
        dreg: u32,
        op: u32,
        len: u32,
        size: u32,
    },
    /// `exthdr write tcpopt`: write `len` bytes of a TCP option from `sreg`.
    TcpOptWrite {
        kind: u8,
        offset: u32,
        len: u32,
        sreg: u32,
    },
}

/// A netlink attribute writer with nesting.
#[derive(Default)]
struct Attrs {
    b: Vec<u8>,
    open: Vec<usize>,
}

impl Attrs {
    fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.b.extend_from_slice(&(len as u16).to_ne_bytes());
        self.b.extend_from_slice(&ty.to_ne_bytes());
        self.b.extend_from_slice(data);
        while !self.b.len().is_multiple_of(4) {
            self.b.push(0);
        }
    }
    fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v);
    }
    fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }
    fn be64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }
    fn begin(&mut self, ty: u16) {
        self.open.push(self.b.len());
        self.b.extend_from_slice(&[0, 0]);
        self.b.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }
    fn end(&mut self) {
        if let Some(start) = self.open.pop() {
            let len = (self.b.len() - start) as u16;
            self.b[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }
    /// `NFTA_DATA_VALUE` inside a nested attribute of type `ty`.
    fn data(&mut self, ty: u16, value: &[u8]) {
        self.begin(ty);
        self.put(1, value);
        self.end();
    }
}

fn expr_name(e: &Expr) -> &'static str {
    match e {
        Expr::Meta { .. } => "meta",
        Expr::Ct { .. } | Expr::CtSet { .. } => "ct",
        Expr::Cmp { .. } => "cmp",
        Expr::Payload { .. } => "payload",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Lookup { .. } | Expr::Vmap { .. } => "lookup",
        Expr::Dynset { .. } => "dynset",
        Expr::Limit { .. } => "limit",
        Expr::Immediate { .. } | Expr::Verdict { .. } => "immediate",
        Expr::Counter => "counter",
        Expr::Masq => "masq",
        Expr::CtOrig { .. } => "ct",
        Expr::MetaSet { .. } => "meta",
        Expr::MapLookup { .. } => "lookup",
        Expr::Dnat { .. } => "nat",
        Expr::Objref { .. } => "objref",
        Expr::RtTcpMss { .. } => "rt",
        Expr::Byteorder { .. } => "byteorder",
        Expr::TcpOptWrite { .. } => "exthdr",
    }
}

fn expr(a: &mut Attrs, e: &Expr) {
    a.begin(1); // NFTA_LIST_ELEM
    expr_body(a, e);
    a.end();
}

/// An expression's name and data (`NFTA_EXPR_NAME`, `NFTA_EXPR_DATA`).
fn expr_body(a: &mut Attrs, e: &Expr) {
    a.str(1, expr_name(e));
    a.begin(2); // NFTA_EXPR_DATA
    match e {
        Expr::Meta { key, dreg } => {
            a.be32(2, *key);
            a.be32(1, *dreg);
        }
        Expr::CtSet { key, sreg } => {
            a.be32(2, *key);
            a.be32(4, *sreg);
        }
        Expr::Cmp { sreg, op, data } => {
            a.be32(1, *sreg);
            a.be32(2, *op);
            a.data(3, data);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            a.be32(1, *dreg);
            a.be32(2, *base);
            a.be32(3, *offset);
            a.be32(4, *len);
        }
        Expr::Bitwise {
            reg,
            len,
            mask,
            xor,
        } => {
            a.be32(1, *reg);
            a.be32(2, *reg);
            a.be32(3, *len);
            a.data(4, mask);
            a.data(5, xor);
        }
        Expr::Ct { key, dreg } => {
            a.be32(2, *key);
            a.be32(1, *dreg);
        }
        Expr::Lookup { set, sreg, invert } => {
            a.str(1, set);
            a.be32(2, *sreg);
            if *invert {
                a.be32(5, 1);
            }
        }
        Expr::Vmap { set, sreg } => {
            a.str(1, set);
            a.be32(2, *sreg);
            a.be32(3, REG_VERDICT); // NFTA_LOOKUP_DREG
        }
        Expr::Dynset {
            set,
            op,
            sreg,
            timeout_ms,
            expr,
        } => {
            a.str(1, set); // NFTA_DYNSET_SET_NAME
            a.be32(3, *op);
            a.be32(4, *sreg); // NFTA_DYNSET_SREG_KEY
            if let Some(t) = timeout_ms {
                a.be64(6, *t); // NFTA_DYNSET_TIMEOUT
            }
            if let Some(e) = expr {
                a.begin(7); // NFTA_DYNSET_EXPR
                expr_body(a, e);
                a.end();
            }
        }
        Expr::Limit {
            rate,
            unit_secs,
            burst,
            over,
        } => {
            a.be64(1, *rate);
            a.be64(2, *unit_secs);
            a.be32(3, *burst);
            a.be32(4, 0); // NFT_LIMIT_PKTS
            a.be32(5, u32::from(*over)); // NFT_LIMIT_F_INV
        }
        Expr::Immediate { dreg, data } => {
            a.be32(1, *dreg);
            a.data(2, data);
        }
        Expr::Verdict { code, chain } => {
            a.be32(1, REG_VERDICT);
            a.begin(2); // NFTA_IMMEDIATE_DATA
            a.begin(2); // NFTA_DATA_VERDICT
            a.be32(1, *code as u32);
            if let Some(c) = chain {
                a.str(2, c);
            }
            a.end();
            a.end();
        }
        Expr::Counter => {
            a.put(1, &0u64.to_be_bytes());
            a.put(2, &0u64.to_be_bytes());
        }
        Expr::Masq => {}
        Expr::MetaSet { key, sreg } => {
            a.be32(2, *key);
            a.be32(3, *sreg); // NFTA_META_SREG
        }
        Expr::CtOrig { key, dreg } => {
            a.be32(2, *key);
            a.be32(1, *dreg);
            a.put(3, &[0]); // NFTA_CT_DIRECTION: IP_CT_DIR_ORIGINAL
        }
        Expr::MapLookup { set, sreg, dreg } => {
            a.str(1, set);
            a.be32(2, *sreg);
            a.be32(3, *dreg);
        }
        Expr::Dnat {
            reg_addr,
            reg_proto,
        } => {
            a.be32(1, 1); // NFT_NAT_DNAT
            a.be32(2, u32::from(NFPROTO_IPV4));
            a.be32(3, *reg_addr); // NFTA_NAT_REG_ADDR_MIN
            a.be32(5, *reg_proto); // NFTA_NAT_REG_PROTO_MIN
        }
        Expr::Objref { ty, name } => {
            a.be32(1, *ty); // NFTA_OBJREF_IMM_TYPE
            a.str(2, name);
        }
        Expr::RtTcpMss { dreg } => {
            a.be32(1, *dreg);
            a.be32(2, 3); // NFT_RT_TCPMSS
        }
        Expr::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => {
            a.be32(1, *sreg);
            a.be32(2, *dreg);
            a.be32(3, *op);
            a.be32(4, *len);
            a.be32(5, *size);
        }
        Expr::TcpOptWrite {
            kind,
            offset,
            len,
            sreg,
        } => {
            a.put(2, &[*kind]);
            a.be32(3, *offset);
            a.be32(4, *len);
            a.be32(6, 1); // NFT_EXTHDR_OP_TCPOPT
            a.be32(7, *sreg);
        }
    }
    a.end();
}

/// A base chain's hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub num: u32,
    pub priority: i32,
    /// "filter" or "nat".
    pub kind: &'static str,
}

/// A set element's key and the milliseconds it has left.
pub type TimedKey = (Vec<u8>, u64);

/// A set's definition for `Batch::add_set_def`.
#[derive(Clone, Debug, Default)]
pub struct SetDef<'a> {
    pub name: &'a str,
    pub key_type: u32,
    pub key_len: u32,
    /// `SET_F_EVAL` for sets the rules update; `SET_F_MAP` and `SET_F_TIMEOUT` are
    /// added from `data_type` and `timeout_ms`.
    pub flags: u32,
    /// A map's data type (`DATA_VERDICT` for a verdict map) and length.
    pub data_type: Option<u32>,
    pub data_len: u32,
    /// The most elements the set may hold (0: the kernel's default).
    pub size: u32,
    /// The default timeout of elements, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// One batch of nf_tables messages, applied all or nothing.
pub struct Batch {
    buf: Vec<u8>,
    /// The sequence number of the batch's first message, and of the next.
    first_seq: u32,
    /// Where the last message that wants an acknowledgement begins.
    last_ack: Option<usize>,
    seq: u32,
    /// Messages that will be acknowledged.
    pub acks: u32,
    next_set_id: u32,
}

impl Batch {
    pub fn new(seq: u32) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            first_seq: seq,
            last_ack: None,
            seq,
            acks: 0,
            next_set_id: 1,
        };
        b.msg(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES, &[], false);
        b
    }

    fn msg(&mut self, ty: u16, flags: u16, family: u8, res_id: u16, attrs: &[u8], ack: bool) {
        let len = 16 + 4 + attrs.len();
        let flags = flags | libc::NLM_F_REQUEST as u16;
        if ack {
            self.last_ack = Some(self.buf.len());
        }
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(attrs);
        self.seq = self.seq.wrapping_add(1);
    }

    fn nft(&mut self, msg: u16, flags: u16, family: u8, a: Attrs) {
        self.msg(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            flags,
            family,
            0,
            &a.b,
            true,
        );
    }

    /// Creates table `name` (or, with `flags` 0 and an existing table, keeps it).
    pub fn add_table(&mut self, family: u8, name: &str, userdata: &[u8]) {
        let mut a = Attrs::default();
        a.str(1, name);
        a.be32(2, 0);
        if !userdata.is_empty() {
            a.put(6, userdata);
        }
        self.nft(NFT_MSG_NEWTABLE, libc::NLM_F_CREATE as u16, family, a);
    }

    /// Deletes table `name` and everything in it.
    pub fn del_table(&mut self, family: u8, name: &str) {
        let mut a = Attrs::default();
        a.str(1, name);
        self.nft(NFT_MSG_DELTABLE, 0, family, a);
    }

    pub fn add_chain(&mut self, family: u8, table: &str, name: &str, hook: Option<&Hook>) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(3, name);
        if let Some(h) = hook {
            a.begin(4);
            a.be32(1, h.num);
            a.be32(2, h.priority as u32);
            a.end();
            a.be32(5, NF_ACCEPT as u32); // policy accept: econet only ever drops what it owns
            a.str(7, h.kind);
        }
        self.nft(NFT_MSG_NEWCHAIN, libc::NLM_F_CREATE as u16, family, a);
    }

    /// Creates a hash set; returns its batch id.
    pub fn add_set(
        &mut self,
        family: u8,
        table: &str,
        name: &str,
        key_type: u32,
        key_len: u32,
    ) -> u32 {
        self.add_set_def(
            family,
            table,
            &SetDef {
                name,
                key_type,
                key_len,
                ..SetDef::default()
            },
        )
    }

    /// Creates a set as `def` says; returns its batch id.
    pub fn add_set_def(&mut self, family: u8, table: &str, def: &SetDef) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, def.name);
        let mut flags = def.flags;
        if def.data_type.is_some() {
            flags |= SET_F_MAP;
        }
        if def.timeout_ms.is_some() {
            flags |= SET_F_TIMEOUT;
        }
        a.be32(3, flags);
        a.be32(4, def.key_type);
        a.be32(5, def.key_len);
        if let Some(dt) = def.data_type {
            a.be32(6, dt); // NFTA_SET_DATA_TYPE
            if dt != DATA_VERDICT {
                a.be32(7, def.data_len);
            }
        }
        if def.size > 0 {
            a.begin(9); // NFTA_SET_DESC
            a.be32(1, def.size); // NFTA_SET_DESC_SIZE
            a.end();
        }
        a.be32(10, id);
        if let Some(t) = def.timeout_ms {
            a.be64(11, t); // NFTA_SET_TIMEOUT
        }
        if def.key_type == TYPE_IFNAME {
            // Tell `nft list` the key is host-endian text, so it prints names.
            let mut ud = vec![0u8, 4];
            ud.extend_from_slice(&1u32.to_ne_bytes());
            a.put(13, &ud);
        }
        self.nft(NFT_MSG_NEWSET, libc::NLM_F_CREATE as u16, family, a);
        id
    }

    /// Adds elements with a timeout of their own (milliseconds): set entries that
    /// must outlive a rebuild of their table keep their remaining time.
    pub fn add_elems_timed(&mut self, family: u8, table: &str, set: &str, elems: &[TimedKey]) {
        for chunk in elems.chunks(256) {
            let mut a = Attrs::default();
            a.str(1, table);
            a.str(2, set);
            a.begin(3);
            for (k, ms) in chunk {
                a.begin(1);
                a.data(1, k);
                a.be64(4, *ms); // NFTA_SET_ELEM_TIMEOUT
                a.end();
            }
            a.end();
            self.nft(NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE as u16, family, a);
        }
    }

    /// Adds `key : jump CHAIN` (or goto) elements to a verdict map.
    pub fn add_verdict_elems(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        elems: &[(Vec<u8>, i32, String)],
    ) {
        for chunk in elems.chunks(256) {
            let mut a = Attrs::default();
            a.str(1, table);
            a.str(2, set);
            a.begin(3);
            for (k, code, chain) in chunk {
                a.begin(1);
                a.data(1, k);
                a.begin(2); // NFTA_SET_ELEM_DATA
                a.begin(2); // NFTA_DATA_VERDICT
                a.be32(1, *code as u32);
                a.str(2, chain);
                a.end();
                a.end();
                a.end();
            }
            a.end();
            self.nft(NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE as u16, family, a);
        }
    }

    fn elems(&mut self, msg: u16, family: u8, table: &str, set: &str, keys: &[Vec<u8>]) {
        // Keep each message well under the socket buffer: 256 elements at a time.
        for chunk in keys.chunks(256) {
            let mut a = Attrs::default();
            a.str(1, table);
            a.str(2, set);
            a.begin(3);
            for k in chunk {
                a.begin(1);
                a.data(1, k);
                a.end();
            }
            a.end();
            let flags = if msg == NFT_MSG_NEWSETELEM {
                libc::NLM_F_CREATE as u16
            } else {
                0
            };
            self.nft(msg, flags, family, a);
        }
    }

    pub fn add_elems(&mut self, family: u8, table: &str, set: &str, keys: &[Vec<u8>]) {
        self.elems(NFT_MSG_NEWSETELEM, family, table, set, keys);
    }

    pub fn del_elems(&mut self, family: u8, table: &str, set: &str, keys: &[Vec<u8>]) {
        self.elems(NFT_MSG_DELSETELEM, family, table, set, keys);
    }

    pub fn add_rule(&mut self, family: u8, table: &str, chain: &str, exprs: &[Expr]) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, chain);
        a.begin(4);
        for e in exprs {
            expr(&mut a, e);
        }
        a.end();
        self.nft(
            NFT_MSG_NEWRULE,
            (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16,
            family,
            a,
        );
    }

    /// Deletes chain `name` with its rules (nothing may refer to it any more).
    pub fn del_chain(&mut self, family: u8, table: &str, name: &str) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(3, name);
        self.nft(NFT_MSG_DELCHAIN, 0, family, a);
    }

    pub fn del_set(&mut self, family: u8, table: &str, name: &str) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, name);
        self.nft(NFT_MSG_DELSET, 0, family, a);
    }

    /// Creates a named counter.
    pub fn add_counter(&mut self, family: u8, table: &str, name: &str) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, name);
        a.be32(3, OBJ_COUNTER);
        a.begin(4);
        a.be64(1, 0); // NFTA_COUNTER_BYTES
        a.be64(2, 0); // NFTA_COUNTER_PACKETS
        a.end();
        self.nft(NFT_MSG_NEWOBJ, libc::NLM_F_CREATE as u16, family, a);
    }

    /// Creates a named limit: `rate` packets per `unit_secs`, bursts of `burst`;
    /// `over` matches the packets beyond it.
    pub fn add_limit(
        &mut self,
        family: u8,
        table: &str,
        name: &str,
        (rate, unit_secs, burst): (u64, u64, u32),
        over: bool,
    ) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, name);
        a.be32(3, OBJ_LIMIT);
        a.begin(4);
        a.be64(1, rate);
        a.be64(2, unit_secs);
        a.be32(3, burst);
        a.be32(4, 0); // NFT_LIMIT_PKTS
        a.be32(5, u32::from(over)); // NFT_LIMIT_F_INV
        a.end();
        self.nft(NFT_MSG_NEWOBJ, libc::NLM_F_CREATE as u16, family, a);
    }

    pub fn del_obj(&mut self, family: u8, table: &str, name: &str, ty: u32) {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, name);
        a.be32(3, ty);
        self.nft(NFT_MSG_DELOBJ, 0, family, a);
    }

    /// Adds `key : value` elements to a map with data values.
    pub fn add_map_elems(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        elems: &[(Vec<u8>, Vec<u8>)],
    ) {
        for chunk in elems.chunks(256) {
            let mut a = Attrs::default();
            a.str(1, table);
            a.str(2, set);
            a.begin(3);
            for (k, v) in chunk {
                a.begin(1);
                a.data(1, k);
                a.data(2, v); // NFTA_SET_ELEM_DATA { NFTA_DATA_VALUE }
                a.end();
            }
            a.end();
            self.nft(NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE as u16, family, a);
        }
    }

    /// Adds the ranges `[start, end)` of 4-byte keys to an interval set, as `nft`
    /// writes them: each start, then its end flagged as such (none for a range that
    /// runs to the top), after an end at 0 when the first range starts above it.
    pub fn add_intervals(&mut self, family: u8, table: &str, set: &str, ranges: &[(u32, u64)]) {
        let mut elems: Vec<(u32, bool)> = Vec::new();
        if ranges.first().is_some_and(|r| r.0 > 0) {
            elems.push((0, true));
        }
        for &(start, end) in ranges {
            elems.push((start, false));
            if let Ok(e) = u32::try_from(end) {
                elems.push((e, true));
            }
        }
        for chunk in elems.chunks(256) {
            let mut a = Attrs::default();
            a.str(1, table);
            a.str(2, set);
            a.begin(3);
            for (k, is_end) in chunk {
                a.begin(1);
                a.data(1, &k.to_be_bytes());
                if *is_end {
                    a.be32(3, 1); // NFTA_SET_ELEM_FLAGS: NFT_SET_ELEM_INTERVAL_END
                }
                a.end();
            }
            a.end();
            self.nft(NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE as u16, family, a);
        }
    }

    /// The nf_tables messages so far: (message type, attributes), for tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut p = &self.buf[..];
        while p.len() >= 20 {
            let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
            if len < 20 || len > p.len() {
                break;
            }
            let ty = u16::from_ne_bytes([p[4], p[5]]);
            if ty >> 8 == NFNL_SUBSYS_NFTABLES {
                out.push((ty & 0xff, p[20..len].to_vec()));
            }
            p = p.get((len + 3) & !3..).unwrap_or(&[]);
        }
        out
    }

    fn finish(mut self) -> (Vec<u8>, u32, u32) {
        // Only the last message asks for an acknowledgement: the kernel reports
        // every failing message anyway, and one acknowledgement per message (an
        // skb each) is a good part of a large batch's cost.
        if let Some(at) = self.last_ack {
            let f =
                u16::from_ne_bytes([self.buf[at + 6], self.buf[at + 7]]) | libc::NLM_F_ACK as u16;
            self.buf[at + 6..at + 8].copy_from_slice(&f.to_ne_bytes());
            self.acks = 1;
        }
        let end_seq = self.seq;
        self.msg(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES, &[], false);
        (self.buf, self.acks, end_seq)
    }
}

/// A NETLINK_NETFILTER socket for nf_tables batches and conntrack.
pub struct Nft {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
    /// Batches committed.
    pub commits: u64,
    /// What the send buffer is known to take.
    sndbuf: usize,
}

impl Nft {
    pub fn open() -> io::Result<Nft> {
        let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::empty())?;
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: valid fd and a live timeval of the right size.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let _ = sock.set_recv_buffer_size(4 << 20);
        Ok(Nft {
            sock,
            seq: 1,
            buf: vec![0; 256 * 1024],
            commits: 0,
            // The kernel's default (net.core.wmem_default) is about 208 KiB; assume
            // less, so a batch near it grows the buffer.
            sndbuf: 128 * 1024,
        })
    }

    /// A netlink message (a whole batch) larger than the socket's send buffer is
    /// refused: grow the buffer first, as `nft` does (SO_SNDBUFFORCE, which econet's
    /// CAP_NET_ADMIN allows; SO_SNDBUF, capped by wmem_max, otherwise).
    fn fit_send_buffer(&mut self, len: usize) {
        if len <= self.sndbuf {
            return;
        }
        let want = (len + 4096).min(i32::MAX as usize) as libc::c_int;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: valid fd and a live c_int of the right size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &want as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if r == 0 {
                self.sndbuf = want as usize;
                return;
            }
        }
    }

    pub fn batch(&mut self) -> Batch {
        Batch::new(self.seq)
    }

    /// Sends the batch and waits for every acknowledgement; the first error fails it
    /// (and the kernel has then applied nothing of it).
    pub fn commit(&mut self, b: Batch) -> io::Result<()> {
        let first_seq = b.first_seq;
        let (buf, acks, end_seq) = b.finish();
        self.seq = end_seq.wrapping_add(1);
        if acks == 0 {
            return Ok(());
        }
        // Acknowledgements of another batch (left by an earlier failed one) are not
        // this batch's.
        let ours = |seq: u32| seq.wrapping_sub(first_seq) <= end_seq.wrapping_sub(first_seq);
        self.fit_send_buffer(buf.len());
        self.sock
            .send(&buf[..], neli::consts::socket::Msg::empty())?;
        let mut got = 0;
        let mut first_err: Option<io::Error> = None;
        while got < acks {
            // A failed batch is processed to its end all the same, and the kernel
            // queues every acknowledgement before the first arrives: after an error,
            // take the rest without waiting, so none is left for the next batch.
            let flags = if first_err.is_some() {
                neli::consts::socket::Msg::DONTWAIT
            } else {
                neli::consts::socket::Msg::empty()
            };
            let (n, _) = match self.sock.recv(&mut self.buf[..], flags) {
                Ok(r) => r,
                Err(e) => match first_err {
                    Some(first) => return Err(first),
                    None => return Err(e),
                },
            };
            let mut p = &self.buf[..n.min(self.buf.len())];
            while p.len() >= 16 {
                let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
                let ty = u16::from_ne_bytes([p[4], p[5]]);
                let seq = u32::from_ne_bytes([p[8], p[9], p[10], p[11]]);
                if len < 16 || len > p.len() {
                    break;
                }
                if ty == libc::NLMSG_ERROR as u16 && len >= 20 && ours(seq) {
                    let code = i32::from_ne_bytes([p[16], p[17], p[18], p[19]]);
                    got += 1;
                    if code != 0 && first_err.is_none() {
                        first_err = Some(io::Error::from_raw_os_error(-code));
                    }
                }
                p = p.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.commits += 1;
                Ok(())
            }
        }
    }

    fn request(
        &mut self,
        ty: u16,
        flags: u16,
        family: u8,
        attrs: &[u8],
    ) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let len = 20 + attrs.len();
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.push(family);
        m.push(0);
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(attrs);
        self.sock.send(&m[..], neli::consts::socket::Msg::empty())?;
        let mut out = Vec::new();
        loop {
            let (n, _) = self
                .sock
                .recv(&mut self.buf[..], neli::consts::socket::Msg::empty())?;
            let mut p = &self.buf[..n.min(self.buf.len())];
            while p.len() >= 16 {
                let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
                let mty = u16::from_ne_bytes([p[4], p[5]]);
                let mseq = u32::from_ne_bytes([p[8], p[9], p[10], p[11]]);
                if len < 16 || len > p.len() {
                    break;
                }
                if mseq == seq {
                    if mty == libc::NLMSG_DONE as u16 {
                        return Ok(out);
                    }
                    if mty == libc::NLMSG_ERROR as u16 && len >= 20 {
                        let code = i32::from_ne_bytes([p[16], p[17], p[18], p[19]]);
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    if len > 20 {
                        out.push(p[20..len].to_vec());
                    }
                    if flags & libc::NLM_F_DUMP as u16 == 0 {
                        return Ok(out);
                    }
                }
                p = p.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
    }

    /// The userdata of table `name`, `None` if the table does not exist.
    pub fn table_userdata(&mut self, family: u8, name: &str) -> io::Result<Option<Vec<u8>>> {
        let mut a = Attrs::default();
        a.str(1, name);
        match self.request(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
            0,
            family,
            &a.b,
        ) {
            Ok(msgs) => Ok(msgs.first().map(|m| {
                crate::netlink::link::raw_attrs(m)
                    .find(|(t, _)| *t == 6)
                    .map(|(_, d)| d.to_vec())
                    .unwrap_or_default()
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The keys of every element of set `set` in table `table`.
    pub fn set_elems(&mut self, family: u8, table: &str, set: &str) -> io::Result<Vec<Vec<u8>>> {
        let msgs = self.dump_elems(family, table, set)?;
        Ok(parse_elems(&msgs, usize::MAX)
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// At most `max` elements of set `set` that expire, with the milliseconds each
    /// has left. Elements without an expiration are left out.
    pub fn set_elems_expiring(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        max: usize,
    ) -> io::Result<Vec<TimedKey>> {
        let msgs = self.dump_elems(family, table, set)?;
        Ok(parse_elems(&msgs, max)
            .into_iter()
            .filter_map(|(k, exp)| Some((k, exp?)))
            .collect())
    }

    /// Every element of set `set`, with the milliseconds it has left if it expires.
    pub fn set_elems_timed(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> io::Result<Vec<(Vec<u8>, Option<u64>)>> {
        let msgs = self.dump_elems(family, table, set)?;
        Ok(parse_elems(&msgs, usize::MAX))
    }

    fn dump_elems(&mut self, family: u8, table: &str, set: &str) -> io::Result<Vec<Vec<u8>>> {
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, set);
        self.request(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
            libc::NLM_F_DUMP as u16,
            family,
            &a.b,
        )
    }

    /// The names of the chains of `table`.
    pub fn chains(&mut self, family: u8, table: &str) -> io::Result<Vec<String>> {
        self.names(NFT_MSG_GETCHAIN, 1, 3, family, table)
    }

    /// The names of the sets (maps included) of `table`.
    pub fn sets(&mut self, family: u8, table: &str) -> io::Result<Vec<String>> {
        self.names(NFT_MSG_GETSET, 1, 2, family, table)
    }

    /// Dumps objects of one kind and returns the names of those in `table`
    /// (`table_attr` and `name_attr` are that kind's attribute numbers).
    fn names(
        &mut self,
        msg: u16,
        table_attr: u16,
        name_attr: u16,
        family: u8,
        table: &str,
    ) -> io::Result<Vec<String>> {
        let mut a = Attrs::default();
        a.str(table_attr, table);
        let msgs = self.request(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            libc::NLM_F_DUMP as u16,
            family,
            &a.b,
        )?;
        Ok(msgs
            .iter()
            .filter(|m| attr_str(m, table_attr).as_deref() == Some(table))
            .filter_map(|m| attr_str(m, name_attr))
            .collect())
    }

    /// The named objects of type `ty` in `table`: name and, for counters, the
    /// packets and bytes counted.
    pub fn objects(
        &mut self,
        family: u8,
        table: &str,
        ty: u32,
    ) -> io::Result<Vec<(String, u64, u64)>> {
        use crate::netlink::link::raw_attrs;
        let mut a = Attrs::default();
        a.str(1, table);
        a.be32(3, ty);
        let msgs = self.request(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ,
            libc::NLM_F_DUMP as u16,
            family,
            &a.b,
        )?;
        let be64 = |d: &[u8]| {
            d.get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let mut out = Vec::new();
        for m in &msgs {
            if attr_str(m, 1).as_deref() != Some(table) {
                continue;
            }
            let kind = raw_attrs(m)
                .find(|(t, _)| *t == 3)
                .and_then(|(_, d)| d.get(..4));
            if kind != Some(&ty.to_be_bytes()[..]) {
                continue;
            }
            let Some(name) = attr_str(m, 2) else { continue };
            let (mut packets, mut bytes) = (0, 0);
            for (t, d) in raw_attrs(m).filter(|(t, _)| *t == 4) {
                let _ = t;
                for (k, v) in raw_attrs(d) {
                    match k {
                        1 => bytes = be64(v).unwrap_or(0),
                        2 => packets = be64(v).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            out.push((name, packets, bytes));
        }
        Ok(out)
    }

    /// The elements of map `set`: each key and its data.
    pub fn map_elems(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> io::Result<Vec<(Vec<u8>, ElemData)>> {
        let msgs = self.dump_elems(family, table, set)?;
        Ok(parse_map_elems(&msgs))
    }

    /// Deletes every IPv4 and IPv6 conntrack entry whose mark is `mark` (a
    /// network's flows, when its NAT moves to another port).
    pub fn flush_conntrack_mark(&mut self, mark: u32) -> io::Result<()> {
        let mut a = Attrs::default();
        a.be32(8, mark); // CTA_MARK
        a.be32(21, u32::MAX); // CTA_MARK_MASK
        let ty = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        for family in [NFPROTO_IPV4, NFPROTO_IPV6] {
            match self.request(ty, libc::NLM_F_ACK as u16, family, &a.b) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A string attribute of a message (its NUL cut off).
fn attr_str(m: &[u8], ty: u16) -> Option<String> {
    let (_, d) = crate::netlink::link::raw_attrs(m).find(|(t, _)| *t == ty)?;
    let d = d.split(|&b| b == 0).next().unwrap_or(d);
    std::str::from_utf8(d).ok().map(str::to_string)
}

/// What a map element maps its key to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElemData {
    Value(Vec<u8>),
    /// A verdict, with the chain it jumps or goes to.
    Verdict(i32, Option<String>),
    None,
}

fn parse_map_elems(msgs: &[Vec<u8>]) -> Vec<(Vec<u8>, ElemData)> {
    use crate::netlink::link::raw_attrs;
    let mut out = Vec::new();
    for m in msgs {
        for (_, list) in raw_attrs(m).filter(|(t, _)| *t == 3) {
            for (_, el) in raw_attrs(list) {
                let mut key = None;
                let mut data = ElemData::None;
                for (t, v) in raw_attrs(el) {
                    match t {
                        1 => key = raw_attrs(v).find(|(t, _)| *t == 1).map(|(_, d)| d.to_vec()),
                        2 => {
                            for (dt, dv) in raw_attrs(v) {
                                match dt {
                                    1 => data = ElemData::Value(dv.to_vec()),
                                    2 => {
                                        let mut code = 0;
                                        let mut chain = None;
                                        for (vt, vv) in raw_attrs(dv) {
                                            match vt {
                                                1 => {
                                                    code = vv
                                                        .get(..4)
                                                        .and_then(|b| b.try_into().ok())
                                                        .map(i32::from_be_bytes)
                                                        .unwrap_or(0)
                                                }
                                                2 => {
                                                    let s =
                                                        vv.split(|&b| b == 0).next().unwrap_or(vv);
                                                    chain = std::str::from_utf8(s)
                                                        .ok()
                                                        .map(str::to_string)
                                                }
                                                _ => {}
                                            }
                                        }
                                        data = ElemData::Verdict(code, chain);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(k) = key {
                    out.push((k, data));
                }
            }
        }
    }
    out
}

/// The elements of `NFT_MSG_NEWSETELEM` dump messages (the nfgenmsg header already
/// cut off): each key, and the milliseconds it has left if it expires. At most `max`.
fn parse_elems(msgs: &[Vec<u8>], max: usize) -> Vec<(Vec<u8>, Option<u64>)> {
    use crate::netlink::link::raw_attrs;
    let mut out = Vec::new();
    for m in msgs {
        // NFTA_SET_ELEM_LIST_ELEMENTS
        for (_, list) in raw_attrs(m).filter(|(t, _)| *t == 3) {
            for (_, el) in raw_attrs(list) {
                if out.len() >= max {
                    return out;
                }
                let mut key = None;
                let mut exp = None;
                for (t, v) in raw_attrs(el) {
                    match t {
                        // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
                        1 => key = raw_attrs(v).find(|(t, _)| *t == 1).map(|(_, d)| d.to_vec()),
                        // NFTA_SET_ELEM_EXPIRATION
                        5 => {
                            exp = v
                                .get(..8)
                                .and_then(|b| b.try_into().ok())
                                .map(u64::from_be_bytes)
                        }
                        _ => {}
                    }
                }
                if let Some(k) = key {
                    out.push((k, exp));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_key_type_matches_nft() {
        assert_eq!(
            concat_type(&[TYPE_IFNAME, TYPE_ETHERADDR, TYPE_IPADDR]),
            0x29247
        );
    }

    #[test]
    fn batch_framing() {
        let mut b = Batch::new(7);
        b.add_table(NFPROTO_INET, "econet", b"x");
        let (buf, acks, _) = b.finish();
        assert_eq!(acks, 1);
        // begin (20) + table + end (20)
        let first = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(first, 20);
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(&buf[18..20], &NFNL_SUBSYS_NFTABLES.to_be_bytes());
        let table_ty = u16::from_ne_bytes([buf[24], buf[25]]);
        assert_eq!(table_ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE);
        assert_eq!(buf.len() % 4, 0);
    }

    use crate::netlink::link::raw_attrs;

    fn attr(b: &[u8], ty: u16) -> Option<&[u8]> {
        raw_attrs(b).find(|(t, _)| *t == ty).map(|(_, v)| v)
    }

    fn be32(v: &[u8]) -> u32 {
        u32::from_be_bytes(v[..4].try_into().unwrap())
    }

    fn be64(v: &[u8]) -> u64 {
        u64::from_be_bytes(v[..8].try_into().unwrap())
    }

    #[test]
    fn dynset_with_a_limit_is_encoded_as_nf_tables_h_says() {
        let mut a = Attrs::default();
        expr(
            &mut a,
            &Expr::Dynset {
                set: "claims6".into(),
                op: DYNSET_OP_UPDATE,
                sreg: REG_1,
                timeout_ms: Some(60_000),
                expr: Some(Box::new(Expr::Limit {
                    rate: 2,
                    unit_secs: 3600,
                    burst: 16,
                    over: true,
                })),
            },
        );
        let elem = attr(&a.b, 1).unwrap(); // NFTA_LIST_ELEM
        assert_eq!(attr(elem, 1).unwrap(), b"dynset\0"); // NFTA_EXPR_NAME
        let d = attr(elem, 2).unwrap(); // NFTA_EXPR_DATA
        assert_eq!(attr(d, 1).unwrap(), b"claims6\0"); // NFTA_DYNSET_SET_NAME
        assert_eq!(be32(attr(d, 3).unwrap()), 1); // NFTA_DYNSET_OP: NFT_DYNSET_OP_UPDATE
        assert_eq!(be32(attr(d, 4).unwrap()), 1); // NFTA_DYNSET_SREG_KEY
        assert_eq!(be64(attr(d, 6).unwrap()), 60_000); // NFTA_DYNSET_TIMEOUT
        let e = attr(d, 7).unwrap(); // NFTA_DYNSET_EXPR
        assert_eq!(attr(e, 1).unwrap(), b"limit\0");
        let l = attr(e, 2).unwrap();
        assert_eq!(be64(attr(l, 1).unwrap()), 2); // NFTA_LIMIT_RATE
        assert_eq!(be64(attr(l, 2).unwrap()), 3600); // NFTA_LIMIT_UNIT
        assert_eq!(be32(attr(l, 3).unwrap()), 16); // NFTA_LIMIT_BURST
        assert_eq!(be32(attr(l, 4).unwrap()), 0); // NFTA_LIMIT_TYPE: NFT_LIMIT_PKTS
        assert_eq!(be32(attr(l, 5).unwrap()), 1); // NFTA_LIMIT_FLAGS: NFT_LIMIT_F_INV
    }

    #[test]
    fn vmap_lookup_writes_the_verdict_register() {
        let mut a = Attrs::default();
        expr(
            &mut a,
            &Expr::Vmap {
                set: "m".into(),
                sreg: REG_1,
            },
        );
        let d = attr(attr(&a.b, 1).unwrap(), 2).unwrap();
        assert_eq!(attr(d, 1).unwrap(), b"m\0"); // NFTA_LOOKUP_SET
        assert_eq!(be32(attr(d, 2).unwrap()), 1); // NFTA_LOOKUP_SREG
        assert_eq!(be32(attr(d, 3).unwrap()), 0); // NFTA_LOOKUP_DREG: NFT_REG_VERDICT
    }

    #[test]
    fn sets_with_timeouts_sizes_and_verdict_data() {
        let mut b = Batch::new(1);
        b.add_set_def(
            NFPROTO_BRIDGE,
            "t",
            &SetDef {
                name: "s",
                key_type: TYPE_IP6ADDR,
                key_len: 16,
                flags: SET_F_EVAL,
                size: 2048,
                timeout_ms: Some(86_400_000),
                ..SetDef::default()
            },
        );
        b.add_set_def(
            NFPROTO_BRIDGE,
            "t",
            &SetDef {
                name: "m",
                key_type: TYPE_IFNAME,
                key_len: 16,
                data_type: Some(DATA_VERDICT),
                ..SetDef::default()
            },
        );
        b.add_verdict_elems(
            NFPROTO_BRIDGE,
            "t",
            "m",
            &[(ifname("v1").to_vec(), NFT_JUMP, "c".into())],
        );
        b.add_elems_timed(NFPROTO_BRIDGE, "t", "s", &[(vec![0xfe; 16], 5000)]);
        let m = b.messages();
        assert_eq!(m.len(), 4);
        let (ty, s) = &m[0];
        assert_eq!(*ty, NFT_MSG_NEWSET);
        assert_eq!(be32(attr(s, 3).unwrap()), 0x30); // EVAL | TIMEOUT
        assert_eq!(be32(attr(attr(s, 9).unwrap(), 1).unwrap()), 2048); // DESC_SIZE
        assert_eq!(be64(attr(s, 11).unwrap()), 86_400_000); // NFTA_SET_TIMEOUT
        let (_, mset) = &m[1];
        assert_eq!(be32(attr(mset, 3).unwrap()), SET_F_MAP);
        assert_eq!(be32(attr(mset, 6).unwrap()), 0xffff_ff00); // NFT_DATA_VERDICT
        assert!(attr(mset, 7).is_none());
        let (ty, e) = &m[2];
        assert_eq!(*ty, NFT_MSG_NEWSETELEM);
        let el = attr(attr(e, 3).unwrap(), 1).unwrap();
        let v = attr(attr(attr(el, 2).unwrap(), 2).unwrap(), 1).unwrap(); // DATA, VERDICT, CODE
        assert_eq!(be32(v) as i32, NFT_JUMP);
        let el = attr(attr(&m[3].1, 3).unwrap(), 1).unwrap();
        assert_eq!(be64(attr(el, 4).unwrap()), 5000); // NFTA_SET_ELEM_TIMEOUT
    }

    /// An element as a dump carries it: key, and optionally its expiration.
    fn dumped_elem(key: &[u8], exp: Option<u64>) -> Vec<u8> {
        let mut a = Attrs::default();
        a.begin(1);
        a.data(1, key);
        if let Some(ms) = exp {
            a.be64(4, 86_400_000);
            a.be64(5, ms);
        }
        a.end();
        a.b
    }

    #[test]
    fn dumped_elements_are_parsed_within_bounds() {
        let mut a = Attrs::default();
        a.str(1, "t");
        a.str(2, "s");
        let mut list = dumped_elem(&[1; 16], Some(1234));
        list.extend(dumped_elem(&[2; 16], None));
        list.extend(dumped_elem(&[3; 16], Some(99)));
        a.begin(3);
        a.b.extend_from_slice(&list);
        a.end();
        let msg = a.b;
        let all = parse_elems(std::slice::from_ref(&msg), usize::MAX);
        assert_eq!(
            all,
            vec![
                (vec![1; 16], Some(1234)),
                (vec![2; 16], None),
                (vec![3; 16], Some(99))
            ]
        );
        assert_eq!(parse_elems(std::slice::from_ref(&msg), 2).len(), 2);
        // Cut anywhere: no panic, and never more than is whole.
        for n in 0..msg.len() {
            assert!(parse_elems(&[msg[..n].to_vec()], usize::MAX).len() <= 3);
        }
    }
}
