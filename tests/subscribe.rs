//! Subscribing to channels: `GET /events/{channel}` and `GET /events?channel=a&channel=b`
//! (and both forms together). A connection gets exactly the events of its channels: an
//! event published to several of them arrives once, events of other channels never
//! arrive, and events arrive in publish order across channels.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_form_gets_only_its_channel() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/room:1").await;
    let other = gw.publish_text("room:2", "not for you").await;
    let mine = gw.publish_text("room:1", "for you").await;
    assert_eq!(seq(&mine), seq(&other) + 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (mine, None, "for you".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_and_slashed_names_in_the_path() {
    let gw = start().await;
    // `%3A` is `:`; `/` is a channel character, so the rest of the path is the name.
    let mut colon = gw.subscribe("/events/chat%3A42").await;
    let mut slashed = gw.subscribe("/events/workspace/7/side-bar_x.y@z=1").await;
    let a = gw.publish_text("chat:42", "colon").await;
    let b = gw
        .publish_text("workspace/7/side-bar_x.y@z=1", "slashed")
        .await;
    assert_eq!(colon.next_event().await.triple(), (a, None, "colon".into()));
    assert_eq!(
        slashed.next_event().await.triple(),
        (b, None, "slashed".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_channel_name_is_accepted() {
    let gw = start().await;
    let name = "n".repeat(128);
    let mut sub = gw.subscribe(&format!("/events/{name}")).await;
    let id = gw.publish_text(&name, "long").await;
    assert_eq!(sub.next_event().await.triple(), (id, None, "long".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_channels_in_publish_order_each_event_once() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events?channel=a&channel=b").await;

    // A fixed pseudo-random mix of targets: a, b, both, and the unrelated c.
    let mut rng = fastrand::Rng::with_seed(11);
    let mut expected = Vec::new();
    for i in 0..40 {
        let (body, wanted) = match rng.u8(0..4) {
            0 => (json!({"channel": "a", "data": format!("e{i}")}), true),
            1 => (json!({"channel": "b", "data": format!("e{i}")}), true),
            2 => (
                json!({"channels": ["a", "c", "b"], "event": "both", "data": format!("e{i}")}),
                true,
            ),
            _ => (json!({"channel": "c", "data": format!("e{i}")}), false),
        };
        let is_both = body.get("channels").is_some();
        let id = gw.publish_ok(&body).await;
        if wanted {
            let event = is_both.then(|| "both".to_string());
            expected.push((id, event, format!("e{i}")));
        }
    }
    let marker = gw.publish_text("b", "marker").await;
    expected.push((marker, None, "marker".into()));

    let got: Vec<_> = sub
        .events(expected.len())
        .await
        .iter()
        .map(|e| e.triple())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_channels_combine() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/p?channel=q").await;
    let p = gw.publish_text("p", "from p").await;
    let _ = gw.publish_text("r", "from r").await;
    let q = gw.publish_text("q", "from q").await;
    assert_eq!(sub.next_event().await.triple(), (p, None, "from p".into()));
    assert_eq!(sub.next_event().await.triple(), (q, None, "from q".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_named_twice_delivers_once() {
    let gw = start().await;
    let mut sub = gw.subscribe("/events/d?channel=d&channel=d").await;
    let one = gw.publish_text("d", "one").await;
    let two = gw.publish_text("d", "two").await;
    assert_eq!(sub.next_event().await.triple(), (one, None, "one".into()));
    assert_eq!(sub.next_event().await.triple(), (two, None, "two".into()));
}

/// Repeating a channel in the query must not make the gateway stop reading the list
/// before a later, distinct channel: two distinct channels are within a limit of three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_channels_in_query_do_not_hide_later_ones() {
    let gw = start_with(|c| c.limits.max_channels_per_connection = 3).await;
    let mut conn = Conn::open(&gw.plain(), Http::H1).await;
    let mut sub = conn
        .get_stream(
            "/events?channel=dup&channel=dup&channel=dup&channel=dup&channel=later",
            &[],
        )
        .await;
    assert_eq!(
        sub.status,
        http::StatusCode::OK,
        "two distinct channels are within a limit of three"
    );
    sub.block().await;
    let later = gw.publish_text("later", "to the later channel").await;
    let dup = gw.publish_text("dup", "to the repeated channel").await;
    assert_eq!(
        sub.next_event().await.triple(),
        (later, None, "to the later channel".into()),
        "the event of the channel named after the repeats must arrive"
    );
    assert_eq!(
        sub.next_event().await.triple(),
        (dup, None, "to the repeated channel".into())
    );
}
