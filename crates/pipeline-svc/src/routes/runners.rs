//! The internal runner protocol (`/internal/v1`): register, claim (woken long-poll), start,
//! heartbeat, log chunks by offset, finish, and hand-back (a stopping runner returns an attempt
//! it could not finish). Every job write names `(job, attempt)` and is refused (409) unless the
//! calling runner holds that attempt. While pipeline-svc shuts down, claims answer "no job" at
//! once, so no runner's long-poll holds the shutdown up.

use crate::auth::{self, RunnerIdentity};
use crate::error::ApiError;
use crate::extract::{QueryParams, body_error, parse_id, parse_json};
use crate::orchestrator;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::runner::{
    AttemptState, ClaimRequest, FinishRequest, HandBackRequest, LogAck, RegisterRequest,
    RegisterResponse,
};
use gitweave_storage::{jobs, logs, runners};
use http::{HeaderMap, StatusCode};
use rand::Rng;
use std::time::Duration;
use uuid::Uuid;

/// Largest log chunk a runner may send at once.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Longest long-poll.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Even without a wake-up, look again this often (backoffs ending, other instances' jobs).
const RECHECK: Duration = Duration::from_secs(1);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runners/register", post(register))
        .route("/runners/claim", post(claim))
        .route("/runners/stop", post(stop))
        .route("/jobs/{id}/attempts/{attempt}/heartbeat", post(heartbeat))
        .route("/jobs/{id}/attempts/{attempt}/finish", post(finish))
        .route("/jobs/{id}/attempts/{attempt}/hand-back", post(hand_back))
        .route(
            "/jobs/{id}/attempts/{attempt}/logs",
            put(append_log).layer(DefaultBodyLimit::max(MAX_CHUNK_BYTES)),
        )
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    match &state.config.runner_registration_token {
        Some(expected) => {
            let ok = auth::bearer(&headers).is_some_and(|t| auth::same_secret(t, expected));
            if !ok {
                return Err(ApiError::Unauthorized(
                    "runner registration needs Authorization: Bearer <RUNNER_REGISTRATION_TOKEN>"
                        .into(),
                ));
            }
        }
        None if state.config.insecure_open_registration => {}
        None => {
            return Err(ApiError::Unauthorized(
                "runner registration is closed: set RUNNER_REGISTRATION_TOKEN on pipeline-svc and runner-svc (or, on a laptop only, PIPELINE_INSECURE_OPEN_REGISTRATION=true on pipeline-svc)".into(),
            ));
        }
    }
    let body = body.map_err(body_error)?;
    let req: Option<RegisterRequest> = parse_json(&body)?;
    let req = req.ok_or_else(|| {
        ApiError::BadRequest(
            error_code::MISSING_BODY,
            "a registration body is required".into(),
        )
    })?;
    if req.name.is_empty() || req.name.len() > 128 || req.capacity == 0 {
        return Err(ApiError::Invalid(
            error_code::INVALID_RUNNER,
            "runner name must be 1 to 128 characters and capacity at least 1".into(),
        ));
    }
    let labels = registered_labels(&req)?;
    let id = Uuid::now_v7();
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let taken = runners::register(
        &mut *state.pool.acquire().await?,
        &runners::NewRunner {
            id,
            name: &req.name,
            token_hash: &auth::hash(&secret),
            capacity: i32::try_from(req.capacity).unwrap_or(i32::MAX),
            engine: &req.engine,
            labels: &labels,
            host_id: req.host_id.as_deref(),
        },
    )
    .await?;
    if !taken.revoked.is_empty() {
        state.forget_runners(&taken.revoked);
        // Their long-polls end now instead of taking a job for a revoked token.
        state.wake_all_runners();
        tracing::warn!(
            runner.name = %req.name,
            revoked = ?taken.revoked,
            jobs_released = taken.jobs_released,
            "a new registration took this runner name over; the earlier registration's token is revoked"
        );
    }
    tracing::info!(runner.id = %id, runner.name = %req.name, capacity = req.capacity, engine = %req.engine, labels = %labels, "runner registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            runner_id: id,
            token: format!("{id}.{secret}"),
            // Often enough that a cancel reaches a running job within about a second.
            heartbeat_interval_ms: (state.config.lease_ms / 3).clamp(100, 1_000),
        }),
    ))
}

async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let body = body.map_err(body_error)?;
    let req: Option<ClaimRequest> = parse_json(&body)?;
    let wait = Duration::from_millis(req.as_ref().map_or(0, |r| r.wait_ms)).min(MAX_WAIT);
    let mut of = req.map_or_else(orchestrator::ClaimOf::default, |r| orchestrator::ClaimOf {
        claim_id: r.claim_id,
        repeat: r.repeat,
    });
    let began = tokio::time::Instant::now();
    let deadline = began + wait;
    // Woken by the release of a job this runner's labels satisfy (or by a stop).
    let waiting = state.waiters.register(runner.labels.clone());
    loop {
        // Armed before looking, so a wake-up between the look and the wait is not lost.
        waiting.arm();
        // A runner lost while this request waited may be cut off: the answer could go to a
        // connection nobody reads. It gets no job; a runner that is there asks again.
        if state.is_stopping(runner.id)
            || state.is_shutting_down()
            || state.lost_since(runner.id, began.into_std())
        {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let claimed = {
            let lock = state.claim_lock(runner.id);
            let _turn = lock.lock().await;
            orchestrator::claim(&state, &runner, began.elapsed(), of).await?
        };
        // Its first look answered the repeat: the rest are ordinary looks.
        of.repeat = false;
        if let Some(a) = claimed {
            return Ok(Json(a).into_response());
        }
        // A runner waiting here is in contact.
        state.touch_runner(runner.id);
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let nap = (deadline - now).min(RECHECK);
        let _ = tokio::time::timeout(nap, waiting.woken()).await;
    }
}

