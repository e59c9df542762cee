//! The transcoder: raw archive objects (what the stream-archiver writes to
//! `raw/`) into typed Parquet tables under `tables/`, and a load manifest
//! per object on the load queue, driven by S3 notifications on a queue.
//!
//! Tables follow Segment's warehouse layout: `tracks`, one table per event
//! name, `identifies`, `pages`, `screens`, `groups`, `aliases`, and
//! `rejected` for events that cannot be rows. Nested `properties`,
//! `context` and `traits` are flattened into typed columns, and kept whole
//! as JSON text too, so no value is ever lost to flattening.
//!
//! Naming, in short (see [`names`] for the rules): names are lowercase
//! `[a-z0-9_]`, at most 63 bytes; a flattened column whose name clashes
//! with a standard column gets a prefix (`property_id`, `trait_timestamp`),
//! and keys that sanitize to the same name are told apart by a hash of the
//! original key. Each flattened column's original JSON path is in its
//! Parquet field metadata under `sluice.path`.

mod column;
mod config;
mod consumer;
mod dictionary;
mod error;
mod flatten;
mod keys;
mod metrics;
pub mod names;
mod parquet_file;
mod rejected;
mod splice;
mod table;
mod transcode;

pub use config::TranscoderConfig;
pub use consumer::serve;
pub use error::TranscodeError;
pub use parquet_file::TableFile;
pub use transcode::{MAX_MANIFEST_BYTES, PATH_METADATA, TranscodeOutput, transcode};
