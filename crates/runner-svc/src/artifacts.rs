//! A job's artifacts and cache on the runner (SPEC §11).
//!
//! Before the script ([`before_script`]): the files of the jobs it depends on that this
//! host's copy of the workspace does not hold already ([`Held`]) are fetched from pipeline-svc
//! and put into the workspace as one tar stream, each checked against its sha256 as it goes
//! (a mismatch fails the job before its script); then the cache entry pipeline-svc named is
//! restored: its tar + zstd archive streamed from pipeline-svc, decoded and extracted through
//! the engine. A cache that cannot be restored is a note, not a failure: the job runs cold.
//!
//! After the script ([`after_script`]): the files its `artifacts.paths` match, collected per
//! `when` ([`gitweave_engine::collect`]), each streamed to pipeline-svc with its sha256
//! computed on the way and compared with the one pipeline-svc stored; a file that cannot be
//! stored fails the job. After a success, the cache is saved when pipeline-svc said so: each
//! path exported from the workspace, its entries renamed under the path, packed as tar + zstd
//! and streamed up while it is made. Nothing is ever whole in memory.
//!
//! What took how long goes into the job's log as `[gitweave] cache: restored {key} ({bytes}
//! bytes) in {ms} ms` and `[gitweave] artifacts: stored {files} files ({bytes} bytes) in {ms}
//! ms` (bench W8 reads these lines).

use crate::client::{ClientError, PipelineClient, UploadBody};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use gitweave_api::runner::{ArtifactInput, Assignment, CacheAssignment};
use gitweave_engine::chunks::ChunkWriter;
use gitweave_engine::collect::{self, FileOut, Patterns, Sink};
use gitweave_engine::{Engine, EngineError, OutputBuffer, Prepared, TarStream};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// Bytes a channel chunk holds at most.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between a blocking packer and the async side.
const IN_FLIGHT: usize = 8;

/// An artifact file up to this size is read whole before it is sent, so its upload can be
/// tried again through an outage of pipeline-svc; a larger one is streamed once.
const RETRYABLE_BYTES: usize = 4 << 20;
/// zstd level of cache archives: fast to make, and decoding speed hardly depends on it.
const ZSTD_LEVEL: i32 = 3;

/// Which artifact files each workspace on this host holds (stored from it, or put into it),
/// by path, with their sha256: an input the workspace holds is not fetched again.
#[derive(Debug, Default)]
pub struct Held(Mutex<HashMap<String, HashMap<String, String>>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has(&self, workspace: &str, path: &str, sha256: &str) -> bool {
        self.lock()
            .get(workspace)
            .and_then(|files| files.get(path))
            .is_some_and(|s| s == sha256)
    }

    fn record(&self, workspace: &str, path: &str, sha256: &str) {
        self.lock()
            .entry(workspace.to_owned())
            .or_default()
            .insert(path.to_owned(), sha256.to_owned());
    }

    /// Forgets a workspace (it was removed).
    pub fn forget(&self, workspace: &str) {
        self.lock().remove(workspace);
    }
}

/// What the steps work with.
pub struct Job<'a> {
    /// The engine that holds the workspace.
    pub engine: &'a dyn Engine,
    /// pipeline-svc.
    pub client: &'a PipelineClient,
    /// The attempt.
    pub a: &'a Assignment,
    /// Its container (or directory).
    pub prepared: &'a Prepared,
    /// Its log.
    pub log: &'a OutputBuffer,
    /// What this host's workspaces hold.
    pub held: &'a Held,
}

impl Job<'_> {
    async fn say(&self, line: &str) {
        self.log
            .write(format!("[gitweave] {line}\n").as_bytes())
            .await;
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{v:.1} {}", UNITS[unit]),
    }
}

