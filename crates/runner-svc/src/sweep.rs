//! The workspace sweep: workspaces never outlive their runs.
//!
//! The runner removes a run's workspace when a finish it reports says the run has ended. That
//! misses runs that end without a finish from this runner: canceled while blocked on a manual
//! job, ended by a job on another runner, or taken back as lost after this runner crashed.
//! So at start and every `RUNNER_WORKSPACE_SWEEP_INTERVAL`, the runner lists the workspaces it
//! holds ([`Engine::workspaces`]), asks pipeline-svc which of their runs are still active
//! (`POST /internal/v1/runners/active-runs`) and removes the others. A workspace whose name
//! is not a run id is not GitWeave's to judge and is kept.

use crate::client::{ClientError, PipelineClient};
use gitweave_api::runner::MAX_ACTIVE_RUNS_QUERY;
use gitweave_engine::{Engine, EngineError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The engine could not list or remove.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// pipeline-svc did not say which runs are active (nothing is removed then).
    #[error("asking pipeline-svc which runs are active: {0}")]
    Client(#[from] ClientError),
}

/// One sweep: removes every workspace of this runner whose run is not active. Returns how
/// many it removed.
pub async fn sweep(engine: &dyn Engine, client: &PipelineClient) -> Result<usize, SweepError> {
    let held: Vec<Uuid> = engine
        .workspaces()
        .await?
        .iter()
        .filter_map(|w| Uuid::parse_str(w).ok())
        .collect();
    let mut removed = 0;
    for batch in held.chunks(MAX_ACTIVE_RUNS_QUERY) {
        let active = client.active_runs(batch).await?;
        for run in batch.iter().filter(|r| !active.contains(r)) {
            engine.remove_workspace(&run.to_string()).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Sweeps every `interval` until `stop` is cancelled; a failed sweep is logged and tried again
/// at the next one.
pub async fn run_forever(
    engine: Arc<dyn Engine>,
    client: PipelineClient,
    interval: Duration,
    stop: CancellationToken,
) {
    let interval = interval.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        log_outcome(sweep(engine.as_ref(), &client).await);
    }
}

/// Logs a sweep's result once, here.
pub fn log_outcome(outcome: Result<usize, SweepError>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed workspaces of runs that have ended"),
        Err(e) => tracing::warn!(error = %e, "workspace sweep failed; trying again later"),
    }
}
