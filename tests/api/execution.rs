//! Jobs really run: Docker containers (and host processes with the shell engine), in order,
//! fail-closed, with the SPEC's environment and one workspace per run.

use crate::helpers::{EngineKind, Options, image, job_named, spawn_app, spawn_with};
use gitweave_api::public::Run;
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn assert_sequential(run: &Run) {
    let started: Vec<_> = run.jobs.iter().filter(|j| j.started_at.is_some()).collect();
    for pair in started.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.ended_at.expect("ended") <= b.started_at.expect("started"),
            "{} must end before {} starts",
            a.name,
            b.name
        );
    }
}

#[tokio::test]
async fn docker_jobs_run_in_order_with_the_spec_environment_and_a_shared_workspace() {
    let app = spawn_app().await;
    let img = image();
    app.create_repo("shop").await;
    app.template_ok(
        "build",
        &format!(
            r#"jobs:
  - name: write
    image: {img}
    script:
      - echo "built by $GITWEAVE_JOB_NAME" > /workspace/artifact.txt
      - echo "CI=$CI GITWEAVE=$GITWEAVE REPO=$GITWEAVE_REPO REF=$GITWEAVE_REF SHA=$GITWEAVE_COMMIT_SHA WS=$GITWEAVE_WORKSPACE"
      - echo "RUN=$GITWEAVE_RUN_ID JOB=$GITWEAVE_JOB_ID"
      - pwd
  - name: read
    image: {img}
    script:
      - cat artifact.txt
"#
        ),
    )
    .await;
    app.template_ok(
        "test",
        &format!(
            r#"inputs:
  greeting: {{ default: hello }}
env:
  SHARED: from-template
jobs:
  - name: check
    image: {img}
    env: {{ MY_VAR: "${{{{ inputs.greeting }}}}-env" }}
    script:
      - cat /workspace/artifact.txt
      - echo "${{{{ inputs.greeting }}}} $MY_VAR $SHARED"
      - echo stderr-line >&2
"#
        ),
    )
    .await;
    app.attach("shop", "build").await;
    app.attach("shop", "test").await;
    let created = app
        .trigger("shop", &json!({"ref": "refs/heads/main", "commit": "abc123def456", "inputs": {"greeting": "hej"}}))
        .await;
    let run = app.wait_run(created.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    assert!(run.started_at.is_some() && run.ended_at.is_some());
    let names: Vec<&str> = run.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build/write", "build/read", "test/check"]);
    for j in &run.jobs {
        assert_eq!(j.status, JobStatus::Success);
        assert_eq!(j.exit_code, Some(0));
        assert_eq!(j.attempt, 1);
        assert_eq!(j.error_class, None);
    }
    assert_sequential(&run);

    let write = job_named(&run, "build/write");
    let log = String::from_utf8(app.raw_log(write.id).await).expect("utf8");
    assert!(
        log.contains(
            "CI=true GITWEAVE=true REPO=shop REF=refs/heads/main SHA=abc123def456 WS=/workspace"
        ),
        "{log}"
    );
    assert!(
        log.contains(&format!("RUN={} JOB={}", run.id, write.id)),
        "{log}"
    );
    assert!(
        log.contains("\n/workspace\n"),
        "working directory is the workspace: {log}"
    );
    assert!(
        log.starts_with("$ echo \"built by"),
        "each line is echoed before it runs: {log}"
    );
    let read =
        String::from_utf8(app.raw_log(job_named(&run, "build/read").id).await).expect("utf8");
    assert!(
        read.contains("built by build/write"),
        "later jobs see the workspace: {read}"
    );
    let check =
        String::from_utf8(app.raw_log(job_named(&run, "test/check").id).await).expect("utf8");
    assert!(
        check.contains("built by build/write"),
        "later stages see the workspace: {check}"
    );
    assert!(
        check.contains("hej hej-env from-template"),
        "inputs and env expanded: {check}"
    );
    assert!(check.contains("stderr-line"), "stderr is captured: {check}");

    // Nothing left behind: no container, and the run's workspace volume is gone.
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    let volumes = || {
        let out = std::process::Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("name={}", app.prefix),
            ])
            .output()
            .expect("docker volume ls");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !volumes().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(volumes(), "", "workspace removed after the run");
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_skips_everything_after_it_and_fails_the_run() {
    let app = spawn_app().await;
    let img = image();
    app.create_repo("r").await;
    app.template_ok(
        "build",
        &format!(
            r#"jobs:
  - {{ name: ok, image: {img}, script: [echo fine] }}
  - {{ name: flaky-lint, image: {img}, script: ["exit 7"], allow_failure: true }}
  - {{ name: boom, image: {img}, script: [echo before, "exit 3", echo never] }}
  - {{ name: after, image: {img}, script: [echo should-not-run] }}
  - {{ name: cleanup, image: {img}, script: [echo cleaning], when: always }}
"#
        ),
    )
    .await;
    app.template_ok(
        "deploy",
        &format!("jobs:\n  - {{ name: ship, image: {img}, script: [echo shipping] }}\n"),
    )
    .await;
    app.attach("r", "build").await;
    app.attach("r", "deploy").await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(job_named(&run, "build/ok").status, JobStatus::Success);
    let lint = job_named(&run, "build/flaky-lint");
    assert_eq!(
        (lint.status, lint.exit_code, lint.error_class),
        (JobStatus::Failed, Some(7), Some(ErrorClass::ExitCode))
    );
    let boom = job_named(&run, "build/boom");
    assert_eq!(
        (boom.status, boom.exit_code, boom.error_class),
        (JobStatus::Failed, Some(3), Some(ErrorClass::ExitCode))
    );
    assert!(boom.started_at.is_some() && boom.ended_at.is_some());
    let log = String::from_utf8(app.raw_log(boom.id).await).expect("utf8");
    assert!(
        log.contains("before") && !log.contains("\nnever"),
        "stops at the first failing line: {log}"
    );
    let after = job_named(&run, "build/after");
    assert_eq!(
        (after.status, after.attempt, after.started_at),
        (JobStatus::Skipped, 0, None)
    );
    assert_eq!(
        job_named(&run, "build/cleanup").status,
        JobStatus::Success,
        "when: always still runs"
    );
    assert_eq!(
        job_named(&run, "deploy/ship").status,
        JobStatus::Skipped,
        "later stages are skipped"
    );
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn a_missing_image_fails_the_job_as_image_not_found_and_the_runner_keeps_serving() {
    let app = spawn_app().await;
    app.create_repo("r").await;
    app.template_ok(
        "ghost",
        "jobs:\n  - { name: a, image: \"gitweave-no-such-image:404\", script: [echo hi] }\n",
    )
    .await;
    app.template_ok(
        "fine",
        &format!(
            "jobs:\n  - {{ name: b, image: {}, script: [echo still-serving] }}\n",
            image()
        ),
    )
    .await;
    app.attach("r", "ghost").await;
    app.attach("r", "fine").await;
    let run = app.trigger("r", &json!({"templates": ["ghost"]})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed);
    let a = &run.jobs[0];
    assert_eq!(
        (a.status, a.error_class, a.exit_code),
        (JobStatus::Failed, Some(ErrorClass::ImageNotFound), None)
    );
    let log = String::from_utf8(app.raw_log(a.id).await).expect("utf8");
    assert!(
        log.contains("gitweave-no-such-image:404") && log.contains("not found"),
        "the log says why: {log}"
    );

    let run = app.trigger("r", &json!({"templates": ["fine"]})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn the_shell_engine_runs_the_same_jobs_as_host_processes() {
    let app = spawn_with(Options {
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    app.create_repo("r").await;
    app.template_ok(
        "build",
        &format!(
            r#"jobs:
  - name: write
    image: {img}
    runs_on: {{ engine: shell }}
    script:
      - echo from-shell > out.txt
      - echo "CI=$CI JOB=$GITWEAVE_JOB_NAME"
      - test "$(pwd)" = "$GITWEAVE_WORKSPACE"
  - name: read
    image: {img}
    runs_on: {{ engine: shell }}
    script: [cat out.txt, "exit 4"]
"#,
            img = image()
        ),
    )
    .await;
    app.attach("r", "build").await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.jobs[0].status, JobStatus::Success, "{run:#?}");
    let log = String::from_utf8(app.raw_log(run.jobs[0].id).await).expect("utf8");
    assert!(log.contains("CI=true JOB=build/write"), "{log}");
    let read = &run.jobs[1];
    assert_eq!(
        (read.exit_code, read.error_class),
        (Some(4), Some(ErrorClass::ExitCode))
    );
    let log = String::from_utf8(app.raw_log(read.id).await).expect("utf8");
    assert!(
        log.contains("from-shell"),
        "workspace shared between host jobs: {log}"
    );
    app.shutdown().await;
}

/// `RUNNER_JOB_NETWORK=run` (the default): the jobs of a run join one network namespace, held
/// by a sandbox container; another run gets another; a run's sandbox goes when the run ends.
#[tokio::test]
async fn the_jobs_of_a_run_share_one_network_namespace_and_other_runs_get_their_own() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "net",
        "t",
        &format!(
            r#"jobs:
  - {{ name: a, image: {img}, script: ["readlink /proc/self/ns/net", "grep -c eth0 /proc/net/dev || true"] }}
  - {{ name: b, image: {img}, script: ["readlink /proc/self/ns/net"] }}
"#
        ),
    )
    .await;
    let netns = |log: Vec<u8>| {
        let log = String::from_utf8(log).expect("utf8");
        log.lines()
            .find(|l| l.starts_with("net:["))
            .unwrap_or_else(|| panic!("no namespace in {log}"))
            .to_owned()
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let run = app.trigger("net", &json!({})).await;
        let run = app.wait_run(run.id, LIMIT).await;
        assert_eq!(run.status, RunStatus::Success, "{run:#?}");
        let a = app.raw_log(job_named(&run, "t/a").id).await;
        assert!(
            String::from_utf8_lossy(&a).contains("\n0\n"),
            "without RUNNER_JOB_EGRESS a run's namespace has only loopback: {}",
            String::from_utf8_lossy(&a)
        );
        let (a, b) = (
            netns(a),
            netns(app.raw_log(job_named(&run, "t/b").id).await),
        );
        assert_eq!(a, b, "two jobs of one run share its namespace");
        seen.push(a);
    }
    assert_ne!(seen[0], seen[1], "two runs never share a namespace");
    // The ended runs' sandboxes go; what stays is the warm pool (one per slot, plus one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.sandboxes().len() > 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.sandboxes().len() <= 2,
        "only the warm sandboxes are left: {:?}",
        app.sandboxes()
    );
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}
