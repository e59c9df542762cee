//! The backend contract, run against the local on-disk implementations,
//! plus what only the local backend can show (moto cannot): injected
//! partial failures, a closed parent shard that ends, and restarts.

mod contract;

use std::sync::Arc;
use std::time::Duration;

use sluice_backends::local::{
    LocalObjectStore, LocalQueue, LocalStream, NotificationRule, QueueOptions, THROTTLED_CODE,
};
use sluice_backends::{EventStream, PutOutcome, PutRecord, Queue, StartPosition};
use tempfile::TempDir;

#[tokio::test]
async fn stream_ordered_per_shard_and_resumable() {
    let dir = TempDir::new().unwrap();
    let stream = LocalStream::open(dir.path(), 4).unwrap();
    contract::stream::ordered_per_shard_and_resumable(&stream).await;
}

#[tokio::test]
async fn stream_latest_sees_only_new_records() {
    let dir = TempDir::new().unwrap();
    contract::stream::latest_sees_only_new_records(&LocalStream::open(dir.path(), 2).unwrap())
        .await;
}

#[tokio::test]
async fn stream_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let landed =
        contract::stream::put_all(&LocalStream::open(dir.path(), 2).unwrap(), 0..300).await;
    let reopened = LocalStream::open(dir.path(), 2).unwrap();
    let more = contract::stream::put_all(&reopened, 300..310).await;
    let mut total = 0;
    for shard in reopened.list_shards().await.unwrap() {
        let expected = landed
            .values()
            .chain(more.values())
            .filter(|(s, _)| *s == shard.shard_id)
            .count();
        total += contract::stream::read_shard(
            &reopened,
            &shard.shard_id,
            StartPosition::TrimHorizon,
            expected,
        )
        .await
        .len();
    }
    assert_eq!(total, 310, "everything written before and after the reopen");
    let max_before = landed.values().map(|(_, seq)| seq).max().unwrap();
    assert!(
        more.values().all(|(_, seq)| seq > max_before),
        "sequence numbers keep increasing"
    );
}

/// Every third entry of each PutRecords fails: the failure is reported per
/// entry, only those entries are missing, and retrying them writes each
/// record exactly once.
#[tokio::test]
async fn partial_put_failures_are_reported_per_entry() {
    let dir = TempDir::new().unwrap();
    let stream = LocalStream::open(dir.path(), 4).unwrap();
    stream.fail_entries(|attempt| attempt.call == 0 && attempt.index % 3 == 0);
    let records: Vec<_> = (0..30)
        .map(|i| PutRecord {
            partition_key: format!("k{i}"),
            data: format!("r{i}").into(),
            explicit_hash_key: None,
        })
        .collect();
    let outcomes = stream.put_records(records.clone()).await.unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            PutOutcome::Failed { code, .. } => {
                assert_eq!(i % 3, 0, "entry {i} failed");
                assert_eq!(code, THROTTLED_CODE);
            }
            PutOutcome::Written { .. } => assert_ne!(i % 3, 0, "entry {i} written"),
        }
    }
    let retry: Vec<_> = records.iter().step_by(3).cloned().collect();
    assert!(
        stream
            .put_records(retry)
            .await
            .unwrap()
            .iter()
            .all(PutOutcome::is_written)
    );

    let mut seen = Vec::new();
    for shard in stream.list_shards().await.unwrap() {
        let mut reader = stream
            .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .unwrap();
        seen.extend(
            reader
                .next_batch(1000)
                .await
                .unwrap()
                .records
                .into_iter()
                .map(|r| r.data),
        );
    }
    seen.sort();
    let mut expected: Vec<_> = records.into_iter().map(|r| r.data).collect();
    expected.sort();
    assert_eq!(seen, expected, "each record exactly once");
}

/// 2 -> 4: the closed parents end with their children named, and records
/// written afterwards land in the children.
#[tokio::test]
async fn resharding_2_to_4() {
    let dir = TempDir::new().unwrap();
    let stream = LocalStream::open(dir.path(), 2).unwrap();
    let shards = contract::stream::resharding_is_visible(&stream).await;
    let children: Vec<_> = shards
        .iter()
        .filter(|s| s.is_open())
        .map(|s| s.shard_id.clone())
        .collect();
    for parent in shards.iter().filter(|s| !s.is_open()) {
        let records = contract::stream::read_shard(
            &stream,
            &parent.shard_id,
            StartPosition::TrimHorizon,
            usize::MAX,
        )
        .await;
        assert!(records.last().map(|r| &r.sequence_number) <= parent.ending_sequence.as_ref());
        let mut reader = stream
            .open_shard(
                &parent.shard_id,
                StartPosition::AfterSequence(records.last().unwrap().sequence_number.clone()),
            )
            .await
            .unwrap();
        let end = reader.next_batch(10).await.unwrap();
        assert!(end.shard_ended && end.records.is_empty());
        assert_eq!(end.child_shards.len(), 2, "{end:?}");
        assert!(end.child_shards.iter().all(|c| children.contains(c)));
    }
    let after = contract::stream::put_all(&stream, 1000..1100).await;
    assert!(after.values().all(|(shard, _)| children.contains(shard)));
}

#[tokio::test]
async fn object_store_put_get_list_delete() {
    let dir = TempDir::new().unwrap();
    contract::object_store::put_get_list_delete(&LocalObjectStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn object_store_conditional_puts() {
    let dir = TempDir::new().unwrap();
    contract::object_store::conditional_puts(&LocalObjectStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn object_store_put_notifies_queue() {
    let dir = TempDir::new().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(LocalQueue::open(dir.path().join("queue"), QueueOptions::default()).unwrap());
    let store = LocalObjectStore::open(dir.path().join("objects"))
        .unwrap()
        .with_notification(NotificationRule::new(queue.clone()).prefix("raw/"));
    contract::object_store::put_notifies_queue(&store, queue.as_ref()).await;
}

#[tokio::test]
async fn queue_send_receive_delete() {
    let dir = TempDir::new().unwrap();
    contract::queue::send_receive_delete(
        &LocalQueue::open(dir.path(), QueueOptions::default()).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn queue_redelivery_after_visibility_timeout() {
    let dir = TempDir::new().unwrap();
    let queue = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    contract::queue::redelivery_after_visibility_timeout(&queue).await;
}

#[tokio::test]
async fn queue_kept_hidden_while_worked_on() {
    let dir = TempDir::new().unwrap();
    let queue = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    contract::queue::kept_hidden_while_worked_on(&queue).await;
}

#[tokio::test]
async fn queue_dead_letter_after_max_receives() {
    let dir = TempDir::new().unwrap();
    let dead: Arc<dyn Queue> =
        Arc::new(LocalQueue::open(dir.path().join("dlq"), QueueOptions::default()).unwrap());
    let queue = LocalQueue::open(
        dir.path().join("q"),
        QueueOptions::default()
            .visibility_timeout(Duration::from_secs(30))
            .dead_letter(dead.clone(), 3),
    )
    .unwrap();
    contract::queue::dead_letter_after_max_receives(&queue, dead.as_ref(), 3).await;
}

/// Messages and their receive counts survive a restart of the process.
#[tokio::test]
async fn queue_survives_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let queue = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
        queue.send("durable").await.unwrap();
        let m = queue
            .receive(1, Duration::ZERO, Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(m[0].receive_count, 1);
    }
    let queue = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    let m = queue
        .receive(1, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!((m[0].body.as_str(), m[0].receive_count), ("durable", 2));
}
