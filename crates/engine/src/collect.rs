//! Artifacts out of a job's workspace (SPEC §11): the files its `artifacts.paths` match, each
//! streamed to a [`Sink`] as it is read, never whole in memory.
//!
//! Each root of the [`Patterns`] (a literal prefix, see [`Patterns::roots`]) is exported
//! ([`Engine::export`]) and its tar stream walked by the `tar` crate in a blocking thread,
//! which hands each matching regular file to the async side through a bounded channel of
//! chunks; the sink reads one file's body before the walk goes on to the next entry.
//!
//! Symlinks are resolved lexically, relative to their own directory: one whose target leaves
//! the workspace (absolute, or `..` past its root) is not followed and the job log says so;
//! one that stays inside is followed by exporting its target, whose files are collected under
//! the link's path, [`MAX_HOPS`] links in a row at most. Each hop is an export of its own, so
//! each is checked as the first was. A hard link is collected as the file it links to (its
//! target is in the same export); devices and fifos are left out with a note.

mod patterns;
mod walk;

pub use patterns::Patterns;

use walk::{Event, First, Next, Walk, first_entry, follow, join_str, read_entries, resolve};

use crate::{Engine, EngineError, Prepared, TarStream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// Symlinks followed in a row, at most.
pub const MAX_HOPS: u8 = 8;
/// How every note starts.
const NOTE: &str = "[gitweave] artifacts:";
/// Bytes per chunk of a file's body.
const CHUNK: usize = 64 * 1024;
/// Chunks of a body in flight between the walk and the sink.
const IN_FLIGHT: usize = 8;

/// One collected file, streamed to the sink.
pub struct FileOut {
    /// Where it is in the workspace (a link's path, for a file reached through a link):
    /// relative, `/`-separated.
    pub path: String,
    /// Its size in bytes (what the body holds when it ends without an error).
    pub size: u64,
    /// Its bytes. An error means the export broke off: the file is not whole.
    pub body: BoxStream<'static, Result<Bytes, io::Error>>,
}

impl std::fmt::Debug for FileOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileOut")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Where collected files go (runner-svc: an upload to pipeline-svc each).
#[async_trait]
pub trait Sink: Send {
    /// Takes one file, reading its body to the end (or dropping it, to skip the rest). An
    /// error, for people, ends the collection.
    async fn file(&mut self, file: FileOut) -> Result<(), String>;
}

/// What was found: files sent, and notes for the job log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Files handed to the sink.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// One line each, without a newline (`[gitweave] artifacts: dist/link -> /etc/passwd
    /// leaves the workspace; not followed`, `[gitweave] artifacts: no file matches "x/**"`).
    pub notes: Vec<String>,
}

/// Streams every file of `prepared`'s workspace that `patterns` match to `sink`, each once.
/// A sink's error ends it as an [`EngineError::Engine`] naming the file.
pub async fn collect(
    engine: &dyn Engine,
    prepared: &Prepared,
    patterns: &Patterns,
    sink: &mut dyn Sink,
) -> Result<Collected, EngineError> {
    let patterns = Arc::new(patterns.clone());
    let mut queue: VecDeque<Walk> = patterns
        .roots()
        .into_iter()
        .map(|root| Walk {
            export: root.clone(),
            logical: root,
            hops: 0,
        })
        .collect();
    let mut state = State {
        found: Collected::default(),
        sent: HashSet::new(),
        matched: vec![0; patterns.sources().len()],
    };
    while let Some(walk) = queue.pop_front() {
        match engine.export(prepared, &walk.export).await? {
            Some(tar) => {
                walk_export(tar, walk, &patterns, sink, &mut state, &mut queue).await?;
            }
            None => {
                if let Some(next) =
                    through_link(engine, prepared, &walk, &mut state.found.notes).await?
                {
                    queue.push_back(next);
                }
            }
        }
    }
    for (source, n) in patterns.sources().iter().zip(&state.matched) {
        if *n == 0 {
            state
                .found
                .notes
                .push(format!("{NOTE} no file matches {source:?}"));
        }
    }
    Ok(state.found)
}

