//! Scenarios and the coordinator that runs one: spawn the worker processes, wait for the
//! connect ramp, measure the idle server, publish on schedule while sampling the server,
//! collect the workers' checks, and hand everything to the report. Every phase has a
//! deadline; the whole run has a hard one.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Process};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::latency::Latency;
use crate::procstat::{self, Sample};
use crate::proto::{ChannelExpect, Command, Report, WorkerPlan, WorkerResult};
use crate::publisher::{self, PublishPlan};
use crate::report::{
    self, ConnectStats, DeliveryStats, LoadgenStats, MachineStats, Params, RunReport, ServerStats,
};
use crate::target::{Format, Url};

/// The scenarios by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// One channel, many subscribers.
    #[default]
    Fanout,
    /// Many channels, few subscribers each.
    Channels,
    /// Memory per idle connection.
    Idle,
    /// Subscribers reconnect with `Last-Event-ID` while events flow.
    Churn,
    /// A share of subscribers stop reading.
    Slow,
}

impl Scenario {
    /// Parses a `--scenario` value.
    pub fn parse(s: &str) -> Result<Scenario, String> {
        match s {
            "fanout" => Ok(Scenario::Fanout),
            "channels" => Ok(Scenario::Channels),
            "idle" => Ok(Scenario::Idle),
            "churn" => Ok(Scenario::Churn),
            "slow" => Ok(Scenario::Slow),
            other => Err(format!(
                "unknown scenario '{other}' (fanout|channels|idle|churn|slow)"
            )),
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Channels => "channels",
            Scenario::Idle => "idle",
            Scenario::Churn => "churn",
            Scenario::Slow => "slow",
        }
    }
}

/// The command line, with each scenario's defaults filled in by [`Options::resolve`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// The server's conventions.
    pub format: Format,
    /// Subscribe URL template.
    pub sub_url: Option<String>,
    /// Publish URL template.
    pub pub_url: Option<String>,
    /// Publish key.
    pub key: Option<String>,
    /// Subscribe over HTTP/2.
    pub http2: bool,
    /// Server processes to measure.
    pub server_pids: Vec<u32>,
    /// Subscribers in all.
    pub subscribers: Option<usize>,
    /// Channels.
    pub channels: Option<usize>,
    /// Events per second.
    pub rate: Option<f64>,
    /// Seconds of publishing.
    pub duration: Option<f64>,
    /// Events in all.
    pub events: Option<u64>,
    /// Payload bytes.
    pub payload: Option<usize>,
    /// Percent of subscribers that stop reading.
    pub slow_percent: Option<u32>,
    /// Percent of subscribers that reconnect.
    pub churn_percent: Option<u32>,
    /// Churners stay connected between these many ms.
    pub churn_ms: (u64, u64),
    /// Connects in flight.
    pub connect_concurrency: usize,
    /// Source addresses.
    pub sources: Vec<Ipv4Addr>,
    /// Subscribers per worker.
    pub per_worker: usize,
    /// Worker processes.
    pub workers: Option<usize>,
    /// Publish connections.
    pub lanes: Option<usize>,
    /// Pipelined requests per publish connection.
    pub window: Option<usize>,
    /// Seconds between connected and the first event.
    pub settle: f64,
    /// Longest wait for a stable RSS.
    pub idle_wait: f64,
    /// Longest wait for stragglers.
    pub drain: f64,
    /// Longest connect ramp.
    pub connect_deadline: Option<f64>,
    /// Hard limit for the run.
    pub deadline: Option<f64>,
    /// Target name.
    pub label: Option<String>,
    /// Run name.
    pub case: Option<String>,
    /// Where to write the JSON result.
    pub json: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
    /// The command line as given.
    pub command: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenario: Scenario::Fanout,
            format: Format::Ssegate,
            sub_url: None,
            pub_url: None,
            key: None,
            http2: false,
            server_pids: Vec::new(),
            subscribers: None,
            channels: None,
            rate: None,
            duration: None,
            events: None,
            payload: None,
            slow_percent: None,
            churn_percent: None,
            churn_ms: (1000, 4000),
            connect_concurrency: 64,
            sources: (0..4).map(|i| Ipv4Addr::new(127, 0, 0, 2 + i)).collect(),
            per_worker: 15_000,
            workers: None,
            lanes: None,
            window: None,
            settle: 1.0,
            idle_wait: 20.0,
            drain: 10.0,
            connect_deadline: None,
            deadline: None,
            label: None,
            case: None,
            json: None,
            quiet: false,
            command: String::new(),
        }
    }
}

