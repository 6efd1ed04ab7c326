//! `gitweave delete repo|template`: remove a repo (with its runs, logs, events and webhook
//! deliveries) or a template (with its versions) made by mistake. The server refuses (409)
//! while a run of the repo is active or while the template is attached; the message says what
//! to do first.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;

/// What to delete.
#[derive(Subcommand)]
pub enum DeleteCommand {
    /// Delete a repo with its runs, jobs, logs, events and webhook deliveries (refused while
    /// one of its runs is active).
    Repo {
        /// Repo name.
        name: String,
    },
    /// Delete a template with all its versions (refused while a repo has it attached).
    Template {
        /// Template name.
        name: String,
    },
}

/// Sends the `DELETE` and prints what went.
pub async fn run(
    command: DeleteCommand,
    base: &str,
    token: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (what, name, path) = match &command {
        DeleteCommand::Repo { name } => ("repo", name, format!("/repos/{name}")),
        DeleteCommand::Template { name } => ("template", name, format!("/templates/{name}")),
    };
    let url = format!("{}/api/v1{path}", base.trim_end_matches('/'));
    let mut rb = reqwest::Client::new().delete(&url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb
        .send()
        .await
        .with_context(|| format!("cannot reach GitWeave at {base}"))?;
    let status = resp.status();
    if status.is_success() {
        println!("{what} {name} deleted");
        return Ok(ExitCode::SUCCESS);
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    bail!("{status}: {message}")
}
