//! A job's services on the Docker engine (SPEC §12).
//!
//! A job with services gets a network namespace of its own, not its run's: a sandbox
//! container of the helper image for this job alone — a warm one of the run pool, taken out of
//! it for good ([`Sandboxes::take_warm_for_job`]), else one made now
//! ([`Sandboxes::start_for_job`]) — whose `/etc/hosts` maps every service's name to
//! `127.0.0.1`. The service containers and then the job's container join it
//! (`network_mode: container:<sandbox>`), so the job reaches
//! each service on `localhost` and by name, and nothing else does: two jobs, of one run or of
//! two, never share a service's ports or names. Without egress the namespace has only
//! loopback, as a job's always has; with egress it gets a network of its own behind the guard.
//!
//! Services are created in prepare (an image that is missing fails the job with
//! `image_not_found` naming the service), started by [`Engine::start_services`] with their
//! output attached before the start (as a job's) and drained into their buffers until they are
//! removed. Readiness is polled every [`POLL`]: `tcp` reads the namespace's socket table
//! through an exec in the sandbox ([`crate::ready::listening`]), `command` runs in the
//! service's container and must exit 0. Every service container is held to the job's limits
//! and hardened like it, and labelled with its job, run, runner and name, so a runner that
//! restarts after a crash removes it with its other leftovers.
//!
//! [`Engine::start_services`]: crate::Engine::start_services

