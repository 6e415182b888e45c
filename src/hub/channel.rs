//! One channel: its history ring, its subscriber count and the wake-up its subscribers
//! wait on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::ring::Ring;

/// A channel in the hub.
#[derive(Debug)]
pub struct Channel {
    /// The channel's name.
    pub name: Arc<str>,
    /// The history. Locked briefly by the publisher (append) and by each subscriber
    /// (collect); never across an await.
    pub(super) ring: Mutex<Ring>,
    /// Woken (all waiters at once) after events are appended and committed.
    pub(super) notify: Arc<Notify>,
    /// Open subscriptions naming this channel; changed only under the hub's map lock
    /// (read side), so the sweeper (write side) never drops a channel being joined.
    pub(super) subscribers: AtomicUsize,
}

impl Channel {
    pub(super) fn new(name: Arc<str>, ring: Ring) -> Channel {
        Channel {
            name,
            ring: Mutex::new(ring),
            notify: Arc::new(Notify::new()),
            subscribers: AtomicUsize::new(0),
        }
    }

    /// Current number of subscriptions on this channel.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// A snapshot for the admin API.
    pub fn stats(&self, now: std::time::Instant) -> super::ChannelStats {
        let ring = self.ring.lock();
        super::ChannelStats {
            name: self.name.clone(),
            subscribers: self.subscriber_count(),
            history_events: ring.len(),
            history_bytes: ring.bytes(),
            first_seq: ring.first_seq(),
            last_seq: ring.last_seq(),
            history_span_seconds: ring.oldest_age(now).as_secs_f64(),
            events_per_second: ring.rate(now),
        }
    }

    /// Frames and bytes waiting after `position` (the lag of a subscriber there).
    pub fn pending_after(&self, position: u64) -> (usize, u64) {
        self.ring.lock().pending_after(position)
    }

    /// Wakes every subscriber waiting on this channel.
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// A handle to wait for the next commit that touches this channel.
    pub fn notify_handle(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}
