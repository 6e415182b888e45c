//! Admission of TCP connections: a total cap and an optional per-IP cap, checked at
//! accept before any request is read. A permit is held for the connection's life.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::model::reasons::RefusalReason;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached (answered 503).
    Total,
    /// The client's IP is at its cap (answered 429).
    PerIp,
    /// The client's IP opens connections faster than `rate_limits` allow (429).
    Rate,
}

impl Refusal {
    /// The reason it is counted under.
    pub fn reason(self) -> RefusalReason {
        match self {
            Refusal::Total => RefusalReason::MaxConnections,
            Refusal::PerIp => RefusalReason::MaxConnectionsPerIp,
            Refusal::Rate => RefusalReason::RateLimited,
        }
    }
}

/// Counts open connections, in total and per IP.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
    counted_per_ip: bool,
}

impl ConnectionLimiter {
    /// An empty limiter.
    pub fn new() -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter::default())
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` if both caps allow it. A refused connection still
    /// holds a permit (it is open while it is told no); `None` caps are off.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: Option<usize>,
    ) -> (Permit, Option<Refusal>) {
        let before = self.total.fetch_add(1, Ordering::AcqRel);
        let mut permit = Permit {
            limiter: self.clone(),
            ip,
            counted_per_ip: false,
        };
        if before >= max_total {
            return (permit, Some(Refusal::Total));
        }
        if let Some(max) = max_per_ip {
            let mut map = self.per_ip.lock();
            let n = map.entry(ip).or_insert(0);
            if *n >= max {
                if *n == 0 {
                    map.remove(&ip);
                }
                return (permit, Some(Refusal::PerIp));
            }
            *n += 1;
            permit.counted_per_ip = true;
        }
        (permit, None)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
        if self.counted_per_ip {
            let mut map = self.limiter.per_ip.lock();
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_ip_and_frees_on_drop() {
        let l = ConnectionLimiter::new();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let (p1, r1) = l.admit(a, 3, Some(1));
        assert_eq!(r1, None);
        let (p2, r2) = l.admit(a, 3, Some(1));
        assert_eq!(r2, Some(Refusal::PerIp));
        drop(p2);
        let (_p3, r3) = l.admit(b, 3, Some(1));
        assert_eq!(r3, None);
        let (_p4, r4) = l.admit(b, 2, None);
        assert_eq!(r4, Some(Refusal::Total));
        drop(p1);
        assert_eq!(l.open(), 2);
        let (_p5, r5) = l.admit(a, 3, Some(1));
        assert_eq!(r5, None, "a's place was freed");
    }
}
