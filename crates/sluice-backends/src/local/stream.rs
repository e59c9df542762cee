//! `LocalStream`: a Kinesis-like stream in a directory.
//!
//! ```text
//! <dir>/shards.json                      shard map (replaced atomically)
//! <dir>/.sluice-lock                     writers' cross-process lock
//! <dir>/shardId-000000000000/<seq>.seg   append-only segments
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::fsutil::{INTERNAL_PREFIX, LockFile, blocking};
use super::shard_map::{ShardMap, hash_key};
use super::stream_reader::LocalShardReader;
use super::stream_writer::{Append, MAP_FILE, Writer};
use crate::{
    BackendError, EventStream, PutOutcome, PutRecord, Result, ShardInfo, ShardReader, StartPosition,
};

/// Kinesis limits, enforced so local runs fail where AWS would.
pub const MAX_RECORDS_PER_PUT: usize = 500;
pub const MAX_RECORD_BYTES: usize = 1 << 20;
pub const MAX_PUT_BYTES: usize = 5 << 20;
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
const MAX_SHARDS: u32 = 10_000;

#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// A shard's active segment is rolled once it reaches this size.
    pub segment_bytes: u64,
    /// Whole segments whose last write is older than this are deleted.
    pub retention: Duration,
    /// How often writes check for expired segments.
    pub retention_check_interval: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            retention: Duration::from_secs(24 * 3600),
            retention_check_interval: Duration::from_secs(60),
        }
    }
}

impl StreamOptions {
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

/// One entry of one `put_records` call, shown to a fault hook.
#[derive(Debug)]
pub struct PutAttempt<'a> {
    /// Counts `put_records` calls on this `LocalStream`, from 0.
    pub call: u64,
    /// The entry's index in the call.
    pub index: usize,
    pub record: &'a PutRecord,
}

