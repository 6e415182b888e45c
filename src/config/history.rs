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
    /// Bytes of encoded events kept over all channels together (the gateway-wide
    /// budget): past it the oldest events of any channel are evicted (a client resuming
    /// from before them gets `ssegate.resync`). Needs a restart to change.
    pub max_total_bytes: usize,
    /// The fraction (0 to 1) of `max_total_bytes` one publisher (a publish key, or a
    /// token's subject) may hold before its own oldest events are the first evicted:
    /// one publisher filling the budget evicts its own history, not everyone's.
    pub publisher_share: f64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_events: 1000,
            max_age: Duration::from_secs(600),
            max_bytes: 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            publisher_share: 0.5,
        }
    }
}

impl HistoryConfig {
    /// Checks that the global bounds keep at least one event and one byte, that the
    /// gateway-wide budget is not 0 (a channel bound above it is simply held to it), and
    /// that the publisher share is a fraction above 0.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_events == 0 || self.max_bytes == 0 {
            return Err(ConfigError::new(
                "history: max_events and max_bytes must be at least 1",
            ));
        }
        if self.max_total_bytes == 0 {
            return Err(ConfigError::new(
                "history: max_total_bytes must be at least 1",
            ));
        }
        if !(self.publisher_share > 0.0 && self.publisher_share <= 1.0) {
            return Err(ConfigError::new(
                "history: publisher_share must be above 0 and at most 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_bound_above_the_budget_is_valid_a_zero_budget_is_not() {
        let mut history = HistoryConfig {
            max_bytes: 1 << 30,
            ..HistoryConfig::default()
        };
        assert!(history.validate().is_ok(), "held to the budget by eviction");
        history.max_total_bytes = 0;
        assert!(history.validate().is_err());
        history.max_total_bytes = 1;
        history.publisher_share = 0.0;
        assert!(history.validate().is_err());
    }
}
