//! The contract example, defaults, and size and shape errors.

use super::{CONTRACT, err, job_with, msg, ok};
use crate::duration::DEFAULT_JOB_TIMEOUT;
use crate::names::{JobName, TemplateName};
use crate::status::ErrorClass;
use crate::template::{
    InputSpec, MAX_JOBS, MAX_TEMPLATE_BYTES, RetryPolicy, Template, TemplateError, When,
};
use std::time::Duration;

#[test]
fn when_names_match_serde_and_parse_back() {
    for w in When::ALL {
        let json = serde_json::to_value(w).unwrap();
        assert_eq!(json, serde_json::Value::from(w.as_str()));
        assert_eq!(w.as_str().parse::<When>().unwrap(), w);
    }
    assert!("sometimes".parse::<When>().is_err());
}
#[test]
fn parses_the_contract_example() {
    let t = ok(CONTRACT);
    assert_eq!(t.name.as_ref().map(TemplateName::as_str), Some("build"));
    assert_eq!(
        t.inputs["profile"],
        InputSpec {
            default: Some("release".into()),
            required: false,
            description: Some("cargo profile".into())
        }
    );
    assert_eq!(
        t.inputs["version"],
        InputSpec {
            default: None,
            required: true,
            description: None
        }
    );
    assert_eq!(t.env["RUST_LOG"], "info");
    let compile = &t.jobs[0];
    assert_eq!(compile.name.as_str(), "compile");
    assert_eq!(compile.image.as_deref(), Some("rust:1.82"));
    assert_eq!(
        compile.script,
        vec!["cargo build --profile ${{ inputs.profile }}"]
    );
    assert_eq!(compile.env["KEY"], "value");
    assert_eq!(compile.timeout, Duration::from_secs(600));
    assert_eq!(compile.needs, vec![JobName::parse("other-job").unwrap()]);
    assert!(!compile.allow_failure);
    assert_eq!(compile.retry, RetryPolicy::count(2));
    assert_eq!(compile.when, When::OnSuccess);
    let other = &t.jobs[1];
    assert_eq!(other.image, None);
    assert_eq!(
        other.retry,
        RetryPolicy {
            max: 2,
            when: vec![
                ErrorClass::RunnerFailure,
                ErrorClass::Timeout,
                ErrorClass::ExitCode
            ],
            exit_codes: vec![137]
        }
    );
    assert_eq!(other.when, When::Manual);
    assert!(t.uses_dag());
}

#[test]
fn defaults() {
    let t = ok("jobs: [{name: j, script: [make]}]");
    assert_eq!(t.name, None);
    assert!(t.inputs.is_empty() && t.env.is_empty());
    let j = &t.jobs[0];
    assert_eq!(j.timeout, DEFAULT_JOB_TIMEOUT);
    assert_eq!(j.retry, RetryPolicy::default());
    assert_eq!(j.retry.max, 0);
    assert_eq!(j.when, When::OnSuccess);
    assert!(!j.allow_failure);
    assert!(j.needs.is_empty() && j.env.is_empty() && j.image.is_none());
    assert!(!t.uses_dag());
}

