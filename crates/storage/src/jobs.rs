//! `jobs`: one row per job of a run, carrying its current attempt and lease.

use gitweave_model::status::{ErrorClass, EventType, JobStatus, RunStatus};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored job.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: Uuid,
    /// Run.
    pub run_id: Uuid,
    /// Pipeline order.
    pub position: i32,
    /// Template index in the run.
    pub stage: i32,
    /// Template name.
    pub template: String,
    /// `<template>/<job>`.
    pub name: String,
    /// The expanded job as JSON.
    pub spec: serde_json::Value,
    /// Positions it waits for.
    pub depends_on: Vec<i32>,
    /// Status.
    pub status: JobStatus,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Failure class.
    pub error_class: Option<ErrorClass>,
    /// Failure sentence.
    pub reason: Option<String>,
    /// Attempt (0 before the first start).
    pub attempt: i32,
    /// Offered to runners since.
    pub runnable_at: Option<OffsetDateTime>,
    /// Holder.
    pub runner_id: Option<Uuid>,
    /// Stored log length of the current attempt.
    pub log_end: i64,
    /// Started.
    pub started_at: Option<OffsetDateTime>,
    /// Ended.
    pub ended_at: Option<OffsetDateTime>,
    /// The current attempt's log was cut at the runner's log limit.
    pub log_truncated: bool,
    /// Attempts handed back by stopping runners (not counted against `retry`).
    pub handed_back: i32,
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Id.
    pub id: Uuid,
    /// Pipeline order.
    pub position: i32,
    /// Template index.
    pub stage: i32,
    /// Template name.
    pub template: &'a str,
    /// Template version.
    pub template_version: i32,
    /// `<template>/<job>`.
    pub name: &'a str,
    /// Expanded job JSON.
    pub spec: &'a serde_json::Value,
    /// Positions it waits for.
    pub depends_on: &'a [i32],
    /// The stage it waits on as a whole, if any (`gitweave_model::plan::whole_stage_needs`).
    pub needs_stage: Option<i32>,
    /// Whether its failure neither stops nor fails the run (copied out of `spec` for the planner).
    pub allow_failure: bool,
    /// `on_success`, `manual` or `always` (copied out of `spec` for the planner).
    pub when: &'a str,
    /// Its status from the run's first plan step: `queued`, `manual` or `skipped` (a terminal
    /// status ends it now).
    pub status: JobStatus,
    /// Offered to runners at once (a `queued` job the first plan step releases).
    pub released: bool,
}

/// What the planner reads of a job: no spec, no timestamps (bench/FINDINGS.md #5).
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// Id.
    pub id: Uuid,
    /// `<template>/<job>`.
    pub name: String,
    /// Status.
    pub status: JobStatus,
    /// Offered to runners (a queued job with this set is released, not pending).
    pub released: bool,
    /// Positions it waits for.
    pub depends_on: Vec<i32>,
    /// Whether its failure neither stops nor fails the run.
    pub allow_failure: bool,
    /// `on_success`, `manual` or `always`.
    pub run_when: String,
}

