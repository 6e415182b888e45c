//! The one SSE parser ([`SseParser`]): `text/event-stream` bytes to [`SseBlock`]s, with
//! the browser's last-event-id rule; and [`SseStream`], a hyper response read with it.

use std::collections::VecDeque;
use std::sync::Arc;

use http::{HeaderMap, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::*;

/// One block of an event stream: the lines up to a blank line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseBlock {
    /// The `id:` field (the last one, if repeated).
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`; `None` when the block has no `data` field
    /// (then a browser fires no event), or when its data lines were skipped
    /// ([`SseParser::skip_data_of_len`]).
    pub data: Option<String>,
    /// Bytes of data (the `data:` values without the field name and line ends), skipped
    /// lines included; `None` when the block has no `data` field.
    pub data_len: Option<usize>,
    /// The `retry:` field, when it is a number.
    pub retry: Option<u64>,
    /// Comment lines (`:` stripped).
    pub comments: Vec<String>,
    /// The block's lines (skipped data lines left out), each ended by `\n`, and the
    /// closing `\n`.
    pub raw: String,
}

impl SseBlock {
    /// True when a browser would dispatch an event for this block.
    pub fn is_event(&self) -> bool {
        self.data_len.is_some()
    }

    /// True for the farewell the gateway writes when it ends a stream: `retry:` only.
    pub fn is_farewell(&self) -> bool {
        self.retry.is_some()
            && self.id.is_none()
            && self.event.is_none()
            && self.data_len.is_none()
            && self.comments.is_empty()
    }

    /// (id, event, data) of an event block.
    pub fn triple(&self) -> (String, Option<String>, String) {
        (
            self.id.clone().unwrap_or_default(),
            self.event.clone(),
            self.data.clone().unwrap_or_default(),
        )
    }

    /// True for `event: ssegate.resync`.
    pub fn is_resync(&self) -> bool {
        self.event.as_deref() == Some("ssegate.resync")
    }
}

/// An incremental `text/event-stream` parser (lines end at LF, CRLF or CR): the one
/// SSE parser of the suite, fed by hyper bodies, curl's output and the de-chunked
/// payload of [`RawSse`].
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseBlock,
    data_lines: Vec<String>,
    has_lines: bool,
    ready: VecDeque<SseBlock>,
    skip_len: Option<usize>,
    last_event_id: Option<String>,
}

impl SseParser {
    /// From now on, every `data: ` line is taken to be exactly `len` bytes of value
    /// (checked at its line end, which must be LF) and skipped rather than scanned or
    /// kept: megabytes of events cost a few comparisons each. Only
    /// [`SseBlock::data_len`] counts them.
    pub fn skip_data_of_len(&mut self, len: usize) {
        self.skip_len = Some(len);
    }

    /// Feeds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            if let Some(len) = self
                .skip_len
                .filter(|_| self.buf[start..].starts_with(b"data: "))
            {
                let end = start + 6 + len;
                if self.buf.len() <= end {
                    break; // wait for the whole line
                }
                assert_eq!(
                    self.buf[end], b'\n',
                    "a data line of other than the expected length"
                );
                *self.current.data_len.get_or_insert(0) += len;
                self.has_lines = true;
                start = end + 1;
                continue;
            }
            let Some(rel) = self.buf[start..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                break;
            };
            let end = start + rel;
            let skip = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    None => break, // a CR at the end: wait to see whether LF follows
                    Some(b'\n') => 2,
                    Some(_) => 1,
                }
            } else {
                1
            };
            let line = String::from_utf8(self.buf[start..end].to_vec())
                .unwrap_or_else(|e| panic!("the event stream is not UTF-8: {e}"));
            self.line(line);
            start = end + skip;
        }
        self.buf.drain(..start);
    }

    /// The next complete block, if any; its `id:` becomes the last event id.
    pub fn pop(&mut self) -> Option<SseBlock> {
        let block = self.ready.pop_front()?;
        if let Some(id) = &block.id {
            self.last_event_id = Some(id.clone());
        }
        Some(block)
    }

    /// The browser's last event id: the newest `id:` of the blocks popped so far.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Bytes received but not yet part of a complete line.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    fn line(&mut self, line: String) {
        if line.is_empty() {
            if self.has_lines {
                let mut block = std::mem::take(&mut self.current);
                let lines = std::mem::take(&mut self.data_lines);
                block.data = (!lines.is_empty()).then(|| lines.join("\n"));
                block.raw.push('\n');
                self.ready.push_back(block);
                self.has_lines = false;
            }
            return;
        }
        self.has_lines = true;
        self.current.raw.push_str(&line);
        self.current.raw.push('\n');
        if let Some(comment) = line.strip_prefix(':') {
            self.current.comments.push(comment.to_string());
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            "data" => {
                *self.current.data_len.get_or_insert(0) += value.len();
                self.data_lines.push(value.to_string());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.current.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// A response read as an event stream.
pub struct SseStream {
    /// The response status.
    pub status: StatusCode,
    /// The response's HTTP version.
    pub version: Version,
    /// The response headers.
    pub headers: HeaderMap,
    body: Incoming,
    parser: SseParser,
    /// The first block, when read by [`TestGateway::subscribe`].
    pub preamble: Option<SseBlock>,
    ended: Option<String>,
    _driver: Arc<AbortOnDrop>,
}

impl SseStream {
    /// Reads `response` as an event stream; `driver` keeps its connection open.
    pub(super) fn new(response: Response<Incoming>, driver: Arc<AbortOnDrop>) -> SseStream {
        let (head, body) = response.into_parts();
        SseStream {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body,
            parser: SseParser::default(),
            preamble: None,
            ended: None,
            _driver: driver,
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The browser's last event id: the newest `id:` of any block read so far.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }

    /// The next block, or `None` when the stream ended.
    pub async fn next_block(&mut self) -> Option<SseBlock> {
        // Bounded: every round either yields a block, ends, or reads one body frame
        // within the step timeout.
        for _ in 0..1_000_000 {
            if let Some(block) = self.parser.pop() {
                return Some(block);
            }
            if self.ended.is_some() {
                return None;
            }
            match tokio::time::timeout(STEP_TIMEOUT, self.body.frame()).await {
                Err(_) => panic!(
                    "no complete SSE block within {STEP_TIMEOUT:?} (partial: {:?})",
                    String::from_utf8_lossy(self.parser.leftover())
                ),
                Ok(None) => self.ended = Some("end of stream".into()),
                Ok(Some(Err(e))) => self.ended = Some(format!("stream error: {e}")),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
            }
        }
        panic!("too many body frames without a complete SSE block");
    }

    /// The next block; the stream must not end.
    pub async fn block(&mut self) -> SseBlock {
        match self.next_block().await {
            Some(b) => b,
            None => panic!(
                "the event stream ended: {}",
                self.ended.as_deref().unwrap_or("?")
            ),
        }
    }

    /// The next block a browser would dispatch as an event (skipping blocks without
    /// data: the preamble's position and heartbeats).
    pub async fn next_event(&mut self) -> SseBlock {
        for _ in 0..10_000 {
            let block = self.block().await;
            if block.is_event() {
                return block;
            }
            assert!(
                block.event.is_none(),
                "a block with an event name but no data: {block:?}"
            );
        }
        panic!("10000 blocks without an event");
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<SseBlock> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }

    /// Reads the whole (non-stream) body, e.g. of an error answer.
    pub async fn into_reply(self) -> Reply {
        let body = within("error body", self.body.collect())
            .await
            .expect("a readable body")
            .to_bytes();
        Reply {
            status: self.status,
            version: self.version,
            headers: self.headers,
            body,
        }
    }
}

/// Asserts the headers every event stream answer carries.
pub fn assert_stream_headers(stream: &SseStream) {
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
}
