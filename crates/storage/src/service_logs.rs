//! `service_logs` and `service_log_chunks`: the output of a job attempt's services (SPEC §12),
//! stored like a job's log, as chunks at contiguous byte offsets per service.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Appends a chunk of `service`'s log at `offset` if it is exactly the end of its stored log
/// and the attempt is held by `runner_id` and running. One statement: the end moves (the
/// service's row is made by its first chunk, at offset 0) and the chunk is stored atomically.
/// Returns the new end, or `None` when nothing was written (duplicate, gap, or attempt not
/// held): the caller then reads [`end`] and [`crate::jobs::holding`] to say which.
pub async fn append(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    runner_id: Uuid,
    service: &str,
    offset: i64,
    chunk: &[u8],
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH held AS (
               SELECT 1 FROM jobs
               WHERE id = $1 AND attempt = $2 AND runner_id = $3 AND status = 'running'
           ), upd AS (
               INSERT INTO service_logs (job_id, attempt, service, log_end)
               SELECT $1, $2, $4, $6 FROM held
               WHERE $5::int8 = 0 OR EXISTS (
                   SELECT 1 FROM service_logs WHERE job_id = $1 AND attempt = $2 AND service = $4
               )
               ON CONFLICT (job_id, attempt, service)
                   DO UPDATE SET log_end = service_logs.log_end + $6
                   WHERE service_logs.log_end = $5
               RETURNING log_end
           )
           INSERT INTO service_log_chunks (job_id, attempt, service, "offset", chunk)
           SELECT $1, $2, $4, $5, $7 FROM upd
           RETURNING (SELECT log_end FROM upd) AS "log_end!""#,
        job_id,
        attempt,
        runner_id,
        service,
        offset,
        chunk.len() as i64,
        chunk
    )
    .fetch_optional(e)
    .await
}

/// Where `service`'s stored log of the attempt ends (0 when nothing is stored).
pub async fn end(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    service: &str,
) -> Result<i64, sqlx::Error> {
    let end = sqlx::query_scalar!(
        r#"SELECT COALESCE(MAX(log_end), 0)::int8 AS "end!" FROM service_logs
           WHERE job_id = $1 AND attempt = $2 AND service = $3"#,
        job_id,
        attempt,
        service
    )
    .fetch_one(e)
    .await?;
    Ok(end)
}

/// The stored chunks of `service`'s log of the attempt that overlap `[from, from + limit)`,
/// in order.
pub async fn window(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
    attempt: i32,
    service: &str,
    from: i64,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT "offset" AS off, chunk FROM service_log_chunks
           WHERE job_id = $1 AND attempt = $2 AND service = $3
             AND "offset" < $4::int8 + $5::int8 AND "offset" + length(chunk) > $4::int8
           ORDER BY "offset""#,
        job_id,
        attempt,
        service,
        from,
        limit
    )
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(|r| (r.off, r.chunk)).collect())
}
