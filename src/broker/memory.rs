//! The in-memory broker: one node, no other service. Ids come from a counter under one
//! lock, which also orders the appends to the hub, so commits are always in sequence.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{
    encode_frame, fingerprint, BoxFuture, Broker, Fingerprint, IdempotencyWindow, Lookup,
    PreparedEvent, PublishError, Published,
};
use crate::hub::{Frame, Hub};
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

    /// Publishes synchronously (the memory broker never waits). The whole batch is
    /// decided under the sequencing lock: ids, the channel limit (checked and the
    /// channels created in one step by [`Hub::append_all`]) and the idempotency keys, so
    /// a refused batch leaves no event, no channel and no key behind.
    ///
    /// Idempotency keys are `publisher`'s own: a key seen with the same event (by its
    /// [`fingerprint`]) is a retry and gets its first id; seen with another event it
    /// refuses the whole batch.
    pub fn publish_now(
        &self,
        publisher: &str,
        events: Vec<PreparedEvent>,
    ) -> Result<Published, PublishError> {
        let epoch = self.hub.epoch();
        let now = Instant::now();
        let mut ids = Vec::with_capacity(events.len());
        let mut frames: Vec<(Frame, &[Arc<str>])> = Vec::with_capacity(events.len());
        // Keys first used in this batch, remembered only once the batch is accepted.
        let mut new_keys: Vec<(&str, EventId, Fingerprint)> = Vec::new();
        let mut touched = Vec::new();
        let mut seq_state = self.sequencer.lock();
        let mut seq = seq_state.last_seq;
        for (index, event) in events.iter().enumerate() {
            let keyed = event.idempotency_key.as_deref().map(|key| {
                let print = fingerprint(
                    &event.channels,
                    &event.body,
                    event.exclude_subject.as_deref(),
                );
                (key, print)
            });
            if let Some((key, print)) = &keyed {
                let lookup = match new_keys.iter().find(|(k, _, _)| k == key) {
                    Some((_, id, p)) if p == print => Lookup::Retry(*id),
                    Some(_) => Lookup::Conflict,
                    None => seq_state.idempotency.lookup(publisher, key, print, now),
                };
                match lookup {
                    Lookup::New => {}
                    Lookup::Retry(id) => {
                        ids.push(id);
                        continue;
                    }
                    Lookup::Conflict => return Err(PublishError::IdempotencyConflict { index }),
                }
            }
            seq = seq.checked_add(1).ok_or_else(|| {
                PublishError::Unavailable("the event sequence is exhausted".into())
            })?;
            let id = EventId { epoch, seq };
            let frame = Frame::new(
                seq,
                encode_frame(id, &event.body),
                now,
                event.exclude_subject.clone(),
            );
            frames.push((frame, &event.channels));
            if let Some((key, print)) = keyed {
                new_keys.push((key, id, print));
            }
            ids.push(id);
        }
        self.hub
            .append_all(publisher, &frames, &mut touched)
            .map_err(|full| PublishError::ChannelLimit {
                max_channels: full.max_channels,
            })?;
        seq_state.last_seq = seq;
        for (key, id, print) in new_keys {
            seq_state.idempotency.insert(publisher, key, id, print, now);
        }
        drop(seq_state);
        self.hub.commit(seq, &mut touched);
        Ok(Published {
            ids,
            new_events: frames.len(),
        })
    }
}

impl Broker for MemoryBroker {
    fn publish(
        &self,
        publisher: &str,
        events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Published, PublishError>> {
        let result = self.publish_now(publisher, events);
        Box::pin(async move { result })
    }

    fn head(&self) -> EventId {
        self.hub.head()
    }

    fn is_ready(&self) -> bool {
        true
    }
}
