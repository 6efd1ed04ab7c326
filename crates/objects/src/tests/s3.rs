//! The same behaviour on a real S3-compatible server: moto in server mode, started by the test
//! on a free loopback port and killed when the test ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::exercise;
use crate::Objects;

const BUCKET: &str = "gitweave-objects-test";

/// A `moto_server` child process, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto, or says how to get it. None when the S3 tests are skipped on purpose
/// (`GITWEAVE_SKIP_S3=1`).
async fn start_moto() -> Option<Moto> {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("GITWEAVE_SKIP_S3").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPING the S3 object store test: moto_server is not on PATH and GITWEAVE_SKIP_S3=1"
            );
            return None;
        }
        panic!(
            "moto_server is not on PATH: the S3 object store test needs it (pip install 'moto[server]'), \
             or set GITWEAVE_SKIP_S3=1 to skip it"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if client
            .get(&moto.endpoint)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "moto_server did not answer on {} within 30 s",
        moto.endpoint
    );
    // object_store cannot create buckets; moto takes an unsigned CreateBucket.
    let created = client
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );
    Some(moto)
}

fn options(endpoint: &str) -> [(&str, &str); 5] {
    [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ]
}

#[tokio::test]
async fn an_s3_store_does_everything() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let objects = Objects::from_url_with(
        &format!("s3://{BUCKET}/ci/objects"),
        &options(&moto.endpoint),
    )
    .unwrap();
    // The layout, read with a store of no prefix of its own.
    let raw: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(
        options(&moto.endpoint)
            .into_iter()
            .fold(object_store::aws::AmazonS3Builder::new(), |b, (k, v)| {
                b.with_config(k.parse().unwrap(), v)
            })
            .with_bucket_name(BUCKET)
            .build()
            .unwrap(),
    );
    let outside = Bucket {
        raw,
        uploads: format!("{}/{BUCKET}?uploads&prefix=ci/objects/", moto.endpoint),
    };
    exercise(&objects, &outside).await;
}

/// The test bucket seen from outside, under the prefix `ci/objects`.
struct Bucket {
    raw: std::sync::Arc<dyn object_store::ObjectStore>,
    /// ListMultipartUploads under the prefix (moto answers it unsigned).
    uploads: String,
}

impl super::Outside for Bucket {
    async fn read(&self, name: String) -> Option<Vec<u8>> {
        let path = object_store::path::Path::from(format!("ci/objects/{name}"));
        match self.raw.get(&path).await {
            Ok(got) => Some(got.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    async fn unfinished(&self) -> Vec<String> {
        let response = reqwest::get(&self.uploads).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let listing = response.text().await.unwrap();
        assert!(listing.contains("ListMultipartUploadsResult"), "{listing}");
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

#[tokio::test]
async fn an_s3_store_without_a_prefix_works_at_the_bucket_root() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let objects =
        Objects::from_url_with(&format!("s3://{BUCKET}"), &options(&moto.endpoint)).unwrap();
    let stored = objects
        .put_stream(
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"root"))]),
            None,
            4,
        )
        .await
        .unwrap();
    let at =
        object_store::path::Path::from(format!("sha256/{}/{}", &stored.sha256[..2], stored.sha256));
    let body = objects.store.get(&at).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"root");
}
