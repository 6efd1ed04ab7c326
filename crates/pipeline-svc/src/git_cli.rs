//! Running the `git` CLI for pipeline-svc ([`crate::git_remote`], [`crate::mirror`]) under one
//! discipline: the URL and refs are arguments after `--` (or options git cannot take for
//! anything else), never a shell; a cleared environment without system or global config,
//! credential helpers or prompts; only the transports the URL needs; a timeout that kills git;
//! a cap on what is read of its output.
//!
//! Credentials never go into git's argv (which `ps` shows to every user of the machine): the
//! userinfo of an `http(s)://user:pass@host` URL, or the repo secret `GIT_PASSWORD`, becomes
//! an `Authorization: Basic` header that git gets through `GIT_CONFIG_*` variables of its own
//! environment (readable only by pipeline-svc's user), and the URL git sees has no userinfo.
//!
//! A local repository owned by another user (pipeline-svc runs as its own user; the repos
//! under `RUNNER_LOCAL_REPO_ROOT` belong to whoever pushes to them) needs a `safe.directory`
//! entry, and git's local transport clears `GIT_CONFIG_*` and `-c` for the `upload-pack` it
//! starts on the source. So the entry goes into a global config file of its own
//! ([`safe_config`]), which `GIT_CONFIG_GLOBAL` names and the local transport passes on.

use crate::local_repo;
use base64::Engine as _;
use gitweave_model::clone_url::CloneUrl;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Variables passed on to git from pipeline-svc's own environment (where ssh keys, CA
/// certificates and proxies come from); everything else is cleared.
const PASSED_ON: &[&str] = &[
    "PATH",
    "HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Where git fetches from and what it may use to get there.
#[derive(Clone)]
pub struct Source {
    /// The URL or resolved local path git is given: never with credentials.
    pub url: String,
    /// `GIT_ALLOW_PROTOCOL`.
    pub protocols: &'static str,
    /// `safe.directory` entries (a local repository owned by another user).
    pub safe_directories: Vec<String>,
    /// The global config file that holds them (`GIT_CONFIG_GLOBAL`; `/dev/null` when none).
    global_config: Option<PathBuf>,
    /// `Authorization` header value for an http(s) server, from the URL or `GIT_PASSWORD`.
    auth: Option<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("url", &self.url)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Decodes `%XX` escapes of a URL's userinfo (a password with `@` is written `%40`).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Splits `scheme://userinfo@rest` into the URL without userinfo and the userinfo.
pub fn split_userinfo(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) if !user.is_empty() => {
            (format!("{scheme}://{host}{path}"), Some(user.to_owned()))
        }
        _ => (url.to_owned(), None),
    }
}

