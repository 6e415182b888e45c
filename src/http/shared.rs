//! What every request handler shares: the live snapshot (configuration and keys), the
//! hub, the broker, metrics, limiters, the drain and the open-streams table.

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

/// What a reload replaces, all at once: the configuration and what its keys resolve
/// to. A request takes the snapshot once, at its start, and uses it throughout, so it
/// never pairs one configuration with another's keys.
#[derive(Debug)]
pub struct Live {
    /// The validated configuration.
    pub config: Config,
    /// The publish keys with their secrets resolved.
    pub publish_keys: Vec<ResolvedKey>,
    /// The admin keys with their secrets resolved (empty: the admin API is off).
    pub admin_keys: Vec<ResolvedKey>,
    /// Verifies subscriber and publisher tokens.
    pub verifier: Verifier,
}

impl Live {
    /// The snapshot of a configuration and its resolved keys.
    pub fn new(config: Config, secrets: Secrets) -> Live {
        Live {
            config,
            publish_keys: secrets.publish,
            admin_keys: secrets.admin,
            verifier: secrets.verifier,
        }
    }
}

/// The gateway's shared state, one per process.
pub struct Shared {
    /// The configuration and keys in force; replaced whole on SIGHUP. A plain lock
    /// around an `Arc`: a read is one uncontended lock and a reference count, once per
    /// request or connection, far from the fan-out path; not worth a dependency.
    live: RwLock<Arc<Live>>,
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
            live: RwLock::new(Arc::new(Live::new(config, secrets))),
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

    /// The configuration and keys in force now. Take it once per request (or
    /// connection) and pass it down.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().clone()
    }

    /// Puts a reloaded configuration and its keys in force (SIGHUP), in one swap.
    /// Listeners and the hub's history bounds are fixed at start; the caller warns when
    /// those differ.
    pub fn reload(&self, config: Config, secrets: Secrets) {
        let live = Arc::new(Live::new(config, secrets));
        let old = std::mem::replace(&mut *self.live.write(), live);
        drop(old); // outside the lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{IdempotencyWindow, MemoryBroker};
    use crate::hub::{HistoryBounds, HistoryPolicy};

    fn secrets(config: &Config, key: &str) -> Secrets {
        Secrets {
            publish: vec![ResolvedKey {
                name: key.into(),
                secret: format!("{key}-secret"),
                from_default: false,
            }],
            admin: Vec::new(),
            verifier: Verifier::from_config(&config.auth).unwrap(),
            jwt_from_default: Vec::new(),
        }
    }

    #[test]
    fn reload_swaps_config_and_keys_together() {
        let config = Config::default();
        let bounds = HistoryBounds {
            max_events: 10,
            max_age: std::time::Duration::from_secs(10),
            max_bytes: 1024,
        };
        let hub = Arc::new(Hub::new(
            1,
            HistoryPolicy::uniform(bounds),
            config.limits.max_channels,
        ));
        let broker = Arc::new(MemoryBroker::new(
            hub.clone(),
            IdempotencyWindow::new(std::time::Duration::from_secs(1), 10),
        ));
        let old_secrets = secrets(&config, "old");
        let shared = Shared::new(config, old_secrets, hub, broker, Arc::default());
        let before = shared.live();

        let mut config = Config::default();
        config.limits.max_body_bytes += 1;
        let new_secrets = secrets(&config, "new");
        shared.reload(config, new_secrets);

        let after = shared.live();
        assert_eq!(
            after.config.limits.max_body_bytes,
            before.config.limits.max_body_bytes + 1
        );
        assert_eq!(after.publish_keys[0].name, "new");
        // A request that took its snapshot before the reload keeps old config and keys.
        assert_eq!(before.publish_keys[0].name, "old");
        assert_eq!(
            before.config.limits.max_body_bytes,
            Config::default().limits.max_body_bytes
        );
    }
}
