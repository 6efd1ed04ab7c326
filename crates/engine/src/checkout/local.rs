//! Which local repositories a checkout may read (SPEC §15).
//!
//! A local clone URL (`file:///srv/x.git` or `/srv/x.git`) names a path on the runner's host
//! (for the docker engine: on the Docker host, which the runner must see at the same path).
//! The checkout helper bind-mounts it, so an unchecked path would let a repo's owner read any
//! git repository on the host, or mount the Docker socket. [`resolve`] is the one decision:
//! the path is canonicalised (symlinks and `..` resolved), must lie under the canonicalised
//! `RUNNER_LOCAL_REPO_ROOT`, be a directory, and be a git repository (bare, or with a `.git`
//! directory). Only the path it returns is ever mounted or fetched from.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The setting that allows local clone URLs.
pub const ROOT_VAR: &str = "RUNNER_LOCAL_REPO_ROOT";

/// A local repository a checkout may read: a canonical directory under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRepo {
    path: PathBuf,
    bare: bool,
}

impl LocalRepo {
    /// The canonical path (no symlink, no `..`), under the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A bare repository (`path` is the git dir); otherwise `path/.git` is.
    pub fn is_bare(&self) -> bool {
        self.bare
    }
}

/// Why a local clone URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalRepoError {
    /// No root is configured: every local clone URL is refused.
    #[error("local clone URLs are refused: {ROOT_VAR} is not set on this runner")]
    NoRoot,
    /// The root itself cannot be resolved.
    #[error("{ROOT_VAR} ({root}) cannot be used: {reason}")]
    BadRoot {
        /// The configured root.
        root: String,
        /// What the system said.
        reason: String,
    },
    /// Not an absolute path (`file://host/x`, `./x`, `x.git`).
    #[error("the local clone URL {0:?} is not an absolute path")]
    Relative(String),
    /// Nothing there.
    #[error("the local repository {0} does not exist")]
    Missing(String),
    /// It could not be resolved for another reason.
    #[error("the local repository {path} cannot be resolved: {reason}")]
    Unreadable {
        /// The path asked for.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// It resolves outside the root.
    #[error(
        "the local repository {path} resolves to {resolved}, which is outside {ROOT_VAR} ({root})"
    )]
    Outside {
        /// The path asked for.
        path: String,
        /// Where it leads.
        resolved: String,
        /// The canonical root.
        root: String,
    },
    /// A file, socket or device, not a directory.
    #[error("the local repository {0} is not a directory (files, sockets and devices are refused)")]
    NotADirectory(String),
    /// A directory that is no git repository.
    #[error("{0} is not a git repository (neither bare nor with a .git directory)")]
    NotARepository(String),
}

/// Decides whether `path` may be checked out from, given the runner's `root` (`None`: local
/// clone URLs are refused). Reads the file system (to resolve symlinks and see what is there);
/// changes nothing.
pub fn resolve(path: &Path, root: Option<&Path>) -> Result<LocalRepo, LocalRepoError> {
    let root_given = root.ok_or(LocalRepoError::NoRoot)?;
    let shown = path.display().to_string();
    if !path.is_absolute() {
        return Err(LocalRepoError::Relative(shown));
    }
    let root = std::fs::canonicalize(root_given).map_err(|e| LocalRepoError::BadRoot {
        root: root_given.display().to_string(),
        reason: e.to_string(),
    })?;
    let resolved = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(LocalRepoError::Missing(shown)),
        Err(e) => {
            return Err(LocalRepoError::Unreadable {
                path: shown,
                reason: e.to_string(),
            });
        }
    };
    // Component-wise: /srv/repos2 is not under /srv/repos.
    if !resolved.starts_with(&root) {
        return Err(LocalRepoError::Outside {
            path: shown,
            resolved: resolved.display().to_string(),
            root: root.display().to_string(),
        });
    }
    if !is_dir(&resolved) {
        return Err(LocalRepoError::NotADirectory(shown));
    }
    if is_git_dir(&resolved) {
        return Ok(LocalRepo {
            path: resolved,
            bare: true,
        });
    }
    let dot_git = resolved.join(".git");
    // A `.git` file (a worktree's or submodule's pointer) could lead anywhere: refused.
    if is_dir(&dot_git) && is_git_dir(&dot_git) {
        return Ok(LocalRepo {
            path: resolved,
            bare: false,
        });
    }
    Err(LocalRepoError::NotARepository(shown))
}

/// A real directory, not a symlink to one.
fn is_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// What git itself looks for in a git dir: `HEAD`, `objects/` and `refs/`, none a symlink.
fn is_git_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p.join("HEAD")).is_ok_and(|m| m.is_file())
        && is_dir(&p.join("objects"))
        && is_dir(&p.join("refs"))
}

#[cfg(test)]
mod tests {
    use super::{LocalRepo, LocalRepoError, resolve};
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    /// A fresh directory, canonical (the system's temp dir may itself be a symlink).
    struct Temp(PathBuf);

