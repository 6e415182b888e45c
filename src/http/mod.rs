//! Routes and handlers: the only place that knows the URLs.
//!
//! `GET /events`, `GET /events/{channel}`, `POST /publish`, `GET /cursor`,
//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

pub mod admin;
pub mod publish_body;
pub mod shared;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::broker::PublishError;
use crate::config::Config;
use crate::http::shared::{Live, Shared};
use crate::hub::{LagBounds, ResumeFrom, Start};
use crate::model::error::ApiError;
use crate::model::event_id::EventId;
use crate::model::reasons::RefusalReason;
use crate::policy::access;
use crate::policy::admission::Refusal;
use crate::policy::cors;
use crate::policy::jwt::Claims;
use crate::policy::keys::{self, KeyError, KeyRole};
use crate::stream::connection::ConnState;
use crate::stream::{SseBody, StreamContext, StreamSettings};
use crate::wire::sse as encode;

/// Every response body: a whole one, or an event stream.
pub type ResponseBody = Either<Full<Bytes>, SseBody>;

/// Routes one request.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    conn.first_request_seen
        .store(true, std::sync::atomic::Ordering::Release);
    let live = shared.live();
    let origin = match cors::check(&live.config.cors, req.headers()) {
        Ok(origin) => origin,
        Err(e) => return Ok(error_response(&shared, e)),
    };
    let path = req.uri().path();
    let (public, admin) = (conn.routes.public(), conn.routes.admin());
    let req_is_options = req.method() == Method::OPTIONS;
    let result = if req_is_options {
        preflight(&live, &req)
    } else if public && (path == "/events" || path.starts_with("/events/")) {
        only(&req, Method::GET, "GET").and_then(|_| {
            subscribe(
                &shared,
                &live,
                &conn,
                req.uri(),
                req.headers(),
                req.version(),
            )
            .map(|r| r.map(Either::Right))
        })
    } else if admin && (path == "/admin" || path.starts_with("/admin/")) {
        admin::handle(&shared, &live, &req).map(|(status, body)| json(status, body))
    } else {
        match path {
            "/publish" if public => match only(&req, Method::POST, "POST") {
                Ok(()) => publish(&shared, &live, req).await,
                Err(e) => Err(e),
            },
            "/cursor" if public => only(&req, Method::GET, "GET").map(|_| cursor(&shared)),
            "/healthz" => only(&req, Method::GET, "GET")
                .map(|_| json(StatusCode::OK, r#"{"status":"ok"}"#.into())),
            "/readyz" => only(&req, Method::GET, "GET").map(|_| readyz(&shared)),
            "/metrics" if admin => only(&req, Method::GET, "GET").map(|_| metrics(&shared)),
            _ => Err(ApiError::not_found()),
        }
    };
    let mut response = result.unwrap_or_else(|e| error_response(&shared, e));
    let is_preflight_answer = req_is_options && response.status() == StatusCode::NO_CONTENT;
    if let (Some(origin), false) = (origin, is_preflight_answer) {
        cors::decorate(&live.config.cors, &origin, response.headers_mut());
    }
    Ok(response)
}

/// `OPTIONS`: a CORS preflight from an allowed origin gets 204 and the CORS headers;
/// without an `Origin` it is answered with the methods in `Allow`.
fn preflight<B>(live: &Live, req: &Request<B>) -> Result<Response<ResponseBody>, ApiError> {
    let config = &live.config;
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    if req.headers().contains_key(header::ORIGIN) {
        *response.headers_mut() = cors::answer_preflight(&config.cors, req.headers())?;
    } else {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(cors::ALLOW_METHODS));
    }
    Ok(response)
}

/// The token a subscriber sent: `Authorization: Bearer`, the token query parameter,
/// or the configured cookie, in that order.
fn subscriber_token(config: &Config, uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
    if let Some(bearer) = keys::bearer(headers) {
        return Some(bearer.to_string());
    }
    let from_query = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| *k == *config.auth.token_query_parameter)
            .map(|(_, v)| v.into_owned())
    });
    if from_query.is_some() {
        return from_query;
    }
    let name = config.auth.cookie.as_deref()?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Verifies a token, counting a failure by its kind.
fn verify_token(live: &Live, token: &str) -> Result<Claims, ApiError> {
    live.verifier
        .verify(token)
        .map_err(|e| ApiError::auth(e.kind(), "the token is not valid"))
}

/// Who is publishing: a static key (by name) or a token.
enum Publisher {
    Key(String),
    Token(Claims),
}

impl Publisher {
    /// The rate-limit key.
    fn id(&self) -> String {
        match self {
            Publisher::Key(name) => format!("key:{name}"),
            Publisher::Token(c) => format!("sub:{}", c.subject.as_deref().unwrap_or("")),
        }
    }
}

