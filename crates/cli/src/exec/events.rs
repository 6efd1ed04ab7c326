//! What `gitweave exec` prints while it runs: each job's output line by line behind its name
//! (coloured on a terminal), a line when a job starts, retries, ends or is skipped; with
//! `--json`, the same as JSON lines (`{"event": "log", "job", "line"}`, `job.started`,
//! `job.retried`, `job.finished`, `job.skipped`, `run.completed`).

use crate::output::Colour;
use gitweave_engine::OutputBuffer;
use gitweave_model::status::ErrorClass;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The run's one writer (stdout), shared by every job so lines never interleave.
#[derive(Clone)]
pub struct Printer {
    json: bool,
    colour: bool,
    colours: Arc<HashMap<String, Colour>>,
    lock: Arc<Mutex<()>>,
}

/// A job's output to show.
pub struct Shown {
    /// The job's name.
    pub name: String,
    /// Its attempt's output.
    pub buffer: Arc<OutputBuffer>,
}

impl Printer {
    /// A printer for jobs named `names` (each gets its colour).
    pub fn new(json: bool, colour: bool, names: &[String]) -> Self {
        let colours = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), Colour::for_index(i)))
            .collect();
        Printer {
            json,
            colour,
            colours: Arc::new(colours),
            lock: Arc::default(),
        }
    }

    /// Whether events are JSON lines.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether text may be coloured.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Writes `text` as it is.
    pub fn write(&self, text: &str) {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        // A closed pipe ends the output, not the run.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// An event: a JSON line, or `text` (when given) dimmed.
    pub fn event(&self, v: Value, text: Option<String>) {
        if self.json {
            self.write(&format!("{v}\n"));
        } else if let Some(t) = text {
            self.write(&format!("{}\n", Colour::Dim.paint(self.colour, &t)));
        }
    }

    fn line(&self, name: &str, text: &str) {
        if self.json {
            self.write(&format!(
                "{}\n",
                json!({ "event": "log", "job": name, "line": text })
            ));
        } else {
            let c = self.colours.get(name).copied().unwrap_or(Colour::Cyan);
            let prefix = c.paint(self.colour, &format!("{name} |"));
            self.write(&format!("{prefix} {text}\n"));
        }
    }

    /// `name` starts its attempt `attempt`.
    pub fn started(&self, name: &str, attempt: u32) {
        let again = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        self.event(
            json!({ "event": "job.started", "job": name, "attempt": attempt }),
            Some(format!("==> {name} started{again}")),
        );
    }

    /// `name` failed attempt `attempt` with `class` and runs again after `delay`.
    pub fn retrying(&self, name: &str, attempt: u32, of: u32, class: ErrorClass, delay: Duration) {
        self.event(
            json!({
                "event": "job.retried",
                "job": name,
                "attempt": attempt + 1,
                "error_class": class,
                "delay_ms": delay.as_millis() as u64,
            }),
            Some(format!(
                "==> {name} failed ({class}); attempt {} of {of} in {:.1}s",
                attempt + 1,
                delay.as_secs_f64()
            )),
        );
    }

    /// Prints an attempt's output line by line until the attempt ends.
    pub async fn show(self, s: Shown) {
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = s.buffer.take(64 * 1024).await {
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                self.line(&s.name, text.trim_end_matches('\r'));
            }
        }
        if !pending.is_empty() {
            self.line(&s.name, &String::from_utf8_lossy(&pending));
        }
    }
}
