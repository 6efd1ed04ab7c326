//! `/runners`: the live runner registrations as pipeline-svc's `GET /runners` lists them
//! (SPEC §13): name, host, labels, how many of its slots are busy, and whether it is online,
//! as an icon and a word, not only a colour.

use crate::state::GatewayState;
use crate::ui::layout::{self, timestamp};
use crate::ui::session::{self, Session};
use crate::ui::upstream::Api;
use axum::extract::{Extension, State};
use axum::response::Response;
use gitweave_api::public::{RunnerList, RunnerView};
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};

/// The runners table.
fn table(list: &RunnerList) -> Markup {
    html! {
        @if list.runners.is_empty() {
            p.empty { "No runner is registered. Start " code { "runner-svc" } " with " code { "PIPELINE_SVC_URL" } " pointing at pipeline-svc." }
        } @else {
            div.table-wrap {
                table.list.runners {
                    caption.sr { "Runners, by name" }
                    thead { tr { th scope="col" { "Runner" } th scope="col" { "Status" } th scope="col" { "Host" } th scope="col" { "Labels" } th scope="col" { "Busy" } th scope="col" { "Last seen" } } }
                    tbody {
                        @for r in &list.runners { (row(r)) }
                    }
                }
            }
        }
    }
}

fn row(r: &RunnerView) -> Markup {
    html! {
        tr data-runner=(r.name) data-status=(r.status) {
            th scope="row" { code { (r.name) } }
            td { (layout::status(&r.status)) }
            td { @if let Some(h) = &r.host { code { (h) } } @else { span.muted { "—" } } }
            td {
                ul.labels {
                    @for (k, v) in &r.labels { li { code.tag { (k) "=" (v) } } }
                }
            }
            td { span title="jobs running / slots" { (r.busy) " of " (r.capacity) } }
            td { (timestamp(r.last_seen_at)) }
        }
    }
}

/// `GET /runners`.
pub async fn page(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let api = Api::new(&state, &headers);
    let list: RunnerList = match api.get(&["runners"], &[]).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(&e, Some(&s)),
    };
    let online = list.runners.iter().filter(|r| r.status == "online").count();
    let body = html! {
        h1 { "Runners" }
        p.muted {
            (online) " of " (list.runners.len()) " online. A runner is online when it was in contact within one lease; a job goes to one whose labels include every label of its "
            code { "runs_on" } "."
        }
        (table(&list))
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Runners", Some(&s), session::sign_in_required(&state), body),
    )
}
