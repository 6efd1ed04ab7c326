//! The shell engine: jobs run as host processes under `/bin/sh`, with no isolation.
//!
//! For machines without Docker, and for fast scheduling tests. The workspace is a directory
//! under the runner's work dir. stdout and stderr share one pipe, so their bytes interleave in
//! the order the job wrote them, exactly as in a container without a TTY. The checkout runs
//! `git` on the host, hardened as in the helper container ([`checkout`]): into a fresh private
//! git dir beside the workspace (removed once the workspace has its copy), with the "already
//! checked out" marker in this engine's memory. Jobs run as the runner's user, though, so
//! this engine isolates nothing: a job can read and write whatever the runner can.

use crate::checkout::{self, Layout, Verified, WorkspaceLocks};
use crate::{
    Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, STOP_GRACE, TarStream, script,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

mod archive;

/// Host environment variables a job inherits; everything else of the runner's environment
/// (tokens, database URLs) stays out of jobs.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "TMPDIR"];

/// Runs jobs as host processes.
#[derive(Debug, Clone)]
pub struct ShellEngine {
    workdir: PathBuf,
    /// Serialises checkouts into one workspace.
    locks: Arc<WorkspaceLocks>,
    /// The commit each workspace holds, once its checkout succeeded: in memory, where no job
    /// can forge it.
    checked_out: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

impl ShellEngine {
    /// Workspaces go under `workdir`.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        Self {
            workdir: workdir.into(),
            locks: Arc::default(),
            checked_out: Arc::default(),
        }
    }

    fn workspace_dir(&self, workspace: &str) -> PathBuf {
        self.workdir.join(workspace)
    }

    /// The private git dir of a workspace's checkout, outside the workspace.
    fn private_dir(&self, workspace: &str) -> PathBuf {
        self.workdir.join(format!(".checkout-{workspace}"))
    }

    fn holds(&self, workspace: &str) -> Option<String> {
        self.checked_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace)
            .cloned()
    }
}

async fn signal_group(pgid: u32, signal: &str) {
    // The job's shell leads its own process group; signalling the group reaches whatever it
    // started, so no grandchild keeps the output pipe open after a stop.
    let _ = tokio::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

fn io_err(e: std::io::Error) -> EngineError {
    EngineError::Engine(e.to_string())
}

#[async_trait]
impl Engine for ShellEngine {
    fn name(&self) -> &'static str {
        "shell"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        tokio::fs::create_dir_all(&self.workdir)
            .await
            .map_err(io_err)
    }

    async fn prepare(&self, spec: &JobSpec) -> Result<Prepared, EngineError> {
        // Host processes share the host's network: there is no namespace of the job's own to
        // put services in (SPEC §12).
        if !spec.services.is_empty() {
            let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
            return Err(EngineError::Config(format!(
                "the shell engine (RUNNER_CONTAINER_ENGINE=shell) cannot run services ({}); run this job on a runner with the docker engine",
                names.join(", ")
            )));
        }
        let dir = self.workspace_dir(&spec.workspace);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        Ok(Prepared {
            handle: dir.to_string_lossy().into_owned(),
            spec: spec.clone(),
        })
    }

    async fn seed_workspace(
        &self,
        prepared: &Prepared,
        archive: Vec<u8>,
    ) -> Result<(), EngineError> {
        let dir = PathBuf::from(&prepared.handle);
        tokio::task::spawn_blocking(move || crate::seed::unpack(&archive, &dir))
            .await
            .map_err(|e| EngineError::Engine(e.to_string()))?
            .map_err(|e| {
                EngineError::Engine(format!("copying the work tree into the workspace: {e}"))
            })
    }

    async fn export(
        &self,
        prepared: &Prepared,
        rel: &str,
    ) -> Result<Option<TarStream>, EngineError> {
        archive::export(Path::new(&prepared.handle), rel).await
    }

    async fn import(&self, prepared: &Prepared, tar: TarStream) -> Result<(), EngineError> {
        archive::import(PathBuf::from(&prepared.handle), tar).await
    }

    async fn execute(
        &self,
        prepared: &Prepared,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        let mut env: Vec<(String, String)> = prepared
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("GITWEAVE_WORKSPACE".into(), prepared.handle.clone()));
        run_program(
            Program {
                text: script::render(&prepared.spec.script),
                dir: &prepared.handle,
                env,
                timeout: prepared.spec.timeout,
            },
            out,
            cancel,
        )
        .await
    }

    async fn checkout(
        &self,
        spec: &JobSpec,
        c: &Verified,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        let dir = self.workspace_dir(&spec.workspace);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        let dir = dir.to_string_lossy().into_owned();
        let _held = self.locks.lock(&spec.workspace).await;
        if self.holds(&spec.workspace).as_deref() == Some(c.commit()) {
            out.write(
                format!(
                    "gitweave: the workspace already holds {}; checkout skipped\n",
                    c.commit()
                )
                .as_bytes(),
            )
            .await;
            return Ok(Outcome::Exited {
                code: 0,
                oom_killed: false,
            });
        }
        // Fresh every time: whatever is there (a job could have written it) is not trusted.
        let private = self.private_dir(&spec.workspace);
        remove_dir(&private).await?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder.create(&private).map_err(io_err)?;
        let outcome = run_program(
            Program {
                text: checkout::SCRIPT.to_owned(),
                env: c.env(Layout {
                    workspace: &dir,
                    private: &private.to_string_lossy(),
                    source: None,
                }),
                dir: &dir,
                timeout: spec.timeout,
            },
            out,
            cancel,
        )
        .await;
        remove_dir(&private).await?;
        if let Ok(Outcome::Exited { code: 0, .. }) = outcome {
            self.checked_out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(spec.workspace.clone(), c.commit().to_owned());
        }
        outcome
    }

    async fn collect(&self, _prepared: &Prepared) -> Result<(), EngineError> {
        Ok(())
    }

    async fn remove_workspace(&self, workspace: &str) -> Result<(), EngineError> {
        self.locks.forget(workspace);
        self.checked_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workspace);
        remove_dir(&self.private_dir(workspace)).await?;
        remove_dir(&self.workspace_dir(workspace)).await
    }

    async fn workspaces(&self) -> Result<Vec<String>, EngineError> {
        let mut entries = match tokio::fs::read_dir(&self.workdir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let mut workspaces = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
            // Workspace directories are named by their run id; `spool/` and the checkouts'
            // private `.checkout-*` directories are not workspaces.
            let name = entry.file_name();
            if let Some(name) = name.to_str()
                && uuid::Uuid::parse_str(name).is_ok()
                && entry.file_type().await.map_err(io_err)?.is_dir()
            {
                workspaces.push(name.to_owned());
            }
        }
        workspaces.sort();
        Ok(workspaces)
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        // Host processes die with the runner (kill_on_drop, process groups); nothing to do.
        Ok(0)
    }
}

