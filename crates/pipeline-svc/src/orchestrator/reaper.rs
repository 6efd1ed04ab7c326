//! Taking back the attempts of runners that stopped renewing their lease.

use super::{ACTOR, EndAttempt, EndOutcome, RunTx, end_attempt};
use crate::error::ApiError;
use crate::state::AppState;
use gitweave_model::status::{ErrorClass, EventType, JobStatus};
use gitweave_storage::events::NewEvent;
use gitweave_storage::{jobs, runners, runs};

/// Fails (or retries) the attempts whose runner stopped renewing their lease, with a
/// `runner.lost` event. Returns how many were taken back.
pub async fn reap_expired(state: &AppState) -> Result<usize, ApiError> {
    let expired = jobs::expired(&state.pool, 100).await?;
    let mut reaped = 0;
    for e in expired {
        let mut tx = RunTx::begin(state, e.run_id).await?;
        let Some(locked) = runs::lock_state(&mut *tx, e.run_id).await? else {
            continue;
        };
        // The runner's row before the job's, as a registration that takes the name over
        // locks them (runner, then its jobs): no lock cycle. Undone with the rest when the
        // attempt turns out not to be lost after all.
        if let Some(id) = e.runner_id {
            runners::mark_lost(&mut *tx, id).await?;
        }
        // Re-check under the lock: the runner may have finished in the meantime.
        let Some(held) = jobs::holding(&mut *tx, e.id).await? else {
            continue;
        };
        if held.status != JobStatus::Running || held.attempt != e.attempt {
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
        tx.record(NewEvent {
            job_id: Some(e.id),
            attempt: Some(e.attempt),
            error_class: Some(ErrorClass::RunnerFailure),
            reason: Some(reason.clone()),
            ..NewEvent::new(EventType::RunnerLost, ACTOR)
        });
        let outcome = end_attempt(
            &mut tx,
            state,
            &locked,
            EndAttempt {
                job_id: e.id,
                attempt: e.attempt,
                class: Some(ErrorClass::RunnerFailure),
                exit_code: None,
                reason: Some(reason.clone()),
                actor: ACTOR.to_owned(),
                guard: None,
                log_truncated: false,
            },
        )
        .await?;
        // Unguarded: the reaper's end is always recorded.
        let EndOutcome::Recorded(outcome) = outcome else {
            continue;
        };
        tx.commit().await?;
        if let Some(id) = e.runner_id {
            state.runner_lost(id);
        }
        outcome.after_commit(state, e.id, e.run_id);
        tracing::warn!(job.id = %e.id, attempt = e.attempt, runner.name = runner, "runner lost; attempt taken back");
        reaped += 1;
    }
    Ok(reaped)
}
