//! W4: the read path under load with `wrk`: `GET /pipelines/runs/{id}` and a 64 KiB log page,
//! through the gateway and against pipeline-svc directly, alternating; rps, p50, p99, and the
//! latency the gateway adds.

use super::{Ctx, template};
use crate::report::{Section, Target, fmt_ms};
use crate::stats::summarize;
use anyhow::{Context, bail};
use std::time::Duration;

const REPO: &str = "bench-w4";

/// What wrk reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

fn parse_latency(s: &str) -> Option<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let v: f64 = num.trim().parse().ok()?;
    match unit {
        "us" => Some(v / 1000.0),
        "ms" => Some(v),
        "s" => Some(v * 1000.0),
        "m" => Some(v * 60_000.0),
        _ => None,
    }
}

/// Parses `wrk --latency` output; fails when wrk saw errors or non-2xx answers.
pub fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    if let Some(line) = out
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses") || l.contains("Socket errors"))
    {
        bail!("wrk reported errors: {}", line.trim());
    }
    let mut p50 = None;
    let mut p99 = None;
    let mut rps = None;
    for line in out.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("50%"), Some(v)) => p50 = parse_latency(v),
            (Some("99%"), Some(v)) => p99 = parse_latency(v),
            (Some("Requests/sec:"), Some(v)) => rps = v.parse().ok(),
            _ => {}
        }
    }
    Ok(WrkResult {
        rps: rps.context("no Requests/sec in wrk's output")?,
        p50: p50.context("no 50% latency in wrk's output")?,
        p99: p99.context("no 99% latency in wrk's output")?,
    })
}

