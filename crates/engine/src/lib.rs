//! Container engines: how one job's script is run, whatever runs it.
//!
//! The adapter model from the seeds — **prepare** (image, workspace, container), **execute**
//! (start, stream output, wait, enforce timeout and cancel), **collect** (remove what was made)
//! — is the [`Engine`] trait. [`docker::DockerEngine`] runs jobs in containers through the
//! Docker Engine API; [`shell::ShellEngine`] runs them as host processes (no isolation).
//!
//! Before a job runs, [`Engine::checkout`] puts the run's commit into its workspace when the
//! repo has a clone URL and the run a commit ([`checkout`]).
//!
//! After a job's script, [`collect::collect`] streams the files its `artifacts.paths` name
//! out of the workspace ([`Engine::export`]); before a job's script, [`Engine::import`] puts
//! the artifacts of the jobs it needs into it (SPEC §11).
//!
//! Output goes into an [`output::OutputBuffer`] that the engine fills as fast as the job writes
//! and the runner drains concurrently, so a slow upload never stalls the job (up to a cap).

pub mod checkout;
pub mod chunks;
pub mod collect;
pub mod container;
pub mod docker;
pub mod mask;
pub mod output;
pub mod ready;
pub mod sandbox;
pub mod script;
pub mod seed;
pub mod shell;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use checkout::{Checkout, Verified};
pub use mask::{MaskStream, Masker};
pub use output::OutputBuffer;

/// What an engine needs to run one job attempt. `Debug` shows the environment's names only:
/// it holds the job's secrets.
#[derive(Clone)]
pub struct JobSpec {
    /// Job id (labels, names).
    pub job_id: String,
    /// Attempt number (names: a retry gets a fresh container).
    pub attempt: i32,
    /// Image; required by the docker engine.
    pub image: Option<String>,
    /// Script lines.
    pub script: Vec<String>,
    /// Full environment.
    pub env: BTreeMap<String, String>,
    /// Workspace key: every job with the same key sees the same `/workspace`.
    pub workspace: String,
    /// Whether the run has more than one job: only then do its containers share a network
    /// namespace.
    pub shares_run: bool,
    /// Memory and CPUs the job asks for (the docker engine holds it to them, and refuses more
    /// than its maximum with [`EngineError::Config`]).
    pub resources: gitweave_model::resources::Resources,
    /// Stop after this long.
    pub timeout: Duration,
    /// Containers started beside the job, in its network namespace, before its script
    /// (SPEC §12; only the docker engine runs them).
    pub services: Vec<gitweave_model::template::Service>,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .field("image", &self.image)
            .field("script_lines", &self.script.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("workspace", &self.workspace)
            .field("shares_run", &self.shares_run)
            .field("resources", &self.resources)
            .field("timeout", &self.timeout)
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How an execution ended (the job ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The script ended by itself.
    Exited {
        /// Exit status.
        code: i64,
        /// The kernel's OOM killer stopped it.
        oom_killed: bool,
    },
    /// The timeout passed; the job was stopped.
    TimedOut,
    /// Canceled; the job was stopped.
    Canceled,
}

/// How a job's services came up ([`Engine::start_services`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicesUp {
    /// Every service is ready (or the job has none): run the script.
    Ready,
    /// A service did not become ready in time, or exited first: the job fails with
    /// `service_failed`.
    NotReady {
        /// The service's name.
        service: String,
        /// Why, for people (`service db was not ready within 60s (ready: tcp 5432)`).
        reason: String,
        /// Its last lines of output, each ending with a newline (unmasked: the caller's
        /// buffer masks what it writes).
        last_lines: String,
    },
    /// Canceled while waiting.
    Canceled,
}

/// A tar archive as a stream of chunks (what [`Engine::export`] gives and [`Engine::import`]
/// takes).
pub type TarStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, EngineError>>;

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The image is not present and could not be pulled.
    #[error("image {image} not found: {detail}")]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// What the engine said.
        detail: String,
    },
    /// The job cannot run on this engine as configured.
    #[error("{0}")]
    Config(String),
    /// The engine itself failed (daemon down, API error, I/O).
    #[error("container engine error: {0}")]
    Engine(String),
}

/// A job made ready by [`Engine::prepare`]; pass it to execute, then collect.
#[derive(Debug)]
pub struct Prepared {
    /// Engine-specific handle (container id, or working directory).
    pub handle: String,
    /// The spec it was made from.
    pub spec: JobSpec,
}

/// Runs jobs. Implementations must leave nothing behind after [`Engine::collect`].
#[async_trait]
pub trait Engine: Send + Sync {
    /// `docker` or `shell`.
    fn name(&self) -> &'static str;

    /// Checks the engine answers (for `/readyz`).
    async fn ping(&self) -> Result<(), EngineError>;

    /// Gets the image, the workspace and the container (or directory) ready, without starting
    /// anything.
    async fn prepare(&self, spec: &JobSpec) -> Result<Prepared, EngineError>;

