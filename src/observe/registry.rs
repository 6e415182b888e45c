//! The registry of open event streams, for the admin API: who is connected, on which
//! channels, how far behind, how much sent; and the switch to close one.
//!
//! Each stream's record is small and written only by that stream (its task, or a push
//! pass holding the stream's lock; the admin API sets just the kick flag), with relaxed
//! atomics and no shared counter, so keeping it costs nothing on the fan-out path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::hub::Channel;

/// One open stream as the admin API sees it.
#[derive(Debug)]
pub struct StreamRecord {
    /// The stream's id (unique for the process's life).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// `h1` or `h2`.
    pub proto: &'static str,
    /// True over TLS.
    pub tls: bool,
    /// The subscribed channels (shared with the subscription).
    pub channels: Arc<[Arc<Channel>]>,
    /// When the stream opened.
    pub opened_at: Instant,
    /// Bytes handed to the stream.
    pub bytes_sent: AtomicU64,
    /// The stream's position (sequence number) after its last write.
    pub position: AtomicU64,
    /// When bytes were last handed to the connection, in milliseconds after `opened_at`.
    pub last_write_ms: AtomicU64,
    /// Set by an operator to close the stream.
    pub kicked: AtomicBool,
}

impl StreamRecord {
    /// Marks bytes handed to the connection at `at` (a clock reading the writer already
    /// took: no second read of the clock per delivery).
    pub fn wrote_at(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.opened_at).as_millis();
        self.last_write_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long since bytes were last handed to the connection (or since it opened).
    pub fn since_last_write(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_write_ms.load(Ordering::Relaxed));
        self.opened_at.elapsed().saturating_sub(last)
    }

    /// Events and bytes waiting for this stream.
    pub fn lag(&self) -> (usize, u64) {
        crate::hub::pending_after(&self.channels, self.position.load(Ordering::Relaxed))
    }
}

/// Every open stream, by id.
#[derive(Debug, Default)]
pub struct StreamRegistry {
    streams: Mutex<BTreeMap<u64, Arc<StreamRecord>>>,
    next_id: AtomicU64,
}

/// Removes its record from the registry when dropped (held by the stream's body).
#[derive(Debug)]
pub struct Registration {
    registry: Arc<StreamRegistry>,
    /// The stream's record.
    pub record: Arc<StreamRecord>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.streams.lock().remove(&self.record.id);
    }
}

impl StreamRegistry {
    /// An empty registry.
    pub fn new() -> Arc<StreamRegistry> {
        Arc::new(StreamRegistry::default())
    }

    /// Registers a new stream.
    pub fn register(
        self: &Arc<Self>,
        peer: SocketAddr,
        proto: &'static str,
        tls: bool,
        channels: Arc<[Arc<Channel>]>,
        position: u64,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let record = Arc::new(StreamRecord {
            id,
            peer,
            proto,
            tls,
            channels,
            opened_at: Instant::now(),
            bytes_sent: AtomicU64::new(0),
            position: AtomicU64::new(position),
            last_write_ms: AtomicU64::new(0),
            kicked: AtomicBool::new(false),
        });
        self.streams.lock().insert(id, record.clone());
        Registration {
            registry: self.clone(),
            record,
        }
    }

    /// Up to `limit` streams with an id above `after`, in id order.
    pub fn page(&self, after: u64, limit: usize) -> Vec<Arc<StreamRecord>> {
        self.streams
            .lock()
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Marks a stream to be closed and wakes it; false when there is no such stream.
    pub fn kick(&self, id: u64) -> bool {
        let Some(record) = self.streams.lock().get(&id).cloned() else {
            return false;
        };
        record.kicked.store(true, Ordering::Release);
        for ch in record.channels.iter() {
            ch.wake();
        }
        true
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.streams.lock().len()
    }

    /// True when no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
