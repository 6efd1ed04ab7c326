//! The writer of a planned run: one transaction inserts the run, its delivery, its jobs in the
//! state the first plan step leaves them in, and their events.

use super::{CreatedRun, Planned, TriggerParams, Triggered};
use crate::error::ApiError;
use crate::orchestrator::planning::{action_event, run_completed_event, run_status_event};
use crate::orchestrator::run_tx::RunTx;
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_api::public::RunError;
use gitweave_model::plan::JobState;
use gitweave_model::status::{EventType, RunStatus};
use gitweave_storage::events::NewEvent;
use gitweave_storage::{deliveries, jobs, repos, runs};
use uuid::Uuid;

/// What [`write`] inserts.
pub(crate) struct Write<'a> {
    pub(crate) repo: &'a repos::RepoRow,
    pub(crate) params: &'a TriggerParams,
    pub(crate) git_ref: &'a str,
    pub(crate) commit: Option<&'a str>,
    pub(crate) planned: &'a Planned,
    /// Why the run cannot run: it is written `failed`, without jobs.
    pub(crate) error: Option<&'a RunError>,
}

/// Inserts the planned run, its delivery, its jobs (already in the first step's state) and
/// their events in one transaction; a delivery another transaction recorded first makes it
/// roll back and answer that delivery's run.
pub(super) async fn write(state: &AppState, w: &Write<'_>) -> Result<Triggered, ApiError> {
    let (p, plan) = (w.params, &w.planned.run);
    let run_id = Uuid::now_v7();
    let job_ids: Vec<Uuid> = plan.jobs.iter().map(|_| Uuid::now_v7()).collect();
    let specs = plan
        .jobs
        .iter()
        .map(|j| serde_json::to_value(&j.job).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let depends_on: Vec<Vec<i32>> = plan
        .jobs
        .iter()
        .map(|j| j.depends_on.iter().map(|&i| i as i32).collect())
        .collect();
    let stages: Vec<usize> = plan.jobs.iter().map(|j| j.stage).collect();
    let deps: Vec<&[usize]> = plan.jobs.iter().map(|j| j.depends_on.as_slice()).collect();
    let needs_stage = gitweave_model::plan::whole_stage_needs(&stages, &deps);
    let new_jobs: Vec<jobs::NewJob<'_>> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let template = &w.planned.stages[j.stage];
            jobs::NewJob {
                id: job_ids[i],
                position: i as i32,
                stage: j.stage as i32,
                template: &template.name,
                template_version: template.version,
                name: &j.name,
                spec: &specs[i],
                depends_on: &depends_on[i],
                needs_stage: needs_stage[i].map(|s| s as i32),
                allow_failure: j.job.allow_failure,
                when: j.job.when.as_str(),
                status: j.state.status(),
                released: j.state == JobState::Released,
            }
        })
        .collect();
    let template_names: Vec<String> = w.planned.stages.iter().map(|a| a.name.clone()).collect();
    let inputs_json = to_json(&p.inputs)?;
    let source_json = to_json(&w.planned.source)?;
    let error_json = w.error.map(to_json).transpose()?;
    let pr_json = p.pull_request.as_ref().map(to_json).transpose()?;

    let mut tx = RunTx::begin(state, run_id).await?;
    let run = runs::insert(
        &mut *tx,
        &runs::NewRun {
            id: run_id,
            repo_id: w.repo.id,
            git_ref: w.git_ref,
            commit_sha: w.commit,
            trigger: p.trigger.as_str(),
            templates: &template_names,
            inputs: &inputs_json,
            rerun_of: p.rerun_of,
            job_count: plan.jobs.len() as i32,
            status: plan.run_status,
            clone_url: w.repo.clone_url.as_deref(),
            source: Some(&source_json),
            error: error_json.as_ref(),
            pull_request: pr_json.as_ref(),
        },
        &w.repo.name,
    )
    .await?;
    if let Some(d) = &p.delivery {
        // Waits for a concurrent transaction holding the same delivery, then sees it.
        if !deliveries::insert(&mut *tx, &d.provider, &d.id, w.repo.id, run_id).await? {
            tx.rollback().await?;
            let run_id = deliveries::run_of(&state.pool, &d.provider, &d.id)
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict(
                        error_code::DUPLICATE_DELIVERY,
                        format!("delivery {} was already received", d.id),
                    )
                })?;
            return Ok(Triggered::DuplicateDelivery(run_id));
        }
    }
    tx.record(NewEvent {
        reason: Some(format!(
            "{} trigger of {} at {}",
            p.trigger, w.repo.name, w.git_ref
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
    for &action in &plan.actions {
        let i = action.job();
        let blockers = || {
            plan.jobs[i]
                .depends_on
                .iter()
                .map(|&d| plan.jobs[d].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(event) = action_event(action, job_ids[i], blockers, &p.actor) {
            tx.record(event);
        }
    }
    if plan.run_status != RunStatus::Queued {
        tx.record(run_status_event(
            RunStatus::Queued,
            plan.run_status,
            &p.actor,
            w.error.map(|e| e.message.as_str()),
        ));
        if plan.run_status.is_terminal() {
            tx.record(run_completed_event(plan.run_status, &p.actor));
        }
    }
    // The jobs and every event above in one statement.
    let events = tx.take_events();
    let jobs = jobs::insert_all(&mut *tx, run_id, &new_jobs, &events).await?;
    tx.commit().await?;
    Ok(Triggered::Created(Box::new(CreatedRun { run, jobs })))
}

/// A value as the JSON of its column.
fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))
}
