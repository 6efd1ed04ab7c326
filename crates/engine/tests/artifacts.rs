//! Artifacts in and out of a job's workspace (SPEC §11), against the real Docker engine and
//! the shell engine: [`collect`] after a job's script, [`Engine::import`] before one.

#![expect(
    clippy::expect_used,
    reason = "a test fails loudly at the step that broke"
)]

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use gitweave_engine::collect::{Collected, FileOut, Patterns, Sink, collect};
use gitweave_engine::docker::{DockerEngine, PullPolicy};
use gitweave_engine::shell::ShellEngine;
use gitweave_engine::{Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, TarStream};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Size of `dist/sub/b.bin`: a few MiB, more than any buffer on the way.
const BIG: usize = 3 * 1024 * 1024 + 5;

fn image() -> String {
    std::env::var("GITWEAVE_TEST_IMAGE").unwrap_or_else(|_| "gitweave-busybox:latest".into())
}

fn spec(job: &str, workspace: &str, script: &[&str]) -> JobSpec {
    JobSpec {
        job_id: job.into(),
        attempt: 1,
        image: Some(image()),
        script: script.iter().map(|s| (*s).to_owned()).collect(),
        env: Default::default(),
        workspace: workspace.into(),
        shares_run: false,
        resources: Default::default(),
        timeout: Duration::from_secs(120),
        services: Vec::new(),
    }
}

/// What the job of [`collects_files_links_inside_and_notes_links_out`] writes.
const MAKE_DIST: &[&str] = &[
    "mkdir -p dist/sub",
    "printf 'alpha\\n' > dist/a.txt",
    "yes gitweave | head -c 3145733 > dist/sub/b.bin",
    "ln -s /etc/passwd dist/out",
    "ln -s a.txt dist/in",
    "echo not an artifact > other.txt",
];

fn big_content() -> Vec<u8> {
    b"gitweave\n".iter().copied().cycle().take(BIG).collect()
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keeps each file's size (as said and as read) and sha256, hashing as the body streams.
#[derive(Default)]
struct Hashing {
    files: BTreeMap<String, (u64, u64, String)>,
    /// The largest chunk of a body.
    max_chunk: usize,
}

#[async_trait]
impl Sink for Hashing {
    async fn file(&mut self, mut file: FileOut) -> Result<(), String> {
        let mut hash = Sha256::new();
        let mut read = 0u64;
        while let Some(chunk) = file.body.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            read += chunk.len() as u64;
            self.max_chunk = self.max_chunk.max(chunk.len());
            hash.update(&chunk);
        }
        let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.files.insert(file.path, (file.size, read, hex));
        Ok(())
    }
}

async fn run(engine: &dyn Engine, prepared: &Prepared) -> (Outcome, String) {
    let out = OutputBuffer::new(1 << 20);
    let outcome = engine
        .execute(prepared, &out, &CancellationToken::new())
        .await
        .expect("the job runs");
    let log = String::from_utf8_lossy(&out.take_now(1 << 20)).into_owned();
    (outcome, log)
}

fn exited_0(outcome: Outcome, log: &str) {
    assert!(
        matches!(outcome, Outcome::Exited { code: 0, .. }),
        "{outcome:?}: {log}"
    );
}

/// Returns the job, removed.
async fn collects_files_links_inside_and_notes_links_out(
    engine: &dyn Engine,
    workspace: &str,
) -> Prepared {
    let prepared = engine
        .prepare(&spec("make", workspace, MAKE_DIST))
        .await
        .expect("prepare");
    let (outcome, log) = run(engine, &prepared).await;
    exited_0(outcome, &log);

    let patterns = Patterns::new(&["dist/**".into(), "missing/**".into()]).expect("patterns");
    let mut sink = Hashing::default();
    let found = collect(engine, &prepared, &patterns, &mut sink).await;
    engine.collect(&prepared).await.expect("remove");
    let found = found.expect("collect");

    let alpha = (6, 6, sha(b"alpha\n"));
    let want: BTreeMap<String, (u64, u64, String)> = [
        ("dist/a.txt".to_owned(), alpha.clone()),
        ("dist/in".to_owned(), alpha),
        (
            "dist/sub/b.bin".to_owned(),
            (BIG as u64, BIG as u64, sha(&big_content())),
        ),
    ]
    .into();
    assert_eq!(sink.files, want, "{}", engine.name());
    assert!(
        sink.max_chunk <= 64 * 1024,
        "bodies stream in chunks, not whole: {}",
        sink.max_chunk
    );
    assert_eq!(
        found,
        Collected {
            files: 3,
            bytes: 6 + 6 + BIG as u64,
            notes: vec![
                "[gitweave] artifacts: dist/out -> /etc/passwd leaves the workspace; not followed"
                    .into(),
                "[gitweave] artifacts: no file matches \"missing/**\"".into(),
            ],
        },
        "{}",
        engine.name()
    );
    prepared
}

