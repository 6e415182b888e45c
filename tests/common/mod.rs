//! Shared harness for the integration tests.
//!
//! - [`TestGateway`]: a real gateway on `127.0.0.1:0` with one plain and one TLS
//!   listener (self-signed certificate), started on the test's tokio runtime, with a
//!   config tweak closure.
//! - [`Conn`]: a real hyper client connection, HTTP/1.1 or HTTP/2, plain (h2c by prior
//!   knowledge) or TLS (rustls, ALPN `http/1.1` or `h2`).
//! - [`SseStream`] / [`SseParser`]: an incremental `text/event-stream` parser yielding
//!   one [`SseBlock`] per blank-line-terminated block (id, event, data joined with `\n`,
//!   retry, comments, and the block's raw text), with the browser's last-event-id rule.
//! - Publish / request helpers returning status and JSON, a raw-socket HTTP/1.1 helper
//!   for requests hyper would not send (exact bytes, chunked bodies), and a curl driver.
//!
//! Every wait has a safety timeout ([`STEP_TIMEOUT`]) so a hung test fails; no timing is
//! ever asserted.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use ssegate::config::{KeyConfig, ListenerConfig, PublishConfig, TlsConfig};
use ssegate::{Config, Gateway};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::AbortHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The publish key every test gateway accepts.
pub const PUBLISH_KEY: &str = "test-publish-key-1";

/// Safety net for any single wait (a connect, a response, the next SSE block).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it does not finish within [`STEP_TIMEOUT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP_TIMEOUT:?}: {what}"),
    }
}

// ---------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------

/// The test config: listeners `plain` and `tls` (self-signed) on port 0, the explicit
/// test publish key, everything else at its defaults.
pub fn test_config() -> Config {
    Config {
        listeners: vec![
            ListenerConfig {
                name: "plain".into(),
                address: "127.0.0.1:0".parse().expect("address"),
                tls: None,
                routes: Default::default(),
            },
            ListenerConfig {
                name: "tls".into(),
                address: "127.0.0.1:0".parse().expect("address"),
                tls: Some(TlsConfig::default()),
                routes: Default::default(),
            },
        ],
        publish: PublishConfig {
            keys: vec![KeyConfig {
                name: "test".into(),
                value: Some(PUBLISH_KEY.into()),
                env: None,
                default: None,
            }],
        },
        ..Config::default()
    }
}

/// A running gateway and how to reach it.
pub struct TestGateway {
    /// The gateway itself (dropping it stops the listeners).
    pub gateway: Gateway,
    /// The plain listener.
    pub plain_addr: SocketAddr,
    /// The TLS listener.
    pub tls_addr: SocketAddr,
    /// The TLS listener's generated self-signed certificate.
    pub tls_cert: CertificateDer<'static>,
}

/// Starts a gateway with [`test_config`].
pub async fn start() -> TestGateway {
    start_with(|_| {}).await
}

/// Starts a gateway with [`test_config`] changed by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    let mut config = test_config();
    tweak(&mut config);
    let gateway = within("gateway start", Gateway::start(config))
        .await
        .expect("the gateway starts");
    let plain_addr = gateway.addr("plain").expect("listener 'plain'");
    let tls_addr = gateway.addr("tls").expect("listener 'tls'");
    let tls_cert = gateway
        .listeners
        .iter()
        .find(|l| l.name == "tls")
        .and_then(|l| l.self_signed.clone())
        .expect("the tls listener generated a self-signed certificate");
    TestGateway {
        gateway,
        plain_addr,
        tls_addr,
        tls_cert,
    }
}

impl TestGateway {
    /// The plain listener as an endpoint.
    pub fn plain(&self) -> Endpoint {
        Endpoint::plain(self.plain_addr)
    }

    /// The TLS listener as an endpoint, trusting its self-signed certificate.
    pub fn tls(&self) -> Endpoint {
        Endpoint::tls(self.tls_addr, self.tls_cert.clone())
    }

    /// Opens a subscription over HTTP/1.1 plain, asserts 200, and reads the preamble
    /// block (so the subscription is registered when this returns).
    pub async fn subscribe(&self, path: &str) -> SseStream {
        self.subscribe_with(path, &[]).await
    }

    /// Like [`TestGateway::subscribe`], with extra request headers.
    pub async fn subscribe_with(&self, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut conn = Conn::open(&self.plain(), Http::H1).await;
        let mut stream = conn.get_stream(path, headers).await;
        assert_eq!(stream.status, StatusCode::OK, "subscribing to {path}");
        let preamble = stream.block().await;
        assert!(
            preamble.retry.is_some(),
            "the first block carries retry: {preamble:?}"
        );
        stream.preamble = Some(preamble);
        stream
    }

