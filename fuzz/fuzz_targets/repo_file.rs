//! Arbitrary bytes → `parse_repo_file` (a repo's `.gitweave.yml`, SPEC §9), then its rules
//! and the fail-closed job filter on a context taken from the same input: never panics; an
//! error names the file and a line within the text; the kept jobs never need a job left out.
//!
//! The input is split at the first NUL: the file, then the ref and changed paths (one a line).

#![no_main]

use gitweave_model::rules::{RuleContext, RuleEvent, allows, keep_jobs};
use gitweave_model::template::parse_repo_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let Some(src) = parts.next().and_then(|y| std::str::from_utf8(y).ok()) else {
        return;
    };
    let rest = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let mut lines = rest.lines();
    let git_ref = lines.next().unwrap_or("refs/heads/main").to_owned();
    let changed: Vec<String> = lines.map(str::to_owned).collect();
    let file = match parse_repo_file(src, ".gitweave.yml") {
        Ok(f) => f,
        Err(e) => {
            assert!(e.to_string().starts_with(".gitweave.yml: "));
            if let Some(line) = e.line {
                // YAML 1.1 breaks lines at `\n`, `\r` (alone or before `\n`), NEL, LS and PS:
                // at most one line per break character, plus the last, plus one where the
                // parser reports the end of the stream after a final implicit line.
                let breaks = src
                    .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
                    .count();
                assert!(line >= 1 && line <= breaks + 2, "line {line}");
            }
            return;
        }
    };
    for &event in RuleEvent::ALL {
        let ctx = RuleContext::of_ref(event, &git_ref, Some(&changed));
        let _ = allows(&file.rules, &ctx);
        if let Some(t) = &file.pipeline {
            let (kept, out) = keep_jobs(t, &ctx);
            let kept = kept.map(|k| k.jobs).unwrap_or_default();
            assert_eq!(kept.len() + out.len(), t.jobs.len());
            for j in &kept {
                assert!(j.needs.iter().all(|n| kept.iter().any(|k| &k.name == n)));
            }
        }
    }
});
