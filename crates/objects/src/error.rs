//! The errors of the object store, worded for the person who reads them in a log or a reply.

/// What went wrong talking to the object store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectsError {
    /// No object under that sha256.
    #[error("no such object in the object store")]
    NotFound,
    /// The store's URL or one of its options cannot be used.
    #[error("object store URL: {0}")]
    InvalidUrl(String),
    /// An object name that is not 64 lowercase hex digits (refused before it can become a path).
    #[error("not a sha256 (64 lowercase hex digits): {0:?}")]
    InvalidKey(String),
    /// A byte range that does not lie inside the object.
    #[error("byte range {start}..{end} does not lie inside an object of {size} bytes")]
    InvalidRange {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// The store failed (network, permissions, disk); the text is the store's.
    #[error("object store: {0}")]
    Store(String),
}

impl From<object_store::Error> for ObjectsError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => ObjectsError::NotFound,
            other => ObjectsError::Store(other.to_string()),
        }
    }
}

/// Why [`crate::Objects::put_stream`] stored nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// The body went past the limit; reading stopped there.
    #[error("the upload is larger than its limit of {max_bytes} bytes")]
    TooLarge {
        /// The limit the body passed.
        max_bytes: u64,
    },
    /// The body's sha256 is not the one the caller announced.
    #[error("the upload's sha256 is {actual}, not the expected {expected}")]
    Mismatch {
        /// The sha256 the caller announced.
        expected: String,
        /// The sha256 of what was read.
        actual: String,
    },
    /// The input stream failed.
    #[error("reading the upload failed: {0}")]
    Body(String),
    /// The store failed, or the expected sha256 was not a sha256.
    #[error(transparent)]
    Store(#[from] ObjectsError),
}

impl From<object_store::Error> for PutError {
    fn from(error: object_store::Error) -> Self {
        PutError::Store(error.into())
    }
}
