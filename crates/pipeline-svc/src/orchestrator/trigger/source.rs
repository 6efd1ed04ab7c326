//! Which pipeline a trigger runs (SPEC §9): the repo's `.gitweave.yml` (or `.gitweave.yaml`)
//! **at the run's commit**, read from the repo's mirror ([`crate::mirror`]), with its
//! includes, rules and job rules; else the attached templates as before. What cannot run is
//! an [`Outcome`], not an error: a webhook answers it `202` (or makes a failed run of a
//! broken file), an API trigger answers it `422`.

use super::{Planned, StageRef, TriggerParams, input_strings, plan_attached, plan_error};
use crate::error::ApiError;
use crate::git_cli;
use crate::mirror::{Mirror, MirrorError, PipelineFile};
use crate::secret_box::Scope;
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_api::public::{RunSource, SourceFile, TemplateVersion};
use gitweave_api::secret::SecretValue;
use gitweave_model::repo_plan::{self, FILE_STAGE};
use gitweave_model::rules::{self, RuleContext, RuleEvent};
use gitweave_model::run_plan;
use gitweave_model::status::Trigger;
use gitweave_model::template::{MAX_TEMPLATE_BYTES, RepoFile, Template, parse_repo_file};
use gitweave_model::webhook;
use gitweave_storage::{repos, secrets, templates};

/// The name of the secret that holds the password of a repo's git server.
pub const GIT_PASSWORD: &str = "GIT_PASSWORD";

/// What a trigger asks, once its commit is known.
pub(super) struct Asked<'a> {
    pub(super) repo: &'a repos::RepoRow,
    pub(super) params: &'a TriggerParams,
    pub(super) git_ref: &'a str,
    pub(super) commit: Option<&'a str>,
    pub(super) password: Option<&'a SecretValue>,
}

/// What the trigger makes.
pub(super) enum Outcome {
    /// A run.
    Run(Planned),
    /// No run.
    Skip(Skip),
    /// A pipeline that cannot run: a webhook's run is made `failed` with it.
    Broken(Broken),
}

/// Why no run is made.
pub(super) struct Skip {
    /// The API's code for it.
    pub(super) code: &'static str,
    /// In words.
    pub(super) reason: String,
}

/// Why the pipeline cannot run.
pub(super) struct Broken {
    /// `config_error` or `repo_unreadable`.
    pub(super) code: &'static str,
    /// What is wrong (file, line, column).
    pub(super) message: String,
    /// What it would have run.
    pub(super) source: RunSource,
}

/// The repo's own secret `GIT_PASSWORD`, opened (never logged, never returned).
pub(super) async fn git_password(
    state: &AppState,
    repo: &repos::RepoRow,
) -> Result<Option<SecretValue>, ApiError> {
    let rows = secrets::for_job(&state.pool, repo.id, &[GIT_PASSWORD.to_owned()]).await?;
    let Some(row) = rows.iter().find(|r| r.repo_id == Some(repo.id)) else {
        return Ok(None);
    };
    state
        .secrets
        .open(
            Scope::of(row.repo_id),
            GIT_PASSWORD,
            &row.nonce,
            &row.ciphertext,
        )
        .map(Some)
        .map_err(|e| {
            ApiError::Internal(format!("secret {GIT_PASSWORD} of repo {}: {e}", repo.name))
        })
}

fn broken(code: &'static str, message: String) -> Outcome {
    Outcome::Broken(Broken {
        code,
        message,
        source: RunSource {
            file: None,
            templates: Vec::new(),
        },
    })
}

/// A mirror failure: the file's own faults are `config_error`, the server's `repo_unreadable`.
fn mirror_outcome(e: MirrorError) -> Result<Outcome, ApiError> {
    match e {
        MirrorError::TooBig { .. } | MirrorError::NotText { .. } => {
            Ok(broken(error_code::CONFIG_ERROR, e.to_string()))
        }
        MirrorError::Fetch { .. } | MirrorError::Missing { .. } | MirrorError::Timeout { .. } => {
            Ok(broken(error_code::REPO_UNREADABLE, e.to_string()))
        }
        MirrorError::Local(m) => Err(ApiError::Internal(m)),
    }
}

