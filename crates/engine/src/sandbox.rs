//! One network namespace per run, held by a small "sandbox" container that job containers join
//! (`network_mode: container:<sandbox>`), as a Kubernetes pod's pause container; and, when jobs
//! may reach the internet (`RUNNER_JOB_EGRESS=true`), one Docker bridge network per run.
//!
//! Why a sandbox: Docker makes a fresh network namespace for every container, with a veth pair
//! on the bridge, and that is most of a container's start time here. Joining an existing
//! namespace measured 275 ms per `docker run` against 494–504 ms on the default bridge and
//! 389–418 ms with `--network none` (bench/FINDINGS.md #2).
//!
//! Isolation (SPEC §15): no job container is ever on Docker's default bridge. By default a
//! run's namespace has **only a loopback interface** (the sandbox runs with Docker's `none`
//! network): no route to the host, to pipeline-svc, to other runs or out. An `internal: true`
//! bridge network is not enough for that: its isolation rules sit in iptables' FORWARD chain,
//! and a container on it still reaches every address of the host itself (the bridge's gateway,
//! `docker0`'s, the host's own), which go through INPUT (measured on Docker 20.10). With
//! egress on, each run gets its own bridge network with NAT, created ahead with its sandbox,
//! whose namespace refuses every private range and the gateway ([`EGRESS_GUARD`]): jobs reach
//! public addresses only, never another run's network or the host's services on the gateway.
//!
//! Jobs of one run share the namespace (its IP, `/etc/hosts` and `/etc/resolv.conf`), never
//! jobs of two runs — the run is already one trust domain, since its jobs share `/workspace`.
//! A job's processes die with its container (`init`), so nothing it started keeps listening for
//! the next one. A few sandboxes (with their networks) are made ahead of time (the warm pool),
//! so the first job of a run pays neither a sandbox start nor a `network create`.

use crate::container::{harden, no_daemon_log, status_of};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

/// Label on sandbox containers and run networks (its value is the runner's name).
pub const LABEL_SANDBOX: &str = "gitweave.sandbox";

/// Set in a run network's sandbox before any job joins it (`RUNNER_JOB_EGRESS=true`): every
/// private range (RFC 1918, shared address space, link-local) and the gateway's own address
/// are `prohibit` routes, so a job reaches the internet through the gateway but not another
/// run's network, the host's services on the gateway, `docker0` or the LAN. The run's own
/// subnet stays reachable (its connected route is more specific). Docker's own isolation
/// between bridge networks is not enough: on Docker 20.10 it lapses for a moment whenever any
/// network is created or removed (the daemon deletes and re-inserts the `FORWARD` jump to its
/// isolation chain), and a job retrying a connection gets through (measured; docs/SECURITY.md).
/// Routes live in the run's own namespace: Docker never rewrites them, and the jobs, without
/// NET_ADMIN, cannot change them.
const EGRESS_GUARD: &str = r#"set -e
set -- $(ip -4 route show default)
gw=${3:?no default route}
for net in 10.0.0.0/8 100.64.0.0/10 169.254.0.0/16 172.16.0.0/12 192.168.0.0/16 "$gw/32"; do
  ip route add prohibit "$net"
done"#;

/// What of a sandbox exec's output (the guard's) an error quotes, at most.
const GUARD_OUTPUT_MAX: usize = 4096;

/// Processes a sandbox may hold (its `sh`, a `sleep`, `init`).
const SANDBOX_PIDS: i64 = 32;

/// How job containers get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobNetwork {
    /// The jobs of a run share one network namespace (the default; faster starts).
    #[default]
    Run,
    /// Every job container gets its own namespace: loopback only, or with egress on, an
    /// interface on its run's network.
    Job,
}

impl std::str::FromStr for JobNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "run" => Ok(JobNetwork::Run),
            "job" => Ok(JobNetwork::Job),
            other => Err(format!("job network must be run or job, not {other:?}")),
        }
    }
}

/// The sandbox's process: sleeps until it is removed, and exits at once on SIGTERM. Plain `sh`,
/// so any helper image works (Debian's `sleep infinity` is not in BusyBox everywhere).
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done";

