//! W3: trigger → first log byte readable through the API, p50/p99 over 50 runs.

use super::{Ctx, template};
use crate::report::{Section, Target, fmt_ms};
use crate::stats::{percentile, summarize};
use std::time::{Duration, Instant};

const REPO: &str = "bench-w3";

/// Runs W3.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    ctx.api
        .setup_pipeline(REPO, &template(&ctx.image, &[("hello", "echo hello")]))
        .await?;
    let api = ctx.api.clone();
    let n = ctx.iterations(50, 5);
    let mut samples = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for i in 0..=n {
        let t0 = Instant::now();
        let one = async {
            let t = api.trigger(REPO).await?;
            let job = t.job_ids.first().cloned().unwrap_or_default();
            let first = api
                .first_log_byte(&job, t0, Duration::from_secs(60))
                .await?;
            // One run at a time: the next starts on an idle runner.
            api.expect_success(&t.run_id, Duration::from_secs(60))
                .await?;
            anyhow::Ok(first)
        };
        match one.await {
            // Run 0 warms up and is not counted.
            Ok(_) if i == 0 => {}
            Ok(d) => samples.push(d.as_secs_f64() * 1000.0),
            Err(e) => {
                eprintln!("bench: W3 run failed: {e:#}");
                errors.push(format!("{e:#}"));
            }
        }
    }
    let p50 = percentile(&samples, 50.0);
    let p99 = percentile(&samples, 99.0);
    let s = summarize(&samples);
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{} ms", fmt_ms(v)));
    let mut body = format!(
        "A one-job run (`echo hello`, docker engine). Timed from just before `POST …/pipelines/run` \
         until the first byte of `GET /jobs/{{id}}/logs/raw?follow=true` (opened right after the \
         trigger answers) arrives through the gateway. Runs one at a time; one warm-up run is not \
         counted. Percentiles are nearest-rank (with 50 runs, p99 is the slowest run).\n\n\
         | runs | p50 | p99 | min | max |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n",
        samples.len(),
        f(p50),
        f(p99),
        f(s.map(|s| s.min)),
        f(s.map(|s| s.max)),
    );
    if !errors.is_empty() {
        body.push_str("\nFailures:\n\n");
        for e in &errors {
            body.push_str(&format!("- {e}\n"));
        }
    }
    Ok(Section {
        title: "W3 — trigger to first log byte".into(),
        body,
        targets: vec![
            Target::at_most("W3", "trigger → first log byte, p50", p50, 250.0, "ms"),
            Target::at_most("W3", "trigger → first log byte, p99", p99, 500.0, "ms"),
        ],
    })
}
