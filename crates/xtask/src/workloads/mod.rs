//! The workloads (one module each) and what they share: the stack, the API clients, timing
//! and the baseline commands.

pub mod w1;
pub mod w10;
pub mod w11;
pub mod w2;
pub mod w3;
pub mod w4;
pub mod w5;
pub mod w6;
pub mod w7;
pub mod w8;
pub mod w9;

use crate::api::Api;
use crate::stack::Stack;
use anyhow::{Context, bail};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Everything a workload needs.
pub struct Ctx {
    /// Short iteration counts (CI smoke run).
    pub smoke: bool,
    /// The job image, the same for GitWeave and every baseline.
    pub image: String,
    /// The public API through the gateway.
    pub api: Api,
    /// The stack (W5 swaps its runners).
    pub stack: Stack,
    /// Where workloads may write (act's repos).
    pub work: PathBuf,
    /// `act`, if installed.
    pub act: Option<String>,
    /// A finished run and its job with the W2 log (22.9 MB), for W4.
    pub big_log: Option<(String, String)>,
}

impl Ctx {
    /// `full` normally, `smoke` with `--smoke`.
    pub fn iterations(&self, full: usize, smoke: usize) -> usize {
        if self.smoke { smoke } else { full }
    }
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Times one call, in milliseconds.
pub async fn timed<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<f64> {
    let t = Instant::now();
    f.await?;
    Ok(ms_since(t))
}

/// Runs a command to its end with its output thrown away; fails on a non-zero exit.
pub async fn run_quiet(program: &str, args: &[&str], dir: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .with_context(|| format!("{program} {args:?} ran past 10 minutes"))?
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        bail!("{program} {args:?} failed ({}): {tail}", out.status);
    }
    Ok(())
}

/// `docker run --rm --network none IMAGE ARGS…`, output discarded.
pub async fn docker_run(image: &str, network_none: bool, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["run", "--rm"];
    if network_none {
        all.extend(["--network", "none"]);
    }
    all.push(image);
    all.extend(args);
    run_quiet("docker", &all, None).await
}

/// A git repository holding one GitHub workflow, for act.
pub async fn act_repo(dir: &Path, workflow: &str) -> anyhow::Result<()> {
    let wf = dir.join(".github/workflows");
    std::fs::create_dir_all(&wf)?;
    std::fs::write(wf.join("bench.yml"), workflow)?;
    run_quiet("git", &["init", "-q"], Some(dir)).await?;
    run_quiet("git", &["add", "."], Some(dir)).await?;
    run_quiet(
        "git",
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
        Some(dir),
    )
    .await
}

/// `act push -P ubuntu-latest=IMAGE --pull=false` in `dir`, output discarded.
pub async fn act_push(act: &str, image: &str, dir: &Path) -> anyhow::Result<()> {
    let platform = format!("ubuntu-latest={image}");
    run_quiet(
        act,
        &[
            "push",
            "-P",
            &platform,
            "--pull=false",
            "-W",
            ".github/workflows/bench.yml",
        ],
        Some(dir),
    )
    .await
}

/// Samples of each compared command, filled by alternating them (A B C A B C …).
pub struct Alternation {
    /// Command names.
    pub names: Vec<String>,
    /// Milliseconds per command.
    pub samples: Vec<Vec<f64>>,
    /// Failures, by command.
    pub errors: Vec<String>,
}

impl Alternation {
    /// For these commands.
    pub fn new(names: &[&str]) -> Self {
        Self {
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            samples: vec![Vec::new(); names.len()],
            errors: Vec::new(),
        }
    }

    /// Records one timing (or its failure) of command `i`.
    pub fn record(&mut self, i: usize, r: anyhow::Result<f64>) {
        match r {
            Ok(ms) => self.samples[i].push(ms),
            Err(e) => {
                eprintln!("bench: {} failed: {e:#}", self.names[i]);
                self.errors.push(format!("{}: {e:#}", self.names[i]));
            }
        }
    }

    /// Rows for [`crate::report::timing_table`].
    pub fn rows(&self) -> Vec<(String, Option<crate::stats::Summary>)> {
        self.names
            .iter()
            .zip(&self.samples)
            .map(|(n, s)| (n.clone(), crate::stats::summarize(s)))
            .collect()
    }

    /// Median of command `i`.
    pub fn median(&self, i: usize) -> Option<f64> {
        crate::stats::summarize(&self.samples[i]).map(|s| s.median)
    }

    /// Median of `i` divided by the median of `j`.
    pub fn ratio(&self, i: usize, j: usize) -> Option<f64> {
        Some(self.median(i)? / self.median(j).filter(|m| *m > 0.0)?)
    }

    /// The failures as a Markdown list (empty when none).
    pub fn errors_md(&self) -> String {
        if self.errors.is_empty() {
            return String::new();
        }
        let mut s = String::from("\nFailures:\n\n");
        for e in &self.errors {
            s.push_str(&format!("- {e}\n"));
        }
        s
    }
}

/// A template of sequential jobs, one per script line.
pub fn template(image: &str, jobs: &[(&str, &str)]) -> String {
    let mut y = String::from("jobs:\n");
    for (name, line) in jobs {
        y.push_str(&format!(
            "  - name: {name}\n    image: {image}\n    script:\n      - {line}\n"
        ));
    }
    y
}
