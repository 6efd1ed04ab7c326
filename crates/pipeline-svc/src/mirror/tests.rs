//! The mirror against real repositories: bare repos made with the git CLI, read through
//! `file://` and through a real `git http-backend` behind a CGI server on 127.0.0.1.

use super::{BatchObject, Mirror, MirrorError, Mirrors, PipelineFile, parse_batch};
use crate::git_cli;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

impl Mirror {
    /// The pipeline file alone at `c` (the tests' view of [`Mirror::read_commit`]).
    async fn file_at(&self, c: &str, max: usize) -> Result<Option<PipelineFile>, MirrorError> {
        Ok(self.read_commit(c, max).await?.and_then(|r| r.file))
    }
}

#[test]
fn batch_output_is_read_object_by_object_missing_and_cut_ones_included() {
    let out = b"1111 commit 5\nab\ncd\nx:.gitweave.yml missing\n2222 blob 3\nyml\n";
    let objects = parse_batch(out, 3);
    assert_eq!(
        objects,
        vec![
            Some(BatchObject {
                id: "1111".into(),
                kind: "commit".into(),
                size: 5,
                body: Some(b"ab\ncd".to_vec()),
            }),
            None,
            Some(BatchObject {
                id: "2222".into(),
                kind: "blob".into(),
                size: 3,
                body: Some(b"yml".to_vec()),
            }),
        ]
    );
    // Cut inside the second object's contents: its header is read, its body is not, and
    // nothing after it is invented.
    let cut = b"1111 commit 2\nab\n2222 blob 900\nyml";
    let objects = parse_batch(cut, 3);
    assert_eq!(
        objects[1].as_ref().map(|o| (o.size, o.body.is_none())),
        Some((900, true))
    );
    assert_eq!(objects[2], None);
    // Nothing at all, and garbage, are answers of nothing.
    assert_eq!(parse_batch(b"", 2), vec![None, None]);
    assert_eq!(parse_batch(b"a b c d\nzz blob nan\n", 2), vec![None, None]);
}

proptest::proptest! {
    /// Whatever git (or a broken pipe) writes, the parser answers exactly `n` objects and
    /// never panics; each body it returns has the size its header gave.
    #[test]
    fn batch_parsing_never_panics_and_bodies_match_their_size(
        out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        n in 0usize..5,
    ) {
        let objects = parse_batch(&out, n);
        proptest::prop_assert_eq!(objects.len(), n);
        for o in objects.into_iter().flatten() {
            if let Some(b) = o.body {
                proptest::prop_assert_eq!(b.len() as u64, o.size);
            }
        }
    }
}

