//! The shell engine: jobs run as host processes under `/bin/sh`, with no isolation.
//!
//! For machines without Docker, and for fast scheduling tests. The workspace is a directory
//! under the runner's work dir. stdout and stderr share one pipe, so their bytes interleave in
//! the order the job wrote them, exactly as in a container without a TTY.

use crate::{Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, STOP_GRACE, script};
use async_trait::async_trait;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Host environment variables a job inherits; everything else of the runner's environment
/// (tokens, database URLs) stays out of jobs.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "TMPDIR"];

/// Runs jobs as host processes.
#[derive(Debug, Clone)]
pub struct ShellEngine {
    workdir: PathBuf,
}

impl ShellEngine {
    /// Workspaces go under `workdir`.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        Self {
            workdir: workdir.into(),
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
        let (reader, writer) = std::io::pipe().map_err(io_err)?;
        let writer2 = writer.try_clone().map_err(io_err)?;
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script::render(&prepared.spec.script))
            .current_dir(&prepared.handle)
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
        cmd.envs(&prepared.spec.env);
        cmd.env("GITWEAVE_WORKSPACE", &prepared.handle);
        let mut child = cmd.spawn().map_err(io_err)?;
        // Drop our copies of the write end (the Command held them): EOF then means every
        // process of the job closed its output.
        drop(cmd);
        let pgid = child.id().unwrap_or(0);
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
            .map_err(io_err)?;

        let deadline = tokio::time::sleep(prepared.spec.timeout);
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

    async fn collect(&self, _prepared: &Prepared) -> Result<(), EngineError> {
        Ok(())
    }

    async fn remove_workspace(&self, workspace: &str) -> Result<(), EngineError> {
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
