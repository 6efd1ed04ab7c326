//! A run's events: JSON lines after a `seq`, or followed live as Server-Sent Events
//! (`Accept: text/event-stream`, resuming from `Last-Event-ID`).

use crate::error::ApiError;
use crate::extract::{QueryParams, parse_id};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use gitweave_api::public::Event;
use gitweave_model::status::RunStatus;
use gitweave_storage::{events, runs};
use http::HeaderMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/pipelines/runs/{id}/events", get(list))
}

#[derive(Debug, serde::Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    #[serde(default)]
    follow: bool,
}

fn view(e: events::EventRow) -> Event {
    Event {
        seq: e.seq,
        event_type: e.event_type,
        run_id: e.run_id,
        job_id: e.job_id,
        timestamp_utc: e.timestamp_utc,
        actor: e.actor,
        attempt: e.attempt,
        error_class: e.error_class,
        reason: e.reason,
        data: e.data,
    }
}

const PAGE: i64 = 500;

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    let run_id = parse_id("run", &id)?;
    if runs::get(&state.pool, run_id).await?.is_none() {
        return Err(ApiError::not_found("run", run_id));
    }
    let sse = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = last_event_id.or(q.after).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest(
            "bad_query",
            "after must be 0 or more".into(),
        ));
    }
    let follow = sse || q.follow;
    let updates = state.run_updates.subscribe();
    let stream = futures::stream::unfold(
        (state, updates, after, false),
        move |(state, mut updates, after, done)| async move {
            if done {
                return None;
            }
            loop {
                let rows = match events::list(&state.pool, run_id, after, PAGE).await {
                    Ok(r) => r,
                    Err(e) => {
                        return Some((
                            Err(std::io::Error::other(e)),
                            (state, updates, after, true),
                        ));
                    }
                };
                if let Some(last) = rows.last() {
                    let next = last.seq;
                    let mut out = String::new();
                    for e in rows {
                        let json = serde_json::to_string(&view(e.clone())).unwrap_or_default();
                        if sse {
                            out.push_str(&format!(
                                "id: {}\nevent: {}\ndata: {json}\n\n",
                                e.seq, e.event_type
                            ));
                        } else {
                            out.push_str(&json);
                            out.push('\n');
                        }
                    }
                    return Some((Ok(Bytes::from(out)), (state, updates, next, false)));
                }
                if !follow {
                    return None;
                }
                // Caught up: stop once the run has ended (its last event is stored), else wait.
                let ended = match runs::get(&state.pool, run_id).await {
                    Ok(Some(r)) => r
                        .status
                        .parse::<RunStatus>()
                        .is_ok_and(RunStatus::is_terminal),
                    Ok(None) => true,
                    Err(e) => {
                        return Some((
                            Err(std::io::Error::other(e)),
                            (state, updates, after, true),
                        ));
                    }
                };
                if ended {
                    // One more look: the final events commit with the status.
                    match events::list(&state.pool, run_id, after, 1).await {
                        Ok(r) if r.is_empty() => return None,
                        Ok(_) => continue,
                        Err(e) => {
                            return Some((
                                Err(std::io::Error::other(e)),
                                (state, updates, after, true),
                            ));
                        }
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    loop {
                        match updates.recv().await {
                            Ok(id) if id == run_id => return,
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => return,
                            Err(RecvError::Closed) => return std::future::pending().await,
                        }
                    }
                })
                .await;
            }
        },
    );
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    Ok((
        [
            (http::header::CONTENT_TYPE, content_type),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
