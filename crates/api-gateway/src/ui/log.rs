//! `/jobs/{id}`: a job and its log. The page holds a window of pages of the log, never the
//! whole of it: the server renders the first page into the HTML (the first screen needs no
//! second request), and the script asks `/jobs/{id}/log/lines` for the page after the last
//! one shown (as the reader scrolls, and every second while the job runs) or before the
//! first one, dropping pages at the other end. `/log/locate` finds where a line starts (by
//! number, from the end, or the page before an offset) and `/log/search` finds lines, both by
//! streaming the raw log through the gateway once; `/log/raw` is the download.
//!
//! A page is cut after its last complete line, so lines are never split between pages (a
//! line longer than a page is the exception, continued on the next row with the same
//! number). Byte offsets come from the log API's own offsets; a page whose text has bytes
//! that were not UTF-8 (shown as U+FFFD) is shown whole, because its text no longer tells
//! byte positions.

use crate::state::GatewayState;
use crate::ui::layout::{self, job_status, span_of, timestamp};
use crate::ui::parse_id;
use crate::ui::run::{approve_form, failure, waiting_of};
use crate::ui::session::{self, Session};
use crate::ui::upstream::{Api, UiError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use gitweave_api::error_code;
use gitweave_api::public::{Job, LogsPage};
use gitweave_ui_render::ansi::{self, Style};
use gitweave_ui_render::lines::{Hit, LinePos, Locator, Searcher, Target};
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use uuid::Uuid;

/// Bytes of log per page (the log API's default page).
pub const PAGE_BYTES: u64 = 64 * 1024;
/// The log API's largest page.
const MAX_PAGE_BYTES: u64 = 1024 * 1024;
/// Lines counted back from the end when jumping there.
pub const TAIL_LINES: usize = 300;
/// Hits a search returns at most.
pub const MAX_HITS: usize = 200;
/// Longest search word.
pub const MAX_QUERY_BYTES: usize = 200;

/// A rendered page of log lines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lines {
    /// The rows, HTML.
    pub html: String,
    /// Where the page starts.
    pub offset: u64,
    /// The number of its first line.
    pub line: u64,
    /// Where the next page starts.
    pub next_offset: u64,
    /// The number of the next page's first line.
    pub next_line: u64,
    /// The page's last row is a line that goes on in the next page.
    pub partial: bool,
    /// The job has ended and this page reaches the end of its log.
    pub complete: bool,
    /// The ANSI colour in force at the end (for the next page), if any.
    pub fg: Option<u8>,
    /// Bold in force at the end.
    pub bold: bool,
    /// The job's header, re-rendered, when asked (`head=true`) and the log is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

/// Where a page starts and how (`/log/lines` query).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct PageAt {
    /// Byte offset of a line start (0: the log's start).
    #[serde(default)]
    pub offset: u64,
    /// Its line number; when absent, the line start at or before `offset` is looked up.
    pub line: Option<u64>,
    /// Stop before this offset (a page shown before another).
    pub end: Option<u64>,
    /// The first row goes on from the previous page's last row.
    #[serde(default)]
    pub cont: bool,
    /// ANSI colour in force at `offset`.
    pub fg: Option<u8>,
    /// Bold in force at `offset`.
    #[serde(default)]
    pub bold: bool,
    /// Send the job's header too once the log is complete.
    #[serde(default)]
    pub head: bool,
}

fn row(out: &mut String, n: u64, text: &str, style: &mut Style, continued: bool) {
    if continued {
        out.push_str("<div class=\"l c\"><span class=\"n\" aria-hidden=\"true\">");
        out.push_str(&n.to_string());
        out.push_str("</span><span class=\"t\">");
    } else {
        let n = n.to_string();
        out.push_str("<div class=\"l\" id=\"L");
        out.push_str(&n);
        out.push_str("\"><a class=\"n\" href=\"#L");
        out.push_str(&n);
        out.push_str("\">");
        out.push_str(&n);
        out.push_str("</a><span class=\"t\">");
    }
    ansi::render_into(out, text, style);
    out.push_str("</span></div>");
}

/// Renders `text` (starting at line `line`) into rows; returns how many line ends it had.
fn rows(text: &str, line: u64, cont: bool, style: &mut Style) -> (String, u64) {
    let mut out = String::with_capacity(text.len() * 2);
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut ends = 0;
    if !text.is_empty() {
        for (i, l) in body.split('\n').enumerate() {
            row(&mut out, line + i as u64, l, style, i == 0 && cont);
        }
        ends = text.matches('\n').count() as u64;
    }
    (out, ends)
}

