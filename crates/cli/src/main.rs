//! `gitweave`: the command-line client of the GitWeave API (through the gateway), and the
//! local runner of a working tree's pipeline (`exec`, `validate`: no server at all).
//!
//! It speaks only the public REST API, so it works against a local `docker compose up` and a
//! remote GitWeave alike. `trigger --wait` and `status` exit non-zero unless the run succeeded,
//! so scripts can chain on them. Exit codes: 0 success, 1 the run (or validation) failed,
//! 2 the CLI's own errors, 130 detached from a followed run by Ctrl-C.

mod artifacts;
mod client;
mod commands;
mod current_repo;
mod delete;
mod exec;
mod follow;
mod hook;
mod includes;
mod local_pipeline;
mod local_rules;
mod output;
mod secret;
mod suggest;
mod summary;
mod validate;

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
    /// An extra root certificate (PEM, one or more) for `https://` URLs, trusted besides the
    /// system's: a gateway behind a private CA or a self-signed certificate.
    #[arg(long, env = "GITWEAVE_CA_CERT", global = true, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// Print JSON instead of text (one document on stdout; progress and logs on stderr).
    #[arg(long, global = true)]
    json: bool,
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
        #[arg(long, conflicts_with = "follow")]
        wait: bool,
        /// Stream each job's log as it runs, then the summary; exit with the run's result.
        /// Ctrl-C detaches (exit 130) and leaves the run going.
        #[arg(long, short)]
        follow: bool,
    },
    /// List a repo's runs, newest first, with their commits.
    Runs {
        /// Repo name (default: the current repo, see `status`).
        repo: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a run and its jobs; exit non-zero unless it succeeded. Without a run, the latest
    /// run of the current repo: `--repo`, `GITWEAVE_REPO`, or the last segment of
    /// `git remote get-url origin` without `.git`.
    Status {
        /// Run id, or 8+ hex digits it starts or ends with.
        run: Option<String>,
        /// The repo whose latest run to show.
        #[arg(long, env = "GITWEAVE_REPO")]
        repo: Option<String>,
    },
    /// Print a run's events as JSON lines.
    Events {
        /// Run id, or 8+ hex digits it starts or ends with.
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
        /// Run id or short id (default: the latest run of the current repo).
        run: Option<String>,
        /// The repo whose latest run to summarise.
        #[arg(long, env = "GITWEAVE_REPO")]
        repo: Option<String>,
    },
    /// Cancel a run: running jobs are stopped, queued ones canceled.
    Cancel {
        /// Run id, or 8+ hex digits it starts or ends with.
        run: String,
    },
    /// Start a new run with the same repo, ref, commit, templates and inputs.
    Rerun {
        /// Run id, or 8+ hex digits it starts or ends with.
        run: String,
        /// Wait for the new run to end; exit non-zero unless it succeeded.
        #[arg(long, conflicts_with = "follow")]
        wait: bool,
        /// Stream each job's log as it runs, then the summary (Ctrl-C detaches, exit 130).
        #[arg(long, short)]
        follow: bool,
    },
    /// List the runners: name, host, labels, busy/capacity, online or offline, last seen.
    Runners,
    /// Approve a manual job.
    Approve {
        /// Job id, or 8+ hex digits it starts or ends with.
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
    /// Run the work tree's pipeline (`.gitweave.yml`) here, with no server: the same
    /// planning, engine, retries and timeouts as a real run, on a copy of the work tree
    /// (uncommitted changes included, `.gitignore`d files left out). Exit code = the run's
    /// result; Ctrl-C stops it (exit 130).
    Exec {
        /// Only this job and what it depends on (repeatable); naming a manual job approves it.
        #[arg(long = "job")]
        jobs: Vec<String>,
        /// Input, `NAME=VALUE` (repeatable).
        #[arg(long = "input", value_parser = key_value)]
        inputs: Vec<(String, String)>,
        /// How jobs run: in containers of their images, or as host processes.
        #[arg(long, value_enum, default_value = "docker")]
        engine: exec::EngineKind,
        /// Jobs run at once, when the DAG allows.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Never pull: a missing image fails its job (`image_not_found`).
        #[arg(long)]
        no_pull: bool,
        /// Copy `.gitignore`d files too.
        #[arg(long)]
        include_ignored: bool,
        /// The pipeline file (default: `.gitweave.yml` or `.gitweave.yaml` at the work tree's root).
        #[arg(long, short = 'f')]
        file: Option<std::path::PathBuf>,
    },
    /// Check a pipeline file offline (default `.gitweave.yml`): every problem with file, line
    /// and column, and a "did you mean" for unknown keys, jobs in `needs` and inputs. Exit 0
    /// when valid, 1 when not.
    Validate {
        /// The file.
        file: Option<std::path::PathBuf>,
    },
    /// Print a shell completion script: `gitweave completions bash > /etc/bash_completion.d/gitweave`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff): `gitweave man > ~/.local/share/man/man1/gitweave.1`.
    Man,
    /// List the files a job kept, or download one (`--get PATH`) or all as a tar (`--all`):
    /// `artifacts JOB` or `artifacts RUN JOB-NAME`. A download is checked against the
    /// listed sha256 and only then renamed into place.
    Artifacts {
        /// Job id or short id; with JOB-NAME, the run's.
        job: String,
        /// The job's name in the run (`<template>/<job>`, or `<job>` when unique).
        name: Option<String>,
        /// Download the artifact at this path (as listed).
        #[arg(long, value_name = "PATH", conflicts_with = "all")]
        get: Option<String>,
        /// Download every artifact as one tar, each file under its path.
        #[arg(long)]
        all: bool,
        /// Where to write the download (`-`: stdout). Default: the artifact's file name, or
        /// `job-<short id>-artifacts.tar` with `--all`, in the current directory (or in FILE,
        /// when it is a directory).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Print a job's log: `logs JOB` or `logs RUN JOB-NAME`.
    Logs {
        /// Job id or short id; with JOB-NAME, the run's.
        job: String,
        /// The job's name in the run (`<template>/<job>`, or `<job>` when unique).
        name: Option<String>,
        /// Keep printing until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
}

/// Shells `completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
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

fn wait_mode(wait: bool, follow: bool) -> commands::Wait {
    match (wait, follow) {
        (_, true) => commands::Wait::Follow,
        (true, false) => commands::Wait::Quiet,
        (false, false) => commands::Wait::No,
    }
}

async fn main_inner(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = output::Out::detect(cli.json);
    // The commands that need no server.
    match cli.command {
        Command::Exec {
            jobs,
            inputs,
            engine,
            concurrency,
            no_pull,
            include_ignored,
            file,
        } => {
            let args = exec::ExecArgs {
                file,
                jobs,
                inputs,
                engine,
                concurrency,
                pull_never: no_pull,
                include_ignored,
            };
            let c = Client::new(cli.url, cli.token, cli.ca_cert.as_deref())?;
            return exec::run(args, out, &c).await;
        }
        Command::Validate { file } => {
            let c = Client::new(cli.url, cli.token, cli.ca_cert.as_deref())?;
            return validate::run(file, out, &c).await;
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut stdout = std::io::stdout();
            match shell {
                CompletionShell::Bash => clap_complete::generate(
                    clap_complete::Shell::Bash,
                    &mut cmd,
                    "gitweave",
                    &mut stdout,
                ),
                CompletionShell::Zsh => clap_complete::generate(
                    clap_complete::Shell::Zsh,
                    &mut cmd,
                    "gitweave",
                    &mut stdout,
                ),
                CompletionShell::Fish => clap_complete::generate(
                    clap_complete::Shell::Fish,
                    &mut cmd,
                    "gitweave",
                    &mut stdout,
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let c = Client::new(cli.url, cli.token, cli.ca_cert.as_deref())?;
    match cli.command {
        Command::Repo {
            name,
            clone_url,
            default_branch,
        } => commands::repo(&c, out, &name, clone_url, default_branch).await,
        Command::Templates {
            command: TemplatesCommand::Push { name, file },
        } => commands::templates_push(&c, out, name, &file).await,
        Command::Attach {
            repo,
            template,
            inputs,
        } => commands::attach(&c, out, &repo, &template, inputs).await,
        Command::Trigger {
            repo,
            git_ref,
            commit,
            templates,
            inputs,
            wait,
            follow,
        } => {
            let args = commands::TriggerArgs {
                git_ref,
                commit,
                templates,
                inputs,
                wait: wait_mode(wait, follow),
            };
            commands::trigger(&c, out, &repo, args).await
        }
        Command::Runs { repo, limit } => {
            let repo = current_repo::resolve(repo.or_else(|| std::env::var("GITWEAVE_REPO").ok()))?;
            commands::runs(&c, out, &repo, limit).await
        }
        Command::Status { run, repo } => {
            let run = commands::run_or_latest(&c, run.as_deref(), repo).await?;
            commands::status(&c, out, &run).await
        }
        Command::Events { run, follow, tail } => commands::events(&c, &run, follow, tail).await,
        Command::Summary { run, repo } => {
            let run = commands::run_or_latest(&c, run.as_deref(), repo).await?;
            commands::summary(&c, out, &run).await
        }
        Command::Cancel { run } => commands::cancel(&c, out, &run).await,
        Command::Rerun { run, wait, follow } => {
            commands::rerun(&c, out, &run, wait_mode(wait, follow)).await
        }
        Command::Runners => commands::runners(&c, out).await,
        Command::Approve { job, reason } => commands::approve(&c, out, &job, reason).await,
        Command::Hook { command } => hook::run(command, &c, out).await,
        Command::Delete { command } => delete::run(&c, out, command).await,
        Command::Secret { command } => secret::run(&c, out, command).await,
        Command::Logs { job, name, follow } => {
            let job = commands::job_of(&c, &job, name.as_deref()).await?;
            commands::logs(&c, out, &job, follow).await
        }
        Command::Artifacts {
            job,
            name,
            get,
            all,
            output,
        } => {
            let action = match (get, all) {
                (Some(path), _) => artifacts::Action::Get { path, output },
                (None, true) => artifacts::Action::All { output },
                (None, false) if output.is_some() => {
                    anyhow::bail!("-o names where a download goes: add --get PATH or --all")
                }
                (None, false) => artifacts::Action::List,
            };
            let job = commands::job_of(&c, &job, name.as_deref()).await?;
            artifacts::run(&c, out, &job, action).await
        }
        Command::Exec { .. }
        | Command::Validate { .. }
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled above")
        }
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
