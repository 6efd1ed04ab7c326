//! Job attempts: handing a job to a runner, and recording how an attempt ended (with retries).

use super::{ACTOR, Advanced, RunTx, advance_locked};
use crate::auth::RunnerIdentity;
use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_api::runner::{Assignment, AttemptState, Checkout, FinishRequest, HandBackRequest};
use gitweave_model::expand::ExpandedJob;
use gitweave_model::status::{ErrorClass, EventType, JobStatus, RunStatus};
use gitweave_storage::events::NewEvent;
use gitweave_storage::{jobs, runs};
use rand::Rng;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// Claims a runner makes in one request before it waits for a wake-up.
const CLAIM_TRIES: u32 = 4;

/// How recently a runner must have been seen for its host to keep the jobs of the runs whose
/// workspace it holds: one lease, plus the time a runner in contact may go without its
/// `last_seen_at` being written ([`crate::state::RUNNER_RECHECK`]).
fn host_live_ms(state: &AppState) -> i64 {
    (state.config.lease_ms + crate::state::RUNNER_RECHECK.as_millis() as u64) as i64
}

/// The runner's claim request: its id for the request, and whether it repeats one whose
/// answer never arrived (`gitweave_api::runner::ClaimRequest`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimOf {
    /// Stored with the attempt taken.
    pub claim_id: Option<Uuid>,
    /// Answer the attempt this id took, if the runner still holds it, before claiming anew.
    pub repeat: bool,
}

/// Claims one job for a runner, or `None` when nothing is runnable right now. `waited` is how
/// long the runner's request has been waiting (see [`jobs::claim`]). A repeated request
/// (`of.repeat`) whose first try took an attempt gets that attempt again, unchanged.
pub async fn claim(
    state: &AppState,
    runner: &RunnerIdentity,
    waited: Duration,
    of: ClaimOf,
) -> Result<Option<Assignment>, ApiError> {
    if of.repeat
        && let Some(id) = of.claim_id
        && let Some(c) = jobs::claimed_again(&state.pool, runner.id, id).await?
    {
        tracing::info!(job.id = %c.id, run.id = %c.run_id, attempt = c.attempt, runner.name = %runner.name, "claim repeated; the same attempt answered again");
        return assignment(state, c, false).await;
    }
    // A claim that waited for a run whose last runnable job another runner took finds
    // nothing, and says so (`Raced`): look again, a few times, then the long-poll waits. The
    // claim is one statement with its events (`job.started`, and the run's move to `running`
    // on its first claim), so it needs no transaction around it.
    let actor = runner.actor();
    let mut tries = 0;
    let c = loop {
        let lease_ms = state.config.lease_ms as i64;
        let waited_ms = waited.as_millis() as i64;
        match jobs::claim(
            &state.pool,
            runner.id,
            lease_ms,
            host_live_ms(state),
            waited_ms,
            &actor,
            of.claim_id,
        )
        .await?
        {
            jobs::Look::Claimed(c) => break *c,
            jobs::Look::Empty => return Ok(None),
            jobs::Look::Raced => {
                tries += 1;
                if tries >= CLAIM_TRIES {
                    return Ok(None);
                }
            }
        }
    };
    state.run_changed(c.run_id);
    tracing::info!(job.id = %c.id, run.id = %c.run_id, attempt = c.attempt, runner.name = %runner.name, "job claimed");
    assignment(state, c, true).await
}

