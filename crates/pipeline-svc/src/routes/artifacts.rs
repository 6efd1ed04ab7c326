//! Artifacts and cache archives (SPEC §11): what runners store and fetch, and what people
//! download.
//!
//! Runner side (`/internal/v1`, the runner token, only the runner holding the running attempt):
//! - `PUT /jobs/{id}/attempts/{n}/artifacts?path=P` streams one file of the job's
//!   `artifacts.paths` into the object store (sha256 computed while writing, checked against
//!   `x-gitweave-sha256` when sent, at most `PIPELINE_ARTIFACT_MAX_BYTES`), then records it and
//!   appends `artifact.emitted` with `{path, size, sha256}` in one transaction.
//! - `GET /jobs/{id}/attempts/{n}/inputs/{sha256}`: a file an upstream job of the run kept.
//! - `GET /jobs/{id}/attempts/{n}/cache/{sha256}`: the archive of a cache entry the job may
//!   restore (its repo's, in a scope its run may read).
//! - `PUT /jobs/{id}/attempts/{n}/cache?key=K`: the job's cache archive, stored as a new entry
//!   of its scope unless one of `K` exists (entries are never overwritten).
//!
//! Public side (the API token, through the gateway):
//! - `GET /jobs/{id}/artifacts`: the list.
//! - `GET /jobs/{id}/artifacts/{path}`: the bytes, `ETag` = the sha256 (`If-None-Match`
//!   answers `304`), one `Range` honoured (`206`, `416`); `410` once expired.
//! - `GET /jobs/{id}/artifacts.tar`: every unexpired file under its path, streamed as one tar.
//!
//! An object is recorded in `objects` after it is stored and checked to exist again after, so
//! the sweeper, which deletes only objects nothing names that were not touched within its
//! grace, never takes one an upload is naming.

use crate::auth::{self, RunnerIdentity};
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use gitweave_api::error_code;
use gitweave_api::public::{Artifact, ArtifactList};
use gitweave_api::runner::{SHA256_HEADER, Stored};
use gitweave_model::byte_range::{self, Ranged};
use gitweave_model::expand::ExpandedJob;
use gitweave_model::status::EventType;
use gitweave_model::template::{CacheKey, check_cache_key, check_workspace_path};
use gitweave_objects::{ObjectsError, PutError, is_sha256};
use gitweave_storage::artifacts::{self, ArtifactRow};
use gitweave_storage::events::{self, NewEvent};
use gitweave_storage::jobs::{self, JobRow};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs/{id}/artifacts", get(list))
        .route("/jobs/{id}/artifacts.tar", get(tarball))
        .route("/jobs/{id}/artifacts/{*path}", get(download))
}

pub(super) fn runner_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/jobs/{id}/attempts/{attempt}/artifacts",
            // The body streams into the store, which enforces PIPELINE_ARTIFACT_MAX_BYTES.
            put(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/jobs/{id}/attempts/{attempt}/inputs/{sha256}", get(input))
        .route(
            "/jobs/{id}/attempts/{attempt}/cache",
            put(save_cache).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/jobs/{id}/attempts/{attempt}/cache/{sha256}",
            get(cache_archive),
        )
}

/// The job's expanded spec.
fn spec_of(job: &JobRow) -> Result<ExpandedJob, ApiError> {
    serde_json::from_value(job.spec.clone())
        .map_err(|e| ApiError::Internal(format!("job {} has an unreadable spec: {e}", job.id)))
}

/// The job, if `runner` holds its running `attempt`; else `409 stale_attempt`.
async fn held_job(
    state: &AppState,
    runner: &RunnerIdentity,
    id: &str,
    attempt: i32,
) -> Result<JobRow, ApiError> {
    let (id, attempt) = super::runners::ids(id, attempt)?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))?;
    let held = job.status == gitweave_model::status::JobStatus::Running
        && job.attempt == attempt
        && job.runner_id == Some(runner.id);
    if !held {
        return Err(stale(id, attempt));
    }
    Ok(job)
}

fn stale(id: Uuid, attempt: i32) -> ApiError {
    ApiError::Conflict(
        error_code::STALE_ATTEMPT,
        format!(
            "this runner does not hold attempt {attempt} of job {id} (it ended, or its lease was lost)"
        ),
    )
}

