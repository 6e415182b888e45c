//! `POST /publish`: authenticate the publisher, [`parse`] the body (pure), check its
//! channels against the channel rules, and hand the events to the broker.
//!
//! One event: `{"channel": "a" | "channels": ["a", "b"], "event"?: "name",
//! "data": <string | JSON>, "idempotency_key"?: "…", "exclude_subject"?: "…"}`.
//! A batch: `{"events": [<event>, …]}`, accepted whole or not at all.
//!
//! The publisher is checked (key or token, then its rate limit) before the body is
//! read: a caller without credentials never has up to `limits.max_body_bytes` read,
//! and a request both unauthenticated and malformed is answered 401; a token that
//! grants no publishing at all is refused (403) before the body too. The body must
//! arrive within the limits' size and time bounds ([`read_body`]). The channel rules
//! need the parsed channels, so they are checked after [`parse`].

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::broker::{PreparedEvent, PublishError};
use crate::config::LimitsConfig;
use crate::http::read_body::read_body;
use crate::http::respond::{json, ResponseBody};
use crate::http::shared::{Live, Shared};
use crate::model::channel_name;
use crate::model::error::ApiError;
use crate::model::reasons::{AuthFailure, RefusalReason};
use crate::policy::access;
use crate::policy::jwt::Claims;
use crate::policy::keys::{self, KeyError, KeyRole};
use crate::wire::sse::{self as encode, EventData};

/// Handles `POST /publish`: checks the publisher, reads and [`parse`]s the body,
/// checks its channels, and [`accept`]s the events.
pub async fn publish(
    shared: &Shared,
    live: &Live,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let started = Instant::now();
    let publisher = authorize(shared, live, req.headers())?;
    let body = read_body(req, &live.config.limits).await?;
    let request = parse(&body, &live.config.limits)?;
    check_channels(live, &publisher, &request)?;
    let answer = accept(shared, &publisher, request).await?;
    shared
        .metrics
        .publish_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(json(StatusCode::OK, answer))
}

/// Who is publishing: a static key (by name) or a token.
#[derive(Debug)]
pub enum Publisher {
    /// A static publish key, by its name.
    Key(String),
    /// A token with publish grants.
    Token(Claims),
}

impl Publisher {
    /// Who the publisher is, as the key of its rate limit and the scope of its
    /// idempotency keys: `key:<name>` for a static key, `sub:<subject>` for a token.
    pub fn id(&self) -> String {
        match self {
            Publisher::Key(name) => format!("key:{name}"),
            Publisher::Token(c) => format!("sub:{}", c.subject.as_deref().unwrap_or("")),
        }
    }

    fn claims(&self) -> Option<&Claims> {
        match self {
            Publisher::Token(c) => Some(c),
            Publisher::Key(_) => None,
        }
    }
}

/// Policy, before the body: a static publish key, or else a token (when tokens are
/// configured and the bearer looks like a JWT); then the publisher's rate limit.
pub fn authorize(shared: &Shared, live: &Live, headers: &HeaderMap) -> Result<Publisher, ApiError> {
    let publisher = match keys::check_key(headers, &live.publish_keys) {
        Ok(name) => Publisher::Key(name),
        Err(KeyError::Invalid) if live.verifier.is_enabled() => {
            let token = keys::bearer(headers).unwrap_or("");
            if token.split('.').count() != 3 {
                return Err(KeyRole::Publish.error(KeyError::Invalid));
            }
            let claims = live.verifier.verify(token)?;
            if claims.publish.is_empty() {
                // Refused before the body: a subscriber's token never has one read.
                return Err(ApiError::auth(
                    AuthFailure::ChannelForbidden,
                    "the token grants no channel to publish to",
                ));
            }
            Publisher::Token(claims)
        }
        Err(e) => return Err(KeyRole::Publish.error(e)),
    };
    let limits = &live.config.rate_limits;
    if let Some(rate) = limits.publishes_per_second {
        shared
            .publish_rate
            .take(&publisher.id(), rate, limits.publish_burst, Instant::now())
            .map_err(|wait| rate_limited(wait, "too many publishes; slow down"))?;
    }
    Ok(publisher)
}

/// 429 with a `Retry-After` of the wait, rounded up to whole seconds.
fn rate_limited(wait: std::time::Duration, message: &str) -> ApiError {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    ApiError::refused(
        RefusalReason::RateLimited,
        message,
        Some(secs.clamp(1, u64::from(u32::MAX)) as u32),
    )
}