/// Removes a directory tree, if there is one.
async fn remove_dir(dir: &std::path::Path) -> Result<(), EngineError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

/// A `/bin/sh -c` program to run in a directory.
struct Program<'a> {
    text: String,
    dir: &'a str,
    /// Added to the few variables inherited from the runner ([`INHERITED_ENV`]).
    env: Vec<(String, String)>,
    timeout: Duration,
}

/// Runs a program to its end (or its timeout, or cancel), stdout and stderr into `out`.
async fn run_program(
    p: Program<'_>,
    out: &OutputBuffer,
    cancel: &CancellationToken,
) -> Result<Outcome, EngineError> {
    let (reader, writer) = std::io::pipe().map_err(io_err)?;
    let writer2 = writer.try_clone().map_err(io_err)?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&p.text)
        .current_dir(p.dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(writer)))
        .stderr(Stdio::from(OwnedFd::from(writer2)))
        .process_group(0)
        .kill_on_drop(true);
    for key in INHERITED_ENV {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(p.env);
    let mut child = cmd.spawn().map_err(io_err)?;
    // Drop our copies of the write end (the Command held them): EOF then means every
    // process of the job closed its output.
    drop(cmd);
    let pgid = child.id().unwrap_or(0);
    let mut pipe =
        tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(io_err)?;

    let deadline = tokio::time::sleep(p.timeout);
    tokio::pin!(deadline);
    let mut stopped: Option<Outcome> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = pipe.read(&mut buf) => match n {
                Ok(0) => break,
                Ok(n) => out.write(&buf[..n]).await,
                Err(e) => return Err(io_err(e)),
            },
            () = &mut deadline, if stopped.is_none() => {
                stopped = Some(Outcome::TimedOut);
                stop_group(pgid).await;
            }
            () = cancel.cancelled(), if stopped.is_none() => {
                stopped = Some(Outcome::Canceled);
                stop_group(pgid).await;
            }
        }
    }
    let status = child.wait().await.map_err(io_err)?;
    if let Some(outcome) = stopped {
        return Ok(outcome);
    }
    let code = status.code().map_or_else(
        || {
            use std::os::unix::process::ExitStatusExt;
            128 + i64::from(status.signal().unwrap_or(0))
        },
        i64::from,
    );
    Ok(Outcome::Exited {
        code,
        oom_killed: false,
    })
}

