//! The small endpoints: `GET /cursor` (`{"id": …}`, the id of the last published
//! event), `/healthz`, `/readyz`, and `/metrics` (Prometheus text with the core series of
//! DESIGN §6 and the right values after a known sequence of publishes and streams).

mod support;

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_is_the_id_of_the_last_published_event() {
    let gw = start().await;
    let reply = gw.get("/cursor").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    let fresh = json["id"].as_str().unwrap().to_string();
    assert_eq!(json, json!({ "id": fresh }), "exactly one field");
    assert_eq!(seq(&fresh), 0, "before the first event: {fresh}");

    let a = gw.publish_text("cur-a", "a").await;
    assert_eq!(epoch(&a), epoch(&fresh));
    assert_eq!(seq(&a), 1);
    assert_eq!(gw.cursor().await, a);
    let b = gw.publish_text("cur-b", "b").await;
    assert_eq!(gw.cursor().await, b);
    let ids = gw
        .publish_batch(vec![
            json!({"channel": "cur-a", "data": 1}),
            json!({"channels": ["cur-a", "cur-b"], "data": 2}),
        ])
        .await;
    assert_eq!(ids, vec![id_at(&a, 3), id_at(&a, 4)]);
    assert_eq!(gw.cursor().await, ids[1]);

    // The same answer over HTTP/2 on TLS.
    let mut conn = Conn::open(&gw.tls(), Http::H2).await;
    let reply = conn
        .request(Method::GET, "/cursor", &[], Bytes::new())
        .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.json(), json!({ "id": ids[1] }));

    // A page that renders with the cursor and subscribes with it misses nothing.
    let page_cursor = gw.cursor().await;
    let missed = gw
        .publish_text("cur-a", "between page load and connect")
        .await;
    let mut sub = gw
        .subscribe(&format!("/events/cur-a?lastEventId={page_cursor}"))
        .await;
    assert_eq!(
        sub.next_event().await.triple(),
        (missed, None, "between page load and connect".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_ok() {
    let gw = start().await;
    for (path, body) in [
        ("/healthz", json!({"status": "ok"})),
        ("/readyz", json!({"status": "ready"})),
    ] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), body, "{path}");
        let mut conn = Conn::open(&gw.tls(), Http::H2).await;
        let reply = conn.request(Method::GET, path, &[], Bytes::new()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} over h2");
        assert_eq!(reply.json(), body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_publishes_streams_and_bytes() {
    let gw = start().await;
    let reply = gw.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let fresh = reply.text();
    assert_eq!(
        metric(&fresh, "ssegate_events_published_total{source=\"http\"}"),
        Some(0.0)
    );
    for labels in [
        "proto=\"h1\",tls=\"false\"",
        "proto=\"h1\",tls=\"true\"",
        "proto=\"h2\",tls=\"false\"",
        "proto=\"h2\",tls=\"true\"",
    ] {
        assert_eq!(
            metric(&fresh, &format!("ssegate_connections_open{{{labels}}}")),
            Some(0.0),
            "{labels}"
        );
    }

    // One plain HTTP/1.1 stream and one HTTP/2-over-TLS stream.
    let mut h1 = gw.subscribe("/events/m").await;
    let mut conn = Conn::open(&gw.tls(), Http::H2).await;
    let mut h2 = conn.get_stream("/events/m", &[]).await;
    assert_stream_headers(&h2);
    let h2_preamble = h2.block().await;

    for i in 0..5 {
        gw.publish_text("m", &format!("single {i}")).await;
    }
    gw.publish_batch(
        (0..3)
            .map(|i| json!({"channel": "m", "data": format!("batch {i}")}))
            .collect(),
    )
    .await;
    // 8 events read by each stream: all written by now.
    let mut h1_bytes = h1.preamble.as_ref().unwrap().raw.len();
    let mut h2_bytes = h2_preamble.raw.len();
    for _ in 0..8 {
        h1_bytes += h1.next_event().await.raw.len();
        h2_bytes += h2.next_event().await.raw.len();
    }

    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "ssegate_events_published_total{source=\"http\"}"),
        Some(8.0)
    );
    assert_eq!(metric(&text, "ssegate_frames_written_total"), Some(16.0));
    assert_eq!(
        metric(&text, "ssegate_bytes_written_total"),
        Some((h1_bytes + h2_bytes) as f64),
        "bytes handed to the two streams"
    );
    assert_eq!(
        metric(
            &text,
            "ssegate_connections_open{proto=\"h1\",tls=\"false\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "ssegate_connections_open{proto=\"h2\",tls=\"true\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "ssegate_connections_open{proto=\"h2\",tls=\"false\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "ssegate_connections_opened_total{proto=\"h1\",tls=\"false\"}"
        ),
        Some(1.0)
    );
    // Six successful publish requests were timed.
    assert_eq!(
        metric(&text, "ssegate_publish_duration_seconds_count"),
        Some(6.0)
    );
    for reason in [
        "epoch_changed",
        "history_truncated",
        "invalid_last_event_id",
        "lagged",
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("ssegate_resyncs_total{{reason=\"{reason}\"}}")
            ),
            Some(0.0)
        );
    }
}

/// DESIGN §6: "Core metric names … Add more; rename none of these." Each is exported
/// with its type once the gateway has published, streamed and refused something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_export_every_core_series_named_in_the_design() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/core").await;
    let id = gw.publish_text("core", "x").await;
    assert_eq!(sub.next_event().await.id, Some(id));
    let refused = gw.publish_bytes("{").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let refused = gw.get("/events?channel=a%20b").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let many: String = (0..65).map(|i| format!("&channel=c{i}")).collect();
    let refused = gw.get(&format!("/events?{}", &many[1..])).await;
    assert_eq!(refused.error_code(), "too_many_channels");

    let text = gw.metrics().await;
    let mut missing = Vec::new();
    for (name, kind) in [
        ("ssegate_connections_open", "gauge"),
        ("ssegate_connections_closed_total", "counter"),
        ("ssegate_events_published_total", "counter"),
        ("ssegate_frames_written_total", "counter"),
        ("ssegate_bytes_written_total", "counter"),
        ("ssegate_publish_duration_seconds", "histogram"),
        ("ssegate_delivery_lag_seconds", "histogram"),
        ("ssegate_resyncs_total", "counter"),
        ("ssegate_refusals_total", "counter"),
    ] {
        if !text.lines().any(|l| l == format!("# TYPE {name} {kind}")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "missing from /metrics: {missing:?}");
}

/// A retried publish with the same idempotency key is not a new event: the counter of
/// events accepted by the broker does not count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_is_not_counted_as_a_published_event() {
    let gw = start().await;
    let body = json!({"channel": "retry", "data": "once", "idempotency_key": "k-1"});
    let first = gw.publish_ok(&body).await;
    let retry = gw.publish_ok(&body).await;
    assert_eq!(retry, first);
    assert_eq!(gw.cursor().await, first, "one event was accepted");
    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "ssegate_events_published_total{source=\"http\"}"),
        Some(1.0),
        "events accepted by the broker"
    );
}