    impl Temp {
        fn new() -> Self {
            let dir = std::env::temp_dir()
                .join(format!("gitweave-local-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Temp(std::fs::canonicalize(&dir).expect("canonical"))
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The shape of a git dir, without git.
    fn git_dir(p: &Path) {
        std::fs::create_dir_all(p.join("objects")).expect("objects");
        std::fs::create_dir_all(p.join("refs")).expect("refs");
        std::fs::write(p.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    }

    fn ok(path: &Path, bare: bool) -> Result<LocalRepo, LocalRepoError> {
        Ok(LocalRepo {
            path: path.to_owned(),
            bare,
        })
    }

    #[test]
    fn a_bare_or_a_working_repository_under_the_root_is_accepted() {
        let t = Temp::new();
        let root = t.0.join("root");
        git_dir(&root.join("bare.git"));
        git_dir(&root.join("work/.git"));
        let r = Some(root.as_path());
        assert_eq!(
            resolve(&root.join("bare.git"), r),
            ok(&root.join("bare.git"), true)
        );
        assert_eq!(
            resolve(&root.join("work"), r),
            ok(&root.join("work"), false)
        );
        // `..` that stays inside, and a symlink inside that stays inside, resolve to the repo.
        assert_eq!(
            resolve(&root.join("work/../bare.git"), r),
            ok(&root.join("bare.git"), true)
        );
        symlink(root.join("bare.git"), root.join("alias.git")).expect("symlink");
        assert_eq!(
            resolve(&root.join("alias.git"), r),
            ok(&root.join("bare.git"), true)
        );
        // The root may be given through a symlink too.
        symlink(&root, t.0.join("root-link")).expect("symlink");
        assert_eq!(
            resolve(&root.join("bare.git"), Some(&t.0.join("root-link"))),
            ok(&root.join("bare.git"), true)
        );
    }

    #[test]
    fn no_root_refuses_every_local_path_and_names_the_variable() {
        let t = Temp::new();
        git_dir(&t.0.join("x.git"));
        let e = resolve(&t.0.join("x.git"), None).expect_err("refused");
        assert_eq!(e, LocalRepoError::NoRoot);
        assert!(e.to_string().contains("RUNNER_LOCAL_REPO_ROOT"), "{e}");
    }

    #[test]
    fn escapes_by_dot_dot_symlink_or_prefix_are_refused() {
        let t = Temp::new();
        let root = t.0.join("repos");
        std::fs::create_dir_all(&root).expect("root");
        git_dir(&t.0.join("outside.git"));
        git_dir(&t.0.join("repos2/x.git"));
        symlink(t.0.join("outside.git"), root.join("link.git")).expect("symlink");
        let r = Some(root.as_path());
        for path in [
            t.0.join("outside.git"),
            root.join("../outside.git"),
            root.join("link.git"),
            t.0.join("repos2/x.git"),
        ] {
            let e = resolve(&path, r).expect_err("outside");
            assert!(matches!(e, LocalRepoError::Outside { .. }), "{path:?}: {e}");
            assert!(e.to_string().contains("RUNNER_LOCAL_REPO_ROOT"), "{e}");
        }
        // A symlinked `objects` could lead out of the mount: not a repository.
        let sneaky = root.join("sneaky.git");
        std::fs::create_dir_all(sneaky.join("refs")).expect("refs");
        std::fs::write(sneaky.join("HEAD"), "x").expect("HEAD");
        symlink(t.0.join("outside.git/objects"), sneaky.join("objects")).expect("symlink");
        assert_eq!(
            resolve(&sneaky, r),
            Err(LocalRepoError::NotARepository(sneaky.display().to_string()))
        );
    }

    #[test]
    fn sockets_files_non_repositories_and_relative_paths_are_refused() {
        let t = Temp::new();
        let r = Some(t.0.as_path());
        let socket = t.0.join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
        assert_eq!(
            resolve(&socket, r),
            Err(LocalRepoError::NotADirectory(socket.display().to_string()))
        );
        // A symlink to the socket is the socket.
        symlink(&socket, t.0.join("sock.git")).expect("symlink");
        assert!(matches!(
            resolve(&t.0.join("sock.git"), r),
            Err(LocalRepoError::NotADirectory(_))
        ));
        std::fs::write(t.0.join("file"), "x").expect("file");
        assert!(matches!(
            resolve(&t.0.join("file"), r),
            Err(LocalRepoError::NotADirectory(_))
        ));
        std::fs::create_dir_all(t.0.join("plain")).expect("dir");
        assert!(matches!(
            resolve(&t.0.join("plain"), r),
            Err(LocalRepoError::NotARepository(_))
        ));
        // A `.git` file (a pointer elsewhere) does not make a repository.
        std::fs::create_dir_all(t.0.join("wt")).expect("dir");
        std::fs::write(t.0.join("wt/.git"), "gitdir: /elsewhere\n").expect("gitfile");
        assert!(matches!(
            resolve(&t.0.join("wt"), r),
            Err(LocalRepoError::NotARepository(_))
        ));
        let e = resolve(&t.0.join("missing.git"), r).expect_err("missing");
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(matches!(
            resolve(Path::new("relative.git"), r),
            Err(LocalRepoError::Relative(_))
        ));
        // The Docker socket of this host, wherever the root is.
        let e = resolve(Path::new("/var/run/docker.sock"), r).expect_err("refused");
        assert!(
            matches!(
                e,
                LocalRepoError::Outside { .. } | LocalRepoError::Missing(_)
            ),
            "{e}"
        );
    }
}
