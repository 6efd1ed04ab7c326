//! Turning a trigger (API, webhook, rerun) into a run and its jobs: the pure planner
//! (`gitweave_model::run_plan`) decides what the run is, [`trigger`] resolves its commit and
//! writes it in one transaction. The answer is rows; the routes make the API's views of them.

use crate::error::ApiError;
use crate::git_remote::{self, ResolveError};
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_api::public::{RunError, RunSource, TemplateVersion};
use gitweave_api::secret::SecretValue;
use gitweave_model::limits;
use gitweave_model::run_plan::{self, PlanError, PlannedRun, Stage};
use gitweave_model::status::{RunStatus, Trigger};
use gitweave_model::template::Template;
use gitweave_storage::{deliveries, jobs, repos, runs, templates};
use std::collections::BTreeMap;
use uuid::Uuid;
pub(crate) use write::Write;
use write::write;

mod source;
mod write;

/// What a trigger asks for.
#[derive(Debug, Clone)]
pub struct TriggerParams {
    /// Repo name.
    pub repo: String,
    /// Ref; default the repo's default branch.
    pub git_ref: Option<String>,
    /// Commit sha.
    pub commit: Option<String>,
    /// Only these attached templates.
    pub templates: Option<Vec<String>>,
    /// Input values.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// How it was started.
    pub trigger: Trigger,
    /// The run this one reruns.
    pub rerun_of: Option<Uuid>,
    /// Who asked (`api`, `webhook:github`, …).
    pub actor: String,
    /// The webhook delivery that asked, recorded in the run's transaction so the same
    /// delivery twice makes one run.
    pub delivery: Option<Delivery>,
    /// A push's old commit (`changes:` rules diff against it; all zeros: a new branch).
    pub before: Option<String>,
    /// The head commit's message, when the payload carries it (`[skip ci]`).
    pub head_message: Option<String>,
    /// The pull request of a `pull_request` trigger.
    pub pull_request: Option<PullRequest>,
}

impl TriggerParams {
    /// A trigger of `trigger` for `repo` by `actor`, with nothing else given.
    pub fn new(repo: String, trigger: Trigger, actor: String) -> Self {
        TriggerParams {
            repo,
            git_ref: None,
            commit: None,
            templates: None,
            inputs: BTreeMap::new(),
            trigger,
            rerun_of: None,
            actor,
            delivery: None,
            before: None,
            head_message: None,
            pull_request: None,
        }
    }

    /// Whether a webhook asked: what cannot run is answered `202` (or recorded as a failed
    /// run), not refused.
    fn by_webhook(&self) -> bool {
        matches!(self.trigger, Trigger::Push | Trigger::PullRequest)
    }
}

/// A pull request as a trigger gives it (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// The branch it comes from.
    pub source_branch: String,
    /// The branch it goes into.
    pub target_branch: String,
    /// Whether its head repository is not the base repository.
    pub fork: bool,
}

/// A webhook delivery id.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `github`, `gitea`, `forgejo`, `gitlab`.
    pub provider: String,
    /// The provider's delivery id.
    pub id: String,
}

/// What a trigger made.
#[derive(Debug, Clone)]
pub enum Triggered {
    /// A new run, as committed.
    Created(Box<CreatedRun>),
    /// The delivery had been seen: the run it made then.
    DuplicateDelivery(Uuid),
    /// A webhook that makes no run, and why (rules, `[skip ci]`, no pipeline); the answer is
    /// stored with the delivery.
    Skipped(String),
}

/// A run a trigger inserted, with its jobs in pipeline order, as the inserts returned them.
#[derive(Debug, Clone)]
pub struct CreatedRun {
    /// The run.
    pub run: runs::RunRow,
    /// Its jobs.
    pub jobs: Vec<jobs::JobRow>,
}

impl Triggered {
    /// The run's id, if a run was made.
    pub fn run_id(&self) -> Option<Uuid> {
        match self {
            Triggered::Created(c) => Some(c.run.id),
            Triggered::DuplicateDelivery(id) => Some(*id),
            Triggered::Skipped(_) => None,
        }
    }
}

fn input_string(name: &str, v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::Invalid(
            error_code::INVALID_INPUT,
            format!("input {name:?} must be a string, number or boolean"),
        )),
    }
}

/// Converts JSON input values to the strings templates substitute, refusing more than
/// [`limits::MAX_INPUTS`] of them or one longer than [`limits::MAX_INPUT_VALUE_BYTES`].
pub fn input_strings(
    inputs: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let out = inputs
        .iter()
        .map(|(k, v)| Ok((k.clone(), input_string(k, v)?)))
        .collect::<Result<BTreeMap<_, _>, ApiError>>()?;
    limits::check_inputs(out.iter())?;
    Ok(out)
}

