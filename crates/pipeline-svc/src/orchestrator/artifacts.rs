//! What a claimed job gets of artifacts and cache (SPEC §11), and the cache keys a trigger
//! resolves.
//!
//! - Inputs: the unexpired files of the jobs it depends on — its `needs` when it has some,
//!   else every job before it in the run (the transitive `depends_on`, which in sequential
//!   mode is every earlier job). When two of them kept the same path, the later job's wins.
//!   A job that depends on nothing asks nothing (no query on the claim's path).
//! - Cache scope: the repo, and whether the run is protected (a protected ref, not a pull
//!   request: the rule protected secrets follow). A protected run restores only protected
//!   entries; another run its own scope's first, then a protected one. Each writes its own.
//! - `cache.key.files` become `<prefix>-<16 hex>` from the files' blob ids at the run's
//!   commit, read from the repo's mirror when the run is written.

use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::runner::{ArtifactInput, CacheAssignment, CacheEntryRef};
use gitweave_model::expand::ExpandedJob;
use gitweave_model::run_plan::PlannedRun;
use gitweave_model::template::{CacheKey, files_key};
use gitweave_storage::jobs::Claimed;
use gitweave_storage::{artifacts, jobs, repos, runs};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Which cache entries a run reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheScope {
    /// The run's repo.
    pub repo_id: Uuid,
    /// A run of a protected ref that is not a pull request.
    pub protected: bool,
}

/// Whether a run of `git_ref` in `repo` is protected: the repo's `protected_refs` (default:
/// its default branch) match the ref, and it is not a pull request.
fn is_protected(
    repo: &repos::RepoRow,
    git_ref: &str,
    pull_request: bool,
) -> Result<bool, ApiError> {
    if pull_request {
        return Ok(false);
    }
    let globs = repo
        .protected_refs
        .clone()
        .unwrap_or_else(|| vec![repo.default_branch.clone()]);
    let m = super::job_secrets::protected_matcher(&globs)
        .map_err(|e| ApiError::Internal(format!("repo {}: {e}", repo.name)))?;
    Ok(m.is_match(super::job_secrets::short_ref(git_ref)))
}

/// The cache scope of a run.
pub async fn cache_scope(state: &AppState, run_id: Uuid) -> Result<CacheScope, ApiError> {
    let run = runs::get(&state.pool, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", run_id))?;
    let repo = repos::get(&state.pool, &run.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &run.repo))?;
    Ok(CacheScope {
        repo_id: repo.id,
        protected: is_protected(&repo, &run.git_ref, run.pull_request.is_some())?,
    })
}

/// The files a claimed job gets before its script.
pub async fn inputs(
    state: &AppState,
    c: &Claimed,
    job: &ExpandedJob,
) -> Result<Vec<ArtifactInput>, ApiError> {
    if c.depends_on.is_empty() || !artifacts::run_has_any(&state.pool, c.run_id).await? {
        return Ok(Vec::new());
    }
    let upstream: BTreeSet<i32> = match job.needs.is_empty() {
        false => c.depends_on.iter().copied().collect(),
        true => {
            let rows = jobs::plan_rows(&state.pool, c.run_id).await?;
            ancestors(&c.depends_on, |p| {
                rows.get(usize::try_from(p).unwrap_or(usize::MAX))
                    .map(|r| r.depends_on.clone())
                    .unwrap_or_default()
            })
        }
    };
    let kept = artifacts::of_run(&state.pool, c.run_id).await?;
    // Pipeline order, so a later job's file of the same path replaces an earlier one's.
    let mut by_path: BTreeMap<String, ArtifactInput> = BTreeMap::new();
    let names = job_names(state, c.run_id, &kept).await?;
    for (position, a) in kept {
        if upstream.contains(&position) {
            by_path.insert(
                a.path.clone(),
                ArtifactInput {
                    job_id: a.job_id,
                    job: names.get(&a.job_id).cloned().unwrap_or_default(),
                    path: a.path,
                    size: a.size.max(0) as u64,
                    sha256: a.sha256,
                },
            );
        }
    }
    Ok(by_path.into_values().collect())
}

async fn job_names(
    state: &AppState,
    run_id: Uuid,
    kept: &[(i32, artifacts::ArtifactRow)],
) -> Result<BTreeMap<Uuid, String>, ApiError> {
    if kept.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(jobs::plan_rows(&state.pool, run_id)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect())
}

