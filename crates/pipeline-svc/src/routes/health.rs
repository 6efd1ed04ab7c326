//! `/healthz` (alive), `/readyz` (Postgres answers), `/metrics`.

use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gitweave_http::error_response;
use http::StatusCode;
use std::time::Duration;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(_)) => {
            Json(serde_json::json!({ "status": "ready", "database": "ok" })).into_response()
        }
        Ok(Err(e)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the database does not answer: {e}"),
        ),
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database did not answer within 2 s",
        ),
    }
}

/// The counters and histograms this instance recorded, then the queue and the fleet as they
/// are now ([`crate::fleet_metrics`]).
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&crate::fleet_metrics::render(&state).await);
    gitweave_http::metrics::text_response(text)
}
