//! Fault: a subscriber that stops reading while 50 MB of events are published to its
//! channel, on the real binary (so its resident memory can be read from `/proc`).
//!
//! What is kept: the gateway's memory stays bounded (history and one batch per
//! subscriber, not a queue per slow client), the stalled subscriber is closed by the
//! write-stall deadline and counted as `stalled`, what it did receive is a gap-free
//! prefix, and 100 subscribers reading on the same channel receive every one of the
//! 5,000 events (50 MB) exactly once, in order, with the ids the publishes answered.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;
use support::*;
use tokio::net::TcpSocket;

/// Readers that keep up.
const READERS: usize = 100;
/// Publishes of one batch each.
const BATCHES: usize = 100;
/// Events per batch.
const PER_BATCH: usize = 50;
/// Bytes of data per event: 100 × 50 × 10 kB = 50 MB of event data. (10 kB events
/// rather than 1 kB: the same 50 MB through 100 readers costs a tenth of the per-event
/// work on both sides, which in a debug build is most of the test's time.)
const DATA_LEN: usize = 10_000;
/// The stall deadline of this test's gateway.
const WRITE_TIMEOUT_S: u64 = 2;

/// The gateway's peak resident memory may exceed its resident memory before the
/// publishing by at most this much. What it holds by design, whatever the clients do:
/// the channel's history, at most `history.max_bytes` = 1 MiB of frames; one batch of
/// at most `sse.max_batch_bytes` = 64 KiB per subscriber whose write is pending (101
/// subscribers: 6.3 MiB); one publish request (a 0.5 MB body, parsed and encoded: a
/// few MB); allocator slack. About 10 MiB; the bound doubles that plus some. The
/// stalled subscriber alone is sent 50 MB: a gateway queueing per subscriber would
/// pass this bound many times over.
const RSS_GROWTH_BOUND_KB: u64 = 24 * 1024;

/// The config: a 2 s stall deadline; lag bounds out of reach (100,000 events, 1 GiB),
/// so that the write stall is the only thing that can close the stalled subscriber
/// (see below); everything else at its default (history 1,000 events / 1 MiB, batches
/// of 64 KiB, no per-IP cap).
fn config() -> String {
    format!(
        "slow_clients:\n  write_timeout: {WRITE_TIMEOUT_S}s\n  max_lag_events: 100000\n  \
         max_lag_bytes: 1073741824\nlog:\n  level: warn\n"
    )
}

