//! The same behaviour checked on both kinds of store: a local directory, and a real
//! S3-compatible server (moto, `s3.rs`).

mod local;
mod s3;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use sha2::{Digest, Sha256};

use crate::{Objects, ObjectsError, PutError, key};

const MIB: usize = 1024 * 1024;
const NO_LIMIT: u64 = u64::MAX;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A body of the given chunks.
fn body(
    chunks: Vec<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin {
    stream::iter(chunks.into_iter().map(Ok))
}

async fn read_all(objects: &Objects, sha256: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = objects
        .get(sha256, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

/// The names under the temporaries folder the store lists.
async fn temporaries(objects: &Objects) -> Vec<Path> {
    objects
        .store
        .list(Some(&objects.prefix.child(key::TMP_DIR)))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap()
}

/// The 64 KiB chunk `i` of a deterministic pseudo-random body (xorshift, seeded by `i`).
fn chunk(i: u64) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(64 * 1024);
    while out.len() < 64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// A look at a store from outside `Objects`: its layout and what writes leave behind.
pub(super) trait Outside {
    /// The bytes under `name` (relative to the store's prefix), None when absent.
    async fn read(&self, name: String) -> Option<Vec<u8>>;
    /// What unfinished writes hold: staging files in a directory, multipart uploads on S3.
    async fn unfinished(&self) -> Vec<String>;
}

/// No temporary listed, and nothing unfinished seen from outside.
async fn assert_clean(objects: &Objects, outside: &impl Outside) {
    assert_eq!(temporaries(objects).await, Vec::<Path>::new());
    assert_eq!(outside.unfinished().await, Vec::<String>::new());
}

/// Everything a store must do, whatever it is.
pub(super) async fn exercise(objects: &Objects, outside: &impl Outside) {
    // Put, head, get, ranges.
    let data = b"hello, object store".to_vec();
    let hello = sha(&data);
    let stored = objects
        .put_stream(
            body(vec![
                Bytes::from_static(b"hello, "),
                Bytes::from_static(b"object store"),
            ]),
            Some(&hello),
            NO_LIMIT,
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        crate::Stored {
            sha256: hello.clone(),
            size: data.len() as u64
        }
    );
    assert_eq!(
        outside
            .read(format!("sha256/{}/{hello}", &hello[..2]))
            .await,
        Some(data.clone())
    );
    assert_eq!(objects.head(&hello).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(objects, &hello, None).await, data);
    assert_eq!(read_all(objects, &hello, Some(7..13)).await, b"object");
    assert_eq!(
        read_all(objects, &hello, Some(0..data.len() as u64)).await,
        data
    );
    assert_eq!(read_all(objects, &hello, Some(3..3)).await, b"");
    let past_end = objects.get(&hello, Some(7..100)).await.err();
    assert_eq!(
        past_end,
        Some(ObjectsError::InvalidRange {
            start: 7,
            end: 100,
            size: data.len() as u64
        })
    );
    assert_clean(objects, outside).await;

    // The same content again: the same object, no temporary left.
    let again = objects
        .put_stream(body(vec![Bytes::from(data.clone())]), None, NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(again, stored);
    assert_clean(objects, outside).await;

    // An empty object is an object.
    let empty = objects.put_stream(body(vec![]), None, 0).await.unwrap();
    assert_eq!(
        empty,
        crate::Stored {
            sha256: sha(b""),
            size: 0
        }
    );
    assert_eq!(objects.head(&empty.sha256).await.unwrap(), Some(0));
    assert_eq!(read_all(objects, &empty.sha256, None).await, b"");

    // The wrong expected sha256: nothing stored.
    let other = b"other bytes".to_vec();
    let wrong = sha(b"not these");
    let err = objects
        .put_stream(
            body(vec![Bytes::from(other.clone())]),
            Some(&wrong),
            NO_LIMIT,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PutError::Mismatch {
            expected: wrong.clone(),
            actual: sha(&other)
        }
    );
    assert_eq!(objects.head(&sha(&other)).await.unwrap(), None);
    assert_eq!(objects.head(&wrong).await.unwrap(), None);
    assert_clean(objects, outside).await;

    // Too large, small: refused before anything is written.
    let err = objects
        .put_stream(body(vec![Bytes::from(other.clone())]), None, 5)
        .await
        .unwrap_err();
    assert_eq!(err, PutError::TooLarge { max_bytes: 5 });
    assert_eq!(objects.head(&sha(&other)).await.unwrap(), None);

    // Too large after a multipart write began: the body is read no further, the upload is
    // aborted, nothing is left.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counted = {
        let pulled = pulled.clone();
        stream::iter(0u64..).map(move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(chunk(i))
        })
    };
    let part_bytes = objects.part_bytes;
    let limit = (part_bytes + 3 * 64 * 1024) as u64;
    let err = objects.put_stream(counted, None, limit).await.unwrap_err();
    assert_eq!(err, PutError::TooLarge { max_bytes: limit });
    assert_eq!(pulled.load(Ordering::SeqCst), part_bytes / (64 * 1024) + 4);
    assert_clean(objects, outside).await;

    // The body fails: nothing stored.
    let failing = stream::iter(vec![Ok(chunk(0)), Err("the client went away")]);
    let err = objects
        .put_stream(failing, None, NO_LIMIT)
        .await
        .unwrap_err();
    assert_eq!(err, PutError::Body("the client went away".to_owned()));
    assert_eq!(objects.head(&sha(&chunk(0))).await.unwrap(), None);
    assert_clean(objects, outside).await;

    // Names that are not sha256s are refused before they become paths.
    for bad in ["../../etc/passwd", &hello.to_uppercase(), &hello[..63], ""] {
        assert!(
            matches!(objects.head(bad).await, Err(ObjectsError::InvalidKey(_))),
            "{bad:?}"
        );
        assert!(
            matches!(
                objects.get(bad, None).await,
                Err(ObjectsError::InvalidKey(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(objects.delete(bad).await, Err(ObjectsError::InvalidKey(_))),
            "{bad:?}"
        );
        let put = objects.put_stream(body(vec![]), Some(bad), NO_LIMIT).await;
        assert!(
            matches!(put, Err(PutError::Store(ObjectsError::InvalidKey(_)))),
            "{bad:?}"
        );
    }

    // Delete; absent is fine.
    objects.delete(&hello).await.unwrap();
    assert_eq!(objects.head(&hello).await.unwrap(), None);
    assert_eq!(
        objects.get(&hello, None).await.err(),
        Some(ObjectsError::NotFound)
    );
    assert_eq!(
        objects.get(&hello, Some(0..1)).await.err(),
        Some(ObjectsError::NotFound)
    );
    assert_eq!(
        outside
            .read(format!("sha256/{}/{hello}", &hello[..2]))
            .await,
        None
    );
    objects.delete(&hello).await.unwrap();

    // 64 MiB in 64 KiB chunks, streamed both ways.
    let chunks = (64 * MIB / (64 * 1024)) as u64;
    let mut hasher = Sha256::new();
    for i in 0..chunks {
        hasher.update(chunk(i));
    }
    let big_sha = hex::encode(hasher.finalize());
    let big = objects
        .put_stream(
            stream::iter((0..chunks).map(|i| Ok::<_, std::io::Error>(chunk(i)))),
            Some(&big_sha),
            64 * MIB as u64,
        )
        .await
        .unwrap();
    assert_eq!(
        big,
        crate::Stored {
            sha256: big_sha.clone(),
            size: 64 * MIB as u64
        }
    );
    assert_eq!(objects.head(&big_sha).await.unwrap(), Some(64 * MIB as u64));
    let mut read = objects.get(&big_sha, None).await.unwrap();
    let (mut hasher, mut size) = (Sha256::new(), 0usize);
    while let Some(bytes) = read.try_next().await.unwrap() {
        size += bytes.len();
        hasher.update(&bytes);
    }
    assert_eq!(
        (hex::encode(hasher.finalize()), size),
        (big_sha.clone(), 64 * MIB)
    );
    // A range across a part boundary: the end of the part's last 64 KiB chunk and the start
    // of the next part's first.
    let boundary = objects.part_bytes as u64;
    let last = boundary / (64 * 1024) - 1;
    let across = read_all(objects, &big_sha, Some(boundary - 10..boundary + 10)).await;
    assert_eq!(
        across,
        [&chunk(last)[64 * 1024 - 10..], &chunk(last + 1)[..10]].concat()
    );
    assert_clean(objects, outside).await;
    objects.delete(&big_sha).await.unwrap();

    // The sweep removes old temporaries, and only old ones.
    let crashed = key::temp_path(&objects.prefix);
    objects
        .store
        .put(&crashed, Bytes::from_static(b"half an upload").into())
        .await
        .unwrap();
    assert_eq!(
        objects
            .sweep_temporaries(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(temporaries(objects).await, vec![crashed]);
    assert_eq!(objects.sweep_temporaries(Duration::ZERO).await.unwrap(), 1);
    assert!(temporaries(objects).await.is_empty());
    assert_eq!(objects.sweep_temporaries(Duration::ZERO).await.unwrap(), 0);
    assert_clean(objects, outside).await;
}
