use crate::template::parse_template;

fn job(secrets: &str) -> String {
    format!(
        "jobs:\n  - name: deploy\n    image: alpine\n    script: [\"./deploy\"]\n    env: {{ MODE: prod }}\n    secrets: {secrets}\n"
    )
}

#[test]
fn names_and_mappings_become_env_vars() {
    let t = parse_template(&job(
        "[DEPLOY_TOKEN, {name: NPM_TOKEN, env: NODE_AUTH_TOKEN}, {name: _X}]",
    ))
    .expect("valid");
    let got: Vec<(&str, &str)> = t.jobs[0]
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.env.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("DEPLOY_TOKEN", "DEPLOY_TOKEN"),
            ("NPM_TOKEN", "NODE_AUTH_TOKEN"),
            ("_X", "_X")
        ]
    );
    let none = parse_template("jobs:\n  - { name: a, image: x, script: [true] }\n").expect("valid");
    assert!(none.jobs[0].secrets.is_empty());
}

#[test]
fn bad_names_env_vars_and_duplicates_are_refused_with_their_place() {
    for (secrets, want) in [
        ("[deploy_token]", "jobs[0].secrets[0].name"),
        ("[{name: A, env: 1VAR}]", "jobs[0].secrets[0].env"),
        (
            "[A, {name: B, env: A}]",
            "jobs[0].secrets[1]: environment variable \"A\" is given more than one secret",
        ),
        ("[MODE]", "also set in jobs[0].env"),
        ("[{name: A, other: B}]", "secret name, or a mapping"),
    ] {
        let e = parse_template(&job(secrets))
            .expect_err(secrets)
            .to_string();
        assert!(e.contains(want), "{secrets}: {e}");
    }
}

#[test]
fn secret_expressions_are_refused_anywhere_pointing_at_secrets() {
    for (yaml, line) in [
        (
            "jobs:\n  - { name: a, image: x, script: [\"echo ${{ secrets.TOKEN }}\"] }\n",
            2,
        ),
        (
            "env: { T: \"${{secrets.T}}\" }\njobs:\n  - { name: a, image: x, script: [true] }\n",
            1,
        ),
        (
            "jobs:\n  - name: a\n    image: x\n    script: [true]\n    env: { A: \"${{   secrets.A }}\" }\n",
            5,
        ),
    ] {
        let e = parse_template(yaml).expect_err(yaml).to_string();
        assert!(
            e.contains("secrets:") && e.contains(&format!("line {line}")),
            "{e}"
        );
    }
    // Other text with "secrets." is fine.
    parse_template("jobs:\n  - { name: a, image: x, script: [\"echo secrets.txt ${{ inputs.x }}\"] }\ninputs: { x: { default: y } }\n")
        .expect("valid");
}
