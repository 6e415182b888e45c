//! Channel rules applied to tokens: the shipped `user:{sub}` private rule, a token-only
//! `workspace:*` rule opened by grants, grants on private channels, a private
//! `default_subscribe`, all-or-nothing multi-channel subscriptions, the three ways a
//! token travels (header, query parameter, cookie) over the plain HTTP/1.1 path (pushed streams) and over
//! HTTP/2 with TLS; publisher tokens with `ssegate.publish` grants and `publish: false`
//! rules; and `exclude_subject`.

mod support;

use http::StatusCode;
use serde_json::json;
use ssegate::config::{Access, ChannelRule};
use support::*;

/// The shipped rule, a token-only `workspace:*`, and `system:*` closed to publishers.
async fn gateway() -> TestGateway {
    start_auth(|c| {
        assert_eq!(c.channels.len(), 1, "the shipped default rule");
        assert_eq!(c.channels[0].pattern, "user:{sub}");
        assert_eq!(c.channels[0].subscribe, Access::Token);
        c.channels.push(ChannelRule {
            subscribe: Access::Token,
            ..ChannelRule::new("workspace:*")
        });
        c.channels.push(ChannelRule {
            publish: false,
            ..ChannelRule::new("system:*")
        });
        c.auth.cookie = Some("ssegate_token".into());
    })
    .await
}

