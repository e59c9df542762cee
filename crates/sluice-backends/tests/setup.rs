//! `sluice setup`'s work: provisioning everything a configuration names,
//! idempotently, then connecting to it, against moto and on local disk.

use std::time::Duration;

use bytes::Bytes;
use sluice_backends::PutCondition;
use sluice_backends::config::{Backends, BackendsConfig, connect, provision};
use sluice_backends::notification::parse_object_created;

use sluice_testkit::{MotoServer, unique_name};

/// A raw object put through the connected store reaches the transcode
/// queue as an ObjectCreated notification; a table object does not.
async fn raw_puts_are_announced(backends: &Backends) {
    let key = "raw/events/dt=2024-01-01/hh=00/shardId-000000000000/1-2.pb.zst";
    let objects = &backends.objects;
    objects
        .put(
            "tables/t/x.parquet",
            Bytes::from_static(b"t"),
            PutCondition::None,
        )
        .await
        .unwrap();
    objects
        .put(key, Bytes::from_static(b"raw"), PutCondition::None)
        .await
        .unwrap();
    let mut keys = Vec::new();
    for _ in 0..10 {
        for m in backends
            .transcode_queue
            .receive(10, Duration::from_secs(1), None)
            .await
            .unwrap()
        {
            keys.extend(
                parse_object_created(&m.body)
                    .unwrap()
                    .into_iter()
                    .map(|c| c.key),
            );
            backends
                .transcode_queue
                .delete(&m.receipt_handle)
                .await
                .unwrap();
        }
        if !keys.is_empty() {
            break;
        }
    }
    assert_eq!(keys, [key]);
}

#[tokio::test]
async fn provisions_aws_idempotently_and_connects() {
    let moto = MotoServer::shared().await;
    let mut config = BackendsConfig::emulated_aws(moto.endpoint());
    config.stream.name = unique_name("events");
    config.stream.shards = 2;
    config.object_store.bucket = unique_name("bucket");
    let q = &mut config.queues;
    q.transcode_name = unique_name("transcode");
    q.transcode_dlq_name = format!("{}-dlq", q.transcode_name);
    q.load_name = unique_name("load");
    q.load_dlq_name = format!("{}-dlq", q.load_name);

    let first = provision(&config).await.unwrap();
    let second = provision(&config).await.unwrap();
    assert_eq!(first, second, "a second run finds what the first made");
    assert!(first.stream_arn.unwrap().ends_with(&config.stream.name));

    let backends = connect(&config).await.unwrap();
    assert_eq!(backends.stream.list_shards().await.unwrap().len(), 2);
    raw_puts_are_announced(&backends).await;
}

#[tokio::test]
async fn connecting_to_missing_queues_says_run_setup() {
    let moto = MotoServer::shared().await;
    let mut config = BackendsConfig::emulated_aws(moto.endpoint());
    config.queues.transcode_name = unique_name("absent");
    let err = connect(&config).await.err().expect("no such queue");
    assert!(err.to_string().contains("run `sluice setup`"), "{err}");
}

#[tokio::test]
async fn local_backends_need_only_a_directory() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = BackendsConfig::local(dir.path());
    assert_eq!(provision(&config).await.unwrap(), Default::default());
    let backends = connect(&config).await.unwrap();
    assert_eq!(backends.stream.list_shards().await.unwrap().len(), 4);
    raw_puts_are_announced(&backends).await;
}
