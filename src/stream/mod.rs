//! The stream layer: one subscriber. The streaming body that writes a subscription's
//! frames and heartbeats, the connection it is counted on, and the drain that ends it.
//! Imports `observe` and below.

pub mod body;
pub mod connection;
pub mod drain;
pub mod watchdog;

pub use body::{PushOutcome, SseBody, StreamContext, StreamSettings};
