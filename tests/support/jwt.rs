//! JWTs and their keys: minting tokens (HS256 secrets, the RS256 key pair of
//! `tests/fixtures/`), hand-crafted unsigned tokens, and the `jwt_keys` config entries.

use std::path::{Path, PathBuf};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;
use ssegate::config::{JwtAlgorithm, JwtKeyConfig};

/// The HS256 secret of the test gateways' default key.
pub const SECRET: &str = "test-jwt-secret-0123456789";

/// A second HS256 secret (rotation), and one the gateways never know.
pub const SECRET_2: &str = "test-jwt-secret-second-key";
pub const WRONG_SECRET: &str = "not-the-gateway-secret-0000";

/// The RSA key pair committed as fixtures (generated once with `openssl genrsa 2048`).
pub const RSA_PRIVATE_PEM: &str = include_str!("../fixtures/rsa_private.pem");
pub const RSA_PUBLIC_PEM: &str = include_str!("../fixtures/rsa_public.pem");

/// The path of the committed RSA public key.
pub fn rsa_public_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa_public.pem")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Claims with subject `sub` that expire in ten minutes.
pub fn claims(sub: &str) -> Value {
    serde_json::json!({"sub": sub, "exp": now() + 600})
}

/// Claims with subject `sub`, ten minutes of life, and `ssegate` grants.
pub fn claims_with(sub: &str, subscribe: &[&str], publish: &[&str]) -> Value {
    serde_json::json!({
        "sub": sub,
        "exp": now() + 600,
        "ssegate": {"subscribe": subscribe, "publish": publish},
    })
}

/// A token signed with `alg` and `key`, with an optional `kid`.
pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("the token encodes")
}

/// An HS256 token signed with `secret` (no `kid`).
pub fn hs256(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        claims,
    )
}

/// An HS256 token with the gateway's [`SECRET`] for subject `sub`.
pub fn token_for(sub: &str) -> String {
    hs256(SECRET, &claims(sub))
}

/// An RS256 token signed with the fixture's private key.
pub fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("the RSA fixture");
    sign(Algorithm::RS256, &key, None, claims)
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: header `{"alg":"none"}`, the claims, an empty signature.
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// An HMAC verification key with its secret in the config.
pub fn hmac_key(name: &str, kid: Option<&str>, secret: &str) -> JwtKeyConfig {
    JwtKeyConfig {
        name: name.into(),
        kid: kid.map(str::to_string),
        algorithm: JwtAlgorithm::HS256,
        value: Some(secret.into()),
        env: None,
        default: None,
        public_key: None,
    }
}

/// A public-key verification key read from `path`.
pub fn pem_key(name: &str, algorithm: JwtAlgorithm, path: &Path) -> JwtKeyConfig {
    JwtKeyConfig {
        name: name.into(),
        kid: None,
        algorithm,
        value: None,
        env: None,
        default: None,
        public_key: Some(path.to_path_buf()),
    }
}

/// `Authorization: Bearer <token>` as a header pair's value.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
