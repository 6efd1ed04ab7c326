//! Files into and out of a shell job's workspace directory as tar streams (SPEC §11), named
//! as the docker engine's are ([`Engine::export`]), so [`crate::collect`] reads both alike.
//!
//! Both directions run the `tar` crate in a blocking thread: an export writes the archive
//! into a bounded channel as it walks (a large file is never held whole), an import reads the
//! request's stream through [`SyncIoBridge`]. The walk never follows a symlink: it archives
//! the link, and a file is archived only when what was opened is a regular file.
//!
//! [`Engine::export`]: crate::Engine::export

use crate::chunks::ChunkWriter;
use crate::collect::components;
use crate::{EngineError, TarStream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// Bytes per chunk of an export.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the walk and its reader.
const IN_FLIGHT: usize = 8;

/// [`crate::Engine::export`] of `rel` in the workspace `dir`.
pub(super) async fn export(dir: &Path, rel: &str) -> Result<Option<TarStream>, EngineError> {
    let parts = components(rel)?;
    let mut path = dir.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = match tokio::fs::symlink_metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(EngineError::Engine(format!("exporting {rel}: {e}"))),
        };
        if i + 1 < parts.len() && !meta.is_dir() {
            return Ok(None);
        }
    }
    let name = parts.last().map_or_else(PathBuf::new, PathBuf::from);
    let (tx, rx) = mpsc::channel::<Result<Bytes, EngineError>>(IN_FLIGHT);
    let what = format!("exporting {rel}");
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter::new(tx.clone(), CHUNK);
        let built = (|| {
            let mut b = tar::Builder::new(&mut w);
            append_tree(&mut b, &path, &name)?;
            b.finish()?;
            drop(b);
            w.flush()
        })();
        // A reader that went away is no error of ours.
        if let Err(e) = built
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = tx.blocking_send(Err(EngineError::Engine(format!("{what}: {e}"))));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(Some(stream.boxed()))
}

/// Appends `src` (whatever it is, links not followed) under `name`, and under a directory
/// everything in it, in name order. A socket is left out (tar cannot hold one).
fn append_tree<W: Write>(b: &mut tar::Builder<W>, src: &Path, name: &Path) -> io::Result<()> {
    let mut stack = vec![(src.to_path_buf(), name.to_path_buf())];
    while let Some((src, name)) = stack.pop() {
        let meta = fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_size(0);
        if kind.is_dir() {
            if !name.as_os_str().is_empty() {
                b.append_data(&mut header, &name, io::empty())?;
            }
            let mut children: Vec<_> = fs::read_dir(&src)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?;
            children.sort();
            for child in children.into_iter().rev() {
                stack.push((src.join(&child), name.join(&child)));
            }
        } else if kind.is_symlink() {
            let target = fs::read_link(&src)?;
            b.append_link(&mut header, &name, &target)?;
        } else if kind.is_file() {
            let file = fs::File::open(&src)?;
            let meta = file.metadata()?;
            // Swapped for something else since the stat: leave it out.
            if !meta.is_file() {
                continue;
            }
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            let size = meta.len();
            b.append_data(&mut header, &name, Exactly::new(file, size))?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            b.append_data(&mut header, &name, io::empty())?;
        }
    }
    Ok(())
}

/// Exactly `size` bytes of a file that may grow or shrink while it is read (a process the
/// job left behind): cut at `size`, padded with zeros, so the archive stays well formed.
struct Exactly<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, size: u64) -> Self {
        Self {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let mut n = self.inner.read(buf)?;
        if n == 0 {
            n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[..n].fill(0);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// [`crate::Engine::import`] into the workspace `dir`.
pub(super) async fn import(dir: PathBuf, tar: TarStream) -> Result<(), EngineError> {
    let reader = SyncIoBridge::new(StreamReader::new(tar.map_err(io::Error::other)));
    tokio::task::spawn_blocking(move || unpack(reader, &dir))
        .await
        .map_err(|e| EngineError::Engine(format!("extracting into the workspace: {e}")))?
}

fn unpack(reader: impl Read, dir: &Path) -> Result<(), EngineError> {
    let failed = |e: io::Error| EngineError::Engine(format!("extracting into the workspace: {e}"));
    let mut archive = tar::Archive::new(reader);
    archive.set_overwrite(true);
    // Permission bits, never set-id bits: the runner's user would own them.
    archive.set_preserve_permissions(false);
    for entry in archive.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let name = entry.path().map_err(failed)?.into_owned();
        let inside = name
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(refused(&name));
        }
        // `unpack_in` makes the parents, refuses to write where a symlink leads out of `dir`
        // and replaces a file by a new one rather than writing into it.
        if !entry.unpack_in(dir).map_err(failed)? {
            return Err(refused(&name));
        }
    }
    Ok(())
}

fn refused(name: &Path) -> EngineError {
    EngineError::Engine(format!(
        "extracting into the workspace: the archive's entry {} would land outside it; refused",
        name.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::Exactly;
    use std::io::{Cursor, Read};

    fn read_all(r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = r;
        r.read_to_end(&mut out).expect("read");
        out
    }

    #[test]
    fn a_file_that_changed_since_its_stat_still_fills_its_header_exactly() {
        assert_eq!(read_all(Exactly::new(Cursor::new(b"abc"), 5)), b"abc\0\0");
        assert_eq!(read_all(Exactly::new(Cursor::new(b"abcdef"), 3)), b"abc");
        assert_eq!(read_all(Exactly::new(Cursor::new(b""), 0)), b"");
    }
}
