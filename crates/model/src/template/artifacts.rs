//! A job's `artifacts:` and `cache:` (SPEC §11): files kept after the job, and a directory
//! tree carried from one run to the next.
//!
//! Checked at upload: every path is relative to the workspace, without a `..` component (a
//! path can name nothing outside `/workspace`), at most [`MAX_PATHS`] per list and
//! [`MAX_PATH_BYTES`] each; artifact paths are globs (`*` stays within a directory, `**`
//! crosses them), cache paths are literal files or directories. `expire_in` takes the units
//! of `timeout` plus `d`. A cache key is either text (inputs allowed; after expansion made of
//! letters, digits, `.`, `_` and `-`) or `{files, prefix}`: pipeline-svc hashes those files
//! at the run's commit, so a key changes exactly when `Cargo.lock` does.

use crate::duration::{DEFAULT_EXPIRE_IN, parse_expire_in, serde_secs};
use crate::expr::{Segment, segments};
use crate::names::quoted;
use crate::template::parse::Builder;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The most paths one `artifacts.paths`, `cache.paths` or `cache.key.files` may list.
pub const MAX_PATHS: usize = 100;
/// The longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest cache key or prefix accepted (after expansion), in bytes.
pub const MAX_CACHE_KEY_BYTES: usize = 200;
/// The most files `cache.key.files` may name.
pub const MAX_KEY_FILES: usize = 10;

/// What a job keeps after it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// Globs relative to the workspace; never empty.
    pub paths: Vec<String>,
    /// How long the files are kept from the job's end.
    #[serde(with = "serde_secs")]
    pub expire_in: Duration,
    /// After which ends they are collected.
    #[serde(default)]
    pub when: ArtifactsWhen,
}

/// After which ends of a job its artifacts are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactsWhen {
    /// The job succeeded (the default).
    #[default]
    OnSuccess,
    /// The job failed (its script exited non-zero or timed out): logs and reports to look at.
    OnFailure,
    /// Whatever the end, once the script ran.
    Always,
}

impl ArtifactsWhen {
    /// Whether a job that ended so (`succeeded`) collects.
    pub fn collects(self, succeeded: bool) -> bool {
        match self {
            ArtifactsWhen::OnSuccess => succeeded,
            ArtifactsWhen::OnFailure => !succeeded,
            ArtifactsWhen::Always => true,
        }
    }
}

/// A job's cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// Which entry it reads and writes.
    pub key: CacheKey,
    /// Files and directories relative to the workspace; never empty.
    pub paths: Vec<String>,
    /// Whether it restores, saves, or both.
    #[serde(default)]
    pub policy: CachePolicy,
    /// What a `files` key stands for at the run's commit (`<prefix>-<16 hex>`): set by
    /// pipeline-svc when it writes the run, never read from YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

/// The prefix of a `files` key that names none.
pub const DEFAULT_KEY_PREFIX: &str = "default";

impl Cache {
    /// The entry's key: the text, or what the files resolved to (`<prefix>-default` when the
    /// run has no commit to read them at).
    pub fn key(&self) -> String {
        match &self.key {
            CacheKey::Text(t) => t.clone(),
            CacheKey::Files { prefix, .. } => self.resolved.clone().unwrap_or_else(|| {
                format!(
                    "{}-default",
                    prefix.as_deref().unwrap_or(DEFAULT_KEY_PREFIX)
                )
            }),
        }
    }

    /// What a restore falls back to when the key has no entry: the newest entry whose key
    /// starts with `<prefix>-` (a `files` key only).
    pub fn fallback_prefix(&self) -> Option<&str> {
        match &self.key {
            CacheKey::Text(_) => None,
            CacheKey::Files { prefix, .. } => Some(prefix.as_deref().unwrap_or(DEFAULT_KEY_PREFIX)),
        }
    }
}