/// Inserts a run's jobs in one statement and returns them as stored, in pipeline order.
/// `events` (the trigger's events so far, about the run and these jobs) are appended in the
/// same statement, as [`crate::events::append_all`] would (bench/FINDINGS.md #30).
pub async fn insert_all(
    e: impl PgExecutor<'_>,
    run_id: Uuid,
    jobs: &[NewJob<'_>],
    events: &[crate::events::NewEvent],
) -> Result<Vec<JobRow>, sqlx::Error> {
    let c = crate::events::Columns::of(events);
    let n = jobs.len();
    let (mut ids, mut positions, mut stages) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut templates, mut versions, mut names) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut specs, mut deps, mut allow) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut whens, mut statuses) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut needs_stages = Vec::with_capacity(n);
    let (mut released, mut terminal) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for j in jobs {
        ids.push(j.id);
        positions.push(j.position);
        stages.push(j.stage);
        templates.push(j.template);
        versions.push(j.template_version);
        names.push(j.name);
        specs.push(j.spec);
        // A two-dimensional array must be rectangular: each job's list goes as an array
        // literal and is cast back in SQL.
        deps.push(format!(
            "{{{}}}",
            j.depends_on
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
        allow.push(j.allow_failure);
        needs_stages.push(j.needs_stage);
        whens.push(j.when);
        statuses.push(j.status.as_str());
        released.push(j.released);
        terminal.push(j.status.is_terminal());
    }
    let mut rows = sqlx::query_as!(
        JobRow,
        r#"WITH inserted AS (
               INSERT INTO jobs (id, run_id, position, stage, template, template_version, name,
                                 spec, depends_on, allow_failure, run_when, status, runnable_at,
                                 ended_at, needs_stage)
               SELECT j.id, $1, j.position, j.stage, j.template, j.version, j.name, j.spec,
                      j.deps::int4[], j.allow, j.run_when, j.status,
                      CASE WHEN j.released THEN now() END, CASE WHEN j.terminal THEN now() END,
                      j.needs_stage
               FROM UNNEST($2::uuid[], $3::int4[], $4::int4[], $5::text[], $6::int4[],
                           $7::text[], $8::jsonb[], $9::text[], $10::bool[], $11::text[],
                           $12::text[], $13::bool[], $14::bool[], $15::int4[])
                    AS j(id, position, stage, template, version, name, spec, deps, allow,
                         run_when, status, released, terminal, needs_stage)
               RETURNING id, run_id, position, stage, template, name, spec, depends_on, status,
                         exit_code, error_class, reason, attempt, runnable_at, runner_id,
                         log_end, started_at, ended_at, log_truncated, handed_back
           ),
           s AS (
               UPDATE pipeline_runs SET event_seq = event_seq + cardinality($16::text[])
               WHERE id = $1 AND cardinality($16::text[]) > 0 RETURNING event_seq
           ),
           appended AS (
               -- Their jobs' rows are this statement's: the foreign key is checked at its end.
               INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class,
                                   reason, data)
               SELECT $1, s.event_seq - cardinality($16::text[]) + e.n, e.event_type, e.job_id,
                      e.actor, e.attempt, e.error_class, e.reason, e.data
               FROM s, UNNEST($16::text[], $17::uuid[], $18::text[], $19::int4[], $20::text[],
                              $21::text[], $22::jsonb[])
                       WITH ORDINALITY AS e(event_type, job_id, actor, attempt, error_class,
                                            reason, data, n)
           )
           SELECT id AS "id!", run_id AS "run_id!", position AS "position!", stage AS "stage!",
                  template AS "template!", name AS "name!", spec AS "spec!",
                  depends_on AS "depends_on!", status AS "status!: JobStatus", exit_code,
                  error_class AS "error_class: ErrorClass", reason, attempt AS "attempt!",
                  runnable_at, runner_id, log_end AS "log_end!", started_at, ended_at,
                  log_truncated AS "log_truncated!", handed_back AS "handed_back!"
           FROM inserted"#,
        run_id,
        &ids,
        &positions,
        &stages,
        &templates as &[&str],
        &versions,
        &names as &[&str],
        &specs as &[&serde_json::Value],
        &deps,
        &allow,
        &whens as &[&str],
        &statuses as &[&str],
        &released,
        &terminal,
        &needs_stages as &[Option<i32>],
        &c.types as &[&str],
        &c.job_ids as &[Option<Uuid>],
        &c.actors as &[&str],
        &c.attempts as &[Option<i32>],
        &c.classes as &[Option<&str>],
        &c.reasons as &[Option<&str>],
        &c.data as &[Option<&serde_json::Value>],
    )
    .fetch_all(e)
    .await?;
    rows.sort_by_key(|j| j.position);
    Ok(rows)
}

/// A run's jobs in pipeline order.
pub async fn of_run(e: impl PgExecutor<'_>, run_id: Uuid) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, run_id, position, stage, template, name, spec, depends_on,
                status AS "status: JobStatus", exit_code,
                error_class AS "error_class: ErrorClass", reason, attempt, runnable_at, runner_id, log_end, started_at, ended_at,
                log_truncated, handed_back
         FROM jobs WHERE run_id = $1 ORDER BY position"#,
        run_id
    )
    .fetch_all(e)
    .await
}

/// The template version of each of a run's jobs, in pipeline order (a rerun copies them).
pub async fn template_versions(
    e: impl PgExecutor<'_>,
    run_id: Uuid,
) -> Result<Vec<i32>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT template_version FROM jobs WHERE run_id = $1 ORDER BY position",
        run_id
    )
    .fetch_all(e)
    .await
}

/// A run's jobs in pipeline order, as the planner needs them.
pub async fn plan_rows(e: impl PgExecutor<'_>, run_id: Uuid) -> Result<Vec<PlanRow>, sqlx::Error> {
    sqlx::query_as!(
        PlanRow,
        r#"SELECT id, name, status AS "status: JobStatus", runnable_at IS NOT NULL AS "released!",
                  depends_on, allow_failure, run_when
           FROM jobs WHERE run_id = $1 ORDER BY position"#,
        run_id
    )
    .fetch_all(e)
    .await
}

/// Whether a run is being canceled, and whether any of its jobs is pending (queued, not
/// offered), active (offered or running) or started (running or ended): one statement of
/// index look-ups (`jobs_run_status`) that often spares [`plan_rows`]
/// (`gitweave_model::plan::shortcut`).
#[derive(Debug, Clone, Copy)]
pub struct PlanSummary {
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Some job is queued, not yet offered.
    pub pending: bool,
    /// Some pending job may be ready to be decided: `pending`, unless the change of the job
    /// the summary was asked about cannot have made one ready
    /// (`gitweave_model::plan::unmoved_by`).
    pub pending_ready: bool,
    /// Some job is offered or running.
    pub active: bool,
    /// Some job is running or ended.
    pub started: bool,
}

