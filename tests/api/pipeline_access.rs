//! Who may talk to pipeline-svc (SPEC §15): the API token on `/api/v1` (webhooks excepted),
//! closed runner registration, one live registration per runner name, clone URLs that are
//! checked, copied into the run and never shown with their credentials, webhooks that do not
//! tell unknown repos apart, and log offsets that cannot overflow.

use crate::helpers::{
    EngineKind, Options, TestApp, envelope, fresh_database, image, no_runner, spawn_on, spawn_with,
};
use gitweave_api::public::Run;
use gitweave_api::runner::{Assignment, RegisterResponse};
use gitweave_model::status::RunStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

async fn register_as(app: &TestApp, name: &str, token: Option<&str>) -> reqwest::Response {
    let mut rb = app
        .http
        .post(format!("{}/internal/v1/runners/register", app.pipeline))
        .json(&json!({"name": name, "capacity": 8, "engine": "docker"}));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.expect("register")
}

async fn runner_token(app: &TestApp, name: &str) -> String {
    let r = register_as(app, name, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<RegisterResponse>().await.expect("json").token
}

async fn claim(app: &TestApp, token: &str, wait_ms: u64) -> reqwest::Response {
    app.http
        .post(format!("{}/internal/v1/runners/claim", app.pipeline))
        .bearer_auth(token)
        .json(&json!({ "wait_ms": wait_ms }))
        .send()
        .await
        .expect("claim")
}

async fn assignment(app: &TestApp, token: &str) -> Assignment {
    let r = claim(app, token, 5_000).await;
    assert_eq!(r.status(), StatusCode::OK, "a job to claim");
    r.json().await.expect("assignment")
}

async fn finish(app: &TestApp, token: &str, a: &Assignment) -> reqwest::Response {
    app.http
        .post(format!(
            "{}/internal/v1/jobs/{}/attempts/{}/finish",
            app.pipeline, a.job_id, a.attempt
        ))
        .bearer_auth(token)
        .json(&json!({"exit_code": 0, "log_end": 0}))
        .send()
        .await
        .expect("finish")
}

fn two_jobs() -> String {
    let img = image();
    format!(
        "jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n  - {{ name: b, image: {img}, script: [y] }}\n"
    )
}

#[tokio::test]
async fn pipeline_svc_itself_asks_for_the_api_token_except_on_webhooks() {
    let app = spawn_with(Options {
        api_token: Some("t0k3n".into()),
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    let direct = |path: &str| format!("{}/api/v1{path}", app.pipeline);
    // Straight to pipeline-svc, around the gateway: refused without the token.
    for token in [None, Some("wrong"), Some("t0k3n0")] {
        let mut rb = app.http.get(direct("/repos"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let (status, code, message) = envelope(rb.send().await.expect("get")).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "unauthenticated"),
            "{token:?}"
        );
        assert!(message.contains("GITWEAVE_API_TOKEN"), "{message}");
    }
    let r = app
        .http
        .put(direct("/repos/sneaky"))
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 401, "writes too");
    let r = app
        .http
        .get(direct("/repos"))
        .bearer_auth("t0k3n")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "with the token");

    // Through the gateway (which passes the client's header on), everything works, and the
    // runner (its own token on /internal/v1) runs the job.
    app.put_json("/repos/r", &json!({"webhook_secret": "hook-secret"}))
        .await;
    app.template_ok(
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, runs_on: {{engine: shell}}, script: [echo ok] }}\n",
            image()
        ),
    )
    .await;
    app.attach("r", "t").await;
    let run = app.trigger("r", &json!({})).await;
    let run = app.wait_run(run.id, Duration::from_secs(60)).await;
    assert_eq!(run.status, RunStatus::Success);

    // A webhook reaches pipeline-svc without the bearer: its HMAC authenticates it.
    let body =
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": COMMIT})).expect("json");
    let sig = gitweave_model::webhook::sign(b"hook-secret", &body);
    let r = app
        .http
        .post(direct("/repos/r/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "d-1")
        .header("x-hub-signature-256", format!("sha256={sig}"))
        .body(body)
        .send()
        .await
        .expect("hook");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    app.shutdown().await;
}

#[tokio::test]
async fn registration_is_refused_without_a_token_unless_open_registration_is_asked_for() {
    let app = spawn_with(Options {
        insecure_open_registration: false,
        ..no_runner()
    })
    .await;
    for token in [None, Some("anything")] {
        let (status, code, message) = envelope(register_as(&app, "r1", token).await).await;
        assert_eq!((status, code.as_str()), (401, "unauthenticated"));
        assert!(
            message.contains("RUNNER_REGISTRATION_TOKEN")
                && message.contains("PIPELINE_INSECURE_OPEN_REGISTRATION"),
            "{message}"
        );
    }
    // A runner without a token does not start against it.
    let mut rconfig = runner_svc::Config::for_pipeline(&app.pipeline, EngineKind::Shell);
    rconfig.name = Some(format!("{}-closed", app.runner_name));
    rconfig.workdir = std::env::temp_dir().join(format!("gitweave-test-{}", app.prefix));
    let refused = tokio::time::timeout(Duration::from_secs(30), runner_svc::App::build(rconfig))
        .await
        .expect("refused at once, not retried");
    let err = refused
        .err()
        .expect("runner-svc refuses to start")
        .to_string();
    assert!(err.contains("RUNNER_REGISTRATION_TOKEN"), "{err}");
    app.shutdown().await;

    // Asked for: anyone may register.
    let app = spawn_with(no_runner()).await;
    assert_eq!(
        register_as(&app, "r1", None).await.status(),
        StatusCode::CREATED
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_new_registration_takes_the_name_over_and_the_first_token_is_refused() {
    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            reaper_interval_ms: 200,
            ..no_runner()
        },
    )
    .await;
    app.create_repo("r").await;
    app.template_ok(
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {}, script: [x], retry: {{ max: 1, when: [runner_failure] }} }}\n",
            image()
        ),
    )
    .await;
    app.attach("r", "t").await;
    let first = runner_token(&app, "twin").await;
    let run = app.trigger("r", &json!({})).await;
    let a = assignment(&app, &first).await;
    assert_eq!(a.attempt, 1);

    // The same name registers again (a restarted runner, or someone else): it takes over.
    let second = runner_token(&app, "twin").await;
    let r = claim(&app, &first, 0).await;
    assert_eq!(r.status(), 401, "the first registration's token is revoked");
    let r = app
        .http
        .post(format!(
            "{}/internal/v1/jobs/{}/attempts/1/heartbeat",
            app.pipeline, a.job_id
        ))
        .bearer_auth(&first)
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(r.status(), 401);
    assert_eq!(finish(&app, &first, &a).await.status(), 401);
    // The first registration's job is taken back at once (its lease ended with it), and the
    // second registration runs attempt 2.
    let b = assignment(&app, &second).await;
    assert_eq!((b.job_id, b.attempt), (a.job_id, 2));
    assert_eq!(finish(&app, &second, &b).await.status(), 200);
    let done = app.wait_run(run.id, Duration::from_secs(10)).await;
    assert_eq!(done.status, RunStatus::Success);

    // Never two live registrations of one name: `runner:twin` names one registration at
    // any time.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .expect("connect");
    let live: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, count(*) FROM runners WHERE revoked_at IS NULL GROUP BY name")
            .fetch_all(&mut conn)
            .await
            .expect("runners");
    assert_eq!(live, vec![("twin".to_owned(), 1)]);
    let events = app.events(run.id).await;
    let kinds: Vec<(&str, &str, Option<i32>)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.actor.as_str(), e.attempt))
        .collect();
    let started: Vec<_> = kinds
        .iter()
        .filter(|(t, _, _)| *t == "job.started")
        .collect();
    assert_eq!(
        started,
        [
            &("job.started", "runner:twin", Some(1)),
            &("job.started", "runner:twin", Some(2))
        ]
    );
    let lost = kinds
        .iter()
        .position(|(t, _, _)| *t == "runner.lost")
        .expect("the first registration's attempt is lost");
    let second_start = kinds
        .iter()
        .rposition(|(t, _, _)| *t == "job.started")
        .expect("started");
    assert!(
        lost < second_start,
        "attempt 1 ended before attempt 2 started: {kinds:?}"
    );
    app.assert_replays(run.id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn clone_url_credentials_are_never_shown_but_the_runner_gets_them() {
    // git.example is not reachable (nor to be tried): the repo file is off.
    let app = spawn_with(Options {
        pipeline: Some(crate::helpers::no_repo_file),
        ..no_runner()
    })
    .await;
    let url = "https://deploy:pa55w0rd-x@git.example/acme/shop.git";
    let shown = "https://deploy:***@git.example/acme/shop.git";
    let r = app
        .put_json("/repos/shop", &json!({ "clone_url": url }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["clone_url"], shown);
    let r = app
        .put_json("/repos/shop", &json!({ "default_branch": "trunk" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let updated: Value = r.json().await.expect("json");
    assert_eq!(updated["clone_url"], shown);
    for path in ["/repos/shop", "/repos"] {
        let text = app.get(path).await.text().await.expect("body");
        assert!(text.contains(shown), "{path}: {text}");
        assert!(!text.contains("pa55w0rd"), "{path}: {text}");
    }
    // A refused URL's message does not echo the password either.
    let (status, code, message) = envelope(
        app.put_json(
            "/repos/shop",
            &json!({ "clone_url": "ftp://deploy:pa55w0rd-x@git.example/x.git" }),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_clone_url"));
    assert!(!message.contains("pa55w0rd"), "{message}");

    // The runner needs the real URL to clone.
    app.template_ok("t", &two_jobs()).await;
    app.attach("shop", "t").await;
    app.trigger("shop", &json!({ "commit": COMMIT })).await;
    let token = runner_token(&app, "hand").await;
    let a = assignment(&app, &token).await;
    assert_eq!(a.checkout.expect("a checkout").clone_url, url);
    app.shutdown().await;
}

#[tokio::test]
async fn a_run_checks_out_from_the_clone_url_it_was_triggered_with() {
    // git.example is not reachable (nor to be tried): the repo file is off.
    let app = spawn_with(Options {
        pipeline: Some(crate::helpers::no_repo_file),
        ..no_runner()
    })
    .await;
    let original = "https://git.example/acme/original.git";
    app.put_json("/repos/shop", &json!({ "clone_url": original }))
        .await;
    app.template_ok("t", &two_jobs()).await;
    app.attach("shop", "t").await;
    let run: Run = app.trigger("shop", &json!({ "commit": COMMIT })).await;
    // Changed while the run is queued...
    let r = app
        .put_json(
            "/repos/shop",
            &json!({ "clone_url": "https://evil.example/other.git" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = runner_token(&app, "hand").await;
    let a = assignment(&app, &token).await;
    assert_eq!(a.checkout.as_ref().expect("checkout").clone_url, original);
    // ...and again while it runs.
    let r = app
        .put_json(
            "/repos/shop",
            &json!({ "clone_url": "https://evil.example/third.git" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(finish(&app, &token, &a).await.status(), 200);
    let b = assignment(&app, &token).await;
    assert_ne!(a.job_id, b.job_id);
    assert_eq!(b.run_id, run.id);
    assert_eq!(b.checkout.as_ref().expect("checkout").clone_url, original);
    // A new run takes the repo's URL as it is now.
    assert_eq!(finish(&app, &token, &b).await.status(), 200);
    app.trigger("shop", &json!({ "commit": COMMIT })).await;
    let c = assignment(&app, &token).await;
    assert_eq!(
        c.checkout.expect("checkout").clone_url,
        "https://evil.example/third.git"
    );
    app.shutdown().await;
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bare_repo(path: &Path) {
    let out = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(path)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_local_clone_url_must_be_a_git_repository_under_the_local_repo_root() {
    let tmp = TempDir(std::env::temp_dir().join(format!("gitweave-root-{}", Uuid::new_v4())));
    let root = tmp.0.join("root");
    std::fs::create_dir_all(root.join("plain")).expect("mkdir");
    bare_repo(&root.join("shop.git"));
    bare_repo(&tmp.0.join("outside.git"));
    std::os::unix::fs::symlink(tmp.0.join("outside.git"), root.join("escape.git")).expect("ln");
    std::os::unix::fs::symlink(root.join("shop.git"), root.join("alias.git")).expect("ln");
    let canonical = std::fs::canonicalize(root.join("shop.git")).expect("canonical");

    // Without RUNNER_LOCAL_REPO_ROOT, no local URL is accepted.
    let app = spawn_with(Options {
        local_repo_root: None,
        ..no_runner()
    })
    .await;
    let inside = format!("file://{}", root.join("shop.git").display());
    for url in [inside.clone(), root.join("shop.git").display().to_string()] {
        let (status, code, message) =
            envelope(app.put_json("/repos/r", &json!({ "clone_url": url })).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_clone_url"), "{url}");
        assert!(message.contains("RUNNER_LOCAL_REPO_ROOT"), "{message}");
    }
    app.shutdown().await;

    let app = spawn_with(Options {
        local_repo_root: Some(root.clone()),
        ..no_runner()
    })
    .await;
    // Accepted, and stored resolved: what was checked is what the runner clones.
    for url in [
        inside.clone(),
        root.join("shop.git").display().to_string(),
        format!("file://{}/plain/../shop.git", root.display()),
        format!("file://{}", root.join("alias.git").display()),
    ] {
        let r = app.put_json("/repos/r", &json!({ "clone_url": url })).await;
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let repo: Value = r.json().await.expect("json");
        assert_eq!(
            repo["clone_url"],
            format!("file://{}", canonical.display()),
            "{url}"
        );
    }
    // Refused: outside the root (by `..` or by a link), not a repository, missing, and
    // transports other than the accepted ones.
    let refused = [
        format!("file://{}/../outside.git", root.display()),
        format!("file://{}", root.join("escape.git").display()),
        format!("file://{}", tmp.0.join("outside.git").display()),
        format!("file://{}", root.join("plain").display()),
        format!("file://{}", root.join("missing.git").display()),
        "/dev/null".to_owned(),
        "ext::sh -c touch% /tmp/pwned".to_owned(),
        "ext::sh".to_owned(),
        "fd::3".to_owned(),
        "relative/shop.git".to_owned(),
    ];
    for url in &refused {
        let (status, code, _) =
            envelope(app.put_json("/repos/r", &json!({ "clone_url": url })).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_clone_url"), "{url}");
    }
    // The stored URL is still the accepted one.
    let repo: Value = app.get_json("/repos/r").await;
    assert_eq!(repo["clone_url"], format!("file://{}", canonical.display()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_webhook_for_an_unknown_repo_gets_the_same_401_as_a_wrong_signature() {
    let app = spawn_with(no_runner()).await;
    app.put_json("/repos/known", &json!({ "webhook_secret": "the-secret" }))
        .await;
    app.put_json("/repos/secretless", &json!({})).await;
    let body =
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": COMMIT})).expect("json");
    let send = |repo: &'static str, signature: Option<String>| {
        let mut rb = app
            .http
            .post(app.api(&format!("/repos/{repo}/hooks/github")))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "d-1")
            .body(body.clone());
        if let Some(s) = signature {
            rb = rb.header("x-hub-signature-256", s);
        }
        rb.send()
    };
    let wrong = format!(
        "sha256={}",
        gitweave_model::webhook::sign(b"a guess", &body)
    );
    for signature in [Some(wrong), None, Some("sha256=zz".to_owned())] {
        let mut answers = Vec::new();
        for repo in ["known", "unknown", "secretless"] {
            let (status, code, message) =
                envelope(send(repo, signature.clone()).await.expect("post")).await;
            answers.push((status, code, message));
        }
        assert_eq!(answers[0].0, 401, "{answers:?}");
        assert_eq!(answers[0].1, "unauthenticated");
        assert_eq!(answers[1], answers[0], "unknown repo, {signature:?}");
        assert_eq!(
            answers[2], answers[0],
            "repo without a secret, {signature:?}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn log_offsets_near_the_largest_integer_are_a_400_not_a_500() {
    let app = spawn_with(no_runner()).await;
    app.repo_with("r", "t", &two_jobs()).await;
    let run = app.trigger("r", &json!({})).await;
    let job = run.jobs[0].id;
    let max = i64::MAX;
    for (offset, limit, want) in [
        (max.to_string(), None, 400),
        (max.to_string(), Some(1), 400),
        ((max - 1).to_string(), Some(2), 400),
        ((max - 65_535).to_string(), None, 400),
        ((max - 1).to_string(), Some(1), 200),
        ((max - 65_536).to_string(), None, 200),
        ((max - 1_048_576).to_string(), Some(1 << 30), 200),
        ("9223372036854775808".to_owned(), None, 400),
    ] {
        let mut path = format!("/jobs/{job}/logs?offset={offset}");
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        let r = app.get(&path).await;
        let status = r.status().as_u16();
        assert_eq!(status, want, "{path}");
        if want == 400 {
            let (_, code, message) = envelope(r).await;
            assert_eq!(code, "bad_query", "{path}");
            if offset.parse::<i64>().is_ok() {
                assert!(message.contains(&max.to_string()), "{path}: {message}");
            }
        } else {
            let page: Value = r.json().await.expect("page");
            assert_eq!(page["chunks"], json!([]), "{path}");
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn runner_svc_reads_its_registration_token_from_a_file() {
    let app = spawn_with(Options {
        registration_token: Some("token-in-a-file".into()),
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    let dir = TempDir(std::env::temp_dir().join(format!("gitweave-tokfile-{}", Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).expect("mkdir");
    let file = dir.0.join("token");
    std::fs::write(&file, "token-in-a-file\n").expect("write");
    let build = |token_file: Option<PathBuf>, suffix: &str| {
        let mut c = runner_svc::Config::for_pipeline(&app.pipeline, EngineKind::Shell);
        c.name = Some(format!("{}-{suffix}", app.runner_name));
        c.workdir = dir.0.join(suffix);
        c.registration_token = Some(String::new());
        c.registration_token_file = token_file;
        runner_svc::App::build(c)
    };
    let registered = build(Some(file.clone()), "file").await;
    assert!(registered.is_ok(), "{:?}", registered.err());
    std::fs::write(&file, "not-the-token\n").expect("write");
    let refused = build(Some(file), "wrong").await;
    let err = refused.err().expect("a wrong token is refused").to_string();
    assert!(err.contains("401"), "{err}");
    drop(registered);
    app.shutdown().await;
}