/// A static publish key, or else a token with publish grants.
fn authorize_publisher(live: &Live, headers: &http::HeaderMap) -> Result<Publisher, ApiError> {
    match keys::check_key(headers, &live.publish_keys) {
        Ok(name) => Ok(Publisher::Key(name)),
        Err(KeyError::Invalid) if live.verifier.is_enabled() => {
            let token = keys::bearer(headers).unwrap_or("");
            if token.split('.').count() != 3 {
                return Err(KeyRole::Publish.error(KeyError::Invalid));
            }
            verify_token(live, token).map(Publisher::Token)
        }
        Err(e) => Err(KeyRole::Publish.error(e)),
    }
}

/// Answers every request of a connection that was over a connection cap: 503 (total)
/// or 429 (per IP), with `Retry-After`, and closes it.
pub async fn refuse(
    conn: Arc<ConnState>,
    refusal: Refusal,
    _req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    conn.first_request_seen
        .store(true, std::sync::atomic::Ordering::Release);
    let message = match refusal {
        Refusal::Total => "the gateway is at its connection limit; retry later",
        Refusal::PerIp => "too many connections from your address; retry later",
        Refusal::Rate => "your address opens connections too fast; retry later",
    };
    let error = ApiError::refused(refusal.reason(), message, Some(5));
    // Counted at accept already; answer without counting twice.
    let mut response = json(error.status(), error.body());
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(5u32));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

fn only<B>(req: &Request<B>, method: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allow))
    }
}

/// Opens an event stream for `GET /events…`: validates the channels, positions the
/// subscription (`Last-Event-ID`), and returns the streaming response. Shared by the
/// hyper path and the lean HTTP/1.1 path.
pub fn subscribe(
    shared: &Shared,
    live: &Live,
    conn: &Arc<ConnState>,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    version: Version,
) -> Result<Response<SseBody>, ApiError> {
    let config = &live.config;
    let limits = &config.limits;
    let mut names = Vec::new();
    if let Some(rest) = uri.path().strip_prefix("/events/") {
        let decoded = percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .map_err(|_| {
                ApiError::bad_request("channel_invalid", "the channel in the path is not UTF-8")
            })?;
        names.push(decoded.into_owned());
    }
    let mut last_event_id_query = None;
    if let Some(query) = uri.query() {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "channel" => {
                    // Repeats are harmless (validate_channels drops them); only
                    // distinct names count, and collecting stops one past the limit
                    // so the refusal below is reached without an unbounded list.
                    let repeat = names.iter().any(|n| *n == value);
                    if !repeat && names.len() > limits.max_channels_per_connection {
                        break;
                    }
                    if !repeat {
                        names.push(value.into_owned());
                    }
                }
                "lastEventId" => last_event_id_query = Some(value.into_owned()),
                _ => {}
            }
        }
    }
    let channels = publish_body::validate_channels(names, limits.max_channels_per_connection)?;
    let claims = match subscriber_token(config, uri, headers) {
        Some(token) => Some(verify_token(live, &token)?),
        None => None,
    };
    for channel in &channels {
        access::may_subscribe(config, claims.as_ref(), channel)?;
    }
    // The header (sent by the browser on reconnect) wins over the query parameter
    // (written into the URL at page load, and stale after the first event).
    let header_id = headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|v| !v.is_empty());
    let resume = match header_id.or(last_event_id_query.filter(|v| !v.is_empty())) {
        None => ResumeFrom::Head,
        Some(text) => match EventId::parse(&text) {
            Some(id) => ResumeFrom::After(id),
            None => ResumeFrom::Unparseable,
        },
    };
    // Count the stream on its connection first: an HTTP/2 client opening streams in
    // parallel cannot slip past the cap. The slot uncounts it whenever it is dropped.
    let max_streams = limits.max_streams_per_connection;
    let Some(slot) = conn.try_open_stream(max_streams) else {
        return Err(ApiError::refused(
            RefusalReason::MaxStreamsPerConnection,
            format!("at most {max_streams} event streams on one connection"),
            Some(1),
        ));
    };
    let (mut subscription, start) = shared.hub.subscribe(&channels, resume).map_err(|full| {
        ApiError::refused(
            RefusalReason::ChannelLimit,
            format!(
                "the gateway holds its maximum of {} channels",
                full.max_channels
            ),
            Some(5),
        )
    })?;
    let sse = &config.sse;
    let retry_range = (
        sse.retry_min.as_millis() as u64,
        sse.retry_max.as_millis() as u64,
    );
    let retry_ms = fastrand::u64(retry_range.0..=retry_range.1);
    let slow = &config.slow_clients;
    subscription.set_subject(
        claims
            .as_ref()
            .and_then(|c| c.subject.as_deref())
            .map(Arc::from),
    );
    subscription.set_lag_bounds(LagBounds {
        max_events: slow.max_lag_events,
        max_bytes: slow.max_lag_bytes as u64,
    });
    let position = subscription.position();
    let preamble = match start {
        Start::Fresh | Start::Resumed => encode::preamble(retry_ms, Some(position)),
        Start::Resync(reason) => {
            shared
                .metrics
                .resyncs_total
                .with_label_values(&[reason.as_str()])
                .inc();
            let mut both = encode::preamble(retry_ms, None).to_vec();
            both.extend_from_slice(&encode::resync(position, reason.as_str()));
            Bytes::from(both)
        }
    };
    let proto = if version == Version::HTTP_2 {
        "h2"
    } else {
        "h1"
    };
    let keepalive = &config.keepalive;
    let max_age = keepalive
        .max_connection_age
        .map(|age| age.mul_f64(1.0 - keepalive.max_connection_age_jitter * fastrand::f64()));
    let settings = StreamSettings {
        heartbeat: sse.heartbeat,
        max_batch_bytes: sse.max_batch_bytes,
        lag_policy: slow.policy,
        max_age,
        retry_ms: retry_range,
        // The token was accepted up to `exp` plus the leeway; the stream lasts as long.
        expires_at: claims
            .as_ref()
            .map(|c| expiry_instant(c.expires_at.saturating_add(config.auth.leeway.as_secs()))),
    };
    let replay_through = match start {
        Start::Resumed => subscription.head_at_start(),
        _ => 0,
    };
    let registration = shared.registry.register(
        conn.peer,
        proto,
        conn.tls,
        subscription.channels().clone(),
        position.seq,
    );
    let context = StreamContext {
        metrics: shared.metrics.clone(),
        drain: shared.drain.clone(),
        slot,
        proto,
        registration,
        replay_through,
        log_budget: Some(shared.log_budget.clone()),
    };
    let body = SseBody::new(subscription, preamble, settings, context);
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The monotonic instant of a Unix time (seconds), for a token's expiry.
fn expiry_instant(unix_seconds: u64) -> tokio::time::Instant {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tokio::time::Instant::now()
        + std::time::Duration::from_secs(unix_seconds.saturating_sub(now_unix))
}

