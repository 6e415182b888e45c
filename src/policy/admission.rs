//! Admission of TCP connections: a total cap and an optional per-IP cap, checked at
//! accept before any request is read. A permit is held for the connection's life.
//!
//! A refused connection holds no place in either cap: it is answered (429/503) out of a
//! separate, small budget of refusal answers ([`RefusalSlot`]), so one address far over
//! its cap cannot crowd out the others; past that budget it is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::model::reasons::RefusalReason;

/// Refused connections that may be answered at once (each for a few seconds at most);
/// past this many, a refused connection is closed without a word.
pub const REFUSAL_BUDGET: usize = 256;

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

/// Counts open connections, in total and per IP, and the refusals being answered.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refusing: AtomicUsize,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
    counted_per_ip: bool,
}

/// A place in the budget of refusal answers; dropping it frees the place.
#[derive(Debug)]
pub struct RefusalSlot {
    limiter: Arc<ConnectionLimiter>,
}

impl ConnectionLimiter {
    /// An empty limiter.
    pub fn new() -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter::default())
    }

    /// Admitted connections open now (refused ones being answered are not counted).
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Refused connections being answered now.
    pub fn refusing(&self) -> usize {
        self.refusing.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` if both caps allow it; `None` caps are off. A
    /// refused connection takes no place in either cap.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: Option<usize>,
    ) -> Result<Permit, Refusal> {
        // Reserve a place only if one is free: a refusal never raises the count,
        // even for a moment, so it cannot make a concurrent admission fail.
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_total).then(|| n.saturating_add(1))
            })
            .map_err(|_| Refusal::Total)?;
        let mut permit = Permit {
            limiter: self.clone(),
            ip,
            counted_per_ip: false,
        };
        if let Some(max) = max_per_ip {
            let mut map = self.per_ip.lock();
            let n = map.entry(ip).or_insert(0);
            if *n >= max {
                if *n == 0 {
                    map.remove(&ip);
                }
                return Err(Refusal::PerIp); // dropping `permit` gives the place back
            }
            *n += 1;
            permit.counted_per_ip = true;
        }
        Ok(permit)
    }

    /// A place to answer one refusal, if fewer than `budget` are being answered.
    pub fn refusal_slot(self: &Arc<Self>, budget: usize) -> Option<RefusalSlot> {
        self.refusing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then(|| n.saturating_add(1))
            })
            .ok()
            .map(|_| RefusalSlot {
                limiter: self.clone(),
            })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
        if self.counted_per_ip {
            let mut map = self.limiter.per_ip.lock();
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.limiter.refusing.fetch_sub(1, Ordering::AcqRel);
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
        let p1 = l.admit(a, 3, Some(1)).expect("a's first");
        assert_eq!(l.admit(a, 3, Some(1)).err(), Some(Refusal::PerIp));
        assert_eq!(l.open(), 1, "a refusal holds no place");
        let _p3 = l.admit(b, 3, Some(1)).expect("b's first");
        assert_eq!(l.admit(b, 2, None).err(), Some(Refusal::Total));
        assert_eq!(l.open(), 2, "a refusal holds no place");
        drop(p1);
        assert_eq!(l.open(), 1);
        let _p5 = l.admit(a, 3, Some(1)).expect("a's place was freed");
    }

    #[test]
    fn refusals_over_a_per_ip_cap_leave_the_total_to_others() {
        let l = ConnectionLimiter::new();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let _held = l.admit(a, 4, Some(1)).expect("a's first");
        for _ in 0..100 {
            assert_eq!(l.admit(a, 4, Some(1)).err(), Some(Refusal::PerIp));
        }
        let _b = l.admit(b, 4, Some(1)).expect("b is not crowded out");
    }

    #[test]
    fn refusal_answers_have_their_own_budget() {
        let l = ConnectionLimiter::new();
        let slots: Vec<_> = (0..3).filter_map(|_| l.refusal_slot(3)).collect();
        assert_eq!(slots.len(), 3);
        assert!(
            l.refusal_slot(3).is_none(),
            "past the budget: close at once"
        );
        assert_eq!(l.open(), 0, "refusal answers hold no connection place");
        drop(slots);
        assert_eq!(l.refusing(), 0);
        assert!(l.refusal_slot(3).is_some());
    }
}