/// The `Basic` header of `user:password` (each percent-decoded), or of the URL's user (or
/// `git`) with `password` when one is given (the repo secret `GIT_PASSWORD` wins).
fn basic(userinfo: Option<&str>, password: Option<&str>) -> Option<String> {
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (percent_decode(user), Some(percent_decode(pass))),
            None => (percent_decode(u), None),
        },
        None => (b"git".to_vec(), None),
    };
    let pass = match password {
        Some(p) => p.as_bytes().to_vec(),
        None => pass?,
    };
    let mut pair = user;
    pair.push(b':');
    pair.extend(pass);
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Where git reads `clone_url` from, checked as it was stored (the clone-URL grammar, and a
/// local path under `local_root` again); `password` is the repo secret `GIT_PASSWORD`. The
/// error is a sentence for people. Blocking (a local path is resolved): off the async workers.
pub fn source(
    clone_url: &str,
    local_root: Option<&Path>,
    password: Option<&str>,
) -> Result<Source, String> {
    match CloneUrl::parse(clone_url).map_err(|e| e.to_string())? {
        CloneUrl::Remote(url) => {
            let http = url.starts_with("http://") || url.starts_with("https://");
            let (url, auth) = if http {
                let (bare, userinfo) = split_userinfo(&url);
                (bare, basic(userinfo.as_deref(), password))
            } else {
                (url, None)
            };
            Ok(Source {
                url,
                protocols: "git:http:https:ssh",
                safe_directories: vec![],
                global_config: None,
                auth,
            })
        }
        CloneUrl::Local(path) => {
            let resolved = local_repo::resolve(local_root, &path).map_err(|e| e.to_string())?;
            let path = resolved
                .to_str()
                .ok_or_else(|| format!("the path {resolved:?} is not UTF-8"))?
                .to_owned();
            let safe_directories = vec![path.clone(), format!("{path}/.git")];
            let global_config = Some(safe_config(&safe_directories)?);
            Ok(Source {
                safe_directories,
                global_config,
                url: path,
                protocols: "file",
                auth: None,
            })
        }
    }
}

/// A git config file that holds only `safe.directory = <dir>` for each of `dirs`, in a
/// directory of this process's own (made once, mode 0700, under the temporary directory), named
/// by the hash of its content so every trigger of a repo shares one file. Written under a
/// temporary name and renamed, so git never reads half of it.
fn safe_config(dirs: &[String]) -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let mut text = String::from("[safe]\n");
    for d in dirs {
        if d.chars().any(char::is_control) {
            return Err(format!("the path {d:?} holds a control character"));
        }
        text.push_str("\tdirectory = \"");
        text.push_str(&d.replace('\\', "\\\\").replace('"', "\\\""));
        text.push_str("\"\n");
    }
    let dir = DIR
        .get_or_init(|| {
            use std::os::unix::fs::DirBuilderExt as _;
            let nonce: u64 = rand::random();
            let dir = std::env::temp_dir()
                .join(format!("gitweave-git.{}.{nonce:016x}", std::process::id()));
            // create (not create_all): fails if the name exists, so nobody else's directory
            // or symlink is used.
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map(|()| dir.clone())
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))
        })
        .clone()?;
    let name = format!("{}.gitconfig", &hex(&Sha256::digest(text.as_bytes()))[..32]);
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{n}.tmp"));
    std::fs::write(&tmp, text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `git` command for `src` with the environment of the module docs, run from `/` (so no
/// repository's config is read) unless the caller names a `--git-dir`.
pub fn command(src: &Source) -> tokio::process::Command {
    let mut config: Vec<(String, String)> = vec![
        ("protocol.allow".into(), "never".into()),
        ("credential.helper".into(), String::new()),
        ("core.sshCommand".into(), "ssh -o BatchMode=yes".into()),
        ("core.hooksPath".into(), "/dev/null".into()),
        ("core.fsmonitor".into(), "false".into()),
        ("gc.auto".into(), "0".into()),
    ];
    config.extend(
        src.protocols
            .split(':')
            .map(|p| (format!("protocol.{p}.allow"), "always".to_owned())),
    );
    config.extend(
        src.safe_directories
            .iter()
            .map(|d| ("safe.directory".to_owned(), d.clone())),
    );
    if let Some(auth) = &src.auth {
        config.push(("http.extraHeader".into(), format!("Authorization: {auth}")));
    }
    let mut cmd = tokio::process::Command::new("git");
    cmd.env_clear()
        .envs(
            PASSED_ON
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_CONFIG_GLOBAL",
            src.global_config
                .as_deref()
                .unwrap_or(Path::new("/dev/null")),
        )
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", src.protocols)
        .env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What git did.
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// At most the cap of stdout.
    pub stdout: Vec<u8>,
    /// At most the cap of stderr.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than the cap.
    pub stdout_cut: bool,
}

/// Why git did not run to its end.
#[derive(Debug)]
pub enum RunError {
    /// It took longer than the timeout and was killed.
    Timeout,
    /// It could not be started or read.
    Io(std::io::Error),
}

/// Runs `cmd`, reading at most `max_output` bytes of each stream, within `timeout`.
pub async fn run(
    cmd: tokio::process::Command,
    timeout: Duration,
    max_output: u64,
) -> Result<Output, RunError> {
    run_inner(cmd, None, timeout, max_output).await
}

/// [`run`] with `input` written to git's standard input (then closed), for the `--batch`
/// commands that read their arguments from it.
pub async fn run_with_input(
    cmd: tokio::process::Command,
    input: Vec<u8>,
    timeout: Duration,
    max_output: u64,
) -> Result<Output, RunError> {
    run_inner(cmd, Some(input), timeout, max_output).await
}

async fn run_inner(
    mut cmd: tokio::process::Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
    max_output: u64,
) -> Result<Output, RunError> {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(RunError::Io)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Io(std::io::Error::other(
            "git's output is not piped",
        )));
    };
    let stdin = child.stdin.take();
    let run = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        // One byte more than the cap tells a cut output from one that fits.
        // Each stream is closed as soon as its cap is read: git, still writing, then gets
        // EPIPE and exits instead of blocking on a full pipe while the other stream is read
        // to its end (which comes only when git exits).
        let read_out = async {
            let mut so = stdout.take(max_output + 1);
            let r = so.read_to_end(&mut out).await;
            drop(so);
            r
        };
        let read_err = async {
            let mut se = stderr.take(max_output);
            let r = se.read_to_end(&mut err).await;
            drop(se);
            r
        };
        // Written while the output is read, so neither side can block the other on a full
        // pipe; git stops at the end of its input once stdin is closed (dropped).
        let write = async {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                // git may exit before reading it all (it failed): its words say why.
                let _ = stdin.write_all(&input).await;
            }
        };
        let (o, e, ()) = tokio::join!(read_out, read_err, write);
        o.and(e)?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(RunError::Timeout),
        Ok(Err(e)) => Err(RunError::Io(e)),
        Ok(Ok((status, mut stdout, stderr))) => {
            let stdout_cut = stdout.len() as u64 > max_output;
            stdout.truncate(max_output as usize);
            Ok(Output {
                status,
                stdout,
                stderr,
                stdout_cut,
            })
        }
    }
}

