//! `GuardedIo`: the socket as hyper sees it, with two deadlines hyper does not keep.
//!
//! - **Write stall**: a write (or flush) that makes no progress for `write_timeout`
//!   fails with `TimedOut`, so hyper closes the connection. This is what reaps a client
//!   that stopped reading or vanished while its socket buffer is full; the connection's
//!   close reason becomes `stalled`.
//! - **First request**: until the first request reaches a handler, a read that waits
//!   past the deadline fails. hyper's HTTP/1.1 header timeout does not cover a client
//!   that connects and sends nothing (hyper-util first waits to see which protocol it
//!   speaks) nor an HTTP/2 client that never opens a stream; this does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::model::reasons::CloseReason;
use crate::stream::connection::ConnState;

/// A stream with a write-stall deadline and a first-request deadline.
pub struct GuardedIo<S> {
    inner: S,
    conn: Arc<ConnState>,
    write_timeout: Duration,
    /// Armed while a write is pending; reset whenever a write makes progress.
    stall_timer: Option<Pin<Box<Sleep>>>,
    stall_armed: bool,
    /// Until the first request is seen; dropped after.
    first_request_timer: Option<Pin<Box<Sleep>>>,
    /// Set when the first-request deadline closed the connection.
    pub timed_out_before_request: bool,
}

impl<S> GuardedIo<S> {
    /// Wraps `inner`; the first request must reach a handler within `first_request_within`.
    pub fn new(
        inner: S,
        conn: Arc<ConnState>,
        write_timeout: Duration,
        first_request_within: Duration,
    ) -> GuardedIo<S> {
        GuardedIo {
            inner,
            conn,
            write_timeout,
            stall_timer: None,
            stall_armed: false,
            first_request_timer: Some(Box::pin(tokio::time::sleep(first_request_within))),
            timed_out_before_request: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let deadline = Instant::now() + self.write_timeout;
        let timer = self
            .stall_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stall_armed {
            timer.as_mut().reset(deadline);
            self.stall_armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.conn.set_close_reason(CloseReason::Stalled);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "write stalled past write_timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_done<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.write_pending(cx),
            ready => {
                self.stall_armed = false;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if result.is_pending() {
            if let Some(timer) = &mut this.first_request_timer {
                if this.conn.first_request_seen.load(Ordering::Acquire) {
                    this.first_request_timer = None;
                } else if timer.as_mut().poll(cx).is_ready() {
                    this.first_request_timer = None;
                    this.timed_out_before_request = true;
                    this.conn.set_close_reason(CloseReason::Limit);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header read timeout",
                    )));
                }
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write_done(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_done(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.write_done(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.write_done(result, cx)
    }
}

/// A stream whose first bytes were already read (to look at the request head): it
/// hands those back before reading on, so hyper sees the connection whole.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `prefix` is returned by the first reads, then `inner` continues.
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            consumed: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new(); // free it: the connection may live for hours
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
