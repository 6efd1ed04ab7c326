//! Refusals: a missing, wrong, stale or tampered signature, a repo without a secret, or an
//! unknown repo, is a 401 that says what was wrong with the signature, and creates nothing.
//!
//! "Stale" means signed with a secret the repo no longer has: GitHub's and Gitea's signatures
//! carry no timestamp, so the only staleness a receiver can see is a rotated secret.

use super::*;
use crate::helpers::spawn_with;
use serde_json::json;

/// 401 with the envelope; the message contains `needle` and never a secret.
async fn refused(r: reqwest::Response, needle: &str) {
    let (status, v) = json_of(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "unauthenticated");
    let m = v["error"]["message"].as_str().expect("message");
    assert!(m.contains(needle), "{m:?} should say {needle:?}");
    assert!(!m.contains(SECRET) && !m.contains("new-secret"), "{m}");
}

#[tokio::test]
async fn missing_wrong_stale_and_tampered_signatures_are_refused_and_create_nothing() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "locked",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    let body = fixture("gitea-push-single-commit.json");

    // Missing signature, for each provider.
    for (provider, event, header) in [
        ("github", "push", "x-hub-signature-256"),
        ("gitea", "push", "x-gitea-signature"),
        ("forgejo", "push", "x-forgejo-signature"),
        ("gitlab", "Push Hook", "x-gitlab-token"),
    ] {
        let h = headers(provider, event, "same-id", None, &body);
        refused(
            post_hook(&app, "locked", provider, &h, body.clone()).await,
            header,
        )
        .await;
        refused(
            post_hook(&app, "locked", provider, &h, body.clone()).await,
            "missing",
        )
        .await;
    }
    // An empty signature (what Gitea sends for a hook without a secret) is a missing one.
    let mut h = headers("gitea", "push", "same-id", None, &body);
    h.push(("x-gitea-signature", String::new()));
    refused(
        post_hook(&app, "locked", "gitea", &h, body.clone()).await,
        "missing",
    )
    .await;
    // GitHub's header does not stand in for Gitea's.
    let mut h = headers("gitea", "push", "same-id", None, &body);
    h.push((
        "x-hub-signature-256",
        format!("sha256={}", sign(SECRET.as_bytes(), &body)),
    ));
    refused(
        post_hook(&app, "locked", "gitea", &h, body.clone()).await,
        "missing",
    )
    .await;

    // Wrong secret.
    for (provider, event) in [
        ("github", "push"),
        ("gitea", "push"),
        ("forgejo", "push"),
        ("gitlab", "Push Hook"),
    ] {
        let h = headers(provider, event, "same-id", Some("not the secret"), &body);
        refused(
            post_hook(&app, "locked", provider, &h, body.clone()).await,
            "does not match",
        )
        .await;
    }
    // Not a signature at all.
    let mut h = headers("github", "push", "same-id", None, &body);
    h.push(("x-hub-signature-256", "sha256=zz".into()));
    refused(
        post_hook(&app, "locked", "github", &h, body.clone()).await,
        "not",
    )
    .await;

    // The body changed after signing: the ref and commit of a signed push swapped for others.
    let h = headers("github", "push", "same-id", Some(SECRET), &body);
    let tampered = String::from_utf8(body.clone())
        .expect("utf8")
        .replace("refs/heads/main", "refs/heads/evil");
    assert_ne!(tampered.as_bytes(), body.as_slice());
    refused(
        post_hook(&app, "locked", "github", &h, tampered).await,
        "does not match",
    )
    .await;
    let mut trailing = body.clone();
    trailing.push(b'\n');
    refused(
        post_hook(&app, "locked", "github", &h, trailing).await,
        "does not match",
    )
    .await;

    // Stale: signed with the secret the repo had before it was rotated.
    let r = app
        .put_json("/repos/locked", &json!({ "webhook_secret": "new-secret" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for (provider, event) in [("github", "push"), ("gitlab", "Push Hook")] {
        let h = headers(provider, event, "same-id", Some(SECRET), &body);
        refused(
            post_hook(&app, "locked", provider, &h, body.clone()).await,
            "does not match",
        )
        .await;
    }

    assert!(
        runs_of(&app, "locked").await.is_empty(),
        "no refused delivery made a run"
    );
    // Nor was any refused delivery recorded: the same delivery id, now signed with the
    // current secret, makes its run.
    let h = headers("github", "push", "same-id", Some("new-secret"), &body);
    let (status, v) = json_of(post_hook(&app, "locked", "github", &h, body.clone()).await).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(runs_of(&app, "locked").await.len(), 1);

    // A repo without a secret refuses every webhook, signed or not, and answers as if its
    // secret were one nobody knows (SPEC §7: its existence does not show).
    repo_with(&app, "open", json!({}), &simple_yaml()).await;
    for (secret, says) in [
        (None, "missing"),
        (Some(""), "does not match"),
        (Some(SECRET), "does not match"),
    ] {
        let h = headers("github", "push", "x", secret, &body);
        refused(
            post_hook(&app, "open", "github", &h, body.clone()).await,
            says,
        )
        .await;
    }
    let h = headers("gitlab", "Push Hook", "x", Some(""), &body);
    refused(
        post_hook(&app, "open", "gitlab", &h, body.clone()).await,
        "has a webhook_secret",
    )
    .await;
    assert!(runs_of(&app, "open").await.is_empty());

    // Unknown repo: the same 401 as a wrong signature, so repo names cannot be probed.
    let h = headers("github", "push", "y", Some(SECRET), &body);
    refused(
        post_hook(&app, "nope", "github", &h, body.clone()).await,
        "does not match",
    )
    .await;
    app.shutdown().await;
}
