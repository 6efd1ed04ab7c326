//! Services beside a job (SPEC §12), on the real Docker engine: a real Postgres reached by
//! name and on `localhost`, a service that never gets ready (`service_failed`, its last lines
//! at the end of the job's log), one that exits first, a missing service image, cancel while a
//! service runs, a runner killed with SIGKILL and restarted, and two runs at once with
//! services of the same name. Every test checks that no service container is left.

use crate::helpers::{Options, Proc, TestApp, bin, image, spawn_with};
use gitweave_api::public::Run;
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(180);
const POSTGRES: &str = "postgres:15-bookworm";

/// Containers labelled with `label` (e.g. `gitweave.job=<id>`), running or not.
fn containers(filters: &[String]) -> Vec<String> {
    crate::helpers::containers_labelled(filters)
}

/// Anonymous volumes no container uses (one whose container went without `-v`). Named ones
/// are left out: a run's workspace volume is unused between its jobs, and other tests' runs
/// come and go meanwhile.
fn dangling_volumes() -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", "dangling=true"])
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

/// The service containers of a job.
fn services_of(job: Uuid) -> Vec<String> {
    containers(&[format!("gitweave.job={job}"), "gitweave.service".to_owned()])
}

/// Everything made for a run's services: their containers and the job's own sandbox.
fn made_for_run(run: Uuid) -> Vec<String> {
    containers(&[format!("gitweave.run={run}")])
}

