//! The GitWeave pipeline model: everything about pipelines that needs no I/O.
//!
//! - [`backoff`]: the delay before a failed job's next attempt (doubling, cap, jitter).
//! - [`names`]: validated names (repos, templates, jobs, inputs, env keys).
//! - [`clone_url`]: clone URLs: remote or local, and shown without credentials.
//! - [`duration`]: `10m`/`1h30m` job timeouts.
//! - [`template`]: YAML → [`template::Template`], parsed once and validated ("parse, don't validate").
//! - [`expand`]: `${{ inputs.NAME }}` resolution at trigger time.
//! - [`labels`]: runner labels and a job's `runs_on`, and how they match (SPEC §13).
//! - [`limits`]: the size caps on templates, inputs and expanded runs.
//! - [`status`]: run/job statuses and error classes, with their wire names.
//! - [`plan`]: the fail-closed scheduling state machine (which job may start, which are skipped, how a run ends).
//! - [`rules`]: a repo pipeline file's `rules:`, judged on the event, the ref and the changed paths.
//! - [`run_plan`]: a trigger's run planned before anything is written (templates, expanded jobs, dependencies, first step).
//! - [`logs`]: byte-offset arithmetic for paginated logs.
//! - [`resources`]: a job's memory and CPU limits (`resources:`), and the runner's maxima.
//! - [`waiting`]: why a queued or manual job waits, in words (SPEC §13).
//! - [`webhook`]: forge webhooks: signature checks and push payloads → what to run.

pub mod backoff;
pub mod byte_range;
pub mod clone_url;
pub mod duration;
pub mod expand;
mod expr;
pub mod labels;
pub mod limits;
pub mod logs;
pub mod names;
pub mod plan;
pub mod repo_plan;
pub mod resources;
pub mod rules;
pub mod run_plan;
pub mod short_id;
pub mod status;
pub mod template;
pub mod waiting;
pub mod webhook;
mod yaml_budget;
