//! The gateway's configuration: typed structs parsed from YAML at the edge, with their
//! defaults and one `validate()`. The rest of the gateway sees only [`Config`].
//!
//! Every field has a doc comment; `docs/CONFIGURATION.md` and the shipped `gateway.yaml`
//! describe the same fields, and `tests/config_reference.rs` keeps the three in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::channel_name;

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

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// A name for logs and errors, e.g. `public-tls`.
    pub name: String,
    /// The address to bind, `IP:PORT`; port 0 picks a free port (tests use it).
    pub address: SocketAddr,
    /// TLS for this listener; absent means plain HTTP/1.1 and h2c (prior knowledge).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Which endpoints this listener serves: `all`, `public` (events, publish, cursor,
    /// health) or `admin` (metrics, admin API, health), so metrics and the admin API can
    /// sit on a port the internet cannot reach.
    #[serde(default)]
    pub routes: Routes,
}

/// The endpoints a listener serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routes {
    /// Everything.
    #[default]
    All,
    /// `/events`, `/publish`, `/cursor`, `/healthz`, `/readyz`.
    Public,
    /// `/metrics`, `/admin/…`, `/healthz`, `/readyz`.
    Admin,
}

impl Routes {
    /// True when this listener serves the public endpoints.
    pub fn public(self) -> bool {
        self != Routes::Admin
    }

    /// True when this listener serves metrics and the admin API.
    pub fn admin(self) -> bool {
        self != Routes::Public
    }
}

/// TLS settings of one listener. ALPN offers `h2` and `http/1.1`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first. With `key` absent too, the
    /// gateway generates a self-signed certificate for `localhost` at start (and logs it).
    pub cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Publishing: `POST /publish` needs one of these keys as `Authorization: Bearer <key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// The accepted publish keys. Each is a literal `value`, or read from the environment
    /// variable `env` (with an optional `default` used when the variable is unset).
    pub keys: Vec<KeyConfig>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            keys: vec![KeyConfig::from_env("SSEGATE_PUBLISH_KEY", DEV_PUBLISH_KEY)],
        }
    }
}

/// The development publish key of the shipped `gateway.yaml`, used when
/// `SSEGATE_PUBLISH_KEY` is unset. Fine on a laptop; a loud warning elsewhere.
pub const DEV_PUBLISH_KEY: &str = "dev-publish-key";

/// One key (publish or admin) and where its secret comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs (the key itself is never logged).
    pub name: String,
    /// The key written in the file. Prefer `env` so no secret sits in the file.
    #[serde(default)]
    pub value: Option<String>,
    /// The environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// The key used when `env` is unset or empty; a development default.
    #[serde(default)]
    pub default: Option<String>,
}

/// A publish key once its secret is known.
#[derive(Clone, PartialEq)]
pub struct ResolvedKey {
    /// The key's name from the config.
    pub name: String,
    /// The secret.
    pub secret: String,
    /// True when the secret is the `default` because the environment variable was unset.
    pub from_default: bool,
}

impl fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("name", &self.name)
            .field("secret", &"<masked>")
            .field("from_default", &self.from_default)
            .finish()
    }
}

impl KeyConfig {
    /// A key named `default` read from `env`, with a development `default`.
    pub fn from_env(env: &str, default: &str) -> KeyConfig {
        KeyConfig {
            name: "default".into(),
            value: None,
            env: Some(env.into()),
            default: Some(default.into()),
        }
    }

    /// Reads the secret from the file or the environment.
    pub fn resolve(&self) -> Result<ResolvedKey, ConfigError> {
        let from_env = self
            .env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|v| !v.is_empty());
        let (secret, from_default) = match (&self.value, from_env, &self.default) {
            (Some(v), _, _) => (v.clone(), false),
            (None, Some(v), _) => (v, false),
            (None, None, Some(d)) => (d.clone(), true),
            (None, None, None) => {
                return Err(ConfigError::new(format!(
                    "key '{}': environment variable {} is not set and no default is given",
                    self.name,
                    self.env.as_deref().unwrap_or("(none)")
                )))
            }
        };
        Ok(ResolvedKey {
            name: self.name.clone(),
            secret,
            from_default,
        })
    }
}

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

/// Who may subscribe to a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone who can reach the gateway.
    #[default]
    Public,
    /// Only a client with a valid token that grants the channel.
    Token,
}

/// A rule for the channels whose name matches `pattern`; the first matching rule of
/// `channels` applies, for access and history alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// A channel-name pattern: channel characters, `*` (any run of characters) and
    /// `{sub}`, which for a subscriber stands for its token's subject: `user:{sub}`
    /// lets the holder of a token with subject `42` read `user:42`.
    pub pattern: String,
    /// `public`, or `token`: subscribing needs a token whose subject binds `{sub}` in
    /// the pattern, or whose `ssegate.subscribe` grants name the channel.
    #[serde(default)]
    pub subscribe: Access,
    /// Whether publishers may target matching channels at all.
    #[serde(default = "yes")]
    pub publish: bool,
    /// Events kept per matching channel; absent keeps `history.max_events`.
    #[serde(default)]
    pub max_events: Option<usize>,
    /// Age limit for matching channels; absent keeps `history.max_age`.
    #[serde(default, with = "optional_duration_text")]
    pub max_age: Option<Duration>,
    /// Byte limit for matching channels; absent keeps `history.max_bytes`.
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

impl ChannelRule {
    /// A rule for `pattern` with every other field at its default.
    pub fn new(pattern: &str) -> ChannelRule {
        ChannelRule {
            pattern: pattern.to_string(),
            subscribe: Access::Public,
            publish: true,
            max_events: None,
            max_age: None,
            max_bytes: None,
        }
    }
}

/// The first rule of `rules` whose pattern matches `channel` (`{sub}` as a wildcard).
pub fn rule_for<'a>(rules: &'a [ChannelRule], channel: &str) -> Option<&'a ChannelRule> {
    rules
        .iter()
        .find(|r| channel_name::pattern_matches_with(&r.pattern, channel, None))
}

/// Bounds on what one client or request may cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest `POST /publish` body; refused with 413 from `Content-Length` before the
    /// body is read, and while reading when there is none.
    pub max_body_bytes: usize,
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
            max_connection_age: None,
            max_connection_age_jitter: 0.1,
        }
    }
}

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

/// The admin API: JSON under `/admin/`, behind `Authorization: Bearer <admin key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The accepted admin keys; an empty list turns the admin API off.
    pub keys: Vec<KeyConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            keys: vec![KeyConfig::from_env("SSEGATE_ADMIN_KEY", DEV_ADMIN_KEY)],
        }
    }
}