/// Summarises a run's jobs for the planner; `None` if the run does not exist. `changed`: the
/// one job whose state changed since the plan was last a fixpoint, if the caller knows it.
///
/// `events` (the transaction's events so far, under the run's lock) are appended in the same
/// statement, as [`crate::events::append_all`] would: a job's end is then recorded in three
/// round trips under the run's lock instead of four (bench/FINDINGS.md #28). The summary
/// reads the run as the statement began, which the append changes only in `event_seq`.
pub async fn plan_summary(
    e: impl PgExecutor<'_>,
    run_id: Uuid,
    changed: Option<Uuid>,
    events: &[crate::events::NewEvent],
) -> Result<Option<PlanSummary>, sqlx::Error> {
    let c = crate::events::Columns::of(events);
    sqlx::query_as!(
        PlanSummary,
        r#"WITH s AS (
               UPDATE pipeline_runs SET event_seq = event_seq + cardinality($3::text[])
               WHERE id = $1 AND cardinality($3::text[]) > 0 RETURNING event_seq
           ),
           appended AS (
               INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class,
                                   reason, data)
               SELECT $1, s.event_seq - cardinality($3::text[]) + e.n, e.event_type, e.job_id,
                      e.actor, e.attempt, e.error_class, e.reason, e.data
               FROM s, UNNEST($3::text[], $4::uuid[], $5::text[], $6::int4[], $7::text[],
                              $8::text[], $9::jsonb[])
                       WITH ORDINALITY AS e(event_type, job_id, actor, attempt, error_class,
                                            reason, data, n)
           )
           SELECT r.cancel_requested,
                  EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'queued'
                                                 AND j.runnable_at IS NULL) AS "pending!",
                  -- plan::unmoved_by (migrations/20261209000100_finish_in_one_statement.sql)
                  run_pending_ready(r.id, $2) AS "pending_ready!",
                  (EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'running')
                   OR EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'queued'
                                                     AND j.runnable_at IS NOT NULL)) AS "active!",
                  EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id
                             AND j.status IN ('running', 'success', 'failed', 'canceled', 'skipped')
                         ) AS "started!"
           FROM pipeline_runs r
           WHERE r.id = $1"#,
        run_id,
        changed,
        &c.types as &[&str],
        &c.job_ids as &[Option<Uuid>],
        &c.actors as &[&str],
        &c.attempts as &[Option<i32>],
        &c.classes as &[Option<&str>],
        &c.reasons as &[Option<&str>],
        &c.data as &[Option<&serde_json::Value>],
    )
    .fetch_optional(e)
    .await
}

/// The jobs of many runs (for run lists), ordered by run then position.
pub async fn of_runs(e: impl PgExecutor<'_>, run_ids: &[Uuid]) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, run_id, position, stage, template, name, spec, depends_on,
                status AS "status: JobStatus", exit_code,
                error_class AS "error_class: ErrorClass", reason, attempt, runnable_at, runner_id, log_end, started_at, ended_at,
                log_truncated, handed_back
         FROM jobs WHERE run_id = ANY($1) ORDER BY run_id, position"#,
        run_ids
    )
    .fetch_all(e)
    .await
}

/// One job.
pub async fn get(e: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, run_id, position, stage, template, name, spec, depends_on,
                status AS "status: JobStatus", exit_code,
                error_class AS "error_class: ErrorClass", reason, attempt, runnable_at, runner_id, log_end, started_at, ended_at,
                log_truncated, handed_back
         FROM jobs WHERE id = $1"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Offers queued jobs to runners (now, or after a retry backoff), in one statement; answers
/// the `requires` of each job it offered, for the wake-ups.
pub async fn release_all(
    e: impl PgExecutor<'_>,
    ids: &[Uuid],
    delay_ms: i64,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!(
        r#"UPDATE jobs SET runnable_at = now() + make_interval(secs => $2::float8 / 1000)
           WHERE id = ANY($1) AND status = 'queued'
           RETURNING requires AS "requires!""#,
        ids,
        delay_ms as f64
    )
    .fetch_all(e)
    .await
}

/// Sets a job's status without running it (`skipped`, `manual`, `canceled`); a terminal
/// status stamps `ended_at`.
pub async fn set_status(
    e: impl PgExecutor<'_>,
    id: Uuid,
    status: JobStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET status = $2, runnable_at = NULL,
             ended_at = CASE WHEN $3 THEN now() ELSE ended_at END
         WHERE id = $1",
        id,
        status.as_str(),
        status.is_terminal()
    )
    .execute(e)
    .await?;
    Ok(())
}

/// What a runner gets when it claims a job.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Job.
    pub id: Uuid,
    /// Run.
    pub run_id: Uuid,
    /// The new attempt.
    pub attempt: i32,
    /// `<template>/<job>`.
    pub name: String,
    /// Expanded job JSON.
    pub spec: serde_json::Value,
    /// The run's status before the claim (`queued` when this claim started the run).
    pub run_status: RunStatus,
    /// The run's repo.
    pub repo: String,
    /// The run's git ref.
    pub git_ref: String,
    /// The run's commit, when known.
    pub commit_sha: Option<String>,
    /// The clone URL copied into the run when it was made, when the repo had one.
    pub clone_url: Option<String>,
    /// How many jobs the run has.
    pub run_jobs: i32,
    /// Whether the run is of a pull request (SPEC §9): it never gets protected secrets.
    pub pull_request: bool,
    /// What a runner must carry to take the job (its `runs_on`, with the engine).
    pub requires: serde_json::Value,
    /// How long the job was due before this claim took it (its queue wait), in seconds.
    pub waited_secs: f64,
    /// Positions (in the run) of the jobs it waits for.
    pub depends_on: Vec<i32>,
    /// Its run's repo.
    pub repo_id: Uuid,
}

