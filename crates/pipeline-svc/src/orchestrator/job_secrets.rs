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
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Why a job cannot have its secrets: the sentence of its `config_error`.
pub struct Refused(pub String);

/// The branch or tag name of a ref, without `refs/heads/` or `refs/tags/`.
pub(super) fn short_ref(git_ref: &str) -> &str {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
}

/// The matcher of `protected_refs` globs (`globset`, with `literal_separator`, so
/// `release/*` does not match `release/1/2`; `**` crosses segments); the error names the
/// glob that does not parse.
pub fn protected_matcher(globs: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("protected_refs entry {g:?} is not a valid glob: {e}"))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| format!("protected_refs cannot be compiled: {e}"))
}

/// The run a job's secrets are opened for.
pub struct For<'a> {
    /// Its repo.
    pub repo: &'a str,
    /// Its ref.
    pub git_ref: &'a str,
    /// Whether it is a pull request run (SPEC §9): never a protected secret, whatever its ref.
    pub pull_request: bool,
}

/// Opens the secrets `wanted` names for a job of the run `run`.
pub async fn resolve(
    state: &AppState,
    run: &For<'_>,
    wanted: &[SecretRef],
) -> Result<Result<Vec<JobSecret>, Refused>, ApiError> {
    let (repo, git_ref) = (run.repo, run.git_ref);
    if wanted.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let row = repos::get(&state.pool, repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", repo))?;
    let names: Vec<String> = wanted.iter().map(|w| w.name.to_string()).collect();
    let rows = secrets::for_job(&state.pool, row.id, &names).await?;
    // Protected refs: the repo's `protected_refs`, by default its default branch.
    let globs = secrets::protected_refs(&state.pool, row.id)
        .await?
        .unwrap_or_else(|| vec![row.default_branch.clone()]);
    let protected_ref = protected_matcher(&globs)
        .map_err(|m| ApiError::Internal(format!("repo {repo}: {m}")))?
        .is_match(short_ref(git_ref));
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
        if found.protected && run.pull_request {
            return Ok(Err(Refused(format!(
                "secret {name} is protected and this is a pull request run (ref {}); pull request runs, forks or not, never get protected secrets: run it from a protected ref of repo {repo}",
                short_ref(git_ref)
            ))));
        }
        if found.protected && !protected_ref {
            return Ok(Err(Refused(format!(
                "secret {name} is protected and ref {} is not a protected ref of repo {repo} (protected_refs: [{}]); run it from a protected ref",
                short_ref(git_ref),
                globs.join(", ")
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

#[cfg(test)]
mod tests {
    use super::{protected_matcher, short_ref};

    #[test]
    fn protected_refs_are_globs_over_short_names() {
        let m = protected_matcher(&[
            "main".into(),
            "release/*".into(),
            "v*".into(),
            "hotfix/**".into(),
        ])
        .expect("globs");
        for yes in [
            "refs/heads/main",
            "main",
            "release/1.2",
            "refs/tags/v1.0",
            "hotfix/a/b",
        ] {
            assert!(m.is_match(short_ref(yes)), "{yes}");
        }
        for no in [
            "feature",
            "release/1/2",
            "mainline",
            "refs/heads/dev",
            "v2/x",
        ] {
            assert!(!m.is_match(short_ref(no)), "{no}");
        }
        assert!(
            protected_matcher(&["[".into()])
                .unwrap_err()
                .contains("\"[\"")
        );
    }
}