/// The part of a page to show, and where the next page starts.
#[derive(Debug, PartialEq, Eq)]
struct Cut {
    /// Bytes of the page's text to show.
    shown: usize,
    /// The next page's offset.
    next: u64,
}

/// Where to cut a page of `text` starting at `offset`, whose API `next_offset` is
/// `page_next`; `whole` when it must be shown whole (the end of the log or of the window).
fn cut(text: &str, offset: u64, page_next: u64, whole: bool, full_page: bool) -> Cut {
    if whole || text.contains('\u{fffd}') {
        return Cut {
            shown: text.len(),
            next: page_next,
        };
    }
    match text.rfind('\n') {
        Some(i) => Cut {
            shown: i + 1,
            next: offset + i as u64 + 1,
        },
        // A line longer than a page: show it and go on with it.
        None if full_page => Cut {
            shown: text.len(),
            next: page_next,
        },
        // A running job's unfinished line: wait for its end.
        None => Cut {
            shown: 0,
            next: offset,
        },
    }
}

/// Renders the page of job `job` at `at`.
pub async fn render_page(api: &Api<'_>, job: Uuid, at: PageAt) -> Result<Lines, UiError> {
    let (mut offset, mut line) = (at.offset, at.line);
    if line.is_none() && offset > 0 {
        let found = locate_in(api, job, Target::Before { offset, bytes: 0 }).await?;
        (offset, line) = (found.offset, Some(found.line));
    }
    let line = line.unwrap_or(1).max(1);
    let limit = match at.end {
        Some(end) if end > offset => (end - offset).min(MAX_PAGE_BYTES),
        Some(_) => 0,
        None => PAGE_BYTES,
    };
    let mut style = Style {
        fg: at.fg.filter(|c| *c < 16),
        bold: at.bold,
    };
    if limit == 0 {
        return Ok(Lines {
            html: String::new(),
            offset,
            line,
            next_offset: offset,
            next_line: line,
            partial: at.cont,
            complete: false,
            fg: style.fg,
            bold: style.bold,
            head: None,
        });
    }
    let (o, l) = (offset.to_string(), limit.to_string());
    let page: LogsPage = api
        .get(
            &["jobs", &job.to_string(), "logs"],
            &[("offset", &o), ("limit", &l)],
        )
        .await?;
    let text: String = page.chunks.iter().map(|c| c.data.as_str()).collect();
    let page_next = u64::try_from(page.next_offset).unwrap_or(offset);
    let window_end = at.end.is_some_and(|e| page_next >= e);
    let full_page = page_next - offset >= limit;
    let c = cut(
        &text,
        offset,
        page_next,
        page.complete || window_end,
        full_page,
    );
    let shown = &text[..c.shown];
    let (html, ends) = rows(shown, line, at.cont, &mut style);
    let partial = !shown.is_empty() && !shown.ends_with('\n') || (shown.is_empty() && at.cont);
    let rows_shown = if shown.is_empty() {
        0
    } else {
        ends + u64::from(!shown.ends_with('\n'))
    };
    let next_line = if partial {
        line + rows_shown.saturating_sub(1)
    } else {
        line + rows_shown
    };
    let complete = page.complete && c.next >= page_next;
    Ok(Lines {
        html,
        offset,
        line,
        next_offset: c.next,
        next_line,
        partial,
        complete,
        fg: style.fg,
        bold: style.bold,
        head: None,
    })
}

/// Streams job `job`'s raw log through `feed` until it says it has enough.
async fn scan_raw(
    api: &Api<'_>,
    job: Uuid,
    mut feed: impl FnMut(&[u8]) -> bool,
) -> Result<(), UiError> {
    let resp = api
        .stream(&["jobs", &job.to_string(), "logs", "raw"], &[], &[])
        .await?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::warn!(error = %e, "ui: the raw log stream broke off");
            UiError::new(
                StatusCode::BAD_GATEWAY,
                error_code::BAD_GATEWAY,
                "the log stream from pipeline-svc broke off; try again",
            )
        })?;
        if feed(&chunk) {
            break;
        }
    }
    Ok(())
}

async fn locate_in(api: &Api<'_>, job: Uuid, target: Target) -> Result<LinePos, UiError> {
    let mut locator = Locator::new(target);
    scan_raw(api, job, |c| locator.feed(c)).await?;
    Ok(locator.finish())
}

