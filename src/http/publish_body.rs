//! Parsing and validating `POST /publish` bodies into [`PreparedEvent`]s.
//!
//! One event: `{"channel": "a" | "channels": ["a", "b"], "event"?: "name",
//! "data": <string | JSON>, "idempotency_key"?: "…", "exclude_subject"?: "…"}`.
//! A batch: `{"events": [<event>, …]}`, accepted whole or not at all.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::broker::PreparedEvent;
use crate::config::LimitsConfig;
use crate::model::channel_name;
use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;
use crate::wire::sse::{self as encode, EventData};

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
struct Item {
    channel: Option<String>,
    channels: Option<Vec<String>>,
    event: Option<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    idempotency_key: Option<String>,
    exclude_subject: Option<String>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parses and validates a publish body against the limits.
pub fn parse(body: &[u8], limits: &LimitsConfig) -> Result<PublishRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
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
        let Value::Array(items) = events else {
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
            events: vec![prepare(Value::Object(object), limits)?],
            is_batch: false,
        })
    }
}

fn prepare(value: Value, limits: &LimitsConfig) -> Result<PreparedEvent, ApiError> {
    let item: Item = serde_json::from_value(value)
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
    let channels = validate_channels(names, limits.max_channels_per_connection)?;
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
        Some(Value::String(text)) => EventData::Text(text),
        Some(json) => EventData::Json(json),
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

/// Checks channel names (present, valid, within `max`) and removes duplicates, keeping
/// the first occurrence's order. Shared by publish and subscribe.
pub fn validate_channels(names: Vec<String>, max: usize) -> Result<Vec<Arc<str>>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "channel_missing",
            "name at least one channel",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if !channel_name::is_valid(&name) {
            return Err(ApiError::bad_request(
                "channel_invalid",
                format!(
                    "{:?} is not a channel name: 1 to {} characters from A-Z a-z 0-9 _ - : . @ / =",
                    truncate(&name),
                    channel_name::MAX_LEN
                ),
            ));
        }
        if seen.insert(name.clone()) {
            out.push(Arc::from(name));
        }
    }
    if out.len() > max {
        return Err(ApiError::refused(
            RefusalReason::TooManyChannels,
            format!("at most {max} channels at once"),
            None,
        ));
    }
    Ok(out)
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

/// A name cut for echoing in an error message.
fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
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
