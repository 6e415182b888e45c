//! Server-sent events on the wire: frame encoding (`encode`) and the streaming response
//! body that writes a subscription's frames and heartbeats (`body`).

pub mod body;
pub mod encode;

pub use body::{SseBody, StreamContext, StreamSettings};
