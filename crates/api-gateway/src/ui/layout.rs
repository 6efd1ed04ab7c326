//! What every page shares: the HTML shell (head, header, navigation), statuses as a colour
//! **and** an icon and a word, times and durations, and the error page.

use crate::ui::session::Session;
use crate::ui::upstream::UiError;
use axum::response::{Html, IntoResponse, Response};
use gitweave_model::status::{JobStatus, RunStatus};
use http::{StatusCode, header};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;

/// A version string for the static files' URLs, so a new binary's CSS and JS are fetched
/// anew while the old ones may be cached for long.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Icon and CSS class of a status word; the word itself is always shown beside the icon.
fn status_look(status: &str) -> (&'static str, &'static str) {
    match status {
        "success" => ("✓", "ok"),
        "failed" => ("✗", "bad"),
        "running" => ("▶", "run"),
        "queued" => ("◷", "wait"),
        "blocked" | "manual" => ("⏸", "hold"),
        "canceled" => ("⊘", "off"),
        "skipped" => ("↷", "off"),
        "online" => ("●", "ok"),
        "offline" => ("○", "off"),
        _ => ("?", "off"),
    }
}

/// A status pill: icon, word, colour.
pub fn status(status: &str) -> Markup {
    let (icon, class) = status_look(status);
    html! {
        span class={ "st st-" (class) } data-status=(status) {
            span.st-i aria-hidden="true" { (icon) } " " (status)
        }
    }
}

/// The icon of a status alone (for the graph, where the word stands beside it).
pub fn status_icon(status: &str) -> &'static str {
    status_look(status).0
}

/// The CSS class of a status's colour.
pub fn status_class(status: &str) -> &'static str {
    status_look(status).1
}

/// A run's status pill.
pub fn run_status(s: RunStatus) -> Markup {
    status(s.as_str())
}

/// A job's status pill.
pub fn job_status(s: JobStatus) -> Markup {
    status(s.as_str())
}

/// `2026-12-02 03:15:20 UTC` in a `<time>` element.
pub fn timestamp(t: OffsetDateTime) -> Markup {
    let iso = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    html! { time datetime=(iso) { (shown) } }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    if s < 3600 {
        return format!("{} min {:02} s", s / 60, s % 60);
    }
    format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
}

/// How long something took (or has taken so far, when it has not ended).
pub fn span_of(started: Option<OffsetDateTime>, ended: Option<OffsetDateTime>) -> String {
    match (started, ended) {
        (Some(s), Some(e)) => duration(e - s),
        (Some(s), None) => format!("{} so far", duration(OffsetDateTime::now_utc() - s)),
        _ => "—".to_owned(),
    }
}

/// The first 10 characters of a commit sha.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The page shell around `body`. `session` gives the sign-out form (when sign-in is on).
pub fn page(title: &str, session: Option<&Session>, sign_out: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " · GitWeave" }
                link rel="stylesheet" href={ "/ui/app.css?v=" (ASSET_VERSION) };
                script src={ "/ui/app.js?v=" (ASSET_VERSION) } defer {}
            }
            body data-events=(event_names()) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { span aria-hidden="true" { "◆" } " GitWeave" }
                    nav aria-label="Main" {
                        a href="/" { "Repos" }
                        a href="/runners" { "Runners" }
                        a href="/secrets" { "Secrets" }
                    }
                    @if let (true, Some(s)) = (sign_out, session) {
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// Every event type's name, for the script's `EventSource` listeners (SSE events are named).
fn event_names() -> String {
    gitweave_model::status::EventType::ALL
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An HTML answer with a status and no caching (pages show live state).
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
            (
                header::HeaderName::from_static("content-security-policy"),
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ],
        Html(markup.into_string()),
    )
        .into_response()
}

/// The error page for `e`.
pub fn error_page(e: &UiError, session: Option<&Session>) -> Response {
    let body = html! {
        section.error role="alert" {
            h1 { "Something went wrong" }
            p { (e.message) }
            p.muted { "status " (e.status.as_u16()) ", code " code { (e.code) } }
            p { a href="/" { "Back to the repos" } }
        }
    };
    respond(e.status, page("Error", session, false, body))
}

/// A refusal before any session exists (401 without sign-in, 403 bad CSRF): the JSON
/// envelope for scripts, readable as text in a browser.
pub fn refused(status: StatusCode, code: &'static str, message: &str) -> Response {
    gitweave_http::error_response(status, code, message)
}

/// `e` as the JSON envelope (for the script's requests, which read `error.message`).
pub fn refused_owned(e: &UiError) -> Response {
    gitweave_http::error_response(e.status, &e.code, e.message.clone())
}

/// 503 when no session can be made.
pub fn sessions_full() -> Response {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        gitweave_api::error_code::SESSIONS_FULL,
        "too many signed-in sessions; retry later or ask the operator to restart the gateway",
    )
}

/// Raw HTML produced by our own renderers (ANSI lines, the graph), already escaped.
pub fn trusted(html: String) -> PreEscaped<String> {
    PreEscaped(html)
}

#[cfg(test)]
mod tests {
    use super::{duration, status};

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(duration(time::Duration::milliseconds(850)), "850 ms");
        assert_eq!(duration(time::Duration::milliseconds(12_340)), "12.3 s");
        assert_eq!(duration(time::Duration::seconds(245)), "4 min 05 s");
        assert_eq!(duration(time::Duration::seconds(7380)), "2 h 03 min");
        assert_eq!(duration(time::Duration::seconds(-3)), "0 ms");
    }

    #[test]
    fn a_status_is_an_icon_and_a_word_not_only_a_colour() {
        let s = status("failed").into_string();
        assert!(
            s.contains("✗") && s.contains("failed") && s.contains("st-bad"),
            "{s}"
        );
        let odd = status("<x>").into_string();
        assert!(!odd.contains("<x>"), "escaped: {odd}");
    }
}
