//! Faults at the limits: each bound refuses as documented (status, `Retry-After`, error
//! code, `ssegate_refusals_total{reason}`), and the gateway goes on serving others
//! afterwards (a normal subscribe and publish work).
//!
//! - per-IP cap: the third connection from 127.0.0.1 gets 429; 127.0.0.2 still works;
//! - total cap: the connection over it gets 503;
//! - slowloris: a client sending its request head a byte at a time is cut off after
//!   `limits.header_read_timeout`, on the event-stream path and on hyper's; a client
//!   that connects and sends nothing is closed too (plain, and TLS after its
//!   handshake); all counted as `header_timeout`; a TLS client that never finishes its
//!   handshake is counted as `tls_handshake_timeout`;
//! - oversized heads: 431 on HTTP/1.1 (`header_too_large`), plain and TLS, too many
//!   bytes or too many fields;
//! - more HTTP/2 streams on one connection than `limits.max_streams_per_connection`:
//!   the extra stream gets 429;
//! - a publish body trickled a byte at a time is cut off with 408 (`body_timeout`),
//!   and a token without publish grants is refused before its body is read.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const THIRD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// A subscribe from `sub_from` and a publish from `pub_from` work; returns the id.
async fn assert_still_serving(gw: &TestGateway, sub_from: IpAddr, pub_from: IpAddr) -> String {
    let mut conn = conn_from(sub_from, gw.plain_addr).await;
    let mut sub = conn.get_stream("/events/alive", &[]).await;
    assert_eq!(sub.status, StatusCode::OK, "still subscribing");
    sub.block().await;
    let mut publisher = conn_from(pub_from, gw.plain_addr).await;
    let auth = format!("Bearer {PUBLISH_KEY}");
    let reply = publisher
        .request(
            Method::POST,
            "/publish",
            &[("authorization", &auth)],
            Bytes::from(json!({"channel": "alive", "data": "still serving"}).to_string()),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "still publishing: {}",
        reply.text()
    );
    let id = reply.json()["id"].as_str().expect("id").to_string();
    assert_eq!(sub.next_event().await.id.as_deref(), Some(id.as_str()));
    id
}

/// `/metrics` fetched from `from`.
async fn metrics_from(gw: &TestGateway, from: IpAddr) -> String {
    let mut conn = conn_from(from, gw.plain_addr).await;
    let reply = conn
        .request(Method::GET, "/metrics", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.text()
}

/// Asserts a refusal answer: status, `Retry-After`, JSON error code.
fn assert_refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply
            .header("retry-after")
            .is_some_and(|v| v.parse::<u32>().is_ok_and(|s| s >= 1)),
        "Retry-After: {:?}",
        reply.headers
    );
    assert_eq!(reply.error_code(), code);
}

