//! [`RawSse`]: a minimal HTTP/1.1 event-stream client on a raw socket that decodes the
//! chunked framing itself, so a clean end (the `0\r\n\r\n` terminator) is told apart
//! from a cut connection; its payload goes to the one [`SseParser`].

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// How a [`RawSse`] stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The chunked terminator `0\r\n\r\n` arrived: the server ended the body cleanly.
    Clean,
    /// The connection closed (EOF) without the terminator.
    Closed,
    /// Reading failed (reset, …).
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// A raw HTTP/1.1 `GET /events…` stream: response head, then chunked SSE.
pub struct RawSse {
    socket: TcpStream,
    /// The response status.
    pub status: u16,
    /// The response head (status line and headers, lower-cased names).
    pub head: String,
    /// The body of a non-200 answer (read whole, by Content-Length).
    pub error_body: Option<Bytes>,
    inbuf: Vec<u8>,
    in_pos: usize,
    chunk: Chunk,
    parser: SseParser,
    /// How the stream ended, once it did.
    pub end: Option<StreamEnd>,
}

/// The request bytes of `GET path` with `headers`.
pub fn events_request(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

impl RawSse {
    /// Connects to `addr` and sends `GET path`; reads the response head.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawSse {
        let socket = within("TCP connect", TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        socket.set_nodelay(true).expect("nodelay");
        RawSse::on(socket, path, headers).await
    }

    /// Sends `GET path` on `socket` and reads the response head.
    pub async fn on(mut socket: TcpStream, path: &str, headers: &[(&str, &str)]) -> RawSse {
        within(
            "write request",
            socket.write_all(&events_request(path, headers)),
        )
        .await
        .expect("the request is written");
        RawSse::response(socket, Vec::new()).await
    }

    /// Reads the response head of a request already sent on `socket` (`pending` holds
    /// bytes already read from it).
    pub async fn response(socket: TcpStream, pending: Vec<u8>) -> RawSse {
        let mut sse = RawSse {
            socket,
            status: 0,
            head: String::new(),
            error_body: None,
            inbuf: pending,
            in_pos: 0,
            chunk: Chunk::Size,
            parser: SseParser::default(),
            end: None,
        };
        let mut head_end = None;
        // Bounded: a head is a few hundred bytes; each read waits at most a step.
        for _ in 0..1000 {
            head_end = find(&sse.inbuf, b"\r\n\r\n");
            if head_end.is_some() {
                break;
            }
            assert!(
                within("the response head", sse.fill()).await,
                "connection closed before the response head: {:?}",
                String::from_utf8_lossy(&sse.inbuf)
            );
        }
        let head_end = head_end.expect("a response head");
        let head = String::from_utf8_lossy(&sse.inbuf[..head_end]).into_owned();
        sse.in_pos = head_end + 4;
        sse.status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        sse.head = head.to_ascii_lowercase();
        if sse.status != 200 {
            let length: usize = sse
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("an error answer has a Content-Length: {head}"));
            for _ in 0..1000 {
                if sse.inbuf.len() - sse.in_pos >= length {
                    break;
                }
                assert!(
                    within("the error body", sse.fill()).await,
                    "connection closed inside the error body"
                );
            }
            let body = sse.inbuf[sse.in_pos..sse.in_pos + length].to_vec();
            sse.in_pos += length;
            sse.error_body = Some(Bytes::from(body));
            return sse;
        }
        assert_eq!(
            sse.header("transfer-encoding"),
            Some("chunked".into()),
            "an event stream over HTTP/1.1 is chunked: {head}"
        );
        sse.process();
        sse
    }

    /// A response header (name lower case), value lower-cased.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim() == name).then(|| v.trim().to_string())
        })
    }

    /// The browser's last event id: the newest `id:` of the blocks returned so far.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }

    /// The JSON of a non-200 answer.
    pub fn error_json(&self) -> serde_json::Value {
        let body = self.error_body.as_ref().expect("an error answer");
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
    }

    /// From now on, every `data:` line is taken to be exactly `len` bytes and skipped
    /// (see [`SseParser::skip_data_of_len`]).
    pub fn skip_data_of_len(&mut self, len: usize) {
        self.parser.skip_data_of_len(len);
    }

    /// Reads once from the socket into the input buffer; false at EOF or error (the
    /// end is recorded unless the stream already ended cleanly).
    async fn fill(&mut self) -> bool {
        if self.in_pos > 0 && self.in_pos * 2 >= self.inbuf.len() {
            self.inbuf.drain(..self.in_pos);
            self.in_pos = 0;
        }
        self.inbuf.reserve(256 * 1024);
        match self.socket.read_buf(&mut self.inbuf).await {
            Ok(0) => {
                self.end.get_or_insert(StreamEnd::Closed);
                false
            }
            Ok(_) => true,
            Err(e) => {
                self.end.get_or_insert(StreamEnd::Failed(e.to_string()));
                false
            }
        }
    }

    /// Decodes the chunked framing of what was read; the payload goes to the SSE parser.
    fn process(&mut self) {
        loop {
            let input = &self.inbuf[self.in_pos..];
            match self.chunk {
                Chunk::Size => {
                    let Some(line_end) = find(input, b"\r\n") else {
                        assert!(
                            input.len() < 64,
                            "a chunk size line of {} bytes",
                            input.len()
                        );
                        break;
                    };
                    let line = std::str::from_utf8(&input[..line_end]).expect("ASCII size");
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                    self.in_pos += line_end + 2;
                    self.chunk = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if input.is_empty() {
                        break;
                    }
                    let take = left.min(input.len());
                    self.parser.push(&input[..take]);
                    self.in_pos += take;
                    self.chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd | Chunk::Trailer => {
                    if input.len() < 2 {
                        break;
                    }
                    assert_eq!(&input[..2], b"\r\n", "chunk framing");
                    self.in_pos += 2;
                    if self.chunk == Chunk::Trailer {
                        self.chunk = Chunk::Done;
                        self.end = Some(StreamEnd::Clean);
                    } else {
                        self.chunk = Chunk::Size;
                    }
                }
                Chunk::Done => break,
            }
        }
    }

    /// The next block, or `None` once the stream ended (see [`RawSse::end`]).
    pub async fn next_block(&mut self) -> Option<SseBlock> {
        // Bounded: each round returns, or reads once within the step timeout.
        for _ in 0..10_000_000 {
            if let Some(block) = self.parser.pop() {
                return Some(block);
            }
            if self.end.is_some() {
                return None;
            }
            let more = within("the next bytes of an event stream", self.fill()).await;
            if more {
                self.process();
            }
        }
        panic!("too many reads without an SSE block");
    }

    /// The next block; the stream must not have ended.
    pub async fn block(&mut self) -> SseBlock {
        match self.next_block().await {
            Some(b) => b,
            None => panic!("the event stream ended: {:?}", self.end),
        }
    }

    /// The next event (skipping heartbeats and position-only blocks).
    pub async fn next_event(&mut self) -> SseBlock {
        for _ in 0..10_000 {
            let b = self.block().await;
            if b.is_event() {
                return b;
            }
        }
        panic!("10000 blocks without an event");
    }

    /// After a clean end: sends another `GET` on the same (kept-alive) connection.
    pub async fn again(mut self, path: &str, headers: &[(&str, &str)]) -> RawSse {
        assert_eq!(
            self.end,
            Some(StreamEnd::Clean),
            "reuse after a clean end only"
        );
        within(
            "write request",
            self.socket.write_all(&events_request(path, headers)),
        )
        .await
        .expect("the request is written");
        let leftover = self.inbuf.split_off(self.in_pos);
        RawSse::response(self.socket, leftover).await
    }

    /// Reads on after the end of the body: true when the server closed the connection
    /// (EOF or reset) within the step timeout, false when more bytes came.
    pub async fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match within(
            "the server closing the connection",
            self.socket.read(&mut byte),
        )
        .await
        {
            Ok(0) | Err(_) => true,
            Ok(_) => false,
        }
    }

    /// The socket (to read or write raw bytes).
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }
}