/// Inputs, then the cache. `Err`: why the job cannot run (its inputs could not be put into
/// the workspace).
pub async fn before_script(job: &Job<'_>) -> Result<(), String> {
    let missing: Vec<ArtifactInput> = job
        .a
        .inputs
        .iter()
        .filter(|i| !job.held.has(&job.a.workspace, &i.path, &i.sha256))
        .cloned()
        .collect();
    if !job.a.inputs.is_empty() {
        let held = job.a.inputs.len() - missing.len();
        if held > 0 {
            job.say(&format!(
                "artifacts: {held} of {} input files are in this workspace already",
                job.a.inputs.len()
            ))
            .await;
        }
    }
    if !missing.is_empty() {
        let started = Instant::now();
        let bytes: u64 = missing.iter().map(|i| i.size).sum();
        fetch_inputs(job, &missing).await?;
        for i in &missing {
            job.held.record(&job.a.workspace, &i.path, &i.sha256);
        }
        job.say(&format!(
            "artifacts: fetched {} files ({bytes} bytes) of {} in {} ms",
            missing.len(),
            upstream_names(&missing),
            started.elapsed().as_millis()
        ))
        .await;
    }
    if let Some(cache) = &job.a.cache {
        restore_cache(job, cache).await;
    }
    Ok(())
}

fn upstream_names(inputs: &[ArtifactInput]) -> String {
    let mut names: Vec<&str> = inputs.iter().map(|i| i.job.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// A reader that hashes and counts what passes.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A blocking reader of an HTTP body.
fn body_reader(
    stream: BoxStream<'static, Result<Bytes, io::Error>>,
) -> SyncIoBridge<StreamReader<BoxStream<'static, Result<Bytes, io::Error>>, Bytes>> {
    SyncIoBridge::new(StreamReader::new(stream))
}

/// Waits for a blocking producer of a chunk channel; when it failed, tells the channel's
/// reader with an error item, so a cut stream is never taken for a whole one.
async fn producer_done(
    producer: tokio::task::JoinHandle<Result<(), String>>,
    err_tx: mpsc::Sender<Result<Bytes, EngineError>>,
    what: &str,
) -> Result<(), String> {
    let r = producer
        .await
        .map_err(|e| format!("the {what} stopped: {e}"))
        .and_then(|r| r);
    if let Err(why) = &r {
        let _ = err_tx.send(Err(EngineError::Engine(why.clone()))).await;
    }
    r
}

/// One tar stream of every input, each fetched as it is written and checked on the way.
async fn fetch_inputs(job: &Job<'_>, inputs: &[ArtifactInput]) -> Result<(), String> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let handle = tokio::runtime::Handle::current();
    let (client, a) = (job.client.clone(), job.a.clone());
    let inputs = inputs.to_vec();
    let err_tx = tx.clone();
    let packer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut builder = tar::Builder::new(ChunkWriter::new(tx, CHUNK));
        for i in &inputs {
            let body = handle
                .block_on(client.download_input(a.job_id, a.attempt, &i.sha256))
                .map_err(|e| format!("fetching {} of {}: {e}", i.path, i.job))?;
            let mut reader = Hashing {
                inner: body_reader(body),
                hash: Sha256::new(),
                len: 0,
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(i.size);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            );
            builder
                .append_data(&mut header, &i.path, (&mut reader).take(i.size))
                .map_err(|e| format!("fetching {} of {}: {e}", i.path, i.job))?;
            let got = hex(&reader.hash.finalize());
            if got != i.sha256 || reader.len != i.size {
                return Err(format!(
                    "{} of {} arrived as {} bytes hashing to {got}, not the {} bytes of {} it was stored as",
                    i.path, i.job, reader.len, i.size, i.sha256
                ));
            }
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| format!("writing the inputs into the workspace: {e}"))
    });
    let tar: TarStream = tokio_stream::wrappers::ReceiverStream::new(rx).boxed();
    let imported = job.engine.import(job.prepared, tar);
    let packed = producer_done(packer, err_tx, "input packer");
    let (imported, packed) = tokio::join!(imported, packed);
    packed.map_err(|why| format!("the job's inputs could not be put into its workspace: {why}"))?;
    imported.map_err(|e| format!("the job's inputs could not be put into its workspace: {e}"))
}

