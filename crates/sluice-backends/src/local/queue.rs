//! `LocalQueue`: an SQS-like queue in a directory (`journal` plus a lock
//! file), durable and safe to share between processes.
//!
//! Receipt handles: each receive issues a new one (`<message id>.<token>`).
//! A handle from an earlier receive no longer acts on the message:
//! `delete` with it succeeds without deleting, as SQS documents (so a slow
//! worker whose message was redelivered cannot ack the other worker's copy),
//! and `change_visibility` with it fails with [`BackendError::Expired`], as
//! SQS's `ChangeMessageVisibility` fails. Deleting a message that is already
//! gone succeeds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::fsutil::{INTERNAL_PREFIX, LockFile, blocking};
use super::queue_journal::{Journal, Op};
use crate::{BackendError, MAX_RECEIVE, MAX_VISIBILITY, MAX_WAIT, Queue, QueueMessage, Result};

/// SQS's message size limit, enforced so local runs fail where AWS would.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// How often a long poll looks at the disk for other processes' sends.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a message being moved to the dead-letter queue stays hidden; if
/// the move fails it is retried after this.
const DEAD_LETTER_LEASE: Duration = Duration::from_secs(30);

pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// SQS redrive policy: a message received `max_receive_count` times moves
/// to `queue` on its next receive.
#[derive(Clone)]
pub struct DeadLetter {
    pub queue: Arc<dyn Queue>,
    pub max_receive_count: u32,
}