/// What git said went wrong: its first `fatal:`/`error:` line of `stderr`, else its last
/// non-empty line; at most 300 characters, with `secrets` masked.
pub fn last_words(stderr: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines().map(str::trim);
    // git's first `fatal:`/`error:` line says what went wrong; what follows is often a
    // general hint ("Please make sure you have the correct access rights").
    let mut said = lines
        .clone()
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or_else(|| lines.rfind(|l| !l.is_empty()))
        .unwrap_or("git exited without saying why")
        .to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        said = said.replace(s, "***");
    }
    said.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::{basic, last_words, percent_decode, safe_config, source, split_userinfo};

    #[test]
    fn userinfo_leaves_the_url_and_becomes_a_header() {
        assert_eq!(
            split_userinfo("https://deploy:s%40cret@git.example:8443/a/b.git"),
            (
                "https://git.example:8443/a/b.git".to_owned(),
                Some("deploy:s%40cret".to_owned())
            )
        );
        assert_eq!(
            split_userinfo("https://git.example/a@b"),
            ("https://git.example/a@b".to_owned(), None)
        );
        assert_eq!(percent_decode("s%40cret%zz%4"), b"s@cret%zz%4");
        // base64("deploy:s@cret")
        assert_eq!(
            basic(Some("deploy:s%40cret"), None).as_deref(),
            Some("Basic ZGVwbG95OnNAY3JldA==")
        );
        assert_eq!(
            basic(Some("deploy"), None),
            None,
            "a user alone is no credential"
        );
        // The secret wins over the URL's password; `git` is the user when none is given.
        assert_eq!(
            basic(Some("deploy:old"), Some("s@cret")).as_deref(),
            Some("Basic ZGVwbG95OnNAY3JldA==")
        );
        assert_eq!(basic(None, Some("pw")).as_deref(), Some("Basic Z2l0OnB3"));
        let src = source("https://u:topsecret@h.example/r.git", None, None).expect("source");
        assert_eq!(src.url, "https://h.example/r.git");
        assert!(!format!("{src:?}").contains("topsecret"));
    }

    #[test]
    fn the_first_fatal_line_is_what_git_said() {
        let stderr = b"fatal: detected dubious ownership in repository at '/r.git'\n\
            To add an exception for this directory, call:\n\n\
            fatal: Could not read from remote repository.\n\n\
            Please make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            last_words(stderr, &[]),
            "fatal: detected dubious ownership in repository at '/r.git'"
        );
        assert_eq!(last_words(b"warning: a\nthe end\n\n", &[]), "the end");
        assert_eq!(last_words(b"", &[]), "git exited without saying why");
    }

    #[test]
    fn a_safe_directory_config_quotes_its_paths_and_refuses_control_characters() {
        let dirs = vec![
            r#"/srv/git/a "b"\c.git"#.to_owned(),
            "/srv/git/d.git".to_owned(),
        ];
        let path = safe_config(&dirs).expect("config");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "[safe]\n\tdirectory = \"/srv/git/a \\\"b\\\"\\\\c.git\"\n\tdirectory = \"/srv/git/d.git\"\n"
        );
        assert_eq!(
            safe_config(&dirs).expect("again"),
            path,
            "one file per content"
        );
        let err = safe_config(&["/srv/git/a\n[core]\n\tfsmonitor = evil".to_owned()]).unwrap_err();
        assert!(err.contains("control character"), "{err}");
        // git reads the entries back as written.
        let out = std::process::Command::new("git")
            .args(["config", "--file"])
            .arg(&path)
            .args(["--get-all", "safe.directory"])
            .output()
            .expect("git config");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/srv/git/a \"b\"\\c.git\n/srv/git/d.git\n"
        );
    }
}
