//! The object store port the lake lives behind: atomic puts, listing by
//! prefix, and the keys it accepts (keys arrive in queue messages, so one
//! must never reach outside the lake).

use async_trait::async_trait;

use crate::error::{ErrorClass, StageError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key could escape the lake root or is not a plain relative path.
    #[error("invalid lake key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("lake I/O on {key:?}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure worth retrying (throttling, 5xx, timeouts).
    #[error("lake backend error on {key:?}: {message}")]
    Backend { key: String, message: String },
    /// A failure retrying cannot fix (missing bucket, access denied).
    #[error("lake backend refused {key:?}: {message}")]
    Refused { key: String, message: String },
    /// An object that is there but unreadable as what its key says.
    #[error("{key} is not a valid {what}")]
    Corrupt {
        key: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// A bad key or a refusal stays so; I/O and backend errors may pass.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::InvalidKey { .. }
            | StoreError::Refused { .. }
            | StoreError::Corrupt { .. } => ErrorClass::Permanent,
            StoreError::Io { .. } | StoreError::Backend { .. } => ErrorClass::Transient,
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// Port to the object store holding the lake. Keys are relative to the lake
/// root, `/`-separated. `put` is atomic: a reader sees the old object or the
/// whole new one, never a part.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's bytes, or `None` when there is no such key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// [`ObjectStore::put`] for state a later run can do without (the run
    /// ledger, the load mark): as atomic, but not waited for on disk. A
    /// local store skips the folder's fsync, so after a power cut the object
    /// may be its previous version, never a torn one; object stores have
    /// nothing to skip.
    async fn put_advisory(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put(key, bytes).await
    }
    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Removes the object; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Where the lake lives, for logs (`file:///…`, `s3://…`).
    fn uri(&self) -> String;

    /// Holds the exclusive lock `name` across the processes sharing this
    /// store until the guard is dropped. A store whose writers are
    /// serialised by other means (S3 behind FIFO queues grouped by ticker)
    /// keeps the default: no cross-process lock (the lake still serialises
    /// the writers of one process).
    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError> {
        let _ = name;
        Ok(StoreLock::default())
    }
}

/// A held store lock; dropping it releases the lock.
#[derive(Default)]
pub struct StoreLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl StoreLock {
    /// A lock released when `held` is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> StoreLock {
        StoreLock {
            _held: Some(Box::new(held)),
        }
    }
}

/// Rejects keys that are absolute, empty, or contain `.`/`..` segments: keys
/// arrive in queue messages, and one must never reach outside the lake.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') || key.contains('\\') || key.contains('\0') {
        return bad("must be a relative /-separated path");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return bad("empty, '.' or '..' path segment");
    }
    Ok(())
}
