//! ssegate: an SSE fan-out gateway.
//!
//! Browsers hold `EventSource` connections to `GET /events`; apps `POST /publish`; each
//! event is encoded once and delivered to every subscriber of its channels, with history
//! and `Last-Event-ID` replay. See `docs/ARCHITECTURE.md` for how the parts fit.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod broker;
pub mod config;
pub mod http;
pub mod hub;
pub mod model;
pub mod observe;
pub mod policy;
pub mod stream;
pub mod transport;
pub mod wire;

pub use app::gateway::Gateway;
pub use config::Config;
