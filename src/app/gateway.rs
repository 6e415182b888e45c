//! Start-up, reload and shutdown: from a validated [`Config`] to running listeners, the
//! broker, the hub and its sweeper; SIGHUP's reload; SIGTERM's graceful drain. Used by
//! `main` and by the tests (with port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::restart_only;
use crate::broker::{IdempotencyWindow, MemoryBroker};
use crate::config::{Config, FD_RESERVE};
use crate::http::shared::Shared;
use crate::hub::{HistoryBounds, HistoryOverride, HistoryPolicy, Hub};
use crate::observe::metrics::Metrics;
use crate::policy::admission::ConnectionLimiter;
use crate::policy::secrets::Secrets;
use crate::transport::accept::{AcceptContext, BoundListener, SharedAcceptor};
use crate::transport::tls;

/// How often expired history is dropped and idle channels forgotten.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);

/// Most idempotency keys remembered at once.
pub const IDEMPOTENCY_MAX_KEYS: usize = 100_000;

/// Time allowed after the drain period for the last connections to close.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The gateway could not start (or reload).
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A listener as it runs.
#[derive(Debug, Clone)]
pub struct RunningListener {
    /// Its configured name.
    pub name: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// True for TLS.
    pub tls: bool,
    /// The self-signed certificate it generated, if it did.
    pub self_signed: Option<CertificateDer<'static>>,
}

/// A started gateway. Dropping it stops accepting (open connections live on until
/// their runtime ends); [`Gateway::shutdown`] drains gracefully.
pub struct Gateway {
    /// The listeners, in config order.
    pub listeners: Vec<RunningListener>,
    /// The shared state (hub, broker, metrics).
    pub shared: Arc<Shared>,
    /// Open TCP connections, in total and per IP.
    pub limiter: Arc<ConnectionLimiter>,
    acceptors: Vec<Option<SharedAcceptor>>,
    accept_tasks: Vec<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// The hub's history bounds from the configuration: the `history` section as the
/// defaults, each channel rule's `max_*` fields as an override for its pattern.
fn history_policy(config: &Config) -> HistoryPolicy {
    HistoryPolicy {
        defaults: HistoryBounds {
            max_events: config.history.max_events,
            max_age: config.history.max_age,
            max_bytes: config.history.max_bytes,
        },
        overrides: config
            .channels
            .iter()
            .map(|rule| HistoryOverride {
                pattern: rule.pattern.clone(),
                max_events: rule.max_events,
                max_age: rule.max_age,
                max_bytes: rule.max_bytes,
            })
            .collect(),
        max_total_bytes: config.history.max_total_bytes,
        publisher_share: config.history.publisher_share,
    }
}

/// The open-files limit now: (soft, hard).
pub fn open_files_limit() -> (u64, u64) {
    rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024))
}

/// Raises the soft open-files limit to the hard one; returns (before, after) soft.
pub fn raise_open_files_limit() -> (u64, u64) {
    let (before, hard) = open_files_limit();
    let after = rlimit::increase_nofile_limit(hard).unwrap_or(before);
    (before, after)
}

impl Gateway {
    /// What `ssegate --check` runs: every check [`Gateway::start`] makes before it
    /// binds, on the same code: the config with its secrets resolved, the token
    /// verifier with its key files, and each configured certificate loaded.
    pub fn check(config: &Config) -> Result<(), StartError> {
        Secrets::resolve(config).map_err(|e| StartError(e.to_string()))?;
        for l in &config.listeners {
            // A listener without a certificate gets a self-signed one at start: nothing
            // to load, and no reason to make one here.
            if let Some(tls_config) = l.tls.as_ref().filter(|t| t.cert.is_some()) {
                tls::load(tls_config)
                    .map_err(|e| StartError(format!("listener {}: {e}", l.name)))?;
            }
        }
        Ok(())
    }

