//! The event a local run stands for, to evaluate a file's `rules:` (SPEC §9) with the model's
//! own rule code: a `push` of the current branch (`git rev-parse --abbrev-ref HEAD`; a
//! detached HEAD is the ref `HEAD`, which no `branch:` matches), and for `changes:` the work
//! tree's changes against HEAD (`git diff --name-only HEAD`: staged and unstaged) plus the
//! untracked files `.gitignore` does not exclude; with no commit yet, every file.

use crate::exec::worktree::git;
use gitweave_model::rules::{self, RuleContext, RuleEvent};
use gitweave_model::template::RepoFile;
use std::path::Path;

/// A local push, owned (a [`RuleContext`] borrows from it).
#[derive(Debug, Clone)]
pub struct LocalPush {
    /// `refs/heads/<branch>`, or `HEAD` when detached.
    pub git_ref: String,
    /// The paths `changes:` sees; `None` when no rule uses `changes` (not computed).
    pub changed: Option<Vec<String>>,
}

impl LocalPush {
    /// The push of the work tree at `root`, with the changed paths when `file` needs them.
    pub fn of(root: &Path, file: &RepoFile) -> anyhow::Result<Self> {
        let branch = git(root, &["rev-parse", "--abbrev-ref", "HEAD"])
            .or_else(|_| git(root, &["symbolic-ref", "--short", "-q", "HEAD"]))
            .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
            .unwrap_or_default();
        let git_ref = match branch.as_str() {
            "" | "HEAD" => "HEAD".to_owned(),
            b => format!("refs/heads/{b}"),
        };
        let changed = if rules::uses_changes(&file.rules, file.pipeline.as_ref()) {
            Some(changed_paths(root)?)
        } else {
            None
        };
        Ok(LocalPush { git_ref, changed })
    }

    /// The model's view of it.
    pub fn context(&self) -> RuleContext<'_> {
        RuleContext::of_ref(RuleEvent::Push, &self.git_ref, self.changed.as_deref())
    }

    /// `a push on branch main` (for messages).
    pub fn describe(&self) -> String {
        match self.git_ref.strip_prefix("refs/heads/") {
            Some(b) => format!("a push on branch {b}"),
            None => "a push of a detached HEAD".to_owned(),
        }
    }
}

fn paths(out: &[u8]) -> impl Iterator<Item = String> + '_ {
    out.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Changed against HEAD plus untracked; every file when there is no commit.
fn changed_paths(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = match git(root, &["diff", "--name-only", "-z", "HEAD", "--"]) {
        Ok(diff) => {
            let untracked = git(root, &["ls-files", "-z", "--others", "--exclude-standard"])?;
            paths(&diff).chain(paths(&untracked)).collect()
        }
        Err(_) => {
            let all = git(
                root,
                &[
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                ],
            )?;
            paths(&all).collect()
        }
    };
    out.sort();
    out.dedup();
    Ok(out)
}
