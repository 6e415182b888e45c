//! The streaming response body of one subscriber: it writes the preamble, then every
//! batch of frames its subscription collects, resyncs when told to, and heartbeats when
//! the stream is quiet. It is polled by hyper; it holds no buffer of its own beyond
//! the batch it is handing over.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use super::encode;
use crate::hub::{Collected, Subscription};
use crate::metrics::Metrics;

/// How streams are written.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Heartbeat interval on a quiet stream.
    pub heartbeat: Duration,
    /// Most bytes in one batch.
    pub max_batch_bytes: usize,
}

/// One wake-up registration per channel: armed before each look at the hub, so a commit
/// between the look and the wait is never missed.
struct Wakeup {
    notified: Pin<Box<OwnedNotified>>,
    armed: bool,
}

/// Counts an open stream while it lives.
struct OpenStream {
    gauge: IntGauge,
    metrics: Arc<Metrics>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.gauge.dec();
        self.metrics
            .connections_closed_total
            .with_label_values(&["client"])
            .inc();
    }
}

/// The `text/event-stream` body of one subscriber.
pub struct SseBody {
    subscription: Subscription,
    /// Bytes to write before anything else (preamble, a starting resync).
    pending: Option<Bytes>,
    wakeups: Vec<Wakeup>,
    heartbeat: Pin<Box<Sleep>>,
    last_write: Instant,
    /// The highest position the client has been told as an `id:`.
    last_id_sent: u64,
    settings: StreamSettings,
    metrics: Arc<Metrics>,
    _open: OpenStream,
}

impl SseBody {
    /// A body for `subscription` that first writes `preamble`. `proto` and `tls` label
    /// the open-connections gauge.
    pub fn new(
        subscription: Subscription,
        preamble: Bytes,
        settings: StreamSettings,
        metrics: Arc<Metrics>,
        proto: &str,
        tls: bool,
    ) -> SseBody {
        let tls = if tls { "true" } else { "false" };
        let gauge = metrics.connections_open.with_label_values(&[proto, tls]);
        gauge.inc();
        metrics
            .connections_opened_total
            .with_label_values(&[proto, tls])
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
        SseBody {
            last_id_sent: subscription.position().seq,
            subscription,
            pending: Some(preamble),
            wakeups,
            heartbeat: Box::pin(tokio::time::sleep_until(now + settings.heartbeat)),
            last_write: now,
            settings,
            _open: OpenStream {
                gauge,
                metrics: metrics.clone(),
            },
            metrics,
        }
    }

    fn arm(&mut self) {
        for (w, ch) in self.wakeups.iter_mut().zip(self.subscription.channels()) {
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

    fn emit(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.metrics.bytes_written_total.inc_by(bytes.len() as u64);
        self.last_write = Instant::now();
        Poll::Ready(Some(Ok(Frame::data(bytes))))
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
        if let Some(first) = this.pending.take() {
            return this.emit(first);
        }
        loop {
            this.arm();
            let lag = &this.metrics.delivery_lag_seconds;
            let now = std::time::Instant::now();
            let observe = |accepted: std::time::Instant| {
                lag.observe(now.saturating_duration_since(accepted).as_secs_f64())
            };
            match this
                .subscription
                .collect(this.settings.max_batch_bytes, observe)
            {
                Collected::Frames { bytes, count, .. } => {
                    this.disarm();
                    this.metrics.frames_written_total.inc_by(count as u64);
                    this.last_id_sent = this.subscription.position().seq;
                    return this.emit(bytes);
                }
                Collected::Resync(reason) => {
                    this.disarm();
                    this.metrics
                        .resyncs_total
                        .with_label_values(&[reason.as_str()])
                        .inc();
                    let position = this.subscription.position();
                    this.last_id_sent = position.seq;
                    return this.emit(encode::resync(position, reason.as_str()));
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
                continue;
            }
            if this.heartbeat.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = this.last_write + this.settings.heartbeat;
            let now = Instant::now();
            if due > now {
                // Something was written since the timer was set: wait out the rest.
                this.heartbeat.as_mut().reset(due);
                continue;
            }
            this.heartbeat.as_mut().reset(now + this.settings.heartbeat);
            let position = this.subscription.position();
            let id = (position.seq > this.last_id_sent).then_some(position);
            this.last_id_sent = position.seq;
            return this.emit(encode::heartbeat(id));
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
