//! A subscription: one position in the event sequence over a set of channels.
//!
//! Everything at or below the position has been handed to the client (or skipped with
//! a resync); collecting takes the frames of all its channels between the position and
//! the hub's committed head, merged in sequence order, each event once even when it was
//! published to several of the subscription's channels.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{leave, pending_after, Channel, Frame, Hub, ResyncReason};
use crate::model::event_id::EventId;

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    /// At the committed head: only events published from now on.
    Head,
    /// Right after this id (the client's `Last-Event-ID`).
    After(EventId),
    /// The client sent a `Last-Event-ID` that is not an id at all.
    Unparseable,
}

/// How a new subscription began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the head; nothing to replay.
    Fresh,
    /// After the client's id, with continuity proven: history is replayed from there.
    Resumed,
    /// Continuity could not be proven: positioned at the head, the client must resync.
    Resync(ResyncReason),
}

/// What one collection found.
#[derive(Debug)]
pub enum Collected {
    /// New frames, concatenated in sequence order.
    Frames {
        /// The bytes to write, one batch (framed as the subscription asked).
        bytes: Bytes,
        /// The payload bytes among them (without any envelope).
        payload_bytes: usize,
        /// How many events they hold.
        count: usize,
        /// When the oldest of them was accepted by the broker.
        oldest_accepted_at: Instant,
    },
    /// The subscriber is further behind than its lag bounds allow, or history it still
    /// needed was dropped. Its position is unchanged: the caller applies the lag policy
    /// (end the stream, or [`Subscription::skip_to_head`] and send a resync).
    Lagged,
    /// Nothing new.
    Nothing,
}

/// Wraps payloads in one envelope: `total` is their summed length, `parts` the payloads
/// in order. Supplied by the layer that writes (the hub knows no envelope format).
pub type WrapFn = fn(total: usize, parts: &mut dyn Iterator<Item = &[u8]>) -> Bytes;

/// How collected bytes are handed out.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// The payloads as they are (the writer's transport frames them itself).
    Payload,
    /// In the writer's envelope: one frame is handed out as its stored envelope (no
    /// copy, so its encoding must be the one this function makes); a batch of several,
    /// and control bytes, go through the function.
    Envelope(WrapFn),
}

impl Framing {
    /// `bytes` (control bytes: a preamble, a heartbeat) framed this way.
    pub fn wrap(self, bytes: Bytes) -> Bytes {
        match self {
            Framing::Payload => bytes,
            Framing::Envelope(wrap) => wrap(bytes.len(), &mut std::iter::once(&bytes[..])),
        }
    }
}

/// How far a subscriber may fall behind before it counts as lagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagBounds {
    /// Events waiting, summed over the subscription's channels.
    pub max_events: usize,
    /// Bytes waiting.
    pub max_bytes: u64,
}

impl LagBounds {
    /// No bound but history itself.
    pub const UNBOUNDED: LagBounds = LagBounds {
        max_events: usize::MAX,
        max_bytes: u64::MAX,
    };
}

/// A reader of a set of channels. Dropping it leaves the channels.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    /// Shared with the stream's admin record, which reports the channels and lag.
    channels: Arc<[Arc<Channel>]>,
    position: u64,
    /// The committed head when the subscription started: a resumed subscription's
    /// events up to it are replay.
    head_at_start: u64,
    lag: LagBounds,
    /// The subscriber's token subject: events published with this `exclude_subject`
    /// are passed over.
    subject: Option<Arc<str>>,
    framing: Framing,
    scratch: Vec<Frame>,
}

impl Subscription {
    /// Positions a subscription whose channels are already joined. The committed head is
    /// read after joining, so no event after it can be missed.
    pub(super) fn start(
        hub: Arc<Hub>,
        channels: Arc<[Arc<Channel>]>,
        resume: ResumeFrom,
    ) -> (Subscription, Start) {
        let head = hub.committed();
        let (position, start) = match resume {
            ResumeFrom::Head => (head, Start::Fresh),
            ResumeFrom::Unparseable => (head, Start::Resync(ResyncReason::InvalidLastEventId)),
            ResumeFrom::After(id) if id.epoch != hub.epoch() => {
                (head, Start::Resync(ResyncReason::EpochChanged))
            }
            ResumeFrom::After(id) if id.seq > head => {
                (head, Start::Resync(ResyncReason::InvalidLastEventId))
            }
            ResumeFrom::After(id) => {
                if channels.iter().any(|c| c.ring.lock().has_gap_after(id.seq)) {
                    (head, Start::Resync(ResyncReason::HistoryTruncated))
                } else {
                    (id.seq, Start::Resumed)
                }
            }
        };
        let sub = Subscription {
            hub,
            channels,
            position,
            head_at_start: head,
            lag: LagBounds::UNBOUNDED,
            subject: None,
            framing: Framing::Payload,
            scratch: Vec::new(),
        };
        (sub, start)
    }

