//! The `rate_limits` section: token-bucket limits on publishes and new connections.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Token-bucket rate limits; 429 with `Retry-After` past them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Publish requests per second per publisher (key name or token subject); null: off.
    pub publishes_per_second: Option<f64>,
    /// Publish requests a publisher may send in a burst above the rate.
    pub publish_burst: u32,
    /// New connections per second per client IP; null: off.
    pub connections_per_second: Option<f64>,
    /// New connections one IP may open in a burst above the rate.
    pub connection_burst: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            publishes_per_second: None,
            publish_burst: 100,
            connections_per_second: None,
            connection_burst: 50,
        }
    }
}

impl RateLimitsConfig {
    /// Checks that every rate in force is a positive finite number.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (name, rate) in [
            ("publishes_per_second", self.publishes_per_second),
            ("connections_per_second", self.connections_per_second),
        ] {
            if rate.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                return Err(ConfigError::new(format!(
                    "rate_limits.{name}: more than 0 (or null)"
                )));
            }
        }
        Ok(())
    }
}
