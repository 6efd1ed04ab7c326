//! A trigger's run, planned before anything is written: which attached templates run, every
//! job expanded with its inputs, each job's dependencies, and the run's first plan step.
//!
//! [`select`] and [`plan_run`] are pure: the service loads the repo's attached templates, calls
//! them, and writes
//! the [`PlannedRun`] it answers in one transaction. A new run's first step depends only on
//! its templates (every job is pending), so it is decided here too, and the run and its jobs
//! are inserted already in the state that step leaves them in.

use crate::expand::{self, ExpandError, ExpandedJob};
use crate::limits::{self, LimitExceeded};
use crate::plan::{self, Action, JobState, Node, StageJob};
use crate::status::RunStatus;
use crate::template::Template;
use std::collections::BTreeMap;

/// One template of the run (a stage), as the planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    /// The template's stored name (which wins over the `name:` in its YAML).
    pub name: &'a str,
    /// The validated template (its latest version).
    pub template: &'a Template,
    /// The attachment's default inputs.
    pub defaults: &'a BTreeMap<String, String>,
    /// Whether its jobs run as a DAG; `None`: when the template has `needs`. A template
    /// whose rules left out jobs keeps the mode of the whole ([`crate::rules::keep_jobs`]).
    pub dag: Option<bool>,
}

/// One job of a planned run, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    /// Its stage: the index of its template in the stages given to [`plan_run`].
    pub stage: usize,
    /// `<template>/<job>`, the name the API shows.
    pub name: String,
    /// The job with its inputs substituted: what a runner executes.
    pub job: ExpandedJob,
    /// Indexes (into [`PlannedRun::jobs`]) of the jobs it waits for.
    pub depends_on: Vec<usize>,
    /// Where the first plan step leaves it: [`JobState::Released`], [`JobState::Manual`],
    /// [`JobState::Skipped`] or [`JobState::Pending`].
    pub state: JobState,
}

/// A run as a trigger plans it, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    /// Every job, in pipeline order.
    pub jobs: Vec<PlannedJob>,
    /// The first plan step's actions, in the order their events are recorded.
    pub actions: Vec<Action>,
    /// The run's status after the first step.
    pub run_status: RunStatus,
}

impl PlannedRun {
    /// How many jobs the first step offers to runners.
    pub fn released(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Release(_)))
            .count()
    }
}

/// Why a trigger cannot make a run. The messages name what is wrong; the repo's name, which
/// the planner does not know, is added by the caller where it helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The repo has no template attached.
    #[error("no template is attached")]
    NothingAttached,
    /// The trigger's `templates` list is empty.
    #[error("templates must name at least one attached template")]
    EmptySelection,
    /// The trigger names a template that is not attached.
    #[error("template {0:?} is not attached")]
    NotAttached(String),
    /// Input values that none of the run's templates declares (sorted).
    #[error(
        "input(s) {} are declared by none of the templates {}",
        .names.join(", "),
        .templates.join(", ")
    )]
    UnknownInputs {
        /// The undeclared names.
        names: Vec<String>,
        /// The run's templates.
        templates: Vec<String>,
    },
    /// Too many jobs, or an input or expanded text too large.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// Inputs of a template could not be resolved or one of its jobs expanded (the error
    /// names the template).
    #[error(transparent)]
    Expand(ExpandError),
}

/// The 422 kinds of an expansion failure: a size cap becomes [`PlanError::Limit`].
fn expand_error(e: ExpandError, template: &str) -> PlanError {
    match e {
        ExpandError::Limit(l) => PlanError::Limit(l),
        other => PlanError::Expand(other.with_template(template)),
    }
}

/// The run's templates, as indexes into `attached` (the names of the repo's attached
/// templates, in attach order): all of them, or those `only` names, in attach order whatever
/// order `only` gives.
pub fn select(attached: &[&str], only: Option<&[String]>) -> Result<Vec<usize>, PlanError> {
    if attached.is_empty() {
        return Err(PlanError::NothingAttached);
    }
    let Some(names) = only else {
        return Ok((0..attached.len()).collect());
    };
    if names.is_empty() {
        return Err(PlanError::EmptySelection);
    }
    if let Some(missing) = names.iter().find(|n| !attached.contains(&n.as_str())) {
        return Err(PlanError::NotAttached(missing.clone()));
    }
    Ok((0..attached.len())
        .filter(|&i| names.iter().any(|n| n == attached[i]))
        .collect())
}

