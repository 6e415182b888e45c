//! What a config's keys resolve to: the publish and admin secrets and the token verifier.

use crate::config::ResolvedKey;
use crate::policy::jwt::Verifier;

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