use super::{DockerEngine, LABEL_JOB, LABEL_RUNNER, engine_err};
use crate::container::{limited, no_daemon_log, status_of};
use crate::ready::{self, TAIL_LINES, Tail};
use crate::sandbox::{PodKind, Sandboxes};
use crate::{EngineError, JobSpec, OutputBuffer, Prepared, ServicesUp};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::query_parameters::{AttachContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use gitweave_model::duration::format_duration;
use gitweave_model::resources::Resources;
use gitweave_model::template::{ReadyCheck, Service};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Label naming a service container's service.
pub const LABEL_SERVICE: &str = "gitweave.service";
/// Label naming the run of a service container (and of a job's own sandbox).
pub const LABEL_RUN: &str = "gitweave.run";

/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(100);
/// Longest one check may take (an exec that hangs is a check that failed).
const CHECK_MAX: Duration = Duration::from_secs(5);
/// Most output of a check read (the socket table of a busy namespace is a few KiB).
const CHECK_OUTPUT_MAX: usize = 1024 * 1024;
/// How long a removed service's output may take to drain into its buffer.
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// What reads the socket table in the job's sandbox. `tcp6` is missing where IPv6 is off.
const SOCKET_TABLE: &str = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; exit 0";

/// One job's services: its namespace and their containers.
#[derive(Debug)]
pub(super) struct JobServices {
    pods: Arc<Sandboxes>,
    pod: crate::sandbox::Pod,
    containers: Vec<ServiceContainer>,
    followers: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct ServiceContainer {
    spec: Service,
    id: String,
    tail: Arc<Mutex<Tail>>,
    /// Set when its output stream ended: the container is no longer running.
    ended: Arc<AtomicBool>,
}

/// Services held by this engine, by the handle of their job's container.
pub(super) type Held = Arc<Mutex<HashMap<String, Arc<JobServices>>>>;

impl DockerEngine {
    /// Prepare's part for a job with services: their images, the job's own namespace and
    /// the service containers (created, not started). Returns the network mode for the job's
    /// container and what to hold until [`DockerEngine::remove_services`].
    pub(super) async fn prepare_services(
        &self,
        spec: &JobSpec,
        resources: Resources,
    ) -> Result<(String, JobServices), EngineError> {
        for s in &spec.services {
            self.ensure_image(&s.image)
                .await
                .map_err(|e| for_service(e, s))?;
        }
        self.ensure_image(&self.helper_image)
            .await
            .map_err(|e| match e {
                EngineError::ImageNotFound { image, detail } => EngineError::ImageNotFound {
                    image,
                    detail: format!(
                        "services need the helper image (RUNNER_HELPER_IMAGE) to hold the job's network namespace: {detail}"
                    ),
                },
                other => other,
            })?;
        let hosts: Vec<String> = spec
            .services
            .iter()
            .map(|s| s.name.as_str().to_owned())
            .collect();
        let (pods, pod) = self.services_pod(spec, &hosts).await?;
        let mode = pod.mode();
        let mut held = JobServices {
            pods,
            pod,
            containers: Vec::with_capacity(spec.services.len()),
            followers: tokio::sync::Mutex::default(),
        };
        for s in &spec.services {
            match self.create_service(spec, s, resources, &mode).await {
                Ok(id) => held.containers.push(ServiceContainer {
                    spec: s.clone(),
                    id,
                    tail: Arc::default(),
                    ended: Arc::default(),
                }),
                Err(e) => {
                    held.remove(&self.docker).await;
                    return Err(e);
                }
            }
        }
        Ok((mode, held))
    }

    /// The job's own namespace: a warm sandbox of the run pool when one is ready (an exec
    /// names the services in its `/etc/hosts`), else a sandbox made now with them as
    /// `extra_hosts`. Returns the pool that removes it with the pod.
    async fn services_pod(
        &self,
        spec: &JobSpec,
        hosts: &[String],
    ) -> Result<(Arc<Sandboxes>, crate::sandbox::Pod), EngineError> {
        if let Some(pool) = &self.sandboxes {
            match pool.take_warm_for_job(hosts).await {
                Ok(Some(pod)) => return Ok((pool.clone(), pod)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a warm sandbox could not take the job's services; making one")
                }
            }
        }
        let pods = Sandboxes::new(
            self.docker.clone(),
            &self.helper_image,
            &self.runner,
            &self.prefix,
            vec![
                (LABEL_RUNNER.to_owned(), self.runner.clone()),
                (LABEL_RUN.to_owned(), spec.workspace.clone()),
            ],
            PodKind {
                sandbox: true,
                egress: self.egress,
            },
            0,
        );
        let pod = pods.start_for_job(hosts).await.map_err(|e| {
            EngineError::Engine(format!(
                "making the job's network namespace for its services failed: {e}"
            ))
        })?;
        Ok((pods, pod))
    }

    async fn create_service(
        &self,
        spec: &JobSpec,
        s: &Service,
        resources: Resources,
        mode: &str,
    ) -> Result<String, EngineError> {
        let labels = HashMap::from([
            (LABEL_JOB.to_owned(), spec.job_id.clone()),
            (LABEL_RUNNER.to_owned(), self.runner.clone()),
            (LABEL_RUN.to_owned(), spec.workspace.clone()),
            (LABEL_SERVICE.to_owned(), s.name.as_str().to_owned()),
        ]);
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: s.command.clone(),
            env: Some(s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(HostConfig {
                init: Some(true),
                log_config: Some(no_daemon_log()),
                network_mode: Some(mode.to_owned()),
                ..limited(self.limits.pids, resources)
            }),
            ..Default::default()
        };
        let name = format!(
            "{}svc-{}-{}-{}",
            self.prefix,
            spec.job_id,
            spec.attempt,
            s.name.as_str()
        );
        self.create(&name, &s.image, body)
            .await
            .map_err(|e| for_service(e, s))
    }

    /// Holds a job's services until [`DockerEngine::remove_services`].
    pub(super) fn hold_services(&self, handle: &str, services: JobServices) {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.to_owned(), Arc::new(services));
    }

    fn held_services(&self, handle: &str) -> Option<Arc<JobServices>> {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(handle)
            .cloned()
    }

    /// [`crate::Engine::start_services`] on Docker.
    pub(super) async fn start_held_services(
        &self,
        prepared: &Prepared,
        logs: &[Arc<OutputBuffer>],
        cancel: &CancellationToken,
    ) -> Result<ServicesUp, EngineError> {
        let Some(held) = self.held_services(&prepared.handle) else {
            return Ok(ServicesUp::Ready);
        };
        if logs.len() != held.containers.len() {
            return Err(EngineError::Engine(format!(
                "{} service logs for {} services",
                logs.len(),
                held.containers.len()
            )));
        }
        for (svc, log) in held.containers.iter().zip(logs) {
            // Attach first, then start: nothing the service writes is missed.
            let attach = AttachContainerOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .stream(true)
                .logs(false)
                .build();
            let output = self
                .docker
                .attach_container(&svc.id, Some(attach))
                .await
                .map_err(engine_err)?
                .output;
            let follower = tokio::spawn(follow(
                output,
                log.clone(),
                svc.tail.clone(),
                svc.ended.clone(),
            ));
            held.followers.lock().await.push(follower);
            self.docker
                .start_container(&svc.id, None)
                .await
                .map_err(|e| {
                    EngineError::Engine(format!(
                        "starting service {} failed: {e}",
                        svc.spec.name.as_str()
                    ))
                })?;
        }
        let started = Instant::now();
        let sandbox = held.pod.sandbox.clone().unwrap_or_default();
        let mut pending: Vec<(&ServiceContainer, Option<String>)> =
            held.containers.iter().map(|c| (c, None)).collect();
        loop {
            let mut waiting = Vec::with_capacity(pending.len());
            for (svc, last_error) in pending {
                if svc.ended.load(Ordering::SeqCst) {
                    return Ok(self.exited_early(svc).await);
                }
                let Some(r) = &svc.spec.ready else { continue };
                let left = r.timeout.saturating_sub(started.elapsed());
                let check =
                    tokio::time::timeout(left.min(CHECK_MAX), self.check(&sandbox, svc, &r.check))
                        .await;
                let last_error = match check {
                    Ok(Ok(true)) => continue,
                    Ok(Ok(false)) => last_error,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!(
                        "the check ran for {} without an answer",
                        format_duration(left.min(CHECK_MAX))
                    )),
                };
                if started.elapsed() >= r.timeout {
                    let mut reason = format!(
                        "service {} was not ready within {} (ready: {})",
                        svc.spec.name.as_str(),
                        format_duration(r.timeout),
                        shown(&r.check)
                    );
                    if let Some(e) = &last_error {
                        reason.push_str(&format!("; the last check said: {e}"));
                    }
                    return Ok(ServicesUp::NotReady {
                        service: svc.spec.name.as_str().to_owned(),
                        reason,
                        last_lines: last_lines(svc),
                    });
                }
                waiting.push((svc, last_error));
            }
            if waiting.is_empty() {
                return Ok(ServicesUp::Ready);
            }
            pending = waiting;
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = cancel.cancelled() => return Ok(ServicesUp::Canceled),
            }
        }
    }

    /// A service that stopped before it was ready: its exit code and last lines.
    async fn exited_early(&self, svc: &ServiceContainer) -> ServicesUp {
        let code = self
            .docker
            .inspect_container(&svc.id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.exit_code);
        let code = code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        ServicesUp::NotReady {
            service: svc.spec.name.as_str().to_owned(),
            reason: format!(
                "service {} exited (exit code {code}) before it was ready",
                svc.spec.name.as_str()
            ),
            last_lines: last_lines(svc),
        }
    }

    /// One readiness check: whether it passed.
    async fn check(
        &self,
        sandbox: &str,
        svc: &ServiceContainer,
        check: &ReadyCheck,
    ) -> Result<bool, DockerError> {
        match check {
            ReadyCheck::Tcp(port) => {
                let (_, table) = exec(&self.docker, sandbox, SOCKET_TABLE).await?;
                Ok(ready::listening(&table, *port))
            }
            ReadyCheck::Command(command) => {
                let (code, _) = exec(&self.docker, &svc.id, command).await?;
                Ok(code == Some(0))
            }
        }
    }

    /// Removes the job's services and its namespace, once ([`crate::Engine::collect`]).
    pub(super) async fn remove_services(&self, handle: &str) {
        let held = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(handle);
        if let Some(held) = held {
            held.remove(&self.docker).await;
        }
    }

    /// Kills a job's services (SIGKILL: the job has ended, nothing of theirs is kept) and
    /// returns once their output is in their buffers, leaving the containers and the
    /// namespace to [`DockerEngine::remove_services`]. Killing is the part the job's end
    /// waits for; removing (the container's layer, the namespace) happens after the end is
    /// reported, off the next job's path.
    pub(super) async fn kill_services(&self, handle: &str) {
        if let Some(held) = self.held_services(handle) {
            held.kill(&self.docker).await;
        }
    }
}

