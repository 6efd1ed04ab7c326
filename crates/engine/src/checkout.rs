//! Checking out a run's commit into its workspace before a job starts (SPEC §3, "Workspace").
//!
//! One POSIX `sh` program ([`SCRIPT`]) does it for both engines: the docker engine runs it in a
//! short-lived helper container (`RUNNER_HELPER_IMAGE`, which needs `sh` and `git`) that
//! mounts the run's workspace volume, and the shell engine runs it on the host in the
//! workspace directory. The program text is constant: the clone URL, the commit and the ref
//! reach it only as environment variables, so a ref like `zzz";echo${IFS}"hello";#` is data,
//! never shell.
//!
//! It checks out exactly the commit (detached), not the branch head: it fetches every branch
//! and tag, and asks for the commit by name when no ref reaches it. It is idempotent: once a
//! checkout succeeded it leaves a marker in `.git`, and later jobs (and retries) of the run
//! skip it, keeping whatever earlier jobs left in the workspace.

use crate::EngineError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The helper image the docker engine runs `git` in, unless `RUNNER_HELPER_IMAGE` says
/// otherwise. Built locally from `scripts/git-image/Dockerfile` (debian:bookworm-slim + git).
pub const DEFAULT_HELPER_IMAGE: &str = "gitweave-git:latest";

/// Only these git transports are allowed (`ext::` and friends could run commands).
const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// The program that checks out `$GW_COMMIT` from `$GW_URL` into `$GW_WORKSPACE`.
pub const SCRIPT: &str = r#"set -eu
cd "$GW_WORKSPACE"
marker=.git/gitweave-checkout
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$GW_COMMIT" ]; then
  printf 'gitweave: the workspace already holds %s; checkout skipped\n' "$GW_COMMIT"
  exit 0
fi
if ! command -v git >/dev/null 2>&1; then
  printf 'gitweave: git is not installed where the checkout runs\n'
  exit 127
fi
printf 'gitweave: checking out %s (%s) from %s\n' "$GW_COMMIT" "$GW_REF" "$GW_URL_SHOWN"
git -c init.defaultBranch=gitweave init -q .
git config remote.origin.url "$GW_URL"
git config remote.origin.fetch '+refs/heads/*:refs/remotes/origin/*'
git fetch -q --tags origin
if ! git cat-file -e "$GW_COMMIT^{commit}" 2>/dev/null; then
  # On no branch or tag (any more): ask for the commit itself.
  git fetch -q origin "$GW_COMMIT" || true
fi
if ! git cat-file -e "$GW_COMMIT^{commit}" 2>/dev/null; then
  printf 'gitweave: commit %s is not in %s\n' "$GW_COMMIT" "$GW_URL_SHOWN"
  exit 1
fi
git checkout -q -f --detach "$GW_COMMIT^{commit}"
printf '%s\n' "$GW_COMMIT" > "$marker"
printf 'gitweave: HEAD is now at %s\n' "$(git log -1 --format='%H %s')"
"#;

/// What to check out into a run's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// From the repo's configuration (never from a webhook payload).
    pub clone_url: String,
    /// The exact commit.
    pub commit: String,
    /// The run's ref; shown in the log only.
    pub git_ref: String,
}

