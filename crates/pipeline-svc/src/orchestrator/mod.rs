//! Pipeline decisions with side effects: turning a trigger into a run, handing jobs to runners,
//! recording their ends, and re-planning a run. Every state change and its event are written
//! in one transaction; runners are woken after the commit.
//!
//! Each submodule names what it uses; the imports below serve `trigger.rs`, which still
//! takes them with `use super::*`.

use crate::error::ApiError;
use crate::state::AppState;
use gitweave_model::expand::{self, ExpandedJob};
use gitweave_model::limits;
use gitweave_model::plan::{self, Action, JobState, Node, StageJob};
use gitweave_model::status::{EventType, JobStatus, RunStatus, Trigger};
use gitweave_model::template::Template;
use gitweave_storage::events::NewEvent;
use gitweave_storage::{deliveries, jobs, repos, runs, templates};
use std::collections::BTreeMap;
use uuid::Uuid;

mod attempts;
mod control;
mod planning;
mod reaper;
mod run_tx;
mod trigger;

pub use attempts::{
    EndAttempt, EndOutcome, Ended, claim, end_attempt, finish, hand_back, retry_delay, stale,
};
pub use control::{approve, cancel, rerun};
pub use planning::{Advanced, advance, advance_locked, set_run_status};
use planning::{action_event, run_completed_event, run_status_event};
pub use reaper::reap_expired;
pub use run_tx::RunTx;
pub use trigger::{Delivery, TriggerParams, Triggered, input_strings, trigger};

/// The actor of changes pipeline-svc makes by itself.
pub const ACTOR: &str = "pipeline-svc";
