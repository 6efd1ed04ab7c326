//! One network namespace per run, held by a small "sandbox" container that job containers join
//! (`network_mode: container:<sandbox>`), as a Kubernetes pod's pause container.
//!
//! Why: Docker makes a fresh network namespace for every container, with a veth pair on the
//! bridge, and that is most of a container's start time here. Joining an existing namespace
//! measured 275 ms per `docker run` against 494–504 ms on the default bridge and 389–418 ms
//! with `--network none` (bench/FINDINGS.md #2).
//!
//! Isolation: jobs of one run share the namespace (its IP, `/etc/hosts` and
//! `/etc/resolv.conf`), never jobs of two runs — the run is already one trust domain, since its
//! jobs share `/workspace`. A job's processes die with its container (`init`), so nothing it
//! started keeps listening for the next one. A few sandboxes are started ahead of time (the warm
//! pool), so the first job of a run does not wait for one.

use crate::docker::status_of;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

/// Label on sandbox containers (its value is the runner's name).
pub const LABEL_SANDBOX: &str = "gitweave.sandbox";

/// How job containers get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobNetwork {
    /// The jobs of a run share one network namespace (the default; faster starts).
    #[default]
    Run,
    /// Every job container gets its own, on Docker's default bridge.
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

#[derive(Debug)]
struct Held {
    id: String,
    users: usize,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Started, not yet given to a run.
    warm: Vec<String>,
    /// By workspace key.
    runs: HashMap<String, Held>,
    /// Set once the image turned out to be unusable: jobs fall back to their own network.
    disabled: bool,
    /// Set by [`Sandboxes::clear`] (the runner stops): nothing more is started.
    closed: bool,
    /// A refill task is running.
    refilling: bool,
}

/// The sandboxes of one runner.
#[derive(Debug)]
pub struct Sandboxes {
    docker: Docker,
    image: String,
    runner: String,
    prefix: String,
    labels: Vec<(String, String)>,
    /// Sandboxes kept warm.
    warm_target: usize,
    /// Run sandboxes kept at most (idle ones beyond it are removed, oldest first).
    keep: usize,
    state: Mutex<State>,
    /// The background refill, so that [`Sandboxes::clear`] can wait for one in flight.
    refills: TaskTracker,
}