/// Every position reachable from `start` through `deps` (the transitive dependencies).
fn ancestors(start: &[i32], deps: impl Fn(i32) -> Vec<i32>) -> BTreeSet<i32> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<i32> = start.to_vec();
    while let Some(p) = todo.pop() {
        if seen.insert(p) {
            todo.extend(deps(p));
        }
    }
    seen
}

/// The cache a claimed job restores and saves.
pub async fn cache(
    state: &AppState,
    c: &Claimed,
    job: &ExpandedJob,
) -> Result<Option<CacheAssignment>, ApiError> {
    let Some(cache) = &job.cache else {
        return Ok(None);
    };
    let repo = repos::get(&state.pool, &c.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &c.repo))?;
    let protected = is_protected(&repo, &c.git_ref, c.pull_request)?;
    let key = cache.key();
    let restore = match cache.policy.pulls() {
        false => None,
        true => artifacts::restore(
            &state.pool,
            repo.id,
            protected,
            &key,
            cache.fallback_prefix(),
        )
        .await?
        .map(|e| CacheEntryRef {
            key: e.key,
            sha256: e.sha256,
            size: e.size.max(0) as u64,
        }),
    };
    let save = cache.policy.pushes()
        && !artifacts::cache_exists(&state.pool, repo.id, protected, &key).await?;
    Ok(Some(CacheAssignment {
        key,
        paths: cache.paths.clone(),
        restore,
        save,
    }))
}

/// Resolves every `cache.key.files` of the run's jobs at `commit`, from the repo's mirror
/// (fetching the commit if the mirror lacks it). Without a clone URL or commit the key stays
/// `<prefix>-default`; a mirror that cannot be read is an error of the trigger.
pub async fn resolve_cache_keys(
    state: &AppState,
    repo: &repos::RepoRow,
    commit: Option<&str>,
    password: Option<&str>,
    run: &mut PlannedRun,
) -> Result<(), ApiError> {
    let wanted: BTreeSet<String> = run
        .jobs
        .iter()
        .filter_map(|j| j.job.cache.as_ref())
        .filter_map(|c| match &c.key {
            CacheKey::Files { files, .. } => Some(files.clone()),
            CacheKey::Text(_) => None,
        })
        .flatten()
        .collect();
    let (Some(url), Some(commit)) = (repo.clone_url.as_deref(), commit) else {
        return Ok(());
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let root = state.config.local_repo_root.clone();
    let (url_owned, password) = (url.to_owned(), password.map(str::to_owned));
    let src = tokio::task::spawn_blocking(move || {
        crate::git_cli::source(&url_owned, root.as_deref(), password.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the clone_url check did not finish: {e}")))?
    .map_err(|why| ApiError::Invalid(gitweave_api::error_code::INVALID_CLONE_URL, why))?;
    let mirror =
        state.mirrors.open(repo.id, src).await.map_err(|e| {
            ApiError::Invalid(gitweave_api::error_code::REPO_UNREADABLE, e.to_string())
        })?;
    mirror
        .ensure_commit(commit, None)
        .await
        .map_err(|e| ApiError::Invalid(gitweave_api::error_code::REPO_UNREADABLE, e.to_string()))?;
    let files: Vec<String> = wanted.into_iter().collect();
    let blobs = mirror
        .blob_ids(commit, &files)
        .await
        .map_err(|e| ApiError::Invalid(gitweave_api::error_code::REPO_UNREADABLE, e.to_string()))?;
    let by_file: BTreeMap<&str, Option<String>> =
        files.iter().map(String::as_str).zip(blobs).collect();
    for j in &mut run.jobs {
        if let Some(cache) = &mut j.job.cache
            && let CacheKey::Files { files, prefix } = &cache.key
        {
            let pairs: Vec<(String, Option<String>)> = files
                .iter()
                .map(|f| (f.clone(), by_file.get(f.as_str()).cloned().flatten()))
                .collect();
            cache.resolved = Some(files_key(prefix.as_deref(), &pairs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ancestors;

    #[test]
    fn ancestors_are_transitive_and_finite() {
        // 3 -> 2 -> 1 -> 0, and 2 -> 0; a cycle (never stored) still ends.
        let deps = |p: i32| match p {
            3 => vec![2],
            2 => vec![1, 0],
            1 => vec![0],
            5 => vec![6],
            6 => vec![5],
            _ => vec![],
        };
        assert_eq!(
            ancestors(&[3], deps).into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(ancestors(&[5], deps).len(), 2);
        assert!(ancestors(&[], deps).is_empty());
    }
}