/// Checks a workspace path given to an engine (`""`: the workspace): relative, no `.` or
/// `..`. Returns its components.
pub(crate) fn components(rel: &str) -> Result<Vec<&str>, EngineError> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if rel.starts_with('/') || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(EngineError::Config(format!(
            "{rel:?} is not a path inside the workspace"
        )));
    }
    Ok(parts)
}

struct State {
    found: Collected,
    /// Paths handed to the sink.
    sent: HashSet<String>,
    /// Files matched, by pattern.
    matched: Vec<usize>,
}

async fn walk_export(
    tar: TarStream,
    walk: Walk,
    patterns: &Arc<Patterns>,
    sink: &mut dyn Sink,
    state: &mut State,
    queue: &mut VecDeque<Walk>,
) -> Result<(), EngineError> {
    let reader = SyncIoBridge::new(StreamReader::new(tar.map_err(io::Error::other)));
    let (tx, mut rx) = mpsc::channel(4);
    let what = format!("reading the export of /workspace/{}", walk.export);
    let task = {
        let patterns = Arc::clone(patterns);
        tokio::task::spawn_blocking(move || read_entries(reader, &walk, &patterns, &tx))
    };
    while let Some(event) = rx.recv().await {
        match event {
            Event::File { path, size, body } => {
                if !state.sent.insert(path.clone()) {
                    continue;
                }
                for i in patterns.matching(&path) {
                    state.matched[i] += 1;
                }
                let body = futures::stream::unfold(body, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                })
                .boxed();
                let stored = sink
                    .file(FileOut {
                        path: path.clone(),
                        size,
                        body,
                    })
                    .await;
                if let Err(e) = stored {
                    // The walk stops at its next send; when its export broke off (the body
                    // the sink saw ended in an error), that is the error to report.
                    drop(rx);
                    return match task.await {
                        Ok(Err(read)) => Err(EngineError::Engine(format!("{what}: {read}"))),
                        _ => Err(EngineError::Engine(format!(
                            "storing the artifact {path}: {e}"
                        ))),
                    };
                }
                state.found.files += 1;
                state.found.bytes += size;
            }
            Event::Follow(next) => queue.push_back(next),
            Event::Note(note) => state.found.notes.push(note),
        }
    }
    task.await
        .map_err(|e| EngineError::Engine(format!("{what}: {e}")))?
        .map_err(|e| EngineError::Engine(format!("{what}: {e}")))
}

/// `walk.export` is not there as such: a link in a directory above it (or nothing). Finds the
/// first link from the top and says where to look instead, or notes why not.
async fn through_link(
    engine: &dyn Engine,
    prepared: &Prepared,
    walk: &Walk,
    notes: &mut Vec<String>,
) -> Result<Option<Walk>, EngineError> {
    let parts: Vec<&str> = walk.export.split('/').filter(|p| !p.is_empty()).collect();
    for i in 1..parts.len() {
        let above = parts[..i].join("/");
        let Some(tar) = engine.export(prepared, &above).await? else {
            break;
        };
        match first_entry(tar).await? {
            Some(First::Dir) => continue,
            Some(First::Symlink(target)) => {
                let parent = parts[..i - 1].join("/");
                let rest = parts[i..].join("/");
                let to = resolve(&parent, &target).map(|to| join_str(&to, &rest));
                return Ok(match follow(walk, &above, &target, to) {
                    // What lies below the link keeps the name it was asked for by.
                    Next::Follow(next) => Some(Walk {
                        logical: walk.logical.clone(),
                        ..next
                    }),
                    Next::Note(note) => {
                        notes.push(note);
                        None
                    }
                });
            }
            _ => break,
        }
    }
    if walk.hops > 0 {
        notes.push(format!(
            "{NOTE} {} is a link to {}, which is not there; skipped",
            walk.logical, walk.export
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn only_paths_inside_the_workspace_are_exported() {
        assert_eq!(components("").ok(), Some(vec![]));
        assert_eq!(components("a/b").ok(), Some(vec!["a", "b"]));
        for bad in ["/etc", "a/../b", "./a", "a/."] {
            assert!(components(bad).is_err(), "{bad}");
        }
    }
}
