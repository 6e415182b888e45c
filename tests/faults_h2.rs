//! HTTP/2 clients that hyper's client will not play, driven with the raw `h2` crate:
//!
//! - a connection that keeps no stream open (but answers PINGs) is sent GOAWAY and
//!   closed after `keepalive.h2_idle_timeout`, while one holding an event stream is not.

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
    let tcp = within("TCP connect", TcpStream::connect(gw.plain_addr))
        .await
        .expect("TCP connect");
    let (client, connection) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    (client, tokio::spawn(connection))
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
