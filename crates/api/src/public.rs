//! The public REST API's bodies (SPEC §5).

use gitweave_model::status::{ErrorClass, JobStatus, RunStatus, Trigger};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// `PUT /repos/{repo}` body. Absent fields keep their stored value on update.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRepo {
    /// Where the runner clones from; `null` clears it.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub clone_url: Option<Option<String>>,
    /// Branch used when a trigger names no ref (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Secret for webhook signatures; `null` clears it. Never returned.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_secret: Option<Option<String>>,
    /// Globs over branch and tag names (`main`, `release/*`, `hotfix/**`) whose runs may have
    /// protected secrets (SPEC §10); unset keeps them (default `[<default_branch>]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_refs: Option<Vec<String>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A repo as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repo {
    /// The `{repo}` in every path.
    pub name: String,
    /// Where the runner clones from, without credentials (`https://user:***@host/repo.git`).
    pub clone_url: Option<String>,
    /// Branch used when a trigger names no ref.
    pub default_branch: String,
    /// Whether a webhook secret is set (the secret itself is never returned).
    pub has_webhook_secret: bool,
    /// Branch and tag globs whose runs get protected secrets (SPEC §10); when never set, the
    /// default branch alone.
    #[serde(default)]
    pub protected_refs: Vec<String>,
    /// When it was created.
    #[serde(with = "crate::ts::required")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "crate::ts::required")]
    pub updated_at: OffsetDateTime,
}

/// `GET /repos`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoList {
    /// All repos, by name.
    pub repos: Vec<Repo>,
}

/// `PUT /templates/{name}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatePut {
    /// The stored name.
    pub name: String,
    /// The current version (unchanged when the body was the same).
    pub version: i32,
    /// The job names, in order.
    pub jobs: Vec<String>,
}

/// A template as `GET /templates/{name}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The stored name.
    pub name: String,
    /// The latest version.
    pub version: i32,
    /// The job names, in order.
    pub jobs: Vec<String>,
    /// The YAML body as uploaded (omitted in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// When the first version was stored.
    #[serde(with = "crate::ts::required")]
    pub created_at: OffsetDateTime,
    /// When the latest version was stored.
    #[serde(with = "crate::ts::required")]
    pub updated_at: OffsetDateTime,
}

/// `GET /templates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateList {
    /// All templates, by name.
    pub templates: Vec<Template>,
}

/// `PUT /repos/{repo}/templates/{name}` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachTemplate {
    /// Default inputs for this repo, overridden by the trigger's.
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
}

/// One attached template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedTemplate {
    /// Template name.
    pub name: String,
    /// 1-based stage position in the repo's pipeline.
    pub position: i32,
    /// The repo's default inputs for it.
    pub inputs: BTreeMap<String, String>,
    /// The template's latest version (used by the next run).
    pub version: i32,
}

/// `GET /repos/{repo}/templates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachedTemplateList {
    /// In pipeline (attach) order.
    pub templates: Vec<AttachedTemplate>,
}

/// `POST /repos/{repo}/pipelines/run` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRun {
    /// Git ref; default the repo's default branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Commit sha to run at.
    pub commit: Option<String>,
    /// Only these attached templates (in attach order); default all.
    pub templates: Option<Vec<String>>,
    /// Input values, overriding the attach defaults.
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
}

/// One job of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// The run it belongs to.
    pub run_id: Uuid,
    /// `<template>/<job>`.
    pub name: String,
    /// The template (stage) it came from.
    pub template: String,
    /// Current status.
    pub status: JobStatus,
    /// The script's exit code, once known.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error_class: Option<ErrorClass>,
    /// 1-based attempt number; 0 before the first start.
    pub attempt: i32,
    /// When the current attempt started.
    #[serde(with = "crate::ts::optional")]
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "crate::ts::optional")]
    pub ended_at: Option<OffsetDateTime>,
    /// The current attempt's log was cut at the runner's `RUNNER_LOG_LIMIT` (always present;
    /// `false` otherwise).
    #[serde(default)]
    pub log_truncated: bool,
    /// Why it failed or was skipped, in words: the same text as the event's `reason`
    /// (SPEC §10); `null` otherwise.
    #[serde(default)]
    pub reason: Option<String>,
    /// Its failure neither stops nor fails the run (the template's `allow_failure`): a failed
    /// job with it is a warning, not a failure.
    #[serde(default)]
    pub allow_failure: bool,
    /// The names (inside its template) of the jobs it `needs`, as the template lists them;
    /// empty when it has none. The run page draws them as the graph's edges.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Why a `queued` or `manual` job has not started (SPEC §13); absent otherwise, and
    /// while a runner with a free slot is about to take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<gitweave_model::waiting::Waiting>,
}

/// `GET /runners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerList {
    /// Live registrations, by name.
    pub runners: Vec<RunnerView>,
}

