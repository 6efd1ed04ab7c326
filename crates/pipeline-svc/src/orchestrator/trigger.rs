//! Turning a trigger (API, webhook, rerun) into a run and its jobs: the pure planner
//! (`gitweave_model::run_plan`) decides what the run is, [`trigger`] resolves its commit and
//! writes it in one transaction. The answer is rows; the routes make the API's views of them.

use crate::error::ApiError;
use crate::git_remote::{self, ResolveError};
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_model::limits;
use gitweave_model::run_plan::{self, PlanError, PlannedRun, Stage};
use gitweave_model::status::Trigger;
use gitweave_model::template::Template;
use gitweave_storage::{deliveries, jobs, repos, runs, templates};
use std::collections::BTreeMap;
use uuid::Uuid;
use write::{Write, write};

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
    /// The run's id.
    pub fn run_id(&self) -> Uuid {
        match self {
            Triggered::Created(c) => c.run.id,
            Triggered::DuplicateDelivery(id) => *id,
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
fn plan_error(e: PlanError, repo: &str) -> ApiError {
    match e {
        PlanError::NothingAttached => ApiError::Invalid(
            error_code::NO_TEMPLATES,
            format!(
                "repo {repo} has no attached template; attach one with PUT /api/v1/repos/{repo}/templates/{{name}}"
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

/// The run's templates as stored (in stage order) and the run planned from them.
struct Planned {
    templates: Vec<templates::AttachedRow>,
    run: PlannedRun,
}

/// Loads the repo's attached templates and plans the run (`gitweave_model::run_plan`).
async fn plan(
    state: &AppState,
    repo: &repos::RepoRow,
    p: &TriggerParams,
) -> Result<Planned, ApiError> {
    let attached = templates::attached(&state.pool, repo.id).await?;
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
    Ok(Planned {
        templates: chosen,
        run,
    })
}

/// The commit the run is at: the trigger's, or, when it names none and the repo has a clone
/// URL, the ref's head there now (SPEC §3), so the run records and checks out what it ran.
async fn commit_of(
    state: &AppState,
    repo: &repos::RepoRow,
    git_ref: &str,
    commit: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if let Some(c) = commit {
        return Ok(Some(c.to_owned()));
    }
    let Some(url) = repo.clone_url.as_deref() else {
        return Ok(None);
    };
    let root = state.config.local_repo_root.as_deref();
    match git_remote::head_commit(url, root, None, git_ref).await {
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
/// runners: validates, plans (pure), resolves the commit, then writes.
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
    let planned = plan(state, &repo, &p).await?;
    let commit = commit_of(state, &repo, &git_ref, p.commit.as_deref()).await?;
    let triggered = write(
        state,
        &Write {
            repo: &repo,
            params: &p,
            git_ref: &git_ref,
            commit: commit.as_deref(),
            planned: &planned,
        },
    )
    .await?;
    if let Triggered::Created(_) = &triggered {
        let released = planned.run.released();
        state.metrics.inc(
            "gitweave_runs_triggered_total",
            &format!("trigger=\"{}\"", p.trigger),
        );
        if released > 0 {
            state.wake_runners(released);
        }
        tracing::info!(run.id = %triggered.run_id(), repo = %repo.name, jobs = planned.run.jobs.len(), "run created");
    }
    Ok(triggered)
}
