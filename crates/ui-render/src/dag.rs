//! The run page's graph: each stage (template) is a band of columns, left to right in
//! pipeline order; inside a stage a job stands one column right of the deepest job it
//! `needs`, so every edge points right. Jobs of one column keep their pipeline order top to
//! bottom. Coordinates are in SVG user units; the gateway draws the boxes and edges.

use std::collections::HashMap;

/// Width of a job's box.
pub const NODE_W: u32 = 200;
/// Height of a job's box.
pub const NODE_H: u32 = 46;
/// Space between two columns of a stage.
pub const COL_GAP: u32 = 44;
/// Space between two stages.
pub const STAGE_GAP: u32 = 36;
/// Space between two boxes of a column.
pub const ROW_GAP: u32 = 14;
/// Height of a stage's title above its boxes.
pub const HEADER: u32 = 30;
/// Margin around everything.
pub const PAD: u32 = 10;

/// A job as the layout needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job<'a> {
    /// Its stage (template) name; jobs of a stage are contiguous in pipeline order.
    pub stage: &'a str,
    /// Its name inside the stage (the part after `<template>/`).
    pub name: &'a str,
    /// Names (inside the same stage) of the jobs it needs.
    pub needs: &'a [String],
}

/// A stage's band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its name.
    pub name: String,
    /// Left edge.
    pub x: u32,
    /// Width of its columns.
    pub width: u32,
}

/// Where a job's box goes (top-left corner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Stages, left to right.
    pub stages: Vec<Stage>,
    /// One box per input job, in input order.
    pub nodes: Vec<Placed>,
    /// `(from, to)` indexes into the jobs: `to` needs `from`.
    pub edges: Vec<(usize, usize)>,
    /// Total width.
    pub width: u32,
    /// Total height.
    pub height: u32,
}

