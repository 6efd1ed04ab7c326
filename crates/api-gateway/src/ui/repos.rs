//! `/`: the repos with their last run; `/repos/{repo}`: a repo's runs, newest first, paged
//! by the API's cursor and refreshed live while one of them is active; its secrets by name.
//! `/secrets`: the global secrets by name.

use crate::state::GatewayState;
use crate::ui::layout::{self, run_status, short_sha, span_of, timestamp};
use crate::ui::session::{self, Session};
use crate::ui::upstream::{Api, UiError};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use futures::StreamExt;
use gitweave_api::public::{Repo, RepoList, Run, RunList, SecretList};
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};

/// Runs per page of a repo.
pub const RUNS_PER_PAGE: &str = "20";

/// `GET /`.
pub async fn index(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let api = Api::new(&state, &headers);
    let sign_out = session::sign_in_required(&state);
    let repos: RepoList = match api.get(&["repos"], &[]).await {
        Ok(r) => r,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    // The last run of each repo, a few at a time.
    let last: Vec<(Repo, Result<Option<Run>, UiError>)> =
        futures::stream::iter(repos.repos.into_iter().map(|repo| {
            let api = &api;
            async move {
                let runs: Result<RunList, UiError> = api
                    .get(
                        &["repos", &repo.name, "pipelines", "runs"],
                        &[("limit", "1")],
                    )
                    .await;
                (repo, runs.map(|l| l.runs.into_iter().next()))
            }
        }))
        .buffered(8)
        .collect()
        .await;
    let body = html! {
        h1 { "Repos" }
        @if last.is_empty() {
            p.empty { "No repo yet. Create one with " code { "PUT /api/v1/repos/{name}" } " (see the README's walk through the API)." }
        } @else {
            div.table-wrap {
                table.list {
                    caption.sr { "Repos and their last run" }
                    thead { tr { th scope="col" { "Repo" } th scope="col" { "Last run" } th scope="col" { "Ref" } th scope="col" { "When" } th scope="col" { "Took" } } }
                    tbody {
                        @for (repo, run) in &last {
                            tr {
                                th scope="row" { a href={ "/repos/" (repo.name) } { (repo.name) } }
                                @match run {
                                    Ok(Some(r)) => {
                                        td { a href={ "/runs/" (r.id) } { (run_status(r.status)) } }
                                        td { code { (r.git_ref) } }
                                        td { (timestamp(r.created_at)) }
                                        td { (span_of(r.started_at, r.ended_at)) }
                                    }
                                    Ok(None) => { td colspan="4" .muted { "no run yet" } }
                                    Err(e) => { td colspan="4" .problem { (e.message) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Repos", Some(&s), sign_out, body),
    )
}

/// `?cursor=` of a runs page.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
}

fn cursor_ok(c: &str) -> Result<(), UiError> {
    if c.len() <= 64 {
        Ok(())
    } else {
        Err(UiError::new(
            StatusCode::BAD_REQUEST,
            gitweave_api::error_code::BAD_QUERY,
            "cursor is too long to be one this UI made",
        ))
    }
}

/// The runs table (also the live fragment).
fn runs_table(repo: &str, list: &RunList, cursor: Option<&str>) -> Markup {
    html! {
        div #runs data-repo=(repo) data-cursor=(cursor.unwrap_or("")) data-sig=(list.runs.iter().map(|r| format!("{}:{}", r.id, r.status.as_str())).collect::<Vec<_>>().join("|")) {
            @if list.runs.is_empty() {
                p.empty { "No run yet. Trigger one with " code { "POST /api/v1/repos/" (repo) "/pipelines/run" } " or a push webhook." }
            } @else {
                div.table-wrap {
                    table.list {
                        caption.sr { "Runs of " (repo) ", newest first" }
                        thead { tr { th scope="col" { "Run" } th scope="col" { "Status" } th scope="col" { "Ref" } th scope="col" { "Commit" } th scope="col" { "Trigger" } th scope="col" { "Created" } th scope="col" { "Took" } } }
                        tbody {
                            @for r in &list.runs {
                                tr data-run=(r.id) data-status=(r.status.as_str()) {
                                    th scope="row" { a href={ "/runs/" (r.id) } { code { (r.id.to_string().get(..8).unwrap_or("")) } } }
                                    td { (run_status(r.status)) }
                                    td { code { (r.git_ref) } }
                                    td { @if let Some(c) = &r.commit { code title=(c) { (short_sha(c)) } } @else { span.muted { "—" } } }
                                    td { (r.trigger.as_str()) }
                                    td { (timestamp(r.created_at)) }
                                    td { (span_of(r.started_at, r.ended_at)) }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages of runs" {
                @if cursor.is_some() { a href={ "/repos/" (repo) } { "← Newest" } }
                @if let Some(next) = &list.next_cursor {
                    a href={ "/repos/" (repo) "?cursor=" (next) } { "Older →" }
                }
            }
        }
    }
}

async fn load_runs(api: &Api<'_>, repo: &str, cursor: Option<&str>) -> Result<RunList, UiError> {
    let mut query = vec![("limit", RUNS_PER_PAGE)];
    if let Some(c) = cursor {
        cursor_ok(c)?;
        query.push(("cursor", c));
    }
    api.get(&["repos", repo, "pipelines", "runs"], &query).await
}

fn secrets_table(list: &SecretList) -> Markup {
    html! {
        @if list.secrets.is_empty() {
            p.muted { "None." }
        } @else {
            ul.secrets {
                @for s in &list.secrets {
                    li {
                        code { (s.name) }
                        @if s.protected { " " span.tag title="given only to runs of protected refs" { "protected" } }
                        " " span.muted { "set " (timestamp(s.updated_at)) }
                    }
                }
            }
        }
    }
}

/// `GET /repos/{repo}`.
pub async fn repo(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let sign_out = session::sign_in_required(&state);
    let api = Api::new(&state, &headers);
    let result = async {
        let name = crate::ui::repo_name(&repo)?;
        let info: Repo = api.get(&["repos", name], &[]).await?;
        let runs = load_runs(&api, name, q.cursor.as_deref()).await?;
        let secrets: Result<SecretList, UiError> = api.get(&["repos", name, "secrets"], &[]).await;
        Ok::<_, UiError>((info, runs, secrets))
    }
    .await;
    let (info, runs, secrets) = match result {
        Ok(v) => v,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/" { "Repos" } " / " span { (info.name) } }
        h1 { (info.name) }
        p.meta {
            "default branch " code { (info.default_branch) }
            @if let Some(url) = &info.clone_url { " · clone " code { (url) } }
            " · badge "
            img src={ "/repos/" (info.name) "/badge.svg" } alt="status badge of the default branch" height="20";
        }
        h2 { "Runs" }
        (runs_table(&info.name, &runs, q.cursor.as_deref()))
        h2 { "Secrets" }
        p.muted { "Names only; values are never shown or sent to this page." }
        @match &secrets {
            Ok(list) => (secrets_table(list)),
            Err(e) => p.problem { (e.message) },
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&info.name, Some(&s), sign_out, body),
    )
}

/// `GET /repos/{repo}/runs.frag?cursor=`: the runs table alone, for the live refresh.
pub async fn runs_fragment(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let api = Api::new(&state, &headers);
    let result = async {
        let name = crate::ui::repo_name(&repo)?;
        let runs = load_runs(&api, name, q.cursor.as_deref()).await?;
        Ok::<_, UiError>(runs_table(name, &runs, q.cursor.as_deref()))
    }
    .await;
    match result {
        Ok(m) => layout::respond(StatusCode::OK, m),
        Err(e) => layout::refused_owned(&e),
    }
}

/// `GET /secrets`.
pub async fn global_secrets(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let sign_out = session::sign_in_required(&state);
    let api = Api::new(&state, &headers);
    let list: SecretList = match api.get(&["secrets"], &[]).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    let body = html! {
        h1 { "Global secrets" }
        p.muted { "Names only. A repo's secret of the same name wins over a global one. Set them with " code { "gitweave secret set" } "." }
        (secrets_table(&list))
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Secrets", Some(&s), sign_out, body),
    )
}
