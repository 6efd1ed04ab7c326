//! Turning a trigger (API, webhook, rerun) into a run and its jobs, in one transaction.

use super::*;

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
pub struct Triggered {
    /// The run.
    pub run_id: Uuid,
    /// True when the delivery had been seen: `run_id` is the run it made then.
    pub duplicate: bool,
    /// The new run as committed (`None` for a duplicate delivery).
    pub run: Option<gitweave_api::public::Run>,
}

fn input_string(name: &str, v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::Invalid(
            "invalid_input",
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

/// The 422 for an expansion failure: `limit_exceeded` for a size cap, else `invalid_input`.
fn expand_error(e: expand::ExpandError, template: &str) -> ApiError {
    match e {
        expand::ExpandError::Limit(l) => l.into(),
        other => ApiError::Invalid("invalid_input", other.with_template(template).to_string()),
    }
}

fn validate_ref(r: &str) -> Result<(), ApiError> {
    let ok = !r.is_empty() && r.len() <= 255 && !r.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            "invalid_ref",
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
            "invalid_commit",
            format!("commit {c:?} is not a hex sha (4 to 64 hex digits)"),
        ))
    }
}

struct PlannedJob {
    stage: usize,
    template: String,
    template_version: i32,
    job: ExpandedJob,
}

/// Creates a run and all its jobs in one transaction, releases what can start, and wakes the
/// runners.
pub async fn trigger(state: &AppState, p: TriggerParams) -> Result<Triggered, ApiError> {
    let repo = repos::get(&state.pool, &p.repo)
        .await?
        .ok_or_else(|| ApiError::not_found("repo", &p.repo))?;
    if let Some(d) = &p.delivery
        && let Some(run_id) = deliveries::run_of(&state.pool, &d.provider, &d.id).await?
    {
        return Ok(Triggered {
            run_id,
            duplicate: true,
            run: None,
        });
    }
    let git_ref = p
        .git_ref
        .clone()
        .unwrap_or_else(|| repo.default_branch.clone());
    validate_ref(&git_ref)?;
    if let Some(c) = &p.commit {
        validate_commit(c)?;
    }
    let attached = templates::attached(&state.pool, repo.id).await?;
    if attached.is_empty() {
        return Err(ApiError::Invalid(
            "no_templates",
            format!(
                "repo {} has no attached template; attach one with PUT /api/v1/repos/{}/templates/{{name}}",
                repo.name, repo.name
            ),
        ));
    }
    let selected: Vec<_> = match &p.templates {
        None => attached.iter().collect(),
        Some(names) => {
            if names.is_empty() {
                return Err(ApiError::Invalid(
                    "no_templates",
                    "templates must name at least one attached template".into(),
                ));
            }
            if let Some(missing) = names
                .iter()
                .find(|n| !attached.iter().any(|a| &a.name == *n))
            {
                return Err(ApiError::Invalid(
                    "template_not_attached",
                    format!("template {missing:?} is not attached to repo {}", repo.name),
                ));
            }
            attached
                .iter()
                .filter(|a| names.contains(&a.name))
                .collect()
        }
    };
    let parsed: Vec<Template> = selected
        .iter()
        .map(|a| {
            serde_json::from_value(a.parsed.clone()).map_err(|e| {
                ApiError::Internal(format!("stored template {} does not load: {e}", a.name))
            })
        })
        .collect::<Result<_, _>>()?;
    let job_count: usize = parsed.iter().map(|t| t.jobs.len()).sum();
    if job_count > limits::MAX_RUN_JOBS {
        return Err(limits::LimitExceeded::new(
            limits::Limit::RunJobs,
            limits::MAX_RUN_JOBS,
            format!(
                "the run would have {job_count} jobs, more than {}",
                limits::MAX_RUN_JOBS
            ),
        )
        .into());
    }
    let given = input_strings(&p.inputs)?;
    let undeclared = expand::undeclared(&parsed.iter().collect::<Vec<_>>(), given.keys());
    if !undeclared.is_empty() {
        return Err(ApiError::Invalid(
            "unknown_input",
            format!(
                "input(s) {} are declared by none of the templates {}",
                undeclared.join(", "),
                selected
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    let mut planned = Vec::new();
    let mut dag = Vec::new();
    // One budget for the whole run: expansion stops as soon as a job or the run passes its cap.
    let mut budget = expand::RunBudget::new();
    for (stage, (a, t)) in selected.iter().zip(&parsed).enumerate() {
        let defaults: BTreeMap<String, String> =
            serde_json::from_value(a.inputs.clone()).map_err(|e| {
                ApiError::Internal(format!("stored inputs of {} do not load: {e}", a.name))
            })?;
        let values =
            expand::resolve_inputs(t, &defaults, &given).map_err(|e| expand_error(e, &a.name))?;
        for j in &t.jobs {
            let job = expand::expand_job(t, j, &values, &mut budget)
                .map_err(|e| expand_error(e, &a.name))?;
            planned.push(PlannedJob {
                stage,
                template: a.name.clone(),
                template_version: a.version,
                job,
            });
        }
        dag.push(t.uses_dag());
    }
    let stage_jobs: Vec<StageJob> = planned
        .iter()
        .map(|pj| StageJob {
            stage: pj.stage,
            needs: pj
                .job
                .needs
                .iter()
                .filter_map(|n| {
                    planned
                        .iter()
                        .position(|o| o.stage == pj.stage && o.job.name == *n)
                })
                .collect(),
        })
        .collect();
    let deps = plan::dependencies(&stage_jobs, &dag);

    // A new run's first plan step is decided here, before anything is written: every job
    // is pending, so the step depends only on the template. Run and jobs are then inserted
    // already in the state that step leaves them in, and the answer is made from what the
    // inserts return, with no re-planning and no read after the commit.
    let nodes: Vec<Node> = planned
        .iter()
        .zip(&deps)
        .map(|(pj, deps)| Node {
            state: JobState::Pending,
            depends_on: deps.clone(),
            allow_failure: pj.job.allow_failure,
            when: pj.job.when,
        })
        .collect();
    let step = plan::advance(&nodes);
    let mut first: Vec<Option<Action>> = vec![None; planned.len()];
    for &action in &step.actions {
        first[action.job()] = Some(action);
    }

    let run_id = Uuid::now_v7();
    let job_ids: Vec<Uuid> = planned.iter().map(|_| Uuid::now_v7()).collect();
    let names: Vec<String> = planned
        .iter()
        .map(|pj| format!("{}/{}", pj.template, pj.job.name))
        .collect();
    let specs = planned
        .iter()
        .map(|pj| serde_json::to_value(&pj.job).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let depends_on: Vec<Vec<i32>> = deps
        .iter()
        .map(|d| d.iter().map(|&i| i as i32).collect())
        .collect();
    let new_jobs: Vec<jobs::NewJob<'_>> = planned
        .iter()
        .enumerate()
        .map(|(i, pj)| {
            let status = match first[i] {
                Some(Action::AwaitApproval(_)) => JobStatus::Manual,
                Some(Action::Skip(_)) => JobStatus::Skipped,
                Some(Action::Release(_)) | None => JobStatus::Queued,
            };
            jobs::NewJob {
                id: job_ids[i],
                position: i as i32,
                stage: pj.stage as i32,
                template: &pj.template,
                template_version: pj.template_version,
                name: &names[i],
                spec: &specs[i],
                depends_on: &depends_on[i],
                allow_failure: pj.job.allow_failure,
                when: pj.job.when.as_str(),
                status,
                released: matches!(first[i], Some(Action::Release(_))),
            }
        })
        .collect();

    let template_names: Vec<String> = selected.iter().map(|a| a.name.clone()).collect();
    let inputs_json =
        serde_json::to_value(&p.inputs).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = RunTx::begin(state, run_id).await?;
    let run_row = runs::insert(
        &mut *tx,
        &runs::NewRun {
            id: run_id,
            repo_id: repo.id,
            git_ref: &git_ref,
            commit_sha: p.commit.as_deref(),
            trigger: p.trigger.as_str(),
            templates: &template_names,
            inputs: &inputs_json,
            rerun_of: p.rerun_of,
            job_count: planned.len() as i32,
            status: step.run_status,
            clone_url: repo.clone_url.as_deref(),
        },
        &repo.name,
    )
    .await?;
    if let Some(d) = &p.delivery {
        // Waits for a concurrent transaction holding the same delivery, then sees it.
        if !deliveries::insert(&mut *tx, &d.provider, &d.id, repo.id, run_id).await? {
            tx.rollback().await?;
            let run_id = deliveries::run_of(&state.pool, &d.provider, &d.id)
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict(
                        "duplicate_delivery",
                        format!("delivery {} was already received", d.id),
                    )
                })?;
            return Ok(Triggered {
                run_id,
                duplicate: true,
                run: None,
            });
        }
    }
    let job_rows = jobs::insert_all(&mut *tx, run_id, &new_jobs).await?;
    tx.record(NewEvent {
        reason: Some(format!(
            "{} trigger of {} at {git_ref}",
            p.trigger, repo.name
        )),
        ..NewEvent::new(EventType::RunCreated, &p.actor)
    });
    for id in &job_ids {
        tx.record(NewEvent {
            job_id: Some(*id),
            ..NewEvent::new(EventType::JobQueued, &p.actor)
        });
    }
    // The first plan step's events, in the order re-planning records them.
    for &action in &step.actions {
        let i = action.job();
        let blockers = || {
            deps[i]
                .iter()
                .map(|&d| names[d].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(event) = action_event(action, job_ids[i], blockers, &p.actor) {
            tx.record(event);
        }
    }
    if step.run_status != RunStatus::Queued {
        tx.record(run_status_event(
            RunStatus::Queued,
            step.run_status,
            &p.actor,
            None,
        ));
        if step.run_status.is_terminal() {
            tx.record(run_completed_event(step.run_status, &p.actor));
        }
    }
    tx.commit().await?;
    let released = step
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Release(_)))
        .count();
    state.metrics.inc(
        "gitweave_runs_triggered_total",
        &format!("trigger=\"{}\"", p.trigger),
    );
    if released > 0 {
        state.wake_runners(released);
    }
    tracing::info!(run.id = %run_id, repo = %repo.name, jobs = planned.len(), "run created");
    Ok(Triggered {
        run_id,
        duplicate: false,
        run: Some(crate::views::run(&run_row, &job_rows)?),
    })
}
