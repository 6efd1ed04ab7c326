//! The state every handler shares through axum's `State`.

use crate::config::Config;
use gitweave_http::Metrics;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;
use uuid::Uuid;

/// A runner's token hash and name, cached after an authentication.
#[derive(Debug, Clone)]
pub struct KnownRunner {
    /// SHA-256 of its token's secret.
    pub token_hash: Vec<u8>,
    /// Its name.
    pub name: String,
    /// Its whole label set (fixed at registration): which jobs' releases wake its polls.
    pub labels: Arc<gitweave_model::labels::Labels>,
    /// When the database last said this registration is live.
    pub checked_at: std::time::Instant,
}

/// How long a cached runner authentication is trusted before the database is asked again.
/// A registration revoked by this instance leaves the cache at once; one revoked by another
/// pipeline-svc instance is refused here within this time.
pub const RUNNER_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Postgres.
    pub pool: PgPool,
    /// Settings.
    pub config: Arc<Config>,
    /// The runners' waiting claim long-polls, woken by the labels of the jobs that became
    /// claimable.
    pub waiters: Arc<crate::wakeups::Waiters>,
    /// Job ids whose log grew or that ended; log followers wait on it.
    pub job_updates: broadcast::Sender<Uuid>,
    /// Run ids that got new events; event followers wait on it.
    pub run_updates: broadcast::Sender<Uuid>,
    /// Runners already authenticated.
    pub runner_cache: Arc<RwLock<HashMap<Uuid, KnownRunner>>>,
    /// Runners that said they are stopping: their long-polls end at once, without a job.
    pub stopping_runners: Arc<RwLock<std::collections::HashSet<Uuid>>>,
    /// Prometheus numbers.
    pub metrics: Metrics,
    /// Serialised answers that can no longer change (ended runs, complete log pages).
    pub settled: Arc<crate::settled::Settled>,
    /// Set when the service starts shutting down: claims answer "no job" at once.
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// Seals and opens secrets under the service's key.
    pub secrets: Arc<crate::secret_box::SecretBox>,
    /// One lock per runner registration, held around each of its claims, so the claim's
    /// count of its running jobs sees the claim before it and a runner never holds more
    /// than its registered capacity (SPEC §13), however many long-polls it opens.
    pub claim_locks: Arc<std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
    /// When each runner registration last reached this instance (any authenticated call, and
    /// every second of a waiting long-poll): whether it is `online` (SPEC §13).
    pub runner_contact: Arc<RwLock<HashMap<Uuid, std::time::Instant>>>,
    /// When this instance's reaper last took an attempt back from each runner: the runner's
    /// long-polls that began before then end without a job (its `lost_at` in the database
    /// holds for every instance; this ends the waiting at once).
    pub runner_lost: Arc<RwLock<HashMap<Uuid, std::time::Instant>>>,
    /// The repos' git mirrors in `PIPELINE_DATA_DIR/mirrors` (SPEC §9).
    pub mirrors: Arc<crate::mirror::Mirrors>,
    /// Artifacts and cache archives (SPEC §11): `PIPELINE_OBJECT_STORE`.
    pub objects: gitweave_objects::Objects,
}

impl AppState {
    /// Tells waiting runners that jobs with these requirements became claimable: one poll
    /// per job, of a runner that carries its labels (bench/FINDINGS.md #6, #25).
    pub fn wake_runners(&self, requires: &[gitweave_model::labels::Labels]) {
        self.waiters.wake_for(requires);
    }

    /// Tells `jobs` waiting polls, whatever their labels, that jobs became claimable (when
    /// the jobs' requirements are not at hand).
    pub fn wake_any_runners(&self, jobs: usize) {
        self.waiters.wake_any(jobs);
    }

    /// Wakes every waiting long-poll (a runner stopping must see it at once).
    pub fn wake_all_runners(&self) {
        self.waiters.wake_all();
    }

    /// The service stops: every waiting long-poll answers "no job" now, and new ones at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake_all_runners();
    }

    /// Whether the service is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets cached authentications (and claim locks) of registrations that were revoked.
    pub fn forget_runners(&self, ids: &[Uuid]) {
        if let Ok(mut c) = self.runner_cache.write() {
            for id in ids {
                c.remove(id);
            }
        }
        if let Ok(mut l) = self.claim_locks.lock() {
            for id in ids {
                l.remove(id);
            }
        }
        if let Ok(mut c) = self.runner_contact.write() {
            for id in ids {
                c.remove(id);
            }
        }
        if let Ok(mut c) = self.runner_lost.write() {
            for id in ids {
                c.remove(id);
            }
        }
    }

    /// Records that the reaper took an attempt back from `runner`, and wakes the long-polls
    /// so that the runner's older ones end.
    pub fn runner_lost(&self, runner: Uuid) {
        if let Ok(mut c) = self.runner_lost.write() {
            c.insert(runner, std::time::Instant::now());
        }
        self.wake_all_runners();
    }

    /// Whether `runner` was lost after `since` (a long-poll's start).
    pub fn lost_since(&self, runner: Uuid, since: std::time::Instant) -> bool {
        self.runner_lost
            .read()
            .is_ok_and(|c| c.get(&runner).is_some_and(|at| *at > since))
    }

    /// Records that a runner is in contact now.
    pub fn touch_runner(&self, runner: Uuid) {
        if let Ok(mut c) = self.runner_contact.write() {
            c.insert(runner, std::time::Instant::now());
        }
    }

    /// How long ago a runner was last in contact with this instance, if it ever was.
    pub fn runner_contact_age(&self, runner: Uuid) -> Option<std::time::Duration> {
        self.runner_contact
            .read()
            .ok()?
            .get(&runner)
            .map(std::time::Instant::elapsed)
    }

    /// The lock a runner's claims take turns on.
    pub fn claim_lock(&self, runner: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        match self.claim_locks.lock() {
            Ok(mut l) => l.entry(runner).or_default().clone(),
            // A poisoned map cannot serialise; the claim's own capacity check still holds
            // but for claims racing each other.
            Err(_) => Arc::default(),
        }
    }

    /// Whether a runner asked to stop taking jobs.
    pub fn is_stopping(&self, runner: Uuid) -> bool {
        self.stopping_runners
            .read()
            .is_ok_and(|s| s.contains(&runner))
    }

    /// Tells event followers that a run has new events.
    pub fn run_changed(&self, run_id: Uuid) {
        let _ = self.run_updates.send(run_id);
    }

    /// Tells log followers that a job changed.
    pub fn job_changed(&self, job_id: Uuid) {
        // No receiver is fine: nobody follows that job.
        let _ = self.job_updates.send(job_id);
    }
}
