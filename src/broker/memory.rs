//! The in-memory broker: one node, no other service. Ids come from a counter under one
//! lock, which also orders the appends to the hub, so commits are always in sequence.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{
    encode_frame, BoxFuture, Broker, IdempotencyWindow, PreparedEvent, PublishError, Published,
};
use crate::hub::Hub;
use crate::model::event_id::EventId;

/// The sequencer's state, guarded by one lock.
#[derive(Debug)]
struct Sequencer {
    /// The last assigned sequence number.
    last_seq: u64,
    idempotency: IdempotencyWindow,
}

/// Assigns ids from a counter and appends straight into the hub.
#[derive(Debug)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
    sequencer: Mutex<Sequencer>,
}

impl MemoryBroker {
    /// A broker feeding `hub`, whose epoch it uses.
    pub fn new(hub: Arc<Hub>, idempotency: IdempotencyWindow) -> MemoryBroker {
        MemoryBroker {
            hub,
            sequencer: Mutex::new(Sequencer {
                last_seq: 0,
                idempotency,
            }),
        }
    }

    /// Publishes synchronously (the memory broker never waits).
    pub fn publish_now(&self, events: Vec<PreparedEvent>) -> Result<Published, PublishError> {
        let names = events.iter().flat_map(|e| e.channels.iter().map(|c| &**c));
        self.hub
            .check_capacity(names)
            .map_err(|full| PublishError::ChannelLimit {
                max_channels: full.max_channels,
            })?;
        let epoch = self.hub.epoch();
        let now = Instant::now();
        let mut ids = Vec::with_capacity(events.len());
        let mut new_events = 0;
        let mut touched = Vec::new();
        let mut seq_state = self.sequencer.lock();
        for event in events {
            if let Some(key) = &event.idempotency_key {
                if let Some(id) = seq_state.idempotency.get(key, now) {
                    ids.push(id);
                    continue;
                }
            }
            let seq = seq_state.last_seq + 1;
            seq_state.last_seq = seq;
            let id = EventId { epoch, seq };
            let frame = encode_frame(id, &event.body);
            self.hub.append(
                seq,
                &event.channels,
                &frame,
                now,
                event.exclude_subject.as_ref(),
                &mut touched,
            );
            if let Some(key) = event.idempotency_key {
                seq_state.idempotency.insert(key, id, now);
            }
            ids.push(id);
            new_events += 1;
        }
        let last = seq_state.last_seq;
        drop(seq_state);
        self.hub.commit(last, &mut touched);
        Ok(Published { ids, new_events })
    }
}

impl Broker for MemoryBroker {
    fn publish(
        &self,
        events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Published, PublishError>> {
        let result = self.publish_now(events);
        Box::pin(async move { result })
    }

    fn head(&self) -> EventId {
        self.hub.head()
    }

    fn is_ready(&self) -> bool {
        true
    }
}