/// Waits until the gateway counts `n` open TCP connections.
async fn wait_open_connections(gw: &TestGateway, n: usize) {
    eventually(
        &format!("{n} TCP connections open"),
        STEP_TIMEOUT,
        || async { gw.gateway.limiter.open() == n },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_cap_refuses_with_429_while_other_addresses_are_served() {
    let gw = start_with(|c| c.limits.max_connections_per_ip = Some(2)).await;
    let mut a = gw.subscribe("/events/alive").await;
    let mut b = gw.subscribe("/events/alive").await;

    let mut third = conn_from(LOCALHOST, gw.plain_addr).await;
    let reply = third
        .request(Method::GET, "/events/alive", &[], Bytes::new())
        .await;
    assert_refused(
        &reply,
        StatusCode::TOO_MANY_REQUESTS,
        "max_connections_per_ip",
    );
    drop(third);

    // Another address is not affected, and the two streams of 127.0.0.1 stream on.
    let id = assert_still_serving(&gw, OTHER, THIRD).await;
    assert_eq!(a.next_event().await.id.as_deref(), Some(id.as_str()));
    assert_eq!(b.next_event().await.id.as_deref(), Some(id.as_str()));
    let metrics = metrics_from(&gw, THIRD).await;
    assert_eq!(
        refusals(&metrics, "max_connections_per_ip"),
        1.0,
        "{metrics}"
    );

    // A place freed is a place taken again.
    drop(a);
    wait_open_connections(&gw, 1).await;
    let id = assert_still_serving(&gw, LOCALHOST, OTHER).await;
    assert_eq!(b.next_event().await.id, Some(id));
}

/// Refused connections take no place in the total: one address far over its per-IP
/// cap, holding its refused connections open without a word (each waits for a request
/// to refuse), cannot make another address be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_a_per_ip_cap_take_no_place_from_other_addresses() {
    let gw = start_with(|c| {
        c.limits.max_connections = Some(6);
        c.limits.max_connections_per_ip = Some(2);
    })
    .await;
    let _a = gw.subscribe("/events/alive").await;
    let _b = gw.subscribe("/events/alive").await;
    // Refusals of any kind so far (before the fix, those past the total were `max_connections`).
    let refused = || {
        let counter = &gw.gateway.shared.metrics.refusals_total;
        ["max_connections_per_ip", "max_connections"]
            .map(|reason| counter.with_label_values(&[reason]).get())
            .iter()
            .sum::<u64>()
    };
    // 20 more from 127.0.0.1, three times the total cap: all refused, all held open.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect_from(LOCALHOST, gw.plain_addr).await);
    }
    eventually("20 refusals counted", STEP_TIMEOUT, || async {
        refused() == 20
    })
    .await;

    // Another address still gets a place: a stream and a publish.
    let id = assert_still_serving(&gw, OTHER, THIRD).await;
    assert!(!id.is_empty());
    let metrics = metrics_from(&gw, THIRD).await;
    assert_eq!(refusals(&metrics, "max_connections"), 0.0, "{metrics}");
    assert_eq!(
        refusals(&metrics, "max_connections_per_ip"),
        20.0,
        "{metrics}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_cap_refuses_with_503_and_frees_places() {
    let gw = start_with(|c| c.limits.max_connections = Some(4)).await;
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(gw.subscribe("/events/alive").await);
    }
    wait_open_connections(&gw, 4).await;
    let mut over = Conn::open(&gw.plain(), Http::H1).await;
    let reply = over
        .request(Method::GET, "/events/alive", &[], Bytes::new())
        .await;
    assert_refused(&reply, StatusCode::SERVICE_UNAVAILABLE, "max_connections");
    drop(over);

    subs.truncate(2);
    wait_open_connections(&gw, 2).await;
    let metrics = gw.metrics().await;
    assert_eq!(refusals(&metrics, "max_connections"), 1.0, "{metrics}");
    wait_open_connections(&gw, 2).await;
    let id = assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
    for sub in &mut subs {
        assert_eq!(sub.next_event().await.id.as_deref(), Some(id.as_str()));
    }
}

/// Sends `head` a byte every `interval` on `io` while reading; returns what was read
/// until the server closed the connection, and how many bytes were sent by then.
async fn trickle<S>(io: S, head: &[u8], interval: Duration) -> (Vec<u8>, usize)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let bytes = head.to_vec();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            tokio::time::sleep(interval).await;
        }
        // Keep the write half (and so the connection) open: only the server closes.
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        match within("the server closing the connection", rd.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let sent = sent.load(std::sync::atomic::Ordering::Acquire);
    writer.abort();
    (answer, sent)
}

