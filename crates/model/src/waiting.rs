//! Why a job waits (SPEC §13): `needs`, `approval`, `backoff`, `no_runner` or `capacity`,
//! with a message a person can act on. Computed on read from the job and a snapshot of the
//! live runners, so it is always current and costs nothing while nobody looks.

use crate::labels::{Labels, satisfies, unmet};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Why a `queued` or `manual` job has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Jobs it depends on have not finished.
    Needs,
    /// A `when: manual` job waiting for `approve`.
    Approval,
    /// A failed attempt's retry is not due yet.
    Backoff,
    /// No online runner has every label it needs.
    NoRunner,
    /// Every online runner that could take it is full.
    Capacity,
}

/// `waiting` on a job view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The reason.
    pub reason: WaitReason,
    /// The reason in words.
    pub message: String,
}

/// A live runner as the waiting rules see it.
#[derive(Debug, Clone)]
pub struct RunnerSlot {
    /// Its name.
    pub name: String,
    /// Its whole label set.
    pub labels: Labels,
    /// Registered capacity.
    pub capacity: i64,
    /// Jobs it runs now.
    pub busy: i64,
    /// In contact within one lease.
    pub online: bool,
    /// The host it runs on (its `RUNNER_HOST_ID`), as the claim's workspace affinity compares
    /// it; `None` for a registration that names none (it takes no part in affinity).
    pub host: Option<String>,
}

/// Where a queued or manual job stands.
#[derive(Debug, Clone)]
pub enum JobWait<'a> {
    /// `manual`, waiting for approval.
    Approval,
    /// Queued behind unfinished jobs (their names, possibly empty when unknown).
    Needs(&'a [String]),
    /// Queued, its next attempt due in this many seconds.
    Backoff {
        /// Seconds until it is due (rounded up).
        in_secs: u64,
        /// The attempt that will run.
        next_attempt: i32,
    },
    /// Queued and due: a runner may take it now, on one of these hosts (the hosts holding
    /// its run's workspace, SPEC §13) while one of them has an online runner that could.
    Runnable {
        /// Empty before the run's first job is claimed.
        workspace_hosts: &'a [String],
    },
}

/// How many runners a `no_runner` message names before "and N more".
const NAMED: usize = 5;

/// The `waiting` of a job that needs `requires`, or `None` when a runner with a free slot
/// can take it right now (it starts within a claim).
pub fn waiting(job: &JobWait<'_>, requires: &Labels, runners: &[RunnerSlot]) -> Option<Waiting> {
    let w = |reason, message: String| Some(Waiting { reason, message });
    match job {
        JobWait::Approval => w(
            WaitReason::Approval,
            "waiting for approval: POST /api/v1/jobs/{id}/approve (or `gitweave approve`) with a reason".into(),
        ),
        JobWait::Needs([]) => w(
            WaitReason::Needs,
            "waiting for the jobs it needs to finish".into(),
        ),
        JobWait::Needs(names) => w(
            WaitReason::Needs,
            format!("waiting for {} to finish", names.join(", ")),
        ),
        JobWait::Backoff {
            in_secs,
            next_attempt,
        } => w(
            WaitReason::Backoff,
            format!("attempt {next_attempt} starts in {in_secs} s (retry backoff)"),
        ),
        JobWait::Runnable { workspace_hosts } => {
            let online: Vec<&RunnerSlot> = runners.iter().filter(|r| r.online).collect();
            let able: Vec<&&RunnerSlot> = online
                .iter()
                .filter(|r| satisfies(&r.labels, requires))
                .collect();
            if able.is_empty() {
                return w(WaitReason::NoRunner, no_runner(requires, &online));
            }
            // Affinity: while a host holding the run's workspace can take the job, only its
            // runners may.
            let holders: Vec<&&RunnerSlot> = able
                .iter()
                .filter(|r| r.host.as_ref().is_some_and(|h| workspace_hosts.contains(h)))
                .copied()
                .collect();
            let pinned = !holders.is_empty();
            let able = if pinned { holders } else { able };
            if able.iter().any(|r| r.busy < r.capacity) {
                return None;
            }
            let (busy, cap) = able
                .iter()
                .fold((0, 0), |(b, c), r| (b + r.busy, c + r.capacity));
            let who = match (pinned, able.len()) {
                (true, 1) => format!(
                    "the one runner with {} on the host holding the run's workspace ({} on {}) is busy",
                    pairs(requires),
                    able[0].name,
                    able[0].host.as_deref().unwrap_or_default()
                ),
                (true, n) => format!(
                    "all {n} runners with {} on the hosts holding the run's workspace ({}) are busy",
                    pairs(requires),
                    workspace_hosts.join(", ")
                ),
                (false, 1) => {
                    format!("the one runner with {} ({}) is busy", pairs(requires), able[0].name)
                }
                (false, n) => format!("all {n} runners with {} are busy", pairs(requires)),
            };
            w(
                WaitReason::Capacity,
                format!("{who}: {busy} of {cap} slots in use; it starts when one frees"),
            )
        }
    }
}

