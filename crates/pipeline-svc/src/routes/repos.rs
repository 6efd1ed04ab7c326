//! `/repos` and `/repos/{repo}`. Clone URLs are checked before they are stored (remote forms
//! only, or a local repository under `RUNNER_LOCAL_REPO_ROOT`) and never shown with their
//! credentials.

use super::valid_name;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::local_repo;
use crate::state::AppState;
use crate::views;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use gitweave_api::error_code;
use gitweave_api::public::{PutRepo, Repo, RepoList};
use gitweave_model::clone_url::{CloneUrl, Shown};
use gitweave_model::names::RepoName;
use gitweave_storage::repos::{self, RepoChanges, RepoDeleted};
use http::StatusCode;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos", get(list))
        .route("/repos/{repo}", get(show).put(put).delete(delete))
}

/// A clone URL as it is stored: a remote URL as given, a local one as its resolved
/// `file://` path once it is known to be a git repository under `RUNNER_LOCAL_REPO_ROOT`.
async fn accepted_clone_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    let invalid = |message: String| ApiError::Invalid(error_code::INVALID_CLONE_URL, message);
    match CloneUrl::parse(raw).map_err(|e| invalid(e.to_string()))? {
        CloneUrl::Remote(url) => Ok(url),
        CloneUrl::Local(path) => {
            let root = state.config.local_repo_root.clone();
            let resolved =
                tokio::task::spawn_blocking(move || local_repo::resolve(root.as_deref(), &path))
                    .await
                    .map_err(|e| ApiError::Internal(format!("local clone_url check: {e}")))?
                    .map_err(|e| invalid(e.to_string()))?;
            let stored = resolved
                .to_str()
                .map(|p| format!("file://{p}"))
                .ok_or_else(|| invalid(format!("the path {resolved:?} is not UTF-8")))?;
            // The resolved path must itself be an acceptable URL (a link may lead to a name
            // with spaces or percent signs).
            match CloneUrl::parse(&stored) {
                Ok(CloneUrl::Local(_)) => Ok(stored),
                Ok(CloneUrl::Remote(_)) => Err(invalid(format!(
                    "clone_url {} does not resolve to a local path",
                    Shown(raw)
                ))),
                Err(e) => Err(invalid(e.to_string())),
            }
        }
    }
}

fn check_branch(b: &str) -> Result<(), ApiError> {
    let ok = !b.is_empty()
        && b.len() <= 255
        && !b.contains("..")
        && !b.starts_with('-')
        && !b
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            error_code::INVALID_BRANCH,
            format!("default_branch {b:?} is not a valid git branch name"),
        ))
    }
}

async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PutRepo>,
) -> Result<(StatusCode, Json<Repo>), ApiError> {
    let name = valid_name(RepoName::parse, &name)?;
    let clone_url = match body.clone_url {
        Some(Some(url)) => Some(Some(accepted_clone_url(&state, &url).await?)),
        other => other,
    };
    if let Some(b) = &body.default_branch {
        check_branch(b)?;
    }
    if let Some(Some(secret)) = &body.webhook_secret
        && secret.is_empty()
    {
        return Err(ApiError::Invalid(
            error_code::INVALID_SECRET,
            "webhook_secret must not be empty (use null to remove it)".into(),
        ));
    }
    if let Some(globs) = &body.protected_refs {
        crate::orchestrator::protected_matcher(globs)
            .map_err(|m| ApiError::Invalid(error_code::INVALID_PROTECTED_REF, m))?;
    }
    let changes = RepoChanges {
        clone_url,
        default_branch: body.default_branch,
        webhook_secret: body.webhook_secret,
        protected_refs: body.protected_refs,
    };
    let (row, created) = repos::upsert(&state.pool, name.as_str(), &changes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(views::repo(&row))))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Repo>, ApiError> {
    let name = valid_name(RepoName::parse, &name)?;
    let row = repos::get(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &name))?;
    Ok(Json(views::repo(&row)))
}

async fn list(State(state): State<AppState>) -> Result<Json<RepoList>, ApiError> {
    let rows = repos::list(&state.pool).await?;
    Ok(Json(RepoList {
        repos: rows.iter().map(views::repo).collect(),
    }))
}

/// `DELETE /repos/{repo}`: the repo and everything of its own go (runs, jobs, logs, events,
/// webhook deliveries, attachments); `409 run_active` while one of its runs has not ended.
async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = valid_name(RepoName::parse, &name)?;
    let repo_id = repos::get(&state.pool, name.as_str()).await?.map(|r| r.id);
    let mut tx = state.pool.begin().await?;
    match repos::delete(&mut tx, name.as_str()).await? {
        RepoDeleted::NotFound => Err(ApiError::not_found("repo", &name)),
        RepoDeleted::Active(runs) => Err(ApiError::Conflict(
            error_code::RUN_ACTIVE,
            format!(
                "repo {name} has runs that have not ended ({}); cancel them \
                 (POST /api/v1/pipelines/runs/{{id}}/cancel), wait for them to end, then delete again",
                runs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        RepoDeleted::Deleted { runs, jobs } => {
            tx.commit().await?;
            // Their settled answers must not be served any more from this instance's cache.
            state.settled.forget(&runs, &jobs);
            // Its git mirror goes too (docs/ARCHITECTURE.md, "Repo mirrors"); a failure
            // leaves a directory no repo id will name again, so it is logged, not answered.
            if let Some(id) = repo_id
                && let Err(e) = state.mirrors.remove_repo(id).await
            {
                tracing::warn!(repo = %name, error = %e, "the repo's mirror could not be removed");
            }
            tracing::info!(repo = %name, runs = runs.len(), "repo deleted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
