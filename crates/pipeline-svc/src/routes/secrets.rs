//! `/repos/{repo}/secrets` and `/secrets` (SPEC §10): set, list and delete secrets. A value
//! is sealed ([`crate::secret_box`]) before it is stored and is never answered, logged or
//! quoted in an error; listing shows names and flags only.

use super::valid_name;
use crate::error::ApiError;
use crate::secret_box::Scope;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::public::{PutSecret, SecretInfo, SecretList};
use gitweave_model::names::{RepoName, SecretName};
use gitweave_storage::repos;
use gitweave_storage::secrets::{self, NewSecret, SecretMeta};
use http::StatusCode;

/// Shortest value: a shorter one cannot be masked in a log without wrecking it.
pub const MIN_VALUE: usize = 8;
/// Longest value.
pub const MAX_VALUE: usize = 64 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos/{repo}/secrets", get(list_repo))
        .route(
            "/repos/{repo}/secrets/{name}",
            put(put_repo).delete(delete_repo),
        )
        .route("/secrets", get(list_global))
        .route("/secrets/{name}", put(put_global).delete(delete_global))
}

fn info(m: SecretMeta) -> SecretInfo {
    SecretInfo {
        name: m.name,
        protected: m.protected,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn secret_name(raw: &str) -> Result<SecretName, ApiError> {
    SecretName::parse(raw)
        .map_err(|e| ApiError::Invalid(error_code::INVALID_SECRET_NAME, e.to_string()))
}

/// The body, checked; no error quotes any part of it (serde's messages may quote the value).
fn parse_body(bytes: &[u8]) -> Result<PutSecret, ApiError> {
    let body: PutSecret = serde_json::from_slice(bytes).map_err(|_| {
        ApiError::Invalid(
            error_code::INVALID_SECRET_VALUE,
            "the body must be a JSON object {\"value\": string, \"protected\"?: boolean}".into(),
        )
    })?;
    let len = body.value.expose().len();
    if !(MIN_VALUE..=MAX_VALUE).contains(&len) {
        return Err(ApiError::Invalid(
            error_code::INVALID_SECRET_VALUE,
            format!(
                "a secret value must be {MIN_VALUE} bytes to 64 KiB ({MAX_VALUE} bytes); this one is {len} bytes (a shorter one cannot be masked in logs)"
            ),
        ));
    }
    Ok(body)
}

async fn repo_scope(state: &AppState, raw: &str) -> Result<Scope, ApiError> {
    let name = valid_name(RepoName::parse, raw)?;
    let row = repos::get(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &name))?;
    Ok(Scope::Repo(row.id))
}

async fn store(
    state: &AppState,
    scope: Scope,
    name: &SecretName,
    bytes: &[u8],
) -> Result<(StatusCode, Json<SecretInfo>), ApiError> {
    let body = parse_body(bytes)?;
    let sealed = state
        .secrets
        .seal(scope, name.as_str(), &body.value)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (meta, created) = secrets::upsert(
        &state.pool,
        &NewSecret {
            repo_id: scope.repo_id(),
            name: name.as_str(),
            protected: body.protected,
            nonce: &sealed.nonce,
            ciphertext: &sealed.ciphertext,
        },
    )
    .await?;
    tracing::info!(secret = %name, global = scope == Scope::Global, created, "secret set");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info(meta))))
}

async fn remove(state: &AppState, scope: Scope, name: &SecretName) -> Result<StatusCode, ApiError> {
    if secrets::delete(&state.pool, scope.repo_id(), name.as_str()).await? {
        tracing::info!(secret = %name, global = scope == Scope::Global, "secret deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("secret", name))
    }
}

async fn listed(state: &AppState, scope: Scope) -> Result<Json<SecretList>, ApiError> {
    let rows = secrets::list(&state.pool, scope.repo_id()).await?;
    Ok(Json(SecretList {
        secrets: rows.into_iter().map(info).collect(),
    }))
}

async fn put_repo(
    State(state): State<AppState>,
    Path((repo, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<SecretInfo>), ApiError> {
    let name = secret_name(&name)?;
    let scope = repo_scope(&state, &repo).await?;
    store(&state, scope, &name, &bytes).await
}

async fn delete_repo(
    State(state): State<AppState>,
    Path((repo, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = secret_name(&name)?;
    let scope = repo_scope(&state, &repo).await?;
    remove(&state, scope, &name).await
}

async fn list_repo(
    State(state): State<AppState>,
    Path(repo): Path<String>,
) -> Result<Json<SecretList>, ApiError> {
    let scope = repo_scope(&state, &repo).await?;
    listed(&state, scope).await
}

async fn put_global(
    State(state): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<SecretInfo>), ApiError> {
    let name = secret_name(&name)?;
    store(&state, Scope::Global, &name, &bytes).await
}

async fn delete_global(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = secret_name(&name)?;
    remove(&state, Scope::Global, &name).await
}

async fn list_global(State(state): State<AppState>) -> Result<Json<SecretList>, ApiError> {
    listed(&state, Scope::Global).await
}
