//! The web UI (SPEC §14), served by the gateway at `/`: server-rendered HTML (maud, checked
//! at compile time), one stylesheet and one small script of our own embedded in the binary,
//! no fonts or CDNs. Every page reads pipeline-svc's public API like any client
//! ([`upstream::Api`]), with the API token; the browser never sees the token.
//!
//! One module per page: [`repos`] (the repos and a repo's runs), [`run`] (a run, its graph
//! and its actions), [`log`] (a job and its log), [`runners`], [`badge`], [`auth`] (`/login`), with
//! [`session`] for cookies and CSRF and [`layout`] for what the pages share. Pure logic (ANSI,
//! the graph's layout, line arithmetic) is in `gitweave-ui-render`.

pub mod auth;
pub mod badge;
pub mod graph;
pub mod layout;
pub mod log;
pub mod repos;
pub mod run;
pub mod runners;
pub mod session;
pub mod upstream;

use crate::state::GatewayState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use session::Session;

/// Largest form body the UI accepts (a login token, a CSRF token and an approval reason).
pub const FORM_BODY_LIMIT: usize = 16 * 1024;

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// The UI's routes, to be merged into the gateway's router (the proxy stays the fallback).
pub fn routes(state: GatewayState) -> Router<GatewayState> {
    let signed_in = Router::new()
        .route("/", get(repos::index))
        .route("/secrets", get(repos::global_secrets))
        .route("/runners", get(runners::page))
        .route("/repos/{repo}", get(repos::repo))
        .route("/repos/{repo}/runs.frag", get(repos::runs_fragment))
        .route("/repos/{repo}/badge.svg", get(badge::badge))
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/frag", get(run::fragment))
        .route("/runs/{id}/events", get(run::events))
        .route("/runs/{id}/cancel", post(run::cancel))
        .route("/runs/{id}/rerun", post(run::rerun))
        .route("/jobs/{id}", get(log::page))
        .route("/jobs/{id}/approve", post(run::approve))
        .route("/jobs/{id}/log/lines", get(log::lines))
        .route("/jobs/{id}/log/locate", get(log::locate))
        .route("/jobs/{id}/log/search", get(log::search))
        .route("/jobs/{id}/log/raw", get(log::download))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .merge(signed_in)
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state, rate_limited))
}

/// The gateway's per-client rate limit, for the UI's routes too (a login form is a token
/// guessing machine otherwise).
async fn rate_limited(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(refused) = crate::proxy::over_limit(&state, client) {
        return refused;
    }
    next.run(req).await
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The URL carries the version (`?v=`), so a cached copy is never stale.
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `s` percent-encoded for a query value.
pub fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A form's CSRF field, checked against the session: the 403 to answer when it is missing
/// or wrong.
pub fn csrf_refusal(session: &Session, sent: &str) -> Option<Response> {
    if session.csrf_ok(sent) {
        None
    } else {
        Some(layout::refused(
            StatusCode::FORBIDDEN,
            gitweave_api::error_code::CSRF_FAILED,
            "this form's CSRF token is missing or not this session's; reload the page and try again",
        ))
    }
}

/// A repo name from a path, by the repo name grammar (SPEC §2).
pub fn repo_name(raw: &str) -> Result<&str, upstream::UiError> {
    let ok = (1..=100).contains(&raw.len())
        && raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(raw)
    } else {
        Err(upstream::UiError::new(
            StatusCode::BAD_REQUEST,
            gitweave_api::error_code::INVALID_NAME,
            "a repo name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// A run or job id from a path.
pub fn parse_id(what: &str, raw: &str) -> Result<uuid::Uuid, upstream::UiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        upstream::UiError::new(
            StatusCode::BAD_REQUEST,
            gitweave_api::error_code::INVALID_ID,
            format!("{what} id {raw:?} is not a UUID"),
        )
    })
}
