//! `gitweave hook install` and `gitweave hook deliver`: a plain `git push` to a local bare
//! repository triggers a GitWeave run, through the same signed webhook a forge would send.
//!
//! `install` writes a `post-receive` hook into the bare repository and keeps its settings in
//! the repository's git config (`gitweave.url`, `gitweave.repo`, `gitweave.secret`). Unless
//! told otherwise it also makes a fresh secret and sets it, with `clone_url = file://<path>`,
//! on the GitWeave repo through the API, so the runner checks out exactly the pushed commit.
//!
//! The hook runs `gitweave hook deliver`, which reads git's `<old> <new> <ref>` lines on
//! stdin and POSTs one Gitea-style push payload per ref to
//! `/api/v1/repos/{repo}/hooks/gitea`, signed with `X-Gitea-Signature` (HMAC-SHA256 of the
//! body). Ref names are data in a JSON body; nothing of them ever reaches a shell.

use crate::client::Client;
use crate::output::Out;
use anyhow::{Context, bail};
use clap::Subcommand;
use gitweave_api::public::{PutRepo, Run};
use gitweave_model::names::RepoName;
use gitweave_model::webhook;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// First line after the shebang of every hook `install` writes; a hook without it is someone
/// else's and is not replaced without `--force`.
const MARKER: &str = "# gitweave post-receive hook";

/// How long one delivery may take before the push finishes without it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// `gitweave hook …`.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Make every `git push` to a local bare repository start a run of a GitWeave repo.
    ///
    /// Writes hooks/post-receive and the repository's `gitweave.*` git config. By default it
    /// also makes a new webhook secret and sets it, with clone_url = file://<path>, on the
    /// GitWeave repo (creating the repo when it does not exist).
    Install {
        /// The GitWeave repo to run.
        #[arg(long)]
        repo: String,
        /// The bare repository (`git init --bare`).
        path: PathBuf,
        /// Use this webhook secret instead of making one.
        #[arg(long, env = "GITWEAVE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Leave the GitWeave repo alone (no API call); needs --secret equal to its
        /// webhook_secret.
        #[arg(long, requires = "secret")]
        no_configure: bool,
        /// Keep the GitWeave repo's clone_url instead of pointing it at this repository.
        #[arg(long)]
        keep_clone_url: bool,
        /// Replace a post-receive hook GitWeave did not write (kept as
        /// post-receive.before-gitweave).
        #[arg(long)]
        force: bool,
    },
    /// Run by the post-receive hook: sends each `<old> <new> <ref>` line of stdin to GitWeave
    /// as a signed push webhook.
    Deliver {
        /// The bare repository (default: the one git runs the hook in).
        #[arg(long)]
        git_dir: Option<PathBuf>,
    },
}

/// Runs a `hook` subcommand with the CLI's client (gateway URL, token, TLS roots).
pub async fn run(cmd: HookCommand, c: &Client, out: Out) -> anyhow::Result<ExitCode> {
    match cmd {
        HookCommand::Install {
            repo,
            path,
            secret,
            no_configure,
            keep_clone_url,
            force,
        } => {
            let installed = install(
                c,
                &Install {
                    repo,
                    path,
                    secret,
                    configure: !no_configure,
                    set_clone_url: !keep_clone_url,
                    force,
                },
            )
            .await?;
            if out.json {
                out.print_json(&installed)?;
            } else {
                installed.print_text();
            }
            Ok(ExitCode::SUCCESS)
        }
        HookCommand::Deliver { git_dir } => deliver(git_dir.as_deref(), c).await,
    }
}

/// Runs git on a repository; its trimmed stdout, or an error with its stderr.
fn git(git_dir: Option<&Path>, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = std::process::Command::new("git");
    if let Some(dir) = git_dir {
        cmd.arg("--git-dir").arg(dir);
    }
    let out = cmd
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One setting of `gitweave.*`, or an error that says how to set it.
fn setting(git_dir: Option<&Path>, key: &str) -> anyhow::Result<String> {
    git(git_dir, &["config", "--get", &format!("gitweave.{key}")])
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| {
            format!("git config gitweave.{key} is not set here; run `gitweave hook install --repo NAME <bare repo>` first")
        })
}

struct Install {
    repo: String,
    path: PathBuf,
    secret: Option<String>,
    configure: bool,
    set_clone_url: bool,
    force: bool,
}

