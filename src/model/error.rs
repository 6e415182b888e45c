//! Error answers: a status, a stable code, a message, and whose fault it is.

use http::StatusCode;

use crate::model::reasons::{AuthFailure, RefusalReason};

/// Whose fault an error is; metrics count errors by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or too much.
    Client,
    /// A service the gateway depends on failed.
    Upstream,
    /// The gateway itself failed or is at its limits.
    Internal,
}

impl Fault {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Internal => "internal",
        }
    }
}

/// An error answered before a stream starts: plain HTTP with a short JSON body
/// `{"error": code, "message": …}`.
///
/// The fields are private: each kind of error has one constructor that sets status,
/// code, fault and what is counted together, so they cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fault: Fault,
    refusal: Option<RefusalReason>,
    allow: Option<&'static str>,
    retry_after: Option<u32>,
    auth_failure: Option<AuthFailure>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        fault: Fault,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fault,
            refusal: None,
            allow: None,
            retry_after: None,
            auth_failure: None,
        }
    }

    /// 400: the client's request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message, Fault::Client)
    }

    /// 404 for a thing the request names that does not exist (or is switched off).
    pub fn no_such(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message, Fault::Client)
    }

    /// 401 or 403 (by `failure`): credentials missing, wrong, or not allowing this.
    /// Counted as an auth failure of kind `failure`; the client is told
    /// [`AuthFailure::code`].
    pub fn auth(failure: AuthFailure, message: impl Into<String>) -> Self {
        let status = match failure {
            AuthFailure::ChannelForbidden | AuthFailure::PublishForbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError {
            auth_failure: Some(failure),
            ..ApiError::new(status, failure.code(), message, Fault::Client)
        }
    }

    /// A configured limit refused the request (counted in `refusals_total`; the code is
    /// the reason's label). The status and fault follow from the reason: the gateway's
    /// own limits are 503 and its fault, the client's are 4xx and the client's.
    pub fn refused(
        reason: RefusalReason,
        message: impl Into<String>,
        retry_after: Option<u32>,
    ) -> Self {
        let (status, fault) = match reason {
            RefusalReason::MaxConnections
            | RefusalReason::ChannelLimit
            | RefusalReason::Draining => (StatusCode::SERVICE_UNAVAILABLE, Fault::Internal),
            RefusalReason::MaxConnectionsPerIp
            | RefusalReason::MaxStreamsPerConnection
            | RefusalReason::RateLimited => (StatusCode::TOO_MANY_REQUESTS, Fault::Client),
            RefusalReason::HeaderTimeout
            | RefusalReason::TlsHandshakeTimeout
            | RefusalReason::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, Fault::Client),
            RefusalReason::HeaderTooLarge => {
                (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Fault::Client)
            }
            RefusalReason::TooManyChannels | RefusalReason::PipeliningRefused => {
                (StatusCode::BAD_REQUEST, Fault::Client)
            }
            RefusalReason::BodyTooLarge
            | RefusalReason::EventTooLarge
            | RefusalReason::BatchTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Fault::Client),
            RefusalReason::OriginRefused => (StatusCode::FORBIDDEN, Fault::Client),
            RefusalReason::IdempotencyConflict => (StatusCode::CONFLICT, Fault::Client),
        };
        ApiError {
            refusal: Some(reason),
            retry_after,
            ..ApiError::new(status, reason.as_str(), message, fault)
        }
    }

    /// 503 because a service the gateway depends on failed.
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                message,
                Fault::Upstream,
            )
        }
    }

    /// 500: the gateway failed.
    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message,
            Fault::Internal,
        )
    }

    /// 404 for a URL the gateway does not serve.
    pub fn not_found() -> Self {
        ApiError::no_such("not_found", "no such endpoint")
    }

    /// 405 with the methods that are allowed.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this endpoint accepts {allow}"),
                Fault::Client,
            )
        }
    }

    /// The same error with `context` in front of its message (e.g. which event of a
    /// batch it is about).
    pub fn in_context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code, e.g. `channel_invalid`; also a metric label.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What went wrong, for a human.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whose fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The limit that refused the request, if one did (counted in `refusals_total`).
    pub fn refusal(&self) -> Option<RefusalReason> {
        self.refusal
    }

    /// For an authentication or authorization failure, its kind (the label of
    /// `ssegate_auth_failures_total`; more precise than what the client is told).
    pub fn auth_failure(&self) -> Option<AuthFailure> {
        self.auth_failure
    }

    /// The `Allow` header of a 405.
    pub fn allow(&self) -> Option<&'static str> {
        self.allow
    }

    /// The `Retry-After` header, in seconds.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": self.code, "message": self.message}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_reason_as_code() {
        for reason in RefusalReason::ALL {
            let e = ApiError::refused(reason, "x", None);
            assert_eq!(e.code(), reason.as_str());
            assert_eq!(e.refusal(), Some(reason));
            let internal = e.status() == StatusCode::SERVICE_UNAVAILABLE;
            assert_eq!(e.fault() == Fault::Internal, internal, "{reason:?}");
            assert!(internal || e.status().is_client_error(), "{reason:?}");
        }
    }

    #[test]
    fn auth_failures_set_status_code_and_kind_together() {
        let e = ApiError::auth(AuthFailure::TokenBadSignature, "the token is not valid");
        assert_eq!(
            (e.status(), e.code(), e.auth_failure()),
            (
                StatusCode::UNAUTHORIZED,
                "token_invalid",
                Some(AuthFailure::TokenBadSignature)
            )
        );
        let e = ApiError::auth(AuthFailure::ChannelForbidden, "no");
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(e.code(), "channel_forbidden");
    }
}
