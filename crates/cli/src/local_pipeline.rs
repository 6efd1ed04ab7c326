//! The working tree's pipeline file, read for `gitweave validate` and `gitweave exec`.
//!
//! **The one seam for the repo-file format**: today the file is parsed with the template
//! parser (`gitweave_model::template::parse_template`, SPEC §3). When the `.gitweave.yml`
//! parser of SPEC §9 (`include`, `rules`) lands in the model crate, [`load`] is the only
//! function to change: everything else takes the [`LocalPipeline`] it returns.

use gitweave_model::template::{Template, TemplateError, parse_template};
use std::path::{Path, PathBuf};

/// The file names looked for, in order, when none is given.
pub const DEFAULT_FILES: [&str; 2] = [".gitweave.yml", ".gitweave.yaml"];

/// The stage name of the file's own jobs (SPEC §9: `pipeline/<job>`).
pub const STAGE: &str = "pipeline";

/// A loaded pipeline file.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    /// The validated pipeline.
    pub template: Template,
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
    /// The file does not parse or validate.
    #[error("{}: {err}", .path.display())]
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
    let source = std::fs::read_to_string(path).map_err(|err| LoadError::Read {
        path: path.to_owned(),
        err,
    })?;
    match parse_template(&source) {
        Ok(template) => Ok(LocalPipeline { template }),
        Err(err) => Err(LoadError::Invalid {
            path: path.to_owned(),
            text: source,
            err: Box::new(err),
        }),
    }
}
