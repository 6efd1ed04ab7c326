//! The blocking side of [`super::collect`]: one export's tar stream walked by the `tar`
//! crate, matching files streamed out in chunks, links resolved (lexically) into the next
//! exports to walk.

use super::{CHUNK, IN_FLIGHT, MAX_HOPS, NOTE, Patterns};
use crate::{EngineError, TarStream};
use bytes::Bytes;
use futures::TryStreamExt;
use std::io::{self, Read};
use std::path::{Component, Path};
use tar::EntryType;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// One export to walk: its files are named under `logical` instead of `export` (they differ
/// once a link was followed).
#[derive(Debug, Clone)]
pub(super) struct Walk {
    pub(super) export: String,
    pub(super) logical: String,
    /// Links followed to get here.
    pub(super) hops: u8,
}

/// What the walk of an export tells the async side.
pub(super) enum Event {
    /// A matching file; its body follows on `body`.
    File {
        path: String,
        size: u64,
        body: mpsc::Receiver<io::Result<Bytes>>,
    },
    /// A link to follow.
    Follow(Walk),
    /// A line for the job log.
    Note(String),
}

/// The blocking walk of one export.
pub(super) fn read_entries(
    reader: impl Read,
    walk: &Walk,
    patterns: &Patterns,
    events: &mpsc::Sender<Event>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let rest = below(&name, &walk.export).ok_or_else(|| {
            io::Error::other(format!(
                "unexpected entry {} in the archive",
                name.display()
            ))
        })?;
        let logical = join(&walk.logical, &rest);
        let physical = join(&walk.export, &rest);
        let event = match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if patterns.matches(&logical) && !send_file(&mut entry, logical, events)? {
                    return Ok(());
                }
                continue;
            }
            EntryType::Directory => continue,
            EntryType::Symlink => {
                if !patterns.matches(&logical) && !patterns.may_match_below(&logical) {
                    continue;
                }
                let target = link_name(&entry)?;
                let parent = physical.rsplit_once('/').map_or("", |(p, _)| p);
                follow(walk, &logical, &target, resolve(parent, &target)).into()
            }
            EntryType::Link => {
                if !patterns.matches(&logical) {
                    continue;
                }
                let target = link_name(&entry)?;
                let to = below(Path::new(&target), &walk.export).map(|r| join(&walk.export, &r));
                follow(walk, &logical, &target, to).into()
            }
            other => {
                if !patterns.matches(&logical) {
                    continue;
                }
                let what = match other {
                    EntryType::Char => "character device",
                    EntryType::Block => "block device",
                    EntryType::Fifo => "fifo",
                    _ => "special file",
                };
                Event::Note(format!("{NOTE} {logical} is a {what}; skipped"))
            }
        };
        if events.blocking_send(event).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Hands one file to the async side and streams its body. `false`: the collection ended.
fn send_file(
    entry: &mut tar::Entry<impl Read>,
    path: String,
    events: &mpsc::Sender<Event>,
) -> io::Result<bool> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let size = entry.size();
    if events
        .blocking_send(Event::File {
            path,
            size,
            body: rx,
        })
        .is_err()
    {
        return Ok(false);
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        match entry.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                // The sink let go of the body: the archive skips the rest of the entry.
                if tx
                    .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .is_err()
                {
                    return Ok(true);
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        }
    }
}

fn link_name(entry: &tar::Entry<impl Read>) -> io::Result<String> {
    Ok(entry
        .link_name()?
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default())
}

/// What to do about a link at `logical` to `target`, resolved to the workspace path `to`
/// (`None`: it leaves the workspace).
pub(super) enum Next {
    Follow(Walk),
    Note(String),
}

pub(super) fn follow(walk: &Walk, logical: &str, target: &str, to: Option<String>) -> Next {
    match to {
        None => Next::Note(format!(
            "{NOTE} {logical} -> {target} leaves the workspace; not followed"
        )),
        Some(_) if walk.hops >= MAX_HOPS => Next::Note(format!(
            "{NOTE} {logical} -> {target}: more than {MAX_HOPS} links in a row; not followed"
        )),
        Some(export) => Next::Follow(Walk {
            export,
            logical: logical.to_owned(),
            hops: walk.hops + 1,
        }),
    }
}

impl From<Next> for Event {
    fn from(next: Next) -> Event {
        match next {
            Next::Follow(walk) => Event::Follow(walk),
            Next::Note(note) => Event::Note(note),
        }
    }
}

/// The first entry of an archive, which is what was exported.
pub(super) enum First {
    Dir,
    Symlink(String),
    Other,
}

pub(super) async fn first_entry(tar: TarStream) -> Result<Option<First>, EngineError> {
    let reader = SyncIoBridge::new(StreamReader::new(tar.map_err(io::Error::other)));
    let read = tokio::task::spawn_blocking(move || -> io::Result<Option<First>> {
        let mut archive = tar::Archive::new(reader);
        let Some(entry) = archive.entries()?.next() else {
            return Ok(None);
        };
        let entry = entry?;
        Ok(Some(match entry.header().entry_type() {
            EntryType::Directory => First::Dir,
            EntryType::Symlink => First::Symlink(link_name(&entry)?),
            _ => First::Other,
        }))
    });
    read.await
        .map_err(|e| EngineError::Engine(e.to_string()))?
        .map_err(|e| EngineError::Engine(format!("reading an export: {e}")))
}

/// The components of the entry `name` below the exported path `export` (the top entry is
/// named by its basename; for the workspace itself there is none), or `None` when it lies
/// elsewhere.
pub(super) fn below(name: &Path, export: &str) -> Option<Vec<String>> {
    let mut parts = name.components().filter(|c| *c != Component::CurDir);
    if let Some(base) = export.rsplit('/').find(|p| !p.is_empty()) {
        match parts.next()? {
            Component::Normal(n) if n.to_string_lossy() == base => {}
            _ => return None,
        }
    }
    parts
        .map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

pub(super) fn join(base: &str, rest: &[String]) -> String {
    join_str(base, &rest.join("/"))
}

pub(super) fn join_str(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => base.to_owned(),
        _ => format!("{base}/{rest}"),
    }
}

/// A link's `target` resolved lexically against its directory `dir` (workspace-relative):
/// the workspace path it names, or `None` when it leaves the workspace.
pub(super) fn resolve(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::{below, resolve};
    use std::path::Path;

    #[test]
    fn links_resolve_lexically_and_may_not_leave() {
        assert_eq!(resolve("dist", "a.txt").as_deref(), Some("dist/a.txt"));
        assert_eq!(
            resolve("dist/sub", "../a.txt").as_deref(),
            Some("dist/a.txt")
        );
        assert_eq!(resolve("dist", "./x/../y").as_deref(), Some("dist/y"));
        assert_eq!(resolve("dist", "..").as_deref(), Some(""));
        assert_eq!(resolve("dist", "../../etc/passwd"), None);
        assert_eq!(resolve("", ".."), None);
        assert_eq!(resolve("dist", "/etc/passwd"), None);
    }

    #[test]
    fn entries_are_named_below_the_exported_basename() {
        let names = |n: &str, e: &str| below(Path::new(n), e);
        assert_eq!(
            names("dist/a/b", "x/dist"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(names("dist/", "dist"), Some(vec![]));
        assert_eq!(names("./a/b", ""), Some(vec!["a".into(), "b".into()]));
        assert_eq!(names("a", ""), Some(vec!["a".into()]));
        assert_eq!(names("other/a", "dist"), None);
        assert_eq!(names("dist/../a", "dist"), None);
    }
}
