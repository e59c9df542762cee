//! `serve`: the collector as a library call, for the binary, `sluice up`
//! and the tests alike.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use sluice_backends::{EventStream, ObjectStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::grpc::serve_grpc;
use crate::http::serve_http;
use crate::ingest::Intake;
use crate::metrics::Metrics;
use crate::rejection::RejectedSink;
use crate::writer::StreamWriter;
use crate::{CollectorConfig, CollectorError};

/// Already-bound listeners (port 0 in tests).
pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// Serves HTTP and gRPC until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish, and writes every buffered
/// event to the stream and every rejected one to the object store before
/// returning. Metrics are registered in `registry`.
pub async fn serve(
    config: CollectorConfig,
    listeners: Listeners,
    stream: Arc<dyn EventStream>,
    objects: Arc<dyn ObjectStore>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<(), CollectorError> {
    config.validate()?;
    let metrics = Metrics::register(registry)?;
    let (writer, writer_task) = StreamWriter::spawn(stream, &config, metrics.clone());
    let (rejected, rejected_task) = RejectedSink::spawn(
        objects,
        Duration::from_millis(config.rejected_flush_ms.max(1)),
        metrics.clone(),
    );
    tracing::info!(
        http = %listeners.http.local_addr()?,
        grpc = %listeners.grpc.local_addr()?,
        ack = ?config.ack,
        "collector listening"
    );
    let intake = Arc::new(Intake::new(config, metrics, writer, rejected));
    // A server that fails takes the other down with it.
    let stop = shutdown.child_token();
    let http = tokio::spawn(serve_http(listeners.http, intake.clone(), stop.clone()));
    let grpc = serve_grpc(listeners.grpc, intake.clone(), stop.clone()).await;
    stop.cancel();
    let http = http.await;

    // No request is in flight any more: flush what was accepted.
    intake.writer.close();
    intake.rejected.close();
    let (writer_done, rejected_done) = tokio::join!(writer_task, rejected_task);
    tracing::info!("collector stopped");
    for joined in [http, writer_done, rejected_done] {
        joined.map_err(|e| CollectorError::Io(std::io::Error::other(e)))?;
    }
    grpc
}
