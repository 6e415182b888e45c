//! Faults around the gateway ending streams itself, and its signals, on the real binary
//! where a signal is involved:
//!
//! - SIGTERM with 1,000 subscribers: each receives every event published (answered
//!   200) before the signal, then its `retry:` farewell, then a clean end of the chunked
//!   body; the connection is closed; the process exits 0.
//! - A second signal during the drain exits at once with code 130.
//! - SIGHUP: a new publish key is put in force under an open stream (which keeps
//!   streaming); the old key is refused; an invalid file is refused and the running
//!   config stays.
//! - `keepalive.max_connection_age`: the stream ends with a farewell and a clean end,
//!   counted as `max_age`; the kept-alive connection serves the reconnect.

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use support::*;
use tokio::sync::{Barrier, Semaphore};

const SUBSCRIBERS: usize = 1000;
const EVENTS: usize = 20;
const DRAIN_PERIOD_S: u64 = 3;

/// What one subscriber saw of the drain.
struct Seen {
    events: Vec<(String, String)>,
    last: Option<SseBlock>,
    end: Option<StreamEnd>,
    closed_by_server: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_stream_with_its_events_a_farewell_and_a_clean_end() {
    let mut gw = Binary::start(&format!(
        "drain:\n  period: {DRAIN_PERIOD_S}s\nlog:\n  level: warn\n"
    ))
    .await;
    let head = gw.get("/cursor").await.json()["id"]
        .as_str()
        .expect("cursor id")
        .to_string();
    let ready = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let connecting = Arc::new(Semaphore::new(100));
    let mut subscribers = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let (addr, head, ready, connecting) =
            (gw.addr, head.clone(), ready.clone(), connecting.clone());
        subscribers.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.expect("semaphore");
            let mut sse = RawSse::open(addr, "/events/drain", &[]).await;
            assert_eq!(sse.status, 200);
            let preamble = sse.block().await;
            assert_eq!(preamble.id.as_deref(), Some(head.as_str()));
            drop(permit);
            ready.wait().await;
            let mut seen = Seen {
                events: Vec::new(),
                last: None,
                end: None,
                closed_by_server: false,
            };
            // Bounded: the events, a heartbeat or two, the farewell.
            for _ in 0..(EVENTS + 100) {
                let Some(block) = sse.next_block().await else {
                    break;
                };
                if block.is_event() {
                    seen.events.push((
                        block.id.clone().unwrap_or_default(),
                        block.data.clone().unwrap_or_default(),
                    ));
                }
                seen.last = Some(block);
            }
            seen.end = sse.end.clone();
            seen.closed_by_server = sse.closed_by_server().await;
            seen
        }));
    }
    within("every subscriber connected", ready.wait()).await;
    assert_eq!(streams_open(&gw.metrics().await), SUBSCRIBERS as f64);

    let mut expected = Vec::new();
    for i in 0..EVENTS {
        let data = format!("before the drain {i}");
        let reply = gw
            .publish_with(PUBLISH_KEY, &json!({"channel": "drain", "data": data}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        expected.push((reply.json()["id"].as_str().unwrap().to_string(), data));
    }
    gw.signal("TERM");

    for (n, task) in subscribers.into_iter().enumerate() {
        let seen = within("a subscriber's end", task)
            .await
            .unwrap_or_else(|e| panic!("subscriber {n}: {e}"));
        assert_eq!(
            seen.events, expected,
            "subscriber {n}: every event, once, in order"
        );
        let last = seen.last.expect("blocks");
        assert!(
            last.is_farewell(),
            "subscriber {n} ends with a farewell: {last:?}"
        );
        assert!(
            (2000..=5000).contains(&last.retry.unwrap()),
            "the farewell's retry within sse.retry_min..=retry_max: {last:?}"
        );
        assert_eq!(
            seen.end,
            Some(StreamEnd::Clean),
            "subscriber {n}: chunked terminator"
        );
        assert!(
            seen.closed_by_server,
            "subscriber {n}: connection closed after the drain"
        );
    }
    // Safety limit: the drain period, the gateway's 5 s grace, and slack.
    let status = gw
        .wait_exit(Duration::from_secs(DRAIN_PERIOD_S + 5 + 20))
        .await;
    assert_eq!(status.code(), Some(0), "{status}: {}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_during_the_drain_exits_at_once_with_130() {
    // A drain period of an hour and an open stream: the drain cannot end on its own
    // while the test runs (the stream's end is drawn within the hour).
    let mut gw = Binary::start("drain:\n  period: 1h\nlog:\n  level: warn\n").await;
    let mut sse = RawSse::open(gw.addr, "/events/hold", &[]).await;
    assert_eq!(sse.status, 200);
    sse.block().await;
    gw.signal("TERM");
    // The drain has begun once /readyz answers 503 (the listener stays open).
    eventually("/readyz turned 503 by the drain", STEP_TIMEOUT, || async {
        gw.get("/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(gw.try_exit().is_none(), "still draining: {}", gw.log());
    gw.signal("TERM");
    // Safety limit far below the hour the drain would take.
    let status = gw.wait_exit(STEP_TIMEOUT).await;
    assert_eq!(status.code(), Some(130), "{status}: {}", gw.log());
    drop(sse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_keys_under_an_open_stream_and_keeps_the_config_if_invalid() {
    const OLD: &str = "old-publish-key-1";
    const NEW: &str = "new-publish-key-2";
    const REST: &str = "log:\n  level: warn\n";
    let gw = Binary::start_with_key(OLD, REST).await;
    let mut sub = RawSse::open(gw.addr, "/events/hup", &[]).await;
    assert_eq!(sub.status, 200);
    sub.block().await;
    let publish = |key: &'static str, data: &'static str| {
        let gw = &gw;
        async move {
            gw.publish_with(key, &json!({"channel": "hup", "data": data}))
                .await
        }
    };
    let reply = publish(OLD, "before").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sub.next_event().await.data.as_deref(), Some("before"));

    std::fs::write(&gw.config_path, binary_config(gw.addr.port(), NEW, REST)).expect("rewrite");
    gw.signal("HUP");
    // The reload is asynchronous: poll (bounded) until the new key is in force; until
    // then it is refused, and nothing is published.
    let mut accepted = None;
    for _ in 0..500 {
        let reply = publish(NEW, "after the reload").await;
        if reply.status == StatusCode::OK {
            accepted = Some(reply.json()["id"].as_str().unwrap().to_string());
            break;
        }
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = accepted.expect("the new key in force after SIGHUP");
    let event = sub.next_event().await;
    assert_eq!(
        (event.id, event.data.as_deref()),
        (Some(id), Some("after the reload")),
        "the open stream keeps streaming"
    );
    assert_eq!(
        publish(OLD, "old key").await.status,
        StatusCode::UNAUTHORIZED
    );

    std::fs::write(&gw.config_path, "limits:\n  max_body_byte: 3\n").expect("rewrite");
    gw.signal("HUP");
    eventually("the invalid file refused", STEP_TIMEOUT, || async {
        gw.log().contains("reload refused")
    })
    .await;
    let reply = publish(NEW, "config kept").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let event = sub.next_event().await;
    assert_eq!(event.data.as_deref(), Some("config kept"));
    assert_eq!(
        publish(OLD, "old key").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut gw = gw;
    assert!(gw.try_exit().is_none(), "still running: {}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_at_their_maximum_age_with_a_farewell_and_are_counted() {
    let gw = start_with(|c| {
        c.keepalive.max_connection_age = Some(Duration::from_secs(1));
        c.keepalive.max_connection_age_jitter = 0.0;
    })
    .await;

    // HTTP/1.1 (the pushed path).
    let mut sse = RawSse::open(gw.plain_addr, "/events/age", &[]).await;
    assert_eq!(sse.status, 200);
    sse.block().await;
    let id = gw.publish_text("age", "young").await;
    assert_eq!(sse.next_event().await.id.as_deref(), Some(id.as_str()));
    let farewell = sse.block().await;
    assert!(farewell.is_farewell(), "{farewell:?}");
    assert!(
        sse.next_block().await.is_none(),
        "the stream ends after its farewell"
    );
    assert_eq!(sse.end, Some(StreamEnd::Clean), "chunked terminator");

    // HTTP/2 (hyper's path).
    let mut conn = Conn::open(&gw.plain(), Http::H2).await;
    let mut h2 = conn.get_stream("/events/age", &[]).await;
    assert_eq!(h2.status, 200);
    h2.block().await;
    let farewell = h2.block().await;
    assert_eq!(
        farewell.raw,
        format!("retry: {}\n\n", farewell.retry.unwrap())
    );
    assert!(
        h2.next_block().await.is_none(),
        "the stream ends after its farewell"
    );

    let metrics = gw.metrics().await;
    assert_eq!(closed(&metrics, "max_age"), 2.0, "{metrics}");

    // The HTTP/1.1 connection was kept alive: the reconnect may reuse it.
    let mut again = sse.again("/events/age", &[("last-event-id", &id)]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.block().await.id.as_deref(), Some(id.as_str()));
    let next = gw.publish_text("age", "again").await;
    assert_eq!(again.next_event().await.id, Some(next));
}