/// A reader: counts ids as they come, checks each is the next one, and publishes its
/// progress for the publisher's pacing.
async fn reader(
    addr: std::net::SocketAddr,
    head: String,
    progress: Arc<AtomicU64>,
) -> (u64, RawSse) {
    let mut sse = RawSse::open(addr, "/events/big", &[]).await;
    assert_eq!(sse.status, 200);
    sse.skip_data_of_len(DATA_LEN);
    let preamble = sse.block().await;
    assert_eq!(
        preamble.id.as_deref(),
        Some(head.as_str()),
        "starts at the head"
    );
    let epoch = epoch(&head).to_string();
    let mut next = seq(&head) + 1;
    progress.store(seq(&head), Ordering::Release);
    let total = (BATCHES * PER_BATCH) as u64;
    let mut received = 0;
    // Bounded: one round per block, and the stream has one per event plus a heartbeat
    // or two.
    for _ in 0..(total + 1000) {
        if received == total {
            break;
        }
        let block = sse.block().await;
        if !block.is_event() {
            continue;
        }
        let id = block.id.expect("every event has an id");
        assert_eq!(epoch, support::epoch(&id), "same epoch");
        assert_eq!(seq(&id), next, "events arrive in order, each once");
        assert_eq!(block.data_len, Some(DATA_LEN));
        assert!(block.event.is_none());
        progress.store(next, Ordering::Release);
        next += 1;
        received += 1;
    }
    (received, sse)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_reaped_memory_stays_bounded_and_readers_get_everything() {
    let gw = Binary::start(&config()).await;
    let head = {
        let reply = gw.get("/cursor").await;
        reply.json()["id"].as_str().expect("cursor id").to_string()
    };

    // The stalled subscriber: a small receive buffer, a request, and no read ever
    // (until the end of the test).
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stalled = within("connect", socket.connect(gw.addr))
        .await
        .expect("connect");
    within(
        "write the request",
        tokio::io::AsyncWriteExt::write_all(&mut stalled, &events_request("/events/big", &[])),
    )
    .await
    .expect("request written");

    // A reader's progress: u64::MAX until it has read its preamble, then the last
    // sequence number it received.
    let progress: Vec<Arc<AtomicU64>> = (0..READERS)
        .map(|_| Arc::new(AtomicU64::new(u64::MAX)))
        .collect();
    let mut readers = Vec::new();
    for p in &progress {
        readers.push(tokio::spawn(reader(gw.addr, head.clone(), p.clone())));
    }
    let head_seq = seq(&head);
    eventually("every reader subscribed", Duration::from_secs(30), || {
        let progress = &progress;
        async move {
            progress
                .iter()
                .all(|p| p.load(Ordering::Acquire) == head_seq)
        }
    })
    .await;
    eventually(
        "the 101 streams are open",
        Duration::from_secs(20),
        || async { streams_open(&gw.metrics().await) == (READERS + 1) as f64 },
    )
    .await;
    let rss_before = gw.proc_status_kb("VmRSS");

    // Publish 100 batches of 50 × 10 kB. The publisher is paced by the readers (batch
    // k+1 goes out once every reader has all of batch k), not by the stalled one: at
    // most one batch is pending for a reader, well inside history.
    let data: String = (0..DATA_LEN)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let events: Vec<_> = (0..PER_BATCH)
        .map(|_| json!({"channel": "big", "data": data}))
        .collect();
    let body = Bytes::from(json!({ "events": events }).to_string());
    let auth = format!("Bearer {PUBLISH_KEY}");
    let mut publisher = Conn::open(&gw.endpoint(), Http::H1).await;
    let mut expected = head_seq;
    for batch in 0..BATCHES {
        let reply = publisher
            .request(
                Method::POST,
                "/publish",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.clone(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "batch {batch}: {}",
            reply.text()
        );
        let json = reply.json();
        let ids = json["ids"].as_array().expect("ids");
        assert_eq!(ids.len(), PER_BATCH);
        for id in ids {
            expected += 1;
            assert_eq!(seq(id.as_str().expect("id")), expected, "consecutive ids");
        }
        let through = expected;
        eventually(
            &format!("every reader has batch {batch}"),
            Duration::from_secs(60),
            || {
                let progress = &progress;
                async move {
                    progress
                        .iter()
                        .all(|p| p.load(Ordering::Acquire) >= through)
                }
            },
        )
        .await;
    }
    drop(publisher);
    // The readers' streams stay open until the end of the test.
    let mut open_streams = Vec::new();
    for (n, r) in readers.into_iter().enumerate() {
        let (received, sse) = within("a reader's end", r)
            .await
            .unwrap_or_else(|e| panic!("reader {n}: {e}"));
        assert_eq!(received, (BATCHES * PER_BATCH) as u64, "reader {n}");
        open_streams.push(sse);
    }

    // Which mechanism closes the stalled subscriber. The lag check runs only when its
    // stream collects (after each write completes); while the kernel takes its writes
    // (a few MB on loopback), its stream keeps pace with the readers, so it is never
    // more than a batch behind, and the lag bounds are out of reach anyway. Once the
    // socket buffers are full, its write stays pending, its stream is not polled again,
    // and after write_timeout the write fails: closed reason `stalled`.
    // (Safety limit: write_timeout plus generous slack; the stall may well have been
    // reaped long before the publishing ended.)
    eventually(
        "the stalled subscriber counted as closed (stalled or lagged)",
        Duration::from_secs(WRITE_TIMEOUT_S + 20),
        || async {
            let metrics = gw.metrics().await;
            closed(&metrics, "stalled") + closed(&metrics, "lagged") >= 1.0
        },
    )
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(closed(&metrics, "stalled"), 1.0, "{metrics}");
    assert_eq!(closed(&metrics, "lagged"), 0.0, "{metrics}");
    assert_eq!(
        streams_open(&metrics),
        READERS as f64,
        "the stalled stream is gone, the readers' streams are open"
    );

    let peak = gw.proc_status_kb("VmHWM");
    let now = gw.proc_status_kb("VmRSS");
    eprintln!("ssegate RSS: {rss_before} kB before publishing, peak {peak} kB, now {now} kB");
    assert!(
        peak.saturating_sub(rss_before) < RSS_GROWTH_BOUND_KB,
        "the gateway's peak RSS grew by {} kB (before {rss_before} kB, peak {peak} kB): \
         more than the {RSS_GROWTH_BOUND_KB} kB that history and one batch per subscriber \
         can explain",
        peak.saturating_sub(rss_before)
    );

    // What the stalled subscriber did get: a gap-free prefix of the events, cut off
    // (no chunked terminator) when the gateway closed the connection.
    let mut sse = RawSse::response(stalled, Vec::new()).await;
    assert_eq!(sse.status, 200);
    sse.skip_data_of_len(DATA_LEN);
    let preamble = sse.block().await;
    assert_eq!(preamble.id.as_deref(), Some(head.as_str()));
    let mut next = head_seq + 1;
    for _ in 0..(BATCHES * PER_BATCH + 1000) {
        let Some(block) = sse.next_block().await else {
            break;
        };
        if block.is_event() {
            assert_eq!(seq(block.id.as_deref().unwrap()), next, "no gap");
            next += 1;
        }
    }
    let got = next - head_seq - 1;
    assert_eq!(
        sse.end,
        Some(StreamEnd::Closed),
        "closed by the gateway mid-stream after {got} events"
    );
    assert!(
        got < (BATCHES * PER_BATCH) as u64,
        "the stalled subscriber was cut off before the end ({got} events)"
    );
    eprintln!("the stalled subscriber got {got} events before it was cut off");
}