/// What the runner gets for a claimed attempt: the job with its secrets, inputs, cache and
/// predefined variables. `first`: the claim took it now (counted in the metrics), not a
/// repeated request answered again.
async fn assignment(
    state: &AppState,
    mut c: jobs::Claimed,
    first: bool,
) -> Result<Option<Assignment>, ApiError> {
    let job: ExpandedJob = serde_json::from_value(std::mem::take(&mut c.spec))
        .map_err(|e| ApiError::Internal(format!("job {} spec does not load: {e}", c.id)))?;
    let secrets = match super::job_secrets::resolve(
        state,
        &super::job_secrets::For {
            repo: &c.repo,
            git_ref: &c.git_ref,
            pull_request: c.pull_request,
        },
        &job.secrets,
    )
    .await?
    {
        Ok(secrets) => secrets,
        Err(super::job_secrets::Refused(reason)) => {
            // Before it starts: no runner gets the job, it fails as a config_error.
            fail_at_claim(state, c.id, c.attempt, reason).await?;
            return Ok(None);
        }
    };
    let inputs = super::artifacts::inputs(state, &c, &job).await?;
    let cache = super::artifacts::cache(state, &c, &job).await?;
    let mut env = job.env.clone();
    let predefined = [
        ("CI", "true".to_owned()),
        ("GITWEAVE", "true".to_owned()),
        ("GITWEAVE_REPO", c.repo.clone()),
        ("GITWEAVE_RUN_ID", c.run_id.to_string()),
        ("GITWEAVE_JOB_ID", c.id.to_string()),
        ("GITWEAVE_JOB_NAME", c.name.clone()),
        ("GITWEAVE_REF", c.git_ref.clone()),
        (
            "GITWEAVE_COMMIT_SHA",
            c.commit_sha.clone().unwrap_or_default(),
        ),
        ("GITWEAVE_WORKSPACE", "/workspace".to_owned()),
        ("GITWEAVE_JOB_ATTEMPT", c.attempt.to_string()),
    ];
    // Predefined variables win over the template's, so a job can trust them.
    for (k, v) in predefined {
        env.insert(k.to_owned(), v);
    }
    if first {
        state.metrics.inc("gitweave_jobs_started_total", "");
        state.metrics.observe(
            "gitweave_job_queue_wait_seconds",
            &crate::fleet_metrics::requires_label(&c.requires),
            c.waited_secs,
        );
    }
    Ok(Some(Assignment {
        job_id: c.id,
        run_id: c.run_id,
        attempt: c.attempt,
        repo: c.repo,
        name: c.name,
        image: job.image,
        script: job.script,
        env,
        timeout_secs: job.timeout.as_secs(),
        workspace: c.run_id.to_string(),
        run_jobs: u32::try_from(c.run_jobs).unwrap_or(0),
        resources: job.resources,
        secrets,
        services: job.services,
        artifacts: job.artifacts,
        inputs,
        cache,
        checkout: c
            .clone_url
            .zip(c.commit_sha)
            .map(|(clone_url, commit)| Checkout {
                clone_url,
                commit,
                git_ref: c.git_ref,
            }),
    }))
}

/// Ends a just-claimed attempt as a `config_error` with `reason` before it is handed out.
async fn fail_at_claim(
    state: &AppState,
    job_id: Uuid,
    attempt: i32,
    reason: String,
) -> Result<(), ApiError> {
    let end = EndAttempt {
        job_id,
        attempt,
        class: Some(ErrorClass::ConfigError),
        exit_code: None,
        reason: Some(reason),
        actor: ACTOR.to_owned(),
        guard: None,
        log_truncated: false,
    };
    if record_end(state, end).await?.1.is_some() {
        tracing::info!(job.id = %job_id, attempt, "job failed at claim: its secrets cannot be given");
    }
    Ok(())
}

