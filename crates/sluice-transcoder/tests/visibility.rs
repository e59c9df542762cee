//! A message stays hidden while its object is worked on, however long that
//! takes: the heartbeat extends its visibility, so no second worker picks
//! it up and it is transcoded once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_backends::{GetObject, ObjectMeta, ObjectStore, PutCondition, Result};
use support::{Harness, archive, test_config, track};

/// The real store, with every read of a raw object slowed down.
struct SlowReads {
    inner: Arc<dyn ObjectStore>,
    delay: Duration,
    reads: AtomicUsize,
}

#[async_trait]
impl ObjectStore for SlowReads {
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<String> {
        self.inner.put(key, body, condition).await
    }

    async fn get(&self, key: &str) -> Result<Option<GetObject>> {
        if key.starts_with("raw/") {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
        }
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_object_keeps_its_message_hidden() {
    let config = support::TranscoderConfig {
        visibility_timeout_secs: 1,
        ..test_config()
    };
    let slow = Arc::new(std::sync::OnceLock::<Arc<SlowReads>>::new());
    let mut h = Harness::local_wrapped(config, {
        let slow = slow.clone();
        move |inner| {
            let wrapped = Arc::new(SlowReads {
                inner,
                delay: Duration::from_millis(3500),
                reads: AtomicUsize::new(0),
            });
            slow.set(wrapped.clone()).ok();
            wrapped
        }
    });
    let (key, body) = archive(1, &[vec![track("s1", "Slow", r#"{"a":1}"#)]]);
    h.put_raw(&key, body).await;
    let manifest = h.next_manifest().await;
    assert_eq!(manifest.manifest_id, key);
    // Without the heartbeat the message would have come back after 1 s and
    // the second worker would have transcoded it again.
    assert!(h.no_manifest_within(Duration::from_secs(3)).await);
    assert_eq!(slow.get().unwrap().reads.load(Ordering::SeqCst), 1);
    h.stop().await;
}
