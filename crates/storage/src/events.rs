//! `events`: the append-only log of every state change of a run (SPEC §6).

use gitweave_model::status::{ErrorClass, EventType};
use sqlx::PgConnection;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// An event to append. Make one with [`NewEvent::new`] and fill in the rest with struct
/// update syntax (`NewEvent { job_id, ..NewEvent::new(t, actor) }`): there is no default
/// event type.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `job.failed`, …
    pub event_type: EventType,
    /// The job, for job events.
    pub job_id: Option<Uuid>,
    /// Who did it: `pipeline-svc`, `runner:<name>`, `api`.
    pub actor: String,
    /// The job's attempt.
    pub attempt: Option<i32>,
    /// Failure class.
    pub error_class: Option<ErrorClass>,
    /// A sentence.
    pub reason: Option<String>,
    /// Extra fields (e.g. `from`/`to` of a state change).
    pub data: Option<serde_json::Value>,
}

impl NewEvent {
    /// An event of `event_type` by `actor`, with no job, attempt, class, reason or data.
    pub fn new(event_type: EventType, actor: impl Into<String>) -> Self {
        Self {
            event_type,
            job_id: None,
            actor: actor.into(),
            attempt: None,
            error_class: None,
            reason: None,
            data: None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Run.
    pub run_id: Uuid,
    /// 1, 2, 3… within the run.
    pub seq: i64,
    /// Type.
    pub event_type: EventType,
    /// Job.
    pub job_id: Option<Uuid>,
    /// When.
    pub timestamp_utc: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// Attempt.
    pub attempt: Option<i32>,
    /// Failure class.
    pub error_class: Option<ErrorClass>,
    /// Reason.
    pub reason: Option<String>,
    /// Extra fields.
    pub data: Option<serde_json::Value>,
}

/// Appends events to a run, in order, with its next `seq`s, in one statement. Call inside the
/// transaction that makes the changes they record; the `event_seq` bump also serializes
/// appends per run.
pub async fn append_all(
    conn: &mut PgConnection,
    run_id: Uuid,
    evs: &[NewEvent],
) -> Result<(), sqlx::Error> {
    if evs.is_empty() {
        return Ok(());
    }
    let c = Columns::of(evs);
    sqlx::query!(
        "WITH s AS (
             UPDATE pipeline_runs SET event_seq = event_seq + cardinality($2::text[])
             WHERE id = $1 RETURNING event_seq
         )
         INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class, reason, data)
         SELECT $1, s.event_seq - cardinality($2::text[]) + e.n, e.event_type, e.job_id,
                e.actor, e.attempt, e.error_class, e.reason, e.data
         FROM s, UNNEST($2::text[], $3::uuid[], $4::text[], $5::int4[], $6::text[],
                        $7::text[], $8::jsonb[])
                 WITH ORDINALITY AS e(event_type, job_id, actor, attempt, error_class,
                                      reason, data, n)",
        run_id,
        &c.types as &[&str],
        &c.job_ids as &[Option<Uuid>],
        &c.actors as &[&str],
        &c.attempts as &[Option<i32>],
        &c.classes as &[Option<&str>],
        &c.reasons as &[Option<&str>],
        &c.data as &[Option<&serde_json::Value>],
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Events as the column arrays that [`append_all`] (and `jobs::plan_summary`, which appends
/// in the same statement) unnest.
pub(crate) struct Columns<'a> {
    pub(crate) types: Vec<&'a str>,
    pub(crate) job_ids: Vec<Option<Uuid>>,
    pub(crate) actors: Vec<&'a str>,
    pub(crate) attempts: Vec<Option<i32>>,
    pub(crate) classes: Vec<Option<&'a str>>,
    pub(crate) reasons: Vec<Option<&'a str>>,
    pub(crate) data: Vec<Option<&'a serde_json::Value>>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(evs: &'a [NewEvent]) -> Self {
        let mut c = Columns {
            types: Vec::with_capacity(evs.len()),
            job_ids: Vec::with_capacity(evs.len()),
            actors: Vec::with_capacity(evs.len()),
            attempts: Vec::with_capacity(evs.len()),
            classes: Vec::with_capacity(evs.len()),
            reasons: Vec::with_capacity(evs.len()),
            data: Vec::with_capacity(evs.len()),
        };
        for e in evs {
            c.types.push(e.event_type.as_str());
            c.job_ids.push(e.job_id);
            c.actors.push(e.actor.as_str());
            c.attempts.push(e.attempt);
            c.classes.push(e.error_class.map(ErrorClass::as_str));
            c.reasons.push(e.reason.as_deref());
            c.data.push(e.data.as_ref());
        }
        c
    }
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
        r#"SELECT run_id, seq, event_type AS "event_type: EventType", job_id, timestamp_utc, actor,
                  attempt, error_class AS "error_class: ErrorClass", reason, data
           FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"#,
        run_id,
        after,
        limit
    )
    .fetch_all(e)
    .await
}
