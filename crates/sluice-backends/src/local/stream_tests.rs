//! Tests of the local stream: durability, recovery, ordering, lineage.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;

use super::segment;
use super::stream::{LocalStream, StreamOptions, THROTTLED_CODE};
use crate::{
    BackendError, EventStream, PutOutcome, PutRecord, SequenceNumber, ShardReader, StartPosition,
};

fn rec(key: &str, data: &str) -> PutRecord {
    PutRecord {
        partition_key: key.into(),
        data: Bytes::from(data.to_owned()),
        explicit_hash_key: None,
    }
}

fn recs(prefix: &str, n: usize) -> Vec<PutRecord> {
    (0..n)
        .map(|i| rec(&format!("k{i}"), &format!("{prefix}{i}")))
        .collect()
}

fn written(outcomes: &[PutOutcome]) -> Vec<(String, SequenceNumber)> {
    outcomes
        .iter()
        .map(|o| match o {
            PutOutcome::Written {
                shard_id,
                sequence_number,
            } => (shard_id.clone(), sequence_number.clone()),
            PutOutcome::Failed { code, message } => panic!("{code}: {message}"),
        })
        .collect()
}

/// Everything currently readable from a shard.
async fn drain(reader: &mut Box<dyn ShardReader>) -> (Vec<String>, bool, Vec<String>) {
    let mut out = Vec::new();
    loop {
        let batch = reader.next_batch(3).await.unwrap();
        out.extend(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8(r.data.to_vec()).unwrap()),
        );
        if batch.records.is_empty() || batch.shard_ended {
            return (out, batch.shard_ended, batch.child_shards);
        }
    }
}

async fn read_all(stream: &LocalStream, start: StartPosition) -> Vec<String> {
    let mut all = Vec::new();
    for shard in stream.list_shards().await.unwrap() {
        let mut reader = stream
            .open_shard(&shard.shard_id, start.clone())
            .await
            .unwrap();
        all.extend(drain(&mut reader).await.0);
    }
    all.sort();
    all
}

#[tokio::test]
async fn sequence_numbers_increase_and_stay_unique_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = HashSet::new();
    let mut last_per_shard = std::collections::HashMap::new();
    for round in 0..3 {
        let stream = LocalStream::open(dir.path(), 2).unwrap();
        assert_eq!(stream.list_shards().await.unwrap().len(), 2);
        let outcomes = stream
            .put_records(recs(&format!("r{round}-"), 20))
            .await
            .unwrap();
        for (shard, seq) in written(&outcomes) {
            assert!(seen.insert(seq.clone()), "duplicate {seq}");
            if let Some(prev) = last_per_shard.insert(shard, seq.clone()) {
                assert!(prev < seq);
            }
        }
    }
    let stream = LocalStream::open(dir.path(), 7).unwrap();
    assert_eq!(
        stream.list_shards().await.unwrap().len(),
        2,
        "reopen keeps the map"
    );
    assert_eq!(
        read_all(&stream, StartPosition::TrimHorizon).await.len(),
        60
    );
}

#[tokio::test]
async fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(dir.path(), 1).unwrap();
    written(&stream.put_records(recs("a", 5)).await.unwrap());
    drop(stream);
    let shard_dir = dir.path().join("shardId-000000000000");
    let (_, path) = segment::list(&shard_dir).unwrap().pop().unwrap();
    let whole = std::fs::metadata(&path).unwrap().len();
    // Half a frame: a header announcing 100 bytes, and 10 of them.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xA7, 100, 0, 0, 0, 9, 9, 9, 9]).unwrap();
    f.write_all(&[1; 10]).unwrap();
    drop(f);

    // A reader never sees the torn frame, even before recovery.
    let other = LocalStream::open(dir.path(), 1).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    written(&other.put_records(recs("b", 2)).await.unwrap());
    let got = read_all(&other, StartPosition::TrimHorizon).await;
    assert_eq!(got, ["a0", "a1", "a2", "a3", "a4", "b0", "b1"]);
}

