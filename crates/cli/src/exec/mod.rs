//! `gitweave exec`: the working tree's pipeline run on this machine, with no server: the
//! file read by [`crate::local_pipeline::load`], planned by the model code pipeline-svc uses
//! (`run_plan::plan_run`, `plan::advance`: the same DAG, sequential order, fail-closed skips,
//! `when`, `allow_failure`), each job run through the `gitweave_engine` engine runner-svc
//! uses (docker, or `--engine shell`), with the same retry policy, backoff and timeout. The
//! workspace starts as a copy of the work tree, uncommitted changes included and
//! `.gitignore`d files left out ([`worktree`]).
//!
//! Where a local run differs: a `when: manual` job runs only when named with `--job` (that
//! is its approval); otherwise it is skipped, and with it what depends on it. Secrets named by
//! a job come from this process's environment variable of the same name (masked in the
//! output); one that is not set fails the job as `config_error`, as on the server.

mod attempt;
mod events;
pub(crate) mod worktree;

use crate::client::Client;
use crate::includes::{self, Fetched};
use crate::local_pipeline::{self, LocalPipeline, STAGE};
use crate::local_rules::LocalPush;
use crate::output::{Out, Table, job_mark, run_colour};
use anyhow::{Context, bail};
use attempt::{JobEnd, JobRun, RunCtx};
use events::Printer;
use gitweave_engine::Engine;
use gitweave_engine::docker::{DockerEngine, PullPolicy};
use gitweave_engine::sandbox::JobNetwork;
use gitweave_engine::shell::ShellEngine;
use gitweave_model::plan::{self, Action, JobState, Node};
use gitweave_model::repo_plan;
use gitweave_model::rules;
use gitweave_model::run_plan::{PlannedRun, Stage, plan_run};
use gitweave_model::status::{JobStatus, RunStatus};
use gitweave_model::template::{Template, When};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Which engine runs the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// Each job in a container of its image (the local Docker daemon, `DOCKER_HOST`).
    Docker,
    /// Each job as a host process in a temporary copy of the tree (no isolation).
    Shell,
}

/// What `gitweave exec` was asked.
pub struct ExecArgs {
    /// The pipeline file (default: `.gitweave.yml` at the work tree's root).
    pub file: Option<PathBuf>,
    /// Only these jobs, and what they depend on.
    pub jobs: Vec<String>,
    /// `NAME=VALUE` inputs.
    pub inputs: Vec<(String, String)>,
    /// The engine.
    pub engine: EngineKind,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Never pull a missing image.
    pub pull_never: bool,
    /// Copy `.gitignore`d files too.
    pub include_ignored: bool,
}

/// Exit code after Ctrl-C canceled the local run.
const INTERRUPTED: u8 = 130;

