//! The `drain` section: graceful shutdown on SIGTERM / SIGINT.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// On SIGTERM or SIGINT every stream ends at a random moment within this period
    /// (with a fresh `retry:`), so a fleet's clients do not reconnect in one wave.
    #[serde(with = "duration_text")]
    pub period: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            period: Duration::from_secs(20),
        }
    }
}
