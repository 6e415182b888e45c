//! The observe layer: metrics (with the fan-out path's sharded counters), the log-line
//! budget (stream lines and refusal lines) and the open-streams table for the admin API. Imports `policy` and below.

pub mod hot_metrics;
pub mod log_budget;
pub mod metrics;
pub mod refusal_log;
pub mod registry;
