//! The gateway's path check (SPEC §15): a path that a URL parser would rewrite (`\`, encoded
//! `/`, `\` or `.`, dot segments, empty segments) is refused with 400 before anything is
//! forwarded, only `/api/v1/…` is proxied, exactly the four webhook forms go without the API
//! token, and the runner protocol (`/internal/v1`) is never reachable through the gateway.
//!
//! Every request here is written byte for byte over TCP (see `raw_http`): reqwest would
//! normalise the very paths under test before sending them.

use crate::helpers::{Options, TestApp, fresh_database, no_runner, spawn_on};
use crate::raw_http::{RawResponse, send};
use gitweave_model::webhook::{Provider, sign};
use serde_json::json;

const TOKEN: &str = "t0k3n";
const SECRET: &str = "hook-secret";
/// What the bypasses try to register through the gateway.
const REGISTER: &str = r#"{"name":"bypass","capacity":1,"engine":"shell"}"#;

/// Paths that walk out of where they seem to be, once a URL parser has had them.
const MALFORMED: &[(&str, &str)] = &[
    // Webhook-shaped (`/repos/{repo}/hooks/{x}`), which the old check let go without a token.
    ("GET", "/api/v1/repos/victim/hooks/.."),
    ("DELETE", "/api/v1/repos/victim/hooks/.."),
    ("DELETE", "/api/v1/repos/victim/hooks/%2e%2e"),
    ("DELETE", "/api/v1/repos/victim/hooks/%2E%2e"),
    ("DELETE", "/api/v1/repos/victim/hooks/.%2E"),
    ("GET", "/api/v1/repos/x/hooks/..\\..\\..\\repos"),
    ("GET", "/api/v1/repos/x/hooks/..%2F..%2F..%2Frepos"),
    ("GET", "/api/v1/repos/x/hooks/..%2f..%2f..%2frepos"),
    ("GET", "/api/v1/repos/x/hooks/..%5C..%5C..%5Crepos"),
    ("GET", "/api/v1/repos/x/hooks/..%5c..%5c..%5crepos"),
    ("GET", "/api/v1/repos/x/hooks/./../../../repos"),
    // Into the runner protocol.
    (
        "POST",
        "/api/v1/repos/x/hooks/..\\..\\..\\..\\..\\internal\\v1\\runners\\register",
    ),
    (
        "POST",
        "/api/v1/repos/x/hooks/github/../../../../../../internal/v1/runners/register",
    ),
    (
        "POST",
        "/api/v1/repos/x/hooks/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/internal/v1/runners/register",
    ),
    ("POST", "/api/v1/../../internal/v1/runners/register"),
    ("POST", "/api/v1/%2e%2e/%2e%2e/internal/v1/runners/register"),
    ("POST", "/api/v1/.%2E/.%2e/internal/v1/runners/register"),
    ("POST", "/api/v1/..%2F..%2Finternal/v1/runners/register"),
    (
        "POST",
        "/api/v1/repos/.\\..\\..\\..\\internal/v1/runners/register",
    ),
    // Empty segments.
    ("GET", "/api/v1//repos"),
    ("GET", "/api/v1/repos/"),
];

/// Well-formed paths that are not one of the four webhooks: the token is needed.
const NOT_WEBHOOKS: &[(&str, &str)] = &[
    ("POST", "/api/v1/repos/victim/hooks/github/x"),
    ("POST", "/api/v1/repos/victim/hooks/bitbucket"),
    ("POST", "/api/v1/repos/victim/hooks/GitHub"),
    ("POST", "/api/v1/repos/victim/hooks/%67ithub"),
    ("GET", "/api/v1/repos/victim/hooks/github"),
    ("DELETE", "/api/v1/repos/victim/hooks/github"),
    ("PUT", "/api/v1/repos/victim/hooks/gitlab"),
];

async fn stack(token: Option<&str>) -> (TestApp, String) {
    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            api_token: token.map(str::to_owned),
            ..no_runner()
        },
    )
    .await;
    (app, db)
}

async fn runners_named_bypass(db: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .expect("connect");
    sqlx::query_scalar("SELECT count(*) FROM runners WHERE name = 'bypass'")
        .fetch_one(&mut conn)
        .await
        .expect("count runners")
}

