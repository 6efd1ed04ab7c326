//! Local clone URLs (`file:///path` or `/path`): accepted only for a git repository under
//! `RUNNER_LOCAL_REPO_ROOT`, judged on the path with every symlink and `..` resolved (SPEC
//! §15). The resolved path is what is stored, so what was checked is what is cloned; the
//! runner checks it again when it checks out (the file system may change in between).

use std::path::{Path, PathBuf};

/// Why a local clone URL is refused. One message for "missing", "outside the root" and "not
/// a repository", so the API cannot be used to probe which paths exist on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalRepoError {
    /// No root is configured.
    #[error(
        "a local clone_url (file:// or an absolute path) needs RUNNER_LOCAL_REPO_ROOT, which is not set on pipeline-svc; set it to the directory that holds the repositories (and give runner-svc the same), or use a remote URL"
    )]
    NoRoot,
    /// The root itself is not a directory that can be resolved.
    #[error("RUNNER_LOCAL_REPO_ROOT {root:?} is not a directory pipeline-svc can read")]
    BadRoot {
        /// The configured root.
        root: PathBuf,
    },
    /// Not an existing git repository under the root.
    #[error(
        "clone_url {path:?} is not a git repository (bare, or with a .git directory) under RUNNER_LOCAL_REPO_ROOT {root:?}, once symlinks and '..' are resolved"
    )]
    Refused {
        /// The path as given.
        path: String,
        /// The configured root.
        root: PathBuf,
    },
}

/// Resolves `path` and checks it is a git repository under `root`; returns the resolved path.
/// The rule is the runner's own ([`gitweave_engine::checkout::local::resolve`]), so what is
/// accepted here is what a checkout accepts; only the refusals are folded into one message.
/// Blocking file system calls: run it off the async workers.
pub fn resolve(root: Option<&Path>, path: &str) -> Result<PathBuf, LocalRepoError> {
    use gitweave_engine::checkout::local::{self, LocalRepoError as Why};
    local::resolve(Path::new(path), root)
        .map(|repo| repo.path().to_owned())
        .map_err(|why| match why {
            Why::NoRoot => LocalRepoError::NoRoot,
            Why::BadRoot { .. } => LocalRepoError::BadRoot {
                root: root.map(Path::to_owned).unwrap_or_default(),
            },
            Why::Relative(_)
            | Why::Missing(_)
            | Why::Unreadable { .. }
            | Why::Outside { .. }
            | Why::NotADirectory(_)
            | Why::NotARepository(_) => LocalRepoError::Refused {
                path: path.to_owned(),
                root: root.map(Path::to_owned).unwrap_or_default(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::{LocalRepoError, resolve};
    use std::path::{Path, PathBuf};

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("gw-local-repo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        Tmp(d)
    }

    fn fake_bare(d: &Path) {
        std::fs::create_dir_all(d.join("objects")).expect("objects");
        std::fs::create_dir_all(d.join("refs")).expect("refs");
        std::fs::write(d.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    }

    #[test]
    fn a_repository_under_the_root_resolves_and_others_are_refused() {
        let t = tmp("resolve");
        let root = t.0.join("root");
        fake_bare(&root.join("a.git"));
        fake_bare(&root.join("work/.git"));
        std::fs::create_dir_all(root.join("plain")).expect("plain");
        fake_bare(&t.0.join("outside.git"));
        std::os::unix::fs::symlink(t.0.join("outside.git"), root.join("link.git")).expect("ln");
        let r = |p: PathBuf| resolve(Some(&root), p.to_str().expect("utf8"));
        let canonical_root = std::fs::canonicalize(&root).expect("root");
        assert_eq!(r(root.join("a.git")), Ok(canonical_root.join("a.git")));
        assert_eq!(r(root.join("work")), Ok(canonical_root.join("work")));
        assert_eq!(
            r(root.join("plain/../a.git")),
            Ok(canonical_root.join("a.git"))
        );
        for bad in [
            root.join("plain"),
            root.join("missing.git"),
            root.join("link.git"),
            root.join("../outside.git"),
            t.0.join("outside.git"),
        ] {
            assert!(
                matches!(r(bad.clone()), Err(LocalRepoError::Refused { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(resolve(None, "/x"), Err(LocalRepoError::NoRoot));
        assert!(
            resolve(None, "/x")
                .unwrap_err()
                .to_string()
                .contains("RUNNER_LOCAL_REPO_ROOT")
        );
    }
}
