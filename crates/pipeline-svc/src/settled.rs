//! Answers that can no longer change, kept serialised: a run once it has ended, and a page of a
//! log that can no longer grow (its job ended, or it is an earlier attempt's).
//!
//! Nothing changes a run after its end (a rerun is a new run, cancel refuses, runs are never
//! deleted), so these never go stale and need no invalidation, also with several pipeline-svc
//! instances. Dashboards and `curl` loops poll exactly these; each hit saves two Postgres
//! queries and the JSON rendering (bench/FINDINGS.md #9, #10). Bounded by bytes; the oldest
//! entries go first.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
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
    map: HashMap<Key, Bytes>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// A byte-bounded map of settled answers (JSON bodies).
#[derive(Debug)]
pub struct Settled {
    budget: usize,
    inner: Mutex<Inner>,
}

impl Settled {
    /// At most `budget` bytes of bodies (0 turns it off).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The stored body, if any.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        self.lock().map.get(key).cloned()
    }

    /// Stores a body, dropping the oldest entries beyond the budget. A body larger than an
    /// eighth of the budget is not kept.
    pub fn put(&self, key: Key, body: Bytes) {
        if body.len() > self.budget / 8 {
            return;
        }
        let mut inner = self.lock();
        if inner.map.contains_key(&key) {
            return;
        }
        inner.bytes += body.len();
        inner.map.insert(key, body);
        inner.order.push_back(key);
        while inner.bytes > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.map.remove(&old) {
                inner.bytes -= b.len();
            }
        }
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

    #[test]
    fn keeps_what_it_was_given_and_tells_keys_apart() {
        let c = Settled::new(1024);
        c.put(run(1), Bytes::from_static(b"one"));
        let page = |offset| Key::LogPage {
            job: Uuid::from_u128(1),
            attempt: Some(1),
            offset,
            limit: 10,
        };
        c.put(page(0), Bytes::from_static(b"p0"));
        assert_eq!(c.get(&run(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(c.get(&page(0)).as_deref(), Some(&b"p0"[..]));
        assert_eq!(c.get(&page(10)), None);
        assert_eq!(c.get(&run(2)), None);
    }

    #[test]
    fn a_body_too_large_for_it_is_not_kept() {
        let c = Settled::new(800);
        c.put(run(1), Bytes::from(vec![0; 101]));
        assert_eq!(c.get(&run(1)), None);
        assert_eq!(c.bytes(), 0);
        let off = Settled::new(0);
        off.put(run(1), Bytes::from_static(b"x"));
        assert_eq!(off.get(&run(1)), None);
    }

    proptest! {
        /// Whatever is put, it never holds more than its budget, the newest entry that fits
        /// stays, and the byte count matches what it holds.
        #[test]
        fn stays_within_its_budget(sizes in proptest::collection::vec(0usize..200, 1..100)) {
            let c = Settled::new(1000);
            for (i, s) in sizes.iter().enumerate() {
                c.put(run(i as u128), Bytes::from(vec![7; *s]));
                prop_assert!(c.bytes() <= 1000);
                if *s <= 125 {
                    prop_assert_eq!(c.get(&run(i as u128)).map(|b| b.len()), Some(*s));
                }
            }
            let inner = c.lock();
            prop_assert_eq!(inner.bytes, inner.map.values().map(Bytes::len).sum::<usize>());
            prop_assert_eq!(inner.map.len(), inner.order.len());
        }
    }
}
