//! W5: scheduling throughput: 1,000 trivial jobs with the shell engine over 8 runners (half
//! of them in `zone=a`, and half the jobs need it), as one run of 1,000 parallel jobs and as
//! 1,000 one-job runs, with the CPU pipeline-svc and Postgres spend per job.

use super::{Ctx, ms_since};
use crate::machine::{cpu_seconds, tree_cpu_seconds};
use crate::report::{Section, Target};
use crate::stack::Engine;
use crate::stats::summarize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNNERS: u32 = 8;
/// CPU of (pipeline-svc, Postgres), when it could be read: seconds so far in a reading,
/// milliseconds per job in a result.
type Cpu = (Option<f64>, Option<f64>);
/// The runners with `zone=a` (the others have `zone=b`).
const ZONE_A: u32 = 4;
/// Clients triggering one-job runs at once (each triggers, waits for the end, triggers again).
const CLIENTS: usize = 8;

/// One template of `n` jobs (half of one run) for the shell runners (`runs_on: {engine: shell}`, SPEC §13)
/// that can all run at once: the last one `needs` the first, which
/// makes the template a DAG, and the others name nothing, so they wait for nothing.
fn parallel_template(image: &str, n: usize) -> String {
    let mut y = String::from("jobs:\n");
    for i in 0..n {
        // Every other job needs zone=a: only half the runners can take it.
        let zone = if i % 2 == 0 { ", zone: a" } else { "" };
        y.push_str(&format!(
            "  - name: j{i:04}\n    image: {image}\n    runs_on: {{engine: shell{zone}}}\n    script: [echo {i}]\n"
        ));
        if i + 1 == n && n > 1 {
            y.push_str("    needs: [j0000]\n");
        }
    }
    y
}

/// `GITWEAVE_BENCH_W5_HOOK`: a shell command run (and waited for) before and after each case
/// with the phase (`a-start-0`, `a-end-0`, `b-start-0`, …) as `$1`, and `PIPELINE_PID`,
/// `POSTGRES_PID` and `DATABASE_URL` in its environment: for profiling by hand (snapshot
/// `pg_stat_statements`, start and stop `perf`). Its time is outside the measured cases.
struct Hook {
    pipeline_pid: Option<u32>,
    postgres_pid: Option<u32>,
    database_url: String,
}

impl Hook {
    async fn run(&self, phase: &str) {
        let Ok(cmd) = std::env::var("GITWEAVE_BENCH_W5_HOOK") else {
            return;
        };
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} \"$1\""))
            .arg("w5-hook")
            .arg(phase)
            .env(
                "PIPELINE_PID",
                self.pipeline_pid.map(|p| p.to_string()).unwrap_or_default(),
            )
            .env(
                "POSTGRES_PID",
                self.postgres_pid.map(|p| p.to_string()).unwrap_or_default(),
            )
            .env("DATABASE_URL", &self.database_url)
            .status()
            .await;
        if !matches!(&status, Ok(s) if s.success()) {
            eprintln!("bench: W5 hook for {phase}: {status:?}");
        }
    }
}

