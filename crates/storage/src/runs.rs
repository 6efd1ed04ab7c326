//! `pipeline_runs`.

use gitweave_model::status::{RunStatus, Trigger};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored run (with its repo's name).
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Run id (UUID v7).
    pub id: Uuid,
    /// Repo id.
    pub repo_id: Uuid,
    /// Repo name.
    pub repo: String,
    /// Git ref.
    pub git_ref: String,
    /// Commit sha.
    pub commit_sha: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// How it was started.
    pub trigger: Trigger,
    /// Templates the run was made of, in order.
    pub templates: Vec<String>,
    /// Trigger inputs.
    pub inputs: serde_json::Value,
    /// Created.
    pub created_at: OffsetDateTime,
    /// First job started.
    pub started_at: Option<OffsetDateTime>,
    /// Ended.
    pub ended_at: Option<OffsetDateTime>,
    /// What it ran (`migrations/20261203000100_run_source.sql`).
    pub source: Option<serde_json::Value>,
    /// Why it could not run, for a run made failed without jobs.
    pub error: Option<serde_json::Value>,
    /// Its pull request.
    pub pull_request: Option<serde_json::Value>,
}

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Repo.
    pub repo_id: Uuid,
    /// Ref.
    pub git_ref: &'a str,
    /// Commit.
    pub commit_sha: Option<&'a str>,
    /// Trigger wire name.
    pub trigger: &'a str,
    /// Template names.
    pub templates: &'a [String],
    /// Trigger inputs.
    pub inputs: &'a serde_json::Value,
    /// The run this reruns.
    pub rerun_of: Option<Uuid>,
    /// How many jobs it has.
    pub job_count: i32,
    /// Its status from the first plan step (`queued` unless that step settles it otherwise).
    /// Any status but `queued` counts as started, a terminal one as ended.
    pub status: RunStatus,
    /// The repo's clone URL now: the run's jobs check out from this copy.
    pub clone_url: Option<&'a str>,
    /// What it runs.
    pub source: Option<&'a serde_json::Value>,
    /// Why it cannot run (a run made failed without jobs).
    pub error: Option<&'a serde_json::Value>,
    /// Its pull request.
    pub pull_request: Option<&'a serde_json::Value>,
}

/// Inserts a run and returns it as stored (`repo` is the repo's name, given by the caller).
pub async fn insert(
    e: impl PgExecutor<'_>,
    r: &NewRun<'_>,
    repo: &str,
) -> Result<RunRow, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        r#"INSERT INTO pipeline_runs (id, repo_id, ref, commit_sha, status, trigger, templates, inputs,
                                    rerun_of, job_count, started_at, ended_at, clone_url,
                                    source, error, pull_request)
           VALUES ($1, $2, $3, $4, $10, $5, $6, $7, $8, $9,
                   CASE WHEN $10 <> 'queued' THEN now() END, CASE WHEN $11 THEN now() END, $13,
                   $14, $15, $16)
           RETURNING id, repo_id, $12::text AS "repo!", ref AS git_ref, commit_sha,
                     status AS "status: RunStatus", trigger AS "trigger: Trigger",
                     templates, inputs, created_at, started_at, ended_at,
                     source, error, pull_request"#,
        r.id,
        r.repo_id,
        r.git_ref,
        r.commit_sha,
        r.trigger,
        r.templates,
        r.inputs,
        r.rerun_of,
        r.job_count,
        r.status.as_str(),
        r.status.is_terminal(),
        repo,
        r.clone_url,
        r.source,
        r.error,
        r.pull_request
    )
    .fetch_one(e)
    .await
}

