//! Tests of the local queue: visibility, receipts, durability, dead letters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::{LocalQueue, QueueOptions};
use crate::{BackendError, Queue};

const NO_WAIT: Duration = Duration::ZERO;

#[tokio::test]
async fn visibility_receipts_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let q = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    let id1 = q.send("one").await.unwrap();
    q.send("two").await.unwrap();
    let got = q
        .receive(1, NO_WAIT, Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(
        (got[0].message_id.as_str(), got[0].body.as_str()),
        (id1.as_str(), "one")
    );
    assert_eq!(got[0].receive_count, 1);
    let next = q.receive(10, NO_WAIT, None).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].body, "two");

    // "one" reappears after its visibility timeout, with a new receipt.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = q.receive(10, NO_WAIT, None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, got[0].receipt_handle);

    // The old receipt acts on nothing.
    q.delete(&got[0].receipt_handle).await.unwrap();
    let stale = q.change_visibility(&got[0].receipt_handle, NO_WAIT).await;
    assert!(matches!(stale, Err(BackendError::Expired(_))));
    assert_eq!(q.len().await.unwrap(), 2);

    // Visibility zero makes it receivable at once; then delete for good.
    q.change_visibility(&again[0].receipt_handle, NO_WAIT)
        .await
        .unwrap();
    let third = q.receive(10, NO_WAIT, None).await.unwrap();
    assert_eq!(third[0].receive_count, 3);
    q.delete(&third[0].receipt_handle).await.unwrap();
    q.delete(&third[0].receipt_handle).await.unwrap();
    q.delete(&next[0].receipt_handle).await.unwrap();
    assert!(q.is_empty().await.unwrap());
    assert!(matches!(
        q.delete("garbage").await,
        Err(BackendError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
        q.send("kept").await.unwrap();
        let got = q
            .receive(1, NO_WAIT, Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
    }
    let q = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(
        q.receive(1, NO_WAIT, None).await.unwrap().is_empty(),
        "still invisible"
    );
    drop(q);
    // With a clock two minutes ahead the message is visible, received twice.
    let later =
        QueueOptions::default().clock(|| std::time::SystemTime::now() + Duration::from_secs(120));
    let q = LocalQueue::open(dir.path(), later).unwrap();
    let got = q.receive(1, NO_WAIT, None).await.unwrap();
    assert_eq!((got[0].body.as_str(), got[0].receive_count), ("kept", 2));
}

#[tokio::test]
async fn dead_letters_after_max_receives() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = Arc::new(LocalQueue::open(dir.path().join("dlq"), QueueOptions::default()).unwrap());
    let options = QueueOptions::default().dead_letter(dlq.clone(), 2);
    let q = LocalQueue::open(dir.path().join("q"), options).unwrap();
    q.send("poison").await.unwrap();
    q.send("fine").await.unwrap();
    for round in 1..=2 {
        let got = q.receive(1, NO_WAIT, None).await.unwrap();
        assert_eq!(
            (got[0].body.as_str(), got[0].receive_count),
            ("poison", round)
        );
        q.change_visibility(&got[0].receipt_handle, NO_WAIT)
            .await
            .unwrap();
    }
    let got = q.receive(10, NO_WAIT, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "fine");
    let dead = dlq.receive(10, NO_WAIT, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(q.len().await.unwrap(), 1);
}

#[tokio::test]
async fn long_poll_wakes_on_send() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(LocalQueue::open(dir.path(), QueueOptions::default()).unwrap());
    // Another handle on the same directory stands in for another process.
    let other = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    for sender in [q.clone() as Arc<dyn Queue>, Arc::new(other)] {
        let started = Instant::now();
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.receive(1, Duration::from_secs(5), None).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        sender.send("hi").await.unwrap();
        let got = waiting.await.unwrap().unwrap();
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        q.delete(&got[0].receipt_handle).await.unwrap();
    }
    let started = Instant::now();
    assert!(
        q.receive(1, Duration::from_millis(200), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn rejects_out_of_range_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let q = LocalQueue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(q.receive(0, NO_WAIT, None).await.is_err());
    assert!(q.receive(11, NO_WAIT, None).await.is_err());
    assert!(q.receive(1, Duration::from_secs(21), None).await.is_err());
    assert!(q.send("").await.is_err());
}
