//! The secrets of a claimed job (SPEC §10): each name it lists, the repo's secret of that
//! name or else the global one, opened for its assignment only. A name that is set nowhere,
//! or a protected secret on a run of a ref that is not protected, is a `config_error` of the
//! job before it starts: the reason names the secret (and the ref), never a value.

use crate::error::ApiError;
use crate::secret_box::Scope;
use crate::state::AppState;
use gitweave_api::runner::JobSecret;
use gitweave_model::template::SecretRef;
use gitweave_storage::{repos, secrets};

/// Why a job cannot have its secrets: the sentence of its `config_error`.
pub struct Refused(pub String);

/// The branch or tag name of a ref, without `refs/heads/` or `refs/tags/`.
fn short_ref(git_ref: &str) -> &str {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
}

/// Opens the secrets `wanted` names for a job of `repo` running `git_ref`.
pub async fn resolve(
    state: &AppState,
    repo: &str,
    git_ref: &str,
    wanted: &[SecretRef],
) -> Result<Result<Vec<JobSecret>, Refused>, ApiError> {
    if wanted.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let row = repos::get(&state.pool, repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", repo))?;
    let names: Vec<String> = wanted.iter().map(|w| w.name.to_string()).collect();
    let rows = secrets::for_job(&state.pool, row.id, &names).await?;
    // Protected refs: the repo's default branch (SPEC §10's default for `protected_refs`).
    let protected_ref = short_ref(git_ref) == row.default_branch;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let name = w.name.as_str();
        // The repo's secret wins over a global one of the same name.
        let found = rows
            .iter()
            .find(|r| r.name == name && r.repo_id.is_some())
            .or_else(|| rows.iter().find(|r| r.name == name && r.repo_id.is_none()));
        let Some(found) = found else {
            return Ok(Err(Refused(format!(
                "secret {name} is not set for repo {repo} nor globally; set it with PUT /api/v1/repos/{repo}/secrets/{name} (or `gitweave secret set {repo} {name}`)"
            ))));
        };
        if found.protected && !protected_ref {
            return Ok(Err(Refused(format!(
                "secret {name} is protected and ref {} is not a protected ref of repo {repo} (protected: {}); run it from a protected ref",
                short_ref(git_ref),
                row.default_branch
            ))));
        }
        let value = state
            .secrets
            .open(
                Scope::of(found.repo_id),
                name,
                &found.nonce,
                &found.ciphertext,
            )
            .map_err(|e| ApiError::Internal(format!("secret {name} of repo {repo}: {e}")))?;
        out.push(JobSecret {
            name: name.to_owned(),
            env: w.env.to_string(),
            value,
        });
    }
    Ok(Ok(out))
}
