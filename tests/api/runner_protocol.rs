//! The internal runner protocol, driven by hand: registration tokens, claims, log chunks that
//! are idempotent by offset, gaps and stale writes refused, finish only with the whole log.

use crate::hand::claim_posting;
use crate::helpers::{EngineKind, Options, TestApp, image, spawn_with};
use gitweave_api::runner::{Assignment, RegisterResponse};
use gitweave_model::status::RunStatus;
use serde_json::{Value, json};
use std::time::Duration;

struct Runner {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Runner {
    async fn claim(&self, wait_ms: u64) -> Option<Assignment> {
        let body = json!({"wait_ms": wait_ms});
        claim_posting(&self.http, &self.base, &self.token, &body).await
    }

    /// A claim with the runner's id for the request, sent again (`repeat`) or not.
    async fn claim_as(&self, wait_ms: u64, claim_id: &str, repeat: bool) -> Option<Assignment> {
        let body = json!({"wait_ms": wait_ms, "claim_id": claim_id, "repeat": repeat});
        claim_posting(&self.http, &self.base, &self.token, &body).await
    }

    async fn append(&self, a: &Assignment, offset: i64, data: &str) -> (u16, Value) {
        let r = self
            .http
            .put(format!(
                "{}/internal/v1/jobs/{}/attempts/{}/logs?offset={offset}",
                self.base, a.job_id, a.attempt
            ))
            .bearer_auth(&self.token)
            .body(data.to_owned())
            .send()
            .await
            .expect("append");
        (r.status().as_u16(), r.json().await.expect("json"))
    }

    async fn hand_back(&self, a: &Assignment, attempt: i32, log_end: i64) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/internal/v1/jobs/{}/attempts/{attempt}/hand-back",
                self.base, a.job_id
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "log_end": log_end }))
            .send()
            .await
            .expect("hand-back");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn finish(&self, a: &Assignment, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/internal/v1/jobs/{}/attempts/{}/finish",
                self.base, a.job_id, a.attempt
            ))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("finish");
        (r.status().as_u16(), r.json().await.expect("json"))
    }
}

async fn register(http: &reqwest::Client, base: &str, token: Option<&str>) -> reqwest::Response {
    register_as(http, base, "hand", token).await
}

/// Two runners registered as `{prefix}-0` and `{prefix}-1` (two names: registering a name
/// again would revoke the first registration).
async fn two_runners(app: &TestApp, prefix: &str) -> Vec<Runner> {
    let mut runners = Vec::new();
    for n in 0..2 {
        let reg: RegisterResponse =
            register_as(&app.http, &app.pipeline, &format!("{prefix}-{n}"), None)
                .await
                .json()
                .await
                .expect("json");
        runners.push(Runner {
            base: app.pipeline.clone(),
            token: reg.token,
            http: app.http.clone(),
        });
    }
    runners
}

/// Registers a runner under `name` (a name has one live registration at a time).
async fn register_as(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut rb = http
        .post(format!("{base}/internal/v1/runners/register"))
        .json(&json!({"name": name, "capacity": 8, "engine": "docker"}));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.expect("register")
}