/// Records `end`. A runner's success that needs nothing of the planner but the run's new
/// status is one statement ([`jobs::finish_success_settled`]). Anything else is one
/// transaction: the run's lock first, found through the job in one statement, then
/// [`end_attempt`] under it (few statements: every other job of the run waits for the lock),
/// then the commit and the wake-ups. A success needs nothing of the job before it is
/// recorded, so its record is made in the statement that takes the lock. Answers the run's
/// status as locked, and `None` when the same end was already recorded (nothing changed,
/// nothing committed).
async fn record_end(
    state: &AppState,
    end: EndAttempt,
) -> Result<(RunStatus, Option<Ended>), ApiError> {
    let job_id = end.job_id;
    let (status, reason) = outcome_of(&end);
    let outcome = jobs::Outcome {
        status,
        exit_code: end.exit_code,
        error_class: end.class,
        reason: reason.as_deref(),
        log_truncated: end.log_truncated,
    };
    if end.class.is_none()
        && let Some(guard) = &end.guard
    {
        let event = end_event(&end, status, reason.clone());
        if let Some(settled) = jobs::finish_success_settled(
            &state.pool,
            job_id,
            &outcome,
            guard,
            ACTOR,
            std::slice::from_ref(&event),
        )
        .await?
        {
            let ended = Ended {
                status,
                finished: Some(settled.finished),
                attempt_status: status,
                retry_after: None,
                advanced: Advanced {
                    released: Vec::new(),
                    run_status: Some(settled.run_status),
                },
            };
            ended.after_commit(state, job_id, settled.run_id);
            return Ok((settled.locked_status, Some(ended)));
        }
    }
    let mut tx = state.pool.begin().await?;
    let (locked, recorded) = if end.class.is_none() {
        let (locked, recorded) =
            jobs::finish_locking_run(&mut *tx, job_id, &outcome, end.guard.as_ref())
                .await?
                .ok_or_else(|| ApiError::not_found("job", job_id))?;
        (locked, Some(recorded))
    } else {
        let locked = runs::lock_of_job(&mut *tx, job_id)
            .await?
            .ok_or_else(|| ApiError::not_found("job", job_id))?;
        (locked, None)
    };
    let run_id = locked.id;
    let mut tx = RunTx::new(tx, run_id);
    match end_attempt_recorded(&mut tx, state, &locked, end, recorded).await? {
        EndOutcome::Recorded(ended) => {
            tx.commit().await?;
            ended.after_commit(state, job_id, run_id);
            Ok((locked.status, Some(ended)))
        }
        EndOutcome::AlreadyRecorded => {
            tx.rollback().await?;
            Ok((locked.status, None))
        }
    }
}

/// Refuses a write from a runner that no longer holds the attempt.
pub fn stale(job_id: Uuid, attempt: i32) -> ApiError {
    ApiError::Conflict(
        error_code::STALE_ATTEMPT,
        format!(
            "attempt {attempt} of job {job_id} is not held by this runner (canceled, timed out or reassigned)"
        ),
    )
}

/// Exponential backoff with ±10% jitter: base·2^(attempt−1), at most 60 s
/// ([`gitweave_model::backoff::retry_delay`], with a fresh random draw).
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    gitweave_model::backoff::retry_delay(base, attempt, rand::rng().random_range(0.0..=1.0))
}

/// Records the end of an attempt reported by the runner holding it.
pub async fn finish(
    state: &AppState,
    runner: &RunnerIdentity,
    job_id: Uuid,
    attempt: i32,
    req: &FinishRequest,
) -> Result<AttemptState, ApiError> {
    // Recorded only if this runner still holds the attempt with its whole log stored.
    let end = EndAttempt {
        job_id,
        attempt,
        class: req.error_class,
        exit_code: req.exit_code,
        reason: req.reason.clone(),
        actor: runner.actor(),
        guard: Some(jobs::Guard {
            runner_id: runner.id,
            attempt,
            log_end: req.log_end,
        }),
        log_truncated: req.log_truncated,
    };
    let (run_status, ended) = record_end(state, end).await?;
    let Some(ended) = ended else {
        // The same finish again (its answer was lost): answer what was recorded, change
        // nothing.
        tracing::info!(job.id = %job_id, attempt, "repeated finish; answered as recorded");
        return Ok(AttemptState {
            cancel: false,
            run_ended: run_status.is_terminal(),
        });
    };
    tracing::info!(job.id = %job_id, attempt, status = %ended.status, "job finished");
    Ok(AttemptState {
        cancel: false,
        run_ended: ended
            .advanced
            .run_status
            .is_some_and(RunStatus::is_terminal),
    })
}

