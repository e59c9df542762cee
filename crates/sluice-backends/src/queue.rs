use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// SQS's limits, which the local queue enforces too (so a local run fails
/// where AWS would) and the stages' configs are checked against.
pub const MAX_RECEIVE: usize = 10;
pub const MAX_WAIT: Duration = Duration::from_secs(20);
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// An at-least-once message queue with visibility timeouts: SQS, or a durable
/// spool on disk. A received message is hidden for the visibility timeout and
/// delivered again unless it is deleted first; after the configured number of
/// receives it moves to the dead-letter queue (SQS redrive policy).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues a message; returns its id.
    async fn send(&self, body: &str) -> Result<String>;

    /// Up to `max` messages (1..=10), waiting up to `wait` (long poll, at
    /// most 20 s) for the first one. `visibility` overrides the queue's
    /// default visibility timeout for these messages.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<QueueMessage>>;

    /// Acknowledges a message, by the receipt handle of its latest receive.
    async fn delete(&self, receipt_handle: &str) -> Result<()>;

    /// Hides the message for `timeout` from now (zero makes it visible at once).
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// Keeps a received message hidden while its work goes on: extends its
/// visibility to `visibility` every third of that, and hands `extended`
/// the outcome of each extension (to count or log a failure; a later one
/// may still succeed before the message shows again). Never returns: run
/// it beside the work (`tokio::select!`) and drop it when the work ends.
pub async fn keep_hidden(
    queue: &dyn Queue,
    receipt_handle: &str,
    visibility: Duration,
    mut extended: impl FnMut(Result<()>),
) -> std::convert::Infallible {
    let every = (visibility / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        extended(queue.change_visibility(receipt_handle, visibility).await);
    }
}
