//! The key sections: the publish and admin keys and where each secret comes from.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    pub value: Option<String>,
    /// The environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// The key used when `env` is unset or empty; a development default.
    #[serde(default)]
    pub default: Option<String>,
}

/// A publish key once its secret is known.
#[derive(Clone, PartialEq)]
pub struct ResolvedKey {
    /// The key's name from the config.
    pub name: String,
    /// The secret.
    pub secret: String,
    /// True when the secret is the `default` because the environment variable was unset.
    pub from_default: bool,
}

impl fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("name", &self.name)
            .field("secret", &"<masked>")
            .field("from_default", &self.from_default)
            .finish()
    }
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

    /// Reads the secret from the file or the environment.
    pub fn resolve(&self) -> Result<ResolvedKey, ConfigError> {
        let from_env = self
            .env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|v| !v.is_empty());
        let (secret, from_default) = match (&self.value, from_env, &self.default) {
            (Some(v), _, _) => (v.clone(), false),
            (None, Some(v), _) => (v, false),
            (None, None, Some(d)) => (d.clone(), true),
            (None, None, None) => {
                return Err(ConfigError::new(format!(
                    "key '{}': environment variable {} is not set and no default is given",
                    self.name,
                    self.env.as_deref().unwrap_or("(none)")
                )))
            }
        };
        Ok(ResolvedKey {
            name: self.name.clone(),
            secret,
            from_default,
        })
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::new(
                "publish.keys: at least one key is needed, or nobody can publish",
            ));
        }
        validate_keys("publish.keys", &self.keys, 8)
    }
}

impl AdminConfig {
    /// Checks the admin keys (none turns the admin API off).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        validate_keys("admin.keys", &self.keys, 8)
    }
}

/// Checks that each key says where its secret comes from and that the secret is at
/// least `min_len` characters.
fn validate_keys(section: &str, keys: &[KeyConfig], min_len: usize) -> Result<(), ConfigError> {
    for k in keys {
        if k.value.is_none() && k.env.is_none() {
            return Err(ConfigError::new(format!(
                "{section}.{}: give `value` or `env`",
                k.name
            )));
        }
        if k.resolve()?.secret.len() < min_len {
            return Err(ConfigError::new(format!(
                "{section}.{}: a key must be at least {min_len} characters",
                k.name
            )));
        }
    }
    Ok(())
}