/// The 422 of a trigger the planner refuses.
pub(crate) fn plan_error(e: PlanError, repo: &str) -> ApiError {
    match e {
        PlanError::NothingAttached => ApiError::Invalid(
            error_code::NO_PIPELINE,
            format!(
                "repo {repo} has no .gitweave.yml at the commit and no attached template; commit a .gitweave.yml or attach a template with PUT /api/v1/repos/{repo}/templates/{{name}}"
            ),
        ),
        PlanError::EmptySelection => ApiError::Invalid(error_code::NO_TEMPLATES, e.to_string()),
        PlanError::NotAttached(name) => ApiError::Invalid(
            error_code::TEMPLATE_NOT_ATTACHED,
            format!("template {name:?} is not attached to repo {repo}"),
        ),
        PlanError::UnknownInputs { .. } => {
            ApiError::Invalid(error_code::UNKNOWN_INPUT, e.to_string())
        }
        PlanError::Limit(l) => l.into(),
        PlanError::Expand(e) => ApiError::Invalid(error_code::INVALID_INPUT, e.to_string()),
    }
}

fn validate_ref(r: &str) -> Result<(), ApiError> {
    let ok = !r.is_empty() && r.len() <= 255 && !r.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            error_code::INVALID_REF,
            "ref must be 1 to 255 characters without control characters".into(),
        ))
    }
}

fn validate_commit(c: &str) -> Result<(), ApiError> {
    let ok = (4..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            error_code::INVALID_COMMIT,
            format!("commit {c:?} is not a hex sha (4 to 64 hex digits)"),
        ))
    }
}

/// A stage of a planned run as it is recorded: its name and template version (`0` for the
/// pipeline file's own stage, whose version is the file's blob id on the run).
#[derive(Debug, Clone)]
pub(crate) struct StageRef {
    pub(crate) name: String,
    pub(crate) version: i32,
}

/// A run planned, with what it is made of.
pub(crate) struct Planned {
    pub(crate) stages: Vec<StageRef>,
    pub(crate) run: PlannedRun,
    /// `pipeline_runs.source`.
    pub(crate) source: RunSource,
}

