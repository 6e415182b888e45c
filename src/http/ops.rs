//! The operational endpoints: `GET /healthz`, `GET /readyz`, `GET /metrics` and
//! `GET /cursor`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::http::respond::{json, ResponseBody};
use crate::http::shared::Shared;

/// `GET /healthz`: the process is up.
pub fn healthz() -> Response<ResponseBody> {
    json(StatusCode::OK, r#"{"status":"ok"}"#.into())
}

/// `GET /readyz`: 200 while the broker is ready and no drain has begun.
pub fn readyz(shared: &Shared) -> Response<ResponseBody> {
    if shared.drain.is_draining() {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"draining"}"#.into(),
        )
    } else if shared.broker.is_ready() {
        json(StatusCode::OK, r#"{"status":"ready"}"#.into())
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"broker unavailable"}"#.into(),
        )
    }
}

/// `GET /cursor`: the id of the newest event, to subscribe from without a gap.
pub fn cursor(shared: &Shared) -> Response<ResponseBody> {
    let head = shared.broker.head();
    json(
        StatusCode::OK,
        serde_json::json!({"id": head.to_string()}).to_string(),
    )
}

/// `GET /metrics`: the Prometheus text, with the hub's totals set at scrape.
pub fn metrics(shared: &Shared) -> Response<ResponseBody> {
    let (channels, history_events, history_bytes) = shared.hub.totals();
    let m = &shared.metrics;
    m.channels.set(channels as i64);
    m.history_events.set(history_events as i64);
    m.history_bytes.set(history_bytes as i64);
    m.tcp_connections_open.set(shared.limiter.open() as i64);
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(
        shared.metrics.render(),
    ))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
