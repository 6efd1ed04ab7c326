//! Pipeline templates: YAML parsed once into validated types ("parse, don't validate").
//!
//! [`parse_template`] is the only place template YAML is read. It deserializes into
//! private, loosely typed `Raw*` structs (so shape errors come from the YAML library with a
//! line and column, and unknown keys are rejected), then checks every rule and builds the
//! public [`Template`]. Validation errors are collected and reported together, joined with
//! `"; "`, each naming where it is (`jobs[2].name …`).
//!
//! The public types also derive serde so a parsed template can be stored as JSON; reading
//! that JSON back does not re-run the checks, so it must only ever come from
//! [`parse_template`]'s output.
//!
//! The module is split by concern: [`TemplateError`] (`error`), the validated types
//! (`types`, `when`, `retry`), the raw YAML shapes (`raw`), and the builder that turns
//! one into the other (`parse`, with `inputs`, `retry` and the cross-job `checks`).

mod artifacts;
mod checks;
mod error;
mod inputs;
mod parse;
mod raw;
mod repo_file;
mod retry;
mod secrets;
mod services;
mod types;
mod when;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use artifacts::{
    Artifacts, ArtifactsWhen, Cache, CacheKey, CachePolicy, MAX_CACHE_KEY_BYTES, MAX_KEY_FILES,
    MAX_PATH_BYTES, MAX_PATHS, check_cache_key, check_workspace_path, files_key,
};
pub use error::TemplateError;
pub use parse::parse_template;
pub use repo_file::{Include, MAX_INCLUDES, MAX_RULES, RepoFile, locate, parse_repo_file};
pub use retry::{MAX_RETRIES, RetryPolicy};
pub use secrets::SecretRef;
pub use services::{DEFAULT_READY_TIMEOUT, MAX_SERVICES, Ready, ReadyCheck, Service};
pub use types::{InputSpec, JobTemplate, Template};
pub use when::When;

/// The largest template accepted, checked before any parsing.
pub const MAX_TEMPLATE_BYTES: usize = 512 * 1024;

/// The most jobs one template may hold.
pub const MAX_JOBS: usize = 500;