/// Loads job `id` with its `waiting` (if pipeline-svc says it).
async fn load_job(
    api: &Api<'_>,
    id: Uuid,
) -> Result<(Job, Option<crate::ui::run::Waiting>), UiError> {
    let v: serde_json::Value = api.get(&["jobs", &id.to_string()], &[]).await?;
    let mut waiting = waiting_of(&v);
    let job: Job = serde_json::from_value(v).map_err(|e| {
        tracing::warn!(error = %e, "ui: a job pipeline-svc sent does not parse");
        UiError::new(
            StatusCode::BAD_GATEWAY,
            error_code::BAD_GATEWAY,
            "pipeline-svc sent a job the UI cannot read",
        )
    })?;
    let w = waiting.remove(&job.id);
    Ok((job, w))
}

fn head(s: &Session, j: &Job, waiting: Option<&crate::ui::run::Waiting>) -> Markup {
    html! {
        section #job-head data-status=(j.status.as_str()) data-ended=(j.status.is_terminal()) {
            dl.facts {
                div { dt { "Status" } dd { (job_status(j.status)) } }
                div { dt { "Took" } dd { (span_of(j.started_at, j.ended_at)) } }
                div { dt { "Attempt" } dd { (j.attempt) } }
                div { dt { "Exit code" } dd { @if let Some(c) = j.exit_code { (c) } @else { "—" } } }
                @if let Some(t) = j.started_at { div { dt { "Started" } dd { (timestamp(t)) } } }
            }
            @if let Some(f) = failure(j) { p.problem role="status" { (f) } }
            @if let Some(w) = waiting { p.waiting { span.tag { "waits: " (w.reason) } " " (w.message) } }
            @if j.log_truncated { p.muted { "This log was cut at the runner's RUNNER_LOG_LIMIT." } }
            @if j.status == gitweave_model::status::JobStatus::Manual { (approve_form(s, j)) }
        }
    }
}

/// `GET /jobs/{id}`.
pub async fn page(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let (job, waiting) = load_job(&api, id).await?;
        let first = render_page(&api, id, PageAt::default()).await?;
        Ok::<_, UiError>((job, waiting, first))
    }
    .await;
    let (job, waiting, first) = match result {
        Ok(v) => v,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    let running = !job.status.is_terminal();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Repos" } " / " a href={ "/runs/" (job.run_id) } { "run " code { (job.run_id.to_string().get(..8).unwrap_or("")) } } " / " span { (job.name) }
        }
        h1 { (job.name) }
        (head(&s, &job, waiting.as_ref()))
        // The tools and the search results stay in view while the log scrolls under them.
        div.log-bar {
            div.log-tools role="toolbar" aria-label="Log" {
                form #log-search role="search" action={ "/jobs/" (job.id) "/log/search" } {
                    label.sr for="log-q" { "Search the log" }
                    input #log-q type="search" name="q" maxlength=(MAX_QUERY_BYTES) placeholder="Search the whole log" required;
                    button type="submit" { "Search" }
                }
                button #log-end type="button" { "Jump to end" }
                label.follow { input #log-follow type="checkbox" checked[running]; " Follow" }
                a.button href={ "/jobs/" (job.id) "/log/raw" } download { "Download" }
            }
            div #search-results hidden aria-live="polite" {}
        }
        div #log.log data-job=(job.id) data-running=(running) {
            div #log-top.sentinel hidden { "Loading earlier lines…" }
            div.page data-offset=(first.offset) data-line=(first.line)
                data-next-offset=(first.next_offset) data-next-line=(first.next_line)
                data-partial=(first.partial) data-complete=(first.complete)
                data-fg=(first.fg.map(|f| f.to_string()).unwrap_or_default()) data-bold=(first.bold) {
                (layout::trusted(first.html.clone()))
            }
            div #log-bottom.sentinel { @if first.complete { "End of log" } @else if running { "Waiting for more output…" } @else { "Loading…" } }
        }
        noscript { p.muted { "Without JavaScript only the first page of the log is shown; use Download for the whole log." } }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&job.name, Some(&s), session::sign_in_required(&state), body),
    )
}

