//! Deleting ended runs past their retention (`PIPELINE_RETENTION_DAYS`), a small batch at a
//! time.

use gitweave_model::status::RunStatus;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// What one batch deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The runs.
    pub runs: Vec<Uuid>,
    /// Their jobs.
    pub jobs: Vec<Uuid>,
}

/// Deletes at most `limit` runs that ended (success, failed, canceled) before `cutoff`,
/// oldest first, with their jobs, log chunks and events (by cascade) and their webhook
/// deliveries, in one statement. Runs whose row another transaction holds are skipped
/// (`SKIP LOCKED`), so a pass never waits for a writer. Returns what it deleted.
pub async fn delete_ended_before(
    e: impl PgExecutor<'_>,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Deleted, sqlx::Error> {
    let ended: Vec<String> = RunStatus::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str().to_owned())
        .collect();
    // Every part of the statement sees the rows as they were before it, so the jobs of the
    // deleted runs can still be listed while the cascade removes them.
    let rows = sqlx::query!(
        r#"WITH doomed AS (
               SELECT id FROM pipeline_runs
               WHERE ended_at IS NOT NULL AND ended_at < $1 AND status = ANY($3::text[])
               ORDER BY ended_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED
           ), deliveries AS (
               DELETE FROM webhook_deliveries WHERE run_id IN (SELECT id FROM doomed)
           ), gone AS (
               DELETE FROM pipeline_runs WHERE id IN (SELECT id FROM doomed) RETURNING id
           )
           SELECT gone.id AS "run_id!", j.id AS "job_id?"
           FROM gone LEFT JOIN jobs j ON j.run_id = gone.id"#,
        cutoff,
        limit,
        &ended
    )
    .fetch_all(e)
    .await?;
    let mut out = Deleted::default();
    for r in rows {
        if !out.runs.contains(&r.run_id) {
            out.runs.push(r.run_id);
        }
        out.jobs.extend(r.job_id);
    }
    Ok(out)
}
