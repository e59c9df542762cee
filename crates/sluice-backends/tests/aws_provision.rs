//! Provisioning against a real moto_server: every `ensure_*` twice, then an
//! object put must arrive in the queue as an S3 ObjectCreated notification.
//! A short smoke test of the three AWS backends runs on the same server,
//! which the test harness installs, starts and stops.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use sluice_backends::aws::{
    AwsClients, AwsConfig, KinesisStream, S3ObjectStore, SqsQueue, ensure_bucket,
    ensure_bucket_notification, ensure_queue, ensure_stream,
};
use sluice_backends::notification::parse_object_created;
use sluice_backends::{
    BackendError, EventStream, ObjectStore, PutCondition, PutRecord, Queue, StartPosition,
};
use sluice_testkit::MotoServer;

/// Clients for the moto_server the test harness runs for this binary.
async fn clients() -> AwsClients {
    let moto = MotoServer::shared().await;
    AwsClients::from_config(&AwsConfig::emulator(moto.endpoint()))
        .await
        .expect("emulator config is valid")
}

#[tokio::test]
async fn provisioning_is_idempotent_and_bucket_notifies_queue() {
    let clients = clients().await;

    let arn1 = ensure_stream(&clients.kinesis, "events", 2).await.unwrap();
    let arn2 = ensure_stream(&clients.kinesis, "events", 2).await.unwrap();
    assert_eq!(arn1, arn2);
    assert!(arn1.ends_with(":stream/events"), "{arn1}");
    let stream = KinesisStream::from_client(clients.kinesis.clone(), "events");
    assert_eq!(stream.list_shards().await.unwrap().len(), 2);

    ensure_bucket(&clients.s3, "sluice-data").await.unwrap();
    ensure_bucket(&clients.s3, "sluice-data").await.unwrap();

    let visibility = Duration::from_secs(45);
    let dlq = Some(("raw-objects-dlq", 3));
    let q1 = ensure_queue(&clients.sqs, "raw-objects", visibility, dlq)
        .await
        .unwrap();
    let q2 = ensure_queue(&clients.sqs, "raw-objects", visibility, dlq)
        .await
        .unwrap();
    assert_eq!(q1, q2);
    let dead_letter = q1.dead_letter.clone().expect("dead-letter queue");
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&q1.queue.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "45");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], dead_letter.arn.as_str());
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );

    let n1 = ensure_bucket_notification(
        &clients.s3,
        &clients.sqs,
        "sluice-data",
        &q1.queue.url,
        "raw/",
        ".zst",
    )
    .await
    .unwrap();
    let n2 = ensure_bucket_notification(
        &clients.s3,
        &clients.sqs,
        "sluice-data",
        &q1.queue.url,
        "raw/",
        ".zst",
    )
    .await
    .unwrap();
    assert_eq!(n1, q1.queue.arn);
    assert_eq!(n1, n2);
    let policy = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&q1.queue.url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::Policy)
        .expect("queue policy");
    assert_eq!(
        policy.matches("sluice-s3-sluice-data").count(),
        1,
        "{policy}"
    );

    let store = S3ObjectStore::from_client(clients.s3.clone(), "sluice-data");
    let key = "raw/dt=2024-01-01/shard 1+a.zst";
    store
        .put(
            "tables/x.zst",
            Bytes::from_static(b"no"),
            PutCondition::None,
        )
        .await
        .unwrap();
    store
        .put("raw/x.txt", Bytes::from_static(b"no"), PutCondition::None)
        .await
        .unwrap();
    store
        .put(key, Bytes::from_static(b"yes"), PutCondition::None)
        .await
        .unwrap();

    let queue = SqsQueue::from_client(clients.sqs.clone(), &q1.queue.url);
    let mut created = Vec::new();
    let mut test_events = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let messages = queue
            .receive(10, Duration::from_secs(1), None)
            .await
            .unwrap();
        if messages.is_empty() && !created.is_empty() {
            break;
        }
        for m in messages {
            let objects = parse_object_created(&m.body).unwrap();
            if objects.is_empty() {
                assert!(m.body.contains("s3:TestEvent"), "{}", m.body);
                test_events += 1;
            }
            created.extend(objects);
            queue.delete(&m.receipt_handle).await.unwrap();
        }
    }
    assert_eq!(
        created.len(),
        1,
        "only the matching key notifies: {created:?}"
    );
    assert_eq!(created[0].key, key);
    assert_eq!(created[0].bucket, "sluice-data");
    assert_eq!(created[0].size, 3);
    // The second ensure found the configuration in place and did not write it
    // again, so S3 sent one test event, not two.
    assert_eq!(test_events, 1);
}