/// Claims the oldest runnable job for a live (not revoked) runner: marks it running with a new
/// attempt and a lease, adds the runner's host to the run's `workspace_hosts`, and records
/// it, all in one statement (it needs no transaction of its own): the job's `job.started`
/// event by `actor`, and when the run was still `queued`, the run's move to
/// `running` with its `run.state_changed` event, exactly as the orchestrator writes them.
///
/// Lock order is the run first, then the job, as everywhere else (finish, cancel and re-plan
/// take the run's row lock first), so a claim cannot deadlock with them. The claim **waits**
/// for its run's lock instead of skipping the run: a re-plan holds it only for a few
/// statements, and skipping made a runner idle whenever another job of the same run was being
/// claimed or finished (a run of many parallel jobs then starved its runners). Answers
/// [`Look::Raced`] when the run it waited for had nothing left for it, and [`Look::Empty`]
/// when nothing was runnable for this runner at all (or it is not live, or at its capacity),
/// in the same statement: no second look-up tells the two apart.
///
/// Under READ COMMITTED, the run's row is re-read when its lock is granted, and the event
/// sequence is bumped on that newest version, so sequence numbers stay gapless and ordered
/// with whatever committed while the claim waited.
///
/// Workspace affinity (SPEC §13): once a job of a run has been claimed, the run's other jobs
/// go only to runners on a host in its `workspace_hosts` (the claimers' `host_id`s; a runner
/// registered without one takes no part in affinity) while one of those hosts has a runner
/// that is not revoked, was seen within `host_live_ms` and carries every label the job needs;
/// when none has, any runner may take it and its host joins the list (its workspace is made
/// again from the checkout and the artifacts the job depends on).
///
/// `waited_ms` is how long the runner's claim request has been waiting: a request older than
/// the runner's last loss (`lost_at`) gets nothing, since its answer may go to a connection
/// nobody reads any more (a host cut off keeps its long-poll open on this side).
///
/// `claim_id` (the runner's id for its request) is stored with the attempt, for
/// [`claimed_again`].
pub async fn claim(
    e: impl PgExecutor<'_>,
    runner_id: Uuid,
    lease_ms: i64,
    host_live_ms: i64,
    waited_ms: i64,
    actor: &str,
    claim_id: Option<Uuid>,
) -> Result<Look, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH RECURSIVE me AS (
               -- The runner, while it is live and below its registered capacity, and its host
               -- (NULL when it names none: it takes no part in affinity).
               SELECT labels, host_id AS host FROM runners
               WHERE id = $1 AND revoked_at IS NULL
                 AND (lost_at IS NULL
                      OR lost_at < now() - make_interval(secs => $7::float8 / 1000))
                 AND capacity > (SELECT count(*) FROM jobs
                                 WHERE runner_id = $1 AND status = 'running')
           ),
           walk AS (
               -- The due jobs in `jobs_claimable` order, one index step at a time, until one
               -- this runner may take (`fits`): its labels, and affinity (SPEC §13: a run's
               -- jobs go to the hosts holding its workspace while one of them has a live
               -- runner that could take the job, else anywhere). Written as a walk so that no
               -- statistics can turn it into a read and sort of every due job: a filter on
               -- labels is estimated so selective that the planner did exactly that, about
               -- 1 ms a claim at 1,000 due jobs (bench/FINDINGS.md #29).
               -- Each step is a one-table ordered LIMIT 1 on that index; `fits` is computed
               -- on its row in a second LATERAL, with plain columns as the arguments of
               -- `workspace_affinity_allows`, so that the planner inlines it.
               SELECT n.runnable_at, n.run_id, n.position, f.fits
               FROM me, LATERAL (
                   SELECT j.runnable_at, j.run_id, j.position, j.requires FROM jobs j
                   WHERE j.status = 'queued' AND j.runnable_at IS NOT NULL
                     AND j.runnable_at <= now()
                   ORDER BY j.runnable_at, j.run_id, j.position
                   LIMIT 1
               ) n, LATERAL (
                   SELECT n.requires <@ me.labels
                          AND workspace_affinity_allows(wr.workspace_hosts, me.host, n.requires,
                                                        $6::float8) AS fits
                   FROM pipeline_runs wr WHERE wr.id = n.run_id
               ) f
               UNION ALL
               SELECT n.runnable_at, n.run_id, n.position, f.fits
               FROM walk w, me, LATERAL (
                   SELECT j.runnable_at, j.run_id, j.position, j.requires FROM jobs j
                   WHERE j.status = 'queued' AND j.runnable_at IS NOT NULL
                     AND j.runnable_at <= now()
                     AND (j.runnable_at, j.run_id, j.position)
                         > (w.runnable_at, w.run_id, w.position)
                   ORDER BY j.runnable_at, j.run_id, j.position
                   LIMIT 1
               ) n, LATERAL (
                   SELECT n.requires <@ me.labels
                          AND workspace_affinity_allows(wr.workspace_hosts, me.host, n.requires,
                                                        $6::float8) AS fits
                   FROM pipeline_runs wr WHERE wr.id = n.run_id
               ) f
               WHERE NOT w.fits
           ),
           cand AS (
               SELECT run_id FROM walk WHERE fits LIMIT 1
           ),
           run AS (
               SELECT r.id, r.status, r.ref, r.commit_sha, r.repo_id, r.job_count, r.clone_url,
                      r.pull_request, r.workspace_hosts
               FROM pipeline_runs r JOIN cand ON r.id = cand.run_id
               FOR UPDATE OF r
           ),
           next AS (
               -- The affinity rule again, on the run's row as its lock found it. A LATERAL
               -- keyed by the run, so `jobs_run_status` (run_id, status, runnable_at,
               -- position) yields the run's jobs in this order and the scan stops at the first
               -- row it can lock, instead of reading and sorting all of them under the run's
               -- lock (bench/FINDINGS.md #22).
               SELECT n.id, n.runnable_at FROM run, me, LATERAL (
                   SELECT j.id, j.runnable_at FROM jobs j
                   WHERE j.run_id = run.id AND j.status = 'queued'
                     AND j.runnable_at IS NOT NULL AND j.runnable_at <= now()
                     AND j.requires <@ me.labels
                     AND workspace_affinity_allows(run.workspace_hosts, me.host, j.requires,
                                                   $6::float8)
                   ORDER BY j.runnable_at, j.position
                   LIMIT 1
                   FOR UPDATE OF j SKIP LOCKED
               ) n
           ),
           claimed AS (
               UPDATE jobs SET status = 'running', attempt = attempt + 1, runner_id = $1,
                   claim_id = $8,
                   lease_expires_at = now() + make_interval(secs => $2::float8 / 1000),
                   started_at = now(), ended_at = NULL, exit_code = NULL, error_class = NULL,
                   reason = NULL, log_end = 0, log_truncated = false, runnable_at = NULL
               FROM next
               WHERE jobs.id = next.id
               RETURNING jobs.id, jobs.run_id, jobs.attempt, jobs.name, jobs.spec, jobs.requires,
                         jobs.depends_on,
                         EXTRACT(EPOCH FROM (now() - next.runnable_at))::float8 AS waited_secs
           ),
           starts AS (
               SELECT run.status = 'queued' AS run_starts FROM run, claimed
           ),
           bumped AS (
               UPDATE pipeline_runs r
               SET event_seq = r.event_seq + CASE WHEN starts.run_starts THEN 2 ELSE 1 END,
                   status = CASE WHEN starts.run_starts THEN 'running' ELSE r.status END,
                   workspace_hosts = CASE WHEN me.host IS NULL OR me.host = ANY(r.workspace_hosts)
                                          THEN r.workspace_hosts
                                          ELSE r.workspace_hosts || me.host END,
                   started_at = CASE WHEN starts.run_starts THEN COALESCE(r.started_at, now())
                                     ELSE r.started_at END
               FROM run, starts, me
               WHERE r.id = run.id
               RETURNING r.event_seq
           ),
           recorded AS (
               INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, data)
               SELECT claimed.run_id, bumped.event_seq - ev.back, ev.event_type, ev.job_id, $3,
                      ev.attempt, ev.data
               FROM claimed, bumped, starts, LATERAL (VALUES
                   (CASE WHEN starts.run_starts THEN 1 ELSE 0 END, $4::text, claimed.id,
                    claimed.attempt, NULL::jsonb),
                   (0, $5::text, NULL::uuid, NULL::int4,
                    jsonb_build_object('from', 'queued', 'to', 'running'))
               ) AS ev(back, event_type, job_id, attempt, data)
               WHERE ev.event_type = $4 OR starts.run_starts
           )
           -- One row whatever happened: `queued` says whether `cand` found anything, the
           -- rest is the claimed job's or NULL.
           SELECT EXISTS (SELECT 1 FROM cand) AS "queued!",
                  c.id AS "id?", c.run_id AS "run_id?", c.attempt AS "attempt?",
                  c.name AS "name?", c.spec AS "spec?",
                  c.run_status AS "run_status?: RunStatus", c.repo AS "repo?",
                  c.git_ref AS "git_ref?", c.commit_sha, c.clone_url,
                  c.run_jobs AS "run_jobs?", c.pull_request AS "pull_request?",
                  c.requires AS "requires?", c.waited_secs AS "waited_secs?",
                  c.depends_on AS "depends_on?", c.repo_id AS "repo_id?"
           FROM (SELECT) AS one LEFT JOIN (
               SELECT claimed.id, claimed.run_id, claimed.attempt, claimed.name, claimed.spec,
                      run.status AS run_status, p.name AS repo, run.ref AS git_ref,
                      run.commit_sha, run.clone_url, run.job_count AS run_jobs,
                      run.pull_request IS NOT NULL AS pull_request, claimed.requires,
                      claimed.waited_secs, claimed.depends_on, run.repo_id
               FROM claimed, run JOIN repos p ON p.id = run.repo_id
           ) AS c ON true"#,
        runner_id,
        lease_ms as f64,
        actor,
        EventType::JobStarted.as_str(),
        EventType::RunStateChanged.as_str(),
        host_live_ms as f64,
        waited_ms as f64,
        claim_id
    )
    .fetch_one(e)
    .await?;
    let claimed = (|| {
        Some(Claimed {
            id: row.id?,
            run_id: row.run_id?,
            attempt: row.attempt?,
            name: row.name?,
            spec: row.spec?,
            run_status: row.run_status?,
            repo: row.repo?,
            git_ref: row.git_ref?,
            commit_sha: row.commit_sha,
            clone_url: row.clone_url,
            run_jobs: row.run_jobs?,
            pull_request: row.pull_request?,
            requires: row.requires?,
            waited_secs: row.waited_secs?,
            depends_on: row.depends_on?,
            repo_id: row.repo_id?,
        })
    })();
    Ok(match claimed {
        Some(c) => Look::Claimed(Box::new(c)),
        None if row.queued => Look::Raced,
        None => Look::Empty,
    })
}

