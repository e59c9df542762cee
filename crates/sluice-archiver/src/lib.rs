//! Stream-archiver: copies every shard of the event stream into raw archive
//! objects (`raw/<stream>/dt=.../hh=.../<shard>/<first>-<last>.pb.zst`),
//! each record exactly once, across crashes, resharding and several
//! replicas.
//!
//! - [`assignment`]: which replica reads which shard (static, by index).
//! - [`checkpoint`]: claim, write, commit: how ranges never overlap.
//! - `lineage`: children of a reshard start after their parents end.
//! - `shard_worker`: reading, buffering and writing one shard.
//!
//! Notifications: the object store announces each new `raw/` object to the
//! transcode queue. In AWS that is the bucket's notification configuration
//! (`s3:ObjectCreated:*`, prefix `raw/`, suffix `.pb.zst`, to the transcode
//! SQS queue; applied by `sluice setup` and the Helm chart through
//! `sluice_backends::aws::ensure_bucket_notification`); locally it is a
//! `NotificationRule` on the `LocalObjectStore`. The archiver itself only
//! writes objects.

pub mod assignment;
mod buffer;
pub mod checkpoint;
mod config;
mod error;
pub mod keys;
mod lineage;
mod metrics;
mod retry;
mod serve;
mod shard_worker;

pub use config::{
    ArchiverConfig, MAX_GETS_PER_SEC_LIMIT, MAX_OBJECT_BYTES_LIMIT, MAX_RECORDS_PER_READ,
};
pub use error::ArchiverError;
pub use serve::serve;
