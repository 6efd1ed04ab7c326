//! Reads that agree with what is stored: a run and its jobs from one moment, and a log offset
//! past the real end of a log that can no longer grow.

use crate::helpers::{envelope, fresh_database, image, no_runner, spawn_app, spawn_on};
use gitweave_model::status::RunStatus;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use std::time::Duration;

#[tokio::test]
async fn an_offset_past_the_end_of_an_ended_jobs_log_is_416_with_the_real_end() {
    let app = spawn_app().await;
    app.repo_with(
        "short",
        "short",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [\"echo hi\"] }}\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("short", &json!({})).await;
    let job = run.jobs[0].id;
    assert_eq!(
        app.wait_run(run.id, Duration::from_secs(120)).await.status,
        RunStatus::Success
    );
    let end = "$ echo hi\nhi\n".len() as i64;
    // At the end: an empty, complete page.
    let at_end = app.logs_page(job, end, 100).await;
    assert!(at_end.chunks.is_empty() && at_end.complete && at_end.next_offset == end);
    for (query, asked) in [
        (format!("offset={}", end + 1), end + 1),
        ("offset=5000&limit=10&attempt=1".to_owned(), 5000),
    ] {
        let r = app.get(&format!("/jobs/{job}/logs?{query}")).await;
        let (status, code, message) = envelope(r).await;
        assert_eq!((status, code.as_str()), (416, "offset_past_end"), "{query}");
        assert!(
            message.contains(&format!("ends at byte {end}"))
                && message.contains(&asked.to_string()),
            "names the real end and the offset asked: {message}"
        );
    }
    app.shutdown().await;
}

/// The run's `pipeline-svc` request waiting for the lock on `jobs` (`runs::get_with_jobs`).
async fn wait_until_blocked_on_jobs(watcher: &mut PgConnection) {
    for _ in 0..600 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM jobs j%JOIN pipeline_runs r ON r.id = j.run_id%'",
        )
        .fetch_one(&mut *watcher)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("GET /pipelines/runs/{{id}} never waited for the jobs table");
}

/// A change committed while the run is being read does not show in one half only (the run
/// and its jobs). Deterministic: the test holds an exclusive lock on `jobs`, so the request
/// waits for it (seen in `pg_stat_activity`); the test then changes the run and its job
/// together and commits, and only then can the request read.
#[tokio::test]
async fn a_run_and_its_jobs_are_read_from_one_snapshot() {
    let db = fresh_database().await;
    let app = spawn_on(db.clone(), no_runner()).await;
    app.repo_with(
        "snap",
        "snap",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [true] }}\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("snap", &json!({})).await;
    assert_eq!(run.status, RunStatus::Queued);

    let mut writer = PgConnection::connect(&db).await.expect("connect");
    let mut watcher = PgConnection::connect(&db).await.expect("connect");
    writer.execute("BEGIN").await.expect("begin");
    writer
        .execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock jobs");
    let url = format!("{}/api/v1/pipelines/runs/{}", app.pipeline, run.id);
    let http = app.http.clone();
    let read = tokio::spawn(async move {
        let r = http.get(url).send().await.expect("GET run");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("json")
    });
    wait_until_blocked_on_jobs(&mut watcher).await;
    // One committed change of both: the run and its job end together.
    for sql in [
        "UPDATE pipeline_runs SET status = 'canceled', ended_at = now() WHERE id = $1",
        "UPDATE jobs SET status = 'canceled', ended_at = now() WHERE run_id = $1",
    ] {
        sqlx::query(sql)
            .bind(run.id)
            .execute(&mut writer)
            .await
            .expect("change");
    }
    writer.execute("COMMIT").await.expect("commit");
    let shown = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the read goes on once the lock is gone")
        .expect("task");
    let pair = (
        shown["status"].as_str().unwrap_or_default().to_owned(),
        shown["jobs"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    assert!(
        pair == ("queued".into(), "queued".into())
            || pair == ("canceled".into(), "canceled".into()),
        "the run and its job come from different moments: {pair:?}"
    );
    app.shutdown().await;
}
