//! `/runs/{id}`: a run with its graph, its jobs (status, duration, attempt, exit code, error
//! class, why it failed or waits) and its actions: cancel, rerun, approve with a reason.
//! The page follows the run's event stream (`/runs/{id}/events`, the API's SSE passed
//! through) and swaps in `/runs/{id}/frag` when something changes.

use crate::state::GatewayState;
use crate::ui::layout::{self, job_status, run_status, short_sha, span_of, timestamp};
use crate::ui::session::{self, Session};
use crate::ui::upstream::{Api, UiError};
use crate::ui::{csrf_refusal, graph, parse_id};
use axum::Form;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures::TryStreamExt;
use gitweave_api::error_code;
use gitweave_api::public::{Job, Run};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use maud::{Markup, html};
use std::collections::HashMap;
use uuid::Uuid;

/// Why a queued or manual job waits (SPEC §13), shown when pipeline-svc says it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Waiting {
    /// `needs`, `approval`, `backoff`, `no_runner`, `capacity`.
    pub reason: String,
    /// A sentence.
    #[serde(default)]
    pub message: String,
}

/// A run as the page shows it: the API's run, and each job's `waiting` when present (read
/// from the same JSON, so a pipeline-svc without the field shows nothing there).
pub struct RunView {
    /// The run.
    pub run: Run,
    /// `waiting` by job.
    pub waiting: HashMap<Uuid, Waiting>,
}

/// Longest approval reason, in bytes (pipeline-svc's cap).
pub const MAX_REASON_BYTES: usize = 1000;

/// Loads run `id`.
pub async fn load(api: &Api<'_>, id: Uuid) -> Result<RunView, UiError> {
    let id = id.to_string();
    let v: serde_json::Value = api.get(&["pipelines", "runs", &id], &[]).await?;
    let waiting = waiting_of(&v);
    let run: Run = serde_json::from_value(v).map_err(|e| {
        tracing::warn!(error = %e, "ui: a run pipeline-svc sent does not parse");
        UiError::new(
            StatusCode::BAD_GATEWAY,
            error_code::BAD_GATEWAY,
            "pipeline-svc sent a run the UI cannot read",
        )
    })?;
    Ok(RunView { run, waiting })
}

/// The `waiting` objects of a run's (or one job's) JSON, by job id.
pub fn waiting_of(v: &serde_json::Value) -> HashMap<Uuid, Waiting> {
    let jobs: Vec<&serde_json::Value> = match v.get("jobs").and_then(|j| j.as_array()) {
        Some(list) => list.iter().collect(),
        None => vec![v],
    };
    jobs.into_iter()
        .filter_map(|j| {
            let id = j.get("id")?.as_str()?.parse().ok()?;
            let w = serde_json::from_value(j.get("waiting")?.clone()).ok()?;
            Some((id, w))
        })
        .collect()
}

