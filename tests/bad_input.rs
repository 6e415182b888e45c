//! Bad input is refused with the documented status and JSON `error` code, and a refused
//! publish publishes nothing: the cursor is unchanged, a subscriber of the channel gets
//! no event, and the next accepted event takes the very next sequence number.
//!
//! Covers: missing / invalid channel names (subscribe and publish), too many channels,
//! body over `max_body_bytes` (declared and chunked), event over `max_event_bytes`,
//! invalid JSON, unsafe or reserved `event` names, an `id` field, missing `data`, unknown
//! fields, publish key missing / wrong, wrong method (405 with `Allow`), unknown path,
//! batches with one bad event or too many events, and the gateway's channel limit (503
//! with `Retry-After`).

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

const MAX_BODY: usize = 1024;
const MAX_EVENT: usize = 512;

async fn gateway() -> TestGateway {
    start_with(|c| {
        c.limits.max_body_bytes = MAX_BODY;
        c.limits.max_event_bytes = MAX_EVENT;
        c.limits.max_batch_events = 3;
        c.limits.max_channels_per_connection = 3;
    })
    .await
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    assert_eq!(json["error"], code, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {json}"
    );
}

/// A subscriber of `room` and the cursor, taken before a refused publish.
struct Watch {
    sub: SseStream,
    before: String,
}

async fn watch(gw: &TestGateway) -> Watch {
    let sub = gw.subscribe("/events/room").await;
    Watch {
        sub,
        before: gw.cursor().await,
    }
}

impl Watch {
    /// Nothing was published since the watch began: the cursor did not move, and the
    /// next event the subscriber sees is a fresh marker with the next sequence number.
    async fn assert_nothing_published(&mut self, gw: &TestGateway) {
        assert_eq!(gw.cursor().await, self.before, "the cursor moved");
        let marker = gw.publish_text("room", "marker").await;
        assert_eq!(seq(&marker), seq(&self.before) + 1);
        assert_eq!(
            self.sub.next_event().await.triple(),
            (marker.clone(), None, "marker".into())
        );
        self.before = marker;
    }
}

async fn publish_json(gw: &TestGateway, body: &Value) -> Reply {
    gw.publish_bytes(body.to_string()).await
}

/// Sends each body, expecting `status` / `code`, then checks nothing was published.
async fn refuse_all(gw: &TestGateway, bodies: &[Value], status: StatusCode, code: &str) {
    let mut w = watch(gw).await;
    for body in bodies {
        let reply = publish_json(gw, body).await;
        assert_error(&reply, status, code);
        w.assert_nothing_published(gw).await;
    }
}

async fn subscribe_reply(gw: &TestGateway, path: &str) -> Reply {
    let mut conn = Conn::open(&gw.plain(), Http::H1).await;
    conn.get_stream(path, &[]).await.into_reply().await
}

// ---------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_channel_is_channel_missing() {
    let gw = gateway().await;
    for path in ["/events", "/events?lastEventId=abc", "/events?chanel=a"] {
        let reply = subscribe_reply(&gw, path).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "channel_missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_channel_is_channel_missing() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[json!({"data": "x"}), json!({"channels": [], "data": "x"})],
        StatusCode::BAD_REQUEST,
        "channel_missing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_invalid_channel_is_channel_invalid() {
    let gw = gateway().await;
    let long = "a".repeat(129);
    for path in [
        "/events/a%20b".to_string(),
        "/events?channel=a+b".to_string(),
        format!("/events/{long}"),
        format!("/events?channel={long}"),
        "/events/%C3%BCn%C3%AF".to_string(),
        "/events?channel=%E2%9C%93".to_string(),
        "/events/%F0%9F%98%80".to_string(),
        "/events/a%0Ab".to_string(),
        "/events?channel=a%0Db".to_string(),
        "/events/a%00b".to_string(),
        "/events/%FF".to_string(),
        "/events?channel=".to_string(),
        "/events?channel=ok&channel=not%20ok".to_string(),
    ] {
        let reply = subscribe_reply(&gw, &path).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "channel_invalid");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_invalid_channel_is_channel_invalid() {
    let gw = gateway().await;
    let long = "a".repeat(129);
    refuse_all(
        &gw,
        &[
            json!({"channel": "a b", "data": "x"}),
            json!({"channel": long, "data": "x"}),
            json!({"channel": "ünï", "data": "x"}),
            json!({"channel": "a\nb", "data": "x"}),
            json!({"channel": "", "data": "x"}),
            json!({"channels": ["room", "bad name"], "data": "x"}),
        ],
        StatusCode::BAD_REQUEST,
        "channel_invalid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_channels_than_allowed_is_too_many_channels() {
    let gw = gateway().await;
    for path in [
        "/events?channel=a&channel=b&channel=c&channel=d",
        "/events/a?channel=b&channel=c&channel=d",
    ] {
        let reply = subscribe_reply(&gw, path).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "too_many_channels");
    }
    // Exactly the limit is fine.
    let mut sub = gw.subscribe("/events/a?channel=b&channel=c").await;
    let id = gw.publish_text("c", "three is fine").await;
    assert_eq!(
        sub.next_event().await.triple(),
        (id, None, "three is fine".into())
    );

    refuse_all(
        &gw,
        &[json!({"channels": ["a", "b", "c", "d"], "data": "x"})],
        StatusCode::BAD_REQUEST,
        "too_many_channels",
    )
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "ssegate_refusals_total{reason=\"too_many_channels\"}"
        ),
        Some(3.0)
    );
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

