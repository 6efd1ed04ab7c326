//! Push webhooks (SPEC §7) through the gateway.
//!
//! - [`receive`]: every published payload, one run per delivery, ping and other events, body
//!   limits.
//! - [`signatures`]: refusals of missing, wrong, stale and tampered signatures, and of repos
//!   without a secret.
//! - [`checkout`]: the run's workspace holds exactly the pushed commit (docker and shell
//!   engines), hostile ref names stay data, clone failures fail the run with a reason, and a
//!   real `git push` to a local bare repository through `gitweave hook install`.
//! - [`checkout_hardening`]: what a job plants in `.git` never runs; local clone URLs only
//!   under `RUNNER_LOCAL_REPO_ROOT`; the helper mounts that repository read-only and nothing
//!   else of the host.
//! - [`head`]: a trigger without `commit` runs, records and checks out the ref's head.
//! - [`repo_file`]: `.gitweave.yml` at the commit: includes, rules, `[skip ci]`, broken
//!   files, recorded skips, exact reruns (SPEC §9).
//! - [`pull_requests`]: GitHub, Gitea and GitLab pull request payloads make pull request
//!   runs; other actions do not; no protected secret reaches them.

mod checkout;
mod checkout_hardening;
mod deleted_repo;
mod head;
mod pull_requests;
mod receive;
mod repo_file;
mod signatures;

use crate::helpers::{Options, TestApp, image};
use gitweave_api::public::{Run, RunList};
use gitweave_model::webhook::sign;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

const SECRET: &str = "It's a Secret to Everybody";
const LIMIT: Duration = Duration::from_secs(120);
/// A ref name git accepts that is also a shell injection, were it ever interpolated.
const HOSTILE_REF: &str = "refs/heads/zzz\";echo${IFS}\"hello\";#";

fn no_runner() -> Options {
    Options {
        runner: None,
        ..Options::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The headers `provider` sends with a delivery; signed with `secret` when there is one.
fn headers(
    provider: &str,
    event: &str,
    delivery: &str,
    secret: Option<&str>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut h = vec![("content-type", "application/json".to_owned())];
    let hmac = secret.map(|s| sign(s.as_bytes(), body));
    match provider {
        "github" => {
            h.push(("x-github-event", event.into()));
            h.push(("x-github-delivery", delivery.into()));
            if let Some(sig) = hmac {
                h.push(("x-hub-signature-256", format!("sha256={sig}")));
            }
        }
        "gitea" | "forgejo" => {
            // Forgejo sends Gitea's headers as well as its own.
            h.push(("x-gitea-event", event.into()));
            h.push(("x-gitea-delivery", delivery.into()));
            if provider == "forgejo" {
                h.push(("x-forgejo-event", event.into()));
                h.push(("x-forgejo-delivery", delivery.into()));
            }
            if let Some(sig) = hmac {
                h.push(("x-gitea-signature", sig.clone()));
                if provider == "forgejo" {
                    h.push(("x-forgejo-signature", sig));
                }
            }
        }
        "gitlab" => {
            h.push(("x-gitlab-event", event.into()));
            h.push(("x-gitlab-event-uuid", delivery.into()));
            if let Some(s) = secret {
                h.push(("x-gitlab-token", s.into()));
            }
        }
        other => panic!("no headers for {other}"),
    }
    h
}

async fn post_hook(
    app: &TestApp,
    repo: &str,
    provider: &str,
    headers: &[(&'static str, String)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut rb = app
        .http
        .post(app.api(&format!("/repos/{repo}/hooks/{provider}")));
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    rb.body(body).send().await.expect("POST hook")
}

/// Sends a delivery signed with [`SECRET`].
async fn deliver(
    app: &TestApp,
    repo: &str,
    provider: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> reqwest::Response {
    let h = headers(provider, event, delivery, Some(SECRET), body);
    post_hook(app, repo, provider, &h, body.to_vec()).await
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {status} {text}"));
    (status, v)
}

/// A repo with the given settings and one attached template.
async fn repo_with(app: &TestApp, repo: &str, settings: Value, yaml: &str) {
    let r = app.put_json(&format!("/repos/{repo}"), &settings).await;
    assert!(r.status().is_success(), "PUT repo: {}", r.status());
    let template = format!("t-{repo}");
    app.template_ok(&template, yaml).await;
    app.attach(repo, &template).await;
}

fn simple_yaml() -> String {
    format!(
        "jobs:\n  - name: build\n    image: {}\n    script: [\"echo hi\"]\n",
        image()
    )
}

async fn runs_of(app: &TestApp, repo: &str) -> Vec<Run> {
    let r = app
        .get(&format!("/repos/{repo}/pipelines/runs?limit=100"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<RunList>().await.expect("runs").runs
}

/// Makes sure the checkout helper image exists: test runners never pull. Built here from
/// `scripts/git-image` (FROM debian:bookworm-slim + git) when `scripts/local-images.sh` has
/// not made it already; once per test binary.
async fn helper_image() {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let image = gitweave_engine::checkout::DEFAULT_HELPER_IMAGE;
            let present = tokio::process::Command::new("docker")
                .args(["image", "inspect", image])
                .output()
                .await
                .is_ok_and(|o| o.status.success());
            if !present {
                let dir = format!("{}/scripts/git-image", env!("CARGO_MANIFEST_DIR"));
                let out = tokio::process::Command::new("docker")
                    .args(["build", "-q", "-t", image, &dir])
                    .output()
                    .await
                    .expect("docker build runs");
                assert!(
                    out.status.success(),
                    "building {image} from {dir} failed (it needs debian:bookworm-slim and the Debian mirror): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
        .await;
}
