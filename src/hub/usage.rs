//! Bytes and frames held in history, counted by the rings as they push and drop: one
//! counter for the whole gateway, one per publisher.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes and frames held, counted by the rings.
#[derive(Debug, Default)]
pub struct Usage {
    bytes: AtomicUsize,
    frames: AtomicUsize,
}

impl Usage {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Frames held.
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn remove(&self, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.frames.fetch_sub(1, Ordering::Relaxed);
    }
}
