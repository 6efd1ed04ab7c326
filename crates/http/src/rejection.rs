//! The envelope for answers the framework writes itself: axum's 405 for a known path asked
//! with another method (an empty body), its 415/413/400/422 rejections (plain text), a
//! timeout layer's 408 (empty). Every service adds [`envelope_rejections`] outermost, so
//! every error a client can get has the `{"error": {"code", "message"}}` shape.

use crate::error::error_response;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};

/// The largest plain-text error body kept as the message (axum's rejections are one line).
const MAX_TEXT: usize = 16 * 1024;

/// Rewrites an error answer whose body is not JSON into the envelope, keeping its status and
/// headers (`Allow`, `Retry-After`, `Connection`). A success, and an error that already has a
/// JSON body, pass through untouched (and unbuffered); so does an HTML error page, which a
/// handler wrote on purpose (the gateway's web UI) and no framework rejection is.
pub async fn envelope_rejections(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(resp.headers())
        || is_html(resp.headers())
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        // axum adds `Allow` after every layer of the route has run, so it is not here yet.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not allowed on {path}; the Allow header lists the methods it takes"
        ),
        // Never echo what a failure said about the inside.
        s if s.is_server_error() => format!(
            "{} while answering {method} {path}; retry shortly",
            reason(s)
        ),
        s if text.is_empty() => format!("{} ({method} {path})", reason(s)),
        _ => text,
    };
    let mut out = error_response(status, code(status), message);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    out.headers_mut().extend(parts.headers);
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}

/// The stable code of a status the framework answered with.
fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::envelope_rejections;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use http::{Request, StatusCode, header};
    use std::time::Duration;
    use tower::ServiceExt;
    use tower_http::timeout::TimeoutLayer;

    #[derive(serde::Deserialize)]
    struct Body1 {
        #[expect(dead_code, reason = "only its shape matters")]
        n: u32,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/json",
                post(|_: axum::Json<Body1>| async { "ok" }).get(|| async { "ok" }),
            )
            .route("/bytes", post(|_: Bytes| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/id/{n}", get(|_: axum::extract::Path<u32>| async { "ok" }))
            .route("/plain", get(|| async { "a plain success" }))
            .route(
                "/page",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::response::Html("<p>run not found</p>"),
                    )
                }),
            )
            .layer(DefaultBodyLimit::max(16))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(10),
            ))
            .layer(axum::middleware::from_fn(envelope_rejections))
    }

    async fn ask(
        method: &str,
        uri: &str,
        ctype: Option<&str>,
        body: &str,
    ) -> (u16, String, String, http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(c) = ctype {
            req = req.header(header::CONTENT_TYPE, c);
        }
        let req = req.body(Body::from(body.to_owned())).expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or("<not an envelope>")
            .to_owned();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (status, code, message, headers)
    }

    #[tokio::test]
    async fn axum_rejections_get_the_envelope() {
        let (s, code, message, headers) = ask("DELETE", "/json", None, "").await;
        assert_eq!((s, code.as_str()), (405, "method_not_allowed"));
        assert!(
            message.contains("DELETE is not allowed on /json"),
            "{message}"
        );
        let allow = headers[header::ALLOW].to_str().expect("ascii");
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");

        let (s, code, _, _) = ask("POST", "/json", None, r#"{"n":1}"#).await;
        assert_eq!((s, code.as_str()), (415, "unsupported_media_type"));
        let (s, code, message, _) = ask("POST", "/json", Some("application/json"), "{").await;
        assert_eq!((s, code.as_str()), (400, "bad_request"));
        assert!(!message.is_empty());
        let (s, code, _, _) = ask("POST", "/json", Some("application/json"), r#"{"n":"x"}"#).await;
        assert_eq!((s, code.as_str()), (422, "invalid_body"));
        let (s, code, _, _) = ask("POST", "/bytes", None, "more than sixteen bytes").await;
        assert_eq!((s, code.as_str()), (413, "payload_too_large"));
        let (s, code, message, _) = ask("GET", "/slow", None, "").await;
        assert_eq!((s, code.as_str()), (408, "request_timeout"));
        assert!(message.contains("GET /slow"), "{message}");
        let (s, code, _, _) = ask("GET", "/id/abc", None, "").await;
        assert_eq!((s, code.as_str()), (400, "bad_request"));
        let (s, code, _, _) = ask("GET", "/nowhere", None, "").await;
        assert_eq!((s, code.as_str()), (404, "not_found"));
    }

    #[tokio::test]
    async fn an_html_error_page_is_left_as_its_handler_wrote_it() {
        let req = Request::builder()
            .uri("/page")
            .body(Body::empty())
            .expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), 404);
        let bytes = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"<p>run not found</p>");
    }

    #[tokio::test]
    async fn successes_and_json_errors_pass_untouched() {
        let req = Request::builder()
            .uri("/plain")
            .body(Body::empty())
            .expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), 200);
        let bytes = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"a plain success");

        let json = Router::new()
            .route(
                "/e",
                get(|| async {
                    crate::error::error_response(StatusCode::CONFLICT, "mine", "as it was")
                }),
            )
            .layer(axum::middleware::from_fn(envelope_rejections));
        let req = Request::builder()
            .uri("/e")
            .body(Body::empty())
            .expect("request");
        let resp = json.oneshot(req).await.expect("infallible");
        let bytes = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["error"]["code"], "mine");
        assert_eq!(v["error"]["message"], "as it was");
    }
}