fn put_error(e: PutError) -> ApiError {
    match e {
        PutError::TooLarge { max_bytes } => ApiError::TooLarge(format!(
            "the upload is larger than PIPELINE_ARTIFACT_MAX_BYTES ({max_bytes} bytes)"
        )),
        PutError::Mismatch { expected, actual } => ApiError::Invalid(
            error_code::DIGEST_MISMATCH,
            format!(
                "the upload's bytes hash to {actual}, not to the {expected} its {SHA256_HEADER} said; nothing was stored"
            ),
        ),
        PutError::Body(why) => ApiError::BadRequest(
            error_code::BAD_BODY,
            format!("the upload's body ended early: {why}"),
        ),
        PutError::Store(e) => store_error(e),
    }
}

fn store_error(e: ObjectsError) -> ApiError {
    match e {
        ObjectsError::NotFound => ApiError::Internal(
            "an object named in the database is missing from the object store".into(),
        ),
        other => ApiError::Unavailable(format!("the object store failed ({other}); retry shortly")),
    }
}

/// `x-gitweave-sha256`, if sent: must be a sha256.
fn announced(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(SHA256_HEADER) else {
        return Ok(None);
    };
    match v.to_str().ok().filter(|s| is_sha256(s)) {
        Some(s) => Ok(Some(s.to_owned())),
        None => Err(ApiError::BadRequest(
            error_code::BAD_BODY,
            format!("{SHA256_HEADER} must be a sha256: 64 lowercase hex digits"),
        )),
    }
}

/// Streams `body` into the store and records the object (see the module's last paragraph).
async fn store(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<gitweave_objects::Stored, ApiError> {
    let expect = announced(headers)?;
    let stored = state
        .objects
        .put_stream(
            body.into_data_stream(),
            expect.as_deref(),
            state.config.artifact_max_bytes,
        )
        .await
        .map_err(put_error)?;
    artifacts::touch_object(&state.pool, &stored.sha256, stored.size as i64).await?;
    if state
        .objects
        .head(&stored.sha256)
        .await
        .map_err(store_error)?
        .is_none()
    {
        // The sweeper deleted it between the write and the touch: the sender sends again.
        return Err(ApiError::Unavailable(
            "the object was swept while it was stored; send it again".into(),
        ));
    }
    Ok(stored)
}

#[derive(Debug, serde::Deserialize)]
struct PathQuery {
    path: String,
}

async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
    QueryParams(q): QueryParams<PathQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let job = held_job(&state, &runner, &id, attempt).await?;
    let path = clean_path(&q.path)?;
    let spec = spec_of(&job)?;
    let Some(declared) = spec.artifacts else {
        return Err(ApiError::Invalid(
            error_code::INVALID_ARTIFACT,
            format!("job {} declares no artifacts", job.id),
        ));
    };
    let stored = store(&state, &headers, body).await?;
    let mut tx = state.pool.begin().await?;
    let recorded = artifacts::insert(
        &mut *tx,
        job.id,
        attempt,
        runner.id,
        &path,
        stored.size as i64,
        &stored.sha256,
        declared.expire_in.as_secs() as i64,
    )
    .await?;
    if !recorded {
        return Err(stale(job.id, attempt));
    }
    let event = NewEvent {
        job_id: Some(job.id),
        attempt: Some(attempt),
        data: Some(serde_json::json!({
            "path": path,
            "size": stored.size,
            "sha256": stored.sha256,
        })),
        ..NewEvent::new(EventType::ArtifactEmitted, runner.actor())
    };
    events::append_all(&mut tx, job.run_id, &[event]).await?;
    tx.commit().await?;
    state.run_changed(job.run_id);
    state
        .metrics
        .inc_by("gitweave_artifact_bytes_total", "", stored.size);
    tracing::info!(job.id = %job.id, attempt, path, size = stored.size, sha256 = %stored.sha256, "artifact stored");
    Ok((
        StatusCode::CREATED,
        Json(Stored {
            sha256: stored.sha256,
            size: stored.size,
            created: true,
        }),
    )
        .into_response())
}

