//! The gateway-wide history budget: the bytes all rings hold together, bounded by
//! evicting the oldest frames across channels, with a share per publisher so one
//! publisher cannot evict everyone else's history.
//!
//! Every frame appended is queued here (its sequence number and channel) twice: in the
//! global queue and in its publisher's. The queues are used only under the broker's
//! sequencing lock, on append; the rings count what they hold in [`Usage`] counters
//! as they push and drop, whatever drops (bounds, age, this budget). When the total is
//! over the budget, the publisher that just appended is evicted from first while it
//! holds more than its share, else the globally oldest frame goes. Entries whose frame
//! a ring already dropped are skipped, and the queues are compacted when they hold
//! many such entries, so they stay proportional to what is held.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::channel::Channel;
use super::usage::Usage;

/// Queue entries below which no compaction is done.
const MIN_COMPACT: usize = 1024;

/// One frame in one channel, oldest first.
type Queue = VecDeque<(u64, Arc<Channel>)>;

/// One publisher's usage and frames.
#[derive(Debug, Default)]
struct Publisher {
    usage: Arc<Usage>,
    queue: Queue,
}

/// The budget's queues; used under the broker's sequencing lock only.
#[derive(Debug)]
pub struct Budget {
    max_total_bytes: usize,
    max_publisher_bytes: usize,
    total: Arc<Usage>,
    queue: Queue,
    publishers: HashMap<Arc<str>, Publisher>,
}

impl Budget {
    /// A budget of `max_total_bytes`, of which one publisher may hold `publisher_share`
    /// (0 to 1) before its own frames are evicted first.
    pub fn new(max_total_bytes: usize, publisher_share: f64) -> Budget {
        let share = publisher_share.clamp(0.0, 1.0);
        Budget {
            max_total_bytes,
            max_publisher_bytes: (max_total_bytes as f64 * share) as usize,
            total: Arc::new(Usage::default()),
            queue: VecDeque::new(),
            publishers: HashMap::new(),
        }
    }

    /// The gateway-wide counter every ring adds to and removes from.
    pub fn total(&self) -> &Arc<Usage> {
        &self.total
    }

    /// The counter of `publisher`'s frames (created when missing).
    pub fn usage_of(&mut self, publisher: &str) -> Arc<Usage> {
        if let Some(p) = self.publishers.get(publisher) {
            return p.usage.clone();
        }
        let p = Publisher::default();
        let usage = p.usage.clone();
        self.publishers.insert(Arc::from(publisher), p);
        usage
    }

    /// Queues a frame `publisher` appended to `channel`.
    pub fn appended(&mut self, publisher: &str, seq: u64, channel: &Arc<Channel>) {
        self.queue.push_back((seq, channel.clone()));
        if let Some(p) = self.publishers.get_mut(publisher) {
            p.queue.push_back((seq, channel.clone()));
        }
    }

    /// Evicts until the total is within the budget: `publisher`'s own oldest frames
    /// while it holds more than its share, else the oldest of all. Returns the frames
    /// evicted.
    pub fn enforce(&mut self, publisher: &str) -> usize {
        let mut evicted = 0;
        // Bounded: each round takes one entry off a queue.
        while self.total.bytes() > self.max_total_bytes {
            let own = self
                .publishers
                .get_mut(publisher)
                .filter(|p| p.usage.bytes() > self.max_publisher_bytes)
                .and_then(|p| p.queue.pop_front());
            let Some((seq, channel)) = own.or_else(|| self.queue.pop_front()) else {
                break;
            };
            evicted += channel.ring.lock().evict_through(seq);
        }
        self.compact(publisher);
        evicted
    }

    /// Drops the entries of frames no longer held from the global queue and
    /// `publisher`'s when they hold many, and forgets publishers that hold nothing when
    /// there are many: amortized O(1) per append, each queue proportional to what is
    /// held.
    fn compact(&mut self, publisher: &str) {
        let live = self.total.frames();
        if self.queue.len() > MIN_COMPACT.max(live.saturating_mul(2)) {
            self.queue.retain(|(seq, ch)| ch.ring.lock().holds(*seq));
        }
        if self.publishers.len() > MIN_COMPACT.max(live.saturating_mul(2)) {
            self.publishers.retain(|_, p| p.usage.frames() > 0);
        }
        if let Some(p) = self.publishers.get_mut(publisher) {
            let held = p.usage.frames();
            if p.queue.len() > MIN_COMPACT.max(held.saturating_mul(2)) {
                p.queue.retain(|(seq, ch)| ch.ring.lock().holds(*seq));
            }
        }
    }
}
