//! The result of one run: the JSON record (`--json`) and the human table on stdout.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;
use crate::procstat::Sample;
use crate::proto::WorkerResult;
use crate::publisher::PublishOutcome;
use crate::scenario::Options;

/// Version of the JSON layout.
pub const VERSION: u32 = 1;

/// The parameters a run used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    /// Subscribers in all.
    pub subscribers: usize,
    /// Channels.
    pub channels: usize,
    /// Offered events per second.
    pub rate: f64,
    /// Events planned.
    pub events: u64,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Percent of subscribers that stopped reading.
    pub slow_percent: u32,
    /// Percent of subscribers that reconnected.
    pub churn_percent: u32,
    /// Worker processes.
    pub workers: usize,
    /// Source addresses.
    pub sources: usize,
    /// Connects in flight.
    pub connect_concurrency: usize,
    /// Publish connections.
    pub lanes: usize,
    /// Pipelined publishes per connection.
    pub window: usize,
}

/// The connect ramp.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectStats {
    /// Subscribers with a stream.
    pub connected: u64,
    /// Subscribers without one.
    pub failed: u64,
    /// Seconds the ramp took (slowest worker).
    pub seconds: f64,
    /// Distinct connect errors.
    pub errors: Vec<String>,
}

/// Delivery checks, summed over the workers (readers only; slow subscribers apart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliveryStats {
    /// Subscribers that read.
    pub readers: u64,
    /// Subscribers that stopped reading.
    pub slow: u64,
    /// Events that should have reached the readers.
    pub expected: u64,
    /// Delivered at least once.
    pub delivered: u64,
    /// Never delivered.
    pub lost: u64,
    /// Data events received, duplicates included.
    pub received: u64,
    /// Duplicate arrivals.
    pub duplicates: u64,
    /// Arrivals below an already received event.
    pub out_of_order: u64,
    /// Forward jumps over missing events.
    pub gaps: u64,
    /// Data events that were not ours.
    pub foreign: u64,
    /// Arrivals of events whose publish was not confirmed.
    pub unexpected: u64,
    /// `ssegate.resync` notices.
    pub resyncs: u64,
    /// Readers with every event.
    pub complete: u64,
    /// Readers with a loss.
    pub with_loss: u64,
    /// Readers with a duplicate.
    pub with_duplicates: u64,
    /// Events the slow subscribers got before they stopped.
    pub slow_received: u64,
    /// Streams the server ended without being asked.
    pub dropped: u64,
    /// Churn reconnects.
    pub reconnects: u64,
    /// Churn reconnects that failed.
    pub reconnect_failed: u64,
    /// Reconnects without an event id to resume from (the server had sent none yet).
    pub blind_reconnects: u64,
    /// Longest drain wait of a worker.
    pub drain_seconds: f64,
}

impl DeliveryStats {
    /// Adds a worker's totals.
    pub fn add(&mut self, w: &WorkerResult) {
        self.readers += w.readers;
        self.slow += w.slow;
        self.expected += w.expected;
        self.delivered += w.delivered;
        self.lost += w.lost;
        self.received += w.received;
        self.duplicates += w.duplicates;
        self.out_of_order += w.out_of_order;
        self.gaps += w.gaps;
        self.foreign += w.foreign;
        self.unexpected += w.unexpected;
        self.resyncs += w.resyncs;
        self.complete += w.complete;
        self.with_loss += w.with_loss;
        self.with_duplicates += w.with_duplicates;
        self.slow_received += w.slow_received;
        self.dropped += w.dropped;
        self.reconnects += w.reconnects;
        self.reconnect_failed += w.reconnect_failed;
        self.blind_reconnects += w.blind_reconnects;
        self.drain_seconds = self.drain_seconds.max(w.drain_seconds);
    }
}