async fn wrk(url: &str, connections: u32, duration: Duration) -> anyhow::Result<WrkResult> {
    let threads = connections.clamp(1, 2).to_string();
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t",
            &threads,
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", duration.as_secs()),
            "--latency",
            url,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

struct Case {
    endpoint: &'static str,
    via: &'static str,
    connections: u32,
    url: String,
    results: Vec<WrkResult>,
}

/// Runs W4.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let (run_id, job_id) = match ctx.big_log.clone() {
        Some(x) => x,
        None => {
            ctx.api
                .setup_pipeline(REPO, &template(&ctx.image, &[("seq", "seq 1 3000000")]))
                .await?;
            let t = ctx.api.trigger(REPO).await?;
            ctx.api
                .expect_success(&t.run_id, Duration::from_secs(300))
                .await?;
            let job = t.job_ids.first().cloned().unwrap_or_default();
            (t.run_id, job)
        }
    };
    let gw = format!("{}/api/v1", ctx.stack.gateway.url);
    let direct = format!("{}/api/v1", ctx.stack.pipeline.url);
    let run_path = format!("/pipelines/runs/{run_id}");
    let logs_path = format!("/jobs/{job_id}/logs?offset=0&limit=65536");
    let case = |endpoint, via, connections, base: &str, path: &str| Case {
        endpoint,
        via,
        connections,
        url: format!("{base}{path}"),
        results: Vec::new(),
    };
    let mut cases = vec![
        case("GET run", "gateway", 64, &gw, &run_path),
        case("GET run", "pipeline-svc", 64, &direct, &run_path),
        case("GET 64 KiB log page", "gateway", 64, &gw, &logs_path),
        case(
            "GET 64 KiB log page",
            "pipeline-svc",
            64,
            &direct,
            &logs_path,
        ),
        case("GET run", "gateway", 1, &gw, &run_path),
        case("GET run", "pipeline-svc", 1, &direct, &run_path),
    ];
    let (rounds, long, short) = if ctx.smoke {
        (1, Duration::from_secs(2), Duration::from_secs(1))
    } else {
        (3, Duration::from_secs(10), Duration::from_secs(5))
    };
    let mut errors = Vec::new();
    for round in 0..rounds {
        eprintln!("bench: W4 round {}/{rounds}", round + 1);
        for c in &mut cases {
            let d = if c.connections > 1 { long } else { short };
            match wrk(&c.url, c.connections, d).await {
                Ok(r) => c.results.push(r),
                Err(e) => {
                    eprintln!("bench: wrk {} failed: {e:#}", c.url);
                    errors.push(format!("{} via {}: {e:#}", c.endpoint, c.via));
                }
            }
        }
    }
    let med = |c: &Case, f: fn(&WrkResult) -> f64| {
        summarize(&c.results.iter().map(f).collect::<Vec<_>>())
    };
    let mut body = format!(
        "`wrk -t2 -c64 -d{}s --latency` (and `-t1 -c1 -d{}s` for the added latency), {rounds} \
         round(s), the cases alternating within each round. The run is a finished one-job run; the log \
         page is the first 64 KiB of W2's 22.9 MB log. Medians over rounds, [min–max] in brackets. \
         wrk, the gateway, pipeline-svc and Postgres share the same 2 cores.\n\n\
         | endpoint | via | conns | rps | p50 | p99 |\n|---|---|---:|---:|---:|---:|\n",
        long.as_secs(),
        short.as_secs()
    );
    for c in &cases {
        let cell = |s: Option<crate::stats::Summary>, ms: bool| match s {
            Some(s) if ms => format!(
                "{} ms [{}–{}]",
                fmt_ms(s.median),
                fmt_ms(s.min),
                fmt_ms(s.max)
            ),
            Some(s) => format!("{:.0} [{:.0}–{:.0}]", s.median, s.min, s.max),
            None => "n/a".into(),
        };
        body.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.endpoint,
            c.via,
            c.connections,
            cell(med(c, |r| r.rps), false),
            cell(med(c, |r| r.p50), true),
            cell(med(c, |r| r.p99), true),
        ));
    }
    let m = |i: usize, f: fn(&WrkResult) -> f64| med(&cases[i], f).map(|s| s.median);
    let added_c1 = m(4, |r| r.p50).zip(m(5, |r| r.p50)).map(|(a, b)| a - b);
    let added_c64 = m(0, |r| r.p50).zip(m(1, |r| r.p50)).map(|(a, b)| a - b);
    body.push_str(&format!(
        "\nGateway's added latency at p50 (gateway − direct, GET run): {} with 1 connection, {} with 64.\n",
        added_c1.map_or_else(|| "n/a".into(), |v| format!("{} ms", fmt_ms(v))),
        added_c64.map_or_else(|| "n/a".into(), |v| format!("{} ms", fmt_ms(v))),
    ));
    if !errors.is_empty() {
        body.push_str("\nFailures:\n\n");
        for e in &errors {
            body.push_str(&format!("- {e}\n"));
        }
    }
    let targets = vec![
        Target::at_most(
            "W4",
            "GET run via gateway, 64 conns, p99",
            m(0, |r| r.p99),
            10.0,
            "ms",
        ),
        Target::at_most(
            "W4",
            "64 KiB log page via gateway, 64 conns, p99",
            m(2, |r| r.p99),
            10.0,
            "ms",
        ),
        Target::reference(
            "W4",
            "GET run via gateway, 64 conns, rps",
            m(0, |r| r.rps).map_or_else(|| "n/a".into(), |v| format!("{v:.0}")),
        ),
        Target::reference(
            "W4",
            "64 KiB log page via gateway, 64 conns, rps",
            m(2, |r| r.rps).map_or_else(|| "n/a".into(), |v| format!("{v:.0}")),
        ),
        Target::at_most(
            "W4",
            "gateway's added p50 latency (1 conn)",
            added_c1,
            0.3,
            "ms",
        ),
        Target::reference(
            "W4",
            "gateway's added p50 latency (64 conns)",
            added_c64.map_or_else(|| "n/a".into(), |v| format!("{} ms", fmt_ms(v))),
        ),
    ];
    Ok(Section {
        title: "W4 — the read path under load (wrk)".into(),
        body,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Running 2s test @ http://127.0.0.1:1/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  500.00us   9.00ms   70.00%
    Req/Sec    15.00k     1.00k   17.00k    80.00%
  Latency Distribution
     50%  850.00us
     75%    2.00ms
     90%    3.00ms
     99%    1.20s
  30000 requests in 2.00s, 10.00MB read
Requests/sec:  15000.50
Transfer/sec:      5.00MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse_wrk(OUT).ok();
        assert_eq!(
            r,
            Some(WrkResult {
                rps: 15000.5,
                p50: 0.85,
                p99: 1200.0
            })
        );
    }

    #[test]
    fn refuses_output_with_errors() {
        let bad = format!("{OUT}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_wrk(&bad).is_err());
    }
}
