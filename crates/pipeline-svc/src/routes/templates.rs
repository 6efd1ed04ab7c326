//! `/templates` (versioned YAML pipelines) and `/repos/{repo}/templates` (attachments).

use super::valid_name;
use crate::error::ApiError;
use crate::extract::{JsonBody, body_error};
use crate::orchestrator::input_strings;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::public::{
    AttachTemplate, AttachedTemplate, AttachedTemplateList, Template as TemplateView, TemplateList,
    TemplatePut,
};
use gitweave_model::limits::{Limit, LimitExceeded, MAX_ATTACHED_TEMPLATES};
use gitweave_model::names::{RepoName, TemplateName};
use gitweave_model::template::{MAX_TEMPLATE_BYTES, Template, parse_template};
use gitweave_storage::repos;
use gitweave_storage::templates::{self, Attached, PutOutcome, TemplateDeleted, TemplateRow};
use http::StatusCode;
use std::collections::BTreeMap;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list))
        .route("/templates/{name}", get(show).put(upload).delete(delete))
        .route("/repos/{repo}/templates", get(list_attached))
        .route("/repos/{repo}/templates/{name}", put(attach).delete(detach))
}

fn load(row: &TemplateRow) -> Result<Template, ApiError> {
    serde_json::from_value(row.parsed.clone())
        .map_err(|e| ApiError::Internal(format!("stored template {} does not load: {e}", row.name)))
}

fn view(row: &TemplateRow, with_body: bool) -> Result<TemplateView, ApiError> {
    let t = load(row)?;
    Ok(TemplateView {
        name: row.name.clone(),
        version: row.version,
        jobs: t.jobs.iter().map(|j| j.name.to_string()).collect(),
        body: with_body.then(|| row.body.clone()),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TemplatePut>), ApiError> {
    let name = valid_name(TemplateName::parse, &name)?;
    let body = body.map_err(body_error)?;
    if body.len() > MAX_TEMPLATE_BYTES {
        return Err(ApiError::TooLarge(format!(
            "the template is {} bytes; templates are limited to {MAX_TEMPLATE_BYTES} bytes",
            body.len()
        )));
    }
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::BadRequest(
            error_code::INVALID_ENCODING,
            format!("the template is not UTF-8 text: {e}"),
        )
    })?;
    let template = parse_template(text).map_err(|e| match e.limit {
        Some(_) => ApiError::Invalid(error_code::LIMIT_EXCEEDED, e.to_string()),
        None => ApiError::Invalid(error_code::INVALID_TEMPLATE, e.to_string()),
    })?;
    if state.config.require_image {
        let missing = template.missing_images();
        if !missing.is_empty() {
            return Err(ApiError::Invalid(
                error_code::INVALID_TEMPLATE,
                format!(
                    "job(s) {} have no image; the docker engine needs one (set `image:`)",
                    missing
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let parsed = serde_json::to_value(&template).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let (version, outcome) = templates::put(&mut tx, name.as_str(), text, &parsed).await?;
    tx.commit().await?;
    let status = if outcome == PutOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(TemplatePut {
            name: name.to_string(),
            version,
            jobs: template.jobs.iter().map(|j| j.name.to_string()).collect(),
        }),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    let name = valid_name(TemplateName::parse, &name)?;
    let row = templates::get(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("template", &name))?;
    Ok(Json(view(&row, true)?))
}

async fn list(State(state): State<AppState>) -> Result<Json<TemplateList>, ApiError> {
    let rows = templates::list(&state.pool).await?;
    Ok(Json(TemplateList {
        templates: rows
            .iter()
            .map(|r| view(r, false))
            .collect::<Result<_, _>>()?,
    }))
}

async fn repo_id(state: &AppState, repo: &str) -> Result<uuid::Uuid, ApiError> {
    let name = valid_name(RepoName::parse, repo)?;
    Ok(repos::get(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &name))?
        .id)
}

async fn attach(
    State(state): State<AppState>,
    Path((repo, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<AttachTemplate>,
) -> Result<(StatusCode, Json<AttachedTemplate>), ApiError> {
    let repo_id = repo_id(&state, &repo).await?;
    let name = valid_name(TemplateName::parse, &name)?;
    let row = templates::get(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("template", &name))?;
    let template = load(&row)?;
    let inputs = input_strings(&body.inputs)?;
    if let Some(unknown) = inputs.keys().find(|k| !template.declares(k)) {
        return Err(ApiError::Invalid(
            error_code::UNKNOWN_INPUT,
            format!("template {name} declares no input {unknown:?}"),
        ));
    }
    let inputs_json =
        serde_json::to_value(&inputs).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let outcome = templates::attach(
        &mut tx,
        repo_id,
        name.as_str(),
        &inputs_json,
        MAX_ATTACHED_TEMPLATES as i64,
    )
    .await
    .map_err(|e| match e.as_database_error() {
        // The template (or repo) was deleted since it was read above.
        Some(d) if d.is_foreign_key_violation() => ApiError::NotFound(format!(
            "template {name} or repo {repo} was deleted meanwhile"
        )),
        _ => ApiError::from(e),
    })?;
    if outcome == Attached::Full {
        return Err(LimitExceeded::new(
            Limit::AttachedTemplates,
            MAX_ATTACHED_TEMPLATES,
            format!("repo {repo} already has {MAX_ATTACHED_TEMPLATES} templates attached"),
        )
        .into());
    }
    tx.commit().await?;
    let created = outcome == Attached::Created;
    let attached = templates::attached(&state.pool, repo_id).await?;
    let a = attached
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or_else(|| ApiError::Internal("attached template vanished".into()))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(attached_view(a)?)))
}

fn attached_view(a: &templates::AttachedRow) -> Result<AttachedTemplate, ApiError> {
    let inputs: BTreeMap<String, String> = serde_json::from_value(a.inputs.clone())
        .map_err(|e| ApiError::Internal(format!("stored inputs do not load: {e}")))?;
    Ok(AttachedTemplate {
        name: a.name.clone(),
        position: a.position,
        inputs,
        version: a.version,
    })
}

async fn list_attached(
    State(state): State<AppState>,
    Path(repo): Path<String>,
) -> Result<Json<AttachedTemplateList>, ApiError> {
    let repo_id = repo_id(&state, &repo).await?;
    let rows = templates::attached(&state.pool, repo_id).await?;
    Ok(Json(AttachedTemplateList {
        templates: rows.iter().map(attached_view).collect::<Result<_, _>>()?,
    }))
}

async fn detach(
    State(state): State<AppState>,
    Path((repo, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let repo_id = repo_id(&state, &repo).await?;
    let name = valid_name(TemplateName::parse, &name)?;
    if templates::detach(&state.pool, repo_id, name.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "template {name} is not attached to repo {repo}"
        )))
    }
}

/// `DELETE /templates/{name}`: the template and all its versions go; `409 template_attached`
/// while a repo has it attached. Runs made from it keep their jobs.
async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = valid_name(TemplateName::parse, &name)?;
    let mut tx = state.pool.begin().await?;
    match templates::delete(&mut tx, name.as_str()).await? {
        TemplateDeleted::NotFound => Err(ApiError::not_found("template", &name)),
        TemplateDeleted::Attached(repos) => Err(ApiError::Conflict(
            error_code::TEMPLATE_ATTACHED,
            format!(
                "template {name} is attached to repo(s) {}; detach it first \
                 (DELETE /api/v1/repos/{{repo}}/templates/{name})",
                repos.join(", ")
            ),
        )),
        TemplateDeleted::Deleted => {
            tx.commit().await?;
            tracing::info!(template = %name, "template deleted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
