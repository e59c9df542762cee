//! Several archivers at once on the same stream and bucket: two replicas
//! splitting the shards (index 0 and 1 of 2), and two misconfigured with the
//! same index (as during a rolling update). Either way no range is archived
//! twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sluice_archiver::ArchiverConfig;
use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{EventStream, ObjectStore};

use common::{
    Written, assert_exactly_once, checkpoint, produce, start, test_config, wait_archived,
};

fn replica(index: u32, count: u32) -> ArchiverConfig {
    ArchiverConfig {
        replica_index: Some(index),
        replica_count: count,
        ..test_config()
    }
}

async fn run_two(
    a: ArchiverConfig,
    b: ArchiverConfig,
) -> (Written, Arc<dyn ObjectStore>, [f64; 2], tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let stream: Arc<dyn EventStream> =
        Arc::new(LocalStream::open(dir.path().join("stream"), 4).unwrap());
    let objects: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::open(dir.path().join("objects")).unwrap());
    let first = start(a, stream.clone(), "events", objects.clone());
    let second = start(b, stream.clone(), "events", objects.clone());
    let mut written = Written::new();
    produce(
        stream.as_ref(),
        0,
        40_000,
        500,
        Duration::from_millis(10),
        &mut written,
    )
    .await;
    wait_archived(
        objects.as_ref(),
        "events",
        &written,
        Duration::from_secs(60),
    )
    .await;
    let race = |r: &common::Running| {
        r.counter(
            "sluice_archiver_errors_total",
            Some(("cause", "checkpoint_race")),
        )
    };
    let races = [race(&first), race(&second)];
    first.stop().await;
    second.stop().await;
    (written, objects, races, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_the_shards() {
    let (written, objects, races, _dir) = run_two(replica(0, 2), replica(1, 2)).await;
    assert_exactly_once(objects.as_ref(), "events", &written).await;
    assert_eq!(
        races,
        [0.0, 0.0],
        "replicas never touch each other's shards"
    );
    for shard in written.keys() {
        let slot: u32 = shard.rsplit('-').next().unwrap().parse().unwrap();
        let cp = checkpoint(objects.as_ref(), "events", shard).await.unwrap();
        assert!(
            cp.writer.ends_with(&format!("replica {} of 2", slot % 2)),
            "{shard}: {}",
            cp.writer
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_the_same_index_never_archive_a_range_twice() {
    let (written, objects, races, _dir) = run_two(replica(0, 1), replica(0, 1)).await;
    assert_exactly_once(objects.as_ref(), "events", &written).await;
    println!("checkpoint races lost: {races:?}");
}
