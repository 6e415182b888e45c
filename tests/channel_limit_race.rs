//! `limits.max_channels` holds under concurrent publishes: the limit check and the
//! creation of the channels are one step, so publishers racing for the last room never
//! together pass the limit, and a refused batch publishes none of its events.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

/// The channel limit of the test gateways.
const CAP: usize = 1_000;
/// Concurrent publishers per round.
const PUBLISHERS: usize = 6;
/// Events per batch, each to [`CHANNELS_PER_EVENT`] new channels.
const EVENTS: usize = 10;
const CHANNELS_PER_EVENT: usize = 60;
/// Rounds, each on a fresh gateway (the race is a matter of timing: several chances).
const ROUNDS: usize = 5;

/// A batch creating `EVENTS * CHANNELS_PER_EVENT` channels of its own (600: two such
/// batches exceed [`CAP`]).
fn batch(round: usize, publisher: usize) -> Value {
    let events: Vec<Value> = (0..EVENTS)
        .map(|e| {
            let channels: Vec<String> = (0..CHANNELS_PER_EVENT)
                .map(|c| format!("r{round}-p{publisher}-e{e}-c{c}"))
                .collect();
            json!({"channels": channels, "data": {"publisher": publisher, "event": e}})
        })
        .collect();
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_never_pass_the_channel_limit_nor_half_publish() {
    for round in 0..ROUNDS {
        let gw = start_with(|c| c.limits.max_channels = CAP).await;
        let auth = format!("Bearer {PUBLISH_KEY}");
        // Connections and bodies are ready before the start signal, so the publishes
        // reach the gateway together.
        let barrier = Arc::new(tokio::sync::Barrier::new(PUBLISHERS));
        let mut tasks = Vec::new();
        for p in 0..PUBLISHERS {
            let mut conn = Conn::open(&gw.plain(), Http::H1).await;
            let body = Bytes::from(batch(round, p).to_string());
            let barrier = barrier.clone();
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let headers = [
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ];
                conn.request(Method::POST, "/publish", &headers, body).await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            let reply = within("a publish answer", task)
                .await
                .expect("the publisher task");
            match reply.status {
                StatusCode::OK => accepted += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(reply.json()["error"], "channel_limit", "{}", reply.text());
                    assert_eq!(reply.header("retry-after"), Some("5"));
                }
                other => panic!("unexpected answer {other}: {}", reply.text()),
            }
        }
        let metrics = gw.metrics().await;
        let channels = metric(&metrics, "ssegate_channels").expect("ssegate_channels");
        assert!(
            channels <= CAP as f64,
            "round {round}: {channels} channels held with a limit of {CAP} ({accepted} batches accepted)"
        );
        assert!(accepted >= 1, "round {round}: the first batch fits");
        // Nothing half-published: exactly the accepted batches' channels and events.
        assert_eq!(
            channels,
            (accepted * EVENTS * CHANNELS_PER_EVENT) as f64,
            "round {round}: only accepted batches created channels"
        );
        assert_eq!(
            seq(&gw.cursor().await),
            (accepted * EVENTS) as u64,
            "round {round}: only accepted batches took ids"
        );
        assert_eq!(
            metric(&metrics, "ssegate_history_events"),
            Some((accepted * EVENTS * CHANNELS_PER_EVENT) as f64),
            "round {round}: only accepted batches are in history"
        );
    }
}