/// The numbers a run uses, once defaults are applied.
#[derive(Debug, Clone)]
struct Resolved {
    subscribers: usize,
    channels: usize,
    rate: f64,
    events: u64,
    payload: usize,
    slow_percent: u32,
    churn_percent: u32,
    workers: usize,
    lanes: usize,
    window: usize,
    sub_url: String,
    pub_url: String,
    key: Option<String>,
    connect_deadline: f64,
    deadline: f64,
}

impl Options {
    /// Applies the scenario's defaults and checks the combination.
    pub fn resolve(&mut self) -> Result<(), String> {
        let r = self.resolved()?;
        Url::parse(&r.sub_url.replace("{channel}", "x"))?;
        Url::parse(&r.pub_url.replace("{channel}", "x"))?;
        if r.subscribers == 0 {
            return Err("--subscribers must be at least 1".into());
        }
        if r.channels == 0 || r.channels > r.subscribers.max(1) * 64 {
            return Err("--channels must be between 1 and 64 x subscribers".into());
        }
        if r.slow_percent + r.churn_percent > 100 {
            return Err("--slow-percent + --churn-percent must be at most 100".into());
        }
        if r.subscribers.div_ceil(r.workers) > 19_000 {
            return Err(
                "more than 19,000 subscribers in one worker: the open-files limit is 20,000".into(),
            );
        }
        if self.scenario != Scenario::Idle && r.events > 0 && r.rate <= 0.0 {
            return Err("--rate must be positive".into());
        }
        Ok(())
    }

    fn resolved(&self) -> Result<Resolved, String> {
        let s = self.scenario;
        let subscribers = self.subscribers.unwrap_or(match s {
            Scenario::Channels => 2000,
            _ => 1000,
        });
        let channels = self.channels.unwrap_or(match s {
            Scenario::Channels => 20,
            _ => 1,
        });
        let rate = self.rate.unwrap_or(match s {
            Scenario::Fanout => 10.0,
            Scenario::Channels => 200.0,
            Scenario::Idle => 0.0,
            Scenario::Churn | Scenario::Slow => 20.0,
        });
        let duration = self.duration.unwrap_or(match s {
            Scenario::Idle => 0.0,
            Scenario::Churn => 30.0,
            _ => 20.0,
        });
        let events = match (s, self.events) {
            (Scenario::Idle, _) => 0,
            (_, Some(m)) => m,
            _ => (rate * duration).round() as u64,
        };
        let payload = self.payload.unwrap_or(match s {
            Scenario::Slow => 4096,
            _ => 64,
        });
        let slow_percent = self.slow_percent.unwrap_or(match s {
            Scenario::Slow => 20,
            _ => 0,
        });
        let churn_percent = self.churn_percent.unwrap_or(match s {
            Scenario::Churn => 100,
            _ => 0,
        });
        let workers = self
            .workers
            .unwrap_or_else(|| subscribers.div_ceil(self.per_worker.max(1)))
            .clamp(1, 64);
        let lanes = self.lanes.unwrap_or(channels.min(8)).max(1);
        // Pushpin's publish port closes after each answer, and reorders concurrent
        // publishes under load: one request at a time there, so each channel stays in
        // order (a slow answer then delays later sends; latency still counts from the
        // scheduled time).
        let window = self.window.unwrap_or(match self.format {
            Format::Pushpin => 1,
            _ => 8,
        });
        let sub_url = self
            .sub_url
            .clone()
            .unwrap_or_else(|| self.format.default_sub_url().to_string());
        let pub_url = self
            .pub_url
            .clone()
            .unwrap_or_else(|| self.format.default_pub_url().to_string());
        let key = match self.format {
            Format::Ssegate => Some(self.key.clone().unwrap_or_else(|| {
                std::env::var("SSEGATE_PUBLISH_KEY").unwrap_or_else(|_| "dev-publish-key".into())
            })),
            _ => self.key.clone(),
        };
        let connect_deadline = self
            .connect_deadline
            .unwrap_or(30.0 + subscribers as f64 / 250.0);
        let publish_s = if rate > 0.0 {
            events as f64 / rate
        } else {
            0.0
        };
        let deadline = self.deadline.unwrap_or(
            connect_deadline
                + self.settle
                + self.idle_wait
                + publish_s
                + (publish_s / 4.0).max(5.0)
                + 10.0
                + self.drain
                + 60.0,
        );
        Ok(Resolved {
            subscribers,
            channels,
            rate,
            events,
            payload,
            slow_percent,
            churn_percent,
            workers,
            lanes,
            window,
            sub_url,
            pub_url,
            key,
            connect_deadline,
            deadline,
        })
    }
}

