//! The Grafana dashboard (`grafana/`) against the gateway's real `/metrics`: the JSON is a
//! well-formed schema-39 dashboard that refers to the provisioned datasource by its fixed
//! uid; every query names series and labels a running gateway exports (histograms as
//! their `_bucket`/`_sum`/`_count` series); every exported metric family is on some
//! panel; and the checker itself catches a renamed metric, a wrong label and a bare
//! histogram name. `tests/prometheus_scrape.rs` runs the same queries through a real
//! Prometheus.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use serde_json::Value;
use support::*;

/// The provisioned datasource: (uid, type).
fn provisioned_datasource() -> (String, String) {
    let path = repo_path("grafana/provisioning/datasources/prometheus.yaml");
    let text = std::fs::read_to_string(&path).expect("the datasource provisioning file");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    assert_eq!(yaml["apiVersion"].as_u64(), Some(1), "{text}");
    let list = yaml["datasources"]
        .as_sequence()
        .expect("a datasources list");
    assert_eq!(list.len(), 1, "one datasource: {text}");
    let ds = &list[0];
    let uid = ds["uid"].as_str().expect("a fixed uid").to_string();
    let kind = ds["type"].as_str().expect("a type").to_string();
    assert_eq!(kind, "prometheus");
    assert!(
        ds["url"].as_str().is_some_and(|u| u.starts_with("http")),
        "{text}"
    );
    assert_eq!(ds["access"].as_str(), Some("proxy"));
    assert_ne!(
        ds["isDefault"].as_bool(),
        Some(true),
        "do not take over the user's default datasource"
    );
    (uid, kind)
}

/// Problems with one `datasource` reference (or none).
fn check_datasource(where_: &str, ds: &Value, uid: &str, problems: &mut Vec<String>) {
    if ds["type"] != "prometheus" || ds["uid"] != uid {
        problems.push(format!(
            "{where_}: datasource {ds} is not {{\"type\": \"prometheus\", \"uid\": \"{uid}\"}}"
        ));
    }
}