/// What one [`claim`] statement found.
#[derive(Debug)]
pub enum Look {
    /// It took this job.
    Claimed(Box<Claimed>),
    /// A job was runnable for the runner, but by the time the claim held its run's lock
    /// another runner had taken the last of them: look again.
    Raced,
    /// Nothing was runnable for the runner (or it is not live, or at its capacity): wait.
    Empty,
}

/// The attempt that claim `claim_id` of `runner_id` took, while that runner still holds it:
/// the same request sent again after its answer was lost gets it back ([`claim`]).
/// `waited_secs` is 0 and `run_status` the run's status now.
pub async fn claimed_again(
    e: impl PgExecutor<'_>,
    runner_id: Uuid,
    claim_id: Uuid,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"SELECT j.id, j.run_id, j.attempt, j.name, j.spec,
                  r.status AS "run_status!: RunStatus", p.name AS repo,
                  r.ref AS git_ref, r.commit_sha, r.clone_url, r.job_count AS run_jobs,
                  r.pull_request IS NOT NULL AS "pull_request!",
                  j.requires, 0::float8 AS "waited_secs!", j.depends_on, r.repo_id
           FROM jobs j JOIN pipeline_runs r ON r.id = j.run_id JOIN repos p ON p.id = r.repo_id
           WHERE j.runner_id = $1 AND j.status = 'running' AND j.claim_id = $2"#,
        runner_id,
        claim_id
    )
    .fetch_optional(e)
    .await
}

