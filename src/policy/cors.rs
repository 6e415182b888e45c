//! CORS: which browser origins may call the gateway, and the headers that say so.
//!
//! With no allowed origins configured CORS is off: no CORS header is sent and the
//! browser's same-origin rule applies. With origins configured, a request whose
//! `Origin` is allowed gets `Access-Control-Allow-Origin` (the origin itself, with
//! `Vary: Origin`) and, when configured, `Access-Control-Allow-Credentials`; one whose
//! `Origin` is not allowed is refused with 403 `origin_refused` before any work.

use http::header::{self, HeaderMap, HeaderValue};

use crate::config::CorsConfig;
use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;

/// Methods a preflight allows.
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";

/// Request headers a preflight allows.
pub const ALLOW_HEADERS: &str = "authorization, content-type, last-event-id, cache-control";

fn origin_refused() -> ApiError {
    ApiError::refused(
        RefusalReason::OriginRefused,
        "this origin may not call the gateway",
        None,
    )
}

/// The `Origin` to allow for this request: `Ok(None)` when CORS is off or the request
/// has no `Origin`; an error when the origin is not allowed.
pub fn check(cors: &CorsConfig, headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    if cors.allowed_origins.is_empty() {
        return Ok(None);
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let allowed = cors
        .allowed_origins
        .iter()
        .any(|o| o == "*" || origin.as_bytes() == o.as_bytes());
    if allowed {
        Ok(Some(origin.clone()))
    } else {
        Err(origin_refused())
    }
}

/// Adds the CORS headers of an allowed origin to a response.
pub fn decorate(cors: &CorsConfig, origin: &HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// The headers of a preflight (`OPTIONS`) answer for an allowed origin.
pub fn preflight(cors: &CorsConfig, origin: &HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::new();
    decorate(cors, origin, &mut headers);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    headers
}

/// A preflight: allowed origins get 204 with the CORS headers, others 403.
pub fn answer_preflight(cors: &CorsConfig, headers: &HeaderMap) -> Result<HeaderMap, ApiError> {
    match check(cors, headers)? {
        Some(origin) => Ok(preflight(cors, &origin)),
        None => Err(origin_refused()),
    }
}
