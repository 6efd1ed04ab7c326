//! Every error a client can get has the JSON envelope, also the answers the framework writes
//! itself (a known path asked with another method, a path segment it cannot decode), on
//! pipeline-svc and on the gateway.

use crate::helpers::{envelope, no_runner, spawn_with};
use uuid::Uuid;

#[tokio::test]
async fn framework_rejections_have_the_error_envelope_on_both_services() {
    let app = spawn_with(no_runner()).await;
    let run = format!("/api/v1/pipelines/runs/{}", Uuid::now_v7());
    for base in [app.pipeline.clone(), app.gateway.clone()] {
        // A known path with a method it does not take.
        for (method, path) in [("PATCH", run.as_str()), ("POST", "/healthz")] {
            let r = app
                .http
                .request(method.parse().expect("method"), format!("{base}{path}"))
                .send()
                .await
                .expect("request");
            let allow = r.headers().get("allow").cloned();
            let (status, code, message) = envelope(r).await;
            assert_eq!(
                (status, code.as_str()),
                (405, "method_not_allowed"),
                "{base}{path}"
            );
            assert!(
                message.contains(&format!("{method} is not allowed on {path}")),
                "{message}"
            );
            let allow = allow.expect("Allow is kept");
            assert!(allow.to_str().unwrap_or("").contains("GET"), "{allow:?}");
        }
        // A route nobody serves.
        let r = app
            .http
            .get(format!("{base}/api/v1/no/such/route"))
            .send()
            .await
            .expect("GET");
        let (status, code, _) = envelope(r).await;
        assert_eq!((status, code.as_str()), (404, "not_found"), "{base}");
        // JSON that does not parse, and JSON of the wrong shape.
        for (body, want, want_code) in [
            ("{", 400, "malformed_json"),
            (r#"{"default_branch": 5}"#, 422, "invalid_body"),
        ] {
            let r = app
                .http
                .put(format!("{base}/api/v1/repos/envelopes"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("PUT");
            let (status, code, _) = envelope(r).await;
            assert_eq!((status, code.as_str()), (want, want_code), "{base} {body}");
        }
    }
    // A path segment that is not UTF-8 once decoded (the gateway refuses such a path itself,
    // with its own envelope; pipeline-svc's router rejects it before any handler).
    let r = app
        .http
        .get(format!("{}/api/v1/jobs/%FF", app.pipeline))
        .send()
        .await
        .expect("GET");
    let (status, code, message) = envelope(r).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(!message.is_empty());
    app.shutdown().await;
}
