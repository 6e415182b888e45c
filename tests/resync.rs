//! Resync: whenever the gateway cannot prove continuity it sends one
//! `event: ssegate.resync` with `{"reason": …}` (its id the new position) and then goes on
//! with live events. Covered reasons: `invalid_last_event_id` (garbage, and a seq beyond
//! the head), `epoch_changed`, `history_truncated` (one channel or any of several), and
//! `lagged` (a batch that outruns a tiny history before the subscriber reads). Each is
//! also counted in `ssegate_resyncs_total{reason}`.

mod support;

use serde_json::json;
use support::*;

/// The stream started with a resync: a preamble with only `retry:`, then the resync at
/// `head`; then a live event on `channel` arrives.
async fn assert_starts_with_resync(
    gw: &TestGateway,
    sub: &mut SseStream,
    reason: &str,
    head: &str,
    channel: &str,
) {
    let preamble = sub.preamble.clone().expect("preamble");
    assert_eq!(
        preamble.raw,
        format!("retry: {}\n\n", preamble.retry.unwrap()),
        "no position before a resync"
    );
    assert_resync_then_live(gw, sub, reason, head, channel).await;
}

async fn assert_resync_then_live(
    gw: &TestGateway,
    sub: &mut SseStream,
    reason: &str,
    head: &str,
    channel: &str,
) {
    let resync = sub.block().await;
    assert_eq!(
        resync.raw,
        format!("id: {head}\nevent: ssegate.resync\ndata: {{\"reason\":\"{reason}\"}}\n\n")
    );
    assert!(resync.is_resync());
    let data: serde_json::Value = serde_json::from_str(resync.data.as_deref().unwrap()).unwrap();
    assert_eq!(data, json!({ "reason": reason }));
    let live = gw.publish_text(channel, "after resync").await;
    assert_eq!(seq(&live), seq(head) + 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (live, None, "after resync".into())
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            &format!("ssegate_resyncs_total{{reason=\"{reason}\"}}")
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_last_event_id_resyncs_as_invalid() {
    let gw = start().await;
    for i in 0..3 {
        gw.publish_text("g", &format!("old {i}")).await;
    }
    let head = gw.cursor().await;
    let mut sub = gw
        .subscribe_with("/events/g", &[("last-event-id", "not-an-id")])
        .await;
    assert_starts_with_resync(&gw, &mut sub, "invalid_last_event_id", &head, "g").await;

    // The query parameter form too.
    let head = gw.cursor().await;
    let mut sub = gw.subscribe("/events/g?lastEventId=12345").await;
    let resync = sub.block().await;
    assert_eq!(
        resync.raw,
        format!(
            "id: {head}\nevent: ssegate.resync\ndata: {{\"reason\":\"invalid_last_event_id\"}}\n\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_beyond_the_head_resyncs_as_invalid() {
    let gw = start().await;
    for i in 0..3 {
        gw.publish_text("ahead", &format!("old {i}")).await;
    }
    let head = gw.cursor().await;
    let future = id_at(&head, seq(&head) + 1);
    let mut sub = gw
        .subscribe_with("/events/ahead", &[("last-event-id", &future)])
        .await;
    assert_starts_with_resync(&gw, &mut sub, "invalid_last_event_id", &head, "ahead").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_of_another_epoch_resyncs_as_epoch_changed() {
    let gw = start().await;
    for i in 0..3 {
        gw.publish_text("ep", &format!("old {i}")).await;
    }
    let head = gw.cursor().await;
    let epoch_now = u32::from_str_radix(epoch(&head), 16).unwrap();
    // Same seq, another epoch: looks valid, cannot be compared.
    let foreign = format!("{:08x}-{}", epoch_now ^ 1, seq(&head) - 1);
    let mut sub = gw
        .subscribe_with("/events/ep", &[("last-event-id", &foreign)])
        .await;
    assert_starts_with_resync(&gw, &mut sub, "epoch_changed", &head, "ep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_history_resyncs_and_the_boundary_replays() {
    let gw = start_with(|c| c.history.max_events = 3).await;
    let mut ids = Vec::new();
    for i in 1..=10 {
        ids.push(gw.publish_text("t", &format!("e{i}")).await);
    }
    let head = gw.cursor().await;
    assert_eq!(head, ids[9]);

    // History holds 8, 9, 10: resuming after 7 is seamless.
    let mut sub = gw
        .subscribe_with("/events/t", &[("last-event-id", &ids[6])])
        .await;
    assert_eq!(sub.preamble.as_ref().unwrap().id.as_ref(), Some(&ids[6]));
    for (i, id) in ids.iter().enumerate().skip(7) {
        assert_eq!(
            sub.next_event().await.triple(),
            (id.clone(), None, format!("e{}", i + 1))
        );
    }
    drop(sub);

    // Resuming after 6 would need 7, which is gone.
    let mut sub = gw
        .subscribe_with("/events/t", &[("last-event-id", &ids[5])])
        .await;
    assert_starts_with_resync(&gw, &mut sub, "history_truncated", &head, "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_on_any_channel_of_a_subscription_resyncs() {
    let gw = start_with(|c| {
        c.channels.push(ssegate::config::ChannelRule {
            max_events: Some(2),
            ..ssegate::config::ChannelRule::new("small:*")
        })
    })
    .await;
    let from = gw.cursor().await;
    for i in 0..4 {
        gw.publish_text("big", &format!("big {i}")).await;
        gw.publish_text("small:1", &format!("small {i}")).await;
    }
    let head = gw.cursor().await;
    // `big` alone still reaches back.
    let mut sub = gw
        .subscribe_with("/events/big", &[("last-event-id", &from)])
        .await;
    assert_eq!(sub.next_event().await.data.as_deref(), Some("big 0"));
    drop(sub);
    // Together with `small:1`, which dropped events, continuity is not provable.
    let mut sub = gw
        .subscribe_with(
            "/events?channel=big&channel=small:1",
            &[("last-event-id", &from)],
        )
        .await;
    assert_starts_with_resync(&gw, &mut sub, "history_truncated", &head, "small:1").await;
}

/// History of 2 events; the subscriber is positioned, then one batch of 50 events is
/// committed at once. By the time the subscriber can read, 48 of its events are gone:
/// under the `resync` policy it is told `lagged` (positioned at the head) and then gets
/// live events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_outrun_by_a_batch_resyncs_as_lagged() {
    let gw = start_with(|c| {
        c.history.max_events = 2;
        c.slow_clients.policy = ssegate::config::LagPolicy::Resync;
    })
    .await;
    let mut sub = gw.subscribe("/events/lag").await;
    let events = (0..50)
        .map(|i| json!({"channel": "lag", "data": format!("b{i}")}))
        .collect();
    let ids = gw.publish_batch(events).await;
    let head = gw.cursor().await;
    assert_eq!(ids.last(), Some(&head));
    assert_resync_then_live(&gw, &mut sub, "lagged", &head, "lag").await;
}

/// The same outrun subscriber under the default `disconnect` policy: its stream ends
/// with a `retry:` and nothing else (no event it could misread as continuous), the close
/// is counted as `lagged`, and its reconnect with the last id it saw is told
/// `history_truncated` before live events: never a silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_outrun_by_a_batch_is_disconnected_then_resyncs_on_reconnect() {
    let gw = start_with(|c| c.history.max_events = 2).await;
    let mut sub = gw.subscribe("/events/lag").await;
    let preamble = sub.preamble.clone().expect("subscribe keeps the preamble");
    let last_seen = preamble
        .id
        .clone()
        .expect("the preamble carries the position");
    let events = (0..50)
        .map(|i| json!({"channel": "lag", "data": format!("b{i}")}))
        .collect();
    let ids = gw.publish_batch(events).await;
    let farewell = sub.block().await;
    assert_eq!(
        farewell.raw,
        format!("retry: {}\n\n", farewell.retry.unwrap())
    );
    assert!(
        sub.next_block().await.is_none(),
        "the stream ends after its farewell"
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "ssegate_connections_closed_total{reason=\"lagged\"}"
        ),
        Some(1.0)
    );
    let head = ids.last().unwrap().clone();
    let mut again = gw
        .subscribe_with("/events/lag", &[("last-event-id", &last_seen)])
        .await;
    let preamble = again
        .preamble
        .clone()
        .expect("subscribe keeps the preamble");
    assert_eq!(preamble.id, None, "no position before a resync");
    assert_resync_then_live(&gw, &mut again, "history_truncated", &head, "lag").await;
}
