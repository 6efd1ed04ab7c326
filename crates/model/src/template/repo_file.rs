//! [`parse_repo_file`]: a repo's `.gitweave.yml` (SPEC §9) → [`RepoFile`], through the same
//! size caps, YAML budget and builder as a stored template ([`super::parse_template`]), plus
//! `include`, pipeline `rules` and job `rules`. Errors name the file, and a line and column:
//! YAML's own for syntax and shape errors, else the place of the first problem's path
//! (`jobs[1].script`) in the text ([`locate`]).

use crate::names::{TemplateName, quoted};
use crate::rules::{self, Rule, RuleEvent};
use crate::template::parse::{Builder, Kind, deserialize, invalid};
use crate::template::raw::{RawInclude, RawRule, Scalar, Strings};
use crate::template::{Template, TemplateError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// The most `include` entries, and the most rules in one `rules` list.
pub const MAX_INCLUDES: usize = 20;
/// The most rules in one `rules` list, and entries in one key of a rule.
pub const MAX_RULES: usize = 50;

/// A validated repo pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    /// Stored templates run as stages before the file's own jobs, in order.
    pub include: Vec<Include>,
    /// When the pipeline runs at all (empty: always).
    pub rules: Vec<Rule>,
    /// The file's own jobs (the stage `pipeline`), `None` when it only includes templates.
    pub pipeline: Option<Template>,
}

/// One `include` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Include {
    /// The stored template's name.
    pub template: TemplateName,
    /// Its inputs (as the attachment's default inputs would be).
    pub inputs: BTreeMap<String, String>,
}

/// Parses and validates a repo's pipeline file; `file` names it in errors.
pub fn parse_repo_file(src: &str, file: &str) -> Result<RepoFile, TemplateError> {
    let located = |mut e: TemplateError| {
        if e.line.is_none()
            && let Some((line, column)) = locate(src, &e.message)
        {
            e.line = Some(line);
            e.column = Some(column);
        }
        e.file = Some(file.to_owned());
        e
    };
    let mut raw = deserialize(src).map_err(located)?;
    let mut b = Builder {
        kind: Kind::RepoFile,
        ..Builder::default()
    };
    let include = b.includes(raw.include.take());
    let rules = match raw.rules.take() {
        Some(r) => b.rules("rules", r),
        None => Vec::new(),
    };
    let no_jobs = raw.jobs.as_ref().is_none_or(Vec::is_empty);
    let pipeline = if no_jobs && !include.is_empty() {
        Some(None)
    } else {
        b.template(raw).map(Some)
    };
    let built = pipeline.map(|pipeline| RepoFile {
        include,
        rules,
        pipeline,
    });
    b.finish(built).map_err(located)
}

impl Builder {
    fn includes(&mut self, raw: Option<Vec<RawInclude>>) -> Vec<Include> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_INCLUDES {
            self.err(format!(
                "include has {} entries, more than the maximum of {MAX_INCLUDES}",
                raw.len()
            ));
            return Vec::new();
        }
        let mut out: Vec<Include> = Vec::new();
        for (i, inc) in raw.into_iter().enumerate() {
            let p = format!("include[{i}]");
            let Some(name) = inc.template else {
                self.err(format!("{p}.template is required"));
                continue;
            };
            let template = match TemplateName::parse(&name) {
                Ok(t) => t,
                Err(e) => {
                    self.err(invalid(&format!("{p}.template"), &e));
                    continue;
                }
            };
            if out.iter().any(|o| o.template == template) {
                self.err(format!(
                    "{p}.template {} is included more than once",
                    quoted(&name)
                ));
                continue;
            }
            let inputs = inc
                .inputs
                .map(|m| m.0)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, Scalar(v))| (k, v))
                .collect();
            out.push(Include { template, inputs });
        }
        out
    }

    pub(super) fn rules(&mut self, p: &str, raw: Vec<RawRule>) -> Vec<Rule> {
        if raw.is_empty() {
            self.err(format!(
                "{p} must not be empty (leave it out to always run)"
            ));
            return Vec::new();
        }
        if raw.len() > MAX_RULES {
            self.err(format!(
                "{p} has {} rules, more than the maximum of {MAX_RULES}",
                raw.len()
            ));
            return Vec::new();
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, r)| self.rule(&format!("{p}[{i}]"), r))
            .collect()
    }

    fn rule(&mut self, p: &str, raw: RawRule) -> Rule {
        if raw.event.is_none() && raw.branch.is_none() && raw.tag.is_none() && raw.changes.is_none()
        {
            self.err(format!(
                "{p} is empty: give one of event, branch, tag, changes"
            ));
        }
        let mut list = |key: &str, v: Option<Strings>| -> Vec<String> {
            let Some(Strings(items)) = v else {
                return Vec::new();
            };
            if items.is_empty() {
                self.err(format!("{p}.{key} must not be empty"));
            }
            if items.len() > MAX_RULES {
                self.err(format!(
                    "{p}.{key} has {} entries, more than the maximum of {MAX_RULES}",
                    items.len()
                ));
            }
            items
        };
        let events = list("event", raw.event);
        let branch = list("branch", raw.branch);
        let tag = list("tag", raw.tag);
        let changes = list("changes", raw.changes);
        let mut event = Vec::new();
        for (j, e) in events.iter().enumerate() {
            match RuleEvent::from_str(e) {
                Ok(ev) => event.push(ev),
                Err(_) => self.err(format!(
                    "{p}.event[{j}] {} is not one of push, tag, pull_request, api, rerun",
                    quoted(e)
                )),
            }
        }
        for (key, globs) in [("branch", &branch), ("tag", &tag), ("changes", &changes)] {
            for (j, g) in globs.iter().enumerate() {
                if let Err(why) = rules::glob(g) {
                    self.err(format!("{p}.{key}[{j}]: {why}"));
                }
            }
        }
        Rule {
            event,
            branch,
            tag,
            changes,
        }
    }
}

