//! Subscriber tokens (JWT): every way a token is refused — 401 `token_expired` or else
//! `token_invalid` to the client, the precise kind in `ssegate_auth_failures_total{kind}` — and every way one
//! is accepted: the leeway, `aud` / `iss`, key rotation by `kid`, RS256 and ES256 with
//! public keys, no algorithm confusion (an RSA public key is never an HMAC secret, no
//! `alg: none`), and an open stream that ends when its token expires.

mod support;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use ssegate::config::JwtAlgorithm;
use support::*;

/// Every token kind the gateway counts, for "nothing else was counted" checks.
const TOKEN_KINDS: [&str; 7] = [
    "token_malformed",
    "token_unknown_key",
    "token_bad_signature",
    "token_expired",
    "token_not_yet_valid",
    "token_wrong_audience",
    "token_wrong_issuer",
];

/// Asserts the token kinds counted so far: `expected` (kind, count), every other 0.
async fn assert_token_failures(gw: &TestGateway, expected: &[(&str, f64)]) {
    let text = gw.metrics().await;
    for kind in TOKEN_KINDS {
        let want = expected
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, n)| *n);
        let series = format!("ssegate_auth_failures_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&text, &series), Some(want), "{series}\n{text}");
    }
}

/// Opens `user:<sub>` with `token` as a bearer header over `http`; it must be refused
/// with 401 token_invalid.
async fn refused(gw: &TestGateway, http: Http, token: &str, what: &str) {
    refused_as(gw, http, token, what, "token_invalid").await;
}

/// Opens `user:<sub>` with `token` as a bearer header over `http`; it must be refused
/// with 401 and `code` (`token_expired`, or `token_invalid` that tells nothing more).
async fn refused_as(gw: &TestGateway, http: Http, token: &str, what: &str, code: &str) {
    let auth = bearer(token);
    let reply = open_refused(
        gw,
        http,
        "/events/user:42",
        &[("authorization", &auth)],
        StatusCode::UNAUTHORIZED,
        code,
    )
    .await;
    let body = reply.text();
    if code == "token_invalid" {
        assert!(
            !body.contains("expired") && !body.contains("signature"),
            "{what}: the client hears only token_invalid: {body}"
        );
    }
}

