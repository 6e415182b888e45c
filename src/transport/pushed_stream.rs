//! Streaming a pushed HTTP/1.1 response: the subscriber's body and socket behind one
//! lock, written by the channel's push passes after each commit (`hub::push`) or by the
//! stream's own task when something needs waiting.
//!
//! A pass takes what is pending and writes it with one non-blocking `send()`. When the
//! socket takes only part of it (or none), the rest becomes the backlog and the task
//! takes over: it writes the backlog through `GuardedIo` (so the write-stall deadline
//! applies), then keeps collecting itself until nothing is pending, and hands the
//! stream back to the passes. The task also runs what only it can: heartbeats and the
//! stream's end (its timer), the lag policy, drain, kick, and noticing that the client
//! closed (a read). Writes never interleave: both sides hold the lock while writing,
//! and passes skip the stream while the task holds the writes.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http_body::Body;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::hub::push::PushedStream;
use crate::stream::{PushOutcome, SseBody};
use crate::transport::guarded_io::GuardedIo;
use crate::transport::plain_h1::After;

/// The terminating chunk of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Batches a pass writes to one stream before leaving the rest to its task.
const MAX_BATCHES_PER_PASS: usize = 4;

/// One pushed stream of its channels: the body and the socket behind one lock.
struct BodyAndSocket {
    state: Mutex<State>,
}

struct State {
    /// The socket; taken back by the task when the stream ends.
    io: Option<GuardedIo<TcpStream>>,
    /// The subscriber's body; dropped as soon as it ends (its close is counted then).
    /// `None` with `io` still there: the terminating chunk is being written, and the
    /// stream is over once the backlog is.
    body: Option<SseBody>,
    /// Bytes the task must finish writing before anything else.
    backlog: Option<Bytes>,
    /// True while the task drives the writes; passes leave the stream alone.
    task_writes: bool,
    /// The task's waker.
    waker: Option<Waker>,
}

impl PushedStream for BodyAndSocket {
    fn deliver(&self) {
        let waker = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            if state.task_writes {
                return;
            }
            let (Some(io), Some(body)) = (state.io.as_ref(), state.body.as_mut()) else {
                return;
            };
            // One batch is at most `max_batch_bytes`: a stream with more pending gets a
            // few batches here, then its task takes the rest, so one far-behind stream
            // does not hold up the pass.
            for _ in 0..MAX_BATCHES_PER_PASS {
                match body.take_for_push() {
                    PushOutcome::Nothing => return,
                    PushOutcome::NeedsTask => break,
                    PushOutcome::Frames(bytes) => match io.get_ref().try_write(&bytes) {
                        Ok(n) if n == bytes.len() => continue,
                        Ok(n) => {
                            state.backlog = Some(bytes.slice(n..));
                            break;
                        }
                        // Full (or failed): the task's write waits, or finds the error.
                        Err(_) => {
                            state.backlog = Some(bytes);
                            break;
                        }
                    },
                }
            }
            state.task_writes = true;
            state.waker.clone()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_task(&self) {
        let waker = self.state.lock().waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl BodyAndSocket {
    /// The task's side: everything that needs waiting.
    fn poll_task(&self, cx: &mut Context<'_>) -> Poll<After> {
        let mut guard = self.state.lock();
        let State {
            io,
            body: body_slot,
            backlog,
            task_writes,
            waker,
        } = &mut *guard;
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        let Some(io) = io.as_mut() else {
            return Poll::Ready(After::Close);
        };
        // The client closed (0), failed, or sent more while being streamed to.
        let mut probe = [0u8; 16];
        if Pin::new(&mut *io)
            .poll_read(cx, &mut ReadBuf::new(&mut probe))
            .is_ready()
        {
            return Poll::Ready(After::Close);
        }
        loop {
            if let Some(pending) = backlog.as_mut() {
                match Pin::new(&mut *io).poll_write(cx, pending) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(After::Close),
                    Poll::Ready(Ok(n)) => {
                        pending.advance(n);
                        if pending.is_empty() {
                            *backlog = None;
                        }
                        continue;
                    }
                    Poll::Pending => {
                        *task_writes = true;
                        return Poll::Pending;
                    }
                }
            }
            let Some(body) = body_slot.as_mut() else {
                return Poll::Ready(After::KeepAlive); // finished and written
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            *backlog = Some(data);
                        }
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => {
                    // The gateway ended the stream: its close is counted (the body
                    // dropped) before the client can see the end.
                    *body_slot = None;
                    *backlog = Some(Bytes::from_static(LAST_CHUNK));
                }
                Poll::Pending => {
                    *task_writes = false;
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A stream whose response head is written: `body` is to be streamed on `io`. Built
/// without waiting, so the task's future holds only the handle, not a second copy of
/// the socket and body.
pub struct PushedH1(Arc<BodyAndSocket>);

/// Makes `body` a pushed stream on `io`.
pub fn open(io: GuardedIo<TcpStream>, mut body: SseBody) -> PushedH1 {
    // Frames come as whole chunks, each event's built once and shared.
    body.frame_as_chunks();
    body.set_pushed();
    PushedH1(Arc::new(BodyAndSocket {
        state: Mutex::new(State {
            io: Some(io),
            body: Some(body),
            backlog: None,
            // The task writes the preamble first, then hands over to the passes.
            task_writes: true,
            waker: None,
        }),
    }))
}

/// Streams as a pushed stream of the body's channels until the gateway ends the
/// stream (terminating chunk: the connection may be kept alive, and is handed back) or
/// the client goes.
pub async fn run(stream: PushedH1) -> (Option<GuardedIo<TcpStream>>, After) {
    let stream = stream.0;
    let channels = match stream.state.lock().body.as_ref() {
        Some(body) => body.channels().clone(),
        None => return (None, After::Close),
    };
    let pushed: Arc<dyn PushedStream> = stream.clone();
    for ch in channels.iter() {
        ch.join_pushed(pushed.clone());
    }
    let after = poll_fn(|cx| stream.poll_task(cx)).await;
    for ch in channels.iter() {
        ch.leave_pushed(&pushed);
    }
    let (io, body) = {
        let mut state = stream.state.lock();
        (state.io.take(), state.body.take())
    };
    drop(body); // counts the close now, not when the last pass lets go
    match after {
        After::KeepAlive => (io, after),
        After::Close => (None, after),
    }
}
