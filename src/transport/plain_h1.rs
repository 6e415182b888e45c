//! The plain HTTP/1.1 path for event streams on plain listeners: pushed streams.
//!
//! An idle SSE connection served by hyper keeps hyper's per-connection read and write
//! buffers (8 KiB and more) for as long as it lives. Event streams live for hours and
//! are almost all idle, so on plain listeners the gateway reads the request head
//! itself: a `GET /events…` over HTTP/1.1 is answered here, writing chunked frames
//! straight to the socket from the subscriber's body, holding no buffer between
//! writes. Every other request (publish, metrics, errors of method, HTTP/2 by prior
//! knowledge, anything malformed or oversized) is handed to hyper with the bytes read
//! so far, so its behaviour is hyper's.
//!
//! Correctness kept: chunked framing with a terminating chunk when the gateway ends a
//! stream; keep-alive after a stream or an error answer (the next request is read
//! again here); pipelining behind an event stream is refused with 400 and the
//! connection closed (a stream never ends on its own, so what follows it could never
//! be answered); a client that closes is noticed by reading while streaming.

use std::io;
use std::sync::Arc;

use ::http::{HeaderMap, Response, Uri, Version};
use http_body_util::{BodyExt, Either};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http::gate;
use crate::http::respond::{error_response, ResponseBody};
use crate::http::shared::Shared;
use crate::http::subscribe::subscribe;
use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;
use crate::stream::connection::ConnState;
use crate::stream::SseBody;
pub use crate::wire::h1_head::Head;
use crate::wire::h1_head::{self, classify, push_header, status_line};

/// What a served event stream left behind.
pub enum After {
    /// The gateway ended the stream cleanly; the connection may serve another request.
    KeepAlive,
    /// The connection is done.
    Close,
}

/// Reads until a whole head is in `buf` and classifies it. Reads at most about
/// `max_bytes` before giving up to hyper (which answers 431).
pub async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    max_bytes: usize,
    max_headers: usize,
) -> Head {
    loop {
        if !h1_head::may_be_get(buf) {
            return Head::Other; // not a GET (publish, h2 preface, garbage): hyper's
        }
        match classify(buf, max_headers) {
            Some(head) => return head,
            None if buf.len() >= max_bytes => return Head::Other,
            None => {}
        }
        buf.reserve(1024.min(max_bytes.saturating_sub(buf.len()).max(1)));
        match io.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Head::Gone,
            Ok(0) => return Head::Other, // half a request then EOF: let hyper say so
            Ok(_) => {}
            Err(_) => return Head::Gone,
        }
    }
}

/// What [`prepare`] decided. Lives only until it is matched; the body moves straight
/// into [`stream`], so boxing it would only add an allocation per stream.
#[allow(clippy::large_enum_variant)]
pub enum Prepared {
    /// The response head was written: stream `body`.
    Stream {
        /// The subscriber's body.
        body: SseBody,
    },
    /// An error was answered (or the connection failed); nothing to stream.
    Answered(After),
}

/// Opens the stream for one `GET /events…` whose head has been read and writes the
/// response head, or answers its error. The request takes the live snapshot once and
/// passes the same [`gate`] as hyper's (first request seen, CORS). `keep_alive` is
/// false when the connection closes after this answer (it then says so). `pipelined` is
/// true when more bytes followed the head. Kept apart from [`stream`] so the
/// long-lived streaming state does not carry this one's size.
pub async fn prepare<S: AsyncWrite + Unpin>(
    io: &mut S,
    shared: &Shared,
    conn: &Arc<ConnState>,
    uri: Uri,
    headers: HeaderMap,
    keep_alive: bool,
    pipelined: bool,
) -> Prepared {
    let answer = |result: io::Result<()>| {
        Prepared::Answered(match result {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        })
    };
    let live = shared.live();
    let passed = gate::enter(conn, &live, &headers);
    if pipelined {
        // A refusal like any other: 400, counted as `pipelining_refused`.
        let refusal = ApiError::refused(
            RefusalReason::PipeliningRefused,
            "requests pipelined behind an event stream cannot be answered; send them on another connection",
            None,
        );
        let _ = write_whole(io, error_response(shared, conn.peer, refusal), false).await;
        return Prepared::Answered(After::Close);
    }
    let passed = match passed {
        Ok(passed) => passed,
        Err(e) => {
            let response = error_response(shared, conn.peer, e);
            return answer(write_whole(io, response, keep_alive).await);
        }
    };
    let subscribed = subscribe(shared, &live, conn, &uri, &headers, Version::HTTP_11);
    drop((uri, headers));
    let mut response = match subscribed {
        Ok(response) => response.map(Either::Right),
        Err(e) => error_response(shared, conn.peer, e),
    };
    passed.finish(&live, &mut response);
    let (parts, body) = response.into_parts();
    match body {
        Either::Right(body) => {
            let mut head = status_line(parts.status);
            for (name, value) in &parts.headers {
                push_header(&mut head, name.as_str(), value.as_bytes());
            }
            if !keep_alive {
                push_header(&mut head, "connection", b"close");
            }
            head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            if io.write_all(&head).await.is_err() {
                return Prepared::Answered(After::Close);
            }
            Prepared::Stream { body }
        }
        Either::Left(whole) => {
            let whole = Response::from_parts(parts, Either::Left(whole));
            answer(write_whole(io, whole, keep_alive).await)
        }
    }
}

/// Answers the HTTP/2 preface sent after an HTTP/1.1 exchange: 400, then the
/// connection is closed (RFC 9113 §3.4: HTTP/2 by prior knowledge starts a connection).
pub async fn refuse_h2_preface<S: AsyncWrite + Unpin>(
    io: &mut S,
    shared: &Shared,
    peer: std::net::SocketAddr,
) {
    let error = ApiError::bad_request(
        "h2_preface_after_http1",
        "the HTTP/2 preface can only open a connection, not follow an HTTP/1.1 request",
    );
    let _ = write_whole(io, error_response(shared, peer, error), false).await;
}

/// Writes a whole (non-streaming) response with its content length.
async fn write_whole<S: AsyncWrite + Unpin>(
    io: &mut S,
    response: Response<ResponseBody>,
    keep_alive: bool,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    // A whole body never fails to collect; an empty one is the safe fallback.
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut out = status_line(parts.status);
    for (name, value) in &parts.headers {
        push_header(&mut out, name.as_str(), value.as_bytes());
    }
    push_header(
        &mut out,
        "content-length",
        bytes.len().to_string().as_bytes(),
    );
    if !keep_alive {
        push_header(&mut out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes);
    io.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_heads() {
        async fn head(bytes: &[u8]) -> Head {
            let mut io = bytes;
            let mut buf = Vec::new();
            read_head(&mut io, &mut buf, 16 * 1024, 64).await
        }
        assert!(matches!(
            head(b"\r\nGET /events/a HTTP/1.1\r\nHost: h\r\n\r\n").await,
            Head::Events { .. }
        ));
        assert!(matches!(
            head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await,
            Head::Other
        ));
        assert!(
            matches!(head(b"GET /events HTTP/1.1\r\nHost").await, Head::Other),
            "EOF mid-head"
        );
        assert!(matches!(head(b"").await, Head::Gone));
    }
}
