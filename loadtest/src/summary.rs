//! `loadtest summarize`: turns a directory of `--json` results (one per target and case,
//! as `compare.sh` writes them) into docs/PERFORMANCE.md — the goals, the machine, one
//! table per case with every target side by side, the ssegate/peer ratios, and the
//! commands.
//!
//! `machine.txt`, `notes.md` and `commands.txt` in the directory, when present, are
//! copied in (the commands with paths relative to the repository).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::report::RunReport;

/// Targets in the order the tables list them; others follow alphabetically.
const ORDER: [&str; 6] = [
    "ssegate",
    "nchan",
    "nchan-2w",
    "pushpin-tuned",
    "pushpin",
    "node",
];

/// One goal of the comparison: what it measures, the target, and why it matters.
struct Goal {
    number: &'static str,
    name: &'static str,
    /// The cases that measure it, in words (the full run's sizes).
    cases: &'static str,
    measures: &'static str,
    target: &'static str,
    why: &'static str,
}

/// The goals, in the order the report defines them.
const GOALS: [Goal; 6] = [
    Goal {
        number: "1",
        name: "fan-out",
        cases: "`fanout-base`: 5,000 subscribers on one channel, 10 events/s",
        measures: "events lost, server CPU per delivery, p99 latency from the scheduled send",
        target: "nothing lost; CPU per delivery at most 0.8× nchan's; p99 at most half of nchan's",
        why: "one busy channel watched by thousands (a chat room, a notification bell) is \
              the load ssegate exists for, and to be worth replacing nchan it has to be \
              clearly cheaper and faster on it, not level",
    },
    Goal {
        number: "2",
        name: "higher rates",
        cases: "`fanout-mid` and `fanout-high`: the same 5,000 subscribers at 50 and 100 \
                events/s; `fanout-ceiling` (ssegate only) at 200",
        measures: "the share of the offered publish rate the server accepts, p99 latency \
                   from the scheduled send",
        target: "the whole offered rate accepted, p99 under 100 ms",
        why: "bursts happen; a server that cannot take the publishes as they come falls \
              seconds behind, and its publishers wait",
    },
    Goal {
        number: "3",
        name: "many channels",
        cases: "`channels`: 2,000 subscribers over 20 channels, 200 events/s in all",
        measures: "events lost, p99 latency from the scheduled send",
        target: "nothing lost; p99 no higher than nchan's",
        why: "most deployments have many small channels (one per room or per user), where \
              the cost of each channel shows rather than the write path",
    },
    Goal {
        number: "4",
        name: "idle connections",
        cases: "`idle-h1` and `idle-h2tls`: 10,000 subscribers that receive nothing, over \
                plain HTTP/1.1 and over TLS + HTTP/2",
        measures: "server memory (RSS) per idle connection",
        target: "at most 4 KiB per connection on plain HTTP/1.1, at most 12 KiB over TLS with HTTP/2",
        why: "most open tabs are idle most of the time, so memory per idle connection \
              decides how many connections a node can hold",
    },
    Goal {
        number: "5",
        name: "cost curve",
        cases: "`fanout-small`, `fanout-base` and `fanout-large`: 1,000, 5,000 and 18,000 \
                subscribers on one channel at 10 events/s",
        measures: "server CPU per delivery and RSS per connection across the three sizes",
        target: "CPU per delivery and memory per connection flat from 1,000 to 18,000 subscribers, publish latency independent of the subscriber count",
        why: "a node's cost should follow from its connection count, so that capacity can \
              be planned",
    },
    Goal {
        number: "6",
        name: "churn and slow readers",
        cases: "`churn`: 1,000 subscribers that each hang up and reconnect with \
                `Last-Event-ID` every 1–4 s while 20 events/s flow; `slow`: 20% of 500 \
                subscribers stop reading, 8 KiB events at 50/s",
        measures: "events lost, duplicated or out of order; the readers' loss and latency \
                   beside stopped readers, and the server's memory",
        target: "across reconnects nothing lost, duplicated or reordered; stopped readers \
                 cost the others no events and do not grow the server's memory with the \
                 events they miss",
        why: "phones drop and reconnect, and a stalled client must not hurt the rest: a \
              subscriber gets every event once, in order, or is told (`ssegate.resync`)",
    },
];

