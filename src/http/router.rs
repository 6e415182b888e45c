//! The route table: which handler answers which method and path on which listener,
//! with every request passing the [`gate`] before and after.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::http::respond::{error_response, json, uncounted_error_response, ResponseBody};
use crate::http::shared::{Live, Shared};
use crate::http::{admin, gate, ops, publish, subscribe};
use crate::model::error::ApiError;
use crate::policy::admission::Refusal;
use crate::policy::cors;
use crate::stream::connection::ConnState;

/// Routes one request: takes the live snapshot once, passes the gate, answers.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let live = shared.live();
    if req.version() == http::Version::HTTP_11
        && req.headers().get_all(header::HOST).iter().count() != 1
    {
        // RFC 9112 §3.2; the plain stream path hands such heads here.
        gate::arrived(&conn);
        let error = ApiError::bad_request(
            "host_invalid",
            "an HTTP/1.1 request needs exactly one Host header",
        );
        return Ok(error_response(&shared, conn.peer, error));
    }
    let passed = match gate::enter(&conn, &live, req.headers()) {
        Ok(passed) => passed,
        Err(e) => return Ok(error_response(&shared, conn.peer, e)),
    };
    let is_options = req.method() == Method::OPTIONS;
    let mut response = route(&shared, &live, &conn, req)
        .await
        .unwrap_or_else(|e| error_response(&shared, conn.peer, e));
    // A preflight's own answer carries its CORS headers already.
    let is_preflight_answer = is_options && response.status() == StatusCode::NO_CONTENT;
    if !is_preflight_answer {
        passed.finish(&live, &mut response);
    }
    Ok(response)
}

/// The route table. `/events…`, `/publish` and `/cursor` need a public listener;
/// `/admin…` and `/metrics` an admin one; `/healthz` and `/readyz` are everywhere.
async fn route(
    shared: &Shared,
    live: &Live,
    conn: &Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let path = req.uri().path();
    let (public, admin) = (conn.routes.public(), conn.routes.admin());
    if req.method() == Method::OPTIONS {
        preflight(live, &req)
    } else if public && (path == "/events" || path.starts_with("/events/")) {
        only(&req, Method::GET, "GET")?;
        subscribe::subscribe(shared, live, conn, req.uri(), req.headers(), req.version())
            .map(|r| r.map(Either::Right))
    } else if admin && (path == "/admin" || path.starts_with("/admin/")) {
        admin::handle(shared, live, &req).map(|(status, body)| json(status, body))
    } else {
        match path {
            "/publish" if public => {
                only(&req, Method::POST, "POST")?;
                publish::publish(shared, live, req).await
            }
            "/cursor" if public => only(&req, Method::GET, "GET").map(|_| ops::cursor(shared)),
            "/healthz" => only(&req, Method::GET, "GET").map(|_| ops::healthz()),
            "/readyz" => only(&req, Method::GET, "GET").map(|_| ops::readyz(shared)),
            "/metrics" if admin => only(&req, Method::GET, "GET").map(|_| ops::metrics(shared)),
            _ => Err(ApiError::not_found()),
        }
    }
}

/// `OPTIONS`: a CORS preflight from an allowed origin gets 204 and the CORS headers;
/// without an `Origin` it is answered with the methods in `Allow`.
fn preflight<B>(live: &Live, req: &Request<B>) -> Result<Response<ResponseBody>, ApiError> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    if req.headers().contains_key(header::ORIGIN) {
        *response.headers_mut() = cors::answer_preflight(&live.config.cors, req.headers())?;
    } else {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(cors::ALLOW_METHODS));
    }
    Ok(response)
}

fn only<B>(req: &Request<B>, method: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allow))
    }
}

/// Answers every request of a connection that was over a connection cap: 503 (total)
/// or 429 (per IP, or opening too fast), with `Retry-After`, and closes it.
pub async fn refuse(
    conn: Arc<ConnState>,
    refusal: Refusal,
    _req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    gate::arrived(&conn);
    let message = match refusal {
        Refusal::Total => "the gateway is at its connection limit; retry later",
        Refusal::PerIp => "too many connections from your address; retry later",
        Refusal::Rate => "your address opens connections too fast; retry later",
    };
    let error = ApiError::refused(refusal.reason(), message, Some(5));
    // Counted at accept already; answer without counting twice.
    let mut response = uncounted_error_response(&error);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}
