//! Pipeline decisions with side effects: turning a trigger into a run, handing jobs to runners,
//! recording their ends, and re-planning a run. Every state change and its event are written
//! in one transaction; runners are woken after the commit.

use crate::auth::RunnerIdentity;
use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::runner::{Assignment, AttemptState, Checkout, FinishRequest, HandBackRequest};
use gitweave_model::expand::ExpandedJob;
use gitweave_model::plan::{self, Action, JobState, Node};
use gitweave_model::status::{ErrorClass, EventType, JobStatus, RunStatus, Trigger};
use gitweave_model::template::When;
use gitweave_storage::events::{self, NewEvent};
use gitweave_storage::{jobs, runs};
use rand::Rng;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

mod attempts;
mod control;
mod planning;
mod reaper;
mod run_tx;
mod trigger;

pub use attempts::{EndAttempt, Ended, claim, end_attempt, finish, hand_back, retry_delay, stale};
pub use control::{approve, cancel, rerun};
pub use planning::{Advanced, advance, advance_locked, set_run_status};
pub use reaper::reap_expired;
pub use run_tx::RunTx;
pub use trigger::{CreatedRun, Delivery, TriggerParams, Triggered, input_strings, trigger};

/// A run's stored status, which only this crate writes.
fn run_status(run_id: Uuid, stored: &str) -> Result<RunStatus, ApiError> {
    stored
        .parse()
        .map_err(|_| ApiError::Internal(format!("run {run_id} has unknown status {stored}")))
}

/// The actor of changes pipeline-svc makes by itself.
pub const ACTOR: &str = "pipeline-svc";