/// Why a job failed or was skipped, in words.
pub fn failure(j: &Job) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(c) = j.error_class {
        parts.push(c.as_str().replace('_', " "));
    }
    if let Some(code) = j.exit_code
        && code != 0
    {
        parts.push(format!("exit code {code}"));
    }
    if let Some(r) = &j.reason {
        parts.push(r.clone());
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The approve form of a manual job.
pub fn approve_form(s: &Session, j: &Job) -> Markup {
    html! {
        form.approve method="post" action={ "/jobs/" (j.id) "/approve" } {
            input type="hidden" name="csrf" value=(s.csrf);
            label for={ "reason-" (j.id) } { "Reason" }
            input id={ "reason-" (j.id) } type="text" name="reason" maxlength=(MAX_REASON_BYTES) placeholder="why it may go ahead";
            button type="submit" { "Approve " (j.name) }
        }
    }
}

/// What a refresh must show when it changes (statuses, attempts, waiting reasons): the
/// script swaps the page's part only when this differs, so a replay of old events on
/// connecting, or an event that changed nothing shown, leaves the page (and a reason being
/// typed, and focus) alone.
fn signature(v: &RunView) -> String {
    let mut sig = v.run.status.as_str().to_owned();
    for j in &v.run.jobs {
        sig.push_str(&format!(
            "|{}:{}:{}",
            j.status.as_str(),
            j.attempt,
            j.ended_at.is_some()
        ));
        if let Some(w) = v.waiting.get(&j.id) {
            sig.push_str(&format!(":{}:{}", w.reason, w.message));
        }
    }
    sig
}

/// What changes live: the header facts, the actions, the graph and the jobs table.
fn live(s: &Session, v: &RunView) -> Markup {
    let r = &v.run;
    html! {
        div #run-live data-run=(r.id) data-status=(r.status.as_str()) data-ended=(r.status.is_terminal()) data-sig=(signature(v)) {
            dl.facts {
                div { dt { "Status" } dd { (run_status(r.status)) } }
                div { dt { "Ref" } dd { code { (r.git_ref) } } }
                div { dt { "Commit" } dd { @if let Some(c) = &r.commit { code title=(c) { (short_sha(c)) } } @else { "—" } } }
                div { dt { "Trigger" } dd { (r.trigger.as_str()) } }
                div { dt { "Created" } dd { (timestamp(r.created_at)) } }
                div { dt { "Took" } dd { (span_of(r.started_at, r.ended_at)) } }
            }
            div.actions {
                @if !r.status.is_terminal() {
                    form method="post" action={ "/runs/" (r.id) "/cancel" } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button.danger type="submit" { "Cancel run" }
                    }
                } @else {
                    form method="post" action={ "/runs/" (r.id) "/rerun" } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button type="submit" { "Rerun" }
                    }
                }
            }
            h2 { "Graph" }
            div.dag-wrap { (graph::svg(&r.jobs)) }
            h2 { "Jobs" }
            div.table-wrap {
                table.list.jobs {
                    caption.sr { "Jobs in pipeline order" }
                    thead { tr { th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Took" } th scope="col" { "Attempt" } th scope="col" { "Details" } } }
                    tbody {
                        @for j in &r.jobs {
                            tr data-job=(j.id) data-status=(j.status.as_str()) {
                                th scope="row" { a href={ "/jobs/" (j.id) } { (j.name) } }
                                td { (job_status(j.status)) }
                                td { (span_of(j.started_at, j.ended_at)) }
                                td { (j.attempt) }
                                td {
                                    @if let Some(f) = failure(j) { p.problem { (f) } }
                                    @if let Some(w) = v.waiting.get(&j.id) {
                                        p.waiting { span.tag { "waits: " (w.reason) } " " (w.message) }
                                    }
                                    @if j.log_truncated { p.muted { "log truncated at the runner's limit" } }
                                    @if j.status == gitweave_model::status::JobStatus::Manual { (approve_form(s, j)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /runs/{id}`.
pub async fn page(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let api = Api::new(&state, &headers);
    let v = match async { load(&api, parse_id("run", &id)?).await }.await {
        Ok(v) => v,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    let r = &v.run;
    let title = format!(
        "Run {} of {}",
        r.id.to_string().get(..8).unwrap_or(""),
        r.repo
    );
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Repos" } " / " a href={ "/repos/" (r.repo) } { (r.repo) } " / " span { "run " code { (r.id) } }
        }
        h1 { "Run of " (r.repo) " at " code { (r.git_ref) } }
        (live(&s, &v))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&title, Some(&s), session::sign_in_required(&state), body),
    )
}

/// `GET /runs/{id}/frag`: the live part alone.
pub async fn fragment(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let api = Api::new(&state, &headers);
    match async { load(&api, parse_id("run", &id)?).await }.await {
        Ok(v) => layout::respond(StatusCode::OK, live(&s, &v)),
        Err(e) => layout::refused_owned(&e),
    }
}

/// `GET /runs/{id}/events`: the API's event stream (SSE), passed through as it comes,
/// resuming from the browser's `Last-Event-ID`.
pub async fn events(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("run", &id)?.to_string();
        let mut extra = vec![(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        )];
        if let Some(last) = headers.get("last-event-id") {
            extra.push((HeaderName::from_static("last-event-id"), last.clone()));
        }
        api.stream(&["pipelines", "runs", &id, "events"], &[], &extra)
            .await
    }
    .await;
    match result {
        Ok(upstream) => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other)),
        )
            .into_response(),
        Err(e) => layout::refused_owned(&e),
    }
}

/// A form that carries only the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /runs/{id}/cancel`.
pub async fn cancel(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&s, &f.csrf) {
        return refused;
    }
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("run", &id)?;
        api.post(
            &["pipelines", "runs", &id.to_string(), "cancel"],
            &serde_json::json!({}),
        )
        .await?;
        Ok::<_, UiError>(id)
    }
    .await;
    match result {
        Ok(id) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(e) => layout::error_page(&e, Some(&s)),
    }
}

/// `POST /runs/{id}/rerun`: to the new run's page.
pub async fn rerun(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&s, &f.csrf) {
        return refused;
    }
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("run", &id)?;
        let new = api
            .post(
                &["pipelines", "runs", &id.to_string(), "rerun"],
                &serde_json::json!({}),
            )
            .await?;
        new["id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or_else(|| {
                UiError::new(
                    StatusCode::BAD_GATEWAY,
                    error_code::BAD_GATEWAY,
                    "pipeline-svc made the rerun but sent no id for it; see the repo's runs",
                )
            })
    }
    .await;
    match result {
        Ok(new) => Redirect::to(&format!("/runs/{new}")).into_response(),
        Err(e) => layout::error_page(&e, Some(&s)),
    }
}

/// The approve form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /jobs/{id}/approve`: back to the run's page.
pub async fn approve(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ApproveForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&s, &f.csrf) {
        return refused;
    }
    let api = Api::new(&state, &headers);
    let result = async {
        let id = parse_id("job", &id)?;
        let reason = f.reason.trim();
        if reason.len() > MAX_REASON_BYTES {
            return Err(UiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error_code::INVALID_REASON,
                format!("a reason is at most {MAX_REASON_BYTES} bytes"),
            ));
        }
        let body = if reason.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "reason": reason })
        };
        let job = api
            .post(&["jobs", &id.to_string(), "approve"], &body)
            .await?;
        Ok(job["run_id"].as_str().map(str::to_owned))
    }
    .await;
    match result {
        Ok(Some(run)) => Redirect::to(&format!("/runs/{run}")).into_response(),
        Ok(None) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(e) => layout::error_page(&e, Some(&s)),
    }
}
