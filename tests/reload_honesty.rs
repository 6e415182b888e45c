//! SIGHUP is honest about what it cannot change: settings read only at start-up
//! (listeners, history bounds, …) keep their running values in `/admin/config`, stay in
//! force, and the log names the fields that need a restart; the rest is reloaded.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

const ADMIN_KEY: &str = "test-admin-key-reload";

fn rest(max_events: usize, max_body_bytes: usize) -> String {
    format!(
        "admin:\n  keys:\n    - name: ops\n      value: {ADMIN_KEY}\n\
         history:\n  max_events: {max_events}\n\
         limits:\n  max_body_bytes: {max_body_bytes}\n"
    )
}

async fn admin_config(gw: &Binary) -> Value {
    let auth = format!("Bearer {ADMIN_KEY}");
    let reply = gw
        .request(
            Method::GET,
            "/admin/config",
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_shows_what_is_in_force_and_names_what_needs_a_restart() {
    let gw = Binary::start(&rest(100, 100_000)).await;
    let before = admin_config(&gw).await;
    assert_eq!(before["history"]["max_events"], 100);

    // A new file: another listener port and history bound (restart only), another
    // body limit (reloadable).
    let other_port = free_port();
    std::fs::write(
        &gw.config_path,
        binary_config(other_port, PUBLISH_KEY, &rest(5, 200_000)),
    )
    .expect("rewrite the config");
    gw.signal("HUP");
    let mut after = Value::Null;
    for _ in 0..500 {
        after = admin_config(&gw).await;
        if after["limits"]["max_body_bytes"] == 200_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        after["limits"]["max_body_bytes"],
        200_000,
        "the reloadable part is in force: {}",
        gw.log()
    );
    // What needs a restart shows its running value.
    assert_eq!(after["history"]["max_events"], 100, "{after}");
    assert_eq!(after["listeners"], before["listeners"], "{after}");

    // And it is what is in force: 10 events stay in history, not 5.
    for i in 0..10 {
        let reply = gw
            .publish_with(PUBLISH_KEY, &json!({"channel": "kept", "data": i}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let auth = format!("Bearer {ADMIN_KEY}");
    let channel = gw
        .request(
            Method::GET,
            "/admin/channels/kept",
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .json();
    assert_eq!(channel["history"]["events"], 10, "{channel}");

    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("need a restart"))
        .unwrap_or_else(|| panic!("a log line about the restart: {log}"));
    for field in ["history.max_events", "listeners[plain].address"] {
        assert!(line.contains(field), "{field} named in: {line}");
    }
    assert!(
        !line.contains("max_body_bytes"),
        "reloaded, not named: {line}"
    );
}
