//! The `auth` section: token (JWT) verification keys, their algorithms and claims checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::channels::Access;
use super::keys::{KeyConfig, SecretLookup};
use super::secret::Secret;
use super::serde_helpers::duration_text;
use super::ConfigError;

/// Tokens: JWTs that let subscribers read private channels and publishers publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Access for channels no rule in `channels` matches.
    pub default_subscribe: Access,
    /// The keys tokens are verified with; several (told apart by `kid`) for rotation.
    /// Empty: no token is accepted.
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// When set, a token's `aud` must contain it.
    pub audience: Option<String>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "duration_text")]
    pub leeway: Duration,
    /// The query parameter a subscriber may pass its token in (browsers' EventSource
    /// cannot set headers).
    pub token_query_parameter: String,
    /// A cookie a subscriber may carry its token in; null: none.
    pub cookie: Option<String>,
    /// Start even when a listener is reachable beyond loopback while a publish, admin
    /// or JWT key is a development default (publicly known): for a demo only. Off, the
    /// gateway and `--check` refuse such a config.
    pub allow_dev_keys_on_public_address: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            default_subscribe: Access::Public,
            jwt_keys: vec![JwtKeyConfig {
                name: "default".into(),
                kid: None,
                algorithm: JwtAlgorithm::HS256,
                value: None,
                env: Some("SSEGATE_JWT_SECRET".into()),
                default: Some(DEV_JWT_SECRET.into()),
                public_key: None,
            }],
            audience: None,
            issuer: None,
            leeway: Duration::from_secs(30),
            token_query_parameter: "token".into(),
            cookie: None,
            allow_dev_keys_on_public_address: false,
        }
    }
}

/// The development JWT secret of the shipped `gateway.yaml`, used while
/// `SSEGATE_JWT_SECRET` is unset.
pub const DEV_JWT_SECRET: &str = "dev-jwt-secret-change-me";

/// A JWT signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RS512,
    /// RSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// True for the HMAC algorithms (a shared secret, not a public key).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

/// One token verification key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// A name for logs.
    pub name: String,
    /// The `kid` tokens signed with this key carry; null: tokens without a `kid` (or
    /// with any, when no other key claims it) are tried against it.
    #[serde(default)]
    pub kid: Option<String>,
    /// The one algorithm this key verifies; a token naming another is refused (no
    /// algorithm confusion, no `none`).
    pub algorithm: JwtAlgorithm,
    /// HMAC: the shared secret written in the file. Prefer `env`.
    #[serde(default)]
    pub value: Option<Secret>,
    /// HMAC: the environment variable holding the shared secret.
    #[serde(default)]
    pub env: Option<String>,
    /// HMAC: the secret used while `env` is unset (development).
    #[serde(default)]
    pub default: Option<Secret>,
    /// RS*/PS*/ES*/EdDSA: a PEM file with the public key.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

impl JwtKeyConfig {
    /// The HMAC secret, as a key config (value, env, default).
    pub fn secret(&self) -> KeyConfig {
        KeyConfig {
            name: self.name.clone(),
            value: self.value.clone(),
            env: self.env.clone(),
            default: self.default.clone(),
        }
    }
}

impl AuthConfig {
    /// Checks the JWT keys: HMAC keys take a secret of at least 16 characters (where
    /// `secret` knows it), the others a public key file and no secret.
    pub(crate) fn validate(&self, secret: SecretLookup<'_>) -> Result<(), ConfigError> {
        for k in &self.jwt_keys {
            if k.algorithm.is_hmac() {
                if k.public_key.is_some() || (k.value.is_none() && k.env.is_none()) {
                    return Err(ConfigError::new(format!(
                        "auth.jwt_keys.{}: an HMAC key takes `value` or `env`, not `public_key`",
                        k.name
                    )));
                }
                if secret(&k.secret())?.is_some_and(|s| s.len() < 16) {
                    return Err(ConfigError::new(format!(
                        "auth.jwt_keys.{}: an HMAC secret must be at least 16 characters",
                        k.name
                    )));
                }
            } else if k.public_key.is_none() || k.value.is_some() || k.env.is_some() {
                return Err(ConfigError::new(format!(
                    "auth.jwt_keys.{}: {:?} takes `public_key` (a PEM file), not a secret",
                    k.name, k.algorithm
                )));
            }
        }
        Ok(())
    }
}
