//! The streaming response body of one subscriber: it writes the preamble, then every
//! batch of frames its subscription collects; applies the lag policy when the
//! subscriber falls behind; heartbeats when the stream is quiet; and ends the stream
//! (with a fresh `retry:`) on drain or at its maximum age. It is polled by hyper and
//! holds no buffer of its own beyond the batch it is handing over.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use crate::config::LagPolicy;
use crate::hub::{Collected, Framing, ResyncReason, Subscription};
use crate::model::reasons::CloseReason;
use crate::observe::log_budget::LogBudget;
use crate::observe::metrics::Metrics;
use crate::observe::registry::Registration;
use crate::stream::connection::StreamSlot;
use crate::stream::drain::Drain;
use crate::wire::{chunked, sse as encode};

/// How one stream is written.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Heartbeat interval on a quiet stream.
    pub heartbeat: Duration,
    /// Most bytes in one batch.
    pub max_batch_bytes: usize,
    /// What to do when the subscriber lags.
    pub lag_policy: LagPolicy,
    /// The stream ends after this long (already jittered), if set.
    pub max_age: Option<Duration>,
    /// Range of the `retry:` sent when the gateway ends the stream, in milliseconds.
    pub retry_ms: (u64, u64),
    /// When the subscriber's token expires: the stream ends then (with `retry:`), so a
    /// revoked user does not listen forever.
    pub expires_at: Option<Instant>,
}

/// What a stream needs from the rest of the gateway.
pub struct StreamContext {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The shutdown state.
    pub drain: Arc<Drain>,
    /// The stream's place on its connection (uncounted when the body is dropped).
    pub slot: StreamSlot,
    /// The stream's admin record (removed when the body is dropped).
    pub registration: Registration,
    /// Events up to this sequence number are replay (a resume); 0 when none.
    pub replay_through: u64,
    /// Rate limit on the open/close log lines; `None` logs none.
    pub log_budget: Option<Arc<LogBudget>>,
    /// `h1` or `h2`.
    pub proto: &'static str,
}

/// One wake-up registration per channel: armed before each look at the hub, so a commit
/// between the look and the wait is never missed.
struct Wakeup {
    notified: Pin<Box<OwnedNotified>>,
    armed: bool,
}

/// Counts an open stream while it lives; on drop, counts its close by reason.
struct OpenStream {
    gauge: IntGauge,
    context: StreamContext,
    /// Set when the gateway ended the stream; else the connection's reason is used.
    ended_by: Option<CloseReason>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.gauge.dec();
        let context = &self.context;
        let record = &context.registration.record;
        let reason = self
            .ended_by
            .unwrap_or_else(|| context.slot.conn().close_reason());
        let metrics = &context.metrics;
        metrics
            .connections_closed_total
            .with_label_values(&[reason.as_str()])
            .inc();
        metrics.subscriptions_open.sub(record.channels.len() as i64);
        if context.log_budget.as_ref().is_some_and(|b| b.allow()) {
            tracing::info!(
                stream = record.id,
                peer = %record.peer,
                proto = record.proto,
                tls = record.tls,
                reason = reason.as_str(),
                duration_s = record.opened_at.elapsed().as_secs_f64(),
                bytes = record.bytes_sent.load(Ordering::Relaxed),
                "stream closed"
            );
        }
    }
}

/// What a push pass found for one pushed stream.
#[derive(Debug)]
pub enum PushOutcome {
    /// These bytes are due (already counted as written): write them.
    Frames(Bytes),
    /// The stream's task must look (a preamble, the lag policy, drain, kick, the end).
    NeedsTask,
    /// Nothing is pending.
    Nothing,
}

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Delivering events.
    Live,
    /// The farewell `retry:` was written; the next poll ends the stream.
    Ended,
}

/// The `text/event-stream` body of one subscriber.
pub struct SseBody {
    subscription: Subscription,
    /// Bytes to write before anything else (preamble, a starting resync).
    pending: Option<Bytes>,
    wakeups: Vec<Wakeup>,
    /// One timer for heartbeats and the stream's end, set to whichever comes first.
    timer: Pin<Box<Sleep>>,
    last_write: Instant,
    /// When the gateway ends this stream (max age, or drain once it begins).
    end_at: Option<Instant>,
    end_reason: CloseReason,
    drain_seen: bool,
    phase: Phase,
    /// The highest position the client has been told as an `id:`.
    last_id_sent: u64,
    settings: StreamSettings,
    open: OpenStream,
}

