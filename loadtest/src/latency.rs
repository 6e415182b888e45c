//! Latency histograms: HDR histograms in microseconds, one pair per worker process
//! (shared by all its connections), shipped to the coordinator as (value, count) pairs
//! and merged there.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, in microseconds (one hour); above it values are clamped.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
        }
    }

    /// Records the time from `from_ns` to `to_ns` (Unix ns); negative spans count as 1 µs.
    pub fn record_span(&mut self, from_ns: u64, to_ns: u64) {
        let micros = to_ns.saturating_sub(from_ns) / 1_000;
        self.record_micros(micros);
    }

    /// Records one value in microseconds.
    pub fn record_micros(&mut self, micros: u64) {
        self.hist.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Number of values recorded.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The recorded buckets as (value, count) pairs: compact, and merging them back with
    /// [`Latency::merge_pairs`] gives the same histogram.
    pub fn to_pairs(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Adds buckets from [`Latency::to_pairs`].
    pub fn merge_pairs(&mut self, pairs: &[(u64, u64)]) {
        for &(value, count) in pairs {
            let _ = self.hist.record_n(value.clamp(1, MAX_MICROS), count);
        }
    }

    /// The summary reported: percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.hist.max() as f64 / 1000.0,
            mean_ms: self.hist.mean() / 1000.0,
        }
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_merge_back_to_the_same_percentiles() {
        let mut a = Latency::new();
        for us in 1..=10_000u64 {
            a.record_micros(us);
        }
        let mut b = Latency::new();
        b.merge_pairs(&a.to_pairs());
        assert_eq!(a.count(), b.count());
        assert_eq!(a.summary(), b.summary());
        let s = b.summary();
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.02, "{s:?}");
    }
}