    /// Runs the prepared job to its end, writing all output (stdout and stderr merged, in
    /// arrival order, from the very first byte) to `out`.
    async fn execute(
        &self,
        prepared: &Prepared,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError>;

    /// Checks out `checkout` (see [`Checkout::verify`]) into the workspace of `spec` (made by
    /// [`Engine::prepare`]), writing what git says to `out`. Call it after prepare and before
    /// execute, for every job of the run: once a checkout succeeded, later calls for the same
    /// commit skip it. git never runs against anything a job can write ([`checkout`]).
    /// `Exited { code: 0 }` means the workspace holds the commit; another code means git
    /// failed (its output says why). `spec.timeout` bounds it, `cancel` stops it.
    async fn checkout(
        &self,
        spec: &JobSpec,
        checkout: &Verified,
        out: &OutputBuffer,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError>;

    /// Starts the services of a prepared job (after prepare and checkout, before execute),
    /// following each one's output from its start into `logs` (one buffer per service, in
    /// `spec.services` order) until [`Engine::stop_services`], and returns once every
    /// service is ready, one is not, or `cancel` fires. A job without services is
    /// [`ServicesUp::Ready`] at once. Engines that cannot run services refuse them in
    /// prepare.
    async fn start_services(
        &self,
        prepared: &Prepared,
        logs: &[std::sync::Arc<OutputBuffer>],
        cancel: &CancellationToken,
    ) -> Result<ServicesUp, EngineError> {
        let _ = (logs, cancel);
        match prepared.spec.services.is_empty() {
            true => Ok(ServicesUp::Ready),
            false => Err(EngineError::Config(format!(
                "the {} engine cannot run services",
                self.name()
            ))),
        }
    }

    /// Stops a job's services (whatever state they are in: the docker engine kills them) and
    /// returns once their output has been written to its buffers: call it when the script has
    /// ended, before its end is reported. [`Engine::collect`] removes them (and stops them
    /// too, for the paths that skip this), after the report.
    async fn stop_services(&self, prepared: &Prepared) {
        let _ = prepared;
    }
    /// Fills the workspace of `prepared` (made by [`Engine::prepare`], not yet executed) with
    /// the files of `archive` (a tar made by [`seed::archive`]): `gitweave exec`'s copy of the
    /// working tree, in place of a checkout. Call it once, for the run's first job.
    async fn seed_workspace(
        &self,
        prepared: &Prepared,
        archive: Vec<u8>,
    ) -> Result<(), EngineError>;

    /// A tar stream of `/workspace/<rel>` (`rel` relative, `/`-separated, no `.` or `..`
    /// component; `""` is the workspace itself), or `None` when there is nothing there.
    ///
    /// Entries are named as Docker names them: `<basename of rel>/…` (a file: one entry,
    /// `<basename>`); for `""`, relative to the workspace (a leading `./` may appear). A
    /// symlink is never followed: one at `rel` itself is archived as the link, and one in a
    /// directory above it makes the answer `None` (as does a non-directory there), so an
    /// export never reads outside the workspace. [`collect::collect`] finds out why and
    /// follows links that stay inside. On docker a link that loops is `None` too (the daemon
    /// cannot stat it). Works on a prepared job's container before execute and
    /// after it, until [`Engine::collect`].
    async fn export(
        &self,
        prepared: &Prepared,
        rel: &str,
    ) -> Result<Option<TarStream>, EngineError>;

    /// Extracts the tar stream `tar` into the workspace of `prepared` (entries relative to
    /// `/workspace`, parent directories made as needed, existing files replaced), streaming.
    /// Nothing lands outside the workspace: the shell engine refuses an absolute entry or one
    /// with `..` (an error naming it) and never writes through a symlink that leads out
    /// (`tar::Entry::unpack_in`); Docker refuses such entries itself, inside the container's
    /// own filesystem. Call it after prepare and before execute.
    async fn import(&self, prepared: &Prepared, tar: TarStream) -> Result<(), EngineError>;

    /// Removes what prepare made (not the workspace).
    async fn collect(&self, prepared: &Prepared) -> Result<(), EngineError>;

    /// Removes a run's workspace, once the run has ended.
    async fn remove_workspace(&self, workspace: &str) -> Result<(), EngineError>;

    /// Removes everything this runner left behind from an earlier life (containers after a
    /// crash). Returns how many things were removed.
    async fn remove_leftovers(&self) -> Result<usize, EngineError>;

    /// The workspaces this runner holds now (workspace volumes it labelled, or workspace
    /// directories), by workspace name (the run id), each once. The runner asks pipeline-svc
    /// which of their runs are still active and removes the others.
    async fn workspaces(&self) -> Result<Vec<String>, EngineError>;

    /// Gets ready for the first job ahead of time (the docker engine starts its warm network
    /// sandboxes). Call after [`Engine::remove_leftovers`] at startup.
    async fn warm_up(&self) {}
}

/// Stop grace period: SIGTERM first, SIGKILL after this.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
