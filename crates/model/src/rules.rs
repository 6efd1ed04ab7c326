//! `rules:` of a repo's pipeline file (SPEC §9): whether a pipeline runs, and which of its
//! jobs, as a pure function of the trigger's event, its ref and the paths it changed.
//!
//! A rule's keys are ANDed and the entries of one key ORed; a list of rules matches when one
//! rule does, and no `rules` at all always matches. `branch:` and `tag:` are globs on the
//! branch or tag name (without `refs/heads/`, `refs/tags/`; for a pull request, `branch:` is
//! its target branch), `changes:` globs on the changed paths. Globs are `globset` globs with
//! `literal_separator`: `*` stays within one path segment, `**` crosses them, so
//! `release/*` matches `release/1.2` and not `release/1/2`, and `src/**` everything under
//! `src/`. When the changed paths are not known (a tag, an API trigger, a push whose base
//! the mirror lacks), `changes:` matches, as GitLab does.
//!
//! [`keep_jobs`] applies job rules with the fail-closed rule for `needs`: a job that needs a
//! job left out is left out too.

use crate::names::JobName;
use crate::template::{JobTemplate, Template};
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

pub use crate::status::RuleEvent;

/// One rule: every key given must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rule {
    /// Events; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<RuleEvent>,
    /// Branch globs; empty: any ref (a non-empty list never matches a tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branch: Vec<String>,
    /// Tag globs; empty: any ref (a non-empty list never matches a branch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    /// Path globs of which one changed path must match; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// What the rules are judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleContext<'a> {
    /// The event.
    pub event: RuleEvent,
    /// The branch name (without `refs/heads/`; a pull request's target branch), if the ref
    /// is a branch.
    pub branch: Option<&'a str>,
    /// The tag name (without `refs/tags/`), if the ref is a tag.
    pub tag: Option<&'a str>,
    /// The changed paths, when known.
    pub changed: Option<&'a [String]>,
}

impl<'a> RuleContext<'a> {
    /// The context of a trigger of `event` at `git_ref` (a full ref, or a short name taken as
    /// a branch): `refs/tags/…` is a tag (and a push of one is the `tag` event).
    pub fn of_ref(event: RuleEvent, git_ref: &'a str, changed: Option<&'a [String]>) -> Self {
        if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
            let event = if event == RuleEvent::Push {
                RuleEvent::Tag
            } else {
                event
            };
            return RuleContext {
                event,
                branch: None,
                tag: Some(tag),
                changed,
            };
        }
        let branch = match git_ref.strip_prefix("refs/heads/") {
            Some(b) => Some(b),
            None if git_ref.starts_with("refs/") => None,
            None => Some(git_ref),
        };
        RuleContext {
            event,
            branch,
            tag: None,
            changed,
        }
    }
}

/// Compiles a glob of a rule; the error says what is wrong with it.
pub fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{pattern:?} is not a valid glob: {e}"))
}

/// Whether `value` matches one of `globs` (a glob that does not compile matches nothing;
/// parsing refused those already).
fn any_glob(globs: &[String], value: &str) -> bool {
    globs
        .iter()
        .any(|g| glob(g).is_ok_and(|m| m.is_match(value)))
}

impl Rule {
    /// Whether every key of the rule matches `ctx`.
    pub fn matches(&self, ctx: &RuleContext<'_>) -> bool {
        let event = self.event.is_empty() || self.event.contains(&ctx.event);
        let branch =
            self.branch.is_empty() || ctx.branch.is_some_and(|b| any_glob(&self.branch, b));
        let tag = self.tag.is_empty() || ctx.tag.is_some_and(|t| any_glob(&self.tag, t));
        let changes = self.changes.is_empty()
            || ctx
                .changed
                .is_none_or(|paths| paths.iter().any(|p| any_glob(&self.changes, p)));
        event && branch && tag && changes
    }

    /// Whether the rule has a `changes:` key.
    pub fn uses_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Whether `rules` let the pipeline (or a job) run: no rules, or one rule that matches.
pub fn allows(rules: &[Rule], ctx: &RuleContext<'_>) -> bool {
    rules.is_empty() || rules.iter().any(|r| r.matches(ctx))
}

/// The jobs of `template` its rules keep for `ctx`, in file order, and the names of those
/// left out (by their rules, or because they need a job left out). `None` when none is kept.
/// The kept template keeps its scheduling mode: `dag` says whether the original had `needs`.
pub fn keep_jobs(template: &Template, ctx: &RuleContext<'_>) -> (Option<Template>, Vec<JobName>) {
    let mut kept: Vec<bool> = template
        .jobs
        .iter()
        .map(|j| allows(&j.rules, ctx))
        .collect();
    // Fail-closed: leaving out a job leaves out what needs it, transitively.
    loop {
        let mut changed = false;
        for (i, j) in template.jobs.iter().enumerate() {
            if kept[i]
                && j.needs.iter().any(|n| {
                    template
                        .jobs
                        .iter()
                        .position(|o| &o.name == n)
                        .is_some_and(|k| !kept[k])
                })
            {
                kept[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let left_out: Vec<JobName> = template
        .jobs
        .iter()
        .zip(&kept)
        .filter(|(_, k)| !**k)
        .map(|(j, _)| j.name.clone())
        .collect();
    let jobs: Vec<JobTemplate> = template
        .jobs
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|(j, _)| j.clone())
        .collect();
    if jobs.is_empty() {
        return (None, left_out);
    }
    (
        Some(Template {
            jobs,
            ..template.clone()
        }),
        left_out,
    )
}

/// Whether any of `rules`, or any job's rules in `template`, has `changes:` (only then is a
/// diff worth computing).
pub fn uses_changes(rules: &[Rule], template: Option<&Template>) -> bool {
    rules.iter().any(Rule::uses_changes)
        || template.is_some_and(|t| {
            t.jobs
                .iter()
                .any(|j| j.rules.iter().any(Rule::uses_changes))
        })
}

#[cfg(test)]
mod tests;