#[test]
fn json_round_trip() {
    let t = ok(CONTRACT);
    let json = serde_json::to_string(&t).unwrap();
    assert!(json.contains(r#""timeout":600"#), "{json}");
    assert!(json.contains(r#""when":"on_success""#), "{json}");
    assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), t);
}

#[test]
fn error_display_includes_location_when_known() {
    let e = TemplateError {
        file: None,
        message: "boom".into(),
        line: Some(3),
        column: Some(5),
        limit: None,
    };
    assert_eq!(e.to_string(), "boom at line 3 column 5");
    assert_eq!(TemplateError::new("boom".into()).to_string(), "boom");
}

// --- size and shape -------------------------------------------------------------

#[test]
fn size_cap_is_checked_before_parsing() {
    // Not even valid YAML: the cap must win.
    let big = "[".repeat(MAX_TEMPLATE_BYTES + 1);
    let e = err(&big);
    assert_eq!(
        e.message,
        format!(
            "template is {} bytes, more than the maximum of 524288 bytes",
            MAX_TEMPLATE_BYTES + 1
        )
    );
    let base = "jobs: [{name: j, script: [x]}]\n#";
    let exact = format!("{base}{}", "x".repeat(MAX_TEMPLATE_BYTES - base.len()));
    assert_eq!(exact.len(), MAX_TEMPLATE_BYTES);
    ok(&exact);
}

#[test]
fn job_count_is_capped() {
    let jobs = |n: usize| {
        let mut s = String::from("jobs:\n");
        for i in 0..n {
            s.push_str(&format!("  - {{name: j{i}, script: [x]}}\n"));
        }
        s
    };
    assert_eq!(ok(&jobs(MAX_JOBS)).jobs.len(), MAX_JOBS);
    assert_eq!(
        msg(&jobs(MAX_JOBS + 1)),
        "template has 501 jobs, more than the maximum of 500"
    );
}

#[test]
fn jobs_must_not_be_empty() {
    assert_eq!(msg(""), "jobs must not be empty");
    assert_eq!(msg("name: x"), "jobs must not be empty");
    assert_eq!(msg("jobs: []"), "jobs must not be empty");
    assert_eq!(msg("jobs:"), "jobs must not be empty");
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let src = "jobs:\n  - name: a\n    script: [x]\n   bad: indent\n";
    let e = err(src);
    assert_eq!((e.line, e.column), (Some(4), Some(4)));
    assert!(
        e.message.contains("did not find expected '-' indicator"),
        "{e}"
    );
    assert!(e.to_string().ends_with(" at line 4 column 4"), "{e}");
    // The location is not repeated inside the message.
    assert!(!e.message.contains("line 4"), "{e}");

    let e = err("jobs:\n  - name: a\n    script: [x\n");
    assert_eq!((e.line, e.column), (Some(4), Some(1)));
    assert!(
        e.message.contains("did not find expected ',' or ']'"),
        "{e}"
    );

    let e = err("jobs: [ok]\n\tname: x\n");
    assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
}

#[test]
fn unknown_field_is_reported_with_location() {
    let e = err("jobs:\n  - name: a\n    scrpit: [x]\n");
    assert!(
        e.message
            .starts_with(r#"jobs[0]: unknown field "scrpit", expected one of "name""#),
        "{e}"
    );
    assert_eq!((e.line, e.column), (Some(3), Some(5)));
    let e = err("jobz: []\n");
    assert!(e.message.contains(r#"unknown field "jobz""#), "{e}");
    assert_eq!(e.line, Some(1));
    let e = err("inputs:\n  v: { defualt: 1 }\njobs: [{name: j, script: [x]}]\n");
    assert!(
        e.message.contains(r#"inputs.v: unknown field "defualt""#),
        "{e}"
    );
    assert_eq!(e.line, Some(2));
}

#[test]
fn type_errors_have_path_and_location() {
    let e = err("jobs: 5\n");
    assert_eq!(
        e.message,
        r#"jobs: invalid type: integer "5", expected a sequence"#
    );
    assert_eq!((e.line, e.column), (Some(1), Some(7)));

    let e = err("- a\n");
    assert!(e.message.contains("expected a template mapping"), "{e}");

    // An unquoted colon makes a map, not a shell line.
    let e = err("jobs:\n  - name: a\n    script:\n      - echo a: b\n");
    assert_eq!(
        e.message,
        "jobs[0].script[0]: invalid type: map, expected a string"
    );
    assert_eq!((e.line, e.column), (Some(4), Some(9)));

    let e = err(&job_with("    allow_failure: yes\n"));
    assert!(
        e.message.starts_with("jobs[0].allow_failure: invalid type"),
        "{e}"
    );
    assert_eq!(e.line, Some(4));

    let e = err(&job_with("    when: never\n"));
    assert!(e.message.contains(r#"unknown variant "never""#), "{e}");
    assert_eq!(e.line, Some(4));

    let e = err(&job_with("    needs: other\n"));
    assert!(e.message.starts_with("jobs[0].needs: invalid type"), "{e}");

    let e = err("jobs:\n  - name: a\n    name: b\n    script: [x]\n");
    assert!(e.message.contains(r#"duplicate field "name""#), "{e}");

    let e = err("jobs: [{name: j, script: [x]}]\n---\njobs: []\n");
    assert!(e.message.contains("more than one document"), "{e}");
}
