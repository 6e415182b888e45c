//! The `slow_clients` section: what happens to subscribers that fall behind or stall.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;
use super::ConfigError;

/// What the gateway does with a subscriber that falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagPolicy {
    /// End the stream; the browser reconnects with `Last-Event-ID` and catches up from
    /// history (or is told to resync when history no longer reaches back).
    Disconnect,
    /// Skip to the newest event and send `ssegate.resync` with reason `lagged`.
    Resync,
}

/// Slow and stalled subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowClientsConfig {
    /// What to do past the lag bounds below (or when history it still needed was dropped).
    pub policy: LagPolicy,
    /// Events waiting for one subscriber (summed over its channels) before the policy applies.
    pub max_lag_events: usize,
    /// Bytes waiting for one subscriber before the policy applies.
    pub max_lag_bytes: usize,
    /// A write that makes no progress for this long closes the connection (the client
    /// stopped reading or vanished).
    #[serde(with = "duration_text")]
    pub write_timeout: Duration,
}

impl Default for SlowClientsConfig {
    fn default() -> Self {
        SlowClientsConfig {
            policy: LagPolicy::Disconnect,
            max_lag_events: 500,
            max_lag_bytes: 512 * 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl SlowClientsConfig {
    /// Checks that the lag bounds and the write timeout leave room to work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_lag_events == 0 || self.max_lag_bytes == 0 {
            return Err(ConfigError::new(
                "slow_clients.max_lag_events and max_lag_bytes: at least 1",
            ));
        }
        if self.write_timeout < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "slow_clients.write_timeout: at least 100ms",
            ));
        }
        Ok(())
    }
}
