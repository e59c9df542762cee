use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_backends::notification::parse_object_created;
use sluice_backends::{BackendError, ObjectStore, PutCondition, Queue};

/// Put, get, list by prefix in key order, delete.
pub async fn put_get_list_delete(store: &dyn ObjectStore) {
    assert!(store.get("raw/missing").await.unwrap().is_none());
    let keys = ["raw/s/b", "raw/s/a", "raw/t/c", "tables/x/1.parquet"];
    for key in keys {
        store
            .put(
                key,
                Bytes::from(format!("body of {key}")),
                PutCondition::None,
            )
            .await
            .unwrap();
    }
    let got = store.get("raw/s/a").await.unwrap().expect("object exists");
    assert_eq!(got.body, Bytes::from_static(b"body of raw/s/a"));
    assert!(!got.etag.is_empty());

    let listed: Vec<_> = store
        .list("raw/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, ["raw/s/a", "raw/s/b", "raw/t/c"]);
    let meta = store.list("raw/s/a").await.unwrap();
    assert_eq!(meta[0].size, "body of raw/s/a".len() as u64);
    assert_eq!(meta[0].etag, got.etag);

    store.delete("raw/s/a").await.unwrap();
    store.delete("raw/s/a").await.unwrap();
    assert!(store.get("raw/s/a").await.unwrap().is_none());
    assert_eq!(store.list("raw/s/").await.unwrap().len(), 1);
}

/// Create-only puts refuse an existing key; replace-if-unchanged refuses a
/// stale ETag and accepts the current one. This is what checkpoints and
/// leases are built on.
pub async fn conditional_puts(store: &dyn ObjectStore) {
    let key = "checkpoints/stream/shard-0";
    let first = store
        .put(key, Bytes::from_static(b"seq=1"), PutCondition::IfAbsent)
        .await
        .unwrap();
    let again = store
        .put(key, Bytes::from_static(b"seq=X"), PutCondition::IfAbsent)
        .await;
    assert!(
        matches!(again, Err(BackendError::PreconditionFailed(_))),
        "{again:?}"
    );

    let second = store
        .put(
            key,
            Bytes::from_static(b"seq=2"),
            PutCondition::IfMatch(first.clone()),
        )
        .await
        .unwrap();
    assert_ne!(first, second, "a new body has a new ETag");
    let stale = store
        .put(
            key,
            Bytes::from_static(b"seq=0"),
            PutCondition::IfMatch(first),
        )
        .await;
    assert!(
        matches!(stale, Err(BackendError::PreconditionFailed(_))),
        "{stale:?}"
    );

    let current = store.get(key).await.unwrap().unwrap();
    assert_eq!(current.body, Bytes::from_static(b"seq=2"));
    assert_eq!(current.etag, second);
}

/// A put under the notified prefix produces one ObjectCreated message naming
/// the (decoded) key; keys outside the prefix produce none.
pub async fn put_notifies_queue(store: &dyn ObjectStore, queue: &dyn Queue) {
    let key = "raw/stream/dt=2024-01-01/hh=00/shardId-000000000000/1-9 x.zst";
    store
        .put(
            "other/not-notified",
            Bytes::from_static(b"x"),
            PutCondition::None,
        )
        .await
        .unwrap();
    store
        .put(key, Bytes::from_static(b"raw bytes"), PutCondition::None)
        .await
        .unwrap();

    let mut created = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while created.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no ObjectCreated message arrived"
        );
        for message in queue
            .receive(10, Duration::from_secs(1), None)
            .await
            .unwrap()
        {
            created.extend(parse_object_created(&message.body).unwrap());
            queue.delete(&message.receipt_handle).await.unwrap();
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].key, key);
    assert_eq!(created[0].size, 9);
}
