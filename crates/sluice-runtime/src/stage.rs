//! The life of a stage binary once its config is read and its backends are
//! connected: the admin endpoints next to the stage, ready while it runs,
//! and on SIGTERM/SIGINT out of the load balancer first, then a drain.

use std::future::Future;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Readiness, RuntimeError, Shutdown, serve_admin};

/// Binds a stage's admin port on every interface, where the cluster's
/// probes and scrapers reach it; `setting` names the config key of `port`
/// for the error.
pub async fn bind_admin(setting: &'static str, port: u16) -> Result<TcpListener, RuntimeError> {
    let address = format!("0.0.0.0:{port}");
    TcpListener::bind(&address)
        .await
        .map_err(|source| RuntimeError::Bind {
            setting,
            address,
            source,
        })
}

/// Runs `stage` (given the metrics registry the admin port serves and the
/// token that asks it to stop) until `signal` or until it returns by itself,
/// which a stage does only on a bad configuration or a failed start. Then
/// waits up to `grace` for it to finish its in-flight work.
pub async fn run_stage<F, E>(
    signal: impl Future<Output = ()>,
    admin: TcpListener,
    grace: Duration,
    stage: impl FnOnce(Registry, CancellationToken) -> F,
) -> Result<(), RuntimeError>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let registry = Registry::new();
    let readiness = Readiness::new();
    let shutdown = Shutdown::new();
    shutdown.spawn(serve_admin(
        admin,
        registry.clone(),
        readiness.clone(),
        shutdown.token().cancelled_owned(),
    ));
    let mut task = shutdown.spawn(stage(registry, shutdown.token()));
    readiness.set_ready(true);
    let finished_early = tokio::select! {
        () = signal => None,
        finished = &mut task => Some(finished),
    };
    readiness.set_ready(false);
    shutdown.drain(grace).await?;
    let finished = match finished_early {
        Some(finished) => finished,
        None => task.await,
    };
    finished?.map_err(|e| RuntimeError::Stage(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    async fn admin() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn a_taken_admin_port_names_its_setting() {
        let taken = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = bind_admin("loader.admin_port", port).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("binding loader.admin_port (0.0.0.0:{port}): ")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_signal_drains_the_stage_before_returning() {
        let finished = Arc::new(AtomicBool::new(false));
        let seen = finished.clone();
        let signal = tokio::time::sleep(Duration::from_millis(50));
        let outcome = run_stage(signal, admin().await, Duration::from_secs(5), |_, token| {
            async move {
                token.cancelled().await;
                // In-flight work, finished after the signal.
                tokio::time::sleep(Duration::from_millis(50)).await;
                seen.store(true, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            }
        })
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_stage_that_fails_to_start_ends_the_service_with_its_error() {
        let never = std::future::pending();
        let outcome = run_stage(never, admin().await, Duration::from_secs(5), |_, _| async {
            Err(std::io::Error::other("stream not found"))
        })
        .await;
        let error = outcome.unwrap_err();
        assert!(matches!(error, RuntimeError::Stage(_)));
        assert_eq!(error.to_string(), "stream not found");
    }
}
