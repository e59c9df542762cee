//! Cancellation reaches stages; drain waits for their in-flight work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_runtime::{LogFormat, RuntimeError, Shutdown, init_logging};

#[tokio::test]
async fn drain_waits_for_in_flight_work() {
    let shutdown = Shutdown::new();
    let flushed = Arc::new(AtomicBool::new(false));
    let token = shutdown.token();
    let flag = flushed.clone();
    shutdown.spawn(async move {
        token.cancelled().await;
        // The stage's "flush what was accepted" after being told to stop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, Ordering::SeqCst);
    });

    assert!(!shutdown.is_cancelled());
    shutdown.drain(Duration::from_secs(5)).await.unwrap();
    assert!(shutdown.is_cancelled());
    assert!(shutdown.token().is_cancelled(), "clones see it");
    assert!(
        flushed.load(Ordering::SeqCst),
        "drain returned before the flush"
    );
    shutdown.cancelled().await; // resolves immediately once cancelled
}

#[tokio::test]
async fn drain_reports_tasks_that_overrun_the_grace_period() {
    let shutdown = Shutdown::new();
    shutdown.spawn(std::future::pending::<()>());
    let error = shutdown.drain(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(error, RuntimeError::ShutdownTimeout { unfinished: 1, .. }),
        "{error}"
    );
}

#[test]
fn init_logging_is_idempotent() {
    init_logging(LogFormat::Json).unwrap();
    init_logging(LogFormat::Text).unwrap();
    tracing::info!(check = true, "logging works after two inits");
}
