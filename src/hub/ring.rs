//! One channel's history: a bounded ring of encoded frames, by count, bytes and age.

use std::collections::VecDeque;
use std::time::Instant;

use std::sync::Arc;

use bytes::Bytes;

use super::history::HistoryBounds;
use super::usage::Usage;

/// The time constant of a ring's publish-rate estimate.
pub const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// One event's encoded bytes as the hub stores them: the *payload* every reader gets,
/// inside an *envelope* that a writer wanting it can send as it is. The layer that
/// encodes events builds both (the hub never looks inside), so a transport that needs
/// per-message framing pays for it once per event, not once per subscriber.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The envelope; the payload is the slice `payload_start..payload_end` of it.
    envelope: Bytes,
    payload_start: usize,
    payload_end: usize,
}

impl Encoded {
    /// Bytes with no envelope: the payload is all of it.
    pub fn plain(payload: Bytes) -> Encoded {
        let len = payload.len();
        Encoded {
            envelope: payload,
            payload_start: 0,
            payload_end: len,
        }
    }

    /// An envelope holding its payload at `payload`; a range outside the envelope is
    /// taken as an envelope that is all payload.
    pub fn enveloped(envelope: Bytes, payload: std::ops::Range<usize>) -> Encoded {
        if payload.start > payload.end || payload.end > envelope.len() {
            return Encoded::plain(envelope);
        }
        Encoded {
            envelope,
            payload_start: payload.start,
            payload_end: payload.end,
        }
    }
}

/// One encoded event as it sits in a ring: shared by every subscriber that writes it.
/// Cloning one (into a subscriber's batch) is one reference count, as cheap as cloning
/// the bytes alone: the frame holds its bytes once, the payload inside its envelope.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's sequence number (the `seq` of its id).
    pub seq: u64,
    /// The event's bytes.
    encoded: Encoded,
    /// When the broker accepted the event.
    pub accepted_at: Instant,
    /// Subscribers whose token has this subject skip the event (`exclude_subject`).
    pub exclude: Option<Arc<str>>,
}

impl Frame {
    /// A frame of `encoded` (one copy per event, shared by every channel and subscriber
    /// it goes to).
    pub fn new(
        seq: u64,
        encoded: Encoded,
        accepted_at: Instant,
        exclude: Option<Arc<str>>,
    ) -> Frame {
        Frame {
            seq,
            encoded,
            accepted_at,
            exclude,
        }
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.encoded.envelope[self.encoded.payload_start..self.encoded.payload_end]
    }

    /// The payload, shared (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.encoded
            .envelope
            .slice(self.encoded.payload_start..self.encoded.payload_end)
    }

    /// The payload in its envelope, shared (no copy).
    pub fn envelope(&self) -> &Bytes {
        &self.encoded.envelope
    }
}

/// The newest frames of one channel, oldest first.
#[derive(Debug)]
pub struct Ring {
    frames: VecDeque<Frame>,
    bytes: usize,
    /// Bytes ever pushed; with each frame's `ends_at` it gives the bytes after any point.
    pushed_bytes: u64,
    /// Running total of `pushed_bytes` at the end of each frame, parallel to `frames`.
    ends_at: VecDeque<u64>,
    /// Publish rate, exponentially decayed (time constant [`RATE_WINDOW`]), as of
    /// `rate_at`.
    rate: f64,
    rate_at: Option<Instant>,
    /// The highest sequence number that was dropped from this ring (or from an earlier
    /// incarnation of the channel). A subscriber whose position is below it has missed
    /// events that can no longer be replayed.
    evicted_through: u64,
    bounds: HistoryBounds,
    /// The gateway-wide history counter this ring adds its frames to.
    total: Arc<Usage>,
    /// The publisher's counter of each frame, parallel to `frames`.
    owners: VecDeque<Option<Arc<Usage>>>,
}

impl Ring {
    /// An empty ring, counting what it holds in `total`. `evicted_through` is what
    /// earlier incarnations dropped.
    pub fn new(bounds: HistoryBounds, evicted_through: u64, total: Arc<Usage>) -> Ring {
        Ring {
            total,
            owners: VecDeque::new(),
            frames: VecDeque::new(),
            bytes: 0,
            pushed_bytes: 0,
            ends_at: VecDeque::new(),
            rate: 0.0,
            rate_at: None,
            evicted_through,
            bounds,
        }
    }

