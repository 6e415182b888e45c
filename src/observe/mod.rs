//! The observe layer: metrics (with the fan-out path's sharded counters), the log-line
//! budget and the open-streams table for the admin API. Imports `policy` and below.

pub mod hot_metrics;
pub mod log_budget;
pub mod metrics;
pub mod registry;
