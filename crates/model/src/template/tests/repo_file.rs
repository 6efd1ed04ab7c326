//! The repo pipeline file: SPEC §3 plus include and rules, errors with file, line, column.

use crate::rules::RuleEvent;
use crate::template::{parse_repo_file, parse_template};
use proptest::prelude::*;

const SPEC_EXAMPLE: &str = r#"
include:                       # stored templates, run as stages before the file's own jobs
  - template: build
    inputs: { profile: release }
rules:                         # the pipeline runs only if one rule matches (absent = always)
  - event: [push]              # push | tag | pull_request | api | rerun
    branch: [main, "release/*"]  # glob on the branch name; `tag:` likewise for tags
  - event: [pull_request]
jobs:
  - name: deploy
    image: debian:bookworm-slim
    script: [./deploy.sh]
    rules:                     # a job whose rules match nothing is left out of the run
      - branch: [main]
        changes: ["src/**", Cargo.lock]   # some path changed between the push's before and after
"#;

#[test]
fn the_spec_example_parses() {
    let f = parse_repo_file(SPEC_EXAMPLE, ".gitweave.yml").expect("parse");
    assert_eq!(f.include.len(), 1);
    assert_eq!(f.include[0].template.as_str(), "build");
    assert_eq!(f.include[0].inputs["profile"], "release");
    assert_eq!(f.rules.len(), 2);
    assert_eq!(f.rules[0].event, [RuleEvent::Push]);
    assert_eq!(f.rules[0].branch, ["main", "release/*"]);
    let t = f.pipeline.expect("jobs");
    assert_eq!(t.jobs[0].rules[0].changes, ["src/**", "Cargo.lock"]);
    // A one-word list is a list of one.
    let f = parse_repo_file(
        "rules: [{branch: main}]\njobs: [{name: a, script: [x]}]",
        "f",
    )
    .expect("parse");
    assert_eq!(f.rules[0].branch, ["main"]);
}

#[test]
fn a_file_may_only_include() {
    let f = parse_repo_file("include: [{template: build}]\n", ".gitweave.yml").expect("parse");
    assert!(f.pipeline.is_none());
    let e = parse_repo_file("rules: [{event: [push]}]\n", ".gitweave.yml").expect_err("nothing");
    assert!(e.to_string().contains("jobs must not be empty"), "{e}");
}

#[test]
fn a_stored_template_refuses_include_and_rules() {
    for src in [
        "include: [{template: b}]\njobs: [{name: a, script: [x]}]",
        "rules: [{event: [push]}]\njobs: [{name: a, script: [x]}]",
        "jobs: [{name: a, script: [x], rules: [{branch: [main]}]}]",
    ] {
        let e = parse_template(src).expect_err(src);
        assert!(e.message.contains("only in a repo's pipeline file"), "{e}");
    }
}

#[test]
fn errors_name_the_file_line_and_column() {
    // A YAML error: the library's location.
    let e =
        parse_repo_file("jobs:\n  - name: a\n    script: [x\n", ".gitweave.yml").expect_err("yaml");
    let text = e.to_string();
    assert!(text.starts_with(".gitweave.yml: "), "{text}");
    assert!(e.line.is_some() && e.column.is_some(), "{text}");
    // A validation error: the place of its path.
    let src = "rules:\n  - event: [push]\njobs:\n  - name: a\n    script: [x]\n  - name: b\n    script: []\n";
    let e = parse_repo_file(src, ".gitweave.yml").expect_err("empty script");
    assert_eq!((e.line, e.column), (Some(7), Some(5)), "{e}");
    assert_eq!(
        e.to_string(),
        ".gitweave.yml: jobs[1].script must not be empty at line 7 column 5"
    );
    // A sequence at its key's indent, a bad rule event, a bad glob.
    let src = "jobs:\n- name: a\n  script: [x]\n  rules:\n  - branch: [\"[\"]\n";
    let e = parse_repo_file(src, ".gitweave.yaml").expect_err("glob");
    assert!(e.to_string().contains("jobs[0].rules[0].branch[0]"), "{e}");
    assert_eq!(e.line, Some(5), "{e}");
    let e = parse_repo_file(
        "rules: [{event: [merge]}]\njobs: [{name: a, script: [x]}]",
        "f",
    )
    .expect_err("event");
    assert!(
        e.message.contains("\"merge\" is not one of push, tag"),
        "{e}"
    );
    assert_eq!(e.line, Some(1), "{e}");
    let e = parse_repo_file("include: [{template: a}, {template: a}]\n", "f").expect_err("twice");
    assert!(e.message.contains("included more than once"), "{e}");
    let e = parse_repo_file("rules: []\njobs: [{name: a, script: [x]}]", "f").expect_err("empty");
    assert!(e.message.contains("rules must not be empty"), "{e}");
}

proptest! {
    /// Any text: an answer, never a panic; an error always names the file.
    #[test]
    fn any_text_is_answered_and_errors_name_the_file(src in "(jobs|rules|include|- |name: |\\[|\\]|\\{|\\}|: |\\n|  |a|\\*)*") {
        if let Err(e) = parse_repo_file(&src, ".gitweave.yml") {
            prop_assert!(e.to_string().starts_with(".gitweave.yml: "));
        }
    }
}
