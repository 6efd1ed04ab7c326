//! Asking a repo's git server which commit a ref points at (`git ls-remote`), so that a
//! trigger without `commit` runs, and checks out, the ref's head at trigger time (SPEC §3,
//! "Workspace").
//!
//! The clone URL obeys the rules it was stored under: the grammar of
//! [`gitweave_model::clone_url`], and for a local repository [`crate::local_repo::resolve`]
//! again (the file system may have changed since). git gets the URL and the ref as arguments
//! after `--`, never through a shell; it runs with a cleared environment, without system or
//! global config, credential helpers or prompts, only the transports the URL needs, from `/`
//! (so no repository's config is read), and is killed after a timeout ([`crate::git_cli`]).

use crate::git_cli;
use gitweave_model::clone_url::redact;
use std::path::Path;
use std::time::Duration;

/// How long `git ls-remote` may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The most of git's output read: a ref and its peeled tag are two short lines.
const MAX_OUTPUT: u64 = 1 << 20;

/// Why a ref's commit could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The stored clone URL no longer passes the clone-URL rules.
    #[error("{0}")]
    Refused(String),
    /// The server answered, and has no such branch or tag.
    #[error(
        "ref {git_ref:?} is not a branch or tag of {shown}; push it first, or give the commit to run"
    )]
    UnknownRef {
        /// The ref asked for.
        git_ref: String,
        /// The clone URL without credentials.
        shown: String,
    },
    /// git failed (server unreachable, authentication, not a repository).
    #[error(
        "could not read the refs of {shown} to resolve {git_ref:?}: {said}; fix the repo's clone_url, or give the commit to run"
    )]
    Git {
        /// The ref asked for.
        git_ref: String,
        /// The clone URL without credentials.
        shown: String,
        /// git's last words, without credentials.
        said: String,
    },
    /// git did not answer in time.
    #[error(
        "{shown} did not list its refs within {}s while resolving {git_ref:?}; retry, or give the commit to run",
        TIMEOUT.as_secs()
    )]
    Timeout {
        /// The ref asked for.
        git_ref: String,
        /// The clone URL without credentials.
        shown: String,
    },
    /// git could not be started at all: an installation problem of pipeline-svc.
    #[error("git could not be run by pipeline-svc: {0}")]
    NoGit(String),
}

/// The full ref names `git_ref` may mean, in the order they are tried: a full name as it is,
/// else a branch, then a tag.
pub fn candidates(git_ref: &str) -> Vec<String> {
    if git_ref.starts_with("refs/") || git_ref == "HEAD" {
        vec![git_ref.to_owned()]
    } else {
        vec![
            format!("refs/heads/{git_ref}"),
            format!("refs/tags/{git_ref}"),
        ]
    }
}

/// The commit of the first of `candidates` that `ls-remote` listed (`<sha>\t<ref>` lines);
/// an annotated tag's peeled line (`<ref>^{}`) wins, since it names the commit.
pub fn pick(listing: &str, candidates: &[String]) -> Option<String> {
    let lines: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(sha, _)| {
            (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect();
    candidates.iter().find_map(|c| {
        let peeled = format!("{c}^{{}}");
        let find = |name: &str| {
            lines
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(s, _)| (*s).to_owned())
        };
        find(&peeled).or_else(|| find(c))
    })
}

/// The credentials of an `http(s)://user:pass@host` URL, to be masked in git's messages.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority
        .rsplit_once('@')
        .map(|(u, _)| u)
        .filter(|u| !u.is_empty())
}

/// git's last non-empty line of `stderr`, with the URL shown and credentials masked.
fn last_words(stderr: &[u8], url: &str, shown: &str) -> String {
    let said = git_cli::last_words(stderr, &[]).replace(url, shown);
    match userinfo(url) {
        Some(secret) => said.replace(secret, "***"),
        None => said,
    }
}

