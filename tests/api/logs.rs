//! Logs: exact bytes, byte-offset pagination, limits, follow.

use crate::helpers::{Options, TestApp, image, spawn_app, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

async fn one_job(app: &TestApp, repo: &str, script: &[&str]) -> uuid::Uuid {
    let lines: Vec<String> = script
        .iter()
        .map(|l| serde_json::to_string(l).expect("json"))
        .collect();
    app.repo_with(
        repo,
        repo,
        &format!(
            "jobs:\n  - name: job\n    image: {}\n    script: [{}]\n",
            image(),
            lines.join(", ")
        ),
    )
    .await;
    app.trigger(repo, &json!({})).await.jobs[0].id
}

fn echoed(line: &str) -> String {
    format!("$ {line}\n")
}

/// A job that runs for about two seconds, with output before and after.
const SLOW: [&str; 3] = ["echo start", "sleep 2", "echo end"];

/// The whole log of [`SLOW`].
fn slow_log() -> String {
    format!(
        "{}start\n{}{}end\n",
        echoed("echo start"),
        echoed("sleep 2"),
        echoed("echo end")
    )
}

#[tokio::test]
async fn a_200000_line_log_is_reassembled_exactly_through_pagination() {
    let app = spawn_app().await;
    let job = one_job(&app, "big", &["seq 1 200000"]).await;
    let run_id = app.get_json(&format!("/jobs/{job}")).await["run_id"]
        .as_str()
        .expect("run_id")
        .parse()
        .expect("uuid");
    let run = app.wait_run(run_id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success);
    let mut expected = echoed("seq 1 200000");
    for i in 1..=200_000 {
        expected.push_str(&i.to_string());
        expected.push('\n');
    }
    let (text, pages) = app.paged_log(job, 65_536).await;
    assert_eq!(text.len(), expected.len());
    assert!(text == expected, "paged log differs from the job's output");
    assert!(
        pages >= expected.len() / 65_536,
        "limit honoured: {pages} pages"
    );
    let raw = app.raw_log(job).await;
    assert!(raw == expected.as_bytes(), "raw log differs");

    // A page never exceeds its limit, may cut a stored chunk, and says where to go on.
    let page = app.logs_page(job, 5, 10).await;
    assert_eq!(page.chunks.len(), 1);
    assert_eq!(page.chunks[0].offset, 5);
    assert_eq!(page.chunks[0].data, &expected[5..15]);
    assert_eq!(page.next_offset, 15);
    assert!(!page.complete);
    let end = expected.len() as i64;
    let last = app.logs_page(job, end - 3, 100).await;
    assert_eq!(last.chunks[0].data, "00\n");
    assert!(last.complete && last.next_offset == end);
    // Past the end of a log that can no longer grow: 416, naming the real end.
    let past = app
        .get(&format!("/jobs/{job}/logs?offset={}&limit=100", end + 10))
        .await;
    let (status, code, message) = crate::helpers::envelope(past).await;
    assert_eq!((status, code.as_str()), (416, "offset_past_end"));
    assert!(
        message.contains(&format!("ends at byte {end}")),
        "{message}"
    );
    let clamped = app.logs_page(job, 0, 50_000_000).await;
    assert_eq!(clamped.next_offset, 1024 * 1024, "limit is capped at 1 MiB");
    for bad in ["limit=0", "offset=-1", "limit=abc"] {
        let r = app.get(&format!("/jobs/{job}/logs?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn raw_logs_keep_invalid_utf8_nul_bytes_and_a_last_line_without_newline() {
    let app = spawn_app().await;
    let line = r"printf 'caf\303\251 \377\376 nul:\000: end\nlast line without newline'";
    let job = one_job(&app, "bin", &[line]).await;
    let run_id = app.get_json(&format!("/jobs/{job}")).await["run_id"]
        .as_str()
        .expect("run_id")
        .parse()
        .expect("uuid");
    let run = app.wait_run(run_id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let mut expected = echoed(line).into_bytes();
    expected.extend_from_slice(b"caf\xc3\xa9 \xff\xfe nul:\x00: end\nlast line without newline");
    let raw = app.raw_log(job).await;
    assert_eq!(raw, expected);
    let r = app.get(&format!("/jobs/{job}/logs/raw")).await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );

    let page = app.logs_page(job, 0, 65_536).await;
    let data = &page.chunks[0].data;
    assert!(
        data.contains("café \u{FFFD}\u{FFFD} nul:\u{0}: end\nlast line without newline"),
        "{data:?}"
    );
    assert_eq!(
        page.next_offset,
        expected.len() as i64,
        "offsets count bytes, not characters"
    );
    assert!(page.complete);
    app.shutdown().await;
}

#[tokio::test]
async fn follow_streams_the_log_until_the_job_ends() {
    let app = spawn_app().await;
    let job = one_job(&app, "slow", &SLOW).await;
    let r = app.get(&format!("/jobs/{job}/logs/raw?follow=true")).await;
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(LIMIT, r.bytes())
        .await
        .expect("the stream ends with the job")
        .expect("body");
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert_eq!(text, slow_log());
    let j = app.get_json(&format!("/jobs/{job}")).await;
    assert_eq!(j["status"], "success");
    app.shutdown().await;
}

/// Answers asked while a job runs are never kept: the same page and the same run, asked again
/// after the end, show the rest of the log and the end (ended runs and complete pages are
/// served from memory afterwards, see pipeline-svc's `settled`).
#[tokio::test]
async fn a_page_and_a_run_asked_while_running_are_fresh_after_the_end() {
    let app = spawn_app().await;
    let job = one_job(&app, "grow", &SLOW).await;
    let page = |attempt: &'static str| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/jobs/{job}/logs?offset=0&limit=1000{attempt}"))
                .await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    // Wait until the job runs and its first line is stored ("sleep 2" keeps it running).
    let (run_id, early) = loop {
        let j = app.get_json(&format!("/jobs/{job}")).await;
        if j["status"] == "running" {
            let p = page("").await;
            if p["chunks"].as_array().is_some_and(|c| !c.is_empty()) {
                break (j["run_id"].as_str().expect("run_id").to_owned(), p);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let early_attempt = page("&attempt=1").await;
    assert_eq!(early["complete"], false, "{early}");
    assert_eq!(early_attempt["complete"], false, "{early_attempt}");
    let running = app.get_json(&format!("/pipelines/runs/{run_id}")).await;
    assert_eq!(running["status"], "running");

    let run = app.wait_run(run_id.parse().expect("uuid"), LIMIT).await;
    assert_eq!(run.status, RunStatus::Success);
    let whole = slow_log();
    for _ in 0..2 {
        for p in [page("").await, page("&attempt=1").await] {
            assert_eq!(p["complete"], true, "{p}");
            assert_eq!(p["chunks"][0]["data"], whole.as_str(), "{p}");
            assert_eq!(p["next_offset"], whole.len());
        }
        let ended = app.get_json(&format!("/pipelines/runs/{run_id}")).await;
        assert_eq!(ended["status"], "success", "{ended}");
    }
    app.shutdown().await;
}

/// SPEC §15: past `RUNNER_LOG_LIMIT` bytes the job goes on, its output is dropped, and the log
/// ends with one line saying where it was cut and how much was dropped; the job view says so.
#[tokio::test]
async fn a_log_past_the_runner_log_limit_is_cut_with_one_line_and_the_job_succeeds() {
    let app = spawn_with(Options {
        log_limit: Some(1000),
        ..Options::default()
    })
    .await;
    let line = "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 5000";
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: big, image: {img}, script: [\"{line}\", echo after] }}\n  - {{ name: small, image: {img}, script: [echo hi] }}\n",
            img = image()
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let done = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    let big = &done.jobs[0];
    let small = &done.jobs[1];
    let mut full = format!("$ {line}\n").into_bytes();
    full.extend(
        "0123456789abcdefghijklmnopqrstuvwxyz\n"
            .bytes()
            .cycle()
            .take(5000),
    );
    full.extend_from_slice(b"$ echo after\nafter\n");
    let mut want = full[..1000].to_vec();
    if want.last() != Some(&b'\n') {
        want.push(b'\n');
    }
    want.extend_from_slice(
        format!(
            "[gitweave] log truncated at 1000 bytes; {} bytes dropped\n",
            full.len() - 1000
        )
        .as_bytes(),
    );
    let log = app.raw_log(big.id).await;
    assert_eq!(
        String::from_utf8_lossy(&log),
        String::from_utf8_lossy(&want),
        "the first 1000 bytes, then the truncation line"
    );
    assert!(big.log_truncated, "the run's job view says the log was cut");
    assert!(!small.log_truncated);
    let view = app.get_json(&format!("/jobs/{}", big.id)).await;
    assert_eq!(view["log_truncated"], json!(true), "{view}");
    let view = app.get_json(&format!("/jobs/{}", small.id)).await;
    assert_eq!(view["log_truncated"], json!(false), "{view}");
    assert_eq!(app.raw_log(small.id).await, b"$ echo hi\nhi\n");
    app.shutdown().await;
}