/// What the job of [`follows_links_inside_and_notes_the_rest`] writes.
const MAKE_LINKS: &[&str] = &[
    "mkdir -p build/lib real",
    "printf 'lib\\n' > build/lib/x.so",
    "printf 'r\\n' > real/f.txt",
    "printf 'w\\n' > top.txt",
    "ln top.txt hard.txt",
    "mkfifo fifo.txt",
    // A root that is a link, a link above a root (in and out), a link to itself.
    "ln -s build dist2",
    "ln -s real via",
    "ln -s /etc etcl",
    "ln -s loop loop",
];

async fn follows_links_inside_and_notes_the_rest(engine: &dyn Engine, workspace: &str) {
    let prepared = engine
        .prepare(&spec("links", workspace, MAKE_LINKS))
        .await
        .expect("prepare");
    let (outcome, log) = run(engine, &prepared).await;
    exited_0(outcome, &log);

    let roots = Patterns::new(&[
        "dist2/**".into(),
        "etcl/passwd".into(),
        "via/f.txt".into(),
        "loop".into(),
    ])
    .expect("patterns");
    let mut by_roots = Hashing::default();
    let found = collect(engine, &prepared, &roots, &mut by_roots).await;
    // `*.txt`: the whole workspace is exported, once; `*` stays at the top.
    let top = Patterns::new(&["*.txt".into()]).expect("patterns");
    let mut by_top = Hashing::default();
    let found_top = collect(engine, &prepared, &top, &mut by_top).await;
    engine.collect(&prepared).await.expect("remove");
    let (found, found_top) = (found.expect("collect"), found_top.expect("collect *.txt"));

    let file = |data: &[u8]| (data.len() as u64, data.len() as u64, sha(data));
    let name = engine.name();
    assert_eq!(
        by_roots.files,
        BTreeMap::from([
            ("dist2/lib/x.so".to_owned(), file(b"lib\n")),
            ("via/f.txt".to_owned(), file(b"r\n")),
        ]),
        "{name}"
    );
    let mut notes = found.notes.clone();
    notes.sort();
    let mut want = vec![
        "[gitweave] artifacts: etcl -> /etc leaves the workspace; not followed",
        "[gitweave] artifacts: no file matches \"etcl/passwd\"",
        "[gitweave] artifacts: no file matches \"loop\"",
    ];
    // Docker cannot stat a link that loops, so cannot say it is one: it is not there.
    if name == "shell" {
        want.insert(
            1,
            "[gitweave] artifacts: loop -> loop: more than 8 links in a row; not followed",
        );
    }
    assert_eq!(notes, want, "{name}");
    assert_eq!(
        by_top.files,
        BTreeMap::from([
            ("hard.txt".to_owned(), file(b"w\n")),
            ("top.txt".to_owned(), file(b"w\n")),
        ]),
        "{name}"
    );
    assert_eq!(
        found_top.notes,
        ["[gitweave] artifacts: fifo.txt is a fifo; skipped"],
        "{name}"
    );
}

