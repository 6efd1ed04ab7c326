//! Checking out a run's commit into its workspace before a job starts (SPEC §3, "Workspace";
//! §15).
//!
//! One POSIX `sh` program ([`SCRIPT`]) does it for both engines: the docker engine runs it in a
//! short-lived helper container (`RUNNER_HELPER_IMAGE`, which needs `sh` and `git`), and the
//! shell engine runs it on the host. The program text is constant: the clone URL, the commit
//! and the ref reach it only as environment variables, so a ref like
//! `zzz";echo${IFS}"hello";#` is data, never shell.
//!
//! It checks out exactly the commit (detached), not the branch head: it fetches every branch
//! and tag, and asks for the commit by name when no ref reaches it.
//!
//! **git never runs against anything a job can write.** Jobs can write the whole workspace,
//! `.git` included, so a `.git/config` they leave (`core.fsmonitor`, `core.hooksPath`, hooks,
//! `url.*.insteadOf`, `core.sshCommand`) would run as the checkout on its next try. So git
//! fetches into a *private* git dir that no job mounts (a runner-owned volume per run for the
//! docker engine, a fresh directory outside the workspace for the shell engine) and checks
//! out with `--work-tree` into the workspace; the jobs then get a *copy* of that git dir as
//! `/workspace/.git` (so `git log` and `git describe` work in CI), which the runner never
//! runs git against again. git runs without system or global config, with hooks, fsmonitor,
//! credential helpers and submodules off, a plain `ssh`, and only the transports the source
//! needs ([`Verified::env`]). The "already checked out" marker lives in the private git dir
//! (docker) or in the runner's memory (shell), so a job cannot forge it: later jobs (and
//! retries) of the run skip the checkout and keep whatever earlier jobs left.
//!
//! A local clone URL is checked by [`local::resolve`] and is the only host path the helper
//! mounts, read-only.

pub mod local;

use crate::EngineError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use gitweave_model::clone_url::{CloneUrl, redact};
use local::LocalRepo;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The helper image the docker engine runs `git` in, unless `RUNNER_HELPER_IMAGE` says
/// otherwise. Built locally from `scripts/git-image/Dockerfile` (debian:bookworm-slim + git).
pub const DEFAULT_HELPER_IMAGE: &str = "gitweave-git:latest";

/// Where the helper sees the run's workspace (as the jobs do).
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// Where the helper sees its private volume (the git dir and the marker).
pub const PRIVATE_MOUNT: &str = "/gitweave-private";
/// Where the helper sees a local source repository (read-only).
pub const SOURCE_MOUNT: &str = "/gitweave-source";

/// Transports for a remote clone URL (`ext::` and friends could run commands; `file` could
/// read the host through a submodule or an alternate).
const REMOTE_PROTOCOLS: &[&str] = &["git", "http", "https", "ssh"];
/// The only transport for a local repository.
const LOCAL_PROTOCOLS: &[&str] = &["file"];

/// Command-line-scope git configuration for every git the checkout runs (it wins over the
/// private repository's own config, which the runner alone writes anyway).
const HARDENING: &[(&str, &str)] = &[
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.sshCommand", "ssh"),
    // An empty value clears the list of credential helpers.
    ("credential.helper", ""),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("protocol.allow", "never"),
    ("init.defaultBranch", "gitweave"),
    ("advice.detachedHead", "false"),
];

/// The program that checks out `$GW_COMMIT` from `$GW_URL`: into the private git dir
/// `$GIT_DIR` (under `$GW_PRIVATE`, with the marker) and the work tree `$GIT_WORK_TREE` (the
/// workspace), then copies the git dir to the workspace's `.git` for the jobs.
pub const SCRIPT: &str = r#"set -eu
cd "$GW_PRIVATE"
marker="$GW_PRIVATE/checked-out"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$GW_COMMIT" ]; then
  printf 'gitweave: the workspace already holds %s; checkout skipped\n' "$GW_COMMIT"
  exit 0
fi
if ! command -v git >/dev/null 2>&1; then
  printf 'gitweave: git is not installed where the checkout runs\n'
  exit 127
