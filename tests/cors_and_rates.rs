//! CORS (preflights, allowed and refused origins on the plain HTTP/1.1 path (pushed streams) and over
//! HTTP/2, credentials, CORS off by default) and the token-bucket rate limits (publishes
//! per publisher, connections per client IP refused at accept).

mod support;

use std::net::{IpAddr, Ipv4Addr};

use http::{Method, StatusCode};
use serde_json::json;
use support::*;

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

async fn cors_gateway(credentials: bool) -> TestGateway {
    start_auth(|c| {
        c.cors.allowed_origins = vec![APP.into()];
        c.cors.allow_credentials = credentials;
    })
    .await
}

fn preflight_headers(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "GET"),
        (
            "access-control-request-headers",
            "authorization, last-event-id",
        ),
    ]
}

/// Any `access-control-*` header of an answer.
fn cors_headers(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn endpoint(gw: &TestGateway, http: Http) -> Endpoint {
    match http {
        Http::H1 => gw.plain(),
        Http::H2 => gw.tls(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_from_an_allowed_origin_and_a_refused_one() {
    let gw = cors_gateway(false).await;
    for http in [Http::H1, Http::H2] {
        for path in ["/events", "/events/chat:1", "/publish"] {
            let mut conn = Conn::open(&endpoint(&gw, http), http).await;
            let reply = conn
                .request(Method::OPTIONS, path, &preflight_headers(APP), "".into())
                .await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT, "{path} {http:?}");
            assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
            assert_eq!(
                reply.header("access-control-allow-methods"),
                Some("GET, POST, OPTIONS")
            );
            let allowed = reply
                .header("access-control-allow-headers")
                .expect("allow-headers");
            for h in ["authorization", "content-type", "last-event-id"] {
                assert!(allowed.contains(h), "{h} in {allowed}");
            }
            assert_eq!(reply.header("access-control-max-age"), Some("600"));
            assert!(
                reply
                    .headers
                    .get_all("vary")
                    .iter()
                    .all(|v| v.to_str().unwrap().eq_ignore_ascii_case("origin")),
                "{:?}",
                reply.headers
            );
            assert_eq!(reply.header("access-control-allow-credentials"), None);
            assert!(reply.body.is_empty());

            let mut conn = Conn::open(&endpoint(&gw, http), http).await;
            let refused = conn
                .request(Method::OPTIONS, path, &preflight_headers(EVIL), "".into())
                .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path} {http:?}");
            assert_eq!(refused.error_code(), "origin_refused");
            assert_eq!(cors_headers(&refused.headers), Vec::<String>::new());
        }
    }
    // Requests of the refused origin: the plain GET /events path and publish too.
    let refused = open_refused(
        &gw,
        Http::H1,
        "/events/chat:1",
        &[("origin", EVIL)],
        StatusCode::FORBIDDEN,
        "origin_refused",
    )
    .await;
    assert_eq!(cors_headers(&refused.headers), Vec::<String>::new());
    open_refused(
        &gw,
        Http::H2,
        "/events/chat:1",
        &[("origin", EVIL)],
        StatusCode::FORBIDDEN,
        "origin_refused",
    )
    .await;
    let auth = bearer(PUBLISH_KEY);
    let reply = gw
        .request(
            Method::POST,
            "/publish",
            &[("authorization", &auth), ("origin", EVIL)],
            json!({"channel": "chat:1", "data": "x"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "origin_refused");
    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "ssegate_refusals_total{reason=\"origin_refused\"}"),
        Some(9.0),
        "{text}"
    );
    // Without an Origin (same-origin, curl) nothing changes.
    let mut plain = gw.subscribe("/events/chat:1").await;
    let id = gw.publish_text("chat:1", "same origin").await;
    assert_eq!(plain.next_event().await.id, Some(id));
    assert_eq!(cors_headers(&plain.headers), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origin_gets_cors_headers_on_streams_and_answers() {
    let gw = cors_gateway(false).await;
    for http in [Http::H1, Http::H2] {
        let mut stream = open_ok(&gw, http, "/events/chat:1", &[("origin", APP)]).await;
        assert_eq!(
            stream.header("access-control-allow-origin"),
            Some(APP),
            "{http:?}"
        );
        assert_eq!(stream.header("vary"), Some("Origin"));
        assert_eq!(stream.header("access-control-allow-credentials"), None);
        let id = gw.publish_text("chat:1", "cross-origin").await;
        assert_eq!(stream.next_event().await.id, Some(id));
        // Error answers carry the header too, so the page can read them.
        let refused = open_refused(
            &gw,
            http,
            "/events/user:42",
            &[("origin", APP)],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        assert_eq!(refused.header("access-control-allow-origin"), Some(APP));
    }
    let auth = bearer(PUBLISH_KEY);
    let reply = gw
        .request(
            Method::POST,
            "/publish",
            &[("authorization", &auth), ("origin", APP)],
            json!({"channel": "chat:1", "data": "x"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        metric(
            &gw.metrics().await,
            "ssegate_refusals_total{reason=\"origin_refused\"}"
        )
        .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_credentials_adds_the_header() {
    let gw = cors_gateway(true).await;
    for http in [Http::H1, Http::H2] {
        let stream = open_ok(&gw, http, "/events/chat:1", &[("origin", APP)]).await;
        assert_eq!(stream.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            stream.header("access-control-allow-credentials"),
            Some("true"),
            "{http:?}"
        );
        let mut conn = Conn::open(&endpoint(&gw, http), http).await;
        let reply = conn
            .request(
                Method::OPTIONS,
                "/events",
                &preflight_headers(APP),
                "".into(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_allowed_origins_means_no_cors_headers() {
    let gw = start_auth(|c| assert!(c.cors.allowed_origins.is_empty())).await;
    for http in [Http::H1, Http::H2] {
        for origin in [APP, EVIL] {
            let stream = open_ok(&gw, http, "/events/chat:1", &[("origin", origin)]).await;
            assert_eq!(
                cors_headers(&stream.headers),
                Vec::<String>::new(),
                "{http:?}"
            );
            let refused = open_refused(
                &gw,
                http,
                "/events/user:42",
                &[("origin", origin)],
                StatusCode::UNAUTHORIZED,
                "token_missing",
            )
            .await;
            assert_eq!(cors_headers(&refused.headers), Vec::<String>::new());
            let mut conn = Conn::open(&endpoint(&gw, http), http).await;
            let reply = conn
                .request(
                    Method::OPTIONS,
                    "/events",
                    &preflight_headers(origin),
                    "".into(),
                )
                .await;
            assert_ne!(
                reply.status,
                StatusCode::NO_CONTENT,
                "no preflight is granted"
            );
            assert_eq!(cors_headers(&reply.headers), Vec::<String>::new());
        }
    }
    let auth = bearer(PUBLISH_KEY);
    let reply = gw
        .request(
            Method::POST,
            "/publish",
            &[("authorization", &auth), ("origin", APP)],
            json!({"channel": "chat:1", "data": "x"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(cors_headers(&reply.headers), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_past_the_burst_get_429_per_publisher() {
    let gw = start_auth(|c| {
        c.rate_limits.publishes_per_second = Some(1.0);
        c.rate_limits.publish_burst = 2;
        c.publish.keys.push(ssegate::config::KeyConfig {
            name: "second".into(),
            value: Some("test-publish-key-2".into()),
            env: None,
            default: None,
        });
    })
    .await;
    let body = json!({"channel": "chat:1", "data": "x"});
    let first = bearer(PUBLISH_KEY);
    let second = bearer("test-publish-key-2");
    let bot = bearer(&hs256(SECRET, &claims_with("bot", &[], &["chat:*"])));
    let head = gw.cursor().await;
    // One kept-alive connection, requests back to back.
    let mut conn = Conn::open(&gw.plain(), Http::H1).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = conn
            .request(
                Method::POST,
                "/publish",
                &[
                    ("authorization", &first),
                    ("content-type", "application/json"),
                ],
                body.to_string().into(),
            )
            .await;
        statuses.push(reply.status);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.error_code(), "rate_limited");
            let retry: u64 = reply
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .expect("whole seconds");
            assert!(retry >= 1, "Retry-After {retry}");
        }
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another key and a token publisher each have their own bucket.
    for auth in [&second, &second, &bot, &bot] {
        let reply = conn
            .request(
                Method::POST,
                "/publish",
                &[
                    ("authorization", auth),
                    ("content-type", "application/json"),
                ],
                body.to_string().into(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let reply = conn
        .request(
            Method::POST,
            "/publish",
            &[
                ("authorization", &second),
                ("content-type", "application/json"),
            ],
            body.to_string().into(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "rate_limited");
    assert!(reply.header("retry-after").is_some());
    assert_eq!(
        seq(&gw.cursor().await),
        seq(&head) + 6,
        "refused ones were not published"
    );
    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "ssegate_refusals_total{reason=\"rate_limited\"}"),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_burst_are_refused_per_ip() {
    let gw = start_auth(|c| {
        c.rate_limits.connections_per_second = Some(1.0);
        c.rate_limits.connection_burst = 2;
    })
    .await;
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let health = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n";
    let mut one = connect_from(local, gw.plain_addr).await;
    let mut two = connect_from(local, gw.plain_addr).await;
    let mut three = connect_from(local, gw.plain_addr).await;
    assert_eq!(raw_exchange(&mut one, health).await.status, StatusCode::OK);
    assert_eq!(raw_exchange(&mut two, health).await.status, StatusCode::OK);
    let refused = raw_exchange(&mut three, health).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.error_code(), "rate_limited");
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Another source address has its own bucket.
    let mut elsewhere = connect_from(other, gw.plain_addr).await;
    assert_eq!(
        raw_exchange(&mut elsewhere, health).await.status,
        StatusCode::OK
    );
    // The refusal is counted (read from the other address: 127.0.0.1 is still out of
    // tokens).
    let mut metrics_conn = connect_from(other, gw.plain_addr).await;
    let reply = raw_exchange(
        &mut metrics_conn,
        b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        metric(
            &reply.text(),
            "ssegate_refusals_total{reason=\"rate_limited\"}"
        ),
        Some(1.0),
        "{}",
        reply.text()
    );
    // The first two connections keep working (kept alive).
    assert_eq!(raw_exchange(&mut one, health).await.status, StatusCode::OK);
}

/// A configured rate may be any positive number; at a tiny one the wait for the next
/// token is longer than a `Duration` holds. The refusal still comes, as a 429 with a
/// bounded `Retry-After`, for publishes and for connections, and the gateway stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_rate_is_a_bounded_wait_not_a_panic() {
    let gw = start_auth(|c| {
        c.rate_limits.publishes_per_second = Some(1e-300);
        c.rate_limits.publish_burst = 1;
        c.rate_limits.connections_per_second = Some(1e-300);
        c.rate_limits.connection_burst = 1;
    })
    .await;
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut conn = conn_from(local, gw.plain_addr).await;
    let body = json!({"channel": "chat:1", "data": "x"}).to_string();
    let headers = [
        ("authorization", bearer(PUBLISH_KEY)),
        ("content-type", "application/json".to_string()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = conn
        .request(Method::POST, "/publish", &headers, body.clone().into())
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let second = conn
        .request(Method::POST, "/publish", &headers, body.into())
        .await;
    assert_eq!(
        (second.status, second.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        second.text()
    );
    assert_eq!(second.header("retry-after"), Some("86400"));
    // The second connection from 127.0.0.1 is over the connection rate.
    let health = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n";
    let mut again = connect_from(local, gw.plain_addr).await;
    let refused = raw_exchange(&mut again, health).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    // The listener still accepts: another address gets its own first token.
    let mut elsewhere = connect_from(other, gw.plain_addr).await;
    assert_eq!(
        raw_exchange(&mut elsewhere, health).await.status,
        StatusCode::OK
    );
}
