use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;

/// A flat namespace of immutable-until-replaced objects: S3, or a directory
/// tree on disk.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes `body` at `key` if `condition` holds, returning the new ETag.
    /// A failed condition is [`crate::BackendError::PreconditionFailed`].
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<String>;

    /// The object, or `None` when there is no object at `key`.
    async fn get(&self, key: &str) -> Result<Option<GetObject>>;

    /// Every object whose key starts with `prefix`, in key order
    /// (implementations page through the whole listing).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes the object; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// Overwrite unconditionally.
    None,
    /// Create only: fail if any object exists at the key (`If-None-Match: *`).
    IfAbsent,
    /// Replace only if the current object still has this ETag (`If-Match`).
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetObject {
    pub body: Bytes,
    pub etag: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
}
