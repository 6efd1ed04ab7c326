//! One function per `gitweave` command (except `hook`, in [`crate::hook`]), each sending the
//! typed bodies of [`gitweave_api::public`] and reading its typed answers.

use crate::client::Client;
use crate::follow;
use crate::output::{Colour, Out, Table, run_colour, run_text, short, short_commit};
use crate::summary;
use anyhow::Context;
use gitweave_api::public::{
    Approve, AttachTemplate, AttachedTemplate, Event, Job, LogsPage, PutRepo, Repo, Run, RunList,
    RunnerList, TemplatePut, TriggerRun,
};
use gitweave_model::status::RunStatus;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// `NAME=VALUE` pairs as the API's inputs (string values).
fn inputs(pairs: Vec<(String, String)>) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// `gitweave repo NAME`: create or update a repo; absent flags keep the stored values.
pub async fn repo(
    c: &Client,
    out: Out,
    name: &str,
    clone_url: Option<String>,
    default_branch: Option<String>,
) -> anyhow::Result<ExitCode> {
    let body = PutRepo {
        clone_url: clone_url.map(Some),
        default_branch,
        webhook_secret: None,
        protected_refs: None,
    };
    let repo: Repo = c
        .call(Method::PUT, &format!("/repos/{name}"), &body)
        .await?;
    if out.json {
        out.print_json(&repo)?;
    } else {
        println!(
            "repo {}  default branch {}  clone url {}",
            repo.name,
            repo.default_branch,
            repo.clone_url.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `gitweave templates push FILE`: upload a template (a new version when it changed).
pub async fn templates_push(
    c: &Client,
    out: Out,
    name: Option<String>,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = match name {
        Some(n) => n,
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .context("name the template with --name")?
            .to_owned(),
    };
    let rb = c
        .request(Method::PUT, &format!("/templates/{name}"))
        .header("content-type", "application/yaml")
        .body(body);
    let t: TemplatePut = c.fetch(rb).await?;
    if out.json {
        out.print_json(&t)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "template {} version {} jobs {}",
        t.name,
        t.version,
        t.jobs.join(",")
    );
    Ok(ExitCode::SUCCESS)
}

/// `gitweave attach REPO TEMPLATE`: append a template to a repo's pipeline.
pub async fn attach(
    c: &Client,
    out: Out,
    repo: &str,
    template: &str,
    pairs: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let body = AttachTemplate {
        inputs: inputs(pairs),
    };
    let a: AttachedTemplate = c
        .call(
            Method::PUT,
            &format!("/repos/{repo}/templates/{template}"),
            &body,
        )
        .await?;
    if out.json {
        out.print_json(&a)?;
    } else {
        println!("attached {} to {repo} at position {}", a.name, a.position);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `gitweave trigger` asks for.
pub struct TriggerArgs {
    /// Git ref (default: the repo's default branch).
    pub git_ref: Option<String>,
    /// Commit sha.
    pub commit: Option<String>,
    /// Only these attached templates (empty: all).
    pub templates: Vec<String>,
    /// `NAME=VALUE` inputs.
    pub inputs: Vec<(String, String)>,
    /// Wait for the end (or follow the logs) and exit with the run's result.
    pub wait: Wait,
}

/// What `trigger` and `rerun` do once the run is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Print the run and return.
    No,
    /// `--wait`: progress until the end; exit with the run's result.
    Quiet,
    /// `--follow`: every job's log as it runs, then the summary.
    Follow,
}

/// `gitweave trigger REPO`: start a run; with `--wait`, exit 0 only if it succeeded.
pub async fn trigger(
    c: &Client,
    out: Out,
    repo: &str,
    args: TriggerArgs,
) -> anyhow::Result<ExitCode> {
    let body = TriggerRun {
        git_ref: args.git_ref,
        commit: args.commit,
        templates: (!args.templates.is_empty()).then_some(args.templates),
        inputs: inputs(args.inputs),
    };
    let run: Run = c
        .call(Method::POST, &format!("/repos/{repo}/pipelines/run"), &body)
        .await?;
    made(c, out, &run, None, args.wait).await
}

/// What `trigger` and `rerun` do with the run they made.
async fn made(
    c: &Client,
    out: Out,
    run: &Run,
    rerun_of: Option<&str>,
    wait: Wait,
) -> anyhow::Result<ExitCode> {
    let of = rerun_of.map_or(String::new(), |r| format!(", rerun of {r}"));
    let line = format!(
        "run {} created ({} {}{of})",
        short(run.id),
        run.repo,
        run.git_ref
    );
    match wait {
        Wait::No if out.json => {
            out.print_json(run)?;
            return Ok(ExitCode::SUCCESS);
        }
        Wait::No => {
            println!("{line}");
            return Ok(ExitCode::SUCCESS);
        }
        _ if out.json => eprintln!("{line}"),
        _ => println!("{line}"),
    }
    match wait {
        Wait::Follow => follow::follow(c, run, out).await,
        _ => wait_for(c, out, &run.id.to_string()).await,
    }
}

/// `gitweave runs [REPO]`: a repo's runs, newest first, with their commits.
pub async fn runs(c: &Client, out: Out, repo: &str, limit: u32) -> anyhow::Result<ExitCode> {
    let list: RunList = c
        .get(&format!("/repos/{repo}/pipelines/runs?limit={limit}"))
        .await?;
    if out.json {
        out.print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["RUN", "STATUS", "TRIGGER", "REF", "COMMIT", "CREATED"]);
    for r in &list.runs {
        t.row(vec![
            (short(r.id), None),
            (r.status.as_str().to_owned(), Some(run_colour(r.status))),
            (r.trigger.to_string(), None),
            (r.git_ref.clone(), None),
            (short_commit(r.commit.as_deref()), None),
            (gitweave_api::ts::format(r.created_at), Some(Colour::Dim)),
        ]);
    }
    print!("{}", t.render(0, out.colour));
    Ok(ExitCode::SUCCESS)
}

/// `gitweave runners`: the live runner registrations (`GET /runners`): name, host, labels,
/// busy/capacity slots, online or offline and the last contact.
pub async fn runners(c: &Client, out: Out) -> anyhow::Result<ExitCode> {
    let list: RunnerList = c.get("/runners").await?;
    if out.json {
        out.print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["NAME", "HOST", "LABELS", "BUSY/CAP", "STATUS", "LAST SEEN"]);
    for r in &list.runners {
        let labels = r
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let online = r.status == "online";
        t.row(vec![
            (r.name.clone(), None),
            (r.host.clone().unwrap_or_else(|| "-".into()), None),
            (labels, None),
            (format!("{}/{}", r.busy, r.capacity), None),
            (
                r.status.clone(),
                Some(if online { Colour::Green } else { Colour::Red }),
            ),
            (gitweave_api::ts::format(r.last_seen_at), Some(Colour::Dim)),
        ]);
    }
    print!("{}", t.render(0, out.colour));
    Ok(ExitCode::SUCCESS)
}

/// The run `run` names, or the latest run of `repo` (see [`crate::current_repo`]).
pub async fn run_or_latest(
    c: &Client,
    run: Option<&str>,
    repo: Option<String>,
) -> anyhow::Result<String> {
    if let Some(r) = run {
        return Ok(r.to_owned());
    }
    let repo = crate::current_repo::resolve(repo)?;
    let list: RunList = c
        .get(&format!("/repos/{repo}/pipelines/runs?limit=1"))
        .await?;
    list.runs
        .first()
        .map(|r| r.id.to_string())
        .with_context(|| format!("repo {repo} has no runs yet"))
}

/// `gitweave status RUN`: a run and its jobs; exit 0 only if it succeeded.
pub async fn status(c: &Client, out: Out, run: &str) -> anyhow::Result<ExitCode> {
    let run = get_run(c, run).await?;
    if out.json {
        out.print_json(&run)?;
    } else {
        print!("{}", run_text(&run, out.colour));
    }
    Ok(run_exit(&run))
}

/// `gitweave events RUN`: the run's events as JSON lines, the last `tail` of them, and with
/// `follow` the new ones until the run ends.
pub async fn events(
    c: &Client,
    run: &str,
    follow: bool,
    tail: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let mut after = 0;
    let mut out = std::io::stdout().lock();
    if let Some(n) = tail {
        // The stored events first, only the last N of them; then follow from there.
        let text = events_text(c, run).await?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        for line in &lines[lines.len().saturating_sub(n)..] {
            writeln!(out, "{line}")?;
        }
        if let Some(last) = lines.last() {
            after = serde_json::from_str::<Event>(last)
                .map(|e| e.seq)
                .unwrap_or(0);
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let path = format!("/pipelines/runs/{run}/events?after={after}&follow={follow}");
    let mut resp = c.send(c.request(Method::GET, &path)).await?;
    while let Some(chunk) = resp.chunk().await? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `gitweave summary RUN`: status, durations, counts, retries, gate failures, per-job lines;
/// exit 0 only if the run succeeded.
pub async fn summary(c: &Client, out: Out, run: &str) -> anyhow::Result<ExitCode> {
    let r = get_run(c, run).await?;
    let events: Vec<Event> = events_text(c, run)
        .await?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the run's events")?;
    if out.json {
        out.print_json(&summary::to_json(&r, &events))?;
    } else {
        print!("{}", summary::to_text(&r, &events, out.colour));
    }
    Ok(run_exit(&r))
}

/// `gitweave cancel RUN`.
pub async fn cancel(c: &Client, out: Out, run: &str) -> anyhow::Result<ExitCode> {
    let r: Run = c
        .fetch(c.request(Method::POST, &format!("/pipelines/runs/{run}/cancel")))
        .await?;
    if out.json {
        out.print_json(&r)?;
    } else {
        println!("run {} cancel requested ({})", short(r.id), r.status);
    }
    Ok(ExitCode::SUCCESS)
}

/// `gitweave rerun RUN`: a new run like `run`; with `wait`, exit 0 only if it succeeded.
pub async fn rerun(c: &Client, out: Out, run: &str, wait: Wait) -> anyhow::Result<ExitCode> {
    let r: Run = c
        .fetch(c.request(Method::POST, &format!("/pipelines/runs/{run}/rerun")))
        .await?;
    made(c, out, &r, Some(run), wait).await
}

/// `gitweave approve JOB`: let a manual job start.
pub async fn approve(
    c: &Client,
    out: Out,
    job: &str,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let j: Job = c
        .call(
            Method::POST,
            &format!("/jobs/{job}/approve"),
            &Approve { reason },
        )
        .await?;
    if out.json {
        out.print_json(&j)?;
    } else {
        println!("job {} {} approved: now {}", short(j.id), j.name, j.status);
    }
    Ok(ExitCode::SUCCESS)
}

/// The job `JOB` names, or with `name` the job of run `JOB` whose name is `name`:
/// `<template>/<job>`, or just `<job>` when only one stage has it.
pub async fn job_of(c: &Client, first: &str, name: Option<&str>) -> anyhow::Result<String> {
    let Some(name) = name else {
        return Ok(first.to_owned());
    };
    let run = get_run(c, first).await?;
    let exact = run.jobs.iter().find(|j| j.name == name);
    if let Some(j) = exact {
        return Ok(j.id.to_string());
    }
    let by_job: Vec<&gitweave_api::public::Job> = run
        .jobs
        .iter()
        .filter(|j| j.name.rsplit('/').next() == Some(name))
        .collect();
    match by_job.as_slice() {
        [one] => Ok(one.id.to_string()),
        [] => anyhow::bail!(
            "run {} has no job {name:?}; its jobs are {}",
            short(run.id),
            run.jobs
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        many => anyhow::bail!(
            "{name:?} is a job of several stages of run {}: name one of {}",
            short(run.id),
            many.iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `gitweave logs JOB` / `logs RUN JOB-NAME`: the whole log, or with `follow` as it is
/// written until the job ends. With `--json`, the pages as the API answers them.
pub async fn logs(c: &Client, out_mode: Out, job: &str, follow: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if follow {
        let rb = c.request(Method::GET, &format!("/jobs/{job}/logs/raw?follow=true"));
        let mut resp = c.send(rb).await?;
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk)?;
            out.flush()?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut offset = 0;
    loop {
        let page: LogsPage = c
            .get(&format!("/jobs/{job}/logs?offset={offset}&limit=1048576"))
            .await?;
        if out_mode.json {
            writeln!(out, "{}", serde_json::to_string(&page)?)?;
        } else {
            for chunk in &page.chunks {
                out.write_all(chunk.data.as_bytes())?;
            }
        }
        if page.complete || page.next_offset == offset {
            break;
        }
        offset = page.next_offset;
    }
    Ok(ExitCode::SUCCESS)
}

async fn get_run(c: &Client, id: &str) -> anyhow::Result<Run> {
    c.get(&format!("/pipelines/runs/{id}")).await
}

/// A run's stored events, as JSON lines.
async fn events_text(c: &Client, run: &str) -> anyhow::Result<String> {
    c.text(&format!("/pipelines/runs/{run}/events")).await
}

/// 0 when the run succeeded, else 1.
pub fn run_exit(run: &Run) -> ExitCode {
    if run.status == RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Polls a run until it ends: on a terminal a spinner showing the jobs' states, else a
/// plain line per change (stderr); then the run.
async fn wait_for(c: &Client, out: Out, run: &str) -> anyhow::Result<ExitCode> {
    let bar = out.tty_err.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut last = String::new();
    loop {
        let now = get_run(c, run).await?;
        let line = now
            .jobs
            .iter()
            .map(|j| format!("{}={}", j.name, j.status))
            .collect::<Vec<_>>()
            .join(" ");
        if line != last {
            match &bar {
                Some(b) => b.set_message(format!("[{}] {line}", now.status)),
                None => eprintln!("[{}] {line}", now.status),
            }
            last = line;
        }
        if now.status.is_terminal() {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if out.json {
                out.print_json(&now)?;
            } else {
                print!("{}", run_text(&now, out.colour));
            }
            return Ok(run_exit(&now));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