fn goal(number: &str) -> Option<&'static Goal> {
    GOALS.iter().find(|g| g.number == number)
}

/// The case names `compare.sh` uses, in report order, with the goal each serves ("" for
/// none) and its title (the sizes come from the results: `--quick` runs the same cases
/// smaller).
const CASES: [(&str, &str, &str); 12] = [
    ("fanout-base", "1", "Goal 1: fan-out"),
    ("fanout-mid", "2", "Goal 2: fan-out at a higher rate"),
    ("fanout-high", "2", "Goal 2: fan-out at the highest rate"),
    (
        "fanout-ceiling",
        "2",
        "Goal 2: where the ceiling is (ssegate only: the peers fall behind at the rates above)",
    ),
    ("channels", "3", "Goal 3: many channels"),
    ("idle-h1", "4", "Goal 4: idle connections, plain HTTP/1.1"),
    (
        "idle-h2tls",
        "4",
        "Goal 4: idle connections, TLS + HTTP/2 (ssegate only: the peers' start scripts serve no TLS)",
    ),
    ("fanout-small", "5", "Goal 5: cost curve, small end"),
    ("fanout-large", "5", "Goal 5: cost curve, large end"),
    (
        "churn",
        "6",
        "Goal 6: churn (subscribers reconnect with Last-Event-ID while events flow)",
    ),
    (
        "slow",
        "6",
        "Goal 6: slow readers (a share of subscribers stops reading)",
    ),
    (
        "fanout-base-h2tls",
        "",
        "Extra: goal 1 over TLS + HTTP/2 (ssegate only; no target)",
    ),
];

/// What a case ran, from its first result.
fn describe(r: &RunReport) -> String {
    let p = &r.params;
    let mut s = format!(
        "{} subscribers, {} channel{}",
        p.subscribers,
        p.channels,
        if p.channels == 1 { "" } else { "s" }
    );
    if r.scenario != "idle" {
        let _ = write!(
            s,
            ", {} events/s, {} events, {} B payload",
            p.rate, p.events, p.payload_bytes
        );
    }
    if p.slow_percent > 0 {
        let _ = write!(s, ", {}% stop reading", p.slow_percent);
    }
    if p.churn_percent > 0 {
        let _ = write!(s, ", {}% reconnect", p.churn_percent);
    }
    let _ = write!(s, ", {}{}", r.proto, if r.tls { " + TLS" } else { "" });
    s
}

fn rank(label: &str) -> (usize, String) {
    let i = ORDER
        .iter()
        .position(|o| *o == label)
        .unwrap_or(ORDER.len());
    (i, label.to_string())
}

fn load(dir: &Path) -> Result<Vec<RunReport>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        match serde_json::from_str::<RunReport>(&text) {
            Ok(r) => out.push(r),
            Err(e) => eprintln!("summarize: skipping {}: {e}", p.display()),
        }
    }
    Ok(out)
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn f2(v: f64) -> String {
    if v < 0.0 {
        "n/a".into()
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

/// One row's numbers, for the tables and the ratios.
struct Row<'a> {
    r: &'a RunReport,
}

impl Row<'_> {
    fn aborted(&self) -> bool {
        self.r.aborted.is_some()
    }
    fn p99(&self) -> f64 {
        self.r.latency_scheduled.p99_ms
    }
    fn cpu_us(&self) -> f64 {
        self.r
            .server
            .as_ref()
            .map(|s| s.cpu_per_delivery_us)
            .unwrap_or(0.0)
    }
    fn rss_conn(&self) -> f64 {
        self.r
            .server
            .as_ref()
            .map(|s| s.rss_per_conn_kib)
            .unwrap_or(0.0)
    }
}

