//! The hub: channels, their history rings, and subscriptions as positions into them.
//! No sockets, no HTTP: the broker appends committed events, the SSE body reads them.
//!
//! Consistency rule: events are appended in sequence order under the broker's lock and
//! then *committed* by raising [`Hub::committed`]. Subscribers read only frames at or
//! below the committed sequence, so every frame they could ever see below a position is
//! already in its ring when they read: a subscription is one number (its position), the
//! merge across channels is exact, and replay and live delivery are the same code path.

mod budget;
mod channel;
mod history;
pub mod push;
mod ring;
mod subscription;
mod usage;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use budget::Budget;

use crate::model::event_id::EventId;

pub use channel::Channel;
pub use history::{HistoryBounds, HistoryOverride, HistoryPolicy};
pub use ring::{Encoded, Frame, Ring};
pub use subscription::{Collected, Framing, LagBounds, ResumeFrom, Start, Subscription, WrapFn};

/// Why a subscriber is told to resync instead of getting a seamless stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The `Last-Event-ID` is from another epoch (the sequence restarted).
    EpochChanged,
    /// History no longer reaches back to the `Last-Event-ID`.
    HistoryTruncated,
    /// The `Last-Event-ID` is not an id this gateway issued.
    InvalidLastEventId,
    /// The subscriber fell further behind than history holds.
    Lagged,
}

impl ResyncReason {
    /// The reason as sent to clients and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::EpochChanged => "epoch_changed",
            ResyncReason::HistoryTruncated => "history_truncated",
            ResyncReason::InvalidLastEventId => "invalid_last_event_id",
            ResyncReason::Lagged => "lagged",
        }
    }

    /// Every reason, for pre-registering metric labels.
    pub const ALL: [ResyncReason; 4] = [
        ResyncReason::EpochChanged,
        ResyncReason::HistoryTruncated,
        ResyncReason::InvalidLastEventId,
        ResyncReason::Lagged,
    ];
}

/// The hub refused to create a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFull {
    /// The configured channel limit.
    pub max_channels: usize,
}

/// Channels, history and the committed sequence of one epoch.
#[derive(Debug)]
pub struct Hub {
    epoch: u32,
    /// Ordered by name, so the admin API pages through it with bounded work.
    channels: RwLock<BTreeMap<Arc<str>, Arc<Channel>>>,
    /// Highest sequence number whose frames are all in their rings.
    committed: AtomicU64,
    /// Highest `evicted_through` of any channel the sweeper dropped; a channel created
    /// later starts from it, so a resume from before it is never taken as continuous.
    dropped_through: AtomicU64,
    history: HistoryPolicy,
    max_channels: usize,
    /// The gateway-wide history budget; locked only on append, under the broker's
    /// sequencing lock (never on the fan-out path).
    budget: Mutex<Budget>,
    /// The budget's gateway-wide counter, handed to every ring.
    total: Arc<usage::Usage>,
}

impl Hub {
    /// An empty hub for one epoch.
    pub fn new(epoch: u32, history: impl Into<HistoryPolicy>, max_channels: usize) -> Hub {
        let history: HistoryPolicy = history.into();
        let budget = Budget::new(history.max_total_bytes, history.publisher_share);
        let total = budget.total().clone();
        Hub {
            budget: Mutex::new(budget),
            total,
            epoch,
            channels: RwLock::new(BTreeMap::new()),
            committed: AtomicU64::new(0),
            dropped_through: AtomicU64::new(0),
            history,
            max_channels,
        }
    }