fi
printf 'gitweave: checking out %s (%s) from %s\n' "$GW_COMMIT" "$GW_REF" "$GW_URL_SHOWN"
git init -q --template=
git config remote.origin.url "$GW_URL_SHOWN"
git config remote.origin.fetch '+refs/heads/*:refs/remotes/origin/*'
git fetch -q --no-tags "$GW_URL" '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'
if ! git cat-file -e "$GW_COMMIT^{commit}" 2>/dev/null; then
  # A pull or merge request's head is on neither a branch nor a tag here: fetch its ref.
  case "$GW_REF" in
    refs/pull/*/head|refs/merge-requests/*/head)
      git fetch -q --no-tags "$GW_URL" "+$GW_REF:refs/gitweave/head" || true ;;
  esac
fi
if ! git cat-file -e "$GW_COMMIT^{commit}" 2>/dev/null; then
  # On no branch or tag (any more): ask for the commit itself.
  git fetch -q --no-tags "$GW_URL" "$GW_COMMIT" || true
fi
if ! git cat-file -e "$GW_COMMIT^{commit}" 2>/dev/null; then
  printf 'gitweave: commit %s is not in %s\n' "$GW_COMMIT" "$GW_URL_SHOWN"
  exit 1
fi
git checkout -q -f --detach "$GW_COMMIT^{commit}"
# The jobs' copy of the git dir; the runner never runs git against it.
rm -rf "$GIT_WORK_TREE/.git"
cp -R "$GIT_DIR" "$GIT_WORK_TREE/.git"
printf '%s\n' "$GW_COMMIT" > "$marker"
printf 'gitweave: HEAD is now at %s\n' "$(git log -1 --format='%H %s')"
"#;

/// What to check out into a run's workspace, as the assignment says; [`Checkout::verify`]
/// makes it something an engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// From the repo's configuration (never from a webhook payload).
    pub clone_url: String,
    /// The exact commit.
    pub commit: String,
    /// The run's ref; shown in the log only.
    pub git_ref: String,
}

/// Where a verified checkout fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A remote URL (https, ssh, git), given to git as it is.
    Remote(String),
    /// A local repository under `RUNNER_LOCAL_REPO_ROOT`.
    Local(LocalRepo),
}

/// A checkout whose values git cannot mistake for options, whose commit is a sha, and whose
/// source is decided: what the engines run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    commit: String,
    git_ref: String,
    shown_url: String,
    source: Source,
}

/// Where the checkout program sees things.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The workspace (the work tree).
    pub workspace: &'a str,
    /// The private directory (git dir and marker), which no job can write.
    pub private: &'a str,
    /// A local source repository, when it is seen elsewhere than at its own path (the
    /// docker helper's [`SOURCE_MOUNT`]).
    pub source: Option<&'a str>,
}

impl Checkout {
    /// Refuses clone URLs outside the grammar pipeline-svc accepts
    /// ([`gitweave_model::clone_url::CloneUrl`]: no option-like values, remote helpers or odd
    /// schemes; checked again here, since the runner trusts nothing it is sent), commits that
    /// are not a sha, and local repositories that [`local::resolve`] refuses (`local_root`:
    /// `RUNNER_LOCAL_REPO_ROOT`).
    pub fn verify(&self, local_root: Option<&Path>) -> Result<Verified, EngineError> {
        let c = &self.commit;
        if !(4..=64).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Config(format!(
                "commit {c:?} is not a hex sha"
            )));
        }
        let source = match CloneUrl::parse(&self.clone_url)
            .map_err(|e| EngineError::Config(e.to_string()))?
        {
            CloneUrl::Local(path) => Source::Local(
                local::resolve(Path::new(&path), local_root)
                    .map_err(|e| EngineError::Config(e.to_string()))?,
            ),
            CloneUrl::Remote(url) => Source::Remote(url),
        };
        Ok(Verified {
            commit: self.commit.clone(),
            git_ref: self.git_ref.clone(),
            shown_url: self.shown_url(),
            source,
        })
    }

    /// The clone URL without its credentials, for logs (the same redaction as the API's).
    pub fn shown_url(&self) -> String {
        redact(&self.clone_url)
    }
}

