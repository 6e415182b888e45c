//! Why things end or are refused: the closed lists whose names are metric labels.

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
