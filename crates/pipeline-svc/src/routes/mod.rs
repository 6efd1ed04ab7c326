//! The HTTP surface: `/api/v1` (public, through the gateway), `/internal/v1` (runners), and
//! `/healthz`, `/readyz`, `/metrics`. One module per resource, each owning its routes.

mod artifacts;
mod events;
mod fleet;
mod health;
mod hooks;
mod jobs;
mod repos;
mod runner_runs;
mod runners;
mod runs;
mod secrets;
mod services;
mod templates;

pub(crate) use fleet::slots as runner_slots;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use gitweave_api::error_code;

/// Largest JSON body.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// The whole router.
pub fn router(state: AppState) -> Router {
    // Every route of /api/v1 but the webhook receiver (authenticated by its HMAC) needs the
    // API token when one is set: one layer, added before the webhook route is merged in.
    let api = Router::new()
        .merge(repos::routes())
        .merge(templates::routes())
        .merge(runs::routes())
        .merge(events::routes())
        .merge(jobs::routes())
        .merge(secrets::routes())
        .merge(fleet::routes())
        .merge(services::routes())
        .merge(artifacts::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_api_token,
        ))
        .merge(hooks::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));
    let router = Router::new()
        .nest("/api/v1", api)
        .nest(
            "/internal/v1",
            runners::routes()
                .merge(runner_runs::routes())
                .merge(services::runner_routes())
                .merge(artifacts::runner_routes()),
        )
        .merge(health::routes())
        .fallback(gitweave_http::error::not_found_fallback)
        .with_state(state.clone())
        // Outermost of the router: the framework's own answers (405, 415, …) get the envelope.
        .layer(axum::middleware::from_fn(
            gitweave_http::envelope_rejections,
        ));
    gitweave_http::request_id_layers(router).layer(axum::middleware::from_fn_with_state(
        state.metrics.clone(),
        gitweave_http::metrics::count_requests,
    ))
}

/// Checks a repo or template name from a path.
pub(crate) fn valid_name<T>(
    parse: impl FnOnce(&str) -> Result<T, gitweave_model::names::NameError>,
    raw: &str,
) -> Result<T, crate::error::ApiError> {
    parse(raw)
        .map_err(|e| crate::error::ApiError::BadRequest(error_code::INVALID_NAME, e.to_string()))
}

/// 200 with an already serialised JSON body.
pub(crate) fn json_body(body: bytes::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
