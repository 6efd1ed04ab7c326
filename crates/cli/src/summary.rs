//! `gitweave summary`: a run's outcome in a few lines (the seed's run summary), from the run
//! and its event log.

use crate::output::{job_mark, run_colour, short};
use gitweave_api::public::{Event, Run};
use gitweave_api::replay::replay;
use gitweave_model::status::{JobStatus, RunStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn secs(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<f64> {
    Some((b? - a?).as_seconds_f64())
}

/// The summary as JSON.
pub fn to_json(run: &Run, events: &[Event]) -> Value {
    let replayed = replay(events).ok();
    let count = |s: JobStatus| run.jobs.iter().filter(|j| j.status == s).count();
    let retries: u32 = replayed
        .as_ref()
        .map_or(0, |r| r.jobs.values().map(|j| j.retries).sum());
    let gates: Vec<&str> = replayed
        .as_ref()
        .map(|r| {
            r.gate_failures
                .iter()
                .filter_map(|id| {
                    run.jobs
                        .iter()
                        .find(|j| j.id == *id)
                        .map(|j| j.name.as_str())
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "run_id": run.id,
        "repo": run.repo,
        "ref": run.git_ref,
        "commit": run.commit,
        "status": run.status,
        "created_at": gitweave_api::ts::format(run.created_at),
        "ended_at": run.ended_at.map(gitweave_api::ts::format),
        "duration_s": secs(run.started_at, run.ended_at),
        "jobs": {
            "total": run.jobs.len(),
            "succeeded": count(JobStatus::Success),
            "failed": count(JobStatus::Failed),
            "skipped": count(JobStatus::Skipped),
            "canceled": count(JobStatus::Canceled),
        },
        "retries": retries,
        "gate_failures": gates,
        "warnings": run.jobs.iter().filter(|j| j.status == JobStatus::Failed && j.allow_failure).map(|j| j.name.as_str()).collect::<Vec<_>>(),
        "per_job": run.jobs.iter().map(|j| json!({
            "name": j.name,
            "status": j.status,
            "allow_failure": j.allow_failure,
            "attempt": j.attempt,
            "exit_code": j.exit_code,
            "error_class": j.error_class,
            "duration_s": secs(j.started_at, j.ended_at),
        })).collect::<Vec<_>>(),
    })
}

/// The summary as text.
pub fn to_text(run: &Run, events: &[Event], colour: bool) -> String {
    let v = to_json(run, events);
    let status = match run.status {
        RunStatus::Success => "✓ SUCCESS",
        RunStatus::Failed => "✗ FAILED",
        RunStatus::Canceled => "⊘ CANCELED",
        RunStatus::Blocked => "⏸ BLOCKED",
        RunStatus::Queued | RunStatus::Running => "… RUNNING",
    };
    let mut out = format!(
        "Run Summary: {} ({})\n{}\n",
        short(run.id),
        run.id,
        "=".repeat(60)
    );
    out.push_str(&format!(
        "Repo: {} {} {}\n",
        run.repo,
        run.git_ref,
        run.commit.as_deref().unwrap_or("")
    ));
    out.push_str(&format!(
        "Status: {}\n",
        run_colour(run.status).paint(colour, status)
    ));
    out.push_str(&format!(
        "Created: {}\n",
        gitweave_api::ts::format(run.created_at)
    ));
    if let Some(end) = run.ended_at {
        out.push_str(&format!("Completed: {}\n", gitweave_api::ts::format(end)));
    }
    if let Some(d) = v["duration_s"].as_f64() {
        out.push_str(&format!("Duration: {d:.2}s\n"));
    }
    let j = &v["jobs"];
    out.push_str(&format!(
        "\nJobs: {} total ({} succeeded, {} failed, {} skipped, {} canceled)\n",
        j["total"], j["succeeded"], j["failed"], j["skipped"], j["canceled"]
    ));
    out.push_str(&format!("Retries: {}\n", v["retries"]));
    let gates: Vec<String> = v["gate_failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !gates.is_empty() {
        out.push_str(&format!("Hard gate failures: {}\n", gates.join(", ")));
    }
    let warnings: Vec<&str> = run
        .jobs
        .iter()
        .filter(|j| j.status == JobStatus::Failed && j.allow_failure)
        .map(|j| j.name.as_str())
        .collect();
    if !warnings.is_empty() {
        out.push_str(&format!(
            "Warnings (allowed to fail): {}\n",
            warnings.join(", ")
        ));
    }
    out.push_str(&format!("\nJobs:\n{}\n", "-".repeat(60)));
    for job in &run.jobs {
        let dur = secs(job.started_at, job.ended_at).map_or(String::new(), |d| format!(" {d:.2}s"));
        let (mark, c) = job_mark(job.status, job.allow_failure);
        out.push_str(&format!(
            "  {} {:<32} {}{dur}\n",
            c.paint(colour, mark),
            job.name,
            c.paint(colour, job.status.as_str())
        ));
        if let Some(c) = job.error_class {
            let code = job
                .exit_code
                .map_or(String::new(), |c| format!(" (exit {c})"));
            out.push_str(&format!(
                "      Error: {c}{code}, attempt {}\n",
                job.attempt
            ));
        }
    }
    out
}
