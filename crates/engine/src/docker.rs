//! The Docker engine: one container per job attempt, through the Docker Engine API (bollard).
//!
//! Output is attached **before** the container starts, so no byte is missed, and drained
//! continuously. Job containers have no daemon-side log (the `none` driver), so the attach
//! asks for none (`logs=false`). The jobs of a run share one network namespace
//! ([`crate::sandbox`]), loopback only unless egress is on, never Docker's default bridge.
//! Every container is held to [`Limits`] and [`harden`]ed (SPEC §15). The run's
//! workspace is a named volume, not a bind mount: it works the same whether the runner runs on
//! the host or in a container beside the jobs (compose), where host paths differ. For the same
//! reason the checkout runs in a helper container that mounts that volume
//! ([`DockerEngine::with_helper_image`]).

use crate::checkout::{self, DEFAULT_HELPER_IMAGE, Source, Verified, WorkspaceLocks};
pub use crate::container::{DROPPED_CAPS, harden, limited};
use crate::container::{no_daemon_log, status_of};
use crate::sandbox::{JobNetwork, LABEL_SANDBOX, PodKind, Sandboxes, remove_network};
use crate::{
    Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, STOP_GRACE, ServicesUp,
    TarStream, script,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use gitweave_model::resources::Resources;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

mod archive;
mod services;
pub use services::{LABEL_RUN, LABEL_SERVICE};

/// Label on every container and volume GitWeave makes.
pub const LABEL_JOB: &str = "gitweave.job";
/// Label naming the runner that owns a container.
pub const LABEL_RUNNER: &str = "gitweave.runner";
/// Label on workspace volumes.
pub const LABEL_WORKSPACE: &str = "gitweave.workspace";

/// Default of `RUNNER_JOB_PIDS`.
pub const DEFAULT_JOB_PIDS: i64 = 4096;

/// What each job container may use (`RUNNER_JOB_PIDS`, `RUNNER_JOB_MEMORY`,
/// `RUNNER_JOB_CPUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Processes (and threads) at once.
    pub pids: i64,
    /// Each job's default memory and CPUs, and the most it may ask for (`None`: no limit).
    pub max: Resources,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pids: DEFAULT_JOB_PIDS,
            max: Resources::default(),
        }
    }
}

/// When to pull a missing image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull when not present locally (the default, as GitLab's `if-not-present`).
    IfNotPresent,
    /// Never pull: a missing image fails the job with `image_not_found`.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "if-not-present" => Ok(PullPolicy::IfNotPresent),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "pull policy must be if-not-present or never, not {other:?}"
            )),
        }
    }
}

/// Runs jobs in Docker containers.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    runner: String,
    pull: PullPolicy,
    /// Prefix of container and volume names (lets tests run side by side and clean up).
    prefix: String,
    /// Image of the checkout helper (needs `sh` and `git`).
    helper_image: String,
    /// Serialises checkouts into one workspace.
    locks: Arc<WorkspaceLocks>,
    /// Network sandboxes (one per run), when jobs share their run's network namespace.
    sandboxes: Option<Arc<Sandboxes>>,
    /// Containers holding a sandbox, with the workspace whose sandbox they hold.
    in_sandbox: Arc<Mutex<HashMap<String, String>>>,
    /// Whether run networks have a route out (`RUNNER_JOB_EGRESS`).
    egress: bool,
    /// Per-container limits.
    limits: Limits,
    /// The services of the jobs prepared here, by job container (SPEC §12).
    services: services::Held,
}

impl DockerEngine {
    /// Connects (`DOCKER_HOST` or the local socket) and negotiates the API version, so an older
    /// daemon (e.g. Debian's 20.10, API 1.41) is spoken to in its own version.
    pub async fn connect(
        runner: &str,
        pull: PullPolicy,
        prefix: &str,
    ) -> Result<Self, EngineError> {
        let docker = Docker::connect_with_defaults()
            .map_err(engine_err)?
            .negotiate_version()
            .await
            .map_err(engine_err)?;
        Ok(Self {
            docker,
            runner: runner.to_owned(),
            pull,
            prefix: prefix.to_owned(),
            helper_image: DEFAULT_HELPER_IMAGE.to_owned(),
            locks: Arc::default(),
            sandboxes: None,
            in_sandbox: Arc::default(),
            egress: false,
            limits: Limits::default(),
            services: Arc::default(),
        })
    }