async fn restore_cache(job: &Job<'_>, cache: &CacheAssignment) {
    let Some(entry) = &cache.restore else {
        job.say(&format!("cache: nothing to restore for key {}", cache.key))
            .await;
        return;
    };
    let started = Instant::now();
    match restore(job, &entry.sha256).await {
        Ok(()) => {
            let from = match entry.key == cache.key {
                true => String::new(),
                false => format!(" (the newest of its prefix, for key {})", cache.key),
            };
            job.say(&format!(
                "cache: restored {} ({} bytes) in {} ms{from}",
                entry.key,
                entry.size,
                started.elapsed().as_millis()
            ))
            .await;
        }
        Err(why) => {
            job.say(&format!(
                "cache: restoring {} failed ({why}); the job goes on without it (its workspace may hold part of it)",
                entry.key
            ))
            .await;
        }
    }
}

async fn restore(job: &Job<'_>, sha256: &str) -> Result<(), String> {
    let body = job
        .client
        .download_cache(job.a.job_id, job.a.attempt, sha256)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let err_tx = tx.clone();
    let expect = sha256.to_owned();
    let decoder = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut hashing = Hashing {
            inner: body_reader(body),
            hash: Sha256::new(),
            len: 0,
        };
        let mut out = ChunkWriter::new(tx, CHUNK);
        {
            let mut z =
                zstd::stream::read::Decoder::new(&mut hashing).map_err(|e| format!("zstd: {e}"))?;
            io::copy(&mut z, &mut out).map_err(|e| format!("decoding the archive: {e}"))?;
        }
        // What zstd did not need still counts for the hash.
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| format!("reading the archive: {e}"))?;
        out.flush().map_err(|e| format!("extracting: {e}"))?;
        let got = hex(&hashing.hash.finalize());
        match got == expect {
            true => Ok(()),
            false => Err(format!("the archive hashes to {got}, not {expect}")),
        }
    });
    let tar: TarStream = tokio_stream::wrappers::ReceiverStream::new(rx).boxed();
    let imported = job.engine.import(job.prepared, tar);
    let decoded = producer_done(decoder, err_tx, "decoder");
    let (imported, decoded) = tokio::join!(imported, decoded);
    decoded?;
    imported.map_err(|e| e.to_string())
}

/// Artifacts per `when`, then the cache after a success. `Err`: why the job fails (an
/// artifact could not be stored).
pub async fn after_script(job: &Job<'_>, succeeded: bool) -> Result<(), String> {
    if let Some(artifacts) = &job.a.artifacts
        && artifacts.when.collects(succeeded)
    {
        let started = Instant::now();
        let patterns = Patterns::new(&artifacts.paths)
            .map_err(|e| format!("artifacts.paths cannot be used: {e}"))?;
        let mut sink = Uploads { job };
        let found = collect::collect(job.engine, job.prepared, &patterns, &mut sink).await;
        let found = found.map_err(|e| format!("collecting the artifacts failed: {e}"))?;
        for note in &found.notes {
            job.log.write(format!("{note}\n").as_bytes()).await;
        }
        job.say(&format!(
            "artifacts: stored {} files ({} bytes) in {} ms",
            found.files,
            found.bytes,
            started.elapsed().as_millis()
        ))
        .await;
    }
    if let Some(cache) = &job.a.cache
        && succeeded
        && cache.save
    {
        save_cache(job, cache).await;
    }
    Ok(())
}

/// Streams each collected file to pipeline-svc.
struct Uploads<'a, 'b> {
    job: &'a Job<'b>,
}