    /// The position as an id: everything of these channels up to it has been handed out.
    pub fn position(&self) -> EventId {
        EventId {
            epoch: self.hub.epoch(),
            seq: self.position,
        }
    }

    /// The committed head when the subscription started.
    pub fn head_at_start(&self) -> u64 {
        self.head_at_start
    }

    /// Sets the subscriber's token subject (for `exclude_subject`).
    pub fn set_subject(&mut self, subject: Option<Arc<str>>) {
        self.subject = subject;
    }

    /// Sets how collected bytes are framed.
    pub fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// How collected bytes are framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Sets how far this subscriber may fall behind.
    pub fn set_lag_bounds(&mut self, lag: LagBounds) {
        self.lag = lag;
    }

    /// Moves the position to the committed head, skipping whatever is pending; the
    /// caller tells the client (resync).
    pub fn skip_to_head(&mut self) {
        self.position = self.position.max(self.hub.committed());
    }

    /// The joined channels.
    pub fn channels(&self) -> &Arc<[Arc<Channel>]> {
        &self.channels
    }

    /// Takes the frames after the position up to the committed head, at most about
    /// `max_bytes` (always at least one frame), and advances the position past them.
    ///
    /// `on_frame` is called with the sequence number and acceptance time of each frame
    /// taken (for the delivery-lag and replay metrics), in order.
    pub fn collect(
        &mut self,
        max_bytes: usize,
        mut on_frame: impl FnMut(u64, Instant),
    ) -> Collected {
        let head = self.hub.committed();
        if head <= self.position {
            return Collected::Nothing;
        }
        self.scratch.clear();
        let mut complete_through = head;
        for ch in self.channels.iter() {
            let ring = ch.ring.lock();
            if ring.has_gap_after(self.position) {
                drop(ring);
                self.scratch.clear();
                return Collected::Lagged;
            }
            let through = ring.collect(
                self.position,
                complete_through,
                max_bytes,
                self.subject.as_deref(),
                &mut self.scratch,
            );
            complete_through = complete_through.min(through);
        }
        // What a resumed subscription replays up to the head it started at is catch-up,
        // not lag: only what waits beyond it counts against the bounds. (Else a client
        // disconnected for lagging would be lagged again by its own replay, forever.)
        let lag_from = complete_through.max(self.head_at_start);
        if complete_through < head && lag_from < head && self.is_over_lag_bounds(lag_from) {
            self.scratch.clear();
            return Collected::Lagged;
        }
        self.position = complete_through;
        if self.channels.len() > 1 {
            self.scratch.sort_unstable_by_key(|f| f.seq);
            self.scratch.dedup_by_key(|f| f.seq);
            self.scratch.retain(|f| f.seq <= complete_through);
        }
        for f in &self.scratch {
            on_frame(f.seq, f.accepted_at);
        }
        let payload_bytes = self.scratch.iter().map(|f| f.payload().len()).sum();
        let bytes = match (self.scratch.as_slice(), self.framing) {
            ([], _) => return Collected::Nothing,
            ([one], Framing::Payload) => one.payload_bytes(),
            ([one], Framing::Envelope(_)) => one.envelope().clone(),
            (many, Framing::Payload) => {
                let mut buf = BytesMut::with_capacity(payload_bytes);
                for f in many {
                    buf.extend_from_slice(f.payload());
                }
                buf.freeze()
            }
            (many, Framing::Envelope(wrap)) => {
                wrap(payload_bytes, &mut many.iter().map(Frame::payload))
            }
        };
        let collected = Collected::Frames {
            bytes,
            payload_bytes,
            count: self.scratch.len(),
            oldest_accepted_at: self.scratch[0].accepted_at,
        };
        self.scratch.clear();
        collected
    }
}