    /// The epoch of this hub's sequence.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The committed head: every event up to it is visible to subscribers.
    pub fn head(&self) -> EventId {
        EventId {
            epoch: self.epoch,
            seq: self.committed(),
        }
    }

    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Number of channels held.
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
    }

    fn new_channel(&self, name: &Arc<str>) -> Arc<Channel> {
        let ring = Ring::new(
            self.history.bounds_for(name),
            self.dropped_through.load(Ordering::Acquire),
            self.total.clone(),
        );
        Arc::new(Channel::new(name.clone(), ring))
    }

    /// Appends each frame to its named channels, creating the missing channels only when
    /// all of them fit under the channel limit: the check and the creation are one step
    /// under the channel map's write lock (which every channel creation takes), so
    /// concurrent publishes and subscribes cannot together pass the limit. All or
    /// nothing: on `Err` no frame was appended and no channel created.
    ///
    /// The caller holds the broker's sequencing lock: the frames' sequence numbers
    /// increase and are above every earlier append, and [`Hub::commit`] follows. The
    /// touched channels are pushed to `touched`. The frames are `publisher`'s: past the
    /// gateway-wide budget, the oldest frames are evicted (its own first while it holds
    /// more than its share), and their rings record it (`evicted_through`).
    pub fn append_all(
        &self,
        publisher: &str,
        frames: &[(Frame, &[Arc<str>])],
        touched: &mut Vec<Arc<Channel>>,
    ) -> Result<(), HubFull> {
        let mut budget = self.budget.lock();
        let owner = budget.usage_of(publisher);
        // The map lock is held across the ring pushes so the sweeper cannot drop a
        // channel between its lookup and its append.
        {
            let map = self.channels.read();
            let all_there = frames
                .iter()
                .all(|(_, names)| names.iter().all(|n| map.contains_key(n)));
            if all_there {
                push_all(&map, frames, (&mut budget, publisher, &owner), touched);
                drop(map);
                budget.enforce(publisher);
                return Ok(());
            }
        }
        let mut map = self.channels.write();
        let missing: std::collections::HashSet<&Arc<str>> = frames
            .iter()
            .flat_map(|(_, names)| names.iter())
            .filter(|n| !map.contains_key(*n))
            .collect();
        if map.len().saturating_add(missing.len()) > self.max_channels {
            return Err(HubFull {
                max_channels: self.max_channels,
            });
        }
        for name in missing {
            let channel = self.new_channel(name);
            map.insert(name.clone(), channel);
        }
        push_all(&map, frames, (&mut budget, publisher, &owner), touched);
        drop(map);
        budget.enforce(publisher);
        Ok(())
    }

    /// Makes everything appended up to `seq` visible and wakes the subscribers of the
    /// touched channels.
    pub fn commit(&self, seq: u64, touched: &mut Vec<Arc<Channel>>) {
        self.committed.fetch_max(seq, Ordering::AcqRel);
        touched.sort_by_key(|c| Arc::as_ptr(c) as usize);
        touched.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for ch in touched.drain(..) {
            ch.committed();
        }
    }

    /// Wakes every subscriber (they look at the hub, and at the drain state, again).
    pub fn wake_all(&self) {
        let channels: Vec<Arc<Channel>> = self.channels.read().values().cloned().collect();
        for ch in channels {
            ch.wake();
        }
    }

    /// Joins the named channels (creating missing ones, within the channel limit) and
    /// positions the subscription per `resume`.
    pub fn subscribe(
        self: &Arc<Self>,
        names: &[Arc<str>],
        resume: ResumeFrom,
    ) -> Result<(Subscription, Start), HubFull> {
        let channels = self.join(names)?;
        Ok(Subscription::start(self.clone(), channels.into(), resume))
    }

    fn join(&self, names: &[Arc<str>]) -> Result<Vec<Arc<Channel>>, HubFull> {
        let mut joined = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        {
            let map = self.channels.read();
            for n in names {
                match map.get(n) {
                    Some(ch) => {
                        ch.subscribers.fetch_add(1, Ordering::Relaxed);
                        joined.push(ch.clone());
                    }
                    None => missing.push(n),
                }
            }
        }
        if !missing.is_empty() {
            let mut map = self.channels.write();
            let new = missing.iter().filter(|n| !map.contains_key(**n)).count();
            if map.len() + new > self.max_channels {
                drop(map);
                leave(&joined);
                return Err(HubFull {
                    max_channels: self.max_channels,
                });
            }
            for n in missing {
                let ch = map
                    .entry(n.clone())
                    .or_insert_with(|| self.new_channel(n))
                    .clone();
                ch.subscribers.fetch_add(1, Ordering::Relaxed);
                joined.push(ch);
            }
        }
        Ok(joined)
    }

    /// Drops expired history everywhere and forgets channels with neither history nor
    /// subscribers. Returns the number of channels forgotten.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut idle = Vec::new();
        {
            let map = self.channels.read();
            for (name, ch) in map.iter() {
                let mut ring = ch.ring.lock();
                ring.expire(now);
                if ring.is_empty() && ch.subscribers.load(Ordering::Relaxed) == 0 {
                    idle.push(name.clone());
                }
            }
        }
        if idle.is_empty() {
            return 0;
        }
        let mut map = self.channels.write();
        let mut forgotten = 0;
        for name in idle {
            let still_idle = map.get(&name).is_some_and(|ch| {
                ch.ring.lock().is_empty() && ch.subscribers.load(Ordering::Relaxed) == 0
            });
            if still_idle {
                if let Some(ch) = map.remove(&name) {
                    let evicted = ch.ring.lock().evicted_through();
                    self.dropped_through.fetch_max(evicted, Ordering::AcqRel);
                    forgotten += 1;
                }
            }
        }
        forgotten
    }

    /// A snapshot of one channel's state, for tests and the admin API.
    pub fn channel_stats(&self, name: &str) -> Option<ChannelStats> {
        let map = self.channels.read();
        map.get(name).map(|ch| ch.stats(Instant::now()))
    }

    /// Up to `limit` channels after `after` (by name), with their state: one page of
    /// the admin API's channel list, in O(log n + limit).
    pub fn channel_page(&self, after: Option<&str>, limit: usize) -> Vec<ChannelStats> {
        let map = self.channels.read();
        let now = Instant::now();
        let start = match after {
            Some(name) => Bound::Excluded(name),
            None => Bound::Unbounded,
        };
        map.range::<str, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, ch)| ch.stats(now))
            .collect()
    }

    /// Totals over every channel: (channels, events held, bytes held). O(channels), for
    /// the metrics scrape.
    pub fn totals(&self) -> (usize, usize, usize) {
        let map = self.channels.read();
        let (mut events, mut bytes) = (0, 0);
        for ch in map.values() {
            let ring = ch.ring.lock();
            events += ring.len();
            bytes += ring.bytes();
        }
        (map.len(), events, bytes)
    }
}

