//! Remembers recent idempotency keys so a retried publish is not delivered twice. Keys
//! belong to their publisher, and each remembers a fingerprint of its event, so a key
//! reused for a different event is told apart from a retry.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::digest;

use crate::model::event_id::EventId;

/// A SHA-256 of what an event is: its channels, its encoded body (event name and data)
/// and its `exclude_subject`.
pub type Fingerprint = [u8; 32];

/// The fingerprint of an event. Every part is length-prefixed, so no two different
/// events share the bytes hashed.
pub fn fingerprint(channels: &[Arc<str>], body: &[u8], exclude: Option<&str>) -> Fingerprint {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut part = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(bytes);
    };
    part(&(channels.len() as u64).to_le_bytes());
    for channel in channels {
        part(channel.as_bytes());
    }
    part(body);
    match exclude {
        None => part(b"-"),
        Some(subject) => {
            part(b"+");
            part(subject.as_bytes());
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A key as one publisher used it: the same key from two publishers is two keys.
type ScopedKey = (String, String);

/// What a remembered key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remembered {
    id: EventId,
    fingerprint: Fingerprint,
}

/// What a key is, looked up for a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not remembered: the event is new.
    New,
    /// A retry of the same event: answer with its first id, publish nothing.
    Retry(EventId),
    /// The key was used for a different event: refuse.
    Conflict,
}

/// Keys seen in the last `window`, at most `max_keys` of them (oldest forgotten first).
#[derive(Debug)]
pub struct IdempotencyWindow {
    ids: HashMap<ScopedKey, Remembered>,
    order: VecDeque<(Instant, ScopedKey)>,
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

    /// What `publisher`'s `key` is for an event of `fingerprint`, if still remembered.
    pub fn lookup(
        &mut self,
        publisher: &str,
        key: &str,
        fingerprint: &Fingerprint,
        now: Instant,
    ) -> Lookup {
        self.forget_expired(now);
        match self.ids.get(&(publisher.to_owned(), key.to_owned())) {
            None => Lookup::New,
            Some(r) if r.fingerprint == *fingerprint => Lookup::Retry(r.id),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Remembers `publisher`'s `key` for the event `id` of `fingerprint`.
    pub fn insert(
        &mut self,
        publisher: &str,
        key: &str,
        id: EventId,
        fingerprint: Fingerprint,
        now: Instant,
    ) {
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
        let scoped = (publisher.to_owned(), key.to_owned());
        let remembered = Remembered { id, fingerprint };
        if self.ids.insert(scoped.clone(), remembered).is_none() {
            self.order.push_back((now, scoped));
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
        let f = fingerprint(&["c".into()], b"data: x\n\n", None);
        let mut w = IdempotencyWindow::new(Duration::from_secs(10), 2);
        w.insert("p", "a", id(1), f, t0);
        w.insert("p", "b", id(2), f, t0);
        assert_eq!(w.lookup("p", "a", &f, t0), Lookup::Retry(id(1)));
        w.insert("p", "c", id(3), f, t0);
        assert_eq!(w.lookup("p", "a", &f, t0), Lookup::New, "oldest forgotten");
        let later = t0 + Duration::from_secs(11);
        assert_eq!(w.lookup("p", "c", &f, later), Lookup::New, "expired");
    }

    #[test]
    fn keys_belong_to_their_publisher_and_their_event() {
        let t0 = Instant::now();
        let id = EventId { epoch: 1, seq: 1 };
        let f = fingerprint(&["c".into()], b"data: x\n\n", None);
        let mut w = IdempotencyWindow::new(Duration::from_secs(10), 10);
        w.insert("p", "k", id, f, t0);
        assert_eq!(w.lookup("q", "k", &f, t0), Lookup::New);
        let other_data = fingerprint(&["c".into()], b"data: y\n\n", None);
        let other_channel = fingerprint(&["d".into()], b"data: x\n\n", None);
        let excluding = fingerprint(&["c".into()], b"data: x\n\n", Some("u"));
        for other in [other_data, other_channel, excluding] {
            assert_ne!(other, f);
            assert_eq!(w.lookup("p", "k", &other, t0), Lookup::Conflict);
        }
        let split = fingerprint(&["ab".into(), "c".into()], b"", None);
        assert_ne!(split, fingerprint(&["a".into(), "bc".into()], b"", None));
    }
}
