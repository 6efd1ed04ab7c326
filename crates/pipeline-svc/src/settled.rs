//! Answers that can no longer change, kept serialised: a run once it has ended, and a page of a
//! log that can no longer grow (its job ended, or it is an earlier attempt's).
//!
//! Nothing changes a run after its end (a rerun is a new run, cancel refuses), so these never
//! go stale and need no invalidation, also with several pipeline-svc instances. The one
//! exception is deletion by retention (`PIPELINE_RETENTION_DAYS`, [`crate::retention`]): each
//! entry carries the time it settled (the run's or job's end, at the latest the time it was
//! stored, never later than the end of its run), and an entry that settled longer ago than the
//! retention period is not served, so a run that any instance deleted is never answered from
//! memory. Dashboards and `curl` loops poll exactly these; each hit saves two Postgres
//! queries and the JSON rendering (bench/FINDINGS.md #9, #10). Bounded by bytes; the oldest
//! entries go first.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use time::OffsetDateTime;
use uuid::Uuid;

/// What an entry answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `GET /pipelines/runs/{id}` of an ended run.
    Run(Uuid),
    /// `GET /jobs/{id}/logs` of a log that can no longer grow.
    LogPage {
        /// Job.
        job: Uuid,
        /// Attempt as asked (`None`: the current one, once the job has ended).
        attempt: Option<i32>,
        /// Asked offset.
        offset: i64,
        /// Asked limit.
        limit: i64,
    },
}

#[derive(Debug, Default)]
struct Inner {
    /// Each body with the time its answer settled.
    map: HashMap<Key, (Bytes, OffsetDateTime)>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// A byte-bounded map of settled answers (JSON bodies).
#[derive(Debug)]
pub struct Settled {
    budget: usize,
    /// Entries that settled longer ago than this are not served.
    retention: Option<time::Duration>,
    inner: Mutex<Inner>,
}

impl Settled {
    /// At most `budget` bytes of bodies (0 turns it off).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            retention: None,
            inner: Mutex::default(),
        }
    }

    /// Serves no entry that settled longer ago than `retention` (runs that old may have
    /// been deleted).
    pub fn with_retention(mut self, retention: Option<time::Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// The stored body, if any (and not past the retention period).
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let (body, settled_at) = self.lock().map.get(key).cloned()?;
        match self.retention {
            Some(r) if settled_at < OffsetDateTime::now_utc() - r => None,
            _ => Some(body),
        }
    }

    /// Stores a body that settled at `settled_at` (no later than the end of its run),
    /// dropping the oldest entries beyond the budget. A body larger than an eighth of the
    /// budget is not kept.
    pub fn put(&self, key: Key, body: Bytes, settled_at: OffsetDateTime) {
        if body.len() > self.budget / 8 {
            return;
        }
        let mut inner = self.lock();
        if inner.map.contains_key(&key) {
            return;
        }
        inner.bytes += body.len();
        inner.map.insert(key, (body, settled_at));
        inner.order.push_back(key);
        while inner.bytes > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some((b, _)) = inner.map.remove(&old) {
                inner.bytes -= b.len();
            }
        }
    }

    /// Drops every entry of these runs and jobs (they were deleted).
    pub fn forget(&self, runs: &[Uuid], jobs: &[Uuid]) {
        if runs.is_empty() && jobs.is_empty() {
            return;
        }
        let runs: std::collections::HashSet<&Uuid> = runs.iter().collect();
        let jobs: std::collections::HashSet<&Uuid> = jobs.iter().collect();
        let gone = |k: &Key| match k {
            Key::Run(id) => runs.contains(id),
            Key::LogPage { job, .. } => jobs.contains(job),
        };
        let mut inner = self.lock();
        let mut freed = 0;
        inner.map.retain(|k, (b, _)| {
            let keep = !gone(k);
            if !keep {
                freed += b.len();
            }
            keep
        });
        inner.order.retain(|k| !gone(k));
        inner.bytes -= freed;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(n: u128) -> Key {
        Key::Run(Uuid::from_u128(n))
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn an_answer_older_than_the_retention_period_is_not_served() {
        let c = Settled::new(1024).with_retention(Some(time::Duration::days(30)));
        c.put(
            run(1),
            Bytes::from_static(b"old"),
            now() - time::Duration::days(31),
        );
        c.put(
            run(2),
            Bytes::from_static(b"young"),
            now() - time::Duration::days(29),
        );
        assert_eq!(c.get(&run(1)), None);
        assert_eq!(c.get(&run(2)).as_deref(), Some(&b"young"[..]));
        let forever = Settled::new(1024);
        forever.put(
            run(1),
            Bytes::from_static(b"old"),
            now() - time::Duration::days(3650),
        );
        assert_eq!(forever.get(&run(1)).as_deref(), Some(&b"old"[..]));
    }

    #[test]
    fn keeps_what_it_was_given_and_tells_keys_apart() {
        let c = Settled::new(1024);
        c.put(run(1), Bytes::from_static(b"one"), now());
        let page = |offset| Key::LogPage {
            job: Uuid::from_u128(1),
            attempt: Some(1),
            offset,
            limit: 10,
        };
        c.put(page(0), Bytes::from_static(b"p0"), now());
        assert_eq!(c.get(&run(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(c.get(&page(0)).as_deref(), Some(&b"p0"[..]));
        assert_eq!(c.get(&page(10)), None);
        assert_eq!(c.get(&run(2)), None);
    }

    #[test]
    fn forgotten_runs_and_jobs_are_gone() {
        let c = Settled::new(1024);
        let page = |job| Key::LogPage {
            job: Uuid::from_u128(job),
            attempt: None,
            offset: 0,
            limit: 10,
        };
        c.put(run(1), Bytes::from_static(b"one"), now());
        c.put(run(2), Bytes::from_static(b"two"), now());
        c.put(page(7), Bytes::from_static(b"p7"), now());
        c.put(page(8), Bytes::from_static(b"p8"), now());
        c.forget(&[Uuid::from_u128(1)], &[Uuid::from_u128(7)]);
        assert_eq!(c.get(&run(1)), None);
        assert_eq!(c.get(&page(7)), None);
        assert!(c.get(&run(2)).is_some() && c.get(&page(8)).is_some());
        assert_eq!(c.bytes(), 5);
    }

    #[test]
    fn a_body_too_large_for_it_is_not_kept() {
        let c = Settled::new(800);
        c.put(run(1), Bytes::from(vec![0; 101]), now());
        assert_eq!(c.get(&run(1)), None);
        assert_eq!(c.bytes(), 0);
        let off = Settled::new(0);
        off.put(run(1), Bytes::from_static(b"x"), now());
        assert_eq!(off.get(&run(1)), None);
    }

    proptest! {
        /// Whatever is put, it never holds more than its budget, the newest entry that fits
        /// stays, and the byte count matches what it holds.
        #[test]
        fn stays_within_its_budget(sizes in proptest::collection::vec(0usize..200, 1..100)) {
            let c = Settled::new(1000);
            for (i, s) in sizes.iter().enumerate() {
                c.put(run(i as u128), Bytes::from(vec![7; *s]), now());
                prop_assert!(c.bytes() <= 1000);
                if *s <= 125 {
                    prop_assert_eq!(c.get(&run(i as u128)).map(|b| b.len()), Some(*s));
                }
            }
            let inner = c.lock();
            prop_assert_eq!(inner.bytes, inner.map.values().map(|(b, _)| b.len()).sum::<usize>());
            prop_assert_eq!(inner.map.len(), inner.order.len());
        }
    }
}