#[tokio::test]
async fn registration_needs_the_token_when_one_is_set() {
    let app = spawn_with(Options {
        registration_token: Some("reg-secret".into()),
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    assert_eq!(register(&app.http, &app.pipeline, None).await.status(), 401);
    assert_eq!(
        register(&app.http, &app.pipeline, Some("wrong"))
            .await
            .status(),
        401
    );
    assert_eq!(
        register(&app.http, &app.pipeline, Some("reg-secret"))
            .await
            .status(),
        201
    );
    // The real runner registered with the token and runs jobs.
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, runs_on: {{engine: shell}}, script: [echo ok] }}\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, Duration::from_secs(60)).await;
    assert_eq!(run.status, RunStatus::Success);
    let r = app
        .http
        .post(format!("{}/internal/v1/runners/claim", app.pipeline))
        .bearer_auth("00000000-0000-0000-0000-000000000000.nope")
        .json(&json!({"wait_ms": 0}))
        .send()
        .await
        .expect("claim");
    assert_eq!(r.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn log_chunks_are_idempotent_by_offset_and_writes_need_the_attempt() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    let reg: RegisterResponse = register(&app.http, &app.pipeline, None)
        .await
        .json()
        .await
        .expect("json");
    let runner = Runner {
        base: app.pipeline.clone(),
        token: reg.token,
        http: app.http.clone(),
    };
    assert!(runner.claim(0).await.is_none(), "nothing queued yet");
    let img = image();
    app.repo_with("r", "t", &format!("jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n  - {{ name: b, image: {img}, script: [y] }}\n")).await;

    // A waiting claim is woken by the trigger.
    let waiting = tokio::spawn({
        let r = Runner {
            base: runner.base.clone(),
            token: runner.token.clone(),
            http: runner.http.clone(),
        };
        async move { r.claim(10_000).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = app.trigger("r", &json!({"commit": "feedbeef"})).await;
    let a = waiting.await.expect("join").expect("woken with a job");
    assert_eq!(a.job_id, run.jobs[0].id);
    assert_eq!(a.attempt, 1);
    assert_eq!(a.env["GITWEAVE_COMMIT_SHA"], "feedbeef");
    assert_eq!(a.env["GITWEAVE_JOB_NAME"], "t/a");
    assert!(runner.claim(0).await.is_none(), "job b waits for a");
    let shown = app.run(run.id).await;
    assert_eq!(shown.status, RunStatus::Running);

    assert_eq!(
        runner.append(&a, 0, "hello ").await,
        (200, json!({"next_offset": 6}))
    );
    assert_eq!(
        runner.append(&a, 0, "hello ").await,
        (200, json!({"next_offset": 6})),
        "a resent chunk is a no-op"
    );
    let (s, body) = runner.append(&a, 9, "gap").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("log_offset_mismatch"))
    );
    assert_eq!(
        runner.append(&a, 6, "world").await,
        (200, json!({"next_offset": 11}))
    );
    let (s, body) = runner
        .finish(&a, json!({"exit_code": 0, "log_end": 6}))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("log_incomplete"))
    );
    assert_eq!(
        runner
            .finish(&a, json!({"exit_code": 0, "log_end": 11}))
            .await
            .0,
        200
    );
    let (s, body) = runner.append(&a, 11, "late").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("stale_attempt"))
    );
    assert_eq!(app.raw_log(a.job_id).await, b"hello world");
    let page = app.logs_page(a.job_id, 0, 100).await;
    assert!(page.complete);

    let b = runner
        .claim(1_000)
        .await
        .expect("b is released when a succeeds");
    assert_eq!(b.job_id, run.jobs[1].id);
    let (s, _) = runner
        .finish(
            &b,
            json!({"exit_code": 1, "error_class": "exit_code", "log_end": 0}),
        )
        .await;
    assert_eq!(s, 200);
    let done = app.run(run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.jobs[1].exit_code, Some(1));
    app.shutdown().await;
}

/// A hand-back is a runner write like the others: only the holder of `(job, attempt)`, with
/// its whole log stored. It queues the job again for a new attempt that does not use up the
/// job's `retry`.
#[tokio::test]
async fn a_hand_back_needs_the_attempt_and_its_log_and_uses_no_retry() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    let runners = two_runners(&app, "hand").await;
    let (holder, other) = (&runners[0], &runners[1]);
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {img}, script: [x], retry: {{ max: 1, when: [exit_code] }} }}\n"),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let a = holder.claim(5_000).await.expect("a job");
    assert_eq!(runner_append_ok(holder, &a, "part").await, 4);

    let (s, body) = other.hand_back(&a, 1, 4).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("stale_attempt")),
        "not its attempt"
    );
    let (s, body) = holder.hand_back(&a, 2, 4).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("stale_attempt")),
        "not that attempt"
    );
    let (s, body) = holder.hand_back(&a, 1, 9).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("log_incomplete")),
        "a gap"
    );
    assert_eq!(holder.hand_back(&a, 1, 4).await.0, 204);
    let shown = app.run(run.id).await;
    assert_eq!(
        (shown.jobs[0].status, shown.jobs[0].attempt),
        (gitweave_model::status::JobStatus::Queued, 1)
    );
    assert_eq!(holder.hand_back(&a, 1, 4).await.0, 409, "handed back once");

    // Attempt 2 fails: its one retry is still there, since attempt 1 was handed back.
    let a2 = other.claim(5_000).await.expect("the job again");
    assert_eq!(a2.attempt, 2);
    let (s, _) = other
        .finish(
            &a2,
            json!({"exit_code": 1, "error_class": "exit_code", "log_end": 0}),
        )
        .await;
    assert_eq!(s, 200);
    let a3 = other.claim(10_000).await.expect("retried once");
    assert_eq!(a3.attempt, 3);
    let (s, _) = other
        .finish(
            &a3,
            json!({"exit_code": 1, "error_class": "exit_code", "log_end": 0}),
        )
        .await;
    assert_eq!(s, 200);
    let done = app.wait_run(run.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, RunStatus::Failed, "no second retry");
    let events = app.events(run.id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "job.handed_back").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "job.retried").count(),
        1,
        "{kinds:?}"
    );
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