#[tokio::test]
async fn aws_backends_smoke() {
    let clients = clients().await;

    // Kinesis: limits are checked before sending; records read back in order.
    ensure_stream(&clients.kinesis, "smoke", 1).await.unwrap();
    let stream = KinesisStream::from_client(clients.kinesis.clone(), "smoke");
    let record = |i: usize| PutRecord {
        partition_key: format!("user-{i}"),
        data: Bytes::from(format!("event {i}")),
        explicit_hash_key: None,
    };
    let too_many: Vec<_> = (0..501).map(record).collect();
    assert!(matches!(
        stream.put_records(too_many).await,
        Err(BackendError::InvalidArgument(m)) if m.contains("500")
    ));
    let outcomes = stream
        .put_records((0..12).map(record).collect())
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 12);
    assert!(outcomes.iter().all(|o| o.is_written()), "{outcomes:?}");
    let shard = stream.list_shards().await.unwrap().remove(0);
    let mut reader = stream
        .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
        .await
        .unwrap();
    let mut read = Vec::new();
    while read.len() < 12 {
        let batch = reader.next_batch(5).await.unwrap();
        assert!(batch.records.len() <= 5);
        assert!(!batch.shard_ended);
        read.extend(batch.records);
    }
    let bodies: Vec<_> = read.iter().map(|r| r.data.clone()).collect();
    assert_eq!(bodies, (0..12).map(|i| record(i).data).collect::<Vec<_>>());
    assert!(
        read.windows(2)
            .all(|w| w[0].sequence_number < w[1].sequence_number)
    );
    let mut after = stream
        .open_shard(
            &shard.shard_id,
            StartPosition::AfterSequence(read[9].sequence_number.clone()),
        )
        .await
        .unwrap();
    let rest = after.next_batch(100).await.unwrap();
    assert_eq!(rest.records.len(), 2);
    assert_eq!(rest.records[0].data, record(10).data);

    // Resharding: the parent stays listed, closed; asking again is a no-op.
    stream.update_shard_count(2).await.unwrap();
    let shards = stream.list_shards().await.unwrap();
    assert_eq!(
        shards.iter().filter(|s| s.is_open()).count(),
        2,
        "{shards:?}"
    );
    assert!(
        shards
            .iter()
            .any(|s| s.shard_id == shard.shard_id && !s.is_open()),
        "{shards:?}"
    );
    stream.update_shard_count(2).await.unwrap();

    // S3: conditional writes, missing keys, listing.
    ensure_bucket(&clients.s3, "smoke-bucket").await.unwrap();
    let store = S3ObjectStore::from_client(clients.s3.clone(), "smoke-bucket");
    assert_eq!(store.get("missing").await.unwrap(), None);
    let etag = store
        .put("k", Bytes::from_static(b"1"), PutCondition::IfAbsent)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put("k", Bytes::from_static(b"2"), PutCondition::IfAbsent)
            .await,
        Err(BackendError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store
            .put(
                "k",
                Bytes::from_static(b"2"),
                PutCondition::IfMatch("\"0000\"".into())
            )
            .await,
        Err(BackendError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store
            .put(
                "nokey",
                Bytes::from_static(b"2"),
                PutCondition::IfMatch(etag.clone())
            )
            .await,
        Err(BackendError::PreconditionFailed(_))
    ));
    let etag2 = store
        .put("k", Bytes::from_static(b"2"), PutCondition::IfMatch(etag))
        .await
        .unwrap();
    let got = store.get("k").await.unwrap().unwrap();
    assert_eq!(
        (got.body.as_ref(), got.etag.as_str()),
        (&b"2"[..], etag2.as_str())
    );
    assert_eq!(store.list("").await.unwrap().len(), 1);
    store.delete("k").await.unwrap();
    store.delete("k").await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());

    // SQS: receive counts, visibility, acknowledgement.
    let q = ensure_queue(&clients.sqs, "smoke-queue", Duration::from_secs(30), None)
        .await
        .unwrap();
    let queue = SqsQueue::from_client(clients.sqs.clone(), &q.queue.url);
    queue.send("hello").await.unwrap();
    let first = queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].body.as_str(), first[0].receive_count),
        ("hello", 1)
    );
    queue
        .change_visibility(&first[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let second = queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    queue.delete(&second[0].receipt_handle).await.unwrap();
    assert!(
        queue
            .receive(10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty()
    );
}
