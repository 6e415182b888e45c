//! The admin API and the operator's view: authentication, channels and connections
//! pages, closing a connection, the masked live config, listener routes, and metric
//! values after a known sequence (connect, publish, slow close, kick).

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use ssegate::config::{KeyConfig, LagPolicy, ListenerConfig, Routes};
use support::*;

const ADMIN_KEY: &str = "test-admin-key-1";

/// What `/admin/config` shows for a secret.
const MASK: &str = "********";

async fn gateway() -> TestGateway {
    start_with(|c| {
        c.admin.keys = vec![KeyConfig {
            name: "ops".into(),
            value: Some(ADMIN_KEY.into()),
            env: None,
            default: None,
        }];
    })
    .await
}

async fn admin(gw: &TestGateway, method: Method, path: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_KEY}");
    gw.request(method, path, &[("authorization", &auth)], "")
        .await
}

async fn admin_json(gw: &TestGateway, path: &str) -> Value {
    let reply = admin(gw, Method::GET, path).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_its_key_and_counts_failures() {
    let gw = gateway().await;
    let none = gw.get("/admin/channels").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error_code(), "admin_key_missing");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    for wrong in [
        "Bearer nope-nope-nope",
        &format!("Bearer {PUBLISH_KEY}"),
        "Basic eDp5",
    ] {
        let reply = gw
            .request(
                Method::GET,
                "/admin/channels",
                &[("authorization", wrong)],
                "",
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert_eq!(reply.error_code(), "admin_key_invalid");
    }
    let metrics = gw.metrics().await;
    let kind = |k: &str| {
        metric(
            &metrics,
            &format!("ssegate_auth_failures_total{{kind=\"{k}\"}}"),
        )
    };
    assert_eq!(kind("admin_key_missing"), Some(1.0));
    assert_eq!(kind("admin_key_invalid"), Some(3.0));
    assert_eq!(kind("publish_key_missing"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_off_without_keys() {
    let gw = start_with(|c| c.admin.keys.clear()).await;
    let reply = gw
        .request(
            Method::GET,
            "/admin/channels",
            &[("authorization", "Bearer anything-at-all")],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "admin_disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_listed_in_pages_with_their_state() {
    let gw = gateway().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        ids.push(gw.publish_text(name, "x").await);
    }
    gw.publish_text("c", "y").await;
    let _sub = gw.subscribe("/events/c").await;

    let first = admin_json(&gw, "/admin/channels?limit=2").await;
    let names: Vec<&str> = first["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(first["next"], "b");
    let second = admin_json(&gw, "/admin/channels?limit=2&after=b").await;
    assert_eq!(second["channels"][0]["name"], "c");
    assert_eq!(second["next"], "d");
    let last = admin_json(&gw, "/admin/channels?limit=2&after=d").await;
    assert_eq!(last["channels"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);

    let c = admin_json(&gw, "/admin/channels/c").await;
    assert_eq!(c["subscribers"], 1);
    assert_eq!(c["history"]["events"], 2);
    assert_eq!(c["history"]["first_id"], ids[2].as_str());
    assert_eq!(c["last_id"], gw.cursor().await.as_str());
    assert!(c["events_per_second"].as_f64().unwrap() > 0.0);
    let missing = admin(&gw, Method::GET, "/admin/channels/zzz").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "channel_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_listed_and_one_can_be_closed() {
    let gw = gateway().await;
    let mut kept = gw.subscribe("/events?channel=k&channel=shared").await;
    let mut kicked = gw.subscribe("/events/shared").await;
    let list = admin_json(&gw, "/admin/connections").await;
    assert_eq!(list["open"], 2);
    let conns = list["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0]["channels"], json!(["k", "shared"]));
    assert_eq!(conns[0]["proto"], "h1");
    assert_eq!(conns[0]["tls"], false);
    assert_eq!(conns[0]["lag_events"], 0);
    assert!(
        conns[0]["bytes_sent"].as_u64().unwrap() > 0,
        "the preamble was sent"
    );
    assert!(conns[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let victim = conns[1]["id"].as_u64().unwrap();

    let closed = admin(&gw, Method::DELETE, &format!("/admin/connections/{victim}")).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
    assert_eq!(closed.json(), json!({ "closed": victim }));
    let farewell = kicked.block().await;
    assert!(
        farewell.retry.is_some() && farewell.data.is_none(),
        "{farewell:?}"
    );
    assert!(
        kicked.next_block().await.is_none(),
        "the kicked stream ends"
    );

    // The other stream on the same channel goes on.
    let id = gw.publish_text("shared", "after").await;
    let event = kept.next_event().await;
    assert_eq!(event.id.as_deref(), Some(id.as_str()));
    let again = admin(&gw, Method::DELETE, &format!("/admin/connections/{victim}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let wrong_method = admin(&gw, Method::GET, &format!("/admin/connections/{victim}")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("allow"), Some("DELETE"));

    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "ssegate_connections_closed_total{reason=\"kicked\"}"
        ),
        Some(1.0)
    );
}

/// The config's secret-bearing fields: the ones `/admin/config` must show as the mask.
/// A field added to this list needs a `Secret` type; one that looks secret by its name
/// but is missing here fails [`live_config_masks_every_secret`].
const SECRET_FIELDS: [&str; 6] = [
    "admin.keys[].default",
    "admin.keys[].value",
    "auth.jwt_keys[].default",
    "auth.jwt_keys[].value",
    "publish.keys[].default",
    "publish.keys[].value",
];

/// Every leaf of a JSON value with its dotted path (list items as `name[]`).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &path, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for item in items {
                leaves(item, &format!("{prefix}[]"), out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// True for a field whose name says it holds a secret: a key's `value` or `default`,
/// or anything named like a secret, password, credential or private key.
fn looks_secret(path: &str) -> bool {
    let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
    (parent.ends_with("keys[]") && matches!(name, "value" | "default"))
        || ["secret", "password", "passwd", "credential", "private"]
            .iter()
            .any(|w| name.contains(w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_config_masks_every_secret() {
    // Every secret field set, each to its own sentinel.
    let sentinel = |field: &str| format!("sentinel-{}-0123456789", field.replace('.', "-"));
    let gw = start_with(|c| {
        c.admin.keys = vec![KeyConfig {
            name: "ops".into(),
            value: Some(ADMIN_KEY.into()),
            env: None,
            default: Some(sentinel("admin.default").into()),
        }];
        c.publish.keys[0].default = Some(sentinel("publish.default").into());
        let mut jwt = hmac_key("jwt", None, &sentinel("jwt.value"));
        jwt.default = Some(sentinel("jwt.default").into());
        c.auth.jwt_keys = vec![jwt];
    })
    .await;
    let reply = admin(&gw, Method::GET, "/admin/config").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    for secret in [ADMIN_KEY, PUBLISH_KEY] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(!text.contains("sentinel-"), "a secret leaked: {text}");
    let config = reply.json();
    let mut all = Vec::new();
    leaves(&config, "", &mut all);
    // The fields shown masked are exactly the secret fields, and every field that
    // looks secret by its name is one of them (or unset).
    let mut masked: Vec<&str> = all
        .iter()
        .filter(|(_, v)| v == MASK)
        .map(|(p, _)| p.as_str())
        .collect();
    masked.sort_unstable();
    masked.dedup();
    assert_eq!(masked, SECRET_FIELDS, "{text}");
    for (path, value) in &all {
        // Secrets are text: a flag such as `cors.allow_credentials` is none.
        if looks_secret(path) && (value.is_string() || value.is_null()) {
            assert!(
                SECRET_FIELDS.contains(&path.as_str()) && (value == MASK || value.is_null()),
                "{path} looks like a secret but is shown as {value}: make it a Secret"
            );
        }
    }
    assert_eq!(config["sse"]["heartbeat"], "25s");
    assert_eq!(config["listeners"][0]["name"], "plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_routes_split_public_and_admin_endpoints() {
    let gw = start_with(|c| {
        c.listeners[0].routes = Routes::Public;
        c.listeners.push(ListenerConfig {
            name: "internal".into(),
            address: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            routes: Routes::Admin,
        });
    })
    .await;
    let internal = gw.gateway.addr("internal").unwrap();
    // Public: events and publish, no metrics.
    let metrics_on_public = gw.get("/metrics").await;
    assert_eq!(metrics_on_public.status, StatusCode::NOT_FOUND);
    gw.publish_text("r", "x").await;
    // Admin: metrics and health, no events (not on the pushed path either), no publish.
    let metrics = raw_http(internal, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text().contains("ssegate_events_published_total"));
    let events = raw_http(internal, b"GET /events/r HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(events.status, StatusCode::NOT_FOUND);
    let health = raw_http(internal, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(health.status, StatusCode::OK);
}

/// A known sequence and the metrics it must leave: 2 streams connect (one h1, one h2
/// over TLS), 3 events are published (one to both streams' channel), one stream
/// resumes and replays 2 events, one slow stream is closed as lagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_known_sequence() {
    let gw = start_with(|c| {
        c.slow_clients.policy = LagPolicy::Disconnect;
        c.slow_clients.max_lag_events = 5;
        c.sse.max_batch_bytes = 1024;
        c.sse.heartbeat = Duration::from_secs(3600);
    })
    .await;
    let mut h1 = gw.subscribe("/events?channel=m1&channel=m2").await;
    let mut tls = Conn::open(&gw.tls(), Http::H2).await;
    let mut h2 = tls.get_stream("/events/m2", &[]).await;
    h2.block().await; // preamble
    let before = gw.cursor().await;
    gw.publish_text("m1", "one").await;
    gw.publish_text("m2", "two").await;
    gw.publish_ok(&json!({"channels": ["m1", "m2"], "data": "three"}))
        .await;
    h1.events(3).await;
    h2.events(2).await;

    let text = gw.metrics().await;
    let m = |series: &str| metric(&text, series).unwrap_or(-1.0);
    assert_eq!(
        m("ssegate_connections_open{proto=\"h1\",tls=\"false\"}"),
        1.0
    );
    assert_eq!(
        m("ssegate_connections_open{proto=\"h2\",tls=\"true\"}"),
        1.0
    );
    assert_eq!(m("ssegate_subscriptions_open"), 3.0);
    assert_eq!(m("ssegate_events_published_total{source=\"http\"}"), 3.0);
    assert_eq!(m("ssegate_frames_written_total"), 5.0);
    assert_eq!(m("ssegate_delivery_lag_seconds_count"), 5.0);
    assert_eq!(m("ssegate_publish_duration_seconds_count"), 3.0);
    assert_eq!(m("ssegate_channels"), 2.0);
    assert_eq!(m("ssegate_history_events"), 4.0, "m1 holds 2, m2 holds 2");
    assert!(m("ssegate_history_bytes") > 0.0);
    assert!(m("ssegate_tcp_connections_open") >= 2.0);
    assert!(m("process_resident_memory_bytes") > 1e6);
    assert!(m("process_open_fds") > 0.0);
    assert!(m("process_cpu_seconds_total") >= 0.0);

    // A resume from before the three events replays the two of its channel.
    let mut resumed = gw
        .subscribe_with("/events/m2", &[("last-event-id", &before)])
        .await;
    resumed.events(2).await;
    // A stream that does not read falls behind a batch of 20 and is closed as lagged.
    let slow = gw.subscribe("/events/slow").await;
    let batch = (0..20)
        .map(|i| json!({"channel": "slow", "data": format!("{i:0>200}")}))
        .collect();
    gw.publish_batch(batch).await;
    // The lagged close must be the gateway's own: drop the stream only once it is
    // counted, or the client's close can win the race and be counted instead.
    within("the lagged close", async {
        while metric(
            &gw.metrics().await,
            "ssegate_connections_closed_total{reason=\"lagged\"}",
        )
        .unwrap_or(0.0)
            < 1.0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(slow);
    drop(h2);
    drop(tls);
    let text = within("closes counted", async {
        loop {
            let text = gw.metrics().await;
            if closed(&text, "client") + closed(&text, "lagged") >= 2.0 {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let m = |series: &str| metric(&text, series).unwrap_or(-1.0);
    assert_eq!(m("ssegate_replayed_events_total"), 2.0);
    assert_eq!(
        m("ssegate_connections_closed_total{reason=\"lagged\"}"),
        1.0
    );
    assert_eq!(
        m("ssegate_connections_opened_total{proto=\"h1\",tls=\"false\"}"),
        3.0
    );
    assert_eq!(
        m("ssegate_connections_opened_total{proto=\"h2\",tls=\"true\"}"),
        1.0
    );
    assert_eq!(
        m("ssegate_connections_open{proto=\"h2\",tls=\"true\"}"),
        0.0
    );
    assert_eq!(
        m("ssegate_subscriptions_open"),
        3.0,
        "h1 (2 channels) and the resumed one"
    );
}
