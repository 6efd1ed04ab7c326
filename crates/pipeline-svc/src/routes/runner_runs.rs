//! `POST /internal/v1/runners/active-runs`: which of the runs a runner names are still active.
//! The runner removes the workspaces of the others (`runner-svc`'s workspace sweep).
//! Authenticated with the runner's token, like every other runner call.

use crate::auth;
use crate::error::ApiError;
use crate::extract::{body_error, parse_json};
use crate::state::AppState;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::runner::{ActiveRunsRequest, ActiveRunsResponse, MAX_ACTIVE_RUNS_QUERY};
use gitweave_storage::runs;
use http::HeaderMap;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/runners/active-runs", post(active_runs))
}

async fn active_runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ActiveRunsResponse>, ApiError> {
    auth::runner(&state, &headers).await?;
    let body = body.map_err(body_error)?;
    let req: Option<ActiveRunsRequest> = parse_json(&body)?;
    let req = req.ok_or_else(|| {
        ApiError::BadRequest(
            error_code::MISSING_BODY,
            "a body {\"run_ids\": [...]} is required".into(),
        )
    })?;
    if req.run_ids.len() > MAX_ACTIVE_RUNS_QUERY {
        return Err(ApiError::Invalid(
            error_code::TOO_MANY_RUNS,
            format!(
                "{} run ids asked at once; send at most {MAX_ACTIVE_RUNS_QUERY} per request",
                req.run_ids.len()
            ),
        ));
    }
    let active = runs::active_among(&state.pool, &req.run_ids).await?;
    Ok(Json(ActiveRunsResponse { active }))
}
