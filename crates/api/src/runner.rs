//! The internal runner protocol (`/internal/v1` on pipeline-svc; not proxied by the gateway).
//!
//! A runner registers, then long-polls for work; every write it makes afterwards names the
//! job **and the attempt** it holds, so a runner that lost its lease is refused (409).

use crate::secret::SecretValue;
use gitweave_model::resources::Resources;
use gitweave_model::status::ErrorClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `POST /internal/v1/runners/register`, with `Authorization: Bearer <RUNNER_REGISTRATION_TOKEN>`
/// when pipeline-svc has one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// `RUNNER_NAME`.
    pub name: String,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// `docker` or `shell`.
    pub engine: String,
    /// `RUNNER_LABELS` (SPEC §13), without the implicit ones, which pipeline-svc adds.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The runner's operating system (`linux`); the implicit label `os`.
    #[serde(default)]
    pub os: Option<String>,
    /// The runner's CPU architecture (`x86_64`); the implicit label `arch`.
    #[serde(default)]
    pub arch: Option<String>,
    /// `RUNNER_HOST_ID`: which host holds the workspaces this runner makes.
    #[serde(default)]
    pub host_id: Option<String>,
}

/// The answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The runner's id.
    pub runner_id: Uuid,
    /// Bearer token for every later call of this runner.
    pub token: String,
    /// How often to renew the lease of a running job.
    pub heartbeat_interval_ms: u64,
}

/// `POST /internal/v1/runners/{id}/claim`: waits up to `wait_ms` for a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Long-poll budget; the server caps it.
    pub wait_ms: u64,
    /// The runner's id for this claim. A job it takes is marked with it, so the same request
    /// sent again after its answer was lost gets the same attempt back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<uuid::Uuid>,
    /// This request repeats one whose answer never arrived (same `claim_id`): the attempt it
    /// took, if it took one and still holds it, is answered again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
}

/// A job handed to a runner (`200`; `204` means none within the wait).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job_id: Uuid,
    /// Its run.
    pub run_id: Uuid,
    /// The attempt this runner now holds (1-based).
    pub attempt: i32,
    /// Repo name.
    pub repo: String,
    /// `<template>/<job>`.
    pub name: String,
    /// Container image (required by the docker engine).
    pub image: Option<String>,
    /// Script lines, run by `/bin/sh`, stopping at the first failure.
    pub script: Vec<String>,
    /// The whole environment: template and job env plus the `GITWEAVE_*` variables.
    pub env: BTreeMap<String, String>,
    /// Stop the job after this many seconds.
    pub timeout_secs: u64,
    /// Key of the run's workspace (shared by all jobs of the run on one runner host).
    pub workspace: String,
    /// What the workspace must hold before the job starts: set when the repo has a
    /// `clone_url` and the run a commit.
    #[serde(default)]
    pub checkout: Option<Checkout>,
    /// How many jobs the run has (0: not told). A runner may share things between the jobs of
    /// a run, such as a network namespace, when there are several.
    #[serde(default)]
    pub run_jobs: u32,
    /// Memory and CPU limits the job asks for (absent: the runner's defaults). A runner
    /// whose maximum is lower fails the job with `config_error`.
    #[serde(default)]
    pub resources: Resources,
    /// The secrets the job names (`secrets:`, SPEC §10), each to be set as one environment
    /// variable and masked in the job's output before it leaves the runner. Only in the
    /// assignment of a job that names them; never stored by the runner.
    #[serde(default)]
    pub secrets: Vec<JobSecret>,
    /// Containers to start beside the job, in its network namespace, before its script
    /// (SPEC §12); their output is sent as each service's log
    /// (`PUT …/attempts/{n}/services/{name}/logs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<gitweave_model::template::Service>,
    /// What the runner collects after the script (SPEC §11) and streams to
    /// `PUT …/attempts/{n}/artifacts?path=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<gitweave_model::template::Artifacts>,
    /// Files of the jobs it depends on, to be in the workspace before the script, each
    /// fetched from `GET …/attempts/{n}/inputs/{sha256}` unless the workspace holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ArtifactInput>,
    /// Its cache: what to restore before the script and whether to save after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheAssignment>,
}

/// A file of an upstream job to put into the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInput {
    /// The job that kept it.
    pub job_id: Uuid,
    /// That job's name (`<template>/<job>`), for the log.
    pub job: String,
    /// Relative to the workspace.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// What its content must hash to.
    pub sha256: String,
}