impl Verified {
    /// The commit.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// Where it fetches from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The program's whole environment (the shell engine adds `PATH` and `HOME`). Hardened:
    /// no system or global git config, [`HARDENING`] at command-line scope, only the
    /// transports the source needs, `safe.directory` only for the read-only source (the
    /// private git dir belongs to whoever runs git), never a prompt.
    pub fn env(&self, at: Layout<'_>) -> Vec<(String, String)> {
        let (url, protocols, safe): (String, &[&str], Vec<String>) = match &self.source {
            Source::Remote(url) => (url.clone(), REMOTE_PROTOCOLS, vec![]),
            Source::Local(repo) => {
                let path = at
                    .source
                    .map_or_else(|| repo.path().display().to_string(), str::to_owned);
                let mut safe = vec![path.clone()];
                if !repo.is_bare() {
                    safe.push(format!("{path}/.git"));
                }
                (path, LOCAL_PROTOCOLS, safe)
            }
        };
        let mut config: Vec<(String, String)> = HARDENING
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config.extend(
            protocols
                .iter()
                .map(|p| (format!("protocol.{p}.allow"), "always".to_owned())),
        );
        config.extend(safe.into_iter().map(|d| ("safe.directory".to_owned(), d)));
        let mut env: Vec<(String, String)> = [
            ("GW_WORKSPACE", at.workspace.to_owned()),
            ("GW_PRIVATE", at.private.to_owned()),
            ("GIT_DIR", format!("{}/repo.git", at.private)),
            ("GIT_WORK_TREE", at.workspace.to_owned()),
            ("GW_URL", url),
            ("GW_URL_SHOWN", self.shown_url.clone()),
            ("GW_COMMIT", self.commit.clone()),
            ("GW_REF", self.git_ref.clone()),
            ("GIT_CONFIG_NOSYSTEM", "1".to_owned()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".to_owned()),
            // Never wait for a password that nobody will type.
            ("GIT_TERMINAL_PROMPT", "0".to_owned()),
            ("GIT_ALLOW_PROTOCOL", protocols.join(":")),
            ("GIT_CONFIG_COUNT", config.len().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (i, (k, v)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), k));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), v));
        }
        env
    }
}

