//! The `keepalive` section: finding dead peers and rebalancing long-lived connections.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::{duration_text, optional_duration_text};
use super::ConfigError;

/// Finding dead peers and rebalancing long-lived connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveConfig {
    /// Idle time before the kernel sends TCP keepalive probes; null turns them off.
    #[serde(with = "optional_duration_text")]
    pub tcp_keepalive: Option<Duration>,
    /// TCP_USER_TIMEOUT: unacknowledged data older than this kills the connection in
    /// the kernel; null leaves the kernel default (many minutes).
    #[serde(with = "optional_duration_text")]
    pub tcp_user_timeout: Option<Duration>,
    /// Interval of HTTP/2 PINGs on a connection; null turns them off.
    #[serde(with = "optional_duration_text")]
    pub h2_ping_interval: Option<Duration>,
    /// A PING unanswered for this long closes the HTTP/2 connection.
    #[serde(with = "duration_text")]
    pub h2_ping_timeout: Duration,
    /// An HTTP/2 connection (or any served by hyper) with no stream open for this long
    /// is shut down: GOAWAY, then close. HTTP/1.1 keep-alive ends sooner, at
    /// `limits.header_read_timeout`.
    #[serde(with = "duration_text")]
    pub h2_idle_timeout: Duration,
    /// Streams older than this are ended (with `retry:`) so long-lived connections
    /// rebalance across nodes; null keeps them forever.
    #[serde(with = "optional_duration_text")]
    pub max_connection_age: Option<Duration>,
    /// A random share of `max_connection_age` (0 to 1) taken off each stream's age, so
    /// streams opened together do not end together.
    pub max_connection_age_jitter: f64,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            tcp_keepalive: Some(Duration::from_secs(60)),
            tcp_user_timeout: Some(Duration::from_secs(60)),
            h2_ping_interval: Some(Duration::from_secs(30)),
            h2_ping_timeout: Duration::from_secs(20),
            h2_idle_timeout: Duration::from_secs(30),
            max_connection_age: None,
            max_connection_age_jitter: 0.1,
        }
    }
}

impl KeepaliveConfig {
    /// Checks the jitter share and that no duration in force is zero.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.max_connection_age_jitter) {
            return Err(ConfigError::new(
                "keepalive.max_connection_age_jitter: between 0 and 1",
            ));
        }
        if self.max_connection_age.is_some_and(|a| a.is_zero())
            || self.h2_ping_interval.is_some_and(|a| a.is_zero())
            || self.h2_ping_timeout.is_zero()
            || self.h2_idle_timeout.is_zero()
        {
            return Err(ConfigError::new(
                "keepalive: durations must be more than 0 (null turns an optional one off)",
            ));
        }
        Ok(())
    }
}
