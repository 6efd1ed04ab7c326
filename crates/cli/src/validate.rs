//! `gitweave validate [FILE]`: the pipeline file parsed and validated offline by the model
//! code pipeline-svc uses ([`crate::local_pipeline::load`]), each problem printed as
//! `FILE:LINE:COLUMN: message`, with a "did you mean" for an unknown key, a `needs` that names
//! no job, and an input that is not declared. Exit 0 when valid, 1 when not.
//!
//! Where the model gives no position (checks made after parsing), the line and column are
//! those of the first place the offending name appears in the file (the `needs:` entry, the
//! `inputs.NAME` use): a best effort, marked `~` in the text output.

use crate::local_pipeline::{self, LoadError};
use crate::output::Out;
use crate::suggest::closest;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, in the model's words.
    pub message: String,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Whether line and column were found by searching the text (not given by the parser).
    pub approximate: bool,
    /// The name probably meant.
    pub did_you_mean: Option<String>,
}

/// The quoted names in `s`, in order (`"a"`).
fn quoted(s: &str) -> Vec<&str> {
    s.split('"').skip(1).step_by(2).collect()
}

/// The job names and input names written in `source` (read only after the model accepted the
/// YAML itself, so within its size budget).
fn names_in(source: &str) -> (Vec<String>, Vec<String>) {
    let Ok(v) = yaml_serde::from_str::<yaml_serde::Value>(source) else {
        return (Vec::new(), Vec::new());
    };
    let jobs = v
        .get("jobs")
        .and_then(|j| j.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|j| j.get("name")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let inputs = v
        .get("inputs")
        .and_then(|i| i.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (jobs, inputs)
}

/// Where `needle` first appears in `source` as a whole word: (line, column), 1-based.
fn find_word(source: &str, needle: &str) -> Option<(usize, usize)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    for (n, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(needle) {
            let start = from + at;
            let end = start + needle.len();
            let before = line[..start].chars().next_back();
            let after = line[end..].chars().next();
            if !before.is_some_and(word) && !after.is_some_and(word) {
                return Some((n + 1, line[..start].chars().count() + 1));
            }
            from = end;
        }
    }
    None
}

/// The problems of an invalid file, each with its place and a suggestion where one is close.
pub fn problems(source: &str, err: &gitweave_model::template::TemplateError) -> Vec<Problem> {
    let parts: Vec<&str> = if err.line.is_some() {
        vec![err.message.as_str()]
    } else {
        err.message.split("; ").collect()
    };
    let (jobs, inputs) = if err.line.is_some() {
        (Vec::new(), Vec::new())
    } else {
        names_in(source)
    };
    parts
        .into_iter()
        .map(|m| {
            let mut p = Problem {
                message: m.to_owned(),
                line: err.line,
                column: err.column,
                approximate: false,
                did_you_mean: None,
            };
            let q = quoted(m);
            if m.contains("unknown field") || m.contains("unknown variant") {
                if let Some((wrong, expected)) = q.split_first() {
                    p.did_you_mean = closest(wrong, expected.iter().copied()).map(str::to_owned);
                }
            } else if m.contains("is not a job of this template")
                && let Some(wrong) = q.first()
            {
                p.did_you_mean = closest(wrong, jobs.iter().map(String::as_str)).map(str::to_owned);
                locate(&mut p, source, wrong);
            } else if m.contains("which the template does not declare")
                && let Some(wrong) = q.first()
            {
                p.did_you_mean =
                    closest(wrong, inputs.iter().map(String::as_str)).map(str::to_owned);
                locate(&mut p, source, &format!("inputs.{wrong}"));
            }
            p
        })
        .collect()
}

fn locate(p: &mut Problem, source: &str, needle: &str) {
    if p.line.is_none()
        && let Some((l, c)) = find_word(source, needle)
    {
        (p.line, p.column, p.approximate) = (Some(l), Some(c), true);
    }
}

/// The text of one problem: `FILE:LINE:COL: message (did you mean "x"?)`.
pub fn render(file: &str, p: &Problem) -> String {
    let at = match (p.line, p.column) {
        (Some(l), Some(c)) => format!("{}{l}:{c}:", if p.approximate { "~" } else { "" }),
        (Some(l), None) => format!("{l}:"),
        _ => String::new(),
    };
    let hint = p
        .did_you_mean
        .as_ref()
        .map_or(String::new(), |s| format!(" (did you mean \"{s}\"?)"));
    format!("{file}:{at} {}{hint}", p.message)
}

/// `gitweave validate [FILE]`.
pub fn run(file: Option<PathBuf>, out: Out) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let path = local_pipeline::find(file.as_deref(), &cwd)?;
    let shown = path.display().to_string();
    let (problems, jobs) = match local_pipeline::load(&path) {
        Ok(p) => (
            Vec::new(),
            p.template
                .jobs
                .iter()
                .map(|j| j.name.as_str().to_owned())
                .collect::<Vec<_>>(),
        ),
        Err(LoadError::Invalid { text, err, .. }) => (problems(&text, &err), Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if out.json {
        out.print_json(&serde_json::json!({
            "file": shown,
            "valid": problems.is_empty(),
            "jobs": jobs,
            "problems": problems,
        }))?;
    } else if problems.is_empty() {
        println!("{shown}: valid ({} jobs: {})", jobs.len(), jobs.join(", "));
    } else {
        for p in &problems {
            eprintln!("{}", render(&shown, p));
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::{problems, render};
    use gitweave_model::template::parse_template;

    fn first(src: &str) -> super::Problem {
        let err = parse_template(src).expect_err("invalid");
        problems(src, &err).remove(0)
    }

    #[test]
    fn an_unknown_key_is_placed_by_the_parser_and_its_likely_name_suggested() {
        let p = first("jobs:\n  - name: a\n    imgae: x\n    script: [\"true\"]\n");
        assert_eq!((p.line, p.approximate), (Some(3), false), "{p:?}");
        assert!(p.column.is_some(), "{p:?}");
        assert_eq!(p.did_you_mean.as_deref(), Some("image"), "{p:?}");
        assert!(
            render("f.yml", &p).starts_with("f.yml:3:"),
            "{}",
            render("f.yml", &p)
        );
    }

    #[test]
    fn needs_and_inputs_are_found_in_the_text_with_a_suggestion() {
        let src = "inputs:\n  greeting: { default: hi }\njobs:\n  - name: build\n    image: x\n    script: [\"echo ${{ inputs.greting }}\"]\n  - name: test\n    image: x\n    needs: [biuld]\n    script: [\"true\"]\n";
        let err = parse_template(src).expect_err("invalid");
        let ps = problems(src, &err);
        let needs = ps
            .iter()
            .find(|p| p.message.contains("needs"))
            .expect("a needs problem");
        assert_eq!(needs.did_you_mean.as_deref(), Some("build"), "{ps:?}");
        assert_eq!(
            (needs.line, needs.column, needs.approximate),
            (Some(9), Some(13), true)
        );
        let input = ps
            .iter()
            .find(|p| p.message.contains("input"))
            .expect("an input problem");
        assert_eq!(input.did_you_mean.as_deref(), Some("greeting"), "{ps:?}");
        assert_eq!(input.line, Some(6), "{ps:?}");
        assert!(
            render("f.yml", needs).starts_with("f.yml:~9:13: "),
            "{}",
            render("f.yml", needs)
        );
    }
}