/// The development admin key of the shipped `gateway.yaml`, used when
/// `SSEGATE_ADMIN_KEY` is unset.
pub const DEV_ADMIN_KEY: &str = "dev-admin-key";

/// Tokens: JWTs that let subscribers read private channels and publishers publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Access for channels no rule in `channels` matches.
    pub default_subscribe: Access,
    /// The keys tokens are verified with; several (told apart by `kid`) for rotation.
    /// Empty: no token is accepted.
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// When set, a token's `aud` must contain it.
    pub audience: Option<String>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "duration_text")]
    pub leeway: Duration,
    /// The query parameter a subscriber may pass its token in (browsers' EventSource
    /// cannot set headers).
    pub token_query_parameter: String,
    /// A cookie a subscriber may carry its token in; null: none.
    pub cookie: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            default_subscribe: Access::Public,
            jwt_keys: vec![JwtKeyConfig {
                name: "default".into(),
                kid: None,
                algorithm: JwtAlgorithm::HS256,
                value: None,
                env: Some("SSEGATE_JWT_SECRET".into()),
                default: Some(DEV_JWT_SECRET.into()),
                public_key: None,
            }],
            audience: None,
            issuer: None,
            leeway: Duration::from_secs(30),
            token_query_parameter: "token".into(),
            cookie: None,
        }
    }
}

/// The development JWT secret of the shipped `gateway.yaml`, used while
/// `SSEGATE_JWT_SECRET` is unset.
pub const DEV_JWT_SECRET: &str = "dev-jwt-secret-change-me";

/// A JWT signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RS512,
    /// RSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// True for the HMAC algorithms (a shared secret, not a public key).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

/// One token verification key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// A name for logs.
    pub name: String,
    /// The `kid` tokens signed with this key carry; null: tokens without a `kid` (or
    /// with any, when no other key claims it) are tried against it.
    #[serde(default)]
    pub kid: Option<String>,
    /// The one algorithm this key verifies; a token naming another is refused (no
    /// algorithm confusion, no `none`).
    pub algorithm: JwtAlgorithm,
    /// HMAC: the shared secret written in the file. Prefer `env`.
    #[serde(default)]
    pub value: Option<String>,
    /// HMAC: the environment variable holding the shared secret.
    #[serde(default)]
    pub env: Option<String>,
    /// HMAC: the secret used while `env` is unset (development).
    #[serde(default)]
    pub default: Option<String>,
    /// RS*/PS*/ES*/EdDSA: a PEM file with the public key.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

