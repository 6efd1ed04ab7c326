//! The GitWeave repo a command means when none is named: `--repo`/`GITWEAVE_REPO` first,
//! else the last path segment of `git remote get-url origin` in the current directory,
//! without `.git` (`git@host:team/shop.git`, `https://host/team/shop`, `/srv/git/shop.git`
//! all name `shop`), checked against the repo-name rule.

use anyhow::{Context, bail};
use gitweave_model::names::RepoName;
use std::process::Command;

/// The repo name a remote URL points at, when its last segment is a valid repo name.
pub fn from_remote_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':', '\\']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    RepoName::parse(name).ok().map(|n| n.to_string())
}

/// `explicit`, or the repo of the working directory's `origin` remote.
pub fn resolve(explicit: Option<String>) -> anyhow::Result<String> {
    if let Some(name) = explicit.filter(|n| !n.is_empty()) {
        return Ok(name);
    }
    let out = Command::new("git")
        .args(["remote", "get-url", "origin"])
        .output()
        .context("running git to find the current repo (name it with --repo or GITWEAVE_REPO)")?;
    if !out.status.success() {
        bail!(
            "no repo named and no git remote `origin` here ({}); name it with --repo or GITWEAVE_REPO",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let url = String::from_utf8_lossy(&out.stdout).into_owned();
    from_remote_url(&url).with_context(|| {
        format!(
            "the origin remote {:?} does not end in a GitWeave repo name; name it with --repo or GITWEAVE_REPO",
            url.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::from_remote_url;

    #[test]
    fn the_last_segment_without_dot_git_names_the_repo() {
        for (url, want) in [
            ("git@github.com:team/shop.git\n", Some("shop")),
            ("https://git.example.com/team/shop", Some("shop")),
            ("https://git.example.com/team/shop.git/", Some("shop")),
            ("/srv/git/my-repo.v2.git", Some("my-repo.v2")),
            ("file:///srv/git/shop.git", Some("shop")),
            ("https://host/", Some("host")),
            ("https://host/team/.git", None),
            ("", None),
        ] {
            assert_eq!(from_remote_url(url).as_deref(), want, "{url:?}");
        }
    }
}
