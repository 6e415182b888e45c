//! The load generator for ssegate and its peers (nchan, Pushpin, the Node baseline):
//! N subscribers over C channels on loopback, M events published at a fixed rate, every
//! event checked (loss, duplicates, order) and timed (HDR histograms), the server's CPU
//! and memory sampled from `/proc`. This file is the command line; see README.md.
//!
//! `loadtest [options]` runs one scenario as the coordinator: it publishes, samples and
//! reports, while worker processes (`loadtest __worker`, spawned by it) hold the
//! subscribers. `loadtest summarize` turns a directory of `--json` results into
//! docs/PERFORMANCE.md.

#![forbid(unsafe_code)]

mod http1;
mod latency;
mod procstat;
mod proto;
mod publisher;
mod report;
mod scenario;
mod sse;
mod subscriber;
mod summary;
mod target;
mod tls;
mod tracker;
mod worker;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use scenario::{Options, Scenario};
use target::Format;

const USAGE: &str = "usage: loadtest --scenario NAME [options]
       loadtest summarize --dir DIR --out FILE [--mode quick|full] [--title TEXT]

Scenarios:
  fanout     one channel, many subscribers (default 1000 subscribers, 10 events/s)
  channels   many channels, few subscribers each (default 2000 on 20 channels, 200 events/s)
  idle       connect N, wait until the server's RSS is stable, report RSS per connection
  churn      subscribers hang up and reconnect with Last-Event-ID while events flow
  slow       a share of subscribers stop reading; the readers must still get everything

Target:
  --format ssegate|nchan|pushpin|node   publish format and default URLs (default ssegate)
  --sub-url URL        subscribe URL template, {channel} is replaced (https:// for TLS)
  --pub-url URL        publish URL template
  --key KEY            publish key (ssegate; default $SSEGATE_PUBLISH_KEY or dev-publish-key)
  --http2              subscribe over HTTP/2 (h2c prior knowledge, or ALPN h2 on https)
  --server-pid PID     server process(es) to measure, with their children (repeat or comma list)

Load:
  --subscribers N      subscribers in all
  --channels C         channels (subscriber i reads channel i % C)
  --rate R             events per second, all channels together
  --duration S         seconds of publishing (events = rate x duration)
  --events M           events in all (instead of --duration)
  --payload BYTES      event payload size (default 64; slow: 4096)
  --slow-percent P     percent of subscribers that stop reading (slow: 20)
  --churn-percent P    percent of subscribers that reconnect (churn: 100)
  --churn-ms MIN-MAX   how long a churner stays connected (default 1000-4000)
  --connect-concurrency K  connects in flight (default 64; Pushpin wants 32)
  --sources K          source addresses 127.0.0.2 .. 127.0.0.(K+1) (default 4)
  --per-worker N       subscribers per worker process (default 15000)
  --workers W          worker processes (default: subscribers / per-worker, rounded up)
  --lanes L            publish connections (default min(channels, 8))
  --window W           pipelined publish requests per connection (default 8; Pushpin: 1, one connection per request)

Timing (every phase is bounded):
  --settle S           pause between connected and the first event (default 1)
  --idle-wait S        longest wait for a stable RSS (idle; default 20)
  --drain S            longest wait for stragglers after the last event (default 10)
  --connect-deadline S longest connect ramp (default 30 + N/250)
  --deadline S         hard limit for the whole run (default: sum of the above + 60)

Output:
  --label NAME         target name in reports (default: the format)
  --case NAME          run name, groups results in the summary (default: the scenario)
  --json PATH          write the machine-readable result
  --quiet              no progress on stderr";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__worker") => return ExitCode::from(worker::main() as u8),
        Some("summarize") => {
            return match summarize(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => usage_error(&e),
            }
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    match scenario::main(options) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("loadtest: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

fn summarize(args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut out = None;
    let mut mode = "full".to_string();
    let mut title = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--mode" => mode = value()?,
            "--title" => title = Some(value()?),
            other => return Err(format!("summarize: unknown argument '{other}'")),
        }
    }
    let dir = dir.ok_or("summarize needs --dir")?;
    let out = out.ok_or("summarize needs --out")?;
    summary::write(&dir, &out, &mode, title.as_deref())
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{flag}: '{v}' is not a valid number"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut scenario = None;
    let mut format = Format::Ssegate;
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        if flag == "--http2" {
            o.http2 = true;
            continue;
        }
        if flag == "--quiet" {
            o.quiet = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag {
            "--scenario" => scenario = Some(Scenario::parse(&v)?),
            "--format" => format = Format::parse(&v)?,
            "--sub-url" => o.sub_url = Some(v),
            "--pub-url" => o.pub_url = Some(v),
            "--key" => o.key = Some(v),
            "--server-pid" => {
                for p in v.split([',', ' ']).filter(|p| !p.is_empty()) {
                    o.server_pids.push(number(flag, p)?);
                }
            }
            "--subscribers" => o.subscribers = Some(number(flag, &v)?),
            "--channels" => o.channels = Some(number(flag, &v)?),
            "--rate" => o.rate = Some(number(flag, &v)?),
            "--duration" => o.duration = Some(number(flag, &v)?),
            "--events" => o.events = Some(number(flag, &v)?),
            "--payload" => o.payload = Some(number(flag, &v)?),
            "--slow-percent" => o.slow_percent = Some(number(flag, &v)?),
            "--churn-percent" => o.churn_percent = Some(number(flag, &v)?),
            "--churn-ms" => {
                let (a, b) = v.split_once('-').ok_or("--churn-ms wants MIN-MAX")?;
                o.churn_ms = (number(flag, a)?, number(flag, b)?);
            }
            "--connect-concurrency" => o.connect_concurrency = number(flag, &v)?,
            "--sources" => {
                let k: u8 = number(flag, &v)?;
                if k == 0 || k > 200 {
                    return Err("--sources must be 1..=200".into());
                }
                o.sources = (0..k).map(|i| Ipv4Addr::new(127, 0, 0, 2 + i)).collect();
            }
            "--per-worker" => o.per_worker = number(flag, &v)?,
            "--workers" => o.workers = Some(number(flag, &v)?),
            "--lanes" => o.lanes = Some(number(flag, &v)?),
            "--window" => o.window = Some(number(flag, &v)?),
            "--settle" => o.settle = number(flag, &v)?,
            "--idle-wait" => o.idle_wait = number(flag, &v)?,
            "--drain" => o.drain = number(flag, &v)?,
            "--connect-deadline" => o.connect_deadline = Some(number(flag, &v)?),
            "--deadline" => o.deadline = Some(number(flag, &v)?),
            "--label" => o.label = Some(v),
            "--case" => o.case = Some(v),
            "--json" => o.json = Some(PathBuf::from(v)),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    o.scenario = scenario.ok_or("--scenario is required")?;
    o.format = format;
    o.command = std::iter::once("loadtest".to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    o.resolve()?;
    Ok(o)
}
