//! SSE encoding through the real server: what a subscriber reads on the wire for empty,
//! multi-line (`\n`, `\r\n`, `\r`), trailing-newline, unicode and JSON data; data that
//! tries to inject frames; event names present and absent; and idempotency keys (the
//! same key twice gives the same id and one delivery).

mod support;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

/// Publishes each body to `enc` and checks the subscriber reads exactly `raw_lines`
/// after the `id:` line, and `data` as the event's data.
async fn assert_wire(
    gw: &TestGateway,
    sub: &mut SseStream,
    body: Value,
    raw_lines: &str,
    data: &str,
) {
    let id = gw.publish_ok(&body).await;
    let block = sub.next_event().await;
    assert_eq!(block.raw, format!("id: {id}\n{raw_lines}\n"), "for {body}");
    assert_eq!(block.id.as_deref(), Some(id.as_str()));
    assert_eq!(block.data.as_deref(), Some(data), "for {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_data_edge_cases_arrive_exactly() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/enc").await;
    let cases: &[(&str, &str, &str)] = &[
        ("", "data: \n", ""),
        ("one line", "data: one line\n", "one line"),
        ("a\nb", "data: a\ndata: b\n", "a\nb"),
        ("a\r\nb", "data: a\ndata: b\n", "a\nb"),
        ("a\rb", "data: a\ndata: b\n", "a\nb"),
        ("a\n", "data: a\ndata: \n", "a\n"),
        ("\n", "data: \ndata: \n", "\n"),
        ("\r\n\r\n", "data: \ndata: \ndata: \n", "\n\n"),
        (
            "x\n\r\ny\rz",
            "data: x\ndata: \ndata: y\ndata: z\n",
            "x\n\ny\nz",
        ),
        (" leading space", "data:  leading space\n", " leading space"),
        ("key: value", "data: key: value\n", "key: value"),
        (":not a comment", "data: :not a comment\n", ":not a comment"),
        ("tab\there", "data: tab\there\n", "tab\there"),
        (
            "emoji 😀, CJK 中文字, ünïcödé",
            "data: emoji 😀, CJK 中文字, ünïcödé\n",
            "emoji 😀, CJK 中文字, ünïcödé",
        ),
    ];
    for (data, raw, parsed) in cases {
        assert_wire(
            &gw,
            &mut sub,
            json!({"channel": "enc", "data": data}),
            raw,
            parsed,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_data_is_compact_on_one_line() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/json").await;
    let values = [
        json!({"b": 1, "a": [1, 2, {"c": null}], "s": "line\nbreak", "u": "ünï 😀"}),
        json!([1, "two", null, true, {"x": []}]),
        json!(42),
        json!(-1.5),
        json!(1e100),
        json!(null),
        json!(true),
        json!(false),
        json!({}),
        json!([]),
        json!({"nested": {"deeper": {"text": "\r\n\n\nid: 999\n\n"}}}),
    ];
    for value in values {
        let compact = serde_json::to_string(&value).unwrap();
        assert!(!compact.contains('\n') && !compact.contains('\r'));
        let raw = format!("data: {compact}\n");
        assert_wire(
            &gw,
            &mut sub,
            json!({"channel": "json", "data": value.clone()}),
            &raw,
            &compact,
        )
        .await;
        // Written compact: no whitespace outside strings, and it parses back.
        let back: Value = serde_json::from_str(&compact).unwrap();
        assert_eq!(back, value);
    }
    // A JSON document inside a string stays text (quotes and all, unreformatted).
    assert_wire(
        &gw,
        &mut sub,
        json!({"channel": "json", "data": "{ \"spaced\" : 1 }"}),
        "data: { \"spaced\" : 1 }\n",
        "{ \"spaced\" : 1 }",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_cannot_inject_frames() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/inj").await;
    let attack = "\n\nid: 999\n\nevent: x";
    let id = gw
        .publish_ok(&json!({"channel": "inj", "data": attack}))
        .await;
    let block = sub.next_event().await;
    assert_eq!(
        block.raw,
        format!("id: {id}\ndata: \ndata: \ndata: id: 999\ndata: \ndata: event: x\n\n")
    );
    assert_eq!(block.triple(), (id.clone(), None, attack.to_string()));

    // With CRs the line breaks are normalised, still within one event.
    let attack_cr = "ok\r\rid: 5\r\revent: y\r\ndata: z";
    let id2 = gw
        .publish_ok(&json!({"channel": "inj", "event": "real", "data": attack_cr}))
        .await;
    let block = sub.next_event().await;
    assert_eq!(
        block.triple(),
        (
            id2.clone(),
            Some("real".into()),
            "ok\n\nid: 5\n\nevent: y\ndata: z".into()
        )
    );

    // Nothing else was framed: the next event is the marker, right after.
    let marker = gw.publish_text("inj", "marker").await;
    assert_eq!(seq(&marker), seq(&id2) + 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (marker, None, "marker".into())
    );
    assert_eq!(sub.last_event_id(), Some(id_at(&id, seq(&id) + 2).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_name_present_and_absent() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/names").await;
    assert_wire(
        &gw,
        &mut sub,
        json!({"channel": "names", "data": "no name"}),
        "data: no name\n",
        "no name",
    )
    .await;
    for name in ["message", "chat message", "a:b", "ünï-code", "x"] {
        let id = gw
            .publish_ok(&json!({"channel": "names", "event": name, "data": "d"}))
            .await;
        let block = sub.next_event().await;
        assert_eq!(block.raw, format!("id: {id}\nevent: {name}\ndata: d\n\n"));
        assert_eq!(block.triple(), (id, Some(name.to_string()), "d".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_gives_one_id_and_one_delivery() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/idem").await;
    let body = json!({"channel": "idem", "data": "once", "idempotency_key": "order-17"});
    let first = gw.publish_ok(&body).await;
    let again = gw.publish_ok(&body).await;
    assert_eq!(again, first);
    // Same key, other content: refused (tests/idempotency.rs), nothing new published.
    let (status, _) = gw
        .publish(&json!({"channel": "idem", "data": "changed", "idempotency_key": "order-17"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(gw.cursor().await, first);
    // Another key is another event.
    let second = gw
        .publish_ok(&json!({"channel": "idem", "data": "twice", "idempotency_key": "order-18"}))
        .await;
    assert_eq!(seq(&second), seq(&first) + 1);
    // Within one batch, and against an earlier key.
    let ids = gw
        .publish_batch(vec![
            json!({"channel": "idem", "data": "b1", "idempotency_key": "batch-1"}),
            json!({"channel": "idem", "data": "b1", "idempotency_key": "batch-1"}),
            json!({"channel": "idem", "data": "twice", "idempotency_key": "order-18"}),
        ])
        .await;
    let b1 = id_at(&first, seq(&second) + 1);
    assert_eq!(ids, vec![b1.clone(), b1.clone(), second.clone()]);

    assert_eq!(
        sub.next_event().await.triple(),
        (first, None, "once".into())
    );
    assert_eq!(
        sub.next_event().await.triple(),
        (second, None, "twice".into())
    );
    assert_eq!(
        sub.next_event().await.triple(),
        (b1.clone(), None, "b1".into())
    );
    let marker = gw.publish_text("idem", "marker").await;
    assert_eq!(seq(&marker), seq(&b1) + 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (marker, None, "marker".into())
    );
}

/// JSON data arrives with its numbers exactly as sent (no rounding through a float),
/// compact on one line whatever whitespace the publisher used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_numbers_arrive_exactly_as_sent_compact_on_one_line() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/numbers").await;
    let cases: &[(&str, &str)] = &[
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("-0.10000000000000000000001", "-0.10000000000000000000001"),
        ("1e400", "1e400"),
        ("18446744073709551616", "18446744073709551616"),
        (
            "{\n  \"big\": 123456789012345678901234567890,\r\n  \"list\": [ 1.50 , 2 ],\t\"s\": \"a  b\"\n}",
            "{\"big\":123456789012345678901234567890,\"list\":[1.50,2],\"s\":\"a  b\"}",
        ),
    ];
    for (sent, arrives) in cases {
        let body = format!(r#"{{"channel": "numbers", "data": {sent}}}"#);
        let reply = gw.publish_bytes(body.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text());
        let id = reply.json()["id"].as_str().expect("id").to_string();
        let block = sub.next_event().await;
        assert_eq!(
            block.raw,
            format!("id: {id}\ndata: {arrives}\n\n"),
            "{body}"
        );
    }
}
