//! One function per `gitweave` command (except `hook`, in [`crate::hook`]), each sending the
//! typed bodies of [`gitweave_api::public`] and reading its typed answers.

use crate::client::Client;
use crate::summary;
use anyhow::Context;
use gitweave_api::public::{
    Approve, AttachTemplate, AttachedTemplate, Event, Job, LogsPage, PutRepo, Repo, Run, RunList,
    TemplatePut, TriggerRun,
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
    println!("{}", serde_json::to_string_pretty(&repo)?);
    Ok(ExitCode::SUCCESS)
}

/// `gitweave templates push FILE`: upload a template (a new version when it changed).
pub async fn templates_push(
    c: &Client,
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
    println!("attached {} to {repo} at position {}", a.name, a.position);
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
    /// Wait for the end and exit with the run's result.
    pub wait: bool,
}

/// `gitweave trigger REPO`: start a run; with `--wait`, exit 0 only if it succeeded.
pub async fn trigger(c: &Client, repo: &str, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let body = TriggerRun {
        git_ref: args.git_ref,
        commit: args.commit,
        templates: (!args.templates.is_empty()).then_some(args.templates),
        inputs: inputs(args.inputs),
    };
    let run: Run = c
        .call(Method::POST, &format!("/repos/{repo}/pipelines/run"), &body)
        .await?;
    println!("run {} created", run.id);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(c, &run.id.to_string()).await
}

/// `gitweave runs REPO`: a repo's runs, newest first.
pub async fn runs(c: &Client, repo: &str, limit: u32) -> anyhow::Result<ExitCode> {
    let list: RunList = c
        .get(&format!("/repos/{repo}/pipelines/runs?limit={limit}"))
        .await?;
    for r in list.runs {
        println!(
            "{} {:<8} {} {} {}",
            r.id,
            r.status.as_str(),
            r.trigger,
            r.git_ref,
            gitweave_api::ts::format(r.created_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `gitweave status RUN`: a run and its jobs; exit 0 only if it succeeded.
pub async fn status(c: &Client, run: &str, json: bool) -> anyhow::Result<ExitCode> {
    let run = get_run(c, run).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_run(&run);
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
pub async fn summary(c: &Client, run: &str, json: bool) -> anyhow::Result<ExitCode> {
    let r = get_run(c, run).await?;
    let events: Vec<Event> = events_text(c, run)
        .await?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the run's events")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary::to_json(&r, &events))?
        );
    } else {
        print!("{}", summary::to_text(&r, &events));
    }
    Ok(run_exit(&r))
}

/// `gitweave cancel RUN`.
pub async fn cancel(c: &Client, run: &str) -> anyhow::Result<ExitCode> {
    let r: Run = c
        .fetch(c.request(Method::POST, &format!("/pipelines/runs/{run}/cancel")))
        .await?;
    println!("run {} cancel requested ({})", r.id, r.status);
    Ok(ExitCode::SUCCESS)
}

/// `gitweave rerun RUN`: a new run like `run`; with `wait`, exit 0 only if it succeeded.
pub async fn rerun(c: &Client, run: &str, wait: bool) -> anyhow::Result<ExitCode> {
    let r: Run = c
        .fetch(c.request(Method::POST, &format!("/pipelines/runs/{run}/rerun")))
        .await?;
    println!("run {} created (rerun of {run})", r.id);
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(c, &r.id.to_string()).await
}

/// `gitweave approve JOB`: let a manual job start.
pub async fn approve(c: &Client, job: &str, reason: Option<String>) -> anyhow::Result<ExitCode> {
    let j: Job = c
        .call(
            Method::POST,
            &format!("/jobs/{job}/approve"),
            &Approve { reason },
        )
        .await?;
    println!("job {} approved ({})", j.name, j.status);
    Ok(ExitCode::SUCCESS)
}

/// `gitweave logs JOB`: the whole log, or with `follow` as it is written until the job ends.
pub async fn logs(c: &Client, job: &str, follow: bool) -> anyhow::Result<ExitCode> {
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
        for chunk in &page.chunks {
            out.write_all(chunk.data.as_bytes())?;
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

fn print_run(run: &Run) {
    println!(
        "run {} {} ({} {} {})",
        run.id,
        run.status,
        run.repo,
        run.git_ref,
        run.commit.as_deref().unwrap_or("-")
    );
    for j in &run.jobs {
        let code = j.exit_code.map_or(String::new(), |c| format!(" exit {c}"));
        let class = j.error_class.map_or(String::new(), |c| format!(" [{c}]"));
        println!(
            "  {:<9} {}{code}{class}  {}",
            j.status.as_str(),
            j.name,
            j.id
        );
    }
}

fn run_exit(run: &Run) -> ExitCode {
    if run.status == RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Polls a run until it ends, printing each change of its jobs' statuses.
async fn wait_for(c: &Client, run: &str) -> anyhow::Result<ExitCode> {
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
            eprintln!("[{}] {line}", now.status);
            last = line;
        }
        if now.status.is_terminal() {
            print_run(&now);
            return Ok(run_exit(&now));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