/// A temp dir removed on drop.
pub(crate) struct Tmp(pub(crate) PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("gw-mirror-{name}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).expect("mkdir");
    Tmp(std::fs::canonicalize(&d).expect("canonical"))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare `origin.git` under `root` and a work tree pushing to it.
struct Origin {
    bare: PathBuf,
    work: PathBuf,
}

impl Origin {
    fn new(root: &Path) -> Origin {
        let bare = root.join("origin.git");
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("work");
        git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf8")],
        );
        Origin { bare, work }
    }

    /// Writes `files`, commits and pushes `main`; returns the commit.
    fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (p, text) in files {
            let path = self.work.join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(
            &self.work,
            &["push", "-q", "origin", "HEAD:refs/heads/main"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

#[tokio::test]
async fn reads_the_file_at_the_commit_and_fetches_only_what_is_missing() {
    let t = tmp("file");
    let origin = Origin::new(&t.0);
    let first = origin.commit(&[(".gitweave.yml", "jobs: [first]\n")], "one");
    let second = origin.commit(
        &[(".gitweave.yml", "jobs: [second]\n"), ("src/a.rs", "x")],
        "two\n\nbody [skip ci]",
    );
    let mirrors = Mirrors::new(&t.0.join("data"));
    let repo = Uuid::now_v7();
    let src = git_cli::source(origin.bare.to_str().unwrap(), Some(&t.0), None).expect("source");

    let m = mirrors.open(repo, src.clone()).await.expect("open");
    m.ensure_commit(&first, None).await.expect("fetch");
    let f = m.file_at(&first, 1024).await.expect("read").expect("file");
    assert_eq!(
        (f.path, f.text.as_str()),
        (".gitweave.yml", "jobs: [first]\n")
    );
    assert_eq!(
        f.blob,
        git(
            &origin.bare,
            &["rev-parse", &format!("{first}:.gitweave.yml")]
        )
    );
    // At the commit, never the branch head.
    let f2 = m.file_at(&second, 1024).await.expect("read").expect("file");
    assert_eq!(f2.text, "jobs: [second]\n");
    assert_eq!(
        m.changed_paths(&first, &second).await.expect("diff"),
        Some(vec![".gitweave.yml".to_owned(), "src/a.rs".to_owned()])
    );
    assert!(
        m.read_commit(&second, 1024)
            .await
            .expect("msg")
            .expect("the commit")
            .message
            .contains("[skip ci]")
    );
    assert_eq!(
        m.merge_base("main", &second).await.expect("mb").as_deref(),
        Some(second.as_str())
    );
    assert!(matches!(
        m.file_at(&first, 4).await,
        Err(MirrorError::TooBig { size: 14, .. })
    ));
    drop(m);

    // The server goes away: a commit the mirror holds needs no fetch.
    std::fs::rename(&origin.bare, t.0.join("gone.git")).expect("mv");
    let m = mirrors.open(repo, src.clone()).await.expect("open again");
    m.ensure_commit(&second, None)
        .await
        .expect("no fetch needed");
    let missing = "0123456789012345678901234567890123456789";
    let e = m
        .ensure_commit(missing, None)
        .await
        .expect_err("needs a fetch");
    assert!(matches!(e, MirrorError::Fetch { .. }), "{e:?}");
    drop(m);
    std::fs::rename(t.0.join("gone.git"), &origin.bare).expect("mv back");
    let e = mirrors
        .open(repo, src.clone())
        .await
        .expect("open")
        .ensure_commit(missing, None)
        .await
        .expect_err("not on the server");
    assert!(matches!(e, MirrorError::Missing { .. }), "{e}");

    // A commit without the file; a commit with only the .yaml spelling.
    git(&origin.work, &["rm", "-q", ".gitweave.yml"]);
    let third = origin.commit(&[(".gitweave.yaml", "jobs: []\n")], "three");
    let m = mirrors.open(repo, src).await.expect("open");
    m.ensure_commit(&third, None)
        .await
        .expect("fetch the new commit");
    let f3 = m.file_at(&third, 1024).await.expect("read").expect("yaml");
    assert_eq!(f3.path, ".gitweave.yaml");
    assert_eq!(
        m.file_at(&third, 1024).await.expect("read").map(|f| f.text),
        Some("jobs: []\n".into())
    );
    drop(m);

    mirrors.remove_repo(repo).await.expect("remove");
    assert!(!mirrors.repo_dir(repo).exists());
}

#[tokio::test]
async fn a_huge_file_is_refused_on_its_size_a_directory_is_no_file_and_a_missing_commit_is_none() {
    let t = tmp("huge");
    let origin = Origin::new(&t.0);
    // 3 MiB: more than the whole read takes in, so git's output is cut mid-file.
    let huge = "# x\n".repeat(3 << 18);
    let c = origin.commit(&[(".gitweave.yml", huge.as_str())], "huge");
    let mirrors = Mirrors::new(&t.0.join("data"));
    let repo = Uuid::now_v7();
    let src = git_cli::source(origin.bare.to_str().unwrap(), Some(&t.0), None).expect("source");
    let m = mirrors.open(repo, src).await.expect("open");
    assert_eq!(
        m.read_commit(&c, 1024).await.expect("read"),
        None,
        "not fetched yet"
    );
    m.ensure_commit(&c, None).await.expect("fetch");
    let e = m.file_at(&c, 1024).await.expect_err("too big");
    assert!(
        matches!(&e, MirrorError::TooBig { size, max: 1024, .. } if *size == huge.len() as u64),
        "{e:?}"
    );
    drop(m);
    // `.gitweave.yml/` as a directory is not the file; `.gitweave.yaml` beside it is.
    git(&origin.work, &["rm", "-q", ".gitweave.yml"]);
    let d = origin.commit(
        &[
            (".gitweave.yml/inner", "no\n"),
            (".gitweave.yaml", "jobs: []\n"),
        ],
        "dir",
    );
    let m = mirrors
        .open(
            repo,
            git_cli::source(origin.bare.to_str().unwrap(), Some(&t.0), None).expect("source"),
        )
        .await
        .expect("open");
    m.ensure_commit(&d, None).await.expect("fetch");
    let f = m.file_at(&d, 1024).await.expect("read").expect("the .yaml");
    assert_eq!((f.path, f.text.as_str()), (".gitweave.yaml", "jobs: []\n"));
}

#[tokio::test]
async fn concurrent_triggers_of_one_repo_share_its_mirror() {
    let t = tmp("concurrent");
    let origin = Origin::new(&t.0);
    let c = origin.commit(&[(".gitweave.yml", "x: 1\n")], "one");
    let mirrors = std::sync::Arc::new(Mirrors::new(&t.0.join("data")));
    let repo = Uuid::now_v7();
    let src = git_cli::source(origin.bare.to_str().unwrap(), Some(&t.0), None).expect("source");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (mirrors, src, c) = (mirrors.clone(), src.clone(), c.clone());
            tokio::spawn(async move {
                let m = mirrors.open(repo, src).await?;
                m.ensure_commit(&c, None).await?;
                m.file_at(&c, 1024).await
            })
        })
        .collect();
    for task in tasks {
        let f = task.await.expect("join").expect("read").expect("file");
        assert_eq!(f.text, "x: 1\n");
    }
}

/// The repos under `RUNNER_LOCAL_REPO_ROOT` belong to whoever pushes to them, pipeline-svc runs
/// as its own user (uid 10001 in its image): git's ownership check must let the mirror fetch
/// from the source and let `ls-remote` read it (a compose trigger failed with "dubious
/// ownership" because git's local transport drops `-c safe.directory`).
#[tokio::test]
async fn a_local_repo_owned_by_another_user_is_fetched_and_listed() {
    let t = tmp("owner");
    let origin = Origin::new(&t.0);
    let c = origin.commit(&[(".gitweave.yml", "x: owned\n")], "one");
    // Needs root (CAP_CHOWN), as the Docker tests do.
    let chown = Command::new("chown")
        .args(["-R", "4242:4242"])
        .arg(&origin.bare)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown -R 4242 needs root");
    let src = git_cli::source(origin.bare.to_str().unwrap(), Some(&t.0), None).expect("source");
    let m = Mirrors::new(&t.0.join("data"))
        .open(Uuid::now_v7(), src)
        .await
        .expect("open");
    m.ensure_commit(&c, None)
        .await
        .expect("fetch from a repo of uid 4242");
    let f = m.file_at(&c, 1024).await.expect("read").expect("file");
    assert_eq!(f.text, "x: owned\n");
    let head = crate::git_remote::head_commit(
        origin.bare.to_str().unwrap(),
        Some(&t.0),
        None,
        "refs/heads/main",
    )
    .await
    .expect("ls-remote of a repo of uid 4242");
    assert_eq!(head, c);
}

/// A CGI server for `git http-backend` on 127.0.0.1 that wants `Authorization: Basic
/// <auth>`: the smart-HTTP protocol as a real git server speaks it.
pub(crate) async fn serve_git_http(project_root: PathBuf, auth: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(move |req: Request| {
        let root = project_root.clone();
        async move { cgi(root, auth, req).await }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn cgi(root: PathBuf, auth: &str, req: Request) -> Response {
    let want = format!("Basic {auth}");
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != want {
        return Response::builder()
            .status(401)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required"))
            .expect("response");
    }
    let (parts, body) = req.into_parts();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = axum::body::to_bytes(body, 64 << 20).await.expect("body");
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .await
        .expect("read");
    let _ = writer.await;
    let _ = child.wait().await;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .expect("CGI headers");
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut resp = Response::builder();
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("status") {
                let code: u16 = v
                    .split_whitespace()
                    .next()
                    .unwrap_or("200")
                    .parse()
                    .unwrap_or(500);
                resp = resp.status(code);
            } else {
                resp = resp.header(k.trim(), v);
            }
        }
    }
    resp.body(Body::from(out[split.0 + split.1..].to_vec()))
        .expect("response")
}

#[tokio::test]
async fn a_smart_http_server_with_credentials_from_the_url_or_git_password() {
    let t = tmp("http");
    let origin = Origin::new(&t.0);
    let c = origin.commit(&[(".gitweave.yml", "over: http\n")], "one");
    // base64("deploy:s3cret-pw")
    let base = serve_git_http(t.0.clone(), "ZGVwbG95OnMzY3JldC1wdw==").await;
    let mirrors = Mirrors::new(&t.0.join("data"));

    let with_url = format!(
        "{}/origin.git",
        base.replace("http://", "http://deploy:s3cret-pw@")
    );
    let src = git_cli::source(&with_url, None, None).expect("source");
    let m = mirrors.open(Uuid::now_v7(), src).await.expect("open");
    m.ensure_commit(&c, None).await.expect("fetch over http");
    let f = m.file_at(&c, 1024).await.expect("read").expect("file");
    assert_eq!(f.text, "over: http\n");
    drop(m);

    // The password as the repo secret GIT_PASSWORD, the user from the URL.
    let user_only = format!("{}/origin.git", base.replace("http://", "http://deploy@"));
    let src = git_cli::source(&user_only, None, Some("s3cret-pw")).expect("source");
    let m = mirrors.open(Uuid::now_v7(), src).await.expect("open");
    m.ensure_commit(&c, None)
        .await
        .expect("fetch with GIT_PASSWORD");
    drop(m);

    // A wrong password: refused, and the message carries no credential.
    let wrong = format!(
        "{}/origin.git",
        base.replace("http://", "http://deploy:wrong-pw@")
    );
    let src = git_cli::source(&wrong, None, None).expect("source");
    let m = mirrors.open(Uuid::now_v7(), src).await.expect("open");
    let e = m.ensure_commit(&c, None).await.expect_err("401");
    let text = e.to_string();
    assert!(matches!(e, MirrorError::Fetch { .. }), "{text}");
    assert!(!text.contains("wrong-pw"), "{text}");
}