/// An artifact path as a runner sends it: a workspace path, `/`-separated, without `.` or
/// empty components (so one file has one name).
fn clean_path(raw: &str) -> Result<String, ApiError> {
    check_workspace_path(raw).map_err(|e| ApiError::Invalid(error_code::INVALID_ARTIFACT, e))?;
    if raw.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(ApiError::Invalid(
            error_code::INVALID_ARTIFACT,
            format!("artifact path {raw:?} has an empty or \".\" component; send it normalised"),
        ));
    }
    Ok(raw.to_owned())
}

/// Streams an object as the body of a `200`.
async fn object_body(state: &AppState, sha256: &str, size: i64) -> Result<Response, ApiError> {
    let stream = state.objects.get(sha256, None).await.map_err(store_error)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn input(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt, sha256)): Path<(String, i32, String)>,
) -> Result<Response, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let job = held_job(&state, &runner, &id, attempt).await?;
    // Only what a job of its own run kept and still keeps.
    let found = artifacts::of_run(&state.pool, job.run_id)
        .await?
        .into_iter()
        .find(|(_, a)| a.sha256 == sha256);
    let Some((_, a)) = found else {
        return Err(ApiError::NotFound(format!(
            "no unexpired artifact of run {} has sha256 {sha256}",
            job.run_id
        )));
    };
    object_body(&state, &a.sha256, a.size).await
}

async fn cache_archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt, sha256)): Path<(String, i32, String)>,
) -> Result<Response, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let job = held_job(&state, &runner, &id, attempt).await?;
    let scope = crate::orchestrator::cache_scope(&state, job.run_id).await?;
    let entries = artifacts::cache_of_repo(&state.pool, scope.repo_id).await?;
    // Entries of the scopes this run may restore from.
    let Some(entry) = entries
        .into_iter()
        .find(|e| e.sha256 == sha256 && (e.protected || !scope.protected))
    else {
        return Err(ApiError::NotFound(format!(
            "no cache entry this job may restore has sha256 {sha256}"
        )));
    };
    object_body(&state, &entry.sha256, entry.size).await
}

#[derive(Debug, serde::Deserialize)]
struct KeyQuery {
    key: String,
}

async fn save_cache(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, attempt)): Path<(String, i32)>,
    QueryParams(q): QueryParams<KeyQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let runner = auth::runner(&state, &headers).await?;
    let job = held_job(&state, &runner, &id, attempt).await?;
    check_cache_key(&q.key).map_err(|e| ApiError::Invalid(error_code::INVALID_ARTIFACT, e))?;
    let spec = spec_of(&job)?;
    let key = spec
        .cache
        .as_ref()
        .and_then(|c| match (&c.key, c.policy.pushes()) {
            (CacheKey::Text(k), true) => Some(k.clone()),
            _ => None,
        });
    if key.as_deref() != Some(q.key.as_str()) {
        return Err(ApiError::Invalid(
            error_code::INVALID_ARTIFACT,
            format!("job {} does not save a cache of key {:?}", job.id, q.key),
        ));
    }
    let scope = crate::orchestrator::cache_scope(&state, job.run_id).await?;
    if artifacts::cache_exists(&state.pool, scope.repo_id, scope.protected, &q.key).await? {
        // Another job saved it first: not read, not replaced.
        return Err(ApiError::Conflict(
            error_code::INVALID_ARTIFACT,
            format!(
                "the cache entry {:?} exists already; entries are never overwritten",
                q.key
            ),
        ));
    }
    let stored = store(&state, &headers, body).await?;
    let created = artifacts::cache_insert(
        &state.pool,
        scope.repo_id,
        scope.protected,
        &q.key,
        &stored.sha256,
        stored.size as i64,
    )
    .await?;
    tracing::info!(job.id = %job.id, attempt, key = q.key, size = stored.size, created, protected = scope.protected, "cache saved");
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(Stored {
            sha256: stored.sha256,
            size: stored.size,
            created,
        }),
    )
        .into_response())
}