/// Runs one scenario; `Ok(true)` when nothing was lost or duplicated among the readers.
pub fn main(options: Options) -> Result<bool, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let r = options.resolved()?;
    let deadline = Duration::from_secs_f64(r.deadline);
    let report = local.block_on(&runtime, async {
        match tokio::time::timeout(deadline, run(&options, &r)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the run hit its hard deadline of {:.0} s",
                r.deadline
            )),
        }
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            // A run that did not finish still leaves a record saying so.
            let mut report = RunReport::aborted(&options, e.clone());
            report.label = options
                .label
                .clone()
                .unwrap_or(options.format.as_str().into());
            if let Some(path) = &options.json {
                report::write_json(&report, path)?;
            }
            return Err(e);
        }
    };
    report::print(&report);
    if let Some(path) = &options.json {
        report::write_json(&report, path)?;
    }
    Ok(report.problems.is_empty())
}

struct WorkerHandle {
    child: Child,
    stdin: ChildStdin,
}

fn progress(o: &Options, message: &str) {
    if !o.quiet {
        eprintln!("loadtest: {message}");
    }
}

async fn send(workers: &mut [WorkerHandle], command: &Command) -> Result<(), String> {
    let mut line = serde_json::to_string(command).expect("a command serializes");
    line.push('\n');
    for w in workers.iter_mut() {
        w.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("writing to a worker: {e}"))?;
        w.stdin.flush().await.map_err(|e| format!("worker: {e}"))?;
    }
    Ok(())
}

fn spawn_workers(
    o: &Options,
    r: &Resolved,
    channels: &[String],
    tx: mpsc::UnboundedSender<(usize, Result<Report, String>)>,
) -> Result<Vec<(WorkerHandle, WorkerPlan)>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let per = r.subscribers.div_ceil(r.workers);
    let events_per_channel = r.events.div_ceil(r.channels as u64) as u32;
    let mut out = Vec::new();
    for w in 0..r.workers {
        let first = w * per;
        let count = per.min(r.subscribers.saturating_sub(first));
        if count == 0 {
            break;
        }
        let plan = WorkerPlan {
            worker: w,
            first,
            count,
            channels: channels.to_vec(),
            sub_url: r.sub_url.clone(),
            format: o.format,
            http2: o.http2,
            sources: o.sources.clone(),
            connect_concurrency: o.connect_concurrency.div_ceil(r.workers).max(1),
            connect_deadline_ms: (r.connect_deadline * 1000.0) as u64,
            connect_attempts: 4,
            slow_percent: r.slow_percent,
            churn_percent: r.churn_percent,
            churn_min_ms: o.churn_ms.0,
            churn_max_ms: o.churn_ms.1,
            events_per_channel,
            hard_deadline_ms: (r.deadline * 1000.0) as u64 + 5_000,
        };
        let mut child = Process::new(&exe)
            .arg("__worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning a worker: {e}"))?;
        let stdin = child.stdin.take().ok_or("worker stdin")?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let msg = serde_json::from_str::<Report>(&line)
                            .map_err(|e| format!("worker {w} said {line:?}: {e}"));
                        if tx.send((w, msg)).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send((w, Err(format!("worker {w} ended"))));
                        return;
                    }
                }
            }
        });
        out.push((WorkerHandle { child, stdin }, plan));
    }
    Ok(out)
}

