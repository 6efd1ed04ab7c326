//! A bare mirror per repo in `PIPELINE_DATA_DIR/mirrors/`, so a trigger reads the pipeline
//! file at its commit (SPEC §9) without cloning from scratch: the mirror fetches only when
//! the commit is missing, and then only what the server has that the mirror lacks.
//!
//! Layout: `mirrors/<repo id>/<first 16 hex of sha256(url)>.git`. A repo whose `clone_url`
//! changes gets a new mirror beside the old (so no commit of another server is ever read as
//! this one's); deleting the repo removes its whole directory ([`Mirrors::remove_repo`]).
//! One lock per repo serialises everything done to its mirrors, so two triggers of the same
//! repo never fetch into it at once; other repos are not held up.
//!
//! Every git call goes through [`crate::git_cli`]: cleared environment, arguments, never a
//! shell, timeouts, capped output, credentials in the environment, never in argv, and the
//! URL git stores nowhere (the mirror has no remote: each fetch names the URL).

use crate::git_cli::{self, Source};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How long a fetch may take (a first fetch copies the whole repository).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a read of the mirror (a file, a diff) may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The names of the pipeline file, in the order they are looked for.
pub const FILE_NAMES: [&str; 2] = [".gitweave.yml", ".gitweave.yaml"];

/// Most bytes of `git diff --name-only` read; a longer list counts as "unknown" (so
/// `changes:` rules match rather than judge on part of it).
const MAX_DIFF_OUTPUT: u64 = 8 << 20;

/// The repos' mirrors and their locks.
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why a mirror could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// git failed while fetching (server unreachable, authentication, not a repository).
    #[error(
        "could not fetch from {shown}: {said}; check the repo's clone_url (and its GIT_PASSWORD secret)"
    )]
    Fetch {
        /// The URL without credentials.
        shown: String,
        /// git's last words, credentials masked.
        said: String,
    },
    /// The server does not have the commit.
    #[error(
        "commit {commit} is not in {shown} (fetched its branches and tags{extra}); push it first"
    )]
    Missing {
        /// The commit.
        commit: String,
        /// The URL without credentials.
        shown: String,
        /// Other refs fetched, as words.
        extra: String,
    },
    /// git did not finish in time.
    #[error("{what} did not finish within {}s; retry", .secs)]
    Timeout {
        /// What was being done.
        what: String,
        /// The limit.
        secs: u64,
    },
    /// The pipeline file is too large to be a pipeline.
    #[error("{path} at {commit} is {size} bytes, more than the maximum of {max} bytes")]
    TooBig {
        /// The file.
        path: String,
        /// The commit.
        commit: String,
        /// Its size.
        size: u64,
        /// The cap.
        max: usize,
    },
    /// The pipeline file is not UTF-8 text.
    #[error("{path} at {commit} is not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
        /// The commit.
        commit: String,
    },
    /// The mirror itself failed (disk, git missing): an installation problem.
    #[error("the repo mirror failed: {0}")]
    Local(String),
}

/// The pipeline file at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFile {
    /// `.gitweave.yml` or `.gitweave.yaml`.
    pub path: &'static str,
    /// Its blob id.
    pub blob: String,
    /// Its text.
    pub text: String,
}

impl Mirrors {
    /// Mirrors under `data_dir/mirrors`.
    pub fn new(data_dir: &Path) -> Self {
        Mirrors {
            root: data_dir.join("mirrors"),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_of(&self, repo_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repo_id).or_default().clone()
    }

    /// Opens (creating it if needed) the mirror of `src` for `repo_id`, holding the repo's
    /// lock until the [`Mirror`] is dropped.
    pub async fn open(&self, repo_id: Uuid, src: Source) -> Result<Mirror, MirrorError> {
        let guard = self.lock_of(repo_id).lock_owned().await;
        let key = hex(&Sha256::digest(src.url.as_bytes()))[..16].to_owned();
        let dir = self.root.join(repo_id.to_string());
        let git_dir = dir.join(format!("{key}.git"));
        let m = Mirror {
            git_dir,
            src,
            _guard: guard,
        };
        if !tokio::fs::try_exists(m.git_dir.join("HEAD"))
            .await
            .unwrap_or(false)
        {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| MirrorError::Local(format!("cannot create {}: {e}", dir.display())))?;
            let mut cmd = git_cli::command(&m.src);
            cmd.args(["init", "-q", "--bare", "--template="])
                .arg(&m.git_dir);
            let out = m.local(cmd, "git init").await?;
            if !out.status.success() {
                return Err(MirrorError::Local(format!(
                    "git init {}: {}",
                    m.git_dir.display(),
                    git_cli::last_words(&out.stderr, &[])
                )));
            }
            tracing::info!(%repo_id, mirror = %m.git_dir.display(), "repo mirror created");
        }
        Ok(m)
    }

