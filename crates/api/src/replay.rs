//! Rebuilding a run's state from its events alone (SPEC §6: "replaying a run's events
//! reproduces its stored state"). Used by tests to check that claim, and by the CLI summary.

use crate::public::Event;
use gitweave_model::status::{ErrorClass, EventType, JobStatus, RunStatus};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// What the events say about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReplay {
    /// Status.
    pub status: JobStatus,
    /// Attempts started.
    pub attempt: i32,
    /// Retries scheduled.
    pub retries: u32,
    /// The last ended attempt's exit code (cleared when an attempt starts).
    pub exit_code: Option<i32>,
    /// The last ended attempt's error class (cleared when an attempt starts).
    pub error_class: Option<ErrorClass>,
    /// The last ended attempt's reason, as stored with its outcome (cleared when an attempt
    /// starts; the reasons of skips, manual gates and cancels before a start are in their
    /// events only).
    pub reason: Option<String>,
    /// When the current attempt started.
    pub started_at: Option<OffsetDateTime>,
    /// When the job ended (cleared when it is queued again).
    pub ended_at: Option<OffsetDateTime>,
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
    /// When it was created (`run.created`).
    pub created_at: Option<OffsetDateTime>,
    /// When it first left `queued`.
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    pub ended_at: Option<OffsetDateTime>,
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
    /// An attempt's end with an unknown error class, or a non-integer exit code.
    #[error("event {seq} ends an attempt with an unknown error class or exit code")]
    BadOutcome {
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
        created_at: None,
        started_at: None,
        ended_at: None,
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
                        exit_code: None,
                        error_class: None,
                        reason: None,
                        started_at: None,
                        ended_at: None,
                    },
                );
                continue;
            }
            EventType::RunCreated => {
                run.created_at = Some(e.timestamp_utc);
                continue;
            }
            EventType::RunStateChanged => {
                run.status = e
                    .data
                    .as_ref()
                    .and_then(|d| d["to"].as_str())
                    .and_then(|s| s.parse().ok())
                    .ok_or(ReplayError::BadStatus { seq: e.seq })?;
                if run.status != RunStatus::Queued && run.started_at.is_none() {
                    run.started_at = Some(e.timestamp_utc);
                }
                run.ended_at = run.status.is_terminal().then_some(e.timestamp_utc);
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
                job.started_at = Some(e.timestamp_utc);
                (job.ended_at, job.exit_code, job.error_class, job.reason) =
                    (None, None, None, None);
            }
            EventType::JobSucceeded => end(job, JobStatus::Success, e)?,
            EventType::JobFailed => end(job, JobStatus::Failed, e)?,
            EventType::JobCanceled => end(job, JobStatus::Canceled, e)?,
            EventType::JobSkipped => {
                job.status = JobStatus::Skipped;
                job.ended_at = Some(e.timestamp_utc);
            }
            EventType::JobManual => job.status = JobStatus::Manual,
            EventType::JobManualApproved => job.status = JobStatus::Queued,
            EventType::JobRetried => {
                job.status = JobStatus::Queued;
                job.retries += 1;
                job.ended_at = None;
            }
            // Queued again for a new attempt; not a retry.
            EventType::JobHandedBack => {
                job.status = JobStatus::Queued;
                job.ended_at = None;
            }
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

/// A job's end. An event with an attempt ends that attempt and carries its outcome (exit code
/// in `data`, class, reason); one without (a job canceled before it started) only ends it.
fn end(job: &mut JobReplay, status: JobStatus, e: &Event) -> Result<(), ReplayError> {
    job.status = status;
    job.ended_at = Some(e.timestamp_utc);
    if e.attempt.is_none() {
        return Ok(());
    }
    let bad = || ReplayError::BadOutcome { seq: e.seq };
    job.error_class = e
        .error_class
        .as_deref()
        .map(|c| c.parse().map_err(|_| bad()))
        .transpose()?;
    job.exit_code = match e.data.as_ref().map(|d| &d["exit_code"]) {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|c| i32::try_from(c).ok())
                .ok_or_else(bad)?,
        ),
    };
    job.reason.clone_from(&e.reason);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{JobReplay, replay};
    use crate::public::Event;
    use gitweave_model::status::{ErrorClass, EventType, JobStatus};
    use serde_json::json;
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
                exit_code: None,
                error_class: None,
                reason: None,
                started_at: Some(OffsetDateTime::UNIX_EPOCH),
                ended_at: None,
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

    fn at(e: Event, secs: i64) -> Event {
        Event {
            timestamp_utc: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs),
            ..e
        }
    }

    #[test]
    fn outcomes_and_timestamps_follow_the_attempts() {
        let (run, job) = (Uuid::nil(), Uuid::from_u128(1));
        let state = |seq, to: &str| Event {
            job_id: None,
            data: Some(json!({ "to": to })),
            ..event(seq, EventType::RunStateChanged, run, job, None)
        };
        let failed = Event {
            error_class: Some("exit_code".into()),
            reason: Some("exit code 3".into()),
            data: Some(json!({ "exit_code": 3 })),
            ..event(5, EventType::JobFailed, run, job, Some(1))
        };
        let events = [
            at(
                Event {
                    job_id: None,
                    ..event(1, EventType::RunCreated, run, job, None)
                },
                1,
            ),
            at(event(2, EventType::JobQueued, run, job, None), 1),
            at(event(3, EventType::JobStarted, run, job, Some(1)), 2),
            at(state(4, "running"), 2),
            at(failed, 3),
            at(event(6, EventType::JobRetried, run, job, Some(2)), 3),
        ];
        let r = replay(&events).expect("replays");
        let t = |s| Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s));
        assert_eq!((r.created_at, r.started_at, r.ended_at), (t(1), t(2), None));
        let j = &r.jobs[&job];
        assert_eq!(
            (j.status, j.exit_code, j.error_class, j.reason.as_deref()),
            (
                JobStatus::Queued,
                Some(3),
                Some(ErrorClass::ExitCode),
                Some("exit code 3")
            )
        );
        assert_eq!((j.started_at, j.ended_at, j.retries), (t(2), None, 1));
        let mut more = events.to_vec();
        more.push(at(event(7, EventType::JobStarted, run, job, Some(2)), 5));
        more.push(at(event(8, EventType::JobSucceeded, run, job, Some(2)), 6));
        more.push(at(state(9, "success"), 6));
        let r = replay(&more).expect("replays");
        let j = &r.jobs[&job];
        assert_eq!(
            (
                j.status,
                j.attempt,
                j.exit_code,
                j.error_class,
                j.reason.as_deref()
            ),
            (JobStatus::Success, 2, None, None, None),
            "a new attempt clears the last one's outcome"
        );
        assert_eq!((j.started_at, j.ended_at), (t(5), t(6)));
        assert_eq!((r.started_at, r.ended_at), (t(2), t(6)));
    }

    #[test]
    fn a_cancel_before_the_start_ends_the_job_without_an_outcome() {
        let (run, job) = (Uuid::nil(), Uuid::from_u128(1));
        let canceled = Event {
            reason: Some("the run was canceled before the job started".into()),
            ..event(2, EventType::JobCanceled, run, job, None)
        };
        let events = [
            event(1, EventType::JobQueued, run, job, None),
            at(canceled, 4),
        ];
        let j = &replay(&events).expect("replays").jobs[&job];
        assert_eq!(
            (j.status, j.reason.as_deref(), j.ended_at),
            (
                JobStatus::Canceled,
                None,
                Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(4))
            )
        );
    }
}