/// Opens `user:<sub>` with `token` over `http` and expects 200 and a live event.
async fn accepted(gw: &TestGateway, http: Http, token: &str, sub: &str, what: &str) {
    let auth = bearer(token);
    let path = format!("/events/user:{sub}");
    let mut stream = open_ok(gw, http, &path, &[("authorization", &auth)]).await;
    let id = gw
        .publish_text(&format!("user:{sub}"), &format!("for {what}"))
        .await;
    assert_eq!(
        stream.next_event().await.triple(),
        (id, None, format!("for {what}")),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_token_is_401_expired_or_invalid_counted_by_kind() {
    let gw = start_auth(|_| {}).await; // leeway 30 s
    let t = now();
    let expired = hs256(SECRET, &json!({"sub": "42", "exp": t - 120}));
    let wrong_key = hs256(WRONG_SECRET, &claims("42"));
    let early = hs256(
        SECRET,
        &json!({"sub": "42", "exp": t + 600, "nbf": t + 300}),
    );
    let unsigned = alg_none(&claims("42"));
    let no_exp = hs256(SECRET, &json!({"sub": "42"}));
    // A valid token's header and claims with the signature of another token.
    let good = token_for("42");
    let other = token_for("43");
    let spliced = format!(
        "{}.{}",
        good.rsplit_once('.').unwrap().0,
        other.rsplit_once('.').unwrap().1
    );
    for http in [Http::H1, Http::H2] {
        refused_as(&gw, http, &expired, "expired", "token_expired").await;
        refused(&gw, http, &wrong_key, "signed with another secret").await;
        refused(&gw, http, &spliced, "a spliced signature").await;
        refused(&gw, http, &early, "nbf ahead").await;
        refused(&gw, http, &unsigned, "alg none").await;
        refused(&gw, http, "garbage", "garbage").await;
        refused(&gw, http, "a.b.c", "three garbage parts").await;
        refused(&gw, http, &no_exp, "no exp").await;
    }
    assert_token_failures(
        &gw,
        &[
            ("token_expired", 2.0),
            ("token_bad_signature", 4.0),
            ("token_not_yet_valid", 2.0),
            ("token_malformed", 8.0),
        ],
    )
    .await;
    assert_eq!(auth_failures(&gw.metrics().await, "token_missing"), 0.0);

    // Within the leeway, an expired token and an nbf a little ahead are accepted.
    let within_leeway = hs256(SECRET, &json!({"sub": "42", "exp": t - 5}));
    let nbf_soon = hs256(SECRET, &json!({"sub": "42", "exp": t + 600, "nbf": t + 5}));
    for http in [Http::H1, Http::H2] {
        for token in [&within_leeway, &nbf_soon] {
            let auth = bearer(token);
            let stream = open(&gw, http, "/events/user:42", &[("authorization", &auth)]).await;
            assert_eq!(stream.status, StatusCode::OK, "{http:?}");
        }
    }
    assert_token_failures(
        &gw,
        &[
            ("token_expired", 2.0),
            ("token_bad_signature", 4.0),
            ("token_not_yet_valid", 2.0),
            ("token_malformed", 8.0),
        ],
    )
    .await;
}

/// A token accepted within the leeway is a working token: its stream delivers events
/// (it does not end the moment it opens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expired_within_the_leeway_streams() {
    let gw = start_auth(|_| {}).await; // leeway 30 s
    let within_leeway = hs256(SECRET, &json!({"sub": "42", "exp": now() - 5}));
    let auth = bearer(&within_leeway);
    for http in [Http::H1, Http::H2] {
        let mut stream = open_ok(&gw, http, "/events/user:42", &[("authorization", &auth)]).await;
        let id = gw.publish_text("user:42", "within the leeway").await;
        let mut blocks = Vec::new();
        let delivered = loop {
            match stream.next_block().await {
                Some(b) if b.is_event() => break Some(b),
                Some(b) => blocks.push(b.raw),
                None => break None,
            }
        };
        assert_eq!(
            delivered.map(|b| b.triple()),
            Some((id, None, "within the leeway".to_string())),
            "{http:?}: the stream of a token accepted within the leeway must deliver; \
             it ended after {blocks:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_and_issuer_are_checked_when_configured() {
    let gw = start_auth(|c| {
        c.auth.audience = Some("ssegate-test".into());
        c.auth.issuer = Some("https://auth.example".into());
    })
    .await;
    let exp = now() + 600;
    let iss = "https://auth.example";
    let good = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": "ssegate-test", "iss": iss}),
    );
    let among = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": ["other-app", "ssegate-test"], "iss": iss}),
    );
    let wrong_aud = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": "other-app", "iss": iss}),
    );
    let wrong_auds = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": ["a", "b"], "iss": iss}),
    );
    let wrong_iss = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": "ssegate-test", "iss": "https://evil.example"}),
    );

    accepted(&gw, Http::H1, &good, "42", "aud and iss").await;
    accepted(&gw, Http::H2, &among, "42", "aud among several").await;
    refused(&gw, Http::H1, &wrong_aud, "wrong aud").await;
    refused(&gw, Http::H2, &wrong_auds, "no matching aud in a list").await;
    refused(&gw, Http::H1, &wrong_iss, "wrong iss").await;
    assert_token_failures(
        &gw,
        &[("token_wrong_audience", 2.0), ("token_wrong_issuer", 1.0)],
    )
    .await;
}

