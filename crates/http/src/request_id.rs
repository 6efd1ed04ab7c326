//! `x-request-id`: taken from the caller when present, made up (UUID v4) when not, echoed on
//! the response and recorded on the request's tracing span.

use axum::Router;
use http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header that carries the request id between services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Wraps a router with request-id assignment, a tracing span per request that carries the id,
/// and propagation of the id onto the response. Layers apply outside-in: the id is set before
/// the span is made.
pub fn request_id_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %id,
                )
            }),
        )
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}
