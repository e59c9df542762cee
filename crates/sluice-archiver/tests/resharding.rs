//! Resharding 2 -> 4 in the middle of a run, with a crash after it: nothing
//! lost, nothing duplicated, and the children were read only after their
//! parents were archived to the end.
//!
//! Local backend only: moto's resharding is half there (AWS-EMULATOR.md):
//! after a split, records may still land on the closed parent, and reading
//! a closed parent never ends (always a next iterator, never ChildShards),
//! so a correct archiver would wait for the parents forever there.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{EventStream, ObjectStore};

use common::{
    Written, assert_exactly_once, checkpoint, produce, start, test_config, wait_archived,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_two_to_four_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStream::open(dir.path().join("stream"), 2).unwrap());
    let stream: Arc<dyn EventStream> = local.clone();
    let objects: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::open(dir.path().join("objects")).unwrap());
    let pause = Duration::from_millis(10);

    let mut written = Written::new();
    let running = start(test_config(), stream.clone(), "events", objects.clone());
    produce(stream.as_ref(), 0, 20_000, 500, pause, &mut written).await;
    stream.update_shard_count(4).await.unwrap();
    produce(stream.as_ref(), 20_000, 10_000, 500, pause, &mut written).await;
    running.abort().await;
    let running = start(test_config(), stream.clone(), "events", objects.clone());
    produce(stream.as_ref(), 30_000, 10_000, 500, pause, &mut written).await;
    wait_archived(
        objects.as_ref(),
        "events",
        &written,
        Duration::from_secs(60),
    )
    .await;
    running.stop().await;

    let shards = stream.list_shards().await.unwrap();
    let (parents, children): (Vec<_>, Vec<_>) = shards.iter().partition(|s| !s.is_open());
    assert_eq!((parents.len(), children.len()), (2, 4));
    for parent in &parents {
        let cp = checkpoint(objects.as_ref(), "events", &parent.shard_id)
            .await
            .unwrap();
        assert!(cp.shard_ended, "{} archived to its end", parent.shard_id);
    }
    for child in &children {
        assert!(
            written.contains_key(&child.shard_id),
            "{} got records",
            child.shard_id
        );
    }
    let found = assert_exactly_once(objects.as_ref(), "events", &written).await;

    // A child's first object was written after its parent's last one: the
    // child waited for the parent.
    let written_at = |key: &str| {
        std::fs::metadata(dir.path().join("objects").join(key))
            .unwrap()
            .modified()
            .unwrap()
    };
    for child in &children {
        let parent = child.parent_shard_id.as_ref().unwrap();
        let parent_last = found
            .iter()
            .filter(|o| &o.shard == parent)
            .map(|o| written_at(&o.key))
            .max()
            .unwrap();
        let child_first = found
            .iter()
            .filter(|o| o.shard == child.shard_id)
            .map(|o| written_at(&o.key))
            .min()
            .unwrap();
        assert!(
            child_first >= parent_last,
            "{} started before {parent} ended",
            child.shard_id
        );
    }
}
