//! Retention (`PIPELINE_RETENTION_DAYS`, SPEC §15): ended runs older than the period are
//! deleted with everything of theirs, in small batches that never stall writers.
//!
//! Each batch is one short statement ([`gitweave_storage::retention::delete_ended_before`]):
//! at most [`BATCH`] runs, oldest first, skipping rows another transaction holds. Batches are
//! separated by [`PAUSE`], so the pass yields to the service's own traffic. Only runs with a
//! terminal status and an `ended_at` are candidates: an active run is never deleted. The
//! settled-answer cache stops serving anything that old by itself ([`crate::settled`]).

use crate::state::AppState;
use std::time::Duration;
use time::OffsetDateTime;

/// Runs deleted per statement (one short transaction).
pub const BATCH: i64 = 100;

/// The pause between two batches of one pass.
pub const PAUSE: Duration = Duration::from_millis(200);

/// The first pass runs this long after start at the latest (sooner when the interval is
/// shorter).
pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(30);

/// The counter of runs deleted.
pub const DELETED_METRIC: &str = "gitweave_retention_deleted_runs_total";

/// One pass: deletes every run that ended longer ago than the retention period, a batch at
/// a time. Returns how many it deleted (0 when retention is off).
pub async fn pass(state: &AppState) -> Result<usize, sqlx::Error> {
    let Some(retention) = state.config.retention() else {
        return Ok(0);
    };
    let cutoff = OffsetDateTime::now_utc() - retention;
    let mut deleted = 0;
    loop {
        let gone =
            gitweave_storage::retention::delete_ended_before(&state.pool, cutoff, BATCH).await?;
        // This instance's cache forgets them at once; other instances' stop serving them by
        // their age.
        state.settled.forget(&gone.runs, &gone.jobs);
        deleted += gone.runs.len();
        state
            .metrics
            .inc_by(DELETED_METRIC, "", gone.runs.len() as u64);
        if (gone.runs.len() as i64) < BATCH {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    if deleted > 0 {
        tracing::info!(runs = deleted, %cutoff, "retention deleted ended runs");
    }
    Ok(deleted)
}

/// Runs [`pass`] soon after start, then every `retention_interval_s`; returns at once when
/// retention is off.
pub async fn run_forever(state: AppState) {
    if state.config.retention_days.is_none() {
        return;
    }
    let interval = Duration::from_secs(state.config.retention_interval_s.max(1));
    tokio::time::sleep(interval.min(FIRST_PASS_AFTER)).await;
    loop {
        if let Err(e) = pass(&state).await {
            tracing::warn!(error = %e, "retention pass failed; trying again at the next one");
        }
        tokio::time::sleep(interval).await;
    }
}
