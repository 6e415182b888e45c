//! HTTP/2 clients that hyper's client will not play, driven with the raw `h2` crate:
//!
//! - a connection that keeps no stream open (but answers PINGs) is sent GOAWAY and
//!   closed after `keepalive.h2_idle_timeout`, while one holding an event stream is not;
//! - a client that advertises a zero flow-control window and never opens it (so hyper
//!   never polls its stream's body) is still held to the slow-client bounds: past
//!   `max_lag_bytes` its stream is closed as `lagged`, and with nothing written for a
//!   heartbeat plus `write_timeout` as `stalled`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Request, StatusCode};
use support::*;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// An h2c (prior knowledge) connection to the plain listener, its driver spawned.
async fn h2c(gw: &TestGateway) -> (SendRequest<Bytes>, JoinHandle<Result<(), h2::Error>>) {
    h2c_with(gw, h2::client::Builder::new()).await
}

/// Like [`h2c`], with the client's settings from `builder`.
async fn h2c_with(
    gw: &TestGateway,
    builder: h2::client::Builder,
) -> (SendRequest<Bytes>, JoinHandle<Result<(), h2::Error>>) {
    let tcp = within("TCP connect", TcpStream::connect(gw.plain_addr))
        .await
        .expect("TCP connect");
    let (client, connection) = within("h2 handshake", builder.handshake(tcp))
        .await
        .expect("h2 handshake");
    (client, tokio::spawn(connection))
}

/// Opens `/events/{channel}` from a client whose streams get a zero flow-control
/// window, never opened: the gateway can send headers but no data.
async fn zero_window_stream(
    gw: &TestGateway,
    channel: &str,
) -> (h2::RecvStream, JoinHandle<Result<(), h2::Error>>) {
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(0);
    let (mut client, driver) = h2c_with(gw, builder).await;
    let (status, body) = get(&mut client, &format!("/events/{channel}")).await;
    assert_eq!(status, StatusCode::OK);
    // `client` may go: the connection lives on in its driver while the stream is open.
    (body, driver)
}

/// Waits (bounded) until `ssegate_connections_closed_total{reason}` reads `n`.
async fn wait_closed(gw: &TestGateway, reason: &str, n: f64) {
    let mut last = String::new();
    for _ in 0..400 {
        last = gw.metrics().await;
        if closed(&last, reason) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("closed{{reason={reason}}} never became {n}:\n{last}");
}

/// `GET path` on `client`; returns the status and the body stream.
async fn get(client: &mut SendRequest<Bytes>, path: &str) -> (StatusCode, h2::RecvStream) {
    let request = Request::get(format!("http://gateway{path}"))
        .body(())
        .expect("request");
    let ready = within("h2 ready", client.clone().ready())
        .await
        .expect("ready to send");
    *client = ready;
    let (response, _) = client.send_request(request, true).expect("sent");
    let response = within("h2 response", response).await.expect("a response");
    let status = response.status();
    (status, response.into_body())
}

/// Reads `body` until its text holds `needle` (each read bounded).
async fn read_until(body: &mut h2::RecvStream, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..1000 {
        if text.contains(needle) {
            return text;
        }
        let chunk = within("h2 data", body.data())
            .await
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}: {text}"))
            .expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    panic!("{needle:?} never came: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connection_is_closed_but_one_with_a_stream_is_kept() {
    let gw = start_with(|c| c.keepalive.h2_idle_timeout = Duration::from_millis(300)).await;

    // One with an event stream open.
    let (mut streaming, streaming_driver) = h2c(&gw).await;
    let (status, mut events) = get(&mut streaming, "/events/idle").await;
    assert_eq!(status, StatusCode::OK);
    read_until(&mut events, "retry:").await;

    // One that made a request and then keeps nothing open.
    let (mut idle, idle_driver) = h2c(&gw).await;
    let (status, _) = get(&mut idle, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let ended = within("the idle connection is closed", idle_driver)
        .await
        .expect("the driver task");
    assert!(ended.is_ok(), "closed with GOAWAY(NO_ERROR): {ended:?}");

    // The streaming connection outlives several idle timeouts and still delivers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = gw.publish_text("idle", "still here").await;
    read_until(&mut events, &format!("id: {id}")).await;
    assert!(!streaming_driver.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_h2_stream_past_max_lag_is_closed_as_lagged() {
    let gw = start_with(|c| {
        c.sse.heartbeat = Duration::from_secs(1);
        c.slow_clients.max_lag_bytes = 8 * 1024;
    })
    .await;
    let (_body, driver) = zero_window_stream(&gw, "stuck").await;
    let data = "x".repeat(1024);
    for _ in 0..16 {
        gw.publish_text("stuck", &data).await;
    }
    let _ = within("the lagging connection is closed", driver).await;
    wait_closed(&gw, "lagged", 1.0).await;
    assert_eq!(streams_open(&gw.metrics().await), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_h2_stream_that_cannot_be_written_is_closed_as_stalled() {
    let gw = start_with(|c| {
        c.sse.heartbeat = Duration::from_secs(1);
        c.slow_clients.write_timeout = Duration::from_millis(300);
    })
    .await;
    let (_body, driver) = zero_window_stream(&gw, "quiet").await;
    let _ = within("the stalled connection is closed", driver).await;
    wait_closed(&gw, "stalled", 1.0).await;
    assert_eq!(streams_open(&gw.metrics().await), 0.0);
}
