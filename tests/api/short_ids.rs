//! Short ids (issue 18): a run or job named by 8+ hex digits its id starts or ends with,
//! resolved by pipeline-svc on every run and job path; more than one match is `409 ambiguous`
//! naming the candidates.

use crate::helpers::{envelope, image, no_runner, spawn_with};
use gitweave_api::public::Run;
use serde_json::json;
use uuid::Uuid;

fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

fn common_prefix(a: Uuid, b: Uuid) -> String {
    hex(a)
        .chars()
        .zip(hex(b).chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect()
}

#[tokio::test]
async fn runs_and_jobs_resolve_by_either_end_of_their_id_and_ambiguity_is_a_409() {
    let app = spawn_with(no_runner()).await;
    let yaml = format!(
        "jobs:\n  - name: one\n    image: {img}\n    script: [\"true\"]\n  - name: two\n    image: {img}\n    script: [\"true\"]\n",
        img = image()
    );
    app.repo_with("shop", "build", &yaml).await;
    // Two runs made a moment apart share their first 8 digits (a UUIDv7's timestamp), unless
    // a 65 s boundary fell between them: then make another pair.
    let mut pair = None;
    for _ in 0..4 {
        let a = app.trigger("shop", &json!({})).await;
        let b = app.trigger("shop", &json!({})).await;
        if common_prefix(a.id, b.id).len() >= 8 {
            pair = Some((a, b));
            break;
        }
    }
    let (a, b): (Run, Run) = pair.expect("two runs with a common 8-digit prefix");

    // The printed short id (the random tail), a long prefix, and the dashed form all name it.
    let tail = gitweave_model::short_id::short(a.id);
    for name in [
        tail.clone(),
        hex(a.id)[..20].to_owned(),
        a.id.to_string()[..23].to_owned(),
        tail.to_uppercase(),
    ] {
        let got = app.get_json(&format!("/pipelines/runs/{name}")).await;
        assert_eq!(got["id"], a.id.to_string(), "{name}: {got}");
    }
    let events = app.get(&format!("/pipelines/runs/{tail}/events")).await;
    assert_eq!(events.status(), 200);
    assert!(events.text().await.expect("events").contains("run.created"));

    // A prefix both runs start with: 409 ambiguous, naming both.
    let both = &common_prefix(a.id, b.id)[..8];
    let (s, code, msg) = envelope(app.get(&format!("/pipelines/runs/{both}")).await).await;
    assert_eq!((s, code.as_str()), (409, "ambiguous"), "{msg}");
    assert!(
        msg.contains(&a.id.to_string()) && msg.contains(&b.id.to_string()),
        "{msg}"
    );
    let (s, code, _) = envelope(
        app.post_json(&format!("/pipelines/runs/{both}/cancel"), &json!({}))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "ambiguous"));

    // Jobs: by their tail on every job path; the jobs of one run share a long prefix.
    let job = &a.jobs[0];
    let jt = gitweave_model::short_id::short(job.id);
    let got = app.get_json(&format!("/jobs/{jt}")).await;
    assert_eq!(got["id"], job.id.to_string(), "{got}");
    assert_eq!(got["allow_failure"], false, "{got}");
    let page = app.get(&format!("/jobs/{jt}/logs")).await;
    assert_eq!(page.status(), 200);
    let raw = app.get(&format!("/jobs/{jt}/logs/raw")).await;
    assert_eq!(raw.status(), 200);
    let jobs_prefix = common_prefix(a.jobs[0].id, a.jobs[1].id);
    if jobs_prefix.len() >= 8 {
        let (s, code, msg) = envelope(app.get(&format!("/jobs/{}", &jobs_prefix[..8])).await).await;
        assert_eq!((s, code.as_str()), (409, "ambiguous"), "{msg}");
    }

    // Cancel and rerun by short id.
    let r = app
        .post_json(&format!("/pipelines/runs/{tail}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let r = app
        .post_json(&format!("/pipelines/runs/{tail}/rerun"), &json!({}))
        .await;
    assert_eq!(r.status(), 201);

    // Unknown and malformed.
    let nobody = "0000000f";
    let (s, code, msg) = envelope(app.get(&format!("/pipelines/runs/{nobody}")).await).await;
    assert_eq!((s, code.as_str()), (404, "not_found"), "{msg}");
    assert!(msg.contains(nobody), "{msg}");
    let (s, code, msg) = envelope(app.get("/jobs/abc123").await).await;
    assert_eq!((s, code.as_str()), (400, "invalid_id"), "{msg}");
    assert!(msg.contains("8 hex digits"), "{msg}");
    app.shutdown().await;
}
