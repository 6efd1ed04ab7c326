//! Faults, with the real binaries as processes: a runner killed with SIGKILL mid-job,
//! pipeline-svc killed with SIGKILL mid-run, Postgres restarted under load, a runner
//! stopped with SIGTERM mid-job (finishing it, or handing it back past its grace), a runner
//! whose job writes on through an outage of pipeline-svc, and pipeline-svc and a runner stopped
//! together.

use crate::helpers::{
    Options, containers_matching, containers_of_job, free_port, fresh_database, image, spawn_with,
};
use crate::procs::{
    pipeline_process, pipeline_process_with, runner_process, runner_process_with, wait_ready,
};
use gitweave_model::status::{JobStatus, RunStatus};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Waits (at most 20 s) until no container of `job` is left; the runner removes them just after
/// it reports the job's end.
async fn settled_containers_of(job: uuid::Uuid) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = containers_of_job(job);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_status(app: &crate::helpers::TestApp, run: uuid::Uuid, want: JobStatus) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while app.run(run).await.jobs[0].status != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_runner_killed_mid_job_is_detected_and_its_job_retried_by_the_restarted_runner() {
    let app = spawn_with(Options {
        runner: None,
        lease_ms: 2_000,
        reaper_interval_ms: 250,
        ..Options::default()
    })
    .await;
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - name: a\n    image: {}\n    retry: {{ max: 1, when: [runner_failure] }}\n    script:\n      - echo attempt $GITWEAVE_JOB_ATTEMPT\n      - if [ \"$GITWEAVE_JOB_ATTEMPT\" = 1 ]; then sleep 300; fi\n",
            image()
        ),
    )
    .await;
    let mut runner = runner_process(app.pipeline_url(), &app.runner_name, &app.prefix);
    let run = app.trigger("r", &json!({})).await;
    let job = run.jobs[0].id;
    wait_status(&app, run.id, JobStatus::Running).await;
    // `running` starts at the claim, before the container exists: wait for its first line.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(&app.raw_log(job).await).contains("\nattempt 1\n") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never printed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner.0.kill().expect("SIGKILL the runner");
    let _ = runner.0.wait();
    assert_eq!(
        containers_of_job(job).len(),
        1,
        "the killed runner's container is still there"
    );

    // Within the lease (2 s) and a reaper period the loss is noticed and the job requeued.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = app.events(run.id).await;
        if events.iter().any(|e| e.event_type == "runner.lost") {
            assert!(events.iter().any(|e| e.event_type == "job.retried"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runner.lost never recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The restarted runner removes what its earlier life left, then runs attempt 2.
    let restarted = runner_process(app.pipeline_url(), &app.runner_name, &app.prefix);
    let done = app.wait_run(run.id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    assert_eq!(done.jobs[0].attempt, 2);
    let log = String::from_utf8(app.raw_log(job).await).expect("utf8");
    assert!(
        log.contains("attempt 2") && !log.contains("attempt 1\n"),
        "attempt 2's own log: {log}"
    );
    assert!(
        settled_containers_of(job).await.is_empty(),
        "no container left behind"
    );
    app.assert_replays(run.id).await;
    // SIGTERM: the restarted runner stops and removes its warm sandboxes too.
    restarted.terminate().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_runner_stopped_with_sigterm_finishes_its_job_and_leaves_no_container() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [sleep 2, echo finished] }}\n",
            image()
        ),
    )
    .await;
    let mut runner = runner_process(app.pipeline_url(), &app.runner_name, &app.prefix);
    let run = app.trigger("r", &json!({})).await;
    wait_status(&app, run.id, JobStatus::Running).await;
    let pid = runner.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = runner.0.wait();
        (s, runner)
    })
    .await
    .expect("join")
    .0
    .expect("wait");
    assert!(
        status.success(),
        "runner-svc exits cleanly on SIGTERM: {status:?}"
    );
    let done = app.wait_run(run.id, Duration::from_secs(10)).await;
    assert_eq!(
        done.status,
        RunStatus::Success,
        "the running job was finished, not dropped"
    );
    assert!(settled_containers_of(run.jobs[0].id).await.is_empty());
    assert_eq!(
        app.all_containers_of_runner(),
        Vec::<String>::new(),
        "a stopped runner leaves no container at all, network sandboxes included"
    );
    app.shutdown().await;
}