/// The server's costs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerStats {
    /// The pids measured (with their descendants).
    pub pids: Vec<u32>,
    /// Before any subscriber connected.
    pub base: Sample,
    /// Once the ramp was over.
    pub connected: Sample,
    /// Once RSS was stable (idle).
    pub idle: Option<Sample>,
    /// Right before the first event.
    pub publish_start: Option<Sample>,
    /// After the drain.
    pub end: Sample,
    /// A second after the subscribers went away.
    pub after: Sample,
    /// Highest RSS seen, KiB.
    pub peak_rss_kib: u64,
    /// CPU seconds spent on the connect ramp.
    pub connect_cpu_s: f64,
    /// CPU seconds from the first event to the end of the drain; -1 when a server
    /// process exited meanwhile (its CPU time left the sum).
    pub publish_cpu_s: f64,
    /// `publish_cpu_s` per data event received, in µs; -1 when void.
    pub cpu_per_delivery_us: f64,
    /// (RSS connected, or stable when idle, minus base) / connections, KiB.
    pub rss_per_conn_kib: f64,
    /// One sample a second while publishing.
    pub timeline: Vec<Sample>,
}

/// Who used the machine's CPU during the measured window (publishing, or the connect
/// and settle of an idle run). Other processes (builds, tests) make a run noisy: the
/// summary flags runs where they took more than a tenth of a core.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineStats {
    /// Length of the window, seconds.
    pub window_s: f64,
    /// CPU charged to the server's processes.
    pub server_s: f64,
    /// CPU charged to the load generator (coordinator and workers).
    pub loadgen_s: f64,
    /// Machine-wide process + interrupt time (`/proc/stat` user, nice, system, irq,
    /// softirq) over the window. A process's own times include the softirq work done in
    /// its context (loopback networking), so this is the total the others are cut from.
    #[serde(default)]
    pub machine_s: f64,
    /// CPU of every other process: `machine_s` less server and load generator.
    pub other_s: f64,
    /// Interrupt time (irq + softirq: much of loopback networking), charged to no process.
    pub irq_s: f64,
    /// Time stolen by the hypervisor.
    pub steal_s: f64,
    /// `other_s / window_s`: the share of one core other processes took.
    pub other_share: f64,
}

/// The load generator's own costs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadgenStats {
    /// CPU seconds: coordinator (publisher) plus workers.
    pub cpu_s: f64,
    /// Worker processes.
    pub workers: usize,
    /// Workers' RSS at the end, KiB.
    pub rss_kib: u64,
    /// Sum of the workers' peak RSS, KiB.
    pub rss_peak_kib: u64,
    /// Workers' RSS per connection, KiB.
    pub rss_per_conn_kib: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Layout version.
    pub version: u32,
    /// Target name.
    pub label: String,
    /// Run name (groups runs in the summary).
    pub case: String,
    /// Scenario.
    pub scenario: String,
    /// Publish format.
    pub format: String,
    /// `h1` or `h2`.
    pub proto: String,
    /// Subscribed over TLS.
    pub tls: bool,
    /// Subscribe URL template.
    pub sub_url: String,
    /// Publish URL template.
    pub pub_url: String,
    /// The command line.
    pub command: String,
    /// Unix seconds at the start.
    pub started_unix: u64,
    /// Seconds the run took.
    pub seconds: f64,
    /// Parameters.
    pub params: Params,
    /// The ramp.
    pub connect: ConnectStats,
    /// The publisher (none for idle).
    pub publish: Option<PublishOutcome>,
    /// Delivery checks.
    pub delivery: DeliveryStats,
    /// Latency from each event's scheduled send time.
    pub latency_scheduled: LatencySummary,
    /// Latency from each event's actual send time.
    pub latency_sent: LatencySummary,
    /// Server costs (when `--server-pid` was given).
    pub server: Option<ServerStats>,
    /// Load generator costs.
    pub loadgen: LoadgenStats,
    /// Who else used the CPU during the measured window.
    #[serde(default)]
    pub machine: Option<MachineStats>,
    /// What went wrong (loss, duplicates, failures); empty for a clean run.
    pub problems: Vec<String>,
    /// Distinct errors seen.
    pub errors: Vec<String>,
    /// Why the run did not finish, if it did not.
    pub aborted: Option<String>,
}

