//! `events`: the append-only log of every state change of a run (SPEC §6).

use sqlx::PgConnection;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// An event to append.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    /// `job.failed`, …
    pub event_type: &'a str,
    /// The job, for job events.
    pub job_id: Option<Uuid>,
    /// Who did it: `pipeline-svc`, `runner:<name>`, `api`.
    pub actor: &'a str,
    /// The job's attempt.
    pub attempt: Option<i32>,
    /// Failure class.
    pub error_class: Option<&'a str>,
    /// A sentence.
    pub reason: Option<&'a str>,
    /// Extra fields (e.g. `from`/`to` of a state change).
    pub data: Option<serde_json::Value>,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Run.
    pub run_id: Uuid,
    /// 1, 2, 3… within the run.
    pub seq: i64,
    /// Type.
    pub event_type: String,
    /// Job.
    pub job_id: Option<Uuid>,
    /// When.
    pub timestamp_utc: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// Attempt.
    pub attempt: Option<i32>,
    /// Failure class.
    pub error_class: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// Extra fields.
    pub data: Option<serde_json::Value>,
}

/// Appends an event with the run's next `seq`. Call inside the transaction that makes the
/// change it records; the `event_seq` bump also serializes appends per run.
pub async fn append(
    conn: &mut PgConnection,
    run_id: Uuid,
    ev: &NewEvent<'_>,
) -> Result<i64, sqlx::Error> {
    let seq = sqlx::query_scalar!(
        "WITH s AS (UPDATE pipeline_runs SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq)
         INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class, reason, data)
         SELECT $1, s.event_seq, $2, $3, $4, $5, $6, $7, $8 FROM s
         RETURNING seq",
        run_id,
        ev.event_type,
        ev.job_id,
        ev.actor,
        ev.attempt,
        ev.error_class,
        ev.reason,
        ev.data
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(seq)
}

/// A run's events after `after`, in order.
pub async fn list(
    e: impl PgExecutor<'_>,
    run_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as!(
        EventRow,
        "SELECT run_id, seq, event_type, job_id, timestamp_utc, actor, attempt, error_class, reason, data
         FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        run_id,
        after,
        limit
    )
    .fetch_all(e)
    .await
}
