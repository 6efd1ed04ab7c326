//! The `retry` forms and `when` / `allow_failure`.

use super::{job_with, ok};
use crate::status::ErrorClass;
use crate::template::{RetryPolicy, When, parse_template};

// --- retry ------------------------------------------------------------------------------

fn retry(yaml: &str) -> Result<RetryPolicy, String> {
    parse_template(&job_with(&format!("    retry: {yaml}\n")))
        .map(|t| t.jobs[0].retry.clone())
        .map_err(|e| e.message)
}

#[test]
fn retry_count_form() {
    assert_eq!(retry("3"), Ok(RetryPolicy::count(3)));
    assert_eq!(retry("0"), Ok(RetryPolicy::default()));
    assert_eq!(
        RetryPolicy::count(1).when,
        vec![
            ErrorClass::RunnerFailure,
            ErrorClass::Timeout,
            ErrorClass::ExitCode,
            ErrorClass::OomKilled,
            ErrorClass::ImageNotFound,
            ErrorClass::ServiceFailed
        ]
    );
    assert_eq!(retry("10"), Ok(RetryPolicy::count(10)));
    assert_eq!(
        retry("11"),
        Err("jobs[0].retry is 11: must be between 0 and 10".into())
    );
    assert_eq!(
        retry("-1"),
        Err("jobs[0].retry is -1: must be between 0 and 10".into())
    );
    assert!(retry("'2'").unwrap_err().contains("expected a retry count"));
    assert!(retry("[1]").unwrap_err().contains("expected a retry count"));
}

#[test]
fn retry_map_form() {
    assert_eq!(retry("{max: 2}"), Ok(RetryPolicy::count(2)));
    assert_eq!(
        retry("{max: 1, when: [oom_killed, timeout, oom_killed]}"),
        Ok(RetryPolicy {
            max: 1,
            when: vec![ErrorClass::OomKilled, ErrorClass::Timeout],
            exit_codes: vec![]
        })
    );
    assert_eq!(
        retry("{max: 1, exit_codes: [137, -1]}").map(|r| r.exit_codes),
        Ok(vec![137, -1])
    );
    assert_eq!(
        retry("{max: 11}"),
        Err("jobs[0].retry.max is 11: must be between 0 and 10".into())
    );
    assert_eq!(
        retry("{max: 1, when: [canceled]}"),
        Err("jobs[0].retry.when[0]: canceled failures are never retried".into())
    );
    assert_eq!(
        retry("{max: 1, when: [timeout, config_error]}"),
        Err("jobs[0].retry.when[1]: config_error failures are never retried".into())
    );
    assert_eq!(
            retry("{max: 1, when: [flaky]}"),
            Err(r#"jobs[0].retry.when[0] "flaky" is not a failure class: must be one of runner_failure, timeout, exit_code, oom_killed, image_not_found, service_failed"#.into())
        );
    assert!(
        retry("{max: 1, when: []}")
            .unwrap_err()
            .contains("retry.when must not be empty")
    );
    assert!(
        retry("{max: 1, when: [timeout], exit_codes: [1]}")
            .unwrap_err()
            .contains("does not include exit_code")
    );
    assert!(
        retry("{when: [timeout]}")
            .unwrap_err()
            .contains(r#"missing field "max""#)
    );
    assert!(
        retry("{max: 1, tries: 2}")
            .unwrap_err()
            .contains(r#"unknown field "tries""#)
    );
}

#[test]
fn retry_allows() {
    let r = RetryPolicy::count(2);
    assert!(r.allows(ErrorClass::Timeout, None, 1));
    assert!(r.allows(ErrorClass::ExitCode, Some(1), 2));
    assert!(!r.allows(ErrorClass::ExitCode, Some(1), 3));
    assert!(!r.allows(ErrorClass::Canceled, None, 1));
    assert!(!r.allows(ErrorClass::ConfigError, None, 1));
    assert!(!RetryPolicy::default().allows(ErrorClass::Timeout, None, 1));

    let r = RetryPolicy {
        max: 3,
        when: vec![ErrorClass::ExitCode, ErrorClass::RunnerFailure],
        exit_codes: vec![137],
    };
    assert!(r.allows(ErrorClass::ExitCode, Some(137), 1));
    assert!(!r.allows(ErrorClass::ExitCode, Some(1), 1));
    assert!(!r.allows(ErrorClass::ExitCode, None, 1));
    // The exit code filter only concerns exit_code failures.
    assert!(r.allows(ErrorClass::RunnerFailure, None, 3));
    assert!(!r.allows(ErrorClass::Timeout, None, 1));
}

// --- when / allow_failure -----------------------------------------------------------------

#[test]
fn when_and_allow_failure() {
    let t = ok(
        "jobs: [{name: a, script: [x], when: manual, allow_failure: true}, {name: b, script: [x], when: always}]",
    );
    assert_eq!(t.jobs[0].when, When::Manual);
    assert!(t.jobs[0].allow_failure);
    assert_eq!(t.jobs[1].when, When::Always);
    assert_eq!(
        serde_json::to_string(&When::OnSuccess).unwrap(),
        r#""on_success""#
    );
}