    /// One request over a fresh HTTP/1.1 plain connection; reads the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.plain().request(method, path, headers, body).await
    }

    /// `GET path` over a fresh HTTP/1.1 plain connection.
    pub async fn get(&self, path: &str) -> Reply {
        self.plain().get(path).await
    }

    /// `POST /publish` with the test key and `body` as JSON.
    pub async fn publish(&self, body: &Value) -> (StatusCode, Value) {
        let reply = self.publish_bytes(body.to_string()).await;
        (reply.status, reply.json())
    }

    /// `POST /publish` with the test key and a raw body.
    pub async fn publish_bytes(&self, body: impl Into<Bytes>) -> Reply {
        let auth = format!("Bearer {PUBLISH_KEY}");
        self.request(
            Method::POST,
            "/publish",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Publishes one event (asserting 200) and returns its id.
    pub async fn publish_ok(&self, body: &Value) -> String {
        let (status, json) = self.publish(body).await;
        assert_eq!(status, StatusCode::OK, "publish {body}: {json}");
        json["id"]
            .as_str()
            .unwrap_or_else(|| panic!("publish answer without id: {json}"))
            .to_string()
    }

    /// Publishes string `data` to one channel and returns the id.
    pub async fn publish_text(&self, channel: &str, data: &str) -> String {
        self.publish_ok(&serde_json::json!({"channel": channel, "data": data}))
            .await
    }

    /// Publishes a batch (asserting 200) and returns the ids.
    pub async fn publish_batch(&self, events: Vec<Value>) -> Vec<String> {
        let body = serde_json::json!({ "events": events });
        let (status, json) = self.publish(&body).await;
        assert_eq!(status, StatusCode::OK, "batch publish: {json}");
        json["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("batch answer without ids: {json}"))
            .iter()
            .map(|v| v.as_str().expect("id string").to_string())
            .collect()
    }

    /// `GET /cursor`'s id.
    pub async fn cursor(&self) -> String {
        let reply = self.get("/cursor").await;
        assert_eq!(reply.status, StatusCode::OK);
        let json = reply.json();
        json["id"]
            .as_str()
            .unwrap_or_else(|| panic!("cursor without id: {json}"))
            .to_string()
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        self.plain().metrics().await
    }
}

// ---------------------------------------------------------------------------------------
// Ids and metrics
// ---------------------------------------------------------------------------------------

/// The sequence part of an id `<8 hex>-<seq>`.
pub fn seq(id: &str) -> u64 {
    let (epoch, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an id: {id:?}"));
    assert_eq!(epoch.len(), 8, "epoch of {id:?}");
    assert!(epoch.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
    seq.parse()
        .unwrap_or_else(|_| panic!("not an id sequence: {id:?}"))
}

/// The epoch part of an id `<8 hex>-<seq>`.
pub fn epoch(id: &str) -> &str {
    let (epoch, _) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an id: {id:?}"));
    epoch
}

/// The id with the same epoch as `like` and sequence `seq`.
pub fn id_at(like: &str, seq: u64) -> String {
    format!("{}-{seq}", epoch(like))
}

/// The value of one series (`name{labels}` exactly as rendered) in a Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The sum of every series of `family` (e.g. `ssegate_connections_open` over its labels).
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `ssegate_connections_closed_total{reason=…}`, 0 when absent.
pub fn closed(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_connections_closed_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_refusals_total{reason=…}`, 0 when absent.
pub fn refusals(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_refusals_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_auth_failures_total{kind=…}`, 0 when absent.
pub fn auth_failures(text: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("ssegate_auth_failures_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `ssegate_connections_open`, summed over its labels.
pub fn streams_open(text: &str) -> f64 {
    metric_sum(text, "ssegate_connections_open")
}

// ---------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A TCP connection to `addr` from `local` (port chosen by the kernel).
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .unwrap_or_else(|e| panic!("bind {local}: {e}"));
    let stream = within("TCP connect", socket.connect(addr))
        .await
        .unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    stream
}

// ---------------------------------------------------------------------------------------
// Client connections
// ---------------------------------------------------------------------------------------

/// Where to connect: an address, and for TLS the root certificate to trust.
#[derive(Clone)]
pub struct Endpoint {
    /// The listener's address.
    pub addr: SocketAddr,
    /// For TLS: the certificate to trust as root (server name `localhost`).
    pub tls_root: Option<CertificateDer<'static>>,
}

impl Endpoint {
    /// A plain listener.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            tls_root: None,
        }
    }

    /// A TLS listener whose certificate chains to `root`.
    pub fn tls(addr: SocketAddr, root: CertificateDer<'static>) -> Endpoint {
        Endpoint {
            addr,
            tls_root: Some(root),
        }
    }

    /// One request over a fresh HTTP/1.1 connection; reads the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut conn = Conn::open(self, Http::H1).await;
        conn.request(method, path, headers, body.into()).await
    }

    /// `GET path` over a fresh HTTP/1.1 connection.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    /// `GET /metrics` as text (asserting 200).
    pub async fn metrics(&self) -> String {
        let reply = self.get("/metrics").await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.text()
    }
}

/// The HTTP version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 (h2c by prior knowledge on plain, ALPN `h2` on TLS).
    H2,
}

/// A rustls client config trusting only `root`, offering `alpn`.
pub fn tls_client_config(
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("a usable root certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(ssegate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS handshake with `addr` as `localhost`, trusting `root`, offering `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = within("TCP connect", TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true)?;
    let connector = TlsConnector::from(tls_client_config(root, alpn));
    let name = ServerName::try_from("localhost").expect("server name");
    within("TLS handshake", connector.connect(name, tcp)).await
}

/// Aborts the task driving a client connection (closing its socket) when the last
/// holder goes away.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection (hyper), HTTP/1.1 or HTTP/2, plain or TLS.
pub struct Conn {
    sender: Sender,
    /// The HTTP version spoken.
    pub http: Http,
    /// The ALPN protocol the TLS handshake settled on (None on plain).
    pub alpn: Option<Vec<u8>>,
    scheme: &'static str,
    authority: String,
    driver: Arc<AbortOnDrop>,
}

impl Conn {
    /// Connects to `endpoint` and performs the HTTP handshake.
    pub async fn open(endpoint: &Endpoint, http: Http) -> Conn {
        match &endpoint.tls_root {
            None => {
                let tcp = within("TCP connect", TcpStream::connect(endpoint.addr))
                    .await
                    .expect("TCP connect");
                tcp.set_nodelay(true).expect("nodelay");
                let authority = endpoint.addr.to_string();
                Conn::handshake(tcp, http, None, "http", authority).await
            }
            Some(root) => {
                let alpn: &[u8] = match http {
                    Http::H1 => b"http/1.1",
                    Http::H2 => b"h2",
                };
                let tls = tls_connect(endpoint.addr, root, &[alpn])
                    .await
                    .expect("TLS handshake");
                let negotiated = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
                let authority = format!("localhost:{}", endpoint.addr.port());
                Conn::handshake(tls, http, negotiated, "https", authority).await
            }
        }
    }

    /// The HTTP handshake over an established stream.
    pub async fn handshake<S>(
        io: S,
        http: Http,
        alpn: Option<Vec<u8>>,
        scheme: &'static str,
        authority: String,
    ) -> Conn
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, driver) = match http {
            Http::H1 => {
                let (sender, conn) =
                    within("HTTP/1.1 handshake", http1::handshake(TokioIo::new(io)))
                        .await
                        .expect("HTTP/1.1 handshake");
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                (Sender::H1(sender), task.abort_handle())
            }
            Http::H2 => {
                let (sender, conn) = within(
                    "HTTP/2 handshake",
                    http2::handshake(TokioExecutor::new(), TokioIo::new(io)),
                )
                .await
                .expect("HTTP/2 handshake");
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                (Sender::H2(sender), task.abort_handle())
            }
        };
        Conn {
            sender,
            http,
            alpn,
            scheme,
            authority,
            driver: Arc::new(AbortOnDrop(driver)),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut builder = match self.http {
            Http::H1 => Request::builder().uri(path).header("host", &self.authority),
            Http::H2 => {
                Request::builder().uri(format!("{}://{}{}", self.scheme, self.authority, path))
            }
        }
        .method(method);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(body)).expect("a valid request")
    }

    /// Sends a request and returns the response head with its streaming body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Response<Incoming> {
        let request = self.build(method, path, headers, body);
        let what = format!("response to {path}");
        match &mut self.sender {
            Sender::H1(s) => {
                within(&what, s.ready()).await.expect("connection ready");
                within(&what, s.send_request(request))
                    .await
                    .expect("a response")
            }
            Sender::H2(s) => {
                within(&what, s.ready()).await.expect("connection ready");
                within(&what, s.send_request(request))
                    .await
                    .expect("a response")
            }
        }
    }

    /// Sends a request and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let response = self.send(method, path, headers, body).await;
        let (head, body) = response.into_parts();
        let body = within("response body", body.collect())
            .await
            .expect("a readable body")
            .to_bytes();
        Reply {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body,
        }
    }

    /// `GET path` as an event stream (whatever the status; see [`SseStream::status`]).
    pub async fn get_stream(&mut self, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let response = self.send(Method::GET, path, headers, Bytes::new()).await;
        let (head, body) = response.into_parts();
        SseStream {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body,
            parser: SseParser::default(),
            last_event_id: None,
            preamble: None,
            ended: None,
            _driver: self.driver.clone(),
        }
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The HTTP version of the answer.
    pub version: Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The JSON `error` code.
    pub fn error_code(&self) -> String {
        let json = self.json();
        json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {json}"))
            .to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket
// ---------------------------------------------------------------------------------------

/// Writes `request` (exact bytes, in one write) to `addr` and reads one HTTP/1.1 answer
/// with a `Content-Length` body.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut socket = within("TCP connect", TcpStream::connect(addr))
        .await
        .expect("TCP connect");
    raw_exchange(&mut socket, request).await
}

/// Writes `request` (exact bytes, in one write) on an open connection and reads one
/// HTTP/1.1 answer with a `Content-Length` body; the connection stays usable.
pub async fn raw_exchange(socket: &mut TcpStream, request: &[u8]) -> Reply {
    within("raw write", socket.write_all(request))
        .await
        .expect("the request is written");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = within("raw read", socket.read(&mut chunk))
            .await
            .expect("a readable answer");
        assert!(n > 0, "connection closed before the answer's head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            http::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            value.trim().parse().expect("header value"),
        );
    }
    let length: usize = headers
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .expect("the answer has a Content-Length");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = within("raw read", socket.read(&mut chunk))
            .await
            .expect("a readable body");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Reply {
        status: StatusCode::from_u16(status).expect("status"),
        version: Version::HTTP_11,
        headers,
        body: Bytes::from(body),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// SSE parsing
// ---------------------------------------------------------------------------------------

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

    /// The next complete block, if any.
    pub fn pop(&mut self) -> Option<SseBlock> {
        self.ready.pop_front()
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
    /// The browser's last event id: the newest `id:` of any block read so far.
    pub last_event_id: Option<String>,
    /// The first block, when read by [`TestGateway::subscribe`].
    pub preamble: Option<SseBlock>,
    ended: Option<String>,
    _driver: Arc<AbortOnDrop>,
}

impl SseStream {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The next block, or `None` when the stream ended.
    pub async fn next_block(&mut self) -> Option<SseBlock> {
        // Bounded: every round either yields a block, ends, or reads one body frame
        // within the step timeout.
        for _ in 0..1_000_000 {
            if let Some(block) = self.parser.pop() {
                if let Some(id) = &block.id {
                    self.last_event_id = Some(id.clone());
                }
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

// ---------------------------------------------------------------------------------------
// curl as a second real client
// ---------------------------------------------------------------------------------------

/// A running `curl -sS -N -i …` whose stdout is parsed as a head and an event stream.
pub struct CurlStream {
    child: std::process::Child,
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    head_buf: Vec<u8>,
    /// The response head as curl printed it (status line and headers).
    pub head: Option<String>,
    parser: SseParser,
}

impl CurlStream {
    /// Starts curl with `args` (the URL included); `-sS -N -i --max-time 60` are added.
    pub fn spawn(args: &[&str]) -> CurlStream {
        let mut child = std::process::Command::new("curl")
            .args(["-sS", "-N", "-i", "--max-time", "60"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("curl is installed (it is a test dependency of this suite)");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        CurlStream {
            child,
            chunks: rx,
            head_buf: Vec::new(),
            head: None,
            parser: SseParser::default(),
        }
    }

    async fn feed(&mut self) {
        let chunk = within("curl output", self.chunks.recv())
            .await
            .expect("curl ended its output early");
        if self.head.is_some() {
            self.parser.push(&chunk);
            return;
        }
        self.head_buf.extend_from_slice(&chunk);
        if let Some(i) = find(&self.head_buf, b"\r\n\r\n") {
            self.head = Some(String::from_utf8_lossy(&self.head_buf[..i]).into_owned());
            let rest = self.head_buf.split_off(i + 4);
            self.parser.push(&rest);
        }
    }

    /// The response head (status line and headers), once received.
    pub async fn head(&mut self) -> String {
        for _ in 0..10_000 {
            if let Some(h) = &self.head {
                return h.clone();
            }
            self.feed().await;
        }
        panic!("no response head from curl");
    }

    /// The next SSE block.
    pub async fn block(&mut self) -> SseBlock {
        for _ in 0..100_000 {
            if self.head.is_some() {
                if let Some(b) = self.parser.pop() {
                    return b;
                }
            }
            self.feed().await;
        }
        panic!("no SSE block from curl");
    }

    /// The next block with data.
    pub async fn next_event(&mut self) -> SseBlock {
        for _ in 0..10_000 {
            let b = self.block().await;
            if b.is_event() {
                return b;
            }
        }
        panic!("no event from curl");
    }
}

impl Drop for CurlStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl to completion (blocking, off the runtime) and returns its stdout.
pub async fn curl_output(args: Vec<String>) -> (bool, String) {
    let out = within(
        "curl",
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "30"])
                .args(&args)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("curl is installed (it is a test dependency of this suite)")
        }),
    )
    .await
    .expect("curl thread");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