async fn publish(
    shared: &Shared,
    live: &Live,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let started = Instant::now();
    let config = &live.config;
    let publisher = authorize_publisher(live, req.headers())?;
    if let Some(rate) = config.rate_limits.publishes_per_second {
        let burst = config.rate_limits.publish_burst;
        shared
            .publish_rate
            .take(&publisher.id(), rate, burst, Instant::now())
            .map_err(|wait| rate_limited(wait, "too many publishes; slow down"))?;
    }
    // The body is parsed as JSON whatever its Content-Type: `curl -d` sends a form
    // type, and a wrong guess there should not cost a newcomer a 415.
    let max = config.limits.max_body_bytes;
    let too_large = || {
        ApiError::refused(
            RefusalReason::BodyTooLarge,
            format!("the body exceeds {max} bytes"),
            None,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::bad_request("body_unreadable", "the request body could not be read")
            }
        })?
        .to_bytes();
    let request = publish_body::parse(&body, &config.limits)?;
    let claims = match &publisher {
        Publisher::Token(c) => Some(c),
        Publisher::Key(_) => None,
    };
    for channel in request.events.iter().flat_map(|e| e.channels.iter()) {
        access::may_publish(config, claims, channel)?;
    }
    let published = shared
        .broker
        .publish(request.events)
        .await
        .map_err(|e| match e {
            PublishError::ChannelLimit { max_channels } => ApiError::refused(
                RefusalReason::ChannelLimit,
                format!("the gateway holds its maximum of {max_channels} channels"),
                Some(5),
            ),
            PublishError::Unavailable(why) => ApiError::upstream("broker_unavailable", why),
        })?;
    shared
        .metrics
        .events_published_total
        .with_label_values(&["http"])
        .inc_by(published.new_events as u64);
    let ids = published.ids;
    let answer = if request.is_batch {
        serde_json::json!({"ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()})
    } else {
        serde_json::json!({"id": ids[0].to_string()})
    };
    shared
        .metrics
        .publish_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(json(StatusCode::OK, answer.to_string()))
}

/// 429 with a `Retry-After` of the wait, rounded up to whole seconds.
pub fn rate_limited(wait: std::time::Duration, message: &str) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::refused(
        RefusalReason::RateLimited,
        message,
        Some(secs.clamp(1, u64::from(u32::MAX)) as u32),
    )
}

fn cursor(shared: &Shared) -> Response<ResponseBody> {
    let head = shared.broker.head();
    json(
        StatusCode::OK,
        serde_json::json!({"id": head.to_string()}).to_string(),
    )
}

fn readyz(shared: &Shared) -> Response<ResponseBody> {
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

fn metrics(shared: &Shared) -> Response<ResponseBody> {
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

pub(crate) fn json(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer to an error, counted in the metrics by fault, code and limit.
pub fn error_response(shared: &Shared, e: ApiError) -> Response<ResponseBody> {
    let m = &shared.metrics;
    m.request_errors_total
        .with_label_values(&[e.fault().as_str(), e.code()])
        .inc();
    if let Some(reason) = e.refusal() {
        m.refused(reason);
    }
    if let Some(kind) = e.auth_failure() {
        m.auth_failed(kind);
    }
    let mut response = json(e.status(), e.body());
    let headers = response.headers_mut();
    if let Some(allow) = e.allow() {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(secs) = e.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.status() == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