/// A tar of `files` (path, content), without directory entries: import makes the parents.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// A tar whose one entry is named `name` as given (the tar crate refuses to write `..`).
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// `data` as a stream of small chunks, as an upload would come.
fn stream_of(data: Vec<u8>) -> TarStream {
    let chunks: Vec<Result<Bytes, EngineError>> = data
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn imports_nested_files_the_job_then_reads(engine: &dyn Engine, workspace: &str) {
    let prepared = engine
        .prepare(&spec(
            "read",
            workspace,
            &["cat dist/a.txt dist/sub/deep/b.txt top.txt"],
        ))
        .await
        .expect("prepare");
    let tar = tar_of(&[
        ("dist/a.txt", b"first\n"),
        ("dist/sub/deep/b.txt", b"second\n"),
        ("top.txt", b"third\n"),
    ]);
    let imported = engine.import(&prepared, stream_of(tar)).await;
    let (outcome, log) = run(engine, &prepared).await;
    engine.collect(&prepared).await.expect("remove");
    imported.expect("import");
    exited_0(outcome, &log);
    assert!(log.contains("first\nsecond\nthird\n"), "{log}");
}

async fn remove(engine: &dyn Engine, workspaces: &[&str]) {
    for w in workspaces {
        engine.remove_workspace(w).await.expect("remove workspace");
    }
}

fn run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn docker() -> DockerEngine {
    let prefix = format!("gwtar-{}-", uuid::Uuid::new_v4().simple());
    DockerEngine::connect("gw-tar-test", PullPolicy::Never, &prefix)
        .await
        .expect("docker")
}

#[tokio::test]
async fn docker_collects_dist_with_links_and_imports_nested_files() {
    let engine = docker().await;
    let (a, b, c) = (run_id(), run_id(), run_id());
    let gone = collects_files_links_inside_and_notes_links_out(&engine, &a).await;
    match engine.export(&gone, "dist").await {
        Err(EngineError::Engine(m)) => assert!(m.contains("is gone"), "{m}"),
        Ok(tar) => panic!("an export from a removed container: {:?}", tar.is_some()),
        Err(e) => panic!("{e:?}"),
    }
    imports_nested_files_the_job_then_reads(&engine, &b).await;
    follows_links_inside_and_notes_the_rest(&engine, &c).await;
    remove(&engine, &[&a, &b, &c]).await;
}

#[tokio::test]
async fn shell_collects_dist_with_links_and_imports_nested_files() {
    let root = temp("collect");
    let engine = ShellEngine::new(&root);
    let (a, b, c) = (run_id(), run_id(), run_id());
    collects_files_links_inside_and_notes_links_out(&engine, &a).await;
    imports_nested_files_the_job_then_reads(&engine, &b).await;
    follows_links_inside_and_notes_the_rest(&engine, &c).await;
    remove(&engine, &[&a, &b, &c]).await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Takes the names only, dropping each body unread; fails on one of them.
struct Picky {
    seen: Vec<String>,
    fail_on: Option<&'static str>,
}

#[async_trait]
impl Sink for Picky {
    async fn file(&mut self, file: FileOut) -> Result<(), String> {
        if self.fail_on == Some(file.path.as_str()) {
            return Err("the store is full".into());
        }
        self.seen.push(file.path);
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_may_skip_a_body_and_its_error_ends_the_collection() {
    let root = temp("picky");
    let engine = ShellEngine::new(&root);
    let w = run_id();
    let prepared = engine
        .prepare(&spec("make", &w, MAKE_DIST))
        .await
        .expect("prepare");
    let (outcome, log) = run(&engine, &prepared).await;
    exited_0(outcome, &log);
    let patterns = Patterns::new(&["dist/**".into()]).expect("patterns");

    let mut skipping = Picky {
        seen: Vec::new(),
        fail_on: None,
    };
    let found = collect(&engine, &prepared, &patterns, &mut skipping)
        .await
        .expect("collect");
    // The walk goes on past an unread body; the link inside is followed last.
    assert_eq!(skipping.seen, ["dist/a.txt", "dist/sub/b.bin", "dist/in"]);
    assert_eq!(found.files, 3);

    let mut failing = Picky {
        seen: Vec::new(),
        fail_on: Some("dist/sub/b.bin"),
    };
    match collect(&engine, &prepared, &patterns, &mut failing).await {
        Err(EngineError::Engine(m)) => {
            assert!(
                m.contains("dist/sub/b.bin") && m.contains("the store is full"),
                "{m}"
            )
        }
        other => panic!("expected the sink's error, got {other:?}"),
    }
    assert_eq!(failing.seen, ["dist/a.txt"], "nothing after the error");
    remove(&engine, &[&w]).await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn docker_keeps_an_entry_with_dotdot_inside_the_workspace() {
    let engine = docker().await;
    let w = run_id();
    let prepared = engine
        .prepare(&spec(
            "evil",
            &w,
            &["if [ -e /evil ] || [ -e /workspace/../evil ]; then echo LEAKED; exit 1; fi"],
        ))
        .await
        .expect("prepare");
    let imported = engine
        .import(&prepared, stream_of(raw_tar("../evil", b"boo\n")))
        .await;
    let (outcome, log) = run(&engine, &prepared).await;
    engine.collect(&prepared).await.expect("remove");
    remove(&engine, &[&w]).await;
    assert!(imported.is_err(), "Docker refuses the entry: {imported:?}");
    exited_0(outcome, &log);
}

#[tokio::test]
async fn shell_refuses_entries_outside_the_workspace() {
    let root = temp("evil");
    let engine = ShellEngine::new(&root);
    let w = run_id();
    let prepared = engine
        .prepare(&spec("evil", &w, &["true"]))
        .await
        .expect("prepare");
    for name in ["../evil", "/tmp/gw-tar-evil-abs"] {
        match engine
            .import(&prepared, stream_of(raw_tar(name, b"boo\n")))
            .await
        {
            Err(EngineError::Engine(m)) => {
                assert!(m.contains(name) && m.contains("refused"), "{m}")
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    assert!(
        !root.join("evil").exists(),
        "nothing landed beside the workspace"
    );
    assert!(!PathBuf::from("/tmp/gw-tar-evil-abs").exists());

    // Through a link out of the workspace: refused too, nothing written where it points.
    let outside = temp("outside");
    std::os::unix::fs::symlink(&outside, root.join(&w).join("out")).expect("link");
    let through = engine
        .import(&prepared, stream_of(tar_of(&[("out/x.txt", b"boo\n")])))
        .await;
    assert!(through.is_err(), "{through:?}");
    assert!(
        !outside.join("x.txt").exists(),
        "nothing written through the link"
    );
    remove(&engine, &[&w]).await;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&outside);
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gitweave-tar-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