/// A request head that takes a minute at a byte per 200 ms: it cannot complete.
fn long_head(request_line: &str) -> Vec<u8> {
    let mut head = format!("{request_line}\r\nHost: 127.0.0.1\r\n");
    for i in 0..12 {
        head.push_str(&format!("X-Slow-{i}: {}\r\n", "s".repeat(10)));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

async fn header_timeouts(gw: &TestGateway) -> f64 {
    refusals(&gw.metrics().await, "header_timeout")
}

/// The close of a refused connection and its count happen in one task; the count is
/// read with a short bounded wait all the same.
async fn assert_header_timeouts(gw: &TestGateway, n: f64) {
    eventually(
        &format!("ssegate_refusals_total{{reason=\"header_timeout\"}} == {n}"),
        Duration::from_secs(5),
        || async { header_timeouts(gw).await == n },
    )
    .await;
}

async fn slowloris_gateway() -> TestGateway {
    start_with(|c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
        c.limits.tls_handshake_timeout = Duration::from_secs(1);
    })
    .await
}

/// A slow `GET /events…` (the plain HTTP/1.1 path (pushed streams) reads it): cut off, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_event_stream_request_is_cut_off_and_counted() {
    let gw = slowloris_gateway().await;
    let head = long_head("GET /events/alive HTTP/1.1");
    let socket = TcpStream::connect(gw.plain_addr).await.expect("connect");
    let (answer, sent) = trickle(socket, &head, Duration::from_millis(200)).await;
    assert!(
        sent < head.len(),
        "cut off before the head was complete ({sent} bytes)"
    );
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "no answer or 408: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_header_timeouts(&gw, 1.0).await;
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

/// A slow `POST /publish` (hyper reads it): cut off, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_publish_request_is_cut_off_and_counted() {
    let gw = slowloris_gateway().await;
    let head = long_head("POST /publish HTTP/1.1");
    let socket = TcpStream::connect(gw.plain_addr).await.expect("connect");
    let (answer, sent) = trickle(socket, &head, Duration::from_millis(200)).await;
    assert!(
        sent < head.len(),
        "cut off before the head was complete ({sent} bytes)"
    );
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "no answer or 408: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_header_timeouts(&gw, 1.0).await;
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

/// Connects and sends nothing, on the plain listener: closed, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_plain_client_is_closed_and_counted() {
    let gw = slowloris_gateway().await;
    let socket = TcpStream::connect(gw.plain_addr).await.expect("connect");
    let (answer, sent) = trickle(socket, b"", Duration::from_millis(200)).await;
    assert_eq!((answer.len(), sent), (0, 0));
    assert_header_timeouts(&gw, 1.0).await;
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

/// On the TLS listener: a client that never starts its handshake is closed (counted
/// `tls_handshake_timeout`); one that completes it and then sends nothing is closed
/// (counted `header_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_clients_are_closed_and_counted() {
    let gw = slowloris_gateway().await;
    let socket = TcpStream::connect(gw.tls_addr).await.expect("connect");
    let (answer, _) = trickle(socket, b"", Duration::from_millis(200)).await;
    assert!(answer.is_empty());
    eventually(
        "tls_handshake_timeout counted",
        Duration::from_secs(5),
        || async { refusals(&gw.metrics().await, "tls_handshake_timeout") == 1.0 },
    )
    .await;

    let tls = tls_connect(gw.tls_addr, &gw.tls_cert, &[b"http/1.1"])
        .await
        .expect("TLS handshake");
    let (answer, _) = trickle(tls, b"", Duration::from_millis(200)).await;
    assert!(answer.is_empty(), "{answer:?}");
    assert_header_timeouts(&gw, 1.0).await;
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

/// Writes `request` and reads the answer until the server closes; returns the status.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, request: &[u8]) -> u16 {
    within("write the request", io.write_all(request))
        .await
        .expect("the request is written");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        match within("the answer", io.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_431_and_are_counted() {
    let gw = start().await; // max_header_bytes 16384, max_headers 64
    let big = "b".repeat(17_000);
    let big_get = format!("GET /events/alive HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    let big_post = format!(
        "POST /publish HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut many = String::from("GET /events/alive HTTP/1.1\r\nHost: a\r\n");
    for i in 0..70 {
        many.push_str(&format!("X-Field-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let cases: [(&str, &str); 3] = [
        ("event stream, too many bytes", &big_get),
        ("publish, too many bytes", &big_post),
        ("event stream, too many fields", &many),
    ];
    let mut expected = 0.0;
    for (what, request) in cases {
        let plain = TcpStream::connect(gw.plain_addr).await.expect("connect");
        assert_eq!(
            exchange(plain, request.as_bytes()).await,
            431,
            "plain: {what}"
        );
        let tls = tls_connect(gw.tls_addr, &gw.tls_cert, &[b"http/1.1"])
            .await
            .expect("TLS handshake");
        assert_eq!(exchange(tls, request.as_bytes()).await, 431, "TLS: {what}");
        expected += 2.0;
        eventually(
            &format!("header_too_large == {expected}"),
            Duration::from_secs(5),
            || {
                let gw = &gw;
                async move { refusals(&gw.metrics().await, "header_too_large") == expected }
            },
        )
        .await;
    }
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_over_the_per_connection_cap_get_429() {
    let gw = start_with(|c| c.limits.max_streams_per_connection = 3).await;
    let mut conn = Conn::open(&gw.plain(), Http::H2).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = conn.get_stream("/events/alive", &[]).await;
        assert_eq!(s.status, StatusCode::OK);
        s.block().await;
        streams.push(s);
    }
    let extra = conn.get_stream("/events/alive", &[]).await;
    let reply = extra.into_reply().await;
    assert_refused(
        &reply,
        StatusCode::TOO_MANY_REQUESTS,
        "max_streams_per_connection",
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        refusals(&metrics, "max_streams_per_connection"),
        1.0,
        "{metrics}"
    );

    // The connection's streams go on; a freed place is taken again on it.
    let id = assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
    for s in &mut streams {
        assert_eq!(s.next_event().await.id.as_deref(), Some(id.as_str()));
    }
    streams.pop();
    eventually(
        "the closed stream left its channel",
        STEP_TIMEOUT,
        || async {
            gw.gateway
                .shared
                .hub
                .channel_stats("alive")
                .is_some_and(|s| s.subscribers == 2)
        },
    )
    .await;
    let mut again = conn.get_stream("/events/alive", &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    again.block().await;
    let id = gw.publish_text("alive", "on the same connection").await;
    assert_eq!(again.next_event().await.id, Some(id));
}

/// Writes `head` to a fresh connection, then a byte of body every 100 ms while reading;
/// returns what was read once the gateway closed the connection (at most 30 s).
async fn trickle_body(addr: std::net::SocketAddr, head: &[u8]) -> Vec<u8> {
    let mut socket = within("TCP connect", TcpStream::connect(addr))
        .await
        .expect("TCP connect");
    socket.write_all(head).await.expect("head written");
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..300 {
        tokio::select! {
            n = socket.read(&mut chunk) => match n {
                Ok(0) | Err(_) => return read,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let _ = socket.write_all(b" ").await;
            }
        }
    }
    panic!(
        "still open after 300 trickled bytes: {}",
        String::from_utf8_lossy(&read)
    );
}

fn publish_head(authorization: &str) -> Vec<u8> {
    format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_publish_body_is_cut_off_with_408_and_counted() {
    let gw = start_with(|c| {
        c.limits.body_read_timeout = Duration::from_millis(500);
        c.limits.min_body_bytes_per_second = 1000;
    })
    .await;
    let head = publish_head(&format!("Bearer {PUBLISH_KEY}"));
    let answer = trickle_body(gw.plain_addr, &head).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"body_timeout\""), "{text}");
    let metrics = gw.metrics().await;
    assert_eq!(refusals(&metrics, "body_timeout"), 1.0, "{metrics}");
    assert_still_serving(&gw, LOCALHOST, LOCALHOST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_publish_grants_is_refused_before_the_body() {
    let gw = start_auth(|_| {}).await;
    let reader = bearer(&hs256(SECRET, &claims_with("42", &["chat:*"], &[])));
    // The body never comes: the answer cannot wait for it.
    let mut socket = within("TCP connect", TcpStream::connect(gw.plain_addr))
        .await
        .expect("TCP connect");
    let reply = raw_exchange(&mut socket, &publish_head(&reader)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(reply.error_code(), "channel_forbidden");
    let metrics = gw.metrics().await;
    assert_eq!(
        auth_failures(&metrics, "channel_forbidden"),
        1.0,
        "{metrics}"
    );
}
