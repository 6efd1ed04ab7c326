//! The artifact and cache sweeper (SPEC §11): expired artifacts and evicted cache entries
//! leave the object store, in small batches, so a pass never holds many rows or a long
//! transaction.
//!
//! A pass marks expired artifacts swept (their rows stay, so a download says `410`), evicts
//! each repo's least recently used cache entries past `PIPELINE_CACHE_MAX_BYTES`, then
//! deletes the objects nothing names any more — only those not written or named within
//! `PIPELINE_OBJECT_GRACE_S`, so an upload that is about to name an object never loses it — first
//! from the database, then from the store, and last the temporaries a crashed write left.

use crate::state::AppState;
use gitweave_storage::artifacts;
use std::time::Duration;

/// Rows one statement handles.
const BATCH: i64 = 500;
/// How long after start the first pass runs, at most.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(30);
/// Counter of objects deleted from the store.
pub const DELETED_METRIC: &str = "gitweave_objects_deleted_total";

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Artifacts marked expired.
    pub expired: u64,
    /// Cache entries evicted.
    pub evicted: u64,
    /// Objects deleted from the store.
    pub objects: u64,
}

/// One pass; objects nothing names are kept for `grace` after they were last touched.
pub async fn pass(state: &AppState, grace: Duration) -> Result<Swept, anyhow::Error> {
    let mut done = Swept::default();
    loop {
        let n = artifacts::sweep_expired(&state.pool, BATCH).await?;
        done.expired += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let max = i64::try_from(state.config.cache_max_bytes).unwrap_or(i64::MAX);
    loop {
        let n = artifacts::evict_over(&state.pool, max, BATCH).await?;
        done.evicted += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let gone = artifacts::delete_orphans(&state.pool, grace.as_secs() as i64, BATCH).await?;
        for sha256 in &gone {
            // The row is gone first: a failed delete leaves a stray object, never a row
            // naming nothing.
            if let Err(e) = state.objects.delete(sha256).await {
                tracing::warn!(sha256, error = %e, "deleting an object from the store failed; it stays as a stray");
                continue;
            }
            done.objects += 1;
            state.metrics.inc(DELETED_METRIC, "");
        }
        if gone.len() < BATCH as usize {
            break;
        }
    }
    if let Err(e) = state.objects.sweep_temporaries(grace).await {
        tracing::warn!(error = %e, "removing the store's stale temporaries failed");
    }
    if done != Swept::default() {
        tracing::info!(
            expired = done.expired,
            evicted = done.evicted,
            objects = done.objects,
            "swept artifacts and cache"
        );
    }
    Ok(done)
}

/// Runs [`pass`] soon after start, then every `PIPELINE_SWEEP_INTERVAL_S`.
pub async fn run_forever(state: AppState) {
    let interval = Duration::from_secs(state.config.sweep_interval_s.max(1));
    tokio::time::sleep(interval.min(FIRST_PASS_AFTER)).await;
    loop {
        let grace = Duration::from_secs(state.config.object_grace_s);
        if let Err(e) = pass(&state, grace).await {
            tracing::warn!(error = %e, "artifact sweep failed; trying again at the next one");
        }
        tokio::time::sleep(interval).await;
    }
}
