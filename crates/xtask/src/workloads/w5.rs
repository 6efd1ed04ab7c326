//! W5: scheduling throughput: 500 trivial jobs with the shell engine over 4 runners, as one run
//! of 500 parallel jobs and as 500 one-job runs.

use super::{Ctx, ms_since};
use crate::report::{Section, Target};
use crate::stack::Engine;
use crate::stats::summarize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNNERS: u32 = 4;
/// Clients triggering one-job runs at once (each triggers, waits for the end, triggers again).
const CLIENTS: usize = 8;

/// One template of `n` jobs for the shell runners (`runs_on: {engine: shell}`, SPEC §13)
/// that can all run at once: the last one `needs` the first, which
/// makes the template a DAG, and the others name nothing, so they wait for nothing.
fn parallel_template(image: &str, n: usize) -> String {
    let mut y = String::from("jobs:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - name: j{i:04}\n    image: {image}\n    runs_on: {{engine: shell}}\n    script: [echo {i}]\n"
        ));
        if i + 1 == n && n > 1 {
            y.push_str("    needs: [j0000]\n");
        }
    }
    y
}

/// Runs W5 (swaps the docker runner for four shell runners, and back).
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let n = ctx.iterations(500, 40);
    let rounds = ctx.iterations(3, 1);
    ctx.api
        .setup_pipeline("bench-w5a", &parallel_template(&ctx.image, n))
        .await?;
    ctx.api
        .setup_pipeline(
            "bench-w5b",
            &format!(
                "jobs:\n  - name: one\n    image: {}\n    runs_on: {{engine: shell}}\n    script: [echo one]\n",
                ctx.image
            ),
        )
        .await?;
    ctx.stack.stop_runners().await;
    for i in 0..RUNNERS {
        ctx.stack
            .start_runner(Engine::Shell, &format!("shell-{i}"), 1)
            .await?;
    }
    let api = ctx.api.clone();
    let mut one_run = Vec::new();
    let mut many_runs = Vec::new();
    let mut errors = Vec::new();
    for round in 0..rounds {
        eprintln!("bench: W5 round {}/{rounds}", round + 1);
        let t = Instant::now();
        let r = async {
            let run = api.trigger("bench-w5a").await?;
            api.expect_success(&run.run_id, Duration::from_secs(600))
                .await
        }
        .await;
        match r {
            Ok(()) => one_run.push(n as f64 / (ms_since(t) / 1000.0)),
            Err(e) => errors.push(format!("one run of {n} jobs: {e:#}")),
        }

        let t = Instant::now();
        let left = Arc::new(AtomicUsize::new(n));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let api = api.clone();
            let left = left.clone();
            clients.push(tokio::spawn(async move {
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok()
                {
                    let run = api.trigger("bench-w5b").await?;
                    api.expect_success(&run.run_id, Duration::from_secs(120))
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        let mut ok = true;
        for c in clients {
            match c.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    ok = false;
                    errors.push(format!("{n} one-job runs: {e:#}"));
                }
                Err(e) => {
                    ok = false;
                    errors.push(format!("{n} one-job runs: {e}"));
                }
            }
        }
        if ok {
            many_runs.push(n as f64 / (ms_since(t) / 1000.0));
        }
    }
    ctx.stack.stop_runners().await;
    ctx.stack
        .start_runner(Engine::Docker, "docker-0", 1)
        .await?;

    let cell = |v: &[f64]| match summarize(v) {
        Some(s) => format!("{:.1} | {:.1} | {:.1}", s.median, s.min, s.max),
        None => "n/a | n/a | n/a".into(),
    };
    let mut body = format!(
        "{RUNNERS} runner-svc processes with the shell engine (`RUNNER_CONCURRENCY=1` each); every job is \
         `echo`. (a) one run whose template holds {n} jobs that can all run at once, timed from the \
         trigger to the run's `success`; (b) {n} one-job runs, {CLIENTS} clients each triggering a run \
         and waiting for its end before the next, timed from the first trigger to the last end. \
         {rounds} round(s).\n\n\
         | case | jobs/s median | min | max |\n|---|---:|---:|---:|\n\
         | (a) one run, {n} parallel jobs | {} |\n| (b) {n} one-job runs, {CLIENTS} clients | {} |\n",
        cell(&one_run),
        cell(&many_runs),
    );
    if !errors.is_empty() {
        body.push_str("\nFailures:\n\n");
        for e in &errors {
            body.push_str(&format!("- {e}\n"));
        }
    }
    let med = |v: &[f64]| summarize(v).map(|s| s.median);
    Ok(Section {
        title: "W5 — scheduling throughput".into(),
        body,
        targets: vec![
            Target::at_least(
                "W5",
                &format!("(a) one run of {n} parallel jobs, 4 shell runners"),
                med(&one_run),
                200.0,
                "jobs/s",
            ),
            Target::at_least(
                "W5",
                &format!("(b) {n} one-job runs, 4 shell runners"),
                med(&many_runs),
                200.0,
                "jobs/s",
            ),
        ],
    })
}