/// Policy, after the parse: every target channel must be open to this publisher.
pub fn check_channels(
    live: &Live,
    publisher: &Publisher,
    request: &PublishRequest,
) -> Result<(), ApiError> {
    for channel in request.events.iter().flat_map(|e| e.channels.iter()) {
        access::may_publish(&live.config, publisher.claims(), channel)?;
    }
    Ok(())
}

/// The acceptance step: hands the events to the broker as `publisher`'s (whose
/// idempotency keys they are), counts them, and returns the JSON answer (`{"id"}` for
/// one event, `{"ids"}` for a batch).
pub async fn accept(
    shared: &Shared,
    publisher: &Publisher,
    request: PublishRequest,
) -> Result<String, ApiError> {
    let is_batch = request.is_batch;
    let published = shared
        .broker
        .publish(&publisher.id(), request.events)
        .await
        .map_err(|e| match e {
            PublishError::ChannelLimit { max_channels } => ApiError::refused(
                RefusalReason::ChannelLimit,
                format!("the gateway holds its maximum of {max_channels} channels"),
                Some(5),
            ),
            PublishError::IdempotencyConflict { index } => {
                let conflict = ApiError::refused(
                    RefusalReason::IdempotencyConflict,
                    "this idempotency_key was already used for a different event (channels, \
                     event, data or exclude_subject differ); nothing was published",
                    None,
                );
                if is_batch {
                    conflict.in_context(&format!("events[{index}]"))
                } else {
                    conflict
                }
            }
            PublishError::Unavailable(why) => ApiError::upstream("broker_unavailable", why),
        })?;
    shared
        .metrics
        .events_published_total
        .with_label_values(&["http"])
        .inc_by(published.new_events as u64);
    let ids = published.ids;
    let answer = if is_batch {
        serde_json::json!({"ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()})
    } else {
        serde_json::json!({"id": ids[0].to_string()})
    };
    Ok(answer.to_string())
}

/// Event names starting with this are the gateway's own (`ssegate.resync`).
pub const RESERVED_EVENT_PREFIX: &str = "ssegate.";

/// Longest event name, idempotency key or subject, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// A parsed publish request.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    /// The events, in order.
    pub events: Vec<PreparedEvent>,
    /// True for the `{"events": […]}` form, answered with `{"ids": […]}`.
    pub is_batch: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    channel: Option<String>,
    channels: Option<Vec<String>>,
    event: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    idempotency_key: Option<String>,
    exclude_subject: Option<String>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The parse step: parses and validates a publish body against the limits and
/// encodes each event once. JSON data is kept as the text sent (numbers are never
/// rounded through a float), written compact.
pub fn parse(body: &[u8], limits: &LimitsConfig) -> Result<PublishRequest, ApiError> {
    let value: &RawValue = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    let Ok(mut object) =
        serde_json::from_str::<std::collections::HashMap<String, &RawValue>>(value.get())
    else {
        return Err(ApiError::bad_request(
            "invalid_publish",
            "the body must be a JSON object: one event, or {\"events\": [...]}",
        ));
    };
    if let Some(events) = object.remove("events") {
        if !object.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_publish",
                "a batch holds only \"events\"; put channel, data etc. in each event",
            ));
        }
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(events.get()) else {
            return Err(ApiError::bad_request(
                "invalid_publish",
                "\"events\" must be an array",
            ));
        };
        if items.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_publish",
                "\"events\" is empty",
            ));
        }
        if items.len() > limits.max_batch_events {
            return Err(ApiError::refused(
                RefusalReason::BatchTooLarge,
                format!("a batch holds at most {} events", limits.max_batch_events),
                None,
            ));
        }
        let events = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                prepare(item, limits).map_err(|e| e.in_context(&format!("events[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PublishRequest {
            events,
            is_batch: true,
        })
    } else {
        Ok(PublishRequest {
            events: vec![prepare(value, limits)?],
            is_batch: false,
        })
    }
}