#[tokio::test]
async fn segments_roll_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let options = StreamOptions::default().segment_bytes(200);
    let stream = LocalStream::open_with(dir.path(), 1, options.clone()).unwrap();
    for i in 0..10 {
        written(
            &stream
                .put_records(recs(&format!("b{i}-"), 3))
                .await
                .unwrap(),
        );
    }
    let shard_dir = dir.path().join("shardId-000000000000");
    let segments = segment::list(&shard_dir).unwrap();
    assert!(segments.len() >= 5, "{} segments", segments.len());
    let mut reader = stream
        .open_shard("shardId-000000000000", StartPosition::TrimHorizon)
        .await
        .unwrap();
    let (all, ended, _) = drain(&mut reader).await;
    assert_eq!(all.len(), 30);
    assert!(!ended);

    // A reader that started earlier keeps reading across rolls.
    written(&stream.put_records(recs("late", 3)).await.unwrap());
    assert_eq!(drain(&mut reader).await.0, ["late0", "late1", "late2"]);

    // Zero retention: every segment goes; the shard gets a fresh one.
    drop(stream);
    let stream = LocalStream::open_with(dir.path(), 1, options.retention(Duration::ZERO)).unwrap();
    let left = segment::list(&shard_dir).unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        read_all(&stream, StartPosition::TrimHorizon)
            .await
            .is_empty()
    );
    // Sequence numbers keep growing after everything expired.
    let before = written(&stream.put_records(recs("x", 1)).await.unwrap())[0]
        .1
        .clone();
    assert!(before > SequenceNumber::from_u128(33));
}

#[tokio::test]
async fn start_positions() {
    let dir = tempfile::tempdir().unwrap();
    let stream =
        LocalStream::open_with(dir.path(), 1, StreamOptions::default().segment_bytes(100)).unwrap();
    let seqs = written(&stream.put_records(recs("a", 6)).await.unwrap());
    let shard = "shardId-000000000000";
    let mut latest = stream
        .open_shard(shard, StartPosition::Latest)
        .await
        .unwrap();
    let batch = latest.next_batch(10).await.unwrap();
    assert!(batch.records.is_empty());
    assert_eq!(batch.millis_behind_latest, Some(0));
    written(&stream.put_records(recs("z", 1)).await.unwrap());
    assert_eq!(drain(&mut latest).await.0, ["z0"]);

    let at = StartPosition::AtSequence(seqs[2].1.clone());
    let mut r = stream.open_shard(shard, at).await.unwrap();
    assert_eq!(drain(&mut r).await.0, ["a2", "a3", "a4", "a5", "z0"]);
    let after = StartPosition::AfterSequence(seqs[4].1.clone());
    let mut r = stream.open_shard(shard, after).await.unwrap();
    assert_eq!(drain(&mut r).await.0, ["a5", "z0"]);

    let err = stream
        .open_shard("shardId-000000000009", StartPosition::Latest)
        .await;
    assert!(matches!(err, Err(BackendError::NotFound(_))));
}