    /// Appends a frame (sequence numbers must increase), counted for its publisher's
    /// `owner`, and drops what the bounds exceed. The newest frame is always kept,
    /// whatever its size (the gateway-wide budget may still evict it).
    pub fn push(&mut self, frame: Frame, owner: Option<Arc<Usage>>) {
        debug_assert!(self.frames.back().is_none_or(|last| last.seq < frame.seq));
        let now = frame.accepted_at;
        self.rate = self.rate(now) + 1.0 / RATE_WINDOW.as_secs_f64();
        self.rate_at = Some(now);
        self.bytes += frame.payload().len();
        self.pushed_bytes += frame.payload().len() as u64;
        self.ends_at.push_back(self.pushed_bytes);
        self.total.add(frame.payload().len());
        if let Some(owner) = &owner {
            owner.add(frame.payload().len());
        }
        self.owners.push_back(owner);
        self.frames.push_back(frame);
        while self.frames.len() > 1
            && (self.frames.len() > self.bounds.max_events || self.bytes > self.bounds.max_bytes)
        {
            self.drop_oldest();
        }
        self.expire(now);
    }

    /// Drops frames older than the age bound.
    pub fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.frames.front() {
            if now.saturating_duration_since(oldest.accepted_at) <= self.bounds.max_age {
                break;
            }
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(f) = self.frames.pop_front() {
            let len = f.payload().len();
            self.ends_at.pop_front();
            self.bytes -= len;
            self.total.remove(len);
            if let Some(Some(owner)) = self.owners.pop_front() {
                owner.remove(len);
            }
            self.evicted_through = self.evicted_through.max(f.seq);
        }
    }

    /// Drops every frame with a sequence number up to `seq` (the gateway-wide budget's
    /// eviction); returns how many.
    pub fn evict_through(&mut self, seq: u64) -> usize {
        let mut dropped = 0;
        while self.frames.front().is_some_and(|f| f.seq <= seq) {
            self.drop_oldest();
            dropped += 1;
        }
        dropped
    }

    /// True when the frame of sequence `seq` is held.
    pub fn holds(&self, seq: u64) -> bool {
        self.frames.binary_search_by_key(&seq, |f| f.seq).is_ok()
    }

    /// True when events after `position` were dropped: continuity cannot be proven.
    pub fn has_gap_after(&self, position: u64) -> bool {
        self.evicted_through > position
    }

    /// The highest sequence number ever dropped.
    pub fn evicted_through(&self) -> u64 {
        self.evicted_through
    }