impl JobServices {
    /// Kills every container at once (their output streams end) and waits for their output
    /// to be in their buffers.
    async fn kill(&self, docker: &Docker) {
        let kills = self.containers.iter().map(|svc| async move {
            let options = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            match docker.kill_container(&svc.id, Some(options)).await {
                Ok(()) => {}
                // 404: gone; 409: not running (it exited by itself, or never started).
                Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
                Err(e) => {
                    tracing::warn!(container = %svc.id, service = svc.spec.name.as_str(), error = %e, "killing a service container failed")
                }
            }
        });
        futures::future::join_all(kills).await;
        self.drain().await;
    }

    /// Waits for the followers (each ends with its container's output stream).
    async fn drain(&self) {
        let followers = std::mem::take(&mut *self.followers.lock().await);
        for mut f in followers {
            if tokio::time::timeout(DRAIN_MAX, &mut f).await.is_err() {
                tracing::warn!("a service's output did not end after its removal");
                f.abort();
            }
        }
    }

    /// Removes the containers (their output streams end), waits for their output to be in
    /// their buffers, then removes the namespace.
    pub(super) async fn remove(&self, docker: &Docker) {
        for svc in &self.containers {
            // `v`: the anonymous volumes its image declares (Postgres' data directory) go
            // with it; a service keeps nothing.
            let force = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(&svc.id, Some(force)).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => {
                    tracing::warn!(container = %svc.id, service = svc.spec.name.as_str(), error = %e, "removing a service container failed")
                }
            }
        }
        self.drain().await;
        self.pods.remove(&self.pod).await;
        // A pod taken warm from the run pool leaves a place there.
        self.pods.refill_later();
    }
}

