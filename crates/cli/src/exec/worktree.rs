//! The git work tree `gitweave exec` copies into the run's workspace: its root, and the files
//! git would show: tracked ones (with their uncommitted changes, as they are on disk) and
//! untracked ones that `.gitignore` does not exclude. git is run with arguments, never
//! through a shell.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn git(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git (gitweave exec copies a git work tree)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The root of the work tree `dir` is in.
pub fn root(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = git(dir, &["rev-parse", "--show-toplevel"])
        .context("gitweave exec runs inside a git work tree")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim_end()))
}

/// The files to copy, relative to `root`: `git ls-files --cached --others
/// --exclude-standard -z` (so `.gitignore`d build outputs stay out), or with
/// `include_ignored` every untracked file too.
pub fn files(root: &Path, include_ignored: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut args = vec!["ls-files", "-z", "--cached", "--others"];
    if !include_ignored {
        args.push("--exclude-standard");
    }
    let out = git(root, &args)?;
    let mut files: Vec<PathBuf> = out
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| !p.starts_with(".git"))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// `refs/heads/<branch>` of HEAD, or empty when detached or unborn.
pub fn head_ref(root: &Path) -> String {
    git(root, &["symbolic-ref", "-q", "HEAD"])
        .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
        .unwrap_or_default()
}

/// HEAD's commit, or empty in a repository with no commit yet.
pub fn head_commit(root: &Path) -> String {
    git(root, &["rev-parse", "-q", "--verify", "HEAD"])
        .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
        .unwrap_or_default()
}