/// One runner registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerView {
    /// `RUNNER_NAME`.
    pub name: String,
    /// `RUNNER_HOST_ID`.
    pub host: Option<String>,
    /// Its labels, implicit ones included.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Jobs it may run at once.
    pub capacity: i32,
    /// Jobs it runs now.
    pub busy: i64,
    /// `online` (in contact within one lease) or `offline`.
    pub status: String,
    /// Its last contact.
    #[serde(with = "crate::ts::required")]
    pub last_seen_at: OffsetDateTime,
}

/// A run with its jobs in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Run id (UUID v7: time-ordered).
    pub id: Uuid,
    /// Repo name.
    pub repo: String,
    /// Git ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Commit sha, when given.
    pub commit: Option<String>,
    /// Current status.
    pub status: RunStatus,
    /// How it was started.
    pub trigger: Trigger,
    /// When it was created.
    #[serde(with = "crate::ts::required")]
    pub created_at: OffsetDateTime,
    /// When its first job started.
    #[serde(with = "crate::ts::optional")]
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "crate::ts::optional")]
    pub ended_at: Option<OffsetDateTime>,
    /// What it ran: the pipeline file's blob, or each template's version (SPEC §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RunSource>,
    /// Why it could not run (a failed run without jobs: a broken `.gitweave.yml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The pull request it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequest>,
    /// Jobs in pipeline order.
    pub jobs: Vec<Job>,
}

/// What a run ran (SPEC §9): a rerun runs exactly this again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSource {
    /// The repo's pipeline file, when the run came from one.
    #[serde(default)]
    pub file: Option<SourceFile>,
    /// The stored templates it ran (attached, or included by the file), with their versions.
    #[serde(default)]
    pub templates: Vec<TemplateVersion>,
}

/// A pipeline file at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// `.gitweave.yml` or `.gitweave.yaml`.
    pub path: String,
    /// Its git blob id.
    pub blob: String,
}

/// A template and the version a run ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: i32,
}

/// Why a run could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Stable code: `config_error` (the file does not parse or validate), `repo_unreadable`.
    pub code: String,
    /// What is wrong, naming file, line and column.
    pub message: String,
}

/// A pull (merge) request of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Its number (GitLab: the merge request's iid).
    pub number: u64,
    /// The branch it comes from.
    pub source_branch: String,
    /// The branch it goes into.
    pub target_branch: String,
    /// Whether it comes from another repository.
    pub fork: bool,
}

/// `GET /repos/{repo}/pipelines/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One piece of a logs page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Byte offset of `data`'s first byte in the job's output.
    pub offset: i64,
    /// The bytes as UTF-8 text, invalid sequences replaced by U+FFFD.
    pub data: String,
}

/// `GET /jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsPage {
    /// The job.
    pub job_id: Uuid,
    /// Which attempt's log this is.
    pub attempt: i32,
    /// The bytes from the requested offset, in order, contiguous.
    pub chunks: Vec<LogChunk>,
    /// Where the next page starts (a byte offset).
    pub next_offset: i64,
    /// True when the job has ended and `next_offset` is the end of its log.
    pub complete: bool,
}

/// One event of a run (SPEC §6); absent fields are omitted from the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3… within the run.
    pub seq: i64,
    /// `run.created`, `job.failed`, …
    pub event_type: String,
    /// The run.
    pub run_id: Uuid,
    /// The job, for job events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// When it was recorded.
    #[serde(with = "crate::ts::required")]
    pub timestamp_utc: OffsetDateTime,
    /// Who: `api`, `pipeline-svc`, `runner:<name>`, `webhook:<provider>`.
    pub actor: String,
    /// The job's attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// Failure class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// A sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details (`from`/`to` of a state change, `exit_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// `POST /jobs/{id}/approve` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// Why; recorded in the `job.manual_approved` event.
    pub reason: Option<String>,
}

/// `PUT /repos/{repo}/secrets/{name}` and `PUT /secrets/{name}` (SPEC §10).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutSecret {
    /// The value, 8 bytes to 64 KiB; never returned.
    pub value: crate::secret::SecretValue,
    /// Given only to runs of the repo's `protected_refs`.
    #[serde(default)]
    pub protected: bool,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// Given only to runs of protected refs.
    pub protected: bool,
    /// When it was created.
    #[serde(with = "crate::ts::required")]
    pub created_at: OffsetDateTime,
    /// When its value was last set.
    #[serde(with = "crate::ts::required")]
    pub updated_at: OffsetDateTime,
}

/// `GET /repos/{repo}/secrets` and `GET /secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretList {
    /// By name.
    pub secrets: Vec<SecretInfo>,
}

/// `GET /jobs/{id}/artifacts` (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactList {
    /// The files of the job's latest attempt that kept any, by path.
    pub artifacts: Vec<Artifact>,
}

/// A file a job kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Relative to the workspace, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Its content's sha256 (lowercase hex): also its `ETag`.
    pub sha256: String,
    /// When it goes (`410` after).
    #[serde(with = "crate::ts::required")]
    pub expires_at: OffsetDateTime,
}
