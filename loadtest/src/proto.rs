//! What the coordinator and its worker processes say to each other: one JSON object per
//! line, plan and commands on the worker's stdin, progress and results on its stdout.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;
use crate::target::Format;

/// Everything a worker needs to run its share of the subscribers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// This worker's number, from 0.
    pub worker: usize,
    /// Global index of its first subscriber.
    pub first: usize,
    /// How many subscribers it runs.
    pub count: usize,
    /// All channel names; subscriber `i` reads `channels[i % channels.len()]`.
    pub channels: Vec<String>,
    /// Subscribe URL template (`{channel}`).
    pub sub_url: String,
    /// The server's conventions.
    pub format: Format,
    /// Subscribe over HTTP/2 (h2c by prior knowledge on http://, ALPN h2 on https://).
    pub http2: bool,
    /// Source addresses to spread connections over.
    pub sources: Vec<Ipv4Addr>,
    /// Connects in flight at once (the ramp).
    pub connect_concurrency: usize,
    /// Give up connecting after this long.
    pub connect_deadline_ms: u64,
    /// Attempts per subscriber before it counts as failed.
    pub connect_attempts: u32,
    /// Subscribers with `i % 100 < slow_percent` stop reading after the response head.
    pub slow_percent: u32,
    /// Subscribers with `i % 100 < churn_percent` reconnect while the publisher runs.
    pub churn_percent: u32,
    /// A churning subscriber stays connected between these many ms, then reconnects.
    pub churn_min_ms: u64,
    /// Upper bound of the above.
    pub churn_max_ms: u64,
    /// Events each channel will get (sizes the trackers).
    pub events_per_channel: u32,
    /// The worker exits by itself after this long whatever happens.
    pub hard_deadline_ms: u64,
}

impl WorkerPlan {
    /// True for a subscriber that stops reading.
    pub fn is_slow(&self, global: usize) -> bool {
        (global % 100) < self.slow_percent as usize
    }

    /// True for a subscriber that reconnects during the run.
    pub fn is_churner(&self, global: usize) -> bool {
        !self.is_slow(global) && (global % 100) < (self.slow_percent + self.churn_percent) as usize
    }
}

/// What was published to one channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelExpect {
    /// Events `0..count` were sent.
    pub count: u32,
    /// Of those, the ones whose publish was not confirmed (sorted).
    pub unconfirmed: Vec<u32>,
}

/// A command from the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Publishing starts now: churners start churning.
    Start,
    /// Publishing is over: stop churning, wait until every reading subscriber has all
    /// its events or `drain_ms` passed, then report.
    Finish {
        /// Per channel, in `channels` order.
        expected: Vec<ChannelExpect>,
        /// Longest wait for stragglers.
        drain_ms: u64,
    },
}

/// A message from a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Report {
    /// While connecting.
    Progress {
        /// Subscribers with an open stream.
        connected: u64,
        /// Subscribers that gave up.
        failed: u64,
    },
    /// Every subscriber connected or gave up.
    Connected {
        /// Subscribers with an open stream.
        connected: u64,
        /// Subscribers that gave up.
        failed: u64,
        /// Time the ramp took.
        seconds: f64,
        /// Up to a few distinct connect errors, for the report.
        errors: Vec<String>,
    },
    /// The final result.
    Result(Box<WorkerResult>),
}

/// One worker's totals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    /// Subscribers planned.
    pub subscribers: u64,
    /// Subscribers that ever had a stream.
    pub connected: u64,
    /// Subscribers that never got one.
    pub connect_failed: u64,
    /// Subscribers that read (not slow) and connected.
    pub readers: u64,
    /// Slow subscribers (stopped reading).
    pub slow: u64,
    /// Streams the server ended (or broke) without being asked.
    pub dropped: u64,
    /// Reconnects made by churners.
    pub reconnects: u64,
    /// Reconnects that failed for good.
    pub reconnect_failed: u64,
    /// Reconnects without an event id to resume from.
    pub blind_reconnects: u64,
    /// Events that should have reached the readers.
    pub expected: u64,
    /// Of those, delivered (at least once).
    pub delivered: u64,
    /// Of those, never delivered.
    pub lost: u64,
    /// Data events received by readers, duplicates included.
    pub received: u64,
    /// Duplicate arrivals.
    pub duplicates: u64,
    /// Arrivals below an already received event.
    pub out_of_order: u64,
    /// Forward jumps over missing events.
    pub gaps: u64,
    /// Events that were not ours (bad payload, or beyond what was published).
    pub foreign: u64,
    /// Arrivals of events whose publish was not confirmed.
    pub unexpected: u64,
    /// `ssegate.resync` notices.
    pub resyncs: u64,
    /// Readers that got every expected event.
    pub complete: u64,
    /// Readers that missed at least one.
    pub with_loss: u64,
    /// Readers that got at least one duplicate.
    pub with_duplicates: u64,
    /// Data events received by the slow subscribers before they stopped.
    pub slow_received: u64,
    /// Latency from the scheduled send time, (µs, count) buckets.
    pub latency_scheduled: Vec<(u64, u64)>,
    /// Latency from the actual send time.
    pub latency_sent: Vec<(u64, u64)>,
    /// Percentiles of the above, for a worker-level look.
    pub latency_scheduled_summary: LatencySummary,
    /// Unix ns of the last event received.
    pub last_receipt_ns: u64,
    /// Seconds the drain wait took.
    pub drain_seconds: f64,
    /// CPU seconds this worker used.
    pub cpu_s: f64,
    /// Its resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Its peak resident memory, KiB.
    pub rss_peak_kib: u64,
    /// A few distinct errors seen on streams.
    pub errors: Vec<String>,
}