/// The docker engine's helper container: `image` runs [`SCRIPT`] with the workspace volume at
/// [`WORKSPACE_MOUNT`], the run's private volume (which no job mounts) at [`PRIVATE_MOUNT`]
/// and, for a local source, that one repository bind-mounted read-only at [`SOURCE_MOUNT`].
/// Nothing else of the host: no Docker socket, no other bind. The repository's path is one on
/// the Docker host (the daemon resolves bind sources), which the runner must see at the same
/// path to have resolved it.
pub fn helper_container(
    image: &str,
    c: &Verified,
    volume: &str,
    private_volume: &str,
    labels: impl IntoIterator<Item = (String, String)>,
) -> ContainerCreateBody {
    let mut mounts = vec![
        Mount {
            target: Some(WORKSPACE_MOUNT.into()),
            source: Some(volume.to_owned()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        },
        Mount {
            target: Some(PRIVATE_MOUNT.into()),
            source: Some(private_volume.to_owned()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        },
    ];
    let mut source = None;
    if let Source::Local(repo) = &c.source {
        mounts.push(Mount {
            target: Some(SOURCE_MOUNT.to_owned()),
            source: Some(repo.path().display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
        source = Some(SOURCE_MOUNT);
    }
    let mut env: Vec<String> = c
        .env(Layout {
            workspace: WORKSPACE_MOUNT,
            private: PRIVATE_MOUNT,
            source,
        })
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.push("HOME=/tmp".to_owned());
    ContainerCreateBody {
        image: Some(image.to_owned()),
        // Override the image's entrypoint (alpine/git's is `git`): any image with sh and git.
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec![SCRIPT.into(), "gitweave-checkout".into()]),
        env: Some(env),
        working_dir: Some(PRIVATE_MOUNT.into()),
        labels: Some(labels.into_iter().collect()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            init: Some(true),
            log_config: Some(crate::container::no_daemon_log()),
            // root in the helper reads a repository whatever its owner and writes the
            // workspace; nothing more.
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["DAC_OVERRIDE".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
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
    use super::{
        Checkout, Layout, PRIVATE_MOUNT, SOURCE_MOUNT, Source, WORKSPACE_MOUNT, WorkspaceLocks,
        helper_container,
    };
    use bollard::models::MountType;
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

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
            "https://user:***@example.com/a/b.git"
        );
        assert_eq!(
            c("https://example.com/a@b.git").shown_url(),
            "https://example.com/a@b.git"
        );
        assert_eq!(c("git@host:x.git").shown_url(), "git@host:x.git");
    }

    #[test]
    fn urls_are_sorted_into_local_and_remote_sources() {
        let root = std::env::temp_dir();
        let remote = |url: &str| match c(url).verify(Some(&root)).map(|v| v.source().clone()) {
            Ok(Source::Remote(u)) => u == url,
            _ => false,
        };
        for url in [
            "https://h/x.git",
            "ssh://git@h/x.git",
            "git@h:x.git",
            "git://h/x",
        ] {
            assert!(remote(url), "{url}");
        }
        // A local path is resolved on the file system: a missing one is refused as missing.
        let e = c("file:///no/such/repo.git")
            .verify(Some(Path::new("/")))
            .expect_err("missing");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn option_like_urls_helpers_odd_schemes_and_non_shas_are_refused() {
        for url in [
            "-uevil@h:x",
            "ext::sh -c id",
            "fd::3",
            "ftp://h/x",
            "https://h/\nx",
            "relative.git",
        ] {
            assert!(c(url).verify(None).is_err(), "{url}");
        }
        assert!(c("https://h/x.git").verify(None).is_ok());
        let mut bad = c("https://h/x.git");
        bad.commit = "HEAD".into();
        assert!(bad.verify(None).is_err());
    }

    #[test]
    fn a_local_url_without_a_root_is_refused_naming_the_setting() {
        let e = c("file:///srv/x.git").verify(None).expect_err("refused");
        assert!(e.to_string().contains("RUNNER_LOCAL_REPO_ROOT"), "{e}");
        let e = c("relative.git")
            .verify(Some(Path::new("/")))
            .expect_err("refused");
        assert!(e.to_string().contains("is not accepted"), "{e}");
    }

    fn env_of(v: &super::Verified, source: Option<&str>) -> HashMap<String, String> {
        v.env(Layout {
            workspace: "/w",
            private: "/p",
            source,
        })
        .into_iter()
        .collect()
    }

    /// The `-c` settings the environment gives git, in order.
    fn config_of(env: &HashMap<String, String>) -> Vec<(String, String)> {
        let n: usize = env["GIT_CONFIG_COUNT"].parse().expect("count");
        (0..n)
            .map(|i| {
                (
                    env[&format!("GIT_CONFIG_KEY_{i}")].clone(),
                    env[&format!("GIT_CONFIG_VALUE_{i}")].clone(),
                )
            })
            .collect()
    }

    /// git with an empty config, in `dir`.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A pull request's head that is on no branch or tag (only under `refs/pull/<n>/head`, as
    /// a forge keeps it) is checked out. (A local server also answers a fetch by sha, so this
    /// passes without the script's fetch of the ref too; that fetch is for servers that do
    /// not.)
    #[test]
    fn a_pull_requests_head_on_no_branch_is_checked_out() {
        let tmp = std::env::temp_dir().join(format!("gw-checkout-pr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (origin, work, ws, private) = (
            tmp.join("origin.git"),
            tmp.join("work"),
            tmp.join("ws"),
            tmp.join("private"),
        );
        for d in [&origin, &work, &ws, &private] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        git(&origin, &["init", "-q", "--bare"]);
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("a.txt"), "main\n").expect("write");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "main"]);
        let o = origin.to_str().expect("utf8");
        git(&work, &["push", "-q", o, "HEAD:refs/heads/main"]);
        std::fs::write(work.join("pr.txt"), "from the pull request\n").expect("write");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "pr"]);
        let head = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["push", "-q", o, "HEAD:refs/pull/3/head"]);
        let v = Checkout {
            clone_url: o.to_owned(),
            commit: head,
            git_ref: "refs/pull/3/head".into(),
        }
        .verify(Some(&tmp))
        .expect("verified");
        let env = v.env(Layout {
            workspace: ws.to_str().expect("utf8"),
            private: private.to_str().expect("utf8"),
            source: None,
        });
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(super::SCRIPT)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &tmp)
            .envs(env)
            .output()
            .expect("sh");
        let _cleanup = scopeguard(&tmp);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(ws.join("pr.txt")).expect("checked out"),
            "from the pull request\n"
        );
    }

    /// Removes `dir` when dropped.
    fn scopeguard(dir: &Path) -> impl Drop + '_ {
        struct G<'a>(&'a Path);
        impl Drop for G<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(self.0);
            }
        }
        G(dir)
    }

    #[test]
    fn git_runs_hardened_against_a_private_git_dir() {
        let v = c("https://u:p@h/x.git").verify(None).expect("remote");
        let env = env_of(&v, None);
        assert_eq!(env["GIT_DIR"], "/p/repo.git");
        assert_eq!(env["GIT_WORK_TREE"], "/w");
        assert_eq!(env["GIT_CONFIG_NOSYSTEM"], "1");
        assert_eq!(env["GIT_CONFIG_GLOBAL"], "/dev/null");
        assert_eq!(env["GIT_TERMINAL_PROMPT"], "0");
        assert_eq!(env["GIT_ALLOW_PROTOCOL"], "git:http:https:ssh");
        assert_eq!(env["GW_URL"], "https://u:p@h/x.git");
        assert_eq!(env["GW_URL_SHOWN"], "https://u:***@h/x.git");
        let config = config_of(&env);
        for want in [
            ("core.hooksPath", "/dev/null"),
            ("core.fsmonitor", "false"),
            ("core.sshCommand", "ssh"),
            ("credential.helper", ""),
            ("protocol.allow", "never"),
            ("protocol.https.allow", "always"),
        ] {
            assert!(
                config.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{want:?} in {config:?}"
            );
        }
        assert!(
            config
                .iter()
                .all(|(k, v)| k != "safe.directory" && !k.contains("gitProxy") && v != "*"),
            "{config:?}"
        );
        assert!(!config.iter().any(|(k, _)| k == "protocol.file.allow"));
    }

    #[test]
    fn the_helper_mounts_the_workspace_its_private_volume_and_the_repo_read_only() {
        let root =
            std::env::temp_dir().join(format!("gitweave-helper-{}", uuid::Uuid::new_v4().simple()));
        let repo = root.join("r.git");
        for d in ["objects", "refs"] {
            std::fs::create_dir_all(repo.join(d)).expect("dir");
        }
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        let v = c(&format!("file://{}", repo.display()))
            .verify(Some(&root))
            .expect("inside the root");
        let Source::Local(local) = v.source() else {
            panic!("a local source: {v:?}");
        };
        let canonical = local.path().display().to_string();
        let body = helper_container("img", &v, "ws-vol", "git-vol", []);
        let host = body.host_config.expect("host config");
        let mounts: Vec<_> = host
            .mounts
            .expect("mounts")
            .into_iter()
            .map(|m| (m.typ, m.source, m.target, m.read_only))
            .collect();
        assert_eq!(
            mounts,
            vec![
                (
                    Some(MountType::VOLUME),
                    Some("ws-vol".into()),
                    Some(WORKSPACE_MOUNT.into()),
                    None
                ),
                (
                    Some(MountType::VOLUME),
                    Some("git-vol".into()),
                    Some(PRIVATE_MOUNT.into()),
                    None
                ),
                (
                    Some(MountType::BIND),
                    Some(canonical),
                    Some(SOURCE_MOUNT.into()),
                    Some(true)
                ),
            ]
        );
        assert_eq!(host.binds, None);
        assert_ne!(host.privileged, Some(true));
        let env = body.env.expect("env");
        assert!(env.contains(&format!("GW_URL={SOURCE_MOUNT}")), "{env:?}");
        assert!(
            env.contains(&"GIT_ALLOW_PROTOCOL=file".to_owned()),
            "{env:?}"
        );
        assert!(
            env.iter()
                .any(|e| e.ends_with(&format!("={SOURCE_MOUNT}"))
                    && e.starts_with("GIT_CONFIG_VALUE_")),
            "safe.directory is the read-only source only: {env:?}"
        );
        let _ = std::fs::remove_dir_all(&root);
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