/// A run by id.
pub async fn get(e: impl PgExecutor<'_>, id: Uuid) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        r#"SELECT r.id, r.repo_id, p.name AS repo, r.ref AS git_ref, r.commit_sha,
                  r.status AS "status: RunStatus", r.trigger AS "trigger: Trigger",
                  r.templates, r.inputs, r.created_at, r.started_at, r.ended_at,
                  r.source, r.error, r.pull_request
           FROM pipeline_runs r JOIN repos p ON p.id = r.repo_id
           WHERE r.id = $1"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// A run and its jobs in pipeline order, read by one statement, so they agree with each other
/// (a run never shows `queued` next to a `running` job that its claim committed in between)
/// without a transaction of four round trips around two reads. A run without jobs is read
/// again on its own. `None`: no such run.
pub async fn get_with_jobs(
    e: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<(RunRow, Vec<crate::jobs::JobRow>)>, sqlx::Error> {
    use crate::jobs::JobRow;
    use gitweave_model::status::{ErrorClass, JobStatus};
    let rows = sqlx::query!(
        r#"SELECT r.id AS run_id, r.repo_id, p.name AS repo, r.ref AS git_ref, r.commit_sha,
                  r.status AS "run_status: RunStatus", r.trigger AS "trigger: Trigger",
                  r.templates, r.inputs, r.created_at, r.started_at AS run_started_at,
                  r.ended_at AS run_ended_at, r.source, r.error, r.pull_request,
                  j.id, j.position, j.stage, j.template, j.name, j.spec, j.depends_on,
                  j.status AS "status: JobStatus", j.exit_code,
                  j.error_class AS "error_class: ErrorClass", j.reason, j.attempt,
                  j.runnable_at, j.runner_id, j.log_end, j.started_at, j.ended_at,
                  j.log_truncated, j.handed_back
           FROM jobs j
           JOIN pipeline_runs r ON r.id = j.run_id
           JOIN repos p ON p.id = r.repo_id
           WHERE j.run_id = $1
           ORDER BY j.position"#,
        id
    )
    .fetch_all(&mut *e)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(get(e, id).await?.map(|run| (run, Vec::new())));
    };
    let run = RunRow {
        id: first.run_id,
        repo_id: first.repo_id,
        repo: first.repo.clone(),
        git_ref: first.git_ref.clone(),
        commit_sha: first.commit_sha.clone(),
        status: first.run_status,
        trigger: first.trigger,
        templates: first.templates.clone(),
        inputs: first.inputs.clone(),
        created_at: first.created_at,
        started_at: first.run_started_at,
        ended_at: first.run_ended_at,
        source: first.source.clone(),
        error: first.error.clone(),
        pull_request: first.pull_request.clone(),
    };
    let jobs = rows
        .into_iter()
        .map(|j| JobRow {
            id: j.id,
            run_id: j.run_id,
            position: j.position,
            stage: j.stage,
            template: j.template,
            name: j.name,
            spec: j.spec,
            depends_on: j.depends_on,
            status: j.status,
            exit_code: j.exit_code,
            error_class: j.error_class,
            reason: j.reason,
            attempt: j.attempt,
            runnable_at: j.runnable_at,
            runner_id: j.runner_id,
            log_end: j.log_end,
            started_at: j.started_at,
            ended_at: j.ended_at,
            log_truncated: j.log_truncated,
            handed_back: j.handed_back,
        })
        .collect();
    Ok(Some((run, jobs)))
}

/// The runner hosts holding a piece of the run's workspace (SPEC §13), in the order they first
/// took one of its jobs; empty before its first claim, or for a run that does not exist.
pub async fn workspace_hosts(e: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT workspace_hosts FROM pipeline_runs WHERE id = $1",
        id
    )
    .fetch_optional(e)
    .await?
    .unwrap_or_default())
}