#[test]
fn dashboard_and_provisioning_are_well_formed() {
    let text = dashboard_text();
    assert!(
        !text.contains("${DS_") && !text.contains("__inputs"),
        "the dashboard must name its datasource by uid, not through import inputs"
    );
    let d = dashboard();
    let (uid, _) = provisioned_datasource();
    assert_eq!(d["uid"], "ssegate");
    assert_eq!(d["title"], "ssegate");
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(
        d.get("id").is_none_or(Value::is_null),
        "no instance-specific id"
    );

    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let panels = all_panels(&d);
    assert!(panels.len() > 20, "{} panels", panels.len());
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default();
        let kind = p["type"].as_str().unwrap_or_default();
        if title.is_empty() {
            problems.push(format!("a {kind} panel without a title"));
        }
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            other => problems.push(format!("{title}: id {other:?} missing or repeated")),
        }
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap_or(99),
            g["y"].as_u64().unwrap_or(0),
            g["w"].as_u64().unwrap_or(0),
            g["h"].as_u64().unwrap_or(0),
        );
        if w == 0 || h == 0 || x + w > 24 {
            problems.push(format!("{title}: gridPos {g}"));
        }
        for cy in y..y + h {
            for cx in x..(x + w).min(24) {
                if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                    problems.push(format!("{title} overlaps {other} at ({cx}, {cy})"));
                }
            }
        }
        if kind == "row" {
            continue;
        }
        if !matches!(kind, "timeseries" | "stat" | "heatmap") {
            problems.push(format!("{title}: panel type {kind}"));
        }
        check_datasource(title, &p["datasource"], &uid, &mut problems);
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no query"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            check_datasource(title, &t["datasource"], &uid, &mut problems);
            if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                problems.push(format!("{title}: a target without expr: {t}"));
            }
            if !refs.insert(t["refId"].as_str().unwrap_or_default().to_string()) {
                problems.push(format!("{title}: repeated refId {}", t["refId"]));
            }
        }
    }
    for var in d["templating"]["list"].as_array().into_iter().flatten() {
        check_datasource("templating", &var["datasource"], &uid, &mut problems);
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if a["builtIn"] != 1 {
            check_datasource("annotation", &a["datasource"], &uid, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // The dashboard provider loads a folder, which the README tells where to put.
    let path = repo_path("grafana/provisioning/dashboards/ssegate.yaml");
    let text = std::fs::read_to_string(&path).expect("the dashboard provisioning file");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    assert_eq!(yaml["apiVersion"].as_u64(), Some(1));
    let provider = &yaml["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"), "{text}");
    let folder = provider["options"]["path"]
        .as_str()
        .expect("options.path")
        .to_string();
    let readme = std::fs::read_to_string(repo_path("grafana/README.md")).expect("README");
    assert!(
        readme.contains(&folder),
        "grafana/README.md says where dashboards go ({folder})"
    );
    assert!(
        readme.contains(&uid),
        "grafana/README.md names the datasource uid"
    );
}

#[test]
fn dashboard_has_the_panels_the_issue_asks_for() {
    let d = dashboard();
    let exprs: Vec<String> = queries(&d)
        .into_iter()
        .map(|q| q.expr.split_whitespace().collect::<String>())
        .collect();
    let has = |needle: &str| {
        let needle: String = needle.split_whitespace().collect();
        exprs.iter().any(|e| e.contains(&needle))
    };
    for hist in [
        "ssegate_delivery_lag_seconds",
        "ssegate_publish_duration_seconds",
    ] {
        for q in ["0.5", "0.9", "0.99"] {
            let needle = format!("histogram_quantile({q}, sum by (le) (rate({hist}_bucket");
            assert!(has(&needle), "{needle}");
        }
    }
    for needle in [
        "sum by (proto, tls) (ssegate_connections_open",
        "sum by (reason) (rate(ssegate_connections_closed_total",
        "sum by (reason) (rate(ssegate_refusals_total",
        "sum by (reason) (rate(ssegate_resyncs_total",
        "sum by (kind) (rate(ssegate_auth_failures_total",
        "sum by (source) (rate(ssegate_events_published_total",
        "rate(ssegate_frames_written_total",
        "rate(ssegate_bytes_written_total",
        "rate(ssegate_replayed_events_total",
        "rate(ssegate_connections_opened_total",
        "process_resident_memory_bytes{instance=~\"$instance\"} / clamp_min(ssegate_tcp_connections_open",
        "rate(process_cpu_seconds_total",
        "process_open_fds",
        "ssegate_channels",
        "ssegate_history_events",
        "ssegate_history_bytes",
    ] {
        assert!(has(needle), "no query contains {needle}");
    }
    // Per-instance filtering on every query (the variable comes from ssegate_build_info).
    for q in queries(&d) {
        for m in analyze(&q.expr).unwrap().metrics {
            assert!(
                m.matchers
                    .iter()
                    .any(|x| x.label == "instance" && x.value == "$instance"),
                "{q}: {} is not filtered by $instance",
                m.name
            );
        }
    }
}

/// Everything wrong with `queries` and `variables` against `/metrics`.
fn check(queries: &[Query], variables: &[(String, String, String)], e: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    let family_of = |name: &str| -> Option<String> {
        if e.types.contains_key(name) {
            return Some(name.to_string());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if matches!(
                    e.types.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                ) {
                    return Some(base.to_string());
                }
            }
        }
        None
    };
    let label_ok = |metric: &str, label: &str| {
        TARGET_LABELS.contains(&label)
            || e.series.get(metric).is_some_and(|l| l.contains_key(label))
    };
    for q in queries {
        let a = match analyze(&q.expr) {
            Ok(a) => a,
            Err(err) => {
                problems.push(format!("{q}: cannot read: {err}"));
                continue;
            }
        };
        if a.metrics.is_empty() {
            problems.push(format!("{q}: names no metric"));
        }
        for m in &a.metrics {
            if !e.series.contains_key(&m.name) {
                let hint = match e.types.get(&m.name).map(String::as_str) {
                    Some("histogram") => " (a histogram: query its _bucket, _sum or _count)",
                    _ => "",
                };
                problems.push(format!("{q}: {} is not a series in /metrics{hint}", m.name));
                continue;
            }
            if family_of(&m.name).is_none() {
                problems.push(format!("{q}: {} has no # TYPE in /metrics", m.name));
            }
            for x in &m.matchers {
                if !label_ok(&m.name, &x.label) {
                    problems.push(format!("{q}: {} has no label {}", m.name, x.label));
                } else if x.op == "="
                    && !x.value.contains('$')
                    && !TARGET_LABELS.contains(&x.label.as_str())
                {
                    let seen = &e.series[&m.name][&x.label];
                    if !seen.contains(&x.value) {
                        problems.push(format!(
                            "{q}: {}{{{}=\"{}\"}}: the gateway exports only {seen:?}",
                            m.name, x.label, x.value
                        ));
                    }
                }
            }
        }
        for g in &a.groupings {
            for label in &g.labels {
                for metric in &g.metrics {
                    if e.series.contains_key(metric) && !label_ok(metric, label) {
                        problems.push(format!(
                            "{q}: `{} ({label})` but {metric} has no label {label}",
                            g.keyword
                        ));
                    }
                }
            }
        }
    }
    for (name, metric, label) in variables {
        if !e.series.contains_key(metric) {
            problems.push(format!(
                "variable {name}: {metric} is not a series in /metrics"
            ));
        } else if !label_ok(metric, label) {
            problems.push(format!("variable {name}: {metric} has no label {label}"));
        }
    }
    problems
}