/// Drains a service's output into its log and its tail, from its start to its end.
async fn follow(
    mut output: impl futures::Stream<Item = Result<LogOutput, DockerError>> + Unpin,
    log: Arc<OutputBuffer>,
    tail: Arc<Mutex<Tail>>,
    ended: Arc<AtomicBool>,
) {
    while let Some(frame) = output.next().await {
        match frame {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message },
            ) => {
                tail.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&message);
                log.write(&message).await;
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading a service's output failed");
                break;
            }
        }
    }
    ended.store(true, Ordering::SeqCst);
}

/// Runs `command` with `/bin/sh -c` in `container`; its exit code and (at most
/// [`CHECK_OUTPUT_MAX`] of) its output.
async fn exec(
    docker: &Docker,
    container: &str,
    command: &str,
) -> Result<(Option<i64>, Vec<u8>), DockerError> {
    let exec = docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), command.to_owned()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let mut said = Vec::new();
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await?
    {
        while let Some(chunk) = output.next().await {
            let bytes = chunk?.into_bytes();
            let room = CHECK_OUTPUT_MAX.saturating_sub(said.len());
            said.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
    Ok((docker.inspect_exec(&exec.id).await?.exit_code, said))
}

fn last_lines(svc: &ServiceContainer) -> String {
    svc.tail
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_lines(TAIL_LINES)
}

fn shown(check: &ReadyCheck) -> String {
    match check {
        ReadyCheck::Tcp(port) => format!("tcp {port}"),
        ReadyCheck::Command(c) => format!("command {c:?}"),
    }
}

/// An engine error about a service's image or container, naming the service.
fn for_service(e: EngineError, s: &Service) -> EngineError {
    match e {
        EngineError::ImageNotFound { image, detail } => EngineError::ImageNotFound {
            image,
            detail: format!("needed by service {}: {detail}", s.name.as_str()),
        },
        EngineError::Config(m) => EngineError::Config(format!("service {}: {m}", s.name.as_str())),
        EngineError::Engine(m) => EngineError::Engine(format!("service {}: {m}", s.name.as_str())),
    }
}
