//! Unit and property tests of template parsing, by concern.

use crate::template::{Template, TemplateError, parse_template};

/// The example from the template format's contract.
const CONTRACT: &str = r#"
name: build                    # optional; the stored name wins
inputs:                        # optional
  profile: { default: release, description: cargo profile }
  version: { required: true }
env:                           # optional, for every job
  RUST_LOG: info
jobs:
  - name: compile
    image: rust:1.82
    script:
      - cargo build --profile ${{ inputs.profile }}
    env: { KEY: value }
    timeout: 10m
    needs: [other-job]
    allow_failure: false
    retry: 2
    when: on_success
  - name: other-job
    script:
      - echo "${{inputs.version}}"
    retry: { max: 2, when: [runner_failure, timeout, exit_code], exit_codes: [137] }
    when: manual
"#;

fn ok(src: &str) -> Template {
    match parse_template(src) {
        Ok(t) => t,
        Err(e) => panic!("expected {src:?} to parse, got: {e}"),
    }
}

fn err(src: &str) -> TemplateError {
    match parse_template(src) {
        Ok(t) => panic!("expected {src:?} to fail, got {t:?}"),
        Err(e) => e,
    }
}

fn msg(src: &str) -> String {
    err(src).message
}

/// A one-job template with `extra` added to the job's mapping.
fn job_with(extra: &str) -> String {
    format!("jobs:\n  - name: j\n    script: [x]\n{extra}")
}

mod repo_file;
mod retry;
mod robustness;
mod rules;
mod shape;
