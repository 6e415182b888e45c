//! What every request handler shares (config, hub, broker, metrics, keys, drain), and
//! what it knows about the connection a request came on.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::broker::Broker;
use crate::config::{Config, ResolvedKey, Routes};
use crate::conn_limits::ConnectionLimiter;
use crate::drain::Drain;
use crate::hub::Hub;
use crate::jwt::Verifier;
use crate::log_budget::LogBudget;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::registry::StreamRegistry;

/// The gateway's shared state, one per process.
pub struct Shared {
    /// The validated configuration; replaced whole on SIGHUP.
    config: RwLock<Arc<Config>>,
    /// The publish keys with their secrets resolved; replaced on SIGHUP.
    publish_keys: RwLock<Arc<Vec<ResolvedKey>>>,
    /// The admin keys with their secrets resolved; replaced on SIGHUP.
    admin_keys: RwLock<Arc<Vec<ResolvedKey>>>,
    /// The token verifier; replaced on SIGHUP.
    verifier: RwLock<Arc<Verifier>>,
    /// Publish rate limit, by publisher.
    pub publish_rate: RateLimiter<String>,
    /// New-connection rate limit, by client IP.
    pub connection_rate: RateLimiter<IpAddr>,
    /// Channels, history, subscriptions.
    pub hub: Arc<Hub>,
    /// Assigns ids and accepts events.
    pub broker: Arc<dyn Broker>,
    /// Every exported metric.
    pub metrics: Arc<Metrics>,
    /// Set once a graceful shutdown has begun.
    pub drain: Arc<Drain>,
    /// Open TCP connections, in total and per IP.
    pub limiter: Arc<ConnectionLimiter>,
    /// Open event streams, for the admin API.
    pub registry: Arc<StreamRegistry>,
    /// Rate limit on connection log lines.
    pub log_budget: Arc<LogBudget>,
}

/// What a config's keys resolve to: the publish and admin secrets and the token
/// verifier. Built at start and on every reload.
#[derive(Debug)]
pub struct Secrets {
    /// The publish keys.
    pub publish: Vec<ResolvedKey>,
    /// The admin keys.
    pub admin: Vec<ResolvedKey>,
    /// Verifies subscriber and publisher tokens.
    pub verifier: Verifier,
    /// The JWT HMAC secrets that came from their development default.
    pub jwt_from_default: Vec<ResolvedKey>,
}

impl Shared {
    /// Shared state from its parts.
    pub fn new(
        config: Config,
        secrets: Secrets,
        hub: Arc<Hub>,
        broker: Arc<dyn Broker>,
        metrics: Arc<Metrics>,
    ) -> Shared {
        let drain = Arc::new(Drain::new(config.drain.period));
        let log_budget = Arc::new(LogBudget::new(config.log.max_connection_lines_per_second));
        Shared {
            config: RwLock::new(Arc::new(config)),
            publish_keys: RwLock::new(Arc::new(secrets.publish)),
            admin_keys: RwLock::new(Arc::new(secrets.admin)),
            verifier: RwLock::new(Arc::new(secrets.verifier)),
            publish_rate: RateLimiter::default(),
            connection_rate: RateLimiter::default(),
            hub,
            broker,
            metrics,
            drain,
            limiter: ConnectionLimiter::new(),
            registry: StreamRegistry::new(),
            log_budget,
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// The publish keys in force now.
    pub fn publish_keys(&self) -> Arc<Vec<ResolvedKey>> {
        self.publish_keys.read().clone()
    }

    /// The admin keys in force now (empty: the admin API is off).
    pub fn admin_keys(&self) -> Arc<Vec<ResolvedKey>> {
        self.admin_keys.read().clone()
    }

    /// Puts a reloaded configuration and its keys in force (SIGHUP). Listeners and the
    /// hub's history bounds are fixed at start; the caller warns when those differ.
    pub fn reload(&self, config: Config, secrets: Secrets) {
        *self.config.write() = Arc::new(config);
        *self.publish_keys.write() = Arc::new(secrets.publish);
        *self.admin_keys.write() = Arc::new(secrets.admin);
        *self.verifier.write() = Arc::new(secrets.verifier);
    }

    /// The token verifier in force now.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.read().clone()
    }
}

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

    fn from_u8(v: u8) -> CloseReason {
        CloseReason::ALL
            .into_iter()
            .find(|r| *r as u8 == v)
            .unwrap_or(CloseReason::Client)
    }
}

/// What the gateway knows about one TCP connection; shared by its I/O wrapper, its
/// requests and its streams.
#[derive(Debug)]
pub struct ConnState {
    /// The client's address.
    pub peer: SocketAddr,
    /// True on a TLS listener.
    pub tls: bool,
    /// The endpoints its listener serves.
    pub routes: Routes,
    /// Event streams open on this connection (more than one only on HTTP/2).
    pub streams: AtomicUsize,
    /// Set when the first request reached a handler (ends the first-request deadline).
    pub first_request_seen: AtomicBool,
    close_reason: AtomicU8,
}

impl ConnState {
    /// A new connection's state.
    pub fn new(peer: SocketAddr, tls: bool, routes: Routes) -> Arc<ConnState> {
        Arc::new(ConnState {
            peer,
            tls,
            routes,
            streams: AtomicUsize::new(0),
            first_request_seen: AtomicBool::new(false),
            close_reason: AtomicU8::new(CloseReason::Client as u8),
        })
    }

    /// Counts one more event stream on this connection, unless `max` are open already.
    /// The slot uncounts it when dropped.
    pub fn try_open_stream(self: &Arc<Self>, max: usize) -> Option<StreamSlot> {
        let open = self.streams.fetch_add(1, Ordering::AcqRel);
        if open >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot { conn: self.clone() })
    }

    /// Records why the connection is being closed (the first reason given sticks).
    pub fn set_close_reason(&self, reason: CloseReason) {
        let _ = self.close_reason.compare_exchange(
            CloseReason::Client as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Why the connection is closing, `Client` unless the gateway closed it.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::from_u8(self.close_reason.load(Ordering::Acquire))
    }
}

/// One event stream counted on its connection; dropping it uncounts the stream.
#[derive(Debug)]
pub struct StreamSlot {
    conn: Arc<ConnState>,
}

impl StreamSlot {
    /// The connection the stream is on.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.conn
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::AcqRel);
    }
}
