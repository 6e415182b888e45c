//! The watchdog of a connection's polled streams: it holds the slow-client bounds
//! whether or not the stream's body is polled.
//!
//! hyper polls an HTTP/2 response body only when the stream's flow-control window has
//! room. A client that advertises a zero window and never opens it, while answering
//! PINGs, leaves its streams unpolled: their own lag check and heartbeat never run,
//! and the socket never stalls (so `GuardedIo`'s write deadline never fires). The
//! watchdog looks at each polled stream's record from outside, on a timer of its own:
//!
//! - **lagged**: more pending than `slow_clients.max_lag_*` and nothing handed over
//!   since the previous look (a stream being polled applies its policy itself);
//! - **stalled**: nothing handed over for a heartbeat interval plus
//!   `slow_clients.write_timeout` (a heartbeat was due and no write made progress).
//!
//! A verdict ends the whole connection (hyper offers no way to reset one stream from
//! outside its poll), as a stalled socket does; the close is counted with its reason.

use std::sync::Arc;
use std::time::Duration;

use crate::model::reasons::CloseReason;
use crate::observe::registry::StreamRecord;
use crate::stream::connection::ConnState;

/// The bounds the watchdog holds.
#[derive(Debug, Clone, Copy)]
pub struct WatchBounds {
    /// The streams' heartbeat interval.
    pub heartbeat: Duration,
    /// `slow_clients.write_timeout`.
    pub write_timeout: Duration,
    /// `slow_clients.max_lag_events`.
    pub max_lag_events: usize,
    /// `slow_clients.max_lag_bytes`.
    pub max_lag_bytes: usize,
}

impl WatchBounds {
    /// Time between two looks: half the shorter of the heartbeat and the write
    /// timeout, at least 100 ms.
    pub fn interval(&self) -> Duration {
        (self.heartbeat.min(self.write_timeout) / 2).max(Duration::from_millis(100))
    }

    /// Whether `record` breaks a bound: `idle` is how long since its last write.
    pub fn verdict(&self, idle: Duration, lag: (usize, u64)) -> Option<CloseReason> {
        let stall_after = self.heartbeat.saturating_add(self.write_timeout);
        if idle >= stall_after {
            return Some(CloseReason::Stalled);
        }
        let (events, bytes) = lag;
        let over = events > self.max_lag_events
            || bytes > u64::try_from(self.max_lag_bytes).unwrap_or(u64::MAX);
        (over && idle >= self.interval()).then_some(CloseReason::Lagged)
    }
}

/// The first bound a stream of `conn` breaks, once it does; pending forever while
/// every stream keeps within its bounds.
pub async fn watch(conn: Arc<ConnState>, bounds: WatchBounds) -> CloseReason {
    let mut tick = tokio::time::interval(bounds.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for record in conn.polled() {
            if let Some(reason) = check(&record, &bounds) {
                tracing::debug!(stream = record.id, peer = %record.peer, reason = reason.as_str(),
                    "an unpolled stream broke the slow-client bounds; closing its connection");
                return reason;
            }
        }
    }
}

fn check(record: &StreamRecord, bounds: &WatchBounds) -> Option<CloseReason> {
    let idle = record.since_last_write();
    if idle < bounds.interval() {
        return None; // written recently: it is being polled, and checks itself
    }
    bounds.verdict(idle, record.lag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let b = WatchBounds {
            heartbeat: Duration::from_secs(25),
            write_timeout: Duration::from_secs(30),
            max_lag_events: 500,
            max_lag_bytes: 512 * 1024,
        };
        let s = Duration::from_secs;
        assert_eq!(b.interval(), Duration::from_millis(12_500));
        assert_eq!(b.verdict(s(20), (0, 0)), None);
        assert_eq!(b.verdict(s(55), (0, 0)), Some(CloseReason::Stalled));
        assert_eq!(b.verdict(s(13), (0, 1 << 20)), Some(CloseReason::Lagged));
        assert_eq!(b.verdict(s(13), (501, 0)), Some(CloseReason::Lagged));
        assert_eq!(b.verdict(s(1), (501, 0)), None, "recently written: polled");
        assert_eq!(b.verdict(Duration::MAX, (0, 0)), Some(CloseReason::Stalled));
    }
}
