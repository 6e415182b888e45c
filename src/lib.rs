//! ssegate: an SSE fan-out gateway.
//!
//! Browsers hold `EventSource` connections to `GET /events`; apps `POST /publish`; each
//! event is encoded once and delivered to every subscriber of its channels, with history
//! and `Last-Event-ID` replay. See `docs/ARCHITECTURE.md` for how the parts fit.
//!
//! # Layout
//!
//! One folder per layer; a file uses only its own layer and the layers below it
//! (`tests/layering.rs` checks this, and that no two files import each other):
//!
//! | layer | its job | may use |
//! |---|---|---|
//! | `app/` | start-up, reload (SIGHUP), drain (SIGTERM), the background sweeps | all below |
//! | `transport/` | accept loops, socket options, TLS, the pushed HTTP/1.1 stream path, hyper serving | `http/` and below |
//! | `http/` | routes and handlers: subscribe, publish, ops, admin; responses; the handlers' shared state | `stream/` and below |
//! | `stream/` | one subscriber: the streaming body, the connection it is counted on, the drain | `observe/` and below |
//! | `observe/` | metrics (with sharded counters), the log-line budget, the open-streams table | `policy/` and below |
//! | `policy/` | keys and secrets, JWT, channel access rules, CORS, rate limits, admission | `broker/` and below |
//! | `broker/` | event ids and acceptance: the memory broker, idempotency | `hub/` and below |
//! | `hub/` | channels, history rings, positions, push passes; no sockets, no HTTP | `config/` and below (in fact only `model/`) |
//! | `config/` | YAML to typed, validated sections | `wire/` and below |
//! | `wire/` | stateless bytes: SSE encoding, HTTP/1.1 chunk framing | `model/` |
//! | `model/` | ids, channel names, errors with their fault, reason enums | nothing |
//!
//! Two kinds of event stream share the hub: *polled* streams, whose body hyper polls
//! after a channel's wake-up (HTTP/2, TLS), and *pushed* streams, which the channel's
//! *push passes* write after each commit (HTTP/1.1 on plain listeners).

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