/// Share of a core taken by other processes above which a run is flagged as noisy.
const NOISY: f64 = 0.10;

/// The "other processes" cell.
fn other(r: &RunReport) -> String {
    match &r.machine {
        Some(m) if m.other_share > NOISY => format!("**{:.0}%**", m.other_share * 100.0),
        Some(m) => format!("{:.0}%", m.other_share * 100.0),
        None => "–".into(),
    }
}

fn case_table(md: &mut String, runs: &[&RunReport]) {
    let publishing = runs.iter().any(|r| r.publish.is_some());
    if publishing {
        md.push_str("| target | connected | sent / offered (rate) | accepted rate | lost | dups | out-of-order | resyncs | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 from send ms | server CPU s | CPU µs / delivery | server RSS / conn KiB | server peak RSS MiB | loadgen CPU s | other processes, % of a core |\n");
        md.push_str(
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
    } else {
        md.push_str("| target | connected | server RSS before MiB | server RSS connected MiB | server RSS / conn KiB | server CPU to connect s | loadgen RSS / conn KiB | other processes, % of a core |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
    }
    for r in runs {
        if let Some(why) = &r.aborted {
            let _ = writeln!(md, "| {} | aborted: {} |", r.label, why.replace('|', "/"));
            continue;
        }
        let s = r.server.clone().unwrap_or_default();
        let connected = format!("{} / {}", r.connect.connected, r.params.subscribers);
        if publishing {
            let d = &r.delivery;
            let (sent, accepted) = match &r.publish {
                Some(p) => (
                    format!(
                        "{} / {} ({:.1}/s of {:.0}/s)",
                        p.sent, p.planned, p.achieved_send_rate, p.offered_rate
                    ),
                    format!("{:.1}/s", p.achieved_accept_rate),
                ),
                None => ("–".into(), "–".into()),
            };
            let l = &r.latency_scheduled;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                connected,
                sent,
                accepted,
                d.lost,
                d.duplicates,
                d.out_of_order,
                d.resyncs,
                f1(l.p50_ms),
                f1(l.p90_ms),
                f1(l.p99_ms),
                f1(l.p999_ms),
                f1(l.max_ms),
                f1(r.latency_sent.p99_ms),
                f2(s.publish_cpu_s),
                f2(s.cpu_per_delivery_us),
                f1(s.rss_per_conn_kib),
                f1(s.peak_rss_kib as f64 / 1024.0),
                f2(r.loadgen.cpu_s),
                other(r),
            );
        } else {
            let mem = s.idle.unwrap_or(s.connected);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                connected,
                f1(s.base.rss_kib as f64 / 1024.0),
                f1(mem.rss_kib as f64 / 1024.0),
                f2(s.rss_per_conn_kib),
                f2(s.connect_cpu_s),
                f2(r.loadgen.rss_per_conn_kib),
                other(r),
            );
        }
    }
    // Extra lines for what the tables cannot show.
    for r in runs {
        let d = &r.delivery;
        let noisy = r.machine.as_ref().filter(|m| m.other_share > NOISY);
        if d.slow > 0
            || d.reconnects > 0
            || d.dropped > 0
            || !r.problems.is_empty()
            || noisy.is_some()
        {
            let mut notes = Vec::new();
            if let Some(m) = noisy {
                notes.push(format!(
                    "**noisy**: other processes on the machine took {:.0}% of a core during the measurement ({:.1} s of CPU in {:.1} s)",
                    m.other_share * 100.0,
                    m.other_s,
                    m.window_s
                ));
            }
            if d.slow > 0 {
                notes.push(format!(
                    "{} readers and {} stopped readers ({} events reached them before they stopped)",
                    d.readers, d.slow, d.slow_received
                ));
            }
            if d.reconnects > 0 {
                notes.push(format!(
                    "{} reconnects ({} failed; {} had no event id to resume from, because the stream had sent none yet)",
                    d.reconnects, d.reconnect_failed, d.blind_reconnects
                ));
            }
            if d.dropped > 0 {
                notes.push(format!("{} streams ended by the server", d.dropped));
            }
            if !r.problems.is_empty() {
                notes.push(format!("problems: {}", r.problems.join("; ")));
            }
            let _ = writeln!(md, "\n- {}: {}", r.label, notes.join("; "));
        }
    }
}