/// How an attempt ended, from whoever knows (its runner, or the lease reaper).
#[derive(Debug, Clone)]
pub struct EndAttempt {
    /// Job (of the transaction's run, locked by the caller).
    pub job_id: Uuid,
    /// The attempt that ended.
    pub attempt: i32,
    /// `None`: success.
    pub class: Option<ErrorClass>,
    /// Exit code, if the script ran to an end.
    pub exit_code: Option<i32>,
    /// A sentence.
    pub reason: Option<String>,
    /// Who reports it.
    pub actor: String,
    /// When a runner reports it: the attempt must still be held by it, with its whole log.
    pub guard: Option<jobs::Guard>,
    /// The runner cut the attempt's log at its `RUNNER_LOG_LIMIT`.
    pub log_truncated: bool,
}

/// Why a guarded end was refused: the attempt is no longer this runner's, or its log is not
/// all stored yet.
async fn refused(conn: &mut PgConnection, job_id: Uuid, guard: &jobs::Guard) -> ApiError {
    match jobs::holding(conn, job_id).await {
        Ok(Some(held)) => refusal(job_id, &held, guard),
        Ok(None) => ApiError::not_found("job", job_id),
        Err(err) => err.into(),
    }
}

/// Why a guarded write was refused, from the job as it is.
fn refusal(job_id: Uuid, held: &jobs::Holding, guard: &jobs::Guard) -> ApiError {
    match held {
        held if held.is_held_by(guard.runner_id, guard.attempt) => ApiError::Conflict(
            error_code::LOG_INCOMPLETE,
            format!(
                "the stored log of job {} ends at byte {} but the runner sent {}; send the rest first",
                job_id, held.log_end, guard.log_end
            ),
        ),
        _ => stale(job_id, guard.attempt),
    }
}

/// Whether `held` shows that this runner's end of `guard.attempt` is already recorded: the
/// attempt is still the job's current one, still names this runner, and has ended.
fn already_recorded(held: &jobs::Holding, guard: &jobs::Guard) -> bool {
    held.attempt == guard.attempt
        && held.runner_id == Some(guard.runner_id)
        && held.status != JobStatus::Running
}

/// What [`end_attempt`] did.
#[derive(Debug, Clone)]
pub enum EndOutcome {
    /// The end was recorded now.
    Recorded(Ended),
    /// The same runner reported the end of this attempt before and it is recorded (a
    /// repeated request whose answer was lost); nothing changed.
    AlreadyRecorded,
}

/// What [`end_attempt`] did; apply [`Ended::after_commit`] once committed.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The job's status now (`queued` when retried).
    pub status: JobStatus,
    /// What was recorded (its requirements and how long it ran), for the metrics.
    pub finished: Option<jobs::Finished>,
    /// How the attempt ended (`failed` also when it is retried).
    pub attempt_status: JobStatus,
    /// When retried: the backoff.
    pub retry_after: Option<Duration>,
    /// The re-plan.
    pub advanced: Advanced,
}

impl Ended {
    /// Wakes whoever waits for what changed.
    pub fn after_commit(&self, state: &AppState, job_id: Uuid, run_id: Uuid) {
        state.job_changed(job_id);
        state.run_changed(run_id);
        state.metrics.inc(
            "gitweave_jobs_finished_total",
            &format!("status=\"{}\"", self.attempt_status.as_str()),
        );
        if let Some(f) = &self.finished
            && let Some(secs) = f.ran_secs
        {
            state.metrics.observe(
                "gitweave_job_duration_seconds",
                &format!(
                    "{},status=\"{}\"",
                    crate::fleet_metrics::requires_label(&f.requires),
                    self.attempt_status.as_str()
                ),
                secs,
            );
        }
        if !self.advanced.released.is_empty() {
            state.wake_runners(&self.advanced.released);
        }
        if let Some(delay) = self.retry_after {
            // The retry becomes claimable after its backoff: wake a runner for it then.
            let requires = self
                .finished
                .as_ref()
                .map(|f| crate::wakeups::labels_of(&f.requires))
                .unwrap_or_default();
            let waiters = state.waiters.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay + Duration::from_millis(5)).await;
                waiters.wake_for([&requires]);
            });
        }
    }
}