    /// Binds every listener and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        let secrets = Secrets::resolve(&config).map_err(|e| StartError(e.to_string()))?;
        let epoch = fastrand::u32(..);
        let hub = Arc::new(Hub::new(
            epoch,
            history_policy(&config),
            config.limits.max_channels,
        ));
        let broker = Arc::new(MemoryBroker::new(
            hub.clone(),
            IdempotencyWindow::new(IDEMPOTENCY_WINDOW, IDEMPOTENCY_MAX_KEYS),
        ));
        let mut bound = Vec::new();
        let mut listeners = Vec::new();
        let mut acceptors = Vec::new();
        for l in &config.listeners {
            let (acceptor, self_signed) = match &l.tls {
                None => (None, None),
                Some(tls_config) => {
                    let loaded = tls::load(tls_config)
                        .map_err(|e| StartError(format!("listener {}: {e}", l.name)))?;
                    let acceptor = Arc::new(RwLock::new(TlsAcceptor::from(loaded.server_config)));
                    (Some(acceptor), loaded.self_signed)
                }
            };
            let listener = BoundListener::bind(&l.name, l.address, acceptor.clone(), l.routes)
                .await
                .map_err(|e| {
                    StartError(format!(
                        "listener {}: cannot bind {}: {e}",
                        l.name, l.address
                    ))
                })?;
            if self_signed.is_some() {
                tracing::warn!(
                    listener = %l.name,
                    "no certificate configured: serving a self-signed certificate for localhost \
                     (browsers will warn; set tls.cert and tls.key for production)"
                );
            }
            tracing::info!(listener = %l.name, addr = %listener.local_addr, tls = l.tls.is_some(), "listening");
            listeners.push(RunningListener {
                name: l.name.clone(),
                addr: listener.local_addr,
                tls: l.tls.is_some(),
                self_signed,
            });
            acceptors.push(acceptor);
            bound.push(listener);
        }
        warn_about_dev_keys(&config, &secrets);
        let default_max_connections = default_max_connections();
        tracing::info!(
            max_connections = config
                .limits
                .max_connections
                .unwrap_or(default_max_connections),
            "connection cap"
        );
        let shared = Arc::new(Shared::new(
            config,
            secrets,
            hub.clone(),
            broker,
            Arc::new(Metrics::new()),
        ));
        let limiter = shared.limiter.clone();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let context = AcceptContext {
            shared: shared.clone(),
            limiter: limiter.clone(),
            default_max_connections,
            shutdown: shutdown_rx,
        };
        let accept_tasks = bound
            .into_iter()
            .map(|l| tokio::spawn(l.run(context.clone())))
            .collect();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                hub.sweep(std::time::Instant::now());
            }
        });
        Ok(Gateway {
            listeners,
            shared,
            limiter,
            acceptors,
            accept_tasks,
            sweeper,
            shutdown,
        })
    }

    /// The address of the listener named `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.addr)
    }

    /// Puts a new configuration in force without dropping connections: certificates,
    /// publish keys, limits, SSE and slow-client settings. What is read only at start
    /// (listeners, history bounds, …: [`restart_only::keep_in_force`]) keeps its running
    /// value in the new snapshot, so `/admin/config` shows what is in force, and the
    /// fields whose change needs a restart are logged by name.
    pub fn reload(&self, mut config: Config) -> Result<(), StartError> {
        let secrets = Secrets::resolve(&config).map_err(|e| StartError(e.to_string()))?;
        let live = self.shared.live();
        let restart = restart_only::keep_in_force(&live.config, &mut config);
        if !restart.is_empty() {
            tracing::warn!(
                fields = %restart.join(", "),
                "reload: these changes need a restart, the running values stay in force: {}",
                restart.join(", ")
            );
        }
        // Load every certificate before putting any in force: all or nothing.
        let mut loaded = Vec::new();
        for (l, acceptor) in config.listeners.iter().zip(&self.acceptors) {
            if let (Some(tls_config), Some(acceptor)) = (&l.tls, acceptor) {
                let tls = tls::load(tls_config)
                    .map_err(|e| StartError(format!("listener {}: {e}", l.name)))?;
                loaded.push((acceptor.clone(), TlsAcceptor::from(tls.server_config)));
            }
        }
        for (slot, acceptor) in loaded {
            *slot.write() = acceptor;
        }
        warn_about_dev_keys(&config, &secrets);
        self.shared.reload(config, secrets);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Graceful drain, in two steps. For the drain period the gateway keeps accepting:
    /// `/readyz` answers 503 (load balancers stop sending), a new event stream gets 503
    /// with `Retry-After`, publishes are served, and every open stream ends at its own
    /// random moment within the period (with a fresh `retry:`). Then the listeners
    /// close, every connection is told to shut down gracefully (in-flight requests
    /// finish), and this returns when every connection has closed or after
    /// [`DRAIN_GRACE`]. Returns the number of connections still open at the end.
    pub async fn shutdown(self) -> usize {
        let period = self.shared.drain.period();
        self.shared.drain.begin();
        self.shared.hub.wake_all();
        tracing::info!(
            open = self.limiter.open(),
            ?period,
            "draining: /readyz answers 503, new streams are refused, publishes are served"
        );
        tokio::time::sleep(period).await;
        for t in &self.accept_tasks {
            t.abort();
        }
        let _ = self.shutdown.send(true);
        tracing::info!(open = self.limiter.open(), "drain period over: closing");
        let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
        while self.limiter.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.limiter.open();
        tracing::info!(left, "drained");
        left
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.accept_tasks {
            t.abort();
        }
        self.sweeper.abort();
    }
}

/// The connection cap when none is configured: the open-files limit less a reserve.
fn default_max_connections() -> usize {
    let (soft, _) = open_files_limit();
    usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(FD_RESERVE)
        .max(1)
}

fn warn_about_dev_keys(config: &Config, secrets: &Secrets) {
    let public = config
        .listeners
        .iter()
        .any(|l| !l.address.ip().is_loopback());
    let roles = [
        ("publish", &secrets.publish),
        ("admin", &secrets.admin),
        ("JWT", &secrets.jwt_from_default),
    ];
    for (role, key) in roles
        .iter()
        .flat_map(|(role, ks)| ks.iter().map(move |k| (*role, k)))
        .filter(|(_, k)| k.from_default)
    {
        if public {
            tracing::error!(
                key = %key.name,
                "!!! {role} key '{}' is the development default and a listener is reachable \
                 beyond loopback: anyone can use it. Set its environment variable. !!!",
                key.name
            );
        } else {
            tracing::info!(key = %key.name, "{role} key uses its development default (loopback only)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelRule;

    #[test]
    fn channel_rules_override_history_first_match_wins() {
        let mut config = Config::default();
        let mut chat = ChannelRule::new("chat:*");
        chat.max_events = Some(10);
        config.channels = vec![chat, ChannelRule::new("*")];
        let policy = history_policy(&config);
        assert_eq!(policy.bounds_for("chat:1").max_events, 10);
        assert_eq!(policy.bounds_for("chat:1").max_age, config.history.max_age);
        assert_eq!(policy.bounds_for("news").max_events, 1000);
    }
}
