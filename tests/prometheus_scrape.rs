//! A real Prometheus scrapes a gateway under a little traffic (subscribers, publishes,
//! replays, a resync, stream opens and closes, an auth failure, a refusal), and every
//! query of the Grafana dashboard, run through Prometheus's HTTP API the way Grafana
//! would (`$__rate_interval` as `30s`, `$instance` as the scraped target), answers
//! `success` with at least one sample whose value is a number. The dashboard's
//! `label_values(…)` variable finds the target too.
//!
//! Needs the `prometheus` binary (Debian: `apt-get install prometheus`; `.ci/run` installs
//! it). Without it the test says so loudly and passes, unless `CI` is set: then it fails.
//! Prometheus runs as a child on a free loopback port with its own tempdir, killed when
//! the test ends; the whole test takes about ten seconds.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;
use tokio::task::JoinSet;

/// How long Prometheus may take to start and report the target up.
const STARTUP_BUDGET: Duration = Duration::from_secs(30);
/// How long the queries may take to all return data once the target is up.
const QUERY_BUDGET: Duration = Duration::from_secs(30);
/// What `$__rate_interval` and friends become (Grafana's value with a 1 s scrape
/// interval is 4 × 1 s at least; 30 s is a typical value and covers every sample here).
const INTERVAL: &str = "30s";

/// Why a query answer is not "data" (None when it is): status success, a vector with at
/// least one sample or a scalar, and at least one value that is a finite number.
fn no_data(answer: &Value) -> Option<String> {
    if answer["status"] != "success" {
        return Some(format!("not a success: {answer}"));
    }
    let data = &answer["data"];
    let values: Vec<&Value> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["value"][1])
            .collect(),
        Some("scalar") => vec![&data["result"][1]],
        other => return Some(format!("result type {other:?}: {answer}")),
    };
    if values.is_empty() {
        return Some("an empty result".into());
    }
    let finite = values.iter().any(|v| {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    });
    if !finite {
        return Some(format!("no finite value: {}", data["result"]));
    }
    None
}

/// Background traffic until aborted: two long-lived subscribers reading a channel that
/// gets an event every 50 ms; every few rounds a short-lived resuming subscriber (replay,
/// an open and a close), a resync, an unauthenticated publish and an oversized event.
fn start_traffic(gw: Arc<TestGateway>, tasks: &mut JoinSet<()>) {
    for _ in 0..2 {
        let gw = gw.clone();
        tasks.spawn(async move {
            let mut sub = gw.subscribe("/events/dash").await;
            loop {
                sub.next_event().await;
            }
        });
    }
    tasks.spawn(async move {
        let mut round = 0u64;
        let big = "x".repeat(65 * 1024 + 1);
        loop {
            round += 1;
            let id = gw.publish_text("dash", &format!("event {round}")).await;
            if round % 5 == 0 {
                let from = id_at(&id, seq(&id).saturating_sub(3).max(1));
                let mut sub = gw
                    .subscribe_with("/events/dash", &[("last-event-id", &from)])
                    .await;
                sub.next_event().await;
            }
            if round % 10 == 1 {
                let mut sub = gw
                    .subscribe_with("/events/dash", &[("last-event-id", "not-an-id")])
                    .await;
                assert!(sub.block().await.is_resync());
                let reply = gw
                    .request(
                        Method::POST,
                        "/publish",
                        &[],
                        r#"{"channel":"dash","data":"x"}"#,
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
                let reply = gw
                    .publish_bytes(json!({"channel": "dash", "data": big}).to_string())
                    .await;
                assert_eq!(
                    reply.status,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{}",
                    reply.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_returns_data_through_a_real_prometheus() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let started = Instant::now();
    let gw = Arc::new(start().await);
    let target = gw.plain_addr;
    let mut traffic = JoinSet::new();
    start_traffic(gw.clone(), &mut traffic);

    // Start Prometheus; a port taken between picking and binding gets one more try.
    let mut prom = None;
    for attempt in 0..3 {
        let mut p = Prometheus::start(binary, target);
        let deadline = Instant::now() + STARTUP_BUDGET;
        let mut ready = false;
        while Instant::now() < deadline {
            if p.has_exited() {
                break;
            }
            if let Some(r) = p.request(Method::GET, "/-/ready", None).await {
                if r.status == StatusCode::OK {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if ready {
            prom = Some(p);
            break;
        }
        let exited = p.has_exited();
        if exited && p.log().contains("address already in use") {
            eprintln!("prometheus: port taken (attempt {attempt}), trying another");
            continue;
        }
        p.assert_running();
        panic!(
            "prometheus not ready after {STARTUP_BUDGET:?}:\n{}",
            p.log()
        );
    }
    let mut prom = prom.expect("prometheus started (the port kept being taken)");

    // The target is scraped and up.
    let instance = target.to_string();
    let deadline = Instant::now() + STARTUP_BUDGET;
    loop {
        prom.assert_running();
        let targets = prom.get_json("/api/v1/targets").await;
        let up = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["labels"]["instance"] == instance.as_str() && t["health"] == "up");
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway target is not up after {STARTUP_BUDGET:?}: {targets}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let target_up = started.elapsed();

    // Grafana's `label_values(metric, label)` variables find the target.
    let d = dashboard();
    for (name, metric, label) in label_values_variables(&d) {
        let path = format!(
            "/api/v1/label/{label}/values?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("match[]", &metric)
                .finish()
        );
        let json = prom.get_json(&path).await;
        let values = json["data"].as_array().cloned().unwrap_or_default();
        assert!(
            values
                .iter()
                .any(|v| v == instance.as_str() || label != "instance"),
            "variable {name} ({path}) does not offer {instance}: {json}"
        );
        assert!(
            !values.is_empty(),
            "variable {name} ({path}) is empty: {json}"
        );
    }

    // Every query returns data; rates need a few scrapes of traffic, so retry until all
    // pass or the budget is spent, and report the last failures.
    let queries = queries(&d);
    assert!(queries.len() > 30, "{} queries", queries.len());
    let exprs: Vec<(Query, String)> = queries
        .into_iter()
        .map(|q| {
            let e = substitute(&q.expr, INTERVAL, &instance);
            (q, e)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = Instant::now() + QUERY_BUDGET;
    let mut rounds = 0;
    loop {
        rounds += 1;
        prom.assert_running();
        if let Some(done) = traffic.try_join_next() {
            panic!("the traffic task ended: {done:?}");
        }
        let mut failures = Vec::new();
        for (q, expr) in &exprs {
            let answer = prom.query(expr).await;
            if let Some(why) = no_data(&answer) {
                failures.push(format!("{q}\n    as {expr}\n    {why}"));
            }
        }
        if failures.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} dashboard queries return no data through Prometheus after {QUERY_BUDGET:?}:\n{}\n\
             gateway /metrics:\n{}\nprometheus log:\n{}",
            failures.len(),
            exprs.len(),
            failures.join("\n"),
            gw.metrics().await,
            prom.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    traffic.shutdown().await;
    eprintln!(
        "{} dashboard queries returned data through Prometheus (target up after {:.1?}, \
         {rounds} query round(s), {:.1?} in all)",
        exprs.len(),
        target_up,
        started.elapsed()
    );
}
