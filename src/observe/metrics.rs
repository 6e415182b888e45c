//! One `Metrics` struct, registered once, shared by everything that counts.
//!
//! Names follow DESIGN §6; no label holds a channel or a connection (no cardinality
//! bombs): per-channel and per-connection detail belongs to the admin API. Every label
//! value a dashboard may query is created up front, so its series exists (at 0) from
//! the first scrape. Process metrics (`process_*`) are read from `/proc` at scrape time.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use std::sync::Arc;

use crate::hub::ResyncReason;
use crate::model::reasons::{AuthFailure, CloseReason, RefusalReason};
use crate::observe::hot_metrics::{HotCollector, HotMetrics};

/// Where published events come from (the `source` label).
pub const EVENT_SOURCES: [&str; 1] = ["http"];

/// Every exported metric.
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
    /// Open TCP connections of any kind (streams, publishers, scrapers).
    pub tcp_connections_open: IntGauge,
    /// Open subscriptions: one per channel per stream.
    pub subscriptions_open: IntGauge,
    /// Events accepted by the broker, by `source`.
    pub events_published_total: IntCounterVec,
    /// Frames and bytes written and delivery lag: the fan-out path's metrics, sharded
    /// per thread (`ssegate_frames_written_total`, `ssegate_bytes_written_total`,
    /// `ssegate_delivery_lag_seconds`).
    pub hot: Arc<HotMetrics>,
    /// Events written to resuming streams from history (part of `frames_written_total`).
    pub replayed_events_total: IntCounter,
    /// Time from a publish request's arrival to its answer.
    pub publish_duration_seconds: Histogram,
    /// Resync events sent, by `reason`.
    pub resyncs_total: IntCounterVec,
    /// Requests refused by a limit, by `reason`.
    pub refusals_total: IntCounterVec,
    /// Failed authentications, by `kind`.
    pub auth_failures_total: IntCounterVec,
    /// Error answers, by `fault` (client, upstream, internal) and `code`.
    pub request_errors_total: IntCounterVec,
    /// Channels held by the hub (with history or subscribers); set at scrape.
    pub channels: IntGauge,
    /// Events held in history over all channels; set at scrape.
    pub history_events: IntGauge,
    /// Bytes held in history over all channels; set at scrape.
    pub history_bytes: IntGauge,
    /// Always 1, with the version as a label.
    pub build_info: Gauge,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            connections_open: IntGaugeVec::new(
                Opts::new("ssegate_connections_open", "Open SSE streams"),
                &["proto", "tls"],
            )
            .expect("valid metric"),
            connections_opened_total: counter_vec(
                "ssegate_connections_opened_total",
                "SSE streams opened",
                &["proto", "tls"],
            ),
            connections_closed_total: counter_vec(
                "ssegate_connections_closed_total",
                "SSE streams closed, by reason",
                &["reason"],
            ),
            tcp_connections_open: gauge(
                "ssegate_tcp_connections_open",
                "Open TCP connections of any kind",
            ),
            subscriptions_open: gauge(
                "ssegate_subscriptions_open",
                "Open subscriptions (one per channel per stream)",
            ),
            events_published_total: counter_vec(
                "ssegate_events_published_total",
                "Events accepted by the broker, by source",
                &["source"],
            ),
            hot: Arc::new(HotMetrics::new()),
            replayed_events_total: counter(
                "ssegate_replayed_events_total",
                "Events written from history to resuming streams",
            ),
            publish_duration_seconds: histogram(
                "ssegate_publish_duration_seconds",
                "Time from a publish request's arrival to its answer",
                vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0,
                ],
            ),
            resyncs_total: counter_vec(
                "ssegate_resyncs_total",
                "Resync events sent, by reason",
                &["reason"],
            ),
            refusals_total: counter_vec(
                "ssegate_refusals_total",
                "Requests and connections refused by a limit, by reason",
                &["reason"],
            ),
            auth_failures_total: counter_vec(
                "ssegate_auth_failures_total",
                "Failed authentications, by kind",
                &["kind"],
            ),
            request_errors_total: counter_vec(
                "ssegate_request_errors_total",
                "Error answers, by whose fault and error code",
                &["fault", "code"],
            ),
            channels: gauge("ssegate_channels", "Channels held by the hub"),
            history_events: gauge(
                "ssegate_history_events",
                "Events held in history over all channels",
            ),
            history_bytes: gauge(
                "ssegate_history_bytes",
                "Bytes held in history over all channels",
            ),
            build_info: Gauge::with_opts(
                Opts::new("ssegate_build_info", "Always 1; the version is a label")
                    .const_label("version", env!("CARGO_PKG_VERSION")),
            )
            .expect("valid metric"),
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.connections_open.clone()),
            Box::new(m.connections_opened_total.clone()),
            Box::new(m.connections_closed_total.clone()),
            Box::new(m.tcp_connections_open.clone()),
            Box::new(m.subscriptions_open.clone()),
            Box::new(m.events_published_total.clone()),
            Box::new(HotCollector(m.hot.clone())),
            Box::new(m.replayed_events_total.clone()),
            Box::new(m.publish_duration_seconds.clone()),
            Box::new(m.resyncs_total.clone()),
            Box::new(m.refusals_total.clone()),
            Box::new(m.auth_failures_total.clone()),
            Box::new(m.request_errors_total.clone()),
            Box::new(m.channels.clone()),
            Box::new(m.history_events.clone()),
            Box::new(m.history_bytes.clone()),
            Box::new(m.build_info.clone()),
            Box::new(ProcessCollector::new()),
        ];
        for c in collectors {
            m.registry
                .register(c)
                .expect("each metric is registered once");
        }
        m.build_info.set(1.0);
        for proto in ["h1", "h2"] {
            for tls in ["true", "false"] {
                m.connections_open.with_label_values(&[proto, tls]);
                m.connections_opened_total.with_label_values(&[proto, tls]);
            }
        }
        for reason in ResyncReason::ALL {
            m.resyncs_total.with_label_values(&[reason.as_str()]);
        }
        for reason in CloseReason::ALL {
            m.connections_closed_total
                .with_label_values(&[reason.as_str()]);
        }
        for reason in RefusalReason::ALL {
            m.refusals_total.with_label_values(&[reason.as_str()]);
        }
        for kind in AuthFailure::ALL {
            m.auth_failures_total.with_label_values(&[kind.as_str()]);
        }
        for source in EVENT_SOURCES {
            m.events_published_total.with_label_values(&[source]);
        }
        m
    }

    /// Counts one refusal by a limit.
    pub fn refused(&self, reason: RefusalReason) {
        self.refusals_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts one failed authentication or authorization.
    pub fn auth_failed(&self, kind: AuthFailure) {
        self.auth_failures_total
            .with_label_values(&[kind.as_str()])
            .inc();
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

/// `process_*` metrics from `/proc/self`, read at scrape time (Linux).
#[derive(Debug)]
struct ProcessCollector {
    cpu: prometheus::Counter,
    resident: IntGauge,
    virtual_bytes: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    fn new() -> ProcessCollector {
        let cpu = prometheus::Counter::new(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds",
        )
        .expect("valid metric");
        let resident = gauge("process_resident_memory_bytes", "Resident memory, in bytes");
        let virtual_bytes = gauge("process_virtual_memory_bytes", "Virtual memory, in bytes");
        let open_fds = gauge("process_open_fds", "Open file descriptors");
        let max_fds = gauge("process_max_fds", "The soft open-files limit");
        let start_time = Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
        )
        .expect("valid metric");
        let mut descs = Vec::new();
        for c in [
            &cpu as &dyn Collector,
            &resident,
            &virtual_bytes,
            &open_fds,
            &max_fds,
            &start_time,
        ] {
            descs.extend(c.desc().into_iter().cloned());
        }
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        start_time.set(boot - process_age_seconds().unwrap_or(0.0));
        ProcessCollector {
            cpu,
            resident,
            virtual_bytes,
            open_fds,
            max_fds,
            start_time,
            descs,
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (fixed at 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Seconds since this process started, from `/proc/self/stat` and `/proc/uptime`.
fn process_age_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let start_ticks: f64 = fields.get(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - start_ticks / TICKS_PER_SECOND)
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                // After the command: state is field 0; utime 11, stime 12, vsize 20, rss 21.
                let cpu = (num(11) + num(12)) / TICKS_PER_SECOND;
                let delta = cpu - self.cpu.get();
                if delta > 0.0 {
                    self.cpu.inc_by(delta);
                }
                self.virtual_bytes.set(num(20) as i64);
                self.resident.set(num(21) as i64 * 4096);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            self.max_fds.set(soft.min(i64::MAX as u64) as i64);
        }
        let mut out = Vec::new();
        for c in [
            &self.cpu as &dyn Collector,
            &self.resident,
            &self.virtual_bytes,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
        ] {
            out.extend(c.collect());
        }
        out
    }
}
