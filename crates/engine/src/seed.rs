//! A workspace seeded from files on the host (`gitweave exec`: a copy of the working tree)
//! instead of a checkout: the files go in one tar archive, which the docker engine uploads
//! into the job's created container (and so into the workspace volume), and the shell engine
//! unpacks into the workspace directory. Symlinks are archived as symlinks, never followed, so
//! a link out of the tree copies nothing from outside it.

use std::path::{Path, PathBuf};

/// A tar of `files` (relative to `root`, as `git ls-files` lists them), each under its
/// relative path. A file listed but gone (deleted and not yet committed) is left out.
pub fn archive(root: &Path, files: &[PathBuf]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for rel in files {
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(std::io::Error::other(format!(
                "{} is not a path inside the tree",
                rel.display()
            )));
        }
        let full = root.join(rel);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_file() || m.file_type().is_symlink() => {
                b.append_path_with_name(&full, rel)?;
            }
            // A submodule (a directory) or a file deleted in the work tree.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    b.into_inner()
}

/// Unpacks `archive` into `dir` (the shell engine's workspace). The tar crate refuses entries
/// that would land outside `dir`.
pub fn unpack(archive: &[u8], dir: &Path) -> std::io::Result<()> {
    let mut a = tar::Archive::new(archive);
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    a.unpack(dir)
}

#[cfg(test)]
mod tests {
    use super::{archive, unpack};
    use std::path::PathBuf;

    #[test]
    fn files_and_links_round_trip_and_nothing_outside_is_read() {
        let root = std::env::temp_dir().join(format!("gw-seed-{}", uuid::Uuid::new_v4().simple()));
        let out = root.with_extension("out");
        std::fs::create_dir_all(root.join("src")).expect("dir");
        std::fs::write(root.join("src/a.txt"), "alpha").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/hostname", root.join("link")).expect("link");
        let files: Vec<PathBuf> = ["src/a.txt", "link", "gone.txt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let tar = archive(&root, &files).expect("archive");
        unpack(&tar, &out).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(out.join("src/a.txt")).expect("a"),
            "alpha"
        );
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(out.join("link")).expect("a link, not a copy"),
            PathBuf::from("/etc/hostname")
        );
        assert!(!out.join("gone.txt").exists());
        assert!(archive(&root, &[PathBuf::from("../x")]).is_err());
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&out);
    }
}
