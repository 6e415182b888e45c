//! Remembers recent idempotency keys so a retried publish is not delivered twice.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::model::event_id::EventId;

/// Keys seen in the last `window`, at most `max_keys` of them (oldest forgotten first).
#[derive(Debug)]
pub struct IdempotencyWindow {
    ids: HashMap<String, EventId>,
    order: VecDeque<(Instant, String)>,
    window: Duration,
    max_keys: usize,
}

impl IdempotencyWindow {
    /// An empty window.
    pub fn new(window: Duration, max_keys: usize) -> IdempotencyWindow {
        IdempotencyWindow {
            ids: HashMap::new(),
            order: VecDeque::new(),
            window,
            max_keys,
        }
    }

    /// The id first published under `key`, if it is still remembered.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<EventId> {
        self.forget_expired(now);
        self.ids.get(key).copied()
    }

    /// Remembers `key` for `id`.
    pub fn insert(&mut self, key: String, id: EventId, now: Instant) {
        if self.max_keys == 0 {
            return;
        }
        while self.ids.len() >= self.max_keys {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.ids.remove(&old);
                }
                None => break,
            }
        }
        if self.ids.insert(key.clone(), id).is_none() {
            self.order.push_back((now, key));
        }
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= self.window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.ids.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_window_and_bound() {
        let t0 = Instant::now();
        let id = |seq| EventId { epoch: 1, seq };
        let mut w = IdempotencyWindow::new(Duration::from_secs(10), 2);
        w.insert("a".into(), id(1), t0);
        w.insert("b".into(), id(2), t0);
        assert_eq!(w.get("a", t0), Some(id(1)));
        w.insert("c".into(), id(3), t0);
        assert_eq!(w.get("a", t0), None, "oldest forgotten past max_keys");
        assert_eq!(w.get("c", t0 + Duration::from_secs(11)), None, "expired");
    }
}
