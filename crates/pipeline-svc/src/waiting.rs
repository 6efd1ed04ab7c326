//! A queued or manual job's `waiting` (SPEC §13), computed on read: from the job (status,
//! dependencies, when its retry is due, what it requires) and one snapshot of the live
//! runners, taken only when some job is due and waits for a runner.

use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::public::Job;
use gitweave_model::labels::{Labels, requirements};
use gitweave_model::status::JobStatus;
use gitweave_model::waiting::{JobWait, waiting};
use gitweave_storage::jobs::JobRow;
use gitweave_storage::runs;
use time::OffsetDateTime;
use uuid::Uuid;

/// Fills `waiting` on `views` (the job views of `rows`, in the same order); `run` holds the
/// rows of the whole run, to name unfinished dependencies. `hosts`: the hosts holding the
/// workspace of the rows' run when the caller knows them (a run just made holds none yet),
/// else they are read when a due job needs them.
pub async fn fill(
    state: &AppState,
    run: &[JobRow],
    rows: &[&JobRow],
    views: &mut [Job],
    mut hosts: Option<(Uuid, Vec<String>)>,
) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut runners = None;
    for (row, view) in rows.iter().zip(views.iter_mut()) {
        let names: Vec<String>;
        let wait = match row.status {
            JobStatus::Manual => JobWait::Approval,
            JobStatus::Queued => match row.runnable_at {
                None => {
                    names = run
                        .iter()
                        .filter(|j| row.depends_on.contains(&j.position) && !j.status.is_terminal())
                        .map(|j| j.name.clone())
                        .collect();
                    JobWait::Needs(&names)
                }
                Some(at) if at > now => JobWait::Backoff {
                    in_secs: u64::try_from(((at - now).whole_milliseconds() + 999) / 1000)
                        .unwrap_or(0),
                    next_attempt: row.attempt + 1,
                },
                Some(_) => {
                    if hosts.as_ref().is_none_or(|(run, _)| *run != row.run_id) {
                        let held = runs::workspace_hosts(&state.pool, row.run_id).await?;
                        hosts = Some((row.run_id, held));
                    }
                    JobWait::Runnable {
                        workspace_hosts: hosts.as_ref().map_or(&[], |(_, h)| h.as_slice()),
                    }
                }
            },
            _ => continue,
        };
        let slots = if matches!(wait, JobWait::Runnable { .. }) {
            if runners.is_none() {
                runners = Some(crate::routes::runner_slots(state).await?);
            }
            runners.as_deref().unwrap_or_default()
        } else {
            &[]
        };
        view.waiting = waiting(&wait, &requires(row), slots);
    }
    Ok(())
}

/// The job's requirements, from its spec's `runs_on` (as the `requires` column derives them).
fn requires(row: &JobRow) -> Labels {
    let runs_on: Labels = row
        .spec
        .get("runs_on")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    requirements(&runs_on)
}
