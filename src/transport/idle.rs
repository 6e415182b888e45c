//! Idle connections served by hyper: the requests (HTTP/2 streams) open on one
//! connection are counted, and [`Activity::idle_for`] resolves once none has been open
//! for a while, so the connection can be shut down (GOAWAY on HTTP/2).
//!
//! hyper keeps an HTTP/2 connection without streams open for as long as its client
//! answers PINGs; HTTP/1.1 keep-alive is bounded by the header read timeout instead.
//! A request counts as open from the moment the service is called until its response
//! body is dropped (an event stream's body lives as long as the stream).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// The requests open on one connection.
#[derive(Debug, Default)]
pub struct Activity {
    open: AtomicUsize,
    changed: Notify,
}

/// One open request; dropping it closes it.
#[derive(Debug)]
pub struct Open {
    activity: Arc<Activity>,
}

impl Activity {
    /// No request open yet.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity::default())
    }

    /// Requests open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a request as open until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        Open {
            activity: self.clone(),
        }
    }

    /// Resolves once no request has been open for `timeout` in a row.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open() > 0 {
                changed.await;
                continue;
            }
            tokio::select! {
                _ = changed => continue,
                _ = tokio::time::sleep(timeout) => return,
            }
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.activity.open.fetch_sub(1, Ordering::AcqRel);
        self.activity.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as open while it lives.
pub struct Tracked<B> {
    inner: B,
    _open: Open,
}

impl<B> Tracked<B> {
    /// `inner`, holding `open` until it is dropped.
    pub fn new(inner: B, open: Open) -> Tracked<B> {
        Tracked { inner, _open: open }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_without_open_requests() {
        let activity = Activity::new();
        let open = activity.start();
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            activity.idle_for(Duration::from_millis(20)),
        )
        .await;
        assert!(waited.is_err(), "a request is open: never idle");
        drop(open);
        assert_eq!(activity.open(), 0);
        tokio::time::timeout(
            Duration::from_secs(20),
            activity.idle_for(Duration::from_millis(20)),
        )
        .await
        .expect("idle once nothing is open");
    }
}