impl Subscription {
    /// True when what waits after `after` (the end of the batch being taken) exceeds
    /// the lag bounds. Only asked when a collect could not take everything, so a
    /// subscriber that keeps up never pays it.
    fn is_over_lag_bounds(&self, after: u64) -> bool {
        let (events, bytes) = pending_after(&self.channels, after);
        events > self.lag.max_events || bytes > self.lag.max_bytes
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        leave(&self.channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Encoded, HistoryBounds};

    fn bounds() -> HistoryBounds {
        HistoryBounds {
            max_events: 1000,
            max_age: std::time::Duration::from_secs(600),
            max_bytes: 1 << 20,
        }
    }

    fn hub(max_events: usize) -> Arc<Hub> {
        let history = HistoryBounds {
            max_events,
            ..bounds()
        };
        Arc::new(Hub::new(7, history, 1000))
    }

    /// A test envelope: `<payload>` for one frame, `[payloads]` around a batch.
    fn bracket(total: usize, parts: &mut dyn Iterator<Item = &[u8]>) -> Bytes {
        let mut out = Vec::with_capacity(total + 2);
        out.push(b'[');
        parts.for_each(|p| out.extend_from_slice(p));
        out.push(b']');
        Bytes::from(out)
    }

    fn publish(hub: &Hub, seq: u64, channels: &[&str]) {
        let names: Vec<Arc<str>> = channels.iter().map(|c| Arc::from(*c)).collect();
        let mut touched = Vec::new();
        let payload = format!("id: {seq}\n\n");
        let envelope = Bytes::from(format!("<{payload}>"));
        let encoded = Encoded::enveloped(envelope, 1..payload.len() + 1);
        let frame = Frame::new(seq, encoded, Instant::now(), None);
        hub.append_all("test", &[(frame, &names[..])], &mut touched)
            .expect("within the channel limit");
        hub.commit(seq, &mut touched);
    }

    fn text(c: Collected) -> String {
        match c {
            Collected::Frames { bytes, .. } => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    #[test]
    fn merges_channels_in_order_and_once() {
        let hub = hub(100);
        let (mut sub, start) = hub
            .subscribe(&["a".into(), "b".into()], ResumeFrom::Head)
            .unwrap();
        assert_eq!(start, Start::Fresh);
        publish(&hub, 1, &["a"]);
        publish(&hub, 2, &["b"]);
        publish(&hub, 3, &["a", "b"]);
        publish(&hub, 4, &["c"]);
        assert_eq!(
            text(sub.collect(1 << 20, |_, _| {})),
            "id: 1\n\nid: 2\n\nid: 3\n\n"
        );
        assert!(matches!(
            sub.collect(1 << 20, |_, _| {}),
            Collected::Nothing
        ));
        assert_eq!(sub.position().seq, 4);
    }

    #[test]
    fn envelope_framing_hands_out_one_stored_envelope_or_wraps_a_batch() {
        let hub = hub(100);
        let (mut sub, _) = hub
            .subscribe(&["a".into(), "b".into()], ResumeFrom::Head)
            .unwrap();
        sub.set_framing(Framing::Envelope(bracket));
        publish(&hub, 1, &["a"]);
        assert_eq!(text(sub.collect(1 << 20, |_, _| {})), "<id: 1\n\n>");
        publish(&hub, 2, &["a"]);
        publish(&hub, 3, &["a", "b"]);
        match sub.collect(1 << 20, |_, _| {}) {
            Collected::Frames {
                bytes,
                payload_bytes,
                count,
                ..
            } => {
                assert_eq!(&bytes[..], b"[id: 2\n\nid: 3\n\n]");
                assert_eq!((payload_bytes, count), (14, 2));
            }
            other => panic!("expected frames, got {other:?}"),
        }
        assert_eq!(
            &sub.framing().wrap(Bytes::from_static(b":\n"))[..],
            b"[:\n]"
        );
        assert_eq!(
            &Framing::Payload.wrap(Bytes::from_static(b":\n"))[..],
            b":\n"
        );
    }

    #[test]
    fn resume_replays_then_detects_truncation() {
        let hub = hub(3);
        for s in 1..=5 {
            publish(&hub, s, &["a"]);
        }
        let id = |seq| ResumeFrom::After(EventId { epoch: 7, seq });
        let (mut sub, start) = hub.subscribe(&["a".into()], id(2)).unwrap();
        assert_eq!(start, Start::Resumed);
        assert_eq!(
            text(sub.collect(1 << 20, |_, _| {})),
            "id: 3\n\nid: 4\n\nid: 5\n\n"
        );
        let (_, start) = hub.subscribe(&["a".into()], id(1)).unwrap();
        assert_eq!(start, Start::Resync(ResyncReason::HistoryTruncated));
        let (_, start) = hub.subscribe(&["a".into()], id(99)).unwrap();
        assert_eq!(start, Start::Resync(ResyncReason::InvalidLastEventId));
        let other_epoch = ResumeFrom::After(EventId { epoch: 8, seq: 2 });
        let (_, start) = hub.subscribe(&["a".into()], other_epoch).unwrap();
        assert_eq!(start, Start::Resync(ResyncReason::EpochChanged));
    }

    #[test]
    fn falling_behind_history_is_a_lagged_resync() {
        let hub = hub(2);
        let (mut sub, _) = hub.subscribe(&["a".into()], ResumeFrom::Head).unwrap();
        for s in 1..=5 {
            publish(&hub, s, &["a"]);
        }
        assert!(matches!(sub.collect(1 << 20, |_, _| {}), Collected::Lagged));
        assert_eq!(sub.position().seq, 0, "the caller decides what to do");
        sub.skip_to_head();
        assert_eq!(sub.position().seq, 5);
        publish(&hub, 6, &["a"]);
        assert_eq!(text(sub.collect(1 << 20, |_, _| {})), "id: 6\n\n");
    }

    #[test]
    fn lag_bounds_apply_before_history_runs_out() {
        let hub = hub(100);
        let (mut sub, _) = hub.subscribe(&["a".into()], ResumeFrom::Head).unwrap();
        sub.set_lag_bounds(LagBounds {
            max_events: 3,
            max_bytes: u64::MAX,
        });
        for s in 1..=4 {
            publish(&hub, s, &["a"]);
        }
        // One frame per batch: three wait behind it, within the bound.
        assert!(matches!(
            sub.collect(1, |_, _| {}),
            Collected::Frames { count: 1, .. }
        ));
        publish(&hub, 5, &["a"]);
        publish(&hub, 6, &["a"]);
        // Now four would wait behind the next one: over the bound.
        assert!(matches!(sub.collect(1, |_, _| {}), Collected::Lagged));
        assert_eq!(sub.position().seq, 1);
        // A reader that takes everything is never lagged, however much was pending.
        assert!(matches!(
            sub.collect(1 << 20, |_, _| {}),
            Collected::Frames { count: 5, .. }
        ));
    }

    #[test]
    fn a_resumed_subscription_catches_up_without_counting_its_replay_as_lag() {
        let hub = hub(100);
        for s in 1..=50 {
            publish(&hub, s, &["a"]);
        }
        let from = ResumeFrom::After(EventId { epoch: 7, seq: 0 });
        let (mut sub, _) = hub.subscribe(&["a".into()], from).unwrap();
        sub.set_lag_bounds(LagBounds {
            max_events: 3,
            max_bytes: u64::MAX,
        });
        let mut taken = 0;
        for _ in 0..100 {
            match sub.collect(1, |_, _| {}) {
                Collected::Frames { count, .. } => taken += count,
                Collected::Nothing => break,
                Collected::Lagged => panic!("replay counted as lag after {taken}"),
            }
        }
        assert_eq!(taken, 50);
        // Live events beyond the start's head count again.
        for s in 51..=56 {
            publish(&hub, s, &["a"]);
        }
        assert!(matches!(sub.collect(1, |_, _| {}), Collected::Lagged));
    }

    #[test]
    fn batch_limit_keeps_merge_exact() {
        let hub = hub(100);
        let (mut sub, _) = hub
            .subscribe(&["a".into(), "b".into()], ResumeFrom::Head)
            .unwrap();
        for s in 1..=6 {
            publish(&hub, s, &[if s % 2 == 0 { "a" } else { "b" }]);
        }
        let mut seen = String::new();
        for _ in 0..10 {
            if let Collected::Frames { bytes, .. } = sub.collect(16, |_, _| {}) {
                seen.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
        let want: String = (1..=6).map(|s| format!("id: {s}\n\n")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn sweep_forgets_idle_channels_but_remembers_their_evictions() {
        let history = HistoryBounds {
            max_age: std::time::Duration::from_millis(1),
            ..bounds()
        };
        let hub = Arc::new(Hub::new(7, history, 1000));
        publish(&hub, 1, &["a"]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(hub.sweep(Instant::now()), 1);
        assert_eq!(hub.channel_count(), 0);
        let resume = ResumeFrom::After(EventId { epoch: 7, seq: 0 });
        let (_, start) = hub.subscribe(&["a".into()], resume).unwrap();
        assert_eq!(start, Start::Resync(ResyncReason::HistoryTruncated));
    }

    #[test]
    fn channel_limit_is_enforced_and_leaves_nothing_joined() {
        let hub = Arc::new(Hub::new(7, bounds(), 2));
        let (sub, _) = hub.subscribe(&["a".into()], ResumeFrom::Head).unwrap();
        assert!(hub
            .subscribe(&["a".into(), "b".into(), "c".into()], ResumeFrom::Head)
            .is_err());
        assert_eq!(hub.channel_stats("a").unwrap().subscribers, 1);
        drop(sub);
        assert_eq!(hub.channel_stats("a").unwrap().subscribers, 0);
    }
}
