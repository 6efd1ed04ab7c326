//! Black-box tests of the three services together, against a real Postgres and the real
//! Docker engine. See `helpers.rs` for what they need.

#![expect(
    clippy::expect_used,
    reason = "a test fails loudly at the step that broke"
)]

mod browser;
mod hand;
mod helpers;
mod procs;

mod affinity;
mod artifacts;
mod artifacts_memory;
mod artifacts_s3;
mod cancel_grace;
mod cli;
mod cli_artifacts;
mod cli_exec;
mod cli_follow;
mod cli_repo_file;
mod cli_tls;
mod containment;
mod deletion;
mod envelopes;
mod execution;
mod faults;
mod fleet;
mod follow;
mod gateway;
mod gateway_paths;
mod health;
mod hooks;
mod limits;
mod logs;
mod metrics;
mod orchestration;
mod pipeline_access;
mod pool;
mod raw_http;
mod readme_tour;
mod reads;
mod repos;
mod retention;
mod run_end;
mod runner_env;
mod runner_labels;
mod runner_protocol;
mod runs;
mod secret_masking;
mod secrets;
mod secrets_claim;
mod secrets_cli;
mod secrets_e2e;
mod secrets_service_logs;
mod services;
mod short_ids;
mod slowloris;
mod templates;
mod ui;
mod ui_browser;
mod workspaces;
