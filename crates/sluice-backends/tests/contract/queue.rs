use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_backends::{Queue, QueueMessage, keep_hidden};

async fn receive_one(queue: &dyn Queue, visibility: Option<Duration>) -> Option<QueueMessage> {
    let mut messages = queue
        .receive(1, Duration::from_secs(1), visibility)
        .await
        .unwrap();
    assert!(messages.len() <= 1);
    messages.pop()
}

/// Everything sent is received, and deleted messages do not come back.
pub async fn send_receive_delete(queue: &dyn Queue) {
    let mut sent = BTreeSet::new();
    for i in 0..25 {
        queue.send(&format!("message {i}")).await.unwrap();
        sent.insert(format!("message {i}"));
    }
    let mut received = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "received {} of {}",
            received.len(),
            sent.len()
        );
        for m in queue
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(30)))
            .await
            .unwrap()
        {
            assert_eq!(m.receive_count, 1);
            assert!(received.insert(m.body.clone()), "{} received twice", m.body);
            queue.delete(&m.receipt_handle).await.unwrap();
        }
    }
    assert_eq!(received, sent);
    assert!(
        queue
            .receive(10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A message kept hidden stays hidden for several times its visibility
/// timeout, every extension succeeding, and shows again once it is no
/// longer kept.
pub async fn kept_hidden_while_worked_on(queue: &dyn Queue) {
    queue.send("long work").await.unwrap();
    let visibility = Duration::from_secs(1);
    let message = receive_one(queue, Some(visibility))
        .await
        .expect("first receive");
    let mut extensions = 0;
    let work = async {
        let deadline = Instant::now() + visibility * 3;
        while Instant::now() < deadline {
            let seen = queue.receive(1, Duration::ZERO, None).await.unwrap();
            assert!(seen.is_empty(), "shown while kept hidden");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        () = work => {}
        never = keep_hidden(queue, &message.receipt_handle, visibility, |extended| {
            extended.unwrap();
            extensions += 1;
        }) => match never {},
    }
    assert!(
        extensions >= 7,
        "{extensions} extensions in 3 visibility timeouts"
    );
    // The last extension hides it for up to one more visibility timeout.
    let deadline = Instant::now() + visibility * 4;
    let again = loop {
        if let Some(m) = receive_one(queue, Some(Duration::from_secs(30))).await {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "not shown again once no longer kept"
        );
    };
    assert_eq!(
        (again.message_id, again.receive_count),
        (message.message_id, 2)
    );
    queue.delete(&again.receipt_handle).await.unwrap();
}

/// A message neither deleted nor extended comes back after its visibility
/// timeout, with its receive count raised; zero visibility releases at once.
pub async fn redelivery_after_visibility_timeout(queue: &dyn Queue) {
    queue.send("work").await.unwrap();
    let first = receive_one(queue, Some(Duration::from_secs(1)))
        .await
        .expect("first receive");
    assert_eq!(first.receive_count, 1);
    let in_flight = queue.receive(1, Duration::ZERO, None).await.unwrap();
    assert!(in_flight.is_empty(), "hidden while in flight");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = receive_one(queue, Some(Duration::from_secs(30)))
        .await
        .expect("redelivered");
    assert_eq!(second.message_id, first.message_id);
    assert_eq!(second.body, "work");
    assert_eq!(second.receive_count, 2);

    queue
        .change_visibility(&second.receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let third = receive_one(queue, None)
        .await
        .expect("released by zero visibility");
    assert_eq!(third.receive_count, 3);
    queue.delete(&third.receipt_handle).await.unwrap();
    assert!(receive_one(queue, None).await.is_none());
}

/// A message received `max_receives` times without being deleted moves to
/// the dead-letter queue.
pub async fn dead_letter_after_max_receives(
    queue: &dyn Queue,
    dead_letter: &dyn Queue,
    max_receives: u32,
) {
    queue.send("poison").await.unwrap();
    for attempt in 1..=max_receives {
        let m = receive_one(queue, Some(Duration::from_secs(30)))
            .await
            .expect("delivery");
        assert_eq!(m.receive_count, attempt);
        queue
            .change_visibility(&m.receipt_handle, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        receive_one(queue, None).await.is_none(),
        "moved out after {max_receives} receives"
    );
    let dead = receive_one(dead_letter, None)
        .await
        .expect("in the dead-letter queue");
    assert_eq!(dead.body, "poison");
}
