use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_backends::{
    EventStream, PutOutcome, PutRecord, SequenceNumber, ShardInfo, StartPosition, StreamRecord,
};

fn record(i: usize) -> PutRecord {
    PutRecord {
        partition_key: format!("user-{}", i % 997),
        data: Bytes::from(format!("record-{i}")),
        explicit_hash_key: None,
    }
}

/// Puts `count` records in PutRecords calls of 500, retrying failed entries,
/// and returns where each landed, by record index.
pub async fn put_all(
    stream: &dyn EventStream,
    range: std::ops::Range<usize>,
) -> BTreeMap<usize, (String, SequenceNumber)> {
    let mut landed = BTreeMap::new();
    let mut pending: Vec<usize> = range.collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "records never all written");
        let mut failed = Vec::new();
        for chunk in pending.chunks(500) {
            let outcomes = stream
                .put_records(chunk.iter().map(|&i| record(i)).collect())
                .await
                .expect("put_records");
            assert_eq!(outcomes.len(), chunk.len(), "one outcome per entry");
            for (&i, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    PutOutcome::Written {
                        shard_id,
                        sequence_number,
                    } => {
                        landed.insert(i, (shard_id, sequence_number));
                    }
                    PutOutcome::Failed { .. } => failed.push(i),
                }
            }
        }
        pending = failed;
    }
    landed
}

/// Reads a shard from `start` until `expected` records arrived (or the shard
/// ended), checking that sequence numbers increase.
pub async fn read_shard(
    stream: &dyn EventStream,
    shard_id: &str,
    start: StartPosition,
    expected: usize,
) -> Vec<StreamRecord> {
    let mut reader = stream
        .open_shard(shard_id, start)
        .await
        .expect("open_shard");
    let mut records: Vec<StreamRecord> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{shard_id}: read {} of {expected}",
            records.len()
        );
        let batch = reader.next_batch(1000).await.expect("next_batch");
        for r in batch.records {
            if let Some(last) = records.last() {
                assert!(
                    r.sequence_number > last.sequence_number,
                    "{shard_id}: sequence went backwards"
                );
            }
            records.push(r);
        }
        if batch.shard_ended {
            break;
        }
    }
    records
}

/// 10,000 records over 4 shards come back, each shard in the order written,
/// and reading resumes after any given sequence number.
pub async fn ordered_per_shard_and_resumable(stream: &dyn EventStream) {
    let shards = stream.list_shards().await.unwrap();
    assert_eq!(
        shards.iter().filter(|s| s.is_open()).count(),
        4,
        "{shards:?}"
    );

    let landed = put_all(stream, 0..10_000).await;
    let mut by_shard: HashMap<String, Vec<(SequenceNumber, usize)>> = HashMap::new();
    for (&i, (shard, seq)) in &landed {
        by_shard
            .entry(shard.clone())
            .or_default()
            .push((seq.clone(), i));
    }
    assert_eq!(by_shard.len(), 4, "records spread over every shard");

    for (shard, mut written) in by_shard {
        written.sort();
        let read = read_shard(stream, &shard, StartPosition::TrimHorizon, written.len()).await;
        let read_ids: Vec<_> = read
            .iter()
            .map(|r| (r.sequence_number.clone(), r.data.clone()))
            .collect();
        let expected: Vec<_> = written
            .iter()
            .map(|(seq, i)| (seq.clone(), Bytes::from(format!("record-{i}"))))
            .collect();
        assert_eq!(read_ids, expected, "{shard}: every record once, in order");
        assert!(read.iter().all(|r| r.partition_key.starts_with("user-")));

        // Resume after the middle record: exactly the second half comes back.
        let middle = written.len() / 2;
        let resumed = read_shard(
            stream,
            &shard,
            StartPosition::AfterSequence(written[middle].0.clone()),
            written.len() - middle - 1,
        )
        .await;
        assert_eq!(resumed.len(), written.len() - middle - 1);
        assert_eq!(resumed[0].sequence_number, written[middle + 1].0);

        let at = read_shard(
            stream,
            &shard,
            StartPosition::AtSequence(written[middle].0.clone()),
            1,
        )
        .await;
        assert_eq!(at[0].sequence_number, written[middle].0);
    }
}

/// A reader opened at the tip sees only what is written afterwards.
pub async fn latest_sees_only_new_records(stream: &dyn EventStream) {
    put_all(stream, 0..50).await;
    let shard = stream.list_shards().await.unwrap()[0].shard_id.clone();
    let mut reader = stream
        .open_shard(&shard, StartPosition::Latest)
        .await
        .unwrap();
    assert!(reader.next_batch(100).await.unwrap().records.is_empty());
    let outcome = stream
        .put_records(vec![PutRecord {
            partition_key: "k".into(),
            data: Bytes::from_static(b"new"),
            explicit_hash_key: Some("0".into()),
        }])
        .await
        .unwrap();
    assert!(matches!(&outcome[0], PutOutcome::Written { shard_id, .. } if *shard_id == shard));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let batch = reader.next_batch(100).await.unwrap();
        if !batch.records.is_empty() {
            assert_eq!(batch.records.len(), 1);
            assert_eq!(batch.records[0].data, Bytes::from_static(b"new"));
            break;
        }
        assert!(Instant::now() < deadline, "new record never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After 2 -> 4 resharding, both parents are closed with an ending sequence
/// number, four open children cover the key space and name their parents,
/// and new records land in the children.
pub async fn resharding_is_visible(stream: &dyn EventStream) -> Vec<ShardInfo> {
    let before = stream.list_shards().await.unwrap();
    assert_eq!(before.len(), 2);
    put_all(stream, 0..200).await;

    stream
        .update_shard_count(4)
        .await
        .expect("update_shard_count");
    let after = stream.list_shards().await.unwrap();
    let (open, closed): (Vec<_>, Vec<_>) = after.iter().partition(|s| s.is_open());
    assert_eq!(open.len(), 4, "{after:?}");
    let parent_ids: Vec<_> = before.iter().map(|s| s.shard_id.clone()).collect();
    for parent in &parent_ids {
        assert!(
            closed.iter().any(|s| &s.shard_id == parent),
            "{parent} closed: {after:?}"
        );
    }
    for child in &open {
        let parent = child
            .parent_shard_id
            .as_ref()
            .expect("child names its parent");
        assert!(parent_ids.contains(parent), "{child:?}");
    }
    let mut ranges: Vec<_> = open
        .iter()
        .map(|s| (s.hash_key_start, s.hash_key_end))
        .collect();
    ranges.sort();
    assert_eq!(ranges.first().unwrap().0, 0);
    assert_eq!(ranges.last().unwrap().1, u128::MAX);
    for pair in ranges.windows(2) {
        assert_eq!(
            pair[0].1 + 1,
            pair[1].0,
            "children cover the key space without gaps"
        );
    }
    after
}
