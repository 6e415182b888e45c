//! The push fan-out's hand-over on the plain HTTP/1.1 path (pushed streams). A pass writes each
//! stream with one non-blocking `send()`; when a subscriber stops reading and its
//! socket fills, the rest becomes that stream's backlog and its own task takes over
//! the writes, then hands the stream back to the passes once it has caught up. Across
//! both hand-overs the paused subscriber must receive every event exactly once, in
//! order, and a subscriber that reads all along must not be held up meanwhile.
//!
//! The test publishes more bytes than the kernel can buffer for one socket (the
//! largest TCP send buffer plus the client's small receive buffer), so the hand-over
//! cannot be skipped; it checks that precondition instead of assuming it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::net::TcpSocket;

const ROUNDS: usize = 10;
const PER_ROUND: usize = 400;
const DATA_BYTES: usize = 2000;

/// The kernel's largest TCP send buffer (the third field of `tcp_wmem`).
fn max_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

/// Reads `n` events; returns their ids and data.
async fn read_events(sse: &mut RawSse, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let block = sse.next_event().await;
        got.push((block.id.expect("id"), block.data.expect("data")));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_gets_every_event_once_in_order_and_others_are_not_held_up() {
    let gw = start_with(|c| {
        c.slow_clients.max_lag_events = 10_000_000;
        c.slow_clients.max_lag_bytes = 1 << 40;
        c.slow_clients.write_timeout = Duration::from_secs(60);
        c.history.max_events = 100_000;
        c.history.max_bytes = 1 << 30;
        c.history.max_total_bytes = 1 << 30;
    })
    .await;
    let total_bytes = ROUNDS * PER_ROUND * DATA_BYTES;
    assert!(
        total_bytes > max_send_buffer() + (1 << 20),
        "the test must publish more than one socket can buffer"
    );

    let small = TcpSocket::new_v4().expect("socket");
    small.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let socket = within("connect", small.connect(gw.plain_addr))
        .await
        .expect("connect");
    let mut paused = RawSse::on(socket, "/events/handover", &[]).await;
    assert_eq!(paused.status, 200);
    paused.block().await; // the preamble
    let mut steady = RawSse::open(gw.plain_addr, "/events/handover", &[]).await;
    steady.block().await;

    let mut expected: Vec<(String, String)> = Vec::new();
    for round in 0..ROUNDS {
        let data: Vec<String> = (0..PER_ROUND)
            .map(|i| format!("{round}-{i}-{}", "x".repeat(DATA_BYTES - 12)))
            .collect();
        let events = data
            .iter()
            .map(|d| json!({"channel": "handover", "data": d}))
            .collect();
        let ids = gw.publish_batch(events).await;
        let sent: Vec<(String, String)> = ids.into_iter().zip(data).collect();
        // The reader that keeps reading gets each round while the other is paused.
        let got = within(
            "the steady reader's round",
            read_events(&mut steady, PER_ROUND),
        )
        .await;
        assert_eq!(got, sent, "steady reader, round {round}");
        expected.extend(sent);
    }

    // The paused reader resumes: everything, once, in order; then live events again,
    // which only arrive if the stream was handed back to the passes.
    let got = within(
        "the paused reader's catch-up",
        read_events(&mut paused, expected.len()),
    )
    .await;
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "paused reader, event {i}");
    }
    for n in 0..3 {
        let id = gw.publish_text("handover", &format!("live {n}")).await;
        let block = within("a live event after the catch-up", paused.next_event()).await;
        assert_eq!(block.id.as_deref(), Some(id.as_str()));
        assert_eq!(block.data.as_deref(), Some(format!("live {n}").as_str()));
    }
}