/// `GET /jobs/{id}/log/lines?offset=&line=&end=&cont=&fg=&bold=&head=`: one page as JSON.
pub async fn lines(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(at): Query<PageAt>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let mut page = render_page(&api, id, at).await?;
        if at.head && page.complete {
            let (job, waiting) = load_job(&api, id).await?;
            page.head = Some(head(&s, &job, waiting.as_ref()).into_string());
        }
        Ok::<_, UiError>(page)
    }
    .await;
    match result {
        Ok(p) => no_store(Json(p).into_response()),
        Err(e) => layout::refused_owned(&e),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `/log/locate` query: exactly one of them.
#[derive(Debug, serde::Deserialize)]
pub struct LocateQuery {
    line: Option<u64>,
    tail: Option<usize>,
    before: Option<u64>,
}

/// `GET /jobs/{id}/log/locate?line=N | tail=N | before=OFFSET`: `{offset, line}` of a line
/// start (`before`: the line start a page before `OFFSET`).
pub async fn locate(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LocateQuery>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let target = match (q.line, q.tail, q.before) {
            (Some(n), None, None) => Target::Line(n),
            (None, Some(n), None) => Target::Tail(n.clamp(1, 100_000)),
            (None, None, Some(o)) => Target::Before {
                offset: o,
                bytes: PAGE_BYTES,
            },
            _ => {
                return Err(UiError::new(
                    StatusCode::BAD_REQUEST,
                    error_code::BAD_QUERY,
                    "give exactly one of line, tail or before",
                ));
            }
        };
        let at = locate_in(&api, id, target).await?;
        Ok(serde_json::json!({ "offset": at.offset, "line": at.line }))
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => layout::refused_owned(&e),
    }
}

/// `/log/search` query.
#[derive(Debug, serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /jobs/{id}/log/search?q=`: the lines whose visible text contains `q` (ASCII
/// case-insensitive), at most [`MAX_HITS`].
pub async fn search(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let word = q.q.trim();
        if word.is_empty() || word.len() > MAX_QUERY_BYTES {
            return Err(UiError::new(
                StatusCode::BAD_REQUEST,
                error_code::BAD_QUERY,
                format!("search for 1 to {MAX_QUERY_BYTES} bytes of text"),
            ));
        }
        let mut searcher = Searcher::new(word, MAX_HITS);
        scan_raw(&api, id, |c| searcher.feed(c)).await?;
        let hits: Vec<Hit> = searcher.finish();
        let capped = hits.len() >= MAX_HITS;
        let hits: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| serde_json::json!({ "line": h.at.line, "offset": h.at.offset, "text": h.preview }))
            .collect();
        Ok(serde_json::json!({ "hits": hits, "capped": capped }))
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => layout::refused_owned(&e),
    }
}

/// `GET /jobs/{id}/log/raw`: the whole log as a file, streamed from the API.
pub async fn download(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let resp = api
            .stream(&["jobs", &id.to_string(), "logs", "raw"], &[], &[])
            .await?;
        Ok::<_, UiError>((id, resp))
    }
    .await;
    match result {
        Ok((id, upstream)) => (
            [
                (header::CONTENT_TYPE, "text/plain".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"job-{id}.log\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff".to_owned(),
                ),
            ],
            Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other)),
        )
            .into_response(),
        Err(e) => layout::refused_owned(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::{Cut, Style, cut, rows};

    #[test]
    fn a_page_is_cut_after_its_last_whole_line() {
        assert_eq!(
            cut("a\nb\nc", 10, 15, false, false),
            Cut { shown: 4, next: 14 }
        );
        assert_eq!(
            cut("a\nb\nc", 10, 15, true, false),
            Cut { shown: 5, next: 15 }
        );
        assert_eq!(cut("abc", 0, 3, false, false), Cut { shown: 0, next: 0 });
        assert_eq!(cut("abc", 0, 3, false, true), Cut { shown: 3, next: 3 });
        // Replaced bytes: the text no longer tells offsets; show it whole.
        assert_eq!(
            cut("a\u{fffd}\nb", 0, 5, false, false),
            Cut { shown: 6, next: 5 }
        );
    }

    #[test]
    fn rows_are_numbered_linked_and_escaped() {
        let (html, ends) = rows(
            "one\n<script>x</script>\n",
            41,
            false,
            &mut Style::default(),
        );
        assert_eq!(ends, 2);
        assert!(html.contains("id=\"L41\""));
        assert!(html.contains("href=\"#L42\""));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        let (cont, _) = rows("rest\n", 7, true, &mut Style::default());
        assert!(
            !cont.contains("id=\"L7\""),
            "a continued row has no anchor of its own"
        );
    }
}
