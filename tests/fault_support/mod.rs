//! Helpers of the fault tests (`tests/faults_*.rs`), beside `common`:
//!
//! - [`Binary`]: the real `ssegate` binary on a temporary config and a free port, its
//!   stderr in a file, signals sent with `kill`, its memory read from `/proc`; killed
//!   when dropped.
//! - [`RawSse`]: a lean HTTP/1.1 event-stream client on a raw socket that decodes the
//!   chunked framing itself, so a clean end (the `0\r\n\r\n` terminator) is told apart
//!   from a cut connection, and that can check megabytes of events without keeping them
//!   (a data line of a known length is skipped, not scanned).
//! - [`conn_from`]: a hyper client connection from a chosen local address (127.0.0.2 …).
//! - [`eventually`]: bounded polling; its time limit is a safety net, never asserted.

#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Polls `check` every 20 ms until it holds; panics after `limit` (a safety net: a
/// healthy run finishes far sooner, and no test asserts how long it took).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let rounds = (limit.as_millis() / 20 + 1) as usize;
    for _ in 0..rounds {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not reached within the safety limit of {limit:?}: {what}");
}

/// A hyper HTTP/1.1 connection to `addr` from `local`.
pub async fn conn_from(local: IpAddr, addr: SocketAddr) -> Conn {
    let tcp = connect_from(local, addr).await;
    Conn::handshake(tcp, Http::H1, None, "http", addr.to_string()).await
}

// ---------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------

/// The config file of a [`Binary`]: one plain listener on `port`, one publish key, then
/// `rest` (YAML sections other than `listeners` and `publish`).
pub fn binary_config(port: u16, key: &str, rest: &str) -> String {
    format!(
        "listeners:\n  - name: plain\n    address: 127.0.0.1:{port}\n\
         publish:\n  keys:\n    - name: test\n      value: {key}\n{rest}"
    )
}

/// The `ssegate` binary, running on a temporary config; killed when dropped.
pub struct Binary {
    child: Child,
    /// Its listener.
    pub addr: SocketAddr,
    /// The config file it was started with (SIGHUP re-reads it).
    pub config_path: PathBuf,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary with [`PUBLISH_KEY`] and `rest`, and waits until `/healthz`
    /// answers.
    pub async fn start(rest: &str) -> Binary {
        Binary::start_with_key(PUBLISH_KEY, rest).await
    }

    /// Starts the binary with publish key `key` and `rest`.
    pub async fn start_with_key(key: &str, rest: &str) -> Binary {
        // The port is probed free then bound by the child: another process may take it
        // in between, so a failed bind is retried on another port (bounded).
        for attempt in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let config_path = dir.path().join("gateway.yaml");
            std::fs::write(&config_path, binary_config(port, key, rest)).expect("write config");
            let log_path = dir.path().join("stderr.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_ssegate"))
                .env_remove("SSEGATE_PUBLISH_KEY")
                .env_remove("RUST_LOG")
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ssegate");
            let mut binary = Binary {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                config_path,
                log_path,
                exited: None,
                _dir: dir,
            };
            if binary.wait_healthy().await {
                return binary;
            }
            let log = binary.log();
            assert!(
                log.contains("cannot bind") && attempt < 4,
                "ssegate did not start: {log}"
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls `/healthz` (bounded); false when the process exited first.
    async fn wait_healthy(&mut self) -> bool {
        for _ in 0..600 {
            if self.try_exit().is_some() {
                return false;
            }
            if TcpStream::connect(self.addr).await.is_ok() {
                let reply = self.get("/healthz").await;
                assert_eq!(reply.status, StatusCode::OK, "healthz: {}", reply.text());
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("ssegate never answered on {}: {}", self.addr, self.log());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}: {status}", self.pid());
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("child status");
        }
        self.exited
    }

    /// Waits (bounded by `limit`, a safety net) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let rounds = limit.as_millis() / 20 + 1;
        for _ in 0..rounds {
            if let Some(status) = self.try_exit() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "ssegate did not exit within the safety limit of {limit:?}: {}",
            self.log()
        );
    }

    /// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
    pub fn proc_status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().strip_suffix("kB")?.trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Its listener as an endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::plain(self.addr)
    }

    /// One request over a fresh connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        self.endpoint().request(method, path, headers, body).await
    }

    /// `GET path` over a fresh connection.
    pub async fn get(&self, path: &str) -> Reply {
        self.endpoint().get(path).await
    }

    /// `POST /publish` with publish key `key`.
    pub async fn publish_with(&self, key: &str, body: &serde_json::Value) -> Reply {
        let auth = format!("Bearer {key}");
        self.request(
            Method::POST,
            "/publish",
            &[("authorization", &auth)],
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.endpoint().metrics().await
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 event-stream client
// ---------------------------------------------------------------------------------------

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
    /// The browser's last event id: the newest `id:` of the blocks returned so far.
    pub last_event_id: Option<String>,
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
            last_event_id: None,
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
                if let Some(id) = &block.id {
                    self.last_event_id = Some(id.clone());
                }
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