/// The state of a job as seen by the runner that claims to hold `attempt` of it.
#[derive(Debug, Clone)]
pub struct Holding {
    /// Status.
    pub status: JobStatus,
    /// Current attempt.
    pub attempt: i32,
    /// Holder.
    pub runner_id: Option<Uuid>,
    /// Stored log length.
    pub log_end: i64,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Its run.
    pub run_id: Uuid,
}

impl Holding {
    /// Whether `runner` still holds `attempt` of this job.
    pub fn is_held_by(&self, runner: Uuid, attempt: i32) -> bool {
        self.status == JobStatus::Running
            && self.attempt == attempt
            && self.runner_id == Some(runner)
    }
}

/// Reads (and with `lock`, locks) what is needed to check a runner's write.
pub async fn holding(e: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Holding>, sqlx::Error> {
    sqlx::query_as!(
        Holding,
        r#"SELECT status AS "status: JobStatus", attempt, runner_id, log_end, cancel_requested, run_id
           FROM jobs WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Renews the lease of a held attempt; `None` when the runner no longer holds it.
pub async fn heartbeat(
    e: impl PgExecutor<'_>,
    id: Uuid,
    attempt: i32,
    runner_id: Uuid,
    lease_ms: i64,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $4::float8 / 1000)
         WHERE id = $1 AND attempt = $2 AND runner_id = $3 AND status = 'running'
         RETURNING cancel_requested",
        id,
        attempt,
        runner_id,
        lease_ms as f64
    )
    .fetch_optional(e)
    .await
}

/// The outcome of an attempt.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    /// `success`, `failed` or `canceled`.
    pub status: JobStatus,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Failure class.
    pub error_class: Option<ErrorClass>,
    /// Failure sentence.
    pub reason: Option<&'a str>,
    /// The runner cut the attempt's log at its limit.
    pub log_truncated: bool,
}

/// Records the end of the current attempt.
///
/// With a `guard`, only if that runner still holds that attempt and has stored exactly
/// `log_end` bytes of its log; returns what it recorded, `None` when the row was not updated
/// (see [`holding`] for why not).
pub async fn finish(
    e: impl PgExecutor<'_>,
    id: Uuid,
    o: &Outcome<'_>,
    guard: Option<&Guard>,
) -> Result<Option<Finished>, sqlx::Error> {
    sqlx::query_as!(
        Finished,
        r#"UPDATE jobs SET status = $2, exit_code = $3, error_class = $4, reason = $5, ended_at = now(),
             lease_expires_at = NULL, log_truncated = $9
         WHERE id = $1
           AND ($6::uuid IS NULL
                OR (runner_id = $6 AND attempt = $7 AND status = 'running' AND log_end = $8))
         RETURNING requires, EXTRACT(EPOCH FROM (ended_at - started_at))::float8 AS ran_secs"#,
        id,
        o.status.as_str(),
        o.exit_code,
        o.error_class.map(ErrorClass::as_str),
        o.reason,
        guard.map(|g| g.runner_id),
        guard.map(|g| g.attempt),
        guard.map(|g| g.log_end),
        o.log_truncated
    )
    .fetch_optional(e)
    .await
}