#[derive(Clone)]
pub struct QueueOptions {
    pub visibility_timeout: Duration,
    pub dead_letter: Option<DeadLetter>,
    /// The time visibility is computed against (tests can move it).
    pub clock: Clock,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            dead_letter: None,
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl QueueOptions {
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    pub fn dead_letter(mut self, queue: Arc<dyn Queue>, max_receive_count: u32) -> Self {
        self.dead_letter = Some(DeadLetter {
            queue,
            max_receive_count,
        });
        self
    }

    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

pub struct LocalQueue {
    inner: Arc<Inner>,
    /// Wakes this instance's long polls on its own sends; other processes
    /// are noticed by polling.
    notify: Arc<Notify>,
}

struct Inner {
    dir: PathBuf,
    options: QueueOptions,
    lock: LockFile,
    journal: Mutex<Journal>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn message_id(receipt: &str) -> Result<&str> {
    receipt
        .split_once('.')
        .map(|(id, _)| id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            BackendError::InvalidArgument(format!("receipt handle {receipt:?} is not valid"))
        })
}

impl LocalQueue {
    pub fn open(dir: impl Into<PathBuf>, options: QueueOptions) -> Result<Self> {
        let dir = dir.into();
        if options.visibility_timeout > MAX_VISIBILITY {
            return Err(BackendError::InvalidArgument(
                "visibility timeout is above 12 hours".into(),
            ));
        }
        if options
            .dead_letter
            .as_ref()
            .is_some_and(|d| d.max_receive_count == 0)
        {
            return Err(BackendError::InvalidArgument(
                "dead-letter max_receive_count must be at least 1".into(),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::io(&dir, e))?;
        let lock = LockFile::open(dir.join(format!("{INTERNAL_PREFIX}lock")))?;
        let journal = {
            let _guard = lock.lock()?;
            Journal::open(dir.join("journal"))?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                options,
                lock,
                journal: Mutex::new(journal),
            }),
            notify: Arc::new(Notify::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Messages in the queue, visible or not (SQS's approximate counts).
    pub async fn len(&self) -> Result<usize> {
        let inner = self.inner.clone();
        blocking(move || inner.with_journal(|j| Ok(j.messages().count()))).await
    }

    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Moves messages to the dead-letter queue, then drops them here. A
    /// failed send leaves the message hidden for the lease, then retried.
    async fn dead_letter(&self, moves: Vec<(String, String)>) {
        let Some(dead_letter) = &self.inner.options.dead_letter else {
            return;
        };
        let mut moved = Vec::new();
        for (id, body) in moves {
            match dead_letter.queue.send(&body).await {
                Ok(_) => moved.push(Op::Deleted { id }),
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "moving message to dead-letter queue failed")
                }
            }
        }
        let inner = self.inner.clone();
        if let Err(e) = blocking(move || inner.with_journal(|j| j.append(moved))).await {
            tracing::warn!(error = %e, "dropping dead-lettered messages failed");
        }
    }
}

/// What one receive attempt took: messages to return, and messages to move
/// to the dead-letter queue as `(id, body)`.
type Taken = (Vec<QueueMessage>, Vec<(String, String)>);

impl Inner {
    fn now_ms(&self) -> u64 {
        millis((self.options.clock)())
    }

    /// Runs `f` on up-to-date state with the lock held.
    fn with_journal<T>(&self, f: impl FnOnce(&mut Journal) -> Result<T>) -> Result<T> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let _guard = self.lock.lock()?;
        journal.catch_up()?;
        f(&mut journal)
    }

    fn take(&self, max: usize, visibility: Duration) -> Result<Taken> {
        let max_receives = self
            .options
            .dead_letter
            .as_ref()
            .map(|d| d.max_receive_count);
        self.with_journal(|journal| {
            let now = self.now_ms();
            let (mut ops, mut messages, mut moves) = (Vec::new(), Vec::new(), Vec::new());
            for m in journal.messages().filter(|m| m.visible_ms <= now) {
                if messages.len() == max {
                    break;
                }
                if max_receives.is_some_and(|limit| m.receive_count >= limit) {
                    ops.push(Op::Visibility {
                        id: m.id.clone(),
                        visible_ms: now + DEAD_LETTER_LEASE.as_millis() as u64,
                    });
                    moves.push((m.id.clone(), m.body.clone()));
                    continue;
                }
                let receipt = format!("{}.{}", m.id, uuid::Uuid::now_v7().simple());
                let count = m.receive_count + 1;
                ops.push(Op::Received {
                    id: m.id.clone(),
                    receipt: receipt.clone(),
                    count,
                    visible_ms: now + visibility.as_millis() as u64,
                });
                messages.push(QueueMessage {
                    message_id: m.id.clone(),
                    receipt_handle: receipt,
                    body: m.body.clone(),
                    receive_count: count,
                });
            }
            journal.append(ops)?;
            Ok((messages, moves))
        })
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, body: &str) -> Result<String> {
        if body.is_empty() || body.len() > MAX_MESSAGE_BYTES {
            return Err(BackendError::InvalidArgument(format!(
                "message body must be 1..={MAX_MESSAGE_BYTES} bytes, is {}",
                body.len()
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let op = Op::Sent {
            id: id.clone(),
            body: body.to_owned(),
            sent_ms: self.inner.now_ms(),
        };
        let inner = self.inner.clone();
        blocking(move || inner.with_journal(|j| j.append(vec![op]))).await?;
        self.notify.notify_waiters();
        Ok(id)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<QueueMessage>> {
        if !(1..=MAX_RECEIVE).contains(&max) {
            return Err(BackendError::InvalidArgument(format!(
                "receive up to 1..={MAX_RECEIVE} messages, not {max}"
            )));
        }
        if wait > MAX_WAIT {
            return Err(BackendError::InvalidArgument(
                "wait is above 20 seconds".into(),
            ));
        }
        let visibility = visibility.unwrap_or(self.inner.options.visibility_timeout);
        if visibility > MAX_VISIBILITY {
            return Err(BackendError::InvalidArgument(
                "visibility timeout is above 12 hours".into(),
            ));
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a send in between still wakes us.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let inner = self.inner.clone();
            let (messages, moves) = blocking(move || inner.take(max, visibility)).await?;
            let moved_some = !moves.is_empty();
            if moved_some {
                self.dead_letter(moves).await;
            }
            if !messages.is_empty() {
                return Ok(messages);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            if moved_some {
                continue; // more may be visible behind the moved ones
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(POLL_INTERVAL.min(deadline - now)) => {}
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        let id = message_id(receipt_handle)?.to_owned();
        let receipt = receipt_handle.to_owned();
        let inner = self.inner.clone();
        blocking(move || {
            inner.with_journal(|j| match j.get(&id) {
                Some(m) if m.receipt.as_deref() == Some(receipt.as_str()) => {
                    j.append(vec![Op::Deleted { id }])
                }
                // Already gone, or a stale receipt: succeeds, as in SQS.
                _ => Ok(()),
            })
        })
        .await
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        if timeout > MAX_VISIBILITY {
            return Err(BackendError::InvalidArgument(
                "visibility timeout is above 12 hours".into(),
            ));
        }
        let id = message_id(receipt_handle)?.to_owned();
        let receipt = receipt_handle.to_owned();
        let inner = self.inner.clone();
        blocking(move || {
            let visible_ms = inner.now_ms() + timeout.as_millis() as u64;
            inner.with_journal(|j| match j.get(&id) {
                Some(m) if m.receipt.as_deref() == Some(receipt.as_str()) => {
                    j.append(vec![Op::Visibility { id, visible_ms }])
                }
                _ => Err(BackendError::Expired(format!(
                    "receipt handle {receipt} is not the message's latest"
                ))),
            })
        })
        .await?;
        if timeout.is_zero() {
            self.notify.notify_waiters();
        }
        Ok(())
    }
}