/// Lays out `jobs` (in pipeline order).
pub fn layout(jobs: &[Job<'_>]) -> Layout {
    // Stages in order of appearance, each with its job indexes.
    let mut stage_order: Vec<&str> = Vec::new();
    let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if !members.contains_key(j.stage) {
            stage_order.push(j.stage);
        }
        members.entry(j.stage).or_default().push(i);
    }
    let mut edges = Vec::new();
    let mut depth = vec![0_u32; jobs.len()];
    for stage in &stage_order {
        let idx = &members[stage];
        let by_name: HashMap<&str, usize> = idx.iter().map(|&i| (jobs[i].name, i)).collect();
        let mut needs: Vec<(usize, Vec<usize>)> = Vec::new();
        for &i in idx {
            let mut from: Vec<usize> = jobs[i]
                .needs
                .iter()
                .filter_map(|n| by_name.get(n.as_str()).copied())
                .filter(|&f| f != i)
                .collect();
            from.sort_unstable();
            from.dedup();
            for &f in &from {
                edges.push((f, i));
            }
            needs.push((i, from));
        }
        // Longest path by relaxation; `needs` may point forward in the file. A cycle (which
        // validation refuses) would only stop at the cap instead of looping.
        let cap = idx.len() as u32;
        for _ in 0..idx.len() {
            let mut changed = false;
            for (i, from) in &needs {
                let d = from
                    .iter()
                    .map(|&f| depth[f] + 1)
                    .max()
                    .unwrap_or(0)
                    .min(cap);
                if d > depth[*i] {
                    depth[*i] = d;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    let mut nodes = vec![Placed { x: 0, y: 0 }; jobs.len()];
    let mut stages = Vec::new();
    let mut x = PAD;
    let mut tallest = 0_u32;
    for stage in &stage_order {
        let idx = &members[stage];
        let columns = idx.iter().map(|&i| depth[i]).max().unwrap_or(0) + 1;
        let mut rows = vec![0_u32; columns as usize];
        for &i in idx {
            let col = depth[i];
            let row = rows[col as usize];
            rows[col as usize] += 1;
            nodes[i] = Placed {
                x: x + col * (NODE_W + COL_GAP),
                y: PAD + HEADER + row * (NODE_H + ROW_GAP),
            };
        }
        tallest = tallest.max(rows.iter().copied().max().unwrap_or(0));
        let width = columns * NODE_W + (columns - 1) * COL_GAP;
        stages.push(Stage {
            name: (*stage).to_owned(),
            x,
            width,
        });
        x += width + STAGE_GAP;
    }
    let width = if stages.is_empty() {
        2 * PAD
    } else {
        x - STAGE_GAP + PAD
    };
    let height = PAD + HEADER + tallest * (NODE_H + ROW_GAP) + PAD;
    Layout {
        stages,
        nodes,
        edges,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::{Job, NODE_H, NODE_W, layout};
    use proptest::prelude::*;

    fn needs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn stages_are_bands_and_needs_move_a_job_right() {
        let none = needs(&[]);
        let on_a = needs(&["a"]);
        let on_ab = needs(&["a", "b"]);
        let jobs = [
            Job {
                stage: "build",
                name: "a",
                needs: &none,
            },
            Job {
                stage: "build",
                name: "b",
                needs: &on_a,
            },
            Job {
                stage: "build",
                name: "c",
                needs: &on_a,
            },
            Job {
                stage: "build",
                name: "d",
                needs: &on_ab,
            },
            Job {
                stage: "deploy",
                name: "x",
                needs: &none,
            },
        ];
        let l = layout(&jobs);
        assert_eq!(l.stages.len(), 2);
        assert_eq!(l.nodes[1].x, l.nodes[2].x, "b and c: one column");
        assert!(l.nodes[1].y < l.nodes[2].y, "pipeline order top to bottom");
        assert!(l.nodes[3].x > l.nodes[1].x, "d after b");
        assert!(
            l.nodes[4].x > l.nodes[3].x,
            "the next stage after the last column"
        );
        assert_eq!(l.edges, vec![(0, 1), (0, 2), (0, 3), (1, 3)]);
        assert!(l.width >= l.nodes[4].x + NODE_W);
    }

    #[test]
    fn unknown_needs_and_cycles_do_not_break_the_layout() {
        let ghost = needs(&["ghost"]);
        let on_b = needs(&["b"]);
        let on_a = needs(&["a"]);
        let jobs = [
            Job {
                stage: "s",
                name: "a",
                needs: &on_b,
            },
            Job {
                stage: "s",
                name: "b",
                needs: &on_a,
            },
            Job {
                stage: "s",
                name: "c",
                needs: &ghost,
            },
        ];
        let l = layout(&jobs);
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.edges.len(), 2);
    }

    proptest! {
        #[test]
        fn boxes_never_overlap_fit_the_picture_and_edges_point_right(
            spec in proptest::collection::vec((0_usize..3, proptest::collection::vec(0_usize..8, 0..3)), 0..14)
        ) {
            // Stages contiguous; needs only on earlier jobs of the same stage (a DAG).
            let mut spec = spec;
            spec.sort_by_key(|(s, _)| *s);
            let names: Vec<String> = (0..spec.len()).map(|i| format!("j{i}")).collect();
            let stages: Vec<String> = spec.iter().map(|(s, _)| format!("s{s}")).collect();
            let need_lists: Vec<Vec<String>> = spec
                .iter()
                .enumerate()
                .map(|(i, (s, n))| {
                    n.iter()
                        .filter(|&&k| k < i && spec[k].0 == *s)
                        .map(|&k| names[k].clone())
                        .collect()
                })
                .collect();
            let jobs: Vec<Job<'_>> = (0..spec.len())
                .map(|i| Job { stage: &stages[i], name: &names[i], needs: &need_lists[i] })
                .collect();
            let l = layout(&jobs);
            for (i, a) in l.nodes.iter().enumerate() {
                prop_assert!(a.x + NODE_W <= l.width && a.y + NODE_H <= l.height);
                for b in &l.nodes[i + 1..] {
                    let apart = a.x + NODE_W <= b.x || b.x + NODE_W <= a.x
                        || a.y + NODE_H <= b.y || b.y + NODE_H <= a.y;
                    prop_assert!(apart, "{a:?} {b:?}");
                }
            }
            for &(f, t) in &l.edges {
                prop_assert!(l.nodes[f].x + NODE_W <= l.nodes[t].x);
            }
        }
    }
}