/// [`crate::runs::lock_of_job`] and then [`finish`], in one statement: locks the job's run
/// (waiting for it, as every writer of the run does, run first), then records the end under
/// the same guard. `None` when the job does not exist; else the run as its lock found it, and
/// what was recorded (`None` when the guard refused the end: see [`holding`]). A round trip
/// less under the run's lock for a job's end that needs nothing of the job first (a success;
/// bench/FINDINGS.md #28). Under READ COMMITTED the update re-checks its guard on the newest
/// version of the job's row, so an attempt taken back while it waited is refused as before.
pub async fn finish_locking_run(
    e: impl PgExecutor<'_>,
    id: Uuid,
    o: &Outcome<'_>,
    guard: Option<&Guard>,
) -> Result<Option<(crate::runs::Locked, Option<Finished>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH run AS (
               SELECT r.id, r.status, r.cancel_requested FROM pipeline_runs r
               WHERE r.id = (SELECT run_id FROM jobs WHERE id = $1)
               FOR UPDATE
           ),
           recorded AS (
               UPDATE jobs SET status = $2, exit_code = $3, error_class = $4, reason = $5,
                   ended_at = now(), lease_expires_at = NULL, log_truncated = $9
               FROM run
               WHERE jobs.id = $1 AND jobs.run_id = run.id
                 AND ($6::uuid IS NULL
                      OR (jobs.runner_id = $6 AND jobs.attempt = $7 AND jobs.status = 'running'
                          AND jobs.log_end = $8))
               RETURNING jobs.requires,
                         EXTRACT(EPOCH FROM (jobs.ended_at - jobs.started_at))::float8 AS ran_secs
           )
           SELECT run.id AS "id!", run.status AS "status!: RunStatus",
                  run.cancel_requested AS "cancel_requested!",
                  recorded.requires AS "requires?", recorded.ran_secs,
                  recorded.requires IS NOT NULL AS "recorded!"
           FROM run LEFT JOIN recorded ON true"#,
        id,
        o.status.as_str(),
        o.exit_code,
        o.error_class.map(ErrorClass::as_str),
        o.reason,
        guard.map(|g| g.runner_id),
        guard.map(|g| g.attempt),
        guard.map(|g| g.log_end),
        o.log_truncated
    )
    .fetch_optional(e)
    .await?;
    Ok(row.map(|r| {
        let locked = crate::runs::Locked {
            id: r.id,
            status: r.status,
            cancel_requested: r.cancel_requested,
        };
        let finished = r.requires.filter(|_| r.recorded).map(|requires| Finished {
            requires,
            ran_secs: r.ran_secs,
        });
        (locked, finished)
    }))
}

/// What [`finish_success_settled`] recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The job's run.
    pub run_id: Uuid,
    /// The run's status as its lock found it.
    pub locked_status: RunStatus,
    /// The run's status now.
    pub run_status: RunStatus,
    /// What was recorded of the job.
    pub finished: Finished,
}

/// Records a runner's report that its attempt succeeded, with `events` (the job's own) and the
/// run's new status and its events, in one statement outside any transaction block, when
/// that needs nothing of the planner (`finish_success_settled` in
/// migrations/20261209000100_finish_in_one_statement.sql: a round trip instead of four to six,
/// bench/FINDINGS.md #31). `None`: nothing was written, because the job does not exist, the
/// guard refused the end (see [`holding`]), or the run needs its planner (a cancel, an ended
/// run, a pending job this end may have made ready); the caller then takes the transaction
/// that does all of that, as it does for any `o` that is not a success. `planner`: the actor
/// of the run's events.
pub async fn finish_success_settled(
    e: impl PgExecutor<'_>,
    id: Uuid,
    o: &Outcome<'_>,
    guard: &Guard,
    planner: &str,
    events: &[crate::events::NewEvent],
) -> Result<Option<Settled>, sqlx::Error> {
    if o.status != JobStatus::Success || o.error_class.is_some() {
        return Ok(None);
    }
    let c = crate::events::Columns::of(events);
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", run_id AS "run_id!",
                  locked_status AS "locked_status!: RunStatus",
                  run_status AS "run_status: RunStatus", requires, ran_secs
           FROM finish_success_settled($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10::uuid[],
                                       $11::text[], $12::int4[], $13::text[], $14::text[],
                                       $15::jsonb[])"#,
        id,
        guard.runner_id,
        guard.attempt,
        guard.log_end,
        o.exit_code,
        o.reason,
        o.log_truncated,
        planner,
        &c.types as &[&str],
        &c.job_ids as &[Option<Uuid>],
        &c.actors as &[&str],
        &c.attempts as &[Option<i32>],
        &c.classes as &[Option<&str>],
        &c.reasons as &[Option<&str>],
        &c.data as &[Option<&serde_json::Value>],
    )
    .fetch_optional(e)
    .await?;
    Ok(row.and_then(|r| {
        let recorded = r.outcome == "recorded";
        match (recorded, r.run_status, r.requires) {
            (true, Some(run_status), Some(requires)) => Some(Settled {
                run_id: r.run_id,
                locked_status: r.locked_status,
                run_status,
                finished: Finished {
                    requires,
                    ran_secs: r.ran_secs,
                },
            }),
            _ => None,
        }
    }))
}