/// Events and bytes waiting after `position` over `channels` (a subscriber's lag).
pub fn pending_after(channels: &[Arc<Channel>], position: u64) -> (usize, u64) {
    channels
        .iter()
        .map(|c| c.pending_after(position))
        .fold((0, 0), |(e, b), (ce, cb)| (e + ce, b + cb))
}

/// Pushes each frame to its channels, which are all in `map`, counted for and queued in
/// the budget as the publisher's.
fn push_all(
    map: &BTreeMap<Arc<str>, Arc<Channel>>,
    frames: &[(Frame, &[Arc<str>])],
    (budget, publisher, owner): (&mut Budget, &str, &Arc<usage::Usage>),
    touched: &mut Vec<Arc<Channel>>,
) {
    for (frame, names) in frames {
        for name in names.iter() {
            if let Some(ch) = map.get(name) {
                ch.ring.lock().push(frame.clone(), Some(owner.clone()));
                budget.appended(publisher, frame.seq, ch);
                touched.push(ch.clone());
            }
        }
    }
}

fn leave(channels: &[Arc<Channel>]) {
    for ch in channels {
        ch.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one channel holds right now.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// The channel's name.
    pub name: Arc<str>,
    /// Open subscriptions.
    pub subscribers: usize,
    /// Frames in history.
    pub history_events: usize,
    /// Bytes in history.
    pub history_bytes: usize,
    /// Sequence number of the oldest frame in history.
    pub first_seq: Option<u64>,
    /// Sequence number of the newest frame.
    pub last_seq: Option<u64>,
    /// Age of the oldest frame in history, in seconds.
    pub history_span_seconds: f64,
    /// Recent publish rate (exponentially decayed over about 10 s).
    pub events_per_second: f64,
}
