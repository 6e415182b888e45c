//! JWT verification for subscriber and publisher tokens.
//!
//! Each configured key verifies exactly one algorithm, so a token cannot choose how it
//! is checked: `alg: none` is not an algorithm here, and a token that names HS256 is
//! never checked against an RSA public key used as an HMAC secret. Keys are found by
//! the token's `kid` (several keys at once for rotation); `exp` is required, `nbf`,
//! `aud` and `iss` are checked when configured, with a small leeway.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, JwtAlgorithm, JwtKeyConfig};
use crate::model::error::ApiError;
use crate::model::reasons::AuthFailure;
use crate::policy::keys::ResolvedKey;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The subject (`sub`): binds `{sub}` in channel patterns and `exclude_subject`.
    pub subject: Option<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// Channel patterns the holder may subscribe to (`ssegate.subscribe`).
    pub subscribe: Vec<String>,
    /// Channel patterns the holder may publish to (`ssegate.publish`).
    pub publish: Vec<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    ssegate: Grants,
}

#[derive(Deserialize, Default)]
struct Grants {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

/// Why a token was refused; the metric label says which, the client hears that the
/// token expired or else only that it is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT at all, an unknown / disallowed algorithm (`none`), or claims that
    /// are not what they must be (`exp` missing, wrong types).
    Malformed,
    /// No configured key matches its `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `aud` does not name this gateway (or is missing while an audience is configured).
    WrongAudience,
    /// `iss` is not the configured issuer (or is missing while one is configured).
    WrongIssuer,
}

impl TokenError {
    /// The kind of auth failure it is counted as (the `kind` label of
    /// `ssegate_auth_failures_total`).
    pub fn kind(self) -> AuthFailure {
        match self {
            TokenError::Malformed => AuthFailure::TokenMalformed,
            TokenError::UnknownKey => AuthFailure::TokenUnknownKey,
            TokenError::BadSignature => AuthFailure::TokenBadSignature,
            TokenError::Expired => AuthFailure::TokenExpired,
            TokenError::NotYetValid => AuthFailure::TokenNotYetValid,
            TokenError::WrongAudience => AuthFailure::TokenWrongAudience,
            TokenError::WrongIssuer => AuthFailure::TokenWrongIssuer,
        }
    }
}

/// A refused token is answered 401 (`token_expired`, or `token_invalid` for every other
/// kind) and counted by its kind.
impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        let message = match e {
            TokenError::Expired => "the token has expired",
            _ => "the token is not valid",
        };
        ApiError::auth(e.kind(), message)
    }
}

struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens with the configured keys.
pub struct Verifier {
    keys: Vec<VerifyKey>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway_seconds: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn decoding_key(k: &JwtKeyConfig) -> Result<DecodingKey, String> {
    if k.algorithm.is_hmac() {
        let secret = ResolvedKey::resolve(&k.secret()).map_err(|e| e.to_string())?;
        return Ok(DecodingKey::from_secret(secret.secret.as_bytes()));
    }
    let path = k
        .public_key
        .as_ref()
        .ok_or_else(|| format!("jwt key {}: no public_key", k.name))?;
    let pem = std::fs::read(path)
        .map_err(|e| format!("jwt key {}: cannot read {}: {e}", k.name, path.display()))?;
    let key = match k.algorithm {
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(&pem),
        JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
        _ => DecodingKey::from_rsa_pem(&pem),
    };
    key.map_err(|e| {
        format!(
            "jwt key {}: {} is not a usable public key: {e}",
            k.name,
            path.display()
        )
    })
}

impl Verifier {
    /// Builds the verifier from the config (reads public key files).
    pub fn from_config(auth: &AuthConfig) -> Result<Verifier, String> {
        let keys = auth
            .jwt_keys
            .iter()
            .map(|k| {
                Ok(VerifyKey {
                    kid: k.kid.clone(),
                    algorithm: algorithm(k.algorithm),
                    key: decoding_key(k)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Verifier {
            keys,
            audience: auth.audience.clone(),
            issuer: auth.issuer.clone(),
            leeway_seconds: auth.leeway.as_secs(),
        })
    }

    /// True when at least one key is configured.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    (_, None) => true,
                    (None, Some(_)) => false,
                }
        });
        let mut last = TokenError::UnknownKey;
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            // A configured audience or issuer must be present, not merely not wrong.
            let mut required = vec!["exp"];
            if self.audience.is_some() {
                required.push("aud");
            }
            if self.issuer.is_some() {
                required.push("iss");
            }
            validation.set_required_spec_claims(&required);
            validation.leeway = self.leeway_seconds;
            validation.validate_nbf = true;
            match &self.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            if let Some(iss) = &self.issuer {
                validation.set_issuer(&[iss]);
            }
            match jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    return Ok(Claims {
                        subject: c.sub,
                        expires_at: c.exp,
                        subscribe: c.ssegate.subscribe,
                        publish: c.ssegate.publish,
                    });
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => TokenError::BadSignature,
                        ErrorKind::ExpiredSignature => TokenError::Expired,
                        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                        ErrorKind::InvalidAudience => TokenError::WrongAudience,
                        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                        ErrorKind::InvalidAlgorithm => TokenError::UnknownKey,
                        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                            TokenError::WrongAudience
                        }
                        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => {
                            TokenError::WrongIssuer
                        }
                        _ => TokenError::Malformed,
                    };
                    // A bad signature may verify under the next key (rotation); any
                    // other failure is the token's own and final.
                    if last != TokenError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn verifier(secret: &str) -> Verifier {
        let mut auth = AuthConfig::default();
        auth.jwt_keys[0].env = None;
        auth.jwt_keys[0].default = None;
        auth.jwt_keys[0].value = Some(secret.into());
        Verifier::from_config(&auth).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn verifies_claims_and_refuses_by_kind() {
        let v = verifier("a-secret-of-16-chars");
        let good = token(
            "a-secret-of-16-chars",
            serde_json::json!({"sub": "42", "exp": now() + 60, "ssegate": {"subscribe": ["chat:*"]}}),
        );
        let claims = v.verify(&good).unwrap();
        assert_eq!(claims.subject.as_deref(), Some("42"));
        assert_eq!(claims.subscribe, vec!["chat:*".to_string()]);
        let wrong_key = token(
            "another-secret-16-ch",
            serde_json::json!({"exp": now() + 60}),
        );
        assert_eq!(v.verify(&wrong_key), Err(TokenError::BadSignature));
        let expired = token(
            "a-secret-of-16-chars",
            serde_json::json!({"exp": now() - 120}),
        );
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
        let no_exp = token("a-secret-of-16-chars", serde_json::json!({"sub": "x"}));
        assert_eq!(
            v.verify(&no_exp),
            Err(TokenError::Malformed),
            "exp is required"
        );
        let early = token(
            "a-secret-of-16-chars",
            serde_json::json!({"exp": now() + 600, "nbf": now() + 300}),
        );
        assert_eq!(v.verify(&early), Err(TokenError::NotYetValid));
        assert_eq!(v.verify("not.a.jwt"), Err(TokenError::Malformed));
        // alg: none, with and without a signature part.
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let body = "eyJleHAiOjk5OTk5OTk5OTl9"; // {"exp":9999999999}
        assert_eq!(
            v.verify(&format!("{none_header}.{body}.")),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            v.verify(&format!("{none_header}.{body}")),
            Err(TokenError::Malformed)
        );
    }
}
