//! The runner's secrets are not in its process environment, where a shell-engine job (a host
//! process of the same user) could read them from `/proc/$PPID/environ`. Needs the real
//! `runner-svc` binary as a process: an in-process runner shares the test's environment.

use crate::helpers::{Options, Proc, bin, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

/// Prints the environment of every ancestor of the job, then every `*_TOKEN`-, `*_SECRET`-,
/// `*_KEY`- or `DATABASE_URL`-looking line of any process environment it can read.
const SNOOP: &str = r#"pid=$$
while [ "$pid" -gt 1 ]; do
  echo "== environ of $pid"
  tr '\0' '\n' < /proc/$pid/environ 2>/dev/null || echo "(unreadable)"
  pid=$(awk '/^PPid:/ { print $2 }' /proc/$pid/status)
done
echo "== environ of the parent"
tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null || echo "(unreadable)"
echo "== every readable process"
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done | grep -E '_TOKEN=|_SECRET=|_KEY=|DATABASE_URL=' | sort -u
echo "== done"
"#;

#[tokio::test]
async fn a_shell_job_reads_no_runner_secret_from_proc_environ() {
    let registration = format!("reg-{}", Uuid::new_v4().simple());
    let app = spawn_with(Options {
        runner: None,
        registration_token: Some(registration.clone()),
        ..Options::default()
    })
    .await;
    let secrets = [
        ("RUNNER_REGISTRATION_TOKEN", registration.clone()),
        (
            "GITWEAVE_API_TOKEN",
            format!("api-{}", Uuid::new_v4().simple()),
        ),
        (
            "DATABASE_URL",
            format!("postgres://u:db-{}@127.0.0.1:1/x", Uuid::new_v4().simple()),
        ),
        (
            "SOME_SERVICE_SECRET",
            format!("sec-{}", Uuid::new_v4().simple()),
        ),
        ("DEPLOY_KEY", format!("key-{}", Uuid::new_v4().simple())),
    ];
    let name = format!("envtest-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let workdir = std::env::temp_dir().join(format!("gitweave-{name}"));
    let mut cmd = Command::new(bin("runner-svc"));
    cmd.env("PIPELINE_SVC_URL", app.pipeline_url())
        .env("RUNNER_NAME", &name)
        .env("RUNNER_CONTAINER_ENGINE", "shell")
        .env("RUNNER_WORKDIR", &workdir)
        .env("RUNNER_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in &secrets {
        cmd.env(k, v);
    }
    let runner = Proc(cmd.spawn().expect("start runner-svc"));

    app.repo_with(
        "snoop",
        "snoop",
        &serde_json::to_string(&json!({
            "jobs": [{ "name": "snoop", "image": crate::helpers::image(), "runs_on": {"engine": "shell"}, "script": [SNOOP] }]
        }))
        .expect("yaml"),
    )
    .await;
    let run = app.trigger("snoop", &json!({})).await;
    // The run is taken only once the runner registered, with the token handed to it.
    let run = app.wait_run(run.id, Duration::from_secs(60)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = String::from_utf8_lossy(&app.raw_log(run.jobs[0].id).await).into_owned();
    assert!(log.contains("== done"), "{log}");
    // The job did read the runner's environment (so it would have seen a token there), or
    // could not: the runner is not dumpable, which stops a job of another uid than root.
    let pid = runner.0.id();
    assert!(
        log.contains(&format!("RUNNER_NAME={name}"))
            || log.contains(&format!("== environ of {pid}\n(unreadable)")),
        "the parent's environ was looked at: {log}"
    );
    for (k, v) in &secrets {
        assert!(
            !log.contains(v.as_str()),
            "{k}'s value is readable by a job: {log}"
        );
    }
    // And the runner's own /proc entry, read directly (as root here, or refused).
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => {
            let environ = String::from_utf8_lossy(&environ);
            assert!(
                environ.contains(&format!("RUNNER_NAME={name}")),
                "{environ}"
            );
            for (k, v) in &secrets {
                assert!(!environ.contains(v.as_str()), "{k} in the runner's environ");
                assert!(
                    !environ.contains(&format!("{k}=")),
                    "{k} in the runner's environ"
                );
            }
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
    }
    drop(runner);
    let _ = std::fs::remove_dir_all(&workdir);
    app.shutdown().await;
}