fn skip_ci(message: &str) -> Outcome {
    let first = message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect::<String>();
    Outcome::Skip(Skip {
        code: error_code::NO_MATCHING_RULE,
        reason: format!(
            "the head commit's message asks to skip CI ([skip ci] or [ci skip]): {first:?}"
        ),
    })
}

/// Decides what the trigger runs (see the module docs).
pub(super) async fn decide(state: &AppState, a: &Asked<'_>) -> Result<Outcome, ApiError> {
    let p = a.params;
    let push = p.trigger == Trigger::Push;
    if push && p.head_message.as_deref().is_some_and(webhook::skips_ci) {
        return Ok(skip_ci(p.head_message.as_deref().unwrap_or_default()));
    }
    let (Some(url), Some(commit), true) = (
        a.repo.clone_url.as_deref(),
        a.commit,
        state.config.repo_file,
    ) else {
        return attached(state, a).await;
    };
    let root = state.config.local_repo_root.clone();
    let (url_owned, password) = (url.to_owned(), a.password.map(|s| s.expose().to_owned()));
    let src = tokio::task::spawn_blocking(move || {
        git_cli::source(&url_owned, root.as_deref(), password.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the clone_url check did not finish: {e}")))?;
    let src = match src {
        Ok(s) => s,
        Err(why) if p.by_webhook() => return Ok(broken(error_code::REPO_UNREADABLE, why)),
        Err(why) => return Err(ApiError::Invalid(error_code::INVALID_CLONE_URL, why)),
    };
    let mirror = match state.mirrors.open(a.repo.id, src).await {
        Ok(m) => m,
        Err(e) => return mirror_outcome(e),
    };
    let pr_ref = (p.trigger == Trigger::PullRequest).then_some(a.git_ref);
    let read = match mirror
        .read_fetching(commit, pr_ref, MAX_TEMPLATE_BYTES)
        .await
    {
        Ok(r) => r,
        Err(e) => return mirror_outcome(e),
    };
    if push && p.head_message.is_none() && webhook::skips_ci(&read.message) {
        return Ok(skip_ci(&read.message));
    }
    match read.file {
        None => {
            drop(mirror);
            attached(state, a).await
        }
        Some(f) => from_file(state, a, &mirror, f).await,
    }
}

/// The attached templates (no pipeline file at the commit).
async fn attached(state: &AppState, a: &Asked<'_>) -> Result<Outcome, ApiError> {
    match plan_attached(state, a.repo, a.params).await? {
        Some(planned) => Ok(Outcome::Run(planned)),
        None => Ok(Outcome::Skip(Skip {
            code: error_code::NO_PIPELINE,
            reason: format!(
                "repo {} has no .gitweave.yml at {} and no attached template; commit a .gitweave.yml or attach a template with PUT /api/v1/repos/{}/templates/{{name}}",
                a.repo.name,
                a.commit.unwrap_or("the run's commit"),
                a.repo.name
            ),
        })),
    }
}

/// The paths a trigger changed, for `changes:` rules: a push against its `before` (a new
/// branch against its merge base with the default branch), a pull request against its
/// merge base with the target branch; `None` (rules match) for tags, API triggers, reruns,
/// or when the mirror cannot tell.
async fn changed_paths(m: &Mirror, a: &Asked<'_>, commit: &str) -> Option<Vec<String>> {
    let p = a.params;
    let default = a.repo.default_branch.as_str();
    let base = match (&p.trigger, &p.pull_request) {
        (Trigger::PullRequest, Some(pr)) => m.merge_base(&pr.target_branch, commit).await.ok()?,
        (Trigger::Push, _) if a.git_ref.starts_with("refs/tags/") => None,
        (Trigger::Push, _) => match p.before.as_deref() {
            Some(b) if !webhook::is_zero_sha(b) => Some(b.to_owned()),
            _ => {
                let branch = a.git_ref.strip_prefix("refs/heads/").unwrap_or(a.git_ref);
                if branch == default || !m.has_branch(default).await.ok()? {
                    None
                } else {
                    m.merge_base(default, commit).await.ok()?
                }
            }
        },
        _ => None,
    }?;
    match m.changed_paths(&base, commit).await {
        Ok(paths) => paths,
        Err(e) => {
            tracing::warn!(repo = %a.repo.name, error = %e, "changed paths unknown; changes: rules match");
            None
        }
    }
}

/// The run of the pipeline file `f` at `commit`.
async fn from_file(
    state: &AppState,
    a: &Asked<'_>,
    m: &Mirror,
    f: PipelineFile,
) -> Result<Outcome, ApiError> {
    let p = a.params;
    let file_source = RunSource {
        file: Some(SourceFile {
            path: f.path.to_owned(),
            blob: f.blob.clone(),
        }),
        templates: Vec::new(),
    };
    let broken_file = |message: String| {
        Outcome::Broken(Broken {
            code: error_code::CONFIG_ERROR,
            message,
            source: file_source.clone(),
        })
    };
    let parsed: RepoFile = match parse_repo_file(&f.text, f.path) {
        Ok(r) => r,
        Err(e) => return Ok(broken_file(e.to_string())),
    };
    if p.templates.is_some() {
        return Err(ApiError::Invalid(
            error_code::PIPELINE_FROM_FILE,
            format!(
                "the pipeline of repo {} comes from {} at the commit; templates cannot be chosen (include them in the file instead)",
                a.repo.name, f.path
            ),
        ));
    }
    let commit = a.commit.unwrap_or_default();
    let rule_ref = match &p.pull_request {
        Some(pr) => format!("refs/heads/{}", pr.target_branch),
        None => a.git_ref.to_owned(),
    };
    let changed = if rules::uses_changes(&parsed.rules, parsed.pipeline.as_ref()) {
        changed_paths(m, a, commit).await
    } else {
        None
    };
    let ctx = RuleContext::of_ref(RuleEvent::from(p.trigger), &rule_ref, changed.as_deref());
    let what = || {
        let at = ctx
            .branch
            .map(|b| format!("branch {b}"))
            .or_else(|| ctx.tag.map(|t| format!("tag {t}")))
            .unwrap_or_else(|| format!("ref {}", a.git_ref));
        format!("a {} event on {at}", ctx.event)
    };
    if !rules::allows(&parsed.rules, &ctx) {
        return Ok(Outcome::Skip(Skip {
            code: error_code::NO_MATCHING_RULE,
            reason: format!("no rule of {} matches {}", f.path, what()),
        }));
    }

    // The included templates, as stored now (their versions are recorded on the run).
    if let Err(why) = repo_plan::check_includes(&parsed) {
        return Ok(broken_file(format!("{}: {why}", f.path)));
    }
    let mut refs: Vec<StageRef> = Vec::with_capacity(parsed.include.len());
    let mut included: Vec<Template> = Vec::with_capacity(parsed.include.len());
    for (i, inc) in parsed.include.iter().enumerate() {
        let name = inc.template.as_str();
        let Some(row) = templates::get(&state.pool, name).await? else {
            return Ok(broken_file(format!(
                "{}: include[{i}]: template {name:?} is not stored; store it with PUT /api/v1/templates/{name}",
                f.path
            )));
        };
        let t: Template = serde_json::from_value(row.parsed).map_err(|e| {
            ApiError::Internal(format!("stored template {name} does not load: {e}"))
        })?;
        refs.push(StageRef {
            name: row.name,
            version: row.version,
        });
        included.push(t);
    }
    let own = repo_plan::own_jobs(&parsed, &ctx);
    if included.is_empty() && own.is_none() {
        return Ok(Outcome::Skip(Skip {
            code: error_code::NO_MATCHING_RULE,
            reason: format!(
                "every job of {} is left out by its rules for {}",
                f.path,
                what()
            ),
        }));
    }
    let stages = repo_plan::stages(&parsed, &included, own.as_ref());
    let given = input_strings(&p.inputs)?;
    let run = match run_plan::plan_run(&stages, &given) {
        Ok(r) => r,
        Err(e) if p.by_webhook() => return Ok(broken_file(format!("{}: {e}", f.path))),
        Err(e) => return Err(plan_error(e, &a.repo.name)),
    };
    let templates = refs
        .iter()
        .map(|r| TemplateVersion {
            name: r.name.clone(),
            version: r.version,
        })
        .collect();
    if own.is_some() {
        refs.push(StageRef {
            name: FILE_STAGE.to_owned(),
            version: 0,
        });
    }
    Ok(Outcome::Run(Planned {
        stages: refs,
        run,
        source: RunSource {
            templates,
            ..file_source
        },
    }))
}
