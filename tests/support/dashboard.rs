//! The shipped Grafana dashboard: its panels, queries and `label_values` variables, and
//! the substitution of Grafana's variables.

use std::path::PathBuf;

use serde_json::Value;

/// A file of this repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `grafana/dashboards/ssegate.json` as text.
pub fn dashboard_text() -> String {
    let path = repo_path("grafana/dashboards/ssegate.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `grafana/dashboards/ssegate.json` parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&dashboard_text()).expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included (depth first, in file order).
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// One query of the dashboard.
#[derive(Debug, Clone)]
pub struct Query {
    /// The panel's title.
    pub panel: String,
    /// The target's refId.
    pub ref_id: String,
    /// The PromQL expression as written (with Grafana variables).
    pub expr: String,
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "panel {:?} query {}: {}",
            self.panel, self.ref_id, self.expr
        )
    }
}

/// Every target `expr` of every panel.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(Query {
                    panel: title.clone(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_string(),
                    expr: expr.to_string(),
                });
            }
        }
    }
    out
}

/// A template variable's `label_values(metric, label)` query: (name, metric, label).
pub fn label_values_variables(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = match &var["query"] {
            Value::String(s) => s.clone(),
            q => q["query"].as_str().unwrap_or_default().to_string(),
        };
        let name = var["name"].as_str().unwrap_or("?").to_string();
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: not a label_values(…) query: {query}"));
        let (metric, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {name}: label_values needs a metric: {query}"));
        out.push((name, metric.trim().to_string(), label.trim().to_string()));
    }
    out
}

/// Replaces Grafana's variables the way a dashboard with `instance_regex` selected
/// would: `$__rate_interval`, `$__interval` and `$__range` become `interval`.
/// Panics if any `$` is left (a new variable this function does not know).
pub fn substitute(expr: &str, interval: &str, instance_regex: &str) -> String {
    let mut s = expr.to_string();
    for (from, to) in [
        ("${__rate_interval}", interval),
        ("$__rate_interval", interval),
        ("${__interval}", interval),
        ("$__interval", interval),
        ("${__range}", interval),
        ("$__range", interval),
        ("${instance}", instance_regex),
        ("$instance", instance_regex),
    ] {
        s = s.replace(from, to);
    }
    assert!(
        !s.contains('$'),
        "a Grafana variable this test does not know is left in {s:?} (from {expr:?})"
    );
    s
}
