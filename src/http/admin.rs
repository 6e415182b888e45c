//! The admin API: JSON under `/admin/`, behind an admin key. Every list is paginated
//! (`after`, `limit` ≤ [`MAX_PAGE`]), so one request does bounded work however many
//! channels or connections there are.
//!
//! - `GET /admin/channels?after=<name>&limit=N`: channels by name, with subscribers,
//!   last id, history span and recent events/s; `next` names the page after.
//! - `GET /admin/channels/<name>`: one channel.
//! - `GET /admin/connections?after=<id>&limit=N`: open event streams by id, with peer,
//!   protocol, channels, lag, bytes sent, age.
//! - `DELETE /admin/connections/<id>`: closes that stream (reason `kicked`).
//! - `GET /admin/config`: the configuration in force, secrets masked.

use http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::http::shared::{Live, Shared};
use crate::hub::ChannelStats;
use crate::model::error::ApiError;
use crate::model::event_id::EventId;
use crate::observe::registry::StreamRecord;
use crate::policy::keys::{self, KeyRole};

/// The largest page.
pub const MAX_PAGE: usize = 1000;

/// The page size when none is asked for.
pub const DEFAULT_PAGE: usize = 100;

/// What replaces a secret in `/admin/config`.
pub use crate::config::MASK;

/// Answers one admin request: a status and a JSON body.
pub fn handle<B>(
    shared: &Shared,
    live: &Live,
    req: &Request<B>,
) -> Result<(StatusCode, String), ApiError> {
    if live.admin_keys.is_empty() {
        return Err(ApiError::no_such(
            "admin_disabled",
            "the admin API is off (admin.keys is empty)",
        ));
    }
    keys::check_key(req.headers(), &live.admin_keys).map_err(|e| KeyRole::Admin.error(e))?;
    let path = req.uri().path().trim_end_matches('/');
    let query = Query::parse(req.uri().query());
    let method = req.method();
    let body = match path.strip_prefix("/admin").unwrap_or("") {
        "/channels" => get(method, || channels(shared, &query))?,
        "/connections" => get(method, || connections(shared, &query))?,
        "/config" => get(method, || config(live))?,
        other => {
            if let Some(name) = other.strip_prefix("/channels/") {
                get(method, || channel(shared, name))?
            } else if let Some(id) = other.strip_prefix("/connections/") {
                if method != Method::DELETE {
                    return Err(ApiError::method_not_allowed("DELETE"));
                }
                close_connection(shared, id)?
            } else {
                return Err(ApiError::not_found());
            }
        }
    };
    Ok((StatusCode::OK, body.to_string()))
}

fn get(
    method: &Method,
    answer: impl FnOnce() -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    answer()
}

/// `after` and `limit` from a query string.
struct Query {
    after: Option<String>,
    limit: usize,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut q = Query {
            after: None,
            limit: DEFAULT_PAGE,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "after" => q.after = Some(v.into_owned()),
                "limit" => q.limit = v.parse().unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
                _ => {}
            }
        }
        q
    }
}

fn id_text(shared: &Shared, seq: Option<u64>) -> Value {
    seq.map(|seq| {
        json!(EventId {
            epoch: shared.hub.epoch(),
            seq
        }
        .to_string())
    })
    .unwrap_or(Value::Null)
}

fn channel_json(shared: &Shared, c: &ChannelStats) -> Value {
    json!({
        "name": &*c.name,
        "subscribers": c.subscribers,
        "last_id": id_text(shared, c.last_seq),
        "history": {
            "events": c.history_events,
            "bytes": c.history_bytes,
            "first_id": id_text(shared, c.first_seq),
            "span_seconds": c.history_span_seconds,
        },
        "events_per_second": (c.events_per_second * 1000.0).round() / 1000.0,
    })
}

fn channels(shared: &Shared, q: &Query) -> Result<Value, ApiError> {
    let page = shared.hub.channel_page(q.after.as_deref(), q.limit);
    let next = (page.len() == q.limit).then(|| page.last().map(|c| c.name.to_string()));
    Ok(json!({
        "channels": page.iter().map(|c| channel_json(shared, c)).collect::<Vec<_>>(),
        "next": next.flatten(),
    }))
}

fn channel(shared: &Shared, name: &str) -> Result<Value, ApiError> {
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    match shared.hub.channel_stats(&name) {
        Some(c) => Ok(channel_json(shared, &c)),
        None => Err(ApiError::no_such(
            "channel_not_found",
            format!("no channel {name:?}"),
        )),
    }
}

fn connection_json(shared: &Shared, r: &StreamRecord) -> Value {
    let (lag_events, lag_bytes) = r.lag();
    json!({
        "id": r.id,
        "peer": r.peer.to_string(),
        "proto": r.proto,
        "tls": r.tls,
        "channels": r.channels.iter().map(|c| &*c.name).collect::<Vec<_>>(),
        "position": id_text(shared, Some(r.position.load(std::sync::atomic::Ordering::Relaxed))),
        "lag_events": lag_events,
        "lag_bytes": lag_bytes,
        "bytes_sent": r.bytes_sent.load(std::sync::atomic::Ordering::Relaxed),
        "age_seconds": r.opened_at.elapsed().as_secs_f64(),
    })
}

fn connections(shared: &Shared, q: &Query) -> Result<Value, ApiError> {
    let after = match q.after.as_deref() {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "`after` is a connection id"))?,
    };
    let page = shared.registry.page(after, q.limit);
    let next = (page.len() == q.limit).then(|| page.last().map(|r| r.id));
    Ok(json!({
        "connections": page.iter().map(|r| connection_json(shared, r)).collect::<Vec<_>>(),
        "next": next.flatten(),
        "open": shared.registry.len(),
    }))
}

fn close_connection(shared: &Shared, id: &str) -> Result<Value, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_query", "a connection id is a number"))?;
    if shared.registry.kick(id) {
        Ok(json!({ "closed": id }))
    } else {
        Err(ApiError::no_such(
            "connection_not_found",
            format!("no open connection {id}"),
        ))
    }
}

/// The configuration in force. Every secret-bearing field is a
/// [`Secret`](crate::config::Secret), which serializes as [`MASK`]: nothing to mask here.
fn config(live: &Live) -> Result<Value, ApiError> {
    serde_json::to_value(&live.config)
        .map_err(|e| ApiError::internal("config_unavailable", e.to_string()))
}
