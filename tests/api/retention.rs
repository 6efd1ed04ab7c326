//! `PIPELINE_RETENTION_DAYS`: ended runs older than the period go, with their jobs, logs,
//! events and deliveries; young and active runs stay; a deleted run is a 404 even where its
//! answer was cached.

use crate::helpers::{Options, fresh_database, image, no_runner, spawn_on};
use gitweave_model::status::RunStatus;
use serde_json::json;
use sqlx::Connection;
use std::time::Duration;
use uuid::Uuid;

async fn count(conn: &mut sqlx::PgConnection, sql: &str, run: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(run)
        .fetch_one(conn)
        .await
        .expect("count")
}

/// Rows of everything that belongs to `run`: the run, its jobs, their logs, its events, its
/// deliveries.
async fn rows_of(conn: &mut sqlx::PgConnection, run: Uuid) -> [i64; 5] {
    [
        count(
            conn,
            "SELECT count(*) FROM pipeline_runs WHERE id = $1",
            run,
        )
        .await,
        count(conn, "SELECT count(*) FROM jobs WHERE run_id = $1", run).await,
        count(
            conn,
            "SELECT count(*) FROM logs l JOIN jobs j ON j.id = l.job_id WHERE j.run_id = $1",
            run,
        )
        .await,
        count(conn, "SELECT count(*) FROM events WHERE run_id = $1", run).await,
        count(
            conn,
            "SELECT count(*) FROM webhook_deliveries WHERE run_id = $1",
            run,
        )
        .await,
    ]
}

#[tokio::test]
async fn retention_deletes_old_ended_runs_with_everything_of_theirs_and_keeps_the_rest() {
    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            // 30 days, a pass every second (the first one a second after start).
            retention: Some((30, 1)),
            ..no_runner()
        },
    )
    .await;
    let mut conn = sqlx::PgConnection::connect(&db).await.expect("connect");
    let yaml = format!(
        "jobs:\n  - {{name: a, image: {img}, script: [x]}}\n  - {{name: b, image: {img}, script: [x]}}\n",
        img = image()
    );
    app.repo_with("r", "t", &yaml).await;
    let manual = format!(
        "jobs:\n  - {{name: gate, image: {}, script: [x], when: manual}}\n",
        image()
    );
    app.template_ok("m", &manual).await;
    app.attach("r", "m").await;

    // Two ended runs to age, one ended run that stays young, one queued and one blocked run.
    let mut ended = Vec::new();
    for _ in 0..3 {
        let run = app.trigger("r", &json!({"templates": ["t"]})).await;
        let r = app
            .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
            .await;
        assert_eq!(r.status(), 202);
        let run = app.wait_run(run.id, Duration::from_secs(10)).await;
        assert_eq!(run.status, RunStatus::Canceled);
        ended.push(run);
    }
    let queued = app.trigger("r", &json!({"templates": ["t"]})).await;
    let blocked = app.trigger("r", &json!({"templates": ["m"]})).await;
    assert_eq!(blocked.status, RunStatus::Blocked);
    let (old, young) = (&ended[..2], &ended[2]);

    // A log chunk and a webhook delivery for each old run, so their removal is seen; and
    // each old run's answer and a log page read once, so they are in the settled cache.
    for run in old {
        let job = run.jobs[0].id;
        sqlx::query(
            "INSERT INTO logs (job_id, attempt, \"offset\", chunk) VALUES ($1, 1, 0, 'hi')",
        )
        .bind(job)
        .execute(&mut conn)
        .await
        .expect("log chunk");
        sqlx::query(
            "INSERT INTO webhook_deliveries (provider, delivery_id, repo_id, run_id)
             SELECT 'github', $1::text, repo_id, id FROM pipeline_runs WHERE id = $1",
        )
        .bind(run.id)
        .execute(&mut conn)
        .await
        .expect("delivery");
        assert_eq!(
            app.get(&format!("/pipelines/runs/{}", run.id))
                .await
                .status(),
            200
        );
        assert_eq!(app.get(&format!("/jobs/{job}/logs")).await.status(), 200);
        let rows = rows_of(&mut conn, run.id).await;
        assert!(rows.iter().all(|n| *n > 0), "{rows:?}");
    }
    // Active runs are aged too: only their status keeps them.
    for run in old.iter().chain([&queued, &blocked]) {
        sqlx::query("UPDATE pipeline_runs SET ended_at = now() - interval '40 days' WHERE id = $1")
            .bind(run.id)
            .execute(&mut conn)
            .await
            .expect("age the run");
    }
    sqlx::query("UPDATE pipeline_runs SET ended_at = now() - interval '20 days' WHERE id = $1")
        .bind(young.id)
        .execute(&mut conn)
        .await
        .expect("age the young run a little");

    // The passes run every second: wait for the old runs to go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut left = 0;
        for run in old {
            left += count(
                &mut conn,
                "SELECT count(*) FROM pipeline_runs WHERE id = $1",
                run.id,
            )
            .await;
        }
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not delete the old runs within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for run in old {
        assert_eq!(rows_of(&mut conn, run.id).await, [0; 5], "run {}", run.id);
        // Cached before the deletion, but gone now.
        assert_eq!(
            app.get(&format!("/pipelines/runs/{}", run.id))
                .await
                .status(),
            404
        );
        assert_eq!(
            app.get(&format!("/jobs/{}/logs", run.jobs[0].id))
                .await
                .status(),
            404
        );
        assert_eq!(
            app.get(&format!("/jobs/{}", run.jobs[0].id)).await.status(),
            404
        );
    }
    for run in [young, &queued, &blocked] {
        assert_eq!(
            app.get(&format!("/pipelines/runs/{}", run.id))
                .await
                .status(),
            200,
            "run {} must stay",
            run.id
        );
        let rows = rows_of(&mut conn, run.id).await;
        assert!(rows[0] == 1 && rows[1] > 0 && rows[3] > 0, "{rows:?}");
    }
    let page = app.get_json("/repos/r/pipelines/runs?limit=20").await;
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(3), "{page}");

    let metrics = app
        .http
        .get(format!("{}/metrics", app.pipeline_url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "gitweave_retention_deleted_runs_total 2"),
        "{metrics}"
    );
    app.shutdown().await;
}
