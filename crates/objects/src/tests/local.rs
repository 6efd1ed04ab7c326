//! A `file://` store in a temporary directory.

use std::time::Duration;

use futures::{StreamExt, stream};

use super::{chunk, exercise};
use crate::{Objects, ObjectsError, PutError};

#[tokio::test]
async fn a_directory_store_does_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let objects = Objects::from_url(&format!("file://{}", root.display())).unwrap();
    assert!(root.is_dir(), "the directory is created");
    assert_eq!(
        format!("{objects:?}"),
        format!("Objects {{ url: \"file://{}\" }}", root.display())
    );
    exercise(&objects, &Directory(root.clone())).await;
    let tmp = root.join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left in {}: {left:?}", tmp.display());
}

/// A directory store seen from outside.
struct Directory(std::path::PathBuf);

impl super::Outside for Directory {
    async fn read(&self, name: String) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(name)).ok()
    }

    async fn unfinished(&self) -> Vec<String> {
        files(&self.0, "tmp")
            .into_iter()
            .map(|p| p.display().to_string())
            .collect()
    }
}

/// The files under `dir/sub`, at any depth.
fn files(dir: &std::path::Path, sub: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.join(sub)];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.exists() {
            out.push(p);
        }
    }
    out
}

/// A write dropped mid-way (a client gone, a task cancelled) never leaves a final name, and
/// its staging file goes away with it.
#[tokio::test]
async fn a_write_dropped_mid_way_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::from_url(&format!("file://{}", dir.path().display())).unwrap();
    // Chunks past one part (so the multipart write has begun), then a body that never ends
    // and says when it got there; the write is dropped at that point.
    let (reached, at_end) = tokio::sync::oneshot::channel();
    let body = stream::iter((0..200u64).map(|i| Ok::<_, std::io::Error>(chunk(i)))).chain(
        stream::once(async move {
            let _ = reached.send(());
            futures::future::pending::<Result<bytes::Bytes, std::io::Error>>().await
        }),
    );
    tokio::select! {
        done = objects.put_stream(Box::pin(body), None, u64::MAX) => panic!("the write cannot finish: {done:?}"),
        _ = at_end => {}
    }
    assert!(files(dir.path(), "sha256").is_empty());
    // The staging file is removed by a blocking task the drop started.
    for _ in 0..6000 {
        if files(dir.path(), "tmp").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(files(dir.path(), "tmp"), Vec::<std::path::PathBuf>::new());
    assert!(files(dir.path(), "sha256").is_empty());
}

/// What a crashed process leaves in a directory store: a whole temporary (it died between the
/// write and the copy) or a staging file (it died mid-write), both of which the sweep removes,
/// though the store's own listing hides the second.
#[tokio::test]
async fn the_sweep_removes_what_a_crash_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::from_url(&format!("file://{}", dir.path().display())).unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let id = uuid::Uuid::new_v4();
    std::fs::write(tmp.join(id.to_string()), b"whole").unwrap();
    std::fs::write(tmp.join(format!("{}#1", uuid::Uuid::new_v4())), b"half").unwrap();
    assert_eq!(
        objects
            .sweep_temporaries(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(files(dir.path(), "tmp").len(), 2);
    assert_eq!(objects.sweep_temporaries(Duration::ZERO).await.unwrap(), 2);
    assert!(files(dir.path(), "tmp").is_empty());
}

#[test]
fn urls_that_cannot_be_used_say_what_to_write() {
    let refused = |url: &str| match Objects::from_url(url) {
        Err(ObjectsError::InvalidUrl(why)) => why,
        other => panic!("{url}: {other:?}"),
    };
    assert!(refused("file://relative/dir").contains("absolute"));
    assert!(refused("file:relative").contains("absolute"));
    assert!(refused("/var/lib/objects").contains("file:///"));
    assert!(refused("http://example.com/x").contains("not supported"));
    assert!(refused("s3:///prefix").contains("no bucket"));
    let with_secret = refused("s3://key:secret@bucket/p");
    assert!(
        with_secret.contains("AWS_ACCESS_KEY_ID") && !with_secret.contains("secret@"),
        "{with_secret}"
    );
    assert!(refused("s3://bucket/a/../b").contains("prefix"));
    let options = Objects::from_url_with("file:///tmp/x", &[("aws_region", "x")]).unwrap_err();
    assert!(matches!(options, ObjectsError::InvalidUrl(_)));
    let unknown = Objects::from_url_with("s3://bucket", &[("aws_no_such_thing", "1")]).unwrap_err();
    assert!(matches!(unknown, ObjectsError::InvalidUrl(why) if why.contains("aws_no_such_thing")));
}

#[test]
fn an_s3_url_keeps_bucket_and_prefix() {
    let options = [
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "AKIDSECRET"),
        ("aws_secret_access_key", "hush"),
    ];
    let objects = Objects::from_url_with("s3://bucket/ci/objects/", &options).unwrap();
    assert_eq!(objects.url(), "s3://bucket/ci/objects");
    assert_eq!(objects.prefix.as_ref(), "ci/objects");
    let debug = format!("{objects:?}");
    assert!(
        !debug.contains("AKIDSECRET") && !debug.contains("hush"),
        "{debug}"
    );
    let bare = Objects::from_url_with("s3://bucket", &options).unwrap();
    assert_eq!((bare.url(), bare.prefix.as_ref()), ("s3://bucket", ""));
}

#[test]
fn put_errors_read_well() {
    assert_eq!(
        PutError::TooLarge { max_bytes: 10 }.to_string(),
        "the upload is larger than its limit of 10 bytes"
    );
    assert_eq!(
        ObjectsError::NotFound.to_string(),
        "no such object in the object store"
    );
}
