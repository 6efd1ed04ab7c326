//! Cancel grace (docs/ARCHITECTURE.md, "Cancel"): a running job gets SIGTERM, and SIGKILL
//! once the grace period (`gitweave_engine::STOP_GRACE`) has passed, even when it traps
//! SIGTERM and would otherwise run for minutes.

use crate::helpers::{image, spawn_app};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use serde_json::json;
use std::time::Duration;

/// A script that traps SIGTERM, says so, and then keeps running for five minutes, saying
/// every second that it is still alive. Its lines are echoed (`$ …`) before they run, so the
/// markers below are matched as whole lines.
const STUBBORN: &str = r#"
      - 'trap "echo caught TERM; termed=1" TERM'
      - 'echo started'
      - 'i=0; while [ $i -lt 300 ]; do sleep 1; i=$((i+1)); if [ -n "$termed" ]; then echo alive after TERM; fi; done'
      - 'echo reached the end'
"#;

#[tokio::test]
async fn a_job_that_traps_sigterm_is_killed_after_the_grace_period() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "r",
        "grace",
        &format!("jobs:\n  - name: stubborn\n    image: {img}\n    script:{STUBBORN}"),
    )
    .await;
    let run = app.trigger("r", &json!({"ref": "main"})).await;
    let job = run.jobs[0].id;
    let lines = |log: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(log)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // The trap is set once `started` is printed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !lines(&app.raw_log(job).await)
        .iter()
        .any(|l| l == "started")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    // Generous: the grace is 10 s, the script would run for 300 s.
    let done = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, RunStatus::Canceled, "{done:#?}");
    let j = &done.jobs[0];
    assert_eq!(
        (j.status, j.error_class),
        (JobStatus::Canceled, Some(ErrorClass::Canceled)),
        "{done:#?}"
    );

    let log = lines(&app.raw_log(job).await);
    assert!(
        log.iter().any(|l| l == "caught TERM"),
        "SIGTERM came first and reached the script's trap: {log:#?}"
    );
    let alive = log.iter().filter(|l| *l == "alive after TERM").count();
    // It ran on through (most of) the grace, then stopped long before its loop would end.
    assert!(
        (3..60).contains(&alive),
        "{alive} seconds alive after SIGTERM: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l == "reached the end"),
        "the job was killed, not run to its end: {log:#?}"
    );
    assert_eq!(
        app.settled_containers().await,
        Vec::<String>::new(),
        "the killed container was removed"
    );
    app.assert_replays(run.id).await;
    app.shutdown().await;
}