/// What `install` did: printed as text, or as JSON with `--json` (never the secret).
#[derive(Debug, Serialize)]
struct Installed {
    /// The hook file written.
    hook: PathBuf,
    /// The bare repository (canonical path).
    bare_repo: PathBuf,
    /// The GitWeave repo its pushes run.
    repo: String,
    /// The gateway the hook delivers to.
    url: String,
    /// The GitWeave repo's webhook secret was set through the API.
    configured: bool,
    /// The clone_url set on the GitWeave repo, when it was.
    clone_url: Option<String>,
}

impl Installed {
    fn print_text(&self) {
        println!(
            "installed {}: pushes to {} now run GitWeave repo {} at {}",
            self.hook.display(),
            self.bare_repo.display(),
            self.repo,
            self.url
        );
        if self.configured {
            println!(
                "set the webhook secret{} of repo {}",
                self.clone_url
                    .as_ref()
                    .map_or(String::new(), |u| format!(" and clone_url {u}")),
                self.repo
            );
        }
    }
}

/// 256 random bits (two v4 UUIDs carry 244 of them, from the OS's CSPRNG), as hex.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Quotes a path for `sh` as one single-quoted word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hook: a fixed script that hands stdin to `gitweave hook deliver` (with the
/// `--ca-cert` file the install was given, so an `https://` gateway behind a private CA works).
fn hook_script(gitweave: &Path, ca_cert: Option<&Path>) -> String {
    let ca = ca_cert.map_or(String::new(), |p| {
        format!(" --ca-cert {}", sh_quote(&p.to_string_lossy()))
    });
    format!(
        "#!/bin/sh\n{MARKER} (written by `gitweave hook install`; run it again to rewrite).\n\
         # Sends every pushed ref to GitWeave as a signed push webhook; settings: git config gitweave.*\n\
         exec {}{ca} hook deliver\n",
        sh_quote(&gitweave.to_string_lossy())
    )
}

async fn install(c: &Client, i: &Install) -> anyhow::Result<Installed> {
    RepoName::parse(&i.repo).map_err(|e| anyhow::anyhow!("--repo: {e}"))?;
    let path = std::fs::canonicalize(&i.path)
        .with_context(|| format!("{} does not exist", i.path.display()))?;
    let bare = git(Some(&path), &["rev-parse", "--is-bare-repository"]).ok();
    if bare.as_deref() != Some("true") {
        bail!(
            "{} is not a bare git repository (make one with `git init --bare {}`)",
            path.display(),
            path.display()
        );
    }
    let hooks = path.join("hooks");
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let hook = hooks.join("post-receive");
    if let Ok(existing) = std::fs::read_to_string(&hook)
        && !existing.contains(MARKER)
    {
        if !i.force {
            bail!(
                "{} exists and was not written by gitweave; pass --force to replace it (it is kept as post-receive.before-gitweave)",
                hook.display()
            );
        }
        std::fs::rename(&hook, hooks.join("post-receive.before-gitweave"))
            .context("keeping the old post-receive hook")?;
    }

    let secret = i.secret.clone().unwrap_or_else(new_secret);
    if i.configure {
        let body = PutRepo {
            clone_url: i
                .set_clone_url
                .then(|| Some(format!("file://{}", path.display()))),
            default_branch: None,
            webhook_secret: Some(Some(secret.clone())),
            protected_refs: None,
        };
        let rb = c
            .request(Method::PUT, &format!("/repos/{}", i.repo))
            .json(&body);
        c.send(rb)
            .await
            .with_context(|| format!("setting up GitWeave repo {}", i.repo))?;
    }

    let dir = Some(path.as_path());
    git(dir, &["config", "gitweave.url", &c.base])?;
    git(dir, &["config", "gitweave.repo", &i.repo])?;
    git(dir, &["config", "gitweave.secret", &secret])?;
    let exe = std::env::current_exe().context("finding the gitweave binary")?;
    std::fs::write(&hook, hook_script(&exe, c.ca_cert.as_deref()))
        .with_context(|| format!("writing {}", hook.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", hook.display()))?;
    }
    Ok(Installed {
        hook,
        bare_repo: path.clone(),
        repo: i.repo.clone(),
        url: c.base.clone(),
        configured: i.configure,
        clone_url: (i.configure && i.set_clone_url).then(|| format!("file://{}", path.display())),
    })
}

/// One `<old> <new> <ref>` line of a post-receive hook's stdin.
fn parse_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut parts = line.splitn(3, ' ');
    let before = parts.next()?;
    let after = parts.next()?;
    let git_ref = parts.next()?.trim_end_matches(['\r', '\n']);
    (!before.is_empty() && !after.is_empty() && !git_ref.is_empty())
        .then_some((before, after, git_ref))
}