/// One step of a path like `jobs[2].script`.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The steps of the path a message starts with (`jobs[2].name is invalid…`), if it starts
/// with one of the file's top-level keys.
fn path_of(message: &str) -> Option<Vec<Step<'_>>> {
    let end = message.find([' ', ':']).unwrap_or(message.len());
    let path = &message[..end];
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while !rest.is_empty() {
            let (n, after) = rest.split_once(']')?;
            steps.push(Step::Index(n.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    match steps.first() {
        Some(Step::Key(k)) if ["name", "inputs", "env", "jobs", "include", "rules"].contains(k) => {
            Some(steps)
        }
        _ => None,
    }
}

/// Where (1-based line, column) the path `message` starts with is written in `src`, for a
/// file in block style; as deep as it can be followed (a flow-style `[a, b]` value stops at
/// its key). Best effort: `None` when even the first key is not found.
pub fn locate(src: &str, message: &str) -> Option<(usize, usize)> {
    let steps = path_of(message)?;
    // (line number, indent of the dash if any, indent of the key/content)
    let lines: Vec<(usize, Option<usize>, usize, &str)> = src
        .lines()
        .enumerate()
        .filter_map(|(n, l)| {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let indent = l.len() - t.len();
            match t.strip_prefix("- ").or_else(|| (t == "-").then_some("")) {
                Some(rest) => {
                    let inner = rest.len() - rest.trim_start().len();
                    Some((n + 1, Some(indent), indent + 2 + inner, rest.trim_start()))
                }
                None => Some((n + 1, None, indent, t)),
            }
        })
        .collect();
    let (mut from, mut to, mut scope): (usize, usize, isize) = (0, lines.len(), -1);
    let mut found = None;
    for step in steps {
        match step {
            Step::Key(k) => {
                let level = lines[from..to]
                    .iter()
                    .map(|l| l.2 as isize)
                    .find(|&i| i > scope)?;
                let at = (from..to).find(|&i| {
                    let (_, _, ind, text) = lines[i];
                    ind as isize == level
                        && text.strip_prefix(k).is_some_and(|r| r.starts_with(':'))
                })?;
                found = Some((lines[at].0, lines[at].2 + 1));
                scope = lines[at].2 as isize;
                // A sequence may sit at its key's own indent (`jobs:` then `- name: a`).
                to = ((at + 1)..to)
                    .find(|&i| match lines[i].1 {
                        None => lines[i].2 as isize <= scope,
                        Some(d) => (d as isize) < scope,
                    })
                    .unwrap_or(to);
                from = at + 1;
            }
            Step::Index(n) => {
                let dash = lines[from..to].iter().find_map(|l| l.1)?;
                let at = (from..to).filter(|&i| lines[i].1 == Some(dash)).nth(n)?;
                found = Some((lines[at].0, dash + 1));
                scope = dash as isize;
                to = ((at + 1)..to)
                    .find(|&i| lines[i].1.unwrap_or(lines[i].2) as isize <= scope)
                    .unwrap_or(to);
                from = at;
            }
        }
        if from >= to {
            break;
        }
    }
    found
}
