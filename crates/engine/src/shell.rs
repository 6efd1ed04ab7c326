//! The shell engine: jobs run as host processes under `/bin/sh`, with no isolation.
//!
//! For machines without Docker, and for fast scheduling tests. The workspace is a directory
//! under the runner's work dir. stdout and stderr share one pipe, so their bytes interleave in
//! the order the job wrote them, exactly as in a container without a TTY. The checkout runs
//! `git` on the host, in the workspace directory.

use crate::checkout::{self, Checkout, WorkspaceLocks};
use crate::{Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, STOP_GRACE, script};
use async_trait::async_trait;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Host environment variables a job inherits; everything else of the runner's environment
/// (tokens, database URLs) stays out of jobs.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "TMPDIR"];

/// Runs jobs as host processes.
#[derive(Debug, Clone)]
pub struct ShellEngine {
    workdir: PathBuf,
    /// Serialises checkouts into one workspace.
    locks: Arc<WorkspaceLocks>,
}

impl ShellEngine {
    /// Workspaces go under `workdir`.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        Self {
            workdir: workdir.into(),
            locks: Arc::default(),
        }
    }

    fn workspace_dir(&self, workspace: &str) -> PathBuf {
        self.workdir.join(workspace)
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
        let dir = self.workspace_dir(&spec.workspace);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        Ok(Prepared {
            handle: dir.to_string_lossy().into_owned(),
            spec: spec.clone(),
        })
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
        c: &Checkout,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        c.validate()?;
        let dir = self.workspace_dir(&spec.workspace);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        let dir = dir.to_string_lossy().into_owned();
        let _held = self.locks.lock(&spec.workspace).await;
        run_program(
            Program {
                text: checkout::SCRIPT.to_owned(),
                env: c.env(&dir),
                dir: &dir,
                timeout: spec.timeout,
            },
            out,
            cancel,
        )
        .await
    }

    async fn collect(&self, _prepared: &Prepared) -> Result<(), EngineError> {
        Ok(())
    }

    async fn remove_workspace(&self, workspace: &str) -> Result<(), EngineError> {
        self.locks.forget(workspace);
        match tokio::fs::remove_dir_all(self.workspace_dir(workspace)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        // Host processes die with the runner (kill_on_drop, process groups); nothing to do.
        Ok(0)
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
    use super::*;
    use std::path::Path;
    use std::process::Command;

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
        let dir = std::env::temp_dir().join(format!(
            "gitweave-engine-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
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
        };
        let out = OutputBuffer::new(1 << 20);
        let r = engine
            .checkout(&spec, c, &out, &CancellationToken::new())
            .await;
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
}
