//! Error reporting, hostile YAML, the caps, and property tests.

use super::{CONTRACT, err, msg, ok};
use crate::names::JobName;
use crate::template::parse::MAX_REPORTED;
use crate::template::{MAX_JOBS, MAX_RETRIES, Template, parse_template};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

// --- reporting -------------------------------------------------------------------------

#[test]
fn all_problems_are_reported_together() {
    let src = "jobs:\n - {name: a, script: [x], timeout: 1.5h}\n - {name: b, script: []}\n - {name: 'a b', script: [x]}";
    let m = msg(src);
    let parts: Vec<&str> = m.split("; ").collect();
    assert_eq!(parts.len(), 3, "{m}");
    assert!(parts[0].starts_with("jobs[0].timeout: invalid duration \"1.5h\""));
    assert_eq!(parts[1], "jobs[1].script must not be empty");
    assert!(parts[2].starts_with("jobs[2].name \"a b\" is invalid"));
}

#[test]
fn long_error_lists_are_summarized() {
    let mut src = String::from("jobs:\n");
    for _ in 0..30 {
        src.push_str(" - {name: '?', script: [x]}\n");
    }
    let m = msg(&src);
    assert_eq!(m.matches("is invalid").count(), MAX_REPORTED);
    assert!(m.ends_with("; and 10 more problems"), "{m}");
}

// --- robustness ------------------------------------------------------------------------

#[test]
fn hostile_yaml_is_rejected_without_panicking() {
    // Deep nesting and alias expansion bombs.
    let deep = format!("jobs: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_template(&deep).is_err());
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\njobs: [{name: j, script: [x], env: {A: *g}}]";
    assert!(parse_template(bomb).is_err());
    assert!(parse_template("\u{0}").is_err());
}

#[test]
fn alias_expansion_is_capped_before_it_is_built() {
    // One 1 KiB scalar aliased 100,000 times: a 300 KB document that would expand to
    // 100 MB of script.
    let src = format!(
        "inputs: {{x: {{description: &a \"{}\"}}}}\njobs: [{{name: j, image: i, script: [{}x]}}]\n",
        "l".repeat(1024),
        "*a, ".repeat(100_000)
    );
    let e = err(&src);
    let limit = e.limit.clone().expect("a limit error");
    assert_eq!(limit.limit, crate::limits::Limit::YamlScalarBytes);
    // Four times the source (plus 4 KiB), below the absolute cap.
    assert_eq!(limit.max, 4 * src.len() + 4096);
    assert!(limit.max < crate::limits::MAX_YAML_SCALAR_BYTES);
    assert!(
        e.message
            .contains(&format!("(limit yaml_scalar_bytes: {})", limit.max)),
        "{e}"
    );
    assert!(e.line.is_some(), "{e:?}");

    // Many aliases of a sequence of empty strings: the node count trips first.
    let src = format!(
        "jobs:\n  - {{name: a, image: i, script: &s [{}]}}\n{}",
        "'', ".repeat(200),
        (0..2000)
            .map(|i| format!("  - {{name: j{i}, image: i, script: *s}}\n"))
            .collect::<String>()
    );
    let e = err(&src);
    // Too many jobs as well, but the expansion is refused before that is looked at.
    assert_eq!(
        e.limit.as_ref().map(|l| l.limit),
        Some(crate::limits::Limit::YamlNodes)
    );
}

#[test]
fn honest_anchors_are_fine() {
    let src = "jobs:\n  - name: a\n    image: &img rust:1.82\n    script: &s [cargo build, cargo test]\n    env: &e {A: '1', B: '2'}\n  - {name: b, image: *img, script: *s, env: *e}\n  - {name: c, image: *img, script: *s, env: *e}\n";
    let t = ok(src);
    assert_eq!(t.jobs[2].script, vec!["cargo build", "cargo test"]);
    assert_eq!(t.jobs[1].env["B"], "2");
}

#[test]
fn input_counts_and_defaults_are_capped() {
    let inputs = |n: usize| {
        (0..n)
            .map(|i| format!("  i{i}: {{}}\n"))
            .collect::<String>()
    };
    ok(&format!(
        "inputs:\n{}jobs: [{{name: j, script: [x]}}]",
        inputs(crate::limits::MAX_INPUTS)
    ));
    let e = err(&format!(
        "inputs:\n{}jobs: [{{name: j, script: [x]}}]",
        inputs(crate::limits::MAX_INPUTS + 1)
    ));
    assert_eq!(
        e.limit.as_ref().map(|l| l.limit),
        Some(crate::limits::Limit::Inputs)
    );
    assert!(
        e.message
            .starts_with("inputs: the template declares 101 inputs, more than 100"),
        "{e}"
    );
    let big = "d".repeat(crate::limits::MAX_INPUT_VALUE_BYTES + 1);
    let e = err(&format!(
        "inputs: {{v: {{default: {big}}}}}\njobs: [{{name: j, script: [x]}}]"
    ));
    assert_eq!(
        e.limit.as_ref().map(|l| l.limit),
        Some(crate::limits::Limit::InputValueBytes)
    );
    assert!(
        e.message
            .starts_with("inputs.v.default: input \"v\" is 65537 bytes"),
        "{e}"
    );
}

/// Invariants every successfully parsed template satisfies.
fn check_invariants(t: &Template) {
    assert!(!t.jobs.is_empty() && t.jobs.len() <= MAX_JOBS);
    let names: BTreeSet<&JobName> = t.jobs.iter().map(|j| &j.name).collect();
    assert_eq!(names.len(), t.jobs.len());
    for j in &t.jobs {
        assert!(!j.script.is_empty());
        assert!(j.script.iter().all(|l| !l.trim().is_empty()));
        assert!(j.needs.iter().all(|n| names.contains(n) && *n != j.name));
        assert!(j.timeout > Duration::ZERO && j.timeout <= crate::duration::MAX_JOB_TIMEOUT);
        assert!(j.retry.max <= MAX_RETRIES);
    }
    for i in t.referenced_inputs() {
        assert!(t.declares(i.as_str()));
    }
}

/// Applies `edits` (position, kind, byte) to `base`, keeping it valid UTF-8.
fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for &(pos, kind, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let at = pos % chars.len();
        match kind % 3 {
            0 => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            _ => chars[at] = c,
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        if let Ok(t) = parse_template(&s) {
            check_invariants(&t);
        }
    }

    #[test]
    fn never_panics_on_yamlish_text(s in "[a-z:{}\\[\\],\\-# \n'\"&*!|>$.0-9]{0,200}") {
        if let Ok(t) = parse_template(&s) {
            check_invariants(&t);
        }
    }

    #[test]
    fn never_panics_on_mutated_templates(
        edits in proptest::collection::vec(
            (any::<usize>(), any::<u8>(),
             prop_oneof![
                 Just(' '), Just('\n'), Just(':'), Just('-'), Just('['), Just('{'),
                 Just('$'), Just('}'), Just('"'), Just('\''), Just('&'), Just('*'),
                 Just('#'), Just('\t'), any::<char>(),
             ]),
            1..8,
        )
    ) {
        let src = mutate(CONTRACT, &edits);
        match parse_template(&src) {
            Ok(t) => check_invariants(&t),
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }
}
