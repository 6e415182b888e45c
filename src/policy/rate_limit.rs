//! Token buckets by key (a publisher, a client IP): `rate` tokens a second up to
//! `burst`; a request takes one or is told how long to wait. The table is bounded:
//! past [`MAX_KEYS`] keys, full (idle) buckets are forgotten first.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most keys tracked at once.
pub const MAX_KEYS: usize = 100_000;

/// The longest wait a refusal names: a configured rate may be any positive number, and
/// one token at a tiny rate is a wait no `Duration` can hold.
pub const MAX_WAIT: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Takes a token for `key`, or says how long until one is there.
    pub fn take(&self, key: &K, rate: f64, burst: u32, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::try_from_secs_f64((1.0 - bucket.tokens) / rate);
            Err(wait.map_or(MAX_WAIT, |w| w.min(MAX_WAIT)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        assert!(l.take(&"a", 2.0, 3, t0).is_ok());
        assert!(l.take(&"a", 2.0, 3, t0).is_ok());
        assert!(l.take(&"a", 2.0, 3, t0).is_ok());
        let wait = l.take(&"a", 2.0, 3, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.take(&"b", 2.0, 3, t0).is_ok(), "keys are separate");
        assert!(l
            .take(&"a", 2.0, 3, t0 + Duration::from_millis(500))
            .is_ok());
    }

    #[test]
    fn a_tiny_rate_waits_at_most_max_wait() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        assert!(l.take(&"a", 1e-300, 1, t0).is_ok());
        assert_eq!(l.take(&"a", 1e-300, 1, t0), Err(MAX_WAIT));
    }
}