impl SseBody {
    /// A body for `subscription` that first writes `preamble`.
    pub fn new(
        subscription: Subscription,
        preamble: Bytes,
        settings: StreamSettings,
        context: StreamContext,
    ) -> SseBody {
        let record = &context.registration.record;
        if context.log_budget.as_ref().is_some_and(|b| b.allow()) {
            tracing::info!(
                stream = record.id,
                peer = %record.peer,
                proto = record.proto,
                tls = record.tls,
                channels = record.channels.len(),
                "stream opened"
            );
        }
        context
            .metrics
            .subscriptions_open
            .add(record.channels.len() as i64);
        let tls = if context.slot.conn().tls {
            "true"
        } else {
            "false"
        };
        let metrics = &context.metrics;
        let gauge = metrics
            .connections_open
            .with_label_values(&[context.proto, tls]);
        gauge.inc();
        metrics
            .connections_opened_total
            .with_label_values(&[context.proto, tls])
            .inc();
        let wakeups = subscription
            .channels()
            .iter()
            .map(|ch| Wakeup {
                notified: Box::pin(ch.notify_handle().notified_owned()),
                armed: true,
            })
            .collect();
        let now = Instant::now();
        let mut body = SseBody {
            last_id_sent: subscription.position().seq,
            subscription,
            pending: Some(preamble),
            wakeups,
            timer: Box::pin(tokio::time::sleep_until(now + settings.heartbeat)),
            last_write: now,
            end_at: None,
            end_reason: CloseReason::MaxAge,
            drain_seen: false,
            phase: Phase::Live,
            settings,
            open: OpenStream {
                gauge,
                context,
                ended_by: None,
            },
        };
        if let Some(age) = settings.max_age {
            body.end_by(now + age, CloseReason::MaxAge);
        }
        if let Some(at) = settings.expires_at {
            body.end_by(at, CloseReason::TokenExpired);
        }
        body.check_drain();
        body.reset_timer();
        let context = &body.open.context;
        context.slot.conn().add_polled(&context.registration.record);
        body
    }

    /// Hands out every frame as an HTTP/1.1 chunk, ready for the socket: a pushed
    /// stream writes the chunk each event was stored in, with no copy per subscriber.
    pub fn frame_as_chunks(&mut self) {
        self.subscription
            .set_framing(Framing::Envelope(chunked::chunk_of));
    }

    /// Ends the stream at `at` for `reason`, unless an earlier end is already set.
    fn end_by(&mut self, at: Instant, reason: CloseReason) {
        if self.end_at.is_none_or(|end| at < end) {
            self.end_at = Some(at);
            self.end_reason = reason;
        }
    }

    fn arm(&mut self) {
        for (w, ch) in self
            .wakeups
            .iter_mut()
            .zip(self.subscription.channels().iter())
        {
            if !w.armed {
                w.notified.set(ch.notify_handle().notified_owned());
                w.armed = true;
            }
        }
    }

    fn disarm(&mut self) {
        for w in &mut self.wakeups {
            w.armed = false;
        }
    }

    /// Once the drain has begun, picks this stream's jittered end.
    fn check_drain(&mut self) {
        if self.drain_seen || !self.open.context.drain.is_draining() {
            return;
        }
        self.drain_seen = true;
        if let Some(at) = self.open.context.drain.stream_end() {
            self.end_by(at, CloseReason::Shutdown);
            self.reset_timer();
        }
    }

    fn reset_timer(&mut self) {
        let heartbeat = self.last_write + self.settings.heartbeat;
        let at = self.end_at.map_or(heartbeat, |end| end.min(heartbeat));
        self.timer.as_mut().reset(at);
    }

    /// Takes the pending frames (counting delivery lag and replays).
    fn collect(&mut self) -> Collected {
        let hot = &self.open.context.metrics.hot;
        let replay_through = self.open.context.replay_through;
        let mut replayed = 0u64;
        // The clock is read only when a frame is taken: most polls find nothing.
        let mut now = None;
        let observe = |seq: u64, accepted: std::time::Instant| {
            let now = *now.get_or_insert_with(std::time::Instant::now);
            hot.lag(now.saturating_duration_since(accepted).as_secs_f64());
            replayed += u64::from(seq <= replay_through);
        };
        let collected = self
            .subscription
            .collect(self.settings.max_batch_bytes, observe);
        if let Some(now) = now {
            // Frames were taken: the same clock reading marks the write.
            self.last_write = Instant::from_std(now);
        }
        if replayed > 0 {
            self.open
                .context
                .metrics
                .replayed_events_total
                .inc_by(replayed);
        }
        collected
    }

    /// The subscription's channels.
    pub fn channels(&self) -> &Arc<[Arc<crate::hub::Channel>]> {
        self.subscription.channels()
    }

    /// Makes this a pushed stream: it no longer waits on its channels' wake-ups; a pass
    /// after each commit calls [`SseBody::take_for_push`] instead (see `hub::push`), and
    /// the stream's task polls it only for what needs waiting (timers, a full socket,
    /// the lag policy, the end).
    pub fn set_pushed(&mut self) {
        self.wakeups.clear();
        let context = &self.open.context;
        context
            .slot
            .conn()
            .remove_polled(&context.registration.record);
    }

