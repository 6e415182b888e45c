//! Idempotency keys belong to their publisher and to their event: a retry of the same
//! event gets its first id, the same key from another publisher is another key, and a
//! key reused for a different event is refused with 409 and publishes nothing.

mod support;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

async fn two_publishers() -> TestGateway {
    start_with(add_other_publisher).await
}

fn test_key() -> String {
    format!("Bearer {PUBLISH_KEY}")
}

fn other_key() -> String {
    format!("Bearer {OTHER_PUBLISH_KEY}")
}

fn assert_conflict(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert_eq!(
        reply.error_code(),
        "idempotency_conflict",
        "{}",
        reply.text()
    );
}

fn conflicts(metrics: &str) -> f64 {
    refusals(metrics, "idempotency_conflict")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_for_another_event_is_refused_and_publishes_nothing() {
    let gw = two_publishers().await;
    let mut sub = gw.subscribe("/events/orders").await;
    let order = json!({"channel": "orders", "data": {"total": 10}, "idempotency_key": "o-1"});
    let first = gw.publish_ok(&order).await;
    assert_eq!(
        gw.publish_ok(&order).await,
        first,
        "a retry gets the first id"
    );
    assert_eq!(conflicts(&gw.metrics().await), 0.0);

    // Another data, another channel, another event name, another exclude_subject.
    let changed: [Value; 4] = [
        json!({"channel": "orders", "data": {"total": 11}, "idempotency_key": "o-1"}),
        json!({"channel": "orders2", "data": {"total": 10}, "idempotency_key": "o-1"}),
        json!({"channel": "orders", "event": "x", "data": {"total": 10}, "idempotency_key": "o-1"}),
        json!({"channel": "orders", "data": {"total": 10}, "idempotency_key": "o-1",
               "exclude_subject": "u1"}),
    ];
    for body in &changed {
        let reply = publish_as(&gw, &test_key(), body).await;
        assert_conflict(&reply);
        assert_eq!(gw.cursor().await, first, "nothing published for {body}");
    }
    // In a batch: the whole batch is refused, its new events included.
    let batch = json!({"events": [
        {"channel": "orders", "data": "new one", "idempotency_key": "o-2"},
        {"channel": "orders", "data": {"total": 12}, "idempotency_key": "o-1"},
    ]});
    let reply = publish_as(&gw, &test_key(), &batch).await;
    assert_conflict(&reply);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("events[1]"));
    // Twice the same key for two different events of one batch.
    let batch = json!({"events": [
        {"channel": "orders", "data": "a", "idempotency_key": "o-3"},
        {"channel": "orders", "data": "b", "idempotency_key": "o-3"},
    ]});
    assert_conflict(&publish_as(&gw, &test_key(), &batch).await);
    assert_eq!(gw.cursor().await, first, "refused batches publish nothing");
    assert_eq!(conflicts(&gw.metrics().await), 6.0, "each refusal counted");

    // The refused batch's key o-2 was not remembered: it publishes now.
    let o2 = gw
        .publish_ok(&json!({"channel": "orders", "data": "o-2 for real", "idempotency_key": "o-2"}))
        .await;
    assert_eq!(seq(&o2), seq(&first) + 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (first, None, r#"{"total":10}"#.into())
    );
    assert_eq!(
        sub.next_event().await.triple(),
        (o2, None, "o-2 for real".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_belong_to_their_publisher() {
    let gw = two_publishers().await;
    let mut sub = gw.subscribe("/events/shared").await;
    let body = json!({"channel": "shared", "data": "same", "idempotency_key": "k"});
    let mine = publish_as(&gw, &test_key(), &body).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text());
    let mine = mine.json()["id"].as_str().expect("id").to_string();
    // The other publisher's same key, even with the same event, is its own event.
    let theirs = publish_as(&gw, &other_key(), &body).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text());
    let theirs = theirs.json()["id"].as_str().expect("id").to_string();
    assert_eq!(seq(&theirs), seq(&mine) + 1, "not the other publisher's id");
    // And with another event, it is no conflict either.
    let different = json!({"channel": "shared", "data": "mine", "idempotency_key": "k2"});
    let first_k2 = publish_as(&gw, &test_key(), &different).await;
    assert_eq!(first_k2.status, StatusCode::OK);
    let other_k2 = json!({"channel": "shared", "data": "theirs", "idempotency_key": "k2"});
    let reply = publish_as(&gw, &other_key(), &other_k2).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Each publisher's retry still gets its own first id.
    let retry = publish_as(&gw, &other_key(), &body).await;
    assert_eq!(retry.json()["id"].as_str(), Some(theirs.as_str()));

    assert_eq!(sub.next_event().await.triple(), (mine, None, "same".into()));
    assert_eq!(
        sub.next_event().await.triple(),
        (theirs, None, "same".into())
    );
    assert_eq!(sub.next_event().await.data.as_deref(), Some("mine"));
    assert_eq!(sub.next_event().await.data.as_deref(), Some("theirs"));
}