/// What holds one run's network: a sandbox container, a network, or both. Neither means a
/// loopback-only namespace of each container's own (Docker's `none`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pod {
    pub(crate) sandbox: Option<String>,
    pub(crate) network: Option<String>,
}

impl Pod {
    /// The `network_mode` of a container that uses it.
    pub(crate) fn mode(&self) -> String {
        match (&self.sandbox, &self.network) {
            (Some(id), _) => format!("container:{id}"),
            (None, Some(net)) => net.clone(),
            (None, None) => "none".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Held {
    pod: Pod,
    users: usize,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Made, not yet given to a run.
    warm: Vec<Pod>,
    /// By workspace key.
    runs: HashMap<String, Held>,
    /// Set once the image turned out to be unusable: no sandbox containers from then on (a
    /// run's containers each get their own namespace, on the run's network with egress).
    disabled: bool,
    /// Set by [`Sandboxes::clear`] (the runner stops): nothing more is started.
    closed: bool,
    /// A refill task is running.
    refilling: bool,
}

/// What the pool makes for each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodKind {
    /// A sandbox container whose namespace the run's containers join ([`JobNetwork::Run`]).
    pub sandbox: bool,
    /// A bridge network with NAT for the run (`RUNNER_JOB_EGRESS=true`); without it a run
    /// has only loopback.
    pub egress: bool,
}

/// The sandboxes (and run networks) of one runner.
#[derive(Debug)]
pub struct Sandboxes {
    docker: Docker,
    image: String,
    runner: String,
    prefix: String,
    labels: Vec<(String, String)>,
    kind: PodKind,
    /// Sandboxes kept warm.
    warm_target: usize,
    /// Run sandboxes kept at most (idle ones beyond it are removed, oldest first).
    keep: usize,
    state: Mutex<State>,
    /// The background refill, so that [`Sandboxes::clear`] can wait for one in flight.
    refills: TaskTracker,
}

impl Sandboxes {
    /// Pods of `kind`, sandboxes from `image` (any image with `/bin/sh`), `warm_target` of
    /// them made ahead.
    pub fn new(
        docker: Docker,
        image: &str,
        runner: &str,
        prefix: &str,
        labels: Vec<(String, String)>,
        kind: PodKind,
        warm_target: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            docker,
            image: image.to_owned(),
            runner: runner.to_owned(),
            prefix: prefix.to_owned(),
            labels,
            kind,
            warm_target,
            keep: (warm_target * 2).max(4),
            state: Mutex::default(),
            refills: TaskTracker::new(),
        })
    }

    /// The network mode for a container of `workspace`'s run: `container:<sandbox>`, the
    /// run's network, or `none`; never Docker's default bridge. Pair with
    /// [`Sandboxes::release`]. An error (the run's network could not be made) fails the job:
    /// it never falls back to a less isolated network.
    pub async fn acquire(self: &Arc<Self>, workspace: &str) -> Result<String, DockerError> {
        let mut state = self.state.lock().await;
        if let Some(held) = state.runs.get_mut(workspace) {
            if self.is_alive(&held.pod).await {
                held.users += 1;
                held.last_used = Instant::now();
                return Ok(held.pod.mode());
            }
            // Someone removed it (or the daemon restarted): make another.
            let gone = state.runs.remove(workspace).map(|h| h.pod);
            if let Some(pod) = gone {
                self.remove(&pod).await;
            }
        }
        let pod = self.pop_warm(&mut state).await;
        // None warm (more runs at once than slots + 1, or the pool is still filling): make one
        // now, under the lock, so two jobs of this run do not make two.
        let pod = match pod {
            Some(pod) => pod,
            None => self.start_or_disable(&mut state).await?,
        };
        let mode = pod.mode();
        state.runs.insert(
            workspace.to_owned(),
            Held {
                pod,
                users: 1,
                last_used: Instant::now(),
            },
        );
        let evicted = self.evict(&mut state);
        drop(state);
        for old in evicted {
            self.remove(&old).await;
        }
        // No refill here: starting a sandbox now would compete with this job's own container
        // start. The pool is topped up when a job's container has exited and when a run ends.
        Ok(mode)
    }

