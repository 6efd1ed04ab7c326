//! Re-planning a run under its row lock: applying `gitweave_model::plan`, moving the run's
//! status, and settling a cancel.

use super::RunTx;
use crate::error::ApiError;
use gitweave_model::labels::Labels;
use gitweave_model::plan::{self, Action, JobState, Node};
use gitweave_model::status::{EventType, JobStatus, RunStatus};
use gitweave_model::template::When;
use gitweave_storage::events::NewEvent;
use gitweave_storage::{jobs, runs};
use uuid::Uuid;

/// What [`advance`] did.
#[derive(Debug, Clone, Default)]
pub struct Advanced {
    /// The requirements of each job offered to runners (whom to wake).
    pub released: Vec<Labels>,
    /// The run's status now.
    pub run_status: Option<RunStatus>,
}

fn state_of(j: &jobs::PlanRow) -> JobState {
    match j.status {
        JobStatus::Queued if j.released => JobState::Released,
        JobStatus::Queued => JobState::Pending,
        JobStatus::Running => JobState::Running,
        JobStatus::Manual => JobState::Manual,
        JobStatus::Success => JobState::Success,
        JobStatus::Failed => JobState::Failed,
        JobStatus::Canceled => JobState::Canceled,
        JobStatus::Skipped => JobState::Skipped,
    }
}

/// Re-plans a run under its row lock: releases, skips, and moves the run's status, each with
/// its event. Call inside the transaction that changed a job.
pub async fn advance(tx: &mut RunTx, actor: &str) -> Result<Advanced, ApiError> {
    let run_id = tx.run_id();
    let Some(current) = runs::lock(&mut **tx, run_id).await? else {
        return Err(ApiError::not_found("run", run_id));
    };
    advance_locked(tx, current, actor, None).await
}

