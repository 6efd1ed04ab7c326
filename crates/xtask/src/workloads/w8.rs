//! W8: artifacts and cache (SPEC §11), in two parts of one run.
//!
//! - A cache of 10,000 files (200 MiB of random bytes, incompressible) restored into a job's
//!   workspace, against `tar --zstd -xf` of the same archive into a fresh directory on the
//!   filesystem of Docker's volumes. Target ≤ 1.3×.
//! - A 1 GiB artifact uploaded, against `cp` of a 1 GiB file to a new file on the filesystem
//!   of the object store. Target ≤ 1.5×.
//!
//! GitWeave's side is what the runner writes into the job's log,
//! `[gitweave] cache: restored {key} ({bytes} bytes) in {ms} ms` and
//! `[gitweave] artifacts: stored {files} files ({bytes} bytes) in {ms} ms`; the whole run
//! (trigger → success through the API) is shown beside it for reference. The cache archive
//! the baseline extracts is the very object the restore reads: the entry's sha256 is read
//! from Postgres, its file from the bench's `file://` object store.

use super::{Alternation, Ctx, ms_since, run_quiet, timed};
use crate::api::Api;
use crate::report::{Section, Target, fmt_ms, timing_table};
use anyhow::{Context, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repo of the cache part (a cache entry is scoped to its repo, so both templates are
/// attached to it and each run names the one it runs).
const REPO: &str = "bench-w8";
/// Its template that makes the files and saves the entry, run once.
const SEED: &str = "bench-w8-seed";
/// Its template that restores the entry, run once per iteration.
const RESTORE: &str = "bench-w8-restore";
/// The repo (and template) of the artifact part.
const BIG: &str = "bench-w8-big";
/// The cache key.
const KEY: &str = "w8-cache";
/// `cachedir/1` … `cachedir/100`.
const DIRS: u64 = 100;
/// Files in each.
const FILES_PER_DIR: u64 = 100;
/// All the cache's files.
const FILES: u64 = DIRS * FILES_PER_DIR;
/// Their bytes: 200 MiB.
const CACHE_BYTES: u64 = 200 << 20;
/// The artifact's bytes: 1 GiB.
const BIG_BYTES: u64 = 1 << 30;
/// The longest a run may take (a debug build hashes 1 GiB slowly).
const RUN_MAX: Duration = Duration::from_secs(900);
/// The cache part's figure, in the summary.
const CACHE_MEASURE: &str = "cache restore (10,000 files, 200 MiB) ÷ `tar --zstd -x` (median)";
/// Its target: GitWeave ÷ tar, medians.
const CACHE_LIMIT: f64 = 1.3;
/// The artifact part's figure.
const BIG_MEASURE: &str = "1 GiB artifact upload ÷ `cp` (median)";
/// Its target: GitWeave ÷ cp, medians.
const BIG_LIMIT: f64 = 1.5;
/// What marks the runner's line about the restored cache.
const RESTORED: &str = "[gitweave] cache: restored ";
/// What marks the runner's line about the stored artifacts.
const STORED: &str = "[gitweave] artifacts: stored ";

/// The runner's `[gitweave] cache: restored {key} ({bytes} bytes) in {ms} ms`.
#[derive(Debug, Clone, PartialEq)]
struct RestoredLine {
    key: String,
    bytes: u64,
    ms: f64,
}

/// The runner's `[gitweave] artifacts: stored {files} files ({bytes} bytes) in {ms} ms`.
#[derive(Debug, Clone, PartialEq)]
struct StoredLine {
    files: u64,
    bytes: u64,
    ms: f64,
}

/// Splits `{before} ({bytes} bytes) in {ms} ms…` into its three values; what follows ` ms`
/// is left (a cache restored from another key of its prefix says so there). `before` holds no
/// ` (`: a cache key cannot, and neither can a count of files.
fn bytes_and_ms(rest: &str) -> Option<(&str, u64, f64)> {
    let (before, rest) = rest.split_once(" (")?;
    let (bytes, rest) = rest.split_once(" bytes) in ")?;
    let (ms, _) = rest.split_once(" ms")?;
    let ms: f64 = ms.trim().parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then_some((before, bytes.trim().parse().ok()?, ms))
}

/// The first restored-cache line of a job's log.
fn parse_restored(log: &str) -> Option<RestoredLine> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once(RESTORED)?;
        let (key, bytes, ms) = bytes_and_ms(rest)?;
        Some(RestoredLine {
            key: key.trim().to_owned(),
            bytes,
            ms,
        })
    })
}