/// A runner stops taking jobs: its waiting long-polls return 204 now, so it can shut down
/// without abandoning a claim in flight (which could strand a job until its lease ran out).
async fn stop(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    if let Ok(mut s) = state.stopping_runners.write() {
        s.insert(runner.id);
    }
    state.wake_all_runners();
    tracing::info!(runner.name = %runner.name, "runner stopping; no more jobs for it");
    Ok(StatusCode::NO_CONTENT)
}

/// A registration's whole label set (its own labels and the implicit `engine`, `os`, `arch`
/// and `runner`), or `422 invalid_runner` naming what is wrong.
fn registered_labels(req: &RegisterRequest) -> Result<serde_json::Value, ApiError> {
    use gitweave_model::labels;
    let invalid = |m: String| ApiError::Invalid(error_code::INVALID_RUNNER, m);
    if !labels::ENGINES.contains(&req.engine.as_str()) {
        return Err(invalid(format!(
            "engine must be one of {}, not {:?}",
            labels::ENGINES.join(", "),
            req.engine
        )));
    }
    if req.labels.len() > labels::MAX_LABELS {
        return Err(invalid(format!(
            "a runner may set at most {} labels",
            labels::MAX_LABELS
        )));
    }
    for (k, v) in &req.labels {
        labels::check_user_label(k, v).map_err(invalid)?;
    }
    let os = req.os.as_deref().unwrap_or("linux");
    let arch = req.arch.as_deref().unwrap_or(std::env::consts::ARCH);
    labels::check_value("os", os).map_err(invalid)?;
    labels::check_value("arch", arch).map_err(invalid)?;
    if let Some(h) = &req.host_id
        && (h.is_empty() || h.len() > 128 || h.chars().any(char::is_control))
    {
        return Err(invalid(
            "host_id must be 1 to 128 characters, without control characters".into(),
        ));
    }
    let all = labels::runner_labels(
        &req.labels,
        labels::RunnerIdentity {
            engine: &req.engine,
            os,
            arch,
            name: &req.name,
        },
    );
    Ok(serde_json::to_value(all).unwrap_or_default())
}

pub(super) fn ids(id: &str, attempt: i32) -> Result<(Uuid, i32), ApiError> {
    let id = parse_id("job", id)?;
    if attempt < 1 {
        return Err(ApiError::BadRequest(
            error_code::BAD_ATTEMPT,
            "attempt must be 1 or more".into(),
        ));
    }
    Ok((id, attempt))
}

async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
) -> Result<Json<AttemptState>, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let (id, attempt) = ids(&id, attempt)?;
    match jobs::heartbeat(
        &state.pool,
        id,
        attempt,
        runner.id,
        state.config.lease_ms as i64,
    )
    .await?
    {
        Some(cancel) => Ok(Json(AttemptState {
            cancel,
            run_ended: false,
        })),
        None => Err(orchestrator::stale(id, attempt)),
    }
}

#[derive(Debug, serde::Deserialize)]
struct OffsetQuery {
    offset: i64,
}

async fn append_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
    QueryParams(q): QueryParams<OffsetQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LogAck>, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let (id, attempt) = ids(&id, attempt)?;
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
    if chunk.is_empty() {
        return ack_current(&state, &runner, id, attempt, q.offset, 0).await;
    }
    match logs::append(&state.pool, id, attempt, runner.id, q.offset, &chunk).await? {
        Some(end) => {
            state
                .metrics
                .inc_by("gitweave_log_bytes_total", "", chunk.len() as u64);
            state.job_changed(id);
            Ok(Json(LogAck { next_offset: end }))
        }
        None => ack_current(&state, &runner, id, attempt, q.offset, chunk.len()).await,
    }
}

/// Explains why an append wrote nothing: a resent chunk we already have is acknowledged
/// (idempotent by offset), a gap or a stale attempt is refused.
async fn ack_current(
    state: &AppState,
    runner: &RunnerIdentity,
    id: Uuid,
    attempt: i32,
    offset: i64,
    len: usize,
) -> Result<Json<LogAck>, ApiError> {
    let held = jobs::holding(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))?;
    if !held.is_held_by(runner.id, attempt) {
        return Err(orchestrator::stale(id, attempt));
    }
    // Saturating: an offset near i64::MAX must not overflow (it is a gap, refused below).
    if offset.saturating_add(len as i64) <= held.log_end {
        return Ok(Json(LogAck {
            next_offset: held.log_end,
        }));
    }
    Err(ApiError::Conflict(
        error_code::LOG_OFFSET_MISMATCH,
        format!(
            "chunk at offset {offset} does not continue the stored log of job {id}, which ends at {}",
            held.log_end
        ),
    ))
}

async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AttemptState>, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let (id, attempt) = ids(&id, attempt)?;
    let body = body.map_err(body_error)?;
    let req: Option<FinishRequest> = parse_json(&body)?;
    let req = req.ok_or_else(|| {
        ApiError::BadRequest(error_code::MISSING_BODY, "a finish body is required".into())
    })?;
    // A finish repeated after its first try committed is answered as recorded, by the
    // orchestrator.
    Ok(Json(
        orchestrator::finish(&state, &runner, id, attempt, &req).await?,
    ))
}

async fn hand_back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let (id, attempt) = ids(&id, attempt)?;
    let body = body.map_err(body_error)?;
    let req: Option<HandBackRequest> = parse_json(&body)?;
    let req = req.ok_or_else(|| {
        ApiError::BadRequest(
            error_code::MISSING_BODY,
            "a hand-back body is required".into(),
        )
    })?;
    orchestrator::hand_back(&state, &runner, id, attempt, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}
