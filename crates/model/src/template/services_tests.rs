use crate::template::{
    DEFAULT_READY_TIMEOUT, MAX_SERVICES, Ready, ReadyCheck, Service, parse_template,
};
use proptest::prelude::*;
use std::time::Duration;

fn job(services: &str) -> String {
    format!(
        "jobs:\n  - name: integration\n    image: postgres:15-bookworm\n    script: [\"psql -h db -U postgres -c 'select 1'\"]\n    services: {services}\n"
    )
}

fn parsed(services: &str) -> Vec<Service> {
    match parse_template(&job(services)) {
        Ok(t) => t.jobs[0].services.clone(),
        Err(e) => panic!("{services}: {e}"),
    }
}

fn refused(services: &str) -> String {
    match parse_template(&job(services)) {
        Ok(_) => panic!("{services} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_spec_example_parses_into_its_parts() {
    let got = parsed(
        "\n      - name: db\n        image: postgres:15-bookworm\n        env: { POSTGRES_PASSWORD: ci }\n        command: [postgres, -c, fsync=off]\n        ready: { tcp: 5432, timeout: 30s }\n      - name: cache\n        image: redis:7\n        ready: { command: \"redis-cli ping\" }\n      - { name: plain, image: busybox }",
    );
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].name.as_str(), "db");
    assert_eq!(got[0].image, "postgres:15-bookworm");
    assert_eq!(
        got[0].env.get("POSTGRES_PASSWORD").map(String::as_str),
        Some("ci")
    );
    assert_eq!(
        got[0].command.as_deref(),
        Some(&["postgres".to_owned(), "-c".into(), "fsync=off".into()][..])
    );
    assert_eq!(
        got[0].ready,
        Some(Ready {
            check: ReadyCheck::Tcp(5432),
            timeout: Duration::from_secs(30)
        })
    );
    assert_eq!(
        got[1].ready,
        Some(Ready {
            check: ReadyCheck::Command("redis-cli ping".into()),
            timeout: DEFAULT_READY_TIMEOUT
        })
    );
    assert_eq!(
        (got[2].command.as_ref(), got[2].ready.as_ref()),
        (None, None)
    );
    let none = parse_template("jobs:\n  - { name: a, image: x, script: [true] }\n").expect("valid");
    assert!(none.jobs[0].services.is_empty());
}

#[test]
fn bad_services_are_refused_naming_their_place_and_the_rule() {
    for (services, want) in [
        ("[{image: x}]", "jobs[0].services[0].name is required"),
        ("[{name: db}]", "jobs[0].services[0].image is required"),
        (
            "[{name: DB, image: x}]",
            "jobs[0].services[0].name \"DB\" is invalid",
        ),
        ("[{name: my_db, image: x}]", "must match ^[a-z0-9]"),
        ("[{name: -db, image: x}]", "jobs[0].services[0].name"),
        ("[{name: localhost, image: x}]", "\"localhost\" is reserved"),
        (
            "[{name: db, image: x}, {name: db, image: y}]",
            "jobs[0].services[1].name \"db\" is used by another service",
        ),
        (
            "[{name: integration, image: x}]",
            "jobs[0].services[0].name \"integration\" is the job's own name",
        ),
        (
            "[{name: db, image: \"a b\"}]",
            "must not contain whitespace",
        ),
        ("[{name: db, image: \"\"}]", "image must not be empty"),
        (
            "[{name: db, image: x, ready: {tcp: 0}}]",
            "is not a TCP port",
        ),
        (
            "[{name: db, image: x, ready: {tcp: 70000}}]",
            "is not a TCP port",
        ),
        (
            "[{name: db, image: x, ready: {tcp: abc}}]",
            "is not a TCP port",
        ),
        (
            "[{name: db, image: x, ready: {tcp: 1, command: true}}]",
            "has both tcp and command",
        ),
        (
            "[{name: db, image: x, ready: {timeout: 5s}}]",
            "needs tcp (a port) or command",
        ),
        (
            "[{name: db, image: x, ready: {command: \" \"}}]",
            "ready.command must not be empty",
        ),
        (
            "[{name: db, image: x, ready: {tcp: 1, timeout: 2h}}]",
            "longer than the maximum of 1h",
        ),
        (
            "[{name: db, image: x, ready: {tcp: 1, timeout: soon}}]",
            "ready.timeout",
        ),
        (
            "[{name: db, image: x, ports: [1]}]",
            "unknown field \"ports\"",
        ),
        (
            "[{name: db, image: x, env: {1X: y}}]",
            "jobs[0].services[0].env key",
        ),
    ] {
        let e = refused(services);
        assert!(e.contains(want), "{services}: {e}");
    }
}