/// The key `files` resolve to: `<prefix>-` and 16 hex digits of the sha256 of each file's
/// path and blob id at the commit (`None`: the file is not there), in the order listed.
pub fn files_key(prefix: Option<&str>, files: &[(String, Option<String>)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (path, blob) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(blob.as_deref().unwrap_or("missing").as_bytes());
        h.update([b'\n']);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", prefix.unwrap_or(DEFAULT_KEY_PREFIX))
}

/// How a cache's key is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKey {
    /// This text (inputs expanded).
    Text(String),
    /// `<prefix>-<hash of these files at the run's commit>`.
    Files {
        /// Paths of files in the repo, relative to its root.
        files: Vec<String>,
        /// Put before the hash; `default` when absent. Also what a restore falls back to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

/// Whether a job restores its cache, saves it, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CachePolicy {
    /// Restore only.
    Pull,
    /// Save only.
    Push,
    /// Restore before the script, save after a success (the default).
    #[default]
    PullPush,
}

impl CachePolicy {
    /// Whether the cache is restored before the script.
    pub fn pulls(self) -> bool {
        matches!(self, CachePolicy::Pull | CachePolicy::PullPush)
    }
    /// Whether the cache is saved after a success.
    pub fn pushes(self) -> bool {
        matches!(self, CachePolicy::Push | CachePolicy::PullPush)
    }
}

impl Cache {
    /// The text in which `${{ inputs.NAME }}` is expanded: a text key, or the prefix.
    pub(crate) fn expandable_texts(&self) -> impl Iterator<Item = &str> {
        match &self.key {
            CacheKey::Text(t) => Some(t.as_str()),
            CacheKey::Files { prefix, .. } => prefix.as_deref(),
        }
        .into_iter()
    }
}

/// Whether `key` (expanded) may name a cache entry: 1 to [`MAX_CACHE_KEY_BYTES`] bytes of
/// ASCII letters, digits, `.`, `_` and `-`, not starting with `.`. Explains a refusal.
pub fn check_cache_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a cache key must not be empty".to_owned());
    }
    if key.len() > MAX_CACHE_KEY_BYTES {
        return Err(format!(
            "a cache key is at most {MAX_CACHE_KEY_BYTES} bytes; this one has {}",
            key.len()
        ));
    }
    if key.starts_with('.') {
        return Err(format!(
            "cache key {} must not start with \".\"",
            quoted(key)
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "cache key {} holds {c:?}; use letters, digits, \".\", \"_\" and \"-\"",
            quoted(key)
        ));
    }
    Ok(())
}

/// Checks a path relative to the workspace; explains a refusal.
pub fn check_workspace_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("a path must not be empty".to_owned());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "a path is at most {MAX_PATH_BYTES} bytes; this one has {}",
            path.len()
        ));
    }
    if path.contains('\0') {
        return Err("a path must not hold a NUL byte".to_owned());
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "path {} holds a control character (a newline, a tab, …)",
            quoted(path)
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "path {} is absolute; paths are relative to the workspace (/workspace)",
            quoted(path)
        ));
    }
    if path.starts_with('~') {
        return Err(format!(
            "path {} starts with \"~\"; paths are relative to the workspace (set e.g. CARGO_HOME=$GITWEAVE_WORKSPACE/.cargo and cache .cargo)",
            quoted(path)
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!(
            "path {} holds \"..\"; paths must stay inside the workspace",
            quoted(path)
        ));
    }
    if path.split('/').all(|c| c.is_empty() || c == ".") {
        return Err(format!(
            "path {} names the workspace itself; name what in it to keep",
            quoted(path)
        ));
    }
    Ok(())
}

/// `artifacts:` as written.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an artifacts mapping with keys paths, expire_in, when"
)]
pub(super) struct RawArtifacts {
    paths: Option<Vec<String>>,
    expire_in: Option<String>,
    when: Option<ArtifactsWhen>,
}

/// `cache:` as written.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a cache mapping with keys key, paths, policy"
)]
pub(super) struct RawCache {
    key: Option<RawCacheKey>,
    paths: Option<Vec<String>>,
    policy: Option<CachePolicy>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a cache key: a string, or a mapping with keys files, prefix"
)]
enum RawCacheKey {
    Text(String),
    Files(RawKeyFiles),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFiles {
    files: Vec<String>,
    prefix: Option<String>,
}

impl Builder {
    /// Checks a job's `artifacts:`.
    pub(super) fn artifacts(&mut self, p: &str, raw: Option<RawArtifacts>) -> Option<Artifacts> {
        let raw = raw?;
        let at = format!("{p}.artifacts");
        let before = self.errors.len();
        let paths = self.paths(&format!("{at}.paths"), raw.paths, true);
        let expire_in = match raw.expire_in {
            None => DEFAULT_EXPIRE_IN,
            Some(t) => parse_expire_in(&t).unwrap_or_else(|e| {
                self.err(format!("{at}.expire_in: {e}"));
                DEFAULT_EXPIRE_IN
            }),
        };
        (self.errors.len() == before).then(|| Artifacts {
            paths,
            expire_in,
            when: raw.when.unwrap_or_default(),
        })
    }

    /// Checks a job's `cache:`.
    pub(super) fn cache(&mut self, p: &str, raw: Option<RawCache>) -> Option<Cache> {
        let raw = raw?;
        let at = format!("{p}.cache");
        let before = self.errors.len();
        let paths = self.paths(&format!("{at}.paths"), raw.paths, false);
        let key = match raw.key {
            None => {
                self.err(format!("{at}.key is required"));
                None
            }
            Some(RawCacheKey::Text(t)) => {
                self.key_text(&format!("{at}.key"), &t);
                Some(CacheKey::Text(t))
            }
            Some(RawCacheKey::Files(f)) => {
                let files = self.paths(&format!("{at}.key.files"), Some(f.files), false);
                if files.len() > MAX_KEY_FILES {
                    self.err(format!(
                        "{at}.key.files names {} files; at most {MAX_KEY_FILES} are allowed",
                        files.len()
                    ));
                }
                if let Some(prefix) = &f.prefix {
                    self.key_text(&format!("{at}.key.prefix"), prefix);
                }
                Some(CacheKey::Files {
                    files,
                    prefix: f.prefix,
                })
            }
        };
        let key = key?;
        (self.errors.len() == before).then(|| Cache {
            key,
            paths,
            policy: raw.policy.unwrap_or_default(),
            resolved: None,
        })
    }