impl Checkout {
    /// Refuses values git could mistake for options, or that are not a commit sha.
    pub fn validate(&self) -> Result<(), EngineError> {
        let url = &self.clone_url;
        if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
            return Err(EngineError::Config(format!(
                "clone_url {:?} cannot be cloned",
                self.shown_url()
            )));
        }
        let c = &self.commit;
        if !(4..=64).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Config(format!(
                "commit {c:?} is not a hex sha"
            )));
        }
        Ok(())
    }

    /// The clone URL with any user and password replaced by `***`, for logs.
    pub fn shown_url(&self) -> String {
        let url = &self.clone_url;
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
            None => url.clone(),
        }
    }

    /// The repository's path when the clone URL is local (`file:///srv/x.git` or
    /// `/srv/x.git`). For the docker engine it is a path on the Docker host, bind-mounted
    /// read-only into the helper at the same place.
    pub fn local_path(&self) -> Option<&str> {
        let url = self.clone_url.as_str();
        let path = url.strip_prefix("file://").unwrap_or(url);
        path.starts_with('/').then_some(path)
    }

    /// The program's environment; `workspace` is where the workspace is as the program sees
    /// it.
    pub fn env(&self, workspace: &str) -> Vec<(String, String)> {
        [
            ("GW_WORKSPACE", workspace.to_owned()),
            ("GW_URL", self.clone_url.clone()),
            ("GW_URL_SHOWN", self.shown_url()),
            ("GW_COMMIT", self.commit.clone()),
            ("GW_REF", self.git_ref.clone()),
            // Never wait for a password that nobody will type.
            ("GIT_TERMINAL_PROMPT", "0".to_owned()),
            ("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The docker engine's helper container: `image` runs [`SCRIPT`] with the workspace volume at
/// `/workspace` and, for a local clone URL, the repository bind-mounted read-only at its own
/// path. That path is one on the Docker host: the daemon resolves bind sources, so it works
/// the same when runner-svc runs in a container (compose) and cannot see the path itself.
pub fn helper_container(
    image: &str,
    c: &Checkout,
    volume: &str,
    labels: impl IntoIterator<Item = (String, String)>,
) -> ContainerCreateBody {
    let mut mounts = vec![Mount {
        target: Some("/workspace".into()),
        source: Some(volume.to_owned()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }];
    if let Some(path) = c.local_path() {
        mounts.push(Mount {
            target: Some(path.to_owned()),
            source: Some(path.to_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let mut env: Vec<String> = c
        .env("/workspace")
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // The helper runs as root, and a bind-mounted repository belongs to someone else, which
    // git (>= 2.35.2) refuses unless told the directory is safe. GIT_CONFIG_* is command-line
    // scope, where safe.directory counts.
    env.extend([
        "HOME=/tmp".to_owned(),
        "GIT_CONFIG_COUNT=1".to_owned(),
        "GIT_CONFIG_KEY_0=safe.directory".to_owned(),
        "GIT_CONFIG_VALUE_0=*".to_owned(),
    ]);
    ContainerCreateBody {
        image: Some(image.to_owned()),
        // Override the image's entrypoint (alpine/git's is `git`): any image with sh and git.
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec![SCRIPT.into(), "gitweave-checkout".into()]),
        env: Some(env),
        working_dir: Some("/workspace".into()),
        labels: Some(labels.into_iter().collect()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            init: Some(true),
            log_config: Some(crate::docker::no_daemon_log()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One lock per workspace, so two jobs of a run starting at once on two slots of a runner do
/// not run git in the same directory together: the second waits, then finds the marker.
#[derive(Debug, Default)]
pub struct WorkspaceLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl WorkspaceLocks {
    /// Waits for the workspace's lock.
    pub async fn lock(&self, workspace: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(workspace.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Forgets a workspace that was removed.
    pub fn forget(&self, workspace: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workspace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(url: &str) -> Checkout {
        Checkout {
            clone_url: url.into(),
            commit: "abc1234".into(),
            git_ref: "refs/heads/main".into(),
        }
    }

    #[test]
    fn credentials_are_hidden_in_logs() {
        assert_eq!(
            c("https://user:tok@example.com/a/b.git").shown_url(),
            "https://***@example.com/a/b.git"
        );
        assert_eq!(
            c("https://example.com/a@b.git").shown_url(),
            "https://example.com/a@b.git"
        );
        assert_eq!(c("git@host:x.git").shown_url(), "git@host:x.git");
    }

    #[test]
    fn local_paths_are_recognised() {
        assert_eq!(c("file:///srv/x.git").local_path(), Some("/srv/x.git"));
        assert_eq!(c("/srv/x.git").local_path(), Some("/srv/x.git"));
        assert_eq!(c("https://h/x.git").local_path(), None);
        assert_eq!(c("git@h:x.git").local_path(), None);
    }

    #[test]
    fn option_like_urls_and_non_shas_are_refused() {
        assert!(c("-uevil@h:x").validate().is_err());
        assert!(c("https://h/x.git").validate().is_ok());
        let mut bad = c("https://h/x.git");
        bad.commit = "HEAD".into();
        assert!(bad.validate().is_err());
    }

    #[tokio::test]
    async fn a_workspace_lock_is_exclusive() {
        let locks = Arc::new(WorkspaceLocks::default());
        let held = locks.lock("w").await;
        let other = locks.clone();
        let waiter = tokio::spawn(async move { other.lock("w").await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let _unrelated = locks.lock("v").await;
        drop(held);
        assert!(waiter.await.is_ok());
    }
}
