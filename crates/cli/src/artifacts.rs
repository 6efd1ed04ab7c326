//! `gitweave artifacts JOB`: the files a job kept (SPEC §11), listed, or downloaded one
//! (`--get PATH`) or all as a tar (`--all`).
//!
//! A download streams into a temporary file beside the destination, which is renamed over it
//! only once the whole body arrived and, for one file, its sha256 is the one the list gives:
//! an interrupted or corrupted download never leaves a file that looks whole.

use crate::client::Client;
use crate::output::{Colour, Out, Table, short};
use anyhow::{Context, bail};
use gitweave_api::public::{Artifact, ArtifactList, Job};
use reqwest::Method;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::OffsetDateTime;

/// What `gitweave artifacts` does.
pub enum Action {
    /// Print the list.
    List,
    /// Download the file at this path of the job's artifacts.
    Get {
        /// The artifact's path, as listed.
        path: String,
        /// `-o`: where to (default: its basename in the current directory).
        output: Option<PathBuf>,
    },
    /// Download `artifacts.tar`.
    All {
        /// `-o`: where to (default: `job-<short id>-artifacts.tar`).
        output: Option<PathBuf>,
    },
}

/// Where downloaded bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// `-o -`.
    Stdout,
    /// A file, replaced only when the download is whole.
    File(PathBuf),
}

/// `-o` as given (`-` is stdout; a directory: `default`'s name in it), else `default`.
pub fn dest(
    output: Option<PathBuf>,
    default: impl FnOnce() -> anyhow::Result<PathBuf>,
) -> anyhow::Result<Dest> {
    match output {
        Some(p) if p.as_os_str() == "-" => Ok(Dest::Stdout),
        Some(p) if p.is_dir() => Ok(Dest::File(p.join(default()?))),
        Some(p) => Ok(Dest::File(p)),
        None => Ok(Dest::File(default()?)),
    }
}

/// The file a download of artifact `path` is written to without `-o`: its last component,
/// in the current directory.
pub fn default_file(path: &str) -> anyhow::Result<PathBuf> {
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(PathBuf::from(name)),
        _ => {
            bail!("artifact path {path:?} has no file name to save it under; name one with -o FILE")
        }
    }
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `12.0 MiB` (binary units, one decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // 1023.96 KiB would print as "1024.0 KiB": show it in the next unit instead.
    if format!("{value:.1}") == "1024.0" && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `path` as a URL path: each `/`-separated component percent-encoded except the unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `gitweave artifacts JOB [--get PATH | --all]`.
pub async fn run(c: &Client, out: Out, job: &str, action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::List => list(c, out, job).await,
        Action::Get { path, output } => get(c, out, job, &path, output).await,
        Action::All { output } => all(c, out, job, output).await,
    }
}

async fn list(c: &Client, out: Out, job: &str) -> anyhow::Result<ExitCode> {
    let list: ArtifactList = c.get(&format!("/jobs/{job}/artifacts")).await?;
    if out.json {
        out.print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.artifacts.is_empty() {
        println!("job {job} kept no artifacts");
        return Ok(ExitCode::SUCCESS);
    }
    let now = OffsetDateTime::now_utc();
    let mut t = Table::new(&["PATH", "SIZE", "SHA256", "EXPIRES"]);
    for a in &list.artifacts {
        let expires = gitweave_api::ts::format(a.expires_at);
        let (expires, colour) = if a.expires_at <= now {
            (format!("{expires} (expired)"), Colour::Red)
        } else {
            (expires, Colour::Dim)
        };
        t.row(vec![
            (a.path.clone(), None),
            (human_size(a.size), None),
            (a.sha256.chars().take(12).collect(), Some(Colour::Dim)),
            (expires, Some(colour)),
        ]);
    }
    print!("{}", t.render(0, out.colour));
    Ok(ExitCode::SUCCESS)
}

async fn get(
    c: &Client,
    out: Out,
    job: &str,
    path: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let list: ArtifactList = c.get(&format!("/jobs/{job}/artifacts")).await?;
    let listed: Option<&Artifact> = list.artifacts.iter().find(|a| a.path == path);
    let dest = dest(output, || default_file(path))?;
    let rb = c.request(
        Method::GET,
        &format!("/jobs/{job}/artifacts/{}", encode_path(path)),
    );
    // Not listed: the server's answer (a 404 naming the list) says why.
    let resp = c.send(rb).await?;
    let Some(listed) = listed else {
        bail!("job {job} lists no artifact {path:?}; `gitweave artifacts {job}` lists them");
    };
    let got = receive(resp, &dest, Some((path, &listed.sha256))).await?;
    done(out, &dest, path, &got)?;
    Ok(ExitCode::SUCCESS)
}

async fn all(c: &Client, out: Out, job: &str, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    // The default name needs the job's id, which `job` may only abbreviate.
    let name = match &output {
        Some(o) if !o.is_dir() => None,
        _ => {
            let j: Job = c.get(&format!("/jobs/{job}")).await?;
            Some(PathBuf::from(format!("job-{}-artifacts.tar", short(j.id))))
        }
    };
    let dest = dest(output, || name.context("no default file name"))?;
    let resp = c
        .send(c.request(Method::GET, &format!("/jobs/{job}/artifacts.tar")))
        .await?;
    let got = receive(resp, &dest, None).await?;
    done(out, &dest, "artifacts.tar", &got)?;
    Ok(ExitCode::SUCCESS)
}

/// What a download received.
#[derive(Debug)]
struct Received {
    size: u64,
    sha256: String,
}

/// Prints what was saved where: nothing when the bytes went to stdout; with `--json` one
/// document on stdout.
fn done(out: Out, dest: &Dest, what: &str, got: &Received) -> anyhow::Result<()> {
    match dest {
        Dest::Stdout => {}
        Dest::File(f) if out.json => out.print_json(&serde_json::json!({
            "path": what,
            "file": f,
            "size": got.size,
            "sha256": got.sha256,
        }))?,
        Dest::File(f) => println!(
            "saved {what} to {} ({}, sha256 {})",
            f.display(),
            human_size(got.size),
            got.sha256.chars().take(12).collect::<String>()
        ),
    }
    Ok(())
}

/// Streams `resp`'s body to `dest`, hashing it. A file is written to a temporary file beside
/// it, renamed over it only when the body is whole and, with `expect` (`(path, sha256)`),
/// hashes to that sha256; else the temporary file is removed and nothing is written.
async fn receive(
    mut resp: reqwest::Response,
    dest: &Dest,
    expect: Option<(&str, &str)>,
) -> anyhow::Result<Received> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut partial = match dest {
        Dest::Stdout => None,
        Dest::File(target) => Some(Partial::create(target)?),
    };
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = resp.chunk().await.context("receiving the download")? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        match partial.as_mut() {
            Some(p) => p.write(&chunk)?,
            None => stdout.write_all(&chunk).context("writing to stdout")?,
        }
    }
    stdout.flush().context("writing to stdout")?;
    let got = Received {
        size,
        sha256: hex(&hasher.finalize()),
    };
    if let Some((path, sha256)) = expect
        && got.sha256 != sha256
    {
        let why = format!(
            "the bytes received for {path:?} hash to {}, not to the {sha256} the job's list gives",
            got.sha256
        );
        match dest {
            Dest::Stdout => bail!("{why}; what went to stdout is not that artifact"),
            Dest::File(f) => bail!("{why}; {} was not written", f.display()),
        }
    }
    if let Some(p) = partial {
        p.commit()?;
    }
    Ok(got)
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A download's temporary file beside its target: removed when dropped, unless
/// [`Partial::commit`] renamed it over the target.
struct Partial {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
}

