//! What the gateway knows about one TCP connection, shared by its I/O wrapper, its
//! requests and its streams; and the slot that counts one stream on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::config::Routes;
use crate::model::reasons::CloseReason;
use crate::observe::registry::StreamRecord;

/// What the gateway knows about one TCP connection; shared by its I/O wrapper, its
/// requests and its streams.
#[derive(Debug)]
pub struct ConnState {
    /// The client's address.
    pub peer: SocketAddr,
    /// True on a TLS listener.
    pub tls: bool,
    /// The endpoints its listener serves.
    pub routes: Routes,
    /// Event streams open on this connection (more than one only on HTTP/2).
    pub streams: AtomicUsize,
    /// Set when the first request reached a handler (ends the first-request deadline).
    pub first_request_seen: AtomicBool,
    /// The polled streams on this connection, for the watchdog that checks them
    /// whether or not hyper polls them (`stream::watchdog`).
    polled: Mutex<Vec<Weak<StreamRecord>>>,
    close_reason: AtomicU8,
}

impl ConnState {
    /// A new connection's state.
    pub fn new(peer: SocketAddr, tls: bool, routes: Routes) -> Arc<ConnState> {
        Arc::new(ConnState {
            peer,
            tls,
            routes,
            streams: AtomicUsize::new(0),
            first_request_seen: AtomicBool::new(false),
            polled: Mutex::new(Vec::new()),
            close_reason: AtomicU8::new(CloseReason::Client as u8),
        })
    }

    /// Counts one more event stream on this connection, unless `max` are open already.
    /// The slot uncounts it when dropped.
    pub fn try_open_stream(self: &Arc<Self>, max: usize) -> Option<StreamSlot> {
        let open = self.streams.fetch_add(1, Ordering::AcqRel);
        if open >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot { conn: self.clone() })
    }

    /// Lists a polled stream on this connection (until its record is dropped).
    pub fn add_polled(&self, record: &Arc<StreamRecord>) {
        let mut polled = self.polled.lock();
        polled.retain(|r| r.strong_count() > 0);
        polled.push(Arc::downgrade(record));
    }

    /// Takes a stream off the polled list (it became a pushed stream).
    pub fn remove_polled(&self, record: &Arc<StreamRecord>) {
        self.polled
            .lock()
            .retain(|r| r.strong_count() > 0 && !std::ptr::eq(r.as_ptr(), Arc::as_ptr(record)));
    }

    /// The polled streams open on this connection now.
    pub fn polled(&self) -> Vec<Arc<StreamRecord>> {
        let mut polled = self.polled.lock();
        polled.retain(|r| r.strong_count() > 0);
        polled.iter().filter_map(Weak::upgrade).collect()
    }

    /// Records why the connection is being closed (the first reason given sticks).
    pub fn set_close_reason(&self, reason: CloseReason) {
        let _ = self.close_reason.compare_exchange(
            CloseReason::Client as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Why the connection is closing, `Client` unless the gateway closed it.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::from_u8(self.close_reason.load(Ordering::Acquire))
    }
}

/// One event stream counted on its connection; dropping it uncounts the stream.
#[derive(Debug)]
pub struct StreamSlot {
    conn: Arc<ConnState>,
}

impl StreamSlot {
    /// The connection the stream is on.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.conn
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::AcqRel);
    }
}
