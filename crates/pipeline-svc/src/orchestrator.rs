//! Pipeline decisions with side effects: turning a trigger into a run, handing jobs to runners,
//! recording their ends, and re-planning a run. Every state change and its event are written
//! in one transaction; runners are woken after the commit.

use crate::auth::RunnerIdentity;
use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::runner::{Assignment, AttemptState, Checkout, FinishRequest};
use gitweave_model::expand::{self, ExpandedJob};
use gitweave_model::plan::{self, Action, JobState, Node, StageJob};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus, Trigger};
use gitweave_model::template::{Template, When};
use gitweave_storage::events::{self, NewEvent};
use gitweave_storage::{deliveries, jobs, repos, runs, templates};
use rand::Rng;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// The actor of changes pipeline-svc makes by itself.
pub const ACTOR: &str = "pipeline-svc";

/// What a trigger asks for.
#[derive(Debug, Clone)]
pub struct TriggerParams {
    /// Repo name.
    pub repo: String,
    /// Ref; default the repo's default branch.
    pub git_ref: Option<String>,
    /// Commit sha.
    pub commit: Option<String>,
    /// Only these attached templates.
    pub templates: Option<Vec<String>>,
    /// Input values.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// How it was started.
    pub trigger: Trigger,
    /// The run this one reruns.
    pub rerun_of: Option<Uuid>,
    /// Who asked (`api`, `webhook:github`, …).
    pub actor: String,
    /// The webhook delivery that asked, recorded in the run's transaction so the same
    /// delivery twice makes one run.
    pub delivery: Option<Delivery>,
}

/// A webhook delivery id.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `github`, `gitea`, `forgejo`, `gitlab`.
    pub provider: String,
    /// The provider's delivery id.
    pub id: String,
}

/// What a trigger made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggered {
    /// The run.
    pub run_id: Uuid,
    /// True when the delivery had been seen: `run_id` is the run it made then.
    pub duplicate: bool,
}

fn input_string(name: &str, v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::Invalid(
            "invalid_input",
            format!("input {name:?} must be a string, number or boolean"),
        )),
    }
}

/// Converts JSON input values to the strings templates substitute.
pub fn input_strings(
    inputs: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    inputs
        .iter()
        .map(|(k, v)| Ok((k.clone(), input_string(k, v)?)))
        .collect()
}

fn validate_ref(r: &str) -> Result<(), ApiError> {
    let ok = !r.is_empty() && r.len() <= 255 && !r.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            "invalid_ref",
            "ref must be 1 to 255 characters without control characters".into(),
        ))
    }
}

fn validate_commit(c: &str) -> Result<(), ApiError> {
    let ok = (4..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            "invalid_commit",
            format!("commit {c:?} is not a hex sha (4 to 64 hex digits)"),
        ))
    }
}

struct PlannedJob {
    stage: usize,
    template: String,
    template_version: i32,
    job: ExpandedJob,
}