/// Where the CPU counters stood at the start of the measured window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    machine: procstat::MachineCpu,
    loadgen_s: f64,
    server_s: f64,
}

fn mark(pids: &[u32]) -> Mark {
    Mark {
        at: Instant::now(),
        machine: procstat::machine_cpu(),
        loadgen_s: procstat::sample(&[std::process::id()], 0.0).cpu_s,
        server_s: if pids.is_empty() {
            0.0
        } else {
            procstat::sample(pids, 0.0).cpu_s
        },
    }
}

fn machine_stats(from: &Mark, to: &Mark) -> MachineStats {
    let window_s = to.at.duration_since(from.at).as_secs_f64();
    let server_s = to.server_s - from.server_s;
    let loadgen_s = to.loadgen_s - from.loadgen_s;
    let machine_s =
        (to.machine.process_s + to.machine.irq_s) - (from.machine.process_s + from.machine.irq_s);
    let other_s = (machine_s - server_s - loadgen_s).max(0.0);
    MachineStats {
        window_s,
        server_s,
        loadgen_s,
        machine_s,
        other_s,
        irq_s: to.machine.irq_s - from.machine.irq_s,
        steal_s: to.machine.steal_s - from.machine.steal_s,
        other_share: if window_s > 0.0 {
            other_s / window_s
        } else {
            0.0
        },
    }
}

fn sample(pids: &[u32], started: Instant) -> Option<Sample> {
    (!pids.is_empty()).then(|| procstat::sample(pids, started.elapsed().as_secs_f64()))
}