/// A gateway's `/metrics` after a little traffic (an error answer creates the series of
/// `ssegate_request_errors_total`, the one family whose labels are not pre-created).
async fn live_exposition() -> (String, Exposition) {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/dash").await;
    let id = gw.publish_text("dash", "hello").await;
    assert_eq!(sub.next_event().await.id.as_deref(), Some(id.as_str()));
    let unauthorized = gw
        .request(
            Method::POST,
            "/publish",
            &[],
            r#"{"channel":"dash","data":"x"}"#,
        )
        .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let text = gw.metrics().await;
    let e = Exposition::parse(&text);
    (text, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_names_metrics_and_labels_the_gateway_exports() {
    let (text, e) = live_exposition().await;
    assert!(e.types.len() > 20, "{text}");
    let d = dashboard();
    let queries = queries(&d);
    assert!(queries.len() > 30, "{} queries", queries.len());
    let variables = label_values_variables(&d);
    let problems = check(&queries, &variables, &e);
    assert!(problems.is_empty(), "{problems:#?}\n/metrics:\n{text}");

    // And the other way round: every exported family is on some panel.
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| analyze(&q.expr).unwrap().names())
        .chain(variables.iter().map(|(_, m, _)| m.clone()))
        .collect();
    let unused: Vec<&String> = e
        .types
        .keys()
        .filter(|family| {
            !["", "_bucket", "_sum", "_count"]
                .iter()
                .any(|s| used.contains(&format!("{family}{s}")))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "exported but on no panel of grafana/dashboards/ssegate.json: {unused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_catches_wrong_names_and_labels() {
    let (_, e) = live_exposition().await;
    let q = |expr: &str| Query {
        panel: "mutant".into(),
        ref_id: "A".into(),
        expr: expr.into(),
    };
    let bad = [
        // A renamed metric.
        r#"sum(rate(ssegate_frames_sent_total{instance=~"$instance"}[$__rate_interval]))"#,
        // A histogram by its family name (no such series in Prometheus).
        r#"histogram_quantile(0.99, sum by (le) (rate(ssegate_delivery_lag_seconds[5m])))"#,
        // A label the metric does not have, in a grouping…
        r#"sum by (reason) (rate(ssegate_auth_failures_total[5m]))"#,
        // …in postfix form…
        r#"sum(rate(ssegate_events_published_total[5m])) by (channel)"#,
        // …and in a selector.
        r#"ssegate_connections_open{channel="x"}"#,
        // A label value the gateway never exports.
        r#"ssegate_connections_open{proto="h3"}"#,
        // le on something that is not a bucket.
        r#"histogram_quantile(0.5, sum by (le) (rate(ssegate_publish_duration_seconds_count[5m])))"#,
        // A process metric the gateway does not export.
        r#"rate(process_network_receive_bytes_total[5m])"#,
    ];
    for expr in bad {
        let problems = check(&[q(expr)], &[], &e);
        assert!(!problems.is_empty(), "the check let through: {expr}");
    }
    let problems = check(
        &[],
        &[("instance".into(), "ssegate_build".into(), "instance".into())],
        &e,
    );
    assert!(!problems.is_empty(), "a variable on a missing metric");

    // The same shapes, correct, pass.
    let good = [
        r#"sum(rate(ssegate_frames_written_total{instance=~"$instance"}[$__rate_interval]))"#,
        r#"histogram_quantile(0.99, sum by (le) (rate(ssegate_delivery_lag_seconds_bucket[5m])))"#,
        r#"sum by (kind) (rate(ssegate_auth_failures_total[5m]))"#,
        r#"sum(rate(ssegate_events_published_total[5m])) by (source, job)"#,
        r#"ssegate_connections_open{proto="h2", tls="true"}"#,
        r#"process_resident_memory_bytes / clamp_min(ssegate_tcp_connections_open, 1)"#,
        r#"count by (version) (ssegate_build_info) > bool 0"#,
    ];
    for expr in good {
        let problems = check(&[q(expr)], &[], &e);
        assert!(problems.is_empty(), "{expr}: {problems:#?}");
    }
}

#[test]
fn the_promql_reader_finds_metrics_labels_and_scopes() {
    let a = analyze(
        r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="y"}[$__rate_interval]))) / ignoring(z) sum(b) by (k) + 1e-9 * count without (w) (c offset 5m)"#,
    )
    .unwrap();
    let names: Vec<&str> = a.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b", "c"]);
    assert_eq!(a.metrics[0].matchers.len(), 2);
    assert_eq!(a.metrics[0].matchers[0].op, "=~");
    assert_eq!(a.metrics[0].matchers[1].value, "y");
    let g: Vec<(&str, Vec<&str>, Vec<&str>)> = a
        .groupings
        .iter()
        .map(|g| {
            (
                g.keyword.as_str(),
                g.labels.iter().map(String::as_str).collect(),
                g.metrics.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        g,
        [
            ("by", vec!["le"], vec!["a_bucket"]),
            ("ignoring", vec!["z"], vec!["a_bucket", "b", "c"]),
            ("by", vec!["k"], vec!["b"]),
            ("without", vec!["w"], vec!["c"]),
        ]
    );
    assert!(analyze("{x=\"y\"}").is_err());
    assert!(analyze("{__name__=\"y\"}").is_err());
}
