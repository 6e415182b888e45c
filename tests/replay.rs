//! Replay: resuming with the `Last-Event-ID` header or the `lastEventId` query parameter
//! (the header wins) delivers exactly the missed events in order, then live ones; a
//! client reconnecting over and over while a publisher runs sees every event exactly
//! once, in order; several channels replay merged in id order; a replay larger than one
//! write batch arrives whole; heartbeats move the last event id forward on a quiet channel.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// Subscribes to `r`, reads three events, disconnects, and publishes three more.
/// Returns (id of the last event read, ids and data of the missed events).
async fn read_three_then_miss_three(gw: &TestGateway) -> (String, Vec<(String, String)>) {
    let mut sub = gw.subscribe("/events/r").await;
    let mut read = Vec::new();
    for i in 1..=3 {
        read.push(gw.publish_text("r", &format!("e{i}")).await);
    }
    for (i, id) in read.iter().enumerate() {
        let e = sub.next_event().await;
        assert_eq!(e.triple(), (id.clone(), None, format!("e{}", i + 1)));
    }
    let last = sub.last_event_id().expect("a last event id").to_string();
    assert_eq!(last, read[2]);
    drop(sub);
    let mut missed = Vec::new();
    for i in 4..=6 {
        let data = format!("e{i}");
        missed.push((gw.publish_text("r", &data).await, data));
    }
    (last, missed)
}

