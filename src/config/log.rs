//! The `log` section: log level, line format and the connection-line budget.

use serde::{Deserialize, Serialize};

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `ssegate=debug`; `RUST_LOG` overrides it.
    pub level: String,
    /// `text` (one human line per event) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Most connection open/close lines per second; past it lines are dropped and a
    /// count of the dropped ones is logged once a second, so a reconnect storm cannot
    /// flood the log. 0 logs none.
    pub max_connection_lines_per_second: u32,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            max_connection_lines_per_second: 100,
        }
    }
}
