//! The log line of a request answered with an error before any stream: its status,
//! code and fault (and the precise auth failure), through the same budget as the
//! stream lines. Never the token, the key or the URL: only what the error names.

use std::net::SocketAddr;

use crate::model::error::{ApiError, Fault};
use crate::observe::log_budget::LogBudget;

/// Logs `e`, answered to `peer`, when `budget` allows a line now: `warn` when the
/// gateway or a service it depends on is at fault, `info` when the client is.
pub fn log_refusal(budget: &LogBudget, peer: SocketAddr, e: &ApiError) {
    if !budget.allow() {
        return;
    }
    let status = e.status().as_u16();
    let code = e.code();
    let fault = e.fault().as_str();
    let kind = e.auth_failure().map(|k| k.as_str());
    if e.fault() == Fault::Client {
        tracing::info!(%peer, status, code, fault, kind, "request refused");
    } else {
        tracing::warn!(%peer, status, code, fault, kind, "request refused");
    }
}