/// What [`finish`] recorded.
#[derive(Debug, Clone)]
pub struct Finished {
    /// What a runner must carry to take the job.
    pub requires: serde_json::Value,
    /// How long the attempt ran, when it had started (a job canceled before any runner took
    /// it never ran).
    pub ran_secs: Option<f64>,
}

/// Who must still hold an attempt for [`finish`] to record its end.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// The runner reporting.
    pub runner_id: Uuid,
    /// Its attempt.
    pub attempt: i32,
    /// The log length it reports.
    pub log_end: i64,
}

/// Puts a failed attempt back in the queue for another attempt after `delay_ms`.
pub async fn requeue(e: impl PgExecutor<'_>, id: Uuid, delay_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET status = 'queued', runner_id = NULL, lease_expires_at = NULL, ended_at = NULL,
             runnable_at = now() + make_interval(secs => $2::float8 / 1000)
         WHERE id = $1",
        id,
        delay_ms as f64
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Puts a running attempt that its stopping runner gave back in the queue again, runnable
/// now, and counts it as handed back; only if that runner still holds that attempt with exactly
/// `log_end` bytes stored. Returns whether the row was updated.
pub async fn hand_back(
    e: impl PgExecutor<'_>,
    id: Uuid,
    guard: &Guard,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "UPDATE jobs SET status = 'queued', runner_id = NULL, lease_expires_at = NULL,
             ended_at = NULL, runnable_at = now(), handed_back = handed_back + 1
         WHERE id = $1 AND runner_id = $2 AND attempt = $3 AND status = 'running' AND log_end = $4",
        id,
        guard.runner_id,
        guard.attempt,
        guard.log_end
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Asks the runner holding a running job to stop it (seen on its next heartbeat).
pub async fn request_cancel(e: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND status = 'running'",
        id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A running job whose lease ran out.
#[derive(Debug, Clone)]
pub struct Expired {
    /// Job.
    pub id: Uuid,
    /// Run.
    pub run_id: Uuid,
    /// The attempt that was lost.
    pub attempt: i32,
    /// The runner that held it.
    pub runner_id: Option<Uuid>,
    /// Its name.
    pub runner_name: Option<String>,
}

/// Running jobs whose lease has expired (not locked: the caller re-checks under the run lock).
pub async fn expired(e: impl PgExecutor<'_>, limit: i64) -> Result<Vec<Expired>, sqlx::Error> {
    sqlx::query_as!(
        Expired,
        r#"SELECT j.id, j.run_id, j.attempt, j.runner_id, r.name AS "runner_name?"
           FROM jobs j LEFT JOIN runners r ON r.id = j.runner_id
           WHERE j.status = 'running' AND j.lease_expires_at < now()
           ORDER BY j.lease_expires_at LIMIT $1"#,
        limit
    )
    .fetch_all(e)
    .await
}

/// Gives every running job a fresh lease: after pipeline-svc was down, runners could not
/// heartbeat, and their jobs must not be taken for lost because of it.
pub async fn extend_running_leases(
    e: impl PgExecutor<'_>,
    lease_ms: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        "UPDATE jobs SET lease_expires_at = GREATEST(lease_expires_at, now() + make_interval(secs => $1::float8 / 1000))
         WHERE status = 'running'",
        lease_ms as f64
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected())
}

/// Takes a manual job out of `manual` and offers it to runners; answers its `requires` (for
/// the wake-up), or `None` if it was not manual.
pub async fn approve(
    e: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE jobs SET status = 'queued', runnable_at = now() WHERE id = $1 AND status = 'manual'
           RETURNING requires AS "requires!""#,
        id
    )
    .fetch_optional(e)
    .await
}

/// The queued jobs of one requirement set ([`queue_depth`]).
#[derive(Debug, Clone)]
pub struct QueueDepth {
    /// What a runner must carry to take them.
    pub requires: serde_json::Value,
    /// Due now: a runner that carries `requires` and has a free slot takes them.
    pub due: i64,
    /// Held: waiting for their `needs`, an approval or a retry's backoff.
    pub held: i64,
}

/// The queued jobs of unfinished runs by requirement set, the largest first, at most `limit`
/// sets (for `/metrics`). Reads only unfinished runs (`pipeline_runs_active`), so it costs
/// what is in flight, not the history.
pub async fn queue_depth(
    e: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<QueueDepth>, sqlx::Error> {
    sqlx::query_as!(
        QueueDepth,
        r#"SELECT j.requires AS "requires!",
                  count(*) FILTER (WHERE j.runnable_at <= now()) AS "due!",
                  count(*) FILTER (WHERE j.runnable_at IS NULL OR j.runnable_at > now()) AS "held!"
           FROM pipeline_runs r JOIN jobs j ON j.run_id = r.id
           WHERE r.ended_at IS NULL AND j.status = 'queued'
           GROUP BY j.requires
           ORDER BY count(*) DESC
           LIMIT $1"#,
        limit
    )
    .fetch_all(e)
    .await
}
