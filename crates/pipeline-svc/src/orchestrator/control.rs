//! What people do to runs and jobs: cancel, approve, rerun.

use super::{RunTx, Triggered, advance};
use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_model::status::{EventType, JobStatus};
use gitweave_storage::events::NewEvent;
use gitweave_storage::{jobs, runs};
use uuid::Uuid;

/// Cancels a run: jobs not started are canceled now, running ones are told to stop.
pub async fn cancel(state: &AppState, run_id: Uuid, actor: &str) -> Result<(), ApiError> {
    let mut tx = RunTx::begin(state, run_id).await?;
    let Some(status) = runs::lock(&mut *tx, run_id).await? else {
        return Err(ApiError::not_found("run", run_id));
    };
    if status.is_terminal() {
        return Err(ApiError::Conflict(
            error_code::RUN_ENDED,
            format!("run {run_id} already ended ({status}); nothing to cancel"),
        ));
    }
    runs::request_cancel(&mut *tx, run_id).await?;
    for j in jobs::plan_rows(&mut *tx, run_id).await? {
        if j.status == JobStatus::Running {
            jobs::request_cancel(&mut *tx, j.id).await?;
        }
    }
    advance(&mut tx, actor).await?;
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
    let mut tx = RunTx::begin(state, job.run_id).await?;
    runs::lock(&mut *tx, job.run_id).await?;
    let Some(requires) = jobs::approve(&mut *tx, job_id).await? else {
        return Err(ApiError::Conflict(
            error_code::NOT_MANUAL,
            format!("job {job_id} is {}, not waiting for approval", job.status),
        ));
    };
    tx.record(NewEvent {
        job_id: Some(job_id),
        reason: Some(reason.unwrap_or("approved").to_owned()),
        ..NewEvent::new(EventType::JobManualApproved, actor)
    });
    let mut advanced = advance(&mut tx, actor).await?;
    tx.commit().await?;
    state.run_changed(job.run_id);
    // The approved job (made from a label map), and whatever the re-plan released.
    advanced.released.push(crate::wakeups::labels_of(&requires));
    state.wake_runners(&advanced.released);
    Ok(job.run_id)
}

/// A new run of the same repo, ref, commit and inputs that runs exactly what the run ran:
/// its jobs as they were expanded (from the pipeline file's blob, or the templates' versions
/// of then), not the current templates ([`super::trigger::rerun_exact`]).
pub async fn rerun(state: &AppState, run_id: Uuid, actor: &str) -> Result<Triggered, ApiError> {
    super::trigger::rerun_exact(state, run_id, actor).await
}
