//! The gateway's configuration: typed structs parsed from YAML at the edge, with their
//! defaults and one `validate()`. The rest of the gateway sees only [`Config`].
//!
//! Every field has a doc comment; `docs/CONFIGURATION.md` and the shipped `gateway.yaml`
//! describe the same fields, and `tests/config_reference.rs` keeps the three in step.
//!
//! This file holds the root: [`Config`], loading and the top-level `validate()`. Each
//! section lives in its own file with its defaults and its own checks.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod auth;
mod channels;
mod cors;
mod drain;
mod history;
mod keepalive;
mod keys;
mod limits;
mod listeners;
mod log;
mod rate_limits;
mod secret;
mod serde_helpers;
mod slow_clients;
mod sse;

pub use auth::{AuthConfig, JwtAlgorithm, JwtKeyConfig, DEV_JWT_SECRET};
pub use channels::{Access, ChannelRule};
pub use cors::CorsConfig;
pub use drain::DrainConfig;
pub use history::HistoryConfig;
pub use keepalive::KeepaliveConfig;
pub use keys::{
    AdminConfig, KeyConfig, PublishConfig, SecretLookup, DEV_ADMIN_KEY, DEV_PUBLISH_KEY,
};
pub use limits::{LimitsConfig, FD_RESERVE};
pub use listeners::{ListenerConfig, Routes, TlsConfig};
pub use log::{LogConfig, LogFormat};
pub use rate_limits::RateLimitsConfig;
pub use secret::{Secret, MASK};
pub use serde_helpers::{duration_text, optional_duration_text};
pub use slow_clients::{LagPolicy, SlowClientsConfig};
pub use sse::SseConfig;

