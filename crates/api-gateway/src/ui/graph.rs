//! The run's graph as inline SVG, made on the server from the layout of
//! [`gitweave_ui_render::dag`]: stages as bands of columns, `needs` as edges, each job a link
//! to its page with its status as colour, icon and word.

use crate::ui::layout::{span_of, status_class, status_icon};
use gitweave_api::public::Job;
use gitweave_ui_render::dag::{self, HEADER, NODE_H, NODE_W, PAD};
use maud::{Markup, html};

/// Characters of a job name that fit in its box.
const NAME_CHARS: usize = 22;

fn cut(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(NAME_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// The graph of `jobs` (in pipeline order).
pub fn svg(jobs: &[Job]) -> Markup {
    let short: Vec<&str> = jobs
        .iter()
        .map(|j| {
            j.name
                .strip_prefix(j.template.as_str())
                .and_then(|n| n.strip_prefix('/'))
                .unwrap_or(&j.name)
        })
        .collect();
    let input: Vec<dag::Job<'_>> = jobs
        .iter()
        .zip(&short)
        .map(|(j, name)| dag::Job {
            stage: &j.template,
            name,
            needs: &j.needs,
        })
        .collect();
    let l = dag::layout(&input);
    html! {
        svg.dag xmlns="http://www.w3.org/2000/svg" width=(l.width) height=(l.height)
            viewBox={ "0 0 " (l.width) " " (l.height) } role="group" aria-label="The run's jobs by stage, with what each needs" {
            @for st in &l.stages {
                rect.stage x=(st.x - 6) y=(PAD - 4) width=(st.width + 12) height=(l.height - 2 * PAD + 8) rx="8" {}
                text.stage-name x=(st.x) y=(PAD + HEADER - 12) { (st.name) }
            }
            @for &(from, to) in &l.edges {
                @let (a, b) = (l.nodes[from], l.nodes[to]);
                @let (x1, y1) = (a.x + NODE_W, a.y + NODE_H / 2);
                @let (x2, y2) = (b.x, b.y + NODE_H / 2);
                @let mid = (x1 + x2) / 2;
                path.edge d={ "M" (x1) " " (y1) " C" (mid) " " (y1) " " (mid) " " (y2) " " (x2 - 4) " " (y2) } marker-end="url(#arrow)" {}
            }
            defs {
                marker #arrow viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto" {
                    path.arrow d="M0 0 L8 4 L0 8 z" {}
                }
            }
            @for (i, j) in jobs.iter().enumerate() {
                @let p = l.nodes[i];
                @let st = j.status.as_str();
                a href={ "/jobs/" (j.id) } data-job=(j.id) data-status=(st) {
                    title { (j.name) ": " (st) }
                    rect class={ "node n-" (status_class(st)) } x=(p.x) y=(p.y) width=(NODE_W) height=(NODE_H) rx="6" {}
                    text.node-name x=(p.x + 10) y=(p.y + 19) { (status_icon(st)) " " (cut(short[i])) }
                    text.node-sub x=(p.x + 10) y=(p.y + 36) { (st) " · " (span_of(j.started_at, j.ended_at)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::svg;
    use gitweave_api::public::Job;
    use gitweave_model::status::JobStatus;

    fn job(name: &str, needs: &[&str]) -> Job {
        Job {
            id: uuid::Uuid::nil(),
            run_id: uuid::Uuid::nil(),
            name: format!("build/{name}"),
            template: "build".into(),
            status: JobStatus::Failed,
            exit_code: Some(1),
            error_class: None,
            attempt: 1,
            started_at: None,
            ended_at: None,
            log_truncated: false,
            reason: None,
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            waiting: None,
            allow_failure: false,
        }
    }

    #[test]
    fn the_graph_escapes_names_and_draws_needs_as_edges() {
        let out = svg(&[
            job("<script>x</script>", &[]),
            job("b", &["<script>x</script>"]),
        ])
        .into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"));
        assert_eq!(out.matches("class=\"edge\"").count(), 1);
        assert!(out.contains("✗ b") && out.contains("failed"));
    }
}
