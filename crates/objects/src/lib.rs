//! GitWeave's content-addressed object store for artifacts and cache archives (SPEC §11).
//!
//! [`Objects`] wraps an [`object_store::ObjectStore`]: a local directory (`file:///abs/dir`)
//! or any S3-compatible store (`s3://bucket/prefix`). An object is named by the sha256 of its
//! bytes, `sha256/<first 2 hex>/<64 hex>` under the prefix. A write goes to a temporary name
//! `tmp/<uuid>` first, hashed and counted while it streams; only a whole, checked object is
//! copied to its final name, so a crash mid-write leaves at most a temporary, which
//! [`Objects::sweep_temporaries`] removes later. Names come only from strings that passed
//! [`is_sha256`], so no outside string ever becomes a path.

mod error;
mod key;
mod put;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

pub use error::{ObjectsError, PutError};
pub use key::is_sha256;
pub use put::Stored;

/// Where objects live: `file:///abs/dir` (created if missing) or `s3://bucket[/prefix]`.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Everything this store writes is under it (empty for a local directory, the URL's path
    /// for S3).
    prefix: Path,
    /// The URL as given, normalised; it never holds credentials (they are refused in it).
    url: String,
    /// The directory of a `file://` store: its sweep reads the temporaries folder itself, since
    /// a local write that crashed leaves a staging file the store's listing hides.
    local_root: Option<PathBuf>,
    /// The part size of its multipart writes ([`put::S3_PART_BYTES`] or
    /// [`put::LOCAL_PART_BYTES`]).
    part_bytes: usize,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("url", &self.url).finish()
    }
}

/// Where an S3 store's options come from.
enum S3Config<'a> {
    /// The process's `AWS_*` variables.
    Env,
    /// Only these options (keys as `object_store` names them: `aws_endpoint`, `aws_region`, ...).
    Given(&'a [(&'a str, &'a str)]),
}

