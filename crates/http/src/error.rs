//! The JSON error envelope: `{"error": {"code": "not_found", "message": "…"}}` (SPEC §5).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The outer object of every error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// A stable, machine-readable `code` and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// snake_case, stable across releases (`not_found`, `invalid_template`, …).
    pub code: String,
    /// Human-readable; never contains internal details such as SQL errors.
    pub message: String,
}

/// Builds an error response with the envelope.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: code.to_owned(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

/// The envelope for a route nobody serves, so a typo in a path gets the same shape as every
/// other error.
pub async fn not_found_fallback(uri: http::Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}
