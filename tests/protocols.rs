//! The protocol matrix: subscribing and receiving events over HTTP/1.1 and HTTP/2, plain
//! (h2c by prior knowledge) and TLS (ALPN `http/1.1` / `h2`), with the self-signed
//! certificate the gateway generates and with a configured certificate/key pair; the
//! stream's status, headers and first `retry:` line; several streams multiplexed on one
//! HTTP/2 connection; and curl as a second, independent client.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use serde_json::json;
use support::*;

const RETRY_MIN_MS: u64 = 1500;
const RETRY_MAX_MS: u64 = 1700;

async fn start_narrow_retry() -> TestGateway {
    start_with(|c| {
        c.sse.retry_min = Duration::from_millis(RETRY_MIN_MS);
        c.sse.retry_max = Duration::from_millis(RETRY_MAX_MS);
    })
    .await
}

/// Subscribes over `endpoint` with `http`, checks the answer head and the preamble, then
/// publishes three events (over HTTP/2 the middle one on the subscriber's own
/// connection) and checks they arrive with their exact ids, names and data.
async fn subscribe_and_receive(gw: &TestGateway, endpoint: Endpoint, http: Http) {
    let mut conn = Conn::open(&endpoint, http).await;
    if endpoint.tls_root.is_some() {
        let want: &[u8] = match http {
            Http::H1 => b"http/1.1",
            Http::H2 => b"h2",
        };
        assert_eq!(conn.alpn.as_deref(), Some(want), "negotiated ALPN");
    } else {
        assert_eq!(conn.alpn, None);
    }
    let head = gw.cursor().await;
    let mut stream = conn.get_stream("/events/proto", &[]).await;
    assert_stream_headers(&stream);
    let want_version = match http {
        Http::H1 => Version::HTTP_11,
        Http::H2 => Version::HTTP_2,
    };
    assert_eq!(stream.version, want_version);

    let first = stream.block().await;
    let retry = first.retry.expect("the first block has retry:");
    assert!(
        (RETRY_MIN_MS..=RETRY_MAX_MS).contains(&retry),
        "retry {retry} outside [{RETRY_MIN_MS}, {RETRY_MAX_MS}]"
    );
    assert_eq!(first.raw, format!("retry: {retry}\nid: {head}\n\n"));

    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"channel": "proto", "event": "tick", "data": format!("tick {i}")});
        let id = if i == 1 && http == Http::H2 {
            // The publish shares the HTTP/2 connection with the open stream.
            let auth = format!("Bearer {PUBLISH_KEY}");
            let reply = conn
                .request(
                    Method::POST,
                    "/publish",
                    &[("authorization", &auth)],
                    Bytes::from(body.to_string()),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(reply.version, Version::HTTP_2);
            reply.json()["id"].as_str().expect("id").to_string()
        } else {
            gw.publish_ok(&body).await
        };
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(seq(id), seq(&head) + 1 + i as u64);
        let event = stream.next_event().await;
        assert_eq!(
            event.triple(),
            (id.clone(), Some("tick".into()), format!("tick {i}"))
        );
        assert_eq!(
            event.raw,
            format!("id: {id}\nevent: tick\ndata: tick {i}\n\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_plain_subscribes_and_receives() {
    let gw = start_narrow_retry().await;
    subscribe_and_receive(&gw, gw.plain(), Http::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_subscribes_and_receives() {
    let gw = start_narrow_retry().await;
    subscribe_and_receive(&gw, gw.plain(), Http::H2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_alpn_subscribes_and_receives() {
    let gw = start_narrow_retry().await;
    subscribe_and_receive(&gw, gw.tls(), Http::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_alpn_subscribes_and_receives() {
    let gw = start_narrow_retry().await;
    subscribe_and_receive(&gw, gw.tls(), Http::H2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_is_the_one_served_and_verifies() {
    let gw = start_narrow_retry().await;
    let plain = &gw.gateway.listeners[0];
    let tls = &gw.gateway.listeners[1];
    assert_eq!((plain.name.as_str(), plain.tls), ("plain", false));
    assert!(plain.self_signed.is_none());
    assert_eq!((tls.name.as_str(), tls.tls), ("tls", true));
    let cert = tls.self_signed.clone().expect("a generated certificate");

    // The certificate the server presents is the reported one, and it verifies for
    // `localhost` when trusted as a root.
    let stream = tls_connect(tls.addr, &cert, &[b"h2"])
        .await
        .expect("handshake trusting the self-signed certificate");
    let (_, session) = stream.get_ref();
    let presented = session.peer_certificates().expect("a peer certificate");
    assert_eq!(presented, std::slice::from_ref(&cert));
    drop(stream);

    // A client that trusts another certificate refuses the gateway.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("another certificate");
    let refused = tls_connect(tls.addr, other.cert.der(), &[b"h2"]).await;
    assert!(
        refused.is_err(),
        "a handshake trusting an unrelated root must fail"
    );

    // And both HTTP versions work over it.
    subscribe_and_receive(&gw, Endpoint::tls(tls.addr, cert.clone()), Http::H2).await;
    subscribe_and_receive(&gw, Endpoint::tls(tls.addr, cert), Http::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_certificate_and_key_are_served() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ssegate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let cert_path = dir.path().join("chain.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, format!("{}{}", leaf.pem(), ca.pem())).expect("write chain");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");

    let gw_cert = cert_path.clone();
    let gw_key = key_path.clone();
    let config = {
        let mut c = test_config();
        c.listeners.truncate(1);
        c.listeners.push(ssegate::config::ListenerConfig {
            name: "tls-configured".into(),
            address: "127.0.0.1:0".parse().unwrap(),
            tls: Some(ssegate::config::TlsConfig {
                cert: Some(gw_cert),
                key: Some(gw_key),
            }),
            routes: Default::default(),
        });
        c.sse.retry_min = Duration::from_millis(RETRY_MIN_MS);
        c.sse.retry_max = Duration::from_millis(RETRY_MAX_MS);
        c
    };
    let gateway = ssegate::Gateway::start(config)
        .await
        .expect("the gateway starts with the configured pair");
    let listener = gateway.listeners[1].clone();
    assert_eq!(listener.name, "tls-configured");
    assert!(listener.tls);
    assert!(
        listener.self_signed.is_none(),
        "no certificate is generated when one is configured"
    );
    let ca_root = ca.der().clone();

    // The presented chain is the configured one, leaf first.
    let stream = tls_connect(listener.addr, &ca_root, &[b"h2"])
        .await
        .expect("handshake trusting the test CA");
    let presented = stream.get_ref().1.peer_certificates().expect("certs");
    assert_eq!(presented, &[leaf.der().clone(), ca_root.clone()]);
    drop(stream);

    // Trusting some other root fails.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    assert!(tls_connect(listener.addr, other.cert.der(), &[b"h2"])
        .await
        .is_err());

    let gw = TestGateway {
        plain_addr: gateway.listeners[0].addr,
        tls_addr: listener.addr,
        tls_cert: ca_root.clone(),
        gateway,
    };
    subscribe_and_receive(&gw, Endpoint::tls(listener.addr, ca_root.clone()), Http::H2).await;
    subscribe_and_receive(&gw, Endpoint::tls(listener.addr, ca_root), Http::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_multiplexes_several_streams_on_one_connection() {
    let gw = start().await;
    for endpoint in [gw.plain(), gw.tls()] {
        let mut conn = Conn::open(&endpoint, Http::H2).await;
        let mut streams = Vec::new();
        for name in ["mux-a", "mux-b", "mux-c"] {
            let mut s = conn.get_stream(&format!("/events/{name}"), &[]).await;
            assert_stream_headers(&s);
            assert_eq!(s.version, Version::HTTP_2);
            s.block().await; // the preamble
            streams.push(s);
        }
        let mut both = conn
            .get_stream("/events?channel=mux-a&channel=mux-c", &[])
            .await;
        assert_stream_headers(&both);
        both.block().await;

        let a = gw.publish_text("mux-a", "to a").await;
        let b = gw.publish_text("mux-b", "to b").await;
        let c = gw.publish_text("mux-c", "to c").await;
        let want = [(&a, "to a"), (&b, "to b"), (&c, "to c")];
        for (s, (id, data)) in streams.iter_mut().zip(want) {
            assert_eq!(
                s.next_event().await.triple(),
                (id.clone(), None, data.to_string())
            );
        }
        assert_eq!(
            both.next_event().await.triple(),
            (a.clone(), None, "to a".into())
        );
        assert_eq!(
            both.next_event().await.triple(),
            (c.clone(), None, "to c".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_subscribes_over_tls_h2() {
    let gw = start_narrow_retry().await;
    let port = gw.tls_addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/events/curl-tls");
    let head_id = gw.cursor().await;
    let mut curl = CurlStream::spawn(&["--http2", "-k", "--resolve", &resolve, &url]);
    let head = curl.head().await;
    let mut lines = head.lines();
    assert_eq!(lines.next().map(str::trim_end), Some("HTTP/2 200"));
    let headers: Vec<String> = lines.map(|l| l.trim_end().to_ascii_lowercase()).collect();
    for want in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
    ] {
        assert!(headers.iter().any(|h| h == want), "{want} in {headers:?}");
    }
    let first = curl.block().await;
    let retry = first.retry.expect("retry first");
    assert!((RETRY_MIN_MS..=RETRY_MAX_MS).contains(&retry));
    assert_eq!(first.id.as_deref(), Some(head_id.as_str()));

    let one = gw
        .publish_ok(&json!({"channel": "curl-tls", "event": "e", "data": "line 1\nline 2"}))
        .await;
    let two = gw
        .publish_ok(&json!({"channel": "curl-tls", "data": {"k": [1, 2]}}))
        .await;
    assert_eq!(
        curl.next_event().await.triple(),
        (one, Some("e".into()), "line 1\nline 2".into())
    );
    assert_eq!(
        curl.next_event().await.triple(),
        (two, None, r#"{"k":[1,2]}"#.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_h2c_prior_knowledge_subscribes_and_publishes() {
    let gw = start().await;
    let base = format!("http://127.0.0.1:{}", gw.plain_addr.port());
    let mut curl = CurlStream::spawn(&[
        "--http2-prior-knowledge",
        &format!("{base}/events?channel=curl-plain"),
    ]);
    let head = curl.head().await;
    assert_eq!(head.lines().next().map(str::trim_end), Some("HTTP/2 200"));
    let first = curl.block().await;
    assert!(first.retry.is_some(), "{first:?}");

    // Publish with curl too, over h2c.
    let (ok, out) = curl_output(vec![
        "--http2-prior-knowledge".into(),
        "-H".into(),
        format!("authorization: Bearer {PUBLISH_KEY}"),
        "--data-binary".into(),
        r#"{"channel":"curl-plain","event":"hello","data":"from curl"}"#.into(),
        format!("{base}/publish"),
    ])
    .await;
    assert!(ok, "curl publish failed: {out}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON answer");
    let id = answer["id"].as_str().expect("id").to_string();
    assert_eq!(id, gw.cursor().await);
    assert_eq!(
        curl.next_event().await.triple(),
        (id, Some("hello".into()), "from curl".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_certificate_files_stop_the_start_with_a_named_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let two = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("one.pem");
    let key_one = dir.path().join("one.key");
    let key_two = dir.path().join("two.key");
    let missing = dir.path().join("missing.pem");
    std::fs::write(&cert, one.cert.pem()).unwrap();
    std::fs::write(&key_one, one.signing_key.serialize_pem()).unwrap();
    std::fs::write(&key_two, two.signing_key.serialize_pem()).unwrap();

    let start_with_files = |cert: &std::path::Path, key: &std::path::Path| {
        let mut c = test_config();
        c.listeners[1].tls = Some(ssegate::config::TlsConfig {
            cert: Some(cert.to_path_buf()),
            key: Some(key.to_path_buf()),
        });
        ssegate::Gateway::start(c)
    };
    // The matching pair starts.
    let ok = start_with_files(&cert, &key_one).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    drop(ok);

    let err = match start_with_files(&missing, &key_one).await {
        Ok(_) => panic!("a missing certificate file must stop the start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("listener tls: certificate ") && err.contains("missing.pem"),
        "{err}"
    );
    let err = match start_with_files(&cert, &key_two).await {
        Ok(_) => panic!("a key of another certificate must stop the start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("listener tls: certificate and key do not form a usable pair"),
        "{err}"
    );
}