/// A valid publish body of exactly `len` bytes (JSON padded with trailing spaces).
fn body_of_len(len: usize) -> Vec<u8> {
    let mut body = br#"{"channel":"room","data":"sized"}"#.to_vec();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

fn raw_publish_with_length(body: &[u8], declared: usize) -> Vec<u8> {
    let mut req = format!(
        "POST /publish HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {PUBLISH_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn raw_publish_chunked(body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /publish HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {PUBLISH_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in body.chunks(body.len().div_ceil(3)) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_with_content_length_is_body_too_large() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;

    let over = body_of_len(MAX_BODY + 1);
    let reply = raw_http(gw.plain_addr, &raw_publish_with_length(&over, over.len())).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    w.assert_nothing_published(&gw).await;

    // Refused from the header alone: the body is never sent.
    let reply = raw_http(gw.plain_addr, &raw_publish_with_length(b"", 10 << 20)).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    w.assert_nothing_published(&gw).await;

    // Exactly the limit is accepted.
    let exact = body_of_len(MAX_BODY);
    let reply = raw_http(gw.plain_addr, &raw_publish_with_length(&exact, exact.len())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.sub.next_event().await.triple(),
        (id, None, "sized".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_limit_is_body_too_large() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;

    let reply = raw_http(
        gw.plain_addr,
        &raw_publish_chunked(&body_of_len(MAX_BODY + 1)),
    )
    .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    w.assert_nothing_published(&gw).await;

    let reply = raw_http(gw.plain_addr, &raw_publish_chunked(&body_of_len(MAX_BODY))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.sub.next_event().await.triple(),
        (id, None, "sized".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_over_limit_is_event_too_large() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    // Encoded: "data: " + data + "\n" + "\n" = data + 8 bytes.
    let over = "x".repeat(MAX_EVENT - 8 + 1);
    let reply = publish_json(&gw, &json!({"channel": "room", "data": over})).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "event_too_large");
    w.assert_nothing_published(&gw).await;
    // The event name counts too: "event: e\n" is 9 more bytes.
    let named = "x".repeat(MAX_EVENT - 8 - 9 + 1);
    let reply = publish_json(
        &gw,
        &json!({"channel": "room", "event": "e", "data": named}),
    )
    .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "event_too_large");
    w.assert_nothing_published(&gw).await;

    let exact = "x".repeat(MAX_EVENT - 8);
    let id = gw
        .publish_ok(&json!({"channel": "room", "data": exact}))
        .await;
    assert_eq!(w.sub.next_event().await.triple(), (id, None, exact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_max_batch_events_is_batch_too_large() {
    let gw = gateway().await;
    let events: Vec<Value> = (0..4)
        .map(|i| json!({"channel": "room", "data": i}))
        .collect();
    refuse_all(
        &gw,
        &[json!({ "events": events })],
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Body content
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_invalid_json() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    for body in [
        "",
        "{",
        "not json",
        r#"{"channel":"room","data":}"#,
        r#"{"channel":"room","data":"x"} trailing"#,
    ] {
        let reply = gw.publish_bytes(body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_json");
        w.assert_nothing_published(&gw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_that_is_not_an_event_is_invalid_publish() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[
            json!([{"channel": "room", "data": "x"}]),
            json!("room"),
            json!(42),
            json!({"channel": "room", "data": "x", "chanel": "typo"}),
            json!({"channel": "room", "channels": ["room"], "data": "x"}),
            json!({"events": []}),
            json!({"events": {"channel": "room", "data": "x"}}),
            json!({"events": [{"channel": "room", "data": "x"}], "channel": "room"}),
        ],
        StatusCode::BAD_REQUEST,
        "invalid_publish",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_event_name_is_invalid_field() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[
            json!({"channel": "room", "event": "a\rb", "data": "x"}),
            json!({"channel": "room", "event": "a\nb", "data": "x"}),
            json!({"channel": "room", "event": "a\r\nid: 1", "data": "x"}),
            json!({"channel": "room", "event": "a\u{0}b", "data": "x"}),
            json!({"channel": "room", "event": "", "data": "x"}),
            json!({"channel": "room", "event": "e".repeat(257), "data": "x"}),
            json!({"channel": "room", "idempotency_key": "k\n", "data": "x"}),
        ],
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_event_name_is_event_reserved() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[
            json!({"channel": "room", "event": "ssegate.x", "data": "x"}),
            json!({"channel": "room", "event": "ssegate.resync", "data": {"reason": "lagged"}}),
        ],
        StatusCode::BAD_REQUEST,
        "event_reserved",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_field_is_id_not_allowed() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[
            json!({"channel": "room", "id": "999", "data": "x"}),
            json!({"channel": "room", "id": null, "data": "x"}),
            json!({"channel": "room", "id": 7, "data": "x"}),
        ],
        StatusCode::BAD_REQUEST,
        "id_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_data_is_data_missing() {
    let gw = gateway().await;
    refuse_all(
        &gw,
        &[
            json!({"channel": "room"}),
            json!({"channel": "room", "event": "e"}),
        ],
        StatusCode::BAD_REQUEST,
        "data_missing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_one_bad_event_publishes_nothing() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    let cases = [
        (
            json!({"events": [{"channel": "room", "data": 1}, {"channel": "room"}]}),
            "data_missing",
        ),
        (
            json!({"events": [{"channel": "room", "data": 1}, {"channel": "no way", "data": 2}]}),
            "channel_invalid",
        ),
        (
            json!({"events": [{"channel": "room", "data": 1}, {"channel": "room", "data": 2, "id": "x"}]}),
            "id_not_allowed",
        ),
        (
            json!({"events": [{"channel": "room", "data": 1}, {"channel": "room", "event": "ssegate.x", "data": 2}, {"channel": "room", "data": 3}]}),
            "event_reserved",
        ),
    ];
    for (body, code) in cases {
        let reply = publish_json(&gw, &body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code);
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with("events[1]: "), "{message}");
        w.assert_nothing_published(&gw).await;
    }
}

// ---------------------------------------------------------------------------------------
// Publish key
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_publish_key_is_publish_key_missing() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    let reply = gw
        .request(
            Method::POST,
            "/publish",
            &[],
            Bytes::from(json!({"channel": "room", "data": "x"}).to_string()),
        )
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "publish_key_missing");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    w.assert_nothing_published(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_publish_key_is_publish_key_invalid() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    let body = Bytes::from(json!({"channel": "room", "data": "x"}).to_string());
    let almost = format!("Bearer {PUBLISH_KEY}x");
    let prefix = format!("Bearer {}", &PUBLISH_KEY[..PUBLISH_KEY.len() - 1]);
    let basic = format!("Basic {PUBLISH_KEY}");
    let bare = PUBLISH_KEY.to_string();
    for auth in [
        "Bearer wrong-key-123",
        "Bearer ",
        almost.as_str(),
        prefix.as_str(),
        basic.as_str(),
        bare.as_str(),
    ] {
        let reply = gw
            .request(
                Method::POST,
                "/publish",
                &[("authorization", auth)],
                body.clone(),
            )
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "publish_key_invalid");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        w.assert_nothing_published(&gw).await;
    }
}

// ---------------------------------------------------------------------------------------
// Methods and paths
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_with_allow() {
    let gw = gateway().await;
    let mut w = watch(&gw).await;
    let auth = format!("Bearer {PUBLISH_KEY}");
    let publish_body = json!({"channel": "room", "data": "x"}).to_string();
    let cases = [
        (Method::PUT, "/publish", "POST"),
        (Method::GET, "/publish", "POST"),
        (Method::DELETE, "/publish", "POST"),
        (Method::POST, "/events", "GET"),
        (Method::POST, "/events/room", "GET"),
        (Method::PUT, "/events?channel=room", "GET"),
        (Method::POST, "/cursor", "GET"),
        (Method::POST, "/healthz", "GET"),
        (Method::POST, "/readyz", "GET"),
        (Method::POST, "/metrics", "GET"),
    ];
    for (method, path, allow) in cases {
        let reply = gw
            .request(
                method.clone(),
                path,
                &[("authorization", &auth)],
                publish_body.clone(),
            )
            .await;
        assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
    w.assert_nothing_published(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404() {
    let gw = gateway().await;
    for path in [
        "/",
        "/nope",
        "/eventsx",
        "/publish/",
        "/cursor/x",
        "/adminx",
    ] {
        let reply = gw.get(path).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
}

// ---------------------------------------------------------------------------------------
// The gateway's channel limit
// ---------------------------------------------------------------------------------------

async fn channel_limited() -> TestGateway {
    start_with(|c| c.limits.max_channels = 3).await
}

fn assert_channel_limit(reply: &Reply) {
    assert_error(reply, StatusCode::SERVICE_UNAVAILABLE, "channel_limit");
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_limit_refuses_new_channels_with_503() {
    let gw = channel_limited().await;
    let mut w = watch(&gw).await; // channel 1: room
    let c1 = gw.publish_text("c1", "one").await; // channel 2
    gw.publish_text("c2", "two").await; // channel 3
    w.before = gw.cursor().await;

    let reply = publish_json(&gw, &json!({"channel": "c3", "data": "x"})).await;
    assert_channel_limit(&reply);
    // A batch whose last event needs a new channel: none of it is published.
    let reply = publish_json(
        &gw,
        &json!({"events": [{"channel": "room", "data": "first"}, {"channel": "c3", "data": "x"}]}),
    )
    .await;
    assert_channel_limit(&reply);
    let reply = subscribe_reply(&gw, "/events/c3").await;
    assert_channel_limit(&reply);
    let reply = subscribe_reply(&gw, "/events?channel=c1&channel=c4").await;
    assert_channel_limit(&reply);
    w.assert_nothing_published(&gw).await;

    // Existing channels still work, for subscribing (with replay) and publishing.
    let mut sub = gw
        .subscribe_with(
            "/events/c1",
            &[("last-event-id", &id_at(&c1, seq(&c1) - 1))],
        )
        .await;
    assert_eq!(sub.next_event().await.triple(), (c1, None, "one".into()));
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(&metrics, "ssegate_refusals_total{reason=\"channel_limit\"}"),
        Some(4.0)
    );
}

/// A batch of two events to the same new channel creates one channel, which fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_to_one_new_channel_counts_it_once_against_the_limit() {
    let gw = channel_limited().await;
    gw.publish_text("c0", "zero").await; // channel 1
    let before = gw.publish_text("c1", "one").await; // channel 2
    let (status, json) = gw
        .publish(&json!({"events": [
            {"channel": "c2", "data": "a"},
            {"channel": "c2", "data": "b"},
        ]}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "channel c2 is the third of three: {json}"
    );
    let ids: Vec<String> = json["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            id_at(&before, seq(&before) + 1),
            id_at(&before, seq(&before) + 2)
        ]
    );
    let mut sub = gw
        .subscribe_with("/events/c2", &[("last-event-id", &before)])
        .await;
    assert_eq!(
        sub.next_event().await.triple(),
        (ids[0].clone(), None, "a".into())
    );
    assert_eq!(
        sub.next_event().await.triple(),
        (ids[1].clone(), None, "b".into())
    );
}