    /// How job containers get their network ([`crate::sandbox`]). [`JobNetwork::Run`]: the
    /// jobs of a run with several jobs join one network namespace held by a sandbox container
    /// of the helper image (set the helper image first); a one-job run's container gets a
    /// namespace of its own. [`JobNetwork::Job`] (the default before this is called): every
    /// container its own. Without `egress` a namespace has only loopback; with it, the jobs
    /// of a run always join its sandbox (whatever `network`), on the run's bridge network with
    /// NAT, behind the sandbox's egress guard. `warm` sandboxes (with networks) are made ahead.
    pub fn with_job_network(mut self, network: JobNetwork, egress: bool, warm: usize) -> Self {
        self.egress = egress;
        let kind = PodKind {
            // A run network always comes with a sandbox: it holds the egress guard's routes.
            sandbox: network == JobNetwork::Run || egress,
            egress,
        };
        self.sandboxes = (kind.sandbox || kind.egress).then(|| {
            Sandboxes::new(
                self.docker.clone(),
                &self.helper_image,
                &self.runner,
                &self.prefix,
                vec![(LABEL_RUNNER.to_owned(), self.runner.clone())],
                kind,
                warm,
            )
        });
        self
    }

    /// Holds every job container to `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs checkouts in `image` (`RUNNER_HELPER_IMAGE`; any image with `/bin/sh` and `git`,
    /// its entrypoint is overridden) instead of [`DEFAULT_HELPER_IMAGE`]. The pull policy
    /// applies to it as to job images.
    pub fn with_helper_image(mut self, image: impl Into<String>) -> Self {
        self.helper_image = image.into();
        self
    }

    /// The bollard client (for tests and tooling).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Name of the workspace volume of a run.
    pub fn volume_name(&self, workspace: &str) -> String {
        format!("{}ws-{workspace}", self.prefix)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(engine_err(e)),
        }
        if self.pull == PullPolicy::Never {
            return Err(EngineError::ImageNotFound {
                image: image.to_owned(),
                detail: "not present on the runner's Docker engine and the pull policy is never"
                    .into(),
            });
        }
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(progress) = pull.next().await {
            if let Err(e) = progress {
                return Err(EngineError::ImageNotFound {
                    image: image.to_owned(),
                    detail: format!("pull failed: {e}"),
                });
            }
        }
        Ok(())
    }

    /// Name of the private volume of a run's checkout (its git dir and marker): only the
    /// checkout helper mounts it, never a job.
    pub fn private_volume_name(&self, workspace: &str) -> String {
        format!("{}git-{workspace}", self.prefix)
    }

    async fn ensure_volume(&self, workspace: &str) -> Result<String, EngineError> {
        self.ensure_named_volume(self.volume_name(workspace), workspace)
            .await
    }

    async fn ensure_named_volume(
        &self,
        name: String,
        workspace: &str,
    ) -> Result<String, EngineError> {
        let mut labels = HashMap::new();
        labels.insert(LABEL_WORKSPACE.to_owned(), workspace.to_owned());
        labels.insert(LABEL_RUNNER.to_owned(), self.runner.clone());
        // Creating a volume that exists returns it: idempotent, and safe when two jobs of
        // one run start on two slots of this runner at once.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(engine_err)?;
        Ok(name)
    }

    /// Creates a container by name, replacing one of that name that an earlier crash of this
    /// runner left. Returns its id.
    async fn create(
        &self,
        name: &str,
        image: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = match self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            Ok(c) => c,
            Err(e) if status_of(&e) == Some(409) => {
                let force = RemoveContainerOptionsBuilder::default().force(true).build();
                self.docker
                    .remove_container(name, Some(force))
                    .await
                    .map_err(engine_err)?;
                self.docker
                    .create_container(Some(options), body)
                    .await
                    .map_err(engine_err)?
            }
            Err(e) if status_of(&e) == Some(404) => {
                return Err(EngineError::ImageNotFound {
                    image: image.to_owned(),
                    detail: e.to_string(),
                });
            }
            // The daemon refused the configuration, e.g. a bind source (a local clone_url)
            // that does not exist on the Docker host.
            Err(e) if status_of(&e) == Some(400) => {
                return Err(EngineError::Config(format!(
                    "Docker refused to create container {name}: {e}"
                )));
            }
            Err(e) => return Err(engine_err(e)),
        };
        Ok(created.id)
    }

    /// [`DockerEngine::create`] for a container of `spec`'s run, on its run's network: the
    /// run's sandbox or network when it has one (held until [`DockerEngine::leave_sandbox`]),
    /// else a loopback-only namespace of its own. Never Docker's default bridge.
    async fn create_in_run(
        &self,
        name: &str,
        image: &str,
        mut body: ContainerCreateBody,
        spec: &JobSpec,
    ) -> Result<String, EngineError> {
        // A one-job run without egress has nothing to share: `none` is as isolated, and
        // cheaper than making and removing a sandbox for it (bench/FINDINGS.md #16).
        let pooled = self
            .sandboxes
            .as_ref()
            .filter(|_| spec.shares_run || self.egress);
        let host = body.host_config.get_or_insert_with(Default::default);
        let Some(sandboxes) = pooled else {
            host.network_mode = Some("none".into());
            return self.create(name, image, body).await;
        };
        let mode = sandboxes.acquire(&spec.workspace).await.map_err(|e| {
            EngineError::Engine(format!("making the run's network sandbox failed: {e}"))
        })?;
        host.network_mode = Some(mode);
        let created = self.create(name, image, body).await;
        match &created {
            Ok(handle) => {
                self.in_sandbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(handle.clone(), spec.workspace.clone());
            }
            Err(_) => sandboxes.release(&spec.workspace).await,
        }
        created
    }

    /// The container no longer runs: its run's sandbox is free for others of this runner.
    async fn leave_sandbox(&self, container: &str) {
        let workspace = self
            .in_sandbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container);
        if let (Some(sandboxes), Some(workspace)) = (&self.sandboxes, workspace) {
            sandboxes.release(&workspace).await;
        }
    }

    async fn stop(&self, id: &str) {
        let options = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE.as_secs() as i32)
            .build();
        if let Err(e) = self.docker.stop_container(id, Some(options)).await
            && status_of(&e) != Some(304)
        {
            tracing::warn!(container = id, error = %e, "stopping the container failed");
        }
    }
}

