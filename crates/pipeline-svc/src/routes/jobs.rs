//! Jobs and their logs: one job, a page of its log, or the raw bytes (optionally followed).

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::follow::{self, Source, Step, Watch};
use crate::settled::Key;
use crate::state::AppState;
use crate::views;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::public::{Job, LogChunk, LogsPage};
use gitweave_model::logs::{self, PageRequest};
use gitweave_model::status::JobStatus;
use gitweave_storage::jobs::{self, JobRow};
use gitweave_storage::logs as stored_logs;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/approve", axum::routing::post(approve))
        .route("/jobs/{id}/logs", get(page))
        .route("/jobs/{id}/logs/raw", get(raw))
}

pub(super) async fn load(state: &AppState, raw_id: &str) -> Result<JobRow, ApiError> {
    let id = crate::resolve::job(state, raw_id).await?;
    jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let job = load(&state, &id).await?;
    Ok(Json(with_waiting(&state, &job).await?))
}

/// The job's view, with `waiting` when it is queued or manual.
async fn with_waiting(state: &AppState, job: &JobRow) -> Result<Job, ApiError> {
    let mut view = [views::job(job)?];
    if matches!(job.status, JobStatus::Queued | JobStatus::Manual) {
        let run = jobs::of_run(&state.pool, job.run_id).await?;
        crate::waiting::fill(state, &run, &[job], &mut view, None).await?;
    }
    let [view] = view;
    Ok(view)
}

fn is_ended(job: &JobRow) -> bool {
    job.status.is_terminal()
}

/// Which attempt's log, and whether that log can still grow.
pub(super) fn attempt_of(job: &JobRow, asked: Option<i32>) -> Result<(i32, bool), ApiError> {
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
        .map_err(|e| ApiError::BadRequest(error_code::BAD_QUERY, e.to_string()))?;
    // Once a job has ended, its current attempt never changes: a page asked without
    // `attempt` is as settled as one asked with it.
    let job_id = crate::resolve::job(&state, &id).await?;
    let settled_key = Key::LogPage {
        job: job_id,
        attempt: q.attempt,
        offset: req.offset,
        limit: req.limit,
    };
    if let Some(body) = state.settled.get(&settled_key) {
        return Ok(super::json_body(body));
    }
    let job = load(&state, &job_id.to_string()).await?;
    let (attempt, growing) = attempt_of(&job, q.attempt)?;
    let chunks = stored_logs::window(&state.pool, job.id, attempt, req.offset, req.limit).await?;
    let page = logs::page(chunks.iter().map(|(o, b)| (*o, b.as_slice())), req);
    let next_offset = page.next_offset();
    // The end of this attempt's log: the job row knows it for the current attempt; an earlier
    // attempt's log is complete by definition.
    let end = if attempt == job.attempt {
        job.log_end
    } else if page.bytes.is_empty() {
        stored_logs::stored_end(&state.pool, job.id, attempt).await?
    } else {
        next_offset
    };
    // A log that can no longer grow has a known end: an offset past it is the caller's
    // mistake, answered with that end. A running job's log may still reach the offset.
    if !growing && req.offset > end {
        return Err(ApiError::RangeNotSatisfiable(format!(
            "offset {} is past the end of job {}'s attempt {attempt} log, which ends at byte {end}; ask with an offset of at most {end}",
            req.offset, job.id
        )));
    }
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
    // Subscribed before the first read, so no update between read and wait is missed.
    let watch = Watch::subscribe(&state.job_updates, job.id);
    let source = RawLog {
        state,
        job_id: job.id,
        attempt,
        offset: 0,
        follow: q.follow,
        // Following a job that has not started yet follows its first attempt once it starts.
        adopt: q.follow && q.attempt.is_none() && attempt == 0,
    };
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/plain"),
            (http::header::CACHE_CONTROL, "no-cache"),
            (
                http::header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        Body::from_stream(follow::stream(source, watch, None)),
    )
        .into_response())
}

/// Where a raw log stream is: one attempt's bytes from `offset`.
struct RawLog {
    state: AppState,
    job_id: Uuid,
    attempt: i32,
    offset: i64,
    follow: bool,
    adopt: bool,
}

impl Source for RawLog {
    async fn next(&mut self) -> Result<Step, std::io::Error> {
        loop {
            let chunks = stored_logs::window(
                &self.state.pool,
                self.job_id,
                self.attempt,
                self.offset,
                RAW_STEP,
            )
            .await
            .map_err(|e| {
                tracing::warn!(job.id = %self.job_id, error = %e, "reading the log failed mid-stream");
                std::io::Error::other(e)
            })?;
            let bytes = logs::window(
                chunks.iter().map(|(o, b)| (*o, b.as_slice())),
                self.offset,
                RAW_STEP,
            );
            if !bytes.is_empty() {
                self.offset += bytes.len() as i64;
                return Ok(Step::Send(Bytes::from(bytes)));
            }
            if !self.follow {
                return Ok(Step::End);
            }
            // Nothing new: stop when this attempt can grow no more, else wait for news.
            let job = jobs::get(&self.state.pool, self.job_id)
                .await
                .map_err(std::io::Error::other)?;
            match job {
                Some(j) if self.adopt && self.attempt == 0 && j.attempt > 0 => {
                    self.attempt = j.attempt;
                }
                Some(j) if j.attempt != self.attempt => return Ok(Step::End),
                // Ended: read again until every stored byte is sent.
                Some(j) if is_ended(&j) => {
                    if self.offset >= j.log_end {
                        return Ok(Step::End);
                    }
                }
                Some(_) => return Ok(Step::Wait),
                None => return Ok(Step::End),
            }
        }
    }
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<gitweave_api::public::Approve>,
) -> Result<Json<Job>, ApiError> {
    let id = crate::resolve::job(&state, &id).await?;
    if body.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        return Err(ApiError::Invalid(
            error_code::INVALID_REASON,
            "reason is limited to 1000 characters".into(),
        ));
    }
    crate::orchestrator::approve(&state, id, body.reason.as_deref(), "api").await?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))?;
    Ok(Json(with_waiting(&state, &job).await?))
}
