//! How the CLI prints: text tables by default, JSON with `--json`, colour only on a terminal
//! (and never with `NO_COLOR`), short ids (the last 8 hex digits, `gitweave_model::short_id`)
//! in text.

use gitweave_api::public::{Job, Run};
use gitweave_model::status::{JobStatus, RunStatus};
use serde::Serialize;
use std::io::IsTerminal;
use uuid::Uuid;

/// Where and how the command prints.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// `--json`: one JSON document on stdout; progress, logs and notes go to stderr.
    pub json: bool,
    /// Colour on stdout.
    pub colour: bool,
    /// Colour on stderr (progress and followed logs go there with `--json`).
    pub colour_err: bool,
    /// stderr is a terminal: progress may redraw a line there.
    pub tty_err: bool,
}

impl Out {
    /// Decided from `--json`, the terminals and `NO_COLOR`.
    pub fn detect(json: bool) -> Self {
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            json,
            colour: !no_colour && std::io::stdout().is_terminal(),
            colour_err: !no_colour && std::io::stderr().is_terminal(),
            tty_err: std::io::stderr().is_terminal(),
        }
    }

    /// Prints `value` as pretty JSON on stdout.
    pub fn print_json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

/// The short form of an id printed in text.
pub fn short(id: Uuid) -> String {
    gitweave_model::short_id::short(id)
}

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub enum Colour {
    Green,
    Red,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    Dim,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
            Colour::Blue => "34",
            Colour::Magenta => "35",
            Colour::Cyan => "36",
            Colour::Dim => "2",
        }
    }

    /// `s` in this colour when `on`.
    pub fn paint(self, on: bool, s: &str) -> String {
        if on {
            format!("\x1b[{}m{s}\x1b[0m", self.code())
        } else {
            s.to_owned()
        }
    }

    /// A colour per job name, stable within one run of the CLI, for prefixes of followed logs.
    pub fn for_index(i: usize) -> Colour {
        const ALL: [Colour; 5] = [
            Colour::Cyan,
            Colour::Magenta,
            Colour::Blue,
            Colour::Yellow,
            Colour::Green,
        ];
        ALL[i % ALL.len()]
    }
}

/// A job's mark: `✓`, `✗`, `!` for a failure that `allow_failure` lets pass, `⊘`, `⏸`, `…`.
pub fn job_mark(status: JobStatus, allow_failure: bool) -> (&'static str, Colour) {
    match status {
        JobStatus::Success => ("✓", Colour::Green),
        JobStatus::Failed if allow_failure => ("!", Colour::Yellow),
        JobStatus::Failed => ("✗", Colour::Red),
        JobStatus::Skipped | JobStatus::Canceled => ("⊘", Colour::Dim),
        JobStatus::Manual => ("⏸", Colour::Yellow),
        JobStatus::Queued | JobStatus::Running => ("…", Colour::Blue),
    }
}

/// The colour of a run's status.
pub fn run_colour(status: RunStatus) -> Colour {
    match status {
        RunStatus::Success => Colour::Green,
        RunStatus::Failed | RunStatus::Canceled => Colour::Red,
        RunStatus::Blocked => Colour::Yellow,
        RunStatus::Queued | RunStatus::Running => Colour::Blue,
    }
}

/// A text table: a header and rows, columns padded to their widest cell (by characters).
/// Colour is applied after padding, so escape codes never skew the widths.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<(String, Option<Colour>)>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells with an optional colour).
    pub fn row(&mut self, cells: Vec<(String, Option<Colour>)>) {
        self.rows.push(cells);
    }

    /// The table as text, `indent` spaces before each line.
    pub fn render(&self, indent: usize, colour: bool) -> String {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for (i, h) in self.header.iter().enumerate() {
            width[i] = h.chars().count();
        }
        for r in &self.rows {
            for (i, (c, _)) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let pad = " ".repeat(indent);
        let line = |cells: Vec<(String, Option<Colour>)>| {
            let last = cells.len().saturating_sub(1);
            let mut s = pad.clone();
            for (i, (c, col)) in cells.into_iter().enumerate() {
                let padded = if i == last {
                    c
                } else {
                    format!("{c:<w$}  ", w = width[i])
                };
                s.push_str(&match col {
                    Some(k) => k.paint(colour, &padded),
                    None => padded,
                });
            }
            s.trim_end().to_owned()
        };
        let mut out = line(
            self.header
                .iter()
                .map(|h| (h.clone(), Some(Colour::Dim)))
                .collect(),
        );
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.clone()));
            out.push('\n');
        }
        out
    }
}

/// The first 12 digits of a commit, or `-`.
pub fn short_commit(commit: Option<&str>) -> String {
    commit.map_or("-".into(), |c| c.chars().take(12).collect())
}

/// One line of a job's outcome: exit code, error class, and what `allow_failure` means.
pub fn job_detail(j: &Job) -> String {
    let mut parts = Vec::new();
    if let Some(c) = j.exit_code {
        parts.push(format!("exit {c}"));
    }
    if let Some(c) = j.error_class {
        parts.push(format!("[{c}]"));
    }
    if j.status == JobStatus::Failed && j.allow_failure {
        parts.push("(allowed to fail)".into());
    }
    if j.attempt > 1 {
        parts.push(format!("attempt {}", j.attempt));
    }
    parts.join(" ")
}

/// A run and its jobs as text: a header line and a table of jobs.
pub fn run_text(run: &Run, colour: bool) -> String {
    let status = run_colour(run.status).paint(colour, run.status.as_str());
    let mut out = format!(
        "run {} {status}  {} {} {}  ({})\n",
        short(run.id),
        run.repo,
        run.git_ref,
        short_commit(run.commit.as_deref()),
        run.trigger,
    );
    let mut t = Table::new(&["", "STATUS", "JOB", "ID", "RESULT"]);
    for j in &run.jobs {
        let (mark, c) = job_mark(j.status, j.allow_failure);
        t.row(vec![
            (mark.to_owned(), Some(c)),
            (j.status.as_str().to_owned(), Some(c)),
            (j.name.clone(), None),
            (short(j.id), Some(Colour::Dim)),
            (job_detail(j), None),
        ]);
    }
    out.push_str(&t.render(2, colour));
    out
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_are_padded_to_the_widest_cell_and_lines_trimmed() {
        let mut t = Table::new(&["A", "LONG"]);
        t.row(vec![("xyz".into(), None), ("1".into(), None)]);
        t.row(vec![("✓".into(), None), ("".into(), None)]);
        assert_eq!(t.render(1, false), " A    LONG\n xyz  1\n ✓\n");
    }
}
