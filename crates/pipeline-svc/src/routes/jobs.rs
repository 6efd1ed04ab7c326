//! Jobs and their logs: one job, a page of its log, or the raw bytes (optionally followed).

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, parse_id};
use crate::settled::Key;
use crate::state::AppState;
use crate::views;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::public::{Job, LogChunk, LogsPage};
use gitweave_model::logs::{self, PageRequest};
use gitweave_storage::jobs::{self, JobRow};
use gitweave_storage::logs as stored_logs;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/approve", axum::routing::post(approve))
        .route("/jobs/{id}/logs", get(page))
        .route("/jobs/{id}/logs/raw", get(raw))
}

async fn load(state: &AppState, raw_id: &str) -> Result<JobRow, ApiError> {
    let id = parse_id("job", raw_id)?;
    jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(views::job(&load(&state, &id).await?)?))
}

fn is_ended(job: &JobRow) -> bool {
    job.status.is_terminal()
}

/// Which attempt's log, and whether that log can still grow.
fn attempt_of(job: &JobRow, asked: Option<i32>) -> Result<(i32, bool), ApiError> {
    match asked {
        None => Ok((job.attempt, !is_ended(job))),
        Some(a) if a >= 1 && a < job.attempt => Ok((a, false)),
        Some(a) if a == job.attempt => Ok((a, !is_ended(job))),
        Some(a) => Err(ApiError::NotFound(format!(
            "job {} has no attempt {a} (it has {})",
            job.id, job.attempt
        ))),
    }
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    offset: Option<i64>,
    limit: Option<i64>,
    attempt: Option<i32>,
}

async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let req = PageRequest::new(q.offset, q.limit)
        .map_err(|e| ApiError::BadRequest("bad_query", e.to_string()))?;
    // Once a job has ended, its current attempt never changes: a page asked without
    // `attempt` is as settled as one asked with it.
    let settled_key = Key::LogPage {
        job: parse_id("job", &id)?,
        attempt: q.attempt,
        offset: req.offset,
        limit: req.limit,
    };
    if let Some(body) = state.settled.get(&settled_key) {
        return Ok(super::json_body(body));
    }
    let job = load(&state, &id).await?;
    let (attempt, growing) = attempt_of(&job, q.attempt)?;
    let chunks = stored_logs::window(&state.pool, job.id, attempt, req.offset, req.limit).await?;
    let page = logs::page(chunks.iter().map(|(o, b)| (*o, b.as_slice())), req);
    let next_offset = page.next_offset();
    // The end of this attempt's log: the job row knows it for the current attempt; an earlier
    // attempt's log is complete by definition.
    let end = if attempt == job.attempt {
        job.log_end
    } else {
        next_offset
    };
    let complete = !growing && next_offset >= end;
    let chunks = if page.bytes.is_empty() {
        Vec::new()
    } else {
        vec![LogChunk {
            offset: page.offset,
            data: String::from_utf8_lossy(&page.bytes).into_owned(),
        }]
    };
    let body = serde_json::to_vec(&LogsPage {
        job_id: job.id,
        attempt,
        chunks,
        next_offset,
        complete,
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Bytes::from(body);
    if !growing {
        // The job's end, or now for an earlier attempt of a job still running: either is no
        // later than the end of its run.
        let settled_at = job.ended_at.unwrap_or_else(time::OffsetDateTime::now_utc);
        state.settled.put(settled_key, body.clone(), settled_at);
    }
    Ok(super::json_body(body))
}

#[derive(Debug, serde::Deserialize)]
struct RawQuery {
    #[serde(default)]
    follow: bool,
    attempt: Option<i32>,
}

/// Bytes read from the database per step of a raw stream.
const RAW_STEP: i64 = 1024 * 1024;

async fn raw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<RawQuery>,
) -> Result<Response, ApiError> {
    let job = load(&state, &id).await?;
    let (attempt, _) = attempt_of(&job, q.attempt)?;
    let job_id = job.id;
    let follow = q.follow;
    // Following a job that has not started yet follows its first attempt once it starts.
    let adopt = follow && q.attempt.is_none() && attempt == 0;
    // Subscribe before the first read so no update between read and wait is missed.
    let updates = state.job_updates.subscribe();
    let start = Follow {
        state,
        updates,
        attempt,
        offset: 0,
        done: false,
    };
    let stream = futures::stream::unfold(start, move |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let chunks = match stored_logs::window(
                &f.state.pool,
                job_id,
                f.attempt,
                f.offset,
                RAW_STEP,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(job.id = %job_id, error = %e, "reading the log failed mid-stream");
                    f.done = true;
                    return Some((Err(std::io::Error::other(e)), f));
                }
            };
            let bytes = logs::window(
                chunks.iter().map(|(o, b)| (*o, b.as_slice())),
                f.offset,
                RAW_STEP,
            );
            if !bytes.is_empty() {
                f.offset += bytes.len() as i64;
                return Some((Ok(Bytes::from(bytes)), f));
            }
            if !follow {
                return None;
            }
            // Nothing new: stop when this attempt can grow no more, else wait for news.
            match jobs::get(&f.state.pool, job_id).await {
                Ok(Some(j)) if adopt && f.attempt == 0 && j.attempt > 0 => {
                    f.attempt = j.attempt;
                    continue;
                }
                Ok(Some(j)) if j.attempt != f.attempt => return None,
                Ok(Some(j)) if is_ended(&j) => {
                    if f.offset >= j.log_end {
                        return None;
                    }
                    continue;
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => {
                    f.done = true;
                    return Some((Err(std::io::Error::other(e)), f));
                }
            }
            wait_for(&mut f.updates, job_id).await;
        }
    });
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/plain"),
            (http::header::CACHE_CONTROL, "no-cache"),
            (
                http::header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The state of a raw log stream.
struct Follow {
    state: AppState,
    updates: tokio::sync::broadcast::Receiver<Uuid>,
    attempt: i32,
    offset: i64,
    done: bool,
}

/// Waits until `job_id` changes, or a second passes (another pipeline-svc instance may have
/// stored the bytes: its notifications do not reach this process).
async fn wait_for(updates: &mut tokio::sync::broadcast::Receiver<Uuid>, job_id: Uuid) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match updates.recv().await {
                Ok(id) if id == job_id => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => return std::future::pending().await,
            }
        }
    })
    .await;
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<gitweave_api::public::Approve>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id("job", &id)?;
    if body.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        return Err(ApiError::Invalid(
            "invalid_reason",
            "reason is limited to 1000 characters".into(),
        ));
    }
    crate::orchestrator::approve(&state, id, body.reason.as_deref(), "api").await?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))?;
    Ok(Json(views::job(&job)?))
}