/// Plans a run of `stages` (the templates [`select`] chose, in order) with the trigger's
/// `inputs` (see the module docs): checks the job count and the inputs, expands every job
/// under one run-wide budget, wires the dependencies ([`plan::dependencies`]) and takes the
/// first plan step ([`plan::advance`]).
pub fn plan_run(
    stages: &[Stage<'_>],
    inputs: &BTreeMap<String, String>,
) -> Result<PlannedRun, PlanError> {
    let job_count: usize = stages.iter().map(|s| s.template.jobs.len()).sum();
    if job_count > limits::MAX_RUN_JOBS {
        return Err(LimitExceeded::new(
            limits::Limit::RunJobs,
            limits::MAX_RUN_JOBS,
            format!(
                "the run would have {job_count} jobs, more than {}",
                limits::MAX_RUN_JOBS
            ),
        )
        .into());
    }
    let chosen: Vec<&Template> = stages.iter().map(|s| s.template).collect();
    let names = expand::undeclared(&chosen, inputs.keys());
    if !names.is_empty() {
        return Err(PlanError::UnknownInputs {
            names,
            templates: stages.iter().map(|s| s.name.to_owned()).collect(),
        });
    }

    // One budget for the whole run: expansion stops as soon as a job or the run passes its cap.
    let mut budget = expand::RunBudget::new();
    let mut expanded: Vec<(usize, ExpandedJob)> = Vec::with_capacity(job_count);
    for (stage, s) in stages.iter().enumerate() {
        let values = expand::resolve_inputs(s.template, s.defaults, inputs)
            .map_err(|e| expand_error(e, s.name))?;
        for j in &s.template.jobs {
            let job = expand::expand_job(s.template, j, &values, &mut budget)
                .map_err(|e| expand_error(e, s.name))?;
            expanded.push((stage, job));
        }
    }
    let dag: Vec<bool> = stages
        .iter()
        .map(|s| s.dag.unwrap_or_else(|| s.template.uses_dag()))
        .collect();
    let stage_jobs: Vec<StageJob> = expanded
        .iter()
        .map(|(stage, job)| StageJob {
            stage: *stage,
            needs: job
                .needs
                .iter()
                .filter_map(|n| {
                    expanded
                        .iter()
                        .position(|(s, other)| s == stage && other.name == *n)
                })
                .collect(),
        })
        .collect();
    let deps = plan::dependencies(&stage_jobs, &dag);
    let names: Vec<&str> = stages.iter().map(|s| s.name).collect();
    Ok(first_step(
        expanded
            .into_iter()
            .zip(deps)
            .map(|((stage, job), depends_on)| StoredJob {
                stage,
                name: format!("{}/{}", names[stage], job.name),
                job,
                depends_on,
            })
            .collect(),
    ))
}

/// A job of a run already expanded: what a rerun copies from the run it reruns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    /// Its stage.
    pub stage: usize,
    /// `<template>/<job>`.
    pub name: String,
    /// The job as it was expanded.
    pub job: ExpandedJob,
    /// Indexes of the jobs it waits for.
    pub depends_on: Vec<usize>,
}

/// A run of `jobs` exactly as they were expanded and wired before (a rerun runs what the
/// run it reruns ran, not the templates' current versions), with its first plan step.
pub fn replan(jobs: Vec<StoredJob>) -> PlannedRun {
    first_step(jobs)
}

/// Takes the first plan step of a new run of `jobs` (every job pending).
fn first_step(jobs: Vec<StoredJob>) -> PlannedRun {
    let nodes: Vec<Node> = jobs
        .iter()
        .map(|j| Node {
            state: JobState::Pending,
            depends_on: j.depends_on.clone(),
            allow_failure: j.job.allow_failure,
            when: j.job.when,
        })
        .collect();
    let step = plan::advance(&nodes);
    let mut states = vec![JobState::Pending; nodes.len()];
    for &action in &step.actions {
        states[action.job()] = match action {
            Action::Release(_) => JobState::Released,
            Action::AwaitApproval(_) => JobState::Manual,
            Action::Skip(_) => JobState::Skipped,
        };
    }
    let jobs = jobs
        .into_iter()
        .zip(states)
        .map(|(j, state)| PlannedJob {
            stage: j.stage,
            name: j.name,
            job: j.job,
            depends_on: j.depends_on,
            state,
        })
        .collect();
    PlannedRun {
        jobs,
        actions: step.actions,
        run_status: step.run_status,
    }
}

#[cfg(test)]
mod tests;