impl Partial {
    fn create(target: &Path) -> anyhow::Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .with_context(|| format!("{} names no file to write", target.display()))?;
        let tmp = dir.join(format!(
            ".{}.{}.partial",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {} (beside {})", tmp.display(), target.display()))?;
        Ok(Partial {
            file: Some(file),
            tmp,
            target: target.to_owned(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let Some(f) = self.file.as_mut() else {
            bail!("{} is already closed", self.tmp.display());
        };
        f.write_all(bytes)
            .with_context(|| format!("writing {}", self.tmp.display()))
    }

    /// Flushes the file to disk and renames it over the target.
    fn commit(mut self) -> anyhow::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .with_context(|| format!("writing {}", self.tmp.display()))?;
        }
        std::fs::rename(&self.tmp, &self.target).with_context(|| {
            format!(
                "renaming {} to {}",
                self.tmp.display(),
                self.target.display()
            )
        })?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_units_with_one_decimal() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(human_size(4 * 1024 * 1024 * 1024), "4.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn a_download_is_named_after_the_paths_last_component() {
        assert_eq!(
            default_file("target/release/app").ok(),
            Some(PathBuf::from("app"))
        );
        assert_eq!(default_file("a.txt").ok(), Some(PathBuf::from("a.txt")));
        for none in ["dir/", "", "a/..", "."] {
            let e = default_file(none).expect_err(none).to_string();
            assert!(e.contains("-o FILE"), "{none:?}: {e}");
        }
    }

    #[test]
    fn dash_is_stdout_and_no_output_takes_the_default() {
        assert_eq!(
            dest(Some("-".into()), || default_file("x/y")).ok(),
            Some(Dest::Stdout)
        );
        assert_eq!(
            dest(Some("out/z".into()), || default_file("x/y")).ok(),
            Some(Dest::File("out/z".into()))
        );
        assert_eq!(
            dest(None, || default_file("x/y")).ok(),
            Some(Dest::File("y".into()))
        );
        let dir = std::env::temp_dir();
        assert_eq!(
            dest(Some(dir.clone()), || default_file("x/y")).ok(),
            Some(Dest::File(dir.join("y")))
        );
    }

    #[test]
    fn paths_are_encoded_per_component() {
        assert_eq!(encode_path("out/a.txt"), "out/a.txt");
        assert_eq!(encode_path("a b/c#d?e%f"), "a%20b/c%23d%3Fe%25f");
        assert_eq!(encode_path("é"), "%C3%A9");
    }

    #[test]
    fn a_partial_file_is_removed_unless_committed() {
        let dir = std::env::temp_dir().join(format!(
            "gitweave-partial-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let target = dir.join("f.bin");
        {
            let mut p = Partial::create(&target).expect("create");
            p.write(b"half").expect("write");
        }
        assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 0);
        let mut p = Partial::create(&target).expect("create");
        p.write(b"whole").expect("write");
        p.commit().expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"whole");
        assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