/// Loads the repo's attached templates and plans the run (`gitweave_model::run_plan`);
/// `None` when none is attached.
async fn plan_attached(
    state: &AppState,
    repo: &repos::RepoRow,
    p: &TriggerParams,
) -> Result<Option<Planned>, ApiError> {
    let attached = templates::attached(&state.pool, repo.id).await?;
    if attached.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = attached.iter().map(|a| a.name.as_str()).collect();
    let selected =
        run_plan::select(&names, p.templates.as_deref()).map_err(|e| plan_error(e, &repo.name))?;
    let mut chosen: Vec<templates::AttachedRow> = Vec::with_capacity(selected.len());
    let mut attached: Vec<Option<templates::AttachedRow>> =
        attached.into_iter().map(Some).collect();
    for i in selected {
        if let Some(a) = attached[i].take() {
            chosen.push(a);
        }
    }
    let loaded = chosen
        .iter()
        .map(|a| {
            let template: Template = serde_json::from_value(a.parsed.clone()).map_err(|e| {
                ApiError::Internal(format!("stored template {} does not load: {e}", a.name))
            })?;
            let defaults: BTreeMap<String, String> = serde_json::from_value(a.inputs.clone())
                .map_err(|e| {
                    ApiError::Internal(format!("stored inputs of {} do not load: {e}", a.name))
                })?;
            Ok((template, defaults))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let stages: Vec<Stage<'_>> = chosen
        .iter()
        .zip(&loaded)
        .map(|(a, (template, defaults))| Stage {
            name: &a.name,
            template,
            defaults,
            dag: None,
        })
        .collect();
    let given = input_strings(&p.inputs)?;
    let run = run_plan::plan_run(&stages, &given).map_err(|e| plan_error(e, &repo.name))?;
    let refs: Vec<StageRef> = chosen
        .iter()
        .map(|a| StageRef {
            name: a.name.clone(),
            version: a.version,
        })
        .collect();
    Ok(Some(Planned {
        source: RunSource {
            file: None,
            templates: refs
                .iter()
                .map(|r| TemplateVersion {
                    name: r.name.clone(),
                    version: r.version,
                })
                .collect(),
        },
        stages: refs,
        run,
    }))
}

/// The commit the run is at: the trigger's, or, when it names none and the repo has a clone
/// URL, the ref's head there now (SPEC §3), so the run records and checks out what it ran.
async fn commit_of(
    state: &AppState,
    repo: &repos::RepoRow,
    git_ref: &str,
    commit: Option<&str>,
    password: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if let Some(c) = commit {
        return Ok(Some(c.to_owned()));
    }
    let Some(url) = repo.clone_url.as_deref() else {
        return Ok(None);
    };
    let root = state.config.local_repo_root.as_deref();
    match git_remote::head_commit(url, root, password, git_ref).await {
        Ok(sha) => {
            tracing::info!(repo = %repo.name, git_ref, commit = %sha, "resolved the ref's head");
            Ok(Some(sha))
        }
        Err(e @ ResolveError::UnknownRef { .. }) => {
            Err(ApiError::Invalid(error_code::UNKNOWN_REF, e.to_string()))
        }
        Err(e @ ResolveError::Refused(_)) => Err(ApiError::Invalid(
            error_code::INVALID_CLONE_URL,
            e.to_string(),
        )),
        Err(e @ (ResolveError::Git { .. } | ResolveError::Timeout { .. })) => {
            Err(ApiError::Invalid(error_code::REF_UNRESOLVED, e.to_string()))
        }
        Err(e @ ResolveError::NoGit(_)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Creates a run and all its jobs in one transaction, releases what can start, and wakes the
/// runners: validates, resolves the commit, decides the pipeline (the repo's file at the
/// commit, else the attached templates: [`source::decide`]), then writes.
pub async fn trigger(state: &AppState, p: TriggerParams) -> Result<Triggered, ApiError> {
    let repo = repos::get(&state.pool, &p.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &p.repo))?;
    if let Some(d) = &p.delivery
        && let Some(run_id) = deliveries::run_of(&state.pool, &d.provider, &d.id).await?
    {
        return Ok(Triggered::DuplicateDelivery(run_id));
    }
    let git_ref = p
        .git_ref
        .clone()
        .unwrap_or_else(|| repo.default_branch.clone());
    validate_ref(&git_ref)?;
    if let Some(c) = &p.commit {
        validate_commit(c)?;
    }
    let password = match &repo.clone_url {
        Some(_) => source::git_password(state, &repo).await?,
        None => None,
    };
    let commit = commit_of(
        state,
        &repo,
        &git_ref,
        p.commit.as_deref(),
        password.as_ref().map(SecretValue::expose),
    )
    .await?;
    let outcome = source::decide(
        state,
        &source::Asked {
            repo: &repo,
            params: &p,
            git_ref: &git_ref,
            commit: commit.as_deref(),
            password: password.as_ref(),
        },
    )
    .await?;
    let (planned, error) = match outcome {
        source::Outcome::Run(planned) => (planned, None),
        source::Outcome::Skip(skip) => return skipped(state, &repo, &p, skip).await,
        source::Outcome::Broken(broken) => {
            if !p.by_webhook() {
                return Err(ApiError::Invalid(broken.code, broken.message));
            }
            let run = PlannedRun {
                jobs: Vec::new(),
                actions: Vec::new(),
                run_status: RunStatus::Failed,
            };
            (
                Planned {
                    stages: Vec::new(),
                    run,
                    source: broken.source,
                },
                Some(RunError {
                    code: broken.code.to_owned(),
                    message: broken.message,
                }),
            )
        }
    };
    let mut planned = planned;
    if let Some(pr) = &p.pull_request {
        pull_request_env(&mut planned.run, pr);
    }
    super::artifacts::resolve_cache_keys(
        state,
        &repo,
        commit.as_deref(),
        password.as_ref().map(SecretValue::expose),
        &mut planned.run,
    )
    .await?;
    written(
        state,
        &Write {
            repo: &repo,
            params: &p,
            git_ref: &git_ref,
            commit: commit.as_deref(),
            planned: &planned,
            error: error.as_ref(),
        },
    )
    .await
}

/// Writes a planned run, counts it and wakes the runners for what it released.
pub(crate) async fn written(state: &AppState, w: &Write<'_>) -> Result<Triggered, ApiError> {
    let triggered = write(state, w).await?;
    if let Triggered::Created(c) = &triggered {
        state.metrics.inc(
            "gitweave_runs_triggered_total",
            &format!("trigger=\"{}\"", w.params.trigger),
        );
        // The released jobs' requirements, as the `requires` column derives them.
        let released: Vec<_> = w
            .planned
            .run
            .jobs
            .iter()
            .filter(|j| j.state == gitweave_model::plan::JobState::Released)
            .map(|j| gitweave_model::labels::requirements(&j.job.runs_on))
            .collect();
        if !released.is_empty() {
            state.wake_runners(&released);
        }
        tracing::info!(run.id = %c.run.id, repo = %w.repo.name, jobs = w.planned.run.jobs.len(), "run created");
    }
    Ok(triggered)
}

/// The pull request's variables in every job's environment (over the template's).
fn pull_request_env(run: &mut PlannedRun, pr: &PullRequest) {
    for j in &mut run.jobs {
        j.job
            .env
            .insert("GITWEAVE_PR_NUMBER".into(), pr.number.to_string());
        j.job
            .env
            .insert("GITWEAVE_PR_SOURCE_BRANCH".into(), pr.source_branch.clone());
        j.job
            .env
            .insert("GITWEAVE_PR_TARGET_BRANCH".into(), pr.target_branch.clone());
    }
}

/// A trigger that makes no run: an API trigger is refused (`422`); a webhook's answer is
/// recorded with its delivery and returned.
async fn skipped(
    state: &AppState,
    repo: &repos::RepoRow,
    p: &TriggerParams,
    skip: source::Skip,
) -> Result<Triggered, ApiError> {
    if !p.by_webhook() {
        return Err(ApiError::Invalid(skip.code, skip.reason));
    }
    if let Some(d) = &p.delivery {
        let answer = serde_json::json!({ "status": "skipped", "reason": skip.reason });
        deliveries::insert_answer(&state.pool, &d.provider, &d.id, repo.id, &answer).await?;
    }
    tracing::info!(repo = %repo.name, reason = %skip.reason, "webhook made no run");
    Ok(Triggered::Skipped(skip.reason))
}

/// A rerun of run `run_id` (see [`super::rerun`]): its stored jobs replanned from scratch
/// ([`run_plan::replan`]), with its source, pull request and (for a run that could not run)
/// its error copied.
pub(crate) async fn rerun_exact(
    state: &AppState,
    run_id: Uuid,
    actor: &str,
) -> Result<Triggered, ApiError> {
    let old = runs::get(&state.pool, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", run_id))?;
    let repo = repos::get(&state.pool, &old.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &old.repo))?;
    let inputs: BTreeMap<String, serde_json::Value> = serde_json::from_value(old.inputs.clone())
        .map_err(|e| {
            ApiError::Internal(format!("stored inputs of run {run_id} do not load: {e}"))
        })?;
    let rows = jobs::of_run(&state.pool, run_id).await?;
    let versions = jobs::template_versions(&state.pool, run_id).await?;
    let load = |v: &Option<serde_json::Value>| v.clone().filter(|v| !v.is_null());
    let mut stages: Vec<StageRef> = Vec::new();
    let mut stored = Vec::with_capacity(rows.len());
    for (row, version) in rows.iter().zip(versions.iter().copied()) {
        let stage = usize::try_from(row.stage)
            .map_err(|_| ApiError::Internal(format!("job {} has stage {}", row.id, row.stage)))?;
        if stages.len() <= stage {
            stages.resize(
                stage + 1,
                StageRef {
                    name: row.template.clone(),
                    version,
                },
            );
        }
        stages[stage] = StageRef {
            name: row.template.clone(),
            version,
        };
        let job = serde_json::from_value(row.spec.clone())
            .map_err(|e| ApiError::Internal(format!("job {} spec does not load: {e}", row.id)))?;
        stored.push(run_plan::StoredJob {
            stage,
            name: row.name.clone(),
            job,
            depends_on: row
                .depends_on
                .iter()
                .filter_map(|&d| usize::try_from(d).ok())
                .collect(),
        });
    }
    let error: Option<RunError> = load(&old.error)
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::Internal(format!("stored error of run {run_id}: {e}")))?;
    let source: RunSource = match load(&old.source) {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::Internal(format!("stored source of run {run_id}: {e}")))?,
        // A run from before sources were recorded: its templates' versions, from its jobs.
        None => RunSource {
            file: None,
            templates: stages
                .iter()
                .map(|s| TemplateVersion {
                    name: s.name.clone(),
                    version: s.version,
                })
                .collect(),
        },
    };
    let pull_request: Option<PullRequest> = load(&old.pull_request)
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::Internal(format!("stored pull request of run {run_id}: {e}")))?;
    let mut run = run_plan::replan(stored);
    if error.is_some() {
        run.run_status = RunStatus::Failed;
    }
    let params = TriggerParams {
        git_ref: Some(old.git_ref.clone()),
        commit: old.commit_sha.clone(),
        inputs,
        rerun_of: Some(run_id),
        pull_request,
        ..TriggerParams::new(repo.name.clone(), Trigger::Rerun, actor.to_owned())
    };
    written(
        state,
        &Write {
            repo: &repo,
            params: &params,
            git_ref: &old.git_ref,
            commit: old.commit_sha.as_deref(),
            planned: &Planned {
                stages,
                run,
                source,
            },
            error: error.as_ref(),
        },
    )
    .await
}
