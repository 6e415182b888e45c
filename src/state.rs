//! What every request handler shares: config, hub, broker, metrics, keys.

use std::sync::Arc;

use crate::broker::Broker;
use crate::config::{Config, ResolvedKey};
use crate::hub::Hub;
use crate::metrics::Metrics;

/// The gateway's shared state, one per process.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Channels, history, subscriptions.
    pub hub: Arc<Hub>,
    /// Assigns ids and accepts events.
    pub broker: Arc<dyn Broker>,
    /// Every exported metric.
    pub metrics: Arc<Metrics>,
    /// The publish keys with their secrets resolved.
    pub publish_keys: Vec<ResolvedKey>,
}

/// Facts about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// True on a TLS listener.
    pub tls: bool,
}
