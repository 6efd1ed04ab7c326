//! Black-box tests of the three services together, against a real Postgres and the real
//! Docker engine. See `helpers.rs` for what they need.

#![expect(
    clippy::expect_used,
    reason = "a test fails loudly at the step that broke"
)]

mod helpers;

mod execution;
mod faults;
mod gateway;
mod gateway_paths;
mod health;
mod hooks;
mod logs;
mod orchestration;
mod raw_http;
mod repos;
mod runner_protocol;
mod runs;
mod slowloris;
mod templates;