    /// Removes every mirror of a repo (it was deleted). Waits for the repo's lock, so no
    /// trigger is reading the mirror while it goes.
    pub async fn remove_repo(&self, repo_id: Uuid) -> std::io::Result<()> {
        let lock = self.lock_of(repo_id);
        let _held = lock.lock().await;
        let dir = self.root.join(repo_id.to_string());
        let r = match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&repo_id);
        r
    }

    /// Where a repo's mirrors live (for tests and docs).
    pub fn repo_dir(&self, repo_id: Uuid) -> PathBuf {
        self.root.join(repo_id.to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A repo's mirror, held under its lock.
pub struct Mirror {
    git_dir: PathBuf,
    src: Source,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Mirror {
    /// A git command against the mirror.
    fn git(&self) -> tokio::process::Command {
        let mut cmd = git_cli::command(&self.src);
        let mut dir = std::ffi::OsString::from("--git-dir=");
        dir.push(&self.git_dir);
        cmd.arg(dir);
        cmd
    }

    async fn local(
        &self,
        cmd: tokio::process::Command,
        what: &str,
    ) -> Result<git_cli::Output, MirrorError> {
        self.run(cmd, what, READ_TIMEOUT, 1 << 20).await
    }

    async fn run(
        &self,
        cmd: tokio::process::Command,
        what: &str,
        timeout: Duration,
        max: u64,
    ) -> Result<git_cli::Output, MirrorError> {
        git_cli::run(cmd, timeout, max).await.map_err(|e| match e {
            git_cli::RunError::Timeout => MirrorError::Timeout {
                what: what.to_owned(),
                secs: timeout.as_secs(),
            },
            git_cli::RunError::Io(e) => MirrorError::Local(format!("{what}: {e}")),
        })
    }

    /// Whether the mirror holds `commit` (validated hex) as a commit.
    pub async fn has_commit(&self, commit: &str) -> Result<bool, MirrorError> {
        if !is_sha(commit) {
            return Ok(false);
        }
        let mut cmd = self.git();
        cmd.args(["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        Ok(self.local(cmd, "git cat-file").await?.status.success())
    }

    /// Fetches `refspecs` from the server.
    async fn fetch(&self, refspecs: &[String]) -> Result<(), MirrorError> {
        let mut cmd = self.git();
        cmd.args([
            "fetch",
            "-q",
            "--no-tags",
            "--prune",
            "--no-write-fetch-head",
            "--",
        ])
        .arg(&self.src.url)
        .args(refspecs);
        let started = std::time::Instant::now();
        let out = self
            .run(
                cmd,
                &format!("fetching from {}", self.src.url),
                FETCH_TIMEOUT,
                1 << 20,
            )
            .await?;
        if !out.status.success() {
            return Err(MirrorError::Fetch {
                shown: self.src.url.clone(),
                said: git_cli::last_words(&out.stderr, &[]),
            });
        }
        tracing::info!(mirror = %self.git_dir.display(), ms = started.elapsed().as_millis() as u64, "repo mirror fetched");
        Ok(())
    }

    /// Makes sure the mirror holds `commit`: nothing is fetched when it does; else every
    /// branch and tag, plus `extra_ref` (a pull request's head ref), then, if the commit is
    /// still missing, the commit itself (servers that allow it).
    pub async fn ensure_commit(
        &self,
        commit: &str,
        extra_ref: Option<&str>,
    ) -> Result<(), MirrorError> {
        if self.has_commit(commit).await? {
            return Ok(());
        }
        let mut specs = vec![
            "+refs/heads/*:refs/heads/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ];
        if let Some(r) = extra_ref {
            specs.push(format!("+{r}:{r}"));
        }
        self.fetch(&specs).await?;
        if self.has_commit(commit).await? {
            return Ok(());
        }
        if is_sha(commit) && commit.len() == 40 {
            // Not fatal: many servers refuse a fetch by sha.
            let _ = self.fetch(&[commit.to_owned()]).await;
            if self.has_commit(commit).await? {
                return Ok(());
            }
        }
        Err(MirrorError::Missing {
            commit: commit.to_owned(),
            shown: self.src.url.clone(),
            extra: extra_ref.map(|r| format!(" and {r}")).unwrap_or_default(),
        })
    }

    /// Whether the mirror has the branch `refs/heads/<branch>` (for a merge base).
    pub async fn has_branch(&self, branch: &str) -> Result<bool, MirrorError> {
        let full = format!("refs/heads/{branch}");
        let mut cmd = self.git();
        cmd.args(["rev-parse", "-q", "--verify", &format!("{full}^{{commit}}")]);
        Ok(self.local(cmd, "git rev-parse").await?.status.success())
    }

    /// The pipeline file at `commit` (in the mirror), if the commit has one; capped at
    /// `max` bytes, checked on the size git records before the blob is read.
    pub async fn pipeline_file(
        &self,
        commit: &str,
        max: usize,
    ) -> Result<Option<PipelineFile>, MirrorError> {
        let mut cmd = self.git();
        cmd.args(["ls-tree", "-l", "-z", commit, "--"])
            .args(FILE_NAMES);
        let out = self.local(cmd, "git ls-tree").await?;
        if !out.status.success() {
            return Err(MirrorError::Local(format!(
                "git ls-tree {commit}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        let listing = String::from_utf8_lossy(&out.stdout);
        let entries = parse_ls_tree(&listing);
        let Some((path, blob, size)) = FILE_NAMES.iter().find_map(|name| {
            entries
                .iter()
                .find(|e| e.3 == *name && e.0 == "blob")
                .map(|e| (*name, e.1.clone(), e.2))
        }) else {
            return Ok(None);
        };
        if size > max as u64 {
            return Err(MirrorError::TooBig {
                path: path.to_owned(),
                commit: commit.to_owned(),
                size,
                max,
            });
        }
        let mut cmd = self.git();
        cmd.args(["cat-file", "blob", &blob]);
        let out = self
            .run(cmd, "git cat-file", READ_TIMEOUT, max as u64)
            .await?;
        if !out.status.success() || out.stdout_cut {
            return Err(MirrorError::Local(format!(
                "git cat-file blob {blob}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        let text = String::from_utf8(out.stdout).map_err(|_| MirrorError::NotText {
            path: path.to_owned(),
            commit: commit.to_owned(),
        })?;
        Ok(Some(PipelineFile { path, blob, text }))
    }

    /// The paths that differ between `base` and `head`, or `None` when the mirror does not
    /// hold `base` or the list is longer than can be read (rules then count as matching).
    pub async fn changed_paths(
        &self,
        base: &str,
        head: &str,
    ) -> Result<Option<Vec<String>>, MirrorError> {
        if !self.has_commit(base).await? {
            return Ok(None);
        }
        let mut cmd = self.git();
        cmd.args([
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            base,
            head,
            "--",
        ]);
        let out = self
            .run(cmd, "git diff", READ_TIMEOUT, MAX_DIFF_OUTPUT)
            .await?;
        if !out.status.success() {
            return Err(MirrorError::Local(format!(
                "git diff {base} {head}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        if out.stdout_cut {
            return Ok(None);
        }
        Ok(Some(
            out.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        ))
    }

    /// The merge base of the branch `refs/heads/<branch>` and `head`, if they have one.
    pub async fn merge_base(
        &self,
        branch: &str,
        head: &str,
    ) -> Result<Option<String>, MirrorError> {
        let mut cmd = self.git();
        cmd.args(["merge-base", &format!("refs/heads/{branch}"), head]);
        let out = self.local(cmd, "git merge-base").await?;
        let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && is_sha(&sha)).then_some(sha))
    }

    /// The message of `commit`.
    pub async fn commit_message(&self, commit: &str) -> Result<String, MirrorError> {
        let mut cmd = self.git();
        cmd.args(["cat-file", "commit", commit]);
        let out = self.local(cmd, "git cat-file commit").await?;
        if !out.status.success() {
            return Err(MirrorError::Local(format!(
                "git cat-file commit {commit}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split_once("\n\n")
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default())
    }
}

/// `(type, object, size, path)` of each `git ls-tree -l -z` entry.
fn parse_ls_tree(listing: &str) -> Vec<(String, String, u64, String)> {
    listing
        .split('\0')
        .filter_map(|entry| {
            let (meta, path) = entry.split_once('\t')?;
            let mut f = meta.split_whitespace();
            let (_mode, kind, object, size) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some((
                kind.to_owned(),
                object.to_owned(),
                size.parse().unwrap_or(u64::MAX),
                path.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