/// Creates a run and all its jobs in one transaction, releases what can start, and wakes the
/// runners.
pub async fn trigger(state: &AppState, p: TriggerParams) -> Result<Triggered, ApiError> {
    let repo = repos::get(&state.pool, &p.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &p.repo))?;
    if let Some(d) = &p.delivery
        && let Some(run_id) = deliveries::run_of(&state.pool, &d.provider, &d.id).await?
    {
        return Ok(Triggered {
            run_id,
            duplicate: true,
        });
    }
    let git_ref = p
        .git_ref
        .clone()
        .unwrap_or_else(|| repo.default_branch.clone());
    validate_ref(&git_ref)?;
    if let Some(c) = &p.commit {
        validate_commit(c)?;
    }
    let attached = templates::attached(&state.pool, repo.id).await?;
    if attached.is_empty() {
        return Err(ApiError::Invalid(
            "no_templates",
            format!(
                "repo {} has no attached template; attach one with PUT /api/v1/repos/{}/templates/{{name}}",
                repo.name, repo.name
            ),
        ));
    }
    let selected: Vec<_> = match &p.templates {
        None => attached.iter().collect(),
        Some(names) => {
            if names.is_empty() {
                return Err(ApiError::Invalid(
                    "no_templates",
                    "templates must name at least one attached template".into(),
                ));
            }
            if let Some(missing) = names
                .iter()
                .find(|n| !attached.iter().any(|a| &a.name == *n))
            {
                return Err(ApiError::Invalid(
                    "template_not_attached",
                    format!("template {missing:?} is not attached to repo {}", repo.name),
                ));
            }
            attached
                .iter()
                .filter(|a| names.contains(&a.name))
                .collect()
        }
    };
    let parsed: Vec<Template> = selected
        .iter()
        .map(|a| {
            serde_json::from_value(a.parsed.clone()).map_err(|e| {
                ApiError::Internal(format!("stored template {} does not load: {e}", a.name))
            })
        })
        .collect::<Result<_, _>>()?;
    let given = input_strings(&p.inputs)?;
    let undeclared = expand::undeclared(&parsed.iter().collect::<Vec<_>>(), given.keys());
    if !undeclared.is_empty() {
        return Err(ApiError::Invalid(
            "unknown_input",
            format!(
                "input(s) {} are declared by none of the templates {}",
                undeclared.join(", "),
                selected
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    let mut planned = Vec::new();
    let mut dag = Vec::new();
    for (stage, (a, t)) in selected.iter().zip(&parsed).enumerate() {
        let defaults: BTreeMap<String, String> =
            serde_json::from_value(a.inputs.clone()).map_err(|e| {
                ApiError::Internal(format!("stored inputs of {} do not load: {e}", a.name))
            })?;
        let values = expand::resolve_inputs(t, &defaults, &given).map_err(|e| {
            ApiError::Invalid("invalid_input", e.with_template(&a.name).to_string())
        })?;
        for j in &t.jobs {
            let job = expand::expand_job(t, j, &values).map_err(|e| {
                ApiError::Invalid("invalid_input", e.with_template(&a.name).to_string())
            })?;
            planned.push(PlannedJob {
                stage,
                template: a.name.clone(),
                template_version: a.version,
                job,
            });
        }
        dag.push(t.uses_dag());
    }
    let stage_jobs: Vec<StageJob> = planned
        .iter()
        .map(|pj| StageJob {
            stage: pj.stage,
            needs: pj
                .job
                .needs
                .iter()
                .filter_map(|n| {
                    planned
                        .iter()
                        .position(|o| o.stage == pj.stage && o.job.name == *n)
                })
                .collect(),
        })
        .collect();
    let deps = plan::dependencies(&stage_jobs, &dag);

    let run_id = Uuid::now_v7();
    let template_names: Vec<String> = selected.iter().map(|a| a.name.clone()).collect();
    let inputs_json =
        serde_json::to_value(&p.inputs).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    runs::insert(
        &mut *tx,
        &runs::NewRun {
            id: run_id,
            repo_id: repo.id,
            git_ref: &git_ref,
            commit_sha: p.commit.as_deref(),
            trigger: p.trigger.as_str(),
            templates: &template_names,
            inputs: &inputs_json,
            rerun_of: p.rerun_of,
        },
    )
    .await?;
    if let Some(d) = &p.delivery {
        // Waits for a concurrent transaction holding the same delivery, then sees it.
        if !deliveries::insert(&mut *tx, &d.provider, &d.id, repo.id, run_id).await? {
            tx.rollback().await?;
            let run_id = deliveries::run_of(&state.pool, &d.provider, &d.id)
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict(
                        "duplicate_delivery",
                        format!("delivery {} was already received", d.id),
                    )
                })?;
            return Ok(Triggered {
                run_id,
                duplicate: true,
            });
        }
    }
    events::append(
        &mut tx,
        run_id,
        &NewEvent {
            event_type: "run.created",
            actor: &p.actor,
            reason: Some(&format!(
                "{} trigger of {} at {git_ref}",
                p.trigger, repo.name
            )),
            ..Default::default()
        },
    )
    .await?;
    for (position, (pj, deps)) in planned.iter().zip(&deps).enumerate() {
        let job_id = Uuid::now_v7();
        let spec = serde_json::to_value(&pj.job).map_err(|e| ApiError::Internal(e.to_string()))?;
        let depends_on: Vec<i32> = deps.iter().map(|&d| d as i32).collect();
        jobs::insert(
            &mut *tx,
            &jobs::NewJob {
                id: job_id,
                run_id,
                position: position as i32,
                stage: pj.stage as i32,
                template: &pj.template,
                template_version: pj.template_version,
                name: &format!("{}/{}", pj.template, pj.job.name),
                spec: &spec,
                depends_on: &depends_on,
            },
        )
        .await?;
        events::append(
            &mut tx,
            run_id,
            &NewEvent {
                event_type: "job.queued",
                job_id: Some(job_id),
                actor: &p.actor,
                ..Default::default()
            },
        )
        .await?;
    }
    let advanced = advance(&mut tx, run_id, &p.actor).await?;
    tx.commit().await?;
    state.metrics.inc(
        "gitweave_runs_triggered_total",
        &format!("trigger=\"{}\"", p.trigger),
    );
    if advanced.released {
        state.wake_runners();
    }
    tracing::info!(run.id = %run_id, repo = %repo.name, jobs = planned.len(), "run created");
    Ok(Triggered {
        run_id,
        duplicate: false,
    })
}

/// The subset of an expanded job the planner needs (parsed from the stored spec).
#[derive(serde::Deserialize)]
struct PlanFields {
    #[serde(default)]
    allow_failure: bool,
    #[serde(default)]
    when: Option<When>,
}

/// What [`advance`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Advanced {
    /// Some job was offered to runners.
    pub released: bool,
    /// The run's status now.
    pub run_status: Option<RunStatus>,
}

