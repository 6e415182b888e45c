//! Why things end, are refused or fail authentication: the closed lists whose names
//! are metric labels.

/// Why an event stream ended; the label of `ssegate_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The client went away (or nothing else is known).
    Client = 0,
    /// The subscriber fell behind its lag bounds and the policy is `disconnect`.
    Lagged = 1,
    /// A write made no progress for `slow_clients.write_timeout`.
    Stalled = 2,
    /// Graceful shutdown.
    Shutdown = 3,
    /// A limit closed it.
    Limit = 4,
    /// An operator closed it.
    Kicked = 5,
    /// It reached `keepalive.max_connection_age`.
    MaxAge = 6,
    /// The subscriber's token expired.
    TokenExpired = 7,
}

impl CloseReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Client,
        CloseReason::Lagged,
        CloseReason::Stalled,
        CloseReason::Shutdown,
        CloseReason::Limit,
        CloseReason::Kicked,
        CloseReason::MaxAge,
        CloseReason::TokenExpired,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Lagged => "lagged",
            CloseReason::Stalled => "stalled",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Limit => "limit",
            CloseReason::Kicked => "kicked",
            CloseReason::MaxAge => "max_age",
            CloseReason::TokenExpired => "token_expired",
        }
    }

    /// The reason stored as `v` (`Client` for an unknown value).
    pub fn from_u8(v: u8) -> CloseReason {
        CloseReason::ALL
            .into_iter()
            .find(|r| *r as u8 == v)
            .unwrap_or(CloseReason::Client)
    }
}

/// Why a limit refused a request or a connection; the `reason` label of
/// `ssegate_refusals_total`, and the error code when the refusal is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The gateway holds its maximum of TCP connections.
    MaxConnections,
    /// The client's address holds its maximum of TCP connections.
    MaxConnectionsPerIp,
    /// The connection holds its maximum of event streams.
    MaxStreamsPerConnection,
    /// No whole request head arrived within the header read timeout.
    HeaderTimeout,
    /// The request head is over the size limit.
    HeaderTooLarge,
    /// The TLS handshake did not finish in time.
    TlsHandshakeTimeout,
    /// More channels at once than a connection or event may name.
    TooManyChannels,
    /// The hub holds its maximum of channels.
    ChannelLimit,
    /// The publish body is over `limits.max_body_bytes`.
    BodyTooLarge,
    /// One encoded event is over `limits.max_event_bytes`.
    EventTooLarge,
    /// A publish batch holds more than `limits.max_batch_events`.
    BatchTooLarge,
    /// A request was pipelined behind an event stream.
    PipeliningRefused,
    /// A publisher or an address is over its rate limit.
    RateLimited,
    /// The request's `Origin` is not allowed.
    OriginRefused,
    /// A request body did not arrive within `limits.body_read_timeout` or arrived
    /// slower than `limits.min_body_bytes_per_second`.
    BodyTimeout,
    /// A publish reuses one of its publisher's idempotency keys for a different event.
    IdempotencyConflict,
    /// A new event stream while the gateway drains (it is shutting down).
    Draining,
}

impl RefusalReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [RefusalReason; 17] = [
        RefusalReason::MaxConnections,
        RefusalReason::MaxConnectionsPerIp,
        RefusalReason::MaxStreamsPerConnection,
        RefusalReason::HeaderTimeout,
        RefusalReason::HeaderTooLarge,
        RefusalReason::TlsHandshakeTimeout,
        RefusalReason::TooManyChannels,
        RefusalReason::ChannelLimit,
        RefusalReason::BodyTooLarge,
        RefusalReason::EventTooLarge,
        RefusalReason::BatchTooLarge,
        RefusalReason::PipeliningRefused,
        RefusalReason::RateLimited,
        RefusalReason::OriginRefused,
        RefusalReason::BodyTimeout,
        RefusalReason::IdempotencyConflict,
        RefusalReason::Draining,
    ];

    /// The metric label, which is also the error code of an answered refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::MaxConnections => "max_connections",
            RefusalReason::MaxConnectionsPerIp => "max_connections_per_ip",
            RefusalReason::MaxStreamsPerConnection => "max_streams_per_connection",
            RefusalReason::HeaderTimeout => "header_timeout",
            RefusalReason::HeaderTooLarge => "header_too_large",
            RefusalReason::TlsHandshakeTimeout => "tls_handshake_timeout",
            RefusalReason::TooManyChannels => "too_many_channels",
            RefusalReason::ChannelLimit => "channel_limit",
            RefusalReason::BodyTooLarge => "body_too_large",
            RefusalReason::EventTooLarge => "event_too_large",
            RefusalReason::BatchTooLarge => "batch_too_large",
            RefusalReason::PipeliningRefused => "pipelining_refused",
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::OriginRefused => "origin_refused",
            RefusalReason::BodyTimeout => "body_timeout",
            RefusalReason::IdempotencyConflict => "idempotency_conflict",
            RefusalReason::Draining => "draining",
        }
    }
}

