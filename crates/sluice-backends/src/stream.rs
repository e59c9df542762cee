use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Result, SequenceNumber};

/// A partitioned, ordered, replayable stream of records: Kinesis, or a
/// directory of per-shard segment files.
#[async_trait]
pub trait EventStream: Send + Sync {
    /// Every shard, open and closed. After resharding, closed parents are
    /// still listed (with `ending_sequence` set) until they expire, and the
    /// children name their parents. Implementations page through the whole
    /// listing.
    async fn list_shards(&self) -> Result<Vec<ShardInfo>>;

    /// Writes a batch. The result has one outcome per input record, in
    /// order; a partial failure is reported per entry, never as an error for
    /// the whole call. `Err` means nothing is known to have been written.
    async fn put_records(&self, records: Vec<PutRecord>) -> Result<Vec<PutOutcome>>;

    /// Opens a reader on one shard. The reader hides iterators: it renews an
    /// expired one from the last sequence number it returned.
    async fn open_shard(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>>;

    /// Changes the number of open shards (Kinesis `UpdateShardCount` with
    /// uniform scaling). Open shards are closed and replaced by children
    /// covering the same hash key space.
    async fn update_shard_count(&self, target: u32) -> Result<()>;
}

/// Reads one shard forward, batch by batch.
#[async_trait]
pub trait ShardReader: Send {
    /// Up to `max` records (1..=10,000). An empty batch means "nothing new
    /// yet" unless `batch.shard_ended` is set.
    async fn next_batch(&mut self, max: usize) -> Result<ReadBatch>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// Inclusive hash key range, as Kinesis defines it (MD5 of the partition
    /// key, as a 128-bit number).
    pub hash_key_start: u128,
    pub hash_key_end: u128,
    pub starting_sequence: SequenceNumber,
    /// Set once the shard is closed by resharding: no record will be written
    /// to it after this one.
    pub ending_sequence: Option<SequenceNumber>,
}

impl ShardInfo {
    pub fn is_open(&self) -> bool {
        self.ending_sequence.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRecord {
    pub partition_key: String,
    pub data: Bytes,
    /// Pins the record to the shard owning this hash key (decimal 128-bit).
    pub explicit_hash_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        shard_id: String,
        sequence_number: SequenceNumber,
    },
    /// This entry was not written; `code` is the service's error code
    /// (`ProvisionedThroughputExceededException`, `InternalFailure`, ...).
    Failed { code: String, message: String },
}

impl PutOutcome {
    pub fn is_written(&self) -> bool {
        matches!(self, PutOutcome::Written { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still retained.
    TrimHorizon,
    /// Only records written after the reader opens.
    Latest,
    AtSequence(SequenceNumber),
    AfterSequence(SequenceNumber),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub sequence_number: SequenceNumber,
    pub partition_key: String,
    pub data: Bytes,
    /// When the stream accepted the record.
    pub arrival: SystemTime,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBatch {
    pub records: Vec<StreamRecord>,
    /// How far this read is behind the tip of the shard.
    pub millis_behind_latest: Option<u64>,
    /// The shard is closed and every record in it has been returned; read
    /// `child_shards` next.
    pub shard_ended: bool,
    pub child_shards: Vec<String>,
}
