//! The listener sections: sockets, their TLS and the endpoints each serves.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl ListenerConfig {
    /// Checks one listener: a TLS section gives both files or neither.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return Err(ConfigError::new(format!(
                    "listeners.{}.tls: give both cert and key, or neither (self-signed)",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// Checks the `listeners` list: at least one, names unique, each listener valid.
pub(crate) fn validate_listeners(listeners: &[ListenerConfig]) -> Result<(), ConfigError> {
    if listeners.is_empty() {
        return Err(ConfigError::new(
            "listeners: at least one listener is needed",
        ));
    }
    let mut names = HashSet::new();
    for l in listeners {
        if !names.insert(l.name.as_str()) {
            return Err(ConfigError::new(format!(
                "listeners: the name '{}' is used twice",
                l.name
            )));
        }
        l.validate()?;
    }
    Ok(())
}
