//! Which of a cloud network's ports carries its VPN: pure policy, no I/O. The VPN
//! shell tells it what happens (a handshake starts, the tunnel comes up, the IKE SA
//! goes down) and asks it which port to use; the rules:
//! - the cheapest port that is up and not passed over, else the cheapest that is up;
//! - a port whose handshake is not done within [`CONNECT_GRACE`], or whose IKE SA died
//!   of dead peer detection or exhausted retransmissions, is passed over for
//!   [`PORT_PENALTY`], so a standby gets its turn.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long a port that failed the VPN is passed over.
pub const PORT_PENALTY: Duration = Duration::from_secs(60);
/// A handshake not done by then counts as a failure of the port.
pub const CONNECT_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortFailover {
    /// Ports passed over, until when.
    penalties: Vec<(usize, Instant)>,
    /// Since when the tunnel has been trying to come up.
    connecting_since: Option<Instant>,
}

/// What [`PortFailover::steer`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steer {
    /// The port in use failed (its handshake overran the grace): give it up.
    pub give_up: bool,
    /// The port to use now, and its address; `None` when no port is up.
    pub want: Option<(usize, Ipv4Addr)>,
}

impl PortFailover {
    pub fn new() -> PortFailover {
        PortFailover::default()
    }

    /// A handshake started from a port.
    pub fn connecting(&mut self, now: Instant) {
        self.connecting_since = Some(now);
    }

    /// The tunnel is up (its first CHILD SA is installed).
    pub fn established(&mut self) {
        self.connecting_since = None;
    }

    /// The tunnel was taken down on purpose (no port, a new config).
    pub fn stopped(&mut self) {
        self.connecting_since = None;
    }

    /// The IKE SA went down; `port_failed` when the peer stopped answering (DPD,
    /// retransmissions). Returns whether the port in use must be given up.
    pub fn ike_down(&mut self, now: Instant, port: Option<usize>, port_failed: bool) -> bool {
        if port_failed {
            if let Some(i) = port {
                self.penalties.push((i, now + PORT_PENALTY));
            }
        }
        if self.connecting_since.is_none() {
            self.connecting_since = Some(now);
        }
        port_failed
    }

    /// The port to use now, given the one in use and the ports that are up (index and
    /// address, in cost order).
    pub fn steer(&mut self, now: Instant, port: Option<usize>, up: &[(usize, Ipv4Addr)]) -> Steer {
        self.penalties.retain(|&(_, until)| until > now);
        let mut give_up = false;
        if let Some(t) = self.connecting_since {
            if now.duration_since(t) > CONNECT_GRACE {
                if let Some(i) = port {
                    self.penalties.push((i, now + PORT_PENALTY));
                    give_up = true;
                }
                self.connecting_since = Some(now);
            }
        }
        let penalized = |i: usize| self.penalties.iter().any(|&(p, _)| p == i);
        let want = up
            .iter()
            .copied()
            .find(|&(i, _)| !penalized(i))
            .or_else(|| up.first().copied());
        Steer { give_up, want }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(up: &[usize]) -> Vec<(usize, Ipv4Addr)> {
        up.iter()
            .map(|&i| (i, Ipv4Addr::new(192, 0, 2, 1 + i as u8)))
            .collect()
    }

    #[test]
    fn the_cheapest_port_that_is_up_carries_it() {
        let t0 = Instant::now();
        let mut f = PortFailover::new();
        let s = f.steer(t0, None, &ports(&[0, 1]));
        assert_eq!(s.want.map(|p| p.0), Some(0));
        assert!(!s.give_up);
        assert_eq!(
            f.steer(t0, Some(0), &ports(&[1])).want.map(|p| p.0),
            Some(1)
        );
        assert_eq!(f.steer(t0, Some(1), &[]).want, None);
    }

    #[test]
    fn a_handshake_that_overruns_the_grace_passes_the_port_over_for_a_while() {
        let t0 = Instant::now();
        let mut f = PortFailover::new();
        f.connecting(t0);
        let up = ports(&[0, 1]);
        assert!(!f.steer(t0 + CONNECT_GRACE, Some(0), &up).give_up);
        let t1 = t0 + CONNECT_GRACE + Duration::from_secs(1);
        let s = f.steer(t1, Some(0), &up);
        assert!(s.give_up);
        assert_eq!(s.want.map(|p| p.0), Some(1), "the standby gets its turn");
        // The standby's handshake gets its own grace from then on.
        f.connecting(t1);
        let s = f.steer(t1 + CONNECT_GRACE, Some(1), &up);
        assert_eq!((s.give_up, s.want.map(|p| p.0)), (false, Some(1)));
        // The penalty ends: the cheaper port is preferred again.
        f.established();
        let s = f.steer(t1 + PORT_PENALTY, Some(1), &up);
        assert_eq!(s.want.map(|p| p.0), Some(0));
    }

    #[test]
    fn a_dead_peer_passes_the_port_over_but_a_lone_port_is_still_used() {
        let t0 = Instant::now();
        let mut f = PortFailover::new();
        f.established();
        assert!(f.ike_down(t0, Some(0), true));
        assert_eq!(
            f.steer(t0, None, &ports(&[0, 1])).want.map(|p| p.0),
            Some(1)
        );
        assert_eq!(f.steer(t0, None, &ports(&[0])).want.map(|p| p.0), Some(0));
        // Any other end of the IKE SA keeps the port.
        let mut f = PortFailover::new();
        assert!(!f.ike_down(t0, Some(0), false));
        assert_eq!(
            f.steer(t0, Some(0), &ports(&[0, 1])).want.map(|p| p.0),
            Some(0)
        );
    }
}
