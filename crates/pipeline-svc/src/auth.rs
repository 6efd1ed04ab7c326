//! Authentication: the API token on `/api/v1` (the same `GITWEAVE_API_TOKEN` as the
//! gateway's, so pipeline-svc is not open to whoever reaches its port), runner registration
//! with the shared token, then a per-runner bearer token `<runner-id>.<secret>` whose secret is
//! stored only as a SHA-256.

use crate::error::ApiError;
use crate::state::{AppState, KnownRunner, RUNNER_RECHECK};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Constant-time string equality. Both sides are hashed first, so not even the length of the
/// expected secret shows in the time taken.
pub fn same_secret(a: &str, b: &str) -> bool {
    hash(a).ct_eq(&hash(b)).into()
}

/// The layer on the `/api/v1` router (webhooks are outside it): when `GITWEAVE_API_TOKEN` is
/// set, a request needs `Authorization: Bearer <token>`, else 401 `unauthenticated`.
pub async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.config.api_token {
        let ok = bearer(request.headers()).is_some_and(|t| same_secret(t, expected));
        if !ok {
            return ApiError::Unauthorized(
                "this API needs Authorization: Bearer <GITWEAVE_API_TOKEN>".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// An authenticated runner.
#[derive(Debug, Clone)]
pub struct RunnerIdentity {
    /// Its id.
    pub id: Uuid,
    /// Its name (the `actor` of its events is `runner:<name>`).
    pub name: String,
    /// Its whole label set.
    pub labels: Arc<gitweave_model::labels::Labels>,
}

impl RunnerIdentity {
    /// `runner:<name>`.
    pub fn actor(&self) -> String {
        format!("runner:{}", self.name)
    }
}

/// Checks a runner's bearer token.
pub async fn runner(state: &AppState, headers: &HeaderMap) -> Result<RunnerIdentity, ApiError> {
    let unauthorized = || ApiError::Unauthorized("a valid runner token is required".into());
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let (id, secret) = token.split_once('.').ok_or_else(unauthorized)?;
    let id = Uuid::parse_str(id).map_err(|_| unauthorized())?;
    let presented = hash(secret);
    let cached = state
        .runner_cache
        .read()
        .ok()
        .and_then(|c| c.get(&id).cloned())
        .filter(|k| k.checked_at.elapsed() < RUNNER_RECHECK);
    let known = match cached {
        Some(k) => k,
        None => {
            let found = gitweave_storage::runners::authenticate(&state.pool, id)
                .await?
                .ok_or_else(|| {
                    state.forget_runners(&[id]);
                    unauthorized()
                })?;
            let found = KnownRunner {
                token_hash: found.token_hash,
                name: found.name,
                labels: Arc::new(crate::wakeups::labels_of(&found.labels)),
                checked_at: Instant::now(),
            };
            if let Ok(mut c) = state.runner_cache.write() {
                c.insert(id, found.clone());
            }
            found
        }
    };
    if bool::from(known.token_hash.ct_eq(&presented)) {
        state.touch_runner(id);
        Ok(RunnerIdentity {
            id,
            name: known.name,
            labels: known.labels,
        })
    } else {
        Err(unauthorized())
    }
}