/// The first stored-artifacts line of a job's log.
fn parse_stored(log: &str) -> Option<StoredLine> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once(STORED)?;
        let (files, bytes, ms) = bytes_and_ms(rest)?;
        let files = files
            .strip_suffix(" files")
            .or_else(|| files.strip_suffix(" file"))?
            .trim()
            .parse()
            .ok()?;
        Some(StoredLine { files, bytes, ms })
    })
}

/// The seed's script: `cachedir/<d>/<f>` from `/dev/urandom`, each directory 2 MiB over 100
/// files (sizes differing by at most one byte), so 200 MiB exactly.
fn seed_script() -> String {
    let per_dir = CACHE_BYTES / DIRS;
    let small = per_dir / FILES_PER_DIR;
    let larger = per_dir % FILES_PER_DIR;
    format!(
        "for d in $(seq 1 {DIRS}); do mkdir -p cachedir/$d; for f in $(seq 1 {FILES_PER_DIR}); do \
         if [ $f -le {larger} ]; then n={}; else n={small}; fi; \
         head -c $n /dev/urandom > cachedir/$d/$f; done; done",
        small + 1
    )
}

/// The script line that fails unless `cachedir` holds all the files.
fn count_check() -> String {
    format!("test \"$(find cachedir -type f | wc -l)\" -eq {FILES}")
}

fn seed_template(image: &str) -> String {
    format!(
        "jobs:\n  - name: seed\n    image: {image}\n    cache: {{ key: {KEY}, paths: [cachedir], policy: push }}\n    script:\n      - '{}'\n      - '{}'\n",
        seed_script(),
        count_check()
    )
}

fn restore_template(image: &str) -> String {
    format!(
        "jobs:\n  - name: restore\n    image: {image}\n    cache: {{ key: {KEY}, paths: [cachedir], policy: pull }}\n    script:\n      - '{}'\n",
        count_check()
    )
}

fn big_template(image: &str) -> String {
    format!(
        "jobs:\n  - name: big\n    image: {image}\n    artifacts: {{ paths: [big.bin], expire_in: 1h }}\n    script:\n      - dd if=/dev/zero of=big.bin bs=1M count={}\n      - sync\n",
        BIG_BYTES >> 20
    )
}

