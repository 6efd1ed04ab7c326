//! Per-key rules: names, script, env, inputs and expressions, image, timeout, needs.

use super::{err, job_with, msg, ok};
use crate::names::InputName;
use crate::template::InputSpec;
use std::time::Duration;

// --- names ------------------------------------------------------------------------

#[test]
fn template_name_is_validated() {
    assert_eq!(
        msg("name: a b\njobs: [{name: j, script: [x]}]"),
        r#"name "a b" is invalid: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"#
    );
}

#[test]
fn job_name_is_required_and_validated() {
    let src = "jobs:\n - {name: a, script: [x]}\n - {name: b, script: [x]}\n - {name: 'a b', script: [x]}\n";
    assert_eq!(
        msg(src),
        r#"jobs[2].name "a b" is invalid: must match ^[A-Za-z0-9_-]{1,64}$"#
    );
    assert_eq!(msg("jobs: [{script: [x]}]"), "jobs[0].name is required");
    // Scalars are names too.
    assert_eq!(
        ok("jobs: [{name: 123, script: [x]}]").jobs[0].name.as_str(),
        "123"
    );
}

#[test]
fn duplicate_job_names() {
    let src = "jobs:\n - {name: compile, script: [x]}\n - {name: b, script: [x]}\n - {name: c, script: [x]}\n - {name: compile, script: [x]}\n";
    assert_eq!(
        msg(src),
        r#"duplicate job name "compile" (jobs[0] and jobs[3])"#
    );
}

// --- script -------------------------------------------------------------------------

#[test]
fn script_rules() {
    assert_eq!(
        msg("jobs:\n - {name: a, script: [x]}\n - {name: b, script: []}\n"),
        "jobs[1].script must not be empty"
    );
    assert_eq!(msg("jobs: [{name: a}]"), "jobs[0].script is required");
    assert_eq!(
        msg("jobs: [{name: a, script: [x, '  ']}]"),
        "jobs[0].script[1] must not be empty"
    );
    let e = err("jobs:\n  - name: a\n    script: [x, ~]\n");
    assert_eq!(
        e.message,
        "jobs[0].script: invalid type: null, expected a string, number or boolean"
    );
    assert_eq!(e.line, Some(3));
    let t = ok("jobs: [{name: a, script: [1.10, true, 42, 'null', \"multi\\nline\"]}]");
    assert_eq!(
        t.jobs[0].script,
        vec!["1.10", "true", "42", "null", "multi\nline"]
    );
    let t = ok("jobs:\n  - name: a\n    script:\n      - |\n        set -e\n        make\n");
    assert_eq!(t.jobs[0].script, vec!["set -e\nmake\n"]);
}

// --- env ----------------------------------------------------------------------------

