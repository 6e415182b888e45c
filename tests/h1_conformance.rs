//! The plain HTTP/1.1 stream path's conformance, byte for byte (hyper serves every
//! other request; where it matters, both paths are checked):
//!
//! - `Connection` is a list: `keep-alive, close` closes (RFC 9112 §9.6), and the
//!   answer says `connection: close`;
//! - empty lines before a request line are ignored (RFC 9112 §2.2), also when they
//!   follow an event stream's request (they are not a pipelined request);
//! - answers carry `Date`;
//! - a request without `Host`, or with two, gets 400 on both paths (RFC 9112 §3.2);
//! - the HTTP/2 preface after an HTTP/1.1 exchange gets 400 and a close (RFC 9113 §3.4).

mod support;

use http::StatusCode;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A request the plain path answers itself with an error, keeping the connection.
const BAD_CHANNEL: &[u8] = b"GET /events/a%20b HTTP/1.1\r\nHost: t\r\n\r\n";

async fn connect(gw: &TestGateway) -> TcpStream {
    within("TCP connect", TcpStream::connect(gw.plain_addr))
        .await
        .expect("TCP connect")
}

/// Asserts the gateway closes `socket` (EOF or reset) without sending more.
async fn assert_closed(socket: &mut TcpStream) {
    let mut rest = [0u8; 256];
    match within("the connection closes", socket.read(&mut rest)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "more after the answer: {:?}",
            String::from_utf8_lossy(&rest[..n])
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_in_a_list_closes_and_says_so() {
    let gw = start().await;
    let mut socket = connect(&gw).await;
    let reply = raw_exchange(
        &mut socket,
        b"GET /events/a%20b HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(reply.header("connection"), Some("close"));
    assert_closed(&mut socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lines_before_a_request_are_ignored_and_answers_carry_date() {
    let gw = start().await;
    let mut socket = connect(&gw).await;
    let first = raw_exchange(&mut socket, BAD_CHANNEL).await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST, "{}", first.text());
    let code = first.error_code();
    assert!(!code.is_empty(), "the plain path's own JSON error");

    let mut after_crlf = b"\r\n".to_vec();
    after_crlf.extend_from_slice(BAD_CHANNEL);
    let second = raw_exchange(&mut socket, &after_crlf).await;
    assert_eq!(
        (second.status, second.error_code()),
        (StatusCode::BAD_REQUEST, code),
        "the same answer as without the empty line: {}",
        second.text()
    );
    for reply in [&first, &second] {
        let date = reply.header("date").expect("a Date field");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_repeated_host_gets_400_on_both_paths() {
    let gw = start().await;
    for request in [
        &b"GET /events/a HTTP/1.1\r\n\r\n"[..],
        b"GET /events/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let reply = raw_http(gw.plain_addr, request).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::BAD_REQUEST, "host_invalid".to_string()),
            "{:?}: {}",
            String::from_utf8_lossy(request),
            reply.text()
        );
    }
    // HTTP/1.0 has no Host requirement.
    let reply = raw_http(gw.plain_addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_preface_after_an_http1_exchange_gets_400_and_a_close() {
    let gw = start().await;
    let mut socket = connect(&gw).await;
    let first = raw_exchange(&mut socket, BAD_CHANNEL).await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    let reply = raw_exchange(&mut socket, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_closed(&mut socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_line_after_an_event_stream_request_is_not_pipelining() {
    let gw = start().await;
    let mut socket = connect(&gw).await;
    within(
        "request written",
        tokio::io::AsyncWriteExt::write_all(
            &mut socket,
            b"GET /events/crlf HTTP/1.1\r\nHost: t\r\n\r\n\r\n",
        ),
    )
    .await
    .expect("written");
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&head, b"\r\n\r\n").is_none() {
        let n = within("the answer", socket.read(&mut chunk))
            .await
            .expect("readable");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\ndate: "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pipelined_behind_an_event_stream_is_refused_and_counted() {
    let gw = start().await;
    let mut socket = connect(&gw).await;
    within(
        "requests written",
        tokio::io::AsyncWriteExt::write_all(
            &mut socket,
            b"GET /events/pipe HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
    )
    .await
    .expect("written");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&answer, b"\r\n\r\n").is_none() {
        let n = within("the answer", socket.read(&mut chunk))
            .await
            .expect("readable");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_closed(&mut socket).await;
    let metrics = gw.metrics().await;
    assert_eq!(refusals(&metrics, "pipelining_refused"), 1.0, "{metrics}");
}