/// With `auth.audience` / `auth.issuer` set, a token that does not carry `aud` / `iss`
/// at all does not "contain the audience" / "equal the issuer": it must be refused
/// like a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_audience_or_issuer_is_refused_when_configured() {
    let gw = start_auth(|c| {
        c.auth.audience = Some("ssegate-test".into());
        c.auth.issuer = Some("https://auth.example".into());
    })
    .await;
    let exp = now() + 600;
    let no_aud = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "iss": "https://auth.example"}),
    );
    let no_iss = hs256(
        SECRET,
        &json!({"sub": "42", "exp": exp, "aud": "ssegate-test"}),
    );
    let mut statuses = Vec::new();
    for token in [&no_aud, &no_iss] {
        let auth = bearer(token);
        let stream = open(
            &gw,
            Http::H1,
            "/events/user:42",
            &[("authorization", &auth)],
        )
        .await;
        statuses.push(stream.status);
    }
    assert_eq!(
        statuses,
        vec![StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED],
        "tokens without aud / without iss"
    );
    let text = gw.metrics().await;
    let total: f64 = TOKEN_KINDS
        .iter()
        .map(|k| {
            metric(
                &text,
                &format!("ssegate_auth_failures_total{{kind=\"{k}\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(total, 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_two_kids_accepted_an_unknown_kid_refused() {
    let gw = start_with(|c| {
        c.auth.jwt_keys = vec![
            hmac_key("old", Some("k1"), SECRET),
            hmac_key("new", Some("k2"), SECRET_2),
        ];
    })
    .await;
    let k = |secret: &str| EncodingKey::from_secret(secret.as_bytes());
    let k1 = sign(Algorithm::HS256, &k(SECRET), Some("k1"), &claims("42"));
    let k2 = sign(Algorithm::HS256, &k(SECRET_2), Some("k2"), &claims("42"));
    let k3 = sign(Algorithm::HS256, &k(SECRET), Some("k3"), &claims("42"));
    let no_kid = hs256(SECRET, &claims("42"));
    let k1_wrong = sign(Algorithm::HS256, &k(SECRET_2), Some("k1"), &claims("42"));

    accepted(&gw, Http::H1, &k1, "42", "kid k1").await;
    accepted(&gw, Http::H2, &k2, "42", "kid k2").await;
    accepted(&gw, Http::H1, &k2, "42", "kid k2 on h1").await;
    refused(&gw, Http::H1, &k3, "kid k3").await;
    refused(&gw, Http::H2, &k3, "kid k3 on h2").await;
    refused(&gw, Http::H1, &no_kid, "no kid when every key has one").await;
    refused(&gw, Http::H1, &k1_wrong, "kid k1 signed with k2's secret").await;
    assert_token_failures(
        &gw,
        &[("token_unknown_key", 3.0), ("token_bad_signature", 1.0)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_verify_with_public_keys() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rsa_path = dir.path().join("rsa_public.pem");
    std::fs::write(&rsa_path, RSA_PUBLIC_PEM).unwrap();
    let ec = rcgen::KeyPair::generate().expect("an ECDSA P-256 key");
    let ec_path = dir.path().join("ec_public.pem");
    std::fs::write(&ec_path, ec.public_key_pem()).unwrap();
    let gw = start_with(|c| {
        c.auth.jwt_keys = vec![
            pem_key("rsa", JwtAlgorithm::RS256, &rsa_path),
            pem_key("ec", JwtAlgorithm::ES256, &ec_path),
        ];
    })
    .await;
    let es_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).expect("PKCS#8 EC");
    let es = sign(Algorithm::ES256, &es_key, None, &claims("42"));
    let rs = rs256(&claims("7"));
    accepted(&gw, Http::H1, &rs, "7", "RS256").await;
    accepted(&gw, Http::H2, &rs, "7", "RS256 on h2").await;
    accepted(&gw, Http::H1, &es, "42", "ES256").await;
    accepted(&gw, Http::H2, &es, "42", "ES256 on h2").await;

    // Another EC key's signature does not verify; nor does an HS256 token here.
    let stranger = rcgen::KeyPair::generate().unwrap();
    let stranger_key = EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes()).unwrap();
    let forged = sign(Algorithm::ES256, &stranger_key, None, &claims("42"));
    refused(&gw, Http::H1, &forged, "ES256 by another key").await;
    refused(&gw, Http::H1, &token_for("42"), "HS256 with no HMAC key").await;
    refused(&gw, Http::H1, &alg_none(&claims("42")), "alg none").await;
    assert_token_failures(
        &gw,
        &[
            ("token_bad_signature", 1.0),
            ("token_unknown_key", 1.0),
            ("token_malformed", 1.0),
        ],
    )
    .await;
}

/// The classic algorithm confusion: a token that names HS256 and is "signed" with the
/// RSA public key's PEM as the HMAC secret must not verify against that RSA key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_public_key_as_hmac_secret_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rsa_path = dir.path().join("rsa_public.pem");
    std::fs::write(&rsa_path, RSA_PUBLIC_PEM).unwrap();
    let gw = start_with(|c| {
        c.auth.jwt_keys = vec![pem_key("rsa", JwtAlgorithm::RS256, &rsa_path)];
    })
    .await;
    // The key works for what it is.
    accepted(&gw, Http::H1, &rs256(&claims("42")), "42", "RS256").await;
    for secret in [
        RSA_PUBLIC_PEM.as_bytes(),
        RSA_PUBLIC_PEM.trim_end().as_bytes(),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let confused = sign(alg, &EncodingKey::from_secret(secret), None, &claims("42"));
            refused(&gw, Http::H1, &confused, "RSA public key as HMAC secret").await;
            refused(
                &gw,
                Http::H2,
                &confused,
                "RSA public key as HMAC secret, h2",
            )
            .await;
        }
    }
    refused(&gw, Http::H1, &alg_none(&claims("42")), "alg none").await;
    assert_token_failures(
        &gw,
        &[("token_unknown_key", 12.0), ("token_malformed", 1.0)],
    )
    .await;
}

/// A stream whose token expires (leeway 0) gets its live events, then a farewell
/// `retry:` block and the end of the stream; closed as `token_expired`. The same token
/// is refused afterwards.
async fn expiry_ends_the_stream(http: Http) {
    let gw = start_auth(|c| c.auth.leeway = std::time::Duration::ZERO).await;
    let token = hs256(SECRET, &json!({"sub": "42", "exp": now() + 3}));
    let auth = bearer(&token);
    let mut stream = open_ok(&gw, http, "/events/user:42", &[("authorization", &auth)]).await;
    let id = gw.publish_text("user:42", "before expiry").await;
    assert_eq!(
        stream.next_event().await.triple(),
        (id, None, "before expiry".into())
    );
    // Bounded: heartbeats (25 s) cannot come before the expiry; the farewell comes
    // within the step timeout.
    let farewell = stream.next_block().await.expect("a farewell block");
    assert!(farewell.retry.is_some(), "{farewell:?}");
    assert_eq!(
        farewell.raw,
        format!("retry: {}\n\n", farewell.retry.unwrap())
    );
    assert_eq!(stream.next_block().await, None, "the stream ends");
    wait_metric(
        &gw,
        "ssegate_connections_closed_total{reason=\"token_expired\"}",
        1.0,
    )
    .await;
    let open_series = match http {
        Http::H1 => "ssegate_connections_open{proto=\"h1\",tls=\"false\"}",
        Http::H2 => "ssegate_connections_open{proto=\"h2\",tls=\"true\"}",
    };
    assert_eq!(metric(&gw.metrics().await, open_series).unwrap_or(0.0), 0.0);
    // Reconnecting with the expired token is refused (no leeway).
    let mut refusal_seen = false;
    for _ in 0..200 {
        let stream = open(&gw, http, "/events/user:42", &[("authorization", &auth)]).await;
        if stream.status == StatusCode::UNAUTHORIZED {
            refusal_seen = true;
            break;
        }
        // exp is whole seconds; the stream may end just before the second turns.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refusal_seen, "the expired token is refused");
    assert!(auth_failures(&gw.metrics().await, "token_expired") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_ends_a_lean_http1_stream() {
    expiry_ends_the_stream(Http::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_ends_an_h2_tls_stream() {
    expiry_ends_the_stream(Http::H2).await;
}

/// A valid token's `exp` is the client's to choose: one beyond what the clock can
/// represent (`u64::MAX`, or just under it once the leeway is added) opens a stream
/// that works, over both paths, and the gateway stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_exp_opens_a_working_stream() {
    let gw = start_auth(|_| {}).await; // leeway 30 s
    for exp in [u64::MAX, u64::MAX - 30, i64::MAX as u64] {
        let token = hs256(SECRET, &json!({"sub": "42", "exp": exp}));
        for http in [Http::H1, Http::H2] {
            accepted(&gw, http, &token, "42", &format!("exp {exp} over {http:?}")).await;
        }
    }
    assert_eq!(gw.get("/healthz").await.status, StatusCode::OK);
}
