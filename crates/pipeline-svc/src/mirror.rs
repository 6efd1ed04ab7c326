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

/// Most bytes of a commit object read (its message decides `[skip ci]`).
const MAX_COMMIT_OBJECT: u64 = 1 << 20;

/// What a trigger reads of its commit ([`Mirror::read_commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtCommit {
    /// The commit's message.
    pub message: String,
    /// The pipeline file, when the commit has one.
    pub file: Option<PipelineFile>,
}

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

    /// [`Mirror::read_commit`], fetching first ([`Mirror::ensure_commit`]) only when the
    /// mirror lacks the commit.
    pub async fn read_fetching(
        &self,
        commit: &str,
        extra_ref: Option<&str>,
        max: usize,
    ) -> Result<AtCommit, MirrorError> {
        if let Some(r) = self.read_commit(commit, max).await? {
            return Ok(r);
        }
        self.ensure_commit(commit, extra_ref).await?;
        self.read_commit(commit, max).await?.ok_or_else(|| {
            MirrorError::Local(format!("commit {commit} was fetched but cannot be read"))
        })
    }

    /// What a trigger reads at `commit`, in one `git cat-file --batch`: the commit's message
    /// and the pipeline file ([`FILE_NAMES`], the first that is a blob), capped at `max`
    /// bytes (on the size git records). `None` when the mirror does not hold the commit.
    pub async fn read_commit(
        &self,
        commit: &str,
        max: usize,
    ) -> Result<Option<AtCommit>, MirrorError> {
        if !is_sha(commit) {
            return Ok(None);
        }
        // One object name per line; the commit is hex and the names are ours, so no line
        // can be anything else.
        let mut input = format!("{commit}^{{commit}}\n");
        for name in FILE_NAMES {
            input.push_str(&format!("{commit}:{name}\n"));
        }
        let mut cmd = self.git();
        cmd.args(["cat-file", "--batch"]);
        let cap = MAX_COMMIT_OBJECT + FILE_NAMES.len() as u64 * (max as u64 + 256);
        let out = git_cli::run_with_input(cmd, input.into_bytes(), READ_TIMEOUT, cap)
            .await
            .map_err(|e| match e {
                git_cli::RunError::Timeout => MirrorError::Timeout {
                    what: "git cat-file --batch".to_owned(),
                    secs: READ_TIMEOUT.as_secs(),
                },
                git_cli::RunError::Io(e) => {
                    MirrorError::Local(format!("git cat-file --batch: {e}"))
                }
            })?;
        // A cut output ends git with EPIPE: what was read is judged below.
        if !out.status.success() && !out.stdout_cut {
            return Err(MirrorError::Local(format!(
                "git cat-file --batch at {commit}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        let objects = parse_batch(&out.stdout, 1 + FILE_NAMES.len());
        let Some(Some(commit_object)) = objects.first() else {
            if out.stdout_cut {
                return Err(MirrorError::Local(format!(
                    "commit {commit} is larger than {MAX_COMMIT_OBJECT} bytes"
                )));
            }
            return Ok(None);
        };
        let Some(body) = commit_object.body.as_deref() else {
            return Err(MirrorError::Local(format!(
                "commit {commit} is larger than {MAX_COMMIT_OBJECT} bytes"
            )));
        };
        let message = String::from_utf8_lossy(body)
            .split_once("\n\n")
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default();
        let found = FILE_NAMES
            .iter()
            .zip(objects.iter().skip(1))
            .find_map(|(name, o)| o.as_ref().filter(|o| o.kind == "blob").map(|o| (*name, o)));
        let file = match found {
            None => None,
            Some((path, o)) => {
                if o.size > max as u64 {
                    return Err(MirrorError::TooBig {
                        path: path.to_owned(),
                        commit: commit.to_owned(),
                        size: o.size,
                        max,
                    });
                }
                let Some(body) = &o.body else {
                    return Err(MirrorError::Local(format!(
                        "git cat-file --batch cut {path} at {commit} short"
                    )));
                };
                let text = String::from_utf8(body.clone()).map_err(|_| MirrorError::NotText {
                    path: path.to_owned(),
                    commit: commit.to_owned(),
                })?;
                Some(PipelineFile {
                    path,
                    blob: o.id.clone(),
                    text,
                })
            }
        };
        Ok(Some(AtCommit { message, file }))
    }

    /// The blob id of each of `files` at `commit` (`None`: not a file there), in one
    /// `git cat-file --batch-check`. The names are checked workspace paths (no control
    /// characters), so each is one line of input.
    pub async fn blob_ids(
        &self,
        commit: &str,
        files: &[String],
    ) -> Result<Vec<Option<String>>, MirrorError> {
        if !is_sha(commit) || files.iter().any(|f| f.chars().any(char::is_control)) {
            return Ok(vec![None; files.len()]);
        }
        let input: String = files.iter().map(|f| format!("{commit}:{f}\n")).collect();
        let mut cmd = self.git();
        cmd.args(["cat-file", "--batch-check"]);
        let out = git_cli::run_with_input(cmd, input.into_bytes(), READ_TIMEOUT, 1 << 20)
            .await
            .map_err(|e| match e {
                git_cli::RunError::Timeout => MirrorError::Timeout {
                    what: "git cat-file --batch-check".to_owned(),
                    secs: READ_TIMEOUT.as_secs(),
                },
                git_cli::RunError::Io(e) => {
                    MirrorError::Local(format!("git cat-file --batch-check: {e}"))
                }
            })?;
        if !out.status.success() {
            return Err(MirrorError::Local(format!(
                "git cat-file --batch-check at {commit}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        Ok(files
            .iter()
            .map(|_| {
                let line = lines.next().unwrap_or_default();
                let mut words = line.split(' ');
                match (words.next(), words.next()) {
                    (Some(id), Some("blob")) => Some(id.to_owned()),
                    _ => None,
                }
            })
            .collect())
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
        // Longer than can be read (git then ends on EPIPE): unknown, so rules match.
        if out.stdout_cut {
            return Ok(None);
        }
        if !out.status.success() {
            return Err(MirrorError::Local(format!(
                "git diff {base} {head}: {}",
                git_cli::last_words(&out.stderr, &[])
            )));
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
}

/// One object of `git cat-file --batch` output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BatchObject {
    id: String,
    kind: String,
    size: u64,
    /// Its contents; `None` when the output was cut before their end.
    body: Option<Vec<u8>>,
}

/// The first `n` answers of `git cat-file --batch` in `out`: `None` for a name git reports
/// `missing` (or `ambiguous`), or for one the output was cut before (its header is absent).
fn parse_batch(out: &[u8], n: usize) -> Vec<Option<BatchObject>> {
    let mut answers = Vec::with_capacity(n);
    let mut rest = out;
    while answers.len() < n {
        let Some(eol) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let header = String::from_utf8_lossy(&rest[..eol]).into_owned();
        rest = &rest[eol + 1..];
        let mut f = header.split(' ');
        let (Some(id), Some(kind), Some(size), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            // `<name> missing`, `<name> ambiguous`: no contents follow.
            answers.push(None);
            continue;
        };
        let Ok(size) = size.parse::<u64>() else {
            answers.push(None);
            continue;
        };
        let object = |body| BatchObject {
            id: id.to_owned(),
            kind: kind.to_owned(),
            size,
            body,
        };
        match usize::try_from(size).ok().filter(|s| *s < rest.len()) {
            // The contents and the newline after them.
            Some(len) => {
                answers.push(Some(object(Some(rest[..len].to_vec()))));
                rest = &rest[len + 1..];
            }
            None => {
                answers.push(Some(object(None)));
                break;
            }
        }
    }
    answers.resize(n, None);
    answers
}

#[cfg(test)]
mod tests;
