//! The `sse` section: how event streams are written (heartbeats, `retry:`, batching).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;
use super::ConfigError;

/// How event streams are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// Interval of `:` comment heartbeats on an idle stream. Keeps proxies from closing
    /// it and finds dead clients. 25 s stays under the common 30 s proxy idle timeouts.
    #[serde(with = "duration_text")]
    pub heartbeat: Duration,
    /// Lower bound of the `retry:` reconnect delay sent first on every stream.
    #[serde(with = "duration_text")]
    pub retry_min: Duration,
    /// Upper bound of the `retry:` delay; each stream gets a random value in between so
    /// a fleet of clients does not reconnect in one wave.
    #[serde(with = "duration_text")]
    pub retry_max: Duration,
    /// Most bytes written to one stream in one batch when several events are pending.
    pub max_batch_bytes: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            heartbeat: Duration::from_secs(25),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(5),
            max_batch_bytes: 64 * 1024,
        }
    }
}

impl SseConfig {
    /// Checks the heartbeat, the `retry:` range and the batch size.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat < Duration::from_secs(1) {
            return Err(ConfigError::new("sse.heartbeat: at least 1s"));
        }
        if self.retry_min > self.retry_max {
            return Err(ConfigError::new(
                "sse.retry_min must not exceed sse.retry_max",
            ));
        }
        if self.max_batch_bytes < 1024 {
            return Err(ConfigError::new("sse.max_batch_bytes: at least 1024"));
        }
        Ok(())
    }
}