fn engine_err(e: DockerError) -> EngineError {
    EngineError::Engine(e.to_string())
}

#[async_trait]
impl Engine for DockerEngine {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker.ping().await.map(|_| ()).map_err(engine_err)
    }

    async fn prepare(&self, spec: &JobSpec) -> Result<Prepared, EngineError> {
        let image = spec.image.as_deref().ok_or_else(|| {
            EngineError::Config("the job has no image; the docker engine needs one".into())
        })?;
        let resources = spec
            .resources
            .within(self.limits.max)
            .map_err(|e| EngineError::Config(e.to_string()))?;
        self.ensure_image(image).await?;
        let volume = self.ensure_volume(&spec.workspace).await?;
        let mut labels = HashMap::new();
        labels.insert(LABEL_JOB.to_owned(), spec.job_id.clone());
        labels.insert(LABEL_RUNNER.to_owned(), self.runner.clone());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                script::render(&spec.script),
            ]),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some("/workspace".into()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some("/workspace".into()),
                    source: Some(volume),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                init: Some(true),
                log_config: Some(no_daemon_log()),
                ..limited(self.limits.pids, resources)
            }),
            ..Default::default()
        };
        let name = format!("{}job-{}-{}", self.prefix, spec.job_id, spec.attempt);
        if spec.services.is_empty() {
            let handle = self.create_in_run(&name, image, body, spec).await?;
            return Ok(Prepared {
                handle,
                spec: spec.clone(),
            });
        }
        // With services, the job joins a namespace of its own with them, not its run's.
        let (mode, services) = self.prepare_services(spec, resources).await?;
        let mut body = body;
        body.host_config
            .get_or_insert_with(Default::default)
            .network_mode = Some(mode);
        let handle = match self.create(&name, image, body).await {
            Ok(handle) => handle,
            Err(e) => {
                services.remove(&self.docker).await;
                return Err(e);
            }
        };
        self.hold_services(&handle, services);
        Ok(Prepared {
            handle,
            spec: spec.clone(),
        })
    }

    async fn seed_workspace(
        &self,
        prepared: &Prepared,
        archive: Vec<u8>,
    ) -> Result<(), EngineError> {
        // The container is created, not started: the archive lands in its /workspace mount,
        // the run's volume.
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path("/workspace")
            .build();
        self.docker
            .upload_to_container(
                &prepared.handle,
                Some(options),
                bollard::body_full(bytes::Bytes::from(archive)),
            )
            .await
            .map_err(|e| {
                EngineError::Engine(format!("copying the work tree into the workspace: {e}"))
            })
    }

    async fn export(
        &self,
        prepared: &Prepared,
        rel: &str,
    ) -> Result<Option<TarStream>, EngineError> {
        self.export_path(prepared, rel).await
    }

    async fn import(&self, prepared: &Prepared, tar: TarStream) -> Result<(), EngineError> {
        self.import_tar(prepared, tar).await
    }

    async fn execute(
        &self,
        prepared: &Prepared,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        let id = prepared.handle.as_str();
        // Attach first, then start: nothing the job writes can be missed. `logs(false)`: there is
        // nothing before the start to replay, and with the `none` log driver dockerd sends
        // nothing at all to an attach that asks for logs.
        let attach = AttachContainerOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let mut output = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(engine_err)?
            .output;
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine_err)?;

        let deadline = tokio::time::sleep(prepared.spec.timeout);
        tokio::pin!(deadline);
        let mut stopped: Option<Outcome> = None;
        loop {
            tokio::select! {
                frame = output.next() => match frame {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message })) => {
                        out.write(&message).await;
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(e)) => {
                        tracing::warn!(container = id, error = %e, "reading container output failed");
                        break;
                    }
                    None => break,
                },
                () = &mut deadline, if stopped.is_none() => {
                    stopped = Some(Outcome::TimedOut);
                    self.stop(id).await;
                }
                () = cancel.cancelled(), if stopped.is_none() => {
                    stopped = Some(Outcome::Canceled);
                    self.stop(id).await;
                }
            }
        }

        let wait = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let code = match self.docker.wait_container(id, Some(wait)).next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(engine_err(e)),
            None => {
                return Err(EngineError::Engine(
                    "the container wait stream ended without a status".into(),
                ));
            }
        };
        // Every process of the job is gone with its init: the sandbox may serve the next job.
        self.leave_sandbox(id).await;
        if let Some(outcome) = stopped {
            return Ok(outcome);
        }
        let oom_killed = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        Ok(Outcome::Exited { code, oom_killed })
    }

    async fn checkout(
        &self,
        spec: &JobSpec,
        c: &Verified,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        self.ensure_image(&self.helper_image).await?;
        let volume = self.ensure_volume(&spec.workspace).await?;
        let private = self
            .ensure_named_volume(self.private_volume_name(&spec.workspace), &spec.workspace)
            .await?;
        let _held = self.locks.lock(&spec.workspace).await;
        let name = format!("{}checkout-{}-{}", self.prefix, spec.job_id, spec.attempt);
        let body = checkout::helper_container(
            &self.helper_image,
            c,
            &volume,
            &private,
            [
                (LABEL_JOB.to_owned(), spec.job_id.clone()),
                (LABEL_RUNNER.to_owned(), self.runner.clone()),
            ],
        );
        let mut body = body;
        let host = body.host_config.get_or_insert_with(Default::default);
        harden(host);
        host.pids_limit = Some(self.limits.pids);
        // Never the run's namespace: without egress it has no route to a remote clone URL, and
        // the helper (trusted code) should not share a namespace with the job. A local
        // repository needs no network at all.
        host.network_mode = match c.source() {
            Source::Local(_) => Some("none".to_owned()),
            Source::Remote(_) => None,
        };
        let handle = self.create(&name, &self.helper_image, body).await?;
        let helper = Prepared {
            handle,
            spec: spec.clone(),
        };
        let outcome = self.execute(&helper, out, cancel).await;
        if let Err(e) = self.collect(&helper).await {
            tracing::warn!(error = %e, "removing the checkout helper failed");
        }
        outcome
    }

    async fn start_services(
        &self,
        prepared: &Prepared,
        logs: &[Arc<OutputBuffer>],
        cancel: &CancellationToken,
    ) -> Result<ServicesUp, EngineError> {
        self.start_held_services(prepared, logs, cancel).await
    }

    async fn stop_services(&self, prepared: &Prepared) {
        self.kill_services(&prepared.handle).await;
    }

    async fn collect(&self, prepared: &Prepared) -> Result<(), EngineError> {
        self.remove_services(&prepared.handle).await;
        // `v`: anonymous volumes its image declares go with it (the workspace is a named
        // volume, which `v` never removes).
        let force = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .docker
            .remove_container(&prepared.handle, Some(force))
            .await
        {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(engine_err(e)),
        }
        self.leave_sandbox(&prepared.handle).await;
        Ok(())
    }

    async fn remove_workspace(&self, workspace: &str) -> Result<(), EngineError> {
        self.locks.forget(workspace);
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.run_ended(workspace).await;
        }
        for name in [
            self.volume_name(workspace),
            self.private_volume_name(workspace),
        ] {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            match self.docker.remove_volume(&name, Some(options)).await {
                Ok(()) => {}
                // 404: already gone (or never made); 409: still in use by a job (or
                // checkout) of this run on another slot.
                Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
                Err(e) => return Err(engine_err(e)),
            }
        }
        Ok(())
    }

    async fn workspaces(&self) -> Result<Vec<String>, EngineError> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_owned(),
            vec![
                format!("{LABEL_RUNNER}={}", self.runner),
                LABEL_WORKSPACE.to_owned(),
            ],
        );
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(engine_err)?;
        let mut workspaces: Vec<String> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            // Only the volumes this engine names (its prefix): another runner's volumes under
            // the same runner name but another prefix are not ours to judge.
            .filter(|v| v.name.starts_with(&self.prefix))
            .filter_map(|v| v.labels.get(LABEL_WORKSPACE).cloned())
            .collect();
        workspaces.sort();
        workspaces.dedup();
        Ok(workspaces)
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_owned(),
            vec![format!("{LABEL_RUNNER}={}", self.runner)],
        );
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        // Sandboxes first: none is started from here on, and a refill in flight has ended
        // (and removed what it made) before the list is taken.
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.clear().await;
        }
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_err)?;
        let mut removed = 0;
        for c in containers {
            let Some(id) = c.id else { continue };
            let is_job = c.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_JOB));
            let is_sandbox = c
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(LABEL_SANDBOX));
            if !is_job && !is_sandbox {
                continue;
            }
            let force = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&id, Some(force)).await {
                // Sandboxes outlive jobs by design; only job containers count as left behind.
                Ok(()) => removed += usize::from(is_job),
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(engine_err(e)),
            }
        }
        // Run networks last: a network goes only once no container is on it.
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_owned(),
            vec![format!("{LABEL_SANDBOX}={}", self.runner)],
        );
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(engine_err)?;
        for net in networks {
            if let Some(name) = net.name {
                remove_network(&self.docker, &name).await;
            }
        }
        Ok(removed)
    }

    async fn warm_up(&self) {
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.warm_up().await;
        }
    }
}

