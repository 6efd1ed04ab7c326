//! Run and job statuses and failure classes (SPEC §4), with the snake_case names used on
//! the wire and in the database.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a closed string enum: `as_str`, `Display`, `FromStr`, serde and (with the `sqlx`
/// feature) decoding from a `text` column all agree on the names, so the database and the API
/// cannot drift apart.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and database) name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored as `text`: decoded once, where the row is read, so a corrupt value is a
        // decode error there and no handler parses a status again.
        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownVariant { kind: stringify!($name), value: other.to_owned() }),
                }
            }
        }
    };
}

/// A string that names no variant of a wire enum (a corrupt row, or bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    /// Which enum was being parsed.
    pub kind: &'static str,
    /// The text that matched nothing.
    pub value: String,
}

wire_enum!(
    /// The status of a pipeline run.
    RunStatus {
        /// Created; no job has started yet.
        Queued => "queued",
        /// At least one job has started and the run has not ended.
        Running => "running",
        /// Waiting on a `manual` job's approval, nothing else can run.
        Blocked => "blocked",
        /// Every job that had to succeed did.
        Success => "success",
        /// A job that was not `allow_failure` failed (fail-closed).
        Failed => "failed",
        /// Canceled by a user.
        Canceled => "canceled",
    }
);

wire_enum!(
    /// The status of one job of a run.
    JobStatus {
        /// Waiting for its turn or for a runner.
        Queued => "queued",
        /// A runner holds it.
        Running => "running",
        /// Exited 0.
        Success => "success",
        /// Failed; `error_class` says how.
        Failed => "failed",
        /// Canceled by a user before or while running.
        Canceled => "canceled",
        /// Can no longer run because something it depends on failed.
        Skipped => "skipped",
        /// `when: manual`, waiting for approval.
        Manual => "manual",
    }
);

wire_enum!(
    /// Why a job failed.
    ErrorClass {
        /// The script exited non-zero.
        ExitCode => "exit_code",
        /// The job ran past its timeout and was stopped.
        Timeout => "timeout",
        /// Canceled while running.
        Canceled => "canceled",
        /// The runner was lost or the container engine failed.
        RunnerFailure => "runner_failure",
        /// The job's image is not on the runner's engine and could not be pulled.
        ImageNotFound => "image_not_found",
        /// The kernel's OOM killer stopped the container.
        OomKilled => "oom_killed",
        /// The job cannot run as configured (e.g. no image for the docker engine).
        ConfigError => "config_error",
        /// A service of the job (SPEC §12) did not become ready in time, or exited first.
        ServiceFailed => "service_failed",
    }
);

wire_enum!(
    /// How a run was started.
    Trigger {
        /// `POST /repos/{repo}/pipelines/run`.
        Api => "api",
        /// A git push webhook.
        Push => "push",
        /// `POST /pipelines/runs/{id}/rerun`.
        Rerun => "rerun",
        /// A pull or merge request webhook (SPEC §9).
        PullRequest => "pull_request",
    }
);

wire_enum!(
    /// The event a pipeline file's rule names in `event:` (SPEC §9): the trigger, except that
    /// a push of a tag is `tag`.
    RuleEvent {
        /// A push of a branch.
        Push => "push",
        /// A push of a tag.
        Tag => "tag",
        /// A pull or merge request.
        PullRequest => "pull_request",
        /// `POST /repos/{repo}/pipelines/run`.
        Api => "api",
        /// `POST /pipelines/runs/{id}/rerun`.
        Rerun => "rerun",
    }
);

impl From<Trigger> for RuleEvent {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Api => RuleEvent::Api,
            Trigger::Push => RuleEvent::Push,
            Trigger::Rerun => RuleEvent::Rerun,
            Trigger::PullRequest => RuleEvent::PullRequest,
        }
    }
}

wire_enum!(
    /// The type of an event (SPEC §6 and §9–15): the only place an event name is written.
    EventType {
        /// A run was created.
        RunCreated => "run.created",
        /// A run's status changed.
        RunStateChanged => "run.state_changed",
        /// A run ended (its last event).
        RunCompleted => "run.completed",
        /// A job was planned.
        JobQueued => "job.queued",
        /// A runner took an attempt of a job.
        JobStarted => "job.started",
        /// An attempt succeeded.
        JobSucceeded => "job.succeeded",
        /// An attempt failed.
        JobFailed => "job.failed",
        /// A failed job was put back in the queue for another attempt.
        JobRetried => "job.retried",
        /// A job can no longer run.
        JobSkipped => "job.skipped",
        /// A job was canceled.
        JobCanceled => "job.canceled",
        /// A `manual` job waits for approval.
        JobManual => "job.manual",
        /// A `manual` job was approved.
        JobManualApproved => "job.manual_approved",
        /// A stopping runner gave back an attempt it could not finish within its grace: the
        /// job is queued again for a new attempt (not failed, not counted against `retry`).
        JobHandedBack => "job.handed_back",
        /// A job that had to succeed failed; everything downstream is skipped.
        GateFailed => "gate.failed",
        /// A runner stopped renewing an attempt's lease.
        RunnerLost => "runner.lost",
        /// A job's artifact file was stored (SPEC §13), `data: {path, size, sha256}`.
        ArtifactEmitted => "artifact.emitted",
    }
);

impl RunStatus {
    /// Whether the run can change no more.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Failed | RunStatus::Canceled
        )
    }
}

impl JobStatus {
    /// Whether the job can change no more (in its current attempt series).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
        }
        for c in ErrorClass::ALL {
            assert_eq!(c.as_str().parse::<ErrorClass>(), Ok(*c));
        }
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            assert_eq!(
                serde_json::to_string(t).ok(),
                Some(format!("\"{}\"", t.as_str()))
            );
        }
        assert!("Success".parse::<RunStatus>().is_err());
    }

    #[test]
    fn terminal_states() {
        assert!(RunStatus::Canceled.is_terminal());
        assert!(!RunStatus::Blocked.is_terminal());
        assert!(JobStatus::Skipped.is_terminal());
        assert!(!JobStatus::Manual.is_terminal());
    }
}
