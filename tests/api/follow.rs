//! Live follow: a followed raw log and a followed event stream deliver their first bytes while
//! the job still runs (through the gateway, so it streams unbuffered too), and an idle SSE
//! stream gets keep-alive comments.

use crate::helpers::{Options, TestApp, image, no_runner, spawn_app, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;

/// Longer than any job start takes here, and much shorter than [`SLEEP`]: a stream that only
/// answers at the job's end cannot meet it.
const FIRST_BYTES: Duration = Duration::from_secs(60);

/// How long the followed job sleeps after its first line, unless canceled.
const SLEEP: &str = "sleep 300";

/// Reads `r` until what was read contains `want`, and returns all of it.
async fn read_until(r: &mut reqwest::Response, got: &mut Vec<u8>, want: &[u8]) {
    tokio::time::timeout(FIRST_BYTES, async {
        while !got.windows(want.len()).any(|w| w == want) {
            let chunk = r
                .chunk()
                .await
                .expect("read the stream")
                .expect("the stream is still open");
            got.extend_from_slice(&chunk);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{:?} did not arrive within {FIRST_BYTES:?}; got {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(got)
        )
    });
}

/// `f`, which must be done within [`FIRST_BYTES`] (an answer's head must not wait for the
/// job's end either).
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(FIRST_BYTES, f)
        .await
        .expect("the answer starts while the job still runs")
}

/// Reads `r` to its end.
async fn read_to_end(r: &mut reqwest::Response, got: &mut Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(chunk) = r.chunk().await.expect("read the stream") {
            got.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("the stream ends when the job has ended");
}

async fn sse(app: &TestApp, run: uuid::Uuid) -> reqwest::Response {
    let r = app
        .http
        .get(app.api(&format!("/pipelines/runs/{run}/events")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET events");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r
}

#[tokio::test]
async fn a_followed_log_and_event_stream_send_their_first_bytes_while_the_job_still_runs() {
    let app = spawn_app().await;
    app.repo_with(
        "live",
        "live",
        &format!(
            "jobs:\n  - name: job\n    image: {}\n    script: [\"echo first\", \"{SLEEP}\"]\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("live", &json!({})).await;
    let job = run.jobs[0].id;

    let mut log = within(app.get(&format!("/jobs/{job}/logs/raw?follow=true"))).await;
    assert_eq!(log.status(), 200);
    let mut events = within(sse(&app, run.id)).await;
    let (mut log_bytes, mut event_bytes) = (Vec::new(), Vec::new());
    read_until(&mut log, &mut log_bytes, b"$ echo first\nfirst\n").await;
    read_until(&mut events, &mut event_bytes, b"event: job.started\n").await;
    // Both arrived from a job that has not ended: it sleeps for minutes after its first line.
    let j = app.get_json(&format!("/jobs/{job}")).await;
    assert_eq!(j["status"], "running", "{j}");
    assert!(
        !String::from_utf8_lossy(&event_bytes).contains("run.completed"),
        "the run has not ended yet"
    );
    // The log of a running job may still grow: an offset past its end is no error yet.
    let ahead = app.get(&format!("/jobs/{job}/logs?offset=1000000")).await;
    assert_eq!(ahead.status(), 200);
    let ahead: serde_json::Value = ahead.json().await.expect("json");
    assert_eq!(ahead["complete"], false, "{ahead}");

    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    read_to_end(&mut log, &mut log_bytes).await;
    read_to_end(&mut events, &mut event_bytes).await;
    let text = String::from_utf8_lossy(&log_bytes);
    assert!(
        text.starts_with(&format!("$ echo first\nfirst\n$ {SLEEP}\n")),
        "{text:?}"
    );
    let events_text = String::from_utf8_lossy(&event_bytes);
    assert!(
        events_text.contains("event: run.completed\n"),
        "{events_text}"
    );
    let ended = app.wait_run(run.id, Duration::from_secs(60)).await;
    assert_eq!(ended.status, RunStatus::Canceled);
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_sse_stream_gets_keep_alive_comments() {
    let app = spawn_with(Options {
        pipeline: Some(|c| c.sse_keepalive_ms = 200),
        ..no_runner()
    })
    .await;
    app.repo_with(
        "idle",
        "idle",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [true] }}\n",
            image()
        ),
    )
    .await;
    // No runner: the run stays queued and its stream has nothing to send after its first
    // events.
    let run = app.trigger("idle", &json!({})).await;
    let mut r = sse(&app, run.id).await;
    let mut got = Vec::new();
    read_until(&mut r, &mut got, b": keep-alive\n\n").await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("id: 1\nevent: run.created\n"),
        "the events come first: {text}"
    );
    // A comment is a whole frame: the events before it are complete.
    let before = &text[..text.find(": keep-alive").expect("found")];
    assert!(before.ends_with("\n\n"), "{text}");
    drop(r);
    app.shutdown().await;
}