fn view(a: &ArtifactRow) -> Artifact {
    Artifact {
        path: a.path.clone(),
        size: a.size.max(0) as u64,
        sha256: a.sha256.clone(),
        expires_at: a.expires_at,
    }
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ArtifactList>, ApiError> {
    let job = super::jobs::load(&state, &id).await?;
    let rows = artifacts::of_job(&state.pool, job.id).await?;
    Ok(Json(ArtifactList {
        artifacts: rows.iter().map(view).collect(),
    }))
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = super::jobs::load(&state, &id).await?;
    let Some(a) = artifacts::get(&state.pool, job.id, &path).await? else {
        return Err(ApiError::NotFound(format!(
            "job {} has no artifact {path:?}; GET /api/v1/jobs/{}/artifacts lists them",
            job.id, job.id
        )));
    };
    if a.expired(OffsetDateTime::now_utc()) {
        return Err(ApiError::Gone(format!(
            "artifact {path:?} of job {} expired at {}; its bytes are deleted",
            job.id,
            a.expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        )));
    }
    let etag = format!("\"{}\"", a.sha256);
    let size = a.size.max(0) as u64;
    let common = |r: &mut Response| {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        h.insert(
            header::HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
    };
    if if_none_match(&headers, &a.sha256) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        common(&mut r);
        return Ok(r);
    }
    let ranged = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => Ranged::Whole,
        // `If-Range` with another validator: the whole (changed) file.
        Some(_) if !if_range_holds(&headers, &etag) => Ranged::Whole,
        Some(h) => byte_range::parse(h, size),
    };
    let mut r = match ranged {
        Ranged::Unsatisfiable => {
            let mut r = ApiError::BadRange(format!(
                "the Range holds no byte of {path:?}, which has {size} bytes"
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        Ranged::Whole => object_body(&state, &a.sha256, a.size).await?,
        Ranged::Part(range) => {
            let len = range.end - range.start;
            let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
            let stream = state
                .objects
                .get(&a.sha256, Some(range))
                .await
                .map_err(store_error)?;
            let mut r = (StatusCode::PARTIAL_CONTENT, Body::from_stream(stream)).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if let Ok(v) = HeaderValue::from_str(&content_range) {
                h.insert(header::CONTENT_RANGE, v);
            }
            r
        }
    };
    common(&mut r);
    if let Ok(v) = HeaderValue::from_str(&disposition(&path)) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `If-None-Match` names this sha256 (or is `*`).
fn if_none_match(headers: &HeaderMap, sha256: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == sha256)
}

/// `If-Range` is absent or names this ETag.
fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

/// `attachment` with the file's base name, ASCII-safe.
fn disposition(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let safe: String = base
        .chars()
        .map(|c| match c.is_ascii_graphic() && c != '"' && c != '\\' {
            true => c,
            false => '_',
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

async fn tarball(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = super::jobs::load(&state, &id).await?;
    let rows = artifacts::of_job(&state.pool, job.id).await?;
    let now = OffsetDateTime::now_utc();
    let (live, expired): (Vec<ArtifactRow>, Vec<ArtifactRow>) =
        rows.into_iter().partition(|a| !a.expired(now));
    if live.is_empty() {
        return Err(match expired.is_empty() {
            true => ApiError::NotFound(format!("job {} kept no artifacts", job.id)),
            false => ApiError::Gone(format!(
                "every artifact of job {} has expired; their bytes are deleted",
                job.id
            )),
        });
    }
    let length: u64 = live
        .iter()
        .map(|a| tar::entry_len(&a.path, a.size.max(0) as u64))
        .sum::<u64>()
        + tar::TRAILER_LEN;
    let objects = state.objects.clone();
    let mtime = now.unix_timestamp().max(0) as u64;
    // One file after another: a header, the object's bytes as the store streams them, the
    // padding; then the trailer.
    let entries = futures::stream::iter(live).then(move |a| {
        let objects = objects.clone();
        async move {
            let size = a.size.max(0) as u64;
            let head = tar::headers(&a.path, size, mtime);
            let body = objects
                .get(&a.sha256, None)
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other);
            let pad = tar::padding(size);
            Ok::<_, std::io::Error>(
                futures::stream::once(async move { Ok(Bytes::from(head)) })
                    .chain(body)
                    .chain(futures::stream::once(async move { Ok(Bytes::from(pad)) })),
            )
        }
    });
    let body = entries.try_flatten().chain(futures::stream::once(async {
        Ok(Bytes::from_static(&[0u8; tar::TRAILER_LEN as usize]))
    }));
    let name = format!("attachment; filename=\"job-{}-artifacts.tar\"", job.id);
    let mut r = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        Body::from_stream(body),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&name) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The tar format, as much as `artifacts.tar` needs: GNU headers, a `././@LongLink` entry
/// before a path longer than the header's 100 bytes.
mod tar {
    /// Two zero blocks end an archive.
    pub const TRAILER_LEN: u64 = 1024;
    const BLOCK: u64 = 512;

    fn padded(n: u64) -> u64 {
        n.div_ceil(BLOCK) * BLOCK
    }

    /// Bytes `headers` + content + `padding` take for one file.
    pub fn entry_len(path: &str, size: u64) -> u64 {
        let long = match path.len() > 100 {
            true => BLOCK + padded(path.len() as u64 + 1),
            false => 0,
        };
        long + BLOCK + padded(size)
    }

    /// Zeros after `size` bytes of content, to the block's end.
    pub fn padding(size: u64) -> Vec<u8> {
        vec![0u8; (padded(size) - size) as usize]
    }

    fn header(name: &[u8], size: u64, mtime: u64, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = kind;
        // GNU magic and version.
        h[257..265].copy_from_slice(b"ustar  \0");
        // The checksum is computed with its own field as spaces.
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let digits = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(digits.as_bytes());
        h
    }

    /// Writes `v` as zero-padded octal filling `field` but its last byte (NUL).
    fn octal(field: &mut [u8], v: u64) {
        let width = field.len() - 1;
        let s = format!("{v:0width$o}");
        let s = s.as_bytes();
        // A value too large for the field (not reachable at 4 GiB per file) keeps its low digits.
        let s = &s[s.len().saturating_sub(width)..];
        field[..s.len()].copy_from_slice(s);
        field[width] = 0;
    }

    /// The header block(s) of a regular file.
    pub fn headers(path: &str, size: u64, mtime: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        if path.len() > 100 {
            let mut name = path.as_bytes().to_vec();
            name.push(0);
            out.extend_from_slice(&header(b"././@LongLink", name.len() as u64, mtime, b'L'));
            let len = name.len() as u64;
            out.extend_from_slice(&name);
            out.extend_from_slice(&padding(len));
        }
        out.extend_from_slice(&header(path.as_bytes(), size, mtime, b'0'));
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Our tar bytes are read back by the `tar` crate as the files they hold, long paths too.
    #[test]
    fn the_tar_writer_makes_archives_tar_reads() {
        let files = [
            ("a.txt".to_owned(), b"hello".to_vec()),
            (format!("{}/deep.bin", "d".repeat(150)), vec![7u8; 1000]),
            ("empty".to_owned(), Vec::new()),
            ("exact".to_owned(), vec![1u8; 512]),
        ];
        let mut bytes = Vec::new();
        let mut want_len = tar::TRAILER_LEN;
        for (p, content) in &files {
            bytes.extend(tar::headers(p, content.len() as u64, 1_700_000_000));
            bytes.extend(content);
            bytes.extend(tar::padding(content.len() as u64));
            want_len += tar::entry_len(p, content.len() as u64);
        }
        bytes.extend([0u8; 1024]);
        assert_eq!(bytes.len() as u64, want_len);
        let mut archive = ::tar::Archive::new(&bytes[..]);
        let mut got = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut content).unwrap();
            got.push((path, content));
        }
        assert_eq!(got, files.to_vec());
    }

    #[test]
    fn etags_and_dispositions() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"abc\", \"def\""),
        );
        assert!(if_none_match(&h, "def"));
        assert!(!if_none_match(&h, "xyz"));
        assert_eq!(
            disposition("dist/a \"b\".txt"),
            "attachment; filename=\"a__b_.txt\""
        );
        assert!(clean_path("dist/./a").is_err());
        assert!(clean_path("dist//a").is_err());
        assert!(clean_path("../a").is_err());
        assert_eq!(clean_path("dist/a").unwrap(), "dist/a");
    }
}
