//! ssegate: an SSE fan-out gateway.
//!
//! Browsers hold `EventSource` connections to `GET /events`; apps `POST /publish`; each
//! event is encoded once and delivered to every subscriber of its channels, with history
//! and `Last-Event-ID` replay. See `docs/ARCHITECTURE.md` for how the parts fit.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod admin;
pub mod auth;
pub mod broker;
pub mod channel_name;
pub mod config;
pub mod conn_io;
pub mod conn_limits;
pub mod cors;
pub mod drain;
pub mod error;
pub mod event_id;
pub mod hot_metrics;
pub mod http;
pub mod hub;
pub mod jwt;
pub mod lean_h1;
pub mod lean_stream;
pub mod listener;
pub mod log_budget;
pub mod metrics;
pub mod publish;
pub mod rate_limit;
pub mod registry;
pub mod server;
pub mod sse;
pub mod state;
pub mod tls;

pub use config::Config;
pub use server::Gateway;