fn ratios(md: &mut String, runs: &[&RunReport]) {
    let Some(ours) = runs
        .iter()
        .find(|r| r.label == "ssegate" && r.aborted.is_none())
    else {
        return;
    };
    let ours = Row { r: ours };
    let peers: Vec<Row> = runs
        .iter()
        .filter(|r| r.label != "ssegate")
        .map(|r| Row { r })
        .collect();
    if peers.is_empty() {
        return;
    }
    md.push_str("\nssegate / peer (below 1: ssegate is cheaper or faster):\n\n");
    let idle = ours.r.publish.is_none();
    if idle {
        md.push_str("| peer | RSS per connection |\n|---|---|\n");
    } else {
        md.push_str(
            "| peer | CPU per delivery | p99 latency | RSS per connection |\n|---|---|---|---|\n",
        );
    }
    for p in peers {
        if p.aborted() {
            let _ = writeln!(md, "| {} | (peer run aborted) | | |", p.r.label);
            continue;
        }
        if idle {
            let _ = writeln!(
                md,
                "| {} | {} |",
                p.r.label,
                ratio(ours.rss_conn(), p.rss_conn())
            );
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            p.r.label,
            ratio(ours.cpu_us(), p.cpu_us()),
            ratio(ours.p99(), p.p99()),
            ratio(ours.rss_conn(), p.rss_conn()),
        );
    }
}

type ByCase<'a> = BTreeMap<String, Vec<&'a RunReport>>;

fn find<'a>(by_case: &ByCase<'a>, case: &str, label: &str) -> Option<&'a RunReport> {
    by_case
        .get(case)?
        .iter()
        .find(|r| r.label == label && r.aborted.is_none())
        .copied()
}

/// How to read one measure from a result.
type Measure<'a> = &'a dyn Fn(&RunReport) -> Option<f64>;

/// How to show it.
type Show<'a> = &'a dyn Fn(f64) -> String;

/// One line of the goals table: a measure of one case.
struct GoalLine<'a> {
    goal: &'a str,
    case: &'a str,
    measure: &'a str,
    value: Measure<'a>,
    show: Show<'a>,
}

/// Writes a goals-table line with the measure for every target.
fn goal_line(md: &mut String, by_case: &ByCase<'_>, labels: &[String], line: &GoalLine<'_>) {
    let Some(list) = by_case.get(line.case) else {
        return;
    };
    let mut cells = Vec::new();
    for l in labels {
        let cell = match find(by_case, line.case, l).and_then(line.value) {
            Some(v) => (line.show)(v),
            None if list.iter().any(|r| &r.label == l) => "aborted".into(),
            None => "–".into(),
        };
        cells.push(cell);
    }
    let ours = find(by_case, line.case, "ssegate").and_then(line.value);
    let nchan = find(by_case, line.case, "nchan").and_then(line.value);
    let r = match (ours, nchan) {
        (Some(a), Some(b)) => ratio(a, b),
        _ => "–".into(),
    };
    let goal = match goal(line.goal) {
        Some(g) => format!("{} {}", g.number, g.name),
        None => line.goal.to_string(),
    };
    let _ = writeln!(
        md,
        "| {goal} | {} | {} | {} | {r} |",
        describe_short(list[0]),
        line.measure,
        cells.join(" | ")
    );
}

fn describe_short(r: &RunReport) -> String {
    let p = &r.params;
    if r.scenario == "idle" {
        format!(
            "{} idle, {}{}",
            p.subscribers,
            r.proto,
            if r.tls { "+TLS" } else { "" }
        )
    } else {
        format!("{} subs / {} ch @ {}/s", p.subscribers, p.channels, p.rate)
    }
}