fn prepare(value: &RawValue, limits: &LimitsConfig) -> Result<PreparedEvent, ApiError> {
    let item: Item<'_> = serde_json::from_str(value.get())
        .map_err(|e| ApiError::bad_request("invalid_publish", e.to_string()))?;
    if item.id.is_some() {
        return Err(ApiError::bad_request(
            "id_not_allowed",
            "event ids are assigned by the gateway; remove \"id\"",
        ));
    }
    let names = match (item.channel, item.channels) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_publish",
                "give \"channel\" or \"channels\", not both",
            ))
        }
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        (None, None) => Vec::new(),
    };
    let channels = channel_name::validate_list(names, limits.max_channels_per_connection)?;
    if let Some(name) = &item.event {
        check_field("event", name)?;
        if name.starts_with(RESERVED_EVENT_PREFIX) {
            return Err(ApiError::bad_request(
                "event_reserved",
                format!(
                    "event names starting with \"{RESERVED_EVENT_PREFIX}\" are the gateway's own"
                ),
            ));
        }
    }
    if let Some(key) = &item.idempotency_key {
        check_field("idempotency_key", key)?;
    }
    if let Some(subject) = &item.exclude_subject {
        check_field("exclude_subject", subject)?;
    }
    let data = match item.data {
        None => {
            return Err(ApiError::bad_request(
                "data_missing",
                "\"data\" is required",
            ))
        }
        Some(raw) if raw.get().starts_with('"') => EventData::Text(
            serde_json::from_str(raw.get())
                .map_err(|e| ApiError::bad_request("invalid_publish", e.to_string()))?,
        ),
        Some(raw) => EventData::Json(raw.to_owned()),
    };
    let body = encode::event_body(item.event.as_deref(), &data);
    if body.len() > limits.max_event_bytes {
        return Err(ApiError::refused(
            RefusalReason::EventTooLarge,
            format!(
                "the event is {} bytes encoded; the limit is {}",
                body.len(),
                limits.max_event_bytes
            ),
            None,
        ));
    }
    Ok(PreparedEvent {
        channels,
        body,
        idempotency_key: item.idempotency_key,
        exclude_subject: item.exclude_subject.map(Arc::from),
    })
}

fn check_field(what: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_FIELD_LEN {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("\"{what}\" must be 1 to {MAX_FIELD_LEN} bytes"),
        ));
    }
    if !encode::is_safe_field(value) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("\"{what}\" must not contain CR, LF or NUL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig::default()
    }

    fn code(body: &str) -> &'static str {
        parse(body.as_bytes(), &limits()).unwrap_err().code()
    }

    #[test]
    fn single_multi_and_batch() {
        let r = parse(br#"{"channel":"a","event":"m","data":"x"}"#, &limits()).unwrap();
        assert!(!r.is_batch);
        assert_eq!(&*r.events[0].channels[0], "a");
        assert_eq!(&r.events[0].body[..], b"event: m\ndata: x\n\n");
        let r = parse(br#"{"channels":["a","b","a"],"data":{"k":1}}"#, &limits()).unwrap();
        assert_eq!(r.events[0].channels.len(), 2);
        assert_eq!(&r.events[0].body[..], b"data: {\"k\":1}\n\n");
        let r = parse(
            br#"{"events":[{"channel":"a","data":1},{"channel":"b","data":null}]}"#,
            &limits(),
        )
        .unwrap();
        assert!(r.is_batch);
        assert_eq!(&r.events[1].body[..], b"data: null\n\n");
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(code("{"), "invalid_json");
        assert_eq!(code("[]"), "invalid_publish");
        assert_eq!(code(r#"{"data":"x"}"#), "channel_missing");
        assert_eq!(code(r#"{"channels":[],"data":"x"}"#), "channel_missing");
        assert_eq!(code(r#"{"channel":"a b","data":"x"}"#), "channel_invalid");
        assert_eq!(code(r#"{"channel":"a"}"#), "data_missing");
        assert_eq!(
            code(r#"{"channel":"a","data":"x","event":"a\nb"}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"channel":"a","data":"x","event":"a\u0000b"}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"channel":"a","data":"x","event":"ssegate.resync"}"#),
            "event_reserved"
        );
        assert_eq!(
            code(r#"{"channel":"a","data":"x","id":"1\n"}"#),
            "id_not_allowed"
        );
        assert_eq!(
            code(r#"{"channel":"a","data":"x","chanel":"b"}"#),
            "invalid_publish"
        );
        assert_eq!(
            code(r#"{"channel":"a","channels":["b"],"data":"x"}"#),
            "invalid_publish"
        );
        assert_eq!(code(r#"{"events":[],"x":1}"#), "invalid_publish");
        assert_eq!(code(r#"{"events":[]}"#), "invalid_publish");
        let big = format!(r#"{{"channel":"a","data":"{}"}}"#, "x".repeat(70_000));
        assert_eq!(code(&big), "event_too_large");
        let many: Vec<String> = (0..65).map(|i| format!("\"c{i}\"")).collect();
        assert_eq!(
            code(&format!(r#"{{"channels":[{}],"data":1}}"#, many.join(","))),
            "too_many_channels"
        );
    }

    #[test]
    fn batch_errors_say_which_event() {
        let e = parse(
            br#"{"events":[{"channel":"a","data":1},{"channel":"a"}]}"#,
            &limits(),
        )
        .unwrap_err();
        assert!(e.message().starts_with("events[1]:"), "{}", e.message());
    }
}
