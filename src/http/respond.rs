//! Building responses: JSON answers, and the answer to an [`ApiError`] with its JSON
//! body, headers and counting.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use std::net::SocketAddr;

use crate::http::shared::Shared;
use crate::model::error::ApiError;
use crate::observe::refusal_log::log_refusal;
use crate::stream::SseBody;

/// Every response body: a whole one, or an event stream.
pub type ResponseBody = Either<Full<Bytes>, SseBody>;

/// A whole `application/json` answer.
pub fn json(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer to an error from `peer`, counted in the metrics by fault, code, refusal
/// and auth failure, and logged within the log-line budget.
pub fn error_response(shared: &Shared, peer: SocketAddr, e: ApiError) -> Response<ResponseBody> {
    log_refusal(&shared.log_budget, peer, &e);
    let metrics = &shared.metrics;
    metrics
        .request_errors_total
        .with_label_values(&[e.fault().as_str(), e.code()])
        .inc();
    if let Some(reason) = e.refusal() {
        metrics.refused(reason);
    }
    if let Some(kind) = e.auth_failure() {
        metrics.auth_failed(kind);
    }
    uncounted_error_response(&e)
}

/// The answer to an error that was counted already (a connection refused at accept).
pub fn uncounted_error_response(e: &ApiError) -> Response<ResponseBody> {
    let mut response = json(e.status(), e.body());
    let headers = response.headers_mut();
    if let Some(allow) = e.allow() {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(secs) = e.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.status() == http::StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
