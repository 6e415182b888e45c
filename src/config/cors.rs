//! The `cors` section: which browser origins may call the gateway.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::duration_text;
use super::ConfigError;

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

impl CorsConfig {
    /// Checks that credentials are only allowed for explicit origins.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.allow_credentials && self.allowed_origins.iter().any(|o| o == "*") {
            return Err(ConfigError::new(
                "cors: allow_credentials needs explicit origins, not `*`",
            ));
        }
        Ok(())
    }
}
