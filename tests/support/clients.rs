//! HTTP clients (hyper): HTTP/1.1 or HTTP/2, plain (h2c by prior knowledge) or TLS
//! (rustls, ALPN `http/1.1` or `h2`), and the whole answers they read ([`Reply`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::*;

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
    let mut config =
        rustls::ClientConfig::builder_with_provider(ssegate::transport::tls::provider())
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
pub(super) struct AbortOnDrop(AbortHandle);

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
        SseStream::new(response, self.driver.clone())
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

/// A hyper HTTP/1.1 connection to `addr` from `local`.
pub async fn conn_from(local: IpAddr, addr: SocketAddr) -> Conn {
    let tcp = connect_from(local, addr).await;
    Conn::handshake(tcp, Http::H1, None, "http", addr.to_string()).await
}
