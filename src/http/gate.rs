//! The step every request passes before and after its handler, on the hyper router
//! and on the plain HTTP/1.1 path (pushed streams) alike: marking the first request seen, and CORS.

use http::header::HeaderValue;
use http::{HeaderMap, Response};

use crate::http::shared::Live;
use crate::model::error::ApiError;
use crate::policy::cors;
use crate::stream::connection::ConnState;

/// Marks that a request reached the gateway: the connection's first-request deadline
/// no longer applies.
pub fn arrived(conn: &ConnState) {
    conn.first_request_seen
        .store(true, std::sync::atomic::Ordering::Release);
}

/// A request let through the gate; [`Passed::finish`] adds what its answer needs.
#[derive(Debug)]
pub struct Passed {
    /// The allowed `Origin` to answer with (`None`: CORS is off or no `Origin` came).
    origin: Option<HeaderValue>,
}

/// Before the handler: marks the request [`arrived`] and checks its `Origin` (a
/// refused origin is answered 403 before any work).
pub fn enter(conn: &ConnState, live: &Live, headers: &HeaderMap) -> Result<Passed, ApiError> {
    arrived(conn);
    let origin = cors::check(&live.config.cors, headers)?;
    Ok(Passed { origin })
}

impl Passed {
    /// After the handler: the CORS headers of an allowed origin.
    pub fn finish<B>(&self, live: &Live, response: &mut Response<B>) {
        if let Some(origin) = &self.origin {
            cors::decorate(&live.config.cors, origin, response.headers_mut());
        }
    }
}