async fn run(o: &Options, r: &Resolved) -> Result<RunReport, String> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let self_cpu0 = procstat::self_cpu_s();
    let run_id = format!("{:08x}", fastrand::u32(..));
    let channels: Vec<String> = (0..r.channels)
        .map(|c| format!("lt-{run_id}-{c}"))
        .collect();
    let pids = &o.server_pids;
    let base = sample(pids, started);
    let mut window_start = mark(pids);

    // Connect.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spawned = spawn_workers(o, r, &channels, tx)?;
    let mut workers = Vec::new();
    for (mut handle, plan) in spawned {
        let mut line = serde_json::to_string(&plan).expect("a plan serializes");
        line.push('\n');
        handle
            .stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("sending a plan: {e}"))?;
        workers.push(handle);
    }
    progress(
        o,
        &format!(
            "{} {}: {} subscribers on {} channel(s), {} worker(s), ramp {}",
            o.label.as_deref().unwrap_or(o.format.as_str()),
            o.scenario.as_str(),
            r.subscribers,
            r.channels,
            workers.len(),
            o.connect_concurrency
        ),
    );
    let n_workers = workers.len();
    let mut connect = ConnectStats::default();
    let mut progress_by_worker = vec![(0u64, 0u64); n_workers];
    let mut connected_workers = 0;
    let connect_until = started + Duration::from_secs_f64(r.connect_deadline + 15.0);
    let mut last_print = Instant::now();
    while connected_workers < n_workers {
        let (w, msg) = tokio::time::timeout_at(connect_until, rx.recv())
            .await
            .map_err(|_| "workers did not finish connecting in time".to_string())?
            .ok_or("every worker ended")?;
        match msg? {
            Report::Progress { connected, failed } => progress_by_worker[w] = (connected, failed),
            Report::Connected {
                connected,
                failed,
                seconds,
                errors,
            } => {
                progress_by_worker[w] = (connected, failed);
                connect.connected += connected;
                connect.failed += failed;
                connect.seconds = connect.seconds.max(seconds);
                connect.errors.extend(errors);
                connected_workers += 1;
            }
            Report::Result(_) => return Err(format!("worker {w} reported before finishing")),
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            let (c, f) = progress_by_worker
                .iter()
                .fold((0, 0), |a, p| (a.0 + p.0, a.1 + p.1));
            progress(o, &format!("connecting: {c} open, {f} failed"));
            last_print = Instant::now();
        }
    }
    progress(
        o,
        &format!(
            "connected {} of {} in {:.1} s ({} failed)",
            connect.connected, r.subscribers, connect.seconds, connect.failed
        ),
    );
    let connected_sample = sample(pids, started);

    // Idle: wait until the server's memory stops moving.
    let mut idle_sample = None;
    if o.scenario == Scenario::Idle && !pids.is_empty() {
        let until = Instant::now() + Duration::from_secs_f64(o.idle_wait);
        let mut last: Vec<u64> = Vec::new();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = sample(pids, started).expect("pids given");
            last.push(s.rss_kib);
            idle_sample = Some(s);
            if last.len() >= 3 {
                let tail = &last[last.len() - 3..];
                let spread = tail.iter().max().unwrap_or(&0) - tail.iter().min().unwrap_or(&0);
                let grown = s
                    .rss_kib
                    .saturating_sub(base.map(|b| b.rss_kib).unwrap_or(0));
                if spread <= (grown / 100).max(256) {
                    break;
                }
            }
            if Instant::now() >= until {
                break;
            }
        }
    }

    // Publish, sampling the server once a second.
    let mut publish = None;
    let mut publish_start_sample = None;
    let timeline: Rc<RefCell<Vec<Sample>>> = Rc::new(RefCell::new(Vec::new()));
    if r.events > 0 {
        tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
        publish_start_sample = sample(pids, started);
        window_start = mark(pids);
        send(&mut workers, &Command::Start).await?;
        let sampler = {
            let timeline = timeline.clone();
            let pids = pids.clone();
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Some(s) = sample(&pids, started) {
                        timeline.borrow_mut().push(s);
                    }
                }
            })
        };
        let publish_s = r.events as f64 / r.rate;
        let plan = PublishPlan {
            format: o.format,
            url: r.pub_url.clone(),
            key: r.key.clone(),
            channels: channels.clone(),
            rate: r.rate,
            events: r.events,
            payload_bytes: r.payload,
            lanes: r.lanes,
            window: r.window,
            // Pushpin's publish port answers `Connection: close`: one connection per
            // publish, several at once, instead of pipelining.
            one_shot: o.format == Format::Pushpin,
            // A server that falls behind gets a quarter more time (at least 5 s) to take
            // the rest of the schedule, then 10 s to answer; the run stays bounded.
            schedule_deadline: Instant::now()
                + Duration::from_secs_f64(publish_s + (publish_s / 4.0).max(5.0)),
            answer_deadline: Instant::now()
                + Duration::from_secs_f64(publish_s + (publish_s / 4.0).max(5.0) + 10.0),
        };
        progress(
            o,
            &format!(
                "publishing {} events at {}/s ({:.0} s)",
                r.events, r.rate, publish_s
            ),
        );
        let outcome = publisher::run(plan).await?;
        progress(
            o,
            &format!(
                "published: {} sent, {} accepted, {} failed; draining",
                outcome.sent, outcome.accepted, outcome.failed
            ),
        );
        let finish = Command::Finish {
            expected: outcome.expected.clone(),
            drain_ms: (o.drain * 1000.0) as u64,
        };
        send(&mut workers, &finish).await?;
        publish = Some(outcome);
        // Results come below; the sampler stops once they are in.
        let results = collect(&mut rx, n_workers, o.drain + 15.0).await;
        sampler.abort();
        let timeline = timeline.borrow().clone();
        return finish_run(
            o,
            r,
            FinishInput {
                started,
                started_unix,
                self_cpu0,
                base,
                connected_sample,
                idle_sample,
                publish_start_sample,
                timeline,
                window_start,
                connect,
                publish,
                results,
                workers,
            },
        )
        .await;
    }
    // No events (idle): ask for the (empty) results all the same, for the workers' costs.
    let finish = Command::Finish {
        expected: vec![ChannelExpect::default(); r.channels],
        drain_ms: 0,
    };
    send(&mut workers, &finish).await?;
    let results = collect(&mut rx, n_workers, 15.0).await;
    finish_run(
        o,
        r,
        FinishInput {
            started,
            started_unix,
            self_cpu0,
            base,
            connected_sample,
            idle_sample,
            publish_start_sample,
            timeline: Vec::new(),
            window_start,
            connect,
            publish,
            results,
            workers,
        },
    )
    .await
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(usize, Result<Report, String>)>,
    n: usize,
    wait_s: f64,
) -> Vec<Result<WorkerResult, String>> {
    let mut results: Vec<Option<Result<WorkerResult, String>>> = (0..n).map(|_| None).collect();
    let until = Instant::now() + Duration::from_secs_f64(wait_s);
    while results.iter().any(Option::is_none) {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some((w, Ok(Report::Result(r))))) => results[w] = Some(Ok(*r)),
            Ok(Some((w, Err(e)))) => {
                if results[w].is_none() {
                    results[w] = Some(Err(e));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(w, r)| r.unwrap_or_else(|| Err(format!("worker {w} sent no result in time"))))
        .collect()
}

struct FinishInput {
    started: Instant,
    started_unix: u64,
    self_cpu0: f64,
    base: Option<Sample>,
    connected_sample: Option<Sample>,
    idle_sample: Option<Sample>,
    publish_start_sample: Option<Sample>,
    timeline: Vec<Sample>,
    window_start: Mark,
    connect: ConnectStats,
    publish: Option<publisher::PublishOutcome>,
    results: Vec<Result<WorkerResult, String>>,
    workers: Vec<WorkerHandle>,
}

async fn finish_run(o: &Options, r: &Resolved, f: FinishInput) -> Result<RunReport, String> {
    let pids = &o.server_pids;
    let end = sample(pids, f.started);
    let window_end = mark(pids);
    // Let the workers exit (they do after their result), then look at the server again.
    for mut w in f.workers {
        drop(w.stdin);
        if tokio::time::timeout(Duration::from_secs(5), w.child.wait())
            .await
            .is_err()
        {
            let _ = w.child.start_kill();
            let _ = w.child.wait().await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sample(pids, f.started);

    let mut delivery = DeliveryStats::default();
    let mut lat_scheduled = Latency::new();
    let mut lat_sent = Latency::new();
    let mut loadgen = LoadgenStats {
        cpu_s: procstat::self_cpu_s() - f.self_cpu0,
        workers: f.results.len(),
        ..LoadgenStats::default()
    };
    let mut problems = Vec::new();
    let mut errors = f.connect.errors.clone();
    for (w, res) in f.results.iter().enumerate() {
        match res {
            Ok(wr) => {
                delivery.add(wr);
                lat_scheduled.merge_pairs(&wr.latency_scheduled);
                lat_sent.merge_pairs(&wr.latency_sent);
                loadgen.cpu_s += wr.cpu_s;
                loadgen.rss_kib += wr.rss_kib;
                loadgen.rss_peak_kib += wr.rss_peak_kib;
                for e in &wr.errors {
                    if !errors.contains(e) {
                        errors.push(e.clone());
                    }
                }
            }
            Err(e) => problems.push(format!("worker {w}: {e}")),
        }
    }
    if f.connect.connected > 0 {
        loadgen.rss_per_conn_kib = loadgen.rss_kib as f64 / f.connect.connected as f64;
    }
    let server = f.base.map(|base| {
        let connected = f.connected_sample.unwrap_or(base);
        let mem_point = f.idle_sample.unwrap_or(connected);
        let n = f.connect.connected.max(1) as f64;
        let peak = f
            .timeline
            .iter()
            .chain([&connected, &mem_point])
            .chain(end.iter())
            .map(|s| s.rss_kib)
            .max()
            .unwrap_or(0);
        // A process of the server that exits takes its CPU time with it: the sum can
        // go backwards. Such a run has no CPU figure: -1 (and a problem says why).
        let publish_cpu = match (f.publish_start_sample, end) {
            (Some(a), Some(b)) if b.procs >= a.procs && b.cpu_s >= a.cpu_s => b.cpu_s - a.cpu_s,
            (Some(_), Some(_)) => -1.0,
            _ => 0.0,
        };
        let deliveries = delivery.received as f64;
        ServerStats {
            pids: pids.clone(),
            base,
            connected,
            idle: f.idle_sample,
            publish_start: f.publish_start_sample,
            end: end.unwrap_or(connected),
            after: after.unwrap_or(connected),
            peak_rss_kib: peak,
            connect_cpu_s: connected.cpu_s - base.cpu_s,
            publish_cpu_s: publish_cpu,
            cpu_per_delivery_us: if publish_cpu < 0.0 {
                -1.0
            } else if deliveries > 0.0 {
                publish_cpu / deliveries * 1e6
            } else {
                0.0
            },
            rss_per_conn_kib: (mem_point.rss_kib as f64 - base.rss_kib as f64) / n,
            timeline: f.timeline.clone(),
        }
    });
    if f.connect.failed > 0 {
        problems.push(format!(
            "{} subscribers failed to connect",
            f.connect.failed
        ));
    }
    if delivery.lost > 0 {
        problems.push(format!("{} events lost", delivery.lost));
    }
    if delivery.duplicates > 0 {
        problems.push(format!("{} duplicate deliveries", delivery.duplicates));
    }
    if delivery.out_of_order > 0 {
        problems.push(format!("{} out-of-order deliveries", delivery.out_of_order));
    }
    if let Some(p) = &f.publish {
        if p.failed > 0 {
            problems.push(format!("{} publishes failed", p.failed));
        }
    }
    if o.scenario == Scenario::Churn && !o.format.resumes() && delivery.lost > 0 {
        problems.push(format!(
            "{} does not replay after a reconnect: loss during reconnects is expected",
            o.format.as_str()
        ));
    }
    if delivery.lost > 0 && delivery.blind_reconnects > 0 {
        problems.push(format!(
            "{} reconnects had no event id to resume from (the stream had sent no id before its first event)",
            delivery.blind_reconnects
        ));
    }
    let procs_at_start = f
        .base
        .map(|b| b.procs)
        .into_iter()
        .chain(f.publish_start_sample.map(|s| s.procs))
        .max();
    let procs_lowest = f
        .timeline
        .iter()
        .map(|s| s.procs)
        .chain(end.map(|s| s.procs))
        .min();
    if let (Some(a), Some(b)) = (procs_at_start, procs_lowest) {
        if b < a {
            problems.push(format!(
                "server processes exited during the run ({a} -> {b}): its CPU figures are void"
            ));
        }
    }
    if delivery.dropped > 0 {
        problems.push(format!("{} streams ended by the server", delivery.dropped));
    }
    let proto = if o.http2 { "h2" } else { "h1" };
    let tls = r.sub_url.starts_with("https://");
    Ok(RunReport {
        version: report::VERSION,
        label: o.label.clone().unwrap_or(o.format.as_str().into()),
        case: o.case.clone().unwrap_or(o.scenario.as_str().into()),
        scenario: o.scenario.as_str().into(),
        format: o.format.as_str().into(),
        proto: proto.into(),
        tls,
        sub_url: r.sub_url.clone(),
        pub_url: r.pub_url.clone(),
        command: o.command.clone(),
        started_unix: f.started_unix,
        seconds: f.started.elapsed().as_secs_f64(),
        params: Params {
            subscribers: r.subscribers,
            channels: r.channels,
            rate: r.rate,
            events: r.events,
            payload_bytes: r.payload,
            slow_percent: r.slow_percent,
            churn_percent: r.churn_percent,
            workers: r.workers,
            sources: o.sources.len(),
            connect_concurrency: o.connect_concurrency,
            lanes: r.lanes,
            window: r.window,
        },
        connect: f.connect,
        publish: f.publish,
        delivery,
        latency_scheduled: lat_scheduled.summary(),
        latency_sent: lat_sent.summary(),
        server,
        loadgen,
        machine: Some(machine_stats(&f.window_start, &window_end)),
        problems,
        errors,
        aborted: None,
    })
}
