//! W6: trigger → first job `running` for a repo whose pipeline comes from `.gitweave.yml` in
//! a 1,000-commit repository, against the same pipeline attached as a template to a repo of
//! the same history without the file; the same one-job run, alternated. Target: the file's
//! median at most 1.2× the template's (SPEC §9: the mirror makes reading a file at a commit
//! cost milliseconds).

use super::{Ctx, ms_since, run_quiet, template};
use crate::report::{Section, Target, fmt_ms};
use crate::stats::{percentile, summarize};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const FILE_REPO: &str = "bench-w6-file";
const TEMPLATE_REPO: &str = "bench-w6-template";
const COMMITS: usize = 1000;

/// A fast-import stream of `COMMITS` commits on `main`, each changing `src/lib.rs`; the last
/// also adds `.gitweave.yml` with `file` when given.
fn history(file: Option<&str>) -> String {
    let mut s = String::new();
    for i in 1..=COMMITS {
        let body = format!("pub const N: usize = {i};\n");
        s.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\ncommitter Bench <bench@example.com> {} +0000\ndata {}\ncommit {i}\n",
            1_700_000_000 + i,
            format!("commit {i}").len()
        ));
        if i > 1 {
            s.push_str(&format!("from :{}\n", i - 1));
        }
        s.push_str(&format!(
            "M 100644 inline src/lib.rs\ndata {}\n{body}\n",
            body.len()
        ));
        if let (Some(f), true) = (file, i == COMMITS) {
            s.push_str(&format!(
                "M 100644 inline .gitweave.yml\ndata {}\n{f}\n",
                f.len()
            ));
        }
    }
    s
}

async fn make_repo(dir: &Path, file: Option<&str>) -> anyhow::Result<()> {
    let _ = tokio::fs::remove_dir_all(dir).await;
    let path = dir.to_str().context("a UTF-8 path")?;
    run_quiet("git", &["init", "-q", "--bare", "-b", "main", path], None).await?;
    let mut child = tokio::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .env("GIT_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("git fast-import")?;
    let mut stdin = child.stdin.take().context("fast-import's stdin")?;
    stdin.write_all(history(file).as_bytes()).await?;
    drop(stdin);
    if !child.wait().await?.success() {
        bail!("git fast-import failed for {}", dir.display());
    }
    Ok(())
}

/// Triggers `repo` and waits until its first job is `running` (or has ended); then waits
/// for the run to succeed so the next one starts on an idle runner.
async fn once(ctx: &Ctx, repo: &str) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let t = ctx.api.trigger(repo).await?;
    let first = loop {
        let run = ctx.api.run(&t.run_id).await?;
        let status = run["jobs"][0]["status"].as_str().unwrap_or("");
        if matches!(status, "running" | "success" | "failed") {
            break ms_since(t0);
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("run {} did not start within 60 s: {run}", t.run_id);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    ctx.api
        .expect_success(&t.run_id, Duration::from_secs(60))
        .await?;
    Ok(first)
}

/// Runs W6.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let pipeline = template(&ctx.image, &[("hello", "echo hello")]);
    let with_file = ctx.work.join("w6-file.git");
    let without = ctx.work.join("w6-template.git");
    let made = Instant::now();
    make_repo(&with_file, Some(&pipeline)).await?;
    make_repo(&without, None).await?;
    let made_ms = ms_since(made);
    ctx.api
        .put_repo_with(
            FILE_REPO,
            &json!({ "clone_url": with_file.display().to_string() }),
        )
        .await?;
    ctx.api.setup_pipeline(TEMPLATE_REPO, &pipeline).await?;
    ctx.api
        .put_repo_with(
            TEMPLATE_REPO,
            &json!({ "clone_url": without.display().to_string() }),
        )
        .await?;

    // The first trigger of the file repo makes its mirror (a full fetch): reported, not
    // counted.
    let first_fetch = once(ctx, FILE_REPO).await?;
    once(ctx, TEMPLATE_REPO).await?;
    let n = ctx.iterations(30, 3);
    let (mut file_ms, mut template_ms, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        for (repo, samples) in [(FILE_REPO, &mut file_ms), (TEMPLATE_REPO, &mut template_ms)] {
            match once(ctx, repo).await {
                Ok(ms) => samples.push(ms),
                Err(e) => {
                    eprintln!("bench: W6 {repo} failed: {e:#}");
                    errors.push(format!("{repo}: {e:#}"));
                }
            }
        }
    }
    let (f50, t50) = (percentile(&file_ms, 50.0), percentile(&template_ms, 50.0));
    let ratio = f50.zip(t50).map(|(f, t)| f / t.max(0.001));
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{} ms", fmt_ms(v)));
    let row = |name: &str, samples: &[f64]| {
        let s = summarize(samples);
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            samples.len(),
            show(percentile(samples, 50.0)),
            show(s.map(|s| s.min)),
            show(s.map(|s| s.max)),
        )
    };
    let mut body = format!(
        "The same one-job pipeline (`echo hello`, docker engine) for two repos of the same \
         {COMMITS}-commit history (made with `git fast-import` in {} ms): one reads it from \
         `.gitweave.yml` at the head commit through its mirror, the other has no file and the \
         pipeline attached as a template. Both have a local `clone_url`, so both resolve the \
         head with `git ls-remote` and check the commit out. Timed from just before \
         `POST …/pipelines/run` until `GET /pipelines/runs/{{id}}` shows the first job \
         `running`; the two alternate, one run at a time. The file repo's first trigger \
         (which fetches the whole history into a new mirror) took {} and is not counted.\n\n\
         | pipeline from | runs | median | min | max |\n|---|---:|---:|---:|---:|\n{}{}\n\
         Median ratio (file ÷ template): {}.\n",
        fmt_ms(made_ms),
        show(Some(first_fetch)),
        row("`.gitweave.yml`", &file_ms),
        row("attached template", &template_ms),
        ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
    );
    if !errors.is_empty() {
        body.push_str("\nFailures:\n\n");
        for e in &errors {
            body.push_str(&format!("- {e}\n"));
        }
    }
    Ok(Section {
        title: "W6 — pipeline from the repo vs attached template".into(),
        body,
        targets: vec![Target::at_most(
            "W6",
            "trigger → first job running, .gitweave.yml ÷ template (median)",
            ratio,
            1.2,
            "×",
        )],
    })
}
