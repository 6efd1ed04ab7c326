//! Rebuilding a run's state from its events alone (SPEC §6: "replaying a run's events
//! reproduces its stored state"). Used by tests to check that claim, and by the CLI summary.

use crate::public::Event;
use gitweave_model::status::{EventType, JobStatus, RunStatus};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What the events say about one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobReplay {
    /// Status.
    pub status: JobStatus,
    /// Attempts started.
    pub attempt: i32,
    /// Retries scheduled.
    pub retries: u32,
}

/// What the events say about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReplay {
    /// Status.
    pub status: RunStatus,
    /// Per job.
    pub jobs: BTreeMap<Uuid, JobReplay>,
    /// Jobs whose failure failed the run (`gate.failed`).
    pub gate_failures: Vec<Uuid>,
}

/// Why events could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// `seq` is not 1, 2, 3…
    #[error("event seq {found} where {expected} was expected")]
    Gap {
        /// Expected seq.
        expected: i64,
        /// Found seq.
        found: i64,
    },
    /// A job event for a job never queued.
    #[error("event {seq} ({kind}) names a job that was never queued")]
    UnknownJob {
        /// Event seq.
        seq: i64,
        /// Event type.
        kind: String,
    },
    /// A state change to an unknown status.
    #[error("event {seq} changes the run to an unknown status")]
    BadStatus {
        /// Event seq.
        seq: i64,
    },
}

/// Folds events (in `seq` order) into the state they describe.
pub fn replay(events: &[Event]) -> Result<RunReplay, ReplayError> {
    let mut run = RunReplay {
        status: RunStatus::Queued,
        jobs: BTreeMap::new(),
        gate_failures: Vec::new(),
    };
    for (i, e) in events.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq != expected {
            return Err(ReplayError::Gap {
                expected,
                found: e.seq,
            });
        }
        let unknown = || ReplayError::UnknownJob {
            seq: e.seq,
            kind: e.event_type.clone(),
        };
        // A type this build does not know (a newer pipeline-svc) changes nothing it knows.
        let Ok(kind) = e.event_type.parse::<EventType>() else {
            continue;
        };
        match kind {
            EventType::JobQueued => {
                let id = e.job_id.ok_or_else(unknown)?;
                run.jobs.insert(
                    id,
                    JobReplay {
                        status: JobStatus::Queued,
                        attempt: 0,
                        retries: 0,
                    },
                );
                continue;
            }
            EventType::RunStateChanged => {
                run.status = e
                    .data
                    .as_ref()
                    .and_then(|d| d["to"].as_str())
                    .and_then(|s| s.parse().ok())
                    .ok_or(ReplayError::BadStatus { seq: e.seq })?;
                continue;
            }
            EventType::GateFailed => {
                run.gate_failures.extend(e.job_id);
                continue;
            }
            _ => {}
        }
        let Some(job_id) = e.job_id else { continue };
        let job = run.jobs.get_mut(&job_id).ok_or_else(unknown)?;
        match kind {
            EventType::JobStarted => {
                job.status = JobStatus::Running;
                job.attempt = e.attempt.unwrap_or(job.attempt + 1);
            }
            EventType::JobSucceeded => job.status = JobStatus::Success,
            EventType::JobFailed => job.status = JobStatus::Failed,
            EventType::JobCanceled => job.status = JobStatus::Canceled,
            EventType::JobSkipped => job.status = JobStatus::Skipped,
            EventType::JobManual => job.status = JobStatus::Manual,
            EventType::JobManualApproved => job.status = JobStatus::Queued,
            EventType::JobRetried => {
                job.status = JobStatus::Queued;
                job.retries += 1;
            }
            // Queued again for a new attempt; not a retry.
            EventType::JobHandedBack => job.status = JobStatus::Queued,
            // runner.lost is followed by job.failed or job.retried, which carry the change;
            // an artifact changes no status; the others were handled above.
            EventType::RunnerLost
            | EventType::ArtifactEmitted
            | EventType::RunCreated
            | EventType::RunCompleted
            | EventType::JobQueued
            | EventType::RunStateChanged
            | EventType::GateFailed => {}
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::{JobReplay, replay};
    use crate::public::Event;
    use gitweave_model::status::{EventType, JobStatus};
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn event(seq: i64, kind: EventType, run: Uuid, job: Uuid, attempt: Option<i32>) -> Event {
        Event {
            seq,
            event_type: kind.as_str().to_owned(),
            run_id: run,
            job_id: Some(job),
            timestamp_utc: OffsetDateTime::UNIX_EPOCH,
            actor: "runner:r".into(),
            attempt,
            error_class: None,
            reason: None,
            data: None,
        }
    }

    #[test]
    fn a_handed_back_job_is_queued_again_without_a_retry() {
        let (run, job) = (Uuid::nil(), Uuid::from_u128(1));
        let events = [
            event(1, EventType::JobQueued, run, job, None),
            event(2, EventType::JobStarted, run, job, Some(1)),
            event(3, EventType::JobHandedBack, run, job, Some(1)),
        ];
        let r = replay(&events).expect("replays");
        assert_eq!(
            r.jobs[&job],
            JobReplay {
                status: JobStatus::Queued,
                attempt: 1,
                retries: 0,
            }
        );
        let mut more = events.to_vec();
        more.push(event(4, EventType::JobStarted, run, job, Some(2)));
        more.push(event(5, EventType::JobSucceeded, run, job, Some(2)));
        let r = replay(&more).expect("replays");
        assert_eq!(
            (r.jobs[&job].status, r.jobs[&job].attempt),
            (JobStatus::Success, 2)
        );
    }
}