/// Triggers a run of `templates` of `repo`, waits for its success, and reads the line `parse`
/// finds in its (first) job's log. Also returns the run's time, trigger → success.
async fn run_and_read<T>(
    api: &Api,
    repo: &str,
    templates: &[&str],
    parse: fn(&str) -> Option<T>,
    marker: &str,
) -> anyhow::Result<(T, f64)> {
    let t0 = Instant::now();
    let t = api.trigger_templates(repo, templates).await?;
    let ended = api.expect_success(&t.run_id, RUN_MAX).await;
    let run_ms = ms_since(t0);
    let job = t.job_ids.first().context("the run has no job")?;
    if let Err(e) = ended {
        return Err(e.context(log_tail(api, job).await));
    }
    // The runner writes the line before it reports the end; a few tries cover a log still
    // being flushed to pipeline-svc.
    let mut log = String::new();
    for _ in 0..20 {
        log = String::from_utf8_lossy(&api.raw_log(job).await?).into_owned();
        if let Some(found) = parse(&log) {
            return Ok((found, run_ms));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "job {job}'s log has no `{}` line; {}",
        marker.trim_end(),
        tail_of(&log)
    )
}

/// The last lines of a log, to say why a job failed.
fn tail_of(log: &str) -> String {
    let tail: Vec<&str> = log.lines().rev().take(6).collect();
    format!(
        "its log ends with: {}",
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    )
}

/// [`tail_of`] the job's stored log.
async fn log_tail(api: &Api, job: &str) -> String {
    match api.raw_log(job).await {
        Ok(log) => format!("job {job}: {}", tail_of(&String::from_utf8_lossy(&log))),
        Err(e) => format!("job {job}'s log cannot be read: {e:#}"),
    }
}

/// The cache entry's archive in the bench's object store.
async fn cache_archive(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let query = format!(
        "SELECT c.sha256 FROM cache_entries c JOIN repos r ON r.id = c.repo_id \
         WHERE r.name = '{REPO}' AND c.key = '{KEY}'"
    );
    let out = tokio::process::Command::new("psql")
        .args([ctx.stack.database_url.as_str(), "-XtAc", &query])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running psql (the bench reads the cache entry's sha256 from Postgres)")?;
    if !out.status.success() {
        bail!(
            "psql failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sha = stdout.lines().next().unwrap_or("").trim();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("cache entry {KEY} of {REPO} not found in Postgres (psql printed {stdout:?})");
    }
    let path = ctx
        .stack
        .objects_dir()
        .join("sha256")
        .join(&sha[..2])
        .join(sha);
    if !path.is_file() {
        bail!(
            "the cache entry's object {sha} is not at {}; is PIPELINE_OBJECT_STORE the bench's?",
            path.display()
        );
    }
    Ok(path)
}

/// The first line a tool prints (its version), or that it printed none.
async fn first_line(program: &str, args: &[&str]) -> String {
    let out = crate::machine::command_output(program, args).await;
    match out.lines().next() {
        Some(l) if !l.trim().is_empty() => l.trim().to_owned(),
        _ => format!("`{program}` printed no version"),
    }
}

/// The device of `path`.
fn device(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .dev())
}

/// Says whether `dir` is on the filesystem of Docker's volumes (a probe volume's mountpoint).
async fn docker_volume_filesystem(dir: &Path) -> String {
    let name = format!("{}w8-probe", crate::stack::CONTAINER_PREFIX);
    let _ = crate::machine::command_output("docker", &["volume", "create", &name]).await;
    let mount = crate::machine::command_output(
        "docker",
        &["volume", "inspect", "-f", "{{.Mountpoint}}", &name],
    )
    .await;
    let devices = (device(Path::new(&mount)), device(dir));
    let _ = crate::machine::command_output("docker", &["volume", "rm", "-f", &name]).await;
    match devices {
        (Ok(a), Ok(b)) if a == b => format!(
            "on the filesystem of Docker's volumes (device {b}, as a volume's mountpoint {mount})"
        ),
        (Ok(a), Ok(b)) => format!(
            "**not** on the filesystem of Docker's volumes (device {b}; a volume's mountpoint \
             {mount} is on device {a})"
        ),
        (Err(e), _) | (_, Err(e)) => {
            format!("on an unknown filesystem relative to Docker's volumes ({e:#})")
        }
    }
}

/// Files and bytes below `dir`.
fn tree_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Removes a directory tree in a blocking thread (not timed).
async fn remove_tree(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
}

/// Writes back dirty pages before a timed command, so neither side pays for the other's.
async fn sync() -> anyhow::Result<()> {
    run_quiet("sync", &[], None).await
}

/// `tar --zstd -xf ARCHIVE -C DIR` into a fresh `dir`, timed; checked the first time.
async fn untar(archive: &Path, dir: &Path, check: bool) -> anyhow::Result<f64> {
    remove_tree(dir.to_path_buf()).await;
    std::fs::create_dir_all(dir)?;
    sync().await?;
    let (a, d) = (archive.to_string_lossy(), dir.to_string_lossy());
    let ms = timed(run_quiet("tar", &["--zstd", "-xf", &a, "-C", &d], None)).await;
    if check && ms.is_ok() {
        let owned = dir.to_path_buf();
        let (files, bytes) = tokio::task::spawn_blocking(move || tree_size(&owned)).await??;
        if (files, bytes) != (FILES, CACHE_BYTES) {
            remove_tree(dir.to_path_buf()).await;
            bail!("the archive held {files} files of {bytes} bytes, not {FILES} of {CACHE_BYTES}");
        }
    }
    remove_tree(dir.to_path_buf()).await;
    ms
}

/// `cp SRC DST` to a new `dst`, timed (no fsync: the object store's local writes do none
/// either), then `dst` removed.
async fn copy(src: &Path, dst: &Path) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(dst);
    sync().await?;
    let (s, d) = (src.to_string_lossy(), dst.to_string_lossy());
    let ms = timed(run_quiet("cp", &[&s, &d], None)).await;
    let _ = std::fs::remove_file(dst);
    ms
}

/// The cache part: its table and its target.
async fn cache_part(ctx: &mut Ctx) -> anyhow::Result<(String, Target)> {
    let api = ctx.api.clone();
    api.put_repo(REPO).await?;
    api.attach_another(REPO, SEED, &seed_template(&ctx.image))
        .await?;
    api.attach_another(REPO, RESTORE, &restore_template(&ctx.image))
        .await?;

    eprintln!("bench: W8 seeding the cache ({FILES} files, {CACHE_BYTES} bytes)");
    let t0 = Instant::now();
    let seeded = api.trigger_templates(REPO, &[SEED]).await?;
    let ended = api.expect_success(&seeded.run_id, RUN_MAX).await;
    let seed_ms = ms_since(t0);
    let seed_job = seeded.job_ids.first().cloned().unwrap_or_default();
    if let Err(e) = ended {
        return Err(e.context(log_tail(&api, &seed_job).await));
    }
    let archive = match cache_archive(ctx).await {
        Ok(a) => a,
        Err(e) => return Err(e.context(log_tail(&api, &seed_job).await)),
    };
    let archive_bytes = std::fs::metadata(&archive)?.len();
    let scratch = ctx.work.join("w8-untar");
    std::fs::create_dir_all(&scratch)?;
    let disk = docker_volume_filesystem(&scratch).await;
    let tools = format!(
        "{}, {}",
        first_line("tar", &["--version"]).await,
        first_line("zstd", &["--version"]).await
    );
    let fresh = scratch.join("x");

    let mut alt = Alternation::new(&[
        "GitWeave: cache restored (the runner's log line: GET of the archive, zstd decode, extraction into the workspace)",
        "`tar --zstd -xf <the same archive> -C <fresh dir>`",
        "GitWeave: the whole run, trigger → success (API), for reference",
    ]);
    let restore = || async {
        sync().await?;
        run_and_read(&api, REPO, &[RESTORE], parse_restored, RESTORED).await
    };
    let mut logged_bytes = None;
    if !ctx.smoke {
        restore().await?;
        untar(&archive, &fresh, true).await?;
    }
    let n = ctx.iterations(5, 1);
    for i in 1..=n {
        eprintln!("bench: W8 cache iteration {i}/{n}");
        match restore().await {
            Ok((line, run_ms)) if line.key == KEY => {
                logged_bytes = Some(line.bytes);
                alt.record(0, Ok(line.ms));
                alt.record(2, Ok(run_ms));
            }
            Ok((line, _)) => alt.record(
                0,
                Err(anyhow::anyhow!("restored key {:?}, not {KEY}", line.key)),
            ),
            Err(e) => alt.record(0, Err(e)),
        }
        alt.record(1, untar(&archive, &fresh, ctx.smoke && i == 1).await);
    }
    remove_tree(scratch).await;

    let mut body = format!(
        "**Cache restore.** A job `seed` (run once, not timed: {} ms trigger → success) writes \
         {FILES} files of random bytes, {CACHE_BYTES} bytes in all (100 directories of 100 \
         files of 20,971–20,972 bytes), under `cachedir/` and saves them with `cache: {{key: \
         {KEY}, paths: [cachedir], policy: push}}`; the entry's archive (tar.zst) is {archive_bytes} \
         bytes{}. Each iteration runs a job with the same key and `policy: pull` whose script \
         checks that the {FILES} files are there. GitWeave: the time in the runner's line \
         `[gitweave] cache: restored {KEY} (… bytes) in … ms`: the GET of the archive from \
         pipeline-svc, its zstd decoding and its extraction into the job's workspace (a Docker \
         volume) through the engine. Baseline: `tar --zstd -xf` of the same object file, read \
         from the bench's object store ({tools}), into a fresh directory {disk}; the directory is made \
         before and removed after, untimed. `sync` runs (untimed) before each side. The \
         commands alternate (A B A B …).\n\n",
        fmt_ms(seed_ms),
        logged_bytes.map_or_else(String::new, |b| format!(
            " (the runner's line says {b} bytes)"
        )),
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    body.push_str(&alt.errors_md());
    let target = Target::at_most("W8", CACHE_MEASURE, alt.ratio(0, 1), CACHE_LIMIT, "×");
    Ok((body, target))
}

/// The artifact part: its table and its target.
async fn artifact_part(ctx: &mut Ctx) -> anyhow::Result<(String, Target)> {
    let api = ctx.api.clone();
    api.setup_pipeline(BIG, &big_template(&ctx.image)).await?;
    let dir = ctx.work.join("w8-cp");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("src.bin");
    let dst = dir.join("dst.bin");
    let count = format!("count={}", BIG_BYTES >> 20);
    let of = format!("of={}", src.display());
    run_quiet(
        "dd",
        &["if=/dev/zero", &of, "bs=1M", &count, "status=none"],
        None,
    )
    .await?;
    let objects = ctx.stack.objects_dir();
    std::fs::create_dir_all(&objects)?;
    let same_fs = if device(&objects)? == device(&dir)? {
        "on the filesystem of the object store"
    } else {
        "**not** on the filesystem of the object store"
    };
    let src_disk = docker_volume_filesystem(&dir).await;
    let cp_version = first_line("cp", &["--version"]).await;

    let mut alt = Alternation::new(&[
        "GitWeave: artifacts stored (the runner's log line: 1 GiB streamed out of the container to pipeline-svc, sha256, into the object store)",
        "`cp <1 GiB file> <new file>`",
        "GitWeave: the whole run, trigger → success (API), for reference",
        "sha256 of the same 1 GiB file (the `sha2` crate, page cache), for reference",
    ]);
    let upload = || async {
        sync().await?;
        run_and_read(&api, BIG, &[BIG], parse_stored, STORED).await
    };
    if !ctx.smoke {
        upload().await?;
        copy(&src, &dst).await?;
    }
    let n = ctx.iterations(5, 1);
    for i in 1..=n {
        eprintln!("bench: W8 artifact iteration {i}/{n}");
        match upload().await {
            Ok((line, run_ms)) if line.files == 1 && line.bytes == BIG_BYTES => {
                alt.record(0, Ok(line.ms));
                alt.record(2, Ok(run_ms));
            }
            Ok((line, _)) => alt.record(
                0,
                Err(anyhow::anyhow!(
                    "stored {} files of {} bytes, not 1 of {BIG_BYTES}",
                    line.files,
                    line.bytes
                )),
            ),
            Err(e) => alt.record(0, Err(e)),
        }
        alt.record(1, copy(&src, &dst).await);
        alt.record(3, sha256_of(&src).await);
    }
    remove_tree(dir).await;

    let mut body = format!(
        "**Artifact upload.** Each iteration runs a job whose script writes a {BIG_BYTES}-byte \
         `big.bin` (`dd if=/dev/zero bs=1M count=1024`, then `sync`, so that the upload, like the \
         baseline, starts with nothing to write back; nothing is compressed) kept with \
         `artifacts: {{paths: [big.bin], expire_in: 1h}}`. GitWeave: the time in the runner's \
         line `[gitweave] artifacts: stored 1 files ({BIG_BYTES} bytes) in … ms`: the file \
         exported from the container's workspace, streamed to pipeline-svc, hashed (sha256) \
         and written into the `file://` object store, then named by its sha256 (every \
         iteration writes the whole file again: the same content only skips the final link). \
         No fsync: the object store's local writes do none. Baseline: `cp` ({cp_version}; \
         GNU cp 9 clones when the filesystem can, else copies with `copy_file_range` inside \
         the kernel) of a 1 GiB file \
         (made once with `dd`, {src_disk}) to a new file beside it, {same_fs}, no `sync` \
         timed; the copy is removed after, untimed. `sync` runs (untimed) before each side. \
         The commands alternate (A B A B …). The last row hashes the baseline's source file \
         once per iteration: an object named by its sha256 (SPEC §11) costs at least that, so \
         its ratio to `cp` is the floor under the upload's.\n\n"
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    body.push_str(&alt.errors_md());
    let target = Target::at_most("W8", BIG_MEASURE, alt.ratio(0, 1), BIG_LIMIT, "×");
    Ok((body, target))
}

/// sha256 of `path` (read in 1 MiB blocks, from the page cache after the first pass), with
/// the `sha2` crate the services name objects with: the least an upload that names the file by
/// its sha256 pays, timed in milliseconds.
async fn sha256_of(path: &Path) -> anyhow::Result<f64> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let t = std::time::Instant::now();
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = sha2::Sha256::new();
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut block)?;
            if n == 0 {
                break;
            }
            hasher.update(&block[..n]);
        }
        std::hint::black_box(hasher.finalize());
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    })
    .await?
}

