//! Start-up: from a validated [`Config`] to running listeners, the broker, the hub and
//! its sweeper. Used by `main` and by the tests (with port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::broker::{IdempotencyWindow, MemoryBroker};
use crate::config::Config;
use crate::hub::Hub;
use crate::listener::BoundListener;
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::tls;

/// How often expired history is dropped and idle channels forgotten.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);

/// Most idempotency keys remembered at once.
pub const IDEMPOTENCY_MAX_KEYS: usize = 100_000;

/// The gateway could not start.
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
/// their runtime ends).
pub struct Gateway {
    /// The listeners, in config order.
    pub listeners: Vec<RunningListener>,
    /// The shared state (hub, broker, metrics).
    pub shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Binds every listener and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        config.validate().map_err(|e| StartError(e.to_string()))?;
        let mut publish_keys = Vec::new();
        for k in &config.publish.keys {
            publish_keys.push(k.resolve().map_err(|e| StartError(e.to_string()))?);
        }
        let epoch = fastrand::u32(..);
        let hub = Arc::new(Hub::new(
            epoch,
            config.history.clone(),
            config.limits.max_channels,
        ));
        let broker = Arc::new(MemoryBroker::new(
            hub.clone(),
            IdempotencyWindow::new(IDEMPOTENCY_WINDOW, IDEMPOTENCY_MAX_KEYS),
        ));
        let mut bound = Vec::new();
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let (acceptor, self_signed) = match &l.tls {
                None => (None, None),
                Some(tls_config) => {
                    let loaded = tls::load(tls_config)
                        .map_err(|e| StartError(format!("listener {}: {e}", l.name)))?;
                    (
                        Some(TlsAcceptor::from(loaded.server_config)),
                        loaded.self_signed,
                    )
                }
            };
            let listener = BoundListener::bind(&l.name, l.address, acceptor)
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
            bound.push(listener);
        }
        warn_about_dev_keys(&config, &publish_keys);
        let shared = Arc::new(Shared {
            config,
            hub: hub.clone(),
            broker,
            metrics: Arc::new(Metrics::new()),
            publish_keys,
        });
        let mut tasks: Vec<JoinHandle<()>> = bound
            .into_iter()
            .map(|l| tokio::spawn(l.run(shared.clone())))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                hub.sweep(std::time::Instant::now());
            }
        }));
        Ok(Gateway {
            listeners,
            shared,
            tasks,
        })
    }

    /// The address of the listener named `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn warn_about_dev_keys(config: &Config, keys: &[crate::config::ResolvedKey]) {
    let public = config
        .listeners
        .iter()
        .any(|l| !l.address.ip().is_loopback());
    for key in keys.iter().filter(|k| k.from_default) {
        if public {
            tracing::error!(
                key = %key.name,
                "!!! publish key '{}' is the development default and a listener is reachable \
                 beyond loopback: anyone can publish. Set its environment variable. !!!",
                key.name
            );
        } else {
            tracing::info!(key = %key.name, "publish key uses its development default (loopback only)");
        }
    }
}
