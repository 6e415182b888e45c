//! A rate limit on connection log lines, so a reconnect storm cannot flood the log:
//! up to N lines a second; past that, lines are counted and one summary line a second
//! says how many were dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines allowed per second, and what was dropped.
#[derive(Debug)]
pub struct LogBudget {
    per_second: u64,
    /// The current second (Unix time) in the high 32 bits, lines used in the low 32.
    window: AtomicU64,
    dropped: AtomicU64,
}

impl LogBudget {
    /// A budget of `per_second` lines (0: none).
    pub fn new(per_second: u32) -> LogBudget {
        LogBudget {
            per_second: per_second as u64,
            window: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// True when a line may be logged now. At the turn of a second, reports (once) how
    /// many lines the previous seconds dropped.
    pub fn allow(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            & 0xffff_ffff;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (second, used) = (current >> 32, current & 0xffff_ffff);
            let (next, allowed, new_second) = if second != now {
                ((now << 32) | 1, true, true)
            } else if used < self.per_second {
                (current + 1, true, false)
            } else {
                (current, false, false)
            };
            if next == current {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if new_second {
                        let dropped = self.dropped.swap(0, Ordering::Relaxed);
                        if dropped > 0 {
                            tracing::warn!(dropped, "connection log lines dropped (over log.max_connection_lines_per_second)");
                        }
                    }
                    return allowed && self.per_second > 0;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_budget_per_second() {
        let b = LogBudget::new(3);
        let allowed = (0..10).filter(|_| b.allow()).count();
        // Usually 3; 4..6 when the loop straddles a second boundary.
        assert!((3..=6).contains(&allowed), "{allowed}");
        let none = LogBudget::new(0);
        assert!(!(0..5).any(|_| none.allow()));
    }
}
