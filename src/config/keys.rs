//! The key sections: the publish and admin keys and where each secret comes from.

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::ConfigError;

/// What a check knows of a key's secret: the secret, `None` where it cannot be known
/// without reading the environment (config reads none), or why the key has no secret.
/// [`KeyConfig::written_secret`] knows only what the file says; the policy layer passes
/// one that resolves the environment as start-up and reload do.
pub type SecretLookup<'a> = &'a dyn Fn(&KeyConfig) -> Result<Option<String>, ConfigError>;

/// Publishing: `POST /publish` needs one of these keys as `Authorization: Bearer <key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// The accepted publish keys. Each is a literal `value`, or read from the environment
    /// variable `env` (with an optional `default` used when the variable is unset).
    pub keys: Vec<KeyConfig>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            keys: vec![KeyConfig::from_env("SSEGATE_PUBLISH_KEY", DEV_PUBLISH_KEY)],
        }
    }
}

/// The development publish key of the shipped `gateway.yaml`, used when
/// `SSEGATE_PUBLISH_KEY` is unset. Fine on a laptop; a loud warning elsewhere.
pub const DEV_PUBLISH_KEY: &str = "dev-publish-key";

/// One key (publish or admin) and where its secret comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs (the key itself is never logged).
    pub name: String,
    /// The key written in the file. Prefer `env` so no secret sits in the file.
    #[serde(default)]
    pub value: Option<Secret>,
    /// The environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// The key used when `env` is unset or empty; a development default.
    #[serde(default)]
    pub default: Option<Secret>,
}

impl KeyConfig {
    /// A key named `default` read from `env`, with a development `default`.
    pub fn from_env(env: &str, default: &str) -> KeyConfig {
        KeyConfig {
            name: "default".into(),
            value: None,
            env: Some(env.into()),
            default: Some(default.into()),
        }
    }

    /// The secret as written in the file (`value`), if it is: a [`SecretLookup`] that
    /// reads no environment, for checking a config on its own.
    pub fn written_secret(&self) -> Result<Option<String>, ConfigError> {
        Ok(self.value.as_ref().map(|s| s.expose().to_string()))
    }
}

/// The admin API: JSON under `/admin/`, behind `Authorization: Bearer <admin key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The accepted admin keys; an empty list turns the admin API off.
    pub keys: Vec<KeyConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            keys: vec![KeyConfig::from_env("SSEGATE_ADMIN_KEY", DEV_ADMIN_KEY)],
        }
    }
}

/// The development admin key of the shipped `gateway.yaml`, used when
/// `SSEGATE_ADMIN_KEY` is unset.
pub const DEV_ADMIN_KEY: &str = "dev-admin-key";

impl PublishConfig {
    /// Checks the publish keys: at least one, each valid.
    pub(crate) fn validate(&self, secret: SecretLookup<'_>) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::new(
                "publish.keys: at least one key is needed, or nobody can publish",
            ));
        }
        validate_keys("publish.keys", &self.keys, 8, secret)
    }
}

impl AdminConfig {
    /// Checks the admin keys (none turns the admin API off).
    pub(crate) fn validate(&self, secret: SecretLookup<'_>) -> Result<(), ConfigError> {
        validate_keys("admin.keys", &self.keys, 8, secret)
    }
}

/// Checks that each key says where its secret comes from and that the secret, where
/// `secret` knows it, is at least `min_len` characters.
fn validate_keys(
    section: &str,
    keys: &[KeyConfig],
    min_len: usize,
    secret: SecretLookup<'_>,
) -> Result<(), ConfigError> {
    for k in keys {
        if k.value.is_none() && k.env.is_none() {
            return Err(ConfigError::new(format!(
                "{section}.{}: give `value` or `env`",
                k.name
            )));
        }
        if secret(k)?.is_some_and(|s| s.len() < min_len) {
            return Err(ConfigError::new(format!(
                "{section}.{}: a key must be at least {min_len} characters",
                k.name
            )));
        }
    }
    Ok(())
}