/// The commit `git_ref` points at on `clone_url` (`local_root`: `RUNNER_LOCAL_REPO_ROOT`;
/// `password`: the repo secret `GIT_PASSWORD`, if set).
pub async fn head_commit(
    clone_url: &str,
    local_root: Option<&Path>,
    password: Option<&str>,
    git_ref: &str,
) -> Result<String, ResolveError> {
    let shown = redact(clone_url);
    let root = local_root.map(Path::to_owned);
    let url = clone_url.to_owned();
    let password = password.map(str::to_owned);
    // A local URL's check reads the file system: off the async workers.
    let src = tokio::task::spawn_blocking(move || {
        git_cli::source(&url, root.as_deref(), password.as_deref())
    })
    .await
    .map_err(|e| ResolveError::NoGit(format!("the clone_url check did not finish: {e}")))?
    .map_err(ResolveError::Refused)?;
    let wanted = candidates(git_ref);

    let mut cmd = git_cli::command(&src);
    cmd.arg("ls-remote")
        .arg("--")
        .arg(&src.url)
        // git matches patterns against whole names: a peeled tag's line needs its own.
        .args(wanted.iter().flat_map(|c| [c.clone(), format!("{c}^{{}}")]));
    let out = match git_cli::run(cmd, TIMEOUT, MAX_OUTPUT).await {
        Err(git_cli::RunError::Timeout) => {
            return Err(ResolveError::Timeout {
                git_ref: git_ref.to_owned(),
                shown,
            });
        }
        Err(git_cli::RunError::Io(e)) => return Err(ResolveError::NoGit(e.to_string())),
        Ok(out) => out,
    };
    if !out.status.success() {
        return Err(ResolveError::Git {
            git_ref: git_ref.to_owned(),
            said: last_words(&out.stderr, clone_url, &shown),
            shown,
        });
    }
    pick(&String::from_utf8_lossy(&out.stdout), &wanted).ok_or(ResolveError::UnknownRef {
        git_ref: git_ref.to_owned(),
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::{candidates, last_words, pick, userinfo};

    #[test]
    fn a_short_name_is_a_branch_then_a_tag_and_a_full_name_itself() {
        assert_eq!(candidates("main"), ["refs/heads/main", "refs/tags/main"]);
        assert_eq!(candidates("refs/pull/1/head"), ["refs/pull/1/head"]);
        assert_eq!(candidates("HEAD"), ["HEAD"]);
    }

    #[test]
    fn the_first_candidate_listed_wins_and_a_tag_is_peeled() {
        let listing = "1111111111111111111111111111111111111111\trefs/heads/feature/v1\n\
                       2222222222222222222222222222222222222222\trefs/tags/v1\n\
                       3333333333333333333333333333333333333333\trefs/tags/v1^{}\n";
        assert_eq!(
            pick(listing, &candidates("v1")).as_deref(),
            Some("3333333333333333333333333333333333333333")
        );
        // `feature/v1` is listed by git's tail match, but is not `v1`.
        assert_eq!(pick(listing, &candidates("feature")), None);
        assert_eq!(
            pick(listing, &candidates("feature/v1")).as_deref(),
            Some("1111111111111111111111111111111111111111")
        );
        let both = "aaaa000000000000000000000000000000000000\trefs/tags/main\n\
                    bbbb000000000000000000000000000000000000\trefs/heads/main\n";
        assert_eq!(
            pick(both, &candidates("main")).as_deref(),
            Some("bbbb000000000000000000000000000000000000"),
            "a branch wins over a tag of the same name"
        );
        assert_eq!(pick("warning: x\n", &candidates("main")), None);
    }

    #[test]
    fn gits_words_never_carry_credentials() {
        let url = "https://deploy:s3cret@git.example/shop.git";
        assert_eq!(userinfo(url), Some("deploy:s3cret"));
        assert_eq!(userinfo("https://git.example/a@b"), None);
        let said = last_words(
            b"\nfatal: unable to access 'https://deploy:s3cret@git.example/shop.git/': no\n\n",
            url,
            "https://deploy:***@git.example/shop.git",
        );
        assert!(!said.contains("s3cret"), "{said}");
        assert!(said.starts_with("fatal: unable to access"), "{said}");
    }
}
