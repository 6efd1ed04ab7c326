//! `gitweave`: the command-line client of the GitWeave API (through the gateway).
//!
//! It speaks only the public REST API, so it works against a local `docker compose up` and a
//! remote GitWeave alike. `trigger --wait` and `status` exit non-zero unless the run succeeded,
//! so scripts can chain on them.

mod client;
mod commands;
mod delete;
mod hook;
mod secret;
mod summary;

use clap::{Parser, Subcommand};
use client::Client;
use std::process::ExitCode;

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
    /// Set, list and delete repo and global secrets (values from stdin).
    Secret {
        #[command(subcommand)]
        command: secret::SecretCommand,
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

async fn main_inner(cli: Cli) -> anyhow::Result<ExitCode> {
    let c = Client::new(cli.url, cli.token);
    match cli.command {
        Command::Repo {
            name,
            clone_url,
            default_branch,
        } => commands::repo(&c, &name, clone_url, default_branch).await,
        Command::Templates {
            command: TemplatesCommand::Push { name, file },
        } => commands::templates_push(&c, name, &file).await,
        Command::Attach {
            repo,
            template,
            inputs,
        } => commands::attach(&c, &repo, &template, inputs).await,
        Command::Trigger {
            repo,
            git_ref,
            commit,
            templates,
            inputs,
            wait,
        } => {
            let args = commands::TriggerArgs {
                git_ref,
                commit,
                templates,
                inputs,
                wait,
            };
            commands::trigger(&c, &repo, args).await
        }
        Command::Runs { repo, limit } => commands::runs(&c, &repo, limit).await,
        Command::Status { run, json } => commands::status(&c, &run, json).await,
        Command::Events { run, follow, tail } => commands::events(&c, &run, follow, tail).await,
        Command::Summary { run, json } => commands::summary(&c, &run, json).await,
        Command::Cancel { run } => commands::cancel(&c, &run).await,
        Command::Rerun { run, wait } => commands::rerun(&c, &run, wait).await,
        Command::Approve { job, reason } => commands::approve(&c, &job, reason).await,
        Command::Hook { command } => hook::run(command, &c.base, c.token.as_deref()).await,
        Command::Delete { command } => delete::run(&c, command).await,
        Command::Secret { command } => secret::run(&c, command).await,
        Command::Logs { job, follow } => commands::logs(&c, &job, follow).await,
    }
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
