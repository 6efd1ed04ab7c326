//! The gateway: token, request ids, body limits, and answers when pipeline-svc is down.

use crate::helpers::{Options, envelope, no_runner, spawn_with};
use serde_json::Value;

#[tokio::test]
async fn the_api_token_is_required_except_for_webhooks() {
    let app = spawn_with(Options {
        api_token: Some("t0k3n".into()),
        ..no_runner()
    })
    .await;
    let r = app.http.get(app.api("/repos")).send().await.expect("get");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("envelope");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let r = app
        .http
        .get(app.api("/repos"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.api("/repos"))
        .bearer_auth("t0k3n")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .post(app.api("/repos/r/hooks/github"))
        .body("{}")
        .send()
        .await
        .expect("post");
    // Refused (unknown repo, no signature: SPEC §7), but by the webhook receiver, not for
    // the API token: webhooks carry their own signatures.
    let (_, _, message) = envelope(r).await;
    assert!(
        !message.contains("GITWEAVE_API_TOKEN") && message.contains("signature"),
        "{message}"
    );
    let r = app.gateway_get("/healthz").await;
    assert_eq!(r.status(), 200, "health is outside /api/v1");
    app.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_propagated_or_made_up() {
    let app = spawn_with(no_runner()).await;
    let r = app
        .http
        .get(app.api("/repos"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    assert_eq!(r.headers().get_all("x-request-id").iter().count(), 1);
    let r = app
        .http
        .get(app.api("/repos/nope"))
        .send()
        .await
        .expect("get");
    let id = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh id: {id}");
    // pipeline-svc sees the same id the gateway assigned.
    let direct = app
        .http
        .get(format!("{}/api/v1/repos", app.pipeline))
        .header("x-request-id", "direct-1")
        .send()
        .await
        .expect("get");
    assert_eq!(direct.headers()["x-request-id"], "direct-1");
    app.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let app = spawn_with(no_runner()).await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = app
        .send_raw(
            reqwest::Method::PUT,
            "/templates/big",
            "application/yaml",
            big.clone(),
        )
        .await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.expect("envelope");
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = app
        .http
        .put(app.api("/templates/big"))
        .header("content-type", "application/yaml")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    let r = app
        .http
        .get(app.api("/templates"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "still serving");
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_with(Options {
        rate_limit: Some((2, 3)),
        ..no_runner()
    })
    .await;
    let get = |http: &reqwest::Client| http.get(app.api("/templates")).send();
    for i in 0..3 {
        let r = get(&app.http).await.expect("get");
        assert_eq!(r.status(), 200, "request {i} of the burst");
    }
    let r = get(&app.http).await.expect("get");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, code, message) = envelope(r).await;
    assert_eq!(code, "rate_limited");
    assert!(
        message.contains("127.0.0.1") && message.contains("2 per second"),
        "{message}"
    );
    // Health checks are not limited; another client address has its own allowance.
    let r = app.gateway_get("/healthz").await;
    assert_eq!(r.status(), 200);
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    assert_eq!(get(&other).await.expect("get").status(), 200);
    // After Retry-After, the first client is served again.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(get(&app.http).await.expect("get").status(), 200);
    let metrics = app
        .gateway_get("/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("gateway_rate_limited_total 1"),
        "{metrics}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn pipeline_svc_down_gives_a_503_envelope() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gapp = api_gateway::App::build(api_gateway::Config::for_pipeline(format!(
        "http://127.0.0.1:{port}"
    )))
    .await
    .expect("gateway");
    let base = format!("http://{}", gapp.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(gapp.run_until_stopped(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/api/v1/repos"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("envelope");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    let r = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 503);
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "alive even when its upstream is not");
    let _ = tx.send(());
    let _ = handle.await;
}