impl Sandboxes {
    /// Sandboxes from `image` (any image with `/bin/sh`), `warm_target` of them started ahead.
    pub fn new(
        docker: Docker,
        image: &str,
        runner: &str,
        prefix: &str,
        labels: Vec<(String, String)>,
        warm_target: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            docker,
            image: image.to_owned(),
            runner: runner.to_owned(),
            prefix: prefix.to_owned(),
            labels,
            warm_target,
            keep: (warm_target * 2).max(4),
            state: Mutex::default(),
            refills: TaskTracker::new(),
        })
    }

    /// The network mode for a job of `workspace`: `container:<sandbox>`, or `None` (Docker's
    /// default) when sandboxes cannot be made here. Pair with [`Sandboxes::release`].
    pub async fn acquire(self: &Arc<Self>, workspace: &str) -> Option<String> {
        let mut state = self.state.lock().await;
        if state.disabled {
            return None;
        }
        if let Some(held) = state.runs.get_mut(workspace) {
            if self.is_running(&held.id).await {
                held.users += 1;
                held.last_used = Instant::now();
                return Some(format!("container:{}", held.id));
            }
            // Someone removed it (or the daemon restarted): make another.
            let gone = state.runs.remove(workspace).map(|h| h.id);
            if let Some(id) = gone {
                self.remove(&id).await;
            }
        }
        let mut id = None;
        while let Some(candidate) = state.warm.pop() {
            if self.is_running(&candidate).await {
                id = Some(candidate);
                break;
            }
            self.remove(&candidate).await;
        }
        // None warm (more runs at once than slots + 1, or the pool is still filling): start
        // one now, under the lock, so two jobs of this run do not start two.
        let id = match id {
            Some(id) => id,
            None => match self.start().await {
                Ok(id) => id,
                Err(e) if is_missing_image(&e) => {
                    tracing::warn!(image = %self.image, error = %e, "no network sandbox: the helper image is missing, so jobs get their own network namespace from now on (set RUNNER_JOB_NETWORK=job to silence this)");
                    state.disabled = true;
                    return None;
                }
                Err(e) => {
                    tracing::warn!(image = %self.image, error = %e, "no network sandbox for this job; it gets its own network namespace");
                    return None;
                }
            },
        };
        state.runs.insert(
            workspace.to_owned(),
            Held {
                id: id.clone(),
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
        Some(format!("container:{id}"))
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

    /// The run of `workspace` ended: its sandbox goes, unless a job of it still runs here.
    pub async fn run_ended(self: &Arc<Self>, workspace: &str) {
        let mut state = self.state.lock().await;
        let id = match state.runs.get(workspace) {
            Some(held) if held.users == 0 => state.runs.remove(workspace).map(|h| h.id),
            _ => None,
        };
        drop(state);
        if let Some(id) = id {
            self.remove(&id).await;
        }
        self.refill_later();
    }

    /// Starts the warm pool (call once the runner's leftovers are removed).
    pub async fn warm_up(self: &Arc<Self>) {
        self.state.lock().await.closed = false;
        self.refill_later();
    }

    /// Forgets every sandbox (their containers are removed with the runner's leftovers), and
    /// starts no more until [`Sandboxes::warm_up`]. Returns once a refill in flight has ended:
    /// one still creating a container when the runner lists its leftovers would leave it
    /// behind, in `created` state, if the process exited before the refill saw `closed`.
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
    fn refill_later(self: &Arc<Self>) {
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

    /// Starts sandboxes until the warm pool is full (one task at a time).
    async fn refill(&self) {
        loop {
            {
                let state = self.state.lock().await;
                if state.disabled || state.closed || state.warm.len() >= self.warm_target {
                    return;
                }
            }
            // Started outside the lock: a job of another run does not wait for it.
            match self.start().await {
                Ok(id) => {
                    let mut state = self.state.lock().await;
                    if state.closed {
                        drop(state);
                        self.remove(&id).await;
                        return;
                    }
                    state.warm.push(id);
                }
                Err(e) if is_missing_image(&e) => {
                    tracing::warn!(image = %self.image, error = %e, "no network sandboxes: the helper image is missing, so jobs get their own network namespace (set RUNNER_JOB_NETWORK=job to silence this)");
                    self.state.lock().await.disabled = true;
                    return;
                }
                Err(e) => {
                    tracing::warn!(image = %self.image, error = %e, "starting a warm network sandbox failed");
                    return;
                }
            }
        }
    }

    /// Idle run sandboxes beyond [`Sandboxes::keep`], oldest first (runs whose end this runner
    /// did not see, because their last job ran elsewhere).
    fn evict(&self, state: &mut State) -> Vec<String> {
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
            .filter_map(|(_, key)| state.runs.remove(&key).map(|h| h.id))
            .collect()
    }

    async fn is_running(&self, id: &str) -> bool {
        matches!(
            self.docker.inspect_container(id, None).await,
            Ok(c) if c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        )
    }

    async fn start(&self) -> Result<String, DockerError> {
        let name = format!("{}sandbox-{}", self.prefix, uuid::Uuid::new_v4().simple());
        let mut labels: HashMap<String, String> = self.labels.iter().cloned().collect();
        labels.insert(LABEL_SANDBOX.to_owned(), self.runner.clone());
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![IDLE.into()]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                init: Some(true),
                log_config: Some(crate::docker::no_daemon_log()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove(&created.id).await;
            return Err(e);
        }
        Ok(created.id)
    }

    async fn remove(&self, id: &str) {
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

/// The daemon answered 404 to creating a container: the image is not there (no pull is tried
/// for sandboxes).
fn is_missing_image(e: &DockerError) -> bool {
    status_of(e) == Some(404)
}
