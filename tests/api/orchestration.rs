//! Orchestration: DAG, manual gates, retries, timeouts, cancel, rerun, events and replay,
//! lost runners, many runners.

use crate::helpers::{EngineKind, Options, image, job_named, spawn_app, spawn_with};
use gitweave_api::public::Run;
use gitweave_api::runner::{Assignment, RegisterResponse};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn needs_run_independent_jobs_in_parallel_and_wait_for_what_they_need() {
    let app = spawn_with(Options {
        concurrency: 2,
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "r",
        "dag",
        &format!(
            r#"jobs:
  - {{ name: a, image: {img}, script: [echo a > a.txt] }}
  - {{ name: b, image: {img}, script: [cat a.txt, sleep 2], needs: [a] }}
  - {{ name: c, image: {img}, script: [cat a.txt, sleep 2], needs: [a] }}
  - {{ name: d, image: {img}, script: [echo d], needs: [b, c] }}
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let (a, b, c, d) = (
        job_named(&run, "dag/a"),
        job_named(&run, "dag/b"),
        job_named(&run, "dag/c"),
        job_named(&run, "dag/d"),
    );
    let t = |j: &gitweave_api::public::Job| {
        (j.started_at.expect("started"), j.ended_at.expect("ended"))
    };
    assert!(
        t(a).1 <= t(b).0 && t(a).1 <= t(c).0,
        "b and c start after a"
    );
    assert!(
        t(b).0 < t(c).1 && t(c).0 < t(b).1,
        "b and c overlap: {:?} {:?}",
        t(b),
        t(c)
    );
    assert!(t(d).0 >= t(b).1 && t(d).0 >= t(c).1, "d waits for both");
    app.assert_replays(run.id).await;

    // Cycles and unknown names are refused at upload.
    let r = app
        .put_template("cyc", &format!("jobs:\n  - {{name: x, image: {img}, script: [a], needs: [y]}}\n  - {{name: y, image: {img}, script: [a], needs: [x]}}\n"))
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap_or_default().contains("cycle"));
    let r = app
        .put_template(
            "unk",
            &format!("jobs:\n  - {{name: x, image: {img}, script: [a], needs: [ghost]}}\n"),
        )
        .await;
    assert_eq!(r.status(), 422);
    app.shutdown().await;
}

#[tokio::test]
async fn a_manual_job_blocks_the_run_until_approved_with_a_recorded_reason() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "r",
        "release",
        &format!("jobs:\n  - {{ name: build, image: {img}, script: [echo built] }}\n  - {{ name: ship, image: {img}, script: [echo shipped], when: manual }}\n"),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let ship = job_named(&run, "release/ship").id;
    let blocked = app.wait_status(run.id, RunStatus::Blocked, LIMIT).await;
    assert_eq!(
        job_named(&blocked, "release/ship").status,
        JobStatus::Manual
    );
    let r = app
        .post_json(
            &format!("/jobs/{}/approve", job_named(&blocked, "release/build").id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 409, "only manual jobs can be approved");
    let r = app
        .post_json(
            &format!("/jobs/{ship}/approve"),
            &json!({"reason": "release 1.2 signed off by Ana"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let done = app.wait_run(run.id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Success);
    let events = app.events(run.id).await;
    let approved = events
        .iter()
        .find(|e| e.event_type == "job.manual_approved")
        .expect("approval event");
    assert_eq!(
        approved.reason.as_deref(),
        Some("release 1.2 signed off by Ana")
    );
    assert_eq!(approved.job_id, Some(ship));
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn retries_count_attempts_keep_each_attempts_log_and_respect_exit_codes() {
    let app = spawn_app().await;
    let img = image();
    app.create_repo("r").await;
    app.template_ok(
        "flaky",
        &format!(
            r#"jobs:
  - name: once
    image: {img}
    retry: 2
    script:
      - if [ -f tried ]; then echo second try; else touch tried; echo first try; exit 1; fi
"#
        ),
    )
    .await;
    app.template_ok(
        "picky",
        &format!("jobs:\n  - {{ name: p, image: {img}, script: [\"exit 4\"], retry: {{ max: 2, when: [exit_code], exit_codes: [3] }} }}\n"),
    )
    .await;
    app.attach("r", "flaky").await;
    app.attach("r", "picky").await;
    let run = app.trigger("r", &json!({"templates": ["flaky"]})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let once = &run.jobs[0];
    assert_eq!((once.attempt, once.status), (2, JobStatus::Success));
    let r = app
        .get(&format!("/jobs/{}/logs/raw?attempt=1", once.id))
        .await;
    let first = r.text().await.expect("text");
    // (The echoed script line names both; the output lines tell the attempts apart.)
    assert!(
        first.contains("\nfirst try\n") && !first.contains("\nsecond try\n"),
        "{first}"
    );
    let second = String::from_utf8(app.raw_log(once.id).await).expect("utf8");
    assert!(
        second.contains("\nsecond try\n") && !second.contains("\nfirst try\n"),
        "{second}"
    );
    let page: Value = app
        .get_json(&format!("/jobs/{}/logs?attempt=1", once.id))
        .await;
    assert_eq!(page["attempt"], 1);
    assert_eq!(page["complete"], true);
    let events = app.events(run.id).await;
    let retried: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "job.retried")
        .collect();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempt, Some(2));
    app.assert_replays(run.id).await;

    let run = app.trigger("r", &json!({"templates": ["picky"]})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.jobs[0].attempt, 1,
        "exit code 4 is not in exit_codes: no retry"
    );
    let events = app.events(run.id).await;
    assert!(events.iter().any(|e| e.event_type == "gate.failed"));
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped_as_timeout() {
    let app = spawn_app().await;
    app.repo_with(
        "r",
        "slow",
        &format!(
            "jobs:\n  - {{ name: s, image: {}, timeout: 2s, script: [echo started, sleep 60] }}\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed);
    let s = &run.jobs[0];
    assert_eq!(
        (s.status, s.error_class),
        (JobStatus::Failed, Some(ErrorClass::Timeout))
    );
    let log = String::from_utf8(app.raw_log(s.id).await).expect("utf8");
    assert!(
        log.contains("started") && log.contains("timeout of 2s"),
        "{log}"
    );
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_running_containers_and_cancels_queued_jobs_and_rerun_starts_again() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "r",
        "long",
        &format!("jobs:\n  - {{ name: sleeper, image: {img}, script: [echo going, sleep 300] }}\n  - {{ name: next, image: {img}, script: [echo next] }}\n"),
    )
    .await;
    let run = app
        .trigger("r", &json!({"ref": "dev", "commit": "cafe01"}))
        .await;
    let sleeper = run.jobs[0].id;
    // Wait until the sleeper's container runs its script (its first line is stored): a job
    // can be `running` while its container is still being made.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(&app.raw_log(sleeper).await).contains("\ngoing\n") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let done = app.wait_run(run.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, RunStatus::Canceled, "{done:#?}");
    let s = job_named(&done, "long/sleeper");
    assert_eq!(
        (s.status, s.error_class),
        (JobStatus::Canceled, Some(ErrorClass::Canceled))
    );
    assert_eq!(job_named(&done, "long/next").status, JobStatus::Canceled);
    assert_eq!(
        app.settled_containers().await,
        Vec::<String>::new(),
        "the container was stopped and removed"
    );
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), 409);
    app.assert_replays(run.id).await;
    let log = String::from_utf8(app.raw_log(sleeper).await).expect("utf8");
    assert!(log.contains("going"));

    let r = app
        .post_json(&format!("/pipelines/runs/{}/rerun", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let again: Run = r.json().await.expect("run");
    assert_ne!(again.id, run.id);
    assert_eq!(
        (again.git_ref.as_str(), again.commit.as_deref()),
        ("dev", Some("cafe01"))
    );
    assert_eq!(again.trigger, gitweave_model::status::Trigger::Rerun);
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", again.id), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        app.wait_run(again.id, Duration::from_secs(30)).await.status,
        RunStatus::Canceled
    );
    app.shutdown().await;
}

#[tokio::test]
async fn events_are_json_lines_after_a_seq_and_follow_as_server_sent_events() {
    let app = spawn_app().await;
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [sleep 1, \"exit 2\"] }}\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    // Follow as SSE from the start; the stream ends when the run has ended.
    let r = app
        .http
        .get(app.api(&format!("/pipelines/runs/{}/events", run.id)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("sse");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let sse = tokio::time::timeout(LIMIT, r.text())
        .await
        .expect("ends with the run")
        .expect("text");
    let ids: Vec<i64> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().expect("seq"))
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(sse.contains("event: run.completed"));

    let events = app.events(run.id).await;
    assert_eq!(events.len(), ids.len());
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "run.created",
            "job.queued",
            "job.started",
            "run.state_changed",
            "job.failed",
            "gate.failed",
            "run.state_changed",
            "run.completed"
        ]
    );
    let failed = &events[4];
    assert_eq!(
        (
            failed.attempt,
            failed.error_class.as_deref(),
            failed.reason.as_deref()
        ),
        (Some(1), Some("exit_code"), Some("exit code 2"))
    );
    assert!(failed.actor.starts_with("runner:"));
    // The claim records the job's start and the run's move to running, by the runner.
    let (started, running) = (&events[2], &events[3]);
    assert_eq!(
        (started.job_id, started.attempt),
        (Some(run.jobs[0].id), Some(1))
    );
    assert!(started.actor.starts_with("runner:"), "{started:?}");
    assert_eq!(running.actor, started.actor);
    assert_eq!(
        running.data,
        Some(json!({ "from": "queued", "to": "running" }))
    );
    let raw = app
        .get(&format!("/pipelines/runs/{}/events?after=4", run.id))
        .await;
    assert_eq!(raw.headers()["content-type"], "application/x-ndjson");
    let text = raw.text().await.expect("text");
    let first: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(first["seq"], 5);
    assert!(
        first.get("data").is_some() && !text.contains("null"),
        "compact, null fields omitted: {text}"
    );
    // Resume an SSE stream with Last-Event-ID.
    let r = app
        .http
        .get(app.api(&format!("/pipelines/runs/{}/events", run.id)))
        .header("accept", "text/event-stream")
        .header("last-event-id", "6")
        .send()
        .await
        .expect("sse");
    let tail = r.text().await.expect("text");
    assert!(tail.starts_with("id: 7\n"), "{tail}");
    // Resumed after its last event, the stream of an ended run ends at once, empty.
    let last = tail
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .expect("ids")
        .to_owned();
    let resumed = tokio::time::timeout(Duration::from_secs(10), async {
        app.http
            .get(app.api(&format!("/pipelines/runs/{}/events?follow=true", run.id)))
            .header("accept", "text/event-stream")
            .header("last-event-id", &last)
            .send()
            .await
            .expect("sse")
            .text()
            .await
            .expect("text")
    })
    .await
    .expect("a stream resumed after the end ends");
    assert_eq!(resumed, "");
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

async fn register(app: &crate::helpers::TestApp) -> String {
    let r = app
        .http
        .post(format!("{}/internal/v1/runners/register", app.pipeline))
        .json(&json!({"name": "doomed", "capacity": 8, "engine": "docker"}))
        .send()
        .await
        .expect("register");
    r.json::<RegisterResponse>().await.expect("json").token
}

/// One long-poll claim (at most 5 s).
async fn claim_once(app: &crate::helpers::TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/internal/v1/runners/claim", app.pipeline))
        .bearer_auth(token)
        .json(&json!({"wait_ms": 5000}))
        .send()
        .await
        .expect("claim")
}

async fn claim(app: &crate::helpers::TestApp, token: &str) -> Assignment {
    let r = claim_once(app, token).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("assignment")
}

#[tokio::test]
async fn a_lost_runner_is_detected_its_job_retried_or_failed_and_its_writes_refused() {
    let app = spawn_with(Options {
        runner: None,
        lease_ms: 1_000,
        reaper_interval_ms: 200,
        ..Options::default()
    })
    .await;
    let img = image();
    app.create_repo("r").await;
    app.template_ok("retrying", &format!("jobs:\n  - {{ name: a, image: {img}, script: [x], retry: {{ max: 1, when: [runner_failure] }} }}\n")).await;
    app.template_ok(
        "once",
        &format!("jobs:\n  - {{ name: b, image: {img}, script: [x] }}\n"),
    )
    .await;
    app.attach("r", "retrying").await;
    app.attach("r", "once").await;
    let token = register(&app).await;

    let run = app.trigger("r", &json!({"templates": ["retrying"]})).await;
    let a = claim(&app, &token).await;
    // The runner goes silent (no heartbeat): within the lease plus a reaper period the job is
    // taken back and offered again, as attempt 2. The long-poll the runner had open ends
    // without it: it began before the loss, so its answer could go to a connection nobody
    // reads (a host cut off). Asked again, the runner gets attempt 2.
    let before = claim_once(&app, &token).await;
    assert_eq!(before.status(), 204, "a long-poll older than the loss");
    let again = claim(&app, &token).await;
    assert_eq!((again.job_id, again.attempt), (a.job_id, 2));
    let events = app.events(run.id).await;
    let lost = events
        .iter()
        .find(|e| e.event_type == "runner.lost")
        .expect("runner.lost");
    assert_eq!(
        (lost.attempt, lost.error_class.as_deref()),
        (Some(1), Some("runner_failure"))
    );
    // Writes from the lost attempt are refused.
    let r = app
        .http
        .put(format!(
            "{}/internal/v1/jobs/{}/attempts/1/logs?offset=0",
            app.pipeline, a.job_id
        ))
        .bearer_auth(&token)
        .body("late")
        .send()
        .await
        .expect("append");
    assert_eq!(r.status(), 409);
    let r = app
        .http
        .post(format!(
            "{}/internal/v1/jobs/{}/attempts/1/finish",
            app.pipeline, a.job_id
        ))
        .bearer_auth(&token)
        .json(&json!({"exit_code": 0, "log_end": 0}))
        .send()
        .await
        .expect("finish");
    assert_eq!(r.status(), 409);
    // Attempt 2 goes silent too: no retries left, so the job fails as runner_failure.
    let done = app.wait_run(run.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(
        (done.jobs[0].error_class, done.jobs[0].attempt),
        (Some(ErrorClass::RunnerFailure), 2)
    );
    app.assert_replays(run.id).await;

    let run = app.trigger("r", &json!({"templates": ["once"]})).await;
    let _b = claim(&app, &token).await;
    let done = app.wait_run(run.id, Duration::from_secs(30)).await;
    assert_eq!(
        (done.status, done.jobs[0].error_class),
        (RunStatus::Failed, Some(ErrorClass::RunnerFailure))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn three_runners_run_100_jobs_each_exactly_once_within_capacity() {
    let app = spawn_with(Options {
        runner: Some(EngineKind::Shell),
        runners: 3,
        concurrency: 2,
        ..Options::default()
    })
    .await;
    let ledger = std::env::temp_dir().join(format!("gitweave-ledger-{}", uuid::Uuid::new_v4()));
    let ledger_s = ledger.display().to_string();
    app.create_repo("r").await;
    app.template_ok(
        "five",
        &format!(
            "jobs:\n{}",
            (1..=5)
                .map(|i| format!("  - {{ name: j{i}, image: {}, runs_on: {{engine: shell}}, script: [\"echo $GITWEAVE_JOB_ID >> {ledger_s}\", \"sleep 0.1\"] }}\n", image()))
                .collect::<String>()
        ),
    )
    .await;
    app.attach("r", "five").await;
    let mut runs = Vec::new();
    for _ in 0..20 {
        runs.push(app.trigger("r", &json!({})).await.id);
    }
    let mut all_jobs = HashSet::new();
    let mut per_runner: BTreeMap<String, Vec<(time::OffsetDateTime, time::OffsetDateTime)>> =
        BTreeMap::new();
    for id in &runs {
        let run = app.wait_run(*id, Duration::from_secs(300)).await;
        assert_eq!(run.status, RunStatus::Success, "{run:#?}");
        let events = app.events(*id).await;
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=events.len() as i64).collect::<Vec<_>>(),
            "gapless sequence numbers, however the runners' claims interleave"
        );
        let started_run: Vec<_> = events
            .iter()
            .filter(|e| {
                e.event_type == "run.state_changed"
                    && e.data.as_ref().is_some_and(|d| d["to"] == "running")
            })
            .collect();
        assert_eq!(started_run.len(), 1, "the run moved to running once");
        let first_start = events
            .iter()
            .position(|e| e.event_type == "job.started")
            .expect("a job started");
        assert_eq!(
            started_run[0].seq,
            events[first_start].seq + 1,
            "right after the first job's start"
        );
        for j in &run.jobs {
            assert_eq!(j.attempt, 1);
            all_jobs.insert(j.id);
            let started: Vec<_> = events
                .iter()
                .filter(|e| e.event_type == "job.started" && e.job_id == Some(j.id))
                .collect();
            assert_eq!(started.len(), 1, "job {} started once", j.name);
            per_runner
                .entry(started[0].actor.clone())
                .or_default()
                .push((j.started_at.expect("started"), j.ended_at.expect("ended")));
        }
        app.assert_replays(*id).await;
    }
    let lines = std::fs::read_to_string(&ledger).expect("ledger");
    let ran: Vec<&str> = lines.lines().collect();
    let _ = std::fs::remove_file(&ledger);
    assert_eq!(ran.len(), 100, "100 executions");
    assert_eq!(
        ran.iter().collect::<HashSet<_>>().len(),
        100,
        "each job exactly once"
    );
    assert_eq!(all_jobs.len(), 100);
    assert_eq!(
        per_runner.len(),
        3,
        "every runner took work: {:?}",
        per_runner.keys()
    );
    for (runner, spans) in &per_runner {
        // The most jobs one runner held at once never exceeds its 2 slots.
        let mut points: Vec<(time::OffsetDateTime, i32)> = spans
            .iter()
            .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
            .collect();
        points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut max) = (0, 0);
        for (_, d) in points {
            now += d;
            max = max.max(now);
        }
        assert!(max <= 2, "{runner} ran {max} jobs at once");
    }
    app.shutdown().await;
}

/// A skipped job's reason names only the upstream jobs that did not succeed: `c` needs `a`
/// (which succeeds) and `b` (which fails), so it is skipped because of `b` alone.
#[tokio::test]
async fn a_skipped_job_names_only_the_upstream_jobs_that_did_not_succeed() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "r",
        "dag",
        &format!(
            r#"jobs:
  - {{ name: a, image: {img}, script: [echo a] }}
  - {{ name: b, image: {img}, script: ["false"] }}
  - {{ name: c, image: {img}, script: [echo c], needs: [a, b] }}
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(job_named(&run, "dag/a").status, JobStatus::Success);
    assert_eq!(job_named(&run, "dag/b").status, JobStatus::Failed);
    let c = job_named(&run, "dag/c");
    assert_eq!(c.status, JobStatus::Skipped);
    let events = app.events(run.id).await;
    let skipped = events
        .iter()
        .find(|e| e.event_type == "job.skipped" && e.job_id == Some(c.id))
        .expect("c's job.skipped event");
    assert_eq!(
        skipped.reason.as_deref(),
        Some("upstream did not succeed (dag/b)")
    );
    app.assert_replays(run.id).await;
    app.shutdown().await;
}