    /// A key or prefix: its literal text must be a key's, and its expressions valid (they are
    /// expanded later, and the result checked again).
    fn key_text(&mut self, at: &str, text: &str) {
        match segments(text) {
            Err(e) => self.err(format!("{at}: {e}")),
            Ok(segs) => {
                let literal: String = segs
                    .iter()
                    .map(|s| match s {
                        Segment::Text(t) => *t,
                        // Stands for a value that is checked once expanded.
                        Segment::Input(_) => "x",
                    })
                    .collect();
                if let Err(e) = check_cache_key(&literal) {
                    self.err(format!("{at}: {e}"));
                }
            }
        }
    }

    /// A non-empty list of workspace paths; `globs`: each must also compile as a glob, else
    /// none may hold a glob character.
    fn paths(&mut self, at: &str, raw: Option<Vec<String>>, globs: bool) -> Vec<String> {
        let paths = match raw {
            None => {
                self.err(format!("{at} is required"));
                return Vec::new();
            }
            Some(p) if p.is_empty() => {
                self.err(format!("{at} must not be empty"));
                return Vec::new();
            }
            Some(p) if p.len() > MAX_PATHS => {
                self.err(format!(
                    "{at} lists {} paths; at most {MAX_PATHS} are allowed",
                    p.len()
                ));
                return Vec::new();
            }
            Some(p) => p,
        };
        for (i, path) in paths.iter().enumerate() {
            if let Err(e) = check_workspace_path(path) {
                self.err(format!("{at}[{i}]: {e}"));
                continue;
            }
            if globs {
                if let Err(e) = globset::GlobBuilder::new(path)
                    .literal_separator(true)
                    .build()
                {
                    self.err(format!(
                        "{at}[{i}]: {} is not a valid glob: {e}",
                        quoted(path)
                    ));
                }
            } else if path.contains(['*', '?', '[', '{']) {
                self.err(format!(
                    "{at}[{i}]: {} holds a glob character; name files or directories here",
                    quoted(path)
                ));
            }
        }
        paths
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn workspace_paths_stay_inside() {
        for ok in [
            "dist",
            "dist/**",
            "./target/release/app",
            "a/b.c",
            ".cargo/registry",
        ] {
            assert_eq!(check_workspace_path(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("~/.cargo", "\"~\""),
            ("../x", "\"..\""),
            ("a/../../x", "\"..\""),
            ("a/..", "\"..\""),
            (".", "workspace itself"),
            ("./", "workspace itself"),
            ("a\0b", "NUL"),
            ("a\nb", "control character"),
        ] {
            let e = check_workspace_path(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(check_workspace_path(&"a".repeat(MAX_PATH_BYTES + 1)).is_err());
    }

    #[test]
    fn cache_keys_are_plain_names() {
        for ok in ["cargo-0123abcd", "v1.2_x", "A"] {
            assert_eq!(check_cache_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", "${x}"] {
            assert!(check_cache_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_cache_key(&"k".repeat(MAX_CACHE_KEY_BYTES + 1)).is_err());
    }

    #[test]
    fn when_and_policy() {
        assert!(ArtifactsWhen::OnSuccess.collects(true));
        assert!(!ArtifactsWhen::OnSuccess.collects(false));
        assert!(ArtifactsWhen::OnFailure.collects(false));
        assert!(!ArtifactsWhen::OnFailure.collects(true));
        assert!(ArtifactsWhen::Always.collects(false));
        assert!(CachePolicy::Pull.pulls() && !CachePolicy::Pull.pushes());
        assert!(!CachePolicy::Push.pulls() && CachePolicy::Push.pushes());
        assert!(CachePolicy::PullPush.pulls() && CachePolicy::PullPush.pushes());
    }

    proptest! {
        /// A path that is accepted never climbs out of the workspace, whatever it holds.
        #[test]
        fn an_accepted_path_never_leaves_the_workspace(s in "[a-z./~*]{0,12}") {
            if check_workspace_path(&s).is_ok() {
                let mut depth = 0i32;
                for c in s.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => depth -= 1,
                        _ => depth += 1,
                    }
                    prop_assert!(depth >= 0);
                }
                prop_assert!(!s.starts_with('/'));
            }
        }

        #[test]
        fn an_accepted_key_is_a_safe_name(s in "\\PC{0,20}") {
            if check_cache_key(&s).is_ok() {
                prop_assert!(!s.contains('/') && !s.starts_with('.') && s.is_ascii());
            }
        }
    }
}

#[cfg(test)]
#[path = "artifacts_tests.rs"]
mod template_tests;