async fn runner_append_ok(r: &Runner, a: &Assignment, data: &str) -> i64 {
    let (s, body) = r.append(a, 0, data).await;
    assert_eq!(s, 200, "{body}");
    body["next_offset"].as_i64().expect("offset")
}

/// A finish repeated after its first try committed (its answer lost on the way) answers what
/// was recorded and changes nothing; the same finish from a runner that never held the attempt
/// is still stale.
#[tokio::test]
async fn a_repeated_finish_answers_what_was_recorded() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    let runners = two_runners(&app, "again").await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n"),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let holder = &runners[0];
    let a = holder.claim(5_000).await.expect("the job");
    assert_eq!(runner_append_ok(holder, &a, "hi").await, 2);
    let first = holder
        .finish(&a, json!({"exit_code": 0, "log_end": 2}))
        .await;
    assert_eq!(first, (200, json!({"cancel": false, "run_ended": true})));
    let again = holder
        .finish(&a, json!({"exit_code": 0, "log_end": 2}))
        .await;
    assert_eq!(
        again, first,
        "the same finish again is answered as recorded"
    );
    let (s, body) = runners[1]
        .finish(&a, json!({"exit_code": 0, "log_end": 2}))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("stale_attempt")),
        "{body}"
    );
    let events = app.events(run.id).await;
    let succeeded = events
        .iter()
        .filter(|e| e.event_type == "job.succeeded")
        .count();
    assert_eq!(succeeded, 1, "recorded once: {events:?}");
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

/// A claim whose answer never reached its runner (pipeline-svc died between the commit and
/// the reply) is sent again under the same id: the same attempt comes back, with no second
/// `job.started`, and only to that runner; a new id, or one whose attempt has ended, claims
/// anew.
#[tokio::test]
async fn a_repeated_claim_gets_the_same_attempt_back() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    let runners = two_runners(&app, "repeat").await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n  - {{ name: b, image: {img}, script: [y] }}\n"
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let (holder, other) = (&runners[0], &runners[1]);
    let id = "0190a5b8-0000-7000-8000-00000000c1a1";
    let first = holder.claim_as(5_000, id, false).await.expect("job a");
    let again = holder
        .claim_as(5_000, id, true)
        .await
        .expect("the same again");
    assert_eq!(
        (again.job_id, again.attempt),
        (first.job_id, first.attempt),
        "the repeat answers the attempt the first try took"
    );
    assert_eq!(again.name, first.name);
    // Another runner repeating that id gets nothing of it: job b waits for a.
    assert!(other.claim_as(0, id, true).await.is_none());
    let started = |events: &[gitweave_api::public::Event]| {
        events
            .iter()
            .filter(|e| e.event_type == "job.started")
            .count()
    };
    assert_eq!(started(&app.events(run.id).await), 1, "one job.started");
    // Once that attempt has ended, the id takes nothing back: a repeat claims anew (b).
    assert_eq!(runner_append_ok(holder, &first, "hi").await, 2);
    let (s, _) = holder
        .finish(&first, json!({"exit_code": 0, "log_end": 2}))
        .await;
    assert_eq!(s, 200);
    let b = holder.claim_as(5_000, id, true).await.expect("job b");
    assert_ne!(b.job_id, first.job_id);
    assert_eq!(started(&app.events(run.id).await), 2);
    app.assert_replays(run.id).await;
    app.shutdown().await;
}
