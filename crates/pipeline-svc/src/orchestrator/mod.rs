//! Pipeline decisions with side effects: turning a trigger into a run, handing jobs to runners,
//! recording their ends, and re-planning a run. Every state change and its event are written
//! in one transaction; runners are woken after the commit.
//!
//! Each submodule names what it uses (no `use super::*`).

mod artifacts;
mod attempts;
mod control;
mod job_secrets;
mod planning;
mod reaper;
mod run_tx;
mod trigger;

pub use artifacts::{CacheScope, cache_scope};
pub use attempts::{
    ClaimOf, EndAttempt, EndOutcome, Ended, claim, end_attempt, finish, hand_back, retry_delay,
    stale,
};
pub use control::{approve, cancel, rerun};
pub use job_secrets::protected_matcher;
pub use planning::{Advanced, advance, advance_locked, set_run_status};
pub use reaper::reap_expired;
pub use run_tx::RunTx;
pub use trigger::{
    CreatedRun, Delivery, PullRequest, TriggerParams, Triggered, input_strings, trigger,
};

/// The actor of changes pipeline-svc makes by itself.
pub const ACTOR: &str = "pipeline-svc";
