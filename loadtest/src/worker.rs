//! A worker process: runs its share of the subscribers on one single-threaded runtime
//! (the server under test needs the other core), reports progress while connecting,
//! waits for the coordinator's commands and sends back its totals.
//!
//! The plan arrives as the first line on stdin, commands as the next lines; an EOF on
//! stdin (the coordinator died) or the plan's hard deadline ends the worker.

use std::io::{BufRead, Write};
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::latency::Latency;
use crate::procstat;
use crate::proto::{ChannelExpect, Command, Report, WorkerPlan, WorkerResult};
use crate::subscriber::{self, Fleet};

/// How often connect progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How often the drain looks whether every reader is complete.
const DRAIN_POLL: Duration = Duration::from_millis(50);

fn send(report: &Report) {
    let line = serde_json::to_string(report).expect("a report serializes");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs a worker; the process exit code.
pub fn main() -> i32 {
    let (tx, rx) = mpsc::unbounded_channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest worker: runtime: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(rx)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("loadtest worker: {e}");
            1
        }
    }
}

async fn next_line(rx: &mut mpsc::UnboundedReceiver<Option<String>>) -> Result<String, String> {
    match rx.recv().await {
        Some(Some(line)) => Ok(line),
        _ => Err("the coordinator went away (stdin closed)".into()),
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Option<String>>) -> Result<(), String> {
    let plan: WorkerPlan =
        serde_json::from_str(&next_line(&mut rx).await?).map_err(|e| format!("bad plan: {e}"))?;
    let hard_deadline = Instant::now() + Duration::from_millis(plan.hard_deadline_ms);
    match tokio::time::timeout_at(hard_deadline, drive(plan, &mut rx)).await {
        Ok(r) => r,
        Err(_) => Err("hard deadline reached".into()),
    }
}

async fn drive(
    plan: WorkerPlan,
    rx: &mut mpsc::UnboundedReceiver<Option<String>>,
) -> Result<(), String> {
    let count = plan.count;
    let fleet = Rc::new(Fleet::new(plan)?);
    let started = Instant::now();
    for i in 0..count {
        tokio::task::spawn_local(subscriber::run(fleet.clone(), i));
    }
    // The ramp: wait until every subscriber has a stream or gave up.
    let mut last_progress = Instant::now();
    loop {
        let c = &fleet.counters;
        let connected = c.open.get();
        let failed = c.failed.get();
        if connected + failed >= count as u64 || Instant::now() >= fleet.connect_deadline {
            let errors = fleet
                .errors
                .borrow()
                .iter()
                .map(|(m, n)| format!("{m} (x{n})"))
                .collect();
            send(&Report::Connected {
                connected,
                failed: count as u64 - connected,
                seconds: started.elapsed().as_secs_f64(),
                errors,
            });
            fleet.ramp_over.set(true);
            break;
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            send(&Report::Progress { connected, failed });
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let line = next_line(rx).await?;
        let command: Command =
            serde_json::from_str(&line).map_err(|e| format!("bad command {line:?}: {e}"))?;
        match command {
            Command::Start => fleet.churn_active.set(true),
            Command::Finish { expected, drain_ms } => {
                fleet.churn_active.set(false);
                let drain_started = Instant::now();
                let until = drain_started + Duration::from_millis(drain_ms);
                while !all_complete(&fleet, &expected) && Instant::now() < until {
                    tokio::time::sleep(DRAIN_POLL).await;
                }
                let drain_seconds = drain_started.elapsed().as_secs_f64();
                let result = totals(&fleet, &expected, drain_seconds);
                send(&Report::Result(Box::new(result)));
                // Stay (connections open, CPU countable) until the coordinator has taken
                // its last sample and closes stdin; at most 30 s.
                let _ = tokio::time::timeout(Duration::from_secs(30), next_line(rx)).await;
                return Ok(());
            }
        }
    }
}

/// True when every reader that is still connected (or reconnecting) has all its events.
fn all_complete(fleet: &Fleet, expected: &[ChannelExpect]) -> bool {
    let subs = fleet.subs.borrow();
    subs.iter()
        .filter(|s| !s.slow && s.ever_connected && !s.late && !s.gone)
        .all(|s| {
            let e = &expected[s.channel];
            s.tracker.complete(e.count, &e.unconfirmed)
        })
}

fn totals(fleet: &Fleet, expected: &[ChannelExpect], drain_seconds: f64) -> WorkerResult {
    let subs = fleet.subs.borrow();
    let c = &fleet.counters;
    let mut r = WorkerResult {
        subscribers: subs.len() as u64,
        dropped: c.dropped.get(),
        reconnects: c.reconnects.get(),
        reconnect_failed: c.reconnect_failed.get(),
        blind_reconnects: c.blind_reconnects.get(),
        drain_seconds,
        ..WorkerResult::default()
    };
    for s in subs.iter() {
        if !s.ever_connected || s.late {
            r.connect_failed += 1;
            continue;
        }
        r.connected += 1;
        if s.slow {
            r.slow += 1;
            r.slow_received += s.received;
            continue;
        }
        r.readers += 1;
        let e = &expected[s.channel];
        let tally = s.tracker.tally(e.count, &e.unconfirmed);
        r.expected += tally.expected;
        r.delivered += tally.delivered;
        r.lost += tally.lost;
        r.unexpected += tally.unexpected;
        r.received += s.received;
        r.duplicates += s.tracker.duplicates as u64;
        r.out_of_order += s.tracker.out_of_order as u64;
        r.gaps += s.tracker.gaps as u64;
        r.foreign += s.tracker.foreign as u64;
        r.resyncs += s.tracker.resyncs as u64;
        if tally.lost == 0 {
            r.complete += 1;
        } else {
            r.with_loss += 1;
        }
        if s.tracker.duplicates > 0 {
            r.with_duplicates += 1;
        }
    }
    let sched: &Latency = &fleet.lat_scheduled.borrow();
    r.latency_scheduled = sched.to_pairs();
    r.latency_scheduled_summary = sched.summary();
    r.latency_sent = fleet.lat_sent.borrow().to_pairs();
    r.last_receipt_ns = fleet.last_receipt_ns.get();
    r.cpu_s = procstat::self_cpu_s();
    let pid = std::process::id();
    r.rss_kib = procstat::rss_kib(pid);
    r.rss_peak_kib = procstat::status_field(pid, "VmHWM:").unwrap_or(0);
    r.errors = fleet
        .errors
        .borrow()
        .iter()
        .map(|(m, n)| format!("{m} (x{n})"))
        .collect();
    r
}
