//! Rejected events: why (for the client and the `cause` label), and the
//! sink that keeps them under `rejected/<source>/dt=YYYY-MM-DD/` in the
//! object store, batched into one NDJSON object per source and day per
//! flush rather than one object per event.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_backends::{ObjectStore, PutCondition};
use sluice_events::EventError;
use sluice_events::time::format_us;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Why one event was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    Event(EventError),
    /// The event's text holds bytes that are not UTF-8; `offset` is the
    /// first one's position in the (decompressed) request body.
    InvalidUtf8 {
        offset: usize,
    },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Event(e) => e.fmt(f),
            Reject::InvalidUtf8 { offset } => write!(
                f,
                "event contains invalid UTF-8 at byte {offset} of the request body"
            ),
        }
    }
}

impl Reject {
    pub fn cause(&self) -> &'static str {
        match self {
            Reject::Event(e) => e.cause(),
            Reject::InvalidUtf8 { .. } => "invalid_utf8",
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Reject::Event(
                EventError::WrongType { field, .. }
                | EventError::InvalidValue { field, .. }
                | EventError::Missing { field, .. }
                | EventError::TooDeep { field, .. }
                | EventError::TooManyProperties { field, .. },
            ) => Some(field),
            Reject::Event(EventError::TooLarge { .. }) => Some("event"),
            _ => None,
        }
    }

    /// The limit exceeded, when one was.
    pub fn limit(&self) -> Option<usize> {
        match self {
            Reject::Event(
                EventError::TooLarge { limit, .. }
                | EventError::TooDeep { limit, .. }
                | EventError::TooManyProperties { limit, .. },
            ) => Some(*limit),
            _ => None,
        }
    }
}

/// One rejected event on its way to the object store.
pub struct RejectedEvent {
    pub source: String,
    pub received_at_us: i64,
    pub protocol: &'static str,
    pub index: usize,
    pub reject: Reject,
    /// The event's text as received (invalid UTF-8 replaced by U+FFFD).
    pub raw: String,
}

impl RejectedEvent {
    fn line(&self) -> String {
        let mut line = serde_json::json!({
            "id": uuid::Uuid::now_v7().to_string(),
            "received_at": format_us(self.received_at_us),
            "source": self.source,
            "protocol": self.protocol,
            "index": self.index,
            "cause": self.reject.cause(),
            "field": self.reject.field(),
            "reason": self.reject.to_string(),
            "raw": self.raw,
        })
        .to_string();
        line.push('\n');
        line
    }

    fn object_prefix(&self) -> String {
        let day = format_us(self.received_at_us);
        let source: String = self
            .source
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "rejected/{source}/dt={}",
            day.get(..10).unwrap_or("unknown")
        )
    }
}

/// A flush writes once this much is buffered, whatever the interval.
const FLUSH_BYTES: usize = 4 << 20;
/// Queued events before senders wait: requests slow down rather than lose
/// rejected events or buffer them without bound.
const QUEUE_DEPTH: usize = 4096;
const WRITE_ATTEMPTS: u32 = 5;

pub struct RejectedSink {
    tx: mpsc::Sender<RejectedEvent>,
    closing: CancellationToken,
}

impl RejectedSink {
    /// Starts the writer task; after [`RejectedSink::close`] it writes what
    /// is left and ends.
    pub fn spawn(
        objects: Arc<dyn ObjectStore>,
        interval: Duration,
        metrics: Metrics,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let closing = CancellationToken::new();
        let task = tokio::spawn(run(rx, closing.clone(), objects, interval, metrics));
        (Self { tx, closing }, task)
    }

    pub fn close(&self) {
        self.closing.cancel();
    }

    pub async fn send(&self, event: RejectedEvent) {
        if let Err(mpsc::error::SendError(event)) = self.tx.send(event).await {
            // Only after shutdown finished; nothing should still be sending.
            tracing::error!(source = %event.source, reason = %event.reject, "rejected event after shutdown, not stored");
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<RejectedEvent>,
    closing: CancellationToken,
    objects: Arc<dyn ObjectStore>,
    interval: Duration,
    metrics: Metrics,
) {
    // object prefix -> (NDJSON body, events)
    let mut pending: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut bytes = 0;
    let mut tick = tokio::time::interval(interval);
    let mut receiving = true;
    loop {
        let (flush, open) = tokio::select! {
            event = rx.recv() => match event {
                Some(event) => {
                    let line = event.line();
                    bytes += line.len();
                    let entry = pending.entry(event.object_prefix()).or_default();
                    entry.0.push_str(&line);
                    entry.1 += 1;
                    (bytes >= FLUSH_BYTES, true)
                }
                None => (true, false),
            },
            _ = tick.tick() => (true, true),
            () = closing.cancelled(), if receiving => {
                // recv() ends once what is queued has been taken.
                rx.close();
                receiving = false;
                (false, true)
            }
        };
        if flush {
            for (prefix, (body, count)) in std::mem::take(&mut pending) {
                write(&*objects, &prefix, body, count, &metrics).await;
            }
            bytes = 0;
        }
        if !open {
            return;
        }
    }
}

async fn write(
    objects: &dyn ObjectStore,
    prefix: &str,
    body: String,
    count: u64,
    metrics: &Metrics,
) {
    let key = format!("{prefix}/{}.ndjson", uuid::Uuid::now_v7());
    let body = Bytes::from(body);
    for attempt in 1..=WRITE_ATTEMPTS {
        match objects.put(&key, body.clone(), PutCondition::None).await {
            Ok(_) => {
                tracing::debug!(%key, events = count, "rejected events stored");
                return;
            }
            Err(error) if error.is_retryable() && attempt < WRITE_ATTEMPTS => {
                tracing::warn!(%key, %error, attempt, "storing rejected events failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(error) => {
                metrics.rejected_store_failures.inc_by(count);
                tracing::error!(%key, %error, events = count, "storing rejected events failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_field_limit_and_cause() {
        let r = Reject::Event(EventError::TooLarge {
            size: 40_000,
            limit: 32_768,
        });
        assert_eq!(
            (r.cause(), r.field(), r.limit()),
            ("too_large", Some("event"), Some(32_768))
        );
        let r = Reject::InvalidUtf8 { offset: 7 };
        assert_eq!(r.cause(), "invalid_utf8");
        assert!(r.to_string().contains("byte 7"));
    }
}
