//! Kinesis, S3 and SQS through the official AWS SDK, with a configurable
//! endpoint so the same code runs against AWS or a local emulator.

mod config;
mod errors;
mod kinesis;
pub mod provision;
mod s3;
mod sqs;

pub use config::{AwsClients, AwsConfig};
pub use kinesis::{
    KinesisShardReader, KinesisStream, MAX_CALL_BYTES, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES,
    MAX_RECORDS_PER_CALL, check_put_records,
};
pub use provision::{
    EnsuredQueue, QueueRef, ensure_bucket, ensure_bucket_notification, ensure_queue, ensure_stream,
};
pub use s3::{S3ObjectStore, s3_client};
pub use sqs::SqsQueue;