async fn assert_kinds(gw: &TestGateway, expected: &[(&str, f64)]) {
    let text = gw.metrics().await;
    for (kind, n) in expected {
        let series = format!("ssegate_auth_failures_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&text, &series), Some(*n), "{series}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_user_rule_binds_the_subject() {
    let gw = gateway().await;
    let t42 = bearer(&token_for("42"));
    for http in [Http::H1, Http::H2] {
        let mut mine = open_ok(&gw, http, "/events/user:42", &[("authorization", &t42)]).await;
        open_refused(
            &gw,
            http,
            "/events/user:7",
            &[("authorization", &t42)],
            StatusCode::FORBIDDEN,
            "channel_forbidden",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events/user:42",
            &[],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        // `{sub}` binds the whole subject: user:42 is not user:420 nor user:4.
        for other in ["/events/user:420", "/events/user:4"] {
            open_refused(
                &gw,
                http,
                other,
                &[("authorization", &t42)],
                StatusCode::FORBIDDEN,
                "channel_forbidden",
            )
            .await;
        }
        let id = gw.publish_text("user:42", "hello 42").await;
        gw.publish_text("user:7", "not for 42").await;
        let id2 = gw.publish_text("user:42", "again 42").await;
        assert_eq!(
            mine.events(2)
                .await
                .iter()
                .map(|b| b.triple())
                .collect::<Vec<_>>(),
            vec![
                (id, None, "hello 42".to_string()),
                (id2, None, "again 42".to_string())
            ],
            "{http:?}"
        );
    }
    // A token without a subject opens no `{sub}` channel.
    let anonymous = bearer(&hs256(SECRET, &json!({"exp": now() + 600})));
    open_refused(
        &gw,
        Http::H1,
        "/events/user:42",
        &[("authorization", &anonymous)],
        StatusCode::FORBIDDEN,
        "channel_forbidden",
    )
    .await;
    assert_kinds(
        &gw,
        &[
            ("channel_forbidden", 7.0),
            ("token_missing", 2.0),
            ("token_malformed", 0.0),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_channels_need_no_token_but_a_sent_token_is_verified() {
    let gw = gateway().await;
    for http in [Http::H1, Http::H2] {
        let mut anyone = open_ok(&gw, http, "/events/news", &[]).await;
        let id = gw.publish_text("news", "public").await;
        assert_eq!(
            anyone.next_event().await.triple(),
            (id, None, "public".into())
        );
        // A valid token on a public channel is fine; an invalid one is 401.
        let t = bearer(&token_for("42"));
        open_ok(&gw, http, "/events/news", &[("authorization", &t)]).await;
        let bad = bearer(&hs256(WRONG_SECRET, &claims("42")));
        open_refused(
            &gw,
            http,
            "/events/news",
            &[("authorization", &bad)],
            StatusCode::UNAUTHORIZED,
            "token_invalid",
        )
        .await;
    }
    assert_kinds(&gw, &[("token_bad_signature", 2.0), ("token_missing", 0.0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_open_token_only_and_private_channels() {
    let gw = gateway().await;
    let member = bearer(&hs256(
        SECRET,
        &claims_with("42", &["workspace:1", "user:7"], &[]),
    ));
    let outsider = bearer(&token_for("42"));
    let wildcard = bearer(&hs256(SECRET, &claims_with("9", &["workspace:*"], &[])));
    for http in [Http::H1, Http::H2] {
        let mut ws = open_ok(
            &gw,
            http,
            "/events/workspace:1",
            &[("authorization", &member)],
        )
        .await;
        let mut u7 = open_ok(&gw, http, "/events/user:7", &[("authorization", &member)]).await;
        let mut all = open_ok(
            &gw,
            http,
            "/events/workspace:2",
            &[("authorization", &wildcard)],
        )
        .await;
        // Its own user channel still opens by the subject binding.
        open_ok(&gw, http, "/events/user:42", &[("authorization", &member)]).await;
        open_refused(
            &gw,
            http,
            "/events/workspace:2",
            &[("authorization", &member)],
            StatusCode::FORBIDDEN,
            "channel_forbidden",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events/workspace:1",
            &[("authorization", &outsider)],
            StatusCode::FORBIDDEN,
            "channel_forbidden",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events/workspace:1",
            &[],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        let a = gw.publish_text("workspace:1", "ws1").await;
        let b = gw.publish_text("user:7", "u7").await;
        let c = gw.publish_text("workspace:2", "ws2").await;
        assert_eq!(ws.next_event().await.triple(), (a, None, "ws1".into()));
        assert_eq!(u7.next_event().await.triple(), (b, None, "u7".into()));
        assert_eq!(all.next_event().await.triple(), (c, None, "ws2".into()));
    }
    assert_kinds(&gw, &[("channel_forbidden", 4.0), ("token_missing", 2.0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_subscribe_token_makes_unmatched_channels_private() {
    let gw = start_auth(|c| {
        c.auth.default_subscribe = Access::Token;
        c.channels.push(ChannelRule::new("lobby:*")); // explicitly public
    })
    .await;
    let plain = bearer(&token_for("42"));
    let granted = bearer(&hs256(SECRET, &claims_with("42", &["news"], &[])));
    for http in [Http::H1, Http::H2] {
        open_refused(
            &gw,
            http,
            "/events/news",
            &[],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events/news",
            &[("authorization", &plain)],
            StatusCode::FORBIDDEN,
            "channel_forbidden",
        )
        .await;
        let mut news = open_ok(&gw, http, "/events/news", &[("authorization", &granted)]).await;
        let mut lobby = open_ok(&gw, http, "/events/lobby:1", &[]).await;
        open_ok(&gw, http, "/events/user:42", &[("authorization", &plain)]).await;
        let a = gw.publish_text("news", "n").await;
        let b = gw.publish_text("lobby:1", "l").await;
        assert_eq!(news.next_event().await.triple(), (a, None, "n".into()));
        assert_eq!(lobby.next_event().await.triple(), (b, None, "l".into()));
    }
    assert_kinds(&gw, &[("channel_forbidden", 2.0), ("token_missing", 2.0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_forbidden_channel_refuses_the_whole_subscription() {
    let gw = gateway().await;
    let t42 = bearer(&token_for("42"));
    for http in [Http::H1, Http::H2] {
        open_refused(
            &gw,
            http,
            "/events?channel=user:42&channel=news&channel=user:7",
            &[("authorization", &t42)],
            StatusCode::FORBIDDEN,
            "channel_forbidden",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events?channel=news&channel=user:42",
            &[],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
    }
    let text = gw.metrics().await;
    for series in [
        "ssegate_subscriptions_open",
        "ssegate_channels",
        "ssegate_connections_open{proto=\"h1\",tls=\"false\"}",
        "ssegate_connections_open{proto=\"h2\",tls=\"true\"}",
    ] {
        assert_eq!(
            metric(&text, series).unwrap_or(0.0),
            0.0,
            "{series}\n{text}"
        );
    }
    // Nobody listens: a publish to each reaches no stream.
    for ch in ["user:42", "news", "user:7"] {
        gw.publish_text(ch, "to nobody").await;
    }
    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "ssegate_frames_written_total"),
        Some(0.0),
        "{text}"
    );
    // The allowed pair works together.
    let mut both = open_ok(
        &gw,
        Http::H1,
        "/events?channel=user:42&channel=news",
        &[("authorization", &t42)],
    )
    .await;
    let a = gw.publish_text("news", "n").await;
    let b = gw.publish_text("user:42", "u").await;
    let got: Vec<_> = both.events(2).await.iter().map(|e| e.triple()).collect();
    assert_eq!(got, vec![(a, None, "n".into()), (b, None, "u".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_by_header_query_or_cookie_on_both_paths() {
    let gw = gateway().await;
    let t42 = token_for("42");
    let header_auth = bearer(&t42);
    let cookie = format!("theme=dark; ssegate_token={t42}; other=1");
    let query_path = format!("/events/user:42?token={t42}");
    for http in [Http::H1, Http::H2] {
        let mut by_header = open_ok(
            &gw,
            http,
            "/events/user:42",
            &[("authorization", &header_auth)],
        )
        .await;
        let mut by_query = open_ok(&gw, http, &query_path, &[]).await;
        let mut by_cookie = open_ok(&gw, http, "/events/user:42", &[("cookie", &cookie)]).await;
        let id = gw.publish_text("user:42", &format!("via {http:?}")).await;
        for (how, stream) in [
            ("header", &mut by_header),
            ("query", &mut by_query),
            ("cookie", &mut by_cookie),
        ] {
            assert_eq!(
                stream.next_event().await.triple(),
                (id.clone(), None, format!("via {http:?}")),
                "{how} over {http:?}"
            );
        }
        // Each way carries a token that is checked: user:7 stays closed.
        for (path, headers) in [
            (
                "/events/user:7",
                vec![("authorization", header_auth.as_str())],
            ),
            (&*format!("/events/user:7?token={t42}"), vec![]),
            ("/events/user:7", vec![("cookie", cookie.as_str())]),
        ] {
            open_refused(
                &gw,
                http,
                path,
                &headers,
                StatusCode::FORBIDDEN,
                "channel_forbidden",
            )
            .await;
        }
        // A bad token in the query or the cookie is 401 token_invalid.
        open_refused(
            &gw,
            http,
            "/events/user:42?token=garbage",
            &[],
            StatusCode::UNAUTHORIZED,
            "token_invalid",
        )
        .await;
        open_refused(
            &gw,
            http,
            "/events/user:42",
            &[("cookie", "ssegate_token=garbage")],
            StatusCode::UNAUTHORIZED,
            "token_invalid",
        )
        .await;
        // Another cookie's name carries nothing.
        open_refused(
            &gw,
            http,
            "/events/user:42",
            &[("cookie", &format!("session={t42}"))],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
    }
    assert_kinds(
        &gw,
        &[
            ("channel_forbidden", 6.0),
            ("token_malformed", 4.0),
            ("token_missing", 2.0),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_and_query_parameter_follow_the_config() {
    // No cookie configured: a cookie carries no token. A renamed query parameter.
    let gw = start_auth(|c| c.auth.token_query_parameter = "access_token".into()).await;
    let t42 = token_for("42");
    for http in [Http::H1, Http::H2] {
        open_refused(
            &gw,
            http,
            "/events/user:42",
            &[("cookie", &format!("ssegate_token={t42}"))],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        open_refused(
            &gw,
            http,
            &format!("/events/user:42?token={t42}"),
            &[],
            StatusCode::UNAUTHORIZED,
            "token_missing",
        )
        .await;
        open_ok(
            &gw,
            http,
            &format!("/events/user:42?access_token={t42}"),
            &[],
        )
        .await;
    }
    assert_kinds(&gw, &[("token_missing", 4.0)]).await;
}

// ---------------------------------------------------------------------------------------
// Publishers
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_tokens_are_limited_to_their_grants() {
    let gw = gateway().await;
    let chat_bot = bearer(&hs256(SECRET, &claims_with("bot", &[], &["chat:*"])));
    let mut chat = gw.subscribe("/events/chat:1").await;
    let t7 = bearer(&token_for("7"));
    let mut user7 = open_ok(&gw, Http::H1, "/events/user:7", &[("authorization", &t7)]).await;

    let ok = publish_as(&gw, &chat_bot, &json!({"channel": "chat:1", "data": "hi"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let id = ok.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        chat.next_event().await.triple(),
        (id.clone(), None, "hi".into())
    );

    let head = gw.cursor().await;
    let published = "ssegate_events_published_total{source=\"http\"}";
    let before = metric(&gw.metrics().await, published).unwrap_or(0.0);
    for body in [
        json!({"channel": "user:7", "data": "no"}),
        json!({"channels": ["chat:1", "user:7"], "data": "no"}),
        json!({"events": [
            {"channel": "chat:1", "data": "first of a mixed batch"},
            {"channel": "user:7", "data": "second of a mixed batch"},
        ]}),
    ] {
        let reply = publish_as(&gw, &chat_bot, &body).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::FORBIDDEN, "channel_forbidden"),
            "{body}"
        );
    }
    assert_eq!(gw.cursor().await, head, "nothing was published");
    assert_eq!(
        metric(&gw.metrics().await, published).unwrap_or(0.0),
        before
    );
    // Nothing reached either stream: the next event each sees is the next publish.
    let next = gw.publish_text("chat:1", "next").await;
    assert_eq!(seq(&next), seq(&head) + 1);
    assert_eq!(
        chat.next_event().await.triple(),
        (next, None, "next".into())
    );
    let to7 = gw.publish_text("user:7", "for 7").await;
    assert_eq!(
        user7.next_event().await.triple(),
        (to7, None, "for 7".into())
    );

    // A token without publish grants publishes nowhere.
    let reader = bearer(&hs256(SECRET, &claims_with("42", &["chat:*"], &[])));
    let reply = publish_as(&gw, &reader, &json!({"channel": "chat:1", "data": "x"})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "channel_forbidden");
    assert_kinds(&gw, &[("channel_forbidden", 4.0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_false_refuses_keys_and_tokens() {
    let gw = gateway().await;
    let key = bearer(PUBLISH_KEY);
    let everything = bearer(&hs256(SECRET, &claims_with("bot", &[], &["*"])));
    let head = gw.cursor().await;
    for auth in [&key, &everything] {
        for body in [
            json!({"channel": "system:alerts", "data": "no"}),
            json!({"events": [
                {"channel": "chat:1", "data": "ok alone"},
                {"channel": "system:x", "data": "no"},
            ]}),
        ] {
            let reply = publish_as(&gw, auth, &body).await;
            assert_eq!(
                (reply.status, reply.error_code().as_str()),
                (StatusCode::FORBIDDEN, "publish_forbidden"),
                "{body}"
            );
        }
    }
    assert_eq!(gw.cursor().await, head, "nothing was published");
    // Subscribing to it is still fine (the rule is public for readers).
    open_ok(&gw, Http::H1, "/events/system:alerts", &[]).await;
    // The all-granting token publishes elsewhere.
    let reply = publish_as(&gw, &everything, &json!({"channel": "chat:1", "data": "y"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_kinds(&gw, &[("publish_forbidden", 4.0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_publisher_tokens_are_401() {
    let gw = gateway().await;
    let head = gw.cursor().await;
    let body = json!({"channel": "chat:1", "data": "x"});
    let grants = claims_with("bot", &[], &["chat:*"]);
    let cases = [
        (
            bearer(&hs256(WRONG_SECRET, &grants)),
            "token_invalid",
            "token_bad_signature",
        ),
        (
            bearer(&hs256(
                SECRET,
                &json!({"sub": "bot", "exp": now() - 120, "ssegate": {"publish": ["chat:*"]}}),
            )),
            "token_expired",
            "token_expired",
        ),
        (
            bearer(&alg_none(&grants)),
            "token_invalid",
            "token_malformed",
        ),
        (
            "Bearer not-a-key".to_string(),
            "publish_key_invalid",
            "publish_key_invalid",
        ),
    ];
    for (auth, code, kind) in &cases {
        let reply = publish_as(&gw, auth, &body).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::UNAUTHORIZED, *code),
            "{kind}"
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let reply = gw
        .request(http::Method::POST, "/publish", &[], body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "publish_key_missing");
    assert_eq!(gw.cursor().await, head, "nothing was published");
    assert_kinds(
        &gw,
        &[
            ("token_bad_signature", 1.0),
            ("token_expired", 1.0),
            ("token_malformed", 1.0),
            ("publish_key_invalid", 1.0),
            ("publish_key_missing", 1.0),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// exclude_subject
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_subject_skips_the_sender_only() {
    let gw = gateway().await;
    let ta = bearer(&token_for("a"));
    let tb = bearer(&token_for("b"));
    let mut a = open_ok(&gw, Http::H1, "/events/room:1", &[("authorization", &ta)]).await;
    let mut b = open_ok(&gw, Http::H2, "/events/room:1", &[("authorization", &tb)]).await;
    let start = a
        .last_event_id()
        .expect("the preamble's position")
        .to_string();

    let excluded = gw
        .publish_ok(&json!({"channel": "room:1", "data": "from a", "exclude_subject": "a"}))
        .await;
    assert_eq!(
        b.next_event().await.triple(),
        (excluded.clone(), None, "from a".into())
    );
    let normal = gw.publish_text("room:1", "to all").await;
    assert_eq!(seq(&normal), seq(&excluded) + 1);
    // a's first event is the normal one: it moved past the excluded one.
    let first = a.next_event().await;
    assert_eq!(first.triple(), (normal.clone(), None, "to all".into()));
    assert_eq!(a.last_event_id(), Some(normal.as_str()));
    assert_eq!(
        b.next_event().await.triple(),
        (normal.clone(), None, "to all".into())
    );
    drop(a);

    // a reconnects with its last id: nothing is replayed, the next live event comes.
    let mut again = open_ok(
        &gw,
        Http::H1,
        "/events/room:1",
        &[("authorization", &ta), ("last-event-id", &normal)],
    )
    .await;
    let live = gw.publish_text("room:1", "live").await;
    assert_eq!(
        again.next_event().await.triple(),
        (live.clone(), None, "live".into())
    );
    drop(again);

    // Even resuming from before the excluded event, a's replay skips it (b's does not).
    let mut replay_a = open_ok(
        &gw,
        Http::H2,
        "/events/room:1",
        &[("authorization", &ta), ("last-event-id", &start)],
    )
    .await;
    let mut replay_b = open_ok(
        &gw,
        Http::H1,
        "/events/room:1",
        &[("authorization", &tb), ("last-event-id", &start)],
    )
    .await;
    let ids = |blocks: Vec<SseBlock>| {
        blocks
            .into_iter()
            .map(|b| b.id.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(replay_a.events(2).await),
        vec![normal.clone(), live.clone()]
    );
    assert_eq!(ids(replay_b.events(3).await), vec![excluded, normal, live]);
    // An anonymous reader is not "a": it gets excluded events.
    let mut anon = gw.subscribe("/events/room:1").await;
    let x = gw
        .publish_ok(&json!({"channel": "room:1", "data": "x", "exclude_subject": "a"}))
        .await;
    assert_eq!(anon.next_event().await.id, Some(x));
}

/// `{sub}` names the token's subject; a token without `sub` names no one, so its
/// `user:{sub}` grants open nothing: not for reading (the shipped private rule, and a
/// public channel family opened by grant alone) and not for publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_in_a_grant_matches_nothing_without_a_subject() {
    let gw = start_auth(|c| {
        c.channels.push(ChannelRule {
            subscribe: Access::Token,
            ..ChannelRule::new("team:*")
        });
    })
    .await;
    let subjectless = hs256(
        SECRET,
        &json!({
            "exp": now() + 600,
            "ssegate": {"subscribe": ["user:{sub}", "team:{sub}"], "publish": ["user:{sub}"]},
        }),
    );
    let auth = bearer(&subjectless);
    for http in [Http::H1, Http::H2] {
        for path in ["/events/user:42", "/events/user:", "/events/team:7"] {
            open_refused(
                &gw,
                http,
                path,
                &[("authorization", &auth)],
                StatusCode::FORBIDDEN,
                "channel_forbidden",
            )
            .await;
        }
    }
    let head = gw.cursor().await;
    let reply = publish_as(&gw, &auth, &json!({"channel": "user:42", "data": "forged"})).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::FORBIDDEN, "channel_forbidden"),
        "{}",
        reply.text()
    );
    assert_eq!(gw.cursor().await, head, "nothing was published");
    // The same grants with a subject open that subject's channels, and only those.
    let named = hs256(
        SECRET,
        &claims_with("42", &["user:{sub}", "team:{sub}"], &["user:{sub}"]),
    );
    let auth = bearer(&named);
    open_ok(
        &gw,
        Http::H1,
        "/events/team:42",
        &[("authorization", &auth)],
    )
    .await;
    let reply = publish_as(&gw, &auth, &json!({"channel": "user:42", "data": "mine"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = publish_as(
        &gw,
        &auth,
        &json!({"channel": "user:7", "data": "not mine"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
}

/// A browser sends its cookie with every request, stale or not: a cookie token that
/// fails verification does not block a public channel, while a channel that needs a
/// token answers with the cookie token's own failure (`token_expired` told apart).
/// A bad token in the header or the query parameter is still a 401 on any channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cookie_does_not_block_a_public_channel() {
    let gw = gateway().await;
    let expired = hs256(SECRET, &json!({"sub": "42", "exp": now() - 120}));
    let stale = format!("ssegate_token={expired}");
    for http in [Http::H1, Http::H2] {
        for cookie in [stale.as_str(), "ssegate_token=garbage"] {
            let mut stream = open_ok(&gw, http, "/events/news", &[("cookie", cookie)]).await;
            let id = gw.publish_text("news", "for everyone").await;
            assert_eq!(
                stream.next_event().await.triple(),
                (id, None, "for everyone".into()),
                "{http:?} {cookie}"
            );
        }
        open_refused(
            &gw,
            http,
            "/events/user:42",
            &[("cookie", &stale)],
            StatusCode::UNAUTHORIZED,
            "token_expired",
        )
        .await;
        // Public and private together: the private one needs the token that failed.
        open_refused(
            &gw,
            http,
            "/events/news?channel=user:42",
            &[("cookie", "ssegate_token=garbage")],
            StatusCode::UNAUTHORIZED,
            "token_invalid",
        )
        .await;
        let header = bearer(&expired);
        open_refused(
            &gw,
            http,
            "/events/news",
            &[("authorization", &header)],
            StatusCode::UNAUTHORIZED,
            "token_expired",
        )
        .await;
        open_refused(
            &gw,
            http,
            &format!("/events/news?token={expired}"),
            &[],
            StatusCode::UNAUTHORIZED,
            "token_expired",
        )
        .await;
    }
}

/// Errors answered before a stream are logged, one line each with the status, the
/// code and the auth kind, never the token, the key or the URL; through the same
/// budget as the stream lines (a budget of 0 logs none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_within_the_budget_without_secrets() {
    const QUERY_TOKEN: &str = "query-token-that-must-not-be-logged";
    const BAD_KEY: &str = "publish-key-that-must-not-be-logged";
    let refuse_some = |bin: &Binary| {
        let endpoint = bin.endpoint();
        async move {
            let mut conn = Conn::open(&endpoint, Http::H1).await;
            let reply = conn.get_stream("/events/user:42", &[]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            let mut conn = Conn::open(&endpoint, Http::H1).await;
            let path = format!("/events/news?token={QUERY_TOKEN}");
            let reply = conn.get_stream(&path, &[]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            let mut conn = Conn::open(&endpoint, Http::H1).await;
            let reply = conn.get_stream("/events/bad%20name", &[]).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            let reply = publish_to(&endpoint, &format!("Bearer {BAD_KEY}")).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
    };
    let bin = Binary::start("log:\n  level: info\n").await;
    refuse_some(&bin).await;
    let expected = [
        ("status=401", "code=\"token_missing\""),
        ("status=401", "code=\"token_invalid\""),
        ("status=400", "code=\"channel_invalid\""),
        ("status=401", "code=\"publish_key_invalid\""),
    ];
    eventually(
        "four refusal lines",
        std::time::Duration::from_secs(20),
        || {
            let log = bin.log();
            async move { log.matches("request refused").count() >= expected.len() }
        },
    )
    .await;
    let log = bin.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .collect();
    for (status, code) in expected {
        assert!(
            lines.iter().any(|l| l.contains(status) && l.contains(code)),
            "a line with {status} {code}: {lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("kind=\"token_malformed\"")),
        "{lines:#?}"
    );
    for secret in [QUERY_TOKEN, BAD_KEY, "token=", "/events"] {
        assert!(!log.contains(secret), "{secret} is in the log: {log}");
    }

    // No budget, no lines: the refusals are answered and counted all the same.
    let quiet = Binary::start("log:\n  level: info\n  max_connection_lines_per_second: 0\n").await;
    refuse_some(&quiet).await;
    let text = quiet.metrics().await;
    assert_eq!(auth_failures(&text, "token_missing"), 1.0, "{text}");
    assert!(!quiet.log().contains("request refused"), "{}", quiet.log());
}

/// `POST /publish` of one small event with `authorization`, on a fresh connection.
async fn publish_to(endpoint: &Endpoint, authorization: &str) -> Reply {
    let mut conn = Conn::open(endpoint, Http::H1).await;
    conn.request(
        http::Method::POST,
        "/publish",
        &[
            ("authorization", authorization),
            ("content-type", "application/json"),
        ],
        json!({"channel": "news", "data": "x"}).to_string().into(),
    )
    .await
}