/// The jobs the run keeps: those named and, transitively, what they depend on, as one
/// template per stage (a stage none of whose jobs is kept is dropped; each keeps its
/// scheduling mode). A name is `<stage>/<job>`, or `<job>` when one stage has it (the file's
/// own stage first). Named manual jobs become `on_success` (naming them approves them).
/// Unknown names are an error with the closest job name.
fn select(
    stages: &[Stage<'_>],
    planned: &PlannedRun,
    names: &[String],
) -> anyhow::Result<Vec<(usize, Template)>> {
    let all: Vec<&str> = planned.jobs.iter().map(|j| j.name.as_str()).collect();
    // Each planned job's index inside its stage's template (plan_run keeps file order).
    let mut local = Vec::with_capacity(planned.jobs.len());
    let mut seen = vec![0usize; stages.len()];
    for j in &planned.jobs {
        local.push(seen[j.stage]);
        seen[j.stage] += 1;
    }
    let mut todo = Vec::new();
    for n in names {
        let exact = all.iter().position(|a| a == n);
        let bare: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].rsplit_once('/').is_some_and(|(_, job)| job == n))
            .collect();
        let own = bare
            .iter()
            .copied()
            .find(|&i| stages[planned.jobs[i].stage].name == STAGE);
        let i = match (exact, bare.as_slice(), own) {
            (Some(i), _, _) => i,
            (None, _, Some(i)) => i,
            (None, [i], None) => *i,
            (None, [], None) => {
                let bare_names = all
                    .iter()
                    .filter_map(|a| a.rsplit_once('/').map(|(_, j)| j));
                let hint = crate::suggest::closest(n, all.iter().copied().chain(bare_names))
                    .map_or(String::new(), |s| format!("; did you mean {s:?}?"));
                bail!(
                    "the pipeline has no job {n:?}{hint} (its jobs: {})",
                    all.join(", ")
                );
            }
            (None, many, None) => bail!(
                "{n:?} is a job of several stages: name one of {}",
                many.iter().map(|&i| all[i]).collect::<Vec<_>>().join(", ")
            ),
        };
        todo.push(i);
    }
    let named: BTreeSet<usize> = todo.iter().copied().collect();
    let mut keep = BTreeSet::new();
    while let Some(i) = todo.pop() {
        if keep.insert(i) {
            todo.extend(planned.jobs[i].depends_on.iter().copied());
        }
    }
    let mut out = Vec::new();
    for (si, stage) in stages.iter().enumerate() {
        let kept: Vec<usize> = (0..planned.jobs.len())
            .filter(|i| planned.jobs[*i].stage == si && (names.is_empty() || keep.contains(i)))
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut t = stage.template.clone();
        t.jobs = kept
            .iter()
            .map(|&i| {
                let mut j = stage.template.jobs[local[i]].clone();
                if named.contains(&i) && j.when == When::Manual {
                    j.when = When::OnSuccess;
                }
                // Needs on jobs left out cannot be: the closure keeps every dependency.
                j
            })
            .collect();
        out.push((si, t));
    }
    Ok(out)
}

fn engine_for(args: &ExecArgs, run: &str) -> impl Future<Output = anyhow::Result<Arc<dyn Engine>>> {
    let kind = args.engine;
    let pull = if args.pull_never {
        PullPolicy::Never
    } else {
        PullPolicy::IfNotPresent
    };
    let run = run.to_owned();
    async move {
        Ok(match kind {
            EngineKind::Docker => {
                // Labels its containers and volume: what this run made, and only that.
                let runner = format!("exec-{run}");
                let e = DockerEngine::connect(&runner, pull, "gitweave-exec-")
                    .await
                    .context("connecting to Docker (DOCKER_HOST or the local socket); --engine shell runs jobs on the host instead")?
                    // Each job its own loopback-only namespace: no sandbox container to start.
                    .with_job_network(JobNetwork::Job, false, 0);
                Arc::new(e) as Arc<dyn Engine>
            }
            EngineKind::Shell => {
                let dir = std::env::temp_dir().join("gitweave-exec");
                Arc::new(ShellEngine::new(dir)) as Arc<dyn Engine>
            }
        })
    }
}

/// How many waiting jobs have their first container made ahead.
const AHEAD: usize = 2;