impl DockerEngine {
    /// The Docker engine's own id (`GET /info`, `ID`): the host a runner's workspaces live
    /// on, shared by every runner of that engine (SPEC §13's default `RUNNER_HOST_ID`).
    /// `None` when the engine does not say.
    pub async fn engine_id(&self) -> Option<String> {
        match self.docker.info().await {
            Ok(info) => info.id.filter(|id| !id.trim().is_empty()),
            Err(e) => {
                tracing::warn!(error = %e, "the Docker engine did not say its id");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_JOB_PIDS, DROPPED_CAPS, limited};
    use gitweave_model::resources::Resources;

    #[test]
    fn every_container_is_unprivileged_with_no_new_privileges_and_the_limits() {
        let resources = Resources {
            memory: "512m".parse().ok(),
            cpus: "1.5".parse().ok(),
        };
        let host = limited(DEFAULT_JOB_PIDS, resources);
        assert_eq!(host.privileged, Some(false));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_owned()])
        );
        let dropped = host.cap_drop.unwrap_or_default();
        for cap in ["NET_RAW", "MKNOD", "SYS_CHROOT", "SETFCAP", "AUDIT_WRITE"] {
            assert!(dropped.iter().any(|c| c == cap), "{cap} is dropped");
        }
        assert_eq!(dropped.len(), DROPPED_CAPS.len());
        assert_eq!(host.cap_add, None, "nothing is added back");
        assert_eq!(host.ipc_mode.as_deref(), Some("private"));
        assert_eq!(host.pids_limit, Some(4096));
        assert_eq!(host.memory, Some(512 << 20));
        assert_eq!(host.memory_swap, host.memory, "no swap beyond the limit");
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        for unset in [&host.network_mode, &host.pid_mode, &host.userns_mode] {
            assert_eq!(unset, &None, "never the host's namespaces");
        }
        assert_eq!(host.binds, None, "no host bind mount");

        let unlimited = limited(7, Resources::default());
        assert_eq!(
            (unlimited.memory, unlimited.memory_swap, unlimited.nano_cpus),
            (None, None, None)
        );
        assert_eq!(unlimited.pids_limit, Some(7));
    }
}