fn goals(md: &mut String, by_case: &ByCase<'_>) {
    let mut labels: Vec<String> = by_case
        .values()
        .flatten()
        .map(|r| r.label.clone())
        .collect();
    labels.sort_by_key(|l| rank(l));
    labels.dedup();
    md.push_str("## Goals at a glance\n\n");
    md.push_str(
        "Each goal's headline measures, every server side by side; the last column is \
         ssegate's figure over nchan's (below 1: ssegate is cheaper or faster).\n\n",
    );
    let _ = writeln!(
        md,
        "| goal | case | measure | {} | ssegate / nchan |",
        labels.join(" | ")
    );
    let _ = writeln!(md, "|---|---|---|{}---|", "---|".repeat(labels.len()));
    let lost = |r: &RunReport| Some(r.delivery.lost as f64);
    let dups = |r: &RunReport| Some((r.delivery.duplicates + r.delivery.out_of_order) as f64);
    let p99 = |r: &RunReport| (r.latency_scheduled.count > 0).then_some(r.latency_scheduled.p99_ms);
    let cpu = |r: &RunReport| {
        r.server
            .as_ref()
            .map(|s| s.cpu_per_delivery_us)
            .filter(|v| *v >= 0.0)
    };
    let mem = |r: &RunReport| r.server.as_ref().map(|s| s.rss_per_conn_kib);
    let rate = |r: &RunReport| {
        r.publish
            .as_ref()
            .map(|p| p.achieved_accept_rate / p.offered_rate * 100.0)
    };
    let int = |v: f64| format!("{v:.0}");
    let ms = |v: f64| format!("{v:.1} ms");
    let us = |v: f64| format!("{v:.2} µs");
    let kib = |v: f64| format!("{v:.1} KiB");
    let pct = |v: f64| format!("{v:.0}%");
    let table: [(&str, &str, &str, Measure<'_>, Show<'_>); 21] = [
        ("1", "fanout-base", "events lost", &lost, &int),
        ("1", "fanout-base", "server CPU per delivery", &cpu, &us),
        (
            "1",
            "fanout-base",
            "p99 latency from scheduled send",
            &p99,
            &ms,
        ),
        ("2", "fanout-mid", "accepted rate / offered", &rate, &pct),
        (
            "2",
            "fanout-mid",
            "p99 latency from scheduled send",
            &p99,
            &ms,
        ),
        ("2", "fanout-high", "accepted rate / offered", &rate, &pct),
        (
            "2",
            "fanout-high",
            "p99 latency from scheduled send",
            &p99,
            &ms,
        ),
        (
            "2",
            "fanout-ceiling",
            "accepted rate / offered",
            &rate,
            &pct,
        ),
        (
            "2",
            "fanout-ceiling",
            "p99 latency from scheduled send",
            &p99,
            &ms,
        ),
        ("3", "channels", "events lost", &lost, &int),
        (
            "3",
            "channels",
            "p99 latency from scheduled send",
            &p99,
            &ms,
        ),
        ("4", "idle-h1", "server RSS per idle connection", &mem, &kib),
        (
            "4",
            "idle-h2tls",
            "server RSS per idle connection",
            &mem,
            &kib,
        ),
        ("5", "fanout-small", "server CPU per delivery", &cpu, &us),
        ("5", "fanout-small", "server RSS per connection", &mem, &kib),
        ("5", "fanout-base", "server RSS per connection", &mem, &kib),
        ("5", "fanout-large", "server CPU per delivery", &cpu, &us),
        ("5", "fanout-large", "server RSS per connection", &mem, &kib),
        ("6", "churn", "events lost", &lost, &int),
        ("6", "churn", "duplicates + out of order", &dups, &int),
        ("6", "slow", "events lost by the readers", &lost, &int),
    ];
    for (goal, case, measure, value, show) in table {
        let line = GoalLine {
            goal,
            case,
            measure,
            value,
            show,
        };
        goal_line(md, by_case, &labels, &line);
    }
    md.push('\n');
}

