//! `trigger --follow` and `rerun --follow`: the run's events followed as Server-Sent Events;
//! each `job.started` starts following that attempt's raw log, printed line by line behind
//! the job's name (coloured on a terminal); at `run.completed` the logs are drained and the
//! summary printed. Ctrl-C detaches (the run goes on) and says how to cancel it.

use crate::client::Client;
use crate::output::{Colour, Out, short};
use crate::summary;
use anyhow::Context;
use gitweave_api::public::{Event, Run};
use gitweave_model::status::EventType;
use reqwest::Method;
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Exit code when Ctrl-C detached from a followed run (the shell's code for SIGINT).
pub const DETACHED: u8 = 130;

/// One parsed SSE frame's event, or nothing for comments and keep-alives.
pub fn parse_frame(frame: &str) -> Option<Event> {
    let data: String = frame
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok()
}

/// Where followed output goes: one writer shared by every job's log, so lines never mix.
#[derive(Clone)]
struct Printer {
    to_stderr: bool,
    colour: bool,
    lock: Arc<Mutex<()>>,
}

impl Printer {
    fn line(&self, prefix: &str, colour: Colour, text: &str) {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = format!(
            "{} {text}\n",
            colour.paint(self.colour, &format!("{prefix} |"))
        );
        // A closed pipe (`| head`) ends the output, not the follow.
        let _ = if self.to_stderr {
            std::io::stderr().lock().write_all(line.as_bytes())
        } else {
            std::io::stdout().lock().write_all(line.as_bytes())
        };
    }
}

/// Prints one attempt's log as it is written, each line behind `name`.
async fn follow_log(
    c: Arc<Client>,
    job: Uuid,
    attempt: i32,
    name: String,
    colour: Colour,
    p: Printer,
) -> anyhow::Result<()> {
    let path = format!("/jobs/{job}/logs/raw?follow=true&attempt={attempt}");
    let mut resp = c.send(c.request(Method::GET, &path)).await?;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        pending.extend_from_slice(&chunk);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            p.line(&name, colour, text.trim_end_matches('\r'));
        }
    }
    if !pending.is_empty() {
        p.line(&name, colour, &String::from_utf8_lossy(&pending));
    }
    Ok(())
}

/// Follows `run` to its end (see the module docs); the exit code is the run's result, or
/// [`DETACHED`].
pub async fn follow(c: &Client, run: &Run, out: Out) -> anyhow::Result<ExitCode> {
    let c = Arc::new(c.clone());
    let p = Printer {
        to_stderr: out.json,
        colour: if out.json { out.colour_err } else { out.colour },
        lock: Arc::default(),
    };
    let mut names: HashMap<Uuid, (String, Colour)> = run
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id, (j.name.clone(), Colour::for_index(i))))
        .collect();
    let path = format!("/pipelines/runs/{}/events", run.id);
    let rb = c
        .request(Method::GET, &path)
        .header("accept", "text/event-stream");
    let mut resp = c.send(rb).await?;
    let mut logs = tokio::task::JoinSet::new();
    let mut buf = String::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let chunk = tokio::select! {
            chunk = resp.chunk() => chunk.context("following the run's events")?,
            _ = &mut ctrl_c => {
                logs.abort_all();
                eprintln!(
                    "\ngitweave: detached; run {} goes on. Cancel it with: gitweave cancel {}",
                    short(run.id),
                    short(run.id)
                );
                return Ok(ExitCode::from(DETACHED));
            }
        };
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let Some(e) = parse_frame(&frame) else {
                continue;
            };
            let Ok(kind) = e.event_type.parse::<EventType>() else {
                continue;
            };
            if kind == EventType::JobStarted
                && let (Some(job), Some(attempt)) = (e.job_id, e.attempt)
            {
                let (name, colour) = names
                    .entry(job)
                    .or_insert_with(|| (short(job), Colour::Cyan))
                    .clone();
                logs.spawn(follow_log(c.clone(), job, attempt, name, colour, p.clone()));
            }
        }
    }
    // The stream ends with the run: drain every log, then the outcome.
    while let Some(done) = logs.join_next().await {
        if let Ok(Err(e)) = done {
            eprintln!("gitweave: following a job's log failed: {e:#}");
        }
    }
    let ended: Run = c.get(&format!("/pipelines/runs/{}", run.id)).await?;
    let events: Vec<Event> = c
        .text(&format!("/pipelines/runs/{}/events", run.id))
        .await?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the run's events")?;
    if out.json {
        out.print_json(&ended)?;
    } else {
        print!("\n{}", summary::to_text(&ended, &events, out.colour));
    }
    Ok(crate::commands::run_exit(&ended))
}

#[cfg(test)]
mod tests {
    use super::parse_frame;

    #[test]
    fn frames_give_their_event_and_comments_nothing() {
        let f = "id: 3\nevent: job.started\ndata: {\"seq\":3,\"event_type\":\"job.started\",\"run_id\":\"0192f0c4-5b1e-7c3a-8f00-1b2c3d4e5f60\",\"job_id\":\"0192f0c4-5b1e-7c3a-8f00-1b2c3d4e5f61\",\"timestamp_utc\":\"2026-02-16T23:05:12.123Z\",\"actor\":\"runner:a\",\"attempt\":1}\n\n";
        let e = parse_frame(f).expect("an event");
        assert_eq!(
            (e.seq, e.event_type.as_str(), e.attempt),
            (3, "job.started", Some(1))
        );
        assert!(parse_frame(": keep-alive\n\n").is_none());
    }
}
