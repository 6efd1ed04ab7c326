//! pipeline-svc: the owner of Postgres and of every pipeline decision.
//!
//! It stores repos and versioned templates, expands a trigger into a run and its jobs (one
//! transaction), hands jobs to runners through a woken long-poll, stores their logs by offset,
//! and applies the fail-closed plan (`gitweave_model::plan`) whenever a job ends.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod fleet_metrics;
pub mod follow;
pub mod git_cli;
pub mod git_remote;
pub mod local_repo;
pub mod mirror;
pub mod orchestrator;
pub mod resolve;
pub mod retention;
pub mod routes;
pub mod secret_box;
pub mod settled;
pub mod startup;
pub mod state;
pub mod sweeper;
pub mod views;
pub mod waiting;
pub mod wakeups;

pub use config::Config;
pub use startup::App;
