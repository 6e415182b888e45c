//! `GET /events…` in three steps: [`parse`] the request (pure), [`check`] the
//! subscriber (token, channel rules, the per-connection stream cap), [`open`] the
//! stream. Shared by the hyper router and the plain HTTP/1.1 path (pushed streams).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, Uri, Version};

use crate::config::Config;
use crate::http::shared::{Live, Shared};
use crate::hub::{LagBounds, ResumeFrom, Start};
use crate::model::channel_name;
use crate::model::error::ApiError;
use crate::model::event_id::EventId;
use crate::model::reasons::RefusalReason;
use crate::policy::access;
use crate::policy::jwt::Claims;
use crate::policy::keys;
use crate::stream::connection::{ConnState, StreamSlot};
use crate::stream::{SseBody, StreamContext, StreamSettings};
use crate::wire::sse as encode;

/// A parsed subscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The channels, validated, without repeats, in the order named.
    pub channels: Vec<Arc<str>>,
    /// The token the subscriber sent, not yet verified.
    pub token: Option<String>,
    /// True when the token came from the cookie: a browser sends a stale one on every
    /// request, so it is ignored where no token is needed.
    pub token_from_cookie: bool,
    /// Where the subscription starts (`Last-Event-ID`).
    pub resume: ResumeFrom,
    /// `h1` or `h2`: the `proto` label of the stream's metrics.
    pub proto: &'static str,
}

