//! `objects`, `artifacts` and `cache_entries` (SPEC §11): which stored objects exist, which
//! files jobs kept, and which cache entries repos have. The bytes are in the object store,
//! named by their sha256; these rows are what names them.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// Records that the object `sha256` is stored, or that an upload just wrote it again: the
/// sweeper leaves an object touched within its grace alone, so this must come before the
/// row that names it.
pub async fn touch_object(
    e: impl PgExecutor<'_>,
    sha256: &str,
    size: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO objects (sha256, size) VALUES ($1, $2)
           ON CONFLICT (sha256) DO UPDATE SET touched_at = now()"#,
        sha256,
        size
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Deletes at most `limit` object rows that nothing names any more (no artifact that is not
/// swept, no cache entry) and that were not touched within `grace_secs`, and returns their
/// sha256s: the caller then deletes them from the store. Rows another transaction holds are
/// skipped.
pub async fn delete_orphans(
    e: impl PgExecutor<'_>,
    grace_secs: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"DELETE FROM objects WHERE sha256 IN (
               SELECT o.sha256 FROM objects o
               WHERE o.touched_at < now() - make_interval(secs => $1::float8)
                 AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.sha256 = o.sha256 AND NOT a.swept)
                 AND NOT EXISTS (SELECT 1 FROM cache_entries c WHERE c.sha256 = o.sha256)
               LIMIT $2
               FOR UPDATE SKIP LOCKED
           ) RETURNING sha256"#,
        grace_secs as f64,
        limit
    )
    .fetch_all(e)
    .await
}

/// A file a job kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// The job.
    pub job_id: Uuid,
    /// Relative to the workspace.
    pub path: String,
    /// The attempt that stored it.
    pub attempt: i32,
    /// Bytes.
    pub size: i64,
    /// Content address.
    pub sha256: String,
    /// After this it is gone (`410`).
    pub expires_at: OffsetDateTime,
}

impl ArtifactRow {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

/// Stores that the attempt kept a file, if `runner_id` holds that attempt and it is running;
/// a file of the same path stored by an earlier attempt is replaced. Returns whether it was
/// stored.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    runner_id: Uuid,
    path: &str,
    size: i64,
    sha256: &str,
    expire_secs: i64,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        r#"INSERT INTO artifacts (job_id, path, run_id, attempt, size, sha256, expires_at)
           SELECT id, $5, run_id, attempt, $6, $7, now() + make_interval(secs => $4::float8)
           FROM jobs WHERE id = $1 AND attempt = $2 AND runner_id = $3 AND status = 'running'
           ON CONFLICT (job_id, path) DO UPDATE
               SET attempt = excluded.attempt, size = excluded.size, sha256 = excluded.sha256,
                   created_at = now(), expires_at = excluded.expires_at, swept = false
               WHERE artifacts.attempt <= excluded.attempt
           RETURNING 1 AS "one!""#,
        job_id,
        attempt,
        runner_id,
        expire_secs as f64,
        path,
        size,
        sha256
    )
    .fetch_optional(e)
    .await?;
    Ok(stored.is_some())
}

/// The files of a job: those of the latest attempt that stored any, by path.
pub async fn of_job(e: impl PgExecutor<'_>, job_id: Uuid) -> Result<Vec<ArtifactRow>, sqlx::Error> {
    sqlx::query_as!(
        ArtifactRow,
        r#"SELECT job_id, path, attempt, size, sha256, expires_at FROM artifacts
           WHERE job_id = $1
             AND attempt = (SELECT max(attempt) FROM artifacts WHERE job_id = $1)
           ORDER BY path"#,
        job_id
    )
    .fetch_all(e)
    .await
}

/// One file of a job (of its latest attempt that stored any).
pub async fn get(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    path: &str,
) -> Result<Option<ArtifactRow>, sqlx::Error> {
    sqlx::query_as!(
        ArtifactRow,
        r#"SELECT job_id, path, attempt, size, sha256, expires_at FROM artifacts
           WHERE job_id = $1 AND path = $2
             AND attempt = (SELECT max(attempt) FROM artifacts WHERE job_id = $1)"#,
        job_id,
        path
    )
    .fetch_optional(e)
    .await
}

/// A run's unexpired files, each with the pipeline position of its job.
pub async fn of_run(
    e: impl PgExecutor<'_>,
    run_id: Uuid,
) -> Result<Vec<(i32, ArtifactRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT j.position, a.job_id, a.path, a.attempt, a.size, a.sha256, a.expires_at
           FROM artifacts a JOIN jobs j ON j.id = a.job_id
           WHERE a.run_id = $1 AND a.expires_at > now()
             AND a.attempt = (SELECT max(attempt) FROM artifacts b WHERE b.job_id = a.job_id)
           ORDER BY j.position, a.path"#,
        run_id
    )
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.position,
                ArtifactRow {
                    job_id: r.job_id,
                    path: r.path,
                    attempt: r.attempt,
                    size: r.size,
                    sha256: r.sha256,
                    expires_at: r.expires_at,
                },
            )
        })
        .collect())
}

