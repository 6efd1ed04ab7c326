//! Waking waiting runners for the jobs that became claimable, by their labels.
//!
//! Each claim long-poll registers itself with its runner's labels while it lasts. A released
//! job wakes one waiting poll whose runner carries every label the job needs, not any poll: a
//! `zone=b` runner woken for a `zone=a` job claims nothing (an empty claim statement,
//! bench/FINDINGS.md #25), while the job waits for a `zone=a` runner
//! to come back by itself. Workspace affinity and capacity are not known here: a woken runner
//! may still find that the claim statement gives the job to another, which the claim's own
//! re-check and the pollers' one-second recheck cover.

use gitweave_model::labels::{Labels, satisfies};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A label set as the database stores it (`runners.labels`, `jobs.requires`: a JSON object
/// of label → value, written from a label map). One that does not read is empty: as a
/// job's requirements it wakes any runner, as a runner's labels it satisfies only a job that
/// needs nothing.
pub fn labels_of(stored: &serde_json::Value) -> Labels {
    serde_json::from_value(stored.clone()).unwrap_or_default()
}

/// The claim long-polls waiting on this instance.
#[derive(Default)]
pub struct Waiters {
    next: AtomicU64,
    list: Mutex<Vec<Waiter>>,
}

struct Waiter {
    key: u64,
    labels: Arc<Labels>,
    notify: Arc<Notify>,
    /// Looking for a job (or about to): may be woken. A woken poll is disarmed until it looks
    /// again, so two released jobs wake two polls.
    armed: bool,
}

/// One long-poll's registration; removed when dropped.
pub struct Registration {
    waiters: Arc<Waiters>,
    key: u64,
    notify: Arc<Notify>,
}

impl Waiters {
    /// Registers a long-poll of a runner with `labels` (armed).
    pub fn register(self: &Arc<Self>, labels: Arc<Labels>) -> Registration {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.lock().push(Waiter {
            key,
            labels,
            notify: notify.clone(),
            armed: true,
        });
        Registration {
            waiters: self.clone(),
            key,
            notify,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        // The list holds no invariant a panic elsewhere could break.
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes, for each of `requires` (one per released job), one armed poll whose runner
    /// satisfies it. Answers how many polls were woken; a job no waiting runner can take
    /// wakes none (a runner that can will find it when it next looks).
    pub fn wake_for<'a>(&self, requires: impl IntoIterator<Item = &'a Labels>) -> usize {
        let mut list = self.lock();
        let mut woken = 0;
        for req in requires {
            if let Some(w) = list
                .iter_mut()
                .find(|w| w.armed && satisfies(&w.labels, req))
            {
                w.armed = false;
                w.notify.notify_one();
                woken += 1;
            }
        }
        woken
    }

    /// Wakes up to `n` armed polls, whatever their labels (a job whose requirements the
    /// caller does not have at hand).
    pub fn wake_any(&self, n: usize) -> usize {
        let mut list = self.lock();
        let mut woken = 0;
        for w in list.iter_mut().filter(|w| w.armed).take(n) {
            w.armed = false;
            w.notify.notify_one();
            woken += 1;
        }
        woken
    }

    /// Wakes every poll (a runner stopping, the service shutting down).
    pub fn wake_all(&self) {
        for w in self.lock().iter_mut() {
            w.armed = false;
            w.notify.notify_one();
        }
    }

    /// How many polls are registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Registration {
    /// The poll looks for a job again: it may be woken. Call before each look, so a job
    /// released during the look leaves a wake-up for the wait after it.
    pub fn arm(&self) {
        if let Some(w) = self.waiters.lock().iter_mut().find(|w| w.key == self.key) {
            w.armed = true;
        }
    }

    /// Completes when the poll was woken since it was last armed (at once if that happened
    /// while it looked).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.lock().retain(|w| w.key != self.key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn labels(pairs: &[(&str, &str)]) -> Arc<Labels> {
        Arc::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    async fn was_woken(r: &Registration) -> bool {
        tokio::time::timeout(Duration::from_millis(20), r.woken())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_job_wakes_only_a_runner_that_can_take_it() {
        let w = Arc::new(Waiters::default());
        let b = w.register(labels(&[("engine", "shell"), ("zone", "b")]));
        let a = w.register(labels(&[("engine", "shell"), ("zone", "a")]));
        let need_a = labels(&[("engine", "shell"), ("zone", "a")]);
        assert_eq!(w.wake_for([need_a.as_ref()]), 1);
        assert!(was_woken(&a).await);
        assert!(!was_woken(&b).await);
    }

    #[tokio::test]
    async fn two_jobs_wake_two_runners_and_a_woken_one_waits_to_be_armed_again() {
        let w = Arc::new(Waiters::default());
        let one = w.register(labels(&[("engine", "shell")]));
        let two = w.register(labels(&[("engine", "shell")]));
        let req = labels(&[("engine", "shell")]);
        assert_eq!(w.wake_for([req.as_ref(), req.as_ref()]), 2);
        assert!(was_woken(&one).await && was_woken(&two).await);
        // Both disarmed: a third job wakes nobody until one looks again.
        assert_eq!(w.wake_for([req.as_ref()]), 0);
        one.arm();
        assert_eq!(w.wake_for([req.as_ref()]), 1);
        assert!(was_woken(&one).await);
        assert!(!was_woken(&two).await);
    }

    #[tokio::test]
    async fn a_wake_during_the_look_is_kept_for_the_wait() {
        let w = Arc::new(Waiters::default());
        let r = w.register(labels(&[("engine", "docker")]));
        r.arm();
        // Released while the poll was claiming (before it waits).
        assert_eq!(w.wake_any(5), 1);
        assert!(was_woken(&r).await);
    }

    #[tokio::test]
    async fn wake_all_reaches_every_poll_and_a_dropped_one_is_gone() {
        let w = Arc::new(Waiters::default());
        let a = w.register(labels(&[]));
        let b = w.register(labels(&[("zone", "a")]));
        drop(w.register(labels(&[])));
        assert_eq!(w.len(), 2);
        w.wake_all();
        assert!(was_woken(&a).await && was_woken(&b).await);
        drop(a);
        drop(b);
        assert_eq!(w.len(), 0);
    }
}
