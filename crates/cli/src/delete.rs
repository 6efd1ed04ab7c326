//! `gitweave delete repo|template`: remove a repo (with its runs, logs, events and webhook
//! deliveries) or a template (with its versions) made by mistake. The server refuses (409)
//! while a run of the repo is active or while the template is attached; the message says what
//! to do first.

use crate::client::Client;
use crate::output::Out;
use clap::Subcommand;
use reqwest::Method;
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

/// Sends the `DELETE` and prints what went; a refusal is an error with the server's message.
pub async fn run(c: &Client, out: Out, command: DeleteCommand) -> anyhow::Result<ExitCode> {
    let (what, name, path) = match &command {
        DeleteCommand::Repo { name } => ("repo", name, format!("/repos/{name}")),
        DeleteCommand::Template { name } => ("template", name, format!("/templates/{name}")),
    };
    c.send(c.request(Method::DELETE, &path)).await?;
    if out.json {
        out.print_json(&serde_json::json!({ "deleted": { "kind": what, "name": name } }))?;
    } else {
        println!("{what} {name} deleted");
    }
    Ok(ExitCode::SUCCESS)
}
