//! A runner's success that needs nothing of the planner but the run's new status is recorded
//! in one statement (`finish_success_settled`, bench/FINDINGS.md #31): jobs ending together
//! end their run once, and the run's status and events are those the planner gives.

use crate::hand::{self, finish_with};
use crate::helpers::{Options, TestApp, image, spawn_with};
use gitweave_api::public::Event;
use gitweave_api::runner::Assignment;
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;

async fn app() -> TestApp {
    spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await
}

/// Claims until `n` assignments are held.
async fn claim_n(app: &TestApp, token: &str, n: usize) -> Vec<Assignment> {
    let mut held = Vec::new();
    while held.len() < n {
        held.push(hand::claim(app, token).await.expect("a job to claim"));
    }
    held
}

/// The run's `run.*` events after its `run.created`, as (type, data `to` or reason, actor).
fn run_moves(events: &[Event]) -> Vec<(String, Option<String>, String)> {
    events
        .iter()
        .filter(|e| e.event_type.starts_with("run.") && e.event_type != "run.created")
        .map(|e| {
            let detail = match e.event_type.as_str() {
                "run.state_changed" => e
                    .data
                    .as_ref()
                    .and_then(|d| d["to"].as_str())
                    .map(str::to_owned),
                _ => e.reason.clone(),
            };
            (e.event_type.clone(), detail, e.actor.clone())
        })
        .collect()
}

fn mv(t: &str, detail: &str, actor: &str) -> (String, Option<String>, String) {
    (t.to_owned(), Some(detail.to_owned()), actor.to_owned())
}

/// Every job of a run reported at once: whichever report takes the run's lock last sees the
/// others' ends (each statement after the lock reads anew) and ends the run, exactly once.
#[tokio::test]
async fn jobs_ending_together_end_their_run_once() {
    let app = app().await;
    const JOBS: usize = 24;
    let img = image();
    // `z` needs `j0`: the template is a DAG, so the others wait for nothing.
    let mut yaml = String::from("jobs:\n");
    for i in 0..JOBS {
        yaml.push_str(&format!(
            "  - {{ name: j{i}, image: {img}, script: [x] }}\n"
        ));
    }
    yaml.push_str(&format!(
        "  - {{ name: z, image: {img}, script: [x], needs: [j0] }}\n"
    ));
    app.repo_with("together", "t", &yaml).await;
    let token = hand::token(
        &app,
        json!({"name": "hand", "capacity": JOBS, "engine": "docker"}),
    )
    .await;
    for _ in 0..3 {
        let run = app.trigger("together", &json!({})).await;
        let mut held = claim_n(&app, &token, JOBS).await;
        // j0 first, alone: its end releases z (the planner's path).
        let j0 = held
            .iter()
            .position(|a| a.name == "t/j0")
            .expect("j0 claimed");
        let j0 = held.swap_remove(j0);
        finish_with(&app, &token, &j0, json!({"exit_code": 0, "log_end": 0})).await;
        let z = hand::claim(&app, &token).await.expect("z, released by j0");
        assert_eq!(z.name, "t/z");
        held.push(z);
        futures::future::join_all(
            held.iter()
                .map(|a| finish_with(&app, &token, a, json!({"exit_code": 0, "log_end": 0}))),
        )
        .await;
        let done = app.wait_run(run.id, Duration::from_secs(10)).await;
        assert_eq!(done.status, RunStatus::Success);
        let events = app.events(run.id).await;
        assert_eq!(
            run_moves(&events),
            vec![
                mv("run.state_changed", "running", "runner:hand"),
                mv("run.state_changed", "success", "pipeline-svc"),
                mv("run.completed", "success", "pipeline-svc"),
            ],
            "{events:?}"
        );
        let succeeded = events
            .iter()
            .filter(|e| e.event_type == "job.succeeded")
            .count();
        assert_eq!(succeeded, JOBS + 1);
        app.assert_replays(run.id).await;
    }
    app.shutdown().await;
}

/// The last success of a run settles it as the planner would: `failed` after a job failed
/// that may not, `success` after one that may, `blocked` while a job waits for approval; a
/// success that releases the next job leaves the run running.
#[tokio::test]
async fn the_last_success_settles_the_run_as_the_planner_would() {
    let app = app().await;
    let img = image();
    let token = hand::token(
        &app,
        json!({"name": "hand", "capacity": 4, "engine": "docker"}),
    )
    .await;
    let cases = [
        ("hard", "", "failed"),
        ("soft", ", allow_failure: true", "success"),
    ];
    for (repo, first, end) in cases {
        // p's end releases a and b (the planner's path); then a fails while b runs.
        app.repo_with(
            repo,
            "t",
            &format!(
                "jobs:\n  - {{ name: p, image: {img}, script: [x] }}\n  - {{ name: a, image: {img}, script: [x], needs: [p]{first} }}\n  - {{ name: b, image: {img}, script: [x], needs: [p] }}\n"
            ),
        )
        .await;
        let run = app.trigger(repo, &json!({})).await;
        let p = hand::claim(&app, &token).await.expect("p");
        finish_with(&app, &token, &p, json!({"exit_code": 0, "log_end": 0})).await;
        let held = claim_n(&app, &token, 2).await;
        let (a, b) = if held[0].name == "t/a" {
            (&held[0], &held[1])
        } else {
            (&held[1], &held[0])
        };
        finish_with(
            &app,
            &token,
            a,
            json!({"exit_code": 1, "error_class": "exit_code", "log_end": 0}),
        )
        .await;
        assert_eq!(app.run(run.id).await.status, RunStatus::Running, "{repo}");
        finish_with(&app, &token, b, json!({"exit_code": 0, "log_end": 0})).await;
        let done = app.run(run.id).await;
        assert_eq!(done.status.as_str(), end, "{repo}");
        let events = app.events(run.id).await;
        assert_eq!(
            run_moves(&events),
            vec![
                mv("run.state_changed", "running", "runner:hand"),
                mv("run.state_changed", end, "pipeline-svc"),
                mv("run.completed", end, "pipeline-svc"),
            ],
            "{repo}: {events:?}"
        );
        app.assert_replays(run.id).await;
    }

    app.repo_with(
        "gated",
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n  - {{ name: m, image: {img}, script: [x], when: manual }}\n  - {{ name: c, image: {img}, script: [x], needs: [a] }}\n"
        ),
    )
    .await;
    let run = app.trigger("gated", &json!({})).await;
    let a = hand::claim(&app, &token).await.expect("a");
    assert_eq!(a.name, "t/a");
    // a's end releases c: the planner's path.
    finish_with(&app, &token, &a, json!({"exit_code": 0, "log_end": 0})).await;
    let c = hand::claim(&app, &token).await.expect("c, released by a");
    assert_eq!(c.name, "t/c");
    assert_eq!(app.run(run.id).await.status, RunStatus::Running);
    // c's end leaves only m, waiting for approval.
    finish_with(&app, &token, &c, json!({"exit_code": 0, "log_end": 0})).await;
    let blocked = app.run(run.id).await;
    assert_eq!(blocked.status, RunStatus::Blocked);
    assert_eq!(blocked.ended_at, None);
    let events = app.events(run.id).await;
    assert_eq!(
        run_moves(&events),
        vec![
            mv("run.state_changed", "running", "runner:hand"),
            mv("run.state_changed", "blocked", "pipeline-svc"),
        ],
        "{events:?}"
    );
    app.assert_replays(run.id).await;
    app.shutdown().await;
}