/// The whole configuration, as read from `gateway.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The sockets the gateway listens on; each serves HTTP/1.1 and HTTP/2, plain or TLS.
    pub listeners: Vec<ListenerConfig>,
    /// Who may publish: the static publish keys.
    pub publish: PublishConfig,
    /// How event streams are written: heartbeats, `retry:`, batching.
    pub sse: SseConfig,
    /// How much history each channel keeps for `Last-Event-ID` replay.
    pub history: HistoryConfig,
    /// Rules by channel pattern: who may subscribe, whether publishers may target the
    /// channel, history overrides. The first matching rule applies; channels no rule
    /// matches take `auth.default_subscribe` and the global history.
    pub channels: Vec<ChannelRule>,
    /// Bounds on what one client or one request may cost.
    pub limits: LimitsConfig,
    /// What happens to subscribers that read slower than events arrive, or not at all.
    pub slow_clients: SlowClientsConfig,
    /// How dead and stale connections are found and closed.
    pub keepalive: KeepaliveConfig,
    /// Graceful shutdown on SIGTERM / SIGINT.
    pub drain: DrainConfig,
    /// The admin API (`/admin/…`).
    pub admin: AdminConfig,
    /// Subscriber and publisher tokens (JWT).
    pub auth: AuthConfig,
    /// Cross-origin requests from browsers on other origins.
    pub cors: CorsConfig,
    /// Token-bucket rate limits on publishes and new connections.
    pub rate_limits: RateLimitsConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![
                ListenerConfig {
                    name: "plain".into(),
                    address: "127.0.0.1:8080".parse().expect("literal address"),
                    tls: None,
                    routes: Routes::All,
                },
                ListenerConfig {
                    name: "tls".into(),
                    address: "127.0.0.1:8443".parse().expect("literal address"),
                    tls: Some(TlsConfig::default()),
                    routes: Routes::All,
                },
            ],
            publish: PublishConfig::default(),
            sse: SseConfig::default(),
            history: HistoryConfig::default(),
            channels: vec![ChannelRule {
                subscribe: Access::Token,
                ..ChannelRule::new("user:{sub}")
            }],
            limits: LimitsConfig::default(),
            slow_clients: SlowClientsConfig::default(),
            keepalive: KeepaliveConfig::default(),
            drain: DrainConfig::default(),
            admin: AdminConfig::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// A configuration that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses YAML text and validates it (see [`Config::validate`]).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with(text, &KeyConfig::written_secret)
    }

    /// [`Config::from_yaml`], with `secret` telling each key's secret.
    pub fn from_yaml_with(text: &str, secret: SecretLookup<'_>) -> Result<Config, ConfigError> {
        let config: Config =
            serde_yaml::from_str(text).map_err(|e| ConfigError::new(format!("{e}")))?;
        config.validate_with(secret)?;
        Ok(config)
    }

    /// Reads, parses and validates a YAML file (see [`Config::validate`]).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file_with(path, &KeyConfig::written_secret)
    }

    /// [`Config::from_file`], with `secret` telling each key's secret.
    pub fn from_file_with(path: &Path, secret: SecretLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
        Config::from_yaml_with(&text, secret)
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
    }

    /// Checks what the types cannot: non-empty lists, sane bounds, keys long enough.
    /// Config reads no environment, so this checks the key secrets written in the file;
    /// the `*_with` forms take the secrets from elsewhere: start-up, reload and
    /// `--check` pass `policy::secrets::resolved_secret`, which reads the environment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(&KeyConfig::written_secret)
    }

    /// [`Config::validate`], with `secret` telling each key's secret.
    pub fn validate_with(&self, secret: SecretLookup<'_>) -> Result<(), ConfigError> {
        listeners::validate_listeners(&self.listeners)?;
        self.publish.validate(secret)?;
        self.admin.validate(secret)?;
        self.auth.validate(secret)?;
        self.cors.validate()?;
        self.rate_limits.validate()?;
        self.sse.validate()?;
        self.history.validate()?;
        channels::validate_channels(&self.channels)?;
        self.limits.validate()?;
        self.slow_clients.validate()?;
        self.keepalive.validate()?;
        self.log.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::from_yaml("limits:\n  max_body_byte: 3\n").unwrap_err();
        assert!(err.to_string().contains("max_body_byte"), "{err}");
    }

    /// Every message `validate()` gives, one broken section at a time, and that the
    /// sections are checked in the same order (the first problem is the one named).
    #[test]
    fn validate_names_each_problem() {
        let cases = [
            ("listeners: []\n", "listeners: at least one listener is needed"),
            (
                "listeners:\n  - {name: a, address: '127.0.0.1:0'}\n  - {name: a, address: '127.0.0.1:0'}\n",
                "listeners: the name 'a' is used twice",
            ),
            (
                "listeners:\n  - {name: s, address: '127.0.0.1:0', tls: {cert: /c.pem}}\n",
                "listeners.s.tls: give both cert and key, or neither (self-signed)",
            ),
            (
                "publish:\n  keys: []\n",
                "publish.keys: at least one key is needed, or nobody can publish",
            ),
            (
                "publish:\n  keys:\n    - name: a\n",
                "publish.keys.a: give `value` or `env`",
            ),
            (
                "publish:\n  keys:\n    - {name: a, value: short}\n",
                "publish.keys.a: a key must be at least 8 characters",
            ),
            (
                "admin:\n  keys:\n    - {name: b, value: short}\n",
                "admin.keys.b: a key must be at least 8 characters",
            ),
            (
                "auth:\n  jwt_keys:\n    - {name: j, algorithm: HS256, value: a-secret-of-16-chars, public_key: /k.pem}\n",
                "auth.jwt_keys.j: an HMAC key takes `value` or `env`, not `public_key`",
            ),
            (
                "auth:\n  jwt_keys:\n    - {name: j, algorithm: HS384, value: fifteen-chars!!}\n",
                "auth.jwt_keys.j: an HMAC secret must be at least 16 characters",
            ),
            (
                "auth:\n  jwt_keys:\n    - {name: r, algorithm: RS256, value: a-secret-of-16-chars}\n",
                "auth.jwt_keys.r: RS256 takes `public_key` (a PEM file), not a secret",
            ),
            (
                "cors:\n  allowed_origins: ['*']\n  allow_credentials: true\n",
                "cors: allow_credentials needs explicit origins, not `*`",
            ),
            (
                "rate_limits:\n  connections_per_second: 0\n",
                "rate_limits.connections_per_second: more than 0 (or null)",
            ),
            ("sse:\n  heartbeat: 500ms\n", "sse.heartbeat: at least 1s"),
            (
                "sse:\n  retry_min: 10s\n  retry_max: 2s\n",
                "sse.retry_min must not exceed sse.retry_max",
            ),
            ("sse:\n  max_batch_bytes: 100\n", "sse.max_batch_bytes: at least 1024"),
            (
                "history:\n  max_bytes: 0\n",
                "history: max_events and max_bytes must be at least 1",
            ),
            (
                "channels:\n  - {pattern: 'a:*', max_events: 0}\n",
                "channels: max_events and max_bytes must be at least 1",
            ),
            (
                "channels:\n  - {pattern: 'a b'}\n",
                "channels: 'a b' is not a channel pattern (channel characters, `*`, `{sub}`)",
            ),
            (
                "limits:\n  max_event_bytes: 10\n  max_body_bytes: 5\n",
                "limits.max_event_bytes must not exceed limits.max_body_bytes",
            ),
            ("limits:\n  max_channels: 0\n", "limits.max_channels: at least 1"),
            (
                "limits:\n  tls_handshake_timeout: 0s\n",
                "limits.header_read_timeout and limits.tls_handshake_timeout: more than 0",
            ),
            (
                "limits:\n  body_read_timeout: 0s\n",
                "limits.body_read_timeout: more than 0",
            ),
            (
                "limits:\n  min_body_bytes_per_second: 0\n",
                "limits.min_body_bytes_per_second: at least 1",
            ),
            (
                "limits:\n  max_header_bytes: 4096\n",
                "limits.max_header_bytes: at least 8192",
            ),
            (
                "limits:\n  max_connections_per_ip: 0\n",
                "limits.max_connections_per_ip: at least 1 (or null)",
            ),
            (
                "slow_clients:\n  max_lag_bytes: 0\n",
                "slow_clients.max_lag_events and max_lag_bytes: at least 1",
            ),
            (
                "slow_clients:\n  write_timeout: 50ms\n",
                "slow_clients.write_timeout: at least 100ms",
            ),
            (
                "keepalive:\n  max_connection_age_jitter: 1.5\n",
                "keepalive.max_connection_age_jitter: between 0 and 1",
            ),
            (
                "keepalive:\n  h2_ping_timeout: 0s\n",
                "keepalive: durations must be more than 0 (null turns an optional one off)",
            ),
            // Two problems: the earlier section is named.
            (
                "keepalive:\n  h2_ping_timeout: 0s\nsse:\n  heartbeat: 0s\nadmin:\n  keys:\n    - {name: b, value: short}\n",
                "admin.keys.b: a key must be at least 8 characters",
            ),
            (
                "limits:\n  max_channels: 0\nchannels:\n  - {pattern: 'a b'}\nhistory:\n  max_events: 0\n",
                "history: max_events and max_bytes must be at least 1",
            ),
        ];
        for (yaml, message) in cases {
            let err = Config::from_yaml(yaml).expect_err(yaml);
            assert_eq!(err.to_string(), message, "{yaml}");
        }
    }
}
