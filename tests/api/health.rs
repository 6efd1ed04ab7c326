//! `/healthz`, `/readyz`, `/metrics` on every service.

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_service_reports_health_readiness_and_metrics() {
    let app = spawn_app().await;
    let runner = app.runner_health.clone().expect("a runner runs");
    for base in [&app.gateway, &app.pipeline, &runner] {
        for path in ["/healthz", "/readyz"] {
            let r = app
                .http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "{base}{path}");
            let body: serde_json::Value = r.json().await.expect("json");
            assert!(body["status"].is_string(), "{base}{path}: {body}");
        }
        let r = app
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("text/plain"),
            "prometheus text format"
        );
        let text = r.text().await.expect("text");
        assert!(text.contains("# TYPE"), "{base}/metrics: {text}");
    }
    app.shutdown().await;
}