/// Waits (at most 20 s) until nothing made for the run's services is left.
async fn settled_run(run: Uuid) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = made_for_run(run);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_log(app: &TestApp, job: Uuid, needle: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(&app.raw_log(job).await).contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job's log never showed {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn service_log(app: &TestApp, job: Uuid, name: &str, query: &str) -> reqwest::Response {
    app.get(&format!("/jobs/{job}/services/{name}/logs{query}"))
        .await
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn only_job(run: &Run) -> &gitweave_api::public::Job {
    &run.jobs[0]
}

#[tokio::test]
async fn a_job_reaches_its_postgres_service_by_name_and_on_localhost_and_its_log_is_kept() {
    let app = spawn_with(Options {
        api_token: Some("svc-token".into()),
        ..Options::default()
    })
    .await;
    app.repo_with(
        "shop",
        "it",
        &format!(
            r#"jobs:
  - name: integration
    image: {POSTGRES}
    env: {{ PGPASSWORD: ci }}
    services:
      - name: db
        image: {POSTGRES}
        env: {{ POSTGRES_PASSWORD: ci }}
        ready: {{ command: "pg_isready -h 127.0.0.1 -U postgres", timeout: 150s }}
    script:
      - psql -h db -U postgres -tAc 'select 40 + 2'
      - psql -h localhost -U postgres -tAc "select 'on localhost'"
      - grep -w db /etc/hosts
"#
        ),
    )
    .await;
    let dangling_before = dangling_volumes();
    let run = app.trigger("shop", &json!({})).await;
    let done = app.wait_run(run.id, LIMIT).await;
    let job = only_job(&done);
    let log = log_text(&app.raw_log(job.id).await);
    assert_eq!(done.status, RunStatus::Success, "{done:#?}\n{log}");
    // The anonymous volume of Postgres' data directory went with its container.
    let left = settled_run(run.id).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let new: Vec<String> = dangling_volumes()
        .into_iter()
        .filter(|v| !dangling_before.contains(v))
        .collect();
    assert!(new.is_empty(), "volumes left by the service: {new:?}");
    assert!(log.contains("\n42\n"), "psql -h db answered: {log}");
    assert!(log.contains("\non localhost\n"), "psql -h localhost: {log}");
    assert!(log.contains("127.0.0.1\tdb"), "db is 127.0.0.1: {log}");

    // The service's log, through the gateway, behind the API token like its neighbours.
    let r = service_log(&app, job.id, "db", "").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/plain");
    assert_eq!(header(&r, "x-log-complete"), "true");
    let end: i64 = header(&r, "x-next-offset").parse().expect("x-next-offset");
    let text = r.text().await.expect("body");
    assert!(
        text.contains("database system is ready to accept connections"),
        "{text}"
    );
    assert_eq!(end, text.len() as i64);
    let unauthenticated = app
        .http
        .get(app.api(&format!("/jobs/{}/services/db/logs", job.id)))
        .send()
        .await
        .expect("GET");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    // Pages as a job log's: offset and limit in bytes, 416 past the end, 404 for what is not.
    let r = service_log(&app, job.id, "db", "?offset=3&limit=10").await;
    assert_eq!(header(&r, "x-next-offset"), "13");
    assert_eq!(header(&r, "x-log-complete"), "false");
    assert_eq!(r.text().await.expect("page"), text[3..13]);
    let r = service_log(&app, job.id, "db", &format!("?offset={end}")).await;
    assert_eq!(
        (r.status(), header(&r, "x-log-complete")),
        (StatusCode::OK, "true")
    );
    let r = service_log(&app, job.id, "db", &format!("?offset={}", end + 1)).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let (status, code, message) = crate::helpers::envelope(r).await;
    assert_eq!(
        (status, code.as_str()),
        (416, "offset_past_end"),
        "{message}"
    );
    assert!(
        message.contains(&format!("ends at byte {end}")),
        "{message}"
    );
    let (status, code, message) =
        crate::helpers::envelope(service_log(&app, job.id, "cache", "").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(message.contains("its services are db"), "{message}");
    let (status, _, _) =
        crate::helpers::envelope(service_log(&app, Uuid::now_v7(), "db", "").await).await;
    assert_eq!(status, 404);
    let (status, code, _) =
        crate::helpers::envelope(service_log(&app, job.id, "No_Such", "").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_name"));

    assert!(
        settled_run(run.id).await.is_empty(),
        "the service is removed"
    );
    assert!(app.settled_containers().await.is_empty());
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_service_not_ready_in_time_or_exiting_first_fails_the_job_with_its_last_lines() {
    let app = spawn_with(Options::default()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            r#"jobs:
  - name: slow
    image: {img}
    allow_failure: true
    services:
      - name: sluggish
        image: {img}
        command: [sh, -c, "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do echo line $i; done; echo still starting; sleep 300"]
        ready: {{ tcp: 5999, timeout: 2s }}
    script:
      - echo the script ran
  - name: crash
    image: {img}
    allow_failure: true
    services:
      - name: crashy
        image: {img}
        command: [sh, -c, "echo cannot start >&2; exit 3"]
        ready: {{ command: "false", timeout: 60s }}
    script:
      - echo the script ran
  - name: missing
    image: {img}
    services:
      - name: ghost
        image: gitweave-no-such-image:never
    script:
      - echo the script ran
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let done = app.wait_run(run.id, LIMIT).await;
    let by_name = |n: &str| {
        done.jobs
            .iter()
            .find(|j| j.name == format!("t/{n}"))
            .unwrap_or_else(|| panic!("no job {n}"))
            .clone()
    };

    let slow = by_name("slow");
    let log = log_text(&app.raw_log(slow.id).await);
    assert_eq!(slow.status, JobStatus::Failed);
    assert_eq!(slow.error_class, Some(ErrorClass::ServiceFailed), "{log}");
    let reason = slow.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("service sluggish was not ready within 2s (ready: tcp 5999)"),
        "{reason}"
    );
    assert!(
        !log.contains("the script ran"),
        "the script never ran: {log}"
    );
    // The last 20 lines, and they end the log.
    assert!(
        log.ends_with("gitweave: the last lines of service sluggish:\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\nline 10\nline 11\nline 12\nline 13\nline 14\nline 15\nline 16\nline 17\nline 18\nline 19\nline 20\nline 21\nline 22\nstill starting\n")
            && !log.contains("\nline 3\n"),
        "{log}"
    );
    let whole = service_log(&app, slow.id, "sluggish", "").await;
    let whole = whole.text().await.expect("service log");
    assert!(
        whole.starts_with("line 1\n") && whole.ends_with("still starting\n"),
        "{whole}"
    );

    let crash = by_name("crash");
    let log = log_text(&app.raw_log(crash.id).await);
    assert_eq!(crash.error_class, Some(ErrorClass::ServiceFailed), "{log}");
    assert!(
        crash
            .reason
            .clone()
            .unwrap_or_default()
            .contains("service crashy exited (exit code 3) before it was ready"),
        "{crash:?}"
    );
    assert!(
        log.ends_with("gitweave: the last lines of service crashy:\ncannot start\n"),
        "{log}"
    );

    let missing = by_name("missing");
    assert_eq!(missing.error_class, Some(ErrorClass::ImageNotFound));
    let reason = missing.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("gitweave-no-such-image:never") && reason.contains("service ghost"),
        "{reason}"
    );
    assert_eq!(done.status, RunStatus::Failed);

    assert!(settled_run(run.id).await.is_empty(), "no service is left");
    assert!(app.settled_containers().await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn canceling_a_job_while_its_service_runs_removes_the_service() {
    let app = spawn_with(Options::default()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            r#"jobs:
  - name: long
    image: {img}
    services:
      - name: side
        image: {img}
        command: [sh, -c, "echo side is up; sleep 300"]
    script:
      - echo job is up
      - sleep 300
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let job = run.jobs[0].id;
    wait_log(&app, job, "\njob is up\n").await;
    assert_eq!(services_of(job).len(), 1, "the service runs beside the job");
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let done = app.wait_run(run.id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Canceled);
    assert_eq!(only_job(&done).error_class, Some(ErrorClass::Canceled));
    // Removed before the end was reported.
    assert!(services_of(job).is_empty(), "the service went with the job");
    let side = service_log(&app, job, "side", "").await;
    assert_eq!(header(&side, "x-log-complete"), "true");
    assert_eq!(side.text().await.expect("log"), "side is up\n");
    assert!(settled_run(run.id).await.is_empty());
    assert!(app.settled_containers().await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_runner_killed_with_a_service_running_removes_it_when_it_restarts() {
    let app = spawn_with(Options {
        runner: None,
        lease_ms: 2_000,
        reaper_interval_ms: 250,
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - name: a\n    image: {img}\n    services:\n      - name: side\n        image: {img}\n        command: [sleep, '300']\n    script:\n      - echo job is up\n      - sleep 300\n"
        ),
    )
    .await;
    let runner = || {
        Proc(
            Command::new(bin("runner-svc"))
                .env("PIPELINE_SVC_URL", app.pipeline_url())
                .env("RUNNER_NAME", &app.runner_name)
                .env("RUNNER_CONTAINER_PREFIX", &app.prefix)
                .env("RUNNER_PULL_POLICY", "never")
                .env("RUNNER_ADDR", "127.0.0.1:0")
                .env("RUST_LOG", "warn")
                .env_remove("RUNNER_REGISTRATION_TOKEN")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start runner-svc"),
        )
    };
    let mut first = runner();
    let run = app.trigger("r", &json!({})).await;
    let job = run.jobs[0].id;
    wait_log(&app, job, "\njob is up\n").await;
    first.0.kill().expect("SIGKILL the runner");
    let _ = first.0.wait();
    assert_eq!(
        services_of(job).len(),
        1,
        "the killed runner's service is left"
    );
    assert!(made_for_run(run.id).len() >= 2, "and the job's own sandbox");

    let restarted = runner();
    // Its start removes what its earlier life left, services and the job's sandbox included.
    assert!(settled_run(run.id).await.is_empty(), "removed at restart");
    assert!(services_of(job).is_empty());
    // The lost attempt ends as runner_failure (no retry), and nothing is left then either.
    let done = app.wait_run(run.id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(only_job(&done).error_class, Some(ErrorClass::RunnerFailure));
    restarted.terminate().await;
    let left = app.containers_left_within(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "left after the runner stopped: {left:#?}");
    app.shutdown().await;
}

#[tokio::test]
async fn two_runs_at_once_with_same_named_services_each_reach_only_their_own() {
    let app = spawn_with(Options {
        concurrency: 2,
        ..Options::default()
    })
    .await;
    let img = image();
    let yaml = |who: &str| {
        format!(
            r#"jobs:
  - name: probe
    image: {img}
    services:
      - name: web
        image: {img}
        env: {{ WHO: {who} }}
        command: [sh, -c, "mkdir -p /www && echo \"served by $WHO\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ready: {{ tcp: 8080, timeout: 60s }}
    script:
      - wget -qO- http://web:8080/
      - sleep 4
      - wget -qO- http://localhost:8080/
"#
        )
    };
    app.repo_with("one", "t1", &yaml("one")).await;
    app.repo_with("two", "t2", &yaml("two")).await;
    let empty = json!({});
    let (a, b) = tokio::join!(app.trigger("one", &empty), app.trigger("two", &empty));
    let (a, b) = tokio::join!(app.wait_run(a.id, LIMIT), app.wait_run(b.id, LIMIT));
    for (run, me, other) in [(&a, "one", "two"), (&b, "two", "one")] {
        let log = log_text(&app.raw_log(only_job(run).id).await);
        assert_eq!(run.status, RunStatus::Success, "{log}");
        assert_eq!(
            log.matches(&format!("served by {me}\n")).count(),
            2,
            "{log}"
        );
        assert!(!log.contains(&format!("served by {other}")), "{log}");
    }
    // They ran at the same time, each with its own `web` on port 8080.
    let (ja, jb) = (only_job(&a), only_job(&b));
    assert!(
        ja.started_at < jb.ended_at && jb.started_at < ja.ended_at,
        "the two jobs overlapped: {ja:?} {jb:?}"
    );
    assert!(settled_run(a.id).await.is_empty());
    assert!(settled_run(b.id).await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_job_that_times_out_or_fails_has_its_services_removed() {
    let app = spawn_with(Options::default()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            r#"jobs:
  - name: overdue
    image: {img}
    timeout: 3s
    allow_failure: true
    services:
      - {{ name: side, image: {img}, command: [sleep, "300"] }}
    script:
      - sleep 60
  - name: failing
    image: {img}
    services:
      - {{ name: side, image: {img}, command: [sleep, "300"] }}
    script:
      - exit 4
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let done = app.wait_run(run.id, LIMIT).await;
    let overdue = &done.jobs[0];
    let failing = &done.jobs[1];
    assert_eq!(overdue.error_class, Some(ErrorClass::Timeout), "{done:#?}");
    assert_eq!(
        (failing.error_class, failing.exit_code),
        (Some(ErrorClass::ExitCode), Some(4)),
        "{done:#?}"
    );
    for job in [overdue.id, failing.id] {
        assert!(services_of(job).is_empty(), "removed with the job");
    }
    assert!(settled_run(run.id).await.is_empty());
    assert!(app.settled_containers().await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn with_egress_on_a_jobs_services_are_still_reached_by_name_in_its_own_namespace() {
    let app = spawn_with(Options {
        job_egress: true,
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            r#"jobs:
  - name: probe
    image: {img}
    services:
      - name: web
        image: {img}
        command: [sh, -c, "mkdir -p /www && echo egress web > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ready: {{ tcp: 8080, timeout: 60s }}
    script:
      - wget -qO- http://web:8080/
      - wget -qO- http://localhost:8080/
"#
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let done = app.wait_run(run.id, LIMIT).await;
    let log = log_text(&app.raw_log(only_job(&done).id).await);
    assert_eq!(done.status, RunStatus::Success, "{log}");
    assert_eq!(log.matches("egress web\n").count(), 2, "{log}");
    assert!(settled_run(run.id).await.is_empty());
    app.shutdown().await;
}
