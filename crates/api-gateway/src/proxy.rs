//! The reverse proxy to pipeline-svc: auth, limits, streaming, and error mapping.
//!
//! Every decision (may it go without the token? which body limit? where upstream?) is made on
//! the [`PublicPath`] parsed from the request, and the upstream URL is built from it, so the
//! path checked is the path served (SPEC §15).

use crate::body::{self, BodyLimits, Cut};
use crate::state::GatewayState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use gitweave_api::error_code;
use gitweave_api::route::{self, Access, PathError, PublicPath};
use gitweave_http::{REQUEST_ID_HEADER, error_response};
use http::{HeaderMap, HeaderName, StatusCode, header};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1); never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn authorized(expected: &str, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| bool::from(t.trim().as_bytes().ct_eq(expected.as_bytes())))
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// 429 with `Retry-After` when `client` has spent its requests (before anything else, so
/// guessing the API token is limited too).
pub(crate) fn over_limit(state: &GatewayState, client: Option<IpAddr>) -> Option<Response> {
    let (limiter, client) = (state.limiter.as_ref()?, client?);
    let wait = limiter.check(client, Instant::now()).err()?;
    state.metrics.inc("gateway_rate_limited_total", "");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        error_code::RATE_LIMITED,
        format!(
            "too many requests from {client}: the limit is {} per second after a burst; retry after {secs} s",
            limiter.rate()
        ),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    Some(resp)
}

/// Proxies one `/api/v1` request.
pub async fn forward(State(state): State<GatewayState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(refused) = over_limit(&state, client) {
        return refused;
    }
    let path = match route::parse(parts.uri.path()) {
        Ok(path) => path,
        Err(e) => return path_refused(&e),
    };
    let access = path.access(&parts.method);
    if let Some(expected) = &state.config.api_token
        && access == Access::Api
        && !authorized(expected, &parts.headers)
    {
        return error_response(
            StatusCode::UNAUTHORIZED,
            error_code::UNAUTHENTICATED,
            "this GitWeave needs Authorization: Bearer <GITWEAVE_API_TOKEN>",
        );
    }
    let limit = match access {
        Access::Webhook(_) => state.config.webhook_body_limit,
        Access::Api => state.config.body_limit,
    };
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_code::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the {limit}-byte limit"),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let Some(url) = upstream_url(&state, &path, parts.uri.query()) else {
        tracing::warn!(path = %path.upstream_path(), "a parsed path would be rewritten upstream");
        return error_response(
            StatusCode::BAD_REQUEST,
            error_code::INVALID_PATH,
            "this path cannot be forwarded unchanged",
        );
    };

    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    if let Some(ip) = client {
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            ip.to_string()
                .parse()
                .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
        );
    }
    // A request without a body (most GETs) is forwarded without one, not as an empty chunked
    // stream (bench/FINDINGS.md #11).
    let bodiless = axum::body::HttpBody::is_end_stream(&body);
    // Count bytes as they stream through, and watch for a client that stops sending; either
    // cuts the upload, and we answer 413 or 408.
    let idle = Duration::from_millis(state.config.body_idle_timeout_ms);
    let (stream, guard) = body::guard(
        body,
        BodyLimits {
            max_bytes: limit,
            idle,
        },
    );
    let request = state
        .client
        .request(parts.method.clone(), url)
        .headers(headers);
    let request = if bodiless {
        request
    } else {
        request.body(reqwest::Body::wrap_stream(stream))
    };
    let timeout = Duration::from_millis(state.config.upstream_timeout_ms);
    let upstream = match tokio::time::timeout(timeout, request.send()).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) if guard.cut() == Some(Cut::TooLarge) => return too_large(),
        Ok(Err(_)) if guard.cut() == Some(Cut::Idle) => return body_stalled(idle),
        Ok(Err(e)) if e.is_connect() => {
            state
                .metrics
                .inc("gateway_upstream_errors_total", "kind=\"unavailable\"");
            tracing::warn!(error = %e, "pipeline-svc unreachable");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                error_code::UPSTREAM_UNAVAILABLE,
                "pipeline-svc is not reachable; retry shortly",
            );
        }
        Ok(Err(e)) => {
            state
                .metrics
                .inc("gateway_upstream_errors_total", "kind=\"bad_gateway\"");
            tracing::warn!(error = %e, "pipeline-svc request failed");
            return error_response(
                StatusCode::BAD_GATEWAY,
                error_code::BAD_GATEWAY,
                "pipeline-svc failed to answer this request; retry shortly",
            );
        }
        Err(_) => {
            state
                .metrics
                .inc("gateway_upstream_errors_total", "kind=\"timeout\"");
            return error_response(
                StatusCode::GATEWAY_TIMEOUT,
                error_code::UPSTREAM_TIMEOUT,
                format!(
                    "pipeline-svc did not answer within {} ms",
                    timeout.as_millis()
                ),
            );
        }
    };

    let status = upstream.status();
    let mut response_headers = HeaderMap::new();
    copy_headers(upstream.headers(), &mut response_headers);
    // The request id the client sees is the one this gateway assigned (already on the
    // request, propagated by the layer); drop upstream's copy to avoid a duplicate.
    response_headers.remove(REQUEST_ID_HEADER);
    let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(response_headers);
    resp
}

/// 404 for a path outside `/api/v1/`, 400 `invalid_path` for one a parser would rewrite.
fn path_refused(e: &PathError) -> Response {
    match e {
        PathError::NotPublic => {
            error_response(StatusCode::NOT_FOUND, error_code::NOT_FOUND, e.to_string())
        }
        _ => error_response(
            StatusCode::BAD_REQUEST,
            error_code::INVALID_PATH,
            e.to_string(),
        ),
    }
}

/// pipeline-svc's URL for `path`, with the query string as received. Built from the parsed
/// segments; `None` if the URL parser would still change the path (it cannot, by
/// construction of [`PublicPath`]; this keeps it so should the parser ever change).
fn upstream_url(
    state: &GatewayState,
    path: &PublicPath,
    query: Option<&str>,
) -> Option<reqwest::Url> {
    let wanted = format!("{}{}", state.upstream_base_path, path.upstream_path());
    let mut raw = format!("{}{}", state.upstream, path.upstream_path());
    if let Some(q) = query {
        raw.push('?');
        raw.push_str(q);
    }
    reqwest::Url::parse(&raw)
        .ok()
        .filter(|url| url.path() == wanted)
}

/// 408 for a body the client stopped sending; the connection is closed after it.
fn body_stalled(idle: Duration) -> Response {
    let mut resp = error_response(
        StatusCode::REQUEST_TIMEOUT,
        error_code::REQUEST_TIMEOUT,
        format!(
            "the request body sent nothing for {} ms; the request was dropped",
            idle.as_millis()
        ),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}