/// Runs the pipeline (see the module docs); the exit code is the run's result.
pub async fn run(args: ExecArgs, out: Out, c: &Client) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let root = worktree::root(&cwd)?;
    let path = local_pipeline::find(args.file.as_deref(), &root)?;
    let pipeline: LocalPipeline = match local_pipeline::load(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gitweave: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let shown = path.display().to_string();
    let file = &pipeline.file;
    // The rules, for a push of the current branch (crate::local_rules), by the model's code.
    let push = LocalPush::of(&root, file)?;
    let ctx = push.context();
    if !rules::allows(&file.rules, &ctx) {
        eprintln!(
            "gitweave: no rule of {shown} matches {}: nothing to run",
            push.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(why) = repo_plan::check_includes(file) {
        eprintln!("gitweave: {shown}: {why}");
        return Ok(ExitCode::FAILURE);
    }
    // The included templates, from the server, as a trigger would take them.
    let mut included: Vec<Template> = Vec::with_capacity(file.include.len());
    if !file.include.is_empty() {
        let fetched = match includes::fetch(c, file).await {
            Ok(f) => f,
            Err(e @ includes::FetchError::Unreachable { .. }) => {
                let names: Vec<String> = file
                    .include
                    .iter()
                    .enumerate()
                    .map(|(i, inc)| format!("include[{i}] {:?}", inc.template.as_str()))
                    .collect();
                bail!(
                    "{shown}: {} must come from the server, but {e}; start it or point --url / GITWEAVE_URL at it (exec does not run a pipeline without its includes)",
                    names.join(", ")
                );
            }
            Err(e) => return Err(e.into()),
        };
        for (i, (inc, got)) in file.include.iter().zip(fetched).enumerate() {
            match got {
                Fetched::Stored { template, .. } => included.push(*template),
                Fetched::Missing => {
                    eprintln!(
                        "gitweave: {shown}: include[{i}]: template {:?} is not stored on GitWeave at {}",
                        inc.template.as_str(),
                        c.base
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    let own = repo_plan::own_jobs(file, &ctx);
    if included.is_empty() && own.is_none() {
        eprintln!(
            "gitweave: every job of {shown} is left out by its rules for {}: nothing to run",
            push.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stages = repo_plan::stages(file, &included, own.as_ref());
    let inputs: BTreeMap<String, String> = args.inputs.iter().cloned().collect();
    let full = plan_run(&stages, &inputs).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let chosen = select(&stages, &full, &args.jobs)?;
    let chosen_stages: Vec<Stage<'_>> = chosen
        .iter()
        .map(|(si, t)| Stage {
            template: t,
            dag: Some(
                stages[*si]
                    .dag
                    .unwrap_or_else(|| stages[*si].template.uses_dag()),
            ),
            ..stages[*si]
        })
        .collect();
    let planned = plan_run(&chosen_stages, &inputs).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;

    let run_id = Uuid::now_v7();
    let names: Vec<String> = planned.jobs.iter().map(|j| j.name.clone()).collect();
    let printer = Printer::new(out.json, out.colour, &names);
    let files = worktree::files(&root, args.include_ignored)?;
    let tar = {
        let (root, files) = (root.clone(), files.clone());
        tokio::task::spawn_blocking(move || gitweave_engine::seed::archive(&root, &files))
            .await
            .context("copying the work tree")?
            .context("copying the work tree")?
    };
    let engine = engine_for(&args, &run_id.simple().to_string()).await?;
    let repo = crate::current_repo::resolve(None).unwrap_or_else(|_| {
        root.file_name()
            .map_or("local".into(), |n| n.to_string_lossy().into_owned())
    });
    let (git_ref, commit) = (worktree::head_ref(&root), worktree::head_commit(&root));
    printer.event(
        json!({
            "event": "run.started",
            "run_id": run_id,
            "file": path.display().to_string(),
            "files": files.len(),
            "engine": format!("{:?}", args.engine).to_lowercase(),
            "jobs": names,
        }),
        Some(format!(
            "==> {} from {} ({} files copied, {} engine)",
            names.join(", "),
            path.display(),
            files.len(),
            format!("{:?}", args.engine).to_lowercase()
        )),
    );

    let cancel = CancellationToken::new();
    let ctx = Arc::new(RunCtx {
        engine: engine.clone(),
        seed: tokio::sync::Mutex::new(Some(tar)),
        workspace: format!("exec-{}", run_id.simple()),
        shares_run: planned.jobs.len() > 1,
        cancel: cancel.clone(),
        printer: printer.clone(),
        retry_base: Duration::from_secs(2),
        ahead: Default::default(),
        removals: Default::default(),
    });
    // Each job's id and environment, made once: a container made ahead is the one it runs in.
    let mut job_runs: Vec<Option<JobRun>> = (0..planned.jobs.len())
        .map(|i| {
            Some(job_run(
                &planned,
                i,
                run_id,
                &repo,
                &git_ref,
                &commit,
                args.engine,
            ))
        })
        .collect();
    let mut nodes: Vec<Node> = planned
        .jobs
        .iter()
        .map(|j| Node {
            state: JobState::Pending,
            depends_on: j.depends_on.clone(),
            allow_failure: j.job.allow_failure,
            when: j.job.when,
        })
        .collect();
    let mut ends: Vec<Option<JobEnd>> = vec![None; nodes.len()];
    let mut waiting: Vec<usize> = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    loop {
        // Plan until it settles: a manual job nobody approved is skipped (with what needs it).
        loop {
            let step = plan::advance(&nodes);
            if step.actions.is_empty() {
                break;
            }
            for a in step.actions {
                let i = a.job();
                let name = &planned.jobs[i].name;
                match a {
                    Action::Release(_) => {
                        nodes[i].state = JobState::Released;
                        waiting.push(i);
                    }
                    Action::AwaitApproval(_) => {
                        nodes[i].state = JobState::Skipped;
                        printer.event(
                            json!({ "event": "job.skipped", "job": name, "reason": "manual" }),
                            Some(format!(
                                "==> {name} skipped: it is manual; run it with --job {name}"
                            )),
                        );
                    }
                    Action::Skip(_) => {
                        nodes[i].state = JobState::Skipped;
                        printer.event(
                            json!({ "event": "job.skipped", "job": name, "reason": "upstream" }),
                            Some(format!(
                                "==> {name} skipped: a job it depends on did not succeed"
                            )),
                        );
                    }
                }
            }
        }
        if interrupted {
            for i in waiting.drain(..) {
                nodes[i].state = JobState::Canceled;
            }
        }
        while running.len() < args.concurrency.max(1) && !waiting.is_empty() {
            let i = waiting.remove(0);
            nodes[i].state = JobState::Running;
            let Some(j) = job_runs[i].take() else {
                bail!("job {} was started twice", planned.jobs[i].name);
            };
            let ctx = ctx.clone();
            running.spawn(async move { (i, attempt::run(ctx, j).await) });
        }
        // The next jobs' containers are made while these run (docker: a create costs about
        // as much as a trivial job; see bench W11).
        if args.engine == EngineKind::Docker && !interrupted {
            let next = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| matches!(n.state, JobState::Pending | JobState::Released))
                .filter_map(|(i, _)| job_runs[i].as_ref())
                .take(AHEAD);
            for j in next {
                if !ctx.has_ahead(j) {
                    ctx.prepare_ahead(j);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let done = tokio::select! {
            done = running.join_next() => done,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                cancel.cancel();
                eprintln!("\ngitweave: interrupted; stopping the running jobs");
                continue;
            }
        };
        let Some(done) = done else { break };
        let (i, end) = done.context("a job's task failed")?;
        let name = &planned.jobs[i].name;
        nodes[i].state = match (end.ok, end.class) {
            (true, _) => JobState::Success,
            (false, Some(gitweave_model::status::ErrorClass::Canceled)) => JobState::Canceled,
            (false, _) => JobState::Failed,
        };
        let status = nodes[i].state.status();
        let allowed = status == JobStatus::Failed && nodes[i].allow_failure;
        printer.event(
            json!({
                "event": "job.finished",
                "job": name,
                "status": status,
                "exit_code": end.exit_code,
                "error_class": end.class,
                "attempts": end.attempts,
                "allow_failure": nodes[i].allow_failure,
                "duration_ms": end.duration.as_millis() as u64,
            }),
            Some(format!(
                "==> {name} {status}{} in {:.1}s{}",
                end.reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})")),
                end.duration.as_secs_f64(),
                if allowed { ", allowed to fail" } else { "" }
            )),
        );
        ends[i] = Some(end);
    }
    ctx.finish().await;
    if let Err(e) = engine.remove_workspace(&ctx.workspace).await {
        eprintln!("gitweave: removing the run's workspace failed: {e}");
    }
    if interrupted {
        for n in nodes.iter_mut().filter(|n| !n.state.status().is_terminal()) {
            n.state = JobState::Canceled;
        }
    }
    let status = if interrupted {
        RunStatus::Canceled
    } else {
        plan::run_status(&nodes)
    };
    report(&printer, &planned, &nodes, &ends, status);
    Ok(if interrupted {
        ExitCode::from(INTERRUPTED)
    } else if status == RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The job's environment, as pipeline-svc makes it at claim, and its secrets from ours.
fn job_run(
    planned: &PlannedRun,
    i: usize,
    run_id: Uuid,
    repo: &str,
    git_ref: &str,
    commit: &str,
    engine: EngineKind,
) -> JobRun {
    let p = &planned.jobs[i];
    let id = Uuid::now_v7();
    let mut env = p.job.env.clone();
    let workspace = match engine {
        // The shell engine sets it to the job's real directory.
        EngineKind::Shell => String::new(),
        EngineKind::Docker => "/workspace".into(),
    };
    for (k, v) in [
        ("CI", "true".to_owned()),
        ("GITWEAVE", "true".to_owned()),
        ("GITWEAVE_REPO", repo.to_owned()),
        ("GITWEAVE_RUN_ID", run_id.to_string()),
        ("GITWEAVE_JOB_ID", id.to_string()),
        ("GITWEAVE_JOB_NAME", p.name.clone()),
        ("GITWEAVE_REF", git_ref.to_owned()),
        ("GITWEAVE_COMMIT_SHA", commit.to_owned()),
        ("GITWEAVE_WORKSPACE", workspace),
    ] {
        env.insert(k.to_owned(), v);
    }
    let mut values = Vec::new();
    let mut refused = None;
    for s in &p.job.secrets {
        match std::env::var(s.name.as_str()) {
            Ok(v) => {
                env.insert(s.env.as_str().to_owned(), v.clone());
                values.push(v);
            }
            Err(_) => {
                refused = Some(format!(
                    "secret {} is not set: gitweave exec takes secrets from its own environment (export {}=…)",
                    s.name.as_str(),
                    s.name.as_str()
                ));
                break;
            }
        }
    }
    let masker = match gitweave_engine::Masker::new(values.iter()) {
        Ok(m) => m,
        Err(e) => {
            refused = Some(format!("the job's secrets cannot be masked: {e}"));
            None
        }
    };
    JobRun {
        name: p.name.clone(),
        id: id.simple().to_string(),
        job: p.job.clone(),
        env,
        masker,
        refused,
    }
}

/// The run's outcome: a `run.completed` event, or a table of the jobs.
fn report(
    printer: &Printer,
    planned: &PlannedRun,
    nodes: &[Node],
    ends: &[Option<JobEnd>],
    status: RunStatus,
) {
    if printer.json() {
        printer.event(json!({ "event": "run.completed", "status": status }), None);
        return;
    }
    let colour = printer.colour();
    let mut t = Table::new(&["", "STATUS", "JOB", "RESULT"]);
    for (i, j) in planned.jobs.iter().enumerate() {
        let st = nodes[i].state.status();
        let (mark, c) = job_mark(st, nodes[i].allow_failure);
        let detail = ends[i].as_ref().map_or(String::new(), |e| {
            let mut d = format!("{:.1}s", e.duration.as_secs_f64());
            if let Some(code) = e.exit_code.filter(|c| *c != 0) {
                d.push_str(&format!(" exit {code}"));
            }
            if let Some(class) = e.class {
                d.push_str(&format!(" [{class}]"));
            }
            if e.attempts > 1 {
                d.push_str(&format!(" {} attempts", e.attempts));
            }
            if st == JobStatus::Failed && nodes[i].allow_failure {
                d.push_str(" (allowed to fail)");
            }
            d
        });
        t.row(vec![
            (mark.to_owned(), Some(c)),
            (st.as_str().to_owned(), Some(c)),
            (j.name.clone(), None),
            (detail, None),
        ]);
    }
    let head = format!(
        "\nrun {}\n",
        run_colour(status).paint(colour, status.as_str())
    );
    printer.write(&format!("{head}{}", t.render(2, colour)));
}