/// Why authentication or authorization failed; the `kind` label of
/// `ssegate_auth_failures_total`. More precise than what the client is told: an
/// expired token is `token_expired` (the client should fetch a new one), every other
/// way a token is wrong is the one code `token_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// `POST /publish` without a key or token.
    PublishKeyMissing,
    /// `POST /publish` with a key that matches none (and no valid token).
    PublishKeyInvalid,
    /// `/admin/…` without a key.
    AdminKeyMissing,
    /// `/admin/…` with a key that matches none.
    AdminKeyInvalid,
    /// A channel needs a token and none came.
    TokenMissing,
    /// The token does not open the channel (subscribe) or grant it (publish).
    ChannelForbidden,
    /// A channel rule closes the channel to every publisher.
    PublishForbidden,
    /// The token is not a JWT, names a disallowed algorithm, or its claims are wrong.
    TokenMalformed,
    /// No configured key matches the token's `kid` and `alg`.
    TokenUnknownKey,
    /// The token's signature does not verify.
    TokenBadSignature,
    /// The token's `exp` has passed (beyond the leeway).
    TokenExpired,
    /// The token's `nbf` is still ahead.
    TokenNotYetValid,
    /// The token's `aud` does not name this gateway.
    TokenWrongAudience,
    /// The token's `iss` is not the configured issuer.
    TokenWrongIssuer,
}

impl AuthFailure {
    /// Every kind, for pre-registering metric labels.
    pub const ALL: [AuthFailure; 14] = [
        AuthFailure::PublishKeyMissing,
        AuthFailure::PublishKeyInvalid,
        AuthFailure::AdminKeyMissing,
        AuthFailure::AdminKeyInvalid,
        AuthFailure::TokenMissing,
        AuthFailure::ChannelForbidden,
        AuthFailure::PublishForbidden,
        AuthFailure::TokenMalformed,
        AuthFailure::TokenUnknownKey,
        AuthFailure::TokenBadSignature,
        AuthFailure::TokenExpired,
        AuthFailure::TokenNotYetValid,
        AuthFailure::TokenWrongAudience,
        AuthFailure::TokenWrongIssuer,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::PublishKeyMissing => "publish_key_missing",
            AuthFailure::PublishKeyInvalid => "publish_key_invalid",
            AuthFailure::AdminKeyMissing => "admin_key_missing",
            AuthFailure::AdminKeyInvalid => "admin_key_invalid",
            AuthFailure::TokenMissing => "token_missing",
            AuthFailure::ChannelForbidden => "channel_forbidden",
            AuthFailure::PublishForbidden => "publish_forbidden",
            AuthFailure::TokenMalformed => "token_malformed",
            AuthFailure::TokenUnknownKey => "token_unknown_key",
            AuthFailure::TokenBadSignature => "token_bad_signature",
            AuthFailure::TokenExpired => "token_expired",
            AuthFailure::TokenNotYetValid => "token_not_yet_valid",
            AuthFailure::TokenWrongAudience => "token_wrong_audience",
            AuthFailure::TokenWrongIssuer => "token_wrong_issuer",
        }
    }

    /// The error code the client is told: the kind itself, except that every way a
    /// token can be wrong but expiry is just `token_invalid` (which key, which check:
    /// not the client's business). Expiry is told apart: the client's remedy is a new
    /// token, not a bug hunt.
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::TokenMalformed
            | AuthFailure::TokenUnknownKey
            | AuthFailure::TokenBadSignature
            | AuthFailure::TokenNotYetValid
            | AuthFailure::TokenWrongAudience
            | AuthFailure::TokenWrongIssuer => "token_invalid",
            other => other.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_distinct() {
        let refusals: HashSet<_> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(refusals.len(), RefusalReason::ALL.len());
        let kinds: HashSet<_> = AuthFailure::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds.len(), AuthFailure::ALL.len());
        let closes: HashSet<_> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(closes.len(), CloseReason::ALL.len());
    }

    #[test]
    fn token_kinds_are_told_as_token_invalid_but_expiry() {
        assert_eq!(AuthFailure::TokenExpired.code(), "token_expired");
        assert_eq!(AuthFailure::TokenBadSignature.code(), "token_invalid");
        assert_eq!(AuthFailure::TokenNotYetValid.code(), "token_invalid");
        assert_eq!(AuthFailure::TokenMissing.code(), "token_missing");
        assert_eq!(AuthFailure::PublishKeyInvalid.code(), "publish_key_invalid");
    }
}
