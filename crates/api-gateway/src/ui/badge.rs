//! `GET /repos/{repo}/badge.svg?branch=main`: the status of the repo's last run on a branch
//! (default: the repo's default branch) as a small SVG, cached for 30 seconds. A repo that
//! does not exist and one without a run on that branch both show "unknown".

use crate::state::GatewayState;
use crate::ui::upstream::{Api, UiError};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gitweave_api::public::{Repo, RunList};
use http::{HeaderMap, header};
use maud::html;

/// Runs looked through for the branch's last one (pages of 100).
const PAGES: usize = 3;

/// `?branch=`.
#[derive(Debug, serde::Deserialize)]
pub struct BadgeQuery {
    branch: Option<String>,
}

fn same_branch(git_ref: &str, branch: &str) -> bool {
    git_ref == branch || git_ref.strip_prefix("refs/heads/") == Some(branch)
}

async fn last_status(api: &Api<'_>, repo: &str, branch: Option<&str>) -> Result<String, UiError> {
    let name = crate::ui::repo_name(repo)?;
    let branch = match branch {
        Some(b) => b.to_owned(),
        None => api.get::<Repo>(&["repos", name], &[]).await?.default_branch,
    };
    let mut cursor: Option<String> = None;
    for _ in 0..PAGES {
        let mut q = vec![("limit", "100")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let list: RunList = api.get(&["repos", name, "pipelines", "runs"], &q).await?;
        if let Some(r) = list.runs.iter().find(|r| same_branch(&r.git_ref, &branch)) {
            return Ok(r.status.as_str().to_owned());
        }
        match list.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok("unknown".to_owned())
}

/// The badge's colour for a status.
fn colour(status: &str) -> &'static str {
    match status {
        "success" => "#2da44e",
        "failed" => "#cf222e",
        "running" | "queued" => "#0969da",
        "blocked" => "#9a6700",
        _ => "#6e7781",
    }
}

/// The SVG of a badge `label | status`.
pub fn svg(label: &str, status: &str) -> String {
    // 7 units a character is close enough for the badge's 11px sans-serif.
    let lw = 10 + 7 * label.chars().count() as u32;
    let sw = 10 + 7 * status.chars().count() as u32;
    let w = lw + sw;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height="20" role="img" aria-label={ (label) ": " (status) } {
            title { (label) ": " (status) }
            rect width=(lw) height="20" fill="#555" {}
            rect x=(lw) width=(sw) height="20" fill=(colour(status)) {}
            g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle" {
                text x=(lw / 2) y="14" { (label) }
                text x=(lw + sw / 2) y="14" { (status) }
            }
        }
    }
    .into_string()
}

/// `GET /repos/{repo}/badge.svg`.
pub async fn badge(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let api = Api::new(&state, &headers);
    let branch = q
        .branch
        .as_deref()
        .filter(|b| !b.is_empty() && b.len() <= 255);
    let status = match last_status(&api, &repo, branch).await {
        Ok(s) => s,
        Err(e) if e.status.is_client_error() => "unknown".to_owned(),
        Err(e) => return crate::ui::layout::refused_owned(&e),
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=30, must-revalidate"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        svg("gitweave", &status),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{same_branch, svg};

    #[test]
    fn a_badge_names_the_status_and_escapes_it() {
        let s = svg("gitweave", "failed");
        assert!(s.starts_with("<svg") && s.contains(">failed<") && s.contains("#cf222e"));
        assert!(!svg("<x>", "y").contains("<x>"));
    }

    #[test]
    fn a_branch_matches_its_ref_in_both_spellings() {
        assert!(same_branch("main", "main"));
        assert!(same_branch("refs/heads/main", "main"));
        assert!(!same_branch("refs/tags/main", "main"));
        assert!(!same_branch("maint", "main"));
    }
}