/// A job's cache as the runner handles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheAssignment {
    /// The key, resolved (a `files` key hashed at the run's commit).
    pub key: String,
    /// Paths relative to the workspace that the archive holds.
    pub paths: Vec<String>,
    /// The entry to restore before the script (its key may be another of the prefix's);
    /// `None`: nothing to restore (a miss, or the policy is `push`).
    pub restore: Option<CacheEntryRef>,
    /// Whether to save after a success: the policy pushes and the scope has no entry of
    /// `key` yet.
    pub save: bool,
}

/// A stored cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntryRef {
    /// Its key.
    pub key: String,
    /// The archive's sha256 (`GET …/attempts/{n}/cache/{sha256}`).
    pub sha256: String,
    /// The archive's bytes.
    pub size: u64,
}

/// Answer to an artifact or cache upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Its sha256, as computed while storing.
    pub sha256: String,
    /// Its bytes.
    pub size: u64,
    /// False for a cache archive when the scope already had an entry of the key (another
    /// job saved it first): nothing was replaced.
    pub created: bool,
}

/// Header of an upload: the sha256 the sender computed; a mismatch is refused (`422`).
pub const SHA256_HEADER: &str = "x-gitweave-sha256";

/// A secret given to one job: its name, the environment variable it is set as (the name
/// unless `env:` renames it), and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSecret {
    /// The secret's name (`^[A-Z_][A-Z0-9_]{0,127}$`).
    pub name: String,
    /// The environment variable it is set as.
    pub env: String,
    /// Its value.
    pub value: SecretValue,
}

/// A commit to check out into the run's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// From the repo's configuration only, never from a webhook payload.
    pub clone_url: String,
    /// The exact commit (not the branch head).
    pub commit: String,
    /// The run's ref (data for the log and `git` only; never interpolated into a shell).
    pub git_ref: String,
}

/// `PUT /internal/v1/jobs/{id}/attempts/{n}/logs?offset=N` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAck {
    /// The end of the stored log: where the next chunk must start.
    pub next_offset: i64,
}

/// `POST /internal/v1/jobs/{id}/attempts/{n}/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishRequest {
    /// Exit code of the script, when it ran to an end.
    pub exit_code: Option<i32>,
    /// `None` means success.
    pub error_class: Option<ErrorClass>,
    /// A sentence for people (`exit code 2`, `image foo:1 not found`).
    pub reason: Option<String>,
    /// The log length the runner sent; the server refuses to finish with a gap.
    pub log_end: i64,
    /// The runner cut the log at `RUNNER_LOG_LIMIT` (SPEC §15): the stored log ends with the
    /// runner's `[gitweave] log truncated at …` line.
    #[serde(default)]
    pub log_truncated: bool,
}

/// `POST /internal/v1/jobs/{id}/attempts/{n}/hand-back`: a stopping runner gives back an
/// attempt it did not finish within `RUNNER_SHUTDOWN_GRACE`; the job is queued again for a new
/// attempt (not failed, not counted against its `retry`). Its container is already stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandBackRequest {
    /// The log length the runner sent; the server refuses a hand-back with a gap.
    pub log_end: i64,
}

/// Answer to start, heartbeat and finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptState {
    /// True when a user asked to cancel: stop the container.
    pub cancel: bool,
    /// True when the run this job belongs to has ended (the workspace can go).
    pub run_ended: bool,
}

/// `POST /internal/v1/runners/active-runs`: which of these runs have not ended? A runner asks
/// before it removes workspaces it holds (at start and periodically), so a workspace outlives
/// neither a run that ended elsewhere nor a run this runner never heard the end of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRunsRequest {
    /// At most [`MAX_ACTIVE_RUNS_QUERY`] run ids.
    pub run_ids: Vec<Uuid>,
}

/// Answer to [`ActiveRunsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRunsResponse {
    /// Those of the asked runs that are queued, running or blocked. A run left out has ended
    /// or is unknown (deleted, or never pipeline-svc's): its workspace can go.
    pub active: Vec<Uuid>,
}

/// Most run ids one [`ActiveRunsRequest`] may name.
pub const MAX_ACTIVE_RUNS_QUERY: usize = 1000;
