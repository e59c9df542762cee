//! The three narrow interfaces every Sluice stage uses to reach the outside
//! world (an event stream, an object store and a queue), each with an AWS
//! implementation (Kinesis, S3, SQS) and a local, on-disk one with the same
//! semantics, so a stage cannot tell which it runs on.

pub mod aws;
mod backoff;
pub mod config;
mod dead_letter;
mod error;
pub mod local;
pub mod notification;
mod object_store;
mod queue;
mod sequence;
mod stream;

pub use backoff::backoff_delay;
pub use dead_letter::{DeadLetterBody, DeadLetterFailed, move_to_dead_letter};
pub use error::{BackendError, Result};
pub use object_store::{GetObject, ObjectMeta, ObjectStore, PutCondition};
pub use queue::{MAX_RECEIVE, MAX_VISIBILITY, MAX_WAIT, Queue, QueueMessage, keep_hidden};
pub use sequence::SequenceNumber;
pub use stream::{
    EventStream, PutOutcome, PutRecord, ReadBatch, ShardInfo, ShardReader, StartPosition,
    StreamRecord,
};
