//! The `history` section: the global bounds of what each channel keeps for replay.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;
use super::ConfigError;

/// History kept per channel, for `Last-Event-ID` replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events kept per channel (the newest ones).
    pub max_events: usize,
    /// Events older than this are dropped from history.
    #[serde(with = "duration_text")]
    pub max_age: Duration,
    /// Bytes of encoded events kept per channel.
    pub max_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_events: 1000,
            max_age: Duration::from_secs(600),
            max_bytes: 1024 * 1024,
        }
    }
}

impl HistoryConfig {
    /// Checks that the global bounds keep at least one event and one byte.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_events == 0 || self.max_bytes == 0 {
            return Err(ConfigError::new(
                "history: max_events and max_bytes must be at least 1",
            ));
        }
        Ok(())
    }
}