#[test]
fn the_name_clash_with_the_job_ignores_case_as_host_names_do() {
    let yaml = "jobs:\n  - name: DB\n    image: x\n    script: [true]\n    services: [{name: db, image: x}]\n";
    let e = parse_template(yaml).expect_err("clash").to_string();
    assert!(e.contains("the job's own name"), "{e}");
}

#[test]
fn size_caps_hold() {
    let many: Vec<String> = (0..=MAX_SERVICES)
        .map(|i| format!("{{name: s{i}, image: x}}"))
        .collect();
    let e = refused(&format!("[{}]", many.join(", ")));
    assert!(e.contains("more than the maximum of 10"), "{e}");
    assert_eq!(
        parsed(&format!("[{}]", many[..MAX_SERVICES].join(", "))).len(),
        10
    );

    let words = vec!["w"; 257].join(", ");
    let e = refused(&format!("[{{name: db, image: x, command: [{words}]}}]"));
    assert!(e.contains("command has 257 words"), "{e}");

    let long = "x".repeat(4097);
    let e = refused(&format!(
        "[{{name: db, image: x, ready: {{command: {long}}}}}]"
    ));
    assert!(e.contains("ready.command is 4097 bytes"), "{e}");
}

#[test]
fn inputs_are_expanded_in_services_and_must_be_declared() {
    use crate::expand::{RunBudget, expand_job};
    let yaml = "inputs:\n  pg: { default: \"15\" }\njobs:\n  - name: t\n    image: x\n    script: [true]\n    services:\n      - name: db\n        image: \"postgres:${{ inputs.pg }}\"\n        env: { V: \"${{ inputs.pg }}\" }\n        command: [\"-v${{ inputs.pg }}\"]\n        ready: { command: \"check ${{ inputs.pg }}\" }\n";
    let t = parse_template(yaml).expect("valid");
    assert!(t.referenced_inputs().iter().any(|i| i.as_str() == "pg"));
    let inputs = [("pg".parse().expect("name"), "16".to_owned())].into();
    let job = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).expect("expands");
    let s = &job.services[0];
    assert_eq!(s.image, "postgres:16");
    assert_eq!(s.env.get("V").map(String::as_str), Some("16"));
    assert_eq!(s.command.as_deref(), Some(&["-v16".to_owned()][..]));
    assert_eq!(
        s.ready.as_ref().map(|r| &r.check),
        Some(&ReadyCheck::Command("check 16".into()))
    );

    let undeclared = "jobs:\n  - name: t\n    image: x\n    script: [true]\n    services: [{name: db, image: \"${{ inputs.nope }}\"}]\n";
    assert!(parse_template(undeclared).is_err());
}

#[test]
fn a_service_round_trips_through_its_stored_json() {
    let got = parsed(
        "[{name: db, image: x, env: {A: b}, command: [c], ready: {tcp: 5432, timeout: 1m}}]",
    );
    let json = serde_json::to_string(&got).expect("json");
    assert_eq!(
        json,
        r#"[{"name":"db","image":"x","env":{"A":"b"},"command":["c"],"ready":{"tcp":5432,"timeout":60}}]"#
    );
    let back: Vec<Service> = serde_json::from_str(&json).expect("back");
    assert_eq!(back, got);
}

proptest! {
    /// Any valid name list is accepted exactly when its names are unique and none is the
    /// job's name; never a panic, and what is accepted keeps the order written.
    #[test]
    fn names_are_accepted_exactly_when_valid_and_unique(
        names in proptest::collection::vec("[a-z0-9]{1,3}|integration|[A-Z_]{1,2}", 0..6),
    ) {
        let items: Vec<String> = names.iter().map(|n| format!("{{name: \"{n}\", image: x}}")).collect();
        let yaml = job(&format!("[{}]", items.join(", ")));
        let valid = |n: &str| crate::names::ServiceName::parse(n).is_ok() && n != "integration";
        let unique = names.iter().collect::<std::collections::BTreeSet<_>>().len() == names.len();
        let want = names.iter().all(|n| valid(n)) && unique;
        let got = parse_template(&yaml);
        prop_assert_eq!(got.is_ok(), want, "{:?}", names);
        if let Ok(t) = got {
            let kept: Vec<&str> = t.jobs[0].services.iter().map(|s| s.name.as_str()).collect();
            prop_assert_eq!(kept, names.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn tcp_ports_are_accepted_exactly_in_range(port in -10i64..70_000) {
        let yaml = job(&format!("[{{name: db, image: x, ready: {{tcp: {port}}}}}]"));
        let got = parse_template(&yaml);
        prop_assert_eq!(got.is_ok(), (1..=65535).contains(&port));
        if let Ok(t) = got {
            let want = ReadyCheck::Tcp(u16::try_from(port).unwrap_or_default());
            prop_assert_eq!(t.jobs[0].services[0].ready.as_ref().map(|r| &r.check), Some(&want));
        }
    }
}
