//! Fan-out: 1,000 HTTP/1.1 subscribers (one connection each, spread over tasks) on one
//! channel; 100 events published one by one; every subscriber receives all 100 in order
//! with the exact ids the publishes returned.

mod support;

use std::sync::Arc;

use support::*;
use tokio::sync::{Barrier, Semaphore};

const SUBSCRIBERS: usize = 1000;
const EVENTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subscribers_each_get_every_event_in_order() {
    let gw = Arc::new(start().await);
    let head = gw.cursor().await;
    // Subscribers plus this task meet at the barrier once every stream is open.
    let ready = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    // Connect a few at a time so the accept queue never overflows.
    let connecting = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(SUBSCRIBERS);
    for n in 0..SUBSCRIBERS {
        let gw = gw.clone();
        let ready = ready.clone();
        let connecting = connecting.clone();
        let head = head.clone();
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.expect("semaphore");
            let mut sub = gw.subscribe("/events/fan").await;
            assert_eq!(
                sub.preamble.as_ref().unwrap().id.as_deref(),
                Some(head.as_str()),
                "subscriber {n} starts at the head"
            );
            drop(permit);
            ready.wait().await;
            let mut got = Vec::with_capacity(EVENTS);
            for _ in 0..EVENTS {
                got.push(sub.next_event().await.triple());
            }
            got
        }));
    }
    within("all subscribers connected", ready.wait()).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "ssegate_connections_open{proto=\"h1\",tls=\"false\"}"
        ),
        Some(SUBSCRIBERS as f64)
    );

    let mut expected = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let data = format!("event {i}");
        let id = gw.publish_text("fan", &data).await;
        assert_eq!(seq(&id), seq(&head) + 1 + i as u64);
        expected.push((id, None, data));
    }

    for (n, task) in tasks.into_iter().enumerate() {
        let got = within("a subscriber's events", task)
            .await
            .unwrap_or_else(|e| panic!("subscriber {n} failed: {e}"));
        assert_eq!(got, expected, "subscriber {n}");
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(&metrics, "ssegate_events_published_total{source=\"http\"}"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        metric(&metrics, "ssegate_frames_written_total"),
        Some((SUBSCRIBERS * EVENTS) as f64)
    );
}
