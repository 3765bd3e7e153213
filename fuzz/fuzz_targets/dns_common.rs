//! What the DNS targets share: a core with a local zone and one upstream, and one
//! message taken both as a client's query and as the upstream's reply to it.
use econet::dns::{Action, Dns, Limits, NetParams, Transport};
use econet::wire::dns::Packet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const NET: u32 = 1;

pub fn client() -> SocketAddr {
    "10.1.0.9:5353".parse().unwrap()
}

/// A network with a domain, a local name and an upstream, as the captures expect
/// (dig asked `web.eco.internal`; the rest goes upstream).
pub fn dns() -> Dns {
    let mut d = Dns::new(Limits::default());
    let _ = d.set_network(
        NET,
        NetParams {
            domain: Some("eco.internal".into()),
            upstreams: vec!["192.0.2.53:53".parse().unwrap()],
            subnet: Some("10.1.0.0/24".parse().unwrap()),
            ..Default::default()
        },
    );
    d.set_hosts(NET, vec![("web".into(), "10.1.0.5".parse().unwrap())]);
    d
}

/// Checks a reply to the client of query `q` and returns it.
fn reply(q: &[u8], a: Action, out: &[u8]) -> Option<Vec<u8>> {
    let Action::Reply { net, to, len, .. } = a else {
        return None;
    };
    assert!(net == NET && to == client(), "reply to someone else: {a:?}");
    let r = out.get(..len).expect("reply longer than the buffer");
    let p = Packet::new_checked(r).expect("reply shorter than a header");
    assert!(p.qr(), "reply without QR");
    assert_eq!(&r[..2], &q[..2], "reply with another id");
    Some(r.to_vec())
}

/// `msg` as a query from the client; then, with QR cleared, as a query whose forward
/// `msg` (with the forwarded id and QR set) answers, and the same query again (from
/// the cache this time); then the timers. Returns the replies the client gets.
pub fn exchange(d: &mut Dns, t: Transport, msg: &[u8], out: &mut [u8]) -> Vec<Vec<u8>> {
    let now = Instant::now();
    let mut got = Vec::new();
    let a = d.handle_query(now, NET, client(), t, msg, out);
    got.extend(reply(msg, a, out));

    let mut q = msg.to_vec();
    if let Some(f) = q.get_mut(2) {
        *f &= 0x7f;
    }
    match d.handle_query(now, NET, client(), t, &q, out) {
        Action::Forward {
            net,
            upstream,
            transport,
            len,
        } => {
            assert!(net == NET && transport == t && len <= out.len());
            let mut r = msg.to_vec();
            r[..2].copy_from_slice(&out[..2]);
            r[2] |= 0x80;
            let a = d.handle_upstream(now, upstream, t, &r, out);
            got.extend(reply(&q, a, out));
            let a = d.handle_query(now, NET, client(), t, &q, out);
            got.extend(reply(&q, a, out));
        }
        a => got.extend(reply(&q, a, out)),
    }
    for later in [now + Duration::from_secs(3), now + Duration::from_secs(60)] {
        while let Some(a) = d.poll(later, out) {
            if let Action::Reply { .. } = a {
                got.extend(reply(&q, a, out));
            }
        }
    }
    got
}