/// The goals whose cases are in the results: what each measures, its target, and why.
fn goal_definitions(md: &mut String, by_case: &ByCase<'_>) {
    let present: Vec<&Goal> = GOALS
        .iter()
        .filter(|g| by_case.keys().any(|c| g.cases.contains(&format!("`{c}`"))))
        .collect();
    if present.is_empty() {
        return;
    }
    md.push_str(
        "## Goals\n\nWhat ssegate is meant to achieve against the peers; the tables below \
         carry each goal's number.\n\n",
    );
    for g in present {
        let _ = writeln!(
            md,
            "- **Goal {}, {}** ({}). Measures {}. *Target:* {}. *Why:* {}.",
            g.number, g.name, g.cases, g.measures, g.target, g.why
        );
    }
    md.push('\n');
}

/// The commands as `compare.sh` recorded them, with any directory of the machine that
/// ran them replaced: the results directory by `<results>`, the build's and the peers'
/// directories by their places in the repository (`compare.sh` records them this way
/// already; older records held absolute paths).
fn relative_commands(text: &str, dir: &Path) -> String {
    let mut dirs = vec![dir.display().to_string()];
    if let Ok(c) = dir.canonicalize() {
        dirs.push(c.display().to_string());
    }
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for d in &dirs {
            let d = d.trim_end_matches('/');
            if !d.is_empty() && d != "." {
                line = line.replace(d, "<results>");
            }
        }
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                if !w.starts_with('/') {
                    return w.to_string();
                }
                if let Some(i) = w.find("/target/release/") {
                    return w[i + 1..].to_string();
                }
                if let Some(i) = w.rfind("/peers/") {
                    return format!("loadtest{}", &w[i..]);
                }
                w.to_string()
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// Writes the report for the results in `dir` to `out`.
pub fn write(dir: &Path, out: &Path, mode: &str, title: Option<&str>) -> Result<(), String> {
    let runs = load(dir)?;
    if runs.is_empty() {
        return Err(format!("no results in {}", dir.display()));
    }
    let mut by_case: ByCase<'_> = BTreeMap::new();
    for r in &runs {
        by_case.entry(r.case.clone()).or_default().push(r);
    }
    for list in by_case.values_mut() {
        list.sort_by_key(|r| rank(&r.label));
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# {}\n",
        title.unwrap_or("Performance: ssegate side by side with nchan, Pushpin and Node")
    );
    let _ = writeln!(
        md,
        "ssegate and three servers a team would run instead — nginx + nchan, Pushpin, and a \
         hand-written Node server (`loadtest/peers/`) — under the same scenarios, one \
         server at a time on loopback, with the load generator (`loadtest/`) on the same \
         machine; all from one run of `loadtest/compare.sh{}`. Only ratios between servers \
         of the same run mean something: absolute numbers move with the machine.\n",
        if mode == "quick" { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "How to read it:\n\n\
         - Latency is counted from each event's *scheduled* send time, fixed before the run \
         (no coordinated omission: a server that falls behind, or slows its publisher \
         down, shows up here); p99 from the actual send is given too. The subscribers and \
         the server share the machine's two cores, so latency includes the load \
         generator's own queueing, the same for every server.\n\
         - *Lost* counts events a reading subscriber never got; *dups* and *out-of-order* \
         are counted per subscriber. A publish the server did not confirm is neither \
         expected nor lost. *Sent / offered* below the offered rate means the server's \
         publish endpoint could not take the schedule before its deadline.\n\
         - Server CPU is `utime+stime` of the server's processes and their children from \
         the first event to the end of the drain, divided by the deliveries (data events \
         received). On loopback it includes the kernel's TCP send *and* receive path, which \
         runs in the sender's context. RSS per connection is (RSS with the subscribers \
         connected, or once stable when idle − RSS before) / connections; each case runs \
         on a freshly started server.\n\
         - *Other processes* is the CPU that everything else on the machine (builds, test \
         suites) used during the measurement, in % of one core; above 10% the run is \
         marked noisy and its latency is not comparable.\n\
         - Pushpin runs with `PUSHPIN_TUNED=1` (its delivery rate limiter off, as its start \
         script offers). Its publish port closes the connection after each answer and \
         reorders concurrent publishes under load, so it is published to one request at a \
         time (a slow answer then delays the next send, which the latency from the \
         scheduled time counts); the others get up to 8 pipelined publishes per \
         connection.\n"
    );
    let machine = std::fs::read_to_string(dir.join("machine.txt")).unwrap_or_default();
    if !machine.is_empty() {
        md.push_str("## Machine\n\n```\n");
        md.push_str(machine.trim_end());
        md.push_str("\n```\n\n");
    }
    goal_definitions(&mut md, &by_case);
    goals(&mut md, &by_case);
    md.push_str("## Results\n\n");
    let mut seen = Vec::new();
    for (case, number, heading) in CASES {
        if let Some(list) = by_case.get(case) {
            seen.push(case.to_string());
            let _ = writeln!(md, "### {heading} (`{case}`)\n\n{}.\n", describe(list[0]));
            if let Some(g) = goal(number) {
                let _ = writeln!(md, "Goal {}'s target: {}.\n", g.number, g.target);
            }
            case_table(&mut md, list);
            ratios(&mut md, list);
            md.push('\n');
        }
    }
    for (case, list) in &by_case {
        if seen.contains(case) {
            continue;
        }
        let _ = writeln!(md, "### `{case}`\n\n{}.\n", describe(list[0]));
        case_table(&mut md, list);
        ratios(&mut md, list);
        md.push('\n');
    }
    let notes = std::fs::read_to_string(dir.join("notes.md")).unwrap_or_default();
    if !notes.is_empty() {
        md.push_str(notes.trim_end());
        md.push_str("\n\n");
    }
    let commands = std::fs::read_to_string(dir.join("commands.txt")).unwrap_or_default();
    if !commands.is_empty() {
        md.push_str(
            "## Commands\n\nWhat ran, in order (`<results>` is the directory of the \
             results, paths are relative to the repository):\n\n```sh\n",
        );
        md.push_str(relative_commands(&commands, dir).trim_end());
        md.push_str("\n```\n");
    }
    std::fs::write(out, md).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_names_a_defined_goal() {
        for (case, number, heading) in CASES {
            if number.is_empty() {
                continue;
            }
            let g = goal(number).unwrap_or_else(|| panic!("{case}: goal {number} undefined"));
            assert!(
                heading.starts_with(&format!("Goal {}", g.number)),
                "{heading}"
            );
            assert!(
                g.cases.contains(&format!("`{case}`")),
                "{case} not in goal {number}"
            );
        }
    }

    #[test]
    fn commands_lose_the_machine_paths() {
        let text = "# loadtest/compare.sh --out /tmp/r/full\n\
                    /home/x/ssegate/target/release/ssegate --config /tmp/r/full/ssegate.yaml &\n\
                    NCHAN_WORKERS=2 /srv/ssegate/loadtest/peers/start-nchan.sh\n\
                    /opt/peers/stop.sh 12 13\n\
                    target/release/loadtest --sub-url https://127.0.0.1:8443/events/{channel} --json <results>/a.json\n";
        let got = relative_commands(text, Path::new("/tmp/r/full"));
        assert_eq!(
            got,
            "# loadtest/compare.sh --out <results>\n\
             target/release/ssegate --config <results>/ssegate.yaml &\n\
             NCHAN_WORKERS=2 loadtest/peers/start-nchan.sh\n\
             loadtest/peers/stop.sh 12 13\n\
             target/release/loadtest --sub-url https://127.0.0.1:8443/events/{channel} --json <results>/a.json\n"
        );
    }
}
