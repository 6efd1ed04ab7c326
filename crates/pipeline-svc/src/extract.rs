//! Extractors whose rejections use the error envelope (axum's own answer in plain text).

use crate::error::ApiError;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use gitweave_api::error_code;
use http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A JSON body; an empty body means `T::default()` (so `curl -X PUT` with no body works).
/// Malformed JSON is a 400 naming line and column; a body of the wrong shape is a 422.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body with the same error mapping as [`JsonBody`].
pub fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Invalid(
            error_code::INVALID_BODY,
            format!("the JSON body is not valid here: {e}"),
        ),
        _ => ApiError::BadRequest(
            error_code::MALFORMED_JSON,
            format!("the body is not valid JSON: {e}"),
        ),
    })
}

/// Maps a body read failure (too large, aborted) to the envelope.
pub fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("the body is too large: {}", e.body_text()))
    } else {
        ApiError::BadRequest(error_code::BAD_BODY, e.body_text())
    }
}

/// Query parameters with an envelope on error.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(error_code::BAD_QUERY, e.body_text()))
    }
}

/// Parses an id from a path segment: a malformed id is a 400 that says so, an unknown one a 404
/// (from the handler).
pub fn parse_id(what: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::BadRequest(
            error_code::INVALID_ID,
            format!("{what} id {raw:?} is not a UUID (e.g. 0192f0c4-5b1e-7c3a-8f00-1b2c3d4e5f60)"),
        )
    })
}
