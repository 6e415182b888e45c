//! One channel: its history ring, its subscriber count, the wake-up its subscribers
//! wait on and its pushed streams (written by push passes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::push::{PushList, PushedStream};
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
    /// Open subscriptions naming this channel. Raised only under the hub's map lock
    /// (read side), so the sweeper (write side) never drops a channel being joined;
    /// lowered anywhere (a leave can only make a channel droppable, never revive it).
    pub(super) subscribers: AtomicUsize,
    /// Pushed streams: written by push passes after each commit instead of being woken.
    pub(super) pushed: Arc<PushList>,
}

impl Channel {
    pub(super) fn new(name: Arc<str>, ring: Ring) -> Channel {
        Channel {
            name,
            ring: Mutex::new(ring),
            notify: Arc::new(Notify::new()),
            subscribers: AtomicUsize::new(0),
            pushed: Arc::new(PushList::default()),
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

    /// Wakes every subscriber waiting on this channel, pushed streams' tasks included.
    pub fn wake(&self) {
        self.notify.notify_waiters();
        self.pushed.wake_tasks();
    }

    /// Makes `stream` a pushed stream of this channel: written by a pass after each commit (see
    /// [`super::push`]). It must [`Channel::leave_pushed`] before it goes.
    pub fn join_pushed(&self, stream: Arc<dyn PushedStream>) {
        self.pushed.join(stream);
    }

    /// Takes `stream` off this channel's pushed streams.
    pub fn leave_pushed(&self, stream: &Arc<dyn PushedStream>) {
        self.pushed.leave(stream);
    }

    /// After a commit that touched this channel: wakes its waiting subscribers and
    /// starts a push pass over its pushed streams.
    pub(super) fn committed(&self) {
        self.notify.notify_waiters();
        self.pushed.schedule();
    }

    /// A handle to wait for the next commit that touches this channel.
    pub fn notify_handle(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}