fn pairs(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_runner(requires: &Labels, online: &[&RunnerSlot]) -> String {
    if online.is_empty() {
        return format!(
            "no runner is online; start a runner-svc with {} (RUNNER_CONTAINER_ENGINE, RUNNER_LABELS)",
            pairs(requires)
        );
    }
    // Name what the runners lack: the pairs no online runner has, else the job's whole set.
    let lacking: Vec<String> = requires
        .iter()
        .filter(|(k, v)| !online.iter().any(|r| r.labels.get(*k) == Some(*v)))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut m = if lacking.is_empty() {
        format!("no online runner has all of {}", pairs(requires))
    } else {
        format!("no online runner has {}", lacking.join(", "))
    };
    let _ = write!(m, " ({} online: ", online.len());
    for (i, r) in online.iter().take(NAMED).enumerate() {
        if i > 0 {
            m.push_str(", ");
        }
        let engine = r.labels.get("engine").map_or("?", String::as_str);
        let _ = write!(m, "{} engine={engine}", r.name);
        let missing = unmet(&r.labels, requires);
        if !missing.is_empty() && missing.len() < requires.len() {
            let _ = write!(m, " lacking {}", missing.join(" "));
        }
    }
    if online.len() > NAMED {
        let _ = write!(m, ", and {} more", online.len() - NAMED);
    }
    m.push(')');
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A due job of a run whose workspace no host holds yet.
    const ANYWHERE: JobWait<'static> = JobWait::Runnable {
        workspace_hosts: &[],
    };

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn runner(name: &str, engine: &str, extra: &[(&str, &str)], busy: i64, cap: i64) -> RunnerSlot {
        let mut l = labels(extra);
        l.insert("engine".into(), engine.into());
        l.insert("runner".into(), name.into());
        RunnerSlot {
            name: name.into(),
            labels: l,
            capacity: cap,
            busy,
            online: true,
            host: Some("h1".into()),
        }
    }

    #[test]
    fn no_runner_names_the_missing_label_and_who_is_online() {
        let req = labels(&[("engine", "docker"), ("gpu", "true")]);
        let rs = [
            runner("r1", "docker", &[], 0, 1),
            runner("r2", "shell", &[], 0, 1),
        ];
        let w = waiting(&ANYWHERE, &req, &rs).unwrap();
        assert_eq!(w.reason, WaitReason::NoRunner);
        assert_eq!(
            w.message,
            "no online runner has gpu=true (2 online: r1 engine=docker lacking gpu=true, r2 engine=shell)"
        );
        let w = waiting(&ANYWHERE, &req, &[]).unwrap();
        assert!(
            w.message.starts_with("no runner is online"),
            "{}",
            w.message
        );
        let mut off = runner("r3", "docker", &[("gpu", "true")], 0, 1);
        off.online = false;
        let w = waiting(&ANYWHERE, &req, &[off]).unwrap();
        assert_eq!(
            w.reason,
            WaitReason::NoRunner,
            "an offline runner takes nothing"
        );
    }

    #[test]
    fn capacity_when_every_able_runner_is_full_and_none_when_one_has_a_slot() {
        let req = labels(&[("engine", "docker")]);
        let full = [
            runner("a", "docker", &[], 1, 1),
            runner("b", "docker", &[], 2, 2),
        ];
        let w = waiting(&ANYWHERE, &req, &full).unwrap();
        assert_eq!(w.reason, WaitReason::Capacity);
        assert_eq!(
            w.message,
            "all 2 runners with engine=docker are busy: 3 of 3 slots in use; it starts when one frees"
        );
        let free = [
            runner("a", "docker", &[], 1, 1),
            runner("b", "docker", &[], 1, 2),
        ];
        assert_eq!(waiting(&ANYWHERE, &req, &free), None);
    }

    #[test]
    fn a_job_pinned_to_its_workspace_host_waits_for_that_hosts_runners() {
        let req = labels(&[("engine", "docker")]);
        let mut away = runner("far", "docker", &[], 0, 4);
        away.host = Some("h2".into());
        let holder = runner("near", "docker", &[], 2, 2);
        let hosts = ["h1".to_owned()];
        let pinned = JobWait::Runnable {
            workspace_hosts: &hosts,
        };
        let w = waiting(&pinned, &req, &[holder.clone(), away.clone()]).unwrap();
        assert_eq!(w.reason, WaitReason::Capacity);
        assert_eq!(
            w.message,
            "the one runner with engine=docker on the host holding the run's workspace (near on h1) is busy: 2 of 2 slots in use; it starts when one frees"
        );
        // The holder gone offline: any runner may take it, and one has a slot.
        let mut gone = holder;
        gone.online = false;
        assert_eq!(waiting(&pinned, &req, &[gone, away]), None);
    }

    #[test]
    fn needs_approval_and_backoff_say_what_they_wait_for() {
        let req = Labels::new();
        let names = ["build/a".to_owned(), "build/b".to_owned()];
        let w = waiting(&JobWait::Needs(&names), &req, &[]).unwrap();
        assert_eq!(
            (w.reason, w.message.as_str()),
            (WaitReason::Needs, "waiting for build/a, build/b to finish")
        );
        let w = waiting(&JobWait::Approval, &req, &[]).unwrap();
        assert_eq!(w.reason, WaitReason::Approval);
        let w = waiting(
            &JobWait::Backoff {
                in_secs: 4,
                next_attempt: 2,
            },
            &req,
            &[],
        )
        .unwrap();
        assert_eq!(w.message, "attempt 2 starts in 4 s (retry backoff)");
    }
}