    /// For a push pass: the frames pending, counted as written, when nothing else needs the
    /// stream's task; else says so. Never waits.
    pub fn take_for_push(&mut self) -> PushOutcome {
        if self.phase == Phase::Ended
            || self.pending.is_some()
            || self.is_kicked()
            || (!self.drain_seen && self.open.context.drain.is_draining())
        {
            return PushOutcome::NeedsTask;
        }
        match self.collect() {
            Collected::Frames {
                bytes,
                payload_bytes: sse_bytes,
                count,
                ..
            } => {
                self.last_id_sent = self.subscription.position().seq;
                self.count_written(sse_bytes, count as u64);
                PushOutcome::Frames(bytes)
            }
            // The task's poll collects again, finds the same, and applies the policy.
            Collected::Lagged => PushOutcome::NeedsTask,
            Collected::Nothing => PushOutcome::Nothing,
        }
    }

    /// True when the admin API closed this stream.
    fn is_kicked(&self) -> bool {
        self.open
            .context
            .registration
            .record
            .kicked
            .load(Ordering::Acquire)
    }

    /// Hands `bytes` (holding `frames` events, `sse_bytes` of SSE) to the connection,
    /// and counts them.
    fn emit_frames(
        &mut self,
        bytes: Bytes,
        sse_bytes: usize,
        frames: u64,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.count_written(sse_bytes, frames);
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    /// Counts `sse_bytes` (holding `frames` events) as handed to the connection: SSE
    /// bytes, whatever the framing. (`collect` marks the time of a write of frames;
    /// `emit` that of control bytes.)
    fn count_written(&mut self, sse_bytes: usize, frames: u64) {
        let context = &self.open.context;
        context.metrics.hot.written(frames, sse_bytes as u64);
        let record = &context.registration.record;
        record
            .bytes_sent
            .fetch_add(sse_bytes as u64, Ordering::Relaxed);
        record
            .position
            .store(self.subscription.position().seq, Ordering::Relaxed);
        // `last_write` was set by whoever handed the bytes over (the collect's clock
        // reading, or `emit`'s).
        record.wrote_at(self.last_write.into_std());
    }

    /// Hands control bytes (preamble, heartbeat, resync, farewell) to the connection.
    fn emit(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.last_write = Instant::now();
        let sse_bytes = bytes.len();
        let bytes = self.subscription.framing().wrap(bytes);
        self.emit_frames(bytes, sse_bytes, 0)
    }

    /// Writes the farewell `retry:` and ends the stream on the next poll.
    fn end(&mut self, reason: CloseReason) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.phase = Phase::Ended;
        self.open.ended_by = Some(reason);
        let (lo, hi) = self.settings.retry_ms;
        self.emit(encode::farewell(fastrand::u64(lo..=hi)))
    }

    fn on_lag(&mut self) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.settings.lag_policy {
            LagPolicy::Disconnect => self.end(CloseReason::Lagged),
            LagPolicy::Resync => {
                self.subscription.skip_to_head();
                let reason = ResyncReason::Lagged;
                self.open
                    .context
                    .metrics
                    .resyncs_total
                    .with_label_values(&[reason.as_str()])
                    .inc();
                let position = self.subscription.position();
                self.last_id_sent = position.seq;
                self.emit(encode::resync(position, reason.as_str()))
            }
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.phase == Phase::Ended {
            return Poll::Ready(None);
        }
        if let Some(first) = this.pending.take() {
            return this.emit(first);
        }
        this.check_drain();
        if this.is_kicked() {
            return this.end(CloseReason::Kicked);
        }
        loop {
            this.arm();
            match this.collect() {
                Collected::Frames {
                    bytes,
                    payload_bytes: sse_bytes,
                    count,
                    ..
                } => {
                    this.disarm();
                    this.last_id_sent = this.subscription.position().seq;
                    return this.emit_frames(bytes, sse_bytes, count as u64);
                }
                Collected::Lagged => {
                    this.disarm();
                    return this.on_lag();
                }
                Collected::Nothing => {}
            }
            let mut woken = false;
            for w in &mut this.wakeups {
                if w.armed && w.notified.as_mut().poll(cx).is_ready() {
                    w.armed = false;
                    woken = true;
                }
            }
            if woken {
                this.check_drain();
                continue;
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if this.end_at.is_some_and(|end| end <= now) {
                return this.end(this.end_reason);
            }
            if this.last_write + this.settings.heartbeat > now {
                // Something was written since the timer was set: wait out the rest.
                this.reset_timer();
                continue;
            }
            let position = this.subscription.position();
            let id = (position.seq > this.last_id_sent).then_some(position);
            this.last_id_sent = position.seq;
            let poll = this.emit(encode::heartbeat(id));
            this.reset_timer();
            return poll;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Ended && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