    /// True when the ring holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Number of frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events per second recently pushed (decayed to `now`).
    pub fn rate(&self, now: Instant) -> f64 {
        match self.rate_at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.rate * (-dt / RATE_WINDOW.as_secs_f64()).exp()
            }
        }
    }

    /// The sequence number of the oldest frame, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.frames.front().map(|f| f.seq)
    }

    /// How old the oldest frame is.
    pub fn oldest_age(&self, now: Instant) -> std::time::Duration {
        self.frames
            .front()
            .map(|f| now.saturating_duration_since(f.accepted_at))
            .unwrap_or_default()
    }

    /// The sequence number of the newest frame, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.frames.back().map(|f| f.seq)
    }

    /// Frames and bytes held with a sequence number above `position`.
    pub fn pending_after(&self, position: u64) -> (usize, u64) {
        let start = self.frames.partition_point(|f| f.seq <= position);
        let before = match start {
            0 => self.pushed_bytes - self.bytes as u64,
            i => self.ends_at[i - 1],
        };
        (self.frames.len() - start, self.pushed_bytes - before)
    }

    /// Appends to `out` the frames with `after < seq <= through`, oldest first, until
    /// `max_bytes` is reached (at least one frame is taken when there is one). Returns
    /// the highest sequence number this channel is complete through: `through` when
    /// everything was taken, else the last taken frame's.
    ///
    /// Frames excluded for `subject` are passed over (the position still moves past
    /// them).
    pub fn collect(
        &self,
        after: u64,
        through: u64,
        max_bytes: usize,
        subject: Option<&str>,
        out: &mut Vec<Frame>,
    ) -> u64 {
        let start = self.frames.partition_point(|f| f.seq <= after);
        let mut taken = 0usize;
        for f in self.frames.range(start..) {
            if f.seq > through {
                break;
            }
            if subject.is_some() && f.exclude.as_deref() == subject {
                continue;
            }
            if taken > 0 && taken + f.payload().len() > max_bytes {
                return out.last().map(|l| l.seq).unwrap_or(after);
            }
            taken += f.payload().len();
            out.push(f.clone());
        }
        through
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bounds(events: usize, bytes: usize) -> HistoryBounds {
        HistoryBounds {
            max_events: events,
            max_age: Duration::from_secs(60),
            max_bytes: bytes,
        }
    }

    fn frame(seq: u64, at: Instant) -> Frame {
        Frame::new(
            seq,
            Encoded::plain(Bytes::from_static(&[b'x'; 10])),
            at,
            None,
        )
    }

    #[test]
    fn a_frame_is_a_slice_of_its_envelope() {
        let envelope = Bytes::from_static(b"<id: 7\ndata: x\n\n>");
        let f = Frame::new(7, Encoded::enveloped(envelope, 1..16), Instant::now(), None);
        assert_eq!(f.payload(), b"id: 7\ndata: x\n\n");
        assert_eq!(&f.envelope()[..], b"<id: 7\ndata: x\n\n>");
        assert_eq!(&f.payload_bytes()[..], f.payload());
        assert_eq!(f.payload().as_ptr(), f.envelope()[1..].as_ptr());
        let plain = Frame::new(8, Encoded::plain(Bytes::new()), Instant::now(), None);
        assert!(plain.payload().is_empty());
        let bad = Encoded::enveloped(Bytes::from_static(b"abc"), 2..9);
        assert_eq!(Frame::new(9, bad, Instant::now(), None).payload(), b"abc");
    }

    #[test]
    fn bounded_by_count_and_bytes_and_age() {
        let t0 = Instant::now();
        let mut r = Ring::new(bounds(3, 1000), 0, Arc::default());
        for s in 1..=5 {
            r.push(frame(s, t0), None);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.evicted_through(), 2);
        assert!(r.has_gap_after(1));
        assert!(!r.has_gap_after(2));

        let mut r = Ring::new(bounds(100, 25), 0, Arc::default());
        for s in 1..=5 {
            r.push(frame(s, t0), None);
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.bytes(), 20);

        let mut r = Ring::new(bounds(100, 1000), 0, Arc::default());
        r.push(frame(1, t0), None);
        r.push(frame(2, t0 + Duration::from_secs(61)), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r.evicted_through(), 1);
    }

    #[test]
    fn collect_respects_window_and_batch_bytes() {
        let t0 = Instant::now();
        let mut r = Ring::new(bounds(100, 10_000), 0, Arc::default());
        for s in [2, 4, 6, 8] {
            r.push(frame(s, t0), None);
        }
        let mut out = Vec::new();
        assert_eq!(r.collect(3, 7, 1000, None, &mut out), 7);
        assert_eq!(out.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![4, 6]);
        out.clear();
        assert_eq!(r.collect(0, 100, 15, None, &mut out), 2);
        assert_eq!(out.len(), 1);
        out.clear();
        assert_eq!(r.collect(8, 100, 15, None, &mut out), 100);
        assert!(out.is_empty());
    }

    #[test]
    fn pending_counts_frames_and_bytes_after_a_position() {
        let t0 = Instant::now();
        let mut r = Ring::new(bounds(3, 10_000), 0, Arc::default());
        for s in [2, 4, 6, 8, 10] {
            r.push(frame(s, t0), None);
        }
        assert_eq!(r.pending_after(0), (3, 30));
        assert_eq!(r.pending_after(6), (2, 20));
        assert_eq!(r.pending_after(7), (2, 20));
        assert_eq!(r.pending_after(10), (0, 0));
    }
}