fn state_of(j: &jobs::JobRow) -> Result<JobState, ApiError> {
    let status: JobStatus = j
        .status
        .parse()
        .map_err(|_| ApiError::Internal(format!("job {} has unknown status {}", j.id, j.status)))?;
    Ok(match status {
        JobStatus::Queued if j.runnable_at.is_some() => JobState::Released,
        JobStatus::Queued => JobState::Pending,
        JobStatus::Running => JobState::Running,
        JobStatus::Manual => JobState::Manual,
        JobStatus::Success => JobState::Success,
        JobStatus::Failed => JobState::Failed,
        JobStatus::Canceled => JobState::Canceled,
        JobStatus::Skipped => JobState::Skipped,
    })
}

/// Re-plans a run under its row lock: releases, skips, and moves the run's status, each with
/// its event. Call inside the transaction that changed a job.
pub async fn advance(
    conn: &mut PgConnection,
    run_id: Uuid,
    actor: &str,
) -> Result<Advanced, ApiError> {
    let Some(current) = runs::lock(&mut *conn, run_id).await? else {
        return Err(ApiError::not_found("run", run_id));
    };
    let current: RunStatus = current
        .parse()
        .map_err(|_| ApiError::Internal(format!("run {run_id} has unknown status {current}")))?;
    if current.is_terminal() {
        return Ok(Advanced {
            released: false,
            run_status: Some(current),
        });
    }
    let rows = jobs::of_run(&mut *conn, run_id).await?;
    if runs::cancel_requested(&mut *conn, run_id).await? {
        return settle_cancel(conn, run_id, current, &rows, actor).await;
    }
    let nodes: Vec<Node> = rows
        .iter()
        .map(|j| {
            let fields: PlanFields = serde_json::from_value(j.spec.clone())
                .map_err(|e| ApiError::Internal(format!("job {} spec does not load: {e}", j.id)))?;
            Ok(Node {
                state: state_of(j)?,
                depends_on: j.depends_on.iter().map(|&d| d as usize).collect(),
                allow_failure: fields.allow_failure,
                when: fields.when.unwrap_or(When::OnSuccess),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let step = plan::advance(&nodes);
    let mut released = false;
    for action in &step.actions {
        match *action {
            Action::Release(i) => {
                jobs::release(&mut *conn, rows[i].id, 0).await?;
                released = true;
            }
            Action::AwaitApproval(i) => {
                jobs::set_status(&mut *conn, rows[i].id, JobStatus::Manual.as_str(), false).await?;
                events::append(
                    conn,
                    run_id,
                    &NewEvent {
                        event_type: "job.manual",
                        job_id: Some(rows[i].id),
                        actor,
                        reason: Some("waiting for approval (when: manual)"),
                        ..Default::default()
                    },
                )
                .await?;
            }
            Action::Skip(i) => {
                jobs::set_status(&mut *conn, rows[i].id, JobStatus::Skipped.as_str(), true).await?;
                let blocker = rows[i]
                    .depends_on
                    .iter()
                    .filter_map(|&d| rows.get(d as usize))
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                events::append(
                    conn,
                    run_id,
                    &NewEvent {
                        event_type: "job.skipped",
                        job_id: Some(rows[i].id),
                        actor,
                        reason: Some(&format!("upstream did not succeed ({blocker})")),
                        ..Default::default()
                    },
                )
                .await?;
            }
        }
    }
    if step.run_status != current {
        set_run_status(conn, run_id, current, step.run_status, actor, None).await?;
    }
    Ok(Advanced {
        released,
        run_status: Some(step.run_status),
    })
}

/// Moves a run's status with its events (`run.state_changed`, and `run.completed` at the end).
pub async fn set_run_status(
    conn: &mut PgConnection,
    run_id: Uuid,
    from: RunStatus,
    to: RunStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    runs::set_status(&mut *conn, run_id, to.as_str(), to.is_terminal()).await?;
    events::append(
        conn,
        run_id,
        &NewEvent {
            event_type: "run.state_changed",
            actor,
            reason,
            data: Some(serde_json::json!({ "from": from.as_str(), "to": to.as_str() })),
            ..Default::default()
        },
    )
    .await?;
    if to.is_terminal() {
        events::append(
            conn,
            run_id,
            &NewEvent {
                event_type: "run.completed",
                actor,
                reason: Some(to.as_str()),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// Claims one job for a runner, or `None` when nothing is runnable right now.
pub async fn claim(
    state: &AppState,
    runner: &RunnerIdentity,
) -> Result<Option<Assignment>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let Some(c) = jobs::claim(&mut *tx, runner.id, state.config.lease_ms as i64).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let actor = runner.actor();
    events::append(
        &mut tx,
        c.run_id,
        &NewEvent {
            event_type: "job.started",
            job_id: Some(c.id),
            actor: &actor,
            attempt: Some(c.attempt),
            ..Default::default()
        },
    )
    .await?;
    if c.run_status == RunStatus::Queued.as_str() {
        set_run_status(
            &mut tx,
            c.run_id,
            RunStatus::Queued,
            RunStatus::Running,
            &actor,
            None,
        )
        .await?;
    }
    let run = runs::get(&mut *tx, c.run_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("run {} of a claimed job vanished", c.run_id)))?;
    let clone_url = repos::get(&mut *tx, &run.repo)
        .await?
        .and_then(|r| r.clone_url);
    tx.commit().await?;
    state.run_changed(c.run_id);
    // The claim skipped rows locked by others; another waiter may find one of those.
    state.jobs_ready.notify_one();

    let job: ExpandedJob = serde_json::from_value(c.spec)
        .map_err(|e| ApiError::Internal(format!("job {} spec does not load: {e}", c.id)))?;
    let mut env = job.env.clone();
    let predefined = [
        ("CI", "true".to_owned()),
        ("GITWEAVE", "true".to_owned()),
        ("GITWEAVE_REPO", run.repo.clone()),
        ("GITWEAVE_RUN_ID", run.id.to_string()),
        ("GITWEAVE_JOB_ID", c.id.to_string()),
        ("GITWEAVE_JOB_NAME", c.name.clone()),
        ("GITWEAVE_REF", run.git_ref.clone()),
        (
            "GITWEAVE_COMMIT_SHA",
            run.commit_sha.clone().unwrap_or_default(),
        ),
        ("GITWEAVE_WORKSPACE", "/workspace".to_owned()),
        ("GITWEAVE_JOB_ATTEMPT", c.attempt.to_string()),
    ];
    // Predefined variables win over the template's, so a job can trust them.
    for (k, v) in predefined {
        env.insert(k.to_owned(), v);
    }
    state.metrics.inc("gitweave_jobs_started_total", "");
    tracing::info!(job.id = %c.id, run.id = %c.run_id, attempt = c.attempt, runner.name = %runner.name, "job claimed");
    Ok(Some(Assignment {
        job_id: c.id,
        run_id: c.run_id,
        attempt: c.attempt,
        repo: run.repo,
        name: c.name,
        image: job.image,
        script: job.script,
        env,
        timeout_secs: job.timeout.as_secs(),
        workspace: c.run_id.to_string(),
        checkout: clone_url
            .zip(run.commit_sha.clone())
            .map(|(clone_url, commit)| Checkout {
                clone_url,
                commit,
                git_ref: run.git_ref.clone(),
            }),
    }))
}

/// Refuses a write from a runner that no longer holds the attempt.
pub fn stale(job_id: Uuid, attempt: i32) -> ApiError {
    ApiError::Conflict(
        "stale_attempt",
        format!(
            "attempt {attempt} of job {job_id} is not held by this runner (canceled, timed out or reassigned)"
        ),
    )
}

/// Exponential backoff with ±10% jitter: base·2^(attempt−1), at most 60 s.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt.clamp(1, 16) - 1) as u32);
    let capped = exp.min(Duration::from_secs(60));
    let jitter = rand::rng().random_range(0.9..=1.1);
    capped.mul_f64(jitter)
}

/// Records the end of an attempt reported by the runner holding it.
pub async fn finish(
    state: &AppState,
    runner: &RunnerIdentity,
    job_id: Uuid,
    attempt: i32,
    req: &FinishRequest,
) -> Result<AttemptState, ApiError> {
    let job = jobs::get(&state.pool, job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", job_id))?;
    let mut tx = state.pool.begin().await?;
    runs::lock(&mut *tx, job.run_id).await?;
    let held = jobs::holding(&mut *tx, job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", job_id))?;
    if !held.is_held_by(runner.id, attempt) {
        return Err(stale(job_id, attempt));
    }
    if held.log_end != req.log_end {
        return Err(ApiError::Conflict(
            "log_incomplete",
            format!(
                "the stored log of job {job_id} ends at byte {} but the runner sent {}; send the rest first",
                held.log_end, req.log_end
            ),
        ));
    }
    let ended = end_attempt(
        &mut tx,
        state,
        EndAttempt {
            job_id,
            run_id: job.run_id,
            attempt,
            class: req.error_class,
            exit_code: req.exit_code,
            reason: req.reason.clone(),
            actor: runner.actor(),
        },
    )
    .await?;
    tx.commit().await?;
    ended.after_commit(state, job_id, job.run_id);
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
    /// Job.
    pub job_id: Uuid,
    /// Its run (locked by the caller).
    pub run_id: Uuid,
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
}

/// What [`end_attempt`] did; apply [`Ended::after_commit`] once committed.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// The job's status now (`queued` when retried).
    pub status: JobStatus,
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
            &format!("status=\"{}\"", self.status.as_str()),
        );
        if self.advanced.released {
            state.wake_runners();
        }
        if let Some(delay) = self.retry_after {
            // The retry becomes claimable after its backoff: wake the runners then.
            let wake = state.jobs_ready.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay + Duration::from_millis(5)).await;
                wake.notify_waiters();
            });
        }
    }
}

/// Records the end of an attempt with its event, retries it when its policy allows (never
/// under a cancel), and re-plans the run. The caller holds the run's lock.
pub async fn end_attempt(
    conn: &mut PgConnection,
    state: &AppState,
    e: EndAttempt,
) -> Result<Ended, ApiError> {
    let job = jobs::get(&mut *conn, e.job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", e.job_id))?;
    let spec: ExpandedJob = serde_json::from_value(job.spec.clone())
        .map_err(|err| ApiError::Internal(format!("job {} spec does not load: {err}", e.job_id)))?;
    let canceling = runs::cancel_requested(&mut *conn, e.run_id).await?;
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
    jobs::finish(
        &mut *conn,
        e.job_id,
        &jobs::Outcome {
            status: status.as_str(),
            exit_code: e.exit_code,
            error_class: e.class.map(ErrorClass::as_str),
            reason: reason.as_deref(),
        },
    )
    .await?;
    let event_type = match status {
        JobStatus::Success => "job.succeeded",
        JobStatus::Canceled => "job.canceled",
        _ => "job.failed",
    };
    events::append(
        conn,
        e.run_id,
        &NewEvent {
            event_type,
            job_id: Some(e.job_id),
            actor: &e.actor,
            attempt: Some(e.attempt),
            error_class: e.class.map(ErrorClass::as_str),
            reason: reason.as_deref(),
            data: e.exit_code.map(|c| serde_json::json!({ "exit_code": c })),
        },
    )
    .await?;
    let retry = status == JobStatus::Failed
        && !canceling
        && e.class.is_some_and(|c| {
            spec.retry.allows(
                c,
                e.exit_code.map(i64::from),
                u32::try_from(e.attempt).unwrap_or(u32::MAX),
            )
        });
    let retry_after = retry.then(|| retry_delay(state.config.retry_base(), e.attempt));
    if let Some(delay) = retry_after {
        jobs::requeue(&mut *conn, e.job_id, delay.as_millis() as i64).await?;
        events::append(
            conn,
            e.run_id,
            &NewEvent {
                event_type: "job.retried",
                job_id: Some(e.job_id),
                actor: ACTOR,
                attempt: Some(e.attempt + 1),
                error_class: e.class.map(ErrorClass::as_str),
                reason: Some(&format!(
                    "attempt {} of {} in {} ms",
                    e.attempt + 1,
                    spec.retry.max + 1,
                    delay.as_millis()
                )),
                ..Default::default()
            },
        )
        .await?;
    }
    if status == JobStatus::Failed && !retry && !spec.allow_failure {
        // A hard gate: fail-closed skips everything downstream of this job.
        events::append(
            conn,
            e.run_id,
            &NewEvent {
                event_type: "gate.failed",
                job_id: Some(e.job_id),
                actor: ACTOR,
                attempt: Some(e.attempt),
                error_class: e.class.map(ErrorClass::as_str),
                reason: Some(&format!(
                    "{} failed; every job that depends on it is skipped",
                    job.name
                )),
                ..Default::default()
            },
        )
        .await?;
    }
    let advanced = advance(conn, e.run_id, ACTOR).await?;
    Ok(Ended {
        status: if retry { JobStatus::Queued } else { status },
        retry_after,
        advanced,
    })
}

/// Under a cancel: cancels every job that has not started, and ends the run `canceled` once no
/// job is running any more (running ones were told through their heartbeat).
async fn settle_cancel(
    conn: &mut PgConnection,
    run_id: Uuid,
    current: RunStatus,
    rows: &[jobs::JobRow],
    actor: &str,
) -> Result<Advanced, ApiError> {
    let mut running = false;
    for j in rows {
        match state_of(j)? {
            JobState::Pending | JobState::Released | JobState::Manual => {
                jobs::set_status(&mut *conn, j.id, JobStatus::Canceled.as_str(), true).await?;
                events::append(
                    conn,
                    run_id,
                    &NewEvent {
                        event_type: "job.canceled",
                        job_id: Some(j.id),
                        actor,
                        reason: Some("the run was canceled before the job started"),
                        ..Default::default()
                    },
                )
                .await?;
            }
            JobState::Running => running = true,
            _ => {}
        }
    }
    if !running {
        set_run_status(
            conn,
            run_id,
            current,
            RunStatus::Canceled,
            actor,
            Some("canceled"),
        )
        .await?;
        return Ok(Advanced {
            released: false,
            run_status: Some(RunStatus::Canceled),
        });
    }
    Ok(Advanced {
        released: false,
        run_status: Some(current),
    })
}

/// Cancels a run: jobs not started are canceled now, running ones are told to stop.
pub async fn cancel(state: &AppState, run_id: Uuid, actor: &str) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let Some(status) = runs::lock(&mut *tx, run_id).await? else {
        return Err(ApiError::not_found("run", run_id));
    };
    let status: RunStatus = status
        .parse()
        .map_err(|_| ApiError::Internal(format!("run {run_id} has unknown status {status}")))?;
    if status.is_terminal() {
        return Err(ApiError::Conflict(
            "run_ended",
            format!("run {run_id} already ended ({status}); nothing to cancel"),
        ));
    }
    runs::request_cancel(&mut *tx, run_id).await?;
    for j in jobs::of_run(&mut *tx, run_id).await? {
        if j.status == JobStatus::Running.as_str() {
            jobs::request_cancel(&mut *tx, j.id).await?;
        }
    }
    advance(&mut tx, run_id, actor).await?;
    tx.commit().await?;
    state.run_changed(run_id);
    tracing::info!(run.id = %run_id, "run cancel requested");
    Ok(())
}

/// Approves a `manual` job, recording who and why.
pub async fn approve(
    state: &AppState,
    job_id: Uuid,
    reason: Option<&str>,
    actor: &str,
) -> Result<Uuid, ApiError> {
    let job = jobs::get(&state.pool, job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", job_id))?;
    let mut tx = state.pool.begin().await?;
    runs::lock(&mut *tx, job.run_id).await?;
    if !jobs::approve(&mut *tx, job_id).await? {
        return Err(ApiError::Conflict(
            "not_manual",
            format!("job {job_id} is {}, not waiting for approval", job.status),
        ));
    }
    events::append(
        &mut tx,
        job.run_id,
        &NewEvent {
            event_type: "job.manual_approved",
            job_id: Some(job_id),
            actor,
            reason: Some(reason.unwrap_or("approved")),
            ..Default::default()
        },
    )
    .await?;
    advance(&mut tx, job.run_id, actor).await?;
    tx.commit().await?;
    state.run_changed(job.run_id);
    state.wake_runners();
    Ok(job.run_id)
}

/// A new run of the same repo, ref, commit, templates and inputs (the templates' current
/// versions).
pub async fn rerun(state: &AppState, run_id: Uuid, actor: &str) -> Result<Uuid, ApiError> {
    let run = runs::get(&state.pool, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", run_id))?;
    let inputs: BTreeMap<String, serde_json::Value> = serde_json::from_value(run.inputs.clone())
        .map_err(|e| {
            ApiError::Internal(format!("stored inputs of run {run_id} do not load: {e}"))
        })?;
    let triggered = trigger(
        state,
        TriggerParams {
            repo: run.repo,
            git_ref: Some(run.git_ref),
            commit: run.commit_sha,
            templates: Some(run.templates),
            inputs,
            trigger: Trigger::Rerun,
            rerun_of: Some(run_id),
            actor: actor.to_owned(),
            delivery: None,
        },
    )
    .await?;
    Ok(triggered.run_id)
}

/// Fails (or retries) the attempts whose runner stopped renewing their lease, with a
/// `runner.lost` event. Returns how many were taken back.
pub async fn reap_expired(state: &AppState) -> Result<usize, ApiError> {
    let expired = jobs::expired(&state.pool, 100).await?;
    let mut reaped = 0;
    for e in expired {
        let mut tx = state.pool.begin().await?;
        runs::lock(&mut *tx, e.run_id).await?;
        // Re-check under the lock: the runner may have finished in the meantime.
        let Some(held) = jobs::holding(&mut *tx, e.id).await? else {
            continue;
        };
        if held.status != JobStatus::Running.as_str() || held.attempt != e.attempt {
            continue;
        }
        let still_expired = jobs::expired(&mut *tx, 1_000)
            .await?
            .iter()
            .any(|x| x.id == e.id);
        if !still_expired {
            continue;
        }
        let runner = e.runner_name.as_deref().unwrap_or("unknown");
        let reason = format!(
            "runner {runner} stopped renewing the lease of attempt {}",
            e.attempt
        );
        events::append(
            &mut tx,
            e.run_id,
            &NewEvent {
                event_type: "runner.lost",
                job_id: Some(e.id),
                actor: ACTOR,
                attempt: Some(e.attempt),
                error_class: Some(ErrorClass::RunnerFailure.as_str()),
                reason: Some(&reason),
                ..Default::default()
            },
        )
        .await?;
        let outcome = end_attempt(
            &mut tx,
            state,
            EndAttempt {
                job_id: e.id,
                run_id: e.run_id,
                attempt: e.attempt,
                class: Some(ErrorClass::RunnerFailure),
                exit_code: None,
                reason: Some(reason.clone()),
                actor: ACTOR.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        outcome.after_commit(state, e.id, e.run_id);
        tracing::warn!(job.id = %e.id, attempt = e.attempt, runner.name = runner, "runner lost; attempt taken back");
        reaped += 1;
    }
    Ok(reaped)
}
