//! runner-svc: takes jobs from pipeline-svc and runs each in its own container.
//!
//! It registers at start-up, then each of its `RUNNER_CONCURRENCY` slots long-polls for a job,
//! runs it through the configured [`gitweave_engine::Engine`] (prepare → execute → collect),
//! streams the output back in chunks idempotent by offset while the job runs, renews its lease
//! by heartbeat, and reports how the job ended. On SIGTERM it stops taking jobs and finishes
//! those it runs. Its secrets never stay in its process environment ([`secrets`]).

pub mod artifacts;
pub mod client;
pub mod config;
pub mod executor;
pub mod secrets;
pub mod startup;
pub mod sweep;

pub use config::Config;
pub use startup::App;
