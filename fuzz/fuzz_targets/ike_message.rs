//! Any bytes as an IKEv2 message: through the wire parser, into a fresh responder, and
//! (its SPI_i patched to match) into an initiator that has just sent IKE_SA_INIT.
#![no_main]
use econet::addr::Ipv4Net;
use econet::ike::{Event, Ike, IkeConfig};
use econet::wire::ike::{Message, Packet, Payload};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4500);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 4500);

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// As src/ike/tests.rs `cfg_a` (initiator) and `cfg_b` (responder).
fn cfg(initiator: bool) -> IkeConfig {
    let (a, b) = (vec![net("10.3.0.0/24")], vec![net("172.31.0.0/16")]);
    let mut c = if initiator {
        let mut c = IkeConfig::new(true, "a.example", "b.example", b"swordfish", A, B);
        (c.local_ts, c.remote_ts) = (a, b);
        c.reconnect = Some(Duration::from_secs(5));
        c
    } else {
        let mut c = IkeConfig::new(false, "b.example", "a.example", b"swordfish", B, A);
        (c.local_ts, c.remote_ts) = (b, a);
        c
    };
    c.retransmit_base = Duration::from_millis(500);
    c.retransmit_tries = 3;
    c.dpd = Duration::from_secs(10);
    c
}

/// Drains the events now and once more after the timers could have run.
fn drain(ike: &mut Ike, now: Instant) {
    for t in [now, now + Duration::from_secs(30)] {
        while ike.poll(t).is_some() {}
    }
    let _ = ike.status(now);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let _ = m.emit();
    }
    if let Ok(p) = Packet::new_checked(data) {
        for raw in p.payloads().flatten() {
            let _ = Payload::parse(&raw);
        }
    }

    let now = Instant::now();
    let mut r = Ike::new(cfg(false), now);
    let _ = r.handle(now, B, A, data);
    drain(&mut r, now);

    let mut i = Ike::new(cfg(true), now);
    i.connect(now);
    let mut spi_i = None;
    while let Some(ev) = i.poll(now) {
        if let Event::Send(d) = ev {
            spi_i = d.data.get(..8).map(<[u8]>::to_vec);
        }
    }
    let mut msg = data.to_vec();
    if let (Some(spi), Some(head)) = (spi_i, msg.get_mut(..8)) {
        head.copy_from_slice(&spi);
    }
    let _ = i.handle(now, A, B, &msg);
    drain(&mut i, now);
});