impl JwtKeyConfig {
    /// The HMAC secret, as a key config (value, env, default).
    pub fn secret(&self) -> KeyConfig {
        KeyConfig {
            name: self.name.clone(),
            value: self.value.clone(),
            env: self.env.clone(),
            default: self.default.clone(),
        }
    }
}

/// Cross-origin requests (CORS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the gateway from a browser (`https://app.example`), or
    /// `*` for any. Empty: no cross-origin request is allowed (same-origin only).
    pub allowed_origins: Vec<String>,
    /// Allow credentials (cookies) on cross-origin requests; needs explicit origins.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(with = "duration_text")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

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

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `ssegate=debug`; `RUST_LOG` overrides it.
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

/// A configuration that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
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
    /// Parses YAML text and validates it.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            serde_yaml::from_str(text).map_err(|e| ConfigError::new(format!("{e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a YAML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
        Config::from_yaml(&text).map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
    }

    /// Checks what the types cannot: non-empty lists, sane bounds, resolvable keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::new(
                "listeners: at least one listener is needed",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for l in &self.listeners {
            if !names.insert(l.name.as_str()) {
                return Err(ConfigError::new(format!(
                    "listeners: the name '{}' is used twice",
                    l.name
                )));
            }
            if let Some(tls) = &l.tls {
                if tls.cert.is_some() != tls.key.is_some() {
                    return Err(ConfigError::new(format!(
                        "listeners.{}.tls: give both cert and key, or neither (self-signed)",
                        l.name
                    )));
                }
            }
        }
        if self.publish.keys.is_empty() {
            return Err(ConfigError::new(
                "publish.keys: at least one key is needed, or nobody can publish",
            ));
        }
        validate_keys("publish.keys", &self.publish.keys, 8)?;
        validate_keys("admin.keys", &self.admin.keys, 8)?;
        for k in &self.auth.jwt_keys {
            if k.algorithm.is_hmac() {
                if k.public_key.is_some() || (k.value.is_none() && k.env.is_none()) {
                    return Err(ConfigError::new(format!(
                        "auth.jwt_keys.{}: an HMAC key takes `value` or `env`, not `public_key`",
                        k.name
                    )));
                }
                if k.secret().resolve()?.secret.len() < 16 {
                    return Err(ConfigError::new(format!(
                        "auth.jwt_keys.{}: an HMAC secret must be at least 16 characters",
                        k.name
                    )));
                }
            } else if k.public_key.is_none() || k.value.is_some() || k.env.is_some() {
                return Err(ConfigError::new(format!(
                    "auth.jwt_keys.{}: {:?} takes `public_key` (a PEM file), not a secret",
                    k.name, k.algorithm
                )));
            }
        }
        let cors = &self.cors;
        if cors.allow_credentials && cors.allowed_origins.iter().any(|o| o == "*") {
            return Err(ConfigError::new(
                "cors: allow_credentials needs explicit origins, not `*`",
            ));
        }
        let r = &self.rate_limits;
        for (name, rate) in [
            ("publishes_per_second", r.publishes_per_second),
            ("connections_per_second", r.connections_per_second),
        ] {
            if rate.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                return Err(ConfigError::new(format!(
                    "rate_limits.{name}: more than 0 (or null)"
                )));
            }
        }
        let sse = &self.sse;
        if sse.heartbeat < Duration::from_secs(1) {
            return Err(ConfigError::new("sse.heartbeat: at least 1s"));
        }
        if sse.retry_min > sse.retry_max {
            return Err(ConfigError::new(
                "sse.retry_min must not exceed sse.retry_max",
            ));
        }
        if sse.max_batch_bytes < 1024 {
            return Err(ConfigError::new("sse.max_batch_bytes: at least 1024"));
        }
        let h = &self.history;
        let rule_bounds = self
            .channels
            .iter()
            .map(|r| ("channels", r.max_events, r.max_bytes));
        for (what, events, bytes) in
            std::iter::once(("history", Some(h.max_events), Some(h.max_bytes))).chain(rule_bounds)
        {
            if events == Some(0) || bytes == Some(0) {
                return Err(ConfigError::new(format!(
                    "{what}: max_events and max_bytes must be at least 1"
                )));
            }
        }
        for r in &self.channels {
            if !channel_name::is_valid_pattern(&r.pattern) {
                return Err(ConfigError::new(format!(
                    "channels: '{}' is not a channel pattern (channel characters, `*`, `{{sub}}`)",
                    r.pattern
                )));
            }
        }
        let l = &self.limits;
        if l.max_event_bytes > l.max_body_bytes {
            return Err(ConfigError::new(
                "limits.max_event_bytes must not exceed limits.max_body_bytes",
            ));
        }
        for (name, v) in [
            ("max_body_bytes", l.max_body_bytes),
            ("max_event_bytes", l.max_event_bytes),
            ("max_batch_events", l.max_batch_events),
            ("max_channels_per_connection", l.max_channels_per_connection),
            ("max_channels", l.max_channels),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("limits.{name}: at least 1")));
            }
        }
        if l.header_read_timeout.is_zero() || l.tls_handshake_timeout.is_zero() {
            return Err(ConfigError::new(
                "limits.header_read_timeout and limits.tls_handshake_timeout: more than 0",
            ));
        }
        if l.max_header_bytes < 8192 {
            return Err(ConfigError::new("limits.max_header_bytes: at least 8192"));
        }
        for (name, v) in [
            ("max_headers", Some(l.max_headers)),
            ("max_connections", l.max_connections),
            ("max_connections_per_ip", l.max_connections_per_ip),
            (
                "max_streams_per_connection",
                Some(l.max_streams_per_connection),
            ),
        ] {
            if v == Some(0) {
                return Err(ConfigError::new(format!(
                    "limits.{name}: at least 1 (or null)"
                )));
            }
        }
        let s = &self.slow_clients;
        if s.max_lag_events == 0 || s.max_lag_bytes == 0 {
            return Err(ConfigError::new(
                "slow_clients.max_lag_events and max_lag_bytes: at least 1",
            ));
        }
        if s.write_timeout < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "slow_clients.write_timeout: at least 100ms",
            ));
        }
        let k = &self.keepalive;
        if !(0.0..=1.0).contains(&k.max_connection_age_jitter) {
            return Err(ConfigError::new(
                "keepalive.max_connection_age_jitter: between 0 and 1",
            ));
        }
        if k.max_connection_age.is_some_and(|a| a.is_zero())
            || k.h2_ping_interval.is_some_and(|a| a.is_zero())
            || k.h2_ping_timeout.is_zero()
        {
            return Err(ConfigError::new(
                "keepalive: durations must be more than 0 (null turns an optional one off)",
            ));
        }
        Ok(())
    }
}

