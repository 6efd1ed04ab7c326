//! Black-box tests of the three services together, against a real Postgres and the real
//! Docker engine. See `helpers.rs` for what they need.

#![expect(
    clippy::expect_used,
    reason = "a test fails loudly at the step that broke"
)]

mod helpers;

mod containment;
mod deletion;
mod execution;
mod faults;
mod gateway;
mod gateway_paths;
mod health;
mod hooks;
mod limits;
mod logs;
mod orchestration;
mod pipeline_access;
mod raw_http;
mod readme_tour;
mod repos;
mod retention;
mod runner_env;
mod runner_protocol;
mod runs;
mod slowloris;
mod templates;
mod workspaces;