/// Runs W5 (swaps the docker runner for four shell runners, and back).
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let n = ctx.iterations(1000, 40);
    let rounds = ctx.iterations(3, 1);
    // A template holds at most 500 jobs (SPEC's cap): the run of n is two templates of n/2.
    let half = parallel_template(&ctx.image, n / 2);
    ctx.api.setup_pipeline("bench-w5a", &half).await?;
    ctx.api
        .attach_another("bench-w5a", "bench-w5a-2", &half)
        .await?;
    for (repo, zone) in [("bench-w5b", ""), ("bench-w5b-a", ", zone: a")] {
        ctx.api
            .setup_pipeline(
                repo,
                &format!(
                    "jobs:\n  - name: one\n    image: {}\n    runs_on: {{engine: shell{zone}}}\n    script: [echo one]\n",
                    ctx.image
                ),
            )
            .await?;
    }
    ctx.stack.stop_runners().await;
    for i in 0..RUNNERS {
        let zone = if i < ZONE_A { "zone=a" } else { "zone=b" };
        ctx.stack
            .start_labelled_runner(Engine::Shell, &format!("shell-{i}"), 1, zone)
            .await?;
    }
    let pipeline_pid = ctx.stack.pipeline.pid();
    let postgres_pid = ctx.stack.postgres_pid();
    let hook = Hook {
        pipeline_pid,
        postgres_pid,
        database_url: ctx.stack.database_url.clone(),
    };
    // CPU seconds of pipeline-svc and of Postgres (postmaster and backends) so far.
    let cpu = move || {
        (
            pipeline_pid.and_then(cpu_seconds),
            postgres_pid.and_then(tree_cpu_seconds),
        )
    };
    // Milliseconds of CPU per job between two readings.
    let per_job = |a: Cpu, b: Cpu| -> Cpu {
        let ms =
            |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| (y - x) * 1000.0 / n as f64);
        (ms(a.0, b.0), ms(a.1, b.1))
    };
    let mut cpu_one = Vec::new();
    let mut cpu_many = Vec::new();
    let api = ctx.api.clone();
    let mut one_run = Vec::new();
    let mut many_runs = Vec::new();
    let mut errors = Vec::new();
    for round in 0..rounds {
        eprintln!("bench: W5 round {}/{rounds}", round + 1);
        hook.run(&format!("a-start-{round}")).await;
        let t = Instant::now();
        let before = cpu();
        let r = async {
            let run = api.trigger("bench-w5a").await?;
            api.expect_success(&run.run_id, Duration::from_secs(600))
                .await
        }
        .await;
        match r {
            Ok(()) => {
                one_run.push(n as f64 / (ms_since(t) / 1000.0));
                cpu_one.push(per_job(before, cpu()));
            }
            Err(e) => errors.push(format!("one run of {n} jobs: {e:#}")),
        }
        hook.run(&format!("a-end-{round}")).await;
        hook.run(&format!("b-start-{round}")).await;

        let t = Instant::now();
        let before = cpu();
        let left = Arc::new(AtomicUsize::new(n));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let api = api.clone();
            let left = left.clone();
            clients.push(tokio::spawn(async move {
                while let Ok(l) =
                    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                {
                    // Every other run needs zone=a.
                    let repo = if l % 2 == 0 {
                        "bench-w5b-a"
                    } else {
                        "bench-w5b"
                    };
                    let run = api.trigger(repo).await?;
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
        hook.run(&format!("b-end-{round}")).await;
        if ok {
            many_runs.push(n as f64 / (ms_since(t) / 1000.0));
            cpu_many.push(per_job(before, cpu()));
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
    let cpu_cell = |v: &[Cpu], pick: fn(&Cpu) -> Option<f64>| {
        let xs: Vec<f64> = v.iter().filter_map(pick).collect();
        summarize(&xs).map_or("n/a".into(), |s| format!("{:.2}", s.median))
    };
    let mut body = format!(
        "{RUNNERS} runner-svc processes with the shell engine (`RUNNER_CONCURRENCY=1` each), \
         {ZONE_A} of them with `RUNNER_LABELS=zone=a`, the others `zone=b`; every job is `echo`, and \
         every other job (or run) says `runs_on: {{engine: shell, zone: a}}`, so only those {ZONE_A} \
         runners can take it (the claim matches labels). (a) one run whose template holds {n} jobs \
         that can all run at once, timed from the trigger to the run's `success`; (b) {n} one-job \
         runs, {CLIENTS} clients each triggering a run and waiting for its end before the next, timed \
         from the first trigger to the last end. {rounds} round(s). CPU per job: user + system time \
         of pipeline-svc, and of Postgres (the postmaster, its backends and its finished children), \
         over the case, divided by the jobs (median of the rounds).\n\n\
         | case | jobs/s median | min | max | pipeline-svc CPU ms/job | Postgres CPU ms/job |\n\
         |---|---:|---:|---:|---:|---:|\n\
         | (a) one run, {n} parallel jobs | {} | {} | {} |\n\
         | (b) {n} one-job runs, {CLIENTS} clients | {} | {} | {} |\n",
        cell(&one_run),
        cpu_cell(&cpu_one, |c| c.0),
        cpu_cell(&cpu_one, |c| c.1),
        cell(&many_runs),
        cpu_cell(&cpu_many, |c| c.0),
        cpu_cell(&cpu_many, |c| c.1),
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
                &format!(
                    "(a) one run of {n} parallel jobs, {RUNNERS} shell runners, half need zone=a"
                ),
                med(&one_run),
                400.0,
                "jobs/s",
            ),
            Target::at_least(
                "W5",
                &format!("(b) {n} one-job runs, {RUNNERS} shell runners, half need zone=a"),
                med(&many_runs),
                300.0,
                "jobs/s",
            ),
        ],
    })
}
