//! Moving a message that keeps failing to a dead-letter queue, with the
//! reason, in one format whichever stage gave up on it: an operator (or a
//! redrive script) reads the transcoder's and the loader's alike.

use serde::{Deserialize, Serialize};

use crate::{BackendError, Queue, QueueMessage};

/// The body of a dead-lettered message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterBody {
    /// What went wrong, in words.
    pub reason: String,
    /// The failure's metric label (`undecodable_archive`, `manifest`, ...).
    pub cause: String,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    pub message_id: String,
    /// The original message, as received: send it back to redrive.
    pub body: String,
    /// RFC 3339, UTC.
    pub dead_lettered_at: String,
}

impl DeadLetterBody {
    pub fn new(message: &QueueMessage, cause: &str, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            cause: cause.to_owned(),
            attempts: message.receive_count,
            message_id: message.message_id.clone(),
            body: message.body.clone(),
            dead_lettered_at: chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// A dead-lettering that did not finish.
#[derive(Debug)]
pub struct DeadLetterFailed {
    /// The letter reached the dead-letter queue but the message could not
    /// be deleted: it comes back and is dead-lettered again (a duplicate
    /// letter, nothing lost). When false, nothing was sent and the message
    /// simply comes back.
    pub sent: bool,
    pub error: BackendError,
}

/// Sends `letter` to `dlq`, then deletes `message` from `queue`; sending
/// first means a crash in between duplicates the letter rather than losing
/// the message.
pub async fn move_to_dead_letter(
    queue: &dyn Queue,
    dlq: &dyn Queue,
    message: &QueueMessage,
    letter: &DeadLetterBody,
) -> Result<(), DeadLetterFailed> {
    let body = serde_json::to_string(letter).expect("a dead letter serializes");
    dlq.send(&body)
        .await
        .map_err(|error| DeadLetterFailed { sent: false, error })?;
    tracing::error!(
        message_id = %letter.message_id,
        cause = %letter.cause,
        attempts = letter.attempts,
        reason = %letter.reason,
        "moved message to the dead-letter queue"
    );
    queue
        .delete(&message.receipt_handle)
        .await
        .map_err(|error| DeadLetterFailed { sent: true, error })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::local::{LocalQueue, QueueOptions};

    #[tokio::test]
    async fn the_letter_carries_the_message_and_the_message_leaves_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let queue =
            Arc::new(LocalQueue::open(dir.path().join("work"), QueueOptions::default()).unwrap());
        let dlq =
            Arc::new(LocalQueue::open(dir.path().join("dead"), QueueOptions::default()).unwrap());
        queue.send("poison").await.unwrap();
        let message = queue
            .receive(1, Duration::ZERO, None)
            .await
            .unwrap()
            .remove(0);

        let letter = DeadLetterBody::new(&message, "undecodable", "bad magic at byte 0");
        move_to_dead_letter(queue.as_ref(), dlq.as_ref(), &message, &letter)
            .await
            .unwrap();

        let got = dlq.receive(1, Duration::ZERO, None).await.unwrap();
        let sent: DeadLetterBody = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(sent, letter);
        assert_eq!(
            (sent.body.as_str(), sent.attempts, sent.cause.as_str()),
            ("poison", 1, "undecodable")
        );
        assert_eq!(sent.message_id, message.message_id);
        // Deleted, not merely hidden: making it visible again fails.
        assert!(
            queue
                .change_visibility(&message.receipt_handle, Duration::ZERO)
                .await
                .is_err()
        );
        assert!(
            queue
                .receive(1, Duration::ZERO, None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
