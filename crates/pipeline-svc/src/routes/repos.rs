//! `/repos` and `/repos/{repo}`.

use super::valid_name;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::views;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use gitweave_api::public::{PutRepo, Repo, RepoList};
use gitweave_model::names::RepoName;
use gitweave_storage::repos::{self, RepoChanges};
use http::StatusCode;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos", get(list))
        .route("/repos/{repo}", get(show).put(put))
}

fn check_clone_url(url: &str) -> Result<(), ApiError> {
    let known_scheme = ["https://", "http://", "git://", "ssh://", "file://"]
        .iter()
        .any(|s| url.starts_with(s))
        || url.starts_with('/')
        || (url.contains('@') && url.contains(':'));
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) || !known_scheme {
        return Err(ApiError::Invalid(
            "invalid_clone_url",
            format!(
                "clone_url {url:?} must be an http(s)://, git://, ssh://, file:// or user@host:path URL, or an absolute path, without spaces"
            ),
        ));
    }
    Ok(())
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
            "invalid_branch",
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
    if let Some(Some(url)) = &body.clone_url {
        check_clone_url(url)?;
    }
    if let Some(b) = &body.default_branch {
        check_branch(b)?;
    }
    if let Some(Some(secret)) = &body.webhook_secret
        && secret.is_empty()
    {
        return Err(ApiError::Invalid(
            "invalid_secret",
            "webhook_secret must not be empty (use null to remove it)".into(),
        ));
    }
    let changes = RepoChanges {
        clone_url: body.clone_url,
        default_branch: body.default_branch,
        webhook_secret: body.webhook_secret,
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
