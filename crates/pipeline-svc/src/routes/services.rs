//! The logs of a job's services (SPEC §12): a runner appends each service's output by offset
//! (`PUT /internal/v1/jobs/{id}/attempts/{n}/services/{name}/logs?offset=N`, guarded like a
//! job's log: only the runner holding the running attempt, only at the stored end), and
//! `GET /api/v1/jobs/{id}/services/{name}/logs` reads it as `text/plain`, with the offsets,
//! limits, attempts and `416` of a job's log page.

use crate::auth;
use crate::error::ApiError;
use crate::extract::{QueryParams, body_error};
use crate::orchestrator;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::runner::LogAck;
use gitweave_model::expand::ExpandedJob;
use gitweave_model::logs::{self, PageRequest};
use gitweave_model::names::ServiceName;
use gitweave_storage::jobs::{self, JobRow};
use gitweave_storage::service_logs;
use http::HeaderMap;
use uuid::Uuid;

/// Header of a service log answer: where the next page starts.
pub const NEXT_OFFSET: &str = "x-next-offset";
/// Header of a service log answer: `true` once the log can no longer grow and the page
/// reached its end.
pub const COMPLETE: &str = "x-log-complete";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/jobs/{id}/services/{name}/logs", get(page))
}

pub(super) fn runner_routes() -> Router<AppState> {
    Router::new().route(
        "/jobs/{id}/attempts/{attempt}/services/{name}/logs",
        put(append).layer(DefaultBodyLimit::max(super::runners::MAX_CHUNK_BYTES)),
    )
}

fn service_name(raw: &str) -> Result<ServiceName, ApiError> {
    super::valid_name(ServiceName::parse, raw)
}

/// The job's services' names, from its expanded spec.
fn services_of(job: &JobRow) -> Result<Vec<ServiceName>, ApiError> {
    let spec: ExpandedJob = serde_json::from_value(job.spec.clone())
        .map_err(|e| ApiError::Internal(format!("job {} has an unreadable spec: {e}", job.id)))?;
    Ok(spec.services.into_iter().map(|s| s.name).collect())
}

/// 404 unless the job has a service called `name`.
fn check_service(job: &JobRow, name: &ServiceName) -> Result<(), ApiError> {
    let names = services_of(job)?;
    if names.contains(name) {
        return Ok(());
    }
    let has = match names.is_empty() {
        true => "it has no services".to_owned(),
        false => format!(
            "its services are {}",
            names
                .iter()
                .map(ServiceName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(ApiError::NotFound(format!(
        "job {} has no service {name}; {has}",
        job.id
    )))
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    offset: Option<i64>,
    limit: Option<i64>,
    attempt: Option<i32>,
}

async fn page(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let req = PageRequest::new(q.offset, q.limit)
        .map_err(|e| ApiError::BadRequest(error_code::BAD_QUERY, e.to_string()))?;
    let job = super::jobs::load(&state, &id).await?;
    let name = service_name(&name)?;
    check_service(&job, &name)?;
    let (attempt, growing) = super::jobs::attempt_of(&job, q.attempt)?;
    // The end first: a chunk stored between the two reads is then past the end told, not a
    // page longer than its end.
    let end = service_logs::end(&state.pool, job.id, attempt, name.as_str()).await?;
    if !growing && req.offset > end {
        return Err(ApiError::RangeNotSatisfiable(format!(
            "offset {} is past the end of service {name}'s log of job {}'s attempt {attempt}, which ends at byte {end}; ask with an offset of at most {end}",
            req.offset, job.id
        )));
    }
    let chunks = service_logs::window(
        &state.pool,
        job.id,
        attempt,
        name.as_str(),
        req.offset,
        req.limit,
    )
    .await?;
    let page = logs::page(chunks.iter().map(|(o, b)| (*o, b.as_slice())), req);
    let next_offset = page.next_offset();
    let complete = !growing && next_offset >= end;
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/plain".to_owned()),
            (http::header::CACHE_CONTROL, "no-cache".to_owned()),
            (
                http::header::HeaderName::from_static("x-content-type-options"),
                "nosniff".to_owned(),
            ),
            (
                http::header::HeaderName::from_static(NEXT_OFFSET),
                next_offset.to_string(),
            ),
            (
                http::header::HeaderName::from_static(COMPLETE),
                complete.to_string(),
            ),
        ],
        page.bytes,
    )
        .into_response())
}

#[derive(Debug, serde::Deserialize)]
struct OffsetQuery {
    offset: i64,
}

async fn append(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt, name)): Path<(String, i32, String)>,
    QueryParams(q): QueryParams<OffsetQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LogAck>, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let (id, attempt) = super::runners::ids(&id, attempt)?;
    let name = service_name(&name)?;
    let chunk = body.map_err(body_error)?;
    if q.offset < 0 || q.offset.checked_add(chunk.len() as i64).is_none() {
        return Err(ApiError::BadRequest(
            error_code::BAD_QUERY,
            format!(
                "offset must be 0 or more, and offset + the chunk's length at most {}",
                i64::MAX
            ),
        ));
    }
    // The first chunk makes the service's row: only for a service the job has. Later chunks
    // need that row.
    if q.offset == 0 {
        let job = jobs::get(&state.pool, id)
            .await?
            .ok_or_else(|| ApiError::not_found("job", id))?;
        check_service(&job, &name)?;
    }
    if !chunk.is_empty()
        && let Some(end) = service_logs::append(
            &state.pool,
            id,
            attempt,
            runner.id,
            name.as_str(),
            q.offset,
            &chunk,
        )
        .await?
    {
        state
            .metrics
            .inc_by("gitweave_log_bytes_total", "", chunk.len() as u64);
        return Ok(Json(LogAck { next_offset: end }));
    }
    ack_current(&state, runner.id, id, attempt, &name, q.offset, chunk.len()).await
}

/// Why an append wrote nothing: a resent chunk already stored is acknowledged, a gap or a
/// stale attempt refused.
async fn ack_current(
    state: &AppState,
    runner: Uuid,
    id: Uuid,
    attempt: i32,
    name: &ServiceName,
    offset: i64,
    len: usize,
) -> Result<Json<LogAck>, ApiError> {
    let held = jobs::holding(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))?;
    if !held.is_held_by(runner, attempt) {
        return Err(orchestrator::stale(id, attempt));
    }
    let end = service_logs::end(&state.pool, id, attempt, name.as_str()).await?;
    if offset.saturating_add(len as i64) <= end {
        return Ok(Json(LogAck { next_offset: end }));
    }
    Err(ApiError::Conflict(
        error_code::LOG_OFFSET_MISMATCH,
        format!(
            "chunk at offset {offset} does not continue the stored log of service {name} of job {id}, which ends at {end}"
        ),
    ))
}
