//! Faults: subscribers that fall behind, under each lag policy.
//!
//! Making the lag deterministic: the lag check runs when one collect cannot take
//! everything pending. `sse.max_batch_bytes` is at its minimum (1024 bytes, about 35 of
//! this test's events) and `slow_clients.max_lag_events` is 20, so a batch of 100 events
//! committed at once puts any subscriber over its bound at its next collect, whatever
//! the client reads (the gateway collects as soon as the batch is committed). History
//! (1,000 events) keeps all of it: the lag bound, not history, is what bites.
//!
//! - `disconnect`: the stream ends with a farewell `retry:` and a clean end (counted
//!   `lagged`); the client reconnects with its last id, as a browser does, and receives
//!   every remaining event exactly once, in order, without a resync.
//! - `resync`: one `event: ssegate.resync` with `{"reason":"lagged"}` (counted), its id
//!   the head, then live events.

mod support;

use serde_json::json;
use ssegate::config::LagPolicy;
use support::*;

const BATCH: usize = 100;

async fn lag_gateway(policy: LagPolicy) -> TestGateway {
    start_with(|c| {
        c.slow_clients.policy = policy;
        c.slow_clients.max_lag_events = 20;
        c.history.max_events = 1000;
        c.sse.max_batch_bytes = 1024;
    })
    .await
}

/// Publishes one batch of `BATCH` events at once; returns (id, data) of each.
async fn publish_batch(gw: &TestGateway, channel: &str) -> Vec<(String, String)> {
    let data: Vec<String> = (0..BATCH).map(|i| format!("lagging {i}")).collect();
    let events = data
        .iter()
        .map(|d| json!({"channel": channel, "data": d}))
        .collect();
    let ids = gw.publish_batch(events).await;
    ids.into_iter().zip(data).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_loses_nothing_across_the_reconnect() {
    let gw = lag_gateway(LagPolicy::Disconnect).await;
    let mut sse = RawSse::open(gw.plain_addr, "/events/slow", &[]).await;
    assert_eq!(sse.status, 200);
    sse.block().await;
    let mut expected = publish_batch(&gw, "slow").await;
    let live = gw.publish_text("slow", "after the batch").await;
    expected.push((live, "after the batch".into()));

    // Read as a browser does: on the end of a stream, reconnect with the last event id
    // (at most 10 connections: one reconnect is what the policy promises).
    let mut got: Vec<(String, String)> = Vec::new();
    let mut connections = 1;
    let mut farewells = 0;
    loop {
        // Bounded: this connection's events plus a few control blocks.
        for _ in 0..(BATCH + 10) {
            if got.len() == expected.len() {
                break;
            }
            let Some(block) = sse.next_block().await else {
                break;
            };
            assert!(!block.is_resync(), "no resync under disconnect: {block:?}");
            if block.is_farewell() {
                farewells += 1;
            }
            if block.is_event() {
                got.push((block.id.unwrap(), block.data.unwrap()));
            }
        }
        if got.len() == expected.len() || connections == 10 {
            break;
        }
        assert!(sse.next_block().await.is_none(), "the stream ended");
        assert_eq!(
            sse.end,
            Some(StreamEnd::Clean),
            "a clean end of the chunked body"
        );
        let last = sse.last_event_id().expect("a last event id").to_string();
        sse = RawSse::open(gw.plain_addr, "/events/slow", &[("last-event-id", &last)]).await;
        assert_eq!(sse.status, 200);
        connections += 1;
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        got,
        expected[..got.len()],
        "what was received is in order, each once"
    );
    assert_eq!(
        got.len(),
        expected.len(),
        "every event within {connections} connections; {farewells} of them ended with a \
         farewell ({} closes counted as lagged) after {} events in all",
        closed(&metrics, "lagged"),
        got.len()
    );
    assert!(farewells >= 1, "the first stream ended with a farewell");
    assert_eq!(closed(&metrics, "lagged"), farewells as f64, "{metrics}");
    assert_eq!(
        metric(&metrics, "ssegate_resyncs_total{reason=\"lagged\"}").unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_policy_tells_once_then_goes_on_live() {
    let gw = lag_gateway(LagPolicy::Resync).await;
    let mut sub = gw.subscribe("/events/slow").await;
    let batch = publish_batch(&gw, "slow").await;
    let head = batch.last().unwrap().0.clone();

    let resync = sub.block().await;
    assert_eq!(
        resync.raw,
        format!("id: {head}\nevent: ssegate.resync\ndata: {{\"reason\":\"lagged\"}}\n\n"),
        "one resync, positioned at the head"
    );
    let live = gw.publish_text("slow", "live").await;
    assert_eq!(seq(&live), seq(&head) + 1);
    let next = sub.next_event().await;
    assert!(!next.is_resync(), "the resync is sent once: {next:?}");
    assert_eq!(next.triple(), (live, None, "live".into()));

    // A further small publish is live too: no second resync.
    let again = gw.publish_text("slow", "live again").await;
    assert_eq!(sub.next_event().await.id, Some(again));
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(&metrics, "ssegate_resyncs_total{reason=\"lagged\"}").unwrap_or(0.0),
        1.0,
        "{metrics}"
    );
    assert_eq!(closed(&metrics, "lagged"), 0.0, "resync does not close");
}
