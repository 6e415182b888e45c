//! The `limits` section: bounds on what one client or one request may cost.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;
use super::ConfigError;

/// Bounds on what one client or request may cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest `POST /publish` body; refused with 413 from `Content-Length` before the
    /// body is read, and while reading when there is none.
    pub max_body_bytes: usize,
    /// Time a request body may take: the longest wait for its next bytes, and the grace
    /// before `min_body_bytes_per_second` applies. 408 past it.
    #[serde(with = "duration_text")]
    pub body_read_timeout: Duration,
    /// Slowest average rate a request body may arrive at once `body_read_timeout` has
    /// passed since its start (so a body of `n` bytes has `body_read_timeout` plus
    /// `n / min_body_bytes_per_second` seconds in all). 408 below it.
    pub min_body_bytes_per_second: u64,
    /// Largest `data` of one event (bytes, as encoded on the stream).
    pub max_event_bytes: usize,
    /// Most events in one `{"events": [...]}` batch.
    pub max_batch_events: usize,
    /// Most channels one subscription may name.
    pub max_channels_per_connection: usize,
    /// Most channels the gateway keeps at once (with history or subscribers); a publish
    /// or subscribe that would create one more is refused with 503.
    pub max_channels: usize,
    /// Time a client has to send its request headers (cuts off slowloris clients).
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// Time a TLS client has to finish its handshake.
    #[serde(with = "duration_text")]
    pub tls_handshake_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; 431 above it on
    /// HTTP/1.1, a stream error on HTTP/2. At least 8192.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1.1 request.
    pub max_headers: usize,
    /// Most open TCP connections; null takes the open-files limit less a reserve of
    /// [`FD_RESERVE`] for listeners, logs and the like. Over it: 503 with Retry-After.
    pub max_connections: Option<usize>,
    /// Most open TCP connections from one client IP; null (the default) is no cap,
    /// because offices and mobile carriers put many users behind one address.
    /// Over it: 429 with Retry-After.
    pub max_connections_per_ip: Option<usize>,
    /// Most concurrent event streams on one HTTP/2 connection; 429 above it.
    pub max_streams_per_connection: usize,
}

/// File descriptors kept free when `limits.max_connections` is derived from the
/// open-files limit.
pub const FD_RESERVE: usize = 64;

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(10),
            min_body_bytes_per_second: 8 * 1024,
            max_event_bytes: 64 * 1024,
            max_batch_events: 1000,
            max_channels_per_connection: 64,
            max_channels: 100_000,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: None,
            max_connections_per_ip: None,
            max_streams_per_connection: 100,
        }
    }
}

impl LimitsConfig {
    /// Checks that every bound lets something through and the timeouts are not zero.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_event_bytes > self.max_body_bytes {
            return Err(ConfigError::new(
                "limits.max_event_bytes must not exceed limits.max_body_bytes",
            ));
        }
        for (name, v) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_event_bytes", self.max_event_bytes),
            ("max_batch_events", self.max_batch_events),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection,
            ),
            ("max_channels", self.max_channels),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("limits.{name}: at least 1")));
            }
        }
        if self.header_read_timeout.is_zero() || self.tls_handshake_timeout.is_zero() {
            return Err(ConfigError::new(
                "limits.header_read_timeout and limits.tls_handshake_timeout: more than 0",
            ));
        }
        if self.body_read_timeout.is_zero() {
            return Err(ConfigError::new("limits.body_read_timeout: more than 0"));
        }
        if self.min_body_bytes_per_second == 0 {
            return Err(ConfigError::new(
                "limits.min_body_bytes_per_second: at least 1",
            ));
        }
        if self.max_header_bytes < 8192 {
            return Err(ConfigError::new("limits.max_header_bytes: at least 8192"));
        }
        for (name, v) in [
            ("max_headers", Some(self.max_headers)),
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            (
                "max_streams_per_connection",
                Some(self.max_streams_per_connection),
            ),
        ] {
            if v == Some(0) {
                return Err(ConfigError::new(format!(
                    "limits.{name}: at least 1 (or null)"
                )));
            }
        }
        Ok(())
    }
}