/// Records the end of an attempt with its event, retries it when its policy allows (never
/// under a cancel), and re-plans the run. The caller holds the run's lock. A guarded end that
/// the same runner already reported is [`EndOutcome::AlreadyRecorded`]; any other refused
/// one is an error (`stale_attempt`, `log_incomplete`).
pub async fn end_attempt(
    tx: &mut RunTx,
    state: &AppState,
    run: &runs::Locked,
    e: EndAttempt,
) -> Result<EndOutcome, ApiError> {
    end_attempt_recorded(tx, state, run, e, None).await
}

/// The event of the end `e`, which leaves the job `status` (`job.succeeded`, `job.failed`,
/// `job.canceled`).
fn end_event(e: &EndAttempt, status: JobStatus, reason: Option<String>) -> NewEvent {
    let event_type = match status {
        JobStatus::Success => EventType::JobSucceeded,
        JobStatus::Canceled => EventType::JobCanceled,
        _ => EventType::JobFailed,
    };
    NewEvent {
        job_id: Some(e.job_id),
        attempt: Some(e.attempt),
        error_class: e.class,
        reason,
        data: e.exit_code.map(|c| serde_json::json!({ "exit_code": c })),
        ..NewEvent::new(event_type, e.actor.clone())
    }
}

/// The job's status after `e`, and the reason recorded with it.
fn outcome_of(e: &EndAttempt) -> (JobStatus, Option<String>) {
    let status = match e.class {
        None => JobStatus::Success,
        Some(ErrorClass::Canceled) => JobStatus::Canceled,
        Some(_) => JobStatus::Failed,
    };
    let reason = e.reason.clone().or_else(|| match (e.class, e.exit_code) {
        (Some(ErrorClass::ExitCode), Some(code)) => Some(format!("exit code {code}")),
        (Some(c), _) => Some(c.to_string()),
        (None, _) => None,
    });
    (status, reason)
}

/// [`end_attempt`]; `recorded`: what the caller's [`jobs::finish_locking_run`] recorded of
/// this end already (the job's row is then not written again), `None` when it has not run.
async fn end_attempt_recorded(
    tx: &mut RunTx,
    state: &AppState,
    run: &runs::Locked,
    e: EndAttempt,
    recorded: Option<Option<jobs::Finished>>,
) -> Result<EndOutcome, ApiError> {
    let canceling = run.cancel_requested;
    let current = run.status;
    let (status, reason) = outcome_of(&e);
    // Only a failure needs the job's spec (its retry policy and allow_failure).
    let failed = if status == JobStatus::Failed {
        let job = jobs::get(&mut **tx, e.job_id)
            .await?
            .ok_or_else(|| ApiError::not_found("job", e.job_id))?;
        let spec: ExpandedJob = serde_json::from_value(job.spec).map_err(|err| {
            ApiError::Internal(format!("job {} spec does not load: {err}", e.job_id))
        })?;
        Some((job.name, spec, job.handed_back))
    } else {
        None
    };
    let recorded = match recorded {
        Some(recorded) => recorded,
        None => {
            jobs::finish(
                &mut **tx,
                e.job_id,
                &jobs::Outcome {
                    status,
                    exit_code: e.exit_code,
                    error_class: e.class,
                    reason: reason.as_deref(),
                    log_truncated: e.log_truncated,
                },
                e.guard.as_ref(),
            )
            .await?
        }
    };
    if let Some(guard) = &e.guard
        && recorded.is_none()
    {
        let held = jobs::holding(&mut **tx, e.job_id)
            .await?
            .ok_or_else(|| ApiError::not_found("job", e.job_id))?;
        if already_recorded(&held, guard) {
            return Ok(EndOutcome::AlreadyRecorded);
        }
        return Err(refusal(e.job_id, &held, guard));
    }
    tx.record(end_event(&e, status, reason));
    let retry = !canceling
        && failed
            .as_ref()
            .zip(e.class)
            .is_some_and(|((_, spec, handed_back), c)| {
                // Attempts a stopping runner handed back are not the job's fault.
                spec.retry.allows(
                    c,
                    e.exit_code.map(i64::from),
                    u32::try_from(e.attempt - handed_back).unwrap_or(u32::MAX),
                )
            });
    let retry_after = retry.then(|| retry_delay(state.config.retry_base(), e.attempt));
    if let (Some(delay), Some((_, spec, _))) = (retry_after, &failed) {
        jobs::requeue(&mut **tx, e.job_id, delay.as_millis() as i64).await?;
        tx.record(NewEvent {
            job_id: Some(e.job_id),
            attempt: Some(e.attempt + 1),
            error_class: e.class,
            reason: Some(format!(
                "attempt {} of {} in {} ms",
                e.attempt + 1,
                spec.retry.max + 1,
                delay.as_millis()
            )),
            ..NewEvent::new(EventType::JobRetried, ACTOR)
        });
    }
    if let Some((name, spec, _)) = &failed
        && !retry
        && !spec.allow_failure
    {
        // A hard gate: fail-closed skips everything downstream of this job.
        tx.record(NewEvent {
            job_id: Some(e.job_id),
            attempt: Some(e.attempt),
            error_class: e.class,
            reason: Some(format!(
                "{name} failed; every job that depends on it is skipped"
            )),
            ..NewEvent::new(EventType::GateFailed, ACTOR)
        });
    }
    let advanced = advance_locked(tx, current, ACTOR, Some(e.job_id)).await?;
    Ok(EndOutcome::Recorded(Ended {
        finished: recorded,
        status: if retry { JobStatus::Queued } else { status },
        attempt_status: status,
        retry_after,
        advanced,
    }))
}

