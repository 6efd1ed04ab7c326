//! Taking back the attempts of runners that stopped renewing their lease.

use super::*;

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
        tx.record(NewEvent {
            event_type: "runner.lost",
            job_id: Some(e.id),
            actor: ACTOR.to_owned(),
            attempt: Some(e.attempt),
            error_class: Some(ErrorClass::RunnerFailure.as_str()),
            reason: Some(reason.clone()),
            ..Default::default()
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
        tx.commit().await?;
        outcome.after_commit(state, e.id, e.run_id);
        tracing::warn!(job.id = %e.id, attempt = e.attempt, runner.name = runner, "runner lost; attempt taken back");
        reaped += 1;
    }
    Ok(reaped)
}