/// [`advance`] for a caller that already holds the run's lock and read its status (which only
/// this transaction can have changed since). `changed`: the one job whose state this
/// transaction changed since the plan was last a fixpoint, when there is exactly one (a job's
/// end), so the planner may tell from it alone that nothing is to be released
/// (`plan::unmoved_by`).
pub async fn advance_locked(
    tx: &mut RunTx,
    current: RunStatus,
    actor: &str,
    changed: Option<Uuid>,
) -> Result<Advanced, ApiError> {
    let run_id = tx.run_id();
    if current.is_terminal() {
        return Ok(Advanced {
            released: Vec::new(),
            run_status: Some(current),
        });
    }
    // The events recorded so far are written with the summary (one round trip less under
    // the run's lock); the summary's own are written at the commit.
    let events = tx.take_events();
    let summary = jobs::plan_summary(&mut **tx, run_id, changed, &events)
        .await?
        .ok_or_else(|| ApiError::not_found("run", run_id))?;
    if !summary.cancel_requested {
        let kinds = plan::Summary {
            pending: summary.pending_ready,
            active: summary.active,
            started: summary.started,
        };
        if let Some(status) = plan::shortcut(&kinds) {
            if status != current {
                set_run_status(tx, current, status, actor, None).await?;
            }
            return Ok(Advanced {
                released: Vec::new(),
                run_status: Some(status),
            });
        }
    }
    let rows = jobs::plan_rows(&mut **tx, run_id).await?;
    if summary.cancel_requested {
        return settle_cancel(tx, current, &rows, actor).await;
    }
    let nodes: Vec<Node> =
        rows.iter()
            .map(|j| {
                Ok(Node {
                    state: state_of(j),
                    depends_on: j.depends_on.iter().map(|&d| d as usize).collect(),
                    allow_failure: j.allow_failure,
                    when: j.run_when.parse::<When>().map_err(|e| {
                        ApiError::Internal(format!("job {} does not load: {e}", j.id))
                    })?,
                })
            })
            .collect::<Result<_, ApiError>>()?;
    let step = plan::advance(&nodes);
    // The states the planner decided on: a job skipped in this step may be why a later one is.
    let after = step.applied(&nodes);
    let mut released = Vec::new();
    for &action in &step.actions {
        let job = &rows[action.job()];
        match action {
            Action::Release(_) => released.push(job.id),
            Action::AwaitApproval(_) => {
                jobs::set_status(&mut **tx, job.id, JobStatus::Manual).await?;
            }
            Action::Skip(_) => {
                jobs::set_status(&mut **tx, job.id, JobStatus::Skipped).await?;
            }
        }
        let blockers = || {
            plan::blockers(&after, action.job())
                .into_iter()
                .filter_map(|d| rows.get(d))
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(event) = action_event(action, job.id, blockers, actor) {
            tx.record(event);
        }
    }
    // Released jobs have no event: they stay `queued` and become claimable.
    let released = jobs::release_all(&mut **tx, &released, 0).await?;
    if step.run_status != current {
        set_run_status(tx, current, step.run_status, actor, None).await?;
    }
    Ok(Advanced {
        released: released.iter().map(crate::wakeups::labels_of).collect(),
        run_status: Some(step.run_status),
    })
}

/// Moves a run's status with its events (`run.state_changed`, and `run.completed` at the end).
pub async fn set_run_status(
    tx: &mut RunTx,
    from: RunStatus,
    to: RunStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let run_id = tx.run_id();
    tx.record(run_status_event(from, to, actor, reason));
    if to.is_terminal() {
        tx.record(run_completed_event(to, actor));
    }
    // Written with the status, after the events recorded before them.
    let events = tx.take_events();
    runs::set_status(&mut **tx, run_id, to, &events).await?;
    Ok(())
}

/// `run.state_changed` from `from` to `to`.
pub(super) fn run_status_event(
    from: RunStatus,
    to: RunStatus,
    actor: &str,
    reason: Option<&str>,
) -> NewEvent {
    NewEvent {
        reason: reason.map(str::to_owned),
        data: Some(serde_json::json!({ "from": from.as_str(), "to": to.as_str() })),
        ..NewEvent::new(EventType::RunStateChanged, actor)
    }
}

/// `run.completed`, the last event of a run that ended `status`.
pub(super) fn run_completed_event(status: RunStatus, actor: &str) -> NewEvent {
    NewEvent {
        reason: Some(status.as_str().to_owned()),
        ..NewEvent::new(EventType::RunCompleted, actor)
    }
}

/// The event of a plan action on job `id` (a release has none: the job stays `queued` and
/// becomes claimable). `blockers` names the jobs a skipped job waited for.
pub(super) fn action_event(
    action: Action,
    id: Uuid,
    blockers: impl FnOnce() -> String,
    actor: &str,
) -> Option<NewEvent> {
    let (event_type, reason) = match action {
        Action::Release(_) => return None,
        Action::AwaitApproval(_) => (
            EventType::JobManual,
            "waiting for approval (when: manual)".into(),
        ),
        Action::Skip(_) => (
            EventType::JobSkipped,
            format!("upstream did not succeed ({})", blockers()),
        ),
    };
    Some(NewEvent {
        job_id: Some(id),
        reason: Some(reason),
        ..NewEvent::new(event_type, actor)
    })
}

/// Under a cancel: cancels every job that has not started, and ends the run `canceled` once no
/// job is running any more (running ones were told through their heartbeat).
async fn settle_cancel(
    tx: &mut RunTx,
    current: RunStatus,
    rows: &[jobs::PlanRow],
    actor: &str,
) -> Result<Advanced, ApiError> {
    let mut running = false;
    for j in rows {
        match state_of(j) {
            JobState::Pending | JobState::Released | JobState::Manual => {
                jobs::set_status(&mut **tx, j.id, JobStatus::Canceled).await?;
                tx.record(NewEvent {
                    job_id: Some(j.id),
                    reason: Some("the run was canceled before the job started".into()),
                    ..NewEvent::new(EventType::JobCanceled, actor)
                });
            }
            JobState::Running => running = true,
            _ => {}
        }
    }
    if !running {
        set_run_status(tx, current, RunStatus::Canceled, actor, Some("canceled")).await?;
        return Ok(Advanced {
            released: Vec::new(),
            run_status: Some(RunStatus::Canceled),
        });
    }
    Ok(Advanced {
        released: Vec::new(),
        run_status: Some(current),
    })
}
