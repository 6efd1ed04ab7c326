//! Secrets given either as a variable (`RUNNER_REGISTRATION_TOKEN`) or as a file named by the
//! same variable with `_FILE` (`RUNNER_REGISTRATION_TOKEN_FILE`), as Docker and compose
//! secrets are mounted. The variable wins when it is set; an empty value counts as unset.

use std::path::{Path, PathBuf};

/// A `*_FILE` that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{var} names {path}, which cannot be read: {source}")]
pub struct SecretFileError {
    /// The variable that named the file.
    pub var: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The secret: `value` when it is set and not empty, else the contents of `file` without
/// surrounding whitespace (a trailing newline is usual), else none. An empty file is none.
/// `file_var` names the `*_FILE` variable in the error.
pub fn resolve(
    value: Option<String>,
    file: Option<&Path>,
    file_var: &'static str,
) -> Result<Option<String>, SecretFileError> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError {
        var: file_var,
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn the_variable_wins_then_the_file_then_nothing() {
        let dir = std::env::temp_dir().join(format!("gw-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        let r = |v: Option<&str>, f: Option<&std::path::Path>| {
            resolve(v.map(str::to_owned), f, "X_FILE").expect("resolves")
        };
        assert_eq!(r(Some("from-env"), Some(&file)), Some("from-env".into()));
        assert_eq!(r(Some(""), Some(&file)), Some("from-file".into()));
        assert_eq!(r(None, Some(&file)), Some("from-file".into()));
        assert_eq!(r(None, None), None);
        std::fs::write(&file, " \n").expect("write");
        assert_eq!(r(None, Some(&file)), None, "an empty file is no secret");
        let missing = dir.join("missing");
        let e = resolve(None, Some(&missing), "X_FILE").expect_err("unreadable");
        assert!(e.to_string().contains("X_FILE"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