/// Checks that each key says where its secret comes from and that the secret is at
/// least `min_len` characters.
fn validate_keys(section: &str, keys: &[KeyConfig], min_len: usize) -> Result<(), ConfigError> {
    for k in keys {
        if k.value.is_none() && k.env.is_none() {
            return Err(ConfigError::new(format!(
                "{section}.{}: give `value` or `env`",
                k.name
            )));
        }
        if k.resolve()?.secret.len() < min_len {
            return Err(ConfigError::new(format!(
                "{section}.{}: a key must be at least {min_len} characters",
                k.name
            )));
        }
    }
    Ok(())
}

/// Durations written as text: `250ms`, `25s`, `10m`, `1h` (a bare number is seconds).
pub mod duration_text {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Parses `250ms`, `25s`, `10m`, `1h`, `2d` or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a duration like 500ms, 25s, 10m or 1h"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => return Err(format!("'{other}' is not a duration unit (ms, s, m, h, d)")),
        };
        let secs = n * scale;
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{text}' is out of range"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// Writes the shortest exact form.
    pub fn format(d: Duration) -> String {
        let ms = d.as_millis();
        if ms % 1000 != 0 {
            format!("{ms}ms")
        } else if ms % 3_600_000 == 0 && ms > 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            format!("{}m", ms / 60_000)
        } else {
            format!("{}s", ms / 1000)
        }
    }

    /// serde: writes a duration as text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// serde: reads a duration from text or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            N(f64),
        }
        match Text::deserialize(d)? {
            Text::S(s) => parse(&s).map_err(serde::de::Error::custom),
            Text::N(n) => parse(&n.to_string()).map_err(serde::de::Error::custom),
        }
    }
}

/// Optional durations written as text (see [`duration_text`]).
pub mod optional_duration_text {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// serde: writes an optional duration as text or null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&duration_text::format(*d)),
            None => s.serialize_none(),
        }
    }

    /// serde: reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "duration_text")] Duration);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(
            duration_text::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(duration_text::parse("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(duration_text::parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration_text::parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration_text::parse("3"), Ok(Duration::from_secs(3)));
        assert!(duration_text::parse("3 weeks").is_err());
        assert!(duration_text::parse("-1s").is_err());
        assert_eq!(duration_text::format(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text::format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::from_yaml("limits:\n  max_body_byte: 3\n").unwrap_err();
        assert!(err.to_string().contains("max_body_byte"), "{err}");
    }
}