async fn stop_group(pgid: u32) {
    if pgid == 0 {
        return;
    }
    signal_group(pgid, "TERM").await;
    tokio::spawn(async move {
        tokio::time::sleep(STOP_GRACE).await;
        signal_group(pgid, "KILL").await;
    });
}

#[cfg(test)]
mod tests {
    use super::{Engine, EngineError, JobSpec, Outcome, OutputBuffer, ShellEngine};
    use crate::Checkout;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn temp(name: &str) -> PathBuf {
        // No spaces or braces: the path becomes a clone URL, which may hold neither.
        let dir = std::env::temp_dir().join(format!(
            "gitweave-engine-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// A repository with two commits; returns (dir, older sha, newer sha).
    fn repo() -> (PathBuf, String, String) {
        let dir = temp("origin");
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join("old.txt"), "from the older commit\n").expect("write");
        git(&dir, &["add", "."]);
        git(&dir, &["commit", "-q", "-m", "older"]);
        let older = git(&dir, &["rev-parse", "HEAD"]);
        std::fs::remove_file(dir.join("old.txt")).expect("rm");
        std::fs::write(dir.join("new.txt"), "newer\n").expect("write");
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", "newer"]);
        let newer = git(&dir, &["rev-parse", "HEAD"]);
        (dir, older, newer)
    }

    #[tokio::test]
    async fn a_job_with_services_is_refused_as_a_config_error_naming_them() {
        let root = temp("services");
        let engine = ShellEngine::new(&root);
        let service = gitweave_model::template::Service {
            name: gitweave_model::names::ServiceName::parse("db").expect("name"),
            image: "postgres:15-bookworm".into(),
            env: Default::default(),
            command: None,
            ready: None,
        };
        let spec = JobSpec {
            job_id: "j".into(),
            attempt: 1,
            image: None,
            script: vec!["true".into()],
            env: Default::default(),
            workspace: "w".into(),
            shares_run: false,
            resources: Default::default(),
            timeout: Duration::from_secs(60),
            services: vec![service],
        };
        match engine.prepare(&spec).await {
            Err(EngineError::Config(m)) => {
                assert!(m.contains("shell engine") && m.contains("(db)"), "{m}")
            }
            other => panic!("expected a config error, got {other:?}"),
        }
        assert!(!root.join("w").exists(), "nothing was made");
    }

    async fn check_out(
        engine: &ShellEngine,
        workspace: &str,
        c: &Checkout,
    ) -> (Result<Outcome, EngineError>, String) {
        let spec = JobSpec {
            job_id: "j".into(),
            attempt: 1,
            image: None,
            script: vec![],
            env: Default::default(),
            workspace: workspace.into(),
            shares_run: false,
            resources: Default::default(),
            timeout: Duration::from_secs(60),
            services: vec![],
        };
        let out = OutputBuffer::new(1 << 20);
        let r = match c.verify(Some(&std::env::temp_dir())) {
            Ok(v) => {
                engine
                    .checkout(&spec, &v, &out, &CancellationToken::new())
                    .await
            }
            Err(e) => Err(e),
        };
        out.close();
        let mut log = Vec::new();
        while let Some(b) = out.take(1 << 20).await {
            log.extend_from_slice(&b);
        }
        (r, String::from_utf8_lossy(&log).into_owned())
    }

    const OK: Outcome = Outcome::Exited {
        code: 0,
        oom_killed: false,
    };

    #[tokio::test]
    async fn checks_out_exactly_the_commit_once_with_the_ref_as_data() {
        let (origin, older, newer) = repo();
        let work = temp("work");
        let engine = ShellEngine::new(&work);
        let hostile = "refs/heads/zzz\";echo${IFS}\"hello\";#";
        let c = Checkout {
            clone_url: format!("file://{}", origin.display()),
            commit: older.clone(),
            git_ref: hostile.into(),
        };
        let (r, log) = check_out(&engine, "run1", &c).await;
        assert_eq!(r.ok(), Some(OK), "{log}");
        let ws = work.join("run1");
        assert_eq!(git(&ws, &["rev-parse", "HEAD"]), older);
        assert!(ws.join("old.txt").exists(), "the older commit's file");
        assert!(!ws.join("new.txt").exists(), "not the branch head");
        assert!(log.contains(hostile), "the ref is shown as it is: {log}");
        assert!(
            !log.lines().any(|l| l == "hello"),
            "the ref never runs: {log}"
        );

        // A later job of the run keeps what earlier jobs left.
        std::fs::write(ws.join("artifact"), "x").expect("write");
        let (r, log) = check_out(&engine, "run1", &c).await;
        assert_eq!(r.ok(), Some(OK));
        assert!(log.contains("already holds"), "{log}");
        assert!(ws.join("artifact").exists());

        // An abbreviated sha works too; a commit that is not there fails with a reason.
        let short = Checkout {
            commit: newer[..10].to_owned(),
            ..c.clone()
        };
        let (r, _) = check_out(&engine, "run2", &short).await;
        assert_eq!(r.ok(), Some(OK));
        assert_eq!(git(&work.join("run2"), &["rev-parse", "HEAD"]), newer);
        let missing = Checkout {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            ..c.clone()
        };
        let (r, log) = check_out(&engine, "run3", &missing).await;
        assert!(
            matches!(r, Ok(Outcome::Exited { code, .. }) if code != 0),
            "{log}"
        );
        assert!(log.contains("is not in"), "{log}");
        let _ = std::fs::remove_dir_all(&origin);
        let _ = std::fs::remove_dir_all(&work);
    }

    #[tokio::test]
    async fn git_never_runs_what_a_job_planted_in_the_workspace_git_dir() {
        let (origin, older, _) = repo();
        let work = temp("planted");
        let c = Checkout {
            clone_url: origin.display().to_string(),
            commit: older.clone(),
            git_ref: "refs/heads/main".into(),
        };
        let engine = ShellEngine::new(&work);
        let (r, log) = check_out(&engine, "run", &c).await;
        assert_eq!(r.ok(), Some(OK), "{log}");
        let ws = work.join("run");
        // The jobs get a git dir of their own: git works in the workspace.
        assert_eq!(git(&ws, &["rev-parse", "HEAD"]), older);
        // A job plants commands in it, where git would run them on its next checkout.
        let pwned = work.join("pwned");
        let cmd = |what: &str| format!("touch {}-{what}", pwned.display());
        let hooks = work.join("evil-hooks");
        std::fs::create_dir_all(&hooks).expect("hooks");
        for dir in [hooks.clone(), ws.join(".git/hooks")] {
            std::fs::create_dir_all(&dir).expect("hooks dir");
            for hook in ["post-checkout", "reference-transaction", "pre-auto-gc"] {
                let path = dir.join(hook);
                std::fs::write(&path, format!("#!/bin/sh\n{}\n", cmd(hook))).expect("hook");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
        }
        let config = format!(
            "[core]\n\tfsmonitor = {}\n\thooksPath = {}\n\tsshCommand = {}\n\
             [url \"ssh://evil.invalid/x\"]\n\tinsteadOf = {}\n",
            cmd("fsmonitor"),
            hooks.display(),
            cmd("ssh"),
            origin.display(),
        );
        let mut existing = std::fs::read_to_string(ws.join(".git/config")).expect("config");
        existing.push_str(&config);
        std::fs::write(ws.join(".git/config"), existing).expect("plant");
        std::fs::write(ws.join("left-by-a-job"), "x").expect("write");
        // And removes (or forges) whatever marker it can find there.
        let _ = std::fs::remove_file(ws.join(".git/gitweave-checkout"));

        // A later job of the run skips the checkout (no job can forge that) and keeps the
        // workspace.
        let (r, log) = check_out(&engine, "run", &c).await;
        assert_eq!(r.ok(), Some(OK), "{log}");
        assert!(log.contains("already holds"), "{log}");
        assert!(ws.join("left-by-a-job").exists());
        // A new runner life (the marker was in the old one's memory) checks out again:
        // from a git dir of its own, never the planted one.
        let (r, log) = check_out(&ShellEngine::new(&work), "run", &c).await;
        assert_eq!(r.ok(), Some(OK), "{log}");
        assert!(log.contains("checking out"), "{log}");
        assert!(ws.join("left-by-a-job").exists());
        assert_eq!(git(&ws, &["rev-parse", "HEAD"]), older);
        let fired: Vec<_> = std::fs::read_dir(&work)
            .expect("work dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("pwned"))
            .collect();
        assert_eq!(fired, Vec::<String>::new(), "planted commands ran");
        // The private git dir is gone once the workspace has its copy.
        assert!(!work.join(".checkout-run").exists());
        let _ = std::fs::remove_dir_all(&origin);
        let _ = std::fs::remove_dir_all(&work);
    }
}
