//! `logs`: a job attempt's output as chunks at contiguous byte offsets.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Appends a chunk at `offset` if it is exactly the end of the stored log of a held attempt.
/// One statement: the log end moves and the chunk is stored atomically. Returns the new end,
/// or `None` when nothing was written (duplicate, gap, or attempt not held): the caller then
/// reads [`crate::jobs::holding`] to say which.
pub async fn append(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    runner_id: Uuid,
    offset: i64,
    chunk: &[u8],
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH upd AS (
               UPDATE jobs SET log_end = log_end + $5
               WHERE id = $1 AND attempt = $2 AND runner_id = $3 AND status = 'running' AND log_end = $4
               RETURNING log_end
           )
           INSERT INTO logs (job_id, attempt, "offset", chunk)
           SELECT $1, $2, $4, $6 FROM upd
           RETURNING (SELECT log_end FROM upd) AS "log_end!""#,
        job_id,
        attempt,
        runner_id,
        offset,
        chunk.len() as i64,
        chunk
    )
    .fetch_optional(e)
    .await
}

/// The stored chunks of an attempt that overlap `[from, from + limit)`, in order.
pub async fn window(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    from: i64,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT "offset" AS off, chunk FROM logs
           WHERE job_id = $1 AND attempt = $2
             AND "offset" < $3::int8 + $4::int8 AND "offset" + length(chunk) > $3::int8
           ORDER BY "offset""#,
        job_id,
        attempt,
        from,
        limit
    )
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(|r| (r.off, r.chunk)).collect())
}

/// Where an attempt's stored log ends (0 when nothing is stored): for an attempt that can no
/// longer grow, the end of its whole log.
pub async fn stored_end(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
) -> Result<i64, sqlx::Error> {
    let end = sqlx::query_scalar!(
        r#"SELECT COALESCE(MAX("offset" + length(chunk)), 0)::int8 AS "end!" FROM logs
           WHERE job_id = $1 AND attempt = $2"#,
        job_id,
        attempt
    )
    .fetch_one(e)
    .await?;
    Ok(end)
}