/// Whether any job of the run kept a file that has not expired (one index probe: the claim
/// asks this before it reads anything else about artifacts).
pub async fn run_has_any(e: impl PgExecutor<'_>, run_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM artifacts WHERE run_id = $1 AND expires_at > now()) AS "any!""#,
        run_id
    )
    .fetch_one(e)
    .await
}

/// Marks at most `limit` expired files as swept (their rows stay, so GET answers `410`) and
/// returns how many: their objects become orphans unless something else names them.
pub async fn sweep_expired(e: impl PgExecutor<'_>, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE artifacts SET swept = true WHERE (job_id, path) IN (
               SELECT job_id, path FROM artifacts
               WHERE NOT swept AND expires_at <= now()
               ORDER BY expires_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           )"#,
        limit
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// A cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRow {
    /// Its key.
    pub key: String,
    /// Written by a protected run.
    pub protected: bool,
    /// The archive's content address.
    pub sha256: String,
    /// The archive's bytes.
    pub size: i64,
}

/// The entry a run restores: of `key`, else the most recently created one whose key starts
/// with `<prefix>-`; a protected run reads only protected entries, any other run its own
/// scope first, then the protected one (a branch starts from what the default branch built,
/// as on GitHub). Marks it used (least recently used goes first).
pub async fn restore(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    protected: bool,
    key: &str,
    prefix: Option<&str>,
) -> Result<Option<CacheRow>, sqlx::Error> {
    // `LIKE` with the prefix's own `_` escaped (a key has no `%` or `\`).
    let pattern = prefix.map(|p| format!("{}-%", p.replace('_', "\\_")));
    sqlx::query_as!(
        CacheRow,
        r#"UPDATE cache_entries c SET used_at = now()
           FROM (
               SELECT repo_id, protected, key FROM cache_entries
               WHERE repo_id = $1 AND (protected OR protected = $2)
                 AND (key = $3 OR ($4::text IS NOT NULL AND key LIKE $4))
               ORDER BY (key = $3) DESC, (protected = $2) DESC, created_at DESC
               LIMIT 1
           ) pick
           WHERE c.repo_id = pick.repo_id AND c.protected = pick.protected AND c.key = pick.key
           RETURNING c.key, c.protected, c.sha256, c.size"#,
        repo_id,
        protected,
        key,
        pattern
    )
    .fetch_optional(e)
    .await
}

/// Whether the scope holds an entry of `key`.
pub async fn cache_exists(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    protected: bool,
    key: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM cache_entries WHERE repo_id = $1 AND protected = $2 AND key = $3) AS "any!""#,
        repo_id,
        protected,
        key
    )
    .fetch_one(e)
    .await
}

/// Stores a new entry unless the scope has one of `key` (never overwritten). Returns whether
/// it was stored.
pub async fn cache_insert(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    protected: bool,
    key: &str,
    sha256: &str,
    size: i64,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        r#"INSERT INTO cache_entries (repo_id, protected, key, sha256, size)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING
           RETURNING 1 AS "one!""#,
        repo_id,
        protected,
        key,
        sha256,
        size
    )
    .fetch_optional(e)
    .await?;
    Ok(stored.is_some())
}

/// Deletes, at most `limit` at a time, the least recently used entries of every repo whose
/// entries hold more than `max_bytes` together, until each fits; returns how many went.
pub async fn evict_over(
    e: impl PgExecutor<'_>,
    max_bytes: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"DELETE FROM cache_entries WHERE (repo_id, protected, key) IN (
               SELECT repo_id, protected, key FROM (
                   SELECT repo_id, protected, key,
                          (sum(size) OVER (PARTITION BY repo_id ORDER BY used_at DESC, created_at DESC, key))::int8 AS kept
                   FROM cache_entries
               ) ranked
               WHERE kept > $1::int8
               LIMIT $2
           )"#,
        max_bytes,
        limit
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// A repo's entries, newest first (for people and tests).
pub async fn cache_of_repo(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
) -> Result<Vec<CacheRow>, sqlx::Error> {
    sqlx::query_as!(
        CacheRow,
        r#"SELECT key, protected, sha256, size FROM cache_entries
           WHERE repo_id = $1 ORDER BY created_at DESC, key"#,
        repo_id
    )
    .fetch_all(e)
    .await
}
