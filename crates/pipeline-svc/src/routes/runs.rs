//! Runs: trigger, list (cursor-paginated), show.

use super::{json_body, valid_name};
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::orchestrator::{self, TriggerParams, Triggered};
use crate::settled::Key;
use crate::state::AppState;
use crate::views;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::public::{Run, RunList, TriggerRun};
use gitweave_model::names::RepoName;
use gitweave_model::status::Trigger;
use gitweave_storage::{jobs, repos, runs};
use http::StatusCode;
use std::collections::HashMap;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos/{repo}/pipelines/run", post(trigger))
        .route("/repos/{repo}/pipelines/runs", get(list))
        .route("/pipelines/runs/{id}", get(show))
        .route("/pipelines/runs/{id}/cancel", post(cancel))
        .route("/pipelines/runs/{id}/rerun", post(rerun))
}

/// Loads a run as the API shows it: the run and its jobs from one statement, so a run never
/// shows `queued` next to a `running` job that its claim committed in between.
pub(crate) async fn load(state: &AppState, id: Uuid) -> Result<Run, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (run, jobs) = runs::get_with_jobs(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", id))?;
    drop(conn);
    let mut view = views::run(&run, &jobs)?;
    if !run.status.is_terminal() {
        let rows: Vec<&jobs::JobRow> = jobs.iter().collect();
        crate::waiting::fill(state, &jobs, &rows, &mut view.jobs, None).await?;
    }
    Ok(view)
}

/// 201 with the run and its `Location`.
pub(crate) fn created(run: Run) -> Response {
    let location = format!("/api/v1/pipelines/runs/{}", run.id);
    (
        StatusCode::CREATED,
        [(http::header::LOCATION, location)],
        Json(run),
    )
        .into_response()
}

async fn trigger(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    JsonBody(body): JsonBody<TriggerRun>,
) -> Result<Response, ApiError> {
    let repo = valid_name(RepoName::parse, &repo)?;
    let triggered = orchestrator::trigger(
        &state,
        TriggerParams {
            git_ref: body.git_ref,
            commit: body.commit,
            templates: body.templates,
            inputs: body.inputs,
            ..TriggerParams::new(repo.to_string(), Trigger::Api, "api".into())
        },
    )
    .await?;
    Ok(created(made(&state, &triggered).await?))
}

/// The run a trigger made, as it committed it (loaded only for a repeated delivery).
pub(crate) async fn made(state: &AppState, t: &Triggered) -> Result<Run, ApiError> {
    match t {
        Triggered::Created(c) => {
            // The same view a GET shows, `waiting` included. As it committed, no runner had
            // claimed any of its jobs: no host holds its workspace.
            let mut view = views::run(&c.run, &c.jobs)?;
            if !c.run.status.is_terminal() {
                let rows: Vec<&jobs::JobRow> = c.jobs.iter().collect();
                let hosts = Some((c.run.id, Vec::new()));
                crate::waiting::fill(state, &c.jobs, &rows, &mut view.jobs, hosts).await?;
            }
            Ok(view)
        }
        Triggered::DuplicateDelivery(id) => load(state, *id).await,
        // Only webhooks skip; API triggers are refused instead.
        Triggered::Skipped(reason) => Err(ApiError::Internal(format!(
            "a trigger made no run where one was expected: {reason}"
        ))),
    }
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = crate::resolve::run(&state, &id).await?;
    let key = Key::Run(id);
    if let Some(body) = state.settled.get(&key) {
        return Ok(json_body(body));
    }
    let run = load(&state, id).await?;
    let body =
        Bytes::from(serde_json::to_vec(&run).map_err(|e| ApiError::Internal(e.to_string()))?);
    if run.status.is_terminal() {
        let ended_at = run.ended_at.unwrap_or_else(time::OffsetDateTime::now_utc);
        state.settled.put(key, body.clone(), ended_at);
    }
    Ok(json_body(body))
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let repo = valid_name(RepoName::parse, &repo)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            error_code::BAD_QUERY,
            format!("limit must be 1 to 100, got {limit}"),
        ));
    }
    let before = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            Uuid::parse_str(c).map_err(|_| {
                ApiError::BadRequest(
                    error_code::BAD_QUERY,
                    format!("cursor {c:?} is not one this API returned"),
                )
            })
        })
        .transpose()?;
    let repo_row = repos::get(&state.pool, repo.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &repo))?;
    // One extra row tells whether another page exists. The runs and their jobs come from
    // one snapshot, as in `load`.
    let mut tx = gitweave_storage::snapshot(&state.pool).await?;
    let mut rows = runs::list(&mut *tx, repo_row.id, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_run: HashMap<Uuid, Vec<jobs::JobRow>> = HashMap::new();
    for j in jobs::of_runs(&mut *tx, &ids).await? {
        by_run.entry(j.run_id).or_default().push(j);
    }
    tx.commit().await?;
    let mut runs = Vec::with_capacity(rows.len());
    for r in &rows {
        let jobs = by_run.get(&r.id).map_or(&[][..], Vec::as_slice);
        let mut view = views::run(r, jobs)?;
        if !r.status.is_terminal() {
            let refs: Vec<&jobs::JobRow> = jobs.iter().collect();
            crate::waiting::fill(&state, jobs, &refs, &mut view.jobs, None).await?;
        }
        runs.push(view);
    }
    let next_cursor = more
        .then(|| runs.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(RunList { runs, next_cursor }))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = crate::resolve::run(&state, &id).await?;
    orchestrator::cancel(&state, id, "api").await?;
    Ok((StatusCode::ACCEPTED, Json(load(&state, id).await?)).into_response())
}

async fn rerun(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = crate::resolve::run(&state, &id).await?;
    let new = orchestrator::rerun(&state, id, "api").await?;
    Ok(created(made(&state, &new).await?))
}
