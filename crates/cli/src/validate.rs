//! `gitweave validate [FILE]`: the pipeline file parsed and validated offline by the model
//! code pipeline-svc uses ([`crate::local_pipeline::load`]), each problem printed as
//! `FILE:LINE:COLUMN: message`, with a "did you mean" for an unknown key, a `needs` that names
//! no job, and an input that is not declared. Exit 0 when valid, 1 when not.
//!
//! Included templates are looked up on the server (`--url`, `GITWEAVE_URL`): a template it
//! does not store, or an include input the template does not declare (with a "did you
//! mean"), is a problem; when the server does not answer they are reported `unchecked`, which
//! is not a problem. When the file has rules, it also says what a push of the current branch
//! would run ([`crate::local_rules`]).
//!
//! Where the model gives no position (checks made after parsing), the line and column are
//! those of the first place the offending name appears in the file (the `needs:` entry, the
//! `inputs.NAME` use): a best effort, marked `~` in the text output.

use crate::client::Client;
use crate::includes::{self, FetchError, Fetched};
use crate::local_pipeline::{self, LoadError, LocalPipeline};
use crate::local_rules::LocalPush;
use crate::output::Out;
use crate::suggest::closest;
use gitweave_model::repo_plan;
use gitweave_model::rules;
use gitweave_model::template::locate as locate_path;
use serde::Serialize;
use serde_json::{Value, json};
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
/// The model joins several problems with `; ` and places the first; each is placed here by
/// its path (`jobs[1].needs[0] …`) when every part starts with one.
pub fn problems(source: &str, err: &gitweave_model::template::TemplateError) -> Vec<Problem> {
    let split: Vec<&str> = err.message.split("; ").collect();
    let several = split.len() > 1 && split.iter().all(|m| locate_path(source, m).is_some());
    let parts: Vec<&str> = if several {
        split
    } else {
        vec![err.message.as_str()]
    };
    // Only these messages need the names, and only a file whose YAML the model accepted
    // (within its budget) has them: a file refused for its YAML is never parsed again.
    let (jobs, inputs) = if parts.iter().any(|m| {
        m.contains("is not a job of this template")
            || m.contains("which the template does not declare")
    }) {
        names_in(source)
    } else {
        (Vec::new(), Vec::new())
    };
    parts
        .into_iter()
        .map(|m| {
            let (line, column) = if several {
                locate_path(source, m).map_or((None, None), |(l, c)| (Some(l), Some(c)))
            } else {
                (err.line, err.column)
            };
            let mut p = Problem {
                message: m.to_owned(),
                line,
                column,
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
                place_word(&mut p, source, wrong);
            } else if m.contains("which the template does not declare")
                && let Some(wrong) = q.first()
            {
                p.did_you_mean =
                    closest(wrong, inputs.iter().map(String::as_str)).map(str::to_owned);
                place_word(&mut p, source, &format!("inputs.{wrong}"));
            }
            p
        })
        .collect()
}