fn json_headers() -> [(&'static str, &'static str); 1] {
    [("Content-Type", "application/json")]
}

/// The answer is the gateway's own refusal, not something pipeline-svc produced.
fn assert_refused(r: &RawResponse, method: &str, target: &str, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code().as_deref()),
        (status, Some(code)),
        "{method} {target}: {}\n{}",
        r.head,
        r.body
    );
    assert!(
        !r.body.contains("runner_id"),
        "{method} {target} registered"
    );
    assert!(!r.body.contains("\"victim\""), "{method} {target} leaked");
}

#[tokio::test]
async fn with_a_token_no_path_form_gets_past_the_gateway_without_it() {
    let (app, db) = stack(Some(TOKEN)).await;
    let r = app
        .put_json("/repos/victim", &json!({ "webhook_secret": SECRET }))
        .await;
    assert_eq!(r.status(), 201);

    for (method, target) in MALFORMED {
        let r = send(&app.gateway, method, target, &json_headers(), REGISTER).await;
        assert_refused(&r, method, target, 400, "invalid_path");
        assert!(!r.body.contains(TOKEN));
    }
    for (method, target) in NOT_WEBHOOKS {
        let r = send(&app.gateway, method, target, &json_headers(), REGISTER).await;
        assert_refused(&r, method, target, 401, "unauthenticated");
    }
    // The same requests with the token: the malformed ones are still refused (the check does
    // not depend on who asks).
    let auth = ("Authorization", "Bearer t0k3n");
    for (method, target) in MALFORMED {
        let r = send(&app.gateway, method, target, &[auth], REGISTER).await;
        assert_refused(&r, method, target, 400, "invalid_path");
    }

    // Nothing above reached a route: the repo is still there and no runner registered.
    assert_eq!(app.get("/repos/victim").await.status(), 200);
    assert_eq!(runners_named_bypass(&db).await, 0);

    // Exactly `POST /api/v1/repos/{repo}/hooks/{provider}` goes without the token, for each of
    // the four providers: a signed delivery of an event that makes no run is answered 202 by
    // pipeline-svc.
    let body = "{}";
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    for provider in Provider::ALL {
        let sig_header = provider.signature_headers()[0];
        let sig_value = match provider {
            Provider::GitHub => format!("sha256={signature}"),
            Provider::GitLab => SECRET.to_owned(),
            Provider::Gitea | Provider::Forgejo => signature.clone(),
        };
        let target = format!("/api/v1/repos/victim/hooks/{}", provider.as_str());
        let r = send(
            &app.gateway,
            "POST",
            &target,
            &[
                ("Content-Type", "application/json"),
                (sig_header, &sig_value),
                (provider.event_headers()[0], "issues"),
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 202, "{target}: {}\n{}", r.head, r.body);
    }
    // A well-formed request with the token is proxied as sent, query string included.
    let r = send(
        &app.gateway,
        "GET",
        "/api/v1/repos/victim/pipelines/runs?limit=1",
        &[auth],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_token_the_runner_protocol_is_still_unreachable() {
    let (app, db) = stack(None).await;
    let not_api: &[&str] = &[
        "/internal/v1/runners/register",
        "//internal/v1/runners/register",
        "/api/internal/v1/runners/register",
        "/api/v2/../v1/x",
        "/API/v1/repos",
        "http://127.0.0.1/internal/v1/runners/register",
    ];
    for target in not_api {
        let r = send(&app.gateway, "POST", target, &json_headers(), REGISTER).await;
        assert!(
            matches!(r.status, 400 | 404),
            "POST {target}: {}\n{}",
            r.head,
            r.body
        );
        assert!(!r.body.contains("runner_id"), "POST {target} registered");
    }
    for (method, target) in MALFORMED {
        let r = send(&app.gateway, method, target, &json_headers(), REGISTER).await;
        assert_refused(&r, method, target, 400, "invalid_path");
    }
    assert_eq!(runners_named_bypass(&db).await, 0);
    // The open API is still served, by raw HTTP too.
    let r = send(&app.gateway, "GET", "/api/v1/repos", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}
