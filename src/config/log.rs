//! The `log` section: log level, line format and the connection-line budget.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing::level_filters::LevelFilter;

use super::ConfigError;

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter whose every directive names its level, e.g. `info` or
    /// `info,ssegate=debug`; `RUST_LOG` overrides it.
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

impl LogConfig {
    /// Checks `level`: a filter `tracing` parses in which every directive names its
    /// level (`info`, `ssegate=debug,hyper=warn`). A bare word is refused: `tracing`
    /// would read `verbose` as a target name and log nothing at all.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |why: &str| {
            ConfigError::new(format!(
                "log.level: '{}' {why}: give a level (trace, debug, info, warn, error, off) \
                 or target=level directives, e.g. info,ssegate=debug",
                self.level
            ))
        };
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map_err(|e| refuse(&format!("is not a log filter ({e})")))?;
        let directives: Vec<&str> = self
            .level
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        if directives.is_empty() {
            return Err(refuse("is empty"));
        }
        for directive in directives {
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            if LevelFilter::from_str(level.trim()).is_err() {
                return Err(refuse(&format!("has no level in '{directive}'")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(l: &str) -> Result<(), ConfigError> {
        LogConfig {
            level: l.into(),
            ..LogConfig::default()
        }
        .validate()
    }

    #[test]
    fn levels_and_directives() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,ssegate=debug",
            "ssegate::http=trace",
        ] {
            assert_eq!(level(good), Ok(()), "{good}");
        }
        for bad in ["verbose", "", " , ", "info,hyper", "ssegate=loud"] {
            assert!(level(bad).is_err(), "{bad:?}");
        }
    }
}
