//! Resharding: a child shard starts only once its parents are archived to
//! their end, so a partition key's records land in the archive in order and
//! nothing of a closed parent is left behind.

use sluice_backends::{ObjectStore, ShardInfo};

use crate::ArchiverError;
use crate::checkpoint::{self, Checkpoint};
use crate::keys::checkpoint_key;

/// Whether every parent of `shard` (the parent and, after a merge, the
/// adjacent parent) is archived to its end or has expired from the stream
/// (no longer in `listing`). Parents may belong to another replica: their
/// checkpoints are read, not written.
pub(crate) async fn parents_archived(
    shard: &ShardInfo,
    listing: &[ShardInfo],
    objects: &dyn ObjectStore,
    stream: &str,
) -> Result<bool, ArchiverError> {
    let parents = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id];
    for parent_id in parents.into_iter().flatten() {
        let Some(parent) = listing.iter().find(|s| &s.shard_id == parent_id) else {
            continue;
        };
        let checkpoint = checkpoint::read(objects, &checkpoint_key(stream, parent_id)).await?;
        if !is_archived(parent, checkpoint.as_ref().map(|(c, _)| c)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A closed shard is archived once its checkpoint says it ended, or has
/// reached its ending sequence number with no range pending.
pub(crate) fn is_archived(shard: &ShardInfo, checkpoint: Option<&Checkpoint>) -> bool {
    let Some(checkpoint) = checkpoint else {
        return false;
    };
    if checkpoint.shard_ended {
        return true;
    }
    match (&shard.ending_sequence, &checkpoint.sequence) {
        (Some(end), Some(done)) => checkpoint.pending.is_none() && done >= end,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sluice_backends::SequenceNumber;

    use super::*;

    fn shard(id: &str, ending: Option<u128>) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent_shard_id: None,
            adjacent_parent_shard_id: None,
            hash_key_start: 0,
            hash_key_end: u128::MAX,
            starting_sequence: SequenceNumber::from_u128(1),
            ending_sequence: ending.map(SequenceNumber::from_u128),
        }
    }

    fn at(sequence: u128) -> Checkpoint {
        Checkpoint {
            sequence: Some(SequenceNumber::from_u128(sequence)),
            ..Default::default()
        }
    }

    #[test]
    fn a_closed_parent_is_archived_when_its_checkpoint_reaches_the_end() {
        let parent = shard("p", Some(100));
        assert!(!is_archived(&parent, None));
        assert!(!is_archived(&parent, Some(&at(99))));
        assert!(is_archived(&parent, Some(&at(100))));
        // Kinesis's ending sequence number need not be a record's: the
        // reader reaching the end is what counts.
        let ended = Checkpoint {
            shard_ended: true,
            ..at(42)
        };
        assert!(is_archived(&parent, Some(&ended)));
        // An open shard is never done.
        assert!(!is_archived(&shard("o", None), Some(&at(1_000))));
    }

    #[tokio::test]
    async fn children_wait_for_every_listed_parent() {
        use bytes::Bytes;
        use sluice_backends::PutCondition;
        use sluice_backends::local::LocalObjectStore;

        let dir = tempfile::tempdir().unwrap();
        let objects = LocalObjectStore::open(dir.path()).unwrap();
        let child = ShardInfo {
            parent_shard_id: Some("p".into()),
            adjacent_parent_shard_id: Some("q".into()),
            ..shard("c", None)
        };
        let listing = vec![shard("p", Some(10)), shard("q", Some(10)), child.clone()];
        let put = |id: &str, cp: Checkpoint| {
            let body = Bytes::from(serde_json::to_vec(&cp).unwrap());
            let key = checkpoint_key("s", id);
            let objects = &objects;
            async move { objects.put(&key, body, PutCondition::None).await.unwrap() }
        };
        assert!(
            !parents_archived(&child, &listing, &objects, "s")
                .await
                .unwrap()
        );
        put("p", at(10)).await;
        assert!(
            !parents_archived(&child, &listing, &objects, "s")
                .await
                .unwrap()
        );
        put("q", at(9)).await;
        assert!(
            !parents_archived(&child, &listing, &objects, "s")
                .await
                .unwrap()
        );
        // q expired from the stream: it no longer holds anything to wait for.
        assert!(
            parents_archived(&child, &listing[..1], &objects, "s")
                .await
                .unwrap()
        );
        put(
            "q",
            Checkpoint {
                shard_ended: true,
                ..at(9)
            },
        )
        .await;
        assert!(
            parents_archived(&child, &listing, &objects, "s")
                .await
                .unwrap()
        );
    }
}
