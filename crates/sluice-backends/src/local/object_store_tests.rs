//! Tests of the local object store: keys, ETags, conditions, notifications.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::object_store::{LocalObjectStore, NotificationRule};
use super::queue::{LocalQueue, QueueOptions};
use crate::notification::parse_object_created;
use crate::{BackendError, ObjectStore, PutCondition, Queue, QueueMessage, Result};

fn body(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

#[tokio::test]
async fn put_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::open(dir.path()).unwrap();
    let etag = store
        .put("empty", Bytes::new(), PutCondition::None)
        .await
        .unwrap();
    // Pinned: processes of different versions sharing a store must agree.
    assert_eq!(etag, "\"99aa06d3014798d86001c324468d497f\"");
    for key in [
        "raw/dt=2024-01-02/b",
        "raw/dt=2024-01-01/a",
        "raw/x",
        "rawer",
        "tables/t/p",
    ] {
        store.put(key, body(key), PutCondition::None).await.unwrap();
    }
    let got = store.get("raw/x").await.unwrap().unwrap();
    assert_eq!(got.body, body("raw/x"));
    assert!(store.get("raw/missing").await.unwrap().is_none());
    assert!(
        store.get("raw").await.unwrap().is_none(),
        "a directory is no object"
    );

    let keys = |list: Vec<crate::ObjectMeta>| list.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("raw").await.unwrap()),
        [
            "raw/dt=2024-01-01/a",
            "raw/dt=2024-01-02/b",
            "raw/x",
            "rawer"
        ]
    );
    assert_eq!(keys(store.list("raw/dt=2024-01-0").await.unwrap()).len(), 2);
    let all = store.list("").await.unwrap();
    assert_eq!(all.len(), 6, "temp and lock files are not objects");
    assert_eq!(all[0].key, "empty");
    assert_eq!(all[0].etag, etag);
    assert_eq!(all.iter().find(|m| m.key == "rawer").unwrap().size, 5);

    store.delete("raw/dt=2024-01-01/a").await.unwrap();
    store.delete("raw/dt=2024-01-01/a").await.unwrap();
    assert!(
        !dir.path().join("raw/dt=2024-01-01").exists(),
        "empty dirs pruned"
    );
    assert_eq!(store.list("raw/").await.unwrap().len(), 2);
}

#[tokio::test]
async fn rejects_keys_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::open(dir.path()).unwrap();
    for key in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "a/./b",
        "a/",
        ".sluice-lock",
    ] {
        let err = store.put(key, body("x"), PutCondition::None).await;
        assert!(
            matches!(err, Err(BackendError::InvalidArgument(_))),
            "{key:?}"
        );
        assert!(store.get(key).await.is_err(), "{key:?}");
    }
    assert!(store.list("../").await.is_err());
}

#[tokio::test]
async fn conditional_puts() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::open(dir.path()).unwrap();
    let v1 = store
        .put("k", body("1"), PutCondition::IfAbsent)
        .await
        .unwrap();
    let again = store.put("k", body("2"), PutCondition::IfAbsent).await;
    assert!(matches!(again, Err(BackendError::PreconditionFailed(_))));
    let v2 = store
        .put("k", body("2"), PutCondition::IfMatch(v1.clone()))
        .await
        .unwrap();
    let stale = store.put("k", body("3"), PutCondition::IfMatch(v1)).await;
    assert!(matches!(stale, Err(BackendError::PreconditionFailed(_))));
    let missing = store
        .put("nope", body("3"), PutCondition::IfMatch(v2.clone()))
        .await;
    assert!(matches!(missing, Err(BackendError::PreconditionFailed(_))));
    assert_eq!(store.get("k").await.unwrap().unwrap().etag, v2);

    // Racing creators, through two handles: exactly one wins.
    let other = Arc::new(LocalObjectStore::open(dir.path()).unwrap());
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                s.put("race", body(&i.to_string()), PutCondition::IfAbsent)
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert!(matches!(e, BackendError::PreconditionFailed(_))),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn notifies_matching_puts() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(LocalQueue::open(dir.path().join("q"), QueueOptions::default()).unwrap());
    let rule = NotificationRule::new(queue.clone())
        .prefix("raw/")
        .suffix(".zst");
    let store = LocalObjectStore::open(dir.path().join("bucket"))
        .unwrap()
        .with_bucket_name("events")
        .with_notification(rule);
    let etag = store
        .put("raw/a b.zst", body("abc"), PutCondition::None)
        .await
        .unwrap();
    store
        .put("raw/a.json", body("x"), PutCondition::None)
        .await
        .unwrap();
    store
        .put("tables/a.zst", body("x"), PutCondition::None)
        .await
        .unwrap();
    let msgs = queue.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(msgs.len(), 1);
    let created = parse_object_created(&msgs[0].body).unwrap();
    assert_eq!(created[0].bucket, "events");
    assert_eq!(created[0].key, "raw/a b.zst");
    assert_eq!(created[0].size, 3);
    assert_eq!(format!("\"{}\"", created[0].etag.as_deref().unwrap()), etag);
}

struct BrokenQueue;

#[async_trait]
impl Queue for BrokenQueue {
    async fn send(&self, _: &str) -> Result<String> {
        Err(BackendError::Service {
            service: "test",
            message: "down".into(),
            retryable: true,
        })
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Option<Duration>,
    ) -> Result<Vec<QueueMessage>> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn change_visibility(&self, _: &str, _: Duration) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failed_notification_fails_the_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::open(dir.path())
        .unwrap()
        .with_notification(NotificationRule::new(Arc::new(BrokenQueue)));
    let err = store
        .put("k", body("x"), PutCondition::None)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
}