#[async_trait::async_trait]
impl Sink for Uploads<'_, '_> {
    async fn file(&mut self, file: FileOut) -> Result<(), String> {
        let job = self.job;
        let hash = std::sync::Arc::new(Mutex::new(Sha256::new()));
        let mut rest = file.body;
        let (mut head, mut held, mut whole) = (Vec::new(), 0, false);
        while held <= RETRYABLE_BYTES {
            match rest.next().await {
                Some(Ok(chunk)) => {
                    held += chunk.len();
                    head.push(chunk);
                }
                Some(Err(e)) => return Err(format!("reading {}: {e}", file.path)),
                None => {
                    whole = true;
                    break;
                }
            }
        }
        for chunk in &head {
            hash.lock().unwrap_or_else(|p| p.into_inner()).update(chunk);
        }
        let body = if whole {
            UploadBody::Whole(Bytes::from(head.concat()))
        } else {
            let h = hash.clone();
            let rest = rest.inspect_ok(move |chunk| {
                h.lock().unwrap_or_else(|p| p.into_inner()).update(chunk);
            });
            let body = futures::stream::iter(head.into_iter().map(Ok)).chain(rest);
            UploadBody::Stream(reqwest::Body::wrap_stream(body))
        };
        let stored = job
            .client
            .upload_artifact(job.a.job_id, job.a.attempt, &file.path, body)
            .await
            .map_err(|e| e.to_string())?;
        let sent = hex(&hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .finalize());
        if sent != stored.sha256 || stored.size != file.size {
            return Err(format!(
                "pipeline-svc stored {} bytes hashing to {}, but {} bytes hashing to {sent} were sent",
                stored.size, stored.sha256, file.size
            ));
        }
        job.held
            .record(&job.a.workspace, &file.path, &stored.sha256);
        Ok(())
    }
}

async fn save_cache(job: &Job<'_>, cache: &CacheAssignment) {
    let started = Instant::now();
    match pack_and_send(job, cache).await {
        Ok(Some((sha256, size, created))) => {
            let what = match created {
                true => "saved",
                false => "not saved (another job saved the key first)",
            };
            job.say(&format!(
                "cache: {what} {} ({}, sha256 {}) in {} ms",
                cache.key,
                human(size),
                &sha256[..12.min(sha256.len())],
                started.elapsed().as_millis()
            ))
            .await;
        }
        Ok(None) => {
            job.say(&format!(
                "cache: none of {} is in the workspace; nothing saved",
                cache.paths.join(", ")
            ))
            .await;
        }
        Err(why) => {
            job.say(&format!("cache: saving {} failed: {why}", cache.key))
                .await;
        }
    }
}

/// Where an exported path's entries go: Docker names them after the path's last component,
/// so they are renamed under its parent.
fn parent_of(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, _)) => parent,
        None => "",
    }
}

fn under(parent: &str, name: &std::path::Path) -> std::path::PathBuf {
    let name = name.strip_prefix("./").unwrap_or(name);
    match parent.is_empty() {
        true => name.to_path_buf(),
        false => std::path::Path::new(parent).join(name),
    }
}

