//! A run's events: JSON lines after a `seq`, or followed live as Server-Sent Events
//! (`Accept: text/event-stream`, resuming from `Last-Event-ID`).

use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::follow::{self, KeepAlive, Source, Step, Watch};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::public::Event;
use gitweave_model::status::EventType;
use gitweave_storage::{events, runs};
use http::HeaderMap;
use std::time::Duration;
use uuid::Uuid;

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
        event_type: e.event_type.as_str().to_owned(),
        run_id: e.run_id,
        job_id: e.job_id,
        timestamp_utc: e.timestamp_utc,
        actor: e.actor,
        attempt: e.attempt,
        error_class: e.error_class.map(|c| c.as_str().to_owned()),
        reason: e.reason,
        data: e.data,
    }
}

const PAGE: i64 = 500;

/// Where an event stream is: the events after `after`, and what it knows of the run's end.
struct EventLog {
    state: AppState,
    run_id: Uuid,
    sse: bool,
    follow: bool,
    /// Last sequence number sent.
    after: i64,
    /// The first page, read before the answer started.
    first: Option<Vec<events::EventRow>>,
    /// `run.completed` was sent, or the run is known to have ended: end once caught up.
    completed: bool,
    /// `run.completed`, the last event of a run, was sent: nothing is left to read.
    sent_last: bool,
    /// The run's status was asked, or need not be: asked once, only by a stream whose first
    /// page was empty (it may have started after the end).
    asked: bool,
}

impl EventLog {
    /// One page of events as NDJSON lines or SSE frames.
    fn frames(&mut self, rows: Vec<events::EventRow>) -> Bytes {
        let mut out = String::new();
        for e in rows {
            self.sent_last |= e.event_type == EventType::RunCompleted;
            self.completed |= self.sent_last;
            let e = view(e);
            self.after = e.seq;
            let json = serde_json::to_string(&e).unwrap_or_default();
            if self.sse {
                out.push_str(&format!(
                    "id: {}\nevent: {}\ndata: {json}\n\n",
                    e.seq, e.event_type
                ));
            } else {
                out.push_str(&json);
                out.push('\n');
            }
        }
        Bytes::from(out)
    }
}

impl Source for EventLog {
    async fn next(&mut self) -> Result<Step, std::io::Error> {
        if self.sent_last {
            return Ok(Step::End);
        }
        loop {
            // The first page was read before the stream began: changes since may have been
            // dropped (`follow::Source`), so it is always followed by a read.
            let (rows, read_now) = match self.first.take() {
                Some(first) => (first, false),
                None => (
                    events::list(&self.state.pool, self.run_id, self.after, PAGE)
                        .await
                        .map_err(std::io::Error::other)?,
                    true,
                ),
            };
            if !rows.is_empty() {
                let caught_up = read_now && (rows.len() as i64) < PAGE;
                let frames = self.frames(rows);
                return Ok(if caught_up && self.follow && !self.completed {
                    Step::SendAndWait(frames)
                } else {
                    Step::Send(frames)
                });
            }
            if !self.follow || self.completed {
                return Ok(Step::End);
            }
            if self.asked {
                return Ok(Step::Wait);
            }
            self.asked = true;
            let ended = match runs::get(&self.state.pool, self.run_id)
                .await
                .map_err(std::io::Error::other)?
            {
                Some(r) => r.status.is_terminal(),
                None => true,
            };
            if !ended {
                return Ok(Step::Wait);
            }
            // One more look: the final events commit with the status.
            self.completed = true;
        }
    }
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    let run_id = crate::resolve::run(&state, &id).await?;
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
            error_code::BAD_QUERY,
            "after must be 0 or more".into(),
        ));
    }
    let follow = sse || q.follow;
    // Subscribed before the first read, so no change between the two is missed.
    let watch = Watch::subscribe(&state.run_updates, run_id);
    // The first page is read before answering: events exist only for a run that exists, so
    // only an empty first page needs to look the run up (for the 404).
    let first = events::list(&state.pool, run_id, after, PAGE).await?;
    let known = !first.is_empty();
    if !known && runs::get(&state.pool, run_id).await?.is_none() {
        return Err(ApiError::not_found("run", run_id));
    }
    // The stream knows the run ended when it has sent `run.completed`, the last event of a
    // run (written in the transaction that ends it). Only a stream whose first page is empty
    // may have started after that event (a reconnect with `Last-Event-ID`) and has to ask the
    // run's status, once; any event after `after` means `run.completed` is among the events
    // sent or still to come.
    let keep_alive =
        sse.then(|| KeepAlive::sse(Duration::from_millis(state.config.sse_keepalive_ms)));
    let source = EventLog {
        state,
        run_id,
        sse,
        follow,
        after,
        first: Some(first),
        completed: false,
        sent_last: false,
        asked: known,
    };
    let stream = follow::stream(source, watch, keep_alive);
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
