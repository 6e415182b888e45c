//! What a config's keys resolve to: the publish and admin secrets and the token
//! verifier, and the config checked with every secret as the environment gives it.

use crate::config::{
    Config, ConfigError, KeyConfig, DEV_ADMIN_KEY, DEV_JWT_SECRET, DEV_PUBLISH_KEY,
};
use crate::policy::jwt::Verifier;
use crate::policy::keys::ResolvedKey;

/// What a config's keys resolve to: the publish and admin secrets and the token
/// verifier. Built at start and on every reload.
#[derive(Debug)]
pub struct Secrets {
    /// The publish keys.
    pub publish: Vec<ResolvedKey>,
    /// The admin keys.
    pub admin: Vec<ResolvedKey>,
    /// Verifies subscriber and publisher tokens.
    pub verifier: Verifier,
    /// The JWT HMAC secrets that came from their development default.
    pub jwt_from_default: Vec<ResolvedKey>,
}

impl Secrets {
    /// Checks `config` with every secret resolved ([`validate`]), then resolves the
    /// keys and builds the token verifier (reading its public key files): everything
    /// start-up, reload and `ssegate --check` need before anything is bound.
    pub fn resolve(config: &Config) -> Result<Secrets, ConfigError> {
        validate(config)?;
        let resolve = |keys: &[KeyConfig]| {
            keys.iter()
                .map(ResolvedKey::resolve)
                .collect::<Result<Vec<_>, _>>()
        };
        let jwt_secrets: Vec<_> = config
            .auth
            .jwt_keys
            .iter()
            .filter(|k| k.algorithm.is_hmac())
            .map(|k| k.secret())
            .collect();
        let publish = resolve(&config.publish.keys)?;
        let admin = resolve(&config.admin.keys)?;
        let jwt = resolve(&jwt_secrets)?;
        refuse_public_dev_keys(
            config,
            &[("publish", &publish), ("admin", &admin), ("JWT", &jwt)],
        )?;
        Ok(Secrets {
            publish,
            admin,
            verifier: Verifier::from_config(&config.auth).map_err(ConfigError::new)?,
            jwt_from_default: jwt.into_iter().filter(|k| k.from_default).collect(),
        })
    }
}

/// True for a key anyone can know: its secret came from the config's development
/// `default` (its variable is unset), or it is one of the shipped development secrets
/// however it was set.
fn is_dev_key(key: &ResolvedKey) -> bool {
    key.from_default
        || [DEV_PUBLISH_KEY, DEV_ADMIN_KEY, DEV_JWT_SECRET].contains(&key.secret.as_str())
}

/// Refuses a config in which a listener is reachable beyond loopback (`0.0.0.0`, a
/// public or private address) while a key is a development key, unless
/// `auth.allow_dev_keys_on_public_address` opts in.
fn refuse_public_dev_keys(
    config: &Config,
    roles: &[(&str, &Vec<ResolvedKey>)],
) -> Result<(), ConfigError> {
    if config.auth.allow_dev_keys_on_public_address {
        return Ok(());
    }
    let Some(listener) = config
        .listeners
        .iter()
        .find(|l| !l.address.ip().is_loopback())
    else {
        return Ok(());
    };
    let dev: Vec<String> = roles
        .iter()
        .flat_map(|(role, keys)| {
            keys.iter()
                .filter(|k| is_dev_key(k))
                .map(move |k| format!("{role} key '{}'", k.name))
        })
        .collect();
    if dev.is_empty() {
        return Ok(());
    }
    Err(ConfigError::new(format!(
        "listener {} binds {}, reachable beyond loopback, while {} {} a development \
         default that anyone can read in the docs: set real keys (SSEGATE_PUBLISH_KEY, \
         SSEGATE_ADMIN_KEY, SSEGATE_JWT_SECRET, or each key's env or value), bind \
         127.0.0.1, or, for a demo only, set auth.allow_dev_keys_on_public_address: true",
        listener.name,
        listener.address,
        dev.join(", "),
        if dev.len() == 1 { "is" } else { "are" },
    )))
}

/// The secret of `key` as resolved from the file or the environment: the
/// [`SecretLookup`](crate::config::SecretLookup) that start-up, reload and
/// `ssegate --check` validate a config with (`Config::from_file_with`).
pub fn resolved_secret(key: &KeyConfig) -> Result<Option<String>, ConfigError> {
    ResolvedKey::resolve(key).map(|r| Some(r.secret))
}

/// Checks `config` as [`Config::validate`] does, with every key's secret resolved from
/// the environment: a key whose variable is unset with no default, or whose secret is
/// too short, is refused here.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    config.validate_with(&resolved_secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable no test sets.
    const UNSET: &str = "SSEGATE_TEST_VARIABLE_NOBODY_SETS";

    fn from_env(default: Option<&str>) -> KeyConfig {
        KeyConfig {
            name: "k".into(),
            value: None,
            env: Some(UNSET.into()),
            default: default.map(Into::into),
        }
    }

    #[test]
    fn validates_with_resolved_secrets_in_the_same_order() {
        // A short default behind an unset variable: only the resolved secret tells.
        let mut config = Config::default();
        config.publish.keys = vec![from_env(Some("short"))];
        config.validate().unwrap();
        assert_eq!(
            validate(&config).unwrap_err().to_string(),
            "publish.keys.k: a key must be at least 8 characters"
        );
        // An unresolvable key is named before a later section's problem.
        config.publish.keys = vec![from_env(None)];
        config.sse.max_batch_bytes = 1;
        assert_eq!(
            validate(&config).unwrap_err().to_string(),
            format!("key 'k': environment variable {UNSET} is not set and no default is given")
        );
        config.auth.jwt_keys[0].env = Some(UNSET.into());
        config.auth.jwt_keys[0].default = Some("fifteen-chars!!".into());
        config.publish.keys = vec![from_env(Some("long-enough"))];
        assert_eq!(
            validate(&config).unwrap_err().to_string(),
            "auth.jwt_keys.default: an HMAC secret must be at least 16 characters"
        );
    }
}