impl RunReport {
    /// The record of a run that did not finish.
    pub fn aborted(o: &Options, why: String) -> RunReport {
        RunReport {
            version: VERSION,
            case: o.case.clone().unwrap_or(o.scenario.as_str().into()),
            scenario: o.scenario.as_str().into(),
            format: o.format.as_str().into(),
            command: o.command.clone(),
            problems: vec![why.clone()],
            aborted: Some(why),
            ..RunReport::default()
        }
    }
}

/// Writes the JSON record.
pub fn write_json(report: &RunReport, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).expect("a report serializes");
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints the human summary.
pub fn print(r: &RunReport) {
    let p = &r.params;
    println!(
        "== {} / {} ({}{}, {} subscribers, {} channel(s))",
        r.label,
        r.case,
        r.proto,
        if r.tls { "+tls" } else { "" },
        p.subscribers,
        p.channels
    );
    println!(
        "  connect    {} connected, {} failed, {:.1} s (ramp {})",
        r.connect.connected, r.connect.failed, r.connect.seconds, p.connect_concurrency
    );
    if let Some(pb) = &r.publish {
        println!(
            "  publish    offered {:.1}/s; sent {} of {} ({:.1}/s), accepted {} ({:.1}/s), failed {}; send lag p99 {:.2} ms",
            pb.offered_rate,
            pb.sent,
            pb.planned,
            pb.achieved_send_rate,
            pb.accepted,
            pb.achieved_accept_rate,
            pb.failed,
            pb.send_lag.p99_ms
        );
        let d = &r.delivery;
        println!(
            "  delivery   {} readers: expected {}, delivered {}, LOST {}, dups {}, out-of-order {}, gaps {}, resyncs {}, foreign {}",
            d.readers, d.expected, d.delivered, d.lost, d.duplicates, d.out_of_order, d.gaps, d.resyncs, d.foreign
        );
        if d.slow > 0 || d.reconnects > 0 || d.dropped > 0 {
            println!(
                "             slow {} (got {} before stopping), reconnects {} ({} failed, {} without an id to resume from), dropped by server {}",
                d.slow, d.slow_received, d.reconnects, d.reconnect_failed, d.blind_reconnects, d.dropped
            );
        }
        for (name, l) in [
            ("from sched", &r.latency_scheduled),
            ("from send ", &r.latency_sent),
        ] {
            println!(
                "  latency {}  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  ({} samples)",
                name, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
            );
        }
    }
    if let Some(s) = &r.server {
        println!(
            "  server     rss base {:.1} MiB, connected {:.1} MiB ({:.2} KiB/conn), peak {:.1} MiB, end {:.1} MiB, after {:.1} MiB",
            mib(s.base.rss_kib),
            mib(s.idle.unwrap_or(s.connected).rss_kib),
            s.rss_per_conn_kib,
            mib(s.peak_rss_kib),
            mib(s.end.rss_kib),
            mib(s.after.rss_kib)
        );
        println!(
            "             cpu connect {:.2} s, publish+drain {:.2} s ({:.2} µs/delivery), {} process(es)",
            s.connect_cpu_s, s.publish_cpu_s, s.cpu_per_delivery_us, s.end.procs
        );
    }
    let l = &r.loadgen;
    println!(
        "  loadgen    cpu {:.2} s, {} worker(s), rss {:.1} MiB ({:.2} KiB/conn)",
        l.cpu_s,
        l.workers,
        mib(l.rss_kib),
        l.rss_per_conn_kib
    );
    if let Some(m) = &r.machine {
        println!(
            "  machine    over {:.1} s: server {:.2} s, loadgen {:.2} s, other processes {:.2} s ({:.0}% of a core), irq {:.2} s, steal {:.2} s",
            m.window_s, m.server_s, m.loadgen_s, m.other_s, m.other_share * 100.0, m.irq_s, m.steal_s
        );
    }
    if r.problems.is_empty() {
        println!("  verdict    clean: nothing lost, duplicated or reordered");
    } else {
        println!("  verdict    {}", r.problems.join("; "));
    }
    for e in r.errors.iter().take(8) {
        println!("  error      {e}");
    }
}
