//! `GET /runners` (SPEC §13): the live registrations with their host, labels, capacity, how
//! many jobs each runs and whether it is online; and the runner snapshot from which a queued
//! job's `waiting` is computed on read.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use gitweave_api::public::{RunnerList, RunnerView};
use gitweave_model::labels::Labels;
use gitweave_model::waiting::RunnerSlot;
use gitweave_storage::runners::{self, LiveRunner};
use std::time::Duration;
use time::OffsetDateTime;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/runners", get(list))
}

/// A runner and what this instance knows of it.
struct Seen {
    row: LiveRunner,
    labels: Labels,
    last_seen_at: OffsetDateTime,
    online: bool,
}

/// The live runners: online when this instance heard from one within a lease (a waiting
/// long-poll counts every second), or the database says another instance did.
async fn seen(state: &AppState) -> Result<Vec<Seen>, ApiError> {
    let lease = Duration::from_millis(state.config.lease_ms);
    let now = OffsetDateTime::now_utc();
    Ok(runners::live(&state.pool)
        .await?
        .into_iter()
        .map(|row| {
            let here = state.runner_contact_age(row.id).map(|age| now - age);
            let last_seen_at = here.map_or(row.last_seen_at, |h| h.max(row.last_seen_at));
            let online = now - last_seen_at <= lease;
            let labels = serde_json::from_value(row.labels.clone()).unwrap_or_default();
            Seen {
                row,
                labels,
                last_seen_at,
                online,
            }
        })
        .collect())
}

/// What the waiting rules need of the live runners.
pub(crate) async fn slots(state: &AppState) -> Result<Vec<RunnerSlot>, ApiError> {
    Ok(seen(state)
        .await?
        .into_iter()
        .map(|s| RunnerSlot {
            host: s.row.host_id.clone(),
            name: s.row.name,
            labels: s.labels,
            capacity: i64::from(s.row.capacity),
            busy: s.row.busy,
            online: s.online,
        })
        .collect())
}

async fn list(State(state): State<AppState>) -> Result<Json<RunnerList>, ApiError> {
    let runners = seen(&state)
        .await?
        .into_iter()
        .map(|s| RunnerView {
            name: s.row.name,
            host: s.row.host_id,
            labels: s.labels,
            capacity: s.row.capacity,
            busy: s.row.busy,
            status: if s.online { "online" } else { "offline" }.to_owned(),
            last_seen_at: s.last_seen_at,
        })
        .collect();
    Ok(Json(RunnerList { runners }))
}