#[tokio::test]
async fn reshard_closes_parents_and_links_children() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(dir.path(), 2).unwrap();
    written(&stream.put_records(recs("p", 20)).await.unwrap());
    let mut parent_reader = stream
        .open_shard("shardId-000000000000", StartPosition::TrimHorizon)
        .await
        .unwrap();
    stream.update_shard_count(4).await.unwrap();
    let shards = stream.list_shards().await.unwrap();
    assert_eq!(shards.len(), 6);
    let open: Vec<_> = shards.iter().filter(|s| s.is_open()).collect();
    assert_eq!(open.len(), 4);
    for (i, child) in open.iter().enumerate() {
        let parent = format!("shardId-00000000000{}", i / 2);
        assert_eq!(child.parent_shard_id.as_deref(), Some(parent.as_str()));
        assert_eq!(child.adjacent_parent_shard_id, None);
    }
    for parent in shards.iter().filter(|s| !s.is_open()) {
        let ending = parent.ending_sequence.clone().unwrap();
        assert!(open.iter().all(|c| c.starting_sequence > ending));
    }
    let children = written(&stream.put_records(recs("c", 20)).await.unwrap());
    assert!(
        children
            .iter()
            .all(|(s, _)| open.iter().any(|o| &o.shard_id == s))
    );

    let (records, ended, kids) = drain(&mut parent_reader).await;
    assert!(!records.is_empty() && records.iter().all(|r| r.starts_with('p')));
    assert!(ended);
    assert_eq!(kids, ["shardId-000000000002", "shardId-000000000003"]);
    // A reader opened after the close ends too, and a reopen keeps lineage.
    drop(stream);
    let stream = LocalStream::open(dir.path(), 1).unwrap();
    let mut late = stream
        .open_shard("shardId-000000000001", StartPosition::Latest)
        .await
        .unwrap();
    let batch = late.next_batch(10).await.unwrap();
    assert!(batch.shard_ended && batch.records.is_empty());
    assert_eq!(
        read_all(&stream, StartPosition::TrimHorizon).await.len(),
        40
    );
}

#[tokio::test]
async fn injected_faults_fail_entries_without_writing_them() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(dir.path(), 1).unwrap();
    stream.fail_entries(|a| a.call == 0 && a.index % 2 == 1);
    let outcomes = stream.put_records(recs("f", 4)).await.unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            PutOutcome::Failed { code, .. } => {
                assert_eq!(i % 2, 1);
                assert_eq!(code, THROTTLED_CODE);
            }
            PutOutcome::Written { .. } => assert_eq!(i % 2, 0),
        }
    }
    // The second call is not faulted.
    assert!(
        stream
            .put_records(recs("g", 2))
            .await
            .unwrap()
            .iter()
            .all(PutOutcome::is_written)
    );
    let got = read_all(&stream, StartPosition::TrimHorizon).await;
    assert_eq!(got, ["f0", "f2", "g0", "g1"]);
}

#[tokio::test]
async fn enforces_kinesis_limits_and_explicit_hash_keys() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(dir.path(), 2).unwrap();
    let too_many = recs("x", 501);
    assert!(matches!(
        stream.put_records(too_many).await,
        Err(BackendError::InvalidArgument(_))
    ));
    assert!(stream.put_records(vec![rec("", "x")]).await.is_err());
    let big = PutRecord {
        partition_key: "k".into(),
        data: Bytes::from(vec![0u8; 1 << 20]),
        explicit_hash_key: None,
    };
    assert!(stream.put_records(vec![big]).await.is_err());
    let pinned = PutRecord {
        explicit_hash_key: Some(u128::MAX.to_string()),
        ..rec("k", "x")
    };
    let out = written(&stream.put_records(vec![pinned]).await.unwrap());
    assert_eq!(out[0].0, "shardId-000000000001");
}

#[tokio::test]
async fn a_second_handle_reads_and_writes_alongside() {
    let dir = tempfile::tempdir().unwrap();
    let writer = LocalStream::open(dir.path(), 1).unwrap();
    let other = LocalStream::open(dir.path(), 1).unwrap();
    let mut reader = other
        .open_shard("shardId-000000000000", StartPosition::TrimHorizon)
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for i in 0..4 {
        let handle = if i % 2 == 0 { &writer } else { &other };
        seqs.extend(written(
            &handle
                .put_records(recs(&format!("w{i}-"), 3))
                .await
                .unwrap(),
        ));
        assert_eq!(drain(&mut reader).await.0.len(), 3);
    }
    assert!(seqs.windows(2).all(|w| w[0].1 < w[1].1), "{seqs:?}");
    // Many tasks on one handle.
    let writer = std::sync::Arc::new(writer);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let w = writer.clone();
            tokio::spawn(async move { w.put_records(recs(&format!("t{t}-"), 5)).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().iter().all(PutOutcome::is_written));
    }
    assert_eq!(drain(&mut reader).await.0.len(), 40);
}