async fn assert_replay_then_live(
    gw: &TestGateway,
    sub: &mut SseStream,
    resumed_from: &str,
    missed: &[(String, String)],
) {
    let preamble = sub.preamble.clone().expect("preamble");
    assert_eq!(
        preamble.raw,
        format!(
            "retry: {}\nid: {resumed_from}\n\n",
            preamble.retry.expect("retry")
        ),
        "a resumed stream starts at the client's id, without resync"
    );
    for (id, data) in missed {
        assert_eq!(
            sub.next_event().await.triple(),
            (id.clone(), None, data.clone())
        );
    }
    let live = gw.publish_text("r", "live").await;
    assert_eq!(sub.next_event().await.triple(), (live, None, "live".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_header_replays_missed_events_then_live() {
    let gw = start().await;
    let (last, missed) = read_three_then_miss_three(&gw).await;
    let mut sub = gw
        .subscribe_with("/events/r", &[("last-event-id", &last)])
        .await;
    assert_replay_then_live(&gw, &mut sub, &last, &missed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_query_parameter_replays_missed_events_then_live() {
    let gw = start().await;
    let (last, missed) = read_three_then_miss_three(&gw).await;
    let mut sub = gw.subscribe(&format!("/events/r?lastEventId={last}")).await;
    assert_replay_then_live(&gw, &mut sub, &last, &missed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_wins_over_query_parameter() {
    let gw = start().await;
    let (last, missed) = read_three_then_miss_three(&gw).await;
    // The query names an earlier id (the page-load one); the header is the browser's.
    let stale = id_at(&last, seq(&last) - 2);
    let mut sub = gw
        .subscribe_with(
            &format!("/events/r?lastEventId={stale}"),
            &[("last-event-id", &last)],
        )
        .await;
    assert_replay_then_live(&gw, &mut sub, &last, &missed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_header_falls_back_to_query_parameter() {
    let gw = start().await;
    let (last, missed) = read_three_then_miss_three(&gw).await;
    let mut sub = gw
        .subscribe_with(
            &format!("/events/r?lastEventId={last}"),
            &[("last-event-id", "")],
        )
        .await;
    assert_replay_then_live(&gw, &mut sub, &last, &missed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_head_replays_nothing() {
    let gw = start().await;
    for i in 0..3 {
        gw.publish_text("h", &format!("old {i}")).await;
    }
    let head = gw.cursor().await;
    let mut sub = gw
        .subscribe_with("/events/h", &[("last-event-id", &head)])
        .await;
    assert_eq!(sub.preamble.as_ref().unwrap().id.as_deref(), Some(&*head));
    let live = gw.publish_text("h", "new").await;
    assert_eq!(sub.next_event().await.triple(), (live, None, "new".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_channel_replay_is_merged_in_id_order() {
    let gw = start().await;
    let start_id = gw.cursor().await;
    let mut expected = Vec::new();
    let plan: [(&[&str], &str); 8] = [
        (&["x"], "x1"),
        (&["y"], "y1"),
        (&["z"], "z1"),
        (&["x", "y"], "xy1"),
        (&["y"], "y2"),
        (&["z", "x"], "zx1"),
        (&["x"], "x2"),
        (&["y", "x", "z"], "xyz1"),
    ];
    for (channels, data) in plan {
        let id = gw
            .publish_ok(&json!({"channels": channels, "data": data}))
            .await;
        if channels.contains(&"x") || channels.contains(&"y") {
            expected.push((id, None, data.to_string()));
        }
    }
    let mut sub = gw
        .subscribe_with(
            "/events?channel=y&channel=x",
            &[("last-event-id", &start_id)],
        )
        .await;
    let got: Vec<_> = sub
        .events(expected.len())
        .await
        .iter()
        .map(|e| e.triple())
        .collect();
    assert_eq!(got, expected);
    let live = gw.publish_text("x", "live").await;
    assert_eq!(sub.next_event().await.triple(), (live, None, "live".into()));
}

/// Replay in batches of at most 1 KiB over two channels: events on one, the other or
/// both, and now and then one event larger than a whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_larger_than_one_batch_arrives_whole() {
    let gw = start_with(|c| c.sse.max_batch_bytes = 1024).await;
    let start_id = gw.cursor().await;
    let data = |i: usize| {
        let pad = if i % 50 == 7 { 3000 } else { 40 };
        format!("{i:05} {}", "p".repeat(pad))
    };
    let channels = |i: usize| match i % 5 {
        0 => json!(["big-a", "big-b"]),
        1 | 2 => json!(["big-a"]),
        _ => json!(["big-b"]),
    };
    let events: Vec<_> = (0..300)
        .map(|i| json!({"channels": channels(i), "data": data(i)}))
        .collect();
    let ids = gw.publish_batch(events).await;
    let mut sub = gw
        .subscribe_with(
            "/events?channel=big-a&channel=big-b",
            &[("last-event-id", &start_id)],
        )
        .await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(sub.next_event().await.triple(), (id.clone(), None, data(i)));
    }
    let live = gw.publish_text("big-b", "live").await;
    assert_eq!(sub.next_event().await.triple(), (live, None, "live".into()));
}

/// A publisher runs while a client reads a few events, disconnects and resumes with the
/// browser's last event id, again and again: across all connections it sees every event
/// exactly once, in order, and is never told to resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_exactly_once_across_reconnects_with_concurrent_publisher() {
    const TOTAL: usize = 300;
    let gw = std::sync::Arc::new(start().await);
    let start_id = gw.cursor().await;

    let publisher = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(TOTAL);
            for i in 0..TOTAL {
                // Another channel's events interleave: they must not show up.
                if i % 7 == 0 {
                    gw.publish_text("noise", "noise").await;
                }
                ids.push(gw.publish_text("steady", &format!("m{i}")).await);
            }
            ids
        })
    };

    let mut rng = fastrand::Rng::with_seed(2024);
    let mut seen: Vec<String> = Vec::with_capacity(TOTAL);
    let mut last_id = start_id;
    let mut connections = 0;
    while seen.len() < TOTAL {
        connections += 1;
        assert!(connections <= 2 * TOTAL, "too many reconnects");
        let mut sub = gw
            .subscribe_with("/events/steady", &[("last-event-id", &last_id)])
            .await;
        let preamble = sub.preamble.clone().unwrap();
        assert_eq!(
            preamble.id.as_deref(),
            Some(last_id.as_str()),
            "resumed where the client left off"
        );
        let take = rng.usize(0..=25).min(TOTAL - seen.len());
        for _ in 0..take {
            let e = sub.next_event().await;
            assert!(!e.is_resync(), "unexpected resync: {e:?}");
            assert_eq!(e.data.as_deref(), Some(format!("m{}", seen.len()).as_str()));
            seen.push(e.id.clone().expect("an id"));
        }
        last_id = sub.last_event_id().expect("a last event id").to_string();
        drop(sub);
    }
    let published = within("publisher", publisher).await.expect("publisher");
    assert_eq!(seen, published);
    assert!(
        connections > 10,
        "the client reconnected {connections} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_moves_the_last_event_id_forward_on_a_quiet_channel() {
    let gw = start_with(|c| c.sse.heartbeat = Duration::from_secs(1)).await;
    let mut sub = gw.subscribe("/events/quiet").await;
    let before = sub.last_event_id().unwrap().to_string();
    for i in 0..3 {
        gw.publish_text("busy", &format!("b{i}")).await;
    }
    let head = gw.cursor().await;
    // Heartbeats until one carries the head (bounded; one may have fired early).
    let mut last_seq = seq(&before);
    for _ in 0..5 {
        let b = sub.block().await;
        assert_eq!(b.comments, vec![String::new()], "a heartbeat: {b:?}");
        assert_eq!(b.data, None);
        assert_eq!(b.event, None);
        if let Some(id) = &b.id {
            assert!(seq(id) > last_seq, "ids move forward");
            assert!(seq(id) <= seq(&head));
            last_seq = seq(id);
            if *id == head {
                break;
            }
        }
    }
    assert_eq!(sub.last_event_id(), Some(head.as_str()));
    drop(sub);

    // Resuming from the heartbeat's id is seamless.
    let last = head.clone();
    let mut sub = gw
        .subscribe_with("/events/quiet", &[("last-event-id", &last)])
        .await;
    assert_eq!(sub.preamble.as_ref().unwrap().id.as_deref(), Some(&*head));
    let id = gw.publish_text("quiet", "finally").await;
    assert_eq!(
        sub.next_event().await.triple(),
        (id, None, "finally".into())
    );
}