#[test]
fn env_rules() {
    let t = ok("env: {A: 1, B: true, C: '', D: 1.50}\njobs: [{name: a, script: [x], env: {E: x}}]");
    assert_eq!(t.env["A"], "1");
    assert_eq!(t.env["B"], "true");
    assert_eq!(t.env["C"], "");
    assert_eq!(t.env["D"], "1.50");
    assert_eq!(t.jobs[0].env["E"], "x");

    let e = err(&job_with("    env:\n      A:\n"));
    assert!(
        e.message.starts_with("jobs[0].env: invalid type: null"),
        "{e}"
    );
    assert_eq!(e.line, Some(5));
    let e = err(&job_with("    env:\n      A: {b: c}\n"));
    assert!(
        e.message.starts_with("jobs[0].env.A: invalid type: map"),
        "{e}"
    );
    let e = err("env:\n  A: [1]\njobs: [{name: j, script: [x]}]");
    assert!(
        e.message.starts_with("env.A: invalid type: sequence"),
        "{e}"
    );

    assert_eq!(
        msg(&job_with("    env: {A-B: x}\n")),
        r#"jobs[0].env key "A-B" is invalid: must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"#
    );
    assert_eq!(
        msg("env: {1X: x}\njobs: [{name: j, script: [x]}]"),
        r#"env key "1X" is invalid: must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"#
    );
    let e = err(&job_with("    env:\n      A: 1\n      A: 2\n"));
    assert_eq!(e.message, r#"jobs[0].env: duplicate key "A""#);
    assert_eq!(e.line, Some(5));
}

// --- inputs and expressions -----------------------------------------------------------

#[test]
fn input_rules() {
    let t = ok(
        "inputs:\n  n: {default: 5}\n  b: {default: false, required: true}\n  f: {default: 1.10}\n  bare:\n  empty: {}\njobs: [{name: j, script: [x]}]",
    );
    assert_eq!(t.inputs["n"].default.as_deref(), Some("5"));
    assert_eq!(t.inputs["b"].default.as_deref(), Some("false"));
    assert!(t.inputs["b"].required);
    assert_eq!(t.inputs["f"].default.as_deref(), Some("1.10"));
    assert_eq!(
        t.inputs["bare"],
        InputSpec {
            default: None,
            required: false,
            description: None
        }
    );
    assert!(t.declares("empty") && !t.declares("nope"));

    assert_eq!(
        msg("inputs: {'a b': {}}\njobs: [{name: j, script: [x]}]"),
        r#"input name "a b" is invalid: must match ^[A-Za-z_][A-Za-z0-9_-]{0,63}$"#
    );
    let e = err("inputs:\n  v: 5\njobs: [{name: j, script: [x]}]");
    assert!(e.message.starts_with("inputs.v: invalid type"), "{e}");
    assert_eq!(e.line, Some(2));
    let e = err("inputs:\n  v: {default: [1]}\njobs: [{name: j, script: [x]}]");
    assert!(
        e.message.starts_with("inputs.v.default: invalid type"),
        "{e}"
    );
    let e = err("inputs:\n  v: {}\n  v: {}\njobs: [{name: j, script: [x]}]");
    assert_eq!(e.message, r#"inputs: duplicate key "v""#);
}

#[test]
fn expressions_must_reference_declared_inputs() {
    assert_eq!(
        msg("jobs: [{name: j, script: ['echo ${{ inputs.version }}']}]"),
        r#"jobs[0].script[0] uses input "version", which the template does not declare under inputs"#
    );
    assert_eq!(
        msg("env: {A: '${{inputs.x}}'}\njobs: [{name: j, script: [x]}]"),
        r#"env.A uses input "x", which the template does not declare under inputs"#
    );
    assert_eq!(
        msg(
            "jobs: [{name: j, image: 'r:${{ inputs.v }}', script: [x], env: {B: '${{ inputs.w }}'}}]"
        ),
        r#"jobs[0].image uses input "v", which the template does not declare under inputs; jobs[0].env.B uses input "w", which the template does not declare under inputs"#
    );
}

#[test]
fn only_input_expressions_are_allowed() {
    assert_eq!(
        msg("jobs: [{name: j, script: ['echo ${{ github.TOKEN }}']}]"),
        r#"jobs[0].script[0]: unsupported expression "${{ github.TOKEN }}": only ${{ inputs.NAME }} is supported"#
    );
    // Secrets have their own refusal, pointing at `secrets:` (template/secrets.rs).
    assert!(
        msg("jobs: [{name: j, script: ['echo ${{ secrets.TOKEN }}']}]").contains("job's secrets:")
    );
    let m = msg("inputs: {x: {}}\njobs: [{name: j, script: ['echo ${{ inputs.x']}]");
    assert!(
        m.starts_with("jobs[0].script[0]: unterminated expression"),
        "{m}"
    );
    let m = msg("jobs: [{name: j, script: [x], env: {A: '${{ inputs.1 }}'}}]");
    assert!(
        m.starts_with(r#"jobs[0].env.A: invalid input name "1""#),
        "{m}"
    );
}

#[test]
fn shell_variables_and_compact_expressions_are_fine() {
    let t = ok(
        "inputs: {x: {}, y: {}}\njobs: [{name: j, image: 'i:${{inputs.x}}', script: ['echo $HOME ${PATH} ${{inputs.x}}${{   inputs.y   }}']}]",
    );
    assert_eq!(
        t.referenced_inputs(),
        ["x", "y"]
            .iter()
            .map(|s| InputName::parse(s).unwrap())
            .collect()
    );
}

#[test]
fn referenced_inputs_covers_all_expandable_text() {
    let t = ok(
        "inputs: {a: {}, b: {}, c: {}, d: {}, unused: {}}\nenv: {E: '${{ inputs.a }}'}\njobs: [{name: j, image: 'x:${{ inputs.b }}', script: ['${{ inputs.c }}'], env: {F: '${{ inputs.d }}'}}]",
    );
    let got: Vec<String> = t
        .referenced_inputs()
        .into_iter()
        .map(InputName::into_string)
        .collect();
    assert_eq!(got, vec!["a", "b", "c", "d"]);
}

// --- image ------------------------------------------------------------------------------

#[test]
fn image_rules() {
    assert_eq!(
        msg(&job_with("    image: ''\n")),
        "jobs[0].image must not be empty"
    );
    assert_eq!(
        msg(&job_with("    image: 'rust 1.82'\n")),
        r#"jobs[0].image "rust 1.82" must not contain whitespace"#
    );
    let t = ok("inputs: {v: {}}\njobs: [{name: j, image: 'rust:${{ inputs.v }}', script: [x]}]");
    assert_eq!(t.jobs[0].image.as_deref(), Some("rust:${{ inputs.v }}"));
    // A null image is no image.
    assert_eq!(ok(&job_with("    image:\n")).jobs[0].image, None);
}

#[test]
fn missing_images_lists_jobs_without_one() {
    let t = ok(
        "jobs: [{name: a, script: [x], image: i}, {name: b, script: [x]}, {name: c, script: [x]}]",
    );
    let names: Vec<&str> = t.missing_images().iter().map(|n| n.as_str()).collect();
    assert_eq!(names, vec!["b", "c"]);
}

// --- runs_on (SPEC §13) -------------------------------------------------------------------

#[test]
fn runs_on_is_label_pairs_and_engine_shell_needs_no_image() {
    let t = ok(&job_with(
        "    runs_on: {engine: shell, zone: a, gpu: true}\n",
    ));
    let runs_on = &t.jobs[0].runs_on;
    assert_eq!(runs_on.get("engine").map(String::as_str), Some("shell"));
    assert_eq!(runs_on.get("gpu").map(String::as_str), Some("true"));
    assert!(t.jobs[0].on_shell());
    assert!(
        t.missing_images().is_empty(),
        "engine: shell needs no image"
    );
    let t = ok(&job_with("    runs_on: {zone: a}\n"));
    assert_eq!(t.missing_images().len(), 1, "any other job still needs one");
    for (bad, says) in [
        (
            "    runs_on: {engine: podman}\n",
            "runs_on.engine must be one of docker, shell",
        ),
        ("    runs_on: {Zone: a}\n", "label key"),
        ("    runs_on: {zone: 'a b'}\n", "value of label zone"),
        ("    runs_on: {zone: a, zone: b}\n", "zone"),
        ("    runs_on: [zone]\n", "mapping"),
    ] {
        let m = msg(&job_with(bad));
        assert!(m.contains(says), "{bad}: {m}");
    }
}

// --- timeout ----------------------------------------------------------------------------

#[test]
fn timeout_rules() {
    let t = |s: &str| ok(&job_with(&format!("    timeout: {s}\n"))).jobs[0].timeout;
    assert_eq!(t("10m"), Duration::from_secs(600));
    assert_eq!(t("1h30m"), Duration::from_secs(5400));
    assert_eq!(t("600"), Duration::from_secs(600));
    assert_eq!(t("'45s'"), Duration::from_secs(45));
    let m = |s: &str| msg(&job_with(&format!("    timeout: {s}\n")));
    assert!(m("1.5h").starts_with(r#"jobs[0].timeout: invalid duration "1.5h""#));
    assert!(m("0").contains("must be greater than zero"));
    assert!(m("25h").contains("exceeds the maximum of 24h"));
    assert!(m("-5").starts_with("jobs[0].timeout: invalid duration"));
    assert!(m("1.5").starts_with("jobs[0].timeout: invalid duration"));
    assert!(m("10 m").contains("invalid duration"));
    let e = err(&job_with("    timeout: [1]\n"));
    assert!(
        e.message.starts_with("jobs[0].timeout: invalid type"),
        "{e}"
    );
}

// --- needs ------------------------------------------------------------------------------

#[test]
fn needs_must_name_other_jobs_of_the_template() {
    assert_eq!(
        msg("jobs: [{name: a, script: [x], needs: [nope]}]"),
        r#"jobs[0].needs[0] "nope" is not a job of this template"#
    );
    assert_eq!(
        msg("jobs: [{name: a, script: [x], needs: [a]}]"),
        r#"jobs[0].needs[0]: job "a" cannot need itself"#
    );
    assert_eq!(
        msg("jobs: [{name: a, script: [x]}, {name: b, script: [x], needs: [a, a]}]"),
        r#"jobs[1].needs lists "a" more than once"#
    );
    assert_eq!(
        msg("jobs: [{name: a, script: [x], needs: ['x y']}]"),
        r#"jobs[0].needs[0] "x y" is invalid: must match ^[A-Za-z0-9_-]{1,64}$"#
    );
}

#[test]
fn needs_cycles_are_reported_by_name() {
    assert_eq!(
        msg("jobs: [{name: a, script: [x], needs: [b]}, {name: b, script: [x], needs: [a]}]"),
        "jobs form a cycle: a -> b -> a"
    );
    // A job that is merely downstream of a cycle is not part of it.
    assert_eq!(
        msg(
            "jobs:\n - {name: z, script: [x], needs: [c]}\n - {name: a, script: [x]}\n - {name: b, script: [x], needs: [a, d]}\n - {name: c, script: [x], needs: [b]}\n - {name: d, script: [x], needs: [c]}\n"
        ),
        "jobs form a cycle: c -> b -> d -> c"
    );
}

#[test]
fn acyclic_dag_is_accepted() {
    let t = ok(
        "jobs:\n - {name: a, script: [x]}\n - {name: b, script: [x], needs: [a]}\n - {name: c, script: [x], needs: [a, b]}\n - {name: d, script: [x], needs: [c, b]}\n",
    );
    assert!(t.uses_dag());
    assert_eq!(t.jobs[3].needs.len(), 2);
    // A later job may be needed by an earlier one.
    ok("jobs: [{name: a, script: [x], needs: [b]}, {name: b, script: [x]}]");
}