type FaultHook = dyn Fn(&PutAttempt<'_>) -> bool + Send + Sync;

/// The code Kinesis reports for a throttled entry.
pub const THROTTLED_CODE: &str = "ProvisionedThroughputExceededException";

pub struct LocalStream {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    name: String,
    options: StreamOptions,
    lock: LockFile,
    writer: Mutex<Writer>,
    last_retention: Mutex<Instant>,
    faults: RwLock<Option<Arc<FaultHook>>>,
    calls: AtomicU64,
}

impl LocalStream {
    /// Creates the stream with `initial_shards` shards, or reopens it (then
    /// `initial_shards` is ignored: the shard map on disk wins).
    pub fn open(dir: impl Into<PathBuf>, initial_shards: u32) -> Result<Self> {
        Self::open_with(dir, initial_shards, StreamOptions::default())
    }

    pub fn open_with(
        dir: impl Into<PathBuf>,
        initial_shards: u32,
        options: StreamOptions,
    ) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::io(&dir, e))?;
        let lock = LockFile::open(dir.join(format!("{INTERNAL_PREFIX}lock")))?;
        let writer = {
            let _guard = lock.lock()?;
            create_if_missing(&dir, initial_shards)?;
            let mut writer = Writer::recover(&dir)?;
            writer.enforce_retention(options.retention)?;
            writer
        };
        let name = dir
            .file_name()
            .map_or_else(|| "local".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                name,
                options,
                lock,
                writer: Mutex::new(writer),
                last_retention: Mutex::new(Instant::now()),
                faults: RwLock::new(None),
                calls: AtomicU64::new(0),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Test hook: entries for which `hook` returns true fail with
    /// `ProvisionedThroughputExceededException` and are not written.
    pub fn fail_entries(&self, hook: impl Fn(&PutAttempt<'_>) -> bool + Send + Sync + 'static) {
        *self
            .inner
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
    }

    pub fn clear_faults(&self) {
        *self
            .inner
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Deletes expired segments now (writes also do it every
    /// `retention_check_interval`).
    pub fn enforce_retention(&self) -> Result<()> {
        self.inner
            .with_writer(|w| w.enforce_retention(self.inner.options.retention))
    }
}

fn create_if_missing(dir: &Path, initial_shards: u32) -> Result<()> {
    let map_path = dir.join(MAP_FILE);
    if ShardMap::load(&map_path)?.is_some() {
        return Ok(());
    }
    if !(1..=MAX_SHARDS).contains(&initial_shards) {
        return Err(BackendError::InvalidArgument(format!(
            "a stream needs 1..={MAX_SHARDS} shards, not {initial_shards}"
        )));
    }
    let mut map = ShardMap::default();
    map.add_children(initial_shards, &[], &crate::SequenceNumber::from_u128(1));
    // Recovery creates each open shard's first segment.
    map.save(&map_path)
}

impl Inner {
    /// Runs `f` on fresh writer state, holding the in-process mutex and the
    /// cross-process lock.
    fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let mut writer: MutexGuard<'_, Writer> =
            self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _guard = self.lock.lock()?;
        if writer.changed_on_disk()? {
            *writer = Writer::recover(&self.dir)?;
        }
        f(&mut writer)
    }

    fn retention_due(&self) -> bool {
        let mut last = self
            .last_retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= self.options.retention_check_interval {
            *last = Instant::now();
            return true;
        }
        false
    }
}

/// Checks Kinesis's request limits; a violation rejects the whole call, as
/// Kinesis's `ValidationException` does.
fn validate(records: &[PutRecord]) -> Result<Vec<u128>> {
    if records.len() > MAX_RECORDS_PER_PUT {
        return Err(BackendError::InvalidArgument(format!(
            "{} records in one PutRecords; the limit is {MAX_RECORDS_PER_PUT}",
            records.len()
        )));
    }
    let mut total = 0;
    let mut hashes = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let key_chars = r.partition_key.chars().count();
        if !(1..=MAX_PARTITION_KEY_CHARS).contains(&key_chars) {
            return Err(BackendError::InvalidArgument(format!(
                "record {i}: partition key must have 1..={MAX_PARTITION_KEY_CHARS} characters, has {key_chars}"
            )));
        }
        let size = r.data.len() + r.partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(BackendError::InvalidArgument(format!(
                "record {i}: {size} bytes (data and partition key); the limit is {MAX_RECORD_BYTES}"
            )));
        }
        total += size;
        hashes.push(hash_key(&r.partition_key, r.explicit_hash_key.as_deref())?);
    }
    if total > MAX_PUT_BYTES {
        return Err(BackendError::InvalidArgument(format!(
            "PutRecords of {total} bytes; the limit is {MAX_PUT_BYTES}"
        )));
    }
    Ok(hashes)
}

#[async_trait]
impl EventStream for LocalStream {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        let path = self.inner.dir.join(MAP_FILE);
        // Read the file, not our cache: another process may have resharded.
        let map = blocking(move || ShardMap::load(&path)).await?;
        Ok(map
            .map(|m| m.shards.iter().map(|s| s.info()).collect())
            .unwrap_or_default())
    }

    async fn put_records(&self, records: Vec<PutRecord>) -> Result<Vec<PutOutcome>> {
        let hashes = validate(&records)?;
        let call = self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let hook = self
            .inner
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let injected: Vec<bool> = records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                hook.as_ref().is_some_and(|h| {
                    h(&PutAttempt {
                        call,
                        index,
                        record,
                    })
                })
            })
            .collect();
        let inner = self.inner.clone();
        blocking(move || {
            let retention = inner.retention_due().then_some(inner.options.retention);
            inner.with_writer(|writer| {
                let mut outcomes: Vec<Option<PutOutcome>> = vec![None; records.len()];
                let mut routed = Vec::new();
                for index in 0..records.len() {
                    if injected[index] {
                        outcomes[index] = Some(PutOutcome::Failed {
                            code: THROTTLED_CODE.into(),
                            message: format!(
                                "Rate exceeded for stream {} (injected fault)",
                                inner.name
                            ),
                        });
                        continue;
                    }
                    let shard =
                        writer
                            .map
                            .route(hashes[index])
                            .ok_or_else(|| BackendError::Corrupt {
                                path: inner.dir.join(MAP_FILE).display().to_string(),
                                message: format!("no open shard holds hash key {}", hashes[index]),
                            })?;
                    routed.push((index, shard.shard_id.clone()));
                }
                let appends: Vec<Append<'_>> = routed
                    .iter()
                    .map(|(index, shard_id)| Append {
                        index: *index,
                        shard_id,
                        partition_key: &records[*index].partition_key,
                        data: &records[*index].data,
                    })
                    .collect();
                for (index, outcome) in writer.append_records(&appends, inner.options.segment_bytes)
                {
                    outcomes[index] = Some(outcome);
                }
                if let Some(retention) = retention
                    && let Err(e) = writer.enforce_retention(retention)
                {
                    tracing::warn!(error = %e, "stream retention failed");
                }
                Ok(outcomes
                    .into_iter()
                    .map(|o| {
                        o.unwrap_or_else(|| PutOutcome::Failed {
                            code: "InternalFailure".into(),
                            message: "record was not routed".into(),
                        })
                    })
                    .collect())
            })
        })
        .await
    }

    async fn open_shard(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>> {
        let (dir, shard_id) = (self.inner.dir.clone(), shard_id.to_owned());
        let reader = blocking(move || LocalShardReader::open(dir, shard_id, start)).await?;
        Ok(Box::new(reader))
    }

    async fn update_shard_count(&self, target: u32) -> Result<()> {
        if !(1..=MAX_SHARDS).contains(&target) {
            return Err(BackendError::InvalidArgument(format!(
                "target shard count must be 1..={MAX_SHARDS}, not {target}"
            )));
        }
        let inner = self.inner.clone();
        blocking(move || inner.with_writer(|w| w.reshard(target))).await
    }
}