    /// A warm pod that still runs, taken out of the pool; dead ones met on the way are
    /// removed.
    async fn pop_warm(&self, state: &mut State) -> Option<Pod> {
        while let Some(candidate) = state.warm.pop() {
            if self.is_alive(&candidate).await {
                return Some(candidate);
            }
            self.remove(&candidate).await;
        }
        None
    }

    /// Makes a pod; when the sandbox image is missing, stops making sandboxes and makes one
    /// without.
    async fn start_or_disable(&self, state: &mut State) -> Result<Pod, DockerError> {
        match self.start(state.disabled).await {
            // With egress the sandbox holds the guard: no run network without one.
            Err(e) if !state.disabled && !self.kind.egress && is_missing_image(&e) => {
                tracing::warn!(image = %self.image, error = %e, "no network sandbox: the helper image is missing, so each job container gets a namespace of its own from now on (set RUNNER_JOB_NETWORK=job to silence this)");
                state.disabled = true;
                self.start(true).await
            }
            other => other,
        }
    }

    /// A job of `workspace` no longer uses its sandbox (its container has exited); a good
    /// moment to top the warm pool up.
    pub async fn release(self: &Arc<Self>, workspace: &str) {
        if let Some(held) = self.state.lock().await.runs.get_mut(workspace) {
            held.users = held.users.saturating_sub(1);
            held.last_used = Instant::now();
        }
        self.refill_later();
    }

    /// The run of `workspace` ended: its sandbox and network go, unless a job of it still
    /// runs here.
    pub async fn run_ended(self: &Arc<Self>, workspace: &str) {
        let mut state = self.state.lock().await;
        let pod = match state.runs.get(workspace) {
            Some(held) if held.users == 0 => state.runs.remove(workspace).map(|h| h.pod),
            _ => None,
        };
        drop(state);
        if let Some(pod) = pod {
            self.remove(&pod).await;
        }
        self.refill_later();
    }

    /// Starts the warm pool (call once the runner's leftovers are removed).
    pub async fn warm_up(self: &Arc<Self>) {
        self.state.lock().await.closed = false;
        self.refill_later();
    }

    /// Forgets every sandbox (their containers and networks are removed with the runner's
    /// leftovers), and starts no more until [`Sandboxes::warm_up`]. Returns once a refill in
    /// flight has ended: one still creating a container when the runner lists its leftovers
    /// would leave it behind, in `created` state, if the process exited before the refill saw
    /// `closed`.
    pub async fn clear(&self) {
        {
            let mut state = self.state.lock().await;
            state.warm.clear();
            state.runs.clear();
            state.closed = true;
        }
        self.refills.close();
        self.refills.wait().await;
        self.refills.reopen();
    }

    /// Tops the warm pool up in the background.
    pub(crate) fn refill_later(self: &Arc<Self>) {
        let this = Arc::clone(self);
        self.refills.spawn(async move {
            {
                let mut state = this.state.lock().await;
                if state.refilling {
                    return;
                }
                state.refilling = true;
            }
            this.refill().await;
            this.state.lock().await.refilling = false;
        });
    }

    /// Makes pods until the warm pool is full (one task at a time).
    async fn refill(&self) {
        loop {
            let disabled = {
                let state = self.state.lock().await;
                if state.closed || state.warm.len() >= self.warm_target {
                    return;
                }
                state.disabled
            };
            // Made outside the lock: a job of another run does not wait for it.
            match self.start(disabled).await {
                Ok(pod) => {
                    let mut state = self.state.lock().await;
                    if state.closed {
                        drop(state);
                        self.remove(&pod).await;
                        return;
                    }
                    state.warm.push(pod);
                }
                Err(e) if !disabled && !self.kind.egress && is_missing_image(&e) => {
                    tracing::warn!(image = %self.image, error = %e, "no network sandboxes: the helper image is missing, so each job container gets a namespace of its own (set RUNNER_JOB_NETWORK=job to silence this)");
                    self.state.lock().await.disabled = true;
                }
                Err(e) => {
                    tracing::warn!(image = %self.image, error = %e, "making a warm network sandbox failed");
                    return;
                }
            }
        }
    }

