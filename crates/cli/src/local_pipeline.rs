//! The working tree's pipeline file, read for `gitweave validate` and `gitweave exec` with the
//! parser pipeline-svc reads a commit's file with (`gitweave_model::template::parse_repo_file`,
//! SPEC §9: `include`, `rules`, job `rules`); the included templates come from the server
//! ([`crate::includes`]) and the rules are evaluated for a push of the current branch
//! ([`crate::local_rules`]).

use gitweave_model::template::{RepoFile, TemplateError, parse_repo_file};
use std::path::{Path, PathBuf};

/// The file names looked for, in order, when none is given.
pub const DEFAULT_FILES: [&str; 2] = [".gitweave.yml", ".gitweave.yaml"];

/// The stage name of the file's own jobs (SPEC §9: `pipeline/<job>`).
pub const STAGE: &str = gitweave_model::repo_plan::FILE_STAGE;

/// A loaded pipeline file.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    /// The validated file: includes, rules, its own jobs.
    pub file: RepoFile,
    /// Its text (to place problems found after parsing).
    pub text: String,
}

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file given and none of [`DEFAULT_FILES`] in the directory.
    #[error("no pipeline file here: looked for {} in {}", DEFAULT_FILES.join(" and "), .0.display())]
    Missing(PathBuf),
    /// The file could not be read.
    #[error("reading {}: {err}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The file does not parse or validate (the error names the file).
    #[error("{err}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its text.
        text: String,
        /// What the model says, with line and column where it knows them.
        err: Box<TemplateError>,
    },
}

/// The pipeline file `path`, or the first of [`DEFAULT_FILES`] in `dir`.
pub fn find(path: Option<&Path>, dir: &Path) -> Result<PathBuf, LoadError> {
    if let Some(p) = path {
        return Ok(p.to_owned());
    }
    DEFAULT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| LoadError::Missing(dir.to_owned()))
}

/// Reads and validates the pipeline file at `path` (see the module docs).
pub fn load(path: &Path) -> Result<LocalPipeline, LoadError> {
    use std::io::Read;
    let read_err = |err| LoadError::Read {
        path: path.to_owned(),
        err,
    };
    // No more than the model's cap and one byte: the parser refuses a file over it first.
    let cap = gitweave_model::template::MAX_TEMPLATE_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(cap).read_to_end(&mut bytes))
        .map_err(read_err)?;
    let source = if bytes.len() as u64 >= cap {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        String::from_utf8(bytes)
            .map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
    };
    match parse_repo_file(&source, &path.display().to_string()) {
        Ok(file) => Ok(LocalPipeline { file, text: source }),
        Err(err) => Err(LoadError::Invalid {
            path: path.to_owned(),
            text: source,
            err: Box::new(err),
        }),
    }
}
