//! The policy layer: who may do what. Static keys and the secrets they resolve to, JWT
//! verification, channel access rules, CORS, rate limits and connection admission.
//! Imports `config`, `wire` and `model`.

pub mod access;
pub mod admission;
pub mod cors;
pub mod jwt;
pub mod keys;
pub mod rate_limit;
pub mod secrets;