impl Objects {
    /// The store at `url`. An S3 store takes its settings from the `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...); it uses path-style addressing unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub fn from_url(url: &str) -> Result<Objects, ObjectsError> {
        Self::build(url, S3Config::Env)
    }

    /// The store at `url`, an S3 store configured by `options` alone (the environment is not
    /// read), e.g. `[("aws_endpoint", "http://127.0.0.1:9000"), ("aws_allow_http", "true")]`.
    /// A `file://` store takes no options.
    pub fn from_url_with(url: &str, options: &[(&str, &str)]) -> Result<Objects, ObjectsError> {
        if !options.is_empty() && !url.starts_with("s3://") {
            return Err(ObjectsError::InvalidUrl(format!(
                "options are for s3:// stores only, not {url}"
            )));
        }
        Self::build(url, S3Config::Given(options))
    }

    fn build(url: &str, config: S3Config<'_>) -> Result<Objects, ObjectsError> {
        let invalid = |why: String| ObjectsError::InvalidUrl(why);
        let parsed = url::Url::parse(url).map_err(|e| {
            invalid(format!(
                "{url:?} is not a URL ({e}); use file:///absolute/dir or s3://bucket/prefix"
            ))
        })?;
        match parsed.scheme() {
            "file" => {
                if !url.starts_with("file:///") || parsed.query().is_some() {
                    return Err(invalid(format!(
                        "{url:?}: a local store needs an absolute directory, as file:///var/lib/gitweave/objects"
                    )));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid(format!("{url:?} does not name a local directory")))?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    ObjectsError::Store(format!("cannot create {}: {e}", dir.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Objects {
                    store: Arc::new(store),
                    prefix: Path::default(),
                    url: parsed.to_string(),
                    local_root: Some(dir),
                    part_bytes: put::LOCAL_PART_BYTES,
                })
            }
            "s3" => {
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(invalid(
                        "credentials do not go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .to_owned(),
                    ));
                }
                let bucket = parsed.host_str().unwrap_or_default();
                if bucket.is_empty() {
                    return Err(invalid(format!(
                        "{url:?} names no bucket; use s3://bucket or s3://bucket/prefix"
                    )));
                }
                if parsed.query().is_some()
                    || parsed.fragment().is_some()
                    || parsed.port().is_some()
                {
                    return Err(invalid(format!(
                        "{url:?}: an s3:// URL is s3://bucket/prefix; the endpoint goes in AWS_ENDPOINT_URL"
                    )));
                }
                // The URL parser resolves `.` and `..` away; a prefix must say where it is.
                let written = url.split_once("://").map_or("", |(_, rest)| rest);
                let dotted = written
                    .split(['/', '?', '#'])
                    .skip(1)
                    .any(|s| s == "." || s == "..");
                let raw_prefix = parsed.path().trim_matches('/');
                if dotted || raw_prefix.contains('%') {
                    return Err(invalid(format!(
                        "{url:?}: the prefix cannot hold `.`, `..` or %-escapes"
                    )));
                }
                let prefix = Path::parse(raw_prefix).map_err(|e| {
                    invalid(format!(
                        "{url:?}: the prefix {raw_prefix:?} cannot be used: {e}"
                    ))
                })?;
                let mut builder = match config {
                    S3Config::Env => AmazonS3Builder::from_env(),
                    S3Config::Given(options) => {
                        let mut builder = AmazonS3Builder::new();
                        for (key, value) in options {
                            let key: AmazonS3ConfigKey = key
                                .to_ascii_lowercase()
                                .parse()
                                .map_err(|_| invalid(format!("unknown S3 option {key:?}")))?;
                            builder = builder.with_config(key, *value);
                        }
                        builder
                    }
                };
                builder = builder.with_bucket_name(bucket);
                let store = builder
                    .build()
                    .map_err(|e| invalid(format!("{url:?}: the S3 store cannot be set up: {e}")))?;
                let url = if prefix.as_ref().is_empty() {
                    format!("s3://{bucket}")
                } else {
                    format!("s3://{bucket}/{prefix}")
                };
                Ok(Objects {
                    store: Arc::new(store),
                    prefix,
                    url,
                    local_root: None,
                    part_bytes: put::S3_PART_BYTES,
                })
            }
            other => Err(invalid(format!(
                "{url:?}: the scheme {other:?} is not supported; use file:///absolute/dir or s3://bucket/prefix"
            ))),
        }
    }

    /// The store's URL (never with credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Size of a stored object, None when absent.
    pub async fn head(&self, sha256: &str) -> Result<Option<u64>, ObjectsError> {
        let path = key::object_path(&self.prefix, key::checked(sha256)?);
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of an object, whole or a byte range `[start, end)` — streamed, never buffered
    /// whole. [`ObjectsError::NotFound`] when absent, [`ObjectsError::InvalidRange`] when the
    /// range does not lie inside the object (an empty range inside it gives no bytes).
    pub async fn get(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let path = key::object_path(&self.prefix, key::checked(sha256)?);
        let options = match range {
            None => GetOptions::default(),
            Some(range) => {
                // The stores disagree on ranges past the end (S3 shortens them, a directory
                // refuses some); checking against the size first gives one answer for both.
                let size = self.head(sha256).await?.ok_or(ObjectsError::NotFound)?;
                if range.start > range.end || range.end > size {
                    return Err(ObjectsError::InvalidRange {
                        start: range.start,
                        end: range.end,
                        size,
                    });
                }
                if range.is_empty() {
                    return Ok(futures::stream::empty().boxed());
                }
                GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..GetOptions::default()
                }
            }
        };
        let result = self.store.get_opts(&path, options).await?;
        Ok(result.into_stream().map_err(ObjectsError::from).boxed())
    }

    /// Deletes an object; absent is fine.
    pub async fn delete(&self, sha256: &str) -> Result<(), ObjectsError> {
        let path = key::object_path(&self.prefix, key::checked(sha256)?);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                tracing::debug!(sha256, "object deleted");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes temporaries older than `age` (left by a crash); returns how many.
    pub async fn sweep_temporaries(&self, age: Duration) -> Result<usize, ObjectsError> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let removed = match &self.local_root {
            Some(root) => sweep_local(root.join(key::TMP_DIR), cutoff).await?,
            None => {
                let tmp = self.prefix.child(key::TMP_DIR);
                let old: Vec<Path> = self
                    .store
                    .list(Some(&tmp))
                    .try_filter_map(|meta| async move {
                        Ok((SystemTime::from(meta.last_modified) <= cutoff)
                            .then_some(meta.location))
                    })
                    .try_collect()
                    .await?;
                let mut removed = 0;
                for path in old {
                    match self.store.delete(&path).await {
                        Ok(()) => removed += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                removed
            }
        };
        if removed > 0 {
            tracing::info!(removed, store = %self.url, "old temporaries removed from the object store");
        }
        Ok(removed)
    }
}

/// Removes the files of a local store's temporaries folder last changed at or before `cutoff`:
/// whole temporaries and the staging files of writes that never finished.
async fn sweep_local(dir: PathBuf, cutoff: SystemTime) -> Result<usize, ObjectsError> {
    let failed =
        |e: std::io::Error| ObjectsError::Store(format!("sweeping {}: {e}", dir.display()));
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(failed(e)),
    };
    let mut removed = 0;
    while let Some(entry) = entries.next_entry().await.map_err(failed)? {
        let meta = match entry.metadata().await {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(failed(e)),
        };
        if !meta.is_file() || meta.modified().map_err(failed)? > cutoff {
            continue;
        }
        match tokio::fs::remove_file(entry.path()).await {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(removed)
}