/// Opens an event stream for `GET /events…`: [`parse`], [`check`], [`open`].
pub fn subscribe(
    shared: &Shared,
    live: &Live,
    conn: &Arc<ConnState>,
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<Response<SseBody>, ApiError> {
    let request = parse(&live.config, uri, headers, version)?;
    let allowed = check(live, conn, &request)?;
    open(shared, live, request, allowed)
}

/// The parse step: the channels (path and `channel` parameters), the token, and the
/// resume position, from the request alone. Fails on a channel list that is missing,
/// invalid or over `limits.max_channels_per_connection`.
pub fn parse(
    config: &Config,
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<SubscribeRequest, ApiError> {
    let max_channels = config.limits.max_channels_per_connection;
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
                    // Repeats are harmless (validate_list drops them); only distinct
                    // names count, and collecting stops one past the limit so the
                    // refusal below is reached without an unbounded list.
                    let repeat = names.iter().any(|n| *n == value);
                    if !repeat && names.len() > max_channels {
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
    let channels = channel_name::validate_list(names, max_channels)?;
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
    let (token, token_from_cookie) = match subscriber_token(config, uri, headers) {
        Some((token, from_cookie)) => (Some(token), from_cookie),
        None => (None, false),
    };
    Ok(SubscribeRequest {
        channels,
        token,
        token_from_cookie,
        resume,
        proto: if version == Version::HTTP_2 {
            "h2"
        } else {
            "h1"
        },
    })
}

/// The token a subscriber sent: `Authorization: Bearer`, the token query parameter,
/// or the configured cookie, in that order; true when it is the cookie.
fn subscriber_token(config: &Config, uri: &Uri, headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(bearer) = keys::bearer(headers) {
        return Some((bearer.to_string(), false));
    }
    let from_query = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| *k == *config.auth.token_query_parameter)
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = from_query {
        return Some((token, false));
    }
    let name = config.auth.cookie.as_deref()?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| (v.to_string(), true))
}

/// What [`check`] allowed: the verified claims, and the stream's place on its
/// connection.
#[derive(Debug)]
pub struct Allowed {
    /// The verified token's claims (`None`: no token came).
    pub claims: Option<Claims>,
    /// The stream counted on its connection; dropping it uncounts the stream.
    pub slot: StreamSlot,
}

/// The policy step: verifies the token, checks every channel against the channel
/// rules, and counts the stream on its connection (429 past
/// `limits.max_streams_per_connection`).
///
/// A token sent in the header or the query parameter that fails verification is a
/// 401, whatever the channels. One from the cookie is the browser's, sent with every
/// request and possibly stale: it is ignored while no channel needs a token, and its
/// failure is the answer when one does.
pub fn check(
    live: &Live,
    conn: &Arc<ConnState>,
    request: &SubscribeRequest,
) -> Result<Allowed, ApiError> {
    let config = &live.config;
    let mut cookie_failure = None;
    let claims = match &request.token {
        Some(token) => match live.verifier.verify(token) {
            Ok(claims) => Some(claims),
            Err(e) if request.token_from_cookie => {
                cookie_failure = Some(e);
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    for channel in &request.channels {
        match access::may_subscribe(config, claims.as_ref(), channel) {
            Ok(()) => {}
            // The channel needs a token and the cookie's failed: say why it failed.
            Err(access::Denied::TokenNeeded(channel)) => {
                return Err(match cookie_failure {
                    Some(e) => e.into(),
                    None => access::Denied::TokenNeeded(channel).into(),
                });
            }
            Err(denied) => return Err(denied.into()),
        }
    }
    // Count the stream on its connection first: an HTTP/2 client opening streams in
    // parallel cannot slip past the cap. The slot uncounts it whenever it is dropped.
    let max_streams = config.limits.max_streams_per_connection;
    let Some(slot) = conn.try_open_stream(max_streams) else {
        return Err(ApiError::refused(
            RefusalReason::MaxStreamsPerConnection,
            format!("at most {max_streams} event streams on one connection"),
            Some(1),
        ));
    };
    Ok(Allowed { claims, slot })
}

/// The opening step: joins the channels at the resume position and returns the
/// streaming response (503 when the hub holds its maximum of channels, or while the
/// gateway drains, with a `Retry-After` of `sse.retry_max`: the client reconnects,
/// through the load balancer, to another node).
pub fn open(
    shared: &Shared,
    live: &Live,
    request: SubscribeRequest,
    allowed: Allowed,
) -> Result<Response<SseBody>, ApiError> {
    let config = &live.config;
    if shared.drain.is_draining() {
        let retry = config.sse.retry_max.as_secs().saturating_add(1);
        return Err(ApiError::refused(
            RefusalReason::Draining,
            "the gateway is shutting down; reconnect",
            Some(u32::try_from(retry).unwrap_or(u32::MAX)),
        ));
    }
    let Allowed { claims, slot } = allowed;
    let (mut subscription, start) = shared
        .hub
        .subscribe(&request.channels, request.resume)
        .map_err(|full| {
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
    let proto = request.proto;
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
        expires_at: claims.as_ref().and_then(|c| {
            expiry_instant(c.expires_at.saturating_add(config.auth.leeway.as_secs()))
        }),
    };
    let replay_through = match start {
        Start::Resumed => subscription.head_at_start(),
        _ => 0,
    };
    let conn = slot.conn();
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

/// The monotonic instant of a Unix time (seconds), for a token's expiry; `None` when
/// it lies beyond what the clock can represent (a token's `exp` is the client's to
/// choose, up to `u64::MAX`): such a token does not end its stream.
fn expiry_instant(unix_seconds: u64) -> Option<tokio::time::Instant> {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tokio::time::Instant::now().checked_add(std::time::Duration::from_secs(
        unix_seconds.saturating_sub(now_unix),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_at(target: &str, headers: &[(&str, &str)]) -> Result<SubscribeRequest, ApiError> {
        let mut config = Config::default();
        config.auth.cookie = Some("sse_token".into());
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        parse(&config, &target.parse().unwrap(), &map, Version::HTTP_11)
    }

    fn names(r: &SubscribeRequest) -> Vec<&str> {
        r.channels.iter().map(|c| &**c).collect()
    }

    #[test]
    fn channels_from_path_and_query_without_repeats() {
        let r = parse_at("/events/a%3A1?channel=b&channel=a:1&channel=c", &[]).unwrap();
        assert_eq!(names(&r), ["a:1", "b", "c"]);
        assert_eq!(r.resume, ResumeFrom::Head);
        assert_eq!(r.token, None);
        assert_eq!(r.proto, "h1");
    }

    #[test]
    fn bad_channel_lists_are_named() {
        let code = |target| parse_at(target, &[]).unwrap_err().code();
        assert_eq!(code("/events"), "channel_missing");
        assert_eq!(code("/events/a%20b"), "channel_invalid");
        assert_eq!(code("/events/%FF"), "channel_invalid");
        let many: Vec<String> = (0..100).map(|i| format!("channel=c{i}")).collect();
        let e = parse_at(&format!("/events?{}", many.join("&")), &[]).unwrap_err();
        assert_eq!(e.refusal(), Some(RefusalReason::TooManyChannels));
    }

    #[test]
    fn last_event_id_header_wins_over_query() {
        let id = EventId { epoch: 7, seq: 3 };
        let other = EventId { epoch: 7, seq: 9 };
        let target = format!("/events/a?lastEventId={other}");
        let r = parse_at(&target, &[("last-event-id", &id.to_string())]).unwrap();
        assert_eq!(r.resume, ResumeFrom::After(id));
        let r = parse_at(&target, &[("last-event-id", "  ")]).unwrap();
        assert_eq!(
            r.resume,
            ResumeFrom::After(other),
            "a blank header is no header"
        );
        let r = parse_at("/events/a", &[("last-event-id", "nonsense")]).unwrap();
        assert_eq!(r.resume, ResumeFrom::Unparseable);
    }

    #[test]
    fn expiry_instant_never_overflows() {
        assert_eq!(expiry_instant(u64::MAX), None);
        assert!(expiry_instant(0).is_some(), "a past expiry is now");
    }

    #[test]
    fn token_from_bearer_then_query_then_cookie() {
        let q = "/events/a?token=from-query";
        let cookie = ("cookie", "x=1; sse_token=from-cookie");
        let bearer = ("authorization", "Bearer from-header");
        let token = |t: &str, h: &[(&str, &str)]| {
            let r = parse_at(t, h).unwrap();
            r.token.map(|token| (token, r.token_from_cookie))
        };
        let got = |token: &str, cookie: bool| Some((token.to_string(), cookie));
        assert_eq!(token(q, &[bearer, cookie]), got("from-header", false));
        assert_eq!(token(q, &[cookie]), got("from-query", false));
        assert_eq!(token("/events/a", &[cookie]), got("from-cookie", true));
        assert_eq!(token("/events/a", &[]), None);
    }
}
