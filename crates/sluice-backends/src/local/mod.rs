//! On-disk implementations with the AWS services' semantics, for the
//! single-machine mode: they survive a restart of the process, and several
//! processes (say `sluice up` and `sluice tail`) may share them.

mod frame;
mod fsutil;
mod object_store;
mod queue;
mod queue_journal;
mod segment;
mod shard_map;
mod stream;
mod stream_reader;
mod stream_writer;

pub use object_store::{LocalObjectStore, NotificationRule, etag_of, validate_key};
pub use queue::{Clock, DeadLetter, LocalQueue, QueueOptions};
pub use stream::{LocalStream, PutAttempt, StreamOptions, THROTTLED_CODE};
pub use stream_reader::LocalShardReader;

#[cfg(test)]
mod object_store_tests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod stream_tests;
