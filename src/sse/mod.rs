//! Server-sent events on the wire: frame encoding (`encode`), HTTP/1.1 chunk framing
//! for the lean path (`chunked`), and the streaming response body that writes a
//! subscription's frames and heartbeats (`body`).

pub mod body;
pub mod chunked;
pub mod encode;

pub use body::{Direct, SseBody, StreamContext, StreamSettings};