/// Runs W8.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let mut body = String::new();
    let mut targets = Vec::new();
    let mut failed = 0;
    let cache = cache_part(ctx).await;
    let artifacts = artifact_part(ctx).await;
    for (part, r, measure, limit) in [
        ("cache restore", cache, CACHE_MEASURE, CACHE_LIMIT),
        ("artifact upload", artifacts, BIG_MEASURE, BIG_LIMIT),
    ] {
        match r {
            Ok((text, target)) => {
                body.push_str(&text);
                targets.push(target);
            }
            Err(e) => {
                eprintln!("bench: W8 {part} failed: {e:#}");
                failed += 1;
                body.push_str(&format!("**The {part} could not run**: {e:#}\n"));
                targets.push(Target::at_most("W8", measure, None, limit, "×"));
            }
        }
        body.push('\n');
    }
    if failed == targets.len() {
        bail!("{}", body.trim());
    }
    let title = if failed > 0 {
        "W8 — cache restore and artifact upload — partly failed"
    } else {
        "W8 — cache restore and artifact upload"
    };
    Ok(Section {
        title: title.into(),
        body,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_restored_line_among_others() {
        let log = "$ true\n[gitweave] cache: restoring w8-cache\n\
                   [gitweave] cache: restored w8-cache (209735680 bytes) in 1234 ms\r\n\
                   $ test -d cachedir\n";
        assert_eq!(
            parse_restored(log),
            Some(RestoredLine {
                key: "w8-cache".into(),
                bytes: 209_735_680,
                ms: 1234.0
            })
        );
        let fractional = "[gitweave] cache: restored a.b_c-1 (5 bytes) in 0.5 ms";
        assert_eq!(parse_restored(fractional).map(|l| l.ms), Some(0.5));
        let from_prefix = "[gitweave] cache: restored cargo-0123456789abcdef (77 bytes) in 12 ms \
                           (the newest of its prefix, for key cargo-fedcba9876543210)";
        assert_eq!(
            parse_restored(from_prefix),
            Some(RestoredLine {
                key: "cargo-0123456789abcdef".into(),
                bytes: 77,
                ms: 12.0
            })
        );
    }

    #[test]
    fn reads_the_stored_line() {
        let log = "$ dd if=/dev/zero of=big.bin bs=1M count=1024\n\
                   [gitweave] artifacts: stored 1 files (1073741824 bytes) in 2500 ms\n";
        assert_eq!(
            parse_stored(log),
            Some(StoredLine {
                files: 1,
                bytes: 1 << 30,
                ms: 2500.0
            })
        );
        assert_eq!(
            parse_stored("[gitweave] artifacts: stored 1 file (3 bytes) in 7 ms").map(|l| l.files),
            Some(1)
        );
    }

    #[test]
    fn lines_of_another_shape_are_not_read() {
        for log in [
            "",
            "[gitweave] cache: restored w8-cache (12 bytes) in ms",
            "[gitweave] cache: restored w8-cache (12 bytes)",
            "[gitweave] cache: restored w8-cache (x bytes) in 3 ms",
            "[gitweave] cache: restored w8-cache (12 bytes) in -3 ms",
            "[gitweave] cache: no entry for w8-cache",
        ] {
            assert_eq!(parse_restored(log), None, "{log:?}");
        }
        assert_eq!(
            parse_stored("[gitweave] artifacts: stored (12 bytes) in 3 ms"),
            None
        );
        assert_eq!(
            parse_restored("[gitweave] artifacts: stored 1 files (12 bytes) in 3 ms"),
            None
        );
    }

    #[test]
    fn the_seed_makes_exactly_200_mib_in_10000_files() {
        let per_dir = CACHE_BYTES / DIRS;
        let small = per_dir / FILES_PER_DIR;
        let larger = per_dir % FILES_PER_DIR;
        assert_eq!(
            DIRS * (larger * (small + 1) + (FILES_PER_DIR - larger) * small),
            CACHE_BYTES
        );
        assert_eq!(FILES, 10_000);
        let script = seed_script();
        assert!(script.contains(&format!("n={}", small + 1)) && !script.contains('\''));
    }

    #[test]
    fn tree_size_counts_files_and_bytes_below() {
        let dir = std::env::temp_dir().join(format!("w8-tree-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/x"), b"12345").unwrap();
        std::fs::write(dir.join("a/b/y"), b"123").unwrap();
        std::fs::write(dir.join("z"), b"").unwrap();
        let got = tree_size(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, (3, 8));
    }
}