/// Packs the cache's paths and streams the archive up; `None` when none of them exists.
async fn pack_and_send(
    job: &Job<'_>,
    cache: &CacheAssignment,
) -> Result<Option<(String, u64, bool)>, String> {
    let mut parts: Vec<(String, TarStream)> = Vec::new();
    for path in &cache.paths {
        let path = path.trim_start_matches("./").trim_end_matches('/');
        match job.engine.export(job.prepared, path).await {
            Ok(Some(tar)) => parts.push((parent_of(path).to_owned(), tar)),
            Ok(None) => {
                job.say(&format!("cache: {path} is not in the workspace"))
                    .await
            }
            Err(e) => return Err(format!("exporting {path}: {e}")),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let err_tx = tx.clone();
    let packer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let writer = ChunkWriter::new(tx, CHUNK);
        let mut z = zstd::stream::write::Encoder::new(writer, ZSTD_LEVEL)
            .map_err(|e| format!("zstd: {e}"))?;
        z.include_checksum(true).map_err(|e| format!("zstd: {e}"))?;
        let mut builder = tar::Builder::new(z);
        builder.follow_symlinks(false);
        for (parent, tar) in parts {
            let reader = SyncIoBridge::new(StreamReader::new(
                tar.map_err(|e| io::Error::other(e.to_string())),
            ));
            let mut archive = tar::Archive::new(reader);
            for entry in archive
                .entries()
                .map_err(|e| format!("reading the export: {e}"))?
            {
                let mut entry = entry.map_err(|e| format!("reading the export: {e}"))?;
                let name = entry.path().map_err(|e| format!("an entry's name: {e}"))?;
                let full = under(&parent, &name);
                let mut header = entry.header().clone();
                let kind = header.entry_type();
                let added = if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry
                        .link_name()
                        .map_err(|e| format!("a link's target: {e}"))?
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    // A hard link names an entry of the same archive, renamed like it.
                    let target = match kind.is_hard_link() {
                        true => under(&parent, &target),
                        false => target,
                    };
                    builder.append_link(&mut header, &full, &target)
                } else {
                    builder.append_data(&mut header, &full, &mut entry)
                };
                added.map_err(|e| format!("packing {}: {e}", full.display()))?;
            }
        }
        let z = builder.into_inner().map_err(|e| format!("packing: {e}"))?;
        let mut writer = z.finish().map_err(|e| format!("zstd: {e}"))?;
        writer.flush().map_err(|e| format!("sending: {e}"))
    });
    let hash = std::sync::Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let h = hash.clone();
    let body = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map_err(|e| io::Error::other(e.to_string()))
        .inspect_ok(move |chunk| {
            let mut g = h.lock().unwrap_or_else(|p| p.into_inner());
            g.0.update(chunk);
            g.1 += chunk.len() as u64;
        });
    let sent = job.client.upload_cache(
        job.a.job_id,
        job.a.attempt,
        &cache.key,
        reqwest::Body::wrap_stream(body),
    );
    let packed = producer_done(packer, err_tx, "packer");
    let (sent, packed) = tokio::join!(sent, packed);
    let stored = match sent {
        Ok(s) => s,
        // Another job of the same key was first (the packer then stops on a closed pipe):
        // not an error.
        Err(ClientError::Refused { status: 409, .. }) => {
            return Ok(Some((String::new(), 0, false)));
        }
        Err(e) => return Err(packed.err().unwrap_or_else(|| e.to_string())),
    };
    packed?;
    let (digest, len) = {
        let g = hash.lock().unwrap_or_else(|p| p.into_inner());
        (hex(&g.0.clone().finalize()), g.1)
    };
    if digest != stored.sha256 || len != stored.size {
        return Err(format!(
            "pipeline-svc stored {} bytes hashing to {}, but {len} bytes hashing to {digest} were sent",
            stored.size, stored.sha256
        ));
    }
    Ok(Some((stored.sha256, stored.size, stored.created)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn exported_entries_are_renamed_under_the_path() {
        assert_eq!(parent_of("target"), "");
        assert_eq!(parent_of(".cargo/registry"), ".cargo");
        assert_eq!(parent_of("a/b/c/"), "a/b");
        assert_eq!(
            under(".cargo", std::path::Path::new("registry/index/x")),
            std::path::PathBuf::from(".cargo/registry/index/x")
        );
        assert_eq!(
            under("", std::path::Path::new("./target/debug")),
            std::path::PathBuf::from("target/debug")
        );
    }

    #[test]
    fn held_files_are_per_workspace_and_by_content() {
        let held = Held::default();
        held.record("run-1", "dist/a", "aa");
        assert!(held.has("run-1", "dist/a", "aa"));
        assert!(!held.has("run-1", "dist/a", "bb"));
        assert!(!held.has("run-2", "dist/a", "aa"));
        held.forget("run-1");
        assert!(!held.has("run-1", "dist/a", "aa"));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(200 << 20), "200.0 MiB");
    }
}
