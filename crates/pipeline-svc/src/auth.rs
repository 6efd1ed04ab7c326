//! Runner authentication: registration with the shared token, then a per-runner bearer token
//! `<runner-id>.<secret>` whose secret is stored only as a SHA-256.

use crate::error::ApiError;
use crate::state::AppState;
use http::HeaderMap;
use sha2::{Digest, Sha256};
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

/// Constant-time string equality.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
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
        .and_then(|c| c.get(&id).cloned());
    let (stored, name) = match cached {
        Some(c) => c,
        None => {
            let (name, hash) = gitweave_storage::runners::authenticate(&state.pool, id)
                .await?
                .ok_or_else(unauthorized)?;
            let found = (hash, name);
            if let Ok(mut c) = state.runner_cache.write() {
                c.insert(id, found.clone());
            }
            found
        }
    };
    if bool::from(stored.ct_eq(&presented)) {
        Ok(RunnerIdentity { id, name })
    } else {
        Err(unauthorized())
    }
}