/// Places `p` at the first whole-word `needle` of `source` (more precise than the path's
/// key), marked approximate.
fn place_word(p: &mut Problem, source: &str, needle: &str) {
    if let Some((l, c)) = find_word(source, needle) {
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

/// A problem at the place of `path_message`'s path (`include[0].inputs.x …`) in `source`.
fn at_path(source: &str, message: String, did_you_mean: Option<String>) -> Problem {
    let place = locate_path(source, &message);
    Problem {
        line: place.map(|(l, _)| l),
        column: place.map(|(_, c)| c),
        message,
        approximate: false,
        did_you_mean,
    }
}

/// What validate found of the includes: one JSON object each, and the problems.
async fn check_includes(
    p: &LocalPipeline,
    c: &Client,
    problems: &mut Vec<Problem>,
) -> anyhow::Result<Vec<Value>> {
    let file = &p.file;
    if let Err(why) = repo_plan::check_includes(file) {
        problems.push(at_path(&p.text, why, None));
    }
    if file.include.is_empty() {
        return Ok(Vec::new());
    }
    let fetched = match includes::fetch(c, file).await {
        Ok(f) => f,
        Err(e @ FetchError::Unreachable { .. }) => {
            let why = e.to_string();
            return Ok(file
                .include
                .iter()
                .map(|inc| json!({"template": inc.template.as_str(), "status": "unchecked", "reason": why}))
                .collect());
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for (i, (inc, got)) in file.include.iter().zip(fetched).enumerate() {
        let name = inc.template.as_str();
        match got {
            Fetched::Missing => {
                problems.push(at_path(
                    &p.text,
                    format!(
                        "include[{i}].template {name:?} is not stored on GitWeave at {}; store it with `gitweave templates push`",
                        c.base
                    ),
                    None,
                ));
                out.push(json!({"template": name, "status": "missing"}));
            }
            Fetched::Stored { version, template } => {
                let declared: Vec<&str> = template.inputs.keys().map(|k| k.as_str()).collect();
                for given in inc.inputs.keys() {
                    if !declared.contains(&given.as_str()) {
                        problems.push(at_path(
                            &p.text,
                            format!(
                                "include[{i}].inputs.{given}: template {name:?} declares no input {given:?} (its inputs: {})",
                                if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
                            ),
                            closest(given, declared.iter().copied()).map(str::to_owned),
                        ));
                    }
                }
                out.push(json!({"template": name, "status": "checked", "version": version}));
            }
        }
    }
    Ok(out)
}

/// What a push of the current branch runs, when the file has rules and this is a git work
/// tree: `None` otherwise.
fn local_push(p: &LocalPipeline) -> Option<(String, Value)> {
    let file = &p.file;
    let has_rules = !file.rules.is_empty()
        || file
            .pipeline
            .as_ref()
            .is_some_and(|t| t.jobs.iter().any(|j| !j.rules.is_empty()));
    if !has_rules {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    let root = crate::exec::worktree::root(&cwd).ok()?;
    let push = LocalPush::of(&root, file).ok()?;
    let ctx = push.context();
    let what = push.describe();
    if !rules::allows(&file.rules, &ctx) {
        return Some((
            format!("{what}: no rule of the file matches, so it makes no run"),
            json!({"ref": push.git_ref, "runs": false, "jobs": [], "left_out": []}),
        ));
    }
    let (kept, left_out) = match &file.pipeline {
        Some(t) => rules::keep_jobs(t, &ctx),
        None => (None, Vec::new()),
    };
    let mut jobs: Vec<String> = file
        .include
        .iter()
        .map(|i| format!("{}/*", i.template.as_str()))
        .collect();
    jobs.extend(kept.iter().flat_map(|t| {
        t.jobs
            .iter()
            .map(|j| format!("{}/{}", local_pipeline::STAGE, j.name.as_str()))
    }));
    let left: Vec<&str> = left_out.iter().map(|n| n.as_str()).collect();
    let text = format!(
        "{what} runs: {}{}",
        if jobs.is_empty() {
            "nothing".to_owned()
        } else {
            jobs.join(", ")
        },
        if left.is_empty() {
            String::new()
        } else {
            format!(" (left out by rules: {})", left.join(", "))
        }
    );
    let runs = !jobs.is_empty();
    Some((
        text,
        json!({"ref": push.git_ref, "runs": runs, "jobs": jobs, "left_out": left}),
    ))
}

/// `gitweave validate [FILE]`; `c` looks up the included templates.
pub async fn run(file: Option<PathBuf>, out: Out, c: &Client) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let path = local_pipeline::find(file.as_deref(), &cwd)?;
    let shown = path.display().to_string();
    let mut included = Vec::new();
    let mut push = None;
    let (mut problems, jobs) = match local_pipeline::load(&path) {
        Ok(p) => {
            let mut problems = Vec::new();
            included = check_includes(&p, c, &mut problems).await?;
            push = local_push(&p);
            let jobs = p
                .file
                .pipeline
                .iter()
                .flat_map(|t| t.jobs.iter().map(|j| j.name.as_str().to_owned()))
                .collect::<Vec<_>>();
            (problems, jobs)
        }
        Err(LoadError::Invalid { text, err, .. }) => (problems(&text, &err), Vec::new()),
        Err(e) => return Err(e.into()),
    };
    problems.sort_by_key(|p| (p.line, p.column));
    if out.json {
        out.print_json(&json!({
            "file": shown,
            "valid": problems.is_empty(),
            "jobs": jobs,
            "includes": included,
            "push": push.as_ref().map(|(_, v)| v),
            "problems": problems,
        }))?;
    } else if problems.is_empty() {
        println!("{shown}: valid ({} jobs: {})", jobs.len(), jobs.join(", "));
        for inc in &included {
            let name = inc["template"].as_str().unwrap_or_default();
            match inc["status"].as_str() {
                Some("checked") => {
                    println!("  include {name}: checked (version {})", inc["version"])
                }
                _ => println!(
                    "  include {name}: unchecked ({})",
                    inc["reason"].as_str().unwrap_or_default()
                ),
            }
        }
        if let Some((text, _)) = &push {
            println!("  {text}");
        }
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
    use gitweave_model::template::parse_repo_file;

    fn first(src: &str) -> super::Problem {
        let err = parse_repo_file(src, "f.yml").expect_err("invalid");
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
        let err = parse_repo_file(src, "f.yml").expect_err("invalid");
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