/// Locks a run's row: every change to a run and its jobs' plan happens under this lock, so
/// two finishing jobs of one run cannot plan over each other. Returns the status.
pub async fn lock(e: impl PgExecutor<'_>, id: Uuid) -> Result<Option<RunStatus>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT status AS "status: RunStatus" FROM pipeline_runs WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// A run's row lock, with what the caller needs to decide under it.
#[derive(Debug, Clone)]
pub struct Locked {
    /// The run.
    pub id: Uuid,
    /// Status.
    pub status: RunStatus,
    /// A cancel was asked for.
    pub cancel_requested: bool,
}

/// Locks a run's row (as [`lock`]) and reads its status and cancel flag.
pub async fn lock_state(e: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Locked>, sqlx::Error> {
    sqlx::query_as!(
        Locked,
        r#"SELECT id, status AS "status: RunStatus", cancel_requested
           FROM pipeline_runs WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Locks the run of a job, in one statement; `None` if the job does not exist.
pub async fn lock_of_job(
    e: impl PgExecutor<'_>,
    job_id: Uuid,
) -> Result<Option<Locked>, sqlx::Error> {
    sqlx::query_as!(
        Locked,
        r#"SELECT id, status AS "status: RunStatus", cancel_requested FROM pipeline_runs
           WHERE id = (SELECT run_id FROM jobs WHERE id = $1)
           FOR UPDATE"#,
        job_id
    )
    .fetch_optional(e)
    .await
}

/// A page of a repo's runs, newest first, strictly older than `before` when given.
pub async fn list(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        r#"SELECT r.id, r.repo_id, p.name AS repo, r.ref AS git_ref, r.commit_sha,
                  r.status AS "status: RunStatus", r.trigger AS "trigger: Trigger",
                  r.templates, r.inputs, r.created_at, r.started_at, r.ended_at,
                  r.source, r.error, r.pull_request
           FROM pipeline_runs r JOIN repos p ON p.id = r.repo_id
           WHERE r.repo_id = $1 AND ($2::uuid IS NULL OR r.id < $2)
           ORDER BY r.id DESC
           LIMIT $3"#,
        repo_id,
        before,
        limit
    )
    .fetch_all(e)
    .await
}

/// Sets the status; stamps `started_at` on the first move out of `queued` and `ended_at` on a
/// terminal status. `events` (the transaction's events so far, under the run's lock) are
/// appended in the same statement, as [`crate::events::append_all`] would: the run's end is
/// then one round trip, not two (bench/FINDINGS.md #30).
pub async fn set_status(
    e: impl PgExecutor<'_>,
    id: Uuid,
    status: RunStatus,
    events: &[crate::events::NewEvent],
) -> Result<(), sqlx::Error> {
    let c = crate::events::Columns::of(events);
    sqlx::query!(
        "WITH s AS (
             UPDATE pipeline_runs SET status = $2,
                 started_at = CASE WHEN $2 <> 'queued' THEN COALESCE(started_at, now())
                                   ELSE started_at END,
                 ended_at = CASE WHEN $3 THEN now() ELSE NULL END,
                 event_seq = event_seq + cardinality($4::text[])
             WHERE id = $1 RETURNING event_seq
         )
         INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class, reason, data)
         SELECT $1, s.event_seq - cardinality($4::text[]) + e.n, e.event_type, e.job_id,
                e.actor, e.attempt, e.error_class, e.reason, e.data
         FROM s, UNNEST($4::text[], $5::uuid[], $6::text[], $7::int4[], $8::text[],
                        $9::text[], $10::jsonb[])
                 WITH ORDINALITY AS e(event_type, job_id, actor, attempt, error_class,
                                      reason, data, n)",
        id,
        status.as_str(),
        status.is_terminal(),
        &c.types as &[&str],
        &c.job_ids as &[Option<Uuid>],
        &c.actors as &[&str],
        &c.attempts as &[Option<i32>],
        &c.classes as &[Option<&str>],
        &c.reasons as &[Option<&str>],
        &c.data as &[Option<&serde_json::Value>],
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Marks a run as asked to cancel.
pub async fn request_cancel(e: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pipeline_runs SET cancel_requested = true WHERE id = $1",
        id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Which of `ids` are runs that have not ended (queued, running or blocked); unknown ids and
/// ended runs are left out. The runner asks this before it removes workspace volumes.
pub async fn active_among(e: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    let active: Vec<String> = RunStatus::ALL
        .iter()
        .filter(|s| !s.is_terminal())
        .map(|s| s.as_str().to_owned())
        .collect();
    sqlx::query_scalar!(
        "SELECT id FROM pipeline_runs WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])
         ORDER BY id",
        ids,
        &active
    )
    .fetch_all(e)
    .await
}
