//! Graceful shutdown: a signal starts it, stages finish their in-flight work,
//! main waits for them.
//!
//! Like mini-redis (a broadcast to stop, then waiting for every task), built on
//! tokio-util: a `CancellationToken` tells stages to stop, a `TaskTracker` tells
//! main when the tasks it tracks have returned.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::RuntimeError;

/// A future that resolves on the first SIGTERM (Kubernetes stopping a pod) or
/// SIGINT (Ctrl-C).
///
/// The handlers are installed here, not on first poll, so a signal that arrives
/// while main is still starting up is not lost, and a failure to install them
/// is reported at startup.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, RuntimeError> {
    let install = |kind: SignalKind, name| {
        signal(kind).map_err(|source| RuntimeError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    })
}

/// Cheap to clone; every clone cancels and tracks the same set of tasks.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token stage code holds: `token.cancelled().await` in a `select!`
    /// around its work, `token.is_cancelled()` between batches.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Asks every holder of the token to stop.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Spawns a task that [`Shutdown::drain`] waits for.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancels, then waits up to `grace` for every tracked task to return, so
    /// main exits only after in-flight work is flushed. `grace` should be below
    /// the orchestrator's kill deadline (Kubernetes: 30 s by default).
    pub async fn drain(&self, grace: Duration) -> Result<(), RuntimeError> {
        self.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .map_err(|_| RuntimeError::ShutdownTimeout {
                unfinished: self.tracker.len(),
                grace,
            })
    }
}
