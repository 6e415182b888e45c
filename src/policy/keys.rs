//! Static keys: the publish and admin keys sent as `Authorization: Bearer <key>`, their
//! secrets read from the file or the environment. Tokens are verified in `jwt`, channel
//! rules applied in `access`.

use std::fmt;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::{ConfigError, KeyConfig};
use crate::model::error::ApiError;
use crate::model::reasons::AuthFailure;

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

impl ResolvedKey {
    /// Reads the secret of `key` from the file or the environment.
    pub fn resolve(key: &KeyConfig) -> Result<ResolvedKey, ConfigError> {
        let from_env = key
            .env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|v| !v.is_empty());
        let (secret, from_default) = match (&key.value, from_env, &key.default) {
            (Some(v), _, _) => (v.expose().to_string(), false),
            (None, Some(v), _) => (v, false),
            (None, None, Some(d)) => (d.expose().to_string(), true),
            (None, None, None) => {
                return Err(ConfigError::new(format!(
                    "key '{}': environment variable {} is not set and no default is given",
                    key.name,
                    key.env.as_deref().unwrap_or("(none)")
                )))
            }
        };
        Ok(ResolvedKey {
            name: key.name.clone(),
            secret,
            from_default,
        })
    }
}

/// What a key check is for: names the error codes and the metric kind.
#[derive(Debug, Clone, Copy)]
pub enum KeyRole {
    /// `POST /publish`.
    Publish,
    /// `/admin/…`.
    Admin,
}

/// What is wrong with the key a request sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// No `Authorization` header.
    Missing,
    /// A key that matches none of the role's keys.
    Invalid,
}

impl KeyRole {
    /// The 401 answering `e` for this role: a code naming what is wrong (missing or
    /// invalid), never which key came close.
    pub fn error(self, e: KeyError) -> ApiError {
        let (missing, invalid, what) = match self {
            KeyRole::Publish => (
                AuthFailure::PublishKeyMissing,
                AuthFailure::PublishKeyInvalid,
                "publish key",
            ),
            KeyRole::Admin => (
                AuthFailure::AdminKeyMissing,
                AuthFailure::AdminKeyInvalid,
                "admin key",
            ),
        };
        match e {
            KeyError::Missing => ApiError::auth(
                missing,
                format!("send the {what} as Authorization: Bearer <key>"),
            ),
            KeyError::Invalid => ApiError::auth(invalid, format!("the {what} is not valid")),
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Checks the request's bearer key against `keys` and returns the matching key's
/// name.
pub fn check_key(headers: &HeaderMap, keys: &[ResolvedKey]) -> Result<String, KeyError> {
    if !headers.contains_key(AUTHORIZATION) {
        return Err(KeyError::Missing);
    }
    let token = bearer(headers).unwrap_or("");
    // Every key is compared, each in constant time, so timing tells nothing.
    let mut matched = None;
    for key in keys {
        if constant_time_eq(key.secret.as_bytes(), token.as_bytes()) && matched.is_none() {
            matched = Some(key.name.clone());
        }
    }
    matched.ok_or(KeyError::Invalid)
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable no test sets.
    const UNSET: &str = "SSEGATE_TEST_VARIABLE_NOBODY_SETS";

    fn unset_env_key(default: Option<&str>) -> KeyConfig {
        KeyConfig {
            name: "k".into(),
            value: None,
            env: Some(UNSET.into()),
            default: default.map(Into::into),
        }
    }

    fn keys() -> Vec<ResolvedKey> {
        vec![ResolvedKey {
            name: "k".into(),
            secret: "secret-key-1".into(),
            from_default: false,
        }]
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn resolves_value_then_environment_then_default() {
        let mut written = unset_env_key(Some("the-default"));
        written.value = Some("written-key".into());
        let key = ResolvedKey::resolve(&written).unwrap();
        assert_eq!(
            (key.secret.as_str(), key.from_default),
            ("written-key", false)
        );
        let key = ResolvedKey::resolve(&unset_env_key(Some("the-default"))).unwrap();
        assert_eq!(
            (key.secret.as_str(), key.from_default),
            ("the-default", true)
        );
        assert_eq!(
            ResolvedKey::resolve(&unset_env_key(None))
                .unwrap_err()
                .to_string(),
            format!("key 'k': environment variable {UNSET} is not set and no default is given")
        );
        assert!(!format!("{key:?}").contains("the-default"), "masked");
    }

    #[test]
    fn bearer_keys() {
        let k = keys();
        assert!(check_key(&headers(Some("Bearer secret-key-1")), &k).is_ok());
        let code = |h| KeyRole::Admin.error(check_key(&h, &k).unwrap_err()).code();
        assert_eq!(code(headers(None)), "admin_key_missing");
        assert_eq!(
            code(headers(Some("Bearer secret-key-2"))),
            "admin_key_invalid"
        );
        assert_eq!(code(headers(Some("Basic c2VjcmV0"))), "admin_key_invalid");
        assert_eq!(code(headers(Some("Bearer "))), "admin_key_invalid");
    }
}
