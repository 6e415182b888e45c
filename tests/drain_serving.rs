//! The drain serves through a deploy (real binary, SIGTERM): for the drain period the
//! gateway keeps accepting, `/readyz` answers 503 (so a load balancer can see it),
//! a new stream gets 503 with `Retry-After`, publishes are answered 200, and an open
//! stream gets every answered event up to its own end, then its farewell; then the
//! process closes and exits 0.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PERIOD_S: u64 = 3;
/// Bound on the publisher's and the poller's rounds (50 ms apart: far past the drain).
const ROUNDS: usize = 400;

/// One request on a fresh connection (`Connection: close`), read to EOF; `None` when
/// the gateway cannot be reached or the answer does not come whole (it has closed).
async fn try_request(addr: SocketAddr, request: String) -> Option<(u16, String)> {
    let exchange = async {
        let mut socket = TcpStream::connect(addr).await.ok()?;
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8(answer).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    };
    tokio::time::timeout(STEP_TIMEOUT, exchange).await.ok()?
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
}

fn publish_request(body: &str) -> String {
    format!(
        "POST /publish HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {PUBLISH_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_drain_readyz_is_503_new_streams_are_refused_and_publishes_served() {
    let mut gw = Binary::start(&format!(
        "drain:\n  period: {PERIOD_S}s\nlog:\n  level: warn\n"
    ))
    .await;
    let addr = gw.addr;
    let mut sub = RawSse::open(addr, "/events/deploy", &[]).await;
    assert_eq!(sub.status, 200);
    sub.block().await;

    let term_sent = Arc::new(AtomicBool::new(false));
    let saw_503 = Arc::new(AtomicBool::new(false));
    // The load balancer: polls /readyz until the gateway is gone.
    let poller = {
        let (term_sent, saw_503) = (term_sent.clone(), saw_503.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..ROUNDS {
                let Some((status, _)) = try_request(addr, get_request("/readyz")).await else {
                    break;
                };
                if status == 503 && term_sent.load(Ordering::SeqCst) {
                    saw_503.store(true, Ordering::SeqCst);
                }
                answers.push(status);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        })
    };
    // The app: publishes until the gateway is gone; remembers each answered id and
    // whether /readyz had already been seen 503 when it was sent.
    let publisher = {
        let saw_503 = saw_503.clone();
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..ROUNDS {
                let during_drain = saw_503.load(Ordering::SeqCst);
                let body = json!({"channel": "deploy", "data": format!("event {i}")}).to_string();
                let Some((status, answer)) = try_request(addr, publish_request(&body)).await else {
                    break;
                };
                assert_eq!(status, 200, "publish {i}: {answer}");
                let id: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
                let id = id["id"].as_str().expect("id").to_string();
                answered.push((id, format!("event {i}"), during_drain));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answered
        })
    };
    // A few events before the signal.
    eventually("publishes before the drain", STEP_TIMEOUT, || async {
        let cursor = gw.get("/cursor").await.json();
        seq(cursor["id"].as_str().unwrap_or("0-0")) >= 3
    })
    .await;
    term_sent.store(true, Ordering::SeqCst);
    gw.signal("TERM");
    eventually("/readyz seen 503", STEP_TIMEOUT, || async {
        saw_503.load(Ordering::SeqCst)
    })
    .await;
    // A new stream during the drain: refused, with when to come back.
    let refused = RawSse::open(addr, "/events/deploy", &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert_eq!(refused.error_json()["error"], "draining");
    assert!(refused.header("retry-after").is_some(), "{}", refused.head);
    drop(refused);

    // The open stream: every event up to its end, in order, then its farewell.
    let mut received = Vec::new();
    let mut last = None;
    for _ in 0..(ROUNDS + 100) {
        let Some(block) = sub.next_block().await else {
            break;
        };
        if block.is_event() {
            received.push((block.id.clone().unwrap_or_default(), block.data.clone()));
        }
        last = Some(block);
    }
    assert!(
        last.as_ref().is_some_and(|b| b.is_farewell()),
        "ends with a farewell: {last:?}"
    );
    assert_eq!(sub.end, Some(StreamEnd::Clean));

    let answered = within("the publisher's end", publisher)
        .await
        .expect("publisher");
    let readyz = within("the poller's end", poller).await.expect("poller");
    let status = gw.wait_exit(Duration::from_secs(PERIOD_S + 5 + 20)).await;
    assert_eq!(status.code(), Some(0), "{status}: {}", gw.log());

    assert!(readyz.contains(&200) && readyz.contains(&503), "{readyz:?}");
    assert!(
        answered.iter().filter(|(_, _, during)| *during).count() >= 3,
        "publishes answered 200 during the drain: {answered:?}"
    );
    // Every answered event up to the stream's last position reached it, in order.
    let position = received.last().map_or(0, |(id, _)| seq(id));
    let expected: Vec<(String, Option<String>)> = answered
        .iter()
        .filter(|(id, _, _)| seq(id) <= position)
        .map(|(id, data, _)| (id.clone(), Some(data.clone())))
        .collect();
    assert_eq!(
        received, expected,
        "every answered event up to the stream's end"
    );
}