    /// Idle run pods beyond [`Sandboxes::keep`], oldest first (runs whose end this runner
    /// did not see, because their last job ran elsewhere).
    fn evict(&self, state: &mut State) -> Vec<Pod> {
        let mut idle: Vec<(Instant, String)> = state
            .runs
            .iter()
            .filter(|(_, h)| h.users == 0)
            .map(|(k, h)| (h.last_used, k.clone()))
            .collect();
        let excess = state.runs.len().saturating_sub(self.keep);
        idle.sort();
        idle.into_iter()
            .take(excess)
            .filter_map(|(_, key)| state.runs.remove(&key).map(|h| h.pod))
            .collect()
    }

    /// Whether the pod's sandbox still runs (a network alone is taken to be there).
    async fn is_alive(&self, pod: &Pod) -> bool {
        let Some(id) = &pod.sandbox else {
            return true;
        };
        matches!(
            self.docker.inspect_container(id, None).await,
            Ok(c) if c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        )
    }

    fn labels(&self) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = self.labels.iter().cloned().collect();
        labels.insert(LABEL_SANDBOX.to_owned(), self.runner.clone());
        labels
    }

    /// A warm pod given to one job with services (SPEC §12) for its own, never returned to
    /// the pool nor shared with its run's other jobs (remove it with [`Sandboxes::remove`]):
    /// before anything joins it, each of `hosts` is appended to its sandbox's `/etc/hosts` as
    /// `127.0.0.1`, which every container joining the namespace sees. Taking one costs an exec where
    /// [`Sandboxes::start_for_job`] costs a container's create and start. `None` when no
    /// sandbox is warm (or the pool makes none).
    pub(crate) async fn take_warm_for_job(
        self: &Arc<Self>,
        hosts: &[String],
    ) -> Result<Option<Pod>, DockerError> {
        let pod = {
            let mut state = self.state.lock().await;
            if !self.kind.sandbox || state.disabled {
                return Ok(None);
            }
            self.pop_warm(&mut state).await
        };
        let Some(pod) = pod else { return Ok(None) };
        let sandbox = pod.sandbox.clone().unwrap_or_default();
        // The names are arguments of the script, never part of it.
        let mut cmd = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            r#"for h in "$@"; do printf '127.0.0.1\t%s\n' "$h"; done >> /etc/hosts"#.to_owned(),
            "sh".to_owned(),
        ];
        cmd.extend(hosts.iter().cloned());
        if let Err(e) = self
            .exec_checked(&sandbox, cmd, "naming the services in /etc/hosts")
            .await
        {
            self.remove(&pod).await;
            return Err(e);
        }
        // The pool is topped up once the services are removed (after the job's report), not
        // now, beside the services' start.
        Ok(Some(pod))
    }

    /// A pod of this kind for one job with services (SPEC §12), never pooled nor shared with
    /// the run's other jobs: its sandbox's `/etc/hosts`, which every container joining the
    /// namespace sees, names each of `hosts` as `127.0.0.1`, so the job reaches its services
    /// by name. With egress it comes with a network of its own behind the guard, as a run's.
    /// Remove it with [`Sandboxes::remove`].
    pub(crate) async fn start_for_job(&self, hosts: &[String]) -> Result<Pod, DockerError> {
        self.start_with(false, hosts).await
    }

    /// Makes a run's network (with egress) and sandbox (unless `no_sandbox`).
    async fn start(&self, no_sandbox: bool) -> Result<Pod, DockerError> {
        self.start_with(no_sandbox, &[]).await
    }

    async fn start_with(&self, no_sandbox: bool, hosts: &[String]) -> Result<Pod, DockerError> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let network = match self.kind.egress {
            true => Some(self.create_network(&key).await?),
            false => None,
        };
        let mut pod = Pod {
            sandbox: None,
            network,
        };
        if self.kind.sandbox && !no_sandbox {
            match self
                .start_sandbox(&key, pod.network.as_deref(), hosts)
                .await
            {
                Ok(id) => pod.sandbox = Some(id),
                Err(e) => {
                    self.remove(&pod).await;
                    return Err(e);
                }
            }
        }
        Ok(pod)
    }

    /// A bridge network with NAT of its own: Docker drops traffic between two such networks,
    /// so runs cannot reach each other.
    async fn create_network(&self, key: &str) -> Result<String, DockerError> {
        let name = format!("{}net-{key}", self.prefix);
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(false),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await?;
        Ok(name)
    }

    async fn start_sandbox(
        &self,
        key: &str,
        network: Option<&str>,
        hosts: &[String],
    ) -> Result<String, DockerError> {
        let name = format!("{}sandbox-{key}", self.prefix);
        let mut host = HostConfig {
            init: Some(true),
            log_config: Some(no_daemon_log()),
            network_mode: Some(network.unwrap_or("none").to_owned()),
            pids_limit: Some(SANDBOX_PIDS),
            extra_hosts: (!hosts.is_empty())
                .then(|| hosts.iter().map(|h| format!("{h}:127.0.0.1")).collect()),
            ..Default::default()
        };
        harden(&mut host);
        // The sandbox only sleeps: it needs no capability at all, except, on a run network,
        // NET_ADMIN for the guard's routes (its processes are the sandbox's own; the jobs that
        // join its namespace get no capability from it).
        host.cap_drop = Some(vec!["ALL".into()]);
        if network.is_some() {
            host.cap_add = Some(vec!["NET_ADMIN".into()]);
        }
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![IDLE.into()]),
            labels: Some(self.labels()),
            host_config: Some(host),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await?;
        let started = match self.docker.start_container(&created.id, None).await {
            Ok(()) if network.is_some() => self.guard(&created.id).await,
            other => other,
        };
        if let Err(e) = started {
            self.remove_container(&created.id).await;
            return Err(e);
        }
        Ok(created.id)
    }

    /// Makes the private address ranges and the gateway's own address unreachable from the
    /// sandbox's namespace ([`EGRESS_GUARD`]), before any job joins it.
    async fn guard(&self, sandbox: &str) -> Result<(), DockerError> {
        let cmd = vec!["/bin/sh".into(), "-c".into(), EGRESS_GUARD.into()];
        self.exec_checked(sandbox, cmd, "setting the run network's guard routes in the sandbox")
            .await
            .map_err(|e| match e {
                DockerError::DockerResponseServerError { status_code, message } => {
                    DockerError::DockerResponseServerError {
                        status_code,
                        message: format!(
                            "{message}; with RUNNER_JOB_EGRESS=true the helper image {} needs `ip` (iproute2 or BusyBox)",
                            self.image
                        ),
                    }
                }
                other => other,
            })
    }

    /// Runs `cmd` in the sandbox; anything but exit 0 is an error quoting its output.
    async fn exec_checked(
        &self,
        sandbox: &str,
        cmd: Vec<String>,
        what: &str,
    ) -> Result<(), DockerError> {
        let exec = self
            .docker
            .create_exec(
                sandbox,
                ExecConfig {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let mut said = Vec::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while let Some(chunk) = output.next().await {
                let bytes = chunk?.into_bytes();
                let room = GUARD_OUTPUT_MAX.saturating_sub(said.len());
                said.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
        match self.docker.inspect_exec(&exec.id).await?.exit_code {
            Some(0) => Ok(()),
            code => Err(DockerError::DockerResponseServerError {
                status_code: 500,
                message: format!(
                    "{what} failed (exit {code:?}): {}",
                    String::from_utf8_lossy(&said).trim()
                ),
            }),
        }
    }

    /// Removes the pod's sandbox, then its network.
    pub(crate) async fn remove(&self, pod: &Pod) {
        if let Some(id) = &pod.sandbox {
            self.remove_container(id).await;
        }
        if let Some(net) = &pod.network {
            remove_network(&self.docker, net).await;
        }
    }

    async fn remove_container(&self, id: &str) {
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(force)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                tracing::warn!(container = id, error = %e, "removing a network sandbox failed")
            }
        }
    }
}

/// Removes a run network; one already gone is fine, one still in use is left to the runner's
/// leftover removal (at its next start or stop).
pub(crate) async fn remove_network(docker: &Docker, name: &str) {
    match docker.remove_network(name).await {
        Ok(()) => {}
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => tracing::warn!(network = name, error = %e, "removing a run network failed"),
    }
}

/// The daemon answered 404 to creating a container: the image is not there (no pull is tried
/// for sandboxes).
fn is_missing_image(e: &DockerError) -> bool {
    status_of(e) == Some(404)
}
