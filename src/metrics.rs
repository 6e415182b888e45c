//! One `Metrics` struct, registered once, shared by everything that counts.
//!
//! Names follow DESIGN §6; no label holds a channel or a connection (no cardinality
//! bombs): per-channel detail belongs to the admin API.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::hub::ResyncReason;
use crate::state::CloseReason;

/// Every metric the gateway exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Open SSE streams, by `proto` (h1, h2) and `tls` (true, false).
    pub connections_open: IntGaugeVec,
    /// SSE streams opened, by `proto` and `tls`.
    pub connections_opened_total: IntCounterVec,
    /// SSE streams closed, by `reason`.
    pub connections_closed_total: IntCounterVec,
    /// Events accepted by the broker.
    pub events_published_total: IntCounter,
    /// Events handed to SSE streams (one per event per stream).
    pub frames_written_total: IntCounter,
    /// Bytes handed to SSE streams, heartbeats and control lines included.
    pub bytes_written_total: IntCounter,
    /// Time from a publish request's arrival to its answer.
    pub publish_duration_seconds: Histogram,
    /// Time from an event's acceptance by the broker to its hand-over to a stream, per
    /// event per stream.
    pub delivery_lag_seconds: Histogram,
    /// Resync events sent, by `reason`.
    pub resyncs_total: IntCounterVec,
    /// Requests refused by a limit, by `reason`.
    pub refusals_total: IntCounterVec,
    /// Error answers, by `fault` (client, upstream, internal) and `code`.
    pub request_errors_total: IntCounterVec,
    /// Channels held by the hub (with history or subscribers).
    pub channels: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections_open = IntGaugeVec::new(
            Opts::new("ssegate_connections_open", "Open SSE streams"),
            &["proto", "tls"],
        )
        .expect("metric");
        let connections_opened_total = IntCounterVec::new(
            Opts::new("ssegate_connections_opened_total", "SSE streams opened"),
            &["proto", "tls"],
        )
        .expect("metric");
        let connections_closed_total = IntCounterVec::new(
            Opts::new(
                "ssegate_connections_closed_total",
                "SSE streams closed, by reason",
            ),
            &["reason"],
        )
        .expect("metric");
        let events_published_total = IntCounter::new(
            "ssegate_events_published_total",
            "Events accepted by the broker",
        )
        .expect("metric");
        let frames_written_total = IntCounter::new(
            "ssegate_frames_written_total",
            "Events handed to SSE streams (one per event per stream)",
        )
        .expect("metric");
        let bytes_written_total =
            IntCounter::new("ssegate_bytes_written_total", "Bytes handed to SSE streams")
                .expect("metric");
        let publish_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ssegate_publish_duration_seconds",
                "Time from a publish request's arrival to its answer",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0,
            ]),
        )
        .expect("metric");
        let delivery_lag_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ssegate_delivery_lag_seconds",
                "Time from an event's acceptance to its hand-over to a stream, per event per stream",
            )
            .buckets(vec![
                0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0,
            ]),
        )
        .expect("metric");
        let resyncs_total = IntCounterVec::new(
            Opts::new("ssegate_resyncs_total", "Resync events sent, by reason"),
            &["reason"],
        )
        .expect("metric");
        let refusals_total = IntCounterVec::new(
            Opts::new(
                "ssegate_refusals_total",
                "Requests refused by a limit, by reason",
            ),
            &["reason"],
        )
        .expect("metric");
        let request_errors_total = IntCounterVec::new(
            Opts::new(
                "ssegate_request_errors_total",
                "Error answers, by whose fault and error code",
            ),
            &["fault", "code"],
        )
        .expect("metric");
        let channels =
            IntGauge::new("ssegate_channels", "Channels held by the hub").expect("metric");

        for c in [
            Box::new(connections_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_opened_total.clone()),
            Box::new(connections_closed_total.clone()),
            Box::new(events_published_total.clone()),
            Box::new(frames_written_total.clone()),
            Box::new(bytes_written_total.clone()),
            Box::new(publish_duration_seconds.clone()),
            Box::new(delivery_lag_seconds.clone()),
            Box::new(resyncs_total.clone()),
            Box::new(refusals_total.clone()),
            Box::new(request_errors_total.clone()),
            Box::new(channels.clone()),
        ] {
            registry
                .register(c)
                .expect("each metric is registered once");
        }
        // Pre-create the label values dashboards expect, so series exist from the start.
        for proto in ["h1", "h2"] {
            for tls in ["true", "false"] {
                connections_open.with_label_values(&[proto, tls]);
                connections_opened_total.with_label_values(&[proto, tls]);
            }
        }
        for reason in ResyncReason::ALL {
            resyncs_total.with_label_values(&[reason.as_str()]);
        }
        for reason in CloseReason::ALL {
            connections_closed_total.with_label_values(&[reason.as_str()]);
        }
        Metrics {
            registry,
            connections_open,
            connections_opened_total,
            connections_closed_total,
            events_published_total,
            frames_written_total,
            bytes_written_total,
            publish_duration_seconds,
            delivery_lag_seconds,
            resyncs_total,
            refusals_total,
            request_errors_total,
            channels,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
