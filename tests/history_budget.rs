//! The gateway-wide history budget (`history.max_total_bytes`): many channels together
//! hold no more than it, the oldest events of any channel going first, with an honest
//! `ssegate.resync` for a client resuming from before them; and one publisher filling
//! the budget evicts its own history, not another publisher's
//! (`history.publisher_share`).

mod support;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

const BUDGET: usize = 2 * 1024 * 1024;
/// Each event's data: 16 KiB.
const DATA: usize = 16 * 1024;
/// Events per batch (one channel each): 48 x 16 KiB fits the 1 MiB body limit.
const PER_BATCH: usize = 48;

async fn budgeted() -> TestGateway {
    start_with(|c| {
        c.history.max_total_bytes = BUDGET;
        add_other_publisher(c);
    })
    .await
}

/// `batches` batches of [`PER_BATCH`] events, each to its own channel `prefix-<n>`,
/// published with `authorization`; returns the first id and the last.
async fn flood(
    gw: &TestGateway,
    authorization: &str,
    prefix: &str,
    batches: usize,
) -> (String, String) {
    let data = "x".repeat(DATA);
    let mut first = None;
    let mut last = String::new();
    for b in 0..batches {
        let events: Vec<Value> = (0..PER_BATCH)
            .map(|i| json!({"channel": format!("{prefix}-{}", b * PER_BATCH + i), "data": data}))
            .collect();
        let reply = publish_as(gw, authorization, &json!({ "events": events })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let ids = reply.json()["ids"].clone();
        first.get_or_insert_with(|| ids[0].as_str().unwrap().to_string());
        last = ids[PER_BATCH - 1].as_str().unwrap().to_string();
    }
    (first.expect("at least one batch"), last)
}

fn history_bytes(metrics: &str) -> f64 {
    metric(metrics, "ssegate_history_bytes").expect("ssegate_history_bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_all_channels_stays_within_the_budget_and_resyncs_honestly() {
    let gw = budgeted().await;
    // 10 x 48 x 16 KiB: about 7.5 MiB over 480 channels, each far below its own bound.
    let (first, last) = flood(&gw, &format!("Bearer {PUBLISH_KEY}"), "flood", 10).await;
    let held = history_bytes(&gw.metrics().await);
    assert!(held <= BUDGET as f64, "{held} bytes held, budget {BUDGET}");
    assert!(held >= (BUDGET / 2) as f64, "the budget is used: {held}");
    // The oldest channel's event was evicted: resuming from before it is a resync.
    let before = id_at(&first, seq(&first) - 1);
    let mut sub = gw
        .subscribe_with("/events/flood-0", &[("last-event-id", &before)])
        .await;
    let block = sub.next_event().await;
    assert!(block.is_resync(), "a resync, not a silent gap: {block:?}");
    assert_eq!(
        block.data.as_deref(),
        Some(r#"{"reason":"history_truncated"}"#)
    );
    // The newest channel's event is still replayable (resumed from just before it: a
    // channel created after the sweeper forgot evicted ones starts from their
    // evictions, so a resume from before those would resync, honestly).
    let newest = format!("flood-{}", 10 * PER_BATCH - 1);
    let just_before = id_at(&last, seq(&last) - 1);
    let mut sub = gw
        .subscribe_with(
            &format!("/events/{newest}"),
            &[("last-event-id", &just_before)],
        )
        .await;
    let block = sub.next_event().await;
    assert!(!block.is_resync(), "{block:?}");
    assert_eq!(block.data_len, Some(DATA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_filling_the_budget_evicts_its_own_history_first() {
    let gw = budgeted().await;
    // The other publisher: 48 x 16 KiB = 768 KiB, within its half of the budget.
    let (other_first, _) = flood(&gw, &format!("Bearer {OTHER_PUBLISH_KEY}"), "kept", 1).await;
    // The flooder: about 7.5 MiB.
    flood(&gw, &format!("Bearer {PUBLISH_KEY}"), "flood", 10).await;
    let held = history_bytes(&gw.metrics().await);
    assert!(held <= BUDGET as f64, "{held} bytes held, budget {BUDGET}");
    // Every event of the other publisher is still replayable.
    let before = id_at(&other_first, seq(&other_first) - 1);
    for i in [0, PER_BATCH - 1] {
        let mut sub = gw
            .subscribe_with(&format!("/events/kept-{i}"), &[("last-event-id", &before)])
            .await;
        let block = sub.next_event().await;
        assert!(!block.is_resync(), "kept-{i}: {block:?}");
        assert_eq!(block.data_len, Some(DATA), "kept-{i}");
    }
}
