//! The broker decides event ids and makes accepted events durable as far as it can:
//! in memory by default (`memory`), in Redis when several nodes share one sequence
//! (later). Either way it hands committed events to the [`Hub`](crate::hub::Hub).

mod idempotency;
mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::hub::Encoded;
use crate::model::event_id::EventId;
use crate::wire::{chunked, sse};

pub use idempotency::{fingerprint, Fingerprint, IdempotencyWindow, Lookup};
pub use memory::MemoryBroker;

/// An accepted event as the hub stores it: its SSE frame (with its `id:` line) as the
/// payload, inside one HTTP/1.1 chunk as the envelope, so that pushed HTTP/1.1 streams
/// write it as it is (one `send()` per delivery) and every other stream writes the SSE.
/// Encoded once per event, whatever the number of channels and subscribers.
pub fn encode_frame(id: EventId, body: &Bytes) -> Encoded {
    let (chunk, payload) = chunked::chunk_with_range(&sse::frame_with_id(id, body));
    Encoded::enveloped(chunk, payload)
}

/// A boxed future, so brokers can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One event ready for the broker: validated, encoded once, waiting for its id.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEvent {
    /// The channels it goes to (valid names, no duplicates).
    pub channels: Vec<Arc<str>>,
    /// Its SSE lines after the `id:` line: `event:` (if any), `data:` lines, blank line.
    pub body: Bytes,
    /// When set, a second publish of the same event with the same key by the same
    /// publisher inside the window returns the first one's id instead of publishing
    /// again; the key reused for a different event is refused.
    pub idempotency_key: Option<String>,
    /// Subscribers whose token has this subject do not receive the event (the sender
    /// does not get its own message back).
    pub exclude_subject: Option<Arc<str>>,
}

/// What a publish accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id of each event, in order (a retried idempotency key gets its first id).
    pub ids: Vec<EventId>,
    /// How many of them were new (not retries of a remembered idempotency key).
    pub new_events: usize,
}

/// Why a publish was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Creating the events' channels would exceed `limits.max_channels`.
    ChannelLimit {
        /// The limit.
        max_channels: usize,
    },
    /// The event at `index` of the batch reuses an idempotency key of the same publisher
    /// for a different event.
    IdempotencyConflict {
        /// The event's position in the batch.
        index: usize,
    },
    /// The broker cannot accept events right now (e.g. its backing store is down).
    Unavailable(String),
}

/// Assigns ids, keeps history durable, fans events out to the hub.
pub trait Broker: Send + Sync + 'static {
    /// Accepts a batch from `publisher` (who scopes the idempotency keys): all of it
    /// (ids in order) or none of it.
    fn publish(
        &self,
        publisher: &str,
        events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Published, PublishError>>;

    /// The id of the newest accepted event (seq 0 before the first).
    fn head(&self) -> EventId;

    /// True when publishes can be accepted.
    fn is_ready(&self) -> bool;
}
