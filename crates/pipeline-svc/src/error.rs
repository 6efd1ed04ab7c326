//! The service's one error type, mapped explicitly to status + stable code.

use axum::response::{IntoResponse, Response};
use gitweave_api::error_code;
use gitweave_http::error_response;
use http::StatusCode;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request itself is malformed.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 416: a log offset past the end of a log that can no longer grow.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// 410: it existed and is gone (an expired artifact).
    #[error("{0}")]
    Gone(String),
    /// 416 for a `Range` header (the log's 416 is [`ApiError::RangeNotSatisfiable`]).
    #[error("{0}")]
    BadRange(String),
    /// 422: well-formed but invalid.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// 503: a dependency (Postgres) is not answering.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected database error. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// 404 for a named thing.
    pub fn not_found(what: &str, name: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} {name} not found"))
    }
}

impl From<gitweave_model::limits::LimitExceeded> for ApiError {
    /// A size cap: 422 `limit_exceeded`, the message naming the limit and its value.
    fn from(e: gitweave_model::limits::LimitExceeded) -> Self {
        ApiError::Invalid(error_code::LIMIT_EXCEEDED, e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable(format!(
                    "the database is not answering ({e}); retry shortly"
                ))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, *code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, error_code::UNAUTHENTICATED),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, error_code::NOT_FOUND),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, *code),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, error_code::PAYLOAD_TOO_LARGE),
            ApiError::RangeNotSatisfiable(_) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                error_code::OFFSET_PAST_END,
            ),
            ApiError::Gone(_) => (StatusCode::GONE, error_code::ARTIFACT_EXPIRED),
            ApiError::BadRange(_) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                error_code::RANGE_NOT_SATISFIABLE,
            ),
            ApiError::Invalid(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, error_code::UNAVAILABLE),
            ApiError::Internal(detail) => {
                // Logged once here, inside the request's span (which carries the request id).
                tracing::error!(error = %detail, "internal error");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_code::INTERNAL,
                    "internal error; the details are in pipeline-svc's log",
                );
            }
        };
        error_response(status, code, self.to_string())
    }
}
