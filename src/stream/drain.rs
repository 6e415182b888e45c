//! Graceful shutdown: the moment it began, and each stream's jittered end within the
//! drain period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Shared by every stream: has the drain begun, and when.
#[derive(Debug)]
pub struct Drain {
    started: AtomicBool,
    began_at: Mutex<Option<Instant>>,
    period: Duration,
}

impl Drain {
    /// Not draining yet.
    pub fn new(period: Duration) -> Drain {
        Drain {
            started: AtomicBool::new(false),
            began_at: Mutex::new(None),
            period,
        }
    }

    /// Begins the drain (once; later calls change nothing).
    pub fn begin(&self) {
        let mut began = self.began_at.lock();
        if began.is_none() {
            *began = Some(Instant::now());
            self.started.store(true, Ordering::Release);
        }
    }

    /// True once the drain has begun. One atomic load: streams ask on every poll.
    pub fn is_draining(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// A random moment within the drain period for one stream to end at.
    pub fn stream_end(&self) -> Option<Instant> {
        let began = (*self.began_at.lock())?;
        let spread = self.period.mul_f64(fastrand::f64());
        Some(began + spread)
    }

    /// The drain period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
