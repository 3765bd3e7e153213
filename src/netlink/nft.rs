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
pub const NFPROTO_BRIDGE: u8 = 7;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
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
pub const TYPE_ETHERADDR: u32 = 9;
pub const TYPE_IFNAME: u32 = 41;

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

pub const META_PROTOCOL: u32 = 1;
pub const META_IIFNAME: u32 = 6;
pub const META_OIFNAME: u32 = 7;
pub const META_NFPROTO: u32 = 15;
pub const META_L4PROTO: u32 = 16;

pub const BASE_LL: u32 = 0;
pub const BASE_NETWORK: u32 = 1;
pub const BASE_TRANSPORT: u32 = 2;

pub const CT_STATE: u32 = 0;
pub const CT_MARK: u32 = 3;
pub const CT_STATE_ESTABLISHED: u32 = 2;
pub const CT_STATE_RELATED: u32 = 4;
pub const CT_STATE_NEW: u32 = 8;

pub const CMP_EQ: u32 = 0;
pub const CMP_NEQ: u32 = 1;

pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;

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
        Expr::Lookup { .. } => "lookup",
        Expr::Immediate { .. } | Expr::Verdict { .. } => "immediate",
        Expr::Counter => "counter",
        Expr::Masq => "masq",
        Expr::RtTcpMss { .. } => "rt",
        Expr::Byteorder { .. } => "byteorder",
        Expr::TcpOptWrite { .. } => "exthdr",
    }
}

fn expr(a: &mut Attrs, e: &Expr) {
    a.begin(1); // NFTA_LIST_ELEM
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

/// One batch of nf_tables messages, applied all or nothing.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// Messages that will be acknowledged.
    pub acks: u32,
    next_set_id: u32,
}

impl Batch {
    pub fn new(seq: u32) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            seq,
            acks: 0,
            next_set_id: 1,
        };
        b.msg(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES, &[], false);
        b
    }

    fn msg(&mut self, ty: u16, flags: u16, family: u8, res_id: u16, attrs: &[u8], ack: bool) {
        let len = 16 + 4 + attrs.len();
        let mut flags = flags | libc::NLM_F_REQUEST as u16;
        if ack {
            flags |= libc::NLM_F_ACK as u16;
            self.acks += 1;
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
        let id = self.next_set_id;
        self.next_set_id += 1;
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, name);
        a.be32(3, 0);
        a.be32(4, key_type);
        a.be32(5, key_len);
        a.be32(10, id);
        if key_type == TYPE_IFNAME {
            // Tell `nft list` the key is host-endian text, so it prints names.
            let mut ud = vec![0u8, 4];
            ud.extend_from_slice(&1u32.to_ne_bytes());
            a.put(13, &ud);
        }
        self.nft(NFT_MSG_NEWSET, libc::NLM_F_CREATE as u16, family, a);
        id
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

    fn finish(mut self) -> (Vec<u8>, u32, u32) {
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
        })
    }

    pub fn batch(&mut self) -> Batch {
        Batch::new(self.seq)
    }

    /// Sends the batch and waits for every acknowledgement; the first error fails it
    /// (and the kernel has then applied nothing of it).
    pub fn commit(&mut self, b: Batch) -> io::Result<()> {
        let (buf, acks, end_seq) = b.finish();
        self.seq = end_seq.wrapping_add(1);
        if acks == 0 {
            return Ok(());
        }
        self.sock
            .send(&buf[..], neli::consts::socket::Msg::empty())?;
        let mut got = 0;
        let mut first_err: Option<io::Error> = None;
        while got < acks {
            let (n, _) = match self
                .sock
                .recv(&mut self.buf[..], neli::consts::socket::Msg::empty())
            {
                Ok(r) => r,
                Err(e) if first_err.is_some() && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(first_err.unwrap_or(e)),
            };
            let mut p = &self.buf[..n.min(self.buf.len())];
            while p.len() >= 16 {
                let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
                let ty = u16::from_ne_bytes([p[4], p[5]]);
                if len < 16 || len > p.len() {
                    break;
                }
                if ty == libc::NLMSG_ERROR as u16 && len >= 20 {
                    let code = i32::from_ne_bytes([p[16], p[17], p[18], p[19]]);
                    got += 1;
                    if code != 0 && first_err.is_none() {
                        first_err = Some(io::Error::from_raw_os_error(-code));
                    }
                }
                p = p.get((len + 3) & !3..).unwrap_or(&[]);
            }
            if first_err.is_some() {
                // After an error the kernel aborts the batch; stop waiting for acks.
                break;
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
        let mut a = Attrs::default();
        a.str(1, table);
        a.str(2, set);
        let msgs = self.request(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
            libc::NLM_F_DUMP as u16,
            family,
            &a.b,
        )?;
        let mut keys = Vec::new();
        for m in msgs {
            for (t, list) in crate::netlink::link::raw_attrs(&m) {
                if t & 0x3fff != 3 {
                    continue;
                }
                for (_, el) in crate::netlink::link::raw_attrs(list) {
                    for (kt, key) in crate::netlink::link::raw_attrs(el) {
                        if kt & 0x3fff == 1 {
                            if let Some((_, v)) =
                                crate::netlink::link::raw_attrs(key).find(|(t, _)| t & 0x3fff == 1)
                            {
                                keys.push(v.to_vec());
                            }
                        }
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Deletes every IPv4 conntrack entry whose mark is `mark` (a network's flows,
    /// when its NAT moves to another port).
    pub fn flush_conntrack_mark(&mut self, mark: u32) -> io::Result<()> {
        let mut a = Attrs::default();
        a.be32(8, mark); // CTA_MARK
        a.be32(21, u32::MAX); // CTA_MARK_MASK
        let ty = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        match self.request(ty, libc::NLM_F_ACK as u16, NFPROTO_IPV4, &a.b) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }
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
}
