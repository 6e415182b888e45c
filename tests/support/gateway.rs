//! A real gateway started in-process on the test's runtime ([`TestGateway`]), with a
//! config tweak, and the requests tests make to it: publish, subscribe, open a stream
//! whatever its status.

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use ssegate::config::{KeyConfig, ListenerConfig, PublishConfig, TlsConfig};
use ssegate::{Config, Gateway};
use std::net::SocketAddr;

use super::*;

/// The publish key every test gateway accepts.
pub const PUBLISH_KEY: &str = "test-publish-key-1";

/// A second publish key, named `other`, that [`add_other_publisher`] configures: a
/// publisher distinct from the one [`PUBLISH_KEY`] names.
pub const OTHER_PUBLISH_KEY: &str = "test-publish-key-other";

/// Adds the publish key [`OTHER_PUBLISH_KEY`] (named `other`) to `config`.
pub fn add_other_publisher(config: &mut Config) {
    config.publish.keys.push(KeyConfig {
        name: "other".into(),
        value: Some(OTHER_PUBLISH_KEY.into()),
        env: None,
        default: None,
    });
}

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

/// Starts a gateway whose only JWT key is HS256 with [`SECRET`], then `tweak`.
pub async fn start_auth(tweak: impl FnOnce(&mut ssegate::Config)) -> TestGateway {
    start_with(|c| {
        c.auth.jwt_keys = vec![hmac_key("test", None, SECRET)];
        tweak(c);
    })
    .await
}

/// `GET path` as a stream over a fresh connection (`Http::H1` on the plain listener:
/// the plain HTTP/1.1 path; `Http::H2` on the TLS listener: hyper), whatever the status.
pub async fn open(gw: &TestGateway, http: Http, path: &str, headers: &[(&str, &str)]) -> SseStream {
    let endpoint = match http {
        Http::H1 => gw.plain(),
        Http::H2 => gw.tls(),
    };
    let mut conn = Conn::open(&endpoint, http).await;
    let stream = conn.get_stream(path, headers).await;
    let want = match http {
        Http::H1 => Version::HTTP_11,
        Http::H2 => Version::HTTP_2,
    };
    assert_eq!(stream.version, want, "{path}");
    stream
}

/// Opens a stream that must be accepted: 200, the stream headers, the preamble read.
pub async fn open_ok(
    gw: &TestGateway,
    http: Http,
    path: &str,
    headers: &[(&str, &str)],
) -> SseStream {
    let mut stream = open(gw, http, path, headers).await;
    if stream.status != StatusCode::OK {
        let reply = stream.into_reply().await;
        panic!(
            "{path} over {http:?}: expected 200, got {} {}",
            reply.status,
            reply.text()
        );
    }
    assert_stream_headers(&stream);
    let preamble = stream.block().await;
    assert!(preamble.retry.is_some(), "preamble: {preamble:?}");
    stream.preamble = Some(preamble);
    stream
}

/// Opens a stream that must be refused with `status` and JSON `error` `code`; returns
/// the answer.
pub async fn open_refused(
    gw: &TestGateway,
    http: Http,
    path: &str,
    headers: &[(&str, &str)],
    status: StatusCode,
    code: &str,
) -> Reply {
    let stream = open(gw, http, path, headers).await;
    assert_eq!(
        stream.status, status,
        "{path} over {http:?}: expected {status} {code}"
    );
    let reply = stream.into_reply().await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (status, code),
        "{path} over {http:?}: {}",
        reply.text()
    );
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    reply
}

/// `POST /publish` with `authorization` (a whole header value) and a JSON body.
pub async fn publish_as(gw: &TestGateway, authorization: &str, body: &Value) -> Reply {
    gw.request(
        Method::POST,
        "/publish",
        &[
            ("authorization", authorization),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}
