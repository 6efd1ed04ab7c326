//! The receiver: what each delivery makes, and what it is refused for.

use super::*;
use crate::helpers::spawn_with;
use gitweave_model::status::Trigger;
use serde_json::json;
use uuid::Uuid;

/// A published payload, where it is sent, and the run it makes: `Some((ref, commit))`, or
/// `None` for a deletion.
struct Published {
    file: &'static str,
    provider: &'static str,
    event: &'static str,
    run: Option<(&'static str, &'static str)>,
}

fn published(
    file: &'static str,
    provider: &'static str,
    event: &'static str,
    run: Option<(&'static str, &'static str)>,
) -> Published {
    Published {
        file,
        provider,
        event,
        run,
    }
}

#[tokio::test]
async fn every_published_push_makes_one_run_at_its_ref_and_commit_and_deletions_none() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "shop",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    let cases = [
        published("github-push.json", "github", "push", None),
        published("github-push-1.json", "github", "push", None),
        published("github-push-with-installation.json", "github", "push", None),
        published("github-push-with-organization.json", "github", "push", None),
        published(
            "github-push-with-new-branch.json",
            "github",
            "push",
            Some((
                "refs/heads/master",
                "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            )),
        ),
        published(
            "github-push-with-no-username-committer.json",
            "github",
            "push",
            Some((
                "refs/heads/master",
                "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            )),
        ),
        published(
            "gitea-push-docs.json",
            "gitea",
            "push",
            Some((
                "refs/heads/develop",
                "bffeb74224043ba2feb48d137756c8a9331c449a",
            )),
        ),
        published(
            "gitea-push-go-scm.json",
            "gitea",
            "push",
            Some((
                "refs/heads/master",
                "4522cbcefc20728a5b72b3a86af35e608622c514",
            )),
        ),
        published(
            "gitea-push-multi-commit.json",
            "gitea",
            "push",
            Some((
                "refs/heads/main",
                "29be01c073851cf0db0c6a466e396b725a670453",
            )),
        ),
        published(
            "gitea-push-single-commit.json",
            "gitea",
            "push",
            Some((
                "refs/heads/main",
                "ef98532add3b2feb7a137426bba1248724367df5",
            )),
        ),
        published(
            "forgejo-push-new-branch.json",
            "forgejo",
            "push",
            Some((
                "refs/heads/fdsafdsa",
                "28c3613ae62640216bea5e7dc71aa65356e4298b",
            )),
        ),
        published(
            "gitlab-push-captured.json",
            "gitlab",
            "Push Hook",
            Some((
                "refs/heads/main",
                "16862e368d8ab812e48833b741dad720d6e2cb7f",
            )),
        ),
        published(
            "gitlab-push-docs.json",
            "gitlab",
            "Push Hook",
            Some((
                "refs/heads/master",
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            )),
        ),
        published(
            "gitlab-tag_push-captured.json",
            "gitlab",
            "Tag Push Hook",
            Some(("refs/tags/v22", "fabed3d94cd03e6c2b7958afa9569c18a24d301f")),
        ),
        published(
            "gitlab-tag_push-docs.json",
            "gitlab",
            "Tag Push Hook",
            Some((
                "refs/tags/v1.0.0",
                "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
            )),
        ),
    ];
    let mut made = Vec::new();
    for Published {
        file,
        provider,
        event,
        run: expected,
    } in cases
    {
        // Byte for byte as published: the signature covers exactly these bytes.
        let body = fixture(file);
        let r = deliver(&app, "shop", provider, event, &format!("d-{file}"), &body).await;
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let (status, v) = json_of(r).await;
        match expected {
            Some((git_ref, commit)) => {
                assert_eq!(status, StatusCode::CREATED, "{file}: {v}");
                let run: Run = serde_json::from_value(v).expect("a run");
                assert_eq!(run.trigger, Trigger::Push, "{file}");
                assert_eq!(run.git_ref, git_ref, "{file}");
                assert_eq!(run.commit.as_deref(), Some(commit), "{file}");
                assert_eq!(run.repo, "shop");
                assert_eq!(
                    location.as_deref(),
                    Some(format!("/api/v1/pipelines/runs/{}", run.id).as_str())
                );
                made.push(run.id);
            }
            None => {
                assert_eq!(status, StatusCode::ACCEPTED, "{file}: {v}");
                assert_eq!(v["status"], "ignored", "{file}");
                assert!(
                    v["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("refs/tags/simple-tag was deleted")),
                    "{v}"
                );
            }
        }
    }
    let mut listed: Vec<Uuid> = runs_of(&app, "shop").await.iter().map(|r| r.id).collect();
    listed.sort();
    made.sort();
    assert_eq!(listed, made, "one run per push, none per deletion");
    app.shutdown().await;
}

#[tokio::test]
async fn a_github_tag_push_runs_like_a_branch_push() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "tags",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    // The published GitHub tag pushes are all deletions: the same payload with a commit.
    let mut v: Value = serde_json::from_slice(&fixture("github-push.json")).expect("json");
    v["after"] = json!("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    v["deleted"] = json!(false);
    v["created"] = json!(true);
    let body = serde_json::to_vec(&v).expect("json");
    let (status, run) =
        json_of(deliver(&app, "tags", "github", "push", "tag-1", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["ref"], "refs/tags/simple-tag");
    assert_eq!(run["commit"], "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(run["trigger"], "push");
    app.shutdown().await;
}

#[tokio::test]
async fn ping_and_other_events_make_no_run() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "quiet",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    let (status, v) = json_of(
        deliver(
            &app,
            "quiet",
            "github",
            "ping",
            "p-1",
            &fixture("github-ping.json"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "pong");
    // Pull requests make runs (SPEC §9, hooks::pull_requests); other events do not.
    let pr = fixture("github-pull_request-opened.json");
    let (status, v) = json_of(deliver(&app, "quiet", "github", "issues", "p-2", &pr).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "ignored");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("issues")));
    // A push body under another event name is not a push.
    let push = fixture("gitlab-push-docs.json");
    let (status, _) =
        json_of(deliver(&app, "quiet", "gitlab", "Pipeline Hook", "p-3", &push).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let gitea = fixture("gitea-push-docs.json");
    let (status, _) = json_of(deliver(&app, "quiet", "gitea", "issues", "p-4", &gitea).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A signed delivery without an event header is malformed.
    let mut h = headers("github", "push", "p-5", Some(SECRET), &gitea);
    h.retain(|(k, _)| *k != "x-github-event");
    let (status, v) = json_of(post_hook(&app, "quiet", "github", &h, gitea.clone()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "missing_event");
    // Bitbucket is not a provider GitWeave receives.
    for file in ["bitbucket-cloud-push.json", "bitbucket-server-push.json"] {
        let body = fixture(file);
        let h = vec![
            ("content-type", "application/json".to_owned()),
            ("x-event-key", "repo:push".to_owned()),
            (
                "x-hub-signature",
                format!("sha256={}", sign(SECRET.as_bytes(), &body)),
            ),
        ];
        let (status, v) = json_of(post_hook(&app, "quiet", "bitbucket", &h, body).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{file}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("github, gitea, forgejo or gitlab"))
        );
    }
    assert!(runs_of(&app, "quiet").await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_delivery_twice_makes_one_run() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "dedup",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    let body = fixture("github-push-with-new-branch.json");
    let (status, first) =
        json_of(deliver(&app, "dedup", "github", "push", "72d3162e-1", &body).await).await;
    assert_eq!(status, StatusCode::CREATED);
    let r = deliver(&app, "dedup", "github", "push", "72d3162e-1", &body).await;
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    let (status, again) = json_of(r).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a repeat points at the first run: {again}"
    );
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        location,
        format!(
            "/api/v1/pipelines/runs/{}",
            first["id"].as_str().expect("id")
        )
    );
    assert_eq!(runs_of(&app, "dedup").await.len(), 1);

    // Ten copies of one new delivery at once: still one run, and every answer names it.
    let gitlab = fixture("gitlab-push-captured.json");
    let answers = futures::future::join_all((0..10).map(|_| {
        deliver(
            &app,
            "dedup",
            "gitlab",
            "Push Hook",
            "9cebe914-race",
            &gitlab,
        )
    }))
    .await;
    let mut ids = Vec::new();
    let mut created = 0;
    for r in answers {
        let (status, v) = json_of(r).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {v}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(created, 1, "exactly one delivery made the run");
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(runs_of(&app, "dedup").await.len(), 2);

    // Another delivery of the same body is another push; the same id from another provider
    // or to another repo is another delivery.
    let (status, _) =
        json_of(deliver(&app, "dedup", "github", "push", "72d3162e-2", &body).await).await;
    assert_eq!(status, StatusCode::CREATED);
    let gitea = fixture("gitea-push-go-scm.json");
    let (status, _) =
        json_of(deliver(&app, "dedup", "gitea", "push", "72d3162e-1", &gitea).await).await;
    assert_eq!(status, StatusCode::CREATED);
    repo_with(
        &app,
        "dedup2",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    let (status, _) = json_of(
        deliver(
            &app,
            "dedup2",
            "gitlab",
            "Push Hook",
            "9cebe914-race",
            &gitlab,
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "GitLab shares one event UUID across hooks"
    );
    assert_eq!(runs_of(&app, "dedup").await.len(), 4);
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_bodies_over_25_mib_are_413() {
    let app = spawn_with(no_runner()).await;
    repo_with(
        &app,
        "big",
        json!({ "webhook_secret": SECRET }),
        &simple_yaml(),
    )
    .await;
    for bad in [&b"{\"ref\": "[..], b"", b"not json"] {
        let (status, v) = json_of(deliver(&app, "big", "github", "push", "m", bad).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], "malformed_json");
    }
    // Pings and other events must be JSON too.
    let (status, _) = json_of(deliver(&app, "big", "github", "ping", "m", b"{").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // JSON, but no push.
    let (status, v) =
        json_of(deliver(&app, "big", "github", "push", "m", b"{\"zen\":1}").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_payload");
    assert!(runs_of(&app, "big").await.is_empty());

    // A push of 2 MiB (many commits) is fine: the 1 MiB API limit does not apply here.
    let mut v: Value =
        serde_json::from_slice(&fixture("gitea-push-multi-commit.json")).expect("json");
    v["padding"] = json!("x".repeat(2 * 1024 * 1024));
    let body = serde_json::to_vec(&v).expect("json");
    let (status, run) = json_of(deliver(&app, "big", "gitea", "push", "large", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");

    // Over 25 MiB: refused by the gateway (declared length, and counted when chunked) and
    // by pipeline-svc itself.
    let huge = vec![b' '; 25 * 1024 * 1024 + 1];
    let h = headers("gitea", "push", "huge", Some(SECRET), &huge);
    let (status, v) = json_of(post_hook(&app, "big", "gitea", &h, huge.clone()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        huge.chunks(1024 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    assert_eq!(
        post_hook(&app, "big", "gitea", &h, streamed).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let mut rb = app
        .http
        .post(format!("{}/api/v1/repos/big/hooks/gitea", app.pipeline));
    for (k, val) in &h {
        rb = rb.header(*k, val);
    }
    let (status, v) = json_of(rb.body(huge).send().await.expect("post")).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "pipeline-svc's own limit: {v}"
    );
    assert_eq!(runs_of(&app, "big").await.len(), 1);
    app.shutdown().await;
}
