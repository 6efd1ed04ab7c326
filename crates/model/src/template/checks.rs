//! Cross-job checks: unique names, `needs` targets, cycles, and input references.

use crate::expr::{Segment, segments};
use crate::names::{JobName, quoted};
use crate::template::parse::Builder;
use crate::template::{JobTemplate, Template};
use std::collections::{BTreeSet, HashMap};

impl Builder {
    pub(super) fn unique_names(&mut self, jobs: &[JobTemplate]) {
        let mut first: HashMap<&JobName, usize> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            if let Some(&f) = first.get(&job.name) {
                self.err(format!(
                    "duplicate job name {} (jobs[{f}] and jobs[{i}])",
                    quoted(job.name.as_str())
                ));
            } else {
                first.insert(&job.name, i);
            }
        }
    }

    pub(super) fn needs_exist(&mut self, jobs: &[JobTemplate]) {
        let names: BTreeSet<&JobName> = jobs.iter().map(|j| &j.name).collect();
        for (i, job) in jobs.iter().enumerate() {
            for (j, need) in job.needs.iter().enumerate() {
                if !names.contains(need) {
                    self.err(format!(
                        "jobs[{i}].needs[{j}] {} is not a job of this template",
                        quoted(need.as_str())
                    ));
                }
            }
        }
    }

    /// Reports one cycle of `needs`, if any. Assumes names are unique and needs exist.
    pub(super) fn acyclic(&mut self, jobs: &[JobTemplate]) {
        let index: HashMap<&JobName, usize> =
            jobs.iter().enumerate().map(|(i, j)| (&j.name, i)).collect();
        let needs: Vec<Vec<usize>> = jobs
            .iter()
            .map(|j| {
                j.needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .collect()
            })
            .collect();
        // Kahn's algorithm: peel off jobs whose needs are all done.
        let mut pending: Vec<usize> = needs.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
        for (i, ns) in needs.iter().enumerate() {
            for &n in ns {
                dependents[n].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..jobs.len()).filter(|&i| pending[i] == 0).collect();
        while let Some(i) = ready.pop() {
            for &d in &dependents[i] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.push(d);
                }
            }
        }
        let Some(start) = (0..jobs.len()).find(|&i| pending[i] > 0) else {
            return;
        };
        // Every job left has a need that is also left, so following those from any of
        // them must come back to a job already on the path: that loop is a cycle.
        let mut path: Vec<usize> = Vec::new();
        let mut at = start;
        loop {
            if let Some(pos) = path.iter().position(|&p| p == at) {
                let cycle: Vec<&str> = path[pos..]
                    .iter()
                    .chain(std::iter::once(&at))
                    .map(|&k| jobs[k].name.as_str())
                    .collect();
                self.err(format!("jobs form a cycle: {}", cycle.join(" -> ")));
                return;
            }
            path.push(at);
            match needs[at].iter().find(|&&n| pending[n] > 0) {
                Some(&n) => at = n,
                None => return,
            }
        }
    }

    /// Checks every `${{ … }}` in the texts inputs are expanded in.
    pub(super) fn expressions(&mut self, t: &Template) {
        let mut texts: Vec<(String, &str)> = t
            .env
            .iter()
            .map(|(k, v)| (format!("env.{k}"), v.as_str()))
            .collect();
        for (i, job) in t.jobs.iter().enumerate() {
            if let Some(image) = &job.image {
                texts.push((format!("jobs[{i}].image"), image));
            }
            for (j, line) in job.script.iter().enumerate() {
                texts.push((format!("jobs[{i}].script[{j}]"), line));
            }
            for (k, v) in &job.env {
                texts.push((format!("jobs[{i}].env.{k}"), v));
            }
            for (j, service) in job.services.iter().enumerate() {
                for text in service.expandable_texts() {
                    texts.push((format!("jobs[{i}].services[{j}]"), text));
                }
            }
        }
        for (path, text) in texts {
            match segments(text) {
                Err(e) => self.err(format!("{path}: {e}")),
                Ok(segs) => {
                    for seg in segs {
                        if let Segment::Input(name) = seg
                            && !t.declares(name)
                        {
                            self.err(format!(
                                "{path} uses input {}, which the template does not declare under inputs",
                                quoted(name)
                            ));
                        }
                    }
                }
            }
        }
    }
}
