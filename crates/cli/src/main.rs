//! `gitweave`: the command-line client of the GitWeave API (through the gateway).
//!
//! It speaks only the public REST API, so it works against a local `docker compose up` and a
//! remote GitWeave alike. `trigger --wait` and `status` exit non-zero unless the run succeeded,
//! so scripts can chain on them.

mod delete;
mod hook;
mod summary;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gitweave_api::public::{Event, LogsPage, Run, RunList};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "gitweave", version, about = "GitWeave pipeline runner client")]
struct Cli {
    /// The gateway's URL.
    #[arg(
        long,
        env = "GITWEAVE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Bearer token, when the gateway has GITWEAVE_API_TOKEN set.
    #[arg(
        long,
        env = "GITWEAVE_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update a repo.
    Repo {
        /// Repo name.
        name: String,
        /// Clone URL.
        #[arg(long)]
        clone_url: Option<String>,
        /// Default branch.
        #[arg(long)]
        default_branch: Option<String>,
    },
    /// Upload templates.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Attach a template to a repo (appended to its pipeline).
    Attach {
        /// Repo name.
        repo: String,
        /// Template name.
        template: String,
        /// Default input, `NAME=VALUE` (repeatable).
        #[arg(long = "input", value_parser = key_value)]
        inputs: Vec<(String, String)>,
    },
    /// Trigger a run of a repo's pipeline.
    Trigger {
        /// Repo name.
        repo: String,
        /// Git ref (default: the repo's default branch).
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// Commit sha.
        #[arg(long)]
        commit: Option<String>,
        /// Only this attached template (repeatable).
        #[arg(long = "template")]
        templates: Vec<String>,
        /// Input, `NAME=VALUE` (repeatable).
        #[arg(long = "input", value_parser = key_value)]
        inputs: Vec<(String, String)>,
        /// Wait for the run to end, showing progress; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// List a repo's runs, newest first.
    Runs {
        /// Repo name.
        repo: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a run and its jobs; exit non-zero unless it succeeded.
    Status {
        /// Run id.
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a run's events as JSON lines.
    Events {
        /// Run id.
        run: String,
        /// Keep printing until the run ends.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N events (with --follow: then follow).
        #[arg(long)]
        tail: Option<usize>,
    },
    /// A run's summary: status, durations, counts, retries, gate failures, per-job lines.
    Summary {
        /// Run id.
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run: running jobs are stopped, queued ones canceled.
    Cancel {
        /// Run id.
        run: String,
    },
    /// Start a new run with the same repo, ref, commit, templates and inputs.
    Rerun {
        /// Run id.
        run: String,
        /// Wait for the new run to end; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Approve a manual job.
    Approve {
        /// Job id.
        job: String,
        /// Recorded in the run's events.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make `git push` to a local bare repository trigger runs.
    Hook {
        #[command(subcommand)]
        command: hook::HookCommand,
    },
    /// Delete a repo or a template made by mistake.
    Delete {
        #[command(subcommand)]
        command: delete::DeleteCommand,
    },
    /// Print a job's log.
    Logs {
        /// Job id.
        job: String,
        /// Keep printing until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Upload a YAML template file (a new version when it changed).
    Push {
        /// Template name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// The YAML file.
        file: std::path::PathBuf,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(
            method,
            format!("{}/api/v1{path}", self.base.trim_end_matches('/')),
        );
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach GitWeave at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        bail!("{status}: {message}")
    }

    /// A run's stored events, as JSON lines.
    async fn events_text(&self, run: &str) -> anyhow::Result<String> {
        let rb = self.request(
            reqwest::Method::GET,
            &format!("/pipelines/runs/{run}/events"),
        );
        Ok(self.send(rb).await?.text().await?)
    }

    async fn run(&self, id: &str) -> anyhow::Result<Run> {
        Ok(self
            .send(self.request(reqwest::Method::GET, &format!("/pipelines/runs/{id}")))
            .await?
            .json()
            .await?)
    }
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
    if run.status == gitweave_model::status::RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Polls a run until it ends, printing each change of its jobs' statuses.
async fn wait_for(c: &Client, run: &str) -> anyhow::Result<ExitCode> {
    let mut last = String::new();
    loop {
        let now = c.run(run).await?;
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

async fn follow_logs(c: &Client, job: &str) -> anyhow::Result<()> {
    let rb = c.request(
        reqwest::Method::GET,
        &format!("/jobs/{job}/logs/raw?follow=true"),
    );
    let mut resp = c.send(rb).await?;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = resp.chunk().await? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

async fn main_inner(cli: Cli) -> anyhow::Result<ExitCode> {
    let c = Client {
        http: reqwest::Client::new(),
        base: cli.url,
        token: cli.token,
    };
    match cli.command {
        Command::Repo {
            name,
            clone_url,
            default_branch,
        } => {
            let mut body = json!({});
            if let Some(u) = clone_url {
                body["clone_url"] = json!(u);
            }
            if let Some(b) = default_branch {
                body["default_branch"] = json!(b);
            }
            let r: Value = c
                .send(
                    c.request(reqwest::Method::PUT, &format!("/repos/{name}"))
                        .json(&body),
                )
                .await?
                .json()
                .await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Command::Templates {
            command: TemplatesCommand::Push { name, file },
        } => {
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("name the template with --name")?
                    .to_owned(),
            };
            let rb = c
                .request(reqwest::Method::PUT, &format!("/templates/{name}"))
                .header("content-type", "application/yaml")
                .body(body);
            let r: Value = c.send(rb).await?.json().await?;
            println!(
                "template {} version {} jobs {}",
                r["name"], r["version"], r["jobs"]
            );
        }
        Command::Attach {
            repo,
            template,
            inputs,
        } => {
            let inputs: BTreeMap<_, _> = inputs.into_iter().collect();
            let rb = c
                .request(
                    reqwest::Method::PUT,
                    &format!("/repos/{repo}/templates/{template}"),
                )
                .json(&json!({ "inputs": inputs }));
            let r: Value = c.send(rb).await?.json().await?;
            println!(
                "attached {} to {repo} at position {}",
                r["name"], r["position"]
            );
        }
        Command::Trigger {
            repo,
            git_ref,
            commit,
            templates,
            inputs,
            wait,
        } => {
            let inputs: BTreeMap<_, _> = inputs.into_iter().collect();
            let mut body = json!({ "inputs": inputs });
            if let Some(r) = git_ref {
                body["ref"] = json!(r);
            }
            if let Some(s) = commit {
                body["commit"] = json!(s);
            }
            if !templates.is_empty() {
                body["templates"] = json!(templates);
            }
            let rb = c
                .request(
                    reqwest::Method::POST,
                    &format!("/repos/{repo}/pipelines/run"),
                )
                .json(&body);
            let run: Run = c.send(rb).await?.json().await?;
            println!("run {} created", run.id);
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            return wait_for(&c, &run.id.to_string()).await;
        }
        Command::Events { run, follow, tail } => {
            let mut after = 0;
            let mut out = std::io::stdout().lock();
            if let Some(n) = tail {
                // The stored events first, only the last N of them; then follow from there.
                let text = c.events_text(&run).await?;
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
            let mut resp = c.send(c.request(reqwest::Method::GET, &path)).await?;
            while let Some(chunk) = resp.chunk().await? {
                out.write_all(&chunk)?;
                out.flush()?;
            }
        }
        Command::Summary { run, json } => {
            let r = c.run(&run).await?;
            let text = c.events_text(&run).await?;
            let events: Vec<Event> = text
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
            return Ok(run_exit(&r));
        }
        Command::Cancel { run } => {
            let r: Run = c
                .send(c.request(
                    reqwest::Method::POST,
                    &format!("/pipelines/runs/{run}/cancel"),
                ))
                .await?
                .json()
                .await?;
            println!("run {} cancel requested ({})", r.id, r.status);
        }
        Command::Rerun { run, wait } => {
            let r: Run = c
                .send(c.request(
                    reqwest::Method::POST,
                    &format!("/pipelines/runs/{run}/rerun"),
                ))
                .await?
                .json()
                .await?;
            println!("run {} created (rerun of {run})", r.id);
            if wait {
                return wait_for(&c, &r.id.to_string()).await;
            }
        }
        Command::Approve { job, reason } => {
            let rb = c
                .request(reqwest::Method::POST, &format!("/jobs/{job}/approve"))
                .json(&json!({ "reason": reason }));
            let j: Value = c.send(rb).await?.json().await?;
            println!("job {} approved ({})", j["name"], j["status"]);
        }
        Command::Runs { repo, limit } => {
            let rb = c.request(
                reqwest::Method::GET,
                &format!("/repos/{repo}/pipelines/runs?limit={limit}"),
            );
            let list: RunList = c.send(rb).await?.json().await?;
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
        }
        Command::Status { run, json } => {
            let run = c.run(&run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print_run(&run);
            }
            return Ok(run_exit(&run));
        }
        Command::Hook { command } => return hook::run(command, &c.base, c.token.as_deref()).await,
        Command::Delete { command } => {
            return delete::run(command, &c.base, c.token.as_deref()).await;
        }
        Command::Logs { job, follow } => {
            if follow {
                follow_logs(&c, &job).await?;
            } else {
                let mut offset = 0;
                let mut out = std::io::stdout().lock();
                loop {
                    let rb = c.request(
                        reqwest::Method::GET,
                        &format!("/jobs/{job}/logs?offset={offset}&limit=1048576"),
                    );
                    let page: LogsPage = c.send(rb).await?.json().await?;
                    for chunk in &page.chunks {
                        out.write_all(chunk.data.as_bytes())?;
                    }
                    if page.complete || page.next_offset == offset {
                        break;
                    }
                    offset = page.next_offset;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_inner(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gitweave: {e:#}");
            ExitCode::from(2)
        }
    }
}
