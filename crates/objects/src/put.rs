//! Writing an object: stream the body to a temporary name while hashing and counting it, then
//! give it its final name only when it is whole, within its limit and the expected sha256.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::{Objects, PutError, key};

/// The size of one part of a multipart write to S3, and the most a small write holds before
/// it becomes one (S3 wants parts of at least 5 MiB but the last).
pub(crate) const S3_PART_BYTES: usize = 8 * 1024 * 1024;
/// The same for a local directory, which has no minimum: a part there is only a positioned
/// write into the staging file, so small parts cost nothing and keep memory low.
pub(crate) const LOCAL_PART_BYTES: usize = 1024 * 1024;
/// Parts uploading at once; with the part being filled, memory stays near 3 parts per write
/// (24 MiB to S3, 3 MiB to a directory).
const PARTS_IN_FLIGHT: usize = 2;

/// An object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The sha256 of its bytes, 64 lowercase hex digits: its name in the store.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The temporary being written: held in memory while it is smaller than a part (one plain
/// write at the end), a multipart upload from then on.
enum Temp {
    Small(Vec<Bytes>, usize),
    Multipart(WriteMultipart),
}

impl Temp {
    /// Gives up the temporary; nothing of it stays in the store (best effort: a failure is
    /// logged, and what is left is a temporary the sweep removes).
    async fn abandon(self, path: &Path) {
        if let Temp::Multipart(upload) = self
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(temp = %path, error = %e, "aborting a multipart write failed");
        }
    }
}

impl Objects {
    /// Streams `body` into the store: written under a temporary name `tmp/<uuid>` (multipart,
    /// parts of 8 MiB to S3 and 1 MiB to a directory, so memory stays bounded whatever the size), sha256 and size computed
    /// while writing. When `expect` is Some and differs: [`PutError::Mismatch`]; past
    /// `max_bytes`: [`PutError::TooLarge`], reading stops at once. Either way the temporary
    /// is removed. Otherwise the object ends up under its final name
    /// `sha256/<first 2 hex>/<64 hex>` (copied there, then the temporary deleted; when that
    /// name already exists, only the temporary is deleted). A crash mid-write never leaves
    /// anything under a final name.
    pub async fn put_stream<S, E>(
        &self,
        mut body: S,
        expect: Option<&str>,
        max_bytes: u64,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        if let Some(expect) = expect {
            key::checked(expect)?;
        }
        let temp = key::temp_path(&self.prefix);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut writing = Temp::Small(Vec::new(), 0);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    writing.abandon(&temp).await;
                    return Err(PutError::Body(e.to_string()));
                }
            };
            let len = chunk.len() as u64;
            if size.saturating_add(len) > max_bytes {
                writing.abandon(&temp).await;
                return Err(PutError::TooLarge { max_bytes });
            }
            hasher.update(&chunk);
            size += len;
            writing = match writing {
                Temp::Small(mut chunks, held) => {
                    let held = held + chunk.len();
                    chunks.push(chunk);
                    if held < self.part_bytes {
                        Temp::Small(chunks, held)
                    } else {
                        let upload = self.store.put_multipart(&temp).await?;
                        let mut upload =
                            WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
                        for chunk in chunks {
                            upload.put(chunk);
                        }
                        Temp::Multipart(upload)
                    }
                }
                Temp::Multipart(mut upload) => {
                    if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        Temp::Multipart(upload).abandon(&temp).await;
                        return Err(e.into());
                    }
                    upload.put(chunk);
                    Temp::Multipart(upload)
                }
            };
        }
        match writing {
            Temp::Small(chunks, _) => {
                self.store.put(&temp, PutPayload::from_iter(chunks)).await?;
            }
            Temp::Multipart(mut upload) => {
                if let Err(e) = upload.wait_for_capacity(0).await {
                    Temp::Multipart(upload).abandon(&temp).await;
                    return Err(e.into());
                }
                // On failure `finish` aborts the upload itself.
                upload.finish().await?;
            }
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expect
            && expected != sha256
        {
            self.remove_temp(&temp).await;
            return Err(PutError::Mismatch {
                expected: expected.to_owned(),
                actual: sha256,
            });
        }
        let last = key::object_path(&self.prefix, &sha256);
        match self.store.head(&last).await {
            Ok(_) => tracing::debug!(%sha256, size, "object already stored"),
            Err(object_store::Error::NotFound { .. }) => {
                if let Err(e) = self.store.copy(&temp, &last).await {
                    self.remove_temp(&temp).await;
                    return Err(e.into());
                }
                tracing::debug!(%sha256, size, "object stored");
            }
            Err(e) => {
                self.remove_temp(&temp).await;
                return Err(e.into());
            }
        }
        self.remove_temp(&temp).await;
        Ok(Stored { sha256, size })
    }

    /// Deletes a whole temporary; a failure only leaves work for the sweep.
    async fn remove_temp(&self, temp: &Path) {
        if let Err(e) = self.store.delete(temp).await {
            tracing::warn!(temp = %temp, error = %e, "deleting a temporary failed; the sweep will");
        }
    }
}
