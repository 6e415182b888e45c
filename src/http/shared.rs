//! What every request handler shares: the live configuration and keys, the hub, the
//! broker, metrics, limiters, the drain and the open-streams table.

use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::broker::Broker;
use crate::config::Config;
use crate::hub::Hub;
use crate::observe::log_budget::LogBudget;
use crate::observe::metrics::Metrics;
use crate::observe::registry::StreamRegistry;
use crate::policy::admission::ConnectionLimiter;
use crate::policy::jwt::Verifier;
use crate::policy::keys::ResolvedKey;
use crate::policy::rate_limit::RateLimiter;
use crate::policy::secrets::Secrets;
use crate::stream::drain::Drain;

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