/// Takes back an attempt its stopping runner could not finish within its grace
/// (`RUNNER_SHUTDOWN_GRACE`): the job is queued again, runnable at once, for a new attempt
/// that does not count against its `retry`, with a `job.handed_back` event by the runner. Only
/// the runner holding the attempt, with its whole log stored, may hand it back. Under a cancel
/// the attempt ends as canceled instead, as it would have on the runner.
pub async fn hand_back(
    state: &AppState,
    runner: &RunnerIdentity,
    job_id: Uuid,
    attempt: i32,
    req: &HandBackRequest,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let locked = runs::lock_of_job(&mut *tx, job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", job_id))?;
    let run_id = locked.id;
    let mut tx = RunTx::new(tx, run_id);
    let guard = jobs::Guard {
        runner_id: runner.id,
        attempt,
        log_end: req.log_end,
    };
    if locked.cancel_requested {
        let outcome = end_attempt(
            &mut tx,
            state,
            &locked,
            EndAttempt {
                job_id,
                attempt,
                class: Some(ErrorClass::Canceled),
                exit_code: None,
                reason: Some("canceled".into()),
                actor: runner.actor(),
                guard: Some(guard),
                log_truncated: false,
            },
        )
        .await?;
        // A repeated hand-back whose first try ended the attempt as canceled: done already.
        if let EndOutcome::Recorded(ended) = outcome {
            tx.commit().await?;
            ended.after_commit(state, job_id, run_id);
        }
        return Ok(());
    }
    if !jobs::hand_back(&mut *tx, job_id, &guard).await? {
        return Err(refused(&mut tx, job_id, &guard).await);
    }
    tx.record(NewEvent {
        job_id: Some(job_id),
        attempt: Some(attempt),
        reason: Some(format!(
            "runner {} stopped before attempt {attempt} ended; queued for a new attempt",
            runner.name
        )),
        ..NewEvent::new(EventType::JobHandedBack, runner.actor())
    });
    tx.commit().await?;
    state.job_changed(job_id);
    state.run_changed(run_id);
    // Its requirements are not at hand here (a rare path: a runner stopping).
    state.wake_any_runners(1);
    tracing::info!(job.id = %job_id, attempt, runner.name = %runner.name, "attempt handed back; job queued again");
    Ok(())
}
