//! Stored rows → the public JSON shapes.

use crate::error::ApiError;
use gitweave_api::public;
use gitweave_model::clone_url;
use gitweave_storage::jobs::JobRow;
use gitweave_storage::repos::RepoRow;
use gitweave_storage::runs::RunRow;

/// A repo (the secret stays behind, and the clone URL's credentials: SPEC §15).
pub fn repo(r: &RepoRow) -> public::Repo {
    public::Repo {
        name: r.name.clone(),
        clone_url: r.clone_url.as_deref().map(clone_url::redact),
        default_branch: r.default_branch.clone(),
        has_webhook_secret: r.webhook_secret.is_some(),
        protected_refs: r
            .protected_refs
            .clone()
            .unwrap_or_else(|| vec![r.default_branch.clone()]),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A job.
pub fn job(j: &JobRow) -> Result<public::Job, ApiError> {
    Ok(public::Job {
        id: j.id,
        run_id: j.run_id,
        name: j.name.clone(),
        template: j.template.clone(),
        status: j.status,
        exit_code: j.exit_code,
        error_class: j.error_class,
        attempt: j.attempt,
        started_at: j.started_at,
        ended_at: j.ended_at,
        log_truncated: j.log_truncated,
        reason: j.reason.clone(),
        waiting: None,
        needs: needs(&j.spec),
        allow_failure: j
            .spec
            .get("allow_failure")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    })
}

/// The `needs` of a stored job spec (an expanded job); empty when it has none.
fn needs(spec: &serde_json::Value) -> Vec<String> {
    spec.get("needs")
        .and_then(serde_json::Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A run with its jobs (already in pipeline order).
pub fn run(r: &RunRow, jobs: &[JobRow]) -> Result<public::Run, ApiError> {
    Ok(public::Run {
        id: r.id,
        repo: r.repo.clone(),
        git_ref: r.git_ref.clone(),
        commit: r.commit_sha.clone(),
        status: r.status,
        trigger: r.trigger,
        created_at: r.created_at,
        started_at: r.started_at,
        ended_at: r.ended_at,
        source: stored(r.source.as_ref(), "source")?,
        error: stored(r.error.as_ref(), "error")?,
        pull_request: stored(r.pull_request.as_ref(), "pull_request")?,
        jobs: jobs.iter().map(job).collect::<Result<_, _>>()?,
    })
}

/// A JSON column read back into its public type.
fn stored<T: serde::de::DeserializeOwned>(
    v: Option<&serde_json::Value>,
    what: &str,
) -> Result<Option<T>, ApiError> {
    v.filter(|v| !v.is_null())
        .map(|v| {
            serde_json::from_value(v.clone())
                .map_err(|e| ApiError::Internal(format!("stored run {what} does not load: {e}")))
        })
        .transpose()
}