/// Uploads `yaml` as template `t`, attaches it to repo `r` (which must exist) and triggers a
/// run, through the API at `api`.
async fn attach_and_trigger(
    http: &reqwest::Client,
    api: &str,
    yaml: String,
) -> gitweave_api::public::Run {
    let r = http
        .put(format!("{api}/templates/t"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .expect("t");
    assert_eq!(r.status(), 201);
    http.put(format!("{api}/repos/r/templates/t"))
        .json(&json!({}))
        .send()
        .await
        .expect("attach");
    http.post(format!("{api}/repos/r/pipelines/run"))
        .json(&json!({}))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json")
}

/// Waits until `job` has stored more than `bytes` bytes of log.
async fn wait_for_log_past(http: &reqwest::Client, api: &str, job: uuid::Uuid, bytes: i64) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let page: serde_json::Value = http
            .get(format!("{api}/jobs/{job}/logs"))
            .send()
            .await
            .expect("logs")
            .json()
            .await
            .expect("json");
        if page["next_offset"].as_i64().unwrap_or(0) > bytes {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls run `run` through the API at `api` until it has ended, and returns it.
async fn wait_run_end(
    http: &reqwest::Client,
    api: &str,
    run: uuid::Uuid,
) -> gitweave_api::public::Run {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let r: gitweave_api::public::Run = http
            .get(format!("{api}/pipelines/runs/{run}"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if r.status.is_terminal() {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run did not end: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pipeline_svc_killed_mid_run_and_restarted_loses_no_log_byte() {
    let db = fresh_database().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut pipeline = pipeline_process(&db, port);
    wait_ready(&url).await;
    // The gateway and the runner run in this process; only pipeline-svc dies.
    let gapp = api_gateway::App::build(api_gateway::Config::for_pipeline(&url))
        .await
        .expect("gateway");
    let gw = format!("http://{}/api/v1", gapp.local_addr().expect("addr"));
    let (gtx, grx) = tokio::sync::oneshot::channel::<()>();
    let g = tokio::spawn(gapp.run_until_stopped(async {
        let _ = grx.await;
    }));
    let name = format!(
        "test-runner-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let _runner = runner_process(&url, &name, &format!("{name}-"));
    let http = reqwest::Client::new();
    assert_eq!(
        http.put(format!("{gw}/repos/r"))
            .json(&json!({}))
            .send()
            .await
            .expect("repo")
            .status(),
        201
    );
    let yaml = format!(
        "jobs:\n  - name: a\n    image: {}\n    script: [\"for i in $(seq 1 40); do echo line $i; sleep 0.1; done\"]\n",
        image()
    );
    let run = attach_and_trigger(&http, &gw, yaml).await;
    let job = run.jobs[0].id;
    // Kill it once the job has written some lines.
    wait_for_log_past(&http, &gw, job, 60).await;
    pipeline.0.kill().expect("SIGKILL pipeline-svc");
    let _ = pipeline.0.wait();
    let down = http
        .get(format!("{gw}/pipelines/runs/{}", run.id))
        .send()
        .await
        .expect("get");
    assert_eq!(down.status(), 503, "the gateway says pipeline-svc is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _pipeline = pipeline_process(&db, port);
    wait_ready(&url).await;
    let done = wait_run_end(&http, &gw, run.id).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    let raw = http
        .get(format!("{gw}/jobs/{job}/logs/raw"))
        .send()
        .await
        .expect("raw")
        .text()
        .await
        .expect("text");
    let body = raw.split_once('\n').map(|(_, b)| b).unwrap_or_default();
    let expected: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    assert_eq!(body, expected, "no gap, no duplicate");
    let _ = gtx.send(());
    let _ = g.await;
}

#[tokio::test]
async fn postgres_restarted_under_load_loses_nothing() {
    // A cluster of its own: restarting the shared one would disturb the other tests.
    let dir = tempdir();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-throwaway.sh");
    let out = Command::new(script)
        .args(["start", &dir, &port.to_string()])
        .output()
        .expect("start postgres");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let _stop = Stop(dir.clone());
    let db = {
        let base = admin.rsplit_once('/').expect("path").0.to_owned();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("admin");
        sqlx::Executor::execute(&mut conn, "CREATE DATABASE gw_restart")
            .await
            .expect("create");
        format!("{base}/gw_restart")
    };
    let app = crate::helpers::spawn_on(
        db,
        Options {
            runner: Some(crate::helpers::EngineKind::Shell),
            concurrency: 2,
            ..Options::default()
        },
    )
    .await;
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {}, runs_on: {{engine: shell}}, script: [\"for i in $(seq 1 30); do echo line $i; sleep 0.1; done\"] }}\n", image()),
    )
    .await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(app.trigger("r", &json!({})).await.id);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = Command::new(script)
        .args(["restart", &dir])
        .output()
        .expect("restart");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    for id in runs {
        let run = app.wait_run(id, LIMIT).await;
        assert_eq!(run.status, RunStatus::Success, "{run:#?}");
        let raw = String::from_utf8(app.raw_log(run.jobs[0].id).await).expect("utf8");
        let body = raw.split_once('\n').map(|(_, b)| b).unwrap_or_default();
        assert_eq!(body, expected);
        app.assert_replays(id).await;
    }
    app.shutdown().await;
}

fn tempdir() -> String {
    let d = std::env::temp_dir().join(format!("gitweave-pg-{}", uuid::Uuid::new_v4().simple()));
    d.display().to_string()
}

struct Stop(String);

impl Drop for Stop {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-throwaway.sh");
        let _ = Command::new(script).args(["stop", &self.0]).output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SPEC §15: SIGTERM to a runner whose job runs past `RUNNER_SHUTDOWN_GRACE` stops the job and
/// hands the attempt back: the job is queued again (not failed, no retry used), a
/// `job.handed_back` event names the runner, no container is left, and another runner runs
/// the next attempt.
#[tokio::test]
async fn a_runner_stopped_with_sigterm_hands_back_a_job_that_outlasts_its_grace() {
    let app = spawn_with(Options {
        runner: None,
        ..Options::default()
    })
    .await;
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - name: a\n    image: {}\n    script:\n      - echo attempt $GITWEAVE_JOB_ATTEMPT\n      - if [ \"$GITWEAVE_JOB_ATTEMPT\" = 1 ]; then sleep 60; fi\n",
            image()
        ),
    )
    .await;
    let runner = runner_process_with(
        app.pipeline_url(),
        &app.runner_name,
        &app.prefix,
        &[("RUNNER_SHUTDOWN_GRACE", "2s")],
    );
    let run = app.trigger("r", &json!({})).await;
    let job = run.jobs[0].id;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(&app.raw_log(job).await).contains("\nattempt 1\n") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never printed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = std::time::Instant::now();
    runner.terminate().await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "the runner stopped {took:?} after SIGTERM; its grace is 2 s"
    );
    let back = app.run(run.id).await;
    assert_eq!(
        (back.jobs[0].status, back.jobs[0].attempt),
        (JobStatus::Queued, 1),
        "queued again for a new attempt: {back:#?}"
    );
    let events = app.events(run.id).await;
    let handed = events
        .iter()
        .find(|e| e.event_type == "job.handed_back")
        .expect("a job.handed_back event");
    assert_eq!(handed.actor, format!("runner:{}", app.runner_name));
    assert_eq!((handed.job_id, handed.attempt), (Some(job), Some(1)));
    assert!(
        !events.iter().any(|e| matches!(
            e.event_type.as_str(),
            "job.failed" | "job.retried" | "runner.lost"
        )),
        "handed back, not failed: {events:#?}"
    );
    assert!(
        containers_of_job(job).is_empty(),
        "the stopped runner left the job's container"
    );
    assert_eq!(app.all_containers_of_runner(), Vec::<String>::new());
    app.assert_replays(run.id).await;

    let second = runner_process(app.pipeline_url(), &app.runner_name, &app.prefix);
    let done = app.wait_run(run.id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    assert_eq!(done.jobs[0].attempt, 2);
    let log = String::from_utf8(app.raw_log(job).await).expect("utf8");
    assert!(log.contains("attempt 2\n"), "attempt 2's own log: {log}");
    app.assert_replays(run.id).await;
    second.terminate().await;
    app.shutdown().await;
}

fn exited_containers_of(job: uuid::Uuid) -> Vec<String> {
    containers_matching(&[format!("label=gitweave.job={job}"), "status=exited".into()])
}

/// SPEC §15: a runner that cannot reach pipeline-svc keeps running its job — here one that
/// writes 20 MB, more than the runner holds in memory, while pipeline-svc is down — keeps the
/// output on disk, and once pipeline-svc answers again the stored log is byte-exact.
#[tokio::test]
async fn a_job_writes_on_through_an_outage_of_pipeline_svc_and_its_log_is_byte_exact() {
    let db = fresh_database().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let api = format!("{url}/api/v1");
    // A lease much shorter than the outage: pipeline-svc must not take the job for lost
    // because nobody could renew it while pipeline-svc itself was down.
    let lease = [
        ("PIPELINE_LEASE_MS", "3000"),
        ("PIPELINE_REAPER_INTERVAL_MS", "250"),
    ];
    let mut pipeline = pipeline_process_with(&db, port, &lease);
    wait_ready(&url).await;
    let name = format!(
        "test-runner-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let workdir = std::env::temp_dir().join(format!("gitweave-outage-{name}"));
    let workdir_s = workdir.display().to_string();
    let runner = runner_process_with(
        &url,
        &name,
        &format!("{name}-"),
        &[("RUNNER_WORKDIR", &workdir_s)],
    );
    let http = reqwest::Client::new();
    assert_eq!(
        http.put(format!("{api}/repos/r"))
            .json(&json!({}))
            .send()
            .await
            .expect("repo")
            .status(),
        201
    );
    let lines = [
        "for i in $(seq 1 50); do echo line $i; sleep 0.1; done",
        "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 20000000",
        "echo done",
    ];
    let yaml = format!(
        "jobs:\n  - name: a\n    image: {}\n    script:\n{}",
        image(),
        lines
            .iter()
            .map(|l| format!("      - {}\n", serde_json::to_string(l).expect("json")))
            .collect::<String>()
    );
    let run = attach_and_trigger(&http, &api, yaml).await;
    let job = run.jobs[0].id;
    wait_for_log_past(&http, &api, job, 80).await;
    pipeline.0.kill().expect("SIGKILL pipeline-svc");
    let _ = pipeline.0.wait();
    let down = std::time::Instant::now();
    // The job goes on without pipeline-svc, past what fits in memory, to its end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while exited_containers_of(job).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not run to its end while pipeline-svc was down (its output blocked it)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An outage of about 20 s in all.
    if let Some(rest) = Duration::from_secs(20).checked_sub(down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let _pipeline = pipeline_process_with(&db, port, &lease);
    wait_ready(&url).await;
    let done = wait_run_end(&http, &api, run.id).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    assert_eq!(
        done.jobs[0].attempt, 1,
        "the same attempt, not taken back as lost"
    );
    let raw = http
        .get(format!("{api}/jobs/{job}/logs/raw"))
        .send()
        .await
        .expect("raw")
        .bytes()
        .await
        .expect("bytes");
    let mut want = Vec::new();
    want.extend_from_slice(format!("$ {}\n", lines[0]).as_bytes());
    for i in 1..=50 {
        want.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    want.extend_from_slice(format!("$ {}\n", lines[1]).as_bytes());
    want.extend(
        "0123456789abcdefghijklmnopqrstuvwxyz\n"
            .bytes()
            .cycle()
            .take(20_000_000),
    );
    want.extend_from_slice(format!("$ {}\ndone\n", lines[2]).as_bytes());
    let first_diff = raw.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        raw.len() == want.len() && first_diff.is_none(),
        "stored {} bytes, want {}; first difference at {first_diff:?}",
        raw.len(),
        want.len()
    );
    // The spool went once the log was stored.
    let spool = workdir.join("spool").join(&name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(&spool)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spool files left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runner.terminate().await;
    let _ = std::fs::remove_dir_all(&workdir);
}

fn containers_of_runner(name: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=gitweave.runner={name}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `docker compose down` sends SIGTERM to every service at once: pipeline-svc ends the
/// runner's claim long-polls instead of waiting for them, the runner does not wait for claims
/// it cannot end, and both exit within a few seconds, leaving no container of the runner.
#[tokio::test]
async fn pipeline_svc_and_an_idle_runner_stopped_together_both_exit_within_5_s() {
    let db = fresh_database().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut pipeline = pipeline_process(&db, port);
    wait_ready(&url).await;
    let name = format!(
        "test-runner-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let mut runner = runner_process(&url, &name, &format!("{name}-"));
    // Registered and warmed up (its network sandboxes run), then long-polling for a while.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while containers_of_runner(&name).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runner never started its sandboxes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args([
                "-TERM",
                &pipeline.0.id().to_string(),
                &runner.0.id().to_string()
            ])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    let (mut p_done, mut r_done) = (None, None);
    while (p_done.is_none() || r_done.is_none()) && tokio::time::Instant::now() < deadline {
        if p_done.is_none() && matches!(pipeline.0.try_wait(), Ok(Some(_))) {
            p_done = Some(sent.elapsed());
        }
        if r_done.is_none() && matches!(runner.0.try_wait(), Ok(Some(_))) {
            r_done = Some(sent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let within = |d: Option<Duration>| d.is_some_and(|d| d < Duration::from_secs(5));
    assert!(
        within(p_done) && within(r_done),
        "pipeline-svc exited after {p_done:?}, the runner after {r_done:?} (None: still running 12 s later)"
    );
    assert_eq!(
        containers_of_runner(&name),
        Vec::<String>::new(),
        "the runner left containers behind"
    );
}
