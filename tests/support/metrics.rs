//! Reading a gateway's `/metrics` text: the one series reader [`metric`], the named
//! series built on it, a bounded wait on a value, and the whole exposition's types and
//! labels ([`Exposition`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;

/// The value of one series (`name{labels}` exactly as rendered) in a Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The sum of every series of `family` (e.g. `ssegate_connections_open` over its labels).
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `ssegate_connections_closed_total{reason=…}`, 0 when absent.
pub fn closed(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_connections_closed_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_refusals_total{reason=…}`, 0 when absent.
pub fn refusals(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_refusals_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_auth_failures_total{kind=…}`, 0 when absent.
pub fn auth_failures(text: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_auth_failures_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_connections_open`, summed over its labels.
pub fn streams_open(text: &str) -> f64 {
    metric_sum(text, "ssegate_connections_open")
}

/// Waits (bounded) until `series` reads `value`; panics with the last text otherwise.
pub async fn wait_metric(gw: &TestGateway, series: &str, value: f64) {
    let mut last = String::new();
    for _ in 0..400 {
        last = gw.metrics().await;
        if metric(&last, series) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{series} never became {value}:\n{last}");
}

/// What a `/metrics` text holds.
#[derive(Debug, Default)]
pub struct Exposition {
    /// `# TYPE` lines: family name → type.
    pub types: BTreeMap<String, String>,
    /// Sample series names → label → the values seen.
    pub series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exposition {
    /// Parses the Prometheus text format (0.0.4).
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    e.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name_end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or_else(|| panic!("a sample line without a value: {line:?}"));
            let name = &line[..name_end];
            let labels = e.series.entry(name.to_string()).or_default();
            if line[name_end..].starts_with('{') {
                let chars: Vec<char> = line[name_end + 1..].chars().collect();
                let mut k = 0;
                loop {
                    while k < chars.len() && (chars[k] == ',' || chars[k] == ' ') {
                        k += 1;
                    }
                    if k >= chars.len() || chars[k] == '}' {
                        break;
                    }
                    let start = k;
                    while k < chars.len() && chars[k] != '=' {
                        k += 1;
                    }
                    let label: String = chars[start..k].iter().collect();
                    assert_eq!(chars.get(k + 1), Some(&'"'), "label value in {line:?}");
                    k += 2;
                    let mut value = String::new();
                    while k < chars.len() && chars[k] != '"' {
                        if chars[k] == '\\' {
                            k += 1;
                        }
                        if let Some(c) = chars.get(k) {
                            value.push(*c);
                        }
                        k += 1;
                    }
                    k += 1;
                    labels.entry(label).or_default().insert(value);
                }
            }
        }
        e
    }
}