/// The push payload, in the fields Gitea sends (and GitWeave reads).
fn payload(repo: &str, before: &str, after: &str, git_ref: &str) -> Value {
    let pusher = std::env::var("USER").unwrap_or_else(|_| "local".into());
    let pushed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "ref": git_ref,
        "before": before,
        "after": after,
        "repository": { "name": repo },
        "pusher": { "username": pusher },
        "pushed_at": pushed_at,
        "commits": [],
    })
}

async fn deliver(git_dir: Option<&Path>, c: &Client) -> anyhow::Result<ExitCode> {
    let repo = setting(git_dir, "repo")?;
    let secret = setting(git_dir, "secret")?;
    let url = setting(git_dir, "url").unwrap_or_else(|_| c.base.clone());
    let endpoint = format!(
        "{}/api/v1/repos/{repo}/hooks/gitea",
        url.trim_end_matches('/')
    );
    let mut failed = false;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading the pushed refs")?;
        let Some((before, after, git_ref)) = parse_line(&line) else {
            continue;
        };
        let body = payload(&repo, before, after, git_ref).to_string();
        let signature = webhook::sign(secret.as_bytes(), body.as_bytes());
        let sent = c
            .http
            .post(&endpoint)
            .timeout(DELIVERY_TIMEOUT)
            .header("content-type", "application/json")
            .header("x-gitea-event", "push")
            .header("x-gitea-delivery", uuid::Uuid::new_v4().to_string())
            .header("x-gitea-signature", signature)
            .header(
                "user-agent",
                concat!("gitweave-hook/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .send()
            .await;
        let short = &after[..after.len().min(12)];
        match sent {
            Err(e) => {
                failed = true;
                eprintln!("gitweave: {git_ref} {short}: cannot reach GitWeave at {url}: {e}");
            }
            Ok(resp) if resp.status().is_success() => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                match serde_json::from_str::<Run>(&text) {
                    Ok(run) => eprintln!(
                        "gitweave: {git_ref} {short} → run {} ({}){}",
                        run.id,
                        run.status,
                        if status == reqwest::StatusCode::OK {
                            ", already triggered"
                        } else {
                            ""
                        }
                    ),
                    Err(_) => {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        eprintln!(
                            "gitweave: {git_ref} {short}: {}",
                            v["message"].as_str().unwrap_or("accepted, no run")
                        );
                    }
                }
            }
            Ok(resp) => {
                failed = true;
                let status = resp.status();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                eprintln!(
                    "gitweave: {git_ref} {short}: GitWeave answered {status}: {}",
                    v["error"]["message"].as_str().unwrap_or("no details")
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_lines_keep_hostile_refs_whole() {
        let line = "0000000000000000000000000000000000000000 6113728f27ae82c7b1a177c8d03f9e96e0adf246 refs/heads/zzz\";echo${IFS}\"hello\";#";
        let (before, after, r) = parse_line(line).expect("a ref line");
        assert!(webhook::is_zero_sha(before));
        assert_eq!(after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(r, "refs/heads/zzz\";echo${IFS}\"hello\";#");
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("abc def"), None);
    }

    #[test]
    fn the_payload_is_a_push_gitweave_reads_back() {
        let body = payload("shop", "0000", "abcdef12", "refs/tags/v1").to_string();
        let decided = webhook::decide(&webhook::EventKind::Push, body.as_bytes());
        assert_eq!(
            decided,
            Ok(webhook::Decision::Run(webhook::Push {
                git_ref: "refs/tags/v1".into(),
                before: Some("0000".into()),
                after: "abcdef12".into(),
                head_message: None,
            }))
        );
    }

    #[test]
    fn the_hook_script_quotes_the_binary_path() {
        let s = hook_script(Path::new("/opt/it's here/gitweave"), None);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARKER));
        assert!(s.contains(r"exec '/opt/it'\''s here/gitweave' hook deliver"));
        let s = hook_script(
            Path::new("/bin/gitweave"),
            Some(Path::new("/etc/my ca.pem")),
        );
        assert!(s.contains(r"exec '/bin/gitweave' --ca-cert '/etc/my ca.pem' hook deliver"));
    }
}
