//! Error answers: a status, a stable code, a message, and whose fault it is.

use http::StatusCode;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `channel_invalid`; also a metric label.
    pub code: &'static str,
    /// What went wrong, for a human.
    pub message: String,
    /// Whose fault.
    pub fault: Fault,
    /// True when a configured limit refused the request (counted in `refusals_total`).
    pub is_limit: bool,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u32>,
    /// For an authentication or authorization failure, its kind (the label of
    /// `ssegate_auth_failures_total`; more precise than what the client is told).
    pub auth_failure: Option<&'static str>,
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
            is_limit: false,
            allow: None,
            retry_after: None,
            auth_failure: None,
        }
    }

    /// 400: the client's request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message, Fault::Client)
    }

    /// 401: credentials missing or wrong (counted as an auth failure of kind `code`).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            auth_failure: Some(code),
            ..ApiError::new(StatusCode::UNAUTHORIZED, code, message, Fault::Client)
        }
    }

    /// 403: valid credentials that do not allow this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            auth_failure: Some(code),
            ..ApiError::new(StatusCode::FORBIDDEN, code, message, Fault::Client)
        }
    }

    /// A client request over a configured limit (400 or 413).
    pub fn over_limit(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            is_limit: true,
            ..ApiError::new(status, code, message, Fault::Client)
        }
    }

    /// 503: the gateway is at a limit of its own; retry later.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        ApiError {
            is_limit: true,
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                message,
                Fault::Internal,
            )
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

    /// 404.
    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
            Fault::Client,
        )
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

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": self.code, "message": self.message}).to_string()
    }
}
