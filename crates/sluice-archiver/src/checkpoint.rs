//! Per-shard checkpoints: compare-and-set JSON objects at
//! `checkpoints/<stream>/<shard>.json`.
//!
//! Writing a range takes three steps:
//!
//! 1. **claim**: compare-and-set the checkpoint to record the range as
//!    `pending` (first, last, key);
//! 2. write the object (create-only: if it is already there, it is this very
//!    range, written by an earlier attempt);
//! 3. **commit**: compare-and-set `sequence` to the range's last record and
//!    clear `pending`.
//!
//! Why claim before writing, instead of writing first and checkpointing
//! after: an object written without a checkpoint (a crash, or a second
//! replica racing for the shard) would otherwise be invisible to whoever
//! reads the shard next, and that reader, having read more or fewer records,
//! would cut the range at different bounds and write an object overlapping
//! it. Finding such orphans by listing `raw/` before each write cannot close
//! the race (the list and the put are not atomic) and costs a LIST per
//! object. With the claim, the bounds of every range are fixed by a
//! successful compare-and-set before any object exists, claims chain (each
//! starts after the last committed record), and a reader that finds a
//! `pending` claim finishes exactly that range: so no two objects ever
//! overlap. The price is one extra small PUT per object.
//!
//! Losing a compare-and-set (`PreconditionFailed`) means another archiver
//! wrote this shard's checkpoint: the loser drops what it buffered and
//! starts over from the checkpoint.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_backends::{BackendError, ObjectStore, PutCondition, SequenceNumber};
use sluice_events::time::now_us;

use crate::ArchiverError;
use crate::keys::checkpoint_key;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last record archived (inclusive); none before the first object.
    pub sequence: Option<SequenceNumber>,
    /// A claimed range whose object may not be written yet.
    pub pending: Option<PendingRange>,
    /// The shard is closed and every record of it is archived: its children
    /// may start.
    pub shard_ended: bool,
    /// Who wrote this version and when (microseconds since the epoch), for
    /// operators.
    pub writer: String,
    pub updated_at_us: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRange {
    pub first: SequenceNumber,
    pub last: SequenceNumber,
    pub key: String,
}

/// The checkpoint of one shard, with the ETag that guards the next write.
pub(crate) struct CheckpointStore {
    objects: Arc<dyn ObjectStore>,
    key: String,
    writer: String,
    /// `None` until the checkpoint object exists: then the next write is
    /// create-only.
    etag: Option<String>,
}

impl CheckpointStore {
    pub fn new(objects: Arc<dyn ObjectStore>, stream: &str, shard_id: &str, writer: &str) -> Self {
        Self {
            objects,
            key: checkpoint_key(stream, shard_id),
            writer: writer.to_owned(),
            etag: None,
        }
    }

    /// Reads the current checkpoint (default when there is none yet) and
    /// remembers its ETag for the next [`CheckpointStore::save`].
    pub async fn load(&mut self) -> Result<Checkpoint, ArchiverError> {
        match read(self.objects.as_ref(), &self.key).await? {
            Some((checkpoint, etag)) => {
                self.etag = Some(etag);
                Ok(checkpoint)
            }
            None => {
                self.etag = None;
                Ok(Checkpoint::default())
            }
        }
    }

    /// Compare-and-set against the version last loaded or saved; a lost race
    /// is [`BackendError::PreconditionFailed`]. Safe to call again after a
    /// transient error: if that write did land, the retry loses the race
    /// against it, and the caller starts over from what it wrote.
    pub async fn save(&mut self, checkpoint: &mut Checkpoint) -> Result<(), BackendError> {
        checkpoint.writer.clone_from(&self.writer);
        checkpoint.updated_at_us = now_us();
        let body = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint serialises");
        let condition = match &self.etag {
            Some(etag) => PutCondition::IfMatch(etag.clone()),
            None => PutCondition::IfAbsent,
        };
        self.etag = Some(
            self.objects
                .put(&self.key, Bytes::from(body), condition)
                .await?,
        );
        Ok(())
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Reads a shard's checkpoint without taking part in its compare-and-set:
/// what a child shard checks about its parents.
pub(crate) async fn read(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<Option<(Checkpoint, String)>, ArchiverError> {
    let Some(object) = objects
        .get(key)
        .await
        .map_err(|e| ArchiverError::backend(format!("reading checkpoint {key}"), e))?
    else {
        return Ok(None);
    };
    let checkpoint =
        serde_json::from_slice(&object.body).map_err(|e| ArchiverError::CorruptCheckpoint {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Some((checkpoint, object.etag)))
}

#[cfg(test)]
mod tests {
    use sluice_backends::local::LocalObjectStore;

    use super::*;

    #[tokio::test]
    async fn compare_and_set_detects_a_concurrent_writer() {
        let dir = tempfile::tempdir().unwrap();
        let objects: Arc<dyn ObjectStore> = Arc::new(LocalObjectStore::open(dir.path()).unwrap());
        let mut a = CheckpointStore::new(objects.clone(), "s", "shard-1", "a");
        let mut b = CheckpointStore::new(objects.clone(), "s", "shard-1", "b");
        assert_eq!(a.load().await.unwrap(), Checkpoint::default());
        assert_eq!(b.load().await.unwrap(), Checkpoint::default());

        let mut cp = Checkpoint {
            sequence: SequenceNumber::parse("10"),
            ..Default::default()
        };
        assert!(a.save(&mut cp).await.is_ok());
        // b still believes there is no checkpoint: create-only fails.
        assert!(matches!(
            b.save(&mut cp.clone()).await,
            Err(BackendError::PreconditionFailed(_))
        ));
        let seen = b.load().await.unwrap();
        assert_eq!(
            (seen.sequence.clone(), seen.writer.as_str()),
            (cp.sequence.clone(), "a")
        );
        let mut next = Checkpoint {
            sequence: SequenceNumber::parse("20"),
            ..seen
        };
        assert!(b.save(&mut next).await.is_ok());
        // Now a's ETag is stale.
        assert!(matches!(
            a.save(&mut cp).await,
            Err(BackendError::PreconditionFailed(_))
        ));
        let (stored, _) = read(objects.as_ref(), "checkpoints/s/shard-1.json")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.sequence, SequenceNumber::parse("20"));
    }

    #[tokio::test]
    async fn a_corrupt_checkpoint_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let objects = LocalObjectStore::open(dir.path()).unwrap();
        objects
            .put(
                "checkpoints/s/x.json",
                Bytes::from_static(b"{"),
                PutCondition::None,
            )
            .await
            .unwrap();
        let e = read(&objects, "checkpoints/s/x.json").await.unwrap_err();
        assert!(e.to_string().contains("checkpoints/s/x.json"), "{e}");
    }
}
