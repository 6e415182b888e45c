//! Static keys: the publish and admin keys sent as `Authorization: Bearer <key>`.
//! Tokens are verified in `jwt`, channel rules applied in `access`.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::ResolvedKey;
use crate::model::error::ApiError;
use crate::model::reasons::AuthFailure;

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
