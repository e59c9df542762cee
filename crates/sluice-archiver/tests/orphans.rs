//! A crash between the steps of writing a range (claim, object, commit),
//! while more records keep arriving: the restarted archiver must finish the
//! range with exactly the claimed bounds, not cut a longer range that
//! overlaps the object already written. Faults are injected into a real
//! local object store.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_archiver::ArchiverConfig;
use sluice_archiver::checkpoint::Checkpoint;
use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{
    BackendError, EventStream, GetObject, ObjectMeta, ObjectStore, PutCondition, Result,
};

use common::{Written, assert_exactly_once, produce, start, test_config, wait_archived};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Fail the first raw object put: the range is claimed, its object missing.
    Object,
    /// Fail the first commit: the object is written, the checkpoint still
    /// shows the range as pending.
    Commit,
}

struct Faulty {
    inner: LocalObjectStore,
    fault: Fault,
    fired: AtomicBool,
    /// The range that was pending when the fault fired.
    claimed: Mutex<Option<(String, String)>>,
}

impl Faulty {
    fn matches(&self, key: &str, body: &[u8]) -> bool {
        match self.fault {
            Fault::Object => key.starts_with("raw/"),
            Fault::Commit => {
                key.starts_with("checkpoints/")
                    && serde_json::from_slice::<Checkpoint>(body).is_ok_and(|c| c.pending.is_none())
            }
        }
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<String> {
        if !self.fired.load(Ordering::SeqCst) && self.matches(key, &body) {
            let current = self
                .inner
                .get(&format!("checkpoints/events/{}.json", shard_of(key)))
                .await?;
            let pending = current
                .and_then(|o| serde_json::from_slice::<Checkpoint>(&o.body).ok())
                .and_then(|c| c.pending)
                .map(|p| (p.first.to_string(), p.last.to_string()));
            *self.claimed.lock().unwrap() = pending;
            self.fired.store(true, Ordering::SeqCst);
            // Permanent, so the worker gives up and restarts from the
            // checkpoint at the next discovery.
            return Err(BackendError::InvalidArgument(format!(
                "injected fault on {key}"
            )));
        }
        self.inner.put(key, body, condition).await
    }

    async fn get(&self, key: &str) -> Result<Option<GetObject>> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

/// `checkpoints/events/<shard>.json` or `raw/events/dt=../hh=../<shard>/..`.
fn shard_of(key: &str) -> String {
    key.split('/')
        .find(|part| part.starts_with("shardId-"))
        .map(|s| s.trim_end_matches(".json").to_owned())
        .unwrap()
}

async fn crash_mid_range(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let stream: Arc<dyn EventStream> =
        Arc::new(LocalStream::open(dir.path().join("stream"), 1).unwrap());
    let faulty = Arc::new(Faulty {
        inner: LocalObjectStore::open(dir.path().join("objects")).unwrap(),
        fault,
        fired: AtomicBool::new(false),
        claimed: Mutex::new(None),
    });
    let objects: Arc<dyn ObjectStore> = faulty.clone();
    let mut written = Written::new();
    produce(stream.as_ref(), 0, 1_000, 500, Duration::ZERO, &mut written).await;
    // One object per second, however large: the first holds all 1,000.
    let config = ArchiverConfig {
        max_object_bytes: 1 << 30,
        ..test_config()
    };
    let running = start(config, stream.clone(), "events", objects.clone());
    while !faulty.fired.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // More records arrive before the worker restarts (at the next
    // discovery, a second later): re-reading would now see 2,000.
    produce(
        stream.as_ref(),
        1_000,
        1_000,
        500,
        Duration::ZERO,
        &mut written,
    )
    .await;
    wait_archived(
        objects.as_ref(),
        "events",
        &written,
        Duration::from_secs(30),
    )
    .await;
    running.stop().await;

    let found = assert_exactly_once(objects.as_ref(), "events", &written).await;
    let seqs = &written.values().next().unwrap();
    let claimed = faulty
        .claimed
        .lock()
        .unwrap()
        .clone()
        .expect("a range was pending");
    assert_eq!(claimed, (seqs[0].to_string(), seqs[999].to_string()));
    let first = found.iter().min_by_key(|o| o.first.clone()).unwrap();
    assert_eq!(
        (first.first.to_string(), first.last.to_string()),
        claimed,
        "the claimed bounds were kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_range_whose_object_is_missing_is_rewritten_with_the_same_bounds() {
    crash_mid_range(Fault::Object).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_range_whose_commit_is_missing_is_committed_not_rewritten() {
    crash_mid_range(Fault::Commit).await;
}
