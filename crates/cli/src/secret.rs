//! `gitweave secret set|list|rm`: repo and global secrets (SPEC §10). The value is read from
//! standard input, never from an argument (argv is visible to every user of the machine, and
//! kept in shell history); the server never answers it back.

use crate::client::Client;
use crate::output::Out;
use anyhow::{Context, bail};
use clap::Subcommand;
use gitweave_api::public::{PutSecret, SecretInfo, SecretList};
use gitweave_api::secret::SecretValue;
use reqwest::Method;
use std::io::Read as _;
use std::process::ExitCode;

/// What to do with secrets.
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret, reading its value from stdin: `secret set REPO NAME` or
    /// `secret set --global NAME`.
    Set {
        /// A global secret, seen by every repo (a repo secret of the same name wins).
        #[arg(long)]
        global: bool,
        /// Given only to runs of the repo's protected refs.
        #[arg(long)]
        protected: bool,
        /// `REPO NAME`, or `NAME` with `--global`.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// List a repo's secrets (`secret list REPO`) or the global ones (`--global`); never values.
    List {
        /// The global secrets.
        #[arg(long)]
        global: bool,
        /// The repo.
        repo: Option<String>,
    },
    /// Delete a secret: `secret rm REPO NAME` or `secret rm --global NAME`.
    Rm {
        /// A global secret.
        #[arg(long)]
        global: bool,
        /// `REPO NAME`, or `NAME` with `--global`.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
}

/// The API path of one secret from `REPO NAME` or `--global NAME`.
fn secret_path(global: bool, args: &[String]) -> anyhow::Result<(String, String)> {
    match (global, args) {
        (true, [name]) => Ok((format!("/secrets/{name}"), format!("global secret {name}"))),
        (false, [repo, name]) => Ok((
            format!("/repos/{repo}/secrets/{name}"),
            format!("secret {name} of repo {repo}"),
        )),
        (true, _) => bail!("with --global, give only the secret's NAME"),
        (false, _) => bail!("give REPO and NAME (or --global NAME)"),
    }
}

/// The value from stdin, without one trailing newline (so `echo "$TOKEN" |` works).
fn read_value() -> anyhow::Result<SecretValue> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("reading the secret's value from stdin (it must be UTF-8)")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!(
            "no value on stdin: pipe it in, e.g. `printf %s \"$TOKEN\" | gitweave secret set REPO NAME`"
        );
    }
    Ok(SecretValue::new(value))
}

/// Runs one secret command.
pub async fn run(c: &Client, out: Out, command: SecretCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Set {
            global,
            protected,
            args,
        } => {
            let (path, what) = secret_path(global, &args)?;
            let body = PutSecret {
                value: read_value()?,
                protected,
            };
            let info: SecretInfo = c.call(Method::PUT, &path, &body).await?;
            if out.json {
                out.print_json(&info)?;
            } else {
                println!("{what} set{}", if protected { " (protected)" } else { "" });
            }
        }
        SecretCommand::List { global, repo } => {
            let path = match (global, repo) {
                (true, None) => "/secrets".to_owned(),
                (false, Some(repo)) => format!("/repos/{repo}/secrets"),
                (true, Some(_)) => bail!("with --global, give no REPO"),
                (false, None) => bail!("give a REPO (or --global)"),
            };
            let list: SecretList = c.get(&path).await?;
            if out.json {
                out.print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            for s in list.secrets {
                let flag = if s.protected { "  protected" } else { "" };
                println!("{}{flag}", s.name);
            }
        }
        SecretCommand::Rm { global, args } => {
            let (path, what) = secret_path(global, &args)?;
            c.send(c.request(Method::DELETE, &path)).await?;
            if out.json {
                out.print_json(&serde_json::json!({ "deleted": what }))?;
            } else {
                println!("{what} deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
